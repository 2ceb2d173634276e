//! `read.notifications`: every user's notifications.
//!
//! Ordered by the log position of their `notification_created` (a total
//! order, stable within a millisecond), which is also the cursor. Indexes:
//! - a user's notifications, newest first: `(user_id, position desc)`;
//! - only the unread ones, and their count: `(user_id, position desc)
//!   where not read`.
//!
//! "Mark all read" reads every notification of the user created before the
//! event in the log, so a notification derived after it stays unread.

use forum_events::notifications::NotificationEvent;
use forum_events::{RecordedEvent, Service};
use futures::future::BoxFuture;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{Error, Projection, Result};

/// The notifications read model.
pub struct Notifications;

impl Projection for Notifications {
    fn name(&self) -> &'static str {
        "notifications"
    }

    fn version(&self) -> u32 {
        1
    }

    fn sources(&self) -> &'static [Service] {
        &[Service::Notifications]
    }

    fn tables(&self) -> &'static [&'static str] {
        &["notifications"]
    }

    fn create_sql(&self, schema: &str) -> String {
        format!(
            "create table if not exists {schema}.notifications (
                id             uuid        primary key,
                user_id        uuid        not null,
                kind           text        not null,
                actor_id       uuid        not null,
                actor_nickname text        not null,
                post_id        uuid,
                comment_id     uuid,
                message_id     uuid,
                created_at     timestamptz not null,
                read           boolean     not null default false,
                position       bigint      not null
            );
            create index if not exists notifications_of_user on {schema}.notifications (user_id, position desc);
            create index if not exists notifications_unread on {schema}.notifications (user_id, position desc) where not read"
        )
    }

    fn apply<'a>(
        &'a self,
        tx: &'a mut PgConnection,
        schema: &'a str,
        events: &'a [RecordedEvent],
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let mut decoded = Vec::with_capacity(events.len());
            for event in events {
                let e = event
                    .decode::<NotificationEvent>()
                    .map_err(|e| Error::poison(event, e))?;
                decoded.push((event.position as i64, e));
            }
            // One statement per kind for the whole batch, however the
            // types interleave: every notification is inserted first, which
            // gives the same rows as one event at a time, because a read
            // mark only reaches notifications older than itself (named ones
            // existed when it was decided; "all" is bounded by position).
            let mut created_run = Vec::new();
            let mut read_run = Vec::new();
            let mut all_run = Vec::new();
            for (position, e) in decoded {
                match e {
                    NotificationEvent::Created(_) => created_run.push((position, e)),
                    NotificationEvent::Read(_) => read_run.push((position, e)),
                    NotificationEvent::AllRead(_) => all_run.push((position, e)),
                }
            }
            if !created_run.is_empty() {
                created(tx, schema, &created_run).await?;
            }
            if !read_run.is_empty() {
                read(tx, schema, &read_run).await?;
            }
            if !all_run.is_empty() {
                all_read(tx, schema, &all_run).await?;
            }
            Ok(())
        })
    }

    fn stream_rows(&self) -> Option<(&'static str, &'static str)> {
        // A user's inbox: the stream is the user.
        Some(("notifications", "user_id"))
    }
}

/// The batch's `notification_created` events: one insert.
async fn created(
    tx: &mut PgConnection,
    schema: &str,
    run: &[(i64, NotificationEvent)],
) -> Result<()> {
    let mut ids = Vec::with_capacity(run.len());
    let mut users = Vec::with_capacity(run.len());
    let mut kinds = Vec::with_capacity(run.len());
    let mut actors = Vec::with_capacity(run.len());
    let mut nicks = Vec::with_capacity(run.len());
    let mut posts = Vec::with_capacity(run.len());
    let mut comments = Vec::with_capacity(run.len());
    let mut messages = Vec::with_capacity(run.len());
    let mut times = Vec::with_capacity(run.len());
    let mut positions = Vec::with_capacity(run.len());
    for (position, e) in run {
        if let NotificationEvent::Created(e) = e {
            ids.push(e.notification_id);
            users.push(e.user_id);
            kinds.push(e.kind.as_str());
            actors.push(e.actor_id);
            nicks.push(e.actor_nickname.as_str());
            posts.push(e.post_id);
            comments.push(e.comment_id);
            messages.push(e.message_id);
            times.push(forum_store::log::to_time(e.created_at_us));
            positions.push(*position);
        }
    }
    sqlx::query(&format!(
        "insert into {schema}.notifications (id, user_id, kind, actor_id, actor_nickname, post_id,
                                             comment_id, message_id, created_at, position)
         select * from unnest($1::uuid[], $2::uuid[], $3::text[], $4::uuid[], $5::text[],
                              $6::uuid[], $7::uuid[], $8::uuid[], $9::timestamptz[], $10::bigint[])
         on conflict (id) do nothing"
    ))
    .bind(&ids)
    .bind(&users)
    .bind(&kinds)
    .bind(&actors)
    .bind(&nicks)
    .bind(&posts)
    .bind(&comments)
    .bind(&messages)
    .bind(&times)
    .bind(&positions)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The batch's `notifications_read` events: one update over every (user,
/// id) named.
async fn read(tx: &mut PgConnection, schema: &str, run: &[(i64, NotificationEvent)]) -> Result<()> {
    let (mut users, mut ids): (Vec<Uuid>, Vec<Uuid>) = (Vec::new(), Vec::new());
    for (_, e) in run {
        if let NotificationEvent::Read(e) = e {
            for id in &e.ids {
                users.push(e.user_id);
                ids.push(*id);
            }
        }
    }
    sqlx::query(&format!(
        "update {schema}.notifications n set read = true
         from unnest($1::uuid[], $2::uuid[]) as k(user_id, id)
         where n.id = k.id and n.user_id = k.user_id and not n.read"
    ))
    .bind(&users)
    .bind(&ids)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The batch's `all_notifications_read` events: one update reading, for
/// each user, their notifications created before their last such event.
async fn all_read(
    tx: &mut PgConnection,
    schema: &str,
    run: &[(i64, NotificationEvent)],
) -> Result<()> {
    let (mut users, mut befores): (Vec<Uuid>, Vec<i64>) = (Vec::new(), Vec::new());
    for (position, e) in run {
        if let NotificationEvent::AllRead(e) = e {
            users.push(e.user_id);
            befores.push(*position);
        }
    }
    sqlx::query(&format!(
        "update {schema}.notifications n set read = true
         from (select user_id, max(before) as before
               from unnest($1::uuid[], $2::bigint[]) as k(user_id, before) group by user_id) k
         where n.user_id = k.user_id and n.position < k.before and not n.read"
    ))
    .bind(&users)
    .bind(&befores)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

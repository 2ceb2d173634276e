//! The notifications domain: notifications derived from the other
//! services' events, and the commands that mark them read.
//!
//! # Layout
//! - [`derive`]: which notification an event of the posts or chat log
//!   causes (pure, with given/when/then tests).
//! - [`decide`]: the inbox state, the pure decisions (create once per id,
//!   mark read, mark all read) and their tests.
//! - [`deriver`]: the task that follows the event stream on JetStream and
//!   appends what [`derive`] finds to the notifications log, exactly once
//!   per cause and recipient, one instance at a time.
//! - this file: the wire commands, the [`Domain`] glue, and the loading and
//!   writing of the write model shared by the commands and the deriver.

pub mod decide;
pub mod derive;
pub mod deriver;

use std::collections::HashSet;

use forum_events::notifications::{NotificationCreated, NotificationEvent};
use forum_events::{NewEvent, Service};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use crate::runtime::{Context, Domain, Outcome};
use crate::wire::Rejection;
use crate::Result;
use decide::World;

/// The most ids one `mark_read` names.
pub const MAX_IDS: usize = 1_000;

/// Mark some of one's notifications read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MarkRead {
    /// The notifications (unknown and foreign ids are ignored).
    pub ids: Vec<Uuid>,
}

/// Every command of the notifications service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum NotificationsCommand {
    /// See [`MarkRead`].
    MarkRead(MarkRead),
    /// Mark every notification of the actor read.
    MarkAllRead,
}

impl NotificationsCommand {
    /// The last token of the command's subject.
    pub fn name(&self) -> &'static str {
        match self {
            NotificationsCommand::MarkRead(_) => "mark_read",
            NotificationsCommand::MarkAllRead => "mark_all_read",
        }
    }
}

/// What an accepted notifications command answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum NotificationsData {
    /// Done (possibly without any change).
    Done,
}

/// A command after preparation.
pub struct Prepared {
    actor: Uuid,
    at_us: i64,
    command: NotificationsCommand,
}

/// The notifications service (its commands; the deriver runs beside it).
#[derive(Debug, Clone, Copy, Default)]
pub struct Notifications;

impl Domain for Notifications {
    const SERVICE: Service = Service::Notifications;
    type Command = NotificationsCommand;
    type Prepared = Prepared;
    type Data = NotificationsData;

    async fn prepare(
        &self,
        ctx: &Context,
        command: NotificationsCommand,
    ) -> std::result::Result<Prepared, Rejection> {
        let actor = ctx.actor.ok_or(Rejection::Unauthorized)?;
        if let NotificationsCommand::MarkRead(m) = &command {
            if m.ids.len() > MAX_IDS {
                return Err(Rejection::Validation(vec![(
                    "ids".into(),
                    format!("at most {MAX_IDS} ids"),
                )]));
            }
        }
        Ok(Prepared {
            actor,
            at_us: chrono::Utc::now().timestamp_micros(),
            command,
        })
    }

    async fn execute(
        &self,
        tx: &mut PgConnection,
        batch: &[(Context, Prepared)],
    ) -> Result<Vec<Outcome<NotificationsData>>> {
        let users: Vec<Uuid> = batch.iter().map(|(_, p)| p.actor).collect();
        let named: Vec<Uuid> = batch
            .iter()
            .flat_map(|(_, p)| match &p.command {
                NotificationsCommand::MarkRead(m) => m.ids.clone(),
                NotificationsCommand::MarkAllRead => Vec::new(),
            })
            .collect();
        let mut world = load(tx, &users, &named, &[]).await?;
        let mut changes = Changes::default();
        let mut outcomes = Vec::with_capacity(batch.len());
        for (_, p) in batch {
            let events = match &p.command {
                NotificationsCommand::MarkRead(m) => {
                    decide::mark_read(&world, p.actor, &m.ids, p.at_us)
                }
                NotificationsCommand::MarkAllRead => {
                    decide::mark_all_read(&world, p.actor, p.at_us)
                }
            };
            let stored = events
                .iter()
                .map(|event| changes.record(&mut world, event))
                .collect();
            outcomes.push(Ok((stored, NotificationsData::Done)));
        }
        write(tx, &world, &changes).await?;
        Ok(outcomes)
    }
}

/// What a batch changed, to be written back.
#[derive(Debug, Default)]
pub(crate) struct Changes {
    users: HashSet<Uuid>,
    created: Vec<NotificationCreated>,
    read: Vec<Uuid>,
    all_read: Vec<Uuid>,
}

impl Changes {
    /// Folds `event` into `world`, remembers the change, and wraps the
    /// event for the user's stream at its new version.
    pub(crate) fn record(&mut self, world: &mut World, event: &NotificationEvent) -> NewEvent {
        decide::apply(world, event);
        let user = event.user_id();
        self.users.insert(user);
        match event {
            NotificationEvent::Created(e) => self.created.push(e.clone()),
            NotificationEvent::Read(e) => self.read.extend(&e.ids),
            NotificationEvent::AllRead(e) => self.all_read.push(e.user_id),
        }
        NewEvent::new(user, world.version(user), Uuid::now_v7(), event)
    }
}

/// Loads the inboxes of `users`, the unread notifications among `named`
/// (into their owners' inboxes), and which of `candidates` exist.
pub(crate) async fn load(
    tx: &mut PgConnection,
    users: &[Uuid],
    named: &[Uuid],
    candidates: &[Uuid],
) -> Result<World> {
    let mut world = World::default();
    if !users.is_empty() {
        let rows = sqlx::query(
            "select user_id, version, unread from notifications.inboxes where user_id = any($1)",
        )
        .bind(users)
        .fetch_all(&mut *tx)
        .await?;
        for r in rows {
            let inbox = world.inboxes.entry(r.try_get("user_id")?).or_default();
            inbox.version = r.try_get::<i32, _>("version")? as u32;
            inbox.unread_count = r.try_get::<i32, _>("unread")?.max(0) as u32;
        }
    }
    if !named.is_empty() {
        let rows = sqlx::query(
            "select notification_id, user_id from notifications.notifications
             where notification_id = any($1) and not read",
        )
        .bind(named)
        .fetch_all(&mut *tx)
        .await?;
        for r in rows {
            world
                .inboxes
                .entry(r.try_get("user_id")?)
                .or_default()
                .unread
                .insert(r.try_get("notification_id")?);
        }
    }
    if !candidates.is_empty() {
        let known: Vec<Uuid> = sqlx::query_scalar(
            "select notification_id from notifications.notifications
             where notification_id = any($1)",
        )
        .bind(candidates)
        .fetch_all(&mut *tx)
        .await?;
        world.known.extend(known);
    }
    Ok(world)
}

/// Writes what a batch changed, in its append transaction.
pub(crate) async fn write(tx: &mut PgConnection, world: &World, changes: &Changes) -> Result<()> {
    if !changes.created.is_empty() {
        let ids: Vec<Uuid> = changes.created.iter().map(|n| n.notification_id).collect();
        let users: Vec<Uuid> = changes.created.iter().map(|n| n.user_id).collect();
        sqlx::query(
            "insert into notifications.notifications (notification_id, user_id)
             select * from unnest($1::uuid[], $2::uuid[])",
        )
        .bind(&ids)
        .bind(&users)
        .execute(&mut *tx)
        .await?;
    }
    if !changes.read.is_empty() {
        sqlx::query(
            "update notifications.notifications set read = true
             where notification_id = any($1) and not read",
        )
        .bind(&changes.read)
        .execute(&mut *tx)
        .await?;
    }
    if !changes.all_read.is_empty() {
        sqlx::query(
            "update notifications.notifications set read = true
             where user_id = any($1) and not read",
        )
        .bind(&changes.all_read)
        .execute(&mut *tx)
        .await?;
    }
    if !changes.users.is_empty() {
        let (mut users, mut versions, mut unread) = (Vec::new(), Vec::new(), Vec::new());
        for user in &changes.users {
            if let Some(inbox) = world.inboxes.get(user) {
                users.push(*user);
                versions.push(inbox.version as i32);
                unread.push(inbox.unread_count as i32);
            }
        }
        sqlx::query(
            "insert into notifications.inboxes (user_id, version, unread)
             select * from unnest($1::uuid[], $2::int[], $3::int[])
             on conflict (user_id) do update set version = excluded.version, unread = excluded.unread",
        )
        .bind(&users)
        .bind(&versions)
        .bind(&unread)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

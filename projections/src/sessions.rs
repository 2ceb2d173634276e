//! `read.sessions`: which sessions are open. Gateways check every
//! authenticated request against it, so a logout on one gateway is seen by
//! all of them at once.

use forum_events::auth::AuthEvent;
use forum_events::{RecordedEvent, Service};
use futures::future::BoxFuture;
use sqlx::PgConnection;

use crate::{Error, Projection, Result};

/// The sessions read model.
pub struct Sessions;

impl Projection for Sessions {
    fn name(&self) -> &'static str {
        "sessions"
    }

    fn version(&self) -> u32 {
        1
    }

    fn sources(&self) -> &'static [Service] {
        &[Service::Auth]
    }

    fn tables(&self) -> &'static [&'static str] {
        &["sessions"]
    }

    fn create_sql(&self, schema: &str) -> String {
        format!(
            "create table if not exists {schema}.sessions (
                id         uuid        primary key,
                user_id    uuid        not null,
                expires_at timestamptz not null,
                revoked_at timestamptz,
                position   bigint      not null
            );
            create index if not exists sessions_user on {schema}.sessions (user_id);"
        )
    }

    fn apply<'a>(
        &'a self,
        tx: &'a mut PgConnection,
        schema: &'a str,
        events: &'a [RecordedEvent],
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let (mut ids, mut users, mut expiries, mut positions) =
                (vec![], vec![], vec![], vec![]);
            let (mut revoked, mut revoked_at) = (vec![], vec![]);
            for event in events {
                match event
                    .decode::<AuthEvent>()
                    .map_err(|e| Error::poison(event, e))?
                {
                    AuthEvent::SessionStarted(s) => {
                        ids.push(s.session_id);
                        users.push(s.user_id);
                        expiries.push(forum_store::log::to_time(s.expires_at_us));
                        positions.push(event.position as i64);
                    }
                    AuthEvent::SessionRevoked(s) => {
                        revoked.push(s.session_id);
                        revoked_at.push(forum_store::log::to_time(event.metadata.recorded_at_us));
                    }
                    AuthEvent::UserRegistered(_) => {}
                }
            }
            if !ids.is_empty() {
                sqlx::query(&format!(
                    "insert into {schema}.sessions (id, user_id, expires_at, position)
                     select * from unnest($1::uuid[], $2::uuid[], $3::timestamptz[], $4::bigint[])
                     on conflict (id) do nothing"
                ))
                .bind(&ids)
                .bind(&users)
                .bind(&expiries)
                .bind(&positions)
                .execute(&mut *tx)
                .await?;
            }
            if !revoked.is_empty() {
                sqlx::query(&format!(
                    "update {schema}.sessions s set revoked_at = r.at
                     from unnest($1::uuid[], $2::timestamptz[]) as r(id, at)
                     where s.id = r.id and s.revoked_at is null"
                ))
                .bind(&revoked)
                .bind(&revoked_at)
                .execute(&mut *tx)
                .await?;
            }
            Ok(())
        })
    }

    fn stream_rows(&self) -> Option<(&'static str, &'static str)> {
        // A session's stream is the session.
        Some(("sessions", "id"))
    }
}

//! `read.users`: the public profile (and e-mail, for `Me`) of every account.

use forum_events::auth::AuthEvent;
use forum_events::{RecordedEvent, Service};
use futures::future::BoxFuture;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{Error, Projection, Result};

/// The users read model.
pub struct Users;

impl Projection for Users {
    fn name(&self) -> &'static str {
        "users"
    }

    fn version(&self) -> u32 {
        1
    }

    fn sources(&self) -> &'static [Service] {
        &[Service::Auth]
    }

    fn tables(&self) -> &'static [&'static str] {
        &["users"]
    }

    fn create_sql(&self, schema: &str) -> String {
        format!(
            "create table if not exists {schema}.users (
                id           uuid        primary key,
                nickname     text        not null,
                nickname_key text        not null,
                email        text        not null,
                first_name   text        not null,
                last_name    text        not null,
                age          smallint    not null,
                gender       text        not null,
                created_at   timestamptz not null,
                position     bigint      not null
            );
            create index if not exists users_nickname_key on {schema}.users (nickname_key);"
        )
    }

    fn apply<'a>(
        &'a self,
        tx: &'a mut PgConnection,
        schema: &'a str,
        events: &'a [RecordedEvent],
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let mut rows = Rows::default();
            for event in events {
                match event
                    .decode::<AuthEvent>()
                    .map_err(|e| Error::poison(event, e))?
                {
                    AuthEvent::UserRegistered(u) => {
                        rows.ids.push(u.user_id);
                        rows.nickname_keys.push(u.nickname.to_lowercase());
                        rows.nicknames.push(u.nickname);
                        rows.emails.push(u.email);
                        rows.first_names.push(u.first_name);
                        rows.last_names.push(u.last_name);
                        rows.ages.push(u.age as i16);
                        rows.genders.push(u.gender.as_str());
                        rows.created
                            .push(forum_store::log::to_time(u.registered_at_us));
                        rows.positions.push(event.position as i64);
                    }
                    AuthEvent::SessionStarted(_) | AuthEvent::SessionRevoked(_) => {}
                }
            }
            if rows.ids.is_empty() {
                return Ok(());
            }
            sqlx::query(&format!(
                "insert into {schema}.users (id, nickname, nickname_key, email, first_name, last_name,
                                             age, gender, created_at, position)
                 select * from unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[],
                                      $6::text[], $7::smallint[], $8::text[], $9::timestamptz[],
                                      $10::bigint[])
                 on conflict (id) do nothing"
            ))
            .bind(&rows.ids)
            .bind(&rows.nicknames)
            .bind(&rows.nickname_keys)
            .bind(&rows.emails)
            .bind(&rows.first_names)
            .bind(&rows.last_names)
            .bind(&rows.ages)
            .bind(&rows.genders)
            .bind(&rows.created)
            .bind(&rows.positions)
            .execute(&mut *tx)
            .await?;
            Ok(())
        })
    }

    fn stream_rows(&self) -> Option<(&'static str, &'static str)> {
        // A user's stream is the user.
        Some(("users", "id"))
    }
}

#[derive(Default)]
struct Rows {
    ids: Vec<Uuid>,
    nicknames: Vec<String>,
    nickname_keys: Vec<String>,
    emails: Vec<String>,
    first_names: Vec<String>,
    last_names: Vec<String>,
    ages: Vec<i16>,
    genders: Vec<&'static str>,
    created: Vec<chrono::DateTime<chrono::Utc>>,
    positions: Vec<i64>,
}

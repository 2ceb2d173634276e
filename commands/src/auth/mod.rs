//! The accounts domain: registration, login, logout.
//!
//! # Layout
//! - [`validate`]: newtypes that parse API input once, at the edge.
//! - [`decide`]: the pure decisions and their given/when/then tests.
//! - [`password`]: argon2id hashing on threads of its own, behind a
//!   bounded queue with deadlines (admission control).
//! - this file: the wire commands and the [`Domain`] glue (loading state in
//!   the append transaction, writing the write model), and the login
//!   throttle.
//!
//! # Login throttle
//! Failed logins are counted per account in `auth.login_throttle` (this
//! service's own Postgres state, so every gateway and every instance counts
//! the same). After [`decide::FREE_FAILURES`] failures in a row, each
//! failure refuses the account's logins for a doubling delay (1 s, 2 s, 4 s
//! … capped at [`decide::MAX_DELAY_SECS`]); during it a login is answered
//! `429 rate_limited` with `Retry-After` at once, **without hashing** (the
//! choice that keeps the CPU low under a brute-force flood: one hash per
//! delay at most), and is not counted. A success resets the count. Nobody
//! can lock the owner out for more than a minute at a time: after each
//! delay one attempt is hashed again. A login no account holds is counted
//! under a UUIDv5 of the lower-cased login, so unknown and known accounts
//! answer alike (same hash, same 401, same 429); the rows stay bounded (see
//! migration 0008).

pub mod decide;
pub mod password;
pub mod validate;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use forum_events::auth::{AuthEvent, Gender};
use forum_events::{NewEvent, Service};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use crate::error::{sqlx_class, Class};
use crate::runtime::{Context, Domain, Outcome};
use crate::wire::Rejection;
use crate::Result;
use decide::{AccountState, NewAccount, SessionState};
use password::{HashError, Hasher, Refused};

/// The namespace of the throttle keys of logins no account holds.
const UNKNOWN_LOGIN: Uuid = Uuid::from_u128(0x6c6f_6769_6e2d_7468_726f_7474_6c65_0001);

/// Create an account (and a first session).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Register {
    /// Validated nickname.
    pub nickname: String,
    /// Validated e-mail address.
    pub email: String,
    /// The password in clear; hashed by the service.
    pub password: String,
    /// Trimmed first name.
    pub first_name: String,
    /// Trimmed last name.
    pub last_name: String,
    /// Age, 13–130.
    pub age: u8,
    /// Gender.
    pub gender: Gender,
}

/// Open a session with a nickname or e-mail and a password.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Login {
    /// Nickname or e-mail, any case.
    pub login: String,
    /// The password in clear.
    pub password: String,
}

/// End the actor's session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Logout {
    /// The session to end.
    pub session_id: Uuid,
}

/// Every command of the accounts service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AuthCommand {
    /// See [`Register`].
    Register(Register),
    /// See [`Login`].
    Login(Login),
    /// See [`Logout`].
    Logout(Logout),
}

impl AuthCommand {
    /// The last token of the command's subject.
    pub fn name(&self) -> &'static str {
        match self {
            AuthCommand::Register(_) => "register",
            AuthCommand::Login(_) => "login",
            AuthCommand::Logout(_) => "logout",
        }
    }
}

/// What an accepted accounts command answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AuthData {
    /// A new account and its first session.
    Registered {
        /// The new user.
        user_id: Uuid,
        /// The session for the token.
        session_id: Uuid,
        /// Session expiry, µs since the epoch.
        expires_at_us: i64,
        /// Registration time, µs since the epoch.
        registered_at_us: i64,
    },
    /// A new session.
    LoggedIn {
        /// Whose.
        user_id: Uuid,
        /// The session for the token.
        session_id: Uuid,
        /// Session expiry, µs since the epoch.
        expires_at_us: i64,
        /// Session start, µs since the epoch (the token's issue time).
        started_at_us: i64,
    },
    /// The session ended.
    LoggedOut,
}

/// A command after preparation.
pub enum Prepared {
    /// Registration with the password hashed and ids chosen.
    Register(NewAccount),
    /// Login with the password verified.
    Login {
        /// The account.
        user_id: Uuid,
        /// The new session id.
        session_id: Uuid,
        /// Its start, µs.
        started_at_us: i64,
        /// Its expiry, µs.
        expires_at_us: i64,
    },
    /// Logout.
    Logout {
        /// The session to end.
        session_id: Uuid,
    },
}

/// The accounts service.
pub struct Auth {
    pool: PgPool,
    hasher: Hasher,
    session_ttl: Duration,
}

impl Auth {
    /// A service using `pool` for look-ups, issuing sessions valid for
    /// `session_ttl`.
    pub fn new(pool: PgPool, session_ttl: Duration) -> Self {
        Auth {
            pool,
            hasher: Hasher::new(),
            session_ttl,
        }
    }

    /// The same service with at most `queue` password hashes waiting for a
    /// thread (`FORUM_HASH_QUEUE`); more are refused at once (503).
    pub fn with_hash_queue(self, queue: usize) -> Self {
        Auth {
            hasher: Hasher::with_queue(queue),
            ..self
        }
    }

    /// Checks a login: refused during the account's delay without hashing;
    /// otherwise the password is verified and the outcome counted.
    async fn login(
        &self,
        deadline: Option<Instant>,
        l: Login,
    ) -> std::result::Result<Prepared, Rejection> {
        let key = l.login.to_lowercase();
        let unknown_key = Uuid::new_v5(&UNKNOWN_LOGIN, key.as_bytes());
        let row = sqlx::query(
            "with account as (
                 select user_id, password_hash from auth.accounts
                 where nickname_key = $1 or email_key = $1 limit 1)
             select a.user_id, a.password_hash, t.failures,
                    extract(epoch from (t.blocked_until - now()))::float8 as wait_secs
             from (select 1) one
             left join account a on true
             left join auth.login_throttle t on t.key = coalesce(a.user_id, $2)",
        )
        .bind(&key)
        .bind(unknown_key)
        .fetch_optional(&self.pool)
        .await
        .or_else(|e| match sqlx_class(&e) {
            // A login no account can hold (U+0000): unknown.
            Class::Unstorable => Ok(None),
            class => {
                tracing::error!(error = %e, "login look-up failed");
                Err(unavailable_or_internal(class))
            }
        })?;
        let (user_id, hash, tracked, wait) = match &row {
            Some(r) => (
                r.try_get::<Option<Uuid>, _>("user_id").ok().flatten(),
                r.try_get::<Option<String>, _>("password_hash")
                    .ok()
                    .flatten(),
                r.try_get::<Option<i32>, _>("failures")
                    .ok()
                    .flatten()
                    .is_some(),
                r.try_get::<Option<f64>, _>("wait_secs").ok().flatten(),
            ),
            None => (None, None, false, None),
        };
        decide::login_admitted(wait)?;
        let throttle_key = user_id.unwrap_or(unknown_key);
        // Unknown users are verified against a dummy hash, so both
        // failures cost the same.
        let ok = self
            .hasher
            .verify(l.password, hash, deadline)
            .await
            .map_err(refused)?;
        match (ok, user_id) {
            (true, Some(user_id)) => {
                if tracked {
                    self.forget_failures(user_id).await?;
                }
                let now = now_us();
                Ok(Prepared::Login {
                    user_id,
                    session_id: Uuid::new_v4(),
                    started_at_us: now,
                    expires_at_us: self.expiry(now),
                })
            }
            _ => {
                self.count_failure(throttle_key).await?;
                Err(Rejection::InvalidCredentials)
            }
        }
    }

    /// Counts one more failed login of `key` and starts its delay when it
    /// has failed too often; forgets a few keys quiet for 15 minutes.
    async fn count_failure(&self, key: Uuid) -> std::result::Result<(), Rejection> {
        let failures: i32 = sqlx::query_scalar(
            "with pruned as (
                 delete from auth.login_throttle where key in (
                     select key from auth.login_throttle
                     where last_failure < now() - interval '15 minutes' and key <> $1
                     limit 16))
             insert into auth.login_throttle as t (key, failures, last_failure)
             values ($1, 1, now())
             on conflict (key) do update
                 set failures = least(t.failures, 1000000) + 1, last_failure = now()
             returning failures",
        )
        .bind(key)
        .fetch_one(&self.pool)
        .await
        .map_err(throttle_failed)?;
        if let Some(secs) = decide::login_delay_secs(failures.max(0) as u32) {
            sqlx::query(
                "update auth.login_throttle
                 set blocked_until = greatest(blocked_until, now() + make_interval(secs => $2))
                 where key = $1",
            )
            .bind(key)
            .bind(f64::from(secs))
            .execute(&self.pool)
            .await
            .map_err(throttle_failed)?;
        }
        Ok(())
    }

    /// A successful login: the account's failures are forgotten.
    async fn forget_failures(&self, user_id: Uuid) -> std::result::Result<(), Rejection> {
        sqlx::query("delete from auth.login_throttle where key = $1")
            .bind(user_id)
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(throttle_failed)
    }

    fn expiry(&self, now_us: i64) -> i64 {
        now_us + self.session_ttl.as_micros() as i64
    }
}

fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// A job the hashing queue refused: overloaded, try again (503).
fn refused(r: Refused) -> Rejection {
    match r {
        Refused::Busy | Refused::Expired => Rejection::Unavailable,
        Refused::NoWorker => Rejection::Internal,
    }
}

fn unavailable_or_internal(class: Class) -> Rejection {
    match class {
        Class::Transient => Rejection::Unavailable,
        _ => Rejection::Internal,
    }
}

/// The throttle could not be read or written: the login is refused rather
/// than let through uncounted.
fn throttle_failed(e: sqlx::Error) -> Rejection {
    tracing::error!(error = %e, "login throttle not updated");
    unavailable_or_internal(sqlx_class(&e))
}

impl Domain for Auth {
    const SERVICE: Service = Service::Auth;
    type Command = AuthCommand;
    type Prepared = Prepared;
    type Data = AuthData;

    async fn prepare(
        &self,
        ctx: &Context,
        command: AuthCommand,
    ) -> std::result::Result<Prepared, Rejection> {
        match command {
            AuthCommand::Register(r) => {
                let password_hash = match self.hasher.hash(r.password, ctx.deadline).await {
                    Ok(h) => h,
                    Err(HashError::Refused(r)) => return Err(refused(r)),
                    Err(HashError::Failed(e)) => {
                        tracing::error!(error = %e, "password hashing failed");
                        return Err(Rejection::Internal);
                    }
                };
                let now = now_us();
                Ok(Prepared::Register(NewAccount {
                    user_id: Uuid::now_v7(),
                    session_id: Uuid::new_v4(),
                    nickname: r.nickname,
                    email: r.email,
                    password_hash,
                    first_name: r.first_name,
                    last_name: r.last_name,
                    age: r.age,
                    gender: r.gender,
                    registered_at_us: now,
                    expires_at_us: self.expiry(now),
                }))
            }
            AuthCommand::Login(l) => self.login(ctx.deadline, l).await,
            AuthCommand::Logout(l) => Ok(Prepared::Logout {
                session_id: l.session_id,
            }),
        }
    }

    async fn execute(
        &self,
        tx: &mut PgConnection,
        batch: &[(Context, Prepared)],
    ) -> Result<Vec<Outcome<AuthData>>> {
        // Load, in one query each, the state every command of the batch needs.
        let mut nick_keys = Vec::new();
        let mut email_keys = Vec::new();
        let mut session_ids = Vec::new();
        for (_, p) in batch {
            match p {
                Prepared::Register(a) => {
                    nick_keys.push(a.nickname.to_lowercase());
                    email_keys.push(a.email.to_lowercase());
                }
                Prepared::Logout { session_id } => session_ids.push(*session_id),
                Prepared::Login { .. } => {}
            }
        }
        let mut taken_nicks = HashSet::new();
        let mut taken_emails = HashSet::new();
        if !nick_keys.is_empty() {
            let rows = sqlx::query(
                "select nickname_key, email_key from auth.accounts
                 where nickname_key = any($1) or email_key = any($2)",
            )
            .bind(&nick_keys)
            .bind(&email_keys)
            .fetch_all(&mut *tx)
            .await?;
            for r in rows {
                taken_nicks.insert(r.try_get::<String, _>("nickname_key")?);
                taken_emails.insert(r.try_get::<String, _>("email_key")?);
            }
        }
        let mut sessions = std::collections::HashMap::new();
        if !session_ids.is_empty() {
            let rows = sqlx::query(
                "select session_id, user_id, revoked from auth.sessions where session_id = any($1)",
            )
            .bind(&session_ids)
            .fetch_all(&mut *tx)
            .await?;
            for r in rows {
                sessions.insert(
                    r.try_get::<Uuid, _>("session_id")?,
                    SessionState {
                        user_id: r.try_get("user_id")?,
                        revoked: r.try_get("revoked")?,
                    },
                );
            }
        }

        // Decide in order; each accepted command updates the in-memory state
        // the next ones see.
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut accepted = Vec::new();
        for (ctx, p) in batch {
            let decided = match p {
                Prepared::Register(a) => {
                    let nick = a.nickname.to_lowercase();
                    let email = a.email.to_lowercase();
                    let state = AccountState {
                        nickname_taken: taken_nicks.contains(&nick),
                        email_taken: taken_emails.contains(&email),
                    };
                    decide::register(&state, a).map(|events| {
                        taken_nicks.insert(nick);
                        taken_emails.insert(email);
                        let data = AuthData::Registered {
                            user_id: a.user_id,
                            session_id: a.session_id,
                            expires_at_us: a.expires_at_us,
                            registered_at_us: a.registered_at_us,
                        };
                        (events, data)
                    })
                }
                Prepared::Login {
                    user_id,
                    session_id,
                    started_at_us,
                    expires_at_us,
                } => Ok((
                    decide::login(*user_id, *session_id, *expires_at_us),
                    AuthData::LoggedIn {
                        user_id: *user_id,
                        session_id: *session_id,
                        started_at_us: *started_at_us,
                        expires_at_us: *expires_at_us,
                    },
                )),
                Prepared::Logout { session_id } => {
                    let state = sessions.get(session_id).cloned();
                    decide::logout(state.as_ref(), ctx.actor, *session_id).map(|events| {
                        if let Some(s) = sessions.get_mut(session_id) {
                            s.revoked = true;
                        }
                        (events, AuthData::LoggedOut)
                    })
                }
            };
            outcomes.push(decided.map(|(events, data)| {
                accepted.extend(events.iter().cloned());
                (events.iter().map(to_new_event).collect(), data)
            }));
        }
        write_model(tx, &accepted).await?;
        Ok(outcomes)
    }

    fn unstorable(&self, prepared: &Prepared) -> Rejection {
        match prepared {
            Prepared::Register(a) => Rejection::unstorable([
                ("nickname", a.nickname.as_str()),
                ("email", &a.email),
                ("first_name", &a.first_name),
                ("last_name", &a.last_name),
            ]),
            Prepared::Login { .. } | Prepared::Logout { .. } => Rejection::unstorable([]),
        }
    }
}

/// The stream and version an auth event is stored under.
fn to_new_event(event: &AuthEvent) -> NewEvent {
    let (stream, version) = match event {
        AuthEvent::UserRegistered(e) => (e.user_id, 1),
        AuthEvent::SessionStarted(e) => (e.session_id, 1),
        AuthEvent::SessionRevoked(e) => (e.session_id, 2),
    };
    NewEvent::new(stream, version, Uuid::now_v7(), event)
}

/// Keeps `auth.accounts` and `auth.sessions` in step with the events, in
/// the append transaction.
async fn write_model(tx: &mut PgConnection, events: &[AuthEvent]) -> Result<()> {
    for event in events {
        match event {
            AuthEvent::UserRegistered(e) => {
                sqlx::query(
                    "insert into auth.accounts (user_id, nickname_key, email_key, password_hash, version)
                     values ($1, $2, $3, $4, 1)",
                )
                .bind(e.user_id)
                .bind(e.nickname.to_lowercase())
                .bind(e.email.to_lowercase())
                .bind(&e.password_hash)
                .execute(&mut *tx)
                .await?;
            }
            AuthEvent::SessionStarted(e) => {
                sqlx::query(
                    "insert into auth.sessions (session_id, user_id, expires_at) values ($1, $2, $3)",
                )
                .bind(e.session_id)
                .bind(e.user_id)
                .bind(forum_store::log::to_time(e.expires_at_us))
                .execute(&mut *tx)
                .await?;
            }
            AuthEvent::SessionRevoked(e) => {
                sqlx::query("update auth.sessions set revoked = true where session_id = $1")
                    .bind(e.session_id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::testing::{ctx, log_of, rejection, TestDb};
    use crate::runtime::{run_batch, Options};
    use crate::wire::UNSTORABLE_TEXT;

    fn register(nickname: &str) -> (Context, Prepared) {
        let now = now_us();
        (
            ctx(Uuid::nil()),
            Prepared::Register(NewAccount {
                user_id: Uuid::now_v7(),
                session_id: Uuid::new_v4(),
                nickname: nickname.into(),
                email: format!("{}@example.org", nickname.replace('\0', "")),
                password_hash: "$argon2id$not-a-real-hash".into(),
                first_name: "Test".into(),
                last_name: "User".into(),
                age: 30,
                gender: Gender::Unspecified,
                registered_at_us: now,
                expires_at_us: now + 1_000_000,
            }),
        )
    }

    #[tokio::test]
    async fn a_registration_whose_nickname_cannot_be_stored_is_refused_and_the_others_register() {
        let db = TestDb::new().await;
        let auth = Auth::new(db.pool.clone(), Duration::from_secs(60));
        let batch = vec![register("ada"), register("b\0b"), register("cyd")];
        let replies = run_batch(&auth, &db.pool, batch, &Options::default()).await;
        let refused: Vec<Option<&Rejection>> = replies.iter().map(rejection).collect();
        let nickname = Rejection::Validation(vec![("nickname".into(), UNSTORABLE_TEXT.into())]);
        assert_eq!(refused, [None, Some(&nickname), None], "{replies:?}");
        // Two events each (account, first session).
        assert_eq!(log_of(&db.pool, Service::Auth).await.len(), 4);
        let mut keys: Vec<String> = sqlx::query_scalar("select nickname_key from auth.accounts")
            .fetch_all(&db.pool)
            .await
            .expect("accounts");
        keys.sort();
        assert_eq!(keys, ["ada", "cyd"]);
    }

    fn login(login: &str, password: &str) -> AuthCommand {
        AuthCommand::Login(Login {
            login: login.into(),
            password: password.into(),
        })
    }

    #[tokio::test]
    async fn after_five_failures_logins_are_refused_without_hashing_until_the_delay_ends() {
        let db = TestDb::new().await;
        let auth = Auth::new(db.pool.clone(), Duration::from_secs(60));
        let hash = auth
            .hasher
            .hash("right password".into(), None)
            .await
            .expect("hash");
        let (c, Prepared::Register(mut account)) = register("ada") else {
            unreachable!()
        };
        account.password_hash = hash;
        let replies = run_batch(
            &auth,
            &db.pool,
            vec![(c, Prepared::Register(account))],
            &Options::default(),
        )
        .await;
        assert!(rejection(&replies[0]).is_none(), "{replies:?}");
        let ctx = ctx(Uuid::nil());
        // A known account (by nickname, then by e-mail: one count) and an
        // unknown login are treated alike.
        for who in ["ada", "nobody"] {
            for i in 0..decide::FREE_FAILURES {
                let l = if who == "ada" && i % 2 == 1 {
                    "ADA@example.org"
                } else {
                    who
                };
                let r = auth.prepare(&ctx, login(l, "wrong password")).await;
                assert_eq!(r.err(), Some(Rejection::InvalidCredentials), "{who} #{i}");
            }
            // The fifth failure started a delay of 1 s: even the right
            // password is refused now, without being hashed.
            let started = Instant::now();
            let r = auth.prepare(&ctx, login(who, "right password")).await;
            assert_eq!(
                r.err(),
                Some(Rejection::RateLimited {
                    retry_after_secs: 1
                }),
                "{who}"
            );
            assert!(started.elapsed() < Duration::from_millis(500));
        }
        let rows: i64 = sqlx::query_scalar("select count(*) from auth.login_throttle")
            .fetch_one(&db.pool)
            .await
            .expect("count");
        assert_eq!(rows, 2);
        // Once the delay is over, the owner logs in and the count is reset.
        sqlx::query("update auth.login_throttle set blocked_until = now() - interval '1 second'")
            .execute(&db.pool)
            .await
            .expect("end the delay");
        let r = auth.prepare(&ctx, login("ada", "right password")).await;
        assert!(matches!(r, Ok(Prepared::Login { .. })));
        let failures: Vec<i32> = sqlx::query_scalar("select failures from auth.login_throttle")
            .fetch_all(&db.pool)
            .await
            .expect("rows");
        assert_eq!(
            failures,
            [decide::FREE_FAILURES as i32],
            "only nobody's left"
        );
        // The next failure of the unknown login doubles its delay.
        let r = auth.prepare(&ctx, login("nobody", "again")).await;
        assert_eq!(r.err(), Some(Rejection::InvalidCredentials));
        let r = auth.prepare(&ctx, login("nobody", "again")).await;
        assert_eq!(
            r.err(),
            Some(Rejection::RateLimited {
                retry_after_secs: 2
            })
        );
    }

    #[tokio::test]
    async fn a_login_no_account_can_hold_is_invalid_credentials_not_internal() {
        let db = TestDb::new().await;
        let auth = Auth::new(db.pool.clone(), Duration::from_secs(60));
        let login = AuthCommand::Login(Login {
            login: "a\0b".into(),
            password: "password".into(),
        });
        let prepared = auth.prepare(&ctx(Uuid::nil()), login).await;
        assert_eq!(prepared.err(), Some(Rejection::InvalidCredentials));
    }
}

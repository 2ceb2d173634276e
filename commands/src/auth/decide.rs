//! The accounts decisions: pure functions of state and command.

use forum_events::auth::{AuthEvent, Gender, SessionRevoked, SessionStarted, UserRegistered};
use uuid::Uuid;

use crate::wire::Rejection;

/// A registration after preparation: ids chosen, password hashed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAccount {
    /// The new user's id.
    pub user_id: Uuid,
    /// The first session's id.
    pub session_id: Uuid,
    /// Nickname as registered.
    pub nickname: String,
    /// E-mail as given.
    pub email: String,
    /// argon2id PHC string.
    pub password_hash: String,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// Age.
    pub age: u8,
    /// Gender.
    pub gender: Gender,
    /// µs since the epoch.
    pub registered_at_us: i64,
    /// µs since the epoch.
    pub expires_at_us: i64,
}

/// What registration needs to know.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AccountState {
    /// Someone holds this nickname (case-insensitively).
    pub nickname_taken: bool,
    /// Someone holds this e-mail (case-insensitively).
    pub email_taken: bool,
}

/// A session as logout sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionState {
    /// Whose session.
    pub user_id: Uuid,
    /// Already ended.
    pub revoked: bool,
}

/// Registration: refused when the nickname or e-mail is taken; the
/// nickname is checked first.
///
/// # Errors
/// [`Rejection::NicknameTaken`], [`Rejection::EmailTaken`].
pub fn register(state: &AccountState, a: &NewAccount) -> Result<Vec<AuthEvent>, Rejection> {
    if state.nickname_taken {
        return Err(Rejection::NicknameTaken);
    }
    if state.email_taken {
        return Err(Rejection::EmailTaken);
    }
    Ok(vec![
        AuthEvent::UserRegistered(UserRegistered {
            user_id: a.user_id,
            nickname: a.nickname.clone(),
            email: a.email.clone(),
            password_hash: a.password_hash.clone(),
            first_name: a.first_name.clone(),
            last_name: a.last_name.clone(),
            age: a.age,
            gender: a.gender,
            registered_at_us: a.registered_at_us,
            locale: None,
        }),
        AuthEvent::SessionStarted(SessionStarted {
            session_id: a.session_id,
            user_id: a.user_id,
            expires_at_us: a.expires_at_us,
        }),
    ])
}

/// Login (the password was verified in preparation): a new session.
pub fn login(user_id: Uuid, session_id: Uuid, expires_at_us: i64) -> Vec<AuthEvent> {
    vec![AuthEvent::SessionStarted(SessionStarted {
        session_id,
        user_id,
        expires_at_us,
    })]
}

/// Logout: only the session's owner ends it, once.
///
/// # Errors
/// [`Rejection::Unauthorized`] for an unknown, foreign or already ended
/// session.
pub fn logout(
    session: Option<&SessionState>,
    actor: Option<Uuid>,
    session_id: Uuid,
) -> Result<Vec<AuthEvent>, Rejection> {
    match session {
        Some(s) if !s.revoked && Some(s.user_id) == actor => {
            Ok(vec![AuthEvent::SessionRevoked(SessionRevoked {
                session_id,
                user_id: s.user_id,
            })])
        }
        _ => Err(Rejection::Unauthorized),
    }
}

/// Failed logins in a row an account is allowed before its logins slow down.
pub const FREE_FAILURES: u32 = 5;

/// The longest delay between two login attempts of one account, in seconds:
/// however long someone keeps failing, the owner is never locked out for
/// more than this at a time.
pub const MAX_DELAY_SECS: u32 = 60;

/// How long logins of an account are refused (`429` with `Retry-After`,
/// without hashing) after its `failures`-th failed login in a row: nothing
/// for the first [`FREE_FAILURES`], then 1 s, 2 s, 4 s … doubling, capped
/// at [`MAX_DELAY_SECS`]. A successful login resets the count.
pub fn login_delay_secs(failures: u32) -> Option<u32> {
    let over = failures.checked_sub(FREE_FAILURES)?;
    Some(
        1u32.checked_shl(over)
            .unwrap_or(u32::MAX)
            .min(MAX_DELAY_SECS),
    )
}

/// Whether a login may be tried now: refused while the account's delay
/// runs (`wait_secs` seconds left, as the database computed it).
///
/// # Errors
/// [`Rejection::RateLimited`] with the whole seconds left (at least 1).
pub fn login_admitted(wait_secs: Option<f64>) -> Result<(), Rejection> {
    match wait_secs {
        Some(w) if w > 0.0 => Err(Rejection::RateLimited {
            retry_after_secs: (w.ceil() as u32).clamp(1, MAX_DELAY_SECS),
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use super::*;
    use crate::testing::{Decider, NOW_US};

    /// The accounts decisions, driven by the harness.
    enum Accounts {}

    /// What the accounts decisions read: the rows of `auth.accounts` (the
    /// lower-cased nickname and e-mail keys taken) and of `auth.sessions`.
    /// [`Accounts::apply`] writes them as `write_model` in `auth/mod.rs`
    /// does; `execute` there reads them as `decide` here does.
    #[derive(Debug, Default)]
    struct Rows {
        nickname_keys: HashSet<String>,
        email_keys: HashSet<String>,
        sessions: HashMap<Uuid, SessionState>,
    }

    /// An accounts command as the decisions receive it, after preparation
    /// (password hashed or verified, ids and expiry chosen).
    #[derive(Debug)]
    enum Cmd {
        Register(NewAccount),
        Login {
            user_id: Uuid,
            session_id: Uuid,
            expires_at_us: i64,
        },
        Logout {
            actor: Option<Uuid>,
            session_id: Uuid,
        },
    }

    impl Decider for Accounts {
        type State = Rows;
        type Event = AuthEvent;
        type Command = Cmd;
        type Emitted = AuthEvent;
        type Error = Rejection;

        fn apply(rows: &mut Rows, event: &AuthEvent) {
            match event {
                AuthEvent::UserRegistered(e) => {
                    rows.nickname_keys.insert(e.nickname.to_lowercase());
                    rows.email_keys.insert(e.email.to_lowercase());
                }
                AuthEvent::SessionStarted(e) => {
                    let session = SessionState {
                        user_id: e.user_id,
                        revoked: false,
                    };
                    rows.sessions.insert(e.session_id, session);
                }
                AuthEvent::SessionRevoked(e) => {
                    if let Some(s) = rows.sessions.get_mut(&e.session_id) {
                        s.revoked = true;
                    }
                }
            }
        }

        fn decide(rows: &Rows, command: &Cmd) -> Result<Vec<AuthEvent>, Rejection> {
            match command {
                Cmd::Register(a) => {
                    let state = AccountState {
                        nickname_taken: rows.nickname_keys.contains(&a.nickname.to_lowercase()),
                        email_taken: rows.email_keys.contains(&a.email.to_lowercase()),
                    };
                    register(&state, a)
                }
                Cmd::Login {
                    user_id,
                    session_id,
                    expires_at_us,
                } => Ok(login(*user_id, *session_id, *expires_at_us)),
                Cmd::Logout { actor, session_id } => {
                    logout(rows.sessions.get(session_id), *actor, *session_id)
                }
            }
        }
    }

    const ADA: Uuid = Uuid::from_u128(1);
    const SESSION: Uuid = Uuid::from_u128(2);
    const BOB: Uuid = Uuid::from_u128(9);
    const EXPIRES_US: i64 = NOW_US + 3_600_000_000;

    fn account() -> NewAccount {
        NewAccount {
            user_id: ADA,
            session_id: SESSION,
            nickname: "Ada".into(),
            email: "ada@example.org".into(),
            password_hash: "$argon2id$…".into(),
            first_name: "Ada".into(),
            last_name: "Lovelace".into(),
            age: 36,
            gender: Gender::Female,
            registered_at_us: NOW_US,
            expires_at_us: EXPIRES_US,
        }
    }

    /// Someone else registered with `nickname` and `email`.
    fn registered(nickname: &str, email: &str) -> AuthEvent {
        AuthEvent::UserRegistered(UserRegistered {
            user_id: BOB,
            nickname: nickname.into(),
            email: email.into(),
            password_hash: "$argon2id$…".into(),
            first_name: "Bob".into(),
            last_name: "Babbage".into(),
            age: 40,
            gender: Gender::Male,
            registered_at_us: 1,
            locale: None,
        })
    }

    fn session_started(user_id: Uuid) -> AuthEvent {
        AuthEvent::SessionStarted(SessionStarted {
            session_id: SESSION,
            user_id,
            expires_at_us: EXPIRES_US,
        })
    }

    fn session_revoked(user_id: Uuid) -> AuthEvent {
        AuthEvent::SessionRevoked(SessionRevoked {
            session_id: SESSION,
            user_id,
        })
    }

    fn logout_by(actor: Option<Uuid>) -> Cmd {
        Cmd::Logout {
            actor,
            session_id: SESSION,
        }
    }

    #[test]
    fn registering_free_names_registers_the_user_and_starts_a_first_session() {
        Accounts::given([registered("Bob", "bob@example.org")])
            .when(Cmd::Register(account()))
            .then([
                AuthEvent::UserRegistered(UserRegistered {
                    user_id: ADA,
                    nickname: "Ada".into(),
                    email: "ada@example.org".into(),
                    password_hash: "$argon2id$…".into(),
                    first_name: "Ada".into(),
                    last_name: "Lovelace".into(),
                    age: 36,
                    gender: Gender::Female,
                    registered_at_us: NOW_US,
                    locale: None,
                }),
                session_started(ADA),
            ]);
    }

    #[test]
    fn registering_a_taken_nickname_is_refused_and_the_nickname_is_checked_first() {
        Accounts::given([registered("Ada", "ada@example.org")])
            .when(Cmd::Register(account()))
            .then_rejected(Rejection::NicknameTaken);
    }

    #[test]
    fn registering_a_taken_email_is_refused() {
        Accounts::given([registered("Bob", "ada@example.org")])
            .when(Cmd::Register(account()))
            .then_rejected(Rejection::EmailTaken);
    }

    #[test]
    fn logging_in_starts_a_session() {
        Accounts::given([])
            .when(Cmd::Login {
                user_id: ADA,
                session_id: SESSION,
                expires_at_us: EXPIRES_US,
            })
            .then([session_started(ADA)]);
    }

    #[test]
    fn logging_out_of_ones_open_session_revokes_it() {
        Accounts::given([session_started(ADA)])
            .when(logout_by(Some(ADA)))
            .then([session_revoked(ADA)]);
    }

    #[test]
    fn logging_out_of_a_revoked_session_is_unauthorized() {
        Accounts::given([session_started(ADA), session_revoked(ADA)])
            .when(logout_by(Some(ADA)))
            .then_rejected(Rejection::Unauthorized);
    }

    #[test]
    fn logging_out_of_someone_elses_session_is_unauthorized() {
        Accounts::given([session_started(BOB)])
            .when(logout_by(Some(ADA)))
            .then_rejected(Rejection::Unauthorized);
    }

    #[test]
    fn logging_out_of_an_unknown_session_is_unauthorized() {
        Accounts::given([])
            .when(logout_by(Some(ADA)))
            .then_rejected(Rejection::Unauthorized);
    }

    #[test]
    fn logging_out_without_an_actor_is_unauthorized() {
        Accounts::given([session_started(ADA)])
            .when(logout_by(None))
            .then_rejected(Rejection::Unauthorized);
    }

    // The login throttle's rules are functions of a count and a wait, not
    // decisions on a state of events: plain tables.

    #[test]
    fn logins_slow_down_after_five_failures_doubling_up_to_a_minute() {
        let delays: Vec<Option<u32>> = (0..=14).map(login_delay_secs).collect();
        assert_eq!(
            delays,
            [
                None,
                None,
                None,
                None,
                None,
                Some(1),
                Some(2),
                Some(4),
                Some(8),
                Some(16),
                Some(32),
                Some(60),
                Some(60),
                Some(60),
                Some(60)
            ]
        );
        assert_eq!(login_delay_secs(u32::MAX), Some(60));
    }

    #[test]
    fn a_login_during_the_delay_is_refused_with_the_seconds_left() {
        assert_eq!(login_admitted(None), Ok(()));
        assert_eq!(login_admitted(Some(-3.0)), Ok(()));
        assert_eq!(
            login_admitted(Some(0.2)),
            Err(Rejection::RateLimited {
                retry_after_secs: 1
            })
        );
        assert_eq!(
            login_admitted(Some(41.5)),
            Err(Rejection::RateLimited {
                retry_after_secs: 42
            })
        );
    }
}

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
    use super::*;

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

    fn account() -> NewAccount {
        NewAccount {
            user_id: Uuid::from_u128(1),
            session_id: Uuid::from_u128(2),
            nickname: "Ada".into(),
            email: "ada@example.org".into(),
            password_hash: "$argon2id$…".into(),
            first_name: "Ada".into(),
            last_name: "Lovelace".into(),
            age: 36,
            gender: Gender::Female,
            registered_at_us: 10,
            expires_at_us: 20,
        }
    }

    #[test]
    fn given_free_names_when_registering_then_user_registered_and_session_started() {
        let events = register(&AccountState::default(), &account()).expect("accepted");
        assert!(matches!(&events[..], [
            AuthEvent::UserRegistered(u), AuthEvent::SessionStarted(s)
        ] if u.nickname == "Ada" && u.user_id == s.user_id && s.session_id == Uuid::from_u128(2)));
    }

    #[test]
    fn given_taken_nickname_when_registering_then_nickname_taken() {
        let state = AccountState {
            nickname_taken: true,
            email_taken: true,
        };
        assert_eq!(register(&state, &account()), Err(Rejection::NicknameTaken));
    }

    #[test]
    fn given_taken_email_when_registering_then_email_taken() {
        let state = AccountState {
            nickname_taken: false,
            email_taken: true,
        };
        assert_eq!(register(&state, &account()), Err(Rejection::EmailTaken));
    }

    #[test]
    fn given_own_open_session_when_logging_out_then_session_revoked() {
        let user = Uuid::from_u128(1);
        let s = SessionState {
            user_id: user,
            revoked: false,
        };
        let events = logout(Some(&s), Some(user), Uuid::from_u128(2)).expect("accepted");
        assert_eq!(
            events,
            vec![AuthEvent::SessionRevoked(SessionRevoked {
                session_id: Uuid::from_u128(2),
                user_id: user
            })]
        );
    }

    #[test]
    fn given_revoked_or_foreign_or_unknown_session_when_logging_out_then_unauthorized() {
        let user = Uuid::from_u128(1);
        let revoked = SessionState {
            user_id: user,
            revoked: true,
        };
        let sid = Uuid::from_u128(2);
        assert_eq!(
            logout(Some(&revoked), Some(user), sid),
            Err(Rejection::Unauthorized)
        );
        let foreign = SessionState {
            user_id: Uuid::from_u128(9),
            revoked: false,
        };
        assert_eq!(
            logout(Some(&foreign), Some(user), sid),
            Err(Rejection::Unauthorized)
        );
        assert_eq!(logout(None, Some(user), sid), Err(Rejection::Unauthorized));
    }

    #[test]
    fn login_starts_a_session() {
        let events = login(Uuid::from_u128(1), Uuid::from_u128(3), 99);
        assert!(matches!(&events[..], [AuthEvent::SessionStarted(s)] if s.expires_at_us == 99));
    }
}

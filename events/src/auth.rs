//! Events of the accounts service (log `auth`).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::codec::{decode, encode, DecodeError};
use crate::{EventSet, RecordedEvent, Service};

/// A user's declared gender.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Gender {
    /// `female`
    Female,
    /// `male`
    Male,
    /// `other`
    Other,
    /// `unspecified`
    Unspecified,
}

impl Gender {
    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Gender::Female => "female",
            Gender::Male => "male",
            Gender::Other => "other",
            Gender::Unspecified => "unspecified",
        }
    }

    /// Parses the API spelling.
    pub fn parse(s: &str) -> Option<Gender> {
        match s {
            "female" => Some(Gender::Female),
            "male" => Some(Gender::Male),
            "other" => Some(Gender::Other),
            "unspecified" => Some(Gender::Unspecified),
            _ => None,
        }
    }
}

/// A new account was created (`user_registered`, v2: the current shape).
///
/// Version 2 added [`UserRegistered::locale`]; version 1 payloads decode as
/// [`UserRegisteredV1`] and are upcast with `From`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRegistered {
    /// The new user's id (also the stream id).
    pub user_id: Uuid,
    /// The nickname, with the case it was registered with.
    pub nickname: String,
    /// The e-mail address, as given.
    pub email: String,
    /// The argon2id PHC string.
    pub password_hash: String,
    /// First name, trimmed.
    pub first_name: String,
    /// Last name, trimmed.
    pub last_name: String,
    /// Age in years.
    pub age: u8,
    /// Declared gender.
    pub gender: Gender,
    /// Registration time, microseconds since the epoch.
    pub registered_at_us: i64,
    /// The user's preferred locale (BCP 47 tag such as `fr-CA`), when known.
    /// Accounts registered before version 2 have none.
    pub locale: Option<String>,
}

/// `user_registered` as written by schema version 1 (kept to decode old
/// payloads; never written any more).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRegisteredV1 {
    /// The new user's id (also the stream id).
    pub user_id: Uuid,
    /// The nickname, with the case it was registered with.
    pub nickname: String,
    /// The e-mail address, as given.
    pub email: String,
    /// The argon2id PHC string.
    pub password_hash: String,
    /// First name, trimmed.
    pub first_name: String,
    /// Last name, trimmed.
    pub last_name: String,
    /// Age in years.
    pub age: u8,
    /// Declared gender.
    pub gender: Gender,
    /// Registration time, microseconds since the epoch.
    pub registered_at_us: i64,
}

/// The upcaster v1 → v2: an old registration has no locale.
impl From<UserRegisteredV1> for UserRegistered {
    fn from(v1: UserRegisteredV1) -> Self {
        UserRegistered {
            user_id: v1.user_id,
            nickname: v1.nickname,
            email: v1.email,
            password_hash: v1.password_hash,
            first_name: v1.first_name,
            last_name: v1.last_name,
            age: v1.age,
            gender: v1.gender,
            registered_at_us: v1.registered_at_us,
            locale: None,
        }
    }
}

/// `user_registered` v3: the **public form** of a registration, the only
/// one published on NATS (see [`for_bus`]). It is v2 without the e-mail
/// address and the password hash, which stay in the auth log in Postgres
/// for the auth service and the projections that read the log; nothing that
/// reads the bus (the gateways' live feed, the notifications deriver) needs
/// them. The log never holds this version. It decodes as a
/// [`UserRegistered`] whose `email` and `password_hash` are empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRegisteredPublic {
    /// The new user's id (also the stream id).
    pub user_id: Uuid,
    /// The nickname, with the case it was registered with.
    pub nickname: String,
    /// First name, trimmed.
    pub first_name: String,
    /// Last name, trimmed.
    pub last_name: String,
    /// Age in years.
    pub age: u8,
    /// Declared gender.
    pub gender: Gender,
    /// Registration time, microseconds since the epoch.
    pub registered_at_us: i64,
    /// The user's preferred locale, when known.
    pub locale: Option<String>,
}

/// The schema version of [`UserRegisteredPublic`].
pub const USER_REGISTERED_PUBLIC: u16 = 3;

impl From<UserRegistered> for UserRegisteredPublic {
    fn from(u: UserRegistered) -> Self {
        UserRegisteredPublic {
            user_id: u.user_id,
            nickname: u.nickname,
            first_name: u.first_name,
            last_name: u.last_name,
            age: u.age,
            gender: u.gender,
            registered_at_us: u.registered_at_us,
            locale: u.locale,
        }
    }
}

impl From<UserRegisteredPublic> for UserRegistered {
    fn from(p: UserRegisteredPublic) -> Self {
        UserRegistered {
            user_id: p.user_id,
            nickname: p.nickname,
            email: String::new(),
            password_hash: String::new(),
            first_name: p.first_name,
            last_name: p.last_name,
            age: p.age,
            gender: p.gender,
            registered_at_us: p.registered_at_us,
            locale: p.locale,
        }
    }
}

/// The form of a logged event that may be published on NATS: a
/// registration becomes its [`UserRegisteredPublic`] form (no e-mail, no
/// password hash); every other event is published as logged. A registration
/// whose payload does not decode is published with an empty payload
/// (subscribers cannot decode it either way, and nothing secret leaks).
pub fn for_bus(event: &RecordedEvent) -> std::borrow::Cow<'_, RecordedEvent> {
    if event.service != Service::Auth || event.event_type != "user_registered" {
        return std::borrow::Cow::Borrowed(event);
    }
    let payload = match event.decode::<AuthEvent>() {
        Ok(AuthEvent::UserRegistered(u)) => encode(&UserRegisteredPublic::from(u)),
        _ => Vec::new(),
    };
    std::borrow::Cow::Owned(RecordedEvent {
        schema_version: USER_REGISTERED_PUBLIC,
        payload,
        ..event.clone()
    })
}

/// A session began, by registration or login (`session_started`, v1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionStarted {
    /// The session id carried in the token.
    pub session_id: Uuid,
    /// Whose session.
    pub user_id: Uuid,
    /// When the token expires, microseconds since the epoch.
    pub expires_at_us: i64,
}

/// A session was ended by logout (`session_revoked`, v1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRevoked {
    /// The session that ended.
    pub session_id: Uuid,
    /// Whose session.
    pub user_id: Uuid,
}

/// Every event of the accounts service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthEvent {
    /// See [`UserRegistered`].
    UserRegistered(UserRegistered),
    /// See [`SessionStarted`].
    SessionStarted(SessionStarted),
    /// See [`SessionRevoked`].
    SessionRevoked(SessionRevoked),
}

impl EventSet for AuthEvent {
    const SERVICE: Service = Service::Auth;

    fn event_type(&self) -> &'static str {
        match self {
            AuthEvent::UserRegistered(_) => "user_registered",
            AuthEvent::SessionStarted(_) => "session_started",
            AuthEvent::SessionRevoked(_) => "session_revoked",
        }
    }

    fn schema_version(&self) -> u16 {
        match self {
            AuthEvent::UserRegistered(_) => 2,
            AuthEvent::SessionStarted(_) | AuthEvent::SessionRevoked(_) => 1,
        }
    }

    fn encode_payload(&self) -> Vec<u8> {
        match self {
            AuthEvent::UserRegistered(e) => encode(e),
            AuthEvent::SessionStarted(e) => encode(e),
            AuthEvent::SessionRevoked(e) => encode(e),
        }
    }

    fn decode(event_type: &str, schema_version: u16, payload: &[u8]) -> Result<Self, DecodeError> {
        match (event_type, schema_version) {
            ("user_registered", 1) => {
                decode::<UserRegisteredV1>(payload).map(|v1| AuthEvent::UserRegistered(v1.into()))
            }
            ("user_registered", 2) => decode(payload).map(AuthEvent::UserRegistered),
            ("user_registered", USER_REGISTERED_PUBLIC) => {
                decode::<UserRegisteredPublic>(payload).map(|p| AuthEvent::UserRegistered(p.into()))
            }
            ("session_started", 1) => decode(payload).map(AuthEvent::SessionStarted),
            ("session_revoked", 1) => decode(payload).map(AuthEvent::SessionRevoked),
            _ => Err(DecodeError::UnknownType {
                event_type: event_type.to_string(),
                schema_version,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{hex, id, unhex};

    /// (type, version, golden bytes, the event they must decode to).
    fn golden() -> Vec<(&'static str, u16, &'static str, AuthEvent)> {
        vec![
            (
                "user_registered",
                1,
                "1001010101010101010101010101010101036e69630a6e69634065782e6f7267067068633a7678024e69024c612a0080897a",
                AuthEvent::UserRegistered(UserRegistered {
                    user_id: id(1),
                    nickname: "nic".into(),
                    email: "nic@ex.org".into(),
                    password_hash: "phc:vx".into(),
                    first_name: "Ni".into(),
                    last_name: "La".into(),
                    age: 42,
                    gender: Gender::Female,
                    registered_at_us: 1_000_000,
                    locale: None,
                }),
            ),
            (
                "user_registered",
                2,
                "1001010101010101010101010101010101036e69630a6e69634065782e6f7267067068633a7678024e69024c612a0080897a010566722d4341",
                AuthEvent::UserRegistered(UserRegistered {
                    user_id: id(1),
                    nickname: "nic".into(),
                    email: "nic@ex.org".into(),
                    password_hash: "phc:vx".into(),
                    first_name: "Ni".into(),
                    last_name: "La".into(),
                    age: 42,
                    gender: Gender::Female,
                    registered_at_us: 1_000_000,
                    locale: Some("fr-CA".into()),
                }),
            ),
            (
                "user_registered",
                3,
                "1001010101010101010101010101010101036e6963024e69024c612a0080897a010566722d4341",
                AuthEvent::UserRegistered(UserRegistered {
                    user_id: id(1),
                    nickname: "nic".into(),
                    email: String::new(),
                    password_hash: String::new(),
                    first_name: "Ni".into(),
                    last_name: "La".into(),
                    age: 42,
                    gender: Gender::Female,
                    registered_at_us: 1_000_000,
                    locale: Some("fr-CA".into()),
                }),
            ),
            (
                "session_started",
                1,
                "1002020202020202020202020202020202100101010101010101010101010101010180897a",
                AuthEvent::SessionStarted(SessionStarted {
                    session_id: id(2),
                    user_id: id(1),
                    expires_at_us: 1_000_000,
                }),
            ),
            (
                "session_revoked",
                1,
                "10020202020202020202020202020202021001010101010101010101010101010101",
                AuthEvent::SessionRevoked(SessionRevoked {
                    session_id: id(2),
                    user_id: id(1),
                }),
            ),
        ]
    }

    #[test]
    fn golden_vectors_of_every_auth_event_decode() {
        for (ty, ver, bytes, expected) in golden() {
            let decoded = AuthEvent::decode(ty, ver, &unhex(bytes))
                .unwrap_or_else(|e| panic!("{ty} v{ver}: {e}"));
            assert_eq!(decoded, expected, "{ty} v{ver}");
            if expected.schema_version() == ver {
                assert_eq!(
                    hex(&expected.encode_payload()),
                    bytes,
                    "{ty} v{ver} encodes"
                );
            }
            assert_eq!(expected.event_type(), ty);
        }
    }

    #[test]
    fn user_registered_is_written_as_v2_and_v1_is_upcast_without_locale() {
        let (_, _, v1_bytes, _) = &golden()[0];
        let upcast = AuthEvent::decode("user_registered", 1, &unhex(v1_bytes)).expect("v1");
        assert_eq!(upcast.schema_version(), 2);
        let AuthEvent::UserRegistered(u) = upcast else {
            panic!("not a registration");
        };
        assert_eq!(u.locale, None);
        // A v1 payload is not a valid v2 payload (the shapes differ).
        assert!(AuthEvent::decode("user_registered", 2, &unhex(v1_bytes)).is_err());
    }

    #[test]
    fn a_registration_goes_on_the_bus_as_v3_without_email_or_hash() {
        let (_, _, v2_bytes, _) = &golden()[1];
        let (_, _, v3_bytes, _) = &golden()[2];
        let logged = RecordedEvent {
            service: Service::Auth,
            position: 7,
            stream_id: id(1),
            version: 1,
            event_id: id(9),
            event_type: "user_registered".into(),
            schema_version: 2,
            payload: unhex(v2_bytes),
            metadata: crate::Metadata {
                correlation_id: id(3),
                causation_id: id(4),
                actor: None,
                recorded_at_us: 5,
            },
        };
        let public = for_bus(&logged).into_owned();
        assert_eq!(public.schema_version, USER_REGISTERED_PUBLIC);
        assert_eq!(hex(&public.payload), *v3_bytes);
        assert_eq!(
            RecordedEvent {
                schema_version: 2,
                payload: logged.payload.clone(),
                ..public.clone()
            },
            logged,
            "only the payload and its version change"
        );
        let wire = public.to_bytes();
        for secret in [&b"nic@ex.org"[..], &b"phc:vx"[..]] {
            assert!(
                !wire.windows(secret.len()).any(|w| w == secret),
                "{secret:?} on the bus"
            );
        }
        // Other events go out as logged.
        let revoked = RecordedEvent {
            event_type: "session_revoked".into(),
            schema_version: 1,
            payload: unhex(golden()[4].2),
            ..logged.clone()
        };
        assert!(matches!(for_bus(&revoked), std::borrow::Cow::Borrowed(_)));
        // A registration that does not decode leaks nothing.
        let broken = RecordedEvent {
            payload: b"nic@ex.org".to_vec(),
            ..logged
        };
        assert!(for_bus(&broken).payload.is_empty());
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        let (ty, ver, bytes, _) = &golden()[4];
        let mut b = unhex(bytes);
        b.push(0);
        assert_eq!(
            AuthEvent::decode(ty, *ver, &b),
            Err(DecodeError::TrailingBytes(1))
        );
    }

    #[test]
    fn unknown_types_and_versions_are_rejected() {
        assert!(matches!(
            AuthEvent::decode("user_registered", 9, &[]),
            Err(DecodeError::UnknownType { .. })
        ));
        assert!(matches!(
            AuthEvent::decode("nope", 1, &[]),
            Err(DecodeError::UnknownType { .. })
        ));
    }

    #[test]
    fn truncated_payloads_are_malformed() {
        let (ty, ver, bytes, _) = &golden()[3];
        let b = unhex(bytes);
        assert!(matches!(
            AuthEvent::decode(ty, *ver, &b[..b.len() - 3]),
            Err(DecodeError::Malformed(_))
        ));
    }
}

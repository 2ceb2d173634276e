//! What travels on `<prefix>.cmd.<service>.<command>`: an [`Envelope`]
//! request, a [`Reply`] response, both postcard-encoded.

use forum_events::{codec, DecodeError, Service};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use uuid::Uuid;

/// A command with its context.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope<C> {
    /// Unique id of this command; the causation id of its events.
    pub command_id: Uuid,
    /// The id of the HTTP request that caused it.
    pub correlation_id: Uuid,
    /// The authenticated user, if any.
    pub actor: Option<Uuid>,
    /// The command itself.
    pub command: C,
    /// How long the caller waits for the reply, in milliseconds from when
    /// it sent this; a service drops slow work (a password hash) that could
    /// only finish after that. `None`: no limit.
    ///
    /// Appended last; postcard is not self-describing, so a decoder without
    /// this field refuses an envelope with it and the other way round: the
    /// gateway and the services are deployed together.
    pub timeout_ms: Option<u32>,
    /// Set when the caller sent an `Idempotency-Key`: the SHA-256 of the
    /// request the key came with (method, path and body). `command_id` is
    /// then derived from the key, and the service records the outcome under
    /// it in the transaction of the command's events: a retry with the same
    /// id gets that outcome instead of a second effect, and a retry with
    /// another digest is a conflict. Appended last (see `timeout_ms`).
    pub request_digest: Option<[u8; 32]>,
}

impl<C: Serialize> Envelope<C> {
    /// Encodes for NATS.
    pub fn to_bytes(&self) -> Vec<u8> {
        codec::encode(self)
    }
}

impl<C: DeserializeOwned> Envelope<C> {
    /// Decodes from NATS.
    ///
    /// # Errors
    /// When the bytes are not exactly one envelope of this command type.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        codec::decode(bytes)
    }
}

/// Why a command was refused. These map one to one onto API error codes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Rejection {
    /// Field-level validation failures: (field, message).
    Validation(Vec<(String, String)>),
    /// The nickname is taken (case-insensitively).
    NicknameTaken,
    /// The e-mail address is taken (case-insensitively).
    EmailTaken,
    /// Unknown login or wrong password.
    InvalidCredentials,
    /// The session is not valid.
    Unauthorized,
    /// The actor may not do this.
    Forbidden,
    /// The target does not exist.
    NotFound,
    /// A state conflict, with a human explanation.
    Conflict(String),
    /// The service failed; the command had no effect.
    Internal,
    /// The service's database failed for a while (a lost connection, a
    /// restart), or the service is overloaded (its password hashing queue
    /// is full, or the caller's deadline passed before the work began); the
    /// command had no effect and may be tried again. Appended after
    /// `Internal`: postcard numbers variants in order.
    Unavailable,
    /// Too many attempts (failed logins of one account): try again in
    /// `retry_after_secs` seconds. The gateway answers `429 rate_limited`
    /// with `Retry-After`. Appended last.
    RateLimited {
        /// Whole seconds until an attempt is accepted again (at least 1).
        retry_after_secs: u32,
    },
}

/// The message of a text field the service cannot store.
pub const UNSTORABLE_TEXT: &str = "this text cannot be stored";

/// The field and message of a command whose data cannot be stored when no
/// single text field is to blame.
pub const UNSTORABLE_BODY: (&str, &str) = ("body", "this data cannot be stored");

impl Rejection {
    /// The refusal of a command whose data the service's write model or log
    /// cannot store (the gateway answers `400 validation_failed`): it names
    /// the first of `texts` (field, value) holding U+0000, the one character
    /// a Postgres text cannot hold, or else [`UNSTORABLE_BODY`].
    pub fn unstorable<'a>(texts: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let (field, message) = texts
            .into_iter()
            .find(|(_, text)| text.contains('\0'))
            .map_or(UNSTORABLE_BODY, |(field, _)| (field, UNSTORABLE_TEXT));
        Rejection::Validation(vec![(field.to_string(), message.to_string())])
    }
}

/// The answer to a command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Reply<T> {
    /// The command was accepted. `positions` are the last positions written
    /// per log: read models that have reached them reflect the command.
    Accepted {
        /// (log, last position written there).
        positions: Vec<(Service, u64)>,
        /// What the command produced.
        data: T,
    },
    /// The command was refused and changed nothing.
    Rejected(Rejection),
}

impl<T: Serialize> Reply<T> {
    /// Encodes for NATS.
    pub fn to_bytes(&self) -> Vec<u8> {
        codec::encode(self)
    }
}

impl<T: DeserializeOwned> Reply<T> {
    /// Decodes from NATS.
    ///
    /// # Errors
    /// When the bytes are not exactly one reply of this type.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        codec::decode(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unstorable_command_names_the_text_holding_a_nul() {
        let r = Rejection::unstorable([("title", "fine"), ("content", "a\0b"), ("x", "\0")]);
        assert_eq!(
            r,
            Rejection::Validation(vec![("content".into(), UNSTORABLE_TEXT.into())])
        );
    }

    #[test]
    fn an_unstorable_command_without_a_nul_blames_its_body() {
        assert_eq!(
            Rejection::unstorable([("title", "fine")]),
            Rejection::Validation(vec![(UNSTORABLE_BODY.0.into(), UNSTORABLE_BODY.1.into())])
        );
    }
}

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

//! Postcard encoding of payloads and envelopes.

use serde::{de::DeserializeOwned, Serialize};

/// Why bytes could not be turned back into an event.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// The bytes are not a valid postcard encoding of the expected type.
    #[error("malformed payload: {0}")]
    Malformed(String),
    /// The value decoded but bytes were left over: the type does not match.
    #[error("{0} trailing bytes after the payload")]
    TrailingBytes(usize),
    /// No decoder exists for this type name and schema version.
    #[error("unknown event type {event_type} v{schema_version}")]
    UnknownType {
        /// The type name in the envelope.
        event_type: String,
        /// The schema version in the envelope.
        schema_version: u16,
    },
}

/// Encodes a value with postcard.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing plain structs into a Vec cannot fail.
    postcard::to_allocvec(value).unwrap_or_default()
}

/// Decodes a value with postcard, refusing trailing bytes.
///
/// # Errors
/// [`DecodeError::Malformed`] or [`DecodeError::TrailingBytes`].
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    let (value, rest) =
        postcard::take_from_bytes(bytes).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    if rest.is_empty() {
        Ok(value)
    } else {
        Err(DecodeError::TrailingBytes(rest.len()))
    }
}

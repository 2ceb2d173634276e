//! Progress announcements on `<prefix>.proj.<name>`: a follower of the logs
//! (a projector, or the notifications deriver) has processed a log up to a
//! position. Writers wait for them to give read-your-writes.

use serde::{Deserialize, Serialize};

use crate::codec::{self, DecodeError};
use crate::Service;

/// A follower's announcement after a commit: this follower (a projection
/// version, or another named follower) has processed this log up to this
/// position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// The follower's name (a projection's name, or e.g. `notifier`).
    pub projection: String,
    /// Its version.
    pub version: u32,
    /// The log.
    pub service: Service,
    /// The checkpoint.
    pub position: u64,
}

impl Progress {
    /// Encodes for NATS.
    pub fn to_bytes(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Decodes from NATS.
    ///
    /// # Errors
    /// When the bytes are not one progress message.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        codec::decode(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_progress_message_round_trips() {
        let p = Progress {
            projection: "notifier".into(),
            version: 1,
            service: Service::Chat,
            position: 42,
        };
        assert_eq!(Progress::from_bytes(&p.to_bytes()), Ok(p));
    }
}

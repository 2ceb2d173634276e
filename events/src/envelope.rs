//! The envelope around every event.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::codec::{self, DecodeError};

/// The services that own an event log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
pub enum Service {
    /// Accounts and sessions.
    Auth,
    /// Posts, comments and reactions.
    Posts,
    /// Private messages.
    Chat,
    /// Notifications derived from the other services' events.
    Notifications,
}

impl Service {
    /// Every service, in a fixed order: only ever appended to (a service's
    /// place in it is the key of its append lock, and each one gets its
    /// log, its subjects, its queue group and its role from this list).
    pub const ALL: [Service; 4] = [
        Service::Auth,
        Service::Posts,
        Service::Chat,
        Service::Notifications,
    ];

    /// The lowercase name used in subjects, schemas and queue groups.
    pub const fn as_str(self) -> &'static str {
        match self {
            Service::Auth => "auth",
            Service::Posts => "posts",
            Service::Chat => "chat",
            Service::Notifications => "notifications",
        }
    }

    /// Parses the lowercase name.
    pub fn parse(name: &str) -> Option<Service> {
        Service::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl std::fmt::Display for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who caused an event and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    /// The id of the request that started the chain (HTTP request id).
    pub correlation_id: Uuid,
    /// The id of the command or event that directly caused this event.
    pub causation_id: Uuid,
    /// The user on whose behalf the command ran, if any.
    pub actor: Option<Uuid>,
    /// When the event was recorded, in microseconds since the Unix epoch (UTC).
    pub recorded_at_us: i64,
}

/// An event a decision produced, not yet stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// The aggregate the event belongs to.
    pub stream_id: Uuid,
    /// Its version within that stream (1 for the first event).
    pub version: u32,
    /// A unique id, also the JetStream de-duplication id.
    pub event_id: Uuid,
    /// The type name, e.g. `user_registered`.
    pub event_type: &'static str,
    /// The schema version of the payload.
    pub schema_version: u16,
    /// The postcard payload.
    pub payload: Vec<u8>,
}

impl NewEvent {
    /// Wraps a typed event for storage.
    pub fn new<E: EventSet>(stream_id: Uuid, version: u32, event_id: Uuid, event: &E) -> Self {
        NewEvent {
            stream_id,
            version,
            event_id,
            event_type: event.event_type(),
            schema_version: event.schema_version(),
            payload: event.encode_payload(),
        }
    }
}

/// An event as stored in a service's log and published on NATS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedEvent {
    /// The log it belongs to.
    pub service: Service,
    /// Its position in that log: 1, 2, 3 … without gaps.
    pub position: u64,
    /// The aggregate it belongs to.
    pub stream_id: Uuid,
    /// Its version within the stream.
    pub version: u32,
    /// Unique event id.
    pub event_id: Uuid,
    /// The type name.
    pub event_type: String,
    /// The schema version of the payload.
    pub schema_version: u16,
    /// The postcard payload.
    pub payload: Vec<u8>,
    /// Correlation, causation, actor, time.
    pub metadata: Metadata,
}

impl RecordedEvent {
    /// Encodes the whole envelope for the wire.
    pub fn to_bytes(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Decodes an envelope from the wire.
    ///
    /// # Errors
    /// When the bytes are not exactly one envelope.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        codec::decode(bytes)
    }

    /// Decodes the payload as one of a service's events (upcasting old
    /// schema versions).
    ///
    /// # Errors
    /// When the type is unknown or the payload does not decode.
    pub fn decode<E: EventSet>(&self) -> Result<E, DecodeError> {
        E::decode(&self.event_type, self.schema_version, &self.payload)
    }
}

/// The set of event types of one service.
pub trait EventSet: Sized {
    /// The service whose log holds these events.
    const SERVICE: Service;
    /// The type name stored in the envelope.
    fn event_type(&self) -> &'static str;
    /// The schema version this build writes for the event's type.
    fn schema_version(&self) -> u16;
    /// The postcard payload of the current schema version.
    fn encode_payload(&self) -> Vec<u8>;
    /// Decodes a payload of any known (type, version), upcasting old ones.
    ///
    /// # Errors
    /// Unknown (type, version) or malformed payload.
    fn decode(event_type: &str, schema_version: u16, payload: &[u8]) -> Result<Self, DecodeError>;
}

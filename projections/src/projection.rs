//! The trait every read model implements.

use forum_events::{codec, RecordedEvent, Service};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;

use crate::Result;

/// A read model built from one or more logs.
pub trait Projection: Send + Sync + 'static {
    /// Stable name, e.g. `users`.
    fn name(&self) -> &'static str;
    /// The version this build fills; bump it when the tables or the way
    /// events are applied change, then rebuild.
    fn version(&self) -> u32;
    /// The logs it reads.
    fn sources(&self) -> &'static [Service];
    /// `create table` / `create index` statements for the tables, in schema
    /// `schema`, separated by `;` (no `;` inside a statement).
    fn create_sql(&self, schema: &str) -> String;
    /// The tables exposed as views `read.<table>`.
    fn tables(&self) -> &'static [&'static str];
    /// Applies a batch of events of one log, in position order, inside the
    /// caller's transaction. Events of types it does not use are ignored.
    ///
    /// # Errors
    /// [`crate::Error::Poison`] for an event that cannot be decoded or
    /// applied; database errors otherwise.
    fn apply<'a>(
        &'a self,
        tx: &'a mut PgConnection,
        schema: &'a str,
        events: &'a [RecordedEvent],
    ) -> BoxFuture<'a, Result<()>>;

    /// Columns of [`Projection::tables`] whose values do not come from
    /// events (e.g. a `refreshed_at default now()`), left out when
    /// `forum replay verify` compares two versions. None by default.
    fn volatile_columns(&self) -> &'static [&'static str] {
        &[]
    }

    /// The schema of a version: `proj_<name>_v<version>`.
    fn schema(&self, version: u32) -> String {
        format!("proj_{}_v{}", self.name(), version)
    }
}

/// A projector's announcement after a commit: this projection version has
/// applied this log up to this position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// The projection's name.
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
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, forum_events::DecodeError> {
        codec::decode(bytes)
    }
}

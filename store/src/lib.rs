//! Persistence and transport shared by every role: the per-service event
//! logs in Postgres, the outbox relay that publishes them to JetStream, and
//! the connection and schema set-up.
//!
//! # Layout
//! - [`log`]: append to and read from a service's event log. Appends take the
//!   service's transaction-scoped advisory lock and number events `max + 1`,
//!   so positions have no gaps and commit in position order; readers can
//!   tail by position without ever skipping an in-flight event.
//! - [`relay`]: the outbox: publishes every committed event to JetStream
//!   (`Nats-Msg-Id` = event id), from its own checkpoint, so a crash between
//!   commit and publish loses nothing.
//! - [`outcomes`]: the recorded outcomes of commands sent with an
//!   `Idempotency-Key`, written in the append's transaction (exactly once).
//! - [`poison`]: the record of parked (poison) events, shared by every
//!   follower of the logs.
//! - [`setup`]: connecting to Postgres and NATS, migrations, the stream.
//! - [`error`]: the crate's error type.

pub mod error;
pub mod log;
pub mod outcomes;
pub mod poison;
pub mod relay;
pub mod setup;

pub use error::{Error, Result};

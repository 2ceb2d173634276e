//! Event types of every service, their postcard encoding, the envelope that
//! travels with them, and the NATS subject names.
//!
//! # Layout
//! - [`envelope`]: [`RecordedEvent`], the stored and published form of one
//!   event (position, stream, version, type name, schema version, payload,
//!   metadata), and [`NewEvent`], an event a decision produced.
//! - [`codec`]: postcard encoding with strict decoding (no trailing bytes).
//! - [`subject`]: subject and stream names, all under one configurable prefix.
//! - [`progress`]: the progress announcements of the logs' followers.
//! - [`auth`]: the accounts service's events.
//! - [`posts`]: the forum service's events (posts, comments, reactions).
//! - [`chat`]: the chat service's events (messages, read receipts).
//! - [`notifications`]: the notifications service's events.
//!
//! Every event type is its own struct; the envelope names it by type name and
//! schema version. A changed shape gets a new schema version and an upcaster
//! in the service module, so stored bytes are never reinterpreted.
//!
//! This crate depends on no other member of the workspace.

pub mod auth;
pub mod chat;
pub mod codec;
pub mod envelope;
pub mod notifications;
pub mod posts;
pub mod progress;
pub mod subject;
#[cfg(test)]
mod testing;

pub use codec::DecodeError;
pub use envelope::{EventSet, Metadata, NewEvent, RecordedEvent, Service};

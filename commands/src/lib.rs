//! The command side: command and reply types on the wire, the pure
//! decisions of each domain, and the service runtime that receives commands
//! from NATS, decides, appends to the service's event log and replies.
//!
//! # Layout
//! - [`wire`]: the command envelope and the reply, postcard-encoded on NATS.
//! - [`runtime`]: one service instance: queue-group subscription, a
//!   concurrent `prepare` step (slow work such as password hashing, outside
//!   any lock), then batches of prepared commands decided and appended in one
//!   transaction under the service's append lock (group commit).
//! - [`auth`]: the accounts domain: validation newtypes, commands, decisions.
//! - [`posts`]: the forum domain: posts, comments, reactions.
//! - [`chat`]: private messages and read receipts.
//! - [`notifications`]: notifications derived from the posts and chat
//!   events (the deriver), and marking them read.
//! - [`nicknames`]: users' nicknames as the services write them into
//!   events, remembered by the process (a nickname never changes).
//! - [`text`]: the rule every client text field shares (no control
//!   characters but tab and line breaks).
//! - [`error`]: the crate's error type.
//! - `testing` (tests only): the given/when/then harness of the decisions.

pub mod auth;
pub mod chat;
pub mod error;
pub mod nicknames;
pub mod notifications;
pub mod posts;
pub mod runtime;
#[cfg(test)]
pub(crate) mod testing;
pub mod text;
pub mod wire;

pub use error::{Error, Result};
pub use wire::{Envelope, Rejection, Reply};

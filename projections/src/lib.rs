//! Read models built only from events.
//!
//! # Layout
//! - [`projection`]: the [`Projection`] trait every read model implements.
//! - [`registry`]: versions. A projection version lives in its own schema
//!   `proj_<name>_v<version>`; reads go through views in schema `read`
//!   that point at the live version, so a switch is one transaction.
//! - [`runner`]: keeps one projection current from one log: reads events
//!   after its checkpoint, applies them and moves the checkpoint in the same
//!   transaction (a redelivered event changes nothing), then announces its
//!   position on NATS so writers can wait for their reads. It never stops
//!   on one event: transient failures are retried with backoff, an event
//!   that cannot be applied is parked.
//! - [`inline`]: the projections of a log applied in the transaction that
//!   appends to it (one durable commit per write); the runner picks up
//!   whatever they leave.
//! - [`poison`]: parked events (`proj.poison`): finding the culprit of a
//!   failing batch, recording, listing and retrying parked events.
//! - [`replay`]: rebuilding a projection into a new version beside the live
//!   one and switching reads to it, listing versions, verifying a rebuild.
//! - [`users`], [`sessions`]: the accounts read models.
//! - [`posts`]: posts, comments and reactions.
//! - [`chat`]: private messages and each participant's conversations.
//! - [`notifications`]: every user's notifications.
//! - [`error`]: the crate's error type, and which failures are transient.

pub mod chat;
pub mod error;
pub mod inline;
pub mod notifications;
pub mod poison;
pub mod posts;
pub mod projection;
pub mod registry;
pub mod replay;
pub mod runner;
pub mod sessions;
pub mod users;

use std::sync::Arc;

use forum_events::Service;

pub use error::{Error, Result};
pub use projection::{Progress, Projection};

/// The projections that read `service`'s log, at their code version. Every
/// log has its arm (an empty list when it has no read model), so a new
/// `Service` does not compile until its read models are listed here; a
/// projection reading several logs would be listed under the first.
pub fn of(service: Service) -> Vec<Arc<dyn Projection>> {
    match service {
        Service::Auth => vec![Arc::new(users::Users), Arc::new(sessions::Sessions)],
        Service::Posts => vec![Arc::new(posts::Posts)],
        Service::Chat => vec![Arc::new(chat::Chat)],
        Service::Notifications => vec![Arc::new(notifications::Notifications)],
    }
}

/// Every projection this build knows, at its code version, log by log in
/// the order of [`Service::ALL`].
pub fn all() -> Vec<Arc<dyn Projection>> {
    Service::ALL.into_iter().flat_map(of).collect()
}

/// The projection named `name`, if this build knows it.
pub fn by_name(name: &str) -> Option<Arc<dyn Projection>> {
    all().into_iter().find(|p| p.name() == name)
}

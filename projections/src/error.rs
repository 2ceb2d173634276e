//! The projections' error type.

/// What stops a projection from advancing.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Postgres failed (transient: retried).
    #[error(transparent)]
    Store(#[from] forum_store::Error),
    /// An event could not be decoded or applied (poison: the projection
    /// stops at it).
    #[error("cannot apply {event_type} at {service} position {position}: {reason}")]
    Poison {
        /// The log.
        service: forum_events::Service,
        /// Its position.
        position: u64,
        /// Its type name.
        event_type: String,
        /// What went wrong.
        reason: String,
    },
    /// The projection is not in a state that allows the operation.
    #[error("{0}")]
    State(String),
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Error::Store(e.into())
    }
}

impl Error {
    /// A poison error for `event`.
    pub fn poison(event: &forum_events::RecordedEvent, reason: impl std::fmt::Display) -> Self {
        Error::Poison {
            service: event.service,
            position: event.position,
            event_type: event.event_type.clone(),
            reason: reason.to_string(),
        }
    }
}

/// The projections' result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

//! The projections' error type, and which failures are worth retrying.

/// What stops a projection step.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Postgres failed: transient (retried) or a data error (see
    /// [`Error::failure`]).
    #[error(transparent)]
    Store(#[from] forum_store::Error),
    /// An event could not be decoded or applied: it is parked as poison.
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
    /// A projection's `apply` panicked on a batch (the culprit is found by
    /// applying parts of the batch).
    #[error("apply panicked: {0}")]
    Panicked(String),
    /// The projection is not in a state that allows the operation.
    #[error("{0}")]
    State(String),
}

/// What a failure says about the events being applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Nothing about the events: a lost connection, a serialization failure
    /// or deadlock, Postgres restarting, a pool timeout. Retried with
    /// backoff; the events stay where they are.
    Transient,
    /// The events themselves: a data error (SQLSTATE classes 22 and 23),
    /// an event that does not decode, a panic inside `apply`. Applying them
    /// again gives the same failure, so the culprit is parked as poison.
    Deterministic,
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

    /// Whether this failure is worth retrying as it is.
    pub fn failure(&self) -> Failure {
        match self {
            Error::Poison { .. } | Error::Panicked(_) => Failure::Deterministic,
            Error::Store(e) => store_failure(e),
            Error::State(_) => Failure::Transient,
        }
    }
}

/// [`Error::failure`] of a store error: a unique violation and an event
/// that does not decode are deterministic, a database error by its
/// SQLSTATE ([`sqlx_failure`]), the rest transient.
pub fn store_failure(e: &forum_store::Error) -> Failure {
    match e {
        forum_store::Error::Conflict { .. } | forum_store::Error::Decode { .. } => {
            Failure::Deterministic
        }
        forum_store::Error::Database(e) => sqlx_failure(e),
        forum_store::Error::Migrate(_) | forum_store::Error::Nats(_) => Failure::Transient,
    }
}

/// [`Error::failure`] of an sqlx error: an error the server answered with
/// a SQLSTATE of class 22 (data exception: invalid text, a value out of
/// range) or 23 (integrity constraint violation), and a value the driver
/// cannot encode, are deterministic; every other one (connection, I/O, pool timeout, serialization failure,
/// deadlock, shutdown, other server errors such as a missing table, which
/// a deployment fixes) is transient.
pub fn sqlx_failure(e: &sqlx::Error) -> Failure {
    match e {
        sqlx::Error::Database(db) => sqlstate_failure(db.code().as_deref().unwrap_or("")),
        // A value the driver cannot encode.
        sqlx::Error::Encode(_) => Failure::Deterministic,
        _ => Failure::Transient,
    }
}

/// [`sqlx_failure`] of a SQLSTATE code.
pub fn sqlstate_failure(code: &str) -> Failure {
    if code.starts_with("22") || code.starts_with("23") {
        Failure::Deterministic
    } else {
        Failure::Transient
    }
}

/// The projections' result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

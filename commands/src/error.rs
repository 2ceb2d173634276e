//! The command side's error type (infrastructure only; domain refusals are
//! [`crate::Rejection`]s).

/// A failure of the infrastructure around a decision.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Postgres, the event log or the relay.
    #[error(transparent)]
    Store(#[from] forum_store::Error),
    /// NATS.
    #[error("nats: {0}")]
    Nats(String),
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Error::Store(e.into())
    }
}

/// The command side's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

//! The binary's error type.

/// Why the command could not run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad configuration.
    #[error("configuration: {0}")]
    Config(String),
    /// Postgres, NATS, the logs.
    #[error(transparent)]
    Store(#[from] forum_store::Error),
    /// A command service.
    #[error(transparent)]
    Commands(#[from] forum_commands::Error),
    /// A projection.
    #[error(transparent)]
    Projections(#[from] forum_projections::Error),
    /// The gateway.
    #[error("gateway: {0}")]
    Gateway(#[from] forum_gateway::error::ApiError),
    /// A check failed (e.g. `forum replay verify` found differences).
    #[error("{0}")]
    Failed(String),
    /// Sockets.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// The binary's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

//! The crate's error type.

/// Everything that can stop a scenario.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A local I/O failure (spawning, reading `/proc`, writing the report).
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// Postgres refused or failed.
    #[error("postgres: {0}")]
    Pg(#[from] sqlx::Error),
    /// An HTTP request failed below the status line.
    #[error("http: {0}")]
    Http(#[from] reqwest::Error),
    /// A WebSocket failed.
    #[error("websocket: {0}")]
    Ws(#[from] tokio_tungstenite::tungstenite::Error),
    /// NATS refused or failed.
    #[error("nats: {0}")]
    Nats(String),
    /// The system answered something the contract does not allow.
    #[error("unexpected answer: {0}")]
    Protocol(String),
    /// The endpoint a scenario needs does not exist (404 on the route).
    #[error("feature missing: {0}")]
    FeatureMissing(String),
    /// A bad option or environment.
    #[error("configuration: {0}")]
    Config(String),
    /// A bounded wait ran out.
    #[error("timed out: {0}")]
    Timeout(String),
    /// Ctrl-C.
    #[error("interrupted")]
    Interrupted,
    /// Drawing the `--metrics-plot` dashboard failed.
    #[error("plot: {0}")]
    Plot(String),
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps any NATS error (async-nats has one type per operation).
    pub fn nats(e: impl std::fmt::Display) -> Error {
        Error::Nats(e.to_string())
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::Protocol(format!("bad JSON: {e}"))
    }
}

impl From<tokio::time::error::Elapsed> for Error {
    fn from(_: tokio::time::error::Elapsed) -> Self {
        Error::Timeout("operation".into())
    }
}

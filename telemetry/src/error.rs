//! The crate's error type.

/// What can fail while setting telemetry up.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The metrics address cannot be bound or served.
    #[error("metrics listener: {0}")]
    Listen(#[from] std::io::Error),
    /// The OTLP exporter cannot be built from its environment.
    #[error("OTLP exporter: {0}")]
    Otlp(String),
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

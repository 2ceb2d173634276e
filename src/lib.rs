//! The `forum` command: configuration and the roles it runs.
//!
//! # Layout
//! - [`config`]: the command line and environment ([`Cli`]).
//! - [`roles`]: starting each role (gateway, command services, projectors)
//!   and running them together under one shutdown signal.
//! - [`replay_cli`]: `forum replay`: listing, rebuilding and verifying
//!   projections.
//! - [`error`]: the crate's error type.

pub mod config;
pub mod error;
pub mod replay_cli;
pub mod roles;

pub use config::Cli;
pub use error::{Error, Result};

/// Logs to stderr, filtered by `RUST_LOG` (default `info`).
pub fn telemetry() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn,async_nats=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}

/// Runs the command line's command to completion.
///
/// # Errors
/// Configuration, connection or start-up failures.
pub async fn run(cli: Cli) -> Result<()> {
    roles::run(cli).await
}

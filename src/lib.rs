//! The `forum` command: configuration and the roles it runs.
//!
//! # Layout
//! - [`config`]: the command line and environment ([`Cli`]).
//! - [`roles`]: starting each role (gateway, command services, projectors)
//!   and running them together under one shutdown signal.
//! - [`replay_cli`]: `forum replay`: listing, rebuilding and verifying
//!   projections.
//! - [`progress`]: the progress of long command-line work (a bar on a
//!   terminal, plain lines otherwise).
//! - [`error`]: the crate's error type.

pub mod config;
pub mod error;
pub mod progress;
pub mod replay_cli;
pub mod roles;

pub use config::Cli;
pub use error::{Error, Result};

/// Logs to stderr, filtered by `RUST_LOG` (default `info`), spans exported
/// when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, and the metrics recorder
/// (see the `forum-telemetry` crate). Keep the guard until the process ends:
/// dropping it flushes the exported spans.
pub fn telemetry(role: &str) -> forum_telemetry::Guard {
    let guard = forum_telemetry::logs::init(role).unwrap_or_else(|e| {
        tracing::warn!(error = %e, "spans not exported");
        forum_telemetry::logs::Guard::none()
    });
    forum_telemetry::recorder::install(role);
    guard
}

/// Runs the command line's command to completion.
///
/// # Errors
/// Configuration, connection or start-up failures.
pub async fn run(cli: Cli) -> Result<()> {
    roles::run(cli).await
}

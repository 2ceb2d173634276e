//! `forum`: every role of the forum backend in one binary.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    forum::telemetry();
    match forum::run(forum::Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "stopped");
            eprintln!("forum: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

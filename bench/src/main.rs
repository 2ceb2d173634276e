//! `forum-bench`: see the crate docs and the README's "Benchmarks" section.

use clap::Parser;
use forum_bench::{cli::Cli, Outcome};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match forum_bench::run(Cli::parse()).await {
        Ok(Outcome::Done) => std::process::ExitCode::SUCCESS,
        Ok(Outcome::Errors) => std::process::ExitCode::from(1),
        Ok(Outcome::Interrupted) => std::process::ExitCode::from(130),
        Err(e) => {
            eprintln!("forum-bench: {e}");
            std::process::ExitCode::from(2)
        }
    }
}

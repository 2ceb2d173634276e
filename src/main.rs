//! `forum`: every role of the forum backend in one binary.

mod allocator;

use clap::Parser;

fn main() -> std::process::ExitCode {
    // Before any other thread exists (see `allocator::configure`).
    let allocator_set = allocator::configure();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("forum: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        forum::telemetry();
        if !allocator_set {
            tracing::warn!("glibc refused the mmap threshold: freed memory may stay resident");
        }
        match forum::run(forum::Cli::parse()).await {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(error = %e, "stopped");
                eprintln!("forum: {e}");
                std::process::ExitCode::FAILURE
            }
        }
    })
}

//! `forum`: every role of the forum backend in one binary.

mod allocator;

use clap::Parser;

fn main() -> std::process::ExitCode {
    // Before any other thread exists (see `allocator::configure`).
    let allocator_set = allocator::configure();
    let cli = forum::Cli::parse();
    // Outside the async runtime: the span exporter's HTTP client blocks.
    let telemetry = forum::telemetry(&cli.role());
    if !allocator_set {
        tracing::warn!("glibc refused the mmap threshold: freed memory may stay resident");
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("forum: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(async {
        match forum::run(cli).await {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(error = %e, "stopped");
                eprintln!("forum: {e}");
                std::process::ExitCode::FAILURE
            }
        }
    });
    drop(runtime);
    drop(telemetry);
    code
}

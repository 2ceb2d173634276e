//! The benchmark suite of the forum: loads the whole system over loopback
//! from a separate process, checks that what it measured is correct (every
//! acknowledged write is there, every expected frame arrived once), and
//! measures, in the same run, the floors of the system's parts (a raw NATS
//! request-reply, a raw NATS publish→subscribe hop, a raw Postgres commit, a
//! raw `COPY` of rows of the same shape) and, for W1, a plain axum + sqlx
//! server doing one INSERT per request (the CRUD floor), so ratios stay
//! meaningful on a noisy shared machine. It prints a table and writes a
//! JSON file. It is a benchmark, not a test: no figure ever makes it fail.
//!
//! # Layout
//! - [`cli`]: the command line (scenarios, target, paths, scale).
//! - [`system`]: the system under load: a `forum up` child on a fresh
//!   database and NATS prefix (or an already running system), its clean-up,
//!   its resident memory; the open-files limit; loopback checks.
//! - [`floors`]: the raw NATS and Postgres measurements every scenario takes.
//! - [`crud`]: the CRUD floor of W1: the server (run by the hidden
//!   subcommand `forum-bench crud-floor`) and the suite's side that starts
//!   it on a database of its own.
//! - [`api`]: the HTTP client side of the API contract (register, write,
//!   page through lists).
//! - [`ws`]: the WebSocket client side of the live feed: connect, read and
//!   time frames, count gaps and duplicates.
//! - [`gen`]: realistic event logs for the rebuild scenario, built from the
//!   real event types, with consistent stream versions and counts.
//! - [`copy`]: Postgres `COPY` text encoding.
//! - [`stats`]: latency samples and percentiles.
//! - [`report`]: the result rows, the table and the JSON file.
//! - [`scrape`], [`prom`], [`dashboard`]: `--metrics-plot`: the gateway's
//!   `/metrics` scraped once a second (the text format and histogram
//!   quantiles in [`prom`]), drawn as an SVG dashboard with its series in
//!   JSON.
//! - [`scenarios`]: one module per scenario (W1, W2, L1–L4, R1).
//! - [`error`]: the crate's error type.

pub mod api;
pub mod cli;
pub mod copy;
pub mod crud;
pub mod dashboard;
pub mod error;
pub mod floors;
pub mod gen;
pub mod prom;
pub mod report;
pub mod scenarios;
pub mod scrape;
pub mod stats;
pub mod system;
pub mod ws;

pub use error::{Error, Result};

use std::io::Write as _;

use cli::{Cli, Internal, Plan, Scenario};
use report::{Report, Status};
use scenarios::Ctx;
use system::Settings;

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every scenario ran or was skipped (whatever its figures).
    Done,
    /// A scenario stopped on an error.
    Errors,
    /// Ctrl-C.
    Interrupted,
}

/// Runs the scenarios of `cli`, prints the table and writes the JSON file
/// (after every scenario, so an interrupted run keeps what it measured); or
/// runs the process the hidden subcommand names, until it is stopped.
///
/// With `--metrics-plot`, the system's `/metrics` is scraped during the
/// whole run and the dashboard written at its end (an interrupted run
/// included).
///
/// # Errors
/// A URL off loopback, the results file or the dashboard cannot be
/// written; the hidden subcommand's failure.
pub async fn run(cli: Cli) -> Result<Outcome> {
    if let Some(Internal::CrudFloor(config)) = cli.internal {
        crud::server::serve(config).await?;
        return Ok(Outcome::Done);
    }
    system::require_loopback("--pg", &cli.pg)?;
    system::require_loopback("--nats", &cli.nats)?;
    if let Some(t) = &cli.target {
        system::require_loopback("--target", t)?;
    }
    if let Some(plot) = &cli.metrics_plot {
        check_plot_path(plot, &cli.json)?;
    }
    let mut environment = Vec::new();
    match system::raise_nofile() {
        Ok((before, now, hard)) => {
            let line = if now > before {
                format!("open-files limit raised from {before} to {now} (hard limit {hard}); the started forum inherits it")
            } else {
                format!("open-files limit {now} (hard limit {hard})")
            };
            eprintln!("bench: {line}");
            environment.push(line);
        }
        Err(e) => eprintln!("bench: could not raise the open-files limit: {e}"),
    }
    if let Ok(n) = std::thread::available_parallelism() {
        environment.push(format!(
            "{n} cores, shared by the load generator, the system, Postgres and NATS"
        ));
    }
    let forum_bin = match &cli.forum_bin {
        Some(p) => p.clone(),
        None => std::env::current_exe()?
            .parent()
            .map(|d| d.join("forum"))
            .ok_or_else(|| {
                Error::Config("cannot locate the forum binary; pass --forum-bin".into())
            })?,
    };
    let bench_bin = std::env::current_exe()?;
    let scraper = match &cli.metrics_plot {
        Some(_) => Some(scrape::Scraper::start()?),
        None => None,
    };
    let ctx = Ctx {
        settings: Settings {
            pg: cli.pg.clone(),
            nats: cli.nats.clone(),
            forum_bin,
            target: cli.target.clone(),
            forum_log: cli.forum_log.clone(),
            db_max_connections: (cli.db_max_connections > 0).then_some(cli.db_max_connections),
            bench_bin,
        },
        plan: Plan::of(&cli),
        metrics: scraper.as_ref().map(scrape::Scraper::tap),
    };
    let mut report = Report {
        started_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        commit: git_commit(),
        environment,
        scenarios: Vec::new(),
    };
    let mut outcome = Outcome::Done;
    for s in Scenario::expand(&cli.scenarios) {
        let (reports, interrupted) = scenarios::run(&ctx, s).await;
        if reports
            .iter()
            .any(|r| matches!(r.status, Status::Failed(_)))
        {
            outcome = Outcome::Errors;
        }
        report.scenarios.extend(reports);
        write_json(&cli.json, &report)?;
        if interrupted {
            outcome = Outcome::Interrupted;
            break;
        }
    }
    let recording = match scraper {
        Some(s) => Some(s.stop().await?),
        None => None,
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", report.table())?;
    for s in &report.scenarios {
        for n in &s.notes {
            writeln!(out, "{}: {n}", s.name)?;
        }
    }
    writeln!(out, "results written to {}", cli.json.display())?;
    if let (Some(rec), Some(path)) = (recording, &cli.metrics_plot) {
        if rec.scrapes.is_empty() {
            eprintln!(
                "bench: no scrape of /metrics succeeded ({} failed{}); the dashboard is empty",
                rec.failed,
                rec.first_failure
                    .as_deref()
                    .map(|f| format!(", first: {f}"))
                    .unwrap_or_default()
            );
        }
        let title = format!("forum-bench: the gateway's /metrics, {}", report.started_at);
        dashboard::write(&rec, path, &title)?;
        writeln!(
            out,
            "metrics dashboard written to {} ({} scrapes, {} failed; series in {})",
            path.display(),
            rec.scrapes.len(),
            rec.failed,
            dashboard::json_path(path).display()
        )?;
    }
    Ok(outcome)
}

/// Refuses a `--metrics-plot` path whose JSON file would be the results
/// file or the SVG itself, or whose folder does not exist: found at the
/// start, not after the run.
fn check_plot_path(plot: &std::path::Path, results: &std::path::Path) -> Result<()> {
    let json = dashboard::json_path(plot);
    if json == plot || json == results {
        return Err(Error::Config(format!(
            "--metrics-plot {} would write its series to {}: give it another name (e.g. metrics.svg)",
            plot.display(),
            json.display()
        )));
    }
    match plot.parent() {
        Some(dir) if !dir.as_os_str().is_empty() && !dir.is_dir() => Err(Error::Config(format!(
            "--metrics-plot: no folder {}",
            dir.display()
        ))),
        _ => Ok(()),
    }
}

fn write_json(path: &std::path::Path, report: &Report) -> Result<()> {
    let text = serde_json::to_string_pretty(&report.json())?;
    std::fs::write(path, text + "\n")?;
    Ok(())
}

fn git_commit() -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

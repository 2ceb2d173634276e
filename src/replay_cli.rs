//! `forum replay`: list, rebuild and verify projections (see
//! `docs/REPLAY.md`).

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use forum_projections::replay::{self, RebuildOptions, Report};
use forum_projections::Projection;
use forum_store::setup;

use crate::config::Common;
use crate::{Error, Result};

/// What `forum replay` does.
#[derive(Debug, Subcommand)]
pub enum ReplayCommand {
    /// Every projection version: state, checkpoint and lag per log, row
    /// counts, recorded poison event.
    List,
    /// Fill a new version beside the live one from the event logs, then
    /// switch reads to it.
    Rebuild {
        /// Which projections.
        #[command(flatten)]
        which: Which,
        /// Events per read and per transaction during the catch-up.
        #[arg(long, default_value_t = replay::DEFAULT_BATCH, hide = true)]
        batch: i64,
        /// Lag (events per log) under which the logs are locked and reads switch.
        #[arg(long, default_value_t = replay::DEFAULT_SWITCH_LAG)]
        switch_lag: u64,
    },
    /// Compare two versions table by table; exits non-zero on a difference.
    Verify {
        /// Which projections.
        #[command(flatten)]
        which: Which,
        /// The two versions to compare (default: the newest retired one
        /// and the live one).
        #[arg(long, num_args = 2, value_names = ["OLD", "NEW"])]
        versions: Option<Vec<u32>>,
    },
}

/// A projection name or `--all`.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct Which {
    /// The projection's name.
    projection: Option<String>,
    /// Every projection of this build.
    #[arg(long)]
    all: bool,
}

impl Which {
    fn resolve(&self) -> Result<Vec<Arc<dyn Projection>>> {
        if self.all {
            return Ok(forum_projections::all());
        }
        let name = self.projection.as_deref().unwrap_or_default();
        forum_projections::by_name(name)
            .map(|p| vec![p])
            .ok_or_else(|| {
                let known: Vec<&str> = forum_projections::all().iter().map(|p| p.name()).collect();
                Error::Config(format!(
                    "unknown projection {name:?}; this build has {known:?}"
                ))
            })
    }
}

/// Runs a `forum replay` command.
///
/// # Errors
/// Connection failures, a refused or failed rebuild, a verification that
/// found differences.
pub async fn run(common: &Common, command: ReplayCommand) -> Result<()> {
    let pool = setup::connect_pg(&common.database_url, common.db_max_connections.max(4)).await?;
    match command {
        ReplayCommand::List => list(&pool).await,
        ReplayCommand::Rebuild {
            which,
            batch,
            switch_lag,
        } => {
            let options = RebuildOptions { batch, switch_lag };
            for p in which.resolve()? {
                rebuild(&pool, p, options).await?;
            }
            Ok(())
        }
        ReplayCommand::Verify { which, versions } => {
            let versions = versions.and_then(|v| match v[..] {
                [a, b] => Some((a, b)),
                _ => None,
            });
            let mut differences = 0;
            for p in which.resolve()? {
                differences += verify(&pool, &*p, versions).await?;
            }
            if differences > 0 {
                Err(Error::Failed(format!(
                    "verification found {differences} differing table(s)"
                )))
            } else {
                Ok(())
            }
        }
    }
}

async fn list(pool: &sqlx::PgPool) -> Result<()> {
    let mut out = std::io::stdout().lock();
    for v in replay::list(pool).await? {
        let sources: Vec<String> = v
            .sources
            .iter()
            .map(|s| {
                format!(
                    "{} checkpoint {} head {} lag {}",
                    s.service,
                    s.checkpoint,
                    s.head,
                    s.lag()
                )
            })
            .collect();
        let rows: Vec<String> = v.rows.iter().map(|(t, n)| format!("{t} {n}")).collect();
        writeln!(
            out,
            "{} v{} {}: {}; rows: {}",
            v.projection,
            v.version,
            v.state,
            sources.join(", "),
            rows.join(", ")
        )?;
        if let Some(e) = v.error {
            writeln!(
                out,
                "  stopped at poison event: service {} position {} type {}: {}",
                e.service.as_deref().unwrap_or("-"),
                e.position
                    .map(|p| p.to_string())
                    .unwrap_or_else(|| "-".into()),
                e.event_type.as_deref().unwrap_or("-"),
                e.message
            )?;
        }
    }
    Ok(())
}

async fn rebuild(
    pool: &sqlx::PgPool,
    p: Arc<dyn Projection>,
    options: RebuildOptions,
) -> Result<()> {
    let mut meter = Meter::new();
    let mut report = |r: Report| meter.report(r);
    replay::rebuild(pool, p, options, &mut report).await?;
    Ok(())
}

/// Prints a rebuild's reports: a bar rewritten in place on a terminal,
/// plain lines about once a second otherwise.
struct Meter {
    terminal: bool,
    last: Option<Instant>,
}

impl Meter {
    fn new() -> Meter {
        Meter {
            terminal: std::io::stderr().is_terminal(),
            last: None,
        }
    }

    fn report(&mut self, r: Report) {
        match r {
            Report::Started {
                projection,
                version,
                live,
                resumed_from,
            } => {
                match resumed_from {
                    Some(cps) => {
                        let at: Vec<String> = cps.iter().map(|(s, p)| format!("{s} {p}")).collect();
                        println!(
                            "resuming {projection} v{version} from {} (live: v{live})",
                            at.join(", ")
                        );
                    }
                    None => println!("rebuilding {projection} v{version} (live: v{live})"),
                }
                let _ = std::io::stdout().flush();
            }
            Report::Progress {
                projection,
                done,
                total,
                applied,
                elapsed,
            } => {
                let now = Instant::now();
                let due = self
                    .last
                    .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1));
                if !self.terminal && !due {
                    return;
                }
                self.last = Some(now);
                let rate = applied as f64 / elapsed.as_secs_f64().max(1e-3);
                let eta = if rate > 0.0 {
                    format!("{:.0}s", total.saturating_sub(done) as f64 / rate)
                } else {
                    "?".into()
                };
                if self.terminal {
                    let width = 30usize;
                    let filled = (done as f64 / total.max(1) as f64 * width as f64) as usize;
                    eprint!(
                        "\r{projection} [{}{}] {done}/{total} events, {rate:.0} events/s, ETA {eta}  ",
                        "#".repeat(filled.min(width)),
                        ".".repeat(width - filled.min(width))
                    );
                } else {
                    eprintln!("{projection}: {done}/{total} events, {rate:.0} events/s, ETA {eta}");
                }
            }
            Report::Switched {
                projection,
                version,
                retired,
                applied,
                elapsed,
            } => {
                if self.terminal {
                    eprintln!();
                }
                let rate = applied as f64 / elapsed.as_secs_f64().max(1e-3);
                let retired = retired
                    .map(|v| format!("v{v}"))
                    .unwrap_or_else(|| "-".into());
                println!(
                    "switched {projection} to v{version} (retired {retired}): {applied} events in {:.1}s, {rate:.0} events/s",
                    elapsed.as_secs_f64()
                );
            }
        }
    }
}

async fn verify(
    pool: &sqlx::PgPool,
    p: &dyn Projection,
    versions: Option<(u32, u32)>,
) -> Result<usize> {
    let v = replay::verify(pool, p, versions).await?;
    let mut differences = 0;
    for t in &v.tables {
        let ignored = if t.ignored.is_empty() {
            String::new()
        } else {
            format!(" (ignored columns: {})", t.ignored.join(", "))
        };
        if t.same() {
            println!(
                "{} v{} = v{}: {}: {} rows, md5 {}{ignored}",
                v.projection, v.left, v.right, t.table, t.right_rows, t.right_checksum
            );
        } else {
            differences += 1;
            println!(
                "{} v{} != v{}: {}: rows {} vs {}, md5 {} vs {}, {} rows only in v{}, {} rows only in v{}{ignored}",
                v.projection,
                v.left,
                v.right,
                t.table,
                t.left_rows,
                t.right_rows,
                t.left_checksum,
                t.right_checksum,
                t.only_left,
                v.left,
                t.only_right,
                v.right
            );
        }
    }
    Ok(differences)
}

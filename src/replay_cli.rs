//! `forum replay`: list, rebuild and verify projections, and retry the
//! events they parked (see `docs/REPLAY.md`).

use std::io::Write;
use std::sync::Arc;

use clap::{Args, Subcommand};
use forum_commands::notifications::deriver;
use forum_projections::poison::{self, Parked, ParkedEvent};
use forum_projections::replay::{self, RebuildOptions, Report};
use forum_projections::Projection;
use forum_store::setup;

use crate::config::Common;
use crate::progress::Progress;
use crate::{Error, Result};

/// What `forum replay` does.
#[derive(Debug, Subcommand)]
pub enum ReplayCommand {
    /// Every projection version: state, checkpoint and lag per log, row
    /// counts, parked (poison) events; then the notifications deriver's
    /// parked events.
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
    /// Apply the parked (poison) events of a projection again, after a
    /// fix: those that now apply leave the list, the others stay with the
    /// new error; exits non-zero while some stay parked.
    RetryPoison {
        /// The projection's name, or `notifier` for the notifications
        /// deriver.
        name: String,
        /// The projection version (default: the live one).
        #[arg(long)]
        version: Option<u32>,
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
        resolve(self.projection.as_deref().unwrap_or_default()).map(|p| vec![p])
    }
}

/// The projection named `name`.
fn resolve(name: &str) -> Result<Arc<dyn Projection>> {
    forum_projections::by_name(name).ok_or_else(|| {
        let known: Vec<&str> = forum_projections::all().iter().map(|p| p.name()).collect();
        Error::Config(format!(
            "unknown projection {name:?}; this build has {known:?}"
        ))
    })
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
                    "verification found {differences} difference(s)"
                )))
            } else {
                Ok(())
            }
        }
        ReplayCommand::RetryPoison { name, version } => retry_poison(&pool, &name, version).await,
    }
}

/// One parked event on one line.
fn parked_line(e: &Parked) -> String {
    format!(
        "{} position {} {} event {}: {}",
        e.service, e.position, e.event_type, e.event_id, e.error
    )
}

fn parked_rows(out: &mut impl Write, parked: &[ParkedEvent]) -> std::io::Result<()> {
    for p in parked {
        let retried = p
            .retried_at
            .map(|t| format!(", {} attempts, last {}", p.attempts, t.to_rfc3339()))
            .unwrap_or_default();
        writeln!(
            out,
            "  parked: {} (parked {}{retried})",
            parked_line(&p.event),
            p.parked_at.to_rfc3339()
        )?;
    }
    Ok(())
}

async fn retry_poison(pool: &sqlx::PgPool, name: &str, version: Option<u32>) -> Result<()> {
    let (applied, still, newly) = if name == deriver::FOLLOWER {
        let r = deriver::retry_parked(pool).await?;
        let line = |c: &deriver::ParkedCause| {
            format!(
                "{} position {} {} event {}: {}",
                c.service, c.position, c.event_type, c.event_id, c.error
            )
        };
        (
            r.applied.iter().map(line).collect::<Vec<_>>(),
            r.still.iter().map(line).collect::<Vec<_>>(),
            r.newly.iter().map(line).collect::<Vec<_>>(),
        )
    } else {
        let p = resolve(name)?;
        let r = poison::retry(pool, &*p, version).await?;
        println!(
            "{name} v{}: {} stream(s), {} event(s) applied again",
            r.version, r.streams, r.events
        );
        (
            r.applied
                .iter()
                .map(|e| {
                    format!(
                        "{} position {} {} event {}",
                        e.service, e.position, e.event_type, e.event_id
                    )
                })
                .collect(),
            r.still.iter().map(parked_line).collect(),
            r.newly.iter().map(parked_line).collect(),
        )
    };
    for a in &applied {
        println!("applied: {a}");
    }
    for s in &still {
        println!("still parked: {s}");
    }
    for n in &newly {
        println!("newly parked: {n}");
    }
    let parked = still.len() + newly.len();
    println!("{name}: {} applied, {parked} still parked", applied.len());
    if parked > 0 {
        Err(Error::Failed(format!(
            "{parked} event(s) of {name} still parked"
        )))
    } else {
        Ok(())
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
        if !v.parked.is_empty() {
            writeln!(out, "  {} parked event(s):", v.parked.len())?;
            parked_rows(&mut out, &v.parked)?;
        }
    }
    let mut conn = pool.acquire().await.map_err(forum_store::Error::from)?;
    let notifier = poison::list(&mut conn, Some(deriver::FOLLOWER), None).await?;
    writeln!(
        out,
        "{} (notifications deriver): {} parked event(s)",
        deriver::FOLLOWER,
        notifier.len()
    )?;
    parked_rows(&mut out, &notifier)?;
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

/// Prints a rebuild's reports: what it does on stdout, and its progress
/// ([`Progress`]: a bar on a terminal, plain lines once a second
/// otherwise) on stderr.
#[derive(Default)]
struct Meter {
    progress: Option<Progress>,
}

impl Meter {
    fn new() -> Meter {
        Meter::default()
    }

    /// Prints `line` on stdout, around the bar if there is one.
    fn println(&self, line: &str) {
        match &self.progress {
            Some(p) => p.println(line),
            None => println!("{line}"),
        }
        let _ = std::io::stdout().flush();
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
                        self.println(&format!(
                            "resuming {projection} v{version} from {} (live: v{live})",
                            at.join(", ")
                        ));
                    }
                    None => self.println(&format!(
                        "rebuilding {projection} v{version} (live: v{live})"
                    )),
                }
                self.progress = Some(Progress::new(projection, 0, "events"));
            }
            Report::Progress {
                projection,
                done,
                total,
                applied,
                elapsed,
            } => {
                let progress = self
                    .progress
                    .get_or_insert_with(|| Progress::new(projection, total, "events"));
                let rate = applied as f64 / elapsed.as_secs_f64().max(1e-3);
                progress.set(done, total, rate, "");
            }
            Report::Parked {
                projection,
                version,
                events,
            } => {
                for e in &events {
                    self.println(&format!(
                        "parked on {projection} v{version}: {}",
                        parked_line(e)
                    ));
                }
            }
            Report::Switched {
                projection,
                version,
                retired,
                applied,
                parked,
                elapsed,
            } => {
                if let Some(progress) = self.progress.take() {
                    progress.finish();
                }
                let rate = applied as f64 / elapsed.as_secs_f64().max(1e-3);
                let retired = retired
                    .map(|v| format!("v{v}"))
                    .unwrap_or_else(|| "-".into());
                self.println(&format!(
                    "switched {projection} to v{version} (retired {retired}): {applied} events in {:.1}s, {rate:.0} events/s",
                    elapsed.as_secs_f64()
                ));
                if parked > 0 {
                    self.println(&format!(
                        "{projection} v{version}: {parked} event(s) parked (see `forum replay list`)"
                    ));
                }
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
    for (version, parked) in [(v.left, &v.left_parked), (v.right, &v.right_parked)] {
        for p in parked {
            println!(
                "{} v{version}: parked: {}",
                v.projection,
                parked_line(&p.event)
            );
        }
    }
    if v.parked_same() {
        if !v.left_parked.is_empty() {
            println!(
                "{} v{} = v{}: the same {} event(s) parked on both",
                v.projection,
                v.left,
                v.right,
                v.right_parked.len()
            );
        }
    } else {
        differences += 1;
        println!(
            "{} v{} != v{}: parked events differ ({} vs {})",
            v.projection,
            v.left,
            v.right,
            v.left_parked.len(),
            v.right_parked.len()
        );
    }
    Ok(differences)
}

//! R1, rebuild: one million mixed events are written into the logs (real
//! event types and postcard payloads, gap-free positions, consistent stream
//! versions and counts: 20,000 registrations and sessions, 200,000 posts,
//! 400,000 comments, 360,000 reactions), then `forum replay rebuild --all`
//! rebuilds every projection. Measured: events per second, and the ratio of
//! the rebuild's time to a raw `COPY` of the finished rows into tables of
//! the same shape (indexes included). The rebuilt rows are checked against
//! what the generator expects.

use std::process::Stdio;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use sqlx::{PgConnection, Row as _};

use crate::floors::{self, Shape};
use crate::gen::{self, Expected, Mix, People, PostsLog, Rng, Row};
use crate::report::{Cmp, Metric, ScenarioReport, Unit};
use crate::scenarios::Ctx;
use crate::system::Env;
use crate::{copy, Error, Result};

/// Target: events rebuilt per second.
pub const TARGET_EVENTS_PER_S: f64 = 50_000.0;

/// Runs R1.
///
/// # Errors
/// Postgres failures, or a rebuild that fails.
pub async fn run(ctx: &Ctx, env: &Env) -> Result<ScenarioReport> {
    let plan = &ctx.plan;
    let mix = Mix::of_total(plan.r1_events);
    let floors = floors::measure(env, Shape::Event, plan.floor).await?;

    eprintln!("bench: R1: writing {} events into the logs", mix.total());
    let people = People::new(mix.users);
    let start_us = chrono::Utc::now().timestamp_micros() - 30 * 24 * 3_600_000_000;
    let mut conn = env.pool.acquire().await?;
    let t = Instant::now();
    let mut rng = Rng::new(1);
    let auth_rows = fill(
        &mut conn,
        "auth",
        gen::auth_log(&people, start_us, &mut rng),
    )
    .await?;
    let mut posts_log = PostsLog::new(&people, mix, start_us + 200_000_000, 2, plan.r1_run_length);
    let posts_rows = fill(&mut conn, "posts", posts_log.by_ref()).await?;
    let fill_secs = t.elapsed().as_secs_f64();
    sqlx::query("analyze auth.events")
        .execute(&mut *conn)
        .await?;
    sqlx::query("analyze posts.events")
        .execute(&mut *conn)
        .await?;
    let events = auth_rows + posts_rows;
    let expected = Expected {
        users: mix.users as i64,
        sessions: mix.users as i64,
        ..posts_log.expected()
    };

    eprintln!("bench: R1: forum replay rebuild --all");
    let mut cmd = tokio::process::Command::from(env.forum_command(&["replay", "rebuild", "--all"]));
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let scans0 = seq_scans(&mut conn).await?;
    let cpu0 = env.cpu();
    let t = Instant::now();
    let mut child = cmd.spawn()?;
    let stdout = tokio::spawn(read_all(child.stdout.take()));
    let stderr = tokio::spawn(read_all(child.stderr.take()));
    // (seconds, events applied by the new versions) every 15 s.
    let mut progress: Vec<(f64, u64)> = Vec::new();
    let mut cpu1 = None;
    let status = loop {
        tokio::select! {
            s = child.wait() => break Some(s?),
            _ = tokio::time::sleep(Duration::from_secs(15)) => {
                progress.push((t.elapsed().as_secs_f64(), applied(&mut conn).await?));
                // Sampled while the rebuild's processes live: an exited
                // process's time is no longer in /proc.
                cpu1 = Some(env.cpu());
                if t.elapsed() >= plan.r1_timeout {
                    child.kill().await?;
                    break None;
                }
            }
        }
    };
    let rebuild_secs = t.elapsed().as_secs_f64();
    let cpu = cpu1.map(|c| c.since(&cpu0)).unwrap_or_default();
    let scans = seq_scans(&mut conn).await?;
    let stdout = stdout.await.unwrap_or_default();
    let stderr = stderr.await.unwrap_or_default();
    let mut r = ScenarioReport::new("R1");
    r.push(Metric::new(
        "events in the logs",
        events as f64,
        Unit::Count,
    ));
    r.push(
        Metric::new(
            "fill: COPY into the logs",
            events as f64 / fill_secs.max(1e-9),
            Unit::PerSec,
        )
        .floor("COPY event rows", floors.copy_rows_per_s, Unit::PerSec),
    );
    r.note(format!(
        "{} users (+ sessions), {} posts, {} comments, {} reactions, {}; logs analyzed before the rebuild",
        mix.users,
        mix.posts,
        mix.comments,
        mix.reactions,
        if plan.r1_run_length > 1 {
            format!("kinds in runs of mean length {} (diagnostic)", plan.r1_run_length)
        } else {
            "kinds interleaved at random as in a live forum".to_string()
        }
    ));
    r.note(format!(
        "rebuild progress (s, events applied): {}",
        series(&progress)
    ));
    if let Some(rate) = window_rate(&progress, 0) {
        r.push(Metric::new(
            "rebuild: events/s, first 15 s",
            rate,
            Unit::PerSec,
        ));
    }
    if let Some(rate) = window_rate(&progress, progress.len().saturating_sub(1)) {
        r.push(Metric::new(
            "rebuild: events/s, last 15 s",
            rate,
            Unit::PerSec,
        ));
    }
    r.push(Metric::new(
        "read-model seq scans during the rebuild",
        (scans.0 - scans0.0) as f64,
        Unit::Count,
    ));
    r.push(Metric::new(
        "rows read by those seq scans",
        (scans.1 - scans0.1) as f64,
        Unit::Count,
    ));
    r.cpu(&cpu);
    let Some(status) = status else {
        let done = progress.last().map_or(0, |p| p.1);
        r.push(
            Metric::new(
                "rebuild: events applied/s (stopped at the limit)",
                done as f64 / rebuild_secs.max(1e-9),
                Unit::PerSec,
            )
            .target(Cmp::AtLeast, TARGET_EVENTS_PER_S),
        );
        r.push(Metric::new(
            "rebuild: events applied before the limit",
            done as f64,
            Unit::Count,
        ));
        r.note(format!(
            "the rebuild did not finish within {:.0} s and was stopped",
            plan.r1_timeout.as_secs_f64()
        ));
        r.metrics.extend(floors.metrics());
        r.elapsed = Duration::from_secs_f64(fill_secs + rebuild_secs);
        return Ok(r);
    };
    if !status.success() {
        let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
        return Err(Error::Protocol(format!(
            "forum replay rebuild --all exited with {status}: {}",
            tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
        )));
    }
    let switched: Vec<(String, u64, f64)> = stdout.lines().filter_map(parse_switched).collect();

    let (wrong, details) = check(&mut conn, &expected).await?;
    let (rows, copy_secs) = copy_finished(&mut conn).await?;

    r.push(
        Metric::new(
            "rebuild --all: events/s",
            events as f64 / rebuild_secs.max(1e-9),
            Unit::PerSec,
        )
        .target(Cmp::AtLeast, TARGET_EVENTS_PER_S),
    );
    r.push(
        Metric::new("rebuild --all: wall time", rebuild_secs, Unit::Seconds).floor(
            "COPY of the finished rows",
            copy_secs,
            Unit::Seconds,
        ),
    );
    for (name, applied, secs) in &switched {
        // The rebuild prints tenths of seconds: a rate only when it means something.
        if *secs >= 0.5 {
            r.push(Metric::new(
                format!("rebuild {name}: events applied/s"),
                *applied as f64 / secs,
                Unit::PerSec,
            ));
        }
        r.note(format!(
            "rebuild {name}: {applied} events applied in {secs:.1} s"
        ));
    }
    r.push(Metric::new("finished rows", rows as f64, Unit::Count));
    r.push(Metric::new(
        "COPY of the finished rows",
        rows as f64 / copy_secs.max(1e-9),
        Unit::PerSec,
    ));
    r.push(
        Metric::new("rebuilt figures not as expected", wrong as f64, Unit::Count)
            .target(Cmp::AtMost, 0.0),
    );
    r.metrics.extend(floors.metrics());
    for d in details {
        r.note(d);
    }
    r.elapsed = Duration::from_secs_f64(fill_secs + rebuild_secs + copy_secs);
    Ok(r)
}

async fn read_all<R: tokio::io::AsyncRead + Unpin>(from: Option<R>) -> String {
    use tokio::io::AsyncReadExt as _;
    let mut text = String::new();
    if let Some(mut r) = from {
        let _ = r.read_to_string(&mut text).await;
    }
    text
}

/// Events applied so far by the newest version of every projection.
async fn applied(conn: &mut PgConnection) -> Result<u64> {
    let n: i64 = sqlx::query_scalar(
        "select coalesce(sum(c.position), 0)::bigint from proj.checkpoints c
         where (c.projection, c.version) in
               (select projection, max(version) from proj.registry group by projection)",
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok(n as u64)
}

/// (sequential scans, rows they read) of every read-model table so far.
async fn seq_scans(conn: &mut PgConnection) -> Result<(i64, i64)> {
    Ok(sqlx::query_as(
        "select coalesce(sum(seq_scan), 0)::bigint, coalesce(sum(seq_tup_read), 0)::bigint
         from pg_stat_user_tables where schemaname like 'proj\\_%'",
    )
    .fetch_one(&mut *conn)
    .await?)
}

/// Events per second in the window ending at progress sample `i`.
fn window_rate(progress: &[(f64, u64)], i: usize) -> Option<f64> {
    let (t1, n1) = *progress.get(i)?;
    let (t0, n0) = if i == 0 { (0.0, 0) } else { progress[i - 1] };
    (t1 > t0).then(|| n1.saturating_sub(n0) as f64 / (t1 - t0))
}

/// `15 s: 30000, 30 s: 52000, …`
fn series(progress: &[(f64, u64)]) -> String {
    progress
        .iter()
        .map(|(t, n)| format!("{t:.0} s: {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Writes rows into `<service>.events` with one `COPY`, 4 MB at a time.
async fn fill(
    conn: &mut PgConnection,
    service: &str,
    rows: impl Iterator<Item = Row>,
) -> Result<u64> {
    let mut copy = conn
        .copy_in_raw(&format!(
            "copy {service}.events ({}) from stdin",
            gen::EVENT_COLUMNS
        ))
        .await?;
    let mut buf = String::with_capacity(5 << 20);
    for row in rows {
        gen::encode_row(&mut buf, &row);
        if buf.len() > 4 << 20 {
            copy.send(buf.as_bytes()).await?;
            buf.clear();
        }
    }
    if !buf.is_empty() {
        copy.send(buf.as_bytes()).await?;
    }
    Ok(copy.finish().await?)
}

/// Compares the rebuilt read views with what the generator expects;
/// returns the number of figures that differ and a note for each.
async fn check(conn: &mut PgConnection, e: &Expected) -> Result<(usize, Vec<String>)> {
    let row = sqlx::query(
        "select (select count(*) from read.users) as users,
                (select count(*) from read.sessions) as sessions,
                (select count(*) from read.posts) as posts,
                (select count(*) from read.comments) as comments,
                (select count(*) from read.reactions) as reactions,
                (select coalesce(sum(comment_count), 0)::bigint from read.posts) as comment_counts,
                (select coalesce(sum(likes), 0)::bigint from read.posts)
                  + (select coalesce(sum(likes), 0)::bigint from read.comments) as likes,
                (select coalesce(sum(dislikes), 0)::bigint from read.posts)
                  + (select coalesce(sum(dislikes), 0)::bigint from read.comments) as dislikes",
    )
    .fetch_one(&mut *conn)
    .await?;
    let figures = [
        ("users", e.users),
        ("sessions", e.sessions),
        ("posts", e.posts),
        ("comments", e.comments),
        ("reactions", e.reactions),
        ("comment_counts", e.comments),
        ("likes", e.likes),
        ("dislikes", e.dislikes),
    ];
    let mut notes = Vec::new();
    for (name, want) in figures {
        let got: i64 = row.try_get(name)?;
        if got != want {
            notes.push(format!("rebuilt {name}: {got}, expected {want}"));
        }
    }
    Ok((notes.len(), notes))
}

/// Copies every table of every live projection version out, then into an
/// empty table of the same shape (`like … including all`: indexes too) in
/// `bench_scratch`; returns the rows and the seconds the copies in took.
async fn copy_finished(conn: &mut PgConnection) -> Result<(u64, f64)> {
    let tables: Vec<(String, String)> = sqlx::query_as(
        "select t.table_schema::text, t.table_name::text
         from proj.registry r
         join information_schema.tables t
           on t.table_schema = 'proj_' || r.projection || '_v' || r.version
         where r.state = 'live' and t.table_type = 'BASE TABLE'
         order by 1, 2",
    )
    .fetch_all(&mut *conn)
    .await?;
    sqlx::query("create schema if not exists bench_scratch")
        .execute(&mut *conn)
        .await?;
    let mut rows = 0;
    let mut secs = 0.0;
    for (schema, table) in tables {
        let data: Vec<u8> = conn
            .copy_out_raw(&format!("copy {schema}.{table} to stdout"))
            .await?
            .try_fold(Vec::new(), |mut acc, chunk| async move {
                acc.extend_from_slice(&chunk);
                Ok(acc)
            })
            .await?;
        let scratch = format!("bench_scratch.{schema}_{table}");
        sqlx::query(&format!(
            "create table {scratch} (like {schema}.{table} including all)"
        ))
        .execute(&mut *conn)
        .await?;
        let t = Instant::now();
        rows += copy::copy_in(conn, &format!("copy {scratch} from stdin"), &data).await?;
        secs += t.elapsed().as_secs_f64();
        sqlx::query(&format!("drop table {scratch}"))
            .execute(&mut *conn)
            .await?;
    }
    Ok((rows, secs))
}

/// Parses `switched NAME to vN (retired vM): APPLIED events in SECSs, R events/s`.
pub fn parse_switched(line: &str) -> Option<(String, u64, f64)> {
    let rest = line.strip_prefix("switched ")?;
    let (name, rest) = rest.split_once(" to v")?;
    let (_, rest) = rest.split_once("): ")?;
    let (applied, rest) = rest.split_once(" events in ")?;
    let (secs, _) = rest.split_once("s,")?;
    Some((name.to_string(), applied.parse().ok()?, secs.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_rates_come_from_consecutive_samples() {
        let p = [(15.0, 30_000), (30.0, 45_000)];
        assert_eq!(window_rate(&p, 0), Some(2_000.0));
        assert_eq!(window_rate(&p, 1), Some(1_000.0));
        assert_eq!(window_rate(&p, 2), None);
        assert_eq!(series(&p), "15 s: 30000, 30 s: 45000");
    }

    #[test]
    fn the_rebuild_summary_line_is_parsed() {
        let line = "switched posts to v2 (retired v1): 960000 events in 17.3s, 55491 events/s";
        assert_eq!(
            parse_switched(line),
            Some(("posts".to_string(), 960_000, 17.3))
        );
        assert_eq!(parse_switched("rebuilding posts v2 (live: v1)"), None);
        assert_eq!(
            parse_switched("switched x to v2 (retired -): many events in 1s, 1 events/s"),
            None
        );
    }
}

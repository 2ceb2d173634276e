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
    let cpu0 = env.cpu();
    let t = Instant::now();
    let out = tokio::time::timeout(Duration::from_secs(3600), cmd.output())
        .await
        .map_err(|_| Error::Timeout("forum replay rebuild --all".into()))??;
    let rebuild_secs = t.elapsed().as_secs_f64();
    let cpu = env.cpu().since(&cpu0);
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
        return Err(Error::Protocol(format!(
            "forum replay rebuild --all exited with {}: {}",
            out.status,
            tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
        )));
    }
    let switched: Vec<(String, u64, f64)> = stdout.lines().filter_map(parse_switched).collect();

    let (wrong, details) = check(&mut conn, &expected).await?;
    let (rows, copy_secs) = copy_finished(&mut conn).await?;

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
    r.cpu(&cpu);
    r.metrics.extend(floors.metrics());
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
    for d in details {
        r.note(d);
    }
    r.elapsed = Duration::from_secs_f64(fill_secs + rebuild_secs + copy_secs);
    Ok(r)
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

//! W1, writes under load: 64 users, each on its own HTTP/1.1 keep-alive
//! connection, write for 15 s as fast as answers come (closed loop); every
//! write answers after the read models have it (read-your-writes). Three
//! parts: `POST /api/posts`, `POST /api/posts/{id}/comments` (on 16 posts)
//! and `POST /api/conversations/{user}/messages` (each user to the next).
//! Afterwards every acknowledged id is looked up in the lists the API
//! serves (posts by author, comments of each post, each conversation).
//!
//! **The CRUD floor.** Before the forum's load, each part loads the CRUD
//! floor ([`crate::crud`]: a plain axum + sqlx server, one `insert …
//! returning` per request, a pool as large as the forum's) exactly the same
//! way: the same users' tokens, connections, duration and bodies (same
//! generator seeds), the comments on 16 posts created on it first. The
//! report then gives, per part, the forum's requests/s against the floor's
//! (target ≥ [`MIN_RPS_RATIO`]×), its p50 and p99 against the floor's (p99
//! target ≤ [`MAX_P99_RATIO`]×), the Postgres transactions per acknowledged
//! write of the forum's database (`pg_stat_database.xact_commit` before
//! the load and once Postgres has published all of it, 11 s after; target
//! ≤ [`MAX_PG_TRANSACTIONS_PER_WRITE`])
//! and the floor's own errors, transactions per write and CPU. When the
//! floor cannot be started, the forum is still measured and the report says
//! why the ratios are missing.
//!
//! **Memory at rest.** Last, `W1-memory` gives the resident memory (`VmRSS`)
//! of the started `forum up` at rest, [`REST_AFTER`] after W1's last request,
//! once its registrations and every part's writes are done (target ≤
//! [`MAX_REST_RSS_MIB`] MiB), with its resident memory just after start and
//! its peak (`VmHWM`) for comparison (password hashing once left hundreds
//! of MiB in glibc's arenas for good: README, "Memory at rest").

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};

use crate::api::{self, User};
use crate::crud::CrudFloor;
use crate::floors::{self, Floors, Shape};
use crate::gen::{filler, Rng};
use crate::report::{Cmp, Metric, ScenarioReport, Unit};
use crate::scenarios::Ctx;
use crate::stats::Samples;
use crate::system::{self, Cpu, Env, PgStats};
use crate::{Error, Result};

/// Target: the forum's requests/s at least this many times the CRUD
/// floor's.
pub const MIN_RPS_RATIO: f64 = 1.0;
/// Target: the forum's p99 at most this many times the CRUD floor's.
pub const MAX_P99_RATIO: f64 = 2.0;
/// Target: Postgres transactions per acknowledged write in the forum's
/// database, at most.
pub const MAX_PG_TRANSACTIONS_PER_WRITE: f64 = 1.2;
/// Target: resident memory of `forum up` at rest after W1, MiB, at most.
pub const MAX_REST_RSS_MIB: f64 = 128.0;
/// How long after W1's last request its resident memory counts as at rest:
/// the writes' projections and notifications are done long before, and the
/// password hasher frees its buffers 2 s after its last hash.
pub const REST_AFTER: Duration = Duration::from_secs(5);

/// The server a load is aimed at.
#[derive(Clone, Copy)]
enum Aim<'a> {
    /// The system under test.
    Forum(&'a Env),
    /// The CRUD floor.
    Crud(&'a CrudFloor),
}

impl Aim<'_> {
    fn base(&self) -> &str {
        match self {
            Aim::Forum(env) => &env.base,
            Aim::Crud(c) => &c.base,
        }
    }

    fn cpu(&self) -> Cpu {
        match self {
            Aim::Forum(env) => env.cpu(),
            Aim::Crud(c) => c.cpu(),
        }
    }

    /// The counters of its database, when it is known (not for a system
    /// given with `--target`).
    async fn pg(&self) -> Result<Option<PgStats>> {
        match self {
            Aim::Forum(env) if env.spawned => Ok(Some(PgStats::sample(env).await?)),
            Aim::Forum(_) => Ok(None),
            Aim::Crud(c) => Ok(Some(c.pg_stats().await?)),
        }
    }
}

/// What is written.
#[derive(Debug, Clone)]
enum Write {
    Post,
    Comment(Vec<String>),
    Message,
}

/// The outcome of one part's load.
struct Load {
    cpu: Vec<(&'static str, f64)>,
    pg: Option<[(&'static str, f64); 5]>,
    seq_note: Option<String>,
    ok: u64,
    errors: BTreeMap<String, u64>,
    latencies: Samples,
    elapsed: Duration,
    /// Acknowledged ids, per connection.
    acked: Vec<Vec<String>>,
}

impl Load {
    /// Acknowledged writes per second.
    fn rps(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// CPU time of the system under test (its server processes, Postgres
    /// and NATS: every group but the bench and the rest of the machine)
    /// during the load, per acknowledged write, in microseconds. The
    /// machine's cores divided by it bound the requests/s it can reach.
    fn cpu_per_write(&self) -> Option<f64> {
        if self.ok == 0 {
            return None;
        }
        let percent: f64 = self
            .cpu
            .iter()
            .filter(|(group, _)| !matches!(*group, "bench" | "other"))
            .map(|(_, pct)| pct)
            .sum();
        Some(percent / 100.0 * self.elapsed.as_secs_f64() * 1e6 / self.ok as f64)
    }
}

/// Runs W1's three parts, each on the CRUD floor `crud` (or the reason it
/// is missing) and then on the forum.
///
/// # Errors
/// Registration or set-up failures; a missing messages route only skips
/// that part.
pub async fn run(
    ctx: &Ctx,
    env: &Env,
    crud: std::result::Result<&CrudFloor, &str>,
) -> Result<Vec<ScenarioReport>> {
    let plan = &ctx.plan;
    let n = plan.w1_connections;
    let started_kib = env.forum_pid().map(system::rss_kib).transpose()?;
    let users = super::users(env, "w", n.max(2)).await?;
    let mut writes = 0;
    let http = api::client(8)?;
    let mut reports = Vec::new();
    let crud = crud.map_err(|why| format!("CRUD floor not measured: {why}"));
    let about = crud.as_ref().ok().map(|c| {
        format!(
            "CRUD floor: plain axum + sqlx server, one insert … returning per request, \
             pool of {} connections, database {}; loaded the same way just before the forum",
            c.connections, c.db_name
        )
    });
    let about = about.as_deref();

    let floors = floors::measure(env, Shape::Post, plan.floor).await?;
    let floor = load_floor(&crud, &users, Write::Post, plan.w1_duration).await;
    let load = drive(Aim::Forum(env), &users, Write::Post, plan.w1_duration).await?;
    writes += load.ok;
    let missing = check_posts(&http, env, &users, &load).await?;
    reports.push(report(
        "W1-posts", plan, &floors, &load, &floor, about, missing,
    ));

    let posts = threads(&http, &env.base, &users).await?;
    let floors = floors::measure(env, Shape::Comment, plan.floor).await?;
    let floor = match &crud {
        Ok(c) => match threads(&http, &c.base, &users).await {
            Ok(p) => load_floor(&crud, &users, Write::Comment(p), plan.w1_duration).await,
            Err(e) => Err(format!("CRUD floor: its 16 posts: {e}")),
        },
        Err(why) => Err(why.clone()),
    };
    let load = drive(
        Aim::Forum(env),
        &users,
        Write::Comment(posts.clone()),
        plan.w1_duration,
    )
    .await?;
    writes += load.ok;
    let missing = check_comments(&http, env, &posts, &load).await?;
    reports.push(report(
        "W1-comments",
        plan,
        &floors,
        &load,
        &floor,
        about,
        missing,
    ));

    let probe = api::send(
        &http,
        reqwest::Method::POST,
        &format!("{}/api/conversations/{}/messages", env.base, users[1].id),
        Some(&users[0].token),
        Some(api::content_body("hello")),
    )
    .await?;
    match probe.status {
        201 => {
            let floors = floors::measure(env, Shape::Message, plan.floor).await?;
            let floor = load_floor(&crud, &users, Write::Message, plan.w1_duration).await;
            let load = drive(Aim::Forum(env), &users, Write::Message, plan.w1_duration).await?;
            writes += load.ok;
            let missing = check_messages(&http, env, &users, &load).await?;
            reports.push(report(
                "W1-dms", plan, &floors, &load, &floor, about, missing,
            ));
        }
        404 => reports.push(ScenarioReport::skipped(
            "W1-dms",
            "feature missing: POST /api/conversations/{user_id}/messages answers 404",
        )),
        s => {
            return Err(Error::Protocol(format!(
                "first message answered {s}: {}",
                String::from_utf8_lossy(&probe.body)
            )))
        }
    }
    reports.push(memory_at_rest(env, started_kib, users.len(), writes).await?);
    Ok(reports)
}

/// `W1-memory`: the resident memory of the started `forum up`
/// [`REST_AFTER`] after the last request, against [`MAX_REST_RSS_MIB`];
/// skipped for a system given with `--target`.
///
/// # Errors
/// When `/proc/<pid>/status` of the child cannot be read.
async fn memory_at_rest(
    env: &Env,
    started_kib: Option<u64>,
    registered: usize,
    writes: u64,
) -> Result<ScenarioReport> {
    const NAME: &str = "W1-memory";
    let Some(pid) = env.forum_pid() else {
        return Ok(ScenarioReport::skipped(
            NAME,
            "the loaded system was not started here (--target): its memory is not read",
        ));
    };
    tokio::time::sleep(REST_AFTER).await;
    let rest = system::rss_kib(pid)?;
    let peak = system::peak_rss_kib(pid)?;
    let mib = |kib: u64| kib as f64 / 1024.0;
    let mut r = ScenarioReport::new(NAME);
    r.push(
        Metric::new(
            "resident memory of forum up at rest after the run's registrations and writes",
            mib(rest),
            Unit::MiB,
        )
        .target(Cmp::AtMost, MAX_REST_RSS_MIB),
    );
    if let Some(started) = started_kib {
        r.push(Metric::new(
            "resident memory of forum up just after start",
            mib(started),
            Unit::MiB,
        ));
    }
    r.push(Metric::new(
        "peak resident memory of forum up (VmHWM)",
        mib(peak),
        Unit::MiB,
    ));
    r.note(format!(
        "VmRSS of the forum up process {:.0} s after W1's last request, after {registered} \
         registrations (4 at a time) and {writes} acknowledged writes",
        REST_AFTER.as_secs_f64()
    ));
    r.elapsed = REST_AFTER;
    Ok(r)
}

/// Creates the 16 posts that W1's comments go to, at `base` (the forum or
/// the CRUD floor); returns their ids.
async fn threads(http: &reqwest::Client, base: &str, users: &[User]) -> Result<Vec<String>> {
    let mut posts = Vec::new();
    for (i, u) in users.iter().take(16).enumerate() {
        let a = api::send(
            http,
            reqwest::Method::POST,
            &format!("{base}/api/posts"),
            Some(&u.token),
            Some(api::post_body(
                &format!("w1 thread {i}"),
                "comments go here",
            )),
        )
        .await?;
        posts.push(api::id_of(&a.body).ok_or_else(|| {
            Error::Protocol(format!("create post: {}", String::from_utf8_lossy(&a.body)))
        })?);
    }
    Ok(posts)
}

/// Loads the CRUD floor as [`drive`] loads the forum; a floor that is
/// missing or fails gives the reason instead, for the report.
async fn load_floor(
    crud: &std::result::Result<&CrudFloor, String>,
    users: &[User],
    write: Write,
    duration: Duration,
) -> std::result::Result<Load, String> {
    match crud {
        Ok(c) => drive(Aim::Crud(c), users, write, duration)
            .await
            .map_err(|e| format!("CRUD floor failed: {e}")),
        Err(why) => Err(why.clone()),
    }
}

/// How long after a load its database's counters are complete. Postgres
/// (15 and later) flushes a backend's counters at most once a second; a
/// backend that goes idle within a second of its last flush keeps the rest
/// until it has been idle for 10 s (`PGSTAT_IDLE_INTERVAL`), so a sample a
/// second after the load misses up to the last second of every connection.
const PG_STATS_COMPLETE_AFTER: Duration = Duration::from_secs(11);

/// The counters of `aim`'s database once the load's are all published
/// (see [`PG_STATS_COMPLETE_AFTER`]): for the CRUD floor, as soon as they
/// count a transaction per acknowledged write (one `insert` each, its own
/// transaction); for the forum, whose count is what is measured, only after
/// the full wait.
async fn settled_pg(aim: Aim<'_>, pg0: &PgStats, ok: u64) -> Result<Option<PgStats>> {
    let deadline = Instant::now() + PG_STATS_COMPLETE_AFTER;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    loop {
        let Some(pg1) = aim.pg().await? else {
            return Ok(None);
        };
        let complete = match aim {
            Aim::Crud(_) => pg1.commits - pg0.commits >= ok as i64,
            Aim::Forum(_) => false,
        };
        if complete || Instant::now() >= deadline {
            return Ok(Some(pg1));
        }
        tokio::time::sleep(
            Duration::from_secs(1).min(deadline.saturating_duration_since(Instant::now())),
        )
        .await;
    }
}

/// Loads `aim` with `write` from every user at once for `duration`: one
/// keep-alive connection per user, closed loop, bodies from generators
/// seeded by the user's index (so every server gets the same bodies).
async fn drive(aim: Aim<'_>, users: &[User], write: Write, duration: Duration) -> Result<Load> {
    let write = Arc::new(write);
    let users = Arc::new(users.to_vec());
    let pg0 = aim.pg().await?;
    let cpu0 = aim.cpu();
    let started = Instant::now();
    let end = started + duration;
    let mut tasks = Vec::new();
    for i in 0..users.len() {
        let (write, users, base) = (write.clone(), users.clone(), aim.base().to_string());
        tasks.push(tokio::spawn(async move {
            // One client per connection: one keep-alive connection each.
            let http = api::client(1)?;
            let me = &users[i];
            let next = &users[(i + 1) % users.len()];
            let mut rng = Rng::new(i as u64 + 1);
            let mut latencies = Samples::with_cap(400_000);
            let mut errors: BTreeMap<String, u64> = BTreeMap::new();
            let mut acked = Vec::new();
            let mut n = 0usize;
            while Instant::now() < end && n < 400_000 {
                let (url, body) = match &*write {
                    Write::Post => (
                        format!("{base}/api/posts"),
                        api::post_body(&format!("w1 {i}-{n}"), filler(&mut rng, 100, 600)),
                    ),
                    Write::Comment(posts) => (
                        format!("{base}/api/posts/{}/comments", posts[(i + n) % posts.len()]),
                        api::content_body(filler(&mut rng, 40, 300)),
                    ),
                    Write::Message => (
                        format!("{base}/api/conversations/{}/messages", next.id),
                        api::content_body(filler(&mut rng, 20, 200)),
                    ),
                };
                n += 1;
                let t = Instant::now();
                match api::send(
                    &http,
                    reqwest::Method::POST,
                    &url,
                    Some(&me.token),
                    Some(body),
                )
                .await
                {
                    Ok(a) if a.status == 201 => {
                        latencies.record(t.elapsed());
                        match api::id_of(&a.body) {
                            Some(id) => acked.push(id),
                            None => *errors.entry("201 without id".into()).or_default() += 1,
                        }
                    }
                    Ok(a) => *errors.entry(a.status.to_string()).or_default() += 1,
                    Err(_) => {
                        *errors.entry("transport".into()).or_default() += 1;
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
            Ok::<_, Error>((latencies, errors, acked))
        }));
    }
    let mut out = Load {
        cpu: Vec::new(),
        pg: None,
        seq_note: None,
        ok: 0,
        errors: BTreeMap::new(),
        latencies: Samples::with_cap(5_000_000),
        elapsed: Duration::ZERO,
        acked: Vec::new(),
    };
    for t in tasks {
        let (lat, errors, acked) = t.await.map_err(|e| Error::Protocol(e.to_string()))??;
        out.latencies.merge(lat);
        for (k, v) in errors {
            *out.errors.entry(k).or_default() += v;
        }
        out.ok += acked.len() as u64;
        out.acked.push(acked);
    }
    out.elapsed = started.elapsed();
    out.cpu = aim.cpu().since(&cpu0);
    if let Some(pg0) = pg0 {
        if let Some(pg1) = settled_pg(aim, &pg0, out.ok).await? {
            out.pg = Some(pg1.per(&pg0, out.ok));
            out.seq_note = pg1.most_seq_scanned(&pg0);
        }
    }
    Ok(out)
}

/// Pages the posts of every author.
async fn check_posts(
    http: &reqwest::Client,
    env: &Env,
    users: &[User],
    load: &Load,
) -> Result<usize> {
    let jobs = users.iter().zip(load.acked.iter());
    let missing: Vec<usize> = futures::stream::iter(jobs)
        .map(|(u, acked)| async move {
            let path = format!("/api/posts?author={}&limit=100", u.id);
            let listed = api::list_ids(http, &env.base, &path, None, acked.len() / 100 + 5).await?;
            Ok::<_, Error>(api::missing(acked, &listed))
        })
        .buffer_unordered(8)
        .try_collect()
        .await?;
    Ok(missing.into_iter().sum())
}

/// Pages the comments of every post.
async fn check_comments(
    http: &reqwest::Client,
    env: &Env,
    posts: &[String],
    load: &Load,
) -> Result<usize> {
    let acked: Vec<&String> = load.acked.iter().flatten().collect();
    let pages = acked.len() / 100 + 5 * posts.len();
    let listed: Vec<Vec<String>> = futures::stream::iter(posts)
        .map(|p| async move {
            let path = format!("/api/posts/{p}/comments?limit=100");
            api::list_ids(http, &env.base, &path, None, pages).await
        })
        .buffer_unordered(8)
        .try_collect()
        .await?;
    let listed: Vec<String> = listed.into_iter().flatten().collect();
    Ok(api::missing(acked, &listed))
}

/// Pages each conversation, as its sender.
async fn check_messages(
    http: &reqwest::Client,
    env: &Env,
    users: &[User],
    load: &Load,
) -> Result<usize> {
    let jobs = users.iter().enumerate().zip(load.acked.iter());
    let missing: Vec<usize> = futures::stream::iter(jobs)
        .map(|((i, u), acked)| async move {
            let to = &users[(i + 1) % users.len()];
            let path = format!("/api/conversations/{}/messages?limit=50", to.id);
            let listed =
                api::list_ids(http, &env.base, &path, Some(&u.token), acked.len() / 50 + 5).await?;
            Ok::<_, Error>(api::missing(acked, &listed))
        })
        .buffer_unordered(8)
        .try_collect()
        .await?;
    Ok(missing.into_iter().sum())
}

fn report(
    name: &str,
    plan: &crate::cli::Plan,
    floors: &Floors,
    load: &Load,
    crud: &std::result::Result<Load, String>,
    about: Option<&str>,
    missing: usize,
) -> ScenarioReport {
    let mut r = ScenarioReport::new(name);
    let s = load.latencies.clone().summary();
    let rps = load.rps();
    let errors: u64 = load.errors.values().sum();
    let mut rps_row = Metric::new("requests/s (201)", rps, Unit::PerSec);
    let mut p50_row = Metric::new("p50", s.p50 as f64, Unit::Micros);
    let mut p99_row = Metric::new("p99", s.p99 as f64, Unit::Micros);
    if let Ok(c) = crud {
        let cs = c.latencies.clone().summary();
        rps_row = rps_row
            .floor("CRUD floor req/s", c.rps(), Unit::PerSec)
            .target_ratio(Cmp::AtLeast, MIN_RPS_RATIO);
        p50_row = p50_row.floor("CRUD floor p50", cs.p50 as f64, Unit::Micros);
        p99_row = p99_row
            .floor("CRUD floor p99", cs.p99 as f64, Unit::Micros)
            .target_ratio(Cmp::AtMost, MAX_P99_RATIO);
    }
    r.push(rps_row);
    r.push(p50_row);
    r.push(p99_row);
    r.push(Metric::new(
        "acknowledged (201)",
        load.ok as f64,
        Unit::Count,
    ));
    r.push(Metric::new("errors (not 201)", errors as f64, Unit::Count).target(Cmp::AtMost, 0.0));
    r.push(
        Metric::new("acknowledged, not listed", missing as f64, Unit::Count)
            .target(Cmp::AtMost, 0.0),
    );
    r.cpu(&load.cpu);
    if let Some(cpu) = load.cpu_per_write() {
        let mut row = Metric::new("CPU per write (server, postgres, nats)", cpu, Unit::Micros);
        if let Some(floor) = crud.as_ref().ok().and_then(Load::cpu_per_write) {
            row = row.floor("CRUD floor CPU per write", floor, Unit::Micros);
        }
        r.push(row);
    }
    if let Some(pg) = &load.pg {
        for (what, v) in pg {
            let row = Metric::new(format!("PG {what} per write"), *v, Unit::Number);
            r.push(if *what == system::TRANSACTIONS {
                row.target(Cmp::AtMost, MAX_PG_TRANSACTIONS_PER_WRITE)
            } else {
                row
            });
        }
    }
    if let Some(n) = &load.seq_note {
        r.note(n.clone());
    }
    match crud {
        Ok(c) => {
            let c_errors: u64 = c.errors.values().sum();
            r.push(Metric::new(
                "floor: CRUD acknowledged (201)",
                c.ok as f64,
                Unit::Count,
            ));
            r.push(
                Metric::new("floor: CRUD errors (not 201)", c_errors as f64, Unit::Count)
                    .target(Cmp::AtMost, 0.0),
            );
            if let Some(pg) = &c.pg {
                for (what, v) in pg.iter().take(2) {
                    r.push(Metric::new(
                        format!("floor: CRUD PG {what} per write"),
                        *v,
                        Unit::Number,
                    ));
                }
            }
            for (group, pct) in &c.cpu {
                r.push(Metric::new(
                    format!("floor: CRUD load CPU: {group}"),
                    *pct,
                    Unit::CorePercent,
                ));
            }
            if !c.errors.is_empty() {
                r.note(format!("CRUD floor errors by status: {:?}", c.errors));
            }
        }
        Err(why) => r.note(why.clone()),
    }
    r.metrics.extend(floors.metrics());
    r.note(format!(
        "{} connections × {:.0} s, closed loop, one keep-alive HTTP/1.1 connection each",
        plan.w1_connections,
        plan.w1_duration.as_secs_f64()
    ));
    if let (Ok(_), Some(about)) = (crud, about) {
        r.note(about);
    }
    if !load.errors.is_empty() {
        r.note(format!("errors by status: {:?}", load.errors));
    }
    r.elapsed = load.elapsed;
    r
}

//! W1, writes under load: 64 users, each on its own HTTP/1.1 keep-alive
//! connection, write for 15 s as fast as answers come (closed loop); every
//! write answers after the read models have it (read-your-writes). Three
//! parts: `POST /api/posts`, `POST /api/posts/{id}/comments` (on 16 posts)
//! and `POST /api/conversations/{user}/messages` (each user to the next).
//! Afterwards every acknowledged id is looked up in the lists the API
//! serves (posts by author, comments of each post, each conversation).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};

use crate::api::{self, User};
use crate::floors::{self, Floors, Shape};
use crate::gen::{filler, Rng};
use crate::report::{Cmp, Metric, ScenarioReport, Unit};
use crate::scenarios::Ctx;
use crate::stats::Samples;
use crate::system::{Env, PgStats};
use crate::{Error, Result};

/// The straightforward axum + sqlx baseline on this machine (one INSERT per
/// request, 64 connections): about 6,000 req/s with p99 about 16 ms.
pub const BASELINE_RPS: f64 = 6_000.0;
/// The baseline's p99, in microseconds.
pub const BASELINE_P99_US: f64 = 16_000.0;

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

/// Runs W1's three parts.
///
/// # Errors
/// Registration or set-up failures; a missing messages route only skips
/// that part.
pub async fn run(ctx: &Ctx, env: &Env) -> Result<Vec<ScenarioReport>> {
    let plan = &ctx.plan;
    let n = plan.w1_connections;
    let users = super::users(env, "w", n.max(2)).await?;
    let http = api::client(8)?;
    let mut reports = Vec::new();

    let floors = floors::measure(env, Shape::Post, plan.floor).await?;
    let load = drive(env, &users, Write::Post, plan.w1_duration).await?;
    let missing = check_posts(&http, env, &users, &load).await?;
    reports.push(report("W1-posts", plan, &floors, &load, missing));

    let mut posts = Vec::new();
    for (i, u) in users.iter().take(16).enumerate() {
        let a = api::send(
            &http,
            reqwest::Method::POST,
            &format!("{}/api/posts", env.base),
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
    let floors = floors::measure(env, Shape::Comment, plan.floor).await?;
    let load = drive(env, &users, Write::Comment(posts.clone()), plan.w1_duration).await?;
    let missing = check_comments(&http, env, &posts, &load).await?;
    reports.push(report("W1-comments", plan, &floors, &load, missing));

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
            let load = drive(env, &users, Write::Message, plan.w1_duration).await?;
            let missing = check_messages(&http, env, &users, &load).await?;
            reports.push(report("W1-dms", plan, &floors, &load, missing));
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
    Ok(reports)
}

async fn drive(env: &Env, users: &[User], write: Write, duration: Duration) -> Result<Load> {
    let write = Arc::new(write);
    let users = Arc::new(users.to_vec());
    let pg0 = PgStats::sample(env).await?;
    let cpu0 = env.cpu();
    let started = Instant::now();
    let end = started + duration;
    let mut tasks = Vec::new();
    for i in 0..users.len() {
        let (write, users, base) = (write.clone(), users.clone(), env.base.clone());
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
    out.cpu = env.cpu().since(&cpu0);
    if env.spawned {
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        let pg1 = PgStats::sample(env).await?;
        out.pg = Some(pg1.per(&pg0, out.ok));
        out.seq_note = pg1.most_seq_scanned(&pg0);
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
    missing: usize,
) -> ScenarioReport {
    let mut r = ScenarioReport::new(name);
    let mut lat = load.latencies.clone();
    let s = lat.summary();
    let rps = load.ok as f64 / load.elapsed.as_secs_f64().max(1e-9);
    let errors: u64 = load.errors.values().sum();
    r.push(
        Metric::new("requests/s (201)", rps, Unit::PerSec)
            .floor("PG commits/s", floors.pg_commits_per_s, Unit::PerSec)
            .target(Cmp::AtLeast, BASELINE_RPS),
    );
    r.push(Metric::new("p50", s.p50 as f64, Unit::Micros).floor(
        "rtt+commit p50",
        floors.rtt_commit_p50(),
        Unit::Micros,
    ));
    r.push(
        Metric::new("p99", s.p99 as f64, Unit::Micros)
            .floor("rtt+commit p99", floors.rtt_commit_p99(), Unit::Micros)
            .target(Cmp::AtMost, BASELINE_P99_US),
    );
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
    if let Some(pg) = &load.pg {
        r.pg_per_write(pg);
    }
    if let Some(n) = &load.seq_note {
        r.note(n.clone());
    }
    r.metrics.extend(floors.metrics());
    r.note(format!(
        "{} connections × {:.0} s, closed loop, one keep-alive HTTP/1.1 connection each",
        plan.w1_connections,
        plan.w1_duration.as_secs_f64()
    ));
    if !load.errors.is_empty() {
        r.note(format!("errors by status: {:?}", load.errors));
    }
    r.elapsed = load.elapsed;
    r
}

//! W2, the latency of one command: one user on one keep-alive connection
//! creates posts one after another (read-your-writes included), compared
//! with the floor of what a command must at least do: one NATS round trip
//! plus one Postgres commit.

use std::collections::BTreeMap;
use std::time::Instant;

use crate::api;
use crate::floors::{self, Shape};
use crate::gen::{filler, Rng};
use crate::report::{Cmp, Metric, ScenarioReport, Unit};
use crate::scenarios::Ctx;
use crate::stats::Samples;
use crate::system::{Env, PgStats};
use crate::Result;

/// The target: create-post within this many times (NATS rtt + PG commit).
pub const TARGET_RATIO: f64 = 3.0;

/// Runs W2.
///
/// # Errors
/// Registration, floors, or transport failures.
pub async fn run(ctx: &Ctx, env: &Env) -> Result<ScenarioReport> {
    let users = super::users(env, "v", 1).await?;
    let me = &users[0];
    let floors = floors::measure(env, Shape::Post, ctx.plan.floor).await?;
    let http = api::client(1)?;
    let url = format!("{}/api/posts", env.base);
    let mut rng = Rng::new(2);
    let mut latencies = Samples::with_cap(1_000_000);
    let mut errors: BTreeMap<u16, u64> = BTreeMap::new();
    // Warm-up: the connection and the first statements, not counted.
    for i in 0..20 {
        let body = api::post_body(&format!("w2 warm-up {i}"), "warm-up");
        api::send(
            &http,
            reqwest::Method::POST,
            &url,
            Some(&me.token),
            Some(body),
        )
        .await?;
    }
    let pg0 = PgStats::sample(env).await?;
    let cpu0 = env.cpu();
    let started = Instant::now();
    let end = started + ctx.plan.w2_duration;
    let mut n = 0usize;
    while Instant::now() < end && n < 1_000_000 {
        let body = api::post_body(&format!("w2 {n}"), filler(&mut rng, 100, 600));
        n += 1;
        let t = Instant::now();
        let a = api::send(
            &http,
            reqwest::Method::POST,
            &url,
            Some(&me.token),
            Some(body),
        )
        .await?;
        if a.status == 201 {
            latencies.record(t.elapsed());
        } else {
            *errors.entry(a.status).or_default() += 1;
        }
    }
    let elapsed = started.elapsed();
    let cpu = env.cpu().since(&cpu0);
    let s = latencies.summary();
    let pg = if env.spawned {
        tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
        let pg1 = PgStats::sample(env).await?;
        Some((pg1.per(&pg0, s.n as u64), pg1.most_seq_scanned(&pg0)))
    } else {
        None
    };
    let mut r = ScenarioReport::new("W2");
    r.push(
        Metric::new("create-post p50", s.p50 as f64, Unit::Micros)
            .floor("rtt+commit p50", floors.rtt_commit_p50(), Unit::Micros)
            .target_ratio(Cmp::AtMost, TARGET_RATIO),
    );
    r.push(
        Metric::new("create-post p99", s.p99 as f64, Unit::Micros)
            .floor("rtt+commit p99", floors.rtt_commit_p99(), Unit::Micros)
            .target_ratio(Cmp::AtMost, TARGET_RATIO),
    );
    r.push(Metric::new(
        "requests/s (1 connection)",
        s.n as f64 / elapsed.as_secs_f64().max(1e-9),
        Unit::PerSec,
    ));
    r.push(
        Metric::new(
            "errors (not 201)",
            errors.values().sum::<u64>() as f64,
            Unit::Count,
        )
        .target(Cmp::AtMost, 0.0),
    );
    r.cpu(&cpu);
    if let Some((per, seq_note)) = &pg {
        r.pg_per_write(per);
        if let Some(n) = seq_note {
            r.note(n.clone());
        }
    }
    r.metrics.extend(floors.metrics());
    r.note(format!(
        "{} sequential create-post on one connection in {:.1} s",
        s.n,
        elapsed.as_secs_f64()
    ));
    if !errors.is_empty() {
        r.note(format!("errors by status: {errors:?}"));
    }
    r.elapsed = elapsed;
    Ok(r)
}

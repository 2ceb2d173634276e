//! L2, broadcast: 10,000 sockets (100 users × 100) are connected; posts are
//! created at a steady rate; measured is, per post, the time until the last
//! socket has its `post.new` (from the POST, and from the first socket),
//! and the deliveries per second. Every socket must get every post once.

use std::time::{Duration, Instant};

use crate::api;
use crate::floors::{self, Shape};
use crate::report::{Cmp, Metric, ScenarioReport, Unit};
use crate::scenarios::{
    after, connect_many, failures_note, on_own_thread, probe_live_feed, Ctx, Listeners,
};
use crate::stats::Samples;
use crate::system::Env;
use crate::ws::{self, check_sequence, Listen, Progress, SeqCheck};
use crate::{Error, Result};

/// Target: deliveries per second within a post's burst.
pub const TARGET_DELIVERIES: f64 = 100_000.0;
/// Target: the last socket within this many µs of the first.
pub const TARGET_SPREAD_US: f64 = 100_000.0;

/// Runs L2.
///
/// # Errors
/// [`Error::FeatureMissing`] without the live feed.
pub async fn run(ctx: &Ctx, env: &Env) -> Result<ScenarioReport> {
    let plan = &ctx.plan;
    let mut users = super::users(env, "c", 1).await?;
    probe_live_feed(env, &users[0]).await?;
    users.extend(super::users(env, "d", plan.l2_users.saturating_sub(1)).await?);
    let floors = floors::measure(env, Shape::Post, plan.floor).await?;

    let t = Instant::now();
    let (sockets, failed) = connect_many(env, &users, plan.l2_sockets_per_user, 200).await?;
    let connect_secs = t.elapsed().as_secs_f64();
    let n = sockets.len();
    let posts = plan.l2_posts;
    let progress = Progress::new();
    let listen = Listen {
        kind: "post.new",
        expect: Some((0, posts as u32)),
        progress: progress.clone(),
        max_marks: posts * 2 + 10,
        track_cursor: false,
        deadline: after(
            Duration::from_secs_f64(posts as f64 / plan.l2_rate) + Duration::from_secs(120),
        ),
    };
    let listeners = Listeners::spawn(sockets, &listen);
    // Let the presence frames of the connections drain.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let cpu0 = env.cpu();
    let (url, token, rate) = (
        format!("{}/api/posts", env.base),
        users[0].token.clone(),
        plan.l2_rate,
    );
    let (sent_at, acked, mut rtts) = on_own_thread(move || async move {
        let http = api::client(2)?;
        let mut sent_at = Vec::with_capacity(posts);
        let mut rtts = Samples::default();
        let mut acked = Vec::with_capacity(posts);
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        for seq in 0..posts {
            tick.tick().await;
            let body = api::post_body(&format!("l2 {}", ws::mark(seq as u32)), "broadcast");
            let at = Instant::now();
            let a = api::send(&http, reqwest::Method::POST, &url, Some(&token), Some(body)).await?;
            rtts.record(at.elapsed());
            acked.push(a.status == 201);
            sent_at.push(at);
        }
        Ok((sent_at, acked, rtts))
    })
    .await?;
    let refused = acked.iter().filter(|ok| !**ok).count();
    // A refused post may or may not exist: only acknowledged ones are
    // expected, and completion is then judged after a fixed drain.
    let complete = if refused == 0 {
        progress.wait_for(n, after(Duration::from_secs(20))).await
    } else {
        tokio::time::sleep(Duration::from_secs(5)).await;
        false
    };
    let cpu = env.cpu().since(&cpu0);
    let logs = listeners.stop().await;

    let mut first: Vec<Option<Instant>> = vec![None; posts];
    let mut last: Vec<Option<Instant>> = vec![None; posts];
    let mut count = vec![0u64; posts];
    let mut check = SeqCheck::default();
    let mut slow = 0;
    let mut closed = 0;
    let expected: Vec<u32> = (0..posts as u32).filter(|i| acked[*i as usize]).collect();
    for (_, log) in &logs {
        match log.ended.as_deref() {
            Some(e) if e.starts_with("closed 4008") => slow += 1,
            Some(_) => closed += 1,
            None => {}
        }
        let received: Vec<u32> = log.marks.iter().map(|(s, _)| *s).collect();
        check.add(check_sequence(&expected, &received));
        for (seq, at) in &log.marks {
            let i = *seq as usize;
            if i < posts {
                count[i] += 1;
                first[i] = Some(first[i].map_or(*at, |f| f.min(*at)));
                last[i] = Some(last[i].map_or(*at, |l| l.max(*at)));
            }
        }
    }
    let mut to_last = Samples::default();
    let mut spread = Samples::default();
    let mut burst = Samples::default();
    for i in 0..posts {
        if !acked[i] {
            continue;
        }
        if let (Some(f), Some(l)) = (first[i], last[i]) {
            to_last.record(l.saturating_duration_since(sent_at[i]));
            let s = l.saturating_duration_since(f);
            spread.record(s);
            // Deliveries per second within the burst, kept as an integer.
            burst.push((count[i] as f64 / s.as_secs_f64().max(1e-6)) as u64);
        }
    }
    let total: u64 = count.iter().sum();
    let window = match (first.iter().flatten().min(), last.iter().flatten().max()) {
        (Some(f), Some(l)) => l.saturating_duration_since(*f).as_secs_f64(),
        _ => 0.0,
    };
    let (tl, sp, bu, rtt) = (
        to_last.summary(),
        spread.summary(),
        burst.summary(),
        rtts.summary(),
    );
    let mut r = ScenarioReport::new("L2");
    r.push(Metric::new("sockets", n as f64, Unit::Count));
    r.push(Metric::new(
        "connect time, all sockets",
        connect_secs,
        Unit::Seconds,
    ));
    r.push(Metric::new(
        "POST → last socket p50",
        tl.p50 as f64,
        Unit::Micros,
    ));
    r.push(Metric::new(
        "POST → last socket p99",
        tl.p99 as f64,
        Unit::Micros,
    ));
    r.push(Metric::new(
        "first → last socket p50",
        sp.p50 as f64,
        Unit::Micros,
    ));
    r.push(
        Metric::new("first → last socket p99", sp.p99 as f64, Unit::Micros)
            .target(Cmp::AtMost, TARGET_SPREAD_US),
    );
    r.push(
        Metric::new(
            "deliveries/s within a burst, p50",
            bu.p50 as f64,
            Unit::PerSec,
        )
        .target(Cmp::AtLeast, TARGET_DELIVERIES),
    );
    r.push(Metric::new(
        "deliveries/s sustained (first to last delivery)",
        total as f64 / window.max(1e-9),
        Unit::PerSec,
    ));
    r.push(
        Metric::new("POST p50 (the writer)", rtt.p50 as f64, Unit::Micros).floor(
            "NATS hop p50",
            floors.nats_hop.p50 as f64,
            Unit::Micros,
        ),
    );
    r.push(
        Metric::new("frames missing", check.missing as f64, Unit::Count).target(Cmp::AtMost, 0.0),
    );
    r.push(
        Metric::new("frames duplicated", check.duplicates as f64, Unit::Count)
            .target(Cmp::AtMost, 0.0),
    );
    r.push(Metric::new(
        "frames out of order",
        check.out_of_order as f64,
        Unit::Count,
    ));
    r.push(Metric::new(
        "sockets closed as slow consumers (4008)",
        slow as f64,
        Unit::Count,
    ));
    r.push(Metric::new(
        "sockets closed otherwise",
        closed as f64,
        Unit::Count,
    ));
    r.cpu(&cpu);
    r.metrics.extend(floors.metrics());
    r.note(format!(
        "{} users × {} sockets; {posts} posts at {}/s (offered {:.0} deliveries/s); {refused} posts not 201; all complete: {complete}",
        users.len(),
        plan.l2_sockets_per_user,
        plan.l2_rate,
        plan.l2_rate * n as f64
    ));
    if let Some(n) = failures_note("sockets", &failed) {
        r.note(n);
    }
    if n == 0 {
        return Err(Error::Protocol("no socket connected".into()));
    }
    Ok(r)
}

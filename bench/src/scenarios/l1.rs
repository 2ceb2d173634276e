//! L1, live latency: about 1,000 sockets (two per user) are connected;
//! messages are sent between random pairs at a steady rate; measured is the
//! time from sending the POST to the recipient's `message.new`, beside the
//! sender's own POST round trip. Each message must reach the sender's and
//! the recipient's sockets exactly once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use crate::api;
use crate::floors::{self, Shape};
use crate::gen::Rng;
use crate::report::{Cmp, Metric, ScenarioReport, Unit};
use crate::scenarios::{
    after, connect_many, failures_note, on_own_thread, probe_live_feed, Ctx, Listeners,
};
use crate::stats::Samples;
use crate::system::Env;
use crate::ws::{self, check_sequence, Listen, Progress, SeqCheck};
use crate::{Error, Result};

/// The target: the recipient's p99 within this many times the sender's
/// POST p99.
pub const TARGET_RATIO: f64 = 1.5;

struct Sent {
    from: usize,
    to: usize,
    at: Instant,
    ok: bool,
}

/// Runs L1.
///
/// # Errors
/// [`Error::FeatureMissing`] without the live feed or the messages route.
pub async fn run(ctx: &Ctx, env: &Env) -> Result<ScenarioReport> {
    let plan = &ctx.plan;
    let http = api::client(64)?;
    let mut users = super::users(env, "a", 2).await?;
    probe_live_feed(env, &users[0]).await?;
    let probe = api::send(
        &http,
        reqwest::Method::POST,
        &format!("{}/api/conversations/{}/messages", env.base, users[1].id),
        Some(&users[0].token),
        Some(api::content_body("hello")),
    )
    .await?;
    match probe.status {
        201 => {}
        404 => {
            return Err(Error::FeatureMissing(
                "POST /api/conversations/{user_id}/messages answers 404".into(),
            ))
        }
        s => return Err(Error::Protocol(format!("first message answered {s}"))),
    }
    users.extend(super::users(env, "b", plan.l1_users.saturating_sub(2)).await?);
    let floors = floors::measure(env, Shape::Message, plan.floor).await?;

    let (sockets, failed) = connect_many(env, &users, plan.l1_sockets_per_user, 128).await?;
    let n_sockets = sockets.len();
    let listen = Listen {
        kind: "message.new",
        expect: None,
        progress: Progress::new(),
        max_marks: 100_000,
        track_cursor: false,
        deadline: after(plan.l1_duration + Duration::from_secs(120)),
    };
    let listeners = Listeners::spawn(sockets, &listen);
    tokio::time::sleep(Duration::from_secs(2)).await;

    let total = (plan.l1_rate * plan.l1_duration.as_secs_f64()) as usize;
    let mut rng = Rng::new(42);
    let pairs: Vec<(usize, usize)> = (0..total)
        .map(|_| {
            let from = rng.below(users.len() as u64) as usize;
            let to = (from + 1 + rng.below(users.len() as u64 - 1) as usize) % users.len();
            (from, to)
        })
        .collect();
    let users = Arc::new(users);
    let (senders, base, rate) = (users.clone(), env.base.clone(), plan.l1_rate);
    let cpu0 = env.cpu();
    let (sent, mut rtts, send_secs) = on_own_thread(move || async move {
        let http = api::client(64)?;
        let gate = Arc::new(Semaphore::new(64));
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let started = Instant::now();
        let mut tasks = Vec::with_capacity(total);
        for (seq, (from, to)) in pairs.into_iter().enumerate() {
            tick.tick().await;
            let permit = gate
                .clone()
                .acquire_owned()
                .await
                .map_err(|e| Error::Protocol(e.to_string()))?;
            let (http, users, base) = (http.clone(), senders.clone(), base.clone());
            tasks.push(tokio::spawn(async move {
                let _permit = permit;
                let url = format!("{base}/api/conversations/{}/messages", users[to].id);
                let body = api::content_body(&format!("l1 {}", ws::mark(seq as u32)));
                let at = Instant::now();
                let r = api::send(
                    &http,
                    reqwest::Method::POST,
                    &url,
                    Some(&users[from].token),
                    Some(body),
                )
                .await;
                let rtt = at.elapsed();
                let ok = matches!(&r, Ok(a) if a.status == 201);
                (Sent { from, to, at, ok }, rtt)
            }));
        }
        let mut sent = Vec::with_capacity(total);
        let mut rtts = Samples::default();
        for t in tasks {
            let (s, rtt) = t.await.map_err(|e| Error::Protocol(e.to_string()))?;
            if s.ok {
                rtts.record(rtt);
            }
            sent.push(s);
        }
        Ok((sent, rtts, started.elapsed().as_secs_f64()))
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let cpu = env.cpu().since(&cpu0);
    let logs = listeners.stop().await;

    let mut recipient = Samples::default();
    let mut check = SeqCheck::default();
    let mut by_user: HashMap<usize, Vec<u32>> = HashMap::new();
    for (seq, s) in sent.iter().enumerate() {
        if s.ok {
            by_user.entry(s.from).or_default().push(seq as u32);
            by_user.entry(s.to).or_default().push(seq as u32);
        }
    }
    let mut closed = 0;
    for (user, log) in &logs {
        if log.ended.is_some() {
            closed += 1;
        }
        let received: Vec<u32> = log.marks.iter().map(|(s, _)| *s).collect();
        let expected = by_user.get(user).cloned().unwrap_or_default();
        let mut c = check_sequence(&expected, &received);
        // Only one conversation's order is promised.
        c.out_of_order = 0;
        check.add(c);
        for (seq, at) in &log.marks {
            if let Some(s) = sent.get(*seq as usize) {
                if s.to == *user {
                    recipient.record(at.saturating_duration_since(s.at));
                }
            }
        }
    }
    let rtt = rtts.summary();
    let rec = recipient.summary();
    let ok = sent.iter().filter(|s| s.ok).count();
    let mut r = ScenarioReport::new("L1");
    r.push(Metric::new("sender POST p50", rtt.p50 as f64, Unit::Micros));
    r.push(Metric::new("sender POST p99", rtt.p99 as f64, Unit::Micros));
    r.push(
        Metric::new("recipient message.new p50", rec.p50 as f64, Unit::Micros).floor(
            "NATS hop p50",
            floors.nats_hop.p50 as f64,
            Unit::Micros,
        ),
    );
    r.push(
        Metric::new("recipient message.new p99", rec.p99 as f64, Unit::Micros)
            .floor("sender POST p99", rtt.p99 as f64, Unit::Micros)
            .target_ratio(Cmp::AtMost, TARGET_RATIO),
    );
    r.push(Metric::new(
        "messages/s sent (201)",
        ok as f64 / send_secs.max(1e-9),
        Unit::PerSec,
    ));
    r.push(Metric::new("sockets", n_sockets as f64, Unit::Count));
    r.push(
        Metric::new("frames missing", check.missing as f64, Unit::Count).target(Cmp::AtMost, 0.0),
    );
    r.push(
        Metric::new("frames duplicated", check.duplicates as f64, Unit::Count)
            .target(Cmp::AtMost, 0.0),
    );
    r.push(
        Metric::new("sockets closed by the server", closed as f64, Unit::Count)
            .target(Cmp::AtMost, 0.0),
    );
    r.cpu(&cpu);
    r.metrics.extend(floors.metrics());
    r.note(format!(
        "{} users × {} sockets; {total} messages at {}/s between random pairs; {} not 201",
        users.len(),
        plan.l1_sockets_per_user,
        plan.l1_rate,
        total - ok
    ));
    if let Some(n) = failures_note("sockets", &failed) {
        r.note(n);
    }
    Ok(r)
}

//! L4, resume storm: 2,000 sockets (100 users × 20) see one post and keep
//! its cursor, then all drop; 50 posts are created while they are away; all
//! reconnect at once with their cursors. Measured is the time until every
//! socket has all 50 `post.new`, with gaps, duplicates and reorderings
//! counted (all must be 0) and `hello.resumed` checked.

use std::time::{Duration, Instant};

use crate::api;
use crate::floors::{self, Shape};
use crate::report::{Cmp, Metric, ScenarioReport, Unit};
use crate::scenarios::{after, connect_many, failures_note, probe_live_feed, Ctx, Listeners};
use crate::stats::Samples;
use crate::system::Env;
use crate::ws::{self, check_sequence, Listen, Progress, SeqCheck};
use crate::{Error, Result};

/// Runs L4.
///
/// # Errors
/// [`Error::FeatureMissing`] without the live feed.
pub async fn run(ctx: &Ctx, env: &Env) -> Result<ScenarioReport> {
    let plan = &ctx.plan;
    let mut users = super::users(env, "g", 1).await?;
    probe_live_feed(env, &users[0]).await?;
    users.extend(super::users(env, "h", plan.l4_users.saturating_sub(1)).await?);
    let floors = floors::measure(env, Shape::Post, plan.floor).await?;
    let http = api::client(2)?;
    let url = format!("{}/api/posts", env.base);
    // Creates post `seq`; whether it was acknowledged (201).
    let post = |seq: u32, who: usize| {
        let body = api::post_body(&format!("l4 {}", ws::mark(seq)), "while away");
        let (http, url, token) = (
            http.clone(),
            url.clone(),
            users[who % users.len()].token.clone(),
        );
        async move {
            let a = api::send(&http, reqwest::Method::POST, &url, Some(&token), Some(body)).await?;
            Ok::<_, Error>(a.status == 201)
        }
    };

    // Phase 1: connect, see one post, remember its cursor.
    let (sockets, failed) = connect_many(env, &users, plan.l4_sockets_per_user, 200).await?;
    let n = sockets.len();
    let seen = Progress::new();
    let listen = Listen {
        kind: "post.new",
        expect: Some((0, 1)),
        progress: seen.clone(),
        max_marks: 10,
        track_cursor: true,
        deadline: after(Duration::from_secs(120)),
    };
    let listeners = Listeners::spawn(sockets, &listen);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut warm = false;
    for attempt in 0..3 {
        if post(0, attempt).await? {
            warm = true;
            break;
        }
    }
    if !warm {
        return Err(Error::Protocol("the first post was refused 3 times".into()));
    }
    seen.wait_for(n, after(Duration::from_secs(30))).await;
    // Phase 2: every socket drops (its TCP connection closes).
    let logs = listeners.stop().await;
    let resumable: Vec<(usize, String)> = logs
        .into_iter()
        .filter_map(|(u, l)| l.last_cursor.map(|c| (u, c)))
        .collect();
    let without_cursor = n - resumable.len();
    // Phase 3: events happen while they are away.
    let events = plan.l4_events as u32;
    let mut acked = Vec::new();
    for seq in 1..=events {
        if post(seq, seq as usize).await? {
            acked.push(seq);
        }
    }
    let refused = events as usize - acked.len();
    // Phase 4: the storm.
    let done = Progress::new();
    let listen = Listen {
        kind: "post.new",
        expect: Some((1, events + 1)),
        progress: done.clone(),
        max_marks: events as usize * 2 + 10,
        track_cursor: false,
        deadline: after(Duration::from_secs(120)),
    };
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let base = env.ws_base();
    let cpu0 = env.cpu();
    let storm = Instant::now();
    let mut tasks = Vec::with_capacity(resumable.len());
    for (u, cursor) in &resumable {
        let (base, token, cursor) = (base.clone(), users[*u].token.clone(), cursor.clone());
        let (l, rx) = (listen.clone(), stop_rx.clone());
        tasks.push(tokio::spawn(async move {
            let (w, hello) = ws::connect(&base, &token, Some(&cursor)).await?;
            Ok::<_, Error>((hello, ws::listen(w, l, rx).await))
        }));
    }
    // A refused post may or may not exist: only acknowledged ones are
    // expected; with a refusal, completion is judged after a fixed drain.
    let all = if refused == 0 {
        done.wait_for(resumable.len(), after(Duration::from_secs(60)))
            .await
    } else {
        tokio::time::sleep(Duration::from_secs(10)).await;
        false
    };
    let storm_secs = storm.elapsed();
    let cpu = env.cpu().since(&cpu0);
    let _ = stop.send(true);
    let expected = acked;
    let mut check = SeqCheck::default();
    let mut not_resumed = 0;
    let mut reconnect_failed = Vec::new();
    let mut completion = Samples::default();
    for t in tasks {
        match t.await.map_err(|e| Error::Protocol(e.to_string()))? {
            Ok((hello, log)) => {
                if !hello.resumed {
                    not_resumed += 1;
                }
                let received: Vec<u32> = log.marks.iter().map(|(s, _)| *s).collect();
                check.add(check_sequence(&expected, &received));
                if let Some(at) = log.completed_at {
                    completion.record(at.saturating_duration_since(storm));
                }
            }
            Err(e) => {
                reconnect_failed.push(e.to_string());
                check.missing += expected.len();
            }
        }
    }
    let c = completion.summary();
    let mut r = ScenarioReport::new("L4");
    r.push(Metric::new(
        "sockets resuming",
        resumable.len() as f64,
        Unit::Count,
    ));
    r.push(Metric::new(
        "storm: every socket has every event",
        if all {
            storm_secs.as_secs_f64()
        } else {
            f64::NAN
        },
        Unit::Seconds,
    ));
    r.push(Metric::new(
        "per socket, complete p50",
        c.p50 as f64,
        Unit::Micros,
    ));
    r.push(Metric::new(
        "per socket, complete p99",
        c.p99 as f64,
        Unit::Micros,
    ));
    r.push(
        Metric::new("gaps (events missing)", check.missing as f64, Unit::Count)
            .target(Cmp::AtMost, 0.0),
    );
    r.push(
        Metric::new("duplicates", check.duplicates as f64, Unit::Count).target(Cmp::AtMost, 0.0),
    );
    r.push(
        Metric::new("out of order", check.out_of_order as f64, Unit::Count)
            .target(Cmp::AtMost, 0.0),
    );
    r.push(
        Metric::new("hello.resumed false", not_resumed as f64, Unit::Count)
            .target(Cmp::AtMost, 0.0),
    );
    r.push(
        Metric::new(
            "reconnects failed",
            reconnect_failed.len() as f64,
            Unit::Count,
        )
        .target(Cmp::AtMost, 0.0),
    );
    r.push(Metric::new(
        "sockets without a cursor before the drop",
        without_cursor as f64,
        Unit::Count,
    ));
    r.cpu(&cpu);
    r.metrics.extend(floors.metrics());
    r.note(format!(
        "{} users × {} sockets; {events} posts while away ({refused} not 201); storm complete: {all}",
        users.len(),
        plan.l4_sockets_per_user
    ));
    if let Some(n) = failures_note("first connections", &failed) {
        r.note(n);
    }
    if let Some(n) = failures_note("reconnects", &reconnect_failed) {
        r.note(n);
    }
    Ok(r)
}

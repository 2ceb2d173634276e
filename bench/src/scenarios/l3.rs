//! L3, idle sockets: 10,000 authenticated sockets (100 users × 100) stay
//! open and idle, answering the server's pings; measured is the resident
//! memory of the `forum` process before and after, per socket.

use std::time::Duration;

use crate::floors::{self, Shape};
use crate::report::{Cmp, Metric, ScenarioReport, Unit};
use crate::scenarios::{after, connect_many, failures_note, probe_live_feed, Ctx, Listeners};
use crate::system::{rss_kib, Env};
use crate::ws::{Listen, Progress};
use crate::{Error, Result};

/// Target: resident memory per idle socket, KiB.
pub const TARGET_KIB: f64 = 8.0;

/// Runs L3.
///
/// # Errors
/// [`Error::FeatureMissing`] without the live feed.
pub async fn run(ctx: &Ctx, env: &Env) -> Result<ScenarioReport> {
    let plan = &ctx.plan;
    let mut users = super::users(env, "e", 1).await?;
    probe_live_feed(env, &users[0]).await?;
    users.extend(super::users(env, "f", plan.l3_users.saturating_sub(1)).await?);
    let floors = floors::measure(env, Shape::Post, plan.floor).await?;
    let rss = || env.forum_pid().map(rss_kib).transpose();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = rss()?;

    let (sockets, failed) = connect_many(env, &users, plan.l3_sockets_per_user, 200).await?;
    let n = sockets.len();
    if n == 0 {
        return Err(Error::Protocol("no socket connected".into()));
    }
    let listen = Listen {
        kind: "none",
        expect: None,
        progress: Progress::new(),
        max_marks: 0,
        track_cursor: false,
        deadline: after(plan.l3_hold + Duration::from_secs(60)),
    };
    let listeners = Listeners::spawn(sockets, &listen);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let connected = rss()?;
    tokio::time::sleep(plan.l3_hold).await;
    let held = rss()?;
    let logs = listeners.stop().await;
    let pinged = logs.iter().filter(|(_, l)| l.pings > 0).count();
    let closed = logs.iter().filter(|(_, l)| l.ended.is_some()).count();

    let mut r = ScenarioReport::new("L3");
    r.push(Metric::new("sockets", n as f64, Unit::Count));
    match (before, connected, held) {
        (Some(b), Some(c), Some(h)) => {
            r.push(Metric::new(
                "forum RSS before",
                b as f64 / 1024.0,
                Unit::MiB,
            ));
            r.push(Metric::new(
                "forum RSS, sockets open",
                c as f64 / 1024.0,
                Unit::MiB,
            ));
            r.push(
                Metric::new(
                    "RSS per socket",
                    c.saturating_sub(b) as f64 / n as f64,
                    Unit::KiB,
                )
                .target(Cmp::AtMost, TARGET_KIB),
            );
            r.push(
                Metric::new(
                    format!(
                        "RSS per socket after {:.0} s idle",
                        plan.l3_hold.as_secs_f64()
                    ),
                    h.saturating_sub(b) as f64 / n as f64,
                    Unit::KiB,
                )
                .target(Cmp::AtMost, TARGET_KIB),
            );
        }
        _ => r.note("resident memory not measured: the system was not started by the suite"),
    }
    r.push(Metric::new(
        "sockets that got a ping",
        pinged as f64,
        Unit::Count,
    ));
    r.push(
        Metric::new("sockets closed by the server", closed as f64, Unit::Count)
            .target(Cmp::AtMost, 0.0),
    );
    r.metrics.extend(floors.metrics());
    r.note(format!(
        "{} users × {} sockets, held {:.0} s (the server pings every 20 s); RSS of the whole `forum up` process",
        users.len(),
        plan.l3_sockets_per_user,
        plan.l3_hold.as_secs_f64()
    ));
    if let Some(n) = failures_note("sockets", &failed) {
        r.note(n);
    }
    Ok(r)
}

//! One module per scenario, and what they share: starting and stopping the
//! environment around each one (for W1 also its CRUD floor), connecting
//! many sockets, registering many users.

pub mod l1;
pub mod l2;
pub mod l3;
pub mod l4;
pub mod r1;
pub mod w1;
pub mod w2;

use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::api::{self, User};
use crate::cli::{Plan, Scenario};
use crate::crud::CrudFloor;
use crate::report::{ScenarioReport, Status};
use crate::system::{Env, Settings, Start};
use crate::ws::{self, Listen, SocketLog, Ws};
use crate::{Error, Result};

/// What every scenario gets.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// Where things are.
    pub settings: Settings,
    /// How big each scenario is.
    pub plan: Plan,
    /// With `--metrics-plot`: where to tell the scraper which system each
    /// scenario loads.
    pub metrics: Option<crate::scrape::Tap>,
}

/// Runs one scenario in its own environment, cleans up, and reports. The
/// flag is true when the run was interrupted (Ctrl-C): stop there.
pub async fn run(ctx: &Ctx, scenario: Scenario) -> (Vec<ScenarioReport>, bool) {
    let started = Instant::now();
    let name = scenario.name();
    eprintln!("bench: {name}: starting");
    let start = if scenario == Scenario::R1 {
        Start::Migrate
    } else {
        Start::Up
    };
    let env = match Env::start(&ctx.settings, start).await {
        Ok(env) => env,
        Err(e) => {
            let mut r = ScenarioReport::new(name);
            r.status = Status::Failed(e.to_string());
            return (vec![r], false);
        }
    };
    if let Some(m) = &ctx.metrics {
        m.follow(name, &env.base);
    }
    // Started here, not inside W1, so that it is stopped and its database
    // dropped whatever happens to the scenario (Ctrl-C included).
    let crud = match scenario {
        Scenario::W1 => Some(
            CrudFloor::start(&ctx.settings, &env.run_id)
                .await
                .map_err(|e| {
                    eprintln!("bench: {name}: the CRUD floor did not start: {e}");
                    e.to_string()
                }),
        ),
        _ => None,
    };
    let body = async {
        match scenario {
            Scenario::W1 => {
                let crud = match &crud {
                    Some(Ok(c)) => Ok(c),
                    Some(Err(e)) => Err(e.as_str()),
                    None => Err("not started"),
                };
                w1::run(ctx, &env, crud).await
            }
            Scenario::W2 => w2::run(ctx, &env).await.map(|r| vec![r]),
            Scenario::L1 => l1::run(ctx, &env).await.map(|r| vec![r]),
            Scenario::L2 => l2::run(ctx, &env).await.map(|r| vec![r]),
            Scenario::L3 => l3::run(ctx, &env).await.map(|r| vec![r]),
            Scenario::L4 => l4::run(ctx, &env).await.map(|r| vec![r]),
            Scenario::R1 => r1::run(ctx, &env).await.map(|r| vec![r]),
            Scenario::All => Ok(Vec::new()),
        }
    };
    let result = tokio::select! {
        r = body => r,
        _ = tokio::signal::ctrl_c() => Err(Error::Interrupted),
    };
    if let Some(m) = &ctx.metrics {
        m.unfollow();
    }
    if let Some(Ok(c)) = crud {
        c.shutdown().await;
    }
    env.shutdown().await;
    let interrupted = matches!(result, Err(Error::Interrupted));
    let mut reports = match result {
        Ok(r) => r,
        Err(Error::FeatureMissing(why)) => {
            vec![ScenarioReport::skipped(
                name,
                format!("feature missing: {why}"),
            )]
        }
        Err(e) => {
            let mut r = ScenarioReport::new(name);
            r.status = Status::Failed(e.to_string());
            vec![r]
        }
    };
    for r in &mut reports {
        if r.elapsed.is_zero() {
            r.elapsed = started.elapsed();
        }
    }
    eprintln!(
        "bench: {name}: done in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    (reports, interrupted)
}

/// Registers `n` users of this environment (`<prefix><run id>_<i>`), four
/// at a time.
///
/// # Errors
/// The first failed registration.
pub async fn users(env: &Env, prefix: &str, n: usize) -> Result<Vec<User>> {
    let http = api::client(8)?;
    let t = Instant::now();
    let users =
        api::register_many(&http, &env.base, &format!("{prefix}{}", env.run_id), n, 4).await?;
    eprintln!(
        "bench: registered {n} users in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    Ok(users)
}

/// Opens one socket as `user` to learn whether the live feed exists.
///
/// # Errors
/// [`Error::FeatureMissing`] when `GET /api/ws` answers 404.
pub async fn probe_live_feed(env: &Env, user: &User) -> Result<()> {
    let (mut ws, hello) = ws::connect(&env.ws_base(), &user.token, None).await?;
    if hello.user_id != user.id {
        return Err(Error::Protocol(format!(
            "hello names user {:?}, expected {}",
            hello.user_id, user.id
        )));
    }
    let _ = ws.close(None).await;
    Ok(())
}

/// Opens `per_user` sockets for every user, `concurrency` handshakes at a
/// time. Returns (user index, socket) of those that opened, and the
/// failures.
///
/// # Errors
/// [`Error::FeatureMissing`] when the endpoint is missing.
pub async fn connect_many(
    env: &Env,
    users: &[User],
    per_user: usize,
    concurrency: usize,
) -> Result<(Vec<(usize, Ws)>, Vec<String>)> {
    let base = env.ws_base();
    let jobs: Vec<(usize, String)> = (0..per_user)
        .flat_map(|_| users.iter().enumerate().map(|(i, u)| (i, u.token.clone())))
        .collect();
    let results: Vec<(usize, Result<Ws>)> = futures::stream::iter(jobs)
        .map(|(i, token)| {
            let base = base.clone();
            async move { (i, ws::connect(&base, &token, None).await.map(|(w, _)| w)) }
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let mut open = Vec::with_capacity(results.len());
    let mut failed = Vec::new();
    for (i, r) in results {
        match r {
            Ok(w) => open.push((i, w)),
            Err(Error::FeatureMissing(why)) => return Err(Error::FeatureMissing(why)),
            Err(e) => failed.push(e.to_string()),
        }
    }
    Ok((open, failed))
}

/// Listening sockets and the switch that stops them.
pub struct Listeners {
    stop: watch::Sender<bool>,
    tasks: Vec<(usize, JoinHandle<SocketLog>)>,
}

impl Listeners {
    /// Starts a listener per socket.
    pub fn spawn(sockets: Vec<(usize, Ws)>, l: &Listen) -> Listeners {
        let (stop, rx) = watch::channel(false);
        let tasks = sockets
            .into_iter()
            .map(|(user, w)| (user, tokio::spawn(ws::listen(w, l.clone(), rx.clone()))))
            .collect();
        Listeners { stop, tasks }
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Stops every listener (their sockets are dropped) and returns (user
    /// index, log) for each.
    pub async fn stop(self) -> Vec<(usize, SocketLog)> {
        let _ = self.stop.send(true);
        let mut out = Vec::with_capacity(self.tasks.len());
        for (user, t) in self.tasks {
            out.push((user, t.await.unwrap_or_default()));
        }
        out
    }
}

/// Runs `f` on a runtime of its own thread, so that what it times does not
/// wait behind the thousands of socket tasks of the main runtime.
///
/// # Errors
/// What `f` returns, or a runtime that cannot be built.
pub async fn on_own_thread<F, Fut, T>(f: F) -> Result<T>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<T>>,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(f())
    })
    .await
    .map_err(|e| Error::Protocol(e.to_string()))?
}

/// A deadline `d` from now, for `tokio::time` waits.
pub fn after(d: Duration) -> tokio::time::Instant {
    tokio::time::Instant::now() + d
}

/// Socket failures summarised for a note: the count and the first reason.
pub fn failures_note(what: &str, failed: &[String]) -> Option<String> {
    failed
        .first()
        .map(|first| format!("{} {what} failed, first: {first}", failed.len()))
}

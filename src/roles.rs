//! Starting the roles. Every role runs until Ctrl-C or SIGTERM, then drains:
//! the gateway finishes the requests in flight, services finish the
//! commands they took, projectors finish their transaction.

use std::time::Duration;

use forum_commands::auth::Auth;
use forum_commands::chat::Chat;
use forum_commands::notifications::{deriver, Notifications};
use forum_commands::posts::Posts;
use forum_commands::runtime::{self, Options};
use forum_events::{subject::Subjects, Service};
use forum_projections::registry;
use forum_store::setup;
use forum_telemetry::{Exporter, Source};
use rand::RngCore;
use sqlx::PgPool;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::{Cli, Command, Common, GatewayArgs, ServiceArgs};
use crate::progress::Progress;
use crate::{Error, Result};

/// Runs the command of `cli`.
///
/// # Errors
/// Configuration, connection or start-up failures.
pub async fn run(cli: Cli) -> Result<()> {
    // Replay commands are one-shot: Ctrl-C ends them at once (an
    // interrupted rebuild resumes from its checkpoint).
    let cli = match cli.command {
        Command::Replay { command } => return crate::replay_cli::run(&cli.common, command).await,
        command => Cli { command, ..cli },
    };
    let (stop_tx, stop) = watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
    });
    let common = cli.common;
    match cli.command {
        Command::Migrate => migrate(&common, true).await,
        Command::Up { gateway, service } => {
            migrate(&common, false).await?;
            let pool = shared_pool(&common).await?;
            // Shutdown in stages: the gateway drains its requests first,
            // while the services and projectors they wait on still run.
            let (back_tx, back_stop) = watch::channel(false);
            let mut roles = JoinSet::new();
            for name in SERVICES {
                roles.spawn(run_service(
                    common.clone(),
                    Some(pool.clone()),
                    name.to_string(),
                    service.clone(),
                    back_stop.clone(),
                ));
            }
            roles.spawn(run_projectors(
                common.clone(),
                Some(pool.clone()),
                Vec::new(),
                back_stop.clone(),
            ));
            let front = common.clone();
            roles.spawn(async move {
                let r = run_gateway(front, Some(pool), gateway, stop).await;
                let _ = back_tx.send(true);
                r
            });
            let mut result = Ok(());
            while let Some(done) = roles.join_next().await {
                let r = done
                    .map_err(|e| Error::Config(format!("role panicked: {e}")))
                    .and_then(|r| r);
                if r.is_err() && result.is_ok() {
                    result = r;
                    // One role failed to start: stop the others.
                    roles.abort_all();
                }
            }
            result
        }
        Command::Gateway(args) => run_gateway(common, None, args, stop).await,
        Command::Service { name, service } => run_service(common, None, name, service, stop).await,
        Command::Projector { only } => run_projectors(common, None, only, stop).await,
        Command::Replay { command } => crate::replay_cli::run(&common, command).await,
    }
}

/// The command services this build has: one per log.
pub const SERVICES: [&str; Service::ALL.len()] = {
    let mut names = [""; Service::ALL.len()];
    let mut i = 0;
    while i < names.len() {
        names[i] = Service::ALL[i].as_str();
        i += 1;
    }
    names
};

/// The one Postgres pool of a process running every role (`forum up`), so
/// FORUM_DB_MAX_CONNECTIONS bounds the process, not each role: that many
/// connections for the work, plus one for each log listener (the outbox
/// relays' and the projectors' hold theirs for good).
async fn shared_pool(common: &Common) -> Result<PgPool> {
    let listeners = SERVICES.len()
        + forum_projections::all()
            .iter()
            .map(|p| p.sources().len())
            .sum::<usize>();
    Ok(setup::connect_pg(
        &common.database_url,
        common.db_max_connections + listeners as u32,
    )
    .await?)
}

/// The connections of a role: `shared`, the process's pool when it runs
/// every role, else a pool of its own; its own NATS connection.
async fn connect(
    common: &Common,
    shared: Option<PgPool>,
    role: &str,
) -> Result<(PgPool, async_nats::Client, Subjects)> {
    let pool = match shared {
        Some(pool) => pool,
        None => setup::connect_pg(&common.database_url, common.db_max_connections).await?,
    };
    let credentials = common.nats_credentials().map_err(Error::Config)?;
    let nats =
        setup::connect_nats_as(&common.nats_url, &format!("forum-{role}"), &credentials).await?;
    Ok((pool, nats, Subjects::new(&common.prefix)))
}

/// Creates the database, applies migrations, creates the stream and makes
/// sure every projection has a live version (so every read view exists),
/// showing its steps when `show_progress` (see [`Progress`]).
///
/// # Errors
/// When Postgres or NATS refuse.
pub async fn migrate(common: &Common, show_progress: bool) -> Result<()> {
    let projections = forum_projections::all();
    let total = 3 + projections.len() as u64;
    let mut progress = if show_progress {
        Progress::new("migrate", total, "steps")
    } else {
        Progress::silent()
    };
    let mut step = |done: u64, what: &str| {
        let rate = done as f64 / progress.elapsed().as_secs_f64().max(1e-3);
        progress.set(done, total, rate, what);
    };
    step(0, "the database");
    setup::create_database(&common.database_url).await?;
    let (pool, nats, subjects) = connect(common, None, "migrate").await?;
    step(1, "the schema and the event logs");
    setup::migrate(&pool).await?;
    step(2, "the stream");
    setup::ensure_stream(&async_nats::jetstream::new(nats), &subjects).await?;
    for (i, p) in projections.iter().enumerate() {
        step(3 + i as u64, &format!("the live version of {}", p.name()));
        registry::ensure_live(&pool, &**p).await?;
    }
    step(total, "done");
    progress.finish();
    tracing::info!(stream = %subjects.stream_name(), "migrated");
    Ok(())
}

async fn run_service(
    common: Common,
    shared: Option<PgPool>,
    name: String,
    args: ServiceArgs,
    stop: watch::Receiver<bool>,
) -> Result<()> {
    let service = Service::parse(&name)
        .filter(|s| SERVICES.contains(&s.as_str()))
        .ok_or_else(|| {
            Error::Config(format!(
                "unknown service {name:?}; this build has {SERVICES:?}"
            ))
        })?;
    let alone = shared.is_none();
    let (pool, nats, subjects) = connect(&common, shared, &name).await?;
    if alone {
        let mut sources = vec![Source::Relays(vec![service])];
        if service == Service::Notifications {
            sources.push(Source::Deriver);
        }
        serve_metrics(
            &common,
            Exporter::new(pool.clone(), Some(nats.clone()), sources),
            &stop,
        )
        .await?;
    }
    setup::ensure_stream(&async_nats::jetstream::new(nats.clone()), &subjects).await?;
    let options = Options {
        max_batch: args.max_batch.max(1),
        batches_in_flight: args.batches_in_flight.max(1),
        abort_after_commit: args.abort_after_commit,
        inline: args
            .inline_projections
            .then(|| forum_projections::inline::Inline::of(service)),
        derive_notifications: (args.inline_projections && deriver::SOURCES.contains(&service))
            .then(|| forum_projections::inline::Inline::of(Service::Notifications)),
        ..Options::default()
    };
    match service {
        Service::Auth => {
            let domain = Auth::new(pool.clone(), Duration::from_secs(args.session_ttl_secs))
                .with_hash_queue(args.hash_queue.max(1));
            runtime::serve(domain, pool, nats, subjects, options, stop).await?;
        }
        Service::Posts => {
            let domain = Posts::new(pool.clone());
            runtime::serve(domain, pool, nats, subjects, options, stop).await?;
        }
        Service::Chat => {
            let domain = Chat::new(pool.clone());
            runtime::serve(domain, pool, nats, subjects, options, stop).await?;
        }
        Service::Notifications => {
            // The commands, and beside them the deriver (which derives
            // only while this instance holds the leader lock).
            let derive = tokio::spawn(deriver::run(
                pool.clone(),
                nats.clone(),
                subjects.clone(),
                stop.clone(),
            ));
            let served = runtime::serve(Notifications, pool, nats, subjects, options, stop).await;
            if served.is_err() {
                derive.abort();
            }
            let derived = derive.await;
            served?;
            derived.map_err(|e| Error::Config(format!("notifications deriver failed: {e}")))??;
        }
    }
    Ok(())
}

async fn run_projectors(
    common: Common,
    shared: Option<PgPool>,
    only: Vec<String>,
    stop: watch::Receiver<bool>,
) -> Result<()> {
    let alone = shared.is_none();
    let (pool, nats, subjects) = connect(&common, shared, "projector").await?;
    if alone {
        let sources = vec![Source::Projections, poison_source()];
        serve_metrics(
            &common,
            Exporter::new(pool.clone(), Some(nats.clone()), sources),
            &stop,
        )
        .await?;
    }
    let all = forum_projections::all();
    for name in &only {
        if !all.iter().any(|p| p.name() == name) {
            return Err(Error::Config(format!("unknown projection {name:?}")));
        }
    }
    let mut tasks = JoinSet::new();
    for p in all
        .into_iter()
        .filter(|p| only.is_empty() || only.iter().any(|n| n == p.name()))
    {
        tasks.spawn(forum_projections::runner::run(
            pool.clone(),
            nats.clone(),
            subjects.clone(),
            p,
            stop.clone(),
        ));
    }
    while let Some(done) = tasks.join_next().await {
        done.map_err(|e| Error::Config(format!("projector panicked: {e}")))??;
    }
    let _ = nats.flush().await;
    Ok(())
}

async fn run_gateway(
    common: Common,
    shared: Option<PgPool>,
    args: GatewayArgs,
    mut stop: watch::Receiver<bool>,
) -> Result<()> {
    let secret =
        match args.jwt_secret {
            Some(s) if s.len() >= 16 => s.into_bytes(),
            Some(_) => {
                return Err(Error::Config(
                    "FORUM_JWT_SECRET must be at least 16 characters".into(),
                ))
            }
            None if args.production => return Err(Error::Config(
                "production mode needs FORUM_JWT_SECRET (refusing to start with a random secret)"
                    .into(),
            )),
            None => {
                tracing::warn!(
                    "no FORUM_JWT_SECRET: using a random secret for this process; tokens will not \
                 survive a restart or work on other gateways (development only)"
                );
                let mut s = vec![0u8; 32];
                rand::thread_rng().fill_bytes(&mut s);
                s
            }
        };
    let allowed_origins = forum_gateway::live::AllowedOrigins::parse(&args.allowed_origins)
        .map_err(|e| Error::Config(format!("FORUM_ALLOWED_ORIGINS: {e}")))?;
    let trusted_proxies = forum_gateway::limits::parse_proxies(&args.trusted_proxies)
        .map_err(|e| Error::Config(format!("FORUM_TRUSTED_PROXIES: {e}")))?;
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(
            forum_gateway::server::tls_config(cert, key)
                .map_err(|e| Error::Config(format!("FORUM_TLS_CERT, FORUM_TLS_KEY: {e}")))?,
        ),
        _ => None,
    };
    let rate = |per_minute, burst| forum_gateway::limits::Rate { per_minute, burst };
    // The gateway of `forum up` reports for every role of its process.
    let sources = if shared.is_some() {
        vec![
            Source::Relays(Service::ALL.to_vec()),
            Source::Deriver,
            Source::Projections,
            poison_source(),
        ]
    } else {
        vec![poison_source()]
    };
    let (pool, nats, subjects) = connect(&common, shared, "gateway").await?;
    let exporter = Exporter::new(pool.clone(), Some(nats.clone()), sources);
    serve_metrics(&common, exporter.clone(), &stop).await?;
    let config = forum_gateway::Config {
        jwt_secret: secret,
        command_timeout: Duration::from_millis(args.command_timeout_ms),
        read_timeout: Duration::from_millis(args.read_timeout_ms),
        cookie_secure: args.production || tls.is_some(),
        live: forum_gateway::live::Settings {
            queue: args.ws_queue.max(1),
            ping: Duration::from_millis(args.ws_ping_ms.max(100)),
            max_message: args.ws_max_message.max(64),
            resume_max: args.ws_resume_max,
            heartbeat: Duration::from_millis(args.presence_heartbeat_ms.max(100)),
            max_per_user: args.ws_max_per_user.max(1),
            allowed_origins,
            write_timeout: Duration::from_millis(args.ws_write_timeout_ms.max(1)),
            ..forum_gateway::live::Settings::default()
        },
        limits: forum_gateway::limits::Settings {
            enabled: args.rate_limits,
            read: rate(args.rate_read_per_min, args.rate_read_burst),
            write: rate(args.rate_write_per_min, args.rate_write_burst),
            auth: rate(args.rate_auth_per_min, args.rate_auth_burst),
            socket: rate(args.rate_ws_per_min, args.rate_ws_burst),
            user_write: rate(args.rate_user_write_per_min, args.rate_user_write_burst),
            trusted_proxies,
        },
        idempotency_sweep: Duration::from_millis(args.idempotency_sweep_ms.max(10)),
    };
    let server = forum_gateway::server::Settings {
        header_timeout: Duration::from_millis(args.header_timeout_ms.max(1)),
        body_timeout: Duration::from_millis(args.body_timeout_ms.max(1)),
        idle_timeout: Duration::from_millis(args.idle_timeout_ms.max(1)),
        max_connections: args.max_connections.max(1),
        tls,
    };
    let state =
        forum_gateway::AppState::new(config, pool, nats, subjects, exporter, stop.clone()).await?;
    let listener = forum_gateway::bind(args.listen)?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, tls = server.tls.is_some(), "gateway listening");
    println!("listening on {addr}");
    let live = state.live.clone();
    let app = forum_gateway::app(state);
    forum_gateway::serve(listener, app, server, async move {
        let _ = stop.wait_for(|s| *s).await;
    })
    .await?;
    // Upgraded sockets outlive the HTTP server: let them finish closing.
    live.drain(Duration::from_secs(3)).await;
    Ok(())
}

/// The parked events of every live projection and of the notifications
/// deriver.
fn poison_source() -> Source {
    Source::Poison(vec![deriver::FOLLOWER.to_string()])
}

/// Serves `exporter` at FORUM_METRICS_LISTEN, if set, until `stop`.
///
/// # Errors
/// When the address cannot be bound.
async fn serve_metrics(
    common: &Common,
    exporter: Exporter,
    stop: &watch::Receiver<bool>,
) -> Result<()> {
    let Some(addr) = common.metrics_listen else {
        return Ok(());
    };
    let mut stop = stop.clone();
    let (bound, served) = forum_telemetry::server::bind(addr, exporter, async move {
        let _ = stop.wait_for(|s| *s).await;
    })
    .await
    .map_err(|e| Error::Config(format!("FORUM_METRICS_LISTEN {addr}: {e}")))?;
    tracing::info!(addr = %bound, "metrics listening");
    println!("metrics on {bound}");
    tokio::spawn(async move {
        if let Err(e) = served.await {
            tracing::warn!(error = %e, "metrics listener stopped");
        }
    });
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

//! Keeps a projection version current from its logs.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use forum_events::{subject::Subjects, Service};
use forum_store::log;
use sqlx::postgres::PgListener;
use sqlx::PgPool;
use tokio::sync::watch;

use crate::{registry, Error, Progress, Projection, Result};

/// Events applied in one transaction at most while following the logs.
pub const LIVE_BATCH: i64 = 1_000;

/// Applies the next batch of `service`'s events after the checkpoint of
/// (`p`, `version`), moving the checkpoint in the same transaction. The
/// checkpoint row is locked for the transaction, so two projectors of one
/// projection never apply the same event twice. Returns the new checkpoint
/// and the number of events applied, or `None` when there was nothing to do.
///
/// # Errors
/// [`Error::Poison`] when an event cannot be applied (nothing of the batch
/// is kept); database errors.
pub fn step<'a>(
    pool: &'a PgPool,
    p: &'a dyn Projection,
    version: u32,
    service: Service,
    batch: i64,
) -> futures::future::BoxFuture<'a, Result<Option<(u64, usize)>>> {
    Box::pin(step_inner(pool, p, version, service, batch))
}

async fn step_inner(
    pool: &PgPool,
    p: &dyn Projection,
    version: u32,
    service: Service,
    batch: i64,
) -> Result<Option<(u64, usize)>> {
    let mut tx = pool.begin().await?;
    let checkpoint: i64 = sqlx::query_scalar(
        "select position from proj.checkpoints
         where projection = $1 and version = $2 and service = $3 for update",
    )
    .bind(p.name())
    .bind(version as i32)
    .bind(service.as_str())
    .fetch_one(&mut *tx)
    .await?;
    let events = log::read_after(&mut tx, service, checkpoint as u64, batch).await?;
    let Some(last) = events.last().map(|e| e.position) else {
        return Ok(None);
    };
    p.apply(&mut tx, &p.schema(version), &events).await?;
    sqlx::query(
        "update proj.checkpoints set position = $4
         where projection = $1 and version = $2 and service = $3",
    )
    .bind(p.name())
    .bind(version as i32)
    .bind(service.as_str())
    .bind(last as i64)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Some((last, events.len())))
}

async fn announce(nats: &async_nats::Client, subjects: &Subjects, progress: Progress) {
    let subject = subjects.projection_progress(&progress.projection);
    if let Err(e) = nats
        .publish(subject, Bytes::from(progress.to_bytes()))
        .await
    {
        tracing::debug!(error = %e, "progress not announced");
    }
}

/// Runs the projection's live version from every one of its logs until
/// `shutdown` turns true. On a poison event the projection stops at that
/// event, records it in the registry and logs it; the rest of the process
/// goes on. The live version is re-read from the registry before every
/// step, so when `forum replay rebuild` switches to a new version the
/// projector follows it without a restart (also out of a poison stop).
///
/// # Errors
/// When the projection cannot be set up.
pub async fn run(
    pool: PgPool,
    nats: async_nats::Client,
    subjects: Subjects,
    p: Arc<dyn Projection>,
    shutdown: watch::Receiver<bool>,
) -> Result<()> {
    let live = registry::ensure_live(&pool, &*p).await?;
    if live != p.version() {
        tracing::warn!(
            projection = p.name(),
            live,
            code = p.version(),
            "the live version is not this build's: rebuild it with `forum replay rebuild {}`",
            p.name()
        );
    }
    registry::clear_error(&pool, p.name(), live).await?;
    let mut tasks = Vec::new();
    for &service in p.sources() {
        tasks.push(tokio::spawn(follow(
            pool.clone(),
            nats.clone(),
            subjects.clone(),
            p.clone(),
            live,
            service,
            shutdown.clone(),
        )));
    }
    for t in tasks {
        let _ = t.await;
    }
    Ok(())
}

async fn follow(
    pool: PgPool,
    nats: async_nats::Client,
    subjects: Subjects,
    p: Arc<dyn Projection>,
    mut version: u32,
    service: Service,
    mut shutdown: watch::Receiver<bool>,
) {
    let name = p.name();
    let mut listener = loop {
        let attempt = async {
            let mut l = PgListener::connect_with(&pool).await?;
            l.listen(&log::channel(service)).await?;
            Ok::<_, sqlx::Error>(l)
        };
        match attempt.await {
            Ok(l) => break l,
            Err(e) => {
                tracing::warn!(projection = name, %service, error = %e, "cannot listen; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = shutdown.changed() => return,
                }
            }
        }
    };
    // Announce where we stand, for gateways that just started.
    if let Ok(mut conn) = pool.acquire().await {
        if let Ok(cps) = registry::checkpoints(&mut conn, name, version).await {
            for (svc, position) in cps {
                if svc == service.as_str() {
                    announce(
                        &nats,
                        &subjects,
                        Progress {
                            projection: name.to_string(),
                            version,
                            service,
                            position,
                        },
                    )
                    .await;
                }
            }
        }
    }
    let mut backoff = Duration::from_millis(50);
    loop {
        version = current_version(&pool, name, service, version).await;
        match step(&pool, &*p, version, service, LIVE_BATCH).await {
            Ok(Some((position, n))) => {
                backoff = Duration::from_millis(50);
                announce(
                    &nats,
                    &subjects,
                    Progress {
                        projection: name.to_string(),
                        version,
                        service,
                        position,
                    },
                )
                .await;
                if n as i64 == LIVE_BATCH {
                    continue;
                }
            }
            Ok(None) => {}
            Err(e @ Error::Poison { .. }) => {
                tracing::error!(projection = name, version, error = %e, "projection stopped at a poison event");
                if let Err(e2) = registry::record_error(&pool, name, version, &e).await {
                    tracing::error!(projection = name, error = %e2, "could not record the poison event");
                }
                // Stopped until shutdown or until a rebuild switches the
                // live version; never a crash loop.
                let stopped = version;
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = shutdown.changed() => return,
                    }
                    if *shutdown.borrow() {
                        return;
                    }
                    if current_version(&pool, name, service, stopped).await != stopped {
                        break;
                    }
                }
                continue;
            }
            Err(e) => {
                tracing::warn!(projection = name, %service, error = %e, "projection step failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.changed() => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
        if *shutdown.borrow() {
            return;
        }
        tokio::select! {
            n = listener.recv() => {
                if let Err(e) = n {
                    tracing::warn!(projection = name, error = %e, "listener lost; reconnecting");
                }
            }
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// The live version of `name` (the registry's word), or `version` when the
/// registry cannot be read or has none.
async fn current_version(pool: &PgPool, name: &str, service: Service, version: u32) -> u32 {
    let live = async {
        let mut conn = pool.acquire().await?;
        registry::live_version(&mut conn, name).await
    }
    .await;
    match live {
        Ok(Some(live)) if live != version => {
            tracing::info!(
                projection = name,
                %service,
                from = version,
                to = live,
                "following the new live version"
            );
            live
        }
        _ => version,
    }
}

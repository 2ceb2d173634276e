//! Keeps a projection version current from its logs.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use forum_events::{subject::Subjects, RecordedEvent, Service};
use forum_store::log;
use forum_telemetry::names;
use sqlx::postgres::PgListener;
use sqlx::PgPool;
use tokio::sync::watch;

use crate::error::Failure;
use crate::poison::{self, Parked, ParkedNotice};
use crate::{registry, Error, Progress, Projection, Result};

/// Events applied in one transaction at most while following the logs.
pub const LIVE_BATCH: i64 = 1_000;

/// The first wait after a transient failure; it doubles up to
/// [`MAX_BACKOFF`] while the failures go on.
const MIN_BACKOFF: Duration = Duration::from_millis(50);

/// The longest wait between two attempts after transient failures.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// What one [`step`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stepped {
    /// The new checkpoint.
    pub position: u64,
    /// Events read (applied or parked).
    pub events: usize,
    /// The events parked as poison (already recorded and logged).
    pub parked: Vec<Parked>,
}

/// Applies the next batch of `service`'s events after the checkpoint of
/// (`p`, `version`), moving the checkpoint in the same transaction. The
/// checkpoint row is locked for the transaction, so two projectors of one
/// projection never apply the same event twice. When the batch fails
/// deterministically (see [`crate::error::Failure`]), it is applied again
/// in a new transaction with [`poison::apply_isolating`]: the events that
/// fail alone are parked in `proj.poison` and the checkpoint moves past
/// them with the rest of the batch. Returns what was done, or `None` when
/// there was nothing to do.
///
/// # Errors
/// Transient failures (nothing of the batch is kept).
pub fn step<'a>(
    pool: &'a PgPool,
    p: &'a dyn Projection,
    version: u32,
    service: Service,
    batch: i64,
) -> futures::future::BoxFuture<'a, Result<Option<Stepped>>> {
    Box::pin(step_inner(pool, p, version, service, batch))
}

async fn step_inner(
    pool: &PgPool,
    p: &dyn Projection,
    version: u32,
    service: Service,
    batch: i64,
) -> Result<Option<Stepped>> {
    let schema = p.schema(version);
    // With the read models applied inline, the log's head is almost always
    // at the checkpoint already: find that out without taking the
    // checkpoint, which an append applying this projection inline at that
    // moment would otherwise find taken (and leave its work to this
    // projector, the write then waiting for it).
    if caught_up(pool, p, version, service).await? {
        return Ok(None);
    }
    let mut tx = pool.begin().await?;
    // An append applying this projection inline holds the checkpoint until
    // it commits, and then the events are applied: nothing to do now (the
    // commit's notification wakes this follower again).
    let Some(checkpoint) = try_lock_checkpoint(&mut tx, p, version, service).await? else {
        return Ok(None);
    };
    let events = log::read_after(&mut tx, service, checkpoint, batch).await?;
    let Some(last) = events.last().map(|e| e.position) else {
        return Ok(None);
    };
    // The common case in one transaction without savepoints.
    match poison::apply_guarded(&mut tx, p, &schema, &events).await {
        Ok(()) => {
            registry::set_checkpoint(&mut tx, p.name(), version, service, last).await?;
            tx.commit().await?;
            applied(p.name(), &events, &[]);
            return Ok(Some(Stepped {
                position: last,
                events: events.len(),
                parked: Vec::new(),
            }));
        }
        Err(e) if e.failure() == Failure::Transient => return Err(e),
        Err(e) => {
            tracing::debug!(projection = p.name(), %service, error = %e, "batch failed; isolating the culprit");
            tx.rollback().await?;
        }
    }
    let mut tx = pool.begin().await?;
    let now = lock_checkpoint(&mut tx, p, version, service).await?;
    let events = if now == checkpoint {
        events
    } else {
        log::read_after(&mut tx, service, now, batch).await?
    };
    let Some(last) = events.last().map(|e| e.position) else {
        return Ok(None);
    };
    let parked = poison::apply_isolating(&mut tx, p, &schema, &events).await?;
    poison::park(&mut tx, p.name(), version, &parked).await?;
    registry::set_checkpoint(&mut tx, p.name(), version, service, last).await?;
    tx.commit().await?;
    poison::log_parked(p.name(), version, &parked);
    applied(p.name(), &events, &parked);
    Ok(Some(Stepped {
        position: last,
        events: events.len(),
        parked,
    }))
}

/// Counts and logs the events of a committed step: each applied one at
/// debug level with its correlation id (and, when spans are exported, as a
/// span of its write's trace), the parked ones in
/// `forum_projection_parked_total`.
fn applied(projection: &'static str, events: &[RecordedEvent], parked: &[Parked]) {
    let applied = events.len().saturating_sub(parked.len());
    metrics::counter!(names::PROJECTION_APPLIED, "projection" => projection)
        .increment(applied as u64);
    if !parked.is_empty() {
        metrics::counter!(names::PROJECTION_PARKED, "projection" => projection)
            .increment(parked.len() as u64);
    }
    let applied = events
        .iter()
        .filter(|e| !parked.iter().any(|p| p.position == e.position));
    forum_telemetry::logs::followed(projection, "applied", applied);
}

/// Whether the checkpoint of (`p`, `version`) in `service`'s log is at the
/// log's head, read without locking anything (a checkpoint not there yet is
/// not caught up: the locking path creates it). [`step`] asks it first.
///
/// # Errors
/// Database failure.
pub async fn caught_up(
    pool: &PgPool,
    p: &dyn Projection,
    version: u32,
    service: Service,
) -> Result<bool> {
    let caught_up: Option<bool> = sqlx::query_scalar(&format!(
        "select c.position >= (select coalesce(max(position), 0) from {}.events)
         from proj.checkpoints c
         where c.projection = $1 and c.version = $2 and c.service = $3",
        service.as_str()
    ))
    .bind(p.name())
    .bind(version as i32)
    .bind(service.as_str())
    .fetch_optional(pool)
    .await?;
    Ok(caught_up.unwrap_or(false))
}

/// The checkpoint, locked; `None` while another transaction holds it.
async fn try_lock_checkpoint(
    tx: &mut sqlx::PgConnection,
    p: &dyn Projection,
    version: u32,
    service: Service,
) -> Result<Option<u64>> {
    let position: Option<i64> = sqlx::query_scalar(
        "select position from proj.checkpoints
         where projection = $1 and version = $2 and service = $3 for update skip locked",
    )
    .bind(p.name())
    .bind(version as i32)
    .bind(service.as_str())
    .fetch_optional(&mut *tx)
    .await?;
    match position {
        Some(p) => Ok(Some(p as u64)),
        // Held, or missing: the blocking look-up tells them apart.
        None => {
            let exists: bool = sqlx::query_scalar(
                "select exists (select 1 from proj.checkpoints
                 where projection = $1 and version = $2 and service = $3)",
            )
            .bind(p.name())
            .bind(version as i32)
            .bind(service.as_str())
            .fetch_one(&mut *tx)
            .await?;
            if exists {
                Ok(None)
            } else {
                lock_checkpoint(tx, p, version, service).await.map(Some)
            }
        }
    }
}

async fn lock_checkpoint(
    tx: &mut sqlx::PgConnection,
    p: &dyn Projection,
    version: u32,
    service: Service,
) -> Result<u64> {
    registry::lock_checkpoint(tx, p.name(), version, service)
        .await?
        .ok_or_else(|| {
            Error::State(format!(
                "projection {} v{version} has no checkpoint on {service}",
                p.name()
            ))
        })
}

/// Tells gateways which positions were parked (before the progress that
/// covers them), so a write waiting for one answers at once.
pub(crate) async fn announce_parked(
    nats: &async_nats::Client,
    subjects: &Subjects,
    name: &str,
    version: u32,
    service: Service,
    parked: &[Parked],
) {
    if parked.is_empty() {
        return;
    }
    let notice = ParkedNotice {
        projection: name.to_string(),
        version,
        service,
        positions: parked.iter().map(|p| p.position).collect(),
    };
    if let Err(e) = nats
        .publish(
            poison::notice_subject(subjects, name),
            Bytes::from(notice.to_bytes()),
        )
        .await
    {
        tracing::debug!(error = %e, "parked events not announced");
    }
}

pub(crate) async fn announce(nats: &async_nats::Client, subjects: &Subjects, progress: Progress) {
    let subject = subjects.projection_progress(&progress.projection);
    if let Err(e) = nats
        .publish(subject, Bytes::from(progress.to_bytes()))
        .await
    {
        tracing::debug!(error = %e, "progress not announced");
    }
}

/// Runs the projection's live version from every one of its logs until
/// `shutdown` turns true. A transient failure is retried with backoff (50
/// ms doubling up to 2 s); an event that cannot be applied is parked (see
/// [`step`]) and announced, and the projection goes on: it never stops on
/// one event. The live version is re-read from the registry before every
/// step, so when `forum replay rebuild` switches to a new version the
/// projector follows it without a restart.
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
    let mut backoff = MIN_BACKOFF;
    loop {
        version = current_version(&pool, name, service, version).await;
        match step(&pool, &*p, version, service, LIVE_BATCH).await {
            Ok(Some(stepped)) => {
                backoff = MIN_BACKOFF;
                announce_parked(&nats, &subjects, name, version, service, &stepped.parked).await;
                announce(
                    &nats,
                    &subjects,
                    Progress {
                        projection: name.to_string(),
                        version,
                        service,
                        position: stepped.position,
                    },
                )
                .await;
                if stepped.events as i64 == LIVE_BATCH {
                    continue;
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(projection = name, %service, error = %e, retry_in = ?backoff, "projection step failed (transient); retrying");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.changed() => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                if *shutdown.borrow() {
                    return;
                }
                continue;
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

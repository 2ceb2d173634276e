//! Parked (poison) events: an event a projection cannot apply is set aside
//! in `proj.poison`, with why, and the projection goes on with the next
//! one; the checkpoint moves past it in the transaction that parks it.
//!
//! A batch is folded in memory and written with one statement per table,
//! so a failing batch names no event. [`apply_isolating`] finds the
//! culprits: it applies the batch under a savepoint and, on a
//! deterministic failure ([`Failure::Deterministic`]), rolls back to the
//! savepoint and applies the two halves, in order, each under its own
//! savepoint, down to single events. Only the events that fail alone are
//! parked; every other event of the batch is applied, in position order.
//! A transient failure aborts the whole attempt (the caller retries it).
//!
//! [`retry`] applies the parked events of a projection version again after
//! a fix, in order: every row of a projection derives from the events of
//! one stream (aggregate), so the rows of each stream holding a parked
//! event are forgotten ([`Projection::forget_stream`]) and the stream's
//! events up to the checkpoint are applied again, in position order, as a
//! rebuild would. Events that now apply leave the table; those that still
//! fail stay, with the new error.

use std::panic::AssertUnwindSafe;

use chrono::{DateTime, Utc};
use forum_events::subject::Subjects;
use forum_events::{codec, DecodeError, RecordedEvent, Service};
use forum_store::log;
use futures::FutureExt;
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use crate::error::Failure;
use crate::{registry, Error, Projection, Result};

pub use forum_store::poison::{panic_message, Parked};
use forum_store::poison::{Attempt, Attempter};
use futures::future::BoxFuture;

/// A row of `proj.poison`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParkedEvent {
    /// The follower that parked it: a projection, or `notifier`.
    pub projection: String,
    /// The projection version.
    pub version: u32,
    /// The event and its latest error.
    pub event: Parked,
    /// When it was first parked.
    pub parked_at: DateTime<Utc>,
    /// How many times it failed.
    pub attempts: i32,
    /// When it was last retried.
    pub retried_at: Option<DateTime<Utc>>,
}

/// Applies `events` with `p` inside `tx`, a panic turned into
/// [`Error::Panicked`].
///
/// # Errors
/// Whatever `apply` fails with.
pub async fn apply_guarded(
    tx: &mut PgConnection,
    p: &dyn Projection,
    schema: &str,
    events: &[RecordedEvent],
) -> Result<()> {
    match AssertUnwindSafe(async { p.apply(tx, schema, events).await })
        .catch_unwind()
        .await
    {
        Ok(result) => result,
        Err(panic) => Err(Error::Panicked(panic_message(&*panic))),
    }
}

/// Applies `events` (of one log, in position order) with `p` inside `tx`,
/// parking only the events that fail deterministically on their own (see
/// the module docs). Returns the parked events, in position order; the
/// caller records them with [`park`] in the same transaction.
///
/// # Errors
/// A transient failure (nothing of the attempt is to be kept).
pub async fn apply_isolating(
    tx: &mut PgConnection,
    p: &dyn Projection,
    schema: &str,
    events: &[RecordedEvent],
) -> Result<Vec<Parked>> {
    forum_store::poison::isolate(tx, events, &Applying { p, schema }).await
}

/// A projection applying parts of a batch, for [`forum_store::poison::isolate`].
struct Applying<'p> {
    p: &'p dyn Projection,
    schema: &'p str,
}

impl Attempter for Applying<'_> {
    type Error = Error;

    fn attempt<'a>(
        &'a self,
        tx: &'a mut PgConnection,
        part: &'a [RecordedEvent],
    ) -> BoxFuture<'a, Attempt<Error>> {
        Box::pin(async move {
            match apply_guarded(tx, self.p, self.schema, part).await {
                Ok(()) => Attempt::Applied(Vec::new()),
                Err(e) if e.failure() == Failure::Transient => Attempt::Transient(e),
                Err(e) => {
                    // An event that does not decode is named by the error.
                    let culprit = match &e {
                        Error::Poison { position, .. } => {
                            part.iter().position(|ev| ev.position == *position)
                        }
                        _ => None,
                    };
                    Attempt::Deterministic {
                        reason: e.to_string(),
                        culprit,
                    }
                }
            }
        })
    }
}

/// Records `parked` in `proj.poison` under `projection` and `version`, in
/// the caller's transaction.
///
/// # Errors
/// Database failure.
pub async fn park(
    tx: &mut PgConnection,
    projection: &str,
    version: u32,
    parked: &[Parked],
) -> Result<()> {
    Ok(forum_store::poison::park(tx, projection, version, parked).await?)
}

/// Logs each parked event once, at `error`, after its transaction
/// committed.
pub fn log_parked(projection: &str, version: u32, parked: &[Parked]) {
    forum_store::poison::log_parked(
        projection,
        version,
        "the projection goes on without it",
        parked,
    );
}

/// The parked events, oldest position first per follower: all of them, or
/// those of one follower (and one version of it).
///
/// # Errors
/// Database failure.
pub async fn list(
    conn: &mut PgConnection,
    projection: Option<&str>,
    version: Option<u32>,
) -> Result<Vec<ParkedEvent>> {
    let rows = sqlx::query(
        "select projection, version, service, position, stream_id, event_id, event_type,
                correlation_id, error, parked_at, attempts, retried_at
         from proj.poison
         where ($1::text is null or projection = $1) and ($2::int is null or version = $2)
         order by projection, version, service, position",
    )
    .bind(projection)
    .bind(version.map(|v| v as i32))
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(from_row).collect()
}

fn from_row(r: &sqlx::postgres::PgRow) -> Result<ParkedEvent> {
    let service: String = r.try_get("service")?;
    let service = Service::parse(&service)
        .ok_or_else(|| Error::State(format!("unknown log {service:?} in proj.poison")))?;
    Ok(ParkedEvent {
        projection: r.try_get("projection")?,
        version: r.try_get::<i32, _>("version")? as u32,
        event: Parked {
            service,
            position: r.try_get::<i64, _>("position")? as u64,
            stream_id: r.try_get("stream_id")?,
            event_id: r.try_get("event_id")?,
            event_type: r.try_get("event_type")?,
            correlation_id: r.try_get("correlation_id")?,
            error: r.try_get("error")?,
        },
        parked_at: r.try_get("parked_at")?,
        attempts: r.try_get("attempts")?,
        retried_at: r.try_get("retried_at")?,
    })
}

/// What a projector announces after parking events, on
/// [`notice_subject`], so that a gateway waiting for one of them to be
/// applied (read-your-writes) answers at once instead of timing out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParkedNotice {
    /// The projection.
    pub projection: String,
    /// Its version.
    pub version: u32,
    /// The log.
    pub service: Service,
    /// The positions parked.
    pub positions: Vec<u64>,
}

impl ParkedNotice {
    /// Encodes for NATS.
    pub fn to_bytes(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Decodes from NATS.
    ///
    /// # Errors
    /// When the bytes are not one notice.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        codec::decode(bytes)
    }
}

/// `<prefix>.proj.<projection>.parked`: where a projector announces the
/// events it parked (under `<prefix>.proj.>`, beside its progress).
pub fn notice_subject(subjects: &Subjects, projection: &str) -> String {
    format!("{}.parked", subjects.projection_progress(projection))
}

/// Whether `subject` is a [`notice_subject`].
pub fn is_notice_subject(subject: &str) -> bool {
    subject.ends_with(".parked")
}

/// What [`retry`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetryReport {
    /// The projection version retried.
    pub version: u32,
    /// Parked events that now apply: removed from the table.
    pub applied: Vec<Parked>,
    /// Parked events that still fail, with the new error.
    pub still: Vec<Parked>,
    /// Events of the re-applied streams that applied before and fail now
    /// (the code changed): parked.
    pub newly: Vec<Parked>,
    /// Streams forgotten and applied again.
    pub streams: usize,
    /// Events applied again.
    pub events: usize,
}

/// Applies the parked events of `p`'s version `version` (default: the live
/// one) again, in order (see the module docs), each log in one
/// transaction that holds the version's checkpoint, so the projector waits
/// meanwhile.
///
/// # Errors
/// [`Error::State`] when the version does not exist; database errors
/// (nothing of the failed log's transaction is kept).
pub async fn retry(pool: &PgPool, p: &dyn Projection, version: Option<u32>) -> Result<RetryReport> {
    let name = p.name();
    let version = match version {
        Some(v) => v,
        None => {
            let mut conn = pool.acquire().await?;
            registry::live_version(&mut conn, name)
                .await?
                .ok_or_else(|| Error::State(format!("projection {name} has no live version")))?
        }
    };
    let schema = p.schema(version);
    let mut report = RetryReport {
        version,
        ..RetryReport::default()
    };
    for &service in p.sources() {
        let mut tx = pool.begin().await?;
        registry::lock(&mut tx, name).await?;
        let checkpoint = registry::lock_checkpoint(&mut tx, name, version, service)
            .await?
            .ok_or_else(|| {
                Error::State(format!(
                    "projection {name} has no version {version} reading {service}"
                ))
            })?;
        let before: Vec<Parked> = list(&mut tx, Some(name), Some(version))
            .await?
            .into_iter()
            .map(|e| e.event)
            .filter(|e| e.service == service)
            .collect();
        if before.is_empty() {
            tx.rollback().await?;
            continue;
        }
        let mut streams: Vec<Uuid> = Vec::new();
        for e in &before {
            if !streams.contains(&e.stream_id) {
                streams.push(e.stream_id);
            }
        }
        let mut failed = Vec::new();
        for &stream in &streams {
            let mut events: Vec<RecordedEvent> = log::read_stream(&mut tx, service, stream)
                .await?
                .into_iter()
                .filter(|e| e.position <= checkpoint)
                .collect();
            events.sort_by_key(|e| e.position);
            p.forget_stream(&mut tx, &schema, stream, &events).await?;
            failed.extend(apply_isolating(&mut tx, p, &schema, &events).await?);
            report.events += events.len();
        }
        report.streams += streams.len();
        let applied: Vec<Parked> = before
            .iter()
            .filter(|b| !failed.iter().any(|f| f.position == b.position))
            .cloned()
            .collect();
        sqlx::query(
            "delete from proj.poison
             where projection = $1 and version = $2 and service = $3 and position = any($4)",
        )
        .bind(name)
        .bind(version as i32)
        .bind(service.as_str())
        .bind(
            applied
                .iter()
                .map(|e| e.position as i64)
                .collect::<Vec<_>>(),
        )
        .execute(&mut *tx)
        .await?;
        park(&mut tx, name, version, &failed).await?;
        tx.commit().await?;
        for f in failed {
            if before.iter().any(|b| b.position == f.position) {
                report.still.push(f);
            } else {
                log_parked(name, version, std::slice::from_ref(&f));
                report.newly.push(f);
            }
        }
        report.applied.extend(applied);
    }
    Ok(report)
}

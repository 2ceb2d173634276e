//! Parked (poison) events: the record of an event a follower of the logs (a
//! projection, the notifications deriver) could not apply, kept in
//! `proj.poison` so the follower can go on without it. One record type and
//! one insert for every follower; each follower decides what is poison.

use std::any::Any;

use forum_events::{RecordedEvent, Service};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::Result;

/// An event set aside, with the error it failed with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parked {
    /// The log.
    pub service: Service,
    /// Its position.
    pub position: u64,
    /// Its stream (aggregate).
    pub stream_id: Uuid,
    /// Its id.
    pub event_id: Uuid,
    /// Its type name.
    pub event_type: String,
    /// The correlation id of the request that wrote it.
    pub correlation_id: Uuid,
    /// Why it could not be applied (without NUL: an error may quote the bad
    /// value, and Postgres text cannot hold U+0000).
    pub error: String,
}

impl Parked {
    /// `event`, failed with `error`.
    pub fn new(event: &RecordedEvent, error: impl std::fmt::Display) -> Self {
        Parked {
            service: event.service,
            position: event.position,
            stream_id: event.stream_id,
            event_id: event.event_id,
            event_type: event.event_type.clone(),
            correlation_id: event.metadata.correlation_id,
            error: error.to_string().replace('\0', "\\0"),
        }
    }
}

/// Records `parked` in `proj.poison` under `follower` and `version`, in the
/// caller's transaction (the one that moves the follower's checkpoint past
/// them); an event parked already counts one more attempt, with its new
/// error.
///
/// # Errors
/// Database failure.
pub async fn park(
    tx: &mut PgConnection,
    follower: &str,
    version: u32,
    parked: &[Parked],
) -> Result<()> {
    if parked.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "insert into proj.poison as p (projection, version, service, position, stream_id, event_id,
                                       event_type, correlation_id, error)
         select $1, $2, k.* from unnest($3::text[], $4::bigint[], $5::uuid[], $6::uuid[], $7::text[],
                                        $8::uuid[], $9::text[])
                as k(service, position, stream_id, event_id, event_type, correlation_id, error)
         on conflict (projection, version, service, position) do update set
             error = excluded.error, attempts = p.attempts + 1, retried_at = now()",
    )
    .bind(follower)
    .bind(version as i32)
    .bind(parked.iter().map(|p| p.service.as_str()).collect::<Vec<_>>())
    .bind(parked.iter().map(|p| p.position as i64).collect::<Vec<_>>())
    .bind(parked.iter().map(|p| p.stream_id).collect::<Vec<_>>())
    .bind(parked.iter().map(|p| p.event_id).collect::<Vec<_>>())
    .bind(
        parked
            .iter()
            .map(|p| p.event_type.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(parked.iter().map(|p| p.correlation_id).collect::<Vec<_>>())
    .bind(
        parked
            .iter()
            .map(|p| p.error.replace('\0', "\\0"))
            .collect::<Vec<_>>(),
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Logs each parked event once, at `error`, after its transaction
/// committed; `consequence` says what the follower does without it.
pub fn log_parked(follower: &str, version: u32, consequence: &str, parked: &[Parked]) {
    for p in parked {
        tracing::error!(
            projection = follower,
            version,
            service = %p.service,
            position = p.position,
            event_id = %p.event_id,
            event_type = %p.event_type,
            error = %p.error,
            "event parked as poison; {consequence} \
             (see `forum replay list`, then `forum replay retry-poison {follower}` after a fix)"
        );
    }
}

/// The text of a panic's payload.
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}

/// What one try at a part of the events gave.
pub enum Attempt<E> {
    /// Applied; these events of the part are to be parked all the same (a
    /// follower that skips what does not decode names them here).
    Applied(Vec<Parked>),
    /// Failed because of the infrastructure (a lost connection, a
    /// deadlock): the whole work is to be tried again later.
    Transient(E),
    /// Failed because of the events: the same try fails again. `culprit`
    /// is the index in the part of the event to blame when the error names
    /// it (an event that does not decode), else the part is halved.
    Deterministic {
        /// Why, for the record of the parked event.
        reason: String,
        /// The event to blame, when known.
        culprit: Option<usize>,
    },
}

/// A follower's way to apply a part of its events inside a transaction:
/// the one thing [`isolate`] needs of it.
pub trait Attempter {
    /// The follower's error type.
    type Error: From<crate::Error>;
    /// Applies `part` inside `tx` (which [`isolate`] wraps in a savepoint).
    fn attempt<'a>(
        &'a self,
        tx: &'a mut PgConnection,
        part: &'a [RecordedEvent],
    ) -> futures::future::BoxFuture<'a, Attempt<Self::Error>>;
}

/// Applies `events` (of one log or merged, in order) inside `tx` in parts
/// under savepoints, for a batch that failed deterministically as a whole:
/// a part that fails so is rolled back and tried again without its named
/// culprit, or in halves, in order, down to single events, which are
/// returned to be parked (with those the attempts named). Every other event
/// is applied, once. The one mechanism behind every follower that parks
/// poison (the projections, the notifications deriver).
///
/// # Errors
/// A transient failure, or a failure of the savepoints themselves: nothing
/// of the attempt is to be kept.
pub async fn isolate<A: Attempter>(
    tx: &mut PgConnection,
    events: &[RecordedEvent],
    attempter: &A,
) -> std::result::Result<Vec<Parked>, A::Error> {
    async fn savepoint<E: From<crate::Error>>(
        tx: &mut PgConnection,
        sql: &str,
    ) -> std::result::Result<(), E> {
        sqlx::query(sql)
            .execute(&mut *tx)
            .await
            .map_err(|e| E::from(crate::Error::from(e)))?;
        Ok(())
    }
    let mut parked = Vec::new();
    // Ranges still to apply; the next one is last.
    let mut todo: Vec<std::ops::Range<usize>> = Vec::with_capacity(1);
    todo.push(0..events.len());
    while let Some(range) = todo.pop() {
        let part = &events[range.clone()];
        if part.is_empty() {
            continue;
        }
        savepoint::<A::Error>(tx, "savepoint forum_isolate").await?;
        let (reason, culprit) = match attempter.attempt(tx, part).await {
            Attempt::Applied(named) => {
                savepoint::<A::Error>(tx, "release savepoint forum_isolate").await?;
                parked.extend(named);
                continue;
            }
            Attempt::Transient(e) => {
                savepoint::<A::Error>(tx, "rollback to savepoint forum_isolate").await?;
                savepoint::<A::Error>(tx, "release savepoint forum_isolate").await?;
                return Err(e);
            }
            Attempt::Deterministic { reason, culprit } => (reason, culprit),
        };
        savepoint::<A::Error>(tx, "rollback to savepoint forum_isolate").await?;
        savepoint::<A::Error>(tx, "release savepoint forum_isolate").await?;
        if let [event] = part {
            parked.push(Parked::new(event, reason));
            continue;
        }
        match culprit.filter(|i| *i < part.len()) {
            Some(i) => {
                let at = range.start + i;
                parked.push(Parked::new(&events[at], reason));
                todo.push(at + 1..range.end);
                todo.push(range.start..at);
            }
            None => {
                let mid = range.start + part.len() / 2;
                todo.push(mid..range.end);
                todo.push(range.start..mid);
            }
        }
    }
    parked.sort_by_key(|p| (p.service, p.position));
    Ok(parked)
}

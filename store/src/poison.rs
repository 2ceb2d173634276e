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

//! A service's append-only event log (`<service>.events`).

use chrono::{DateTime, Utc};
use forum_events::{Metadata, NewEvent, RecordedEvent, Service};
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use crate::Result;

/// The advisory lock class of event-log appends (the first key of
/// `pg_advisory_xact_lock(int, int)`); the second key is the service.
const APPEND_LOCK_CLASS: i32 = 0x464f_5255;

/// The second key of a service's append lock: its place in
/// [`Service::ALL`] (which is only ever appended to), from 1.
fn service_key(service: Service) -> i32 {
    Service::ALL
        .iter()
        .position(|s| *s == service)
        .map_or(0, |i| i as i32 + 1)
}

/// The Postgres NOTIFY channel announcing new events in a log.
pub fn channel(service: Service) -> String {
    format!("forum_log_{}", service.as_str())
}

/// Takes the service's append lock for the rest of the transaction. Every
/// append in this transaction must come after it; appends of the service
/// then commit one transaction at a time, in position order.
///
/// # Errors
/// Database failure.
pub async fn lock(tx: &mut PgConnection, service: Service) -> Result<()> {
    sqlx::query("select pg_advisory_xact_lock($1, $2)")
        .bind(APPEND_LOCK_CLASS)
        .bind(service_key(service))
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// How long a lock wait may last, in a transaction begun by
/// [`begin_locked`], once it holds the append lock: whatever it waits for
/// then (a read model's table, another log's lock) is optional work that
/// gives up rather than stall the log's writes.
pub const LOCKED_WAIT: &str = "250ms";

/// Takes a connection from `pool` and begins a transaction that holds the
/// service's append lock (see [`lock`]), in one round trip; later lock
/// waits of the transaction are bounded by [`LOCKED_WAIT`] (the wait for
/// the append lock itself is not).
///
/// # Errors
/// Database failure.
pub async fn begin_locked(
    pool: &sqlx::PgPool,
    service: Service,
) -> Result<sqlx::Transaction<'static, sqlx::Postgres>> {
    // Integers of ours and a constant: nothing to quote. A simple query
    // (several statements, one round trip) cannot take parameters.
    let statement = format!(
        "begin; select pg_advisory_xact_lock({APPEND_LOCK_CLASS}, {}); \
         set local lock_timeout = '{LOCKED_WAIT}'",
        service_key(service)
    );
    Ok(pool.begin_with(statement).await?)
}

/// An event with the metadata it is stored with.
#[derive(Debug, Clone)]
pub struct Pending {
    /// The event.
    pub event: NewEvent,
    /// Its metadata.
    pub metadata: Metadata,
}

/// Appends events to the log in one multi-row insert. The caller must hold
/// [`lock`] in the same transaction, and [`announce`] the new head once it
/// has committed. Returns the recorded events with their positions.
///
/// # Errors
/// [`crate::Error::Conflict`] when a (stream, version) already exists: a
/// concurrent decision on a stale state.
pub async fn append(
    tx: &mut PgConnection,
    service: Service,
    events: Vec<Pending>,
) -> Result<Vec<RecordedEvent>> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let n = events.len();
    let mut streams = Vec::with_capacity(n);
    let mut versions = Vec::with_capacity(n);
    let mut ids = Vec::with_capacity(n);
    let mut types = Vec::with_capacity(n);
    let mut schemas = Vec::with_capacity(n);
    let mut payloads = Vec::with_capacity(n);
    let mut correlations = Vec::with_capacity(n);
    let mut causations = Vec::with_capacity(n);
    let mut actors = Vec::with_capacity(n);
    let mut times = Vec::with_capacity(n);
    for p in &events {
        streams.push(p.event.stream_id);
        versions.push(p.event.version as i32);
        ids.push(p.event.event_id);
        types.push(p.event.event_type);
        schemas.push(p.event.schema_version as i16);
        payloads.push(p.event.payload.as_slice());
        correlations.push(p.metadata.correlation_id);
        causations.push(p.metadata.causation_id);
        actors.push(p.metadata.actor);
        times.push(to_time(p.metadata.recorded_at_us));
    }
    // One statement, one round trip under the lock: the head and the rows
    // after it in the given order. A data-modifying CTE runs whether or not
    // the outer query reads it.
    let head: i64 = sqlx::query_scalar(&format!(
        "with head as (select coalesce(max(position), 0) as at from {log}.events),
         appended as (
           insert into {log}.events (position, stream_id, version, event_id, event_type,
                                     schema_version, payload, correlation_id, causation_id,
                                     actor, recorded_at)
           select head.at + e.n, e.stream_id, e.version, e.event_id, e.event_type,
                  e.schema_version, e.payload, e.correlation_id, e.causation_id, e.actor,
                  e.recorded_at
           from head, unnest($1::uuid[], $2::int[], $3::uuid[], $4::text[], $5::smallint[],
                             $6::bytea[], $7::uuid[], $8::uuid[], $9::uuid[],
                             $10::timestamptz[])
                with ordinality as e(stream_id, version, event_id, event_type, schema_version,
                                     payload, correlation_id, causation_id, actor,
                                     recorded_at, n)
           returning 1)
         select head.at from head",
        log = service.as_str()
    ))
    .bind(&streams)
    .bind(&versions)
    .bind(&ids)
    .bind(&types)
    .bind(&schemas)
    .bind(&payloads)
    .bind(&correlations)
    .bind(&causations)
    .bind(&actors)
    .bind(&times)
    .fetch_one(&mut *tx)
    .await?;
    Ok(events
        .into_iter()
        .enumerate()
        .map(|(i, p)| RecordedEvent {
            service,
            position: (head + 1 + i as i64) as u64,
            stream_id: p.event.stream_id,
            version: p.event.version,
            event_id: p.event.event_id,
            event_type: p.event.event_type.to_string(),
            schema_version: p.event.schema_version,
            payload: p.event.payload,
            metadata: p.metadata,
        })
        .collect())
}

/// Wakes whoever follows these logs (the outbox relays, the projectors)
/// with their new heads: call it once the transaction that appended up to
/// them has committed. It runs outside that transaction on purpose: a
/// NOTIFY takes a lock of the whole server at commit, which an append
/// holding its log's lock must not wait for. Followers also look every
/// second, so a head that is never announced (the process died right after
/// its commit) is found all the same.
///
/// # Errors
/// Database failure.
pub async fn announce(pool: &sqlx::PgPool, heads: &[(Service, u64)]) -> Result<()> {
    if heads.is_empty() {
        return Ok(());
    }
    let channels: Vec<String> = heads.iter().map(|(s, _)| channel(*s)).collect();
    let positions: Vec<String> = heads.iter().map(|(_, p)| p.to_string()).collect();
    sqlx::query("select pg_notify(c, p) from unnest($1::text[], $2::text[]) as t(c, p)")
        .bind(&channels)
        .bind(&positions)
        .execute(pool)
        .await?;
    Ok(())
}

/// Reads up to `limit` events after `after`, in position order.
///
/// # Errors
/// Database failure.
pub async fn read_after(
    conn: &mut PgConnection,
    service: Service,
    after: u64,
    limit: i64,
) -> Result<Vec<RecordedEvent>> {
    let rows = sqlx::query(&format!(
        "select position, stream_id, version, event_id, event_type, schema_version, payload,
                correlation_id, causation_id, actor, recorded_at
         from {}.events where position > $1 order by position limit $2",
        service.as_str()
    ))
    .bind(after as i64)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter().map(|r| from_row(service, &r)).collect()
}

/// Reads up to `limit` events of `streams` with positions in
/// (`after`, `upto`], in position order.
///
/// # Errors
/// Database failure.
pub async fn read_streams_between(
    conn: &mut PgConnection,
    service: Service,
    streams: &[Uuid],
    after: u64,
    upto: u64,
    limit: i64,
) -> Result<Vec<RecordedEvent>> {
    let rows = sqlx::query(&format!(
        "select position, stream_id, version, event_id, event_type, schema_version, payload,
                correlation_id, causation_id, actor, recorded_at
         from {}.events where stream_id = any($1) and position > $2 and position <= $3
         order by position limit $4",
        service.as_str()
    ))
    .bind(streams)
    .bind(after as i64)
    .bind(upto as i64)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter().map(|r| from_row(service, &r)).collect()
}

/// Reads every event of one stream, in version order.
///
/// # Errors
/// Database failure.
pub async fn read_stream(
    conn: &mut PgConnection,
    service: Service,
    stream_id: Uuid,
) -> Result<Vec<RecordedEvent>> {
    let rows = sqlx::query(&format!(
        "select position, stream_id, version, event_id, event_type, schema_version, payload,
                correlation_id, causation_id, actor, recorded_at
         from {}.events where stream_id = $1 order by version",
        service.as_str()
    ))
    .bind(stream_id)
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter().map(|r| from_row(service, &r)).collect()
}

/// The last position of a log (0 when empty).
///
/// # Errors
/// Database failure.
pub async fn head(conn: &mut PgConnection, service: Service) -> Result<u64> {
    let head: i64 = sqlx::query_scalar(&format!(
        "select coalesce(max(position), 0) from {}.events",
        service.as_str()
    ))
    .fetch_one(&mut *conn)
    .await?;
    Ok(head as u64)
}

fn from_row(service: Service, r: &sqlx::postgres::PgRow) -> Result<RecordedEvent> {
    let recorded_at: DateTime<Utc> = r.try_get("recorded_at")?;
    Ok(RecordedEvent {
        service,
        position: r.try_get::<i64, _>("position")? as u64,
        stream_id: r.try_get("stream_id")?,
        version: r.try_get::<i32, _>("version")? as u32,
        event_id: r.try_get("event_id")?,
        event_type: r.try_get("event_type")?,
        schema_version: r.try_get::<i16, _>("schema_version")? as u16,
        payload: r.try_get("payload")?,
        metadata: Metadata {
            correlation_id: r.try_get("correlation_id")?,
            causation_id: r.try_get("causation_id")?,
            actor: r.try_get("actor")?,
            recorded_at_us: recorded_at.timestamp_micros(),
        },
    })
}

/// Microseconds since the epoch as a UTC time.
pub fn to_time(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or_default()
}

//! What the projection tests share: events as stored, and a fresh schema
//! per test holding one projection's tables.

#![allow(dead_code)]

use forum_events::{EventSet, Metadata, RecordedEvent};
use forum_projections::Projection;
use sqlx::PgPool;
use uuid::Uuid;

pub const PG: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// `event` as stored at `position` of its service's log, in `stream`.
pub fn recorded<E: EventSet>(position: u64, stream: Uuid, event: &E) -> RecordedEvent {
    RecordedEvent {
        service: E::SERVICE,
        position,
        stream_id: stream,
        version: position as u32,
        event_id: Uuid::new_v4(),
        event_type: event.event_type().to_string(),
        schema_version: event.schema_version(),
        payload: event.encode_payload(),
        metadata: Metadata {
            correlation_id: Uuid::nil(),
            causation_id: Uuid::nil(),
            actor: None,
            recorded_at_us: 0,
        },
    }
}

/// A new schema with `p`'s tables.
pub async fn fresh_schema(pool: &PgPool, p: &dyn Projection) -> String {
    let schema = format!(
        "t_{}_{}",
        p.name(),
        &Uuid::new_v4().simple().to_string()[..12]
    );
    sqlx::query(&format!("create schema {schema}"))
        .execute(pool)
        .await
        .expect("schema");
    for statement in p
        .create_sql(&schema)
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        sqlx::query(statement).execute(pool).await.expect("create");
    }
    schema
}

/// Applies `events` with `p` in one transaction.
pub async fn apply(pool: &PgPool, p: &dyn Projection, schema: &str, events: &[RecordedEvent]) {
    let mut tx = pool.begin().await.expect("begin");
    p.apply(&mut tx, schema, events).await.expect("apply");
    tx.commit().await.expect("commit");
}

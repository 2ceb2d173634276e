//! The outbox relay: publishes a service's log to JetStream in position
//! order, from the checkpoint in `<service>.outbox`.
//!
//! Every instance of a service runs a relay; the checkpoint row is locked for
//! the duration of one publishing round, so two relays never publish the
//! same batch at once, and a relay that dies mid-round leaves the checkpoint
//! where it was: the next round re-publishes, and the stream drops the
//! duplicates by `Nats-Msg-Id`.
//!
//! What goes on the bus is each event's public form
//! ([`forum_events::auth::for_bus`]): a registration is published without
//! its e-mail address and password hash, which only the auth log keeps.

use std::time::Duration;

use async_nats::jetstream::{self, message::PublishMessage};
use bytes::Bytes;
use forum_events::{subject::Subjects, Service};
use sqlx::postgres::PgListener;
use sqlx::PgPool;
use tokio::sync::watch;

use crate::{log, Error, Result};

/// How many events one publishing round takes at most.
const BATCH: i64 = 2_000;

/// Publishes everything committed and not yet published, then follows the
/// log (woken by NOTIFY, or every second) until `shutdown` turns true.
///
/// # Errors
/// Only when the NOTIFY listener cannot be set up; publishing failures are
/// logged and retried.
pub async fn run(
    pool: PgPool,
    js: jetstream::Context,
    subjects: Subjects,
    service: Service,
    mut shutdown: watch::Receiver<bool>,
) -> Result<()> {
    let mut listener = PgListener::connect_with(&pool).await?;
    listener.listen(&log::channel(service)).await?;
    let mut backoff = Duration::from_millis(50);
    loop {
        match publish_pending(&pool, &js, &subjects, service).await {
            Ok(true) => {
                backoff = Duration::from_millis(50);
                continue;
            }
            Ok(false) => backoff = Duration::from_millis(50),
            Err(e) => {
                tracing::warn!(%service, error = %e, "outbox relay round failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.changed() => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(2));
                if *shutdown.borrow() {
                    return Ok(());
                }
                continue;
            }
        }
        if *shutdown.borrow() {
            return Ok(());
        }
        tokio::select! {
            n = listener.recv() => {
                if let Err(e) = n {
                    tracing::warn!(%service, error = %e, "outbox listener lost; reconnecting");
                }
            }
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// One publishing round. Returns whether a full batch was published (more
/// may be waiting).
///
/// # Errors
/// Database or JetStream failure; nothing is marked published then.
pub async fn publish_pending(
    pool: &PgPool,
    js: &jetstream::Context,
    subjects: &Subjects,
    service: Service,
) -> Result<bool> {
    let mut tx = pool.begin().await?;
    let published: i64 = sqlx::query_scalar(&format!(
        "select published_position from {}.outbox for update",
        service.as_str()
    ))
    .fetch_one(&mut *tx)
    .await?;
    let events = log::read_after(&mut tx, service, published as u64, BATCH).await?;
    let Some(last) = events.last().map(|e| e.position) else {
        tx.commit().await?;
        return Ok(false);
    };
    let mut acks = Vec::with_capacity(events.len());
    for event in &events {
        let public = forum_events::auth::for_bus(event);
        let publish = PublishMessage::build()
            .payload(Bytes::from(public.to_bytes()))
            .message_id(event.event_id.to_string());
        let ack = js
            .send_publish(subjects.event(service, &event.event_type), publish)
            .await
            .map_err(|e| Error::Nats(e.to_string()))?;
        acks.push(ack);
    }
    for ack in acks {
        ack.await.map_err(|e| Error::Nats(e.to_string()))?;
    }
    sqlx::query(&format!(
        "update {}.outbox set published_position = $1",
        service.as_str()
    ))
    .bind(last as i64)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    tracing::debug!(%service, up_to = last, n = events.len(), "published");
    metrics::counter!(forum_telemetry::names::RELAY_PUBLISHED, "service" => service.as_str())
        .increment(events.len() as u64);
    Ok(events.len() as i64 == BATCH)
}

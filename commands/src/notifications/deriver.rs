//! The deriver: follows the event stream on JetStream with a durable pull
//! consumer and appends the notifications the posts and chat events cause
//! to the notifications log.
//!
//! ```text
//! <prefix>.evt.> ──► consumer "notifications" ──► one txn per round:
//!                                                   lock the notifications log,
//!                                                   skip what the checkpoints cover,
//!                                                   derive, append, move checkpoints,
//!                                                   commit ──► ack ──► progress
//! ```
//!
//! - **One at a time.** Every instance of the notifications service runs a
//!   deriver, but only the one holding a session-level advisory lock on a
//!   dedicated connection derives; the others try again every second. When
//!   the leader dies its connection closes, the lock is released and
//!   another instance takes over.
//! - **Exactly once per cause and recipient.** Each source log has a
//!   checkpoint (`notifications.deriver_checkpoints`), moved in the
//!   transaction that appends what was derived, under the notifications
//!   log's append lock: an event at or below it (redelivered, or stored
//!   twice in the stream) is skipped. A notification's id is
//!   `notification_id(cause, recipient)` and an id that exists is never
//!   created again. Messages are acked only after the commit.
//! - **In log order.** Who wrote a post or comment is learnt from
//!   `post_created` and `comment_created` as they go by, so each log is
//!   processed in position order: the logs are gap-free, so a message past
//!   `checkpoint + 1` (the earlier ones are still pending redelivery, after
//!   a restart) means the missing events are read from the Postgres log
//!   first. A new leader also starts by deriving everything its logs hold
//!   past the checkpoints, and the leader looks at the logs' heads every
//!   second, so nothing waits for the ack wait to expire (a message
//!   delivered to a dead predecessor comes back only after it).
//! - **Read-your-writes.** After each commit the deriver announces its
//!   checkpoints as [`Progress`] of the follower [`FOLLOWER`], so a gateway
//!   can wait until a write's notifications exist.
//! - **Never stopped by one event.** A transient failure (connection,
//!   serialization failure, pool timeout) is retried with backoff. An event
//!   it cannot handle (it does not decode, a data error of SQLSTATE class
//!   22 or 23, a panic) is parked in `proj.poison` under the follower
//!   [`FOLLOWER`], in the transaction that moves the checkpoint past it,
//!   and logged once at `error`: a failing round is derived again in parts
//!   under savepoints until only the events that fail alone are left out.
//!   [`retry_parked`] (`forum replay retry-poison notifier`) derives the
//!   parked events' streams again after a fix.

use std::collections::{BTreeMap, HashMap};
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use bytes::Bytes;
use forum_events::chat::ChatEvent;
use forum_events::posts::{PostEvent, Reaction};
use forum_events::progress::Progress;
use forum_events::{subject::Subjects, Metadata, RecordedEvent, Service};
use forum_projections::inline::{Applied, Guard, Inline};
use forum_store::log::{self, Pending};
use futures::{FutureExt, StreamExt};
use sqlx::{Acquire, PgConnection, PgPool, Row};
use tokio::sync::watch;
use uuid::Uuid;

use super::derive::{self, Knowledge, SourceEvent};
use super::{decide, Changes};
use crate::error::Class;
use crate::{Error, Result};

/// The durable consumer's name.
pub const CONSUMER: &str = "notifications";

/// The name the deriver announces its progress under.
pub const FOLLOWER: &str = "notifier";

/// Most notifications one derivation transaction reads back to apply them
/// inline (far above what [`MAX_TXN`] source events derive).
const APPENDED_MAX: i64 = 1_000_000;

/// The logs notifications are derived from.
pub const SOURCES: [Service; 2] = [Service::Posts, Service::Chat];

/// The advisory lock class held (session-level) by the leading deriver.
const LEADER_LOCK_CLASS: i32 = 0x4e4f_5446;

/// Messages taken from the consumer in one round at most.
const MAX_ROUND: usize = 500;

/// Events derived in one transaction at most.
const MAX_TXN: usize = 2_000;

/// The version the deriver's parked events are recorded under in
/// `proj.poison` (with [`FOLLOWER`] as the projection).
const POISON_VERSION: i32 = 1;

/// The longest wait between two attempts after transient failures.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// How often the leader checks that it still holds its connection and
/// looks for events the stream has not brought (yet).
const LEADER_CHECK: Duration = Duration::from_secs(1);

/// Derives until `shutdown` turns true, leading whenever this instance can
/// take the leader lock.
///
/// # Errors
/// None so far: failures are logged and retried.
pub async fn run(
    pool: PgPool,
    nats: async_nats::Client,
    subjects: Subjects,
    mut shutdown: watch::Receiver<bool>,
) -> Result<()> {
    // The dedicated connection the lock is tried on (kept between tries
    // while another instance leads).
    let mut candidate: Option<PgConnection> = None;
    loop {
        if *shutdown.borrow() {
            return Ok(());
        }
        let conn = match candidate.take() {
            Some(conn) => Some(conn),
            None => match pool.acquire().await {
                Ok(conn) => Some(conn.detach()),
                Err(e) => {
                    tracing::warn!(error = %e, "notifications deriver: no connection for the leader lock");
                    None
                }
            },
        };
        if let Some(mut leader) = conn {
            match try_lock(&mut leader).await {
                Ok(true) => {
                    tracing::info!("notifications deriver: leading");
                    let led = lead(&mut leader, &pool, &nats, &subjects, &mut shutdown).await;
                    if let Err(e) = &led {
                        tracing::warn!(error = %e, "notifications deriver stopped leading; retrying");
                    }
                    // Closing the session releases the leader lock.
                    if let Err(e) = sqlx::Connection::close(leader).await {
                        tracing::debug!(error = %e, "leader connection closed uncleanly");
                    }
                }
                Ok(false) => candidate = Some(leader),
                // A broken connection: a new one next time.
                Err(e) => {
                    tracing::warn!(error = %e, "notifications deriver: cannot try the leader lock")
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// Tries the leader lock (session-level) on `conn`.
async fn try_lock(conn: &mut PgConnection) -> Result<bool> {
    Ok(sqlx::query_scalar("select pg_try_advisory_lock($1, 1)")
        .bind(LEADER_LOCK_CLASS)
        .fetch_one(conn)
        .await?)
}

/// Creates (or finds) the durable consumer of every event subject.
///
/// # Errors
/// When JetStream refuses.
pub async fn consumer(
    js: &jetstream::Context,
    subjects: &Subjects,
) -> Result<consumer::PullConsumer> {
    let nats = |e: &dyn std::fmt::Display| Error::Nats(e.to_string());
    let stream = js
        .get_stream(subjects.stream_name())
        .await
        .map_err(|e| nats(&e))?;
    stream
        .get_or_create_consumer(
            CONSUMER,
            consumer::pull::Config {
                durable_name: Some(CONSUMER.to_string()),
                description: Some("notifications deriver".into()),
                filter_subject: subjects.all_events(),
                ack_policy: consumer::AckPolicy::Explicit,
                ack_wait: Duration::from_secs(30),
                max_ack_pending: 10_000,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| nats(&e))
}

async fn lead(
    leader: &mut PgConnection,
    pool: &PgPool,
    nats: &async_nats::Client,
    subjects: &Subjects,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<()> {
    let js = jetstream::new(nats.clone());
    let consumer = consumer(&js, subjects).await?;
    // Derive what the logs hold beyond the checkpoints (what a previous
    // leader received and did not acknowledge comes back only after the
    // ack wait) before pulling, then announce where we stand, for gateways
    // that just started.
    catch_up(pool, nats, subjects).await?;
    let mut messages = consumer
        .stream()
        .max_messages_per_batch(MAX_ROUND)
        .heartbeat(Duration::from_secs(5))
        .messages()
        .await
        .map_err(|e| Error::Nats(e.to_string()))?;
    let mut conn = pool.acquire().await?;
    let checkpoints = checkpoints(&mut conn).await?;
    drop(conn);
    for service in SOURCES {
        announce(
            nats,
            subjects,
            service,
            checkpoints.get(&service).copied().unwrap_or(0),
        )
        .await;
    }
    let mut check = tokio::time::interval(LEADER_CHECK);
    let mut failures = 0u32;
    loop {
        let first = tokio::select! {
            m = messages.next() => m,
            _ = check.tick() => {
                sqlx::query("select 1").execute(&mut *leader).await?;
                // The safety net, as the projectors' timer: anything in the
                // logs the stream has not delivered (a message still out
                // with a dead predecessor, a relay behind) is derived
                // within a second.
                if let Err(e) = catch_up(pool, nats, subjects).await {
                    tracing::warn!(error = %e, "notifications catch-up failed; retrying");
                }
                continue;
            }
            _ = shutdown.changed() => return Ok(()),
        };
        let first = match first {
            Some(Ok(m)) => {
                failures = 0;
                m
            }
            Some(Err(e)) => {
                failures += 1;
                if failures >= 5 {
                    return Err(Error::Nats(format!("notifications consumer: {e}")));
                }
                tracing::warn!(error = %e, "notifications consumer");
                continue;
            }
            None => return Err(Error::Nats("the consumer's message stream ended".into())),
        };
        let mut round = vec![first];
        while round.len() < MAX_ROUND {
            match messages.next().now_or_never() {
                Some(Some(Ok(m))) => round.push(m),
                _ => break,
            }
        }
        let mut backoff = Duration::from_millis(50);
        loop {
            match process(pool, nats, subjects, &round).await {
                Ok(()) => break,
                Err(e) => {
                    // Only transient failures get here: an event that
                    // cannot be handled is parked and passed.
                    tracing::warn!(error = %e, retry_in = ?backoff, "deriving notifications failed (transient); retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        // Unacked: redelivered to whoever leads next.
                        _ = shutdown.changed() => return Ok(()),
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
        for m in &round {
            if let Err(e) = m.ack().await {
                tracing::debug!(error = %e, "ack not sent (the message will be skipped when redelivered)");
            }
        }
    }
}

/// The checkpoint of each source log.
async fn checkpoints(conn: &mut PgConnection) -> Result<HashMap<Service, u64>> {
    let rows = sqlx::query("select service, position from notifications.deriver_checkpoints")
        .fetch_all(&mut *conn)
        .await?;
    let mut out = HashMap::new();
    for r in rows {
        if let Some(s) = Service::parse(r.try_get::<&str, _>("service")?) {
            out.insert(s, r.try_get::<i64, _>("position")?.max(0) as u64);
        }
    }
    Ok(out)
}

async fn announce(nats: &async_nats::Client, subjects: &Subjects, service: Service, position: u64) {
    let progress = Progress {
        projection: FOLLOWER.to_string(),
        version: 1,
        service,
        position,
    };
    if let Err(e) = nats
        .publish(
            subjects.projection_progress(FOLLOWER),
            Bytes::from(progress.to_bytes()),
        )
        .await
    {
        tracing::debug!(error = %e, "progress not announced");
    }
}

/// How long deriving inline waits for the notifications log's lock (held
/// by the deriver or the notifications service) before it leaves the
/// events to the deriver.
const INLINE_LOCK_TIMEOUT: &str = "250ms";

/// What deriving inline did: announce `applied` (which includes the
/// deriver's own progress) once the transaction has committed.
#[derive(Debug, Default)]
pub struct DerivedInline {
    /// The notifications read model's progress and parked events, and the
    /// deriver's checkpoint moved past the source events.
    pub applied: Applied,
    /// The notifications log's head after the derivation: the write's
    /// notifications, if any, are at or below it. `None` when the events
    /// were left to the deriver.
    pub head: Option<u64>,
}

/// Derives, in the transaction that has just appended `recorded` to
/// `service`'s log (and holds its append lock), the notifications those
/// events cause, appends them and applies `notifications` (the read models
/// of the notifications log, built once by the caller) inline, so that the
/// write's answer waits for no other process and one commit. The deriver's
/// rules are the same ([`derive_and_append`]) and so is its checkpoint:
/// this runs only when the checkpoint is right before the events (moving
/// it past them), and otherwise leaves them to the deriver, which skips
/// whatever the checkpoint covers.
///
/// With [`Guard::Fast`] nothing is guarded: the checkpoint is taken and
/// moved in one statement, and any failure (the notifications log's lock
/// held past the transaction's lock bound, an event the deriver would park,
/// a panic) fails the caller's transaction, which tries again with
/// [`Guard::Careful`]. Then whatever fails is rolled back to a savepoint
/// and left to the deriver: it never refuses the write.
///
/// # Errors
/// With [`Guard::Careful`], only a failure of the transaction itself (its
/// connection lost); with [`Guard::Fast`], any failure.
pub async fn derive_inline(
    tx: &mut PgConnection,
    service: Service,
    recorded: &[RecordedEvent],
    notifications: &Inline,
    guard: Guard,
) -> Result<DerivedInline> {
    let (Some(first), Some(last)) = (recorded.first(), recorded.last()) else {
        return Ok(DerivedInline::default());
    };
    if !SOURCES.contains(&service) {
        return Ok(DerivedInline::default());
    }
    let span = (first.position, last.position);
    if guard == Guard::Fast {
        let attempt = derive_in(tx, service, span, recorded, notifications, guard);
        return match AssertUnwindSafe(attempt).catch_unwind().await {
            Ok(derived) => Ok(derived?.unwrap_or_default()),
            Err(_) => Err(Error::Derivation("inline derivation panicked".into())),
        };
    }
    let lock_timeout: String = sqlx::query_scalar(
        "select current_setting('lock_timeout') from set_config('lock_timeout', $1, true)",
    )
    .bind(INLINE_LOCK_TIMEOUT)
    .fetch_one(&mut *tx)
    .await?;
    let mut savepoint = tx.begin().await?;
    let attempt = derive_in(
        &mut savepoint,
        service,
        span,
        recorded,
        notifications,
        guard,
    );
    let derived = match AssertUnwindSafe(attempt).catch_unwind().await {
        Ok(Ok(Some(derived))) => {
            savepoint.commit().await?;
            derived
        }
        Ok(Ok(None)) => {
            savepoint.rollback().await?;
            DerivedInline::default()
        }
        Ok(Err(e)) => {
            savepoint.rollback().await?;
            tracing::debug!(error = %e, "inline derivation left to the deriver");
            DerivedInline::default()
        }
        Err(_) => {
            // The deriver meets the same panic and parks the event.
            savepoint.rollback().await?;
            tracing::warn!("inline derivation panicked; left to the deriver");
            DerivedInline::default()
        }
    };
    sqlx::query("select set_config('lock_timeout', $1, true)")
        .bind(&lock_timeout)
        .execute(&mut *tx)
        .await?;
    Ok(derived)
}

/// Derives inline (see [`derive_inline`]). `Ok(None)`: left to the deriver,
/// with nothing written when `guard` is [`Guard::Fast`] (the caller rolls
/// back its savepoint otherwise).
async fn derive_in(
    tx: &mut PgConnection,
    service: Service,
    (first, last): (u64, u64),
    recorded: &[RecordedEvent],
    notifications: &Inline,
    guard: Guard,
) -> Result<Option<DerivedInline>> {
    // The checkpoint row orders this with the deriver, which moves it in
    // its own transaction: taken only when it is right before the batch
    // and the deriver does not hold it. The notifications log's lock is
    // taken only when there is a notification to append (a post, which
    // notifies nobody, takes none).
    let taken = match guard {
        // Taken and moved at once: a failure below fails the transaction.
        Guard::Fast => sqlx::query_scalar::<_, i64>(
            "with taken as (
               select service from notifications.deriver_checkpoints
               where service = $1 and position = $2 for update skip locked)
             update notifications.deriver_checkpoints d set position = $3 from taken
             where d.service = taken.service
             returning d.position",
        )
        .bind(service.as_str())
        .bind(first as i64 - 1)
        .bind(last as i64)
        .fetch_optional(&mut *tx)
        .await?
        .is_some(),
        Guard::Careful => sqlx::query_scalar::<_, i64>(
            "select position from notifications.deriver_checkpoints
             where service = $1 and position = $2 for update skip locked",
        )
        .bind(service.as_str())
        .bind(first as i64 - 1)
        .fetch_optional(&mut *tx)
        .await?
        .is_some(),
    };
    if !taken {
        return Ok(None);
    }
    let (undecodable, appended) = derive_and_append(tx, recorded, true).await?;
    if !undecodable.is_empty() {
        // The deriver parks them, with its record and log line.
        return match guard {
            Guard::Fast => Err(Error::Derivation(format!(
                "{} source events do not decode",
                undecodable.len()
            ))),
            Guard::Careful => Ok(None),
        };
    }
    let mut applied = notifications.apply(tx, &appended, guard).await?;
    if guard == Guard::Careful {
        sqlx::query(
            "update notifications.deriver_checkpoints set position = $2 where service = $1",
        )
        .bind(service.as_str())
        .bind(last as i64)
        .execute(&mut *tx)
        .await?;
    }
    applied.progress.push(Progress {
        projection: FOLLOWER.to_string(),
        version: 1,
        service,
        position: last,
    });
    Ok(Some(DerivedInline {
        applied,
        // Nothing appended: nothing of this write to wait for.
        head: Some(appended.last().map_or(0, |e| e.position)),
    }))
}

/// Processes one round of messages: every posts and chat event they carry,
/// up to the highest position received per log.
///
/// # Errors
/// Database failure (nothing of the failed transaction is kept).
pub async fn process(
    pool: &PgPool,
    nats: &async_nats::Client,
    subjects: &Subjects,
    round: &[jetstream::Message],
) -> Result<()> {
    let mut received: BTreeMap<Service, BTreeMap<u64, RecordedEvent>> = BTreeMap::new();
    for m in round {
        match RecordedEvent::from_bytes(&m.payload) {
            Ok(e) if SOURCES.contains(&e.service) => {
                received.entry(e.service).or_default().insert(e.position, e);
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(subject = %m.subject, error = %e, "undecodable event envelope ignored")
            }
        }
    }
    let targets = received
        .iter()
        .filter_map(|(s, events)| events.last_key_value().map(|(p, _)| (*s, *p)))
        .collect();
    derive_up_to(pool, nats, subjects, &received, &targets).await
}

/// Derives from every source log up to its current head, reading the
/// events from the logs. A new leader does this first, so what its
/// predecessor had received and not acknowledged (redelivered only after
/// the consumer's ack wait) is derived at once.
///
/// # Errors
/// Database failure (nothing of the failed transaction is kept).
pub async fn catch_up(pool: &PgPool, nats: &async_nats::Client, subjects: &Subjects) -> Result<()> {
    let mut conn = pool.acquire().await?;
    let done = checkpoints(&mut conn).await?;
    let mut targets = BTreeMap::new();
    for service in SOURCES {
        let head = log::head(&mut conn, service).await?;
        if head > done.get(&service).copied().unwrap_or(0) {
            targets.insert(service, head);
        }
    }
    drop(conn);
    if targets.is_empty() {
        return Ok(());
    }
    derive_up_to(pool, nats, subjects, &BTreeMap::new(), &targets).await
}

/// Derives each log's events after its checkpoint up to its target, in
/// transactions of at most [`MAX_TXN`] events: from `received` where it
/// has them, else read from the log (where every published event is
/// committed). A transaction that fails deterministically is done again
/// with [`derive_isolating`], parking the events that fail alone.
async fn derive_up_to(
    pool: &PgPool,
    nats: &async_nats::Client,
    subjects: &Subjects,
    received: &BTreeMap<Service, BTreeMap<u64, RecordedEvent>>,
    targets: &BTreeMap<Service, u64>,
) -> Result<()> {
    let none = BTreeMap::new();
    let mut isolate = false;
    let inline = Inline::of(Service::Notifications);
    // Most events were derived inline by the service that appended them:
    // when the checkpoints already cover every target, there is nothing to
    // lock for (checkpoints only move forward, so a covered target stays
    // covered).
    {
        let mut conn = pool.acquire().await?;
        let checkpoints = checkpoints(&mut conn).await?;
        let covered = targets
            .iter()
            .all(|(service, target)| checkpoints.get(service).is_some_and(|c| c >= target));
        if covered {
            return Ok(());
        }
    }
    loop {
        let mut tx = pool.begin().await?;
        log::lock(&mut tx, Service::Notifications).await?;
        let checkpoints = checkpoints(&mut tx).await?;
        let mut work = Vec::new();
        let mut moved = Vec::new();
        let mut done = true;
        for (&service, &target) in targets {
            let events = received.get(&service).unwrap_or(&none);
            let checkpoint = checkpoints.get(&service).copied().unwrap_or(0);
            let mut next = checkpoint + 1;
            while next <= target && work.len() < MAX_TXN {
                if let Some(e) = events.get(&next) {
                    work.push(e.clone());
                    next += 1;
                    continue;
                }
                // A gap: read the missing events from the log.
                let until = events.range(next..).next().map_or(target + 1, |(p, _)| *p);
                let n = (until - next).min((MAX_TXN - work.len()) as u64);
                let filled = log::read_after(&mut tx, service, next - 1, n as i64).await?;
                if filled.is_empty() {
                    break;
                }
                for e in filled {
                    next = e.position + 1;
                    work.push(e);
                }
            }
            if next <= target {
                done = false;
            }
            if next - 1 > checkpoint {
                moved.push((service, next - 1));
            }
        }
        if work.is_empty() {
            tx.rollback().await?;
            return Ok(());
        }
        let head = log::head(&mut tx, Service::Notifications).await?;
        let parked = if isolate {
            isolate = false;
            derive_isolating(&mut tx, &work).await?
        } else {
            match derive_guarded(&mut tx, &work).await {
                Ok(undecodable) => undecodable,
                Err(Failed::Transient(e)) => return Err(e),
                Err(Failed::Deterministic(reason)) => {
                    tracing::debug!(%reason, "deriving failed; isolating the culprit");
                    tx.rollback().await?;
                    isolate = true;
                    continue;
                }
            }
        };
        park(&mut tx, &parked).await?;
        // The notifications read model, inline: the write that caused them
        // waits for this one commit.
        let appended = log::read_after(&mut tx, Service::Notifications, head, APPENDED_MAX).await?;
        let applied = inline.apply(&mut tx, &appended, Guard::Careful).await?;
        for &(service, position) in &moved {
            sqlx::query(
                "update notifications.deriver_checkpoints set position = $2 where service = $1",
            )
            .bind(service.as_str())
            .bind(position as i64)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        if let Some(last) = appended.last() {
            if let Err(e) = log::announce(pool, &[(Service::Notifications, last.position)]).await {
                tracing::debug!(error = %e, "new head not announced; followers look every second");
            }
        }
        log_parked(&parked);
        tracing::debug!(events = work.len(), ?moved, "notifications derived");
        for e in &work {
            metrics::counter!(forum_telemetry::names::DERIVER_DERIVED, "source" => e.service.as_str())
                .increment(1);
        }
        forum_telemetry::logs::followed(FOLLOWER, "derived", &work);
        applied.announce(nats, subjects).await;
        for (service, position) in moved {
            announce(nats, subjects, service, position).await;
        }
        if done {
            return Ok(());
        }
    }
}

/// An event the deriver could not handle, with why.
pub use forum_store::poison::Parked as ParkedCause;

/// How an attempt to derive failed.
enum Failed {
    /// Nothing about the events: retried as it is.
    Transient(Error),
    /// The events: the same attempt fails again.
    Deterministic(String),
}

/// Whether `e` comes from the events rather than the infrastructure: data
/// that cannot be stored (SQLSTATE classes 22 and 23, see
/// [`crate::error::Class`]) or an event that does not decode. Anything
/// else (a lost connection, a missing table a deployment fixes) is retried.
fn deterministic(e: &Error) -> bool {
    matches!(e.class(), Class::Unstorable | Class::Conflict)
        || matches!(e, Error::Store(forum_store::Error::Decode { .. }))
}

/// [`derive_and_append`], a panic and a deterministic error told apart
/// from a transient one.
async fn derive_guarded(
    tx: &mut PgConnection,
    work: &[RecordedEvent],
) -> Result<Vec<ParkedCause>, Failed> {
    match AssertUnwindSafe(derive_and_append(tx, work, false))
        .catch_unwind()
        .await
    {
        Ok(Ok((undecodable, _))) => Ok(undecodable),
        Ok(Err(e)) if deterministic(&e) => Err(Failed::Deterministic(e.to_string())),
        Ok(Err(e)) => Err(Failed::Transient(e)),
        Err(panic) => {
            let message = forum_store::poison::panic_message(&*panic);
            Err(Failed::Deterministic(format!(
                "deriving panicked: {message}"
            )))
        }
    }
}

/// Derives `work` inside `tx` in parts under savepoints, the culprits of a
/// deterministic failure found by halving ([`forum_store::poison::isolate`]):
/// they are returned to be parked, with the events that do not decode.
/// Every other event is derived.
///
/// # Errors
/// A transient failure (nothing of the attempt is to be kept).
async fn derive_isolating(
    tx: &mut PgConnection,
    work: &[RecordedEvent],
) -> Result<Vec<ParkedCause>> {
    forum_store::poison::isolate(tx, work, &Deriving).await
}

/// The deriver deriving parts of its work, for
/// [`forum_store::poison::isolate`].
struct Deriving;

impl forum_store::poison::Attempter for Deriving {
    type Error = Error;

    fn attempt<'a>(
        &'a self,
        tx: &'a mut PgConnection,
        part: &'a [RecordedEvent],
    ) -> futures::future::BoxFuture<'a, forum_store::poison::Attempt<Error>> {
        use forum_store::poison::Attempt;
        Box::pin(async move {
            match derive_guarded(tx, part).await {
                Ok(undecodable) => Attempt::Applied(undecodable),
                Err(Failed::Transient(e)) => Attempt::Transient(e),
                Err(Failed::Deterministic(reason)) => Attempt::Deterministic {
                    reason,
                    culprit: None,
                },
            }
        })
    }
}

/// Records `parked` in `proj.poison` under [`FOLLOWER`], in the caller's
/// transaction; an event parked already counts one more attempt.
async fn park(tx: &mut PgConnection, parked: &[ParkedCause]) -> Result<()> {
    Ok(forum_store::poison::park(tx, FOLLOWER, POISON_VERSION as u32, parked).await?)
}

/// Logs each parked event once, at `error`, after its transaction
/// committed.
fn log_parked(parked: &[ParkedCause]) {
    forum_store::poison::log_parked(
        FOLLOWER,
        POISON_VERSION as u32,
        "no notification derived from it; the deriver goes on",
        parked,
    );
}

/// What [`retry_parked`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetryReport {
    /// Parked events that now derive: removed from `proj.poison`.
    pub applied: Vec<ParkedCause>,
    /// Parked events that still fail, with the new error.
    pub still: Vec<ParkedCause>,
    /// Other events of the derived streams that fail now: parked.
    pub newly: Vec<ParkedCause>,
}

/// Derives the parked events again after a fix (`forum replay
/// retry-poison notifier`): the whole stream (post or conversation) of
/// each, up to the checkpoint, in position order, in one transaction under
/// the notifications log's append lock. That is safe: a notification's id
/// is `notification_id(cause, recipient)` and an existing one is never
/// created again, so the stream's events derived before add nothing, while
/// what the parked event teaches (a post's author) now reaches the
/// stream's later events too. Those that now derive leave the table;
/// those that still fail stay, with the new error.
///
/// # Errors
/// Database failure (nothing is kept).
pub async fn retry_parked(pool: &PgPool) -> Result<RetryReport> {
    let mut tx = pool.begin().await?;
    log::lock(&mut tx, Service::Notifications).await?;
    let checkpoints = checkpoints(&mut tx).await?;
    let rows = sqlx::query(
        "select service, position, stream_id from proj.poison
         where projection = $1 and version = $2 order by service, position",
    )
    .bind(FOLLOWER)
    .bind(POISON_VERSION)
    .fetch_all(&mut *tx)
    .await?;
    let mut before: Vec<(Service, u64)> = Vec::new();
    let mut streams: Vec<(Service, Uuid)> = Vec::new();
    for r in rows {
        let Some(service) = Service::parse(r.try_get::<&str, _>("service")?) else {
            continue;
        };
        before.push((service, r.try_get::<i64, _>("position")? as u64));
        let stream: Uuid = r.try_get("stream_id")?;
        if !streams.contains(&(service, stream)) {
            streams.push((service, stream));
        }
    }
    let mut report = RetryReport::default();
    let mut all = Vec::new();
    let mut failed = Vec::new();
    for (service, stream) in streams {
        let checkpoint = checkpoints.get(&service).copied().unwrap_or(0);
        let mut events: Vec<RecordedEvent> = log::read_stream(&mut tx, service, stream)
            .await?
            .into_iter()
            .filter(|e| e.position <= checkpoint)
            .collect();
        events.sort_by_key(|e| e.position);
        failed.extend(derive_isolating(&mut tx, &events).await?);
        all.extend(events);
    }
    for e in &all {
        if !before.contains(&(e.service, e.position)) {
            continue;
        }
        if !failed
            .iter()
            .any(|f| (f.service, f.position) == (e.service, e.position))
        {
            report.applied.push(ParkedCause::new(e, "derived"));
        }
    }
    for a in &report.applied {
        sqlx::query(
            "delete from proj.poison
             where projection = $1 and version = $2 and service = $3 and position = $4",
        )
        .bind(FOLLOWER)
        .bind(POISON_VERSION)
        .bind(a.service.as_str())
        .bind(a.position as i64)
        .execute(&mut *tx)
        .await?;
    }
    park(&mut tx, &failed).await?;
    tx.commit().await?;
    for f in failed {
        if before.contains(&(f.service, f.position)) {
            report.still.push(f);
        } else {
            log_parked(std::slice::from_ref(&f));
            report.newly.push(f);
        }
    }
    Ok(report)
}

/// Derives the notifications of `work` (each log's events in position
/// order) and appends the new ones, inside the caller's transaction, which
/// holds the notifications log's append lock, or takes it (`lock_first`)
/// once it knows there is something to append. Returns the events that do
/// not decode (nothing is derived from them), to be parked, and the
/// notifications appended.
async fn derive_and_append(
    tx: &mut PgConnection,
    work: &[RecordedEvent],
    lock_first: bool,
) -> Result<(Vec<ParkedCause>, Vec<RecordedEvent>)> {
    let mut sources = Vec::with_capacity(work.len());
    let mut undecodable = Vec::new();
    for e in work {
        let decoded = match e.service {
            Service::Posts => e.decode::<PostEvent>().map(SourceEvent::Posts),
            Service::Chat => e.decode::<ChatEvent>().map(SourceEvent::Chat),
            _ => continue,
        };
        match decoded {
            Ok(s) => sources.push((e, s)),
            Err(err) => undecodable.push(ParkedCause::new(
                e,
                format!(
                    "cannot decode {} v{}: {err}",
                    e.event_type, e.schema_version
                ),
            )),
        }
    }
    let mut knowledge = knowledge(tx, &sources).await?;
    let mut candidates = Vec::new();
    let mut learnt = Vec::new();
    for (cause, event) in &sources {
        if let Some(n) = derive::derive(&knowledge, cause.event_id, event) {
            if n.kind == forum_events::notifications::NotificationKind::Reaction
                && !knowledge.nicknames.contains_key(&n.actor_id)
            {
                tracing::warn!(actor = %n.actor_id, "reaction by a user missing from read.users");
            }
            candidates.push((*cause, n));
        }
        if let Some(pair) = derive::learn(&mut knowledge, event) {
            learnt.push(pair);
        }
    }
    if !learnt.is_empty() {
        let (targets, authors): (Vec<Uuid>, Vec<Uuid>) = learnt.into_iter().unzip();
        sqlx::query(
            "insert into notifications.authors (target_id, author_id)
             select * from unnest($1::uuid[], $2::uuid[]) on conflict do nothing",
        )
        .bind(&targets)
        .bind(&authors)
        .execute(&mut *tx)
        .await?;
    }
    if candidates.is_empty() {
        return Ok((undecodable, Vec::new()));
    }
    if lock_first {
        log::lock(tx, Service::Notifications).await?;
    }
    let recipients: Vec<Uuid> = candidates.iter().map(|(_, n)| n.user_id).collect();
    let ids: Vec<Uuid> = candidates.iter().map(|(_, n)| n.notification_id).collect();
    let mut world = super::load(tx, &recipients, &[], &ids).await?;
    let mut changes = Changes::default();
    let now = chrono::Utc::now().timestamp_micros();
    let mut pending = Vec::new();
    for (cause, n) in &candidates {
        for event in decide::create(&world, n) {
            pending.push(Pending {
                event: changes.record(&mut world, &event),
                metadata: Metadata {
                    correlation_id: cause.metadata.correlation_id,
                    causation_id: cause.event_id,
                    actor: cause.metadata.actor,
                    recorded_at_us: now,
                },
            });
        }
    }
    let appended = log::append(tx, Service::Notifications, pending).await?;
    super::write(tx, &world, &changes).await?;
    Ok((undecodable, appended))
}

/// The authors of the posts and comments `sources` react to or comment
/// on, and the nicknames of those who react.
async fn knowledge(
    tx: &mut PgConnection,
    sources: &[(&RecordedEvent, SourceEvent)],
) -> Result<Knowledge> {
    let mut targets = Vec::new();
    let mut reactors = Vec::new();
    for (_, event) in sources {
        match event {
            SourceEvent::Posts(PostEvent::CommentCreated(e)) => targets.push(e.post_id),
            SourceEvent::Posts(PostEvent::ReactionSet(e)) if e.reaction != Reaction::None => {
                targets.push(e.target_id);
                reactors.push(e.user_id);
            }
            _ => {}
        }
    }
    let mut k = Knowledge::default();
    if !targets.is_empty() {
        let rows = sqlx::query(
            "select target_id, author_id from notifications.authors where target_id = any($1)",
        )
        .bind(&targets)
        .fetch_all(&mut *tx)
        .await?;
        for r in rows {
            k.authors
                .insert(r.try_get("target_id")?, r.try_get("author_id")?);
        }
    }
    if !reactors.is_empty() {
        let rows = sqlx::query("select id, nickname from read.users where id = any($1)")
            .bind(&reactors)
            .fetch_all(&mut *tx)
            .await?;
        for r in rows {
            k.nicknames.insert(r.try_get("id")?, r.try_get("nickname")?);
        }
    }
    Ok(k)
}

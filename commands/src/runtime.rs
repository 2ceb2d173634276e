//! One instance of a command service.
//!
//! ```text
//! NATS queue group ──► prepare (concurrent, no lock) ──► batcher ──► one txn:
//!                                                          lock log, decide all,
//!                                                          append all, recorded,
//!                                                          commit ──► replies
//! ```
//!
//! Grouping concurrent commands into one transaction and one multi-row
//! insert is what lets an event-sourced write path keep up with a plain
//! CRUD server: the commit, the lock and the insert are paid once a batch.
//! A batcher waits for a first command, then begins its transaction and
//! takes the append lock in one round trip ([`log::begin_locked`]), and only
//! then takes every command queued by that time: the batch gathers what
//! arrived while the previous batch held the lock. Several batchers may take
//! turns ([`Options::batches_in_flight`], 1 by default): the one waiting for
//! the lock holds the queue, the others reply.
//! The read models of the service's log are applied in that same
//! transaction ([`Options::inline`]) and announced before the replies, so
//! an acknowledged write waits for exactly one durable commit, shared by
//! its whole batch. That inline work runs unguarded first
//! ([`Guard::Fast`]: no savepoints, each checkpoint taken and moved in one
//! statement), so a batch of posts costs about nine statements under the
//! lock; when it fails, the batch is tried again at once with savepoints
//! ([`Guard::Careful`]), where such a failure leaves the work to the
//! projector or the deriver and never refuses the write, and the batcher
//! stays careful for a second.
//!
//! A batch's transaction that fails is classified ([`Class`]): a transient
//! failure is tried again with a bounded backoff; any other one is data that
//! cannot be stored (or a bug) and fails again the same way, so the batch is
//! run once more, bisected into savepoints, until the culprit commands are
//! alone: they are refused (`400 validation_failed` for data that cannot be
//! stored) and the rest of the batch commits. See `decide_batch`.
//!
//! Exactly once: a command sent with an `Idempotency-Key` carries an id
//! derived from that key and the digest of its request. Its outcome is
//! recorded (`forum_store::outcomes`) in the transaction that appends its
//! events, and every try of a batch first looks up the outcomes of its
//! keyed commands while holding the service's lock: a command already
//! decided, by this instance or another, before a crash or a lost reply, is
//! answered its first outcome and decided no more. See `known_outcomes`.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use forum_events::{subject::Subjects, Metadata, NewEvent, RecordedEvent, Service};
use forum_projections::inline::{Applied, Guard, Inline};
use forum_store::log::{self, Pending};
use forum_store::outcomes::{self, Digest};
use forum_telemetry::names;
use futures::StreamExt;
use serde::{de::DeserializeOwned, Serialize};
use sqlx::{PgConnection, PgPool};
use tokio::sync::{mpsc, watch, Semaphore};
use tracing::Instrument;
use uuid::Uuid;

use crate::error::Class;
use crate::notifications::deriver;
use crate::wire::{Envelope, Rejection, Reply};
use crate::{Error, Result};

/// The context of one command, from its envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    /// The command's id (causation id of its events).
    pub command_id: Uuid,
    /// The HTTP request's id.
    pub correlation_id: Uuid,
    /// The authenticated user, if any.
    pub actor: Option<Uuid>,
    /// When the caller stops waiting (from the envelope's `timeout_ms`,
    /// counted from the command's arrival): slow preparation that would
    /// end after it is not started (see `auth::password`).
    pub deadline: Option<Instant>,
    /// Set when the caller sent an `Idempotency-Key`: the digest of its
    /// request. The outcome is then recorded under `command_id`, and a
    /// command whose id is already recorded is answered that outcome.
    pub request_digest: Option<Digest>,
}

/// The result of deciding one command: its events and its reply data, or
/// why it was refused.
pub type Outcome<D> = std::result::Result<(Vec<NewEvent>, D), Rejection>;

/// A domain served by the runtime.
pub trait Domain: Send + Sync + 'static {
    /// The log this domain appends to.
    const SERVICE: Service;
    /// The command enum on the wire.
    type Command: DeserializeOwned + Send + 'static;
    /// A command after its slow, lock-free preparation.
    type Prepared: Send + Sync + 'static;
    /// What an accepted command replies with (recorded with the outcome of
    /// a keyed command, and decoded again for its retries).
    type Data: Serialize + DeserializeOwned + Clone + Send + 'static;

    /// Validates and prepares one command outside any lock (password
    /// hashing, look-ups). Runs concurrently with other commands.
    fn prepare(
        &self,
        ctx: &Context,
        command: Self::Command,
    ) -> impl Future<Output = std::result::Result<Self::Prepared, Rejection>> + Send;

    /// Decides a batch of prepared commands, in order, inside the
    /// transaction that holds the service's append lock: load the state the
    /// batch needs, run the pure decisions, write the domain's own
    /// write-model rows. Returns one outcome per command, in order.
    ///
    /// The runtime may call it again for parts of a batch, in order, each
    /// inside a savepoint that it may roll back (see `commit_isolating`):
    /// every call must load its state from `tx` and keep no state of its
    /// own from one call to the next.
    ///
    /// # Errors
    /// Database failure: a transient one tries the batch again, any other
    /// isolates the command(s) that caused it (see [`Domain::unstorable`]).
    fn execute(
        &self,
        tx: &mut PgConnection,
        batch: &[(Context, Self::Prepared)],
    ) -> impl Future<Output = Result<Vec<Outcome<Self::Data>>>> + Send;

    /// Runs in the append transaction right after the batch's events were
    /// appended and before the commit, with the recorded events (their log
    /// positions now known, in outcome order). Write-model rows that need
    /// log positions are written here. Does nothing by default. Called once
    /// per [`Domain::execute`] call, with that call's events.
    ///
    /// # Errors
    /// Database failure, handled as [`Domain::execute`]'s.
    fn recorded(
        &self,
        tx: &mut PgConnection,
        events: &[RecordedEvent],
    ) -> impl Future<Output = Result<()>> + Send {
        let _ = (tx, events);
        async { Ok(()) }
    }

    /// The refusal of a command that failed alone because its data cannot
    /// be stored (SQLSTATE class 22 or 23 in its write-model rows or its
    /// events, e.g. U+0000 in a text). By default `400 validation_failed`
    /// on `body`; a domain names the field with [`Rejection::unstorable`].
    fn unstorable(&self, prepared: &Self::Prepared) -> Rejection {
        let _ = prepared;
        Rejection::unstorable([])
    }
}

/// Tunables of a service instance.
#[derive(Debug, Clone)]
pub struct Options {
    /// Most commands decided in one transaction.
    pub max_batch: usize,
    /// Most commands being prepared at once.
    pub max_in_flight: usize,
    /// Batches under way at once: while one holds the service's append
    /// lock, the next one has begun its transaction and waits for the lock
    /// with the queue in hand (it takes the commands queued by the time it
    /// has the lock), and the others reply. Each decides on what the
    /// previous ones committed, since it loads its state once it holds the
    /// lock.
    pub batches_in_flight: usize,
    /// Test-only fault injection: abort the process right after the first
    /// commit, before anything is published or replied.
    pub abort_after_commit: bool,
    /// How long a batch is tried again after transient failures (lost
    /// connection, deadlock, Postgres restarting) before its commands are
    /// answered [`Rejection::Internal`]; below the callers' timeout.
    pub retry_for: Duration,
    /// The read models applied in the append's transaction (see
    /// [`forum_projections::inline`]), announced before the replies; `None`
    /// leaves every read model to the projector.
    pub inline: Option<Inline>,
    /// Derive the notifications the batch's events cause in the append's
    /// transaction too, applying these read models of the notifications
    /// log (see [`crate::notifications::deriver::derive_inline`]); the
    /// write's reply then names the notifications log's position, and its
    /// answer waits for no other process. Only for the logs notifications
    /// are derived from; the deriver does what this leaves. `None` leaves
    /// it all to the deriver.
    pub derive_notifications: Option<Inline>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_batch: 256,
            max_in_flight: 4096,
            batches_in_flight: 1,
            abort_after_commit: false,
            retry_for: Duration::from_secs(2),
            inline: None,
            derive_notifications: None,
        }
    }
}

struct Job<D: Domain> {
    ctx: Context,
    prepared: D::Prepared,
    answer: Answer,
}

/// Where a command is answered, and what is measured of it.
struct Answer {
    to: Option<async_nats::Subject>,
    /// The command's name (the last token of its subject).
    command: String,
    arrived: Instant,
    /// The command's span, whose trace is its correlation id.
    span: tracing::Span,
}

impl Answer {
    /// Sends `reply` and counts the command by its outcome.
    async fn send<T: Serialize>(
        self,
        nats: &async_nats::Client,
        service: Service,
        reply: Reply<T>,
    ) {
        let outcome = match &reply {
            Reply::Accepted { .. } => "accepted",
            Reply::Rejected(Rejection::Internal | Rejection::Unavailable) => "failed",
            Reply::Rejected(_) => "rejected",
        };
        let took = self.arrived.elapsed();
        metrics::counter!(names::COMMANDS, "service" => service.as_str(),
            "command" => self.command.clone(), "outcome" => outcome)
        .increment(1);
        metrics::histogram!(names::COMMAND_DURATION, "service" => service.as_str(),
            "command" => self.command)
        .record(took.as_secs_f64());
        self.span.in_scope(|| {
            tracing::debug!(outcome, took_us = took.as_micros() as u64, "answered");
        });
        respond(nats, self.to, reply).await;
    }
}

/// The metric label of a command's subject: its last token when it looks
/// like a command's name, else `other` (the label's values stay few).
fn command_label(subject: &str) -> String {
    let name = subject.rsplit('.').next().unwrap_or_default();
    let plain = !name.is_empty()
        && name.len() <= 40
        && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
    if plain { name } else { "other" }.to_string()
}

/// Serves `domain` until `shutdown` turns true: subscribes in the queue
/// group named after the service, and runs the outbox relay beside it.
///
/// # Errors
/// When the subscription cannot be made.
pub async fn serve<D: Domain>(
    domain: D,
    pool: PgPool,
    nats: async_nats::Client,
    subjects: Subjects,
    options: Options,
    shutdown: watch::Receiver<bool>,
) -> Result<()> {
    let service = D::SERVICE;
    if let Some(inline) = &options.inline {
        inline.prepare(&pool).await?;
    }
    if let Some(notifications) = &options.derive_notifications {
        notifications.prepare(&pool).await?;
    }
    let mut sub = nats
        .queue_subscribe(subjects.commands_of(service), service.as_str().to_string())
        .await
        .map_err(|e| Error::Nats(e.to_string()))?;
    let domain = Arc::new(domain);
    let (jobs_tx, jobs_rx) = mpsc::channel::<Job<D>>(options.max_batch * 4);
    let jobs_rx = Arc::new(tokio::sync::Mutex::new(jobs_rx));
    let batchers: Vec<_> = (0..options.batches_in_flight.max(1))
        .map(|_| {
            tokio::spawn(batcher(
                domain.clone(),
                pool.clone(),
                nats.clone(),
                subjects.clone(),
                options.clone(),
                jobs_rx.clone(),
            ))
        })
        .collect();
    let js = async_nats::jetstream::new(nats.clone());
    // The fault injection aborts "before anything is published": no relay
    // runs in such a process, so the abort cannot lose a race to it.
    let relay = (!options.abort_after_commit).then(|| {
        tokio::spawn(forum_store::relay::run(
            pool.clone(),
            js,
            subjects.clone(),
            service,
            shutdown.clone(),
        ))
    });
    let permits = Arc::new(Semaphore::new(options.max_in_flight));
    let mut stop = shutdown.clone();
    tracing::info!(%service, "command service ready");
    loop {
        let msg = tokio::select! {
            m = sub.next() => match m { Some(m) => m, None => break },
            _ = stop.changed() => break,
        };
        let arrived = Instant::now();
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        let domain = domain.clone();
        let jobs_tx = jobs_tx.clone();
        let nats = nats.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let envelope = match Envelope::<D::Command>::from_bytes(&msg.payload) {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!(%service, subject = %msg.subject, error = %e, "undecodable command");
                    let answer = Answer {
                        to: msg.reply,
                        command: "other".into(),
                        arrived,
                        span: tracing::Span::none(),
                    };
                    answer
                        .send::<D::Data>(&nats, service, Reply::Rejected(Rejection::Internal))
                        .await;
                    return;
                }
            };
            let command = command_label(&msg.subject);
            let span = tracing::info_span!("command", %service, command = %command,
                correlation_id = %envelope.correlation_id, command_id = %envelope.command_id);
            forum_telemetry::correlate(&span, envelope.correlation_id);
            let answer = Answer {
                to: msg.reply,
                command,
                arrived,
                span,
            };
            let ctx = Context {
                command_id: envelope.command_id,
                correlation_id: envelope.correlation_id,
                actor: envelope.actor,
                deadline: envelope
                    .timeout_ms
                    .map(|ms| arrived + Duration::from_millis(u64::from(ms))),
                request_digest: envelope.request_digest,
            };
            let prepared = domain
                .prepare(&ctx, envelope.command)
                .instrument(answer.span.clone())
                .await;
            match prepared {
                Ok(prepared) => {
                    let job = Job {
                        ctx,
                        prepared,
                        answer,
                    };
                    if let Err(mpsc::error::SendError(job)) = jobs_tx.send(job).await {
                        job.answer
                            .send::<D::Data>(&nats, service, Reply::Rejected(Rejection::Internal))
                            .await;
                    }
                }
                Err(rejection) => {
                    answer
                        .send::<D::Data>(&nats, service, Reply::Rejected(rejection))
                        .await;
                }
            }
        });
    }
    // Stop taking commands, let the prepared ones drain.
    let _ = sub.unsubscribe().await;
    let _ = permits
        .acquire_many(options.max_in_flight as u32)
        .await
        .map(|p| p.forget());
    drop(jobs_tx);
    for batcher in batchers {
        let _ = batcher.await;
    }
    if let Some(relay) = relay {
        let _ = relay.await;
    }
    let _ = nats.flush().await;
    tracing::info!(%service, "command service stopped");
    Ok(())
}

async fn respond<T: Serialize>(
    nats: &async_nats::Client,
    reply_to: Option<async_nats::Subject>,
    reply: Reply<T>,
) {
    if let Some(to) = reply_to {
        if let Err(e) = nats.publish(to, Bytes::from(reply.to_bytes())).await {
            tracing::warn!(error = %e, "reply not sent");
        }
    }
}

async fn batcher<D: Domain>(
    domain: Arc<D>,
    pool: PgPool,
    nats: async_nats::Client,
    subjects: Subjects,
    options: Options,
    jobs: Arc<tokio::sync::Mutex<mpsc::Receiver<Job<D>>>>,
) {
    let mut batch = Vec::with_capacity(options.max_batch);
    let mut guards = Guards::default();
    loop {
        // Wait for work, begin the transaction and take the append lock
        // (while another batcher may still hold it), then take everything
        // waiting by then: a batch gathers what arrived during the previous
        // batch's transaction, and the lock passes from one batcher to the
        // next without a round trip in between.
        let mut queue = jobs.lock().await;
        let Some(first) = queue.recv().await else {
            break;
        };
        batch.push(first);
        let opened = match log::begin_locked(&pool, D::SERVICE).await {
            Ok(tx) => Some(tx),
            Err(e) => {
                // The batch's first try begins again, with its retries.
                tracing::debug!(service = %D::SERVICE, error = %e, "could not begin a batch");
                None
            }
        };
        while batch.len() < options.max_batch {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        drop(queue);
        let jobs_now = std::mem::take(&mut batch);
        let (ctxs, answers): (Vec<_>, Vec<_>) = jobs_now
            .into_iter()
            .map(|j| ((j.ctx, j.prepared), j.answer))
            .unzip();
        let started = Instant::now();
        let n = ctxs.len();
        metrics::histogram!(names::BATCH_COMMANDS, "service" => D::SERVICE.as_str())
            .record(n as f64);
        let (replies, applied) =
            decide_batch(&*domain, &pool, ctxs, &options, opened, &mut guards).await;
        let decided = started.elapsed();
        // The read models first: a gateway that gets a reply then finds
        // them at its positions.
        applied.announce(&nats, &subjects).await;
        let heads = heads(&replies);
        for (reply, answer) in replies.into_iter().zip(answers) {
            answer.send(&nats, D::SERVICE, reply).await;
        }
        // Wake the logs' followers, off the batch's path.
        if !heads.is_empty() {
            let pool = pool.clone();
            tokio::spawn(async move {
                if let Err(e) = log::announce(&pool, &heads).await {
                    tracing::debug!(error = %e, "new heads not announced; followers look every second");
                }
            });
        }
        tracing::debug!(service = %D::SERVICE, n, decided_us = decided.as_micros() as u64,
            replied_us = started.elapsed().as_micros() as u64, "batch done");
    }
}

/// The last position each log reached in these replies.
fn heads<T>(replies: &[Reply<T>]) -> Vec<(Service, u64)> {
    let mut heads: Vec<(Service, u64)> = Vec::new();
    for reply in replies {
        let Reply::Accepted { positions, .. } = reply else {
            continue;
        };
        for &(service, position) in positions {
            match heads.iter_mut().find(|(s, _)| *s == service) {
                Some((_, at)) => *at = (*at).max(position),
                None if position > 0 => heads.push((service, position)),
                None => {}
            }
        }
    }
    heads
}

/// A transaction begun by [`log::begin_locked`].
type Transaction = sqlx::Transaction<'static, sqlx::Postgres>;

/// How long inline work stays guarded by savepoints after it failed
/// unguarded (a read model's table locked for maintenance would otherwise
/// cost every batch a failed try).
const GUARDED_FOR: Duration = Duration::from_secs(1);

/// Which [`Guard`] a batcher's inline work runs under: [`Guard::Fast`]
/// unless it failed so within [`GUARDED_FOR`].
#[derive(Debug, Default)]
struct Guards {
    careful_until: Option<Instant>,
}

impl Guards {
    fn next(&self) -> Guard {
        match self.careful_until {
            Some(until) if Instant::now() < until => Guard::Careful,
            _ => Guard::Fast,
        }
    }

    fn failed(&mut self) {
        self.careful_until = Some(Instant::now() + GUARDED_FOR);
    }
}

/// The first pause before a batch's transaction is tried again after a
/// transient failure; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(25);
/// The longest pause between two tries of a batch.
const MAX_BACKOFF: Duration = Duration::from_millis(500);

/// Why a try at a batch's transaction did not commit.
#[derive(Debug)]
enum Failed<D> {
    /// Nothing was committed.
    RolledBack(Error),
    /// The commit itself failed without an answer from Postgres (the
    /// connection was lost): the batch may or may not have been committed,
    /// so it is not tried again.
    Unknown(Error),
    /// Nothing was committed: some commands (by their index in the batch)
    /// were already decided, and are answered with these outcomes; the
    /// rest is tried again without them.
    Known(Vec<(usize, Reply<D>)>),
}

impl<D> From<Error> for Failed<D> {
    fn from(e: Error) -> Self {
        Failed::RolledBack(e)
    }
}

impl<D> From<forum_store::Error> for Failed<D> {
    fn from(e: forum_store::Error) -> Self {
        Failed::RolledBack(e.into())
    }
}

impl<D> From<sqlx::Error> for Failed<D> {
    fn from(e: sqlx::Error) -> Self {
        Failed::RolledBack(e.into())
    }
}

/// [`decide_batch`]'s replies alone (the runtime's tests).
#[cfg(test)]
pub(crate) async fn run_batch<D: Domain>(
    domain: &D,
    pool: &PgPool,
    batch: Vec<(Context, D::Prepared)>,
    options: &Options,
) -> Vec<Reply<D::Data>> {
    decide_batch(domain, pool, batch, options, None, &mut Guards::default())
        .await
        .0
}

/// Decides and appends a batch in one transaction, and answers every
/// command of it.
///
/// - A [`Class::Transient`] failure (connection lost, pool timeout,
///   serialization failure, deadlock, Postgres restarting) tries the batch
///   again after a pause doubling from [`FIRST_BACKOFF`], for at most
///   [`Options::retry_for`]; then every command is answered
///   [`Rejection::Unavailable`] (503: nothing was written, try again).
/// - Any other failure will happen again: it is one command's data (a text
///   holding U+0000, a value out of range) or a bug. The batch is then run
///   once more with the culprits isolated by [`commit_isolating`]: they are
///   refused and every other command commits with its normal reply.
/// - A commit whose outcome is unknown is never tried again: its commands
///   are answered [`Rejection::Internal`].
///
/// Returns the replies, and what the inline projections applied (to
/// announce once committed).
async fn decide_batch<D: Domain>(
    domain: &D,
    pool: &PgPool,
    batch: Vec<(Context, D::Prepared)>,
    options: &Options,
    mut opened: Option<Transaction>,
    guards: &mut Guards,
) -> (Vec<Reply<D::Data>>, Applied) {
    let service = D::SERVICE;
    let mut applied = Applied::default();
    let total = batch.len();
    let mut answers: Vec<Option<Reply<D::Data>>> = (0..total).map(|_| None).collect();
    // A keyed command sent again while its first try is in the same batch
    // is answered as that one: (its index, the first one's index).
    let mut copies = Vec::new();
    let mut first_of = HashMap::new();
    let mut slots = Vec::with_capacity(total);
    let mut items = Vec::with_capacity(total);
    for (i, item) in batch.into_iter().enumerate() {
        if let Some(digest) = item.0.request_digest {
            if let Some(&(first, first_digest)) = first_of.get(&item.0.command_id) {
                copies.push((i, first, first_digest == digest));
                continue;
            }
            first_of.insert(item.0.command_id, (i, digest));
        }
        slots.push(i);
        items.push(item);
    }
    let started = Instant::now();
    let mut backoff = FIRST_BACKOFF;
    let mut isolating = false;
    while !items.is_empty() {
        let n = items.len();
        let tried = if isolating {
            commit_isolating(domain, pool, &items, options).await
        } else {
            let guard = guards.next();
            commit(domain, pool, &items, options, opened.take(), guard).await
        };
        let e = match tried {
            Ok((replies, inline)) => {
                applied = inline;
                for (slot, reply) in slots.iter().zip(replies) {
                    answers[*slot] = Some(reply);
                }
                break;
            }
            Err(Failed::Known(known)) => {
                // Answer them, and try the rest again at once.
                let mut known = known;
                known.sort_by_key(|(at, _)| std::cmp::Reverse(*at));
                for (at, reply) in known {
                    answers[slots.remove(at)] = Some(reply);
                    items.remove(at);
                }
                continue;
            }
            Err(Failed::Unknown(e)) => {
                tracing::error!(%service, error = %e, n, "commit outcome unknown; not retried");
                fill(&mut answers, &slots, || Rejection::Internal);
                break;
            }
            Err(Failed::RolledBack(Error::Unguarded(e))) => {
                // Optional work failed without a savepoint: at once again,
                // with savepoints, where it is left to the projector or the
                // deriver.
                tracing::debug!(%service, error = %e, n, "inline work failed; trying again guarded");
                metrics::counter!(names::INLINE_FALLBACKS, "service" => service.as_str())
                    .increment(1);
                guards.failed();
                continue;
            }
            Err(Failed::RolledBack(e)) => e,
        };
        match e.class() {
            Class::Transient if started.elapsed() + backoff <= options.retry_for => {
                tracing::warn!(%service, error = %e, n, ?backoff, "batch failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            Class::Transient => {
                tracing::error!(%service, error = %e, n, "batch failed; giving up");
                fill(&mut answers, &slots, || Rejection::Unavailable);
                break;
            }
            _ if n == 1 => {
                // The culprit is known: no need to run it again.
                let (ctx, p) = &items[0];
                answers[slots[0]] = Some(Reply::Rejected(refusal(domain, ctx, p, &e)));
                break;
            }
            _ if !isolating => {
                tracing::warn!(
                    %service, error = %e, n,
                    "batch failed and would again; running it again with the culprits isolated"
                );
                isolating = true;
            }
            _ => {
                // Outside any command (the lock or the commit itself).
                tracing::error!(%service, error = %e, n, "batch failed; giving up");
                fill(&mut answers, &slots, || Rejection::Internal);
                break;
            }
        }
    }
    for (i, first, same_request) in copies {
        answers[i] = Some(if same_request {
            answers[first]
                .clone()
                .unwrap_or(Reply::Rejected(Rejection::Internal))
        } else {
            Reply::Rejected(Rejection::Conflict(KEY_REUSED.into()))
        });
    }
    let replies = answers
        .into_iter()
        .map(|a| a.unwrap_or(Reply::Rejected(Rejection::Internal)))
        .collect();
    (replies, applied)
}

/// The refusal of a key used again for another request.
pub const KEY_REUSED: &str = "this Idempotency-Key was used for another request";

/// Answers every command at `slots` with `rejection`.
fn fill<T>(answers: &mut [Option<Reply<T>>], slots: &[usize], rejection: impl Fn() -> Rejection) {
    for slot in slots {
        answers[*slot] = Some(Reply::Rejected(rejection()));
    }
}

/// The recorded outcomes of the keyed commands of `batch` that were
/// already decided, by their index in the batch. Called while holding the
/// service's lock: appends of the service (and so recordings of its
/// outcomes) are serialized by it, so an outcome not found here is not
/// recorded by any instance before this transaction ends. A recorded id
/// with another request's digest (or another service's) is the same key
/// used again for another request: `409 conflict`.
///
/// # Errors
/// Database failure.
async fn known_outcomes<D: Domain>(
    tx: &mut PgConnection,
    batch: &[(Context, D::Prepared)],
) -> Result<Vec<(usize, Reply<D::Data>)>> {
    let ids: Vec<Uuid> = batch
        .iter()
        .filter(|(ctx, _)| ctx.request_digest.is_some())
        .map(|(ctx, _)| ctx.command_id)
        .collect();
    let found = outcomes::find(tx, &ids).await?;
    if found.is_empty() {
        return Ok(Vec::new());
    }
    let found: HashMap<Uuid, outcomes::Recorded> =
        found.into_iter().map(|r| (r.command_id, r)).collect();
    let service = D::SERVICE;
    Ok(batch
        .iter()
        .enumerate()
        .filter_map(|(at, (ctx, _))| {
            let digest = ctx.request_digest?;
            let recorded = found.get(&ctx.command_id)?;
            let reply = if recorded.service != service.as_str() || recorded.request_digest != digest
            {
                Reply::Rejected(Rejection::Conflict(KEY_REUSED.into()))
            } else {
                Reply::from_bytes(&recorded.reply).unwrap_or_else(|e| {
                    tracing::error!(%service, command_id = %ctx.command_id, error = %e,
                        "recorded outcome undecodable");
                    Reply::Rejected(Rejection::Internal)
                })
            };
            Some((at, reply))
        })
        .collect())
}

/// Whether a reply is an outcome a retry must get again: an acceptance or
/// a refusal by the domain's rules, not a "try again".
fn final_outcome<T>(reply: &Reply<T>) -> bool {
    !matches!(
        reply,
        Reply::Rejected(
            Rejection::Internal | Rejection::Unavailable | Rejection::RateLimited { .. }
        )
    )
}

/// The answer to a command that failed alone with `e`.
fn refusal<D: Domain>(domain: &D, ctx: &Context, prepared: &D::Prepared, e: &Error) -> Rejection {
    let service = D::SERVICE;
    let command_id = ctx.command_id;
    match e.class() {
        Class::Unstorable => {
            tracing::warn!(%service, %command_id, error = %e, "command refused: its data cannot be stored");
            domain.unstorable(prepared)
        }
        Class::Conflict => {
            tracing::warn!(%service, %command_id, error = %e, "command refused: conflict");
            Rejection::Conflict("this change conflicts with what is stored".into())
        }
        Class::Transient => {
            tracing::error!(%service, %command_id, error = %e, "command failed; the database is unavailable");
            Rejection::Unavailable
        }
        Class::Permanent => {
            tracing::error!(%service, %command_id, error = %e, "command failed");
            Rejection::Internal
        }
    }
}

/// One try at the whole batch in one transaction, without savepoints (the
/// fast path).
async fn commit<D: Domain>(
    domain: &D,
    pool: &PgPool,
    batch: &[(Context, D::Prepared)],
    options: &Options,
    opened: Option<Transaction>,
    guard: Guard,
) -> std::result::Result<(Vec<Reply<D::Data>>, Applied), Failed<D::Data>> {
    let t0 = Instant::now();
    let mut tx = match opened {
        Some(tx) => tx,
        None => log::begin_locked(pool, D::SERVICE).await?,
    };
    let t_begin = t0.elapsed();
    let known = known_outcomes::<D>(&mut tx, batch).await?;
    if !known.is_empty() {
        return Err(Failed::Known(known));
    }
    let t_locked = t0.elapsed();
    let now = chrono::Utc::now().timestamp_micros();
    let (replies, written, applied) = step(domain, &mut tx, batch, now, options, guard).await?;
    let t_step = t0.elapsed();
    finish::<D::Data>(tx, options, D::SERVICE, written).await?;
    metrics::histogram!(names::BATCH_DURATION, "service" => D::SERVICE.as_str())
        .record(t0.elapsed().as_secs_f64());
    tracing::trace!(service = %D::SERVICE, ?guard, begin_us = t_begin.as_micros() as u64,
        known_us = (t_locked - t_begin).as_micros() as u64,
        step_us = (t_step - t_locked).as_micros() as u64,
        commit_us = (t0.elapsed() - t_step).as_micros() as u64, "batch transaction");
    Ok((replies, applied))
}

/// One try at a batch known to hold commands that cannot be stored, in one
/// transaction: the batch is bisected, each part run inside a savepoint
/// (`SAVEPOINT`, then `RELEASE` or `ROLLBACK TO`). A part that fails other
/// than transiently is rolled back to its savepoint and split in two, down
/// to single commands, which are refused; the others commit together.
///
/// Later commands may depend on what a refused command would have done (a
/// comment on a post created earlier in the batch, the next version of a
/// post's stream). The choice: **the remainder is decided again against
/// the state without the refused command.** Each part is decided by its own
/// [`Domain::execute`] call, which loads its state from the transaction, and
/// the transaction no longer holds anything of a part rolled back to its
/// savepoint: no write-model row, no event, no in-memory fold (the domain's
/// in-memory state lives only inside one `execute` call). Parts run in the
/// batch's order, so the outcome is that of deciding the accepted commands
/// one after another in arrival order, as if the refused ones had never
/// been sent: a comment on a refused post is `NotFound`, the next edit of a
/// post takes the version the refused edit would have taken.
///
/// With k culprits among n commands this costs O(k log n) parts in one
/// transaction and one commit.
async fn commit_isolating<D: Domain>(
    domain: &D,
    pool: &PgPool,
    batch: &[(Context, D::Prepared)],
    options: &Options,
) -> std::result::Result<(Vec<Reply<D::Data>>, Applied), Failed<D::Data>> {
    // Never a batch's first try: the batcher's transaction went to that one.
    let mut tx = log::begin_locked(pool, D::SERVICE).await?;
    let known = known_outcomes::<D>(&mut tx, batch).await?;
    if !known.is_empty() {
        return Err(Failed::Known(known));
    }
    let now = chrono::Utc::now().timestamp_micros();
    let n = batch.len();
    let mut replies: Vec<Option<Reply<D::Data>>> = (0..n).map(|_| None).collect();
    let mut written = Written::default();
    let mut applied = Applied::default();
    // Parts still to run, the next one last. The whole batch already failed
    // once: start from its halves.
    let mut parts = vec![(n / 2, n), (0, n / 2)];
    while let Some((from, to)) = parts.pop() {
        if from == to {
            continue;
        }
        let part = &batch[from..to];
        let mut savepoint = sqlx::Connection::begin(&mut *tx).await?;
        match step(domain, &mut savepoint, part, now, options, Guard::Careful).await {
            Ok((part_replies, part_written, part_applied)) => {
                savepoint.commit().await?;
                written.add(part_written);
                applied.extend(part_applied);
                for (slot, reply) in replies[from..to].iter_mut().zip(part_replies) {
                    *slot = Some(reply);
                }
            }
            Err(e) => {
                // A lost connection fails here too, and ends this try.
                savepoint.rollback().await?;
                if e.class() == Class::Transient {
                    return Err(Failed::RolledBack(e));
                }
                if to - from == 1 {
                    let (ctx, prepared) = &batch[from];
                    replies[from] = Some(Reply::Rejected(refusal(domain, ctx, prepared, &e)));
                } else {
                    let mid = from + (to - from) / 2;
                    parts.push((mid, to));
                    parts.push((from, mid));
                }
            }
        }
    }
    finish::<D::Data>(tx, options, D::SERVICE, written).await?;
    let replies = replies
        .into_iter()
        .map(|r| r.unwrap_or(Reply::Rejected(Rejection::Internal)))
        .collect();
    Ok((replies, applied))
}

/// What one try wrote in its transaction.
#[derive(Debug, Default, Clone, Copy)]
struct Written {
    /// Events appended.
    events: usize,
    /// Whether anything was written (events, or recorded outcomes).
    any: bool,
}

impl Written {
    fn add(&mut self, other: Written) {
        self.events += other.events;
        self.any |= other.any;
    }
}

/// Decides `batch` with `domain`, appends its events, lets the domain write
/// what needs their positions, and builds the replies (final once the
/// transaction commits). Returns them and what was written.
async fn step<D: Domain>(
    domain: &D,
    tx: &mut PgConnection,
    batch: &[(Context, D::Prepared)],
    now: i64,
    options: &Options,
    guard: Guard,
) -> Result<(Vec<Reply<D::Data>>, Written, Applied)> {
    let service = D::SERVICE;
    let t0 = Instant::now();
    let outcomes = domain.execute(tx, batch).await?;
    let t_execute = t0.elapsed();
    let mut pending = Vec::new();
    let mut counts = Vec::with_capacity(outcomes.len());
    for ((ctx, _), outcome) in batch.iter().zip(&outcomes) {
        let events = match outcome {
            Ok((events, _)) => events.as_slice(),
            Err(_) => &[],
        };
        counts.push(events.len());
        pending.extend(events.iter().map(|event| Pending {
            event: event.clone(),
            metadata: Metadata {
                correlation_id: ctx.correlation_id,
                causation_id: ctx.command_id,
                actor: ctx.actor,
                recorded_at_us: now,
            },
        }));
    }
    let recorded = log::append(tx, service, pending).await?;
    let t_append = t0.elapsed();
    let mut applied = Applied::default();
    let mut notified = None;
    let (mut t_inline, mut t_derive) = (t_append, t_append);
    if !recorded.is_empty() {
        domain.recorded(tx, &recorded).await?;
        // Unguarded, their failures are not the batch's: tried again.
        let unguarded = |e: Error| match guard {
            Guard::Fast => Error::Unguarded(Box::new(e)),
            Guard::Careful => e,
        };
        if let Some(inline) = &options.inline {
            applied = inline
                .apply(tx, &recorded, guard)
                .await
                .map_err(|e| unguarded(e.into()))?;
        }
        t_inline = t0.elapsed();
        if let Some(notifications) = &options.derive_notifications {
            let derived = deriver::derive_inline(tx, service, &recorded, notifications, guard)
                .await
                .map_err(unguarded)?;
            applied.extend(derived.applied);
            notified = derived.head;
        }
        t_derive = t0.elapsed();
    }
    tracing::trace!(%service, n = batch.len(), execute_us = t_execute.as_micros() as u64,
        append_us = (t_append - t_execute).as_micros() as u64,
        inline_us = (t_inline - t_append).as_micros() as u64,
        derive_us = (t_derive - t_inline).as_micros() as u64, "batch steps");
    let mut at = 0usize;
    let mut replies = Vec::with_capacity(outcomes.len());
    for (outcome, count) in outcomes.into_iter().zip(counts) {
        replies.push(match outcome {
            Ok((_, data)) => {
                let positions = match count {
                    0 => Vec::new(),
                    _ => recorded
                        .get(at + count - 1)
                        .map(|last| {
                            let own = (service, last.position);
                            let derived = notified.map(|head| (Service::Notifications, head));
                            [Some(own), derived].into_iter().flatten().collect()
                        })
                        .unwrap_or_default(),
                };
                at += count;
                Reply::Accepted { positions, data }
            }
            Err(rejection) => Reply::Rejected(rejection),
        });
    }
    let keyed: Vec<(Uuid, Digest, Vec<u8>)> = batch
        .iter()
        .zip(&replies)
        .filter_map(|((ctx, _), reply)| {
            let digest = ctx.request_digest?;
            final_outcome(reply).then(|| (ctx.command_id, digest, reply.to_bytes()))
        })
        .collect();
    outcomes::record(tx, service, &keyed).await?;
    let written = Written {
        events: recorded.len(),
        any: !recorded.is_empty() || !keyed.is_empty(),
    };
    Ok((replies, written, applied))
}

/// Commits; tells a commit Postgres refused (nothing committed) from one
/// whose answer was lost (outcome unknown).
async fn finish<D>(
    tx: sqlx::Transaction<'_, sqlx::Postgres>,
    options: &Options,
    service: Service,
    written: Written,
) -> std::result::Result<(), Failed<D>> {
    match tx.commit().await {
        Ok(()) => {}
        Err(e @ sqlx::Error::Database(_)) => return Err(Failed::RolledBack(e.into())),
        Err(e) => return Err(Failed::Unknown(e.into())),
    }
    if written.events > 0 {
        let service = service.as_str();
        metrics::counter!(names::APPENDS, "service" => service).increment(1);
        metrics::counter!(names::APPENDED_EVENTS, "service" => service)
            .increment(written.events as u64);
        metrics::histogram!(names::GROUP_COMMIT_EVENTS, "service" => service)
            .record(written.events as f64);
    }
    if options.abort_after_commit && written.any {
        tracing::error!("fault injection: aborting after commit, before publish");
        std::process::abort();
    }
    Ok(())
}

/// How long a caller waits for a service's reply by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// What the tests of this crate that need Postgres share: a fresh database
/// with the migrations applied, on the server at `FORUM_TEST_PG` (default
/// `postgres://postgres@127.0.0.1:5432`).
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// A fresh, migrated database, dropped with the value.
    pub(crate) struct TestDb {
        pub(crate) pool: PgPool,
        server: String,
        name: String,
    }

    impl TestDb {
        pub(crate) async fn new() -> TestDb {
            let server = std::env::var("FORUM_TEST_PG")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
            let name = format!("forum_cmd_t_{}", &Uuid::new_v4().simple().to_string()[..16]);
            let url = format!("{server}/{name}");
            forum_store::setup::create_database(&url)
                .await
                .expect("create the test database");
            let pool = forum_store::setup::connect_pg(&url, 4)
                .await
                .expect("connect to the test database");
            forum_store::setup::migrate(&pool).await.expect("migrate");
            TestDb { pool, server, name }
        }
    }

    impl Drop for TestDb {
        /// Best effort, panicking tests included: the database is dropped
        /// with `psql`, its connections forced out.
        fn drop(&mut self) {
            let _ = std::process::Command::new("psql")
                .args(["-d", &format!("{}/postgres", self.server), "-q", "-c"])
                .arg(format!(
                    "drop database if exists {} with (force)",
                    self.name
                ))
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
        }
    }

    /// A context with fresh ids, acting as `actor`.
    pub(crate) fn ctx(actor: Uuid) -> Context {
        Context {
            command_id: Uuid::now_v7(),
            correlation_id: Uuid::now_v7(),
            actor: Some(actor),
            deadline: None,
            request_digest: None,
        }
    }

    /// The (stream, version, causation id, recorded at) of every event of
    /// `service`'s log, in position order; asserts the positions have no
    /// gaps.
    pub(crate) async fn log_of(pool: &PgPool, service: Service) -> Vec<(Uuid, u32, Uuid, i64)> {
        let mut conn = pool.acquire().await.expect("connection");
        let events = log::read_after(&mut conn, service, 0, 10_000)
            .await
            .expect("read the log");
        for (i, e) in events.iter().enumerate() {
            assert_eq!(e.position, i as u64 + 1, "positions without gaps");
        }
        events
            .into_iter()
            .map(|e| {
                (
                    e.stream_id,
                    e.version,
                    e.metadata.causation_id,
                    e.metadata.recorded_at_us,
                )
            })
            .collect()
    }

    /// The rejection of a refused reply.
    pub(crate) fn rejection<T: std::fmt::Debug>(reply: &Reply<T>) -> Option<&Rejection> {
        match reply {
            Reply::Rejected(r) => Some(r),
            Reply::Accepted { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    //! The runtime against a real Postgres, with a small domain of notes:
    //! `notes.notes` is its write model (a text column, so U+0000 cannot be
    //! stored), its events go to the posts log of a fresh database.

    use std::collections::HashMap;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use sqlx::Row;

    use super::testing::{ctx, log_of, rejection, TestDb};
    use super::*;
    use crate::wire::UNSTORABLE_TEXT;

    enum Note {
        /// A new note (refused when it exists).
        Create { id: Uuid, text: String },
        /// Appends to a note (refused when it does not exist).
        Append { id: Uuid, text: String },
        /// Fails with a bug (a missing table) when decided.
        Bug,
        /// An event at version 1 of `id`'s stream, however far it is.
        Forge { id: Uuid },
    }

    #[derive(Default)]
    struct Notes {
        /// How many more `execute` calls fail with a serialization failure.
        transient: AtomicUsize,
        /// How many `execute` calls ran.
        executions: AtomicUsize,
    }

    impl Domain for Notes {
        const SERVICE: Service = Service::Posts;
        type Command = ();
        type Prepared = Note;
        type Data = Uuid;

        async fn prepare(&self, _: &Context, _: ()) -> std::result::Result<Note, Rejection> {
            Err(Rejection::Internal)
        }

        async fn execute(
            &self,
            tx: &mut PgConnection,
            batch: &[(Context, Note)],
        ) -> Result<Vec<Outcome<Uuid>>> {
            self.executions.fetch_add(1, Ordering::SeqCst);
            let left = self.transient.load(Ordering::SeqCst);
            if left > 0 {
                self.transient.store(left - 1, Ordering::SeqCst);
                sqlx::query(
                    "do $$ begin raise exception 'injected' using errcode = '40001'; end $$",
                )
                .execute(&mut *tx)
                .await?;
            }
            let ids: Vec<Uuid> = batch
                .iter()
                .filter_map(|(_, n)| match n {
                    Note::Create { id, .. } | Note::Append { id, .. } => Some(*id),
                    Note::Bug | Note::Forge { .. } => None,
                })
                .collect();
            let mut world: HashMap<Uuid, (String, u32)> = HashMap::new();
            for r in sqlx::query("select id, text, version from notes.notes where id = any($1)")
                .bind(&ids)
                .fetch_all(&mut *tx)
                .await?
            {
                world.insert(
                    r.try_get("id")?,
                    (r.try_get("text")?, r.try_get::<i32, _>("version")? as u32),
                );
            }
            let mut dirty = Vec::new();
            let mut outcomes = Vec::new();
            for (_, note) in batch {
                let event = |id: Uuid, version: u32, text: &str| NewEvent {
                    stream_id: id,
                    version,
                    event_id: Uuid::now_v7(),
                    event_type: "note_changed",
                    schema_version: 1,
                    payload: text.as_bytes().to_vec(),
                };
                outcomes.push(match note {
                    Note::Create { id, .. } if world.contains_key(id) => {
                        Err(Rejection::Conflict("exists".into()))
                    }
                    Note::Create { id, text } => {
                        world.insert(*id, (text.clone(), 1));
                        dirty.push(*id);
                        Ok((vec![event(*id, 1, text)], *id))
                    }
                    Note::Append { id, text } => match world.get_mut(id) {
                        None => Err(Rejection::NotFound),
                        Some((t, v)) => {
                            t.push_str(text);
                            *v += 1;
                            dirty.push(*id);
                            Ok((vec![event(*id, *v, text)], *id))
                        }
                    },
                    Note::Bug => {
                        sqlx::query("select * from notes.no_such_table")
                            .execute(&mut *tx)
                            .await?;
                        Err(Rejection::Internal)
                    }
                    Note::Forge { id } => Ok((vec![event(*id, 1, "forged")], *id)),
                });
            }
            for id in dirty {
                let Some((text, version)) = world.get(&id) else {
                    continue;
                };
                sqlx::query(
                    "insert into notes.notes (id, text, version) values ($1, $2, $3)
                     on conflict (id) do update set text = excluded.text, version = excluded.version",
                )
                .bind(id)
                .bind(text)
                .bind(*version as i32)
                .execute(&mut *tx)
                .await?;
            }
            Ok(outcomes)
        }

        fn unstorable(&self, prepared: &Note) -> Rejection {
            match prepared {
                Note::Create { text, .. } | Note::Append { text, .. } => {
                    Rejection::unstorable([("text", text.as_str())])
                }
                Note::Bug | Note::Forge { .. } => Rejection::unstorable([]),
            }
        }
    }

    #[test]
    fn a_commands_metric_label_is_its_subjects_last_token_or_other() {
        assert_eq!(command_label("forum.cmd.posts.create_post"), "create_post");
        assert_eq!(command_label("forum.cmd.posts.Create-Post"), "other");
        assert_eq!(command_label("forum.cmd.posts."), "other");
        assert_eq!(
            command_label(&format!("forum.cmd.posts.{}", "a".repeat(41))),
            "other"
        );
    }

    #[test]
    fn the_heads_to_announce_are_the_highest_positions_per_log_of_the_accepted_replies() {
        let accepted = |positions: Vec<(Service, u64)>| Reply::Accepted {
            positions,
            data: (),
        };
        let replies = vec![
            accepted(vec![(Service::Posts, 7), (Service::Notifications, 0)]),
            Reply::Rejected(Rejection::Internal),
            accepted(vec![(Service::Posts, 9), (Service::Notifications, 4)]),
            accepted(vec![]),
            accepted(vec![(Service::Posts, 8)]),
        ];
        assert_eq!(
            heads(&replies),
            vec![(Service::Posts, 9), (Service::Notifications, 4)]
        );
        assert!(heads::<()>(&[Reply::Rejected(Rejection::Internal)]).is_empty());
    }

    async fn notes_db() -> TestDb {
        let db = TestDb::new().await;
        sqlx::query("create schema notes")
            .execute(&db.pool)
            .await
            .expect("schema");
        sqlx::query(
            "create table notes.notes (id uuid primary key, text text not null, version int not null)",
        )
        .execute(&db.pool)
        .await
        .expect("table");
        db
    }

    async fn notes(pool: &PgPool) -> HashMap<Uuid, (String, i32)> {
        sqlx::query("select id, text, version from notes.notes")
            .fetch_all(pool)
            .await
            .expect("notes")
            .into_iter()
            .map(|r| (r.get("id"), (r.get("text"), r.get("version"))))
            .collect()
    }

    fn create(text: &str) -> (Context, Note) {
        (
            ctx(Uuid::nil()),
            Note::Create {
                id: Uuid::now_v7(),
                text: text.into(),
            },
        )
    }

    fn append(id: Uuid, text: &str) -> (Context, Note) {
        (
            ctx(Uuid::nil()),
            Note::Append {
                id,
                text: text.into(),
            },
        )
    }

    fn id_of(item: &(Context, Note)) -> Uuid {
        match &item.1 {
            Note::Create { id, .. } | Note::Append { id, .. } | Note::Forge { id } => *id,
            Note::Bug => Uuid::nil(),
        }
    }

    fn unstorable_text() -> Rejection {
        Rejection::Validation(vec![("text".into(), UNSTORABLE_TEXT.into())])
    }

    #[tokio::test]
    async fn a_command_whose_text_cannot_be_stored_is_refused_and_the_rest_of_its_batch_commits() {
        let db = notes_db().await;
        let domain = Notes::default();
        let a = create("a");
        let b = create("b\0");
        let (a_id, b_id) = (id_of(&a), id_of(&b));
        let c = create("c");
        let d = create("\0d");
        let c_id = id_of(&c);
        let batch = vec![
            a,
            b,
            append(b_id, " depends on b"),
            append(a_id, "+1"),
            c,
            d,
        ];
        let causes: Vec<Uuid> = batch.iter().map(|(ctx, _)| ctx.command_id).collect();
        let replies = run_batch(&domain, &db.pool, batch, &Options::default()).await;

        let refused: Vec<Option<&Rejection>> = replies.iter().map(rejection).collect();
        let text = unstorable_text();
        assert_eq!(
            refused,
            [
                None,
                Some(&text),
                Some(&Rejection::NotFound),
                None,
                None,
                Some(&text)
            ],
            "{replies:?}"
        );
        // The accepted replies carry the positions of their last events.
        let positions: Vec<Vec<(Service, u64)>> = replies
            .iter()
            .filter_map(|r| match r {
                Reply::Accepted { positions, .. } => Some(positions.clone()),
                Reply::Rejected(_) => None,
            })
            .collect();
        assert_eq!(
            positions,
            [
                vec![(Service::Posts, 1)],
                vec![(Service::Posts, 2)],
                vec![(Service::Posts, 3)]
            ]
        );
        let log = log_of(&db.pool, Service::Posts).await;
        let written: Vec<(Uuid, u32, Uuid)> = log.iter().map(|e| (e.0, e.1, e.2)).collect();
        assert_eq!(
            written,
            [
                (a_id, 1, causes[0]),
                (a_id, 2, causes[3]),
                (c_id, 1, causes[4])
            ]
        );
        assert!(
            log.iter().all(|e| e.3 == log[0].3),
            "one transaction, one time: {log:?}"
        );
        let stored = notes(&db.pool).await;
        assert_eq!(stored.len(), 2, "{stored:?}");
        assert_eq!(stored[&a_id], ("a+1".to_string(), 2));
        assert_eq!(stored[&c_id], ("c".to_string(), 1));
    }

    #[tokio::test]
    async fn a_later_command_is_decided_without_the_refused_one_before_it() {
        let db = notes_db().await;
        let domain = Notes::default();
        let first = create("x");
        let id = id_of(&first);
        let replies = run_batch(&domain, &db.pool, vec![first], &Options::default()).await;
        assert!(rejection(&replies[0]).is_none(), "{replies:?}");

        // Every edit would take version 2: the refused one must not.
        let batch = vec![
            append(id, "bad\0"),
            append(id, "y"),
            append(id, "\0"),
            append(id, "z"),
        ];
        let replies = run_batch(&domain, &db.pool, batch, &Options::default()).await;
        let refused: Vec<Option<&Rejection>> = replies.iter().map(rejection).collect();
        let text = unstorable_text();
        assert_eq!(refused, [Some(&text), None, Some(&text), None]);
        let versions: Vec<u32> = log_of(&db.pool, Service::Posts)
            .await
            .into_iter()
            .map(|e| e.1)
            .collect();
        assert_eq!(versions, [1, 2, 3]);
        assert_eq!(notes(&db.pool).await[&id], ("xyz".to_string(), 3));
    }

    #[tokio::test]
    async fn a_command_failing_for_another_reason_is_internal_and_the_others_commit() {
        let db = notes_db().await;
        let domain = Notes::default();
        let a = create("a");
        let a_id = id_of(&a);
        // An event at a (stream, version) already taken fails the append
        // itself with a unique-key conflict.
        let forged = (ctx(Uuid::nil()), Note::Forge { id: a_id });
        let batch = vec![a, (ctx(Uuid::nil()), Note::Bug), create("c"), forged];
        let replies = run_batch(&domain, &db.pool, batch, &Options::default()).await;
        let refused: Vec<Option<&Rejection>> = replies.iter().map(rejection).collect();
        assert_eq!(
            refused,
            [
                None,
                Some(&Rejection::Internal),
                None,
                Some(&Rejection::Conflict(
                    "this change conflicts with what is stored".into()
                ))
            ]
        );
        assert_eq!(log_of(&db.pool, Service::Posts).await.len(), 2);
        assert_eq!(notes(&db.pool).await.len(), 2);
    }

    #[tokio::test]
    async fn a_lone_command_that_cannot_be_stored_is_refused_without_a_second_try() {
        let db = notes_db().await;
        let domain = Notes::default();
        let replies = run_batch(&domain, &db.pool, vec![create("\0")], &Options::default()).await;
        assert_eq!(rejection(&replies[0]), Some(&unstorable_text()));
        assert_eq!(domain.executions.load(Ordering::SeqCst), 1);
        assert!(log_of(&db.pool, Service::Posts).await.is_empty());
    }

    /// `item` sent with an `Idempotency-Key`: its command id and request
    /// digest are `id` and `digest` (a retry sends them again).
    fn keyed(mut item: (Context, Note), id: Uuid, digest: u8) -> (Context, Note) {
        item.0.command_id = id;
        item.0.request_digest = Some([digest; 32]);
        item
    }

    fn note(id: Uuid, text: &str) -> Note {
        Note::Create {
            id,
            text: text.into(),
        }
    }

    #[tokio::test]
    async fn a_keyed_command_sent_again_is_answered_its_first_outcome_and_decided_once() {
        let db = notes_db().await;
        let domain = Notes::default();
        let (key, id) = (Uuid::now_v7(), Uuid::now_v7());
        let first = run_batch(
            &domain,
            &db.pool,
            vec![keyed((ctx(Uuid::nil()), note(id, "once")), key, 1)],
            &Options::default(),
        )
        .await;
        assert!(rejection(&first[0]).is_none(), "{first:?}");
        // The retry would be refused if it were decided again (the note
        // exists): it gets the first answer, positions included.
        let again = run_batch(
            &domain,
            &db.pool,
            vec![
                create("beside"),
                keyed((ctx(Uuid::nil()), note(id, "once")), key, 1),
            ],
            &Options::default(),
        )
        .await;
        assert_eq!(again[1], first[0]);
        assert!(rejection(&again[0]).is_none(), "{again:?}");
        let log = log_of(&db.pool, Service::Posts).await;
        assert_eq!(log.len(), 2, "the note once, and the other one: {log:?}");
        assert_eq!(notes(&db.pool).await[&id], ("once".to_string(), 1));
    }

    #[tokio::test]
    async fn a_key_sent_twice_in_one_batch_takes_effect_once_and_both_get_its_answer() {
        let db = notes_db().await;
        let domain = Notes::default();
        let (key, id) = (Uuid::now_v7(), Uuid::now_v7());
        let replies = run_batch(
            &domain,
            &db.pool,
            vec![
                keyed((ctx(Uuid::nil()), note(id, "twice")), key, 7),
                keyed((ctx(Uuid::nil()), note(id, "twice")), key, 7),
                keyed((ctx(Uuid::nil()), note(Uuid::now_v7(), "other")), key, 8),
            ],
            &Options::default(),
        )
        .await;
        assert!(rejection(&replies[0]).is_none(), "{replies:?}");
        assert_eq!(replies[1], replies[0]);
        assert_eq!(
            rejection(&replies[2]),
            Some(&Rejection::Conflict(KEY_REUSED.into()))
        );
        assert_eq!(log_of(&db.pool, Service::Posts).await.len(), 1);
    }

    #[tokio::test]
    async fn a_key_used_again_for_another_request_is_a_conflict_and_changes_nothing() {
        let db = notes_db().await;
        let domain = Notes::default();
        let key = Uuid::now_v7();
        let first = run_batch(
            &domain,
            &db.pool,
            vec![keyed(create("first"), key, 1)],
            &Options::default(),
        )
        .await;
        assert!(rejection(&first[0]).is_none(), "{first:?}");
        let other = run_batch(
            &domain,
            &db.pool,
            vec![keyed(create("second"), key, 2)],
            &Options::default(),
        )
        .await;
        assert_eq!(
            rejection(&other[0]),
            Some(&Rejection::Conflict(KEY_REUSED.into()))
        );
        assert_eq!(log_of(&db.pool, Service::Posts).await.len(), 1);
    }

    #[tokio::test]
    async fn a_refusal_by_the_rules_is_recorded_and_a_retry_gets_it_even_when_the_rules_now_allow_it(
    ) {
        let db = notes_db().await;
        let domain = Notes::default();
        let (key, id) = (Uuid::now_v7(), Uuid::now_v7());
        let refused = run_batch(
            &domain,
            &db.pool,
            vec![keyed(append(id, "+1"), key, 3)],
            &Options::default(),
        )
        .await;
        assert_eq!(rejection(&refused[0]), Some(&Rejection::NotFound));
        run_batch(
            &domain,
            &db.pool,
            vec![(ctx(Uuid::nil()), note(id, "now"))],
            &Options::default(),
        )
        .await;
        let retried = run_batch(
            &domain,
            &db.pool,
            vec![keyed(append(id, "+1"), key, 3)],
            &Options::default(),
        )
        .await;
        assert_eq!(retried, refused);
        assert_eq!(notes(&db.pool).await[&id], ("now".to_string(), 1));
    }

    #[tokio::test]
    async fn a_keyed_command_that_failed_unstorable_or_transiently_is_not_recorded() {
        let db = notes_db().await;
        let domain = Notes::default();
        domain.transient.store(usize::MAX, Ordering::SeqCst);
        let options = Options {
            retry_for: Duration::from_millis(100),
            ..Options::default()
        };
        let (key, id) = (Uuid::now_v7(), Uuid::now_v7());
        let unavailable = run_batch(
            &domain,
            &db.pool,
            vec![keyed((ctx(Uuid::nil()), note(id, "x")), key, 4)],
            &options,
        )
        .await;
        assert_eq!(rejection(&unavailable[0]), Some(&Rejection::Unavailable));
        domain.transient.store(0, Ordering::SeqCst);
        let bad = run_batch(
            &domain,
            &db.pool,
            vec![keyed(
                (ctx(Uuid::nil()), note(Uuid::now_v7(), "\0")),
                Uuid::now_v7(),
                5,
            )],
            &Options::default(),
        )
        .await;
        assert_eq!(rejection(&bad[0]), Some(&unstorable_text()));
        let recorded: i64 = sqlx::query_scalar("select count(*) from command.outcomes")
            .fetch_one(&db.pool)
            .await
            .expect("count");
        assert_eq!(recorded, 0);
        // The retry of the unavailable one is decided: it takes effect now.
        let retried = run_batch(
            &domain,
            &db.pool,
            vec![keyed((ctx(Uuid::nil()), note(id, "x")), key, 4)],
            &Options::default(),
        )
        .await;
        assert!(rejection(&retried[0]).is_none(), "{retried:?}");
        assert_eq!(log_of(&db.pool, Service::Posts).await.len(), 1);
    }

    #[tokio::test]
    async fn transient_failures_are_tried_again_until_the_batch_commits() {
        let db = notes_db().await;
        let domain = Notes::default();
        domain.transient.store(2, Ordering::SeqCst);
        let replies = run_batch(
            &domain,
            &db.pool,
            vec![create("a"), create("b")],
            &Options::default(),
        )
        .await;
        assert!(
            replies.iter().all(|r| rejection(r).is_none()),
            "{replies:?}"
        );
        assert_eq!(domain.executions.load(Ordering::SeqCst), 3);
        assert_eq!(log_of(&db.pool, Service::Posts).await.len(), 2);
    }

    #[tokio::test]
    async fn transient_failures_past_the_retry_budget_are_unavailable_and_write_nothing() {
        let db = notes_db().await;
        let domain = Notes::default();
        domain.transient.store(usize::MAX, Ordering::SeqCst);
        let options = Options {
            retry_for: Duration::from_millis(300),
            ..Options::default()
        };
        let started = Instant::now();
        let replies = run_batch(&domain, &db.pool, vec![create("a"), create("b")], &options).await;
        assert!(started.elapsed() < Duration::from_secs(10));
        assert_eq!(
            replies.iter().map(rejection).collect::<Vec<_>>(),
            [Some(&Rejection::Unavailable), Some(&Rejection::Unavailable)]
        );
        let tries = domain.executions.load(Ordering::SeqCst);
        assert!((2..=10).contains(&tries), "{tries} tries");
        assert!(log_of(&db.pool, Service::Posts).await.is_empty());
        assert!(notes(&db.pool).await.is_empty());
    }
}

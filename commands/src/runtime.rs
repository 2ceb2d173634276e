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

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use forum_events::{subject::Subjects, Metadata, NewEvent, RecordedEvent, Service};
use forum_store::log::{self, Pending};
use futures::StreamExt;
use serde::{de::DeserializeOwned, Serialize};
use sqlx::{PgConnection, PgPool};
use tokio::sync::{mpsc, watch, Semaphore};
use uuid::Uuid;

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
    /// What an accepted command replies with.
    type Data: Serialize + Send + 'static;

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
    /// # Errors
    /// Database failure (the whole batch is then retried command by command).
    fn execute(
        &self,
        tx: &mut PgConnection,
        batch: &[(Context, Self::Prepared)],
    ) -> impl Future<Output = Result<Vec<Outcome<Self::Data>>>> + Send;

    /// Runs in the append transaction right after the batch's events were
    /// appended and before the commit, with the recorded events (their log
    /// positions now known, in outcome order). Write-model rows that need
    /// log positions are written here. Does nothing by default.
    ///
    /// # Errors
    /// Database failure (the whole batch is then retried command by command).
    fn recorded(
        &self,
        tx: &mut PgConnection,
        events: &[RecordedEvent],
    ) -> impl Future<Output = Result<()>> + Send {
        let _ = (tx, events);
        async { Ok(()) }
    }
}

/// Tunables of a service instance.
#[derive(Debug, Clone)]
pub struct Options {
    /// Most commands decided in one transaction.
    pub max_batch: usize,
    /// Most commands being prepared at once.
    pub max_in_flight: usize,
    /// Test-only fault injection: abort the process right after the first
    /// commit, before anything is published or replied.
    pub abort_after_commit: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_batch: 256,
            max_in_flight: 4096,
            abort_after_commit: false,
        }
    }
}

struct Job<D: Domain> {
    ctx: Context,
    prepared: D::Prepared,
    reply_to: Option<async_nats::Subject>,
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
    let mut sub = nats
        .queue_subscribe(subjects.commands_of(service), service.as_str().to_string())
        .await
        .map_err(|e| Error::Nats(e.to_string()))?;
    let domain = Arc::new(domain);
    let (jobs_tx, jobs_rx) = mpsc::channel::<Job<D>>(options.max_batch * 4);
    let batcher = tokio::spawn(batcher(
        domain.clone(),
        pool.clone(),
        nats.clone(),
        options.clone(),
        jobs_rx,
    ));
    let js = async_nats::jetstream::new(nats.clone());
    let relay = tokio::spawn(forum_store::relay::run(
        pool.clone(),
        js,
        subjects.clone(),
        service,
        shutdown.clone(),
    ));
    let permits = Arc::new(Semaphore::new(options.max_in_flight));
    let mut stop = shutdown.clone();
    tracing::info!(%service, "command service ready");
    loop {
        let msg = tokio::select! {
            m = sub.next() => match m { Some(m) => m, None => break },
            _ = stop.changed() => break,
        };
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
                    respond::<D::Data>(&nats, msg.reply, Reply::Rejected(Rejection::Internal))
                        .await;
                    return;
                }
            };
            let ctx = Context {
                command_id: envelope.command_id,
                correlation_id: envelope.correlation_id,
                actor: envelope.actor,
            };
            match domain.prepare(&ctx, envelope.command).await {
                Ok(prepared) => {
                    let job = Job {
                        ctx,
                        prepared,
                        reply_to: msg.reply,
                    };
                    if let Err(mpsc::error::SendError(job)) = jobs_tx.send(job).await {
                        respond::<D::Data>(
                            &nats,
                            job.reply_to,
                            Reply::Rejected(Rejection::Internal),
                        )
                        .await;
                    }
                }
                Err(rejection) => {
                    respond::<D::Data>(&nats, msg.reply, Reply::Rejected(rejection)).await;
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
    let _ = batcher.await;
    let _ = relay.await;
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
    options: Options,
    mut jobs: mpsc::Receiver<Job<D>>,
) {
    let mut batch = Vec::with_capacity(options.max_batch);
    while jobs.recv_many(&mut batch, options.max_batch).await > 0 {
        let jobs_now = std::mem::take(&mut batch);
        let (ctxs, rest): (Vec<_>, Vec<_>) = jobs_now
            .into_iter()
            .map(|j| ((j.ctx, j.prepared), j.reply_to))
            .unzip();
        let replies = run_batch(&*domain, &pool, ctxs, &options).await;
        for (reply, to) in replies.into_iter().zip(rest) {
            respond(&nats, to, reply).await;
        }
    }
}

/// Decides and appends a batch; on an infrastructure failure, retries each
/// command alone so one bad command cannot sink the others.
async fn run_batch<D: Domain>(
    domain: &D,
    pool: &PgPool,
    batch: Vec<(Context, D::Prepared)>,
    options: &Options,
) -> Vec<Reply<D::Data>> {
    let n = batch.len();
    match commit(domain, pool, &batch, options).await {
        Ok(replies) => return replies,
        Err(e) if n == 1 => {
            tracing::error!(service = %D::SERVICE, error = %e, "command failed");
            return vec![Reply::Rejected(Rejection::Internal)];
        }
        Err(e) => {
            tracing::warn!(service = %D::SERVICE, error = %e, n, "batch failed; retrying one by one")
        }
    }
    let mut replies = Vec::with_capacity(n);
    for item in batch {
        let one = [item];
        match commit(domain, pool, &one, options).await {
            Ok(mut r) => replies.push(r.pop().unwrap_or(Reply::Rejected(Rejection::Internal))),
            Err(e) => {
                tracing::error!(service = %D::SERVICE, error = %e, "command failed");
                replies.push(Reply::Rejected(Rejection::Internal));
            }
        }
    }
    replies
}

async fn commit<D: Domain>(
    domain: &D,
    pool: &PgPool,
    batch: &[(Context, D::Prepared)],
    options: &Options,
) -> Result<Vec<Reply<D::Data>>> {
    let service = D::SERVICE;
    let mut tx = pool.begin().await?;
    log::lock(&mut tx, service).await?;
    let outcomes = domain.execute(&mut tx, batch).await?;
    let now = chrono::Utc::now().timestamp_micros();
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
    let recorded = log::append(&mut tx, service, pending).await?;
    if !recorded.is_empty() {
        domain.recorded(&mut tx, &recorded).await?;
    }
    tx.commit().await?;
    if options.abort_after_commit && !recorded.is_empty() {
        tracing::error!("fault injection: aborting after commit, before publish");
        std::process::abort();
    }
    let mut at = 0usize;
    let mut replies = Vec::with_capacity(outcomes.len());
    for (outcome, count) in outcomes.into_iter().zip(counts) {
        replies.push(match outcome {
            Ok((_, data)) => {
                let positions = if count == 0 {
                    Vec::new()
                } else {
                    vec![(service, recorded[at + count - 1].position)]
                };
                at += count;
                Reply::Accepted { positions, data }
            }
            Err(rejection) => Reply::Rejected(rejection),
        });
    }
    Ok(replies)
}

/// How long a caller waits for a service's reply by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

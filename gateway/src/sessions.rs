//! Session checks, coalesced: every authenticated request asks whether its
//! session is still open, and the requests that arrive together share one
//! query.
//!
//! ```text
//! request ─┐                       ┌─► open / not open
//! request ─┼─► queue ─► one query ─┼─► open / not open
//! request ─┘   (while another      └─► open / not open
//!               is in flight)
//! ```
//!
//! A check is never answered from memory: its query starts after the
//! request arrived, so a logout acknowledged on any gateway before a request
//! was sent is seen by that request (API.md: the token "stops working at
//! once, on every instance"). What the coalescing saves is the transaction
//! per request: under load one query answers the checks that queued while
//! the previous ones ran, as group commit does for writes.

use std::sync::Arc;

use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot, Semaphore};
use uuid::Uuid;

use crate::error::{ApiError, Result};
use crate::routes::users::read;

/// At most this many checks share one query.
const MAX_BATCH: usize = 256;
/// At most this many queries run at once.
const IN_FLIGHT: usize = 2;
/// Checks waiting for a query; more wait to be queued.
const QUEUE: usize = 4_096;

struct Check {
    session: Uuid,
    user: Uuid,
    reply: oneshot::Sender<Result<bool>>,
}

/// The gateway's session checker (cloning is shallow).
#[derive(Clone)]
pub struct Sessions {
    queue: mpsc::Sender<Check>,
}

impl Sessions {
    /// A checker over `pool`; its task ends when every clone is dropped.
    pub fn start(pool: PgPool) -> Self {
        let (queue, checks) = mpsc::channel(QUEUE);
        tokio::spawn(serve(pool, checks));
        Sessions { queue }
    }

    /// Whether session `session` of `user` is open: known, not revoked by a
    /// logout and not expired.
    ///
    /// # Errors
    /// `503 unavailable` or `500 internal` when Postgres cannot answer.
    pub async fn is_open(&self, session: Uuid, user: Uuid) -> Result<bool> {
        let (reply, answer) = oneshot::channel();
        let check = Check {
            session,
            user,
            reply,
        };
        self.queue
            .send(check)
            .await
            .map_err(|_| ApiError::Unavailable("the session checker has stopped".into()))?;
        answer
            .await
            .map_err(|_| ApiError::Unavailable("the session check was dropped".into()))?
    }
}

async fn serve(pool: PgPool, mut checks: mpsc::Receiver<Check>) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    loop {
        // Wait for a free slot first: the checks that arrive meanwhile
        // join the next batch.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = checks.recv().await else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match checks.try_recv() {
                Ok(c) => batch.push(c),
                Err(_) => break,
            }
        }
        let pool = pool.clone();
        tokio::spawn(async move {
            answer(&pool, batch).await;
            drop(slot);
        });
    }
}

/// Runs one query for `batch` and answers each check.
async fn answer(pool: &PgPool, batch: Vec<Check>) {
    let ids: Vec<Uuid> = batch.iter().map(|c| c.session).collect();
    let open = read::open_sessions(pool, &ids).await;
    for c in batch {
        let answer = match &open {
            Ok(open) => Ok(open.contains(&(c.session, c.user))),
            Err(e) => Err(e.clone()),
        };
        // The request may have gone (its client hung up).
        let _ = c.reply.send(answer);
    }
}

//! Inline projections (Marten's name): the read models of a log applied in
//! the transaction that appends to it, by the same `apply` code a rebuild
//! runs, so an acknowledged write costs one durable commit and its answer
//! does not wait for a projector.
//!
//! The projector keeps following the log beside it: it applies whatever
//! the inline path left (a batch appended while the projector held the
//! checkpoint, a version just made live, events appended by a build
//! without inline projections) and finds nothing to do otherwise. The two
//! never apply an event twice: both move the same checkpoint row, under
//! its row lock, and the inline path applies only when the checkpoint is
//! exactly before the appended events (and skips when the projector holds
//! the row). A rebuilt version fills from the logs beside the live one, as
//! before; once it is made live, the inline path follows it.
//!
//! The first try is unguarded ([`Guard::Fast`]: the checkpoints taken and
//! moved in one statement, no savepoint), and any failure fails the write's
//! transaction, which the command runtime then tries again guarded
//! ([`Guard::Careful`]): each projection inside a savepoint, an event it
//! cannot apply parked as poison as the projector would, a locked table
//! left to the projector. Either way it never refuses the write.

use std::sync::Arc;

use forum_events::{subject::Subjects, RecordedEvent, Service};
use sqlx::{Acquire, PgConnection};

use crate::error::Failure;
use crate::poison::{self, Parked};
use crate::{registry, runner, Progress, Projection, Result};

/// How long an inline projection waits for a lock on its tables before it
/// leaves the events to the projector.
const LOCK_TIMEOUT: &str = "250ms";

/// The projections of one log applied inline.
#[derive(Clone)]
pub struct Inline {
    service: Service,
    projections: Vec<Arc<dyn Projection>>,
}

impl std::fmt::Debug for Inline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.projections.iter().map(|p| p.name()).collect();
        f.debug_struct("Inline")
            .field("service", &self.service)
            .field("projections", &names)
            .finish()
    }
}

/// What an inline application did, to announce once its transaction has
/// committed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// The checkpoints moved.
    pub progress: Vec<Progress>,
    /// Events parked, per (projection, version).
    pub parked: Vec<(String, u32, Vec<Parked>)>,
}

impl Applied {
    /// Adds what another application did.
    pub fn extend(&mut self, other: Applied) {
        self.progress.extend(other.progress);
        self.parked.extend(other.parked);
    }

    /// Logs the parked events and announces the parked positions, then the
    /// new checkpoints, as the projector does: call it once the
    /// transaction has committed, before answering the writes, so a
    /// gateway knows its read models have them.
    pub async fn announce(&self, nats: &async_nats::Client, subjects: &Subjects) {
        for (name, version, parked) in &self.parked {
            poison::log_parked(name, *version, parked);
            if let Some(service) = parked.first().map(|p| p.service) {
                runner::announce_parked(nats, subjects, name, *version, service, parked).await;
            }
        }
        for progress in &self.progress {
            runner::announce(nats, subjects, progress.clone()).await;
        }
    }
}

impl Inline {
    /// Every projection of this build that reads `service`'s log and no
    /// other (a projection reading several logs stays with the projector).
    pub fn of(service: Service) -> Inline {
        Inline {
            service,
            projections: crate::of(service)
                .into_iter()
                .filter(|p| p.sources() == [service])
                .collect(),
        }
    }

    /// No projection at all (the projector does everything).
    pub fn none(service: Service) -> Inline {
        Inline {
            service,
            projections: Vec::new(),
        }
    }

    /// The log.
    pub fn service(&self) -> Service {
        self.service
    }

    /// Makes sure every projection has a live version, as the projector
    /// does when it starts (on a new database it creates the code's
    /// version), so that writes are applied inline from the first one,
    /// whichever role starts first.
    ///
    /// # Errors
    /// Database failure.
    pub async fn prepare(&self, pool: &sqlx::PgPool) -> Result<()> {
        for p in &self.projections {
            registry::ensure_live(pool, &**p).await?;
        }
        Ok(())
    }

    /// Applies `events`, just appended to the log in the caller's
    /// transaction (which holds the log's append lock), to the live version
    /// of every projection, moving their checkpoints, when each checkpoint
    /// is right before them and no projector holds it. A projection whose
    /// checkpoint lags or is held is left to the projector.
    ///
    /// With [`Guard::Fast`] this takes the checkpoints and moves them in one
    /// statement, then applies: a failure of any kind fails the caller's
    /// transaction (which then tries again with [`Guard::Careful`]). With
    /// [`Guard::Careful`] each projection runs in a savepoint: one whose
    /// tables are locked for longer than 250 ms, or that fails transiently,
    /// is left to the projector; an event it cannot apply is parked.
    ///
    /// # Errors
    /// Any failure with [`Guard::Fast`]; with [`Guard::Careful`], transient
    /// failures of the transaction itself (an event that cannot be applied
    /// is parked, not an error).
    pub async fn apply(
        &self,
        tx: &mut PgConnection,
        events: &[RecordedEvent],
        guard: Guard,
    ) -> Result<Applied> {
        let (Some(first), Some(last)) = (events.first(), events.last()) else {
            return Ok(Applied::default());
        };
        if self.projections.is_empty() {
            return Ok(Applied::default());
        }
        match guard {
            Guard::Fast => {
                self.apply_fast(tx, events, first.position, last.position)
                    .await
            }
            Guard::Careful => {
                self.apply_careful(tx, events, first.position, last.position)
                    .await
            }
        }
    }

    async fn apply_fast(
        &self,
        tx: &mut PgConnection,
        events: &[RecordedEvent],
        first: u64,
        last: u64,
    ) -> Result<Applied> {
        let names: Vec<&str> = self.projections.iter().map(|p| p.name()).collect();
        // The live versions whose checkpoints are right before these events
        // and not held (a row not taken is not locked), moved past them.
        let taken: Vec<(String, i32)> = sqlx::query_as(
            "with taken as (
               select c.projection, c.version from proj.checkpoints c
               join proj.registry r on r.projection = c.projection and r.version = c.version
               where r.state = 'live' and c.projection = any($1) and c.service = $2
                 and c.position = $3
               for update of c skip locked)
             update proj.checkpoints c set position = $4 from taken
             where c.projection = taken.projection and c.version = taken.version
               and c.service = $2
             returning c.projection, c.version",
        )
        .bind(&names)
        .bind(self.service.as_str())
        .bind(first as i64 - 1)
        .bind(last as i64)
        .fetch_all(&mut *tx)
        .await?;
        let mut applied = Applied::default();
        for p in &self.projections {
            let Some(version) = taken
                .iter()
                .find(|(name, _)| name == p.name())
                .map(|(_, v)| *v as u32)
            else {
                continue;
            };
            poison::apply_guarded(tx, &**p, &p.schema(version), events).await?;
            applied.progress.push(Progress {
                projection: p.name().to_string(),
                version,
                service: self.service,
                position: last,
            });
        }
        Ok(applied)
    }

    async fn apply_careful(
        &self,
        tx: &mut PgConnection,
        events: &[RecordedEvent],
        first: u64,
        last: u64,
    ) -> Result<Applied> {
        let mut applied = Applied::default();
        // A read model must not stall the writes: a lock held on its
        // tables (a long statement, maintenance) ends the wait after
        // LOCK_TIMEOUT, and the projector applies these events once it can.
        // Set for the rest of the transaction, restored below.
        let lock_timeout: String = sqlx::query_scalar(
            "select current_setting('lock_timeout') from set_config('lock_timeout', $1, true)",
        )
        .bind(LOCK_TIMEOUT)
        .fetch_one(&mut *tx)
        .await?;
        for p in &self.projections {
            // The live version, when its checkpoint is right before these
            // events and no projector holds it (a row not taken is not
            // locked).
            let version: Option<i32> = sqlx::query_scalar(
                "select c.version from proj.checkpoints c
                 join proj.registry r on r.projection = c.projection and r.version = c.version
                 where r.state = 'live' and c.projection = $1 and c.service = $2
                   and c.position = $3
                 for update of c skip locked",
            )
            .bind(p.name())
            .bind(self.service.as_str())
            .bind(first as i64 - 1)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(version) = version.map(|v| v as u32) else {
                continue;
            };
            let schema = p.schema(version);
            let mut savepoint = tx.begin().await?;
            let parked = match poison::apply_guarded(&mut savepoint, &**p, &schema, events).await {
                Ok(()) => {
                    savepoint.commit().await?;
                    Vec::new()
                }
                Err(e) if e.failure() == Failure::Transient => {
                    // The write goes on, the projector takes these events.
                    // A lost connection fails the rollback too, and the
                    // whole transaction is tried again.
                    savepoint.rollback().await?;
                    tracing::debug!(projection = p.name(), error = %e,
                        "inline projection left to the projector");
                    continue;
                }
                Err(_) => {
                    savepoint.rollback().await?;
                    let parked = poison::apply_isolating(tx, &**p, &schema, events).await?;
                    poison::park(tx, p.name(), version, &parked).await?;
                    parked
                }
            };
            registry::set_checkpoint(tx, p.name(), version, self.service, last).await?;
            applied.progress.push(Progress {
                projection: p.name().to_string(),
                version,
                service: self.service,
                position: last,
            });
            if !parked.is_empty() {
                applied.parked.push((p.name().to_string(), version, parked));
            }
        }
        sqlx::query("select set_config('lock_timeout', $1, true)")
            .bind(&lock_timeout)
            .execute(&mut *tx)
            .await?;
        Ok(applied)
    }
}

/// How an inline application guards the write it rides on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guard {
    /// No savepoint: the checkpoints are taken and moved in one statement,
    /// and any failure (a lock wait past the transaction's bound, an event
    /// that cannot be applied) fails the caller's transaction, to be tried
    /// again [`Guard::Careful`]ly. The common case in the fewest round
    /// trips under the append lock.
    Fast,
    /// Each projection in a savepoint of its own: a failure never fails the
    /// caller's transaction (see [`Inline::apply`]).
    Careful,
}

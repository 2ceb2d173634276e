//! Read-your-writes: after a command is accepted, its answer waits until
//! every projection reading the written log has reached the written
//! position. Projectors announce their checkpoints on
//! `<prefix>.proj.<name>`; a gateway that missed an announcement falls back
//! to reading the checkpoint from Postgres.
//!
//! Writes that may cause notifications (a comment, a like or dislike, a
//! message) also wait for the notifications deriver, which announces its
//! checkpoints as the follower [`NOTIFIER`]: first until it has processed
//! the written position, then until the notifications projection has
//! reached everything the deriver had appended by then.
//!
//! A projection that cannot apply an event parks it and goes on (its
//! checkpoint moves past it), announcing the parked positions on
//! `<prefix>.proj.<name>.parked`. A write whose event was parked is
//! stored but will not be shown: the wait answers `500 internal` at once
//! rather than a read that would not find it.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use forum_commands::notifications::deriver;
use forum_events::{subject::Subjects, Service};
use forum_projections::poison::{self, ParkedNotice};
use forum_projections::Progress;
use futures::StreamExt;
use sqlx::PgPool;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::error::{ApiError, Result};

type Key = (&'static str, Service);

/// Parked positions remembered per follower (the oldest are forgotten
/// first).
const PARKED_KEPT: usize = 1_024;

/// How far before a write's last position (the one a wait is for) its
/// other events may lie.
const WRITE_SPAN: u64 = 64;

/// The follower name the notifications deriver announces its progress under.
pub const NOTIFIER: &str = deriver::FOLLOWER;

/// The latest known checkpoint of every live projection (and of the
/// notifications deriver), per log.
#[derive(Clone)]
pub struct Watermarks {
    inner: Arc<Inner>,
}

struct Inner {
    pool: PgPool,
    readers: HashMap<Service, Vec<&'static str>>,
    marks: Mutex<HashMap<Key, watch::Sender<u64>>>,
    /// Positions the projections announced they parked.
    parked: Mutex<HashMap<Key, BTreeSet<u64>>>,
    timeout: Duration,
}

impl Watermarks {
    /// Watermarks of every projection this build knows.
    pub fn new(pool: PgPool, timeout: Duration) -> Self {
        let mut readers: HashMap<Service, Vec<&'static str>> = HashMap::new();
        for p in forum_projections::all() {
            for s in p.sources() {
                readers.entry(*s).or_default().push(p.name());
            }
        }
        Watermarks {
            inner: Arc::new(Inner {
                pool,
                readers,
                marks: Mutex::new(HashMap::new()),
                parked: Mutex::new(HashMap::new()),
                timeout,
            }),
        }
    }

    fn sender(&self, key: Key) -> watch::Sender<u64> {
        let mut marks = self.inner.marks.lock().unwrap_or_else(|p| p.into_inner());
        marks
            .entry(key)
            .or_insert_with(|| watch::channel(0).0)
            .clone()
    }

    fn raise(&self, key: Key, position: u64) {
        self.sender(key).send_if_modified(|p| {
            if position > *p {
                *p = position;
                true
            } else {
                false
            }
        });
    }

    /// Follows the projectors' announcements until the subscription ends.
    ///
    /// # Errors
    /// When the subscription cannot be made.
    pub async fn follow(&self, nats: async_nats::Client, subjects: &Subjects) -> Result<()> {
        let mut sub = nats
            .subscribe(subjects.all_projection_progress())
            .await
            .map_err(|e| ApiError::Unavailable(e.to_string()))?;
        let this = self.clone();
        tokio::spawn(async move {
            while let Some(msg) = sub.next().await {
                if poison::is_notice_subject(&msg.subject) {
                    if let Ok(n) = ParkedNotice::from_bytes(&msg.payload) {
                        if let Some(name) = this.known(&n.projection) {
                            this.note_parked((name, n.service), &n.positions);
                        }
                    }
                    continue;
                }
                let Ok(p) = Progress::from_bytes(&msg.payload) else {
                    continue;
                };
                if let Some(name) = this.known(&p.projection) {
                    this.raise((name, p.service), p.position);
                }
            }
        });
        Ok(())
    }

    fn note_parked(&self, key: Key, positions: &[u64]) {
        let mut parked = self.inner.parked.lock().unwrap_or_else(|p| p.into_inner());
        let set = parked.entry(key).or_default();
        set.extend(positions.iter().copied());
        while set.len() > PARKED_KEPT {
            set.pop_first();
        }
    }

    /// Whether an announced parked position of `key` may belong to the
    /// write ending at `position`.
    fn maybe_parked(&self, key: Key, position: u64) -> bool {
        let parked = self.inner.parked.lock().unwrap_or_else(|p| p.into_inner());
        parked.get(&key).is_some_and(|set| {
            set.range(position.saturating_sub(WRITE_SPAN - 1)..=position)
                .next()
                .is_some()
        })
    }

    /// The position of an event of the write ending at `position` (same
    /// log, same correlation id, at most [`WRITE_SPAN`] before) that the
    /// live version of projection `key.0` parked, if any.
    async fn parked_write(&self, key: Key, position: u64) -> Result<Option<u64>> {
        let parked: Option<i64> = sqlx::query_scalar(&format!(
            "select p.position from proj.poison p
             join proj.registry r using (projection, version)
             where r.state = 'live' and p.projection = $1 and p.service = $2
               and p.position > $3 - $4 and p.position <= $3
               and p.correlation_id = (select correlation_id from {}.events where position = $3)
             order by p.position limit 1",
            key.1.as_str()
        ))
        .bind(key.0)
        .bind(key.1.as_str())
        .bind(position as i64)
        .bind(WRITE_SPAN as i64)
        .fetch_optional(&self.inner.pool)
        .await?;
        Ok(parked.map(|p| p as u64))
    }

    fn known(&self, name: &str) -> Option<&'static str> {
        if name == NOTIFIER {
            return Some(NOTIFIER);
        }
        self.inner
            .readers
            .values()
            .flatten()
            .find(|n| **n == name)
            .copied()
    }

    async fn poll(&self, key: Key) -> Result<()> {
        let position: Option<i64> = if key.0 == NOTIFIER {
            sqlx::query_scalar(
                "select position from notifications.deriver_checkpoints where service = $1",
            )
            .bind(key.1.as_str())
            .fetch_optional(&self.inner.pool)
            .await?
        } else {
            sqlx::query_scalar(
                "select c.position from proj.checkpoints c
                 join proj.registry r using (projection, version)
                 where r.state = 'live' and c.projection = $1 and c.service = $2",
            )
            .bind(key.0)
            .bind(key.1.as_str())
            .fetch_optional(&self.inner.pool)
            .await?
        };
        if let Some(p) = position {
            self.raise(key, p as u64);
        }
        Ok(())
    }

    /// Waits until the follower `key` has reached `position`; then, for a
    /// projection and when `own` (the position is the write's own, not a
    /// log head), checks that it did not park the write's events.
    async fn wait_for(&self, key: Key, position: u64, own: bool, deadline: Instant) -> Result<()> {
        let polled = self.reach(key, position, deadline).await?;
        if !own || key.0 == NOTIFIER {
            // The deriver: the write itself is shown, only a notification
            // is missing.
            return Ok(());
        }
        // Postgres is asked only when an announcement says so, or when
        // announcements were missed (the checkpoint came from a poll).
        if !(polled || self.maybe_parked(key, position)) {
            return Ok(());
        }
        if let Some(parked) = self.parked_write(key, position).await? {
            return Err(ApiError::Internal(format!(
                "the write was stored ({} log up to position {position}) but projection {} \
                 could not apply its event at position {parked} and parked it as poison \
                 (see `forum replay list`)",
                key.1, key.0
            )));
        }
        Ok(())
    }

    /// Waits until the follower `key` has reached `position`; returns
    /// whether Postgres had to be polled for it.
    async fn reach(&self, key: Key, position: u64, deadline: Instant) -> Result<bool> {
        let mut rx = self.sender(key).subscribe();
        let mut polls = 0u32;
        while *rx.borrow_and_update() < position {
            // Announcements normally arrive within milliseconds; the
            // poll is the safety net for one that was missed.
            let wait = Duration::from_millis(if polls == 0 { 20 } else { 100 });
            tokio::select! {
                _ = rx.changed() => {}
                _ = tokio::time::sleep(wait) => {
                    polls += 1;
                    self.poll(key).await?;
                }
                _ = tokio::time::sleep_until(deadline) => {
                    return Err(ApiError::Unavailable(format!(
                        "{} has not reached {} position {position}",
                        key.0, key.1
                    )));
                }
            }
        }
        Ok(polls > 0)
    }

    async fn wait_until(
        &self,
        positions: &[(Service, u64)],
        own: bool,
        deadline: Instant,
    ) -> Result<()> {
        for &(service, position) in positions {
            let names = self
                .inner
                .readers
                .get(&service)
                .cloned()
                .unwrap_or_default();
            for name in names {
                self.wait_for((name, service), position, own, deadline)
                    .await?;
            }
        }
        Ok(())
    }

    /// Waits until every projection reading each log has reached its
    /// position.
    ///
    /// # Errors
    /// 503 `unavailable` when a projection does not get there in time;
    /// 500 `internal` ([`ApiError::Internal`], its cause naming the
    /// projection and position) when a projection parked an event of the
    /// write as poison: the write is stored but cannot be shown.
    pub async fn wait(&self, positions: &[(Service, u64)]) -> Result<()> {
        let deadline = Instant::now() + self.inner.timeout;
        let (derived, own) = split(positions);
        self.wait_until(&own, true, deadline).await?;
        // The notifications head a posts or chat reply names is its batch's:
        // an event parked there is another write's, not this one's.
        self.wait_until(&derived, false, deadline).await
    }

    /// [`Watermarks::wait`], then, for a write that may cause
    /// notifications: when its service derived them in the write's own
    /// transaction (the reply names the notifications log's head then),
    /// waits until the notifications projection has reached that head
    /// (applied inline too, so at once); else waits until the deriver has
    /// processed the written posts and chat positions, and the
    /// notifications projection has reached the head of the notifications
    /// log as it was then. All within one read timeout.
    ///
    /// # Errors
    /// 503 `unavailable` when a projection or the deriver does not get
    /// there in time; 500 `internal` as [`Watermarks::wait`] when a
    /// projection parked an event of the write (an event the deriver
    /// parked is not an error: the write is shown, without its
    /// notification).
    pub async fn wait_notified(&self, positions: &[(Service, u64)]) -> Result<()> {
        let deadline = Instant::now() + self.inner.timeout;
        let (derived, own) = split(positions);
        self.wait_until(&own, true, deadline).await?;
        if !derived.is_empty() {
            // Derived in the write's own transaction: its notifications are
            // at or below that head (which may be another write's).
            return self.wait_until(&derived, false, deadline).await;
        }
        let mut derived = false;
        for &(service, position) in positions {
            if deriver::SOURCES.contains(&service) {
                self.wait_for((NOTIFIER, service), position, false, deadline)
                    .await?;
                derived = true;
            }
        }
        if !derived {
            return Ok(());
        }
        let head: i64 =
            sqlx::query_scalar("select coalesce(max(position), 0) from notifications.events")
                .fetch_one(&self.inner.pool)
                .await?;
        // The head may be another write's: its parked events are not this
        // write's error.
        self.wait_until(&[(Service::Notifications, head as u64)], false, deadline)
            .await
    }
}

/// Positions in the logs: (log, position).
type Positions = Vec<(Service, u64)>;

/// Splits a reply's positions into the notifications head that a posts or
/// chat service names when it derived notifications in the write's
/// transaction, and the positions the write itself wrote (all of them for
/// the notifications service's own writes).
fn split(positions: &[(Service, u64)]) -> (Positions, Positions) {
    let wrote_elsewhere = positions.iter().any(|(s, _)| *s != Service::Notifications);
    positions
        .iter()
        .partition(|(s, _)| wrote_elsewhere && *s == Service::Notifications)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_posts_reply_splits_off_its_derived_notifications_head_and_a_notifications_reply_keeps_its_own(
    ) {
        let (derived, own) = split(&[(Service::Posts, 7), (Service::Notifications, 3)]);
        assert_eq!(derived, vec![(Service::Notifications, 3)]);
        assert_eq!(own, vec![(Service::Posts, 7)]);
        let (derived, own) = split(&[(Service::Notifications, 5)]);
        assert!(derived.is_empty());
        assert_eq!(own, vec![(Service::Notifications, 5)]);
    }
}

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

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use forum_commands::notifications::deriver;
use forum_events::{subject::Subjects, Service};
use forum_projections::Progress;
use futures::StreamExt;
use sqlx::PgPool;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::error::{ApiError, Result};

type Key = (&'static str, Service);

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

    /// Waits until the follower `key` has reached `position`.
    async fn wait_for(&self, key: Key, position: u64, deadline: Instant) -> Result<()> {
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
        Ok(())
    }

    async fn wait_until(&self, positions: &[(Service, u64)], deadline: Instant) -> Result<()> {
        for &(service, position) in positions {
            let names = self
                .inner
                .readers
                .get(&service)
                .cloned()
                .unwrap_or_default();
            for name in names {
                self.wait_for((name, service), position, deadline).await?;
            }
        }
        Ok(())
    }

    /// Waits until every projection reading each log has reached its
    /// position.
    ///
    /// # Errors
    /// 503 `unavailable` when a projection does not get there in time.
    pub async fn wait(&self, positions: &[(Service, u64)]) -> Result<()> {
        self.wait_until(positions, Instant::now() + self.inner.timeout)
            .await
    }

    /// [`Watermarks::wait`], then, for a write that may cause
    /// notifications: waits until the deriver has processed the written
    /// posts and chat positions, and the notifications projection has
    /// reached the head of the notifications log as it was then. All
    /// within one read timeout.
    ///
    /// # Errors
    /// 503 `unavailable` when a projection or the deriver does not get
    /// there in time.
    pub async fn wait_notified(&self, positions: &[(Service, u64)]) -> Result<()> {
        let deadline = Instant::now() + self.inner.timeout;
        self.wait_until(positions, deadline).await?;
        let mut derived = false;
        for &(service, position) in positions {
            if deriver::SOURCES.contains(&service) {
                self.wait_for((NOTIFIER, service), position, deadline)
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
        self.wait_until(&[(Service::Notifications, head as u64)], deadline)
            .await
    }
}

//! The feed: this gateway's one subscription per event subject, turned into
//! a gap-free, ordered sequence per log.
//!
//! Core NATS delivers at most once, so the feed checks every event's
//! position against the next one it expects: an older one is a duplicate
//! and dropped, a newer one means something was missed and the gap is read
//! from the log in Postgres first. A periodic look at the logs' heads
//! catches a lost message at the tail. Positions are gap-free and commit
//! in order (see the store crate), so this is exact.

use std::sync::Arc;
use std::time::Duration;

use forum_events::{subject::Subjects, RecordedEvent, Service};
use forum_store::log;
use futures::StreamExt;
use sqlx::PgPool;
use tokio::sync::watch;

use super::cursor::{Cursor, LOGS};
use super::frames::{self, Effect};
use super::hub::Hub;
use crate::error::{ApiError, Result};

/// The logs the feed follows: every one (the cursor's, plus `auth` for
/// logouts); what it shows of each is decided in `frames::render`.
const FOLLOWED: [Service; Service::ALL.len()] = Service::ALL;

/// Events read from Postgres in one go when filling a gap.
const FILL_BATCH: i64 = 1_000;

/// Subscribes to every followed subject and reads the logs' heads: the
/// feed starts right after them.
///
/// # Errors
/// When NATS refuses a subscription or Postgres is unreachable.
pub async fn start(
    pool: PgPool,
    nats: async_nats::Client,
    subjects: &Subjects,
) -> Result<(Feed, Cursor)> {
    let mut subs = Vec::with_capacity(FOLLOWED.len());
    for s in FOLLOWED {
        subs.push(
            nats.subscribe(subjects.events_of(s))
                .await
                .map_err(|e| ApiError::Unavailable(e.to_string()))?,
        );
    }
    let heads = heads(&pool).await?;
    let mut cursor = Cursor::default();
    for s in LOGS {
        cursor.set(s, heads[index(s)]);
    }
    let feed = Feed {
        pool,
        subs,
        next: heads.map(|h| h + 1),
    };
    Ok((feed, cursor))
}

fn index(s: Service) -> usize {
    FOLLOWED.iter().position(|f| *f == s).unwrap_or(0)
}

async fn heads(pool: &PgPool) -> Result<[u64; 4]> {
    let row: (i64, i64, i64, i64) = sqlx::query_as(
        "select (select coalesce(max(position), 0) from auth.events),
                (select coalesce(max(position), 0) from posts.events),
                (select coalesce(max(position), 0) from chat.events),
                (select coalesce(max(position), 0) from notifications.events)",
    )
    .fetch_one(pool)
    .await?;
    Ok([row.0 as u64, row.1 as u64, row.2 as u64, row.3 as u64])
}

/// A started feed, to be run by [`Feed::run`].
pub struct Feed {
    pool: PgPool,
    subs: Vec<async_nats::Subscriber>,
    next: [u64; 4],
}

impl Feed {
    /// Delivers events to `hub` until `stop` turns true; looks at the logs'
    /// heads every `check` for messages NATS lost.
    pub async fn run(mut self, hub: Arc<Hub>, check: Duration, mut stop: watch::Receiver<bool>) {
        let mut messages = futures::stream::select_all(std::mem::take(&mut self.subs));
        let mut tick = tokio::time::interval(check);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                m = messages.next() => match m {
                    Some(msg) => match RecordedEvent::from_bytes(&msg.payload) {
                        Ok(event) => self.on_event(&hub, event).await,
                        Err(e) => tracing::warn!(subject = %msg.subject, error = %e, "undecodable event on the feed"),
                    },
                    None => break,
                },
                _ = tick.tick() => self.catch_up(&hub).await,
                _ = stop.changed() => if *stop.borrow() { break },
            }
        }
    }

    async fn on_event(&mut self, hub: &Hub, event: RecordedEvent) {
        let next = self.next[index(event.service)];
        if event.position < next {
            return;
        }
        if event.position > next {
            // Something was missed: read it from the log first.
            if let Err(e) = self.fill(hub, event.service, event.position - 1).await {
                tracing::warn!(service = %event.service, error = %e, "feed gap not filled; retrying on the next check");
                return;
            }
        }
        self.apply(hub, &event);
    }

    fn apply(&mut self, hub: &Hub, event: &RecordedEvent) {
        let effect = frames::render(event).unwrap_or_else(|e| {
            tracing::error!(service = %event.service, position = event.position,
                            event_type = %event.event_type, error = %e, "event not rendered");
            Effect::None
        });
        hub.publish(event.service, event.position, &effect);
        self.next[index(event.service)] = event.position + 1;
    }

    /// Applies the log's events from the next expected one up to `upto`.
    async fn fill(&mut self, hub: &Hub, service: Service, upto: u64) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        while self.next[index(service)] <= upto {
            let next = self.next[index(service)];
            let want = (upto - next + 1).min(FILL_BATCH as u64) as i64;
            let events = log::read_after(&mut conn, service, next - 1, want).await?;
            if events.is_empty() {
                break;
            }
            for event in &events {
                self.apply(hub, event);
            }
        }
        Ok(())
    }

    async fn catch_up(&mut self, hub: &Hub) {
        let heads = match heads(&self.pool).await {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(error = %e, "feed check failed");
                return;
            }
        };
        for s in FOLLOWED {
            let head = heads[index(s)];
            if head >= self.next[index(s)] {
                tracing::debug!(service = %s, head, "feed behind the log; filling");
                if let Err(e) = self.fill(hub, s, head).await {
                    tracing::warn!(service = %s, error = %e, "feed catch-up failed");
                }
            }
        }
    }
}

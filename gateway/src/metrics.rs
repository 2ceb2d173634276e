//! Counters served at `/metrics` in the Prometheus text format, and the
//! parked (poison) events, read from Postgres at each scrape.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;

/// How long a scrape waits for the parked events' count.
const POISON_QUERY_TIMEOUT: Duration = Duration::from_secs(2);

/// The gateway's counters; cloning shares them.
#[derive(Clone, Default)]
pub struct Metrics {
    inner: Arc<Counters>,
}

#[derive(Default)]
struct Counters {
    requests: [AtomicU64; 6],
    request_micros: AtomicU64,
    commands: AtomicU64,
    commands_unavailable: AtomicU64,
    idempotent_replays: AtomicU64,
    ws_open: AtomicU64,
    ws_frames: AtomicU64,
    ws_slow_closed: AtomicU64,
}

impl Metrics {
    /// Counts one answered request.
    pub fn request(&self, status: u16, micros: u64) {
        let class = (status / 100).min(5) as usize;
        self.inner.requests[class].fetch_add(1, Relaxed);
        self.inner.request_micros.fetch_add(micros, Relaxed);
    }

    /// Counts a command sent.
    pub fn command_sent(&self) {
        self.inner.commands.fetch_add(1, Relaxed);
    }

    /// Counts a command no service answered.
    pub fn command_unavailable(&self) {
        self.inner.commands_unavailable.fetch_add(1, Relaxed);
    }

    /// Counts an answer replayed for an Idempotency-Key.
    pub fn idempotent_replay(&self) {
        self.inner.idempotent_replays.fetch_add(1, Relaxed);
    }

    /// A socket opened (+1) or closed (-1).
    pub fn ws_open(&self, delta: i64) {
        if delta >= 0 {
            self.inner.ws_open.fetch_add(delta as u64, Relaxed);
        } else {
            self.inner.ws_open.fetch_sub(delta.unsigned_abs(), Relaxed);
        }
    }

    /// Counts frames pushed to sockets.
    pub fn ws_frames(&self, n: u64) {
        self.inner.ws_frames.fetch_add(n, Relaxed);
    }

    /// Counts a socket closed as a slow consumer.
    pub fn ws_slow_closed(&self) {
        self.inner.ws_slow_closed.fetch_add(1, Relaxed);
    }

    /// [`Metrics::render`], followed by the gauge `forum_poison_events`:
    /// events parked as poison, per follower (`projection`: a projection,
    /// or `notifier` for the notifications deriver) and `version`, for the
    /// live versions, read from `proj.poison` now (so the same on every
    /// gateway and across restarts). Without the gauge when Postgres does
    /// not answer within two seconds.
    pub async fn render_with_poison(&self, pool: &PgPool) -> String {
        let mut out = self.render();
        let counts = tokio::time::timeout(POISON_QUERY_TIMEOUT, poison_counts(pool)).await;
        match counts {
            Ok(Ok(counts)) => {
                let _ = writeln!(
                    out,
                    "# HELP forum_poison_events Events parked as poison (not applied), per live projection version and the notifications deriver."
                );
                let _ = writeln!(out, "# TYPE forum_poison_events gauge");
                for (projection, version, n) in counts {
                    let _ = writeln!(
                        out,
                        "forum_poison_events{{projection=\"{projection}\",version=\"{version}\"}} {n}"
                    );
                }
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "parked events not counted"),
            Err(_) => tracing::warn!("parked events not counted in time"),
        }
        out
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let c = &self.inner;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP forum_http_requests_total HTTP requests answered, by status class."
        );
        let _ = writeln!(out, "# TYPE forum_http_requests_total counter");
        for (i, n) in c.requests.iter().enumerate().skip(1) {
            let _ = writeln!(
                out,
                "forum_http_requests_total{{class=\"{i}xx\"}} {}",
                n.load(Relaxed)
            );
        }
        let simple: [(&str, &str, &str, &AtomicU64); 7] = [
            (
                "forum_http_request_seconds_total",
                "counter",
                "Time spent answering HTTP requests.",
                &c.request_micros,
            ),
            (
                "forum_commands_total",
                "counter",
                "Commands sent to services.",
                &c.commands,
            ),
            (
                "forum_commands_unavailable_total",
                "counter",
                "Commands no service answered in time.",
                &c.commands_unavailable,
            ),
            (
                "forum_idempotent_replays_total",
                "counter",
                "Answers replayed for an Idempotency-Key.",
                &c.idempotent_replays,
            ),
            ("forum_ws_open", "gauge", "Open WebSockets.", &c.ws_open),
            (
                "forum_ws_frames_total",
                "counter",
                "Frames pushed to WebSockets.",
                &c.ws_frames,
            ),
            (
                "forum_ws_slow_consumer_closes_total",
                "counter",
                "Sockets closed for falling behind.",
                &c.ws_slow_closed,
            ),
        ];
        for (name, kind, help, v) in simple {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            let value = v.load(Relaxed);
            if name.ends_with("_seconds_total") {
                let _ = writeln!(out, "{name} {}", value as f64 / 1e6);
            } else {
                let _ = writeln!(out, "{name} {value}");
            }
        }
        out
    }
}

/// (projection, version, parked events) for every live projection version
/// (zero included) and the notifications deriver.
async fn poison_counts(pool: &PgPool) -> Result<Vec<(String, i32, i64)>, sqlx::Error> {
    sqlx::query_as(
        "select r.projection, r.version, count(p.position)
         from proj.registry r
         left join proj.poison p using (projection, version)
         where r.state = 'live'
         group by r.projection, r.version
         union all
         select $1::text, 1, count(*) from proj.poison where projection = $1
         order by 1, 2",
    )
    .bind(forum_commands::notifications::deriver::FOLLOWER)
    .fetch_all(pool)
    .await
}

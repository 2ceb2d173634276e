//! Counters served at `/metrics` in the Prometheus text format.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

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

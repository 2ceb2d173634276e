//! The gateway's metrics: recorded through the `metrics` macros into the
//! process's recorder, and served at `/metrics` with the gauges read at
//! scrape time (see the `forum-telemetry` crate and docs/METRICS.md).

use std::time::Duration;

use forum_events::Service;
use forum_telemetry::names;

/// What became of a command the gateway sent.
#[derive(Debug, Clone, Copy)]
pub enum CommandResult {
    /// The service accepted it.
    Accepted,
    /// The service refused it (its rules, or its data).
    Rejected,
    /// No service answered in time.
    Unavailable,
}

/// Counts one answered request on `route` (its template, or
/// `unmatched`).
pub fn request(method: &str, route: &str, status: u16, took: Duration) {
    let (method, route) = (method.to_string(), route.to_string());
    metrics::counter!(names::HTTP_REQUESTS, "method" => method.clone(), "route" => route.clone(),
        "status" => status.to_string())
    .increment(1);
    metrics::histogram!(names::HTTP_DURATION, "method" => method, "route" => route)
        .record(took.as_secs_f64());
}

/// Counts a command sent to `service` and its result.
pub fn command(service: Service, result: CommandResult, took: Duration) {
    let result = match result {
        CommandResult::Accepted => "accepted",
        CommandResult::Rejected => "rejected",
        CommandResult::Unavailable => "unavailable",
    };
    metrics::counter!(names::BUS_COMMANDS, "service" => service.as_str(), "result" => result)
        .increment(1);
    metrics::histogram!(names::BUS_DURATION, "service" => service.as_str())
        .record(took.as_secs_f64());
}

/// Counts a request (or typing frame) refused by the rate limit `limit`.
pub fn rate_limited(limit: &'static str) {
    metrics::counter!(names::RATE_LIMITED, "limit" => limit).increment(1);
}

/// Counts an answer replayed for an Idempotency-Key.
pub fn idempotent_replay() {
    metrics::counter!(names::IDEMPOTENT_REPLAYS).increment(1);
}

/// A socket opened (+1) or closed (-1).
pub fn ws_open(delta: i64) {
    metrics::gauge!(names::WS_OPEN).increment(delta as f64);
}

/// Counts frames queued to sockets.
pub fn ws_frames(n: u64) {
    metrics::counter!(names::WS_FRAMES).increment(n);
}

/// Counts a socket closed with `code` (1006 when the client's
/// connection dropped without a close frame).
pub fn ws_closed(code: u16) {
    metrics::counter!(names::WS_CLOSES, "code" => code.to_string()).increment(1);
}

/// Records how many frames one resume sent.
pub fn ws_resumed(frames: u64) {
    metrics::histogram!(names::WS_RESUME_FRAMES).record(frames as f64);
}

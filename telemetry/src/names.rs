//! Every metric family the forum records, with its help text. The emitting
//! code names a family by its constant here, so a typo is a compile error.

use metrics::Unit;

/// Buckets of every duration histogram (`*_seconds`): 0.5 ms to 10 s.
pub const SECONDS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Buckets of every size histogram: 1 to 1,024 by powers of two.
pub const SIZE_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

/// 1, labelled with the build's version and the process's role.
pub const BUILD_INFO: &str = "forum_build_info";

/// Answered HTTP requests, by method, route template and status.
pub const HTTP_REQUESTS: &str = "forum_http_requests_total";
/// HTTP request durations, by method and route template.
pub const HTTP_DURATION: &str = "forum_http_request_duration_seconds";
/// Requests or typing frames refused by a rate limit, by limit.
pub const RATE_LIMITED: &str = "forum_rate_limited_total";
/// Answers replayed for an `Idempotency-Key`.
pub const IDEMPOTENT_REPLAYS: &str = "forum_idempotent_replays_total";
/// Commands the gateway sent, by service and result.
pub const BUS_COMMANDS: &str = "forum_bus_commands_total";
/// From sending a command to its answer, by service.
pub const BUS_DURATION: &str = "forum_bus_command_duration_seconds";
/// Live sockets open.
pub const WS_OPEN: &str = "forum_ws_open";
/// Frames queued to sockets.
pub const WS_FRAMES: &str = "forum_ws_frames_sent_total";
/// Sockets closed, by close code.
pub const WS_CLOSES: &str = "forum_ws_closes_total";
/// Frames sent by one resume.
pub const WS_RESUME_FRAMES: &str = "forum_ws_resume_frames";

/// Commands answered by a service, by service, command and outcome.
pub const COMMANDS: &str = "forum_commands_total";
/// From a command's arrival at its service to its answer.
pub const COMMAND_DURATION: &str = "forum_command_duration_seconds";
/// Commands decided in one transaction.
pub const BATCH_COMMANDS: &str = "forum_batch_commands";
/// A batch from its transaction's begin to its commit.
pub const BATCH_DURATION: &str = "forum_batch_duration_seconds";
/// Committed appends (group commits).
pub const APPENDS: &str = "forum_appends_total";
/// Events appended.
pub const APPENDED_EVENTS: &str = "forum_appended_events_total";
/// Events per committed append.
pub const GROUP_COMMIT_EVENTS: &str = "forum_group_commit_events";
/// Batches whose unguarded inline work failed and were tried again guarded.
pub const INLINE_FALLBACKS: &str = "forum_inline_fallbacks_total";
/// Events the outbox relay published.
pub const RELAY_PUBLISHED: &str = "forum_relay_published_total";
/// Events the notifications deriver went through, by source log.
pub const DERIVER_DERIVED: &str = "forum_deriver_derived_total";

/// Events applied by this process's projectors, by projection.
pub const PROJECTION_APPLIED: &str = "forum_projection_applied_events_total";
/// Events this process parked as poison, by projection.
pub const PROJECTION_PARKED: &str = "forum_projection_parked_total";

/// Gauges read at scrape time (see [`crate::scrape`]).
pub mod at_scrape {
    /// The Postgres pool's connections, by state.
    pub const PG_POOL: &str = "forum_pg_pool_connections";
    /// The Postgres pool's bound.
    pub const PG_POOL_MAX: &str = "forum_pg_pool_max_connections";
    /// 1 while the NATS connection is up.
    pub const NATS_CONNECTED: &str = "forum_nats_connected";
    /// NATS connections made (a reconnect adds one).
    pub const NATS_CONNECTS: &str = "forum_nats_connects_total";
    /// Committed events not yet published, by service.
    pub const RELAY_LAG_EVENTS: &str = "forum_relay_lag_events";
    /// Age of the oldest unpublished event, by service.
    pub const RELAY_LAG_SECONDS: &str = "forum_relay_lag_seconds";
    /// Events the deriver has not gone through, by source.
    pub const DERIVER_LAG_EVENTS: &str = "forum_deriver_lag_events";
    /// Age of the oldest of them, by source.
    pub const DERIVER_LAG_SECONDS: &str = "forum_deriver_lag_seconds";
    /// Events a live projection has not applied, by projection and source.
    pub const PROJECTION_LAG_EVENTS: &str = "forum_projection_lag_events";
    /// Age of the oldest of them, by projection and source.
    pub const PROJECTION_LAG_SECONDS: &str = "forum_projection_lag_seconds";
    /// Events parked as poison, by projection and version.
    pub const POISON_EVENTS: &str = "forum_poison_events";
}

/// Gives every recorded family its help text (rendered as `# HELP`).
pub(crate) fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_gauge!(
        BUILD_INFO,
        "1, labelled with the build's version and the process's role."
    );
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests answered, by method, route template and status."
    );
    describe_histogram!(
        HTTP_DURATION,
        Unit::Seconds,
        "HTTP request durations, from arrival to answer."
    );
    describe_counter!(
        RATE_LIMITED,
        "Requests (or typing frames) refused by a rate limit."
    );
    describe_counter!(
        IDEMPOTENT_REPLAYS,
        "Answers replayed for an Idempotency-Key."
    );
    describe_counter!(BUS_COMMANDS, "Commands sent to a service, by its answer.");
    describe_histogram!(
        BUS_DURATION,
        Unit::Seconds,
        "From sending a command to its answer."
    );
    describe_gauge!(WS_OPEN, "Live sockets open.");
    describe_counter!(WS_FRAMES, "Frames queued to live sockets.");
    describe_counter!(WS_CLOSES, "Live sockets closed, by close code.");
    describe_histogram!(WS_RESUME_FRAMES, "Frames sent by one resume.");
    describe_counter!(
        COMMANDS,
        "Commands answered, by service, command and outcome."
    );
    describe_histogram!(
        COMMAND_DURATION,
        Unit::Seconds,
        "From a command's arrival to its answer."
    );
    describe_histogram!(BATCH_COMMANDS, "Commands decided in one transaction.");
    describe_histogram!(
        BATCH_DURATION,
        Unit::Seconds,
        "A batch, from its transaction's begin to its commit."
    );
    describe_counter!(APPENDS, "Committed appends (group commits).");
    describe_counter!(APPENDED_EVENTS, "Events appended.");
    describe_histogram!(GROUP_COMMIT_EVENTS, "Events per committed append.");
    describe_counter!(
        INLINE_FALLBACKS,
        "Batches whose unguarded inline work failed and were tried again guarded."
    );
    describe_counter!(
        RELAY_PUBLISHED,
        "Events the outbox relay published to JetStream."
    );
    describe_counter!(
        DERIVER_DERIVED,
        "Events the notifications deriver went through."
    );
    describe_counter!(
        PROJECTION_APPLIED,
        "Events applied by this process, by projection."
    );
    describe_counter!(
        PROJECTION_PARKED,
        "Events this process parked as poison, by projection."
    );
}

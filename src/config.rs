//! The command line. Every option also reads an environment variable.

use std::net::SocketAddr;

use clap::{Args, Parser, Subcommand};

/// Real-time forum backend: event-sourced CQRS on NATS and Postgres.
#[derive(Debug, Parser)]
#[command(name = "forum", version)]
pub struct Cli {
    /// Connections and settings shared by every role.
    #[command(flatten)]
    pub common: Common,
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Settings shared by every role.
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// Postgres connection URL (the database is created by `migrate` and `up`).
    #[arg(
        long,
        env = "FORUM_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/forum",
        global = true
    )]
    pub database_url: String,
    /// NATS server URL (JetStream enabled).
    #[arg(
        long,
        env = "FORUM_NATS_URL",
        default_value = "nats://127.0.0.1:4222",
        global = true
    )]
    pub nats_url: String,
    /// Prefix of every NATS subject and of the stream name: systems with
    /// different prefixes share a NATS server without seeing each other.
    #[arg(long, env = "FORUM_PREFIX", default_value = "forum", global = true, value_parser = parse_prefix)]
    pub prefix: String,
    /// Most Postgres connections this process opens.
    #[arg(
        long,
        env = "FORUM_DB_MAX_CONNECTIONS",
        default_value_t = 32,
        global = true
    )]
    pub db_max_connections: u32,
}

/// Settings of the gateway role.
#[derive(Debug, Clone, Args)]
pub struct GatewayArgs {
    /// Address the HTTP API listens on (port 0 picks a free port; the
    /// chosen address is printed as `listening on ADDR`).
    #[arg(long, env = "FORUM_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Secret that signs session tokens (HS256). Every gateway of one
    /// system needs the same one. Never logged.
    #[arg(long, env = "FORUM_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// Production mode: refuse to start without FORUM_JWT_SECRET, and mark
    /// the session cookie Secure.
    #[arg(long, env = "FORUM_PRODUCTION", default_value_t = false)]
    pub production: bool,
    /// How long to wait for a command service's reply, in milliseconds.
    #[arg(long, env = "FORUM_COMMAND_TIMEOUT_MS", default_value_t = 5_000)]
    pub command_timeout_ms: u64,
    /// How long a write waits for the read models to reflect it, in milliseconds.
    #[arg(long, env = "FORUM_READ_TIMEOUT_MS", default_value_t = 5_000)]
    pub read_timeout_ms: u64,
    /// Frames queued per WebSocket before it is closed as a slow consumer (4008).
    #[arg(long, env = "FORUM_WS_QUEUE", default_value_t = 1024)]
    pub ws_queue: usize,
    /// WebSocket ping interval in milliseconds; a socket silent for a whole
    /// interval after a ping is closed.
    #[arg(long, env = "FORUM_WS_PING_MS", default_value_t = 20_000)]
    pub ws_ping_ms: u64,
    /// Largest client WebSocket frame in bytes; a larger one closes the socket (1009).
    #[arg(long, env = "FORUM_WS_MAX_MESSAGE", default_value_t = 4096)]
    pub ws_max_message: usize,
    /// Most events a WebSocket resume replays; an older cursor answers `resumed: false`.
    #[arg(long, env = "FORUM_WS_RESUME_MAX", default_value_t = 10_000)]
    pub ws_resume_max: u64,
    /// Presence heartbeat between gateways in milliseconds; a gateway silent
    /// for 2.5 heartbeats is taken for dead and its users go offline.
    #[arg(long, env = "FORUM_PRESENCE_HEARTBEAT_MS", default_value_t = 10_000)]
    pub presence_heartbeat_ms: u64,
    /// Most WebSockets one user holds on one gateway process; one more
    /// upgrade is refused with 429 before it happens.
    #[arg(long, env = "FORUM_WS_MAX_PER_USER", default_value_t = 16)]
    pub ws_max_per_user: usize,
    /// Comma-separated origins (`https://forum.example,http://localhost:3000`)
    /// that may open a cookie-authenticated WebSocket besides the gateway's
    /// own (its Host over http or https); other origins get 403.
    #[arg(long, env = "FORUM_ALLOWED_ORIGINS", default_value = "")]
    pub allowed_origins: String,
    /// How long one WebSocket frame may take to be written to the client's
    /// connection, in milliseconds; a client not reading is closed with 4008.
    #[arg(long, env = "FORUM_WS_WRITE_TIMEOUT_MS", default_value_t = 10_000)]
    pub ws_write_timeout_ms: u64,
}

/// Settings of the command services.
#[derive(Debug, Clone, Args)]
pub struct ServiceArgs {
    /// How long a session (and its token) lasts, in seconds.
    #[arg(long, env = "FORUM_SESSION_TTL_SECS", default_value_t = 7 * 24 * 3600)]
    pub session_ttl_secs: u64,
    /// Most commands decided and appended in one transaction.
    #[arg(long, env = "FORUM_MAX_BATCH", default_value_t = 256)]
    pub max_batch: usize,
    /// Fault injection for tests: abort the process right after the first
    /// commit of events, before they are published or answered.
    #[arg(
        long,
        env = "FORUM_TEST_ABORT_AFTER_COMMIT",
        default_value_t = false,
        hide = true
    )]
    pub abort_after_commit: bool,
}

/// What to run.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Migrate, then run every role in this process (the single-machine default).
    Up {
        /// Gateway settings.
        #[command(flatten)]
        gateway: GatewayArgs,
        /// Service settings.
        #[command(flatten)]
        service: ServiceArgs,
    },
    /// Create the database, apply the migrations, create the JetStream stream.
    Migrate,
    /// Run the HTTP API and live feed.
    Gateway(GatewayArgs),
    /// Run one command service (several instances share the load).
    Service {
        /// `auth`, `posts`, `chat` or `notifications` (the latter also
        /// derives notifications, one instance at a time).
        name: String,
        /// Service settings.
        #[command(flatten)]
        service: ServiceArgs,
    },
    /// Rebuild, list and verify projections (see docs/REPLAY.md).
    Replay {
        /// What to do.
        #[command(subcommand)]
        command: crate::replay_cli::ReplayCommand,
    },
    /// Run the projectors that keep the read models current.
    Projector {
        /// Only these projections (default: all).
        #[arg(long = "only")]
        only: Vec<String>,
    },
}

fn parse_prefix(s: &str) -> Result<String, String> {
    if !s.is_empty()
        && s.len() <= 32
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        Ok(s.to_string())
    } else {
        Err("1 to 32 of letters, digits, '_' and '-'".into())
    }
}

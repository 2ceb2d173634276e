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
    /// NATS server URL (JetStream enabled), or a cluster's seed list
    /// separated by commas.
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
    /// NATS user (with FORUM_NATS_PASSWORD); `nats.conf` has one per role,
    /// with only the subjects that role needs. None: connect anonymously.
    #[arg(long, env = "FORUM_NATS_USER", global = true)]
    pub nats_user: Option<String>,
    /// Password of FORUM_NATS_USER. Never logged.
    #[arg(
        long,
        env = "FORUM_NATS_PASSWORD",
        hide_env_values = true,
        global = true
    )]
    pub nats_password: Option<Secret>,
    /// A NATS `.creds` file (JWT and NKey seed), instead of a user and password.
    #[arg(long, env = "FORUM_NATS_CREDS", global = true)]
    pub nats_creds: Option<std::path::PathBuf>,
    /// Address to serve this process's `/metrics` on (port 0 picks one and
    /// prints `metrics on ADDR`). A command service or the projectors have
    /// no other; the gateway also serves `/metrics` on its own port. Unset:
    /// no separate listener.
    #[arg(long, env = "FORUM_METRICS_LISTEN", global = true)]
    pub metrics_listen: Option<SocketAddr>,
}

impl Cli {
    /// The role this command runs, for `forum_build_info` and the name of
    /// its exported spans (`forum-ROLE`).
    pub fn role(&self) -> String {
        match &self.command {
            Command::Up { .. } => "all".into(),
            Command::Migrate => "migrate".into(),
            Command::Gateway(_) => "gateway".into(),
            Command::Service { name, .. } => format!("service-{name}"),
            Command::Projector { .. } => "projector".into(),
            Command::Replay { .. } => "replay".into(),
        }
    }
}

impl Common {
    /// The NATS credentials configured.
    ///
    /// # Errors
    /// A user without a password (or the other way round), or both a user
    /// and a creds file.
    pub fn nats_credentials(&self) -> Result<forum_store::setup::NatsCredentials, String> {
        use forum_store::setup::NatsCredentials;
        match (&self.nats_user, &self.nats_password, &self.nats_creds) {
            (None, None, None) => Ok(NatsCredentials::None),
            (Some(user), Some(password), None) => Ok(NatsCredentials::UserPassword {
                user: user.clone(),
                password: password.0.clone(),
            }),
            (None, None, Some(path)) => Ok(NatsCredentials::CredsFile(path.clone())),
            (_, _, Some(_)) => Err(
                "give FORUM_NATS_CREDS or FORUM_NATS_USER and FORUM_NATS_PASSWORD, not both".into(),
            ),
            _ => Err("FORUM_NATS_USER and FORUM_NATS_PASSWORD go together".into()),
        }
    }
}

/// A secret setting: its `Debug` shows nothing of it.
#[derive(Clone)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\"***\"")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_string()))
    }
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
    /// Rate limits on or off (`on`/`off`, `true`/`false`). Off only for
    /// benchmarks and tests: limits are what keeps a script from flooding.
    #[arg(long, env = "FORUM_RATE_LIMITS", default_value = "on", action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub rate_limits: bool,
    /// Reads (GET: API, web page) per client address per minute.
    #[arg(long, env = "FORUM_RATE_READ_PER_MIN", default_value_t = 600)]
    pub rate_read_per_min: u32,
    /// Reads per client address allowed at once.
    #[arg(long, env = "FORUM_RATE_READ_BURST", default_value_t = 240)]
    pub rate_read_burst: u32,
    /// Writes (POST, PUT, PATCH, DELETE but register and login) per client
    /// address per minute.
    #[arg(long, env = "FORUM_RATE_WRITE_PER_MIN", default_value_t = 120)]
    pub rate_write_per_min: u32,
    /// Writes per client address allowed at once.
    #[arg(long, env = "FORUM_RATE_WRITE_BURST", default_value_t = 60)]
    pub rate_write_burst: u32,
    /// Registrations and logins per client address per minute.
    #[arg(long, env = "FORUM_RATE_AUTH_PER_MIN", default_value_t = 10)]
    pub rate_auth_per_min: u32,
    /// Registrations and logins per client address allowed at once.
    #[arg(long, env = "FORUM_RATE_AUTH_BURST", default_value_t = 10)]
    pub rate_auth_burst: u32,
    /// WebSocket upgrades per client address per minute.
    #[arg(long, env = "FORUM_RATE_WS_PER_MIN", default_value_t = 30)]
    pub rate_ws_per_min: u32,
    /// WebSocket upgrades per client address allowed at once.
    #[arg(long, env = "FORUM_RATE_WS_BURST", default_value_t = 30)]
    pub rate_ws_burst: u32,
    /// Authenticated writes per user per minute (on top of the address's).
    #[arg(long, env = "FORUM_RATE_USER_WRITE_PER_MIN", default_value_t = 60)]
    pub rate_user_write_per_min: u32,
    /// Authenticated writes per user allowed at once.
    #[arg(long, env = "FORUM_RATE_USER_WRITE_BURST", default_value_t = 30)]
    pub rate_user_write_burst: u32,
    /// Comma-separated IPs and CIDRs of reverse proxies whose
    /// `X-Forwarded-For` names the client (the right-most untrusted entry);
    /// from any other peer the header is ignored.
    #[arg(long, env = "FORUM_TRUSTED_PROXIES", default_value = "")]
    pub trusted_proxies: String,
    /// Time a client has to send a request's headers, in milliseconds,
    /// counted from when the connection waits for a request; it also closes
    /// kept-alive connections idle that long.
    #[arg(long, env = "FORUM_HEADER_TIMEOUT_MS", default_value_t = 10_000)]
    pub header_timeout_ms: u64,
    /// Time a client has to send a request's body after its headers, in
    /// milliseconds (a late JSON body is 408 and the connection closes).
    #[arg(long, env = "FORUM_BODY_TIMEOUT_MS", default_value_t = 30_000)]
    pub body_timeout_ms: u64,
    /// A kept-alive connection without a request for this long is closed,
    /// in milliseconds (at most the header timeout).
    #[arg(long, env = "FORUM_IDLE_TIMEOUT_MS", default_value_t = 5_000)]
    pub idle_timeout_ms: u64,
    /// Most connections (WebSockets included) this gateway serves at once;
    /// beyond it new connections wait in the listen backlog.
    #[arg(long, env = "FORUM_MAX_CONNECTIONS", default_value_t = 20_000)]
    pub max_connections: usize,
    /// PEM certificate chain: with FORUM_TLS_KEY, the gateway serves HTTPS
    /// (and wss) only, and the session cookie is Secure.
    #[arg(long, env = "FORUM_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// PEM private key of FORUM_TLS_CERT.
    #[arg(long, env = "FORUM_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
    /// How often expired Idempotency-Key answers (24 h) are deleted, in
    /// milliseconds.
    #[arg(long, env = "FORUM_IDEMPOTENCY_SWEEP_MS", default_value_t = 300_000)]
    pub idempotency_sweep_ms: u64,
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
    /// Batches of one service instance under way at once: with 2, the next
    /// batch begins its transaction and waits for the append lock while
    /// the current one holds it.
    #[arg(long, env = "FORUM_BATCHES_IN_FLIGHT", default_value_t = 1)]
    pub batches_in_flight: usize,
    /// Most password hashes (registrations, logins) waiting for a hashing
    /// thread in this process; more are refused at once with 503 and
    /// Retry-After.
    #[arg(long, env = "FORUM_HASH_QUEUE", default_value_t = forum_commands::auth::password::DEFAULT_QUEUE)]
    pub hash_queue: usize,
    /// Apply the read models of the service's log in the transaction that
    /// appends to it (one commit per write); `false` leaves them all to the
    /// projectors (an answer then waits for one more commit).
    #[arg(long, env = "FORUM_INLINE_PROJECTIONS", default_value_t = true, action = clap::ArgAction::Set)]
    pub inline_projections: bool,
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

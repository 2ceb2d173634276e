//! The command line.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

/// Loads the forum over loopback and measures it against the floors of its
/// own parts, measured in the same run. Prints a table and writes a JSON
/// file; never fails on a figure.
#[derive(Debug, Parser)]
#[command(
    name = "forum-bench",
    version,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    /// A process the suite starts itself (hidden).
    #[command(subcommand)]
    pub internal: Option<Internal>,
    /// Scenarios to run, in order (`all`: every one).
    #[arg(required = true, value_enum)]
    pub scenarios: Vec<Scenario>,
    /// Where to write the JSON results.
    #[arg(long, default_value = "bench-results.json")]
    pub json: PathBuf,
    /// The `forum` binary to start (default: `forum` next to this binary,
    /// i.e. the same target directory).
    #[arg(long, env = "FORUM_BENCH_FORUM_BIN")]
    pub forum_bin: Option<PathBuf>,
    /// Load an already running system at this base URL (loopback only)
    /// instead of starting one. Floors are still measured against the local
    /// Postgres and NATS; R1 always starts its own.
    #[arg(long, env = "FORUM_BENCH_TARGET")]
    pub target: Option<String>,
    /// Postgres server (no database name; loopback only). The suite creates
    /// and drops its own databases on it.
    #[arg(
        long,
        env = "FORUM_BENCH_PG",
        default_value = "postgres://postgres@127.0.0.1:5432"
    )]
    pub pg: String,
    /// NATS server with JetStream (loopback only).
    #[arg(
        long,
        env = "FORUM_BENCH_NATS",
        default_value = "nats://127.0.0.1:4222"
    )]
    pub nats: String,
    /// W1: seconds of load per part (posts, comments, messages), on the
    /// forum and as long again on the CRUD floor.
    #[arg(long, default_value_t = 15)]
    pub duration: u64,
    /// W1: concurrent connections (to the forum, and to the CRUD floor).
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// W2: seconds of sequential create-post.
    #[arg(long, default_value_t = 10)]
    pub w2_duration: u64,
    /// L2: posts per second while 10,000 sockets listen.
    #[arg(long, default_value_t = 10.0)]
    pub l2_rate: f64,
    /// R1: events written to the logs before the rebuild.
    #[arg(long, default_value_t = 1_000_000)]
    pub r1_events: usize,
    /// R1: mean length of runs of one event kind in the posts log (1: kinds
    /// interleaved at random, as in a live forum; more: a diagnostic of how
    /// much the projections gain from runs).
    #[arg(long, default_value_t = 1)]
    pub r1_run_length: u64,
    /// R1: the rebuild is stopped after this many seconds (its progress
    /// until then is reported).
    #[arg(long, default_value_t = 1800)]
    pub r1_timeout: u64,
    /// Seconds spent on each floor measurement.
    #[arg(long, default_value_t = 2.0)]
    pub floor_secs: f64,
    /// A smoke run: every count and duration about ten times smaller.
    #[arg(long)]
    pub quick: bool,
    /// `RUST_LOG` of the started `forum` (its logs go to stderr).
    #[arg(long, env = "FORUM_BENCH_FORUM_LOG", default_value = "warn")]
    pub forum_log: String,
    /// `FORUM_DB_MAX_CONNECTIONS` (per role, as the tests run it) of the
    /// started `forum`; 0 keeps the binary's own default (32 per role, and
    /// `up` runs several roles: more than a Postgres allowing 100
    /// connections to everyone can give). W1's CRUD floor gets a pool of
    /// the same size.
    #[arg(long, default_value_t = 8)]
    pub db_max_connections: u32,
    /// Scrape the system's gateway `/metrics` once a second during the
    /// whole run and write an SVG dashboard to PATH (the raw series go to
    /// PATH with the extension `.json`).
    ///
    /// Each scenario's system is scraped while it runs (R1 starts no
    /// gateway: none then); a failed scrape is skipped. The panels, with
    /// time in seconds since the run's start and the scenarios marked: HTTP
    /// requests/s by route (top 6; the scrapes' own `/metrics` left out),
    /// HTTP p50 and p99 latency (from the histogram's bucket increase
    /// between two scrapes), commands/s by service, commands per batch and
    /// events per group commit (averages per interval), projection lag in
    /// events by projection (max over sources), sockets open, command p99
    /// latency by service. One GET a second, answered by the system under
    /// load (its at-scrape gauges cost it a few Postgres reads).
    #[arg(long, value_name = "PATH")]
    pub metrics_plot: Option<PathBuf>,
}

/// The processes the suite starts from its own binary.
#[derive(Debug, Subcommand)]
pub enum Internal {
    /// W1's CRUD floor: a plain axum + sqlx server, one INSERT per request
    /// (the `crud` module), started by W1 itself.
    #[command(name = "crud-floor", hide = true)]
    CrudFloor(crate::crud::server::Config),
}

/// One scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum Scenario {
    /// Writes under 64 connections: posts, comments, messages, against a
    /// plain axum + sqlx server loaded the same way.
    W1,
    /// Single create-post latency on one connection.
    W2,
    /// Live latency of messages among 1,000 sockets.
    L1,
    /// Broadcast of posts to 10,000 sockets.
    L2,
    /// Gateway memory per idle socket, 10,000 sockets.
    L3,
    /// Resume storm: 2,000 sockets reconnect with their cursors.
    L4,
    /// Rebuild of every projection from one million events.
    R1,
    /// Every scenario above, in that order.
    All,
}

impl Scenario {
    /// The scenarios named on the command line, `all` expanded, without
    /// repeats, in the given order.
    pub fn expand(list: &[Scenario]) -> Vec<Scenario> {
        let every = [
            Scenario::W1,
            Scenario::W2,
            Scenario::L1,
            Scenario::L2,
            Scenario::L3,
            Scenario::L4,
            Scenario::R1,
        ];
        let mut out = Vec::new();
        for s in list {
            let add: &[Scenario] = if *s == Scenario::All {
                &every
            } else {
                std::slice::from_ref(s)
            };
            for a in add {
                if !out.contains(a) {
                    out.push(*a);
                }
            }
        }
        out
    }

    /// The name printed in the results.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::W1 => "W1",
            Scenario::W2 => "W2",
            Scenario::L1 => "L1",
            Scenario::L2 => "L2",
            Scenario::L3 => "L3",
            Scenario::L4 => "L4",
            Scenario::R1 => "R1",
            Scenario::All => "all",
        }
    }
}

/// The sizes of every scenario, from the command line (`--quick` divides).
#[derive(Debug, Clone)]
pub struct Plan {
    /// W1: load per part.
    pub w1_duration: Duration,
    /// W1: connections.
    pub w1_connections: usize,
    /// W2: load.
    pub w2_duration: Duration,
    /// L1: users; each holds `l1_sockets_per_user` sockets.
    pub l1_users: usize,
    /// L1: sockets per user.
    pub l1_sockets_per_user: usize,
    /// L1: messages per second.
    pub l1_rate: f64,
    /// L1: load.
    pub l1_duration: Duration,
    /// L2: users.
    pub l2_users: usize,
    /// L2: sockets per user.
    pub l2_sockets_per_user: usize,
    /// L2: posts per second.
    pub l2_rate: f64,
    /// L2: posts created.
    pub l2_posts: usize,
    /// L3: users.
    pub l3_users: usize,
    /// L3: sockets per user.
    pub l3_sockets_per_user: usize,
    /// L3: how long the idle sockets are held (covers a server ping).
    pub l3_hold: Duration,
    /// L4: users.
    pub l4_users: usize,
    /// L4: sockets per user.
    pub l4_sockets_per_user: usize,
    /// L4: events happening while the sockets are away.
    pub l4_events: usize,
    /// R1: events in the logs.
    pub r1_events: usize,
    /// R1: mean run length of one event kind.
    pub r1_run_length: u64,
    /// R1: the longest the rebuild may take.
    pub r1_timeout: Duration,
    /// Each floor measurement.
    pub floor: Duration,
}

impl Plan {
    /// The plan of `cli`.
    pub fn of(cli: &Cli) -> Plan {
        let q = if cli.quick { 10 } else { 1 };
        let secs = |s: u64| Duration::from_secs((s / q as u64).max(2));
        Plan {
            w1_duration: secs(cli.duration),
            w1_connections: cli.connections.max(1),
            w2_duration: secs(cli.w2_duration),
            l1_users: 500 / q,
            l1_sockets_per_user: 2,
            l1_rate: 100.0,
            l1_duration: secs(10),
            l2_users: 100 / q,
            l2_sockets_per_user: 100,
            l2_rate: cli.l2_rate.max(0.1),
            l2_posts: (100 / q).max(5),
            l3_users: 100 / q,
            l3_sockets_per_user: 100,
            l3_hold: Duration::from_secs(if cli.quick { 3 } else { 25 }),
            l4_users: 100 / q,
            l4_sockets_per_user: 20,
            l4_events: 50,
            r1_events: (cli.r1_events / q).max(1_000),
            r1_run_length: cli.r1_run_length.max(1),
            r1_timeout: Duration::from_secs(cli.r1_timeout.max(15)),
            floor: Duration::from_secs_f64((cli.floor_secs / q as f64).clamp(0.2, 60.0)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hidden_crud_floor_subcommand_parses_apart_from_the_scenarios() {
        let cli = Cli::try_parse_from(["forum-bench", "w1", "--quick"]).expect("scenarios");
        assert!(cli.internal.is_none());
        assert_eq!(cli.scenarios, vec![Scenario::W1]);
        let cli = Cli::try_parse_from([
            "forum-bench",
            "crud-floor",
            "--database-url",
            "postgres://127.0.0.1/x",
            "--db-max-connections",
            "3",
        ])
        .expect("subcommand");
        match cli.internal {
            Some(Internal::CrudFloor(c)) => assert_eq!(c.db_max_connections, 3),
            None => panic!("no subcommand"),
        }
        assert!(Cli::try_parse_from(["forum-bench"]).is_err());
    }

    #[test]
    fn the_metrics_plot_option_takes_a_path_and_is_off_by_default() {
        let cli = Cli::try_parse_from(["forum-bench", "w2"]).expect("no plot");
        assert_eq!(cli.metrics_plot, None);
        let cli = Cli::try_parse_from(["forum-bench", "w1", "l1", "--metrics-plot", "out/m.svg"])
            .expect("plot");
        assert_eq!(cli.metrics_plot, Some(PathBuf::from("out/m.svg")));
        assert!(Cli::try_parse_from(["forum-bench", "w1", "--metrics-plot"]).is_err());
    }

    #[test]
    fn all_expands_in_order_without_repeats() {
        assert_eq!(
            Scenario::expand(&[Scenario::R1, Scenario::All]),
            vec![
                Scenario::R1,
                Scenario::W1,
                Scenario::W2,
                Scenario::L1,
                Scenario::L2,
                Scenario::L3,
                Scenario::L4
            ]
        );
        assert_eq!(
            Scenario::expand(&[Scenario::W2, Scenario::W2]),
            vec![Scenario::W2]
        );
    }
}

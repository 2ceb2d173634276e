//! The system under load: a `forum up` child on a fresh database and a
//! fresh NATS prefix (or an already running system given by URL), its
//! clean-up and its resident memory (now and at its peak); the open-files
//! limit; loopback checks; CPU and Postgres counters. The helpers that
//! start a child server and create or drop a database are shared with the
//! CRUD floor ([`crate::crud`]).

use std::io::{BufRead, BufReader};
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use forum_events::subject::Subjects;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection, PgPool};

use crate::{Error, Result};

/// Where everything is, from the command line.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Postgres server URL without a database name.
    pub pg: String,
    /// NATS URL.
    pub nats: String,
    /// The `forum` binary.
    pub forum_bin: PathBuf,
    /// An already running system to load, instead of starting one.
    pub target: Option<String>,
    /// `RUST_LOG` of the child.
    pub forum_log: String,
    /// `FORUM_DB_MAX_CONNECTIONS` of the child (per role), when set.
    pub db_max_connections: Option<u32>,
    /// This binary, which runs the CRUD floor as `forum-bench crud-floor`.
    pub bench_bin: PathBuf,
}

impl Settings {
    /// The Postgres connections the started `forum` has for its work:
    /// `FORUM_DB_MAX_CONNECTIONS` when set, else the binary's default, 32
    /// (its log listeners hold one more each, for good).
    pub fn forum_work_connections(&self) -> u32 {
        self.db_max_connections.unwrap_or(32)
    }
}

/// What a scenario needs started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// `forum up` (every role), unless a target is given.
    Up,
    /// Only `forum migrate` (the rebuild scenario runs `forum replay` itself).
    Migrate,
}

/// One scenario's environment: its own database (`forum_bench_<id>`), its
/// own NATS prefix, the system's base URL, a pool on the database for
/// floors and checks, and the child process when one was started.
pub struct Env {
    /// The settings it was made with.
    pub settings: Settings,
    /// A random id, also in user names, subjects and table names.
    pub run_id: String,
    /// The database name.
    pub db_name: String,
    /// The database URL.
    pub db_url: String,
    /// The NATS prefix of the started system (and of the floor subjects).
    pub prefix: String,
    /// The HTTP base URL (`http://127.0.0.1:PORT`); empty after `Migrate`.
    pub base: String,
    /// A pool on the database (one connection kept open, up to 4).
    pub pool: PgPool,
    /// Whether the loaded system was started here (its database is then
    /// this one).
    pub spawned: bool,
    child: Option<Child>,
    stream_created: bool,
}

impl Env {
    /// Creates the database and starts what `start` asks for.
    ///
    /// # Errors
    /// When Postgres refuses, the binary is missing or does not start
    /// within 60 s.
    pub async fn start(settings: &Settings, start: Start) -> Result<Env> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let run_id = id[..10].to_string();
        let db_name = format!("forum_bench_{run_id}");
        let db_url = format!("{}/{}", settings.pg.trim_end_matches('/'), db_name);
        create_database(&settings.pg, &db_name).await?;
        // Few and short-lived: the machine's Postgres has 100 connections
        // for every user of it.
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .min_connections(1)
            .idle_timeout(Duration::from_secs(5))
            .acquire_timeout(Duration::from_secs(30))
            .connect(&db_url)
            .await?;
        let mut env = Env {
            settings: settings.clone(),
            prefix: format!("bench{run_id}"),
            run_id,
            db_name,
            db_url,
            base: String::new(),
            pool,
            spawned: false,
            child: None,
            stream_created: false,
        };
        let result = match (start, &settings.target) {
            (Start::Up, Some(target)) => {
                env.base = target.trim_end_matches('/').to_string();
                Ok(())
            }
            (Start::Up, None) => env.spawn_up().await,
            (Start::Migrate, _) => env.migrate().await,
        };
        match result {
            Ok(()) => Ok(env),
            Err(e) => {
                env.shutdown().await;
                Err(e)
            }
        }
    }

    /// The `forum` command with this environment's database, NATS, prefix
    /// and secret.
    pub fn forum_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.settings.forum_bin);
        cmd.args(args)
            .env("FORUM_DATABASE_URL", &self.db_url)
            .env("FORUM_NATS_URL", &self.settings.nats)
            .env("FORUM_PREFIX", &self.prefix)
            .env("FORUM_JWT_SECRET", format!("bench-secret-{}", self.run_id))
            .env("RUST_LOG", &self.settings.forum_log)
            .env("FORUM_RATE_LIMITS", "off")
            // L2 and L3 open 100 sockets per user, L4 20: the per-user cap
            // is an abuse limit, like the rate limits turned off above.
            .env("FORUM_WS_MAX_PER_USER", "100")
            .stdin(Stdio::null())
            .stderr(Stdio::inherit());
        if let Some(n) = self.settings.db_max_connections {
            cmd.env("FORUM_DB_MAX_CONNECTIONS", n.to_string());
        }
        cmd
    }

    async fn migrate(&mut self) -> Result<()> {
        self.stream_created = true;
        let mut cmd = tokio::process::Command::from(self.forum_command(&["migrate"]));
        cmd.stdout(Stdio::null()).kill_on_drop(true);
        let status = tokio::time::timeout(Duration::from_secs(120), cmd.status())
            .await
            .map_err(|_| Error::Timeout("forum migrate".into()))?
            .map_err(|e| spawn_error(&self.settings.forum_bin, e))?;
        if status.success() {
            Ok(())
        } else {
            Err(Error::Protocol(format!(
                "forum migrate exited with {status}"
            )))
        }
    }

    async fn spawn_up(&mut self) -> Result<()> {
        self.stream_created = true;
        let mut child = self
            .forum_command(&["up", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| spawn_error(&self.settings.forum_bin, e))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| Error::Protocol("no stdout".into()))?;
        self.child = Some(child);
        self.spawned = true;
        let addr = listening_addr(stdout, "forum up").await?;
        self.base = format!("http://{addr}");
        Ok(())
    }

    /// The process id of the started `forum`, if one was started.
    pub fn forum_pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// The command name the kernel gives the `forum` processes (its file
    /// name, at most 15 characters), to account their CPU time.
    pub fn forum_comm(&self) -> String {
        self.settings
            .forum_bin
            .file_name()
            .map(|n| n.to_string_lossy().chars().take(15).collect())
            .unwrap_or_else(|| "forum".into())
    }

    /// A CPU sample (see [`Cpu::sample`]).
    pub fn cpu(&self) -> Cpu {
        Cpu::sample(&self.forum_comm())
    }

    /// The WebSocket base URL (`ws://…`).
    pub fn ws_base(&self) -> String {
        ws_base(&self.base)
    }

    /// Stops the child (SIGTERM, then SIGKILL after 10 s), drops the
    /// database and deletes the JetStream stream. Best effort: failures are
    /// printed, not returned.
    pub async fn shutdown(mut self) {
        if let Some(child) = self.child.take() {
            stop_child(child).await;
        }
        self.pool.close().await;
        drop_database(&self.settings.pg, &self.db_name).await;
        if self.stream_created {
            if let Ok(client) = async_nats::connect(&self.settings.nats).await {
                let js = async_nats::jetstream::new(client);
                let _ = forum_store::setup::delete_stream(&js, &Subjects::new(&self.prefix)).await;
            }
        }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        // Only when `shutdown` was not reached (a panic): never leave the
        // child running.
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

async fn admin_connection(pg: &str) -> Result<PgConnection> {
    Ok(PgConnection::connect(&format!("{}/postgres", pg.trim_end_matches('/'))).await?)
}

/// Creates the database `name` on the server `pg`.
///
/// # Errors
/// When Postgres refuses.
pub(crate) async fn create_database(pg: &str, name: &str) -> Result<()> {
    let mut admin = admin_connection(pg).await?;
    sqlx::query(&format!("create database {name}"))
        .execute(&mut admin)
        .await?;
    let _ = admin.close().await;
    Ok(())
}

/// Drops the database `name` (connections to it are ended). Best effort:
/// a failure is printed.
pub(crate) async fn drop_database(pg: &str, name: &str) {
    match admin_connection(pg).await {
        Ok(mut admin) => {
            if let Err(e) = sqlx::query(&format!("drop database if exists {name} with (force)"))
                .execute(&mut admin)
                .await
            {
                eprintln!("bench: could not drop database {name}: {e}");
            }
            let _ = admin.close().await;
        }
        Err(e) => eprintln!("bench: could not drop database {name}: {e}"),
    }
}

/// The address a started server prints as `listening on ADDR` on its
/// stdout, which is then drained for the child's whole life (so it never
/// blocks on a full pipe).
///
/// # Errors
/// [`Error::Timeout`] when `what` prints nothing of the kind within 60 s.
pub(crate) async fn listening_addr(stdout: ChildStdout, what: &str) -> Result<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(addr) = line.strip_prefix("listening on ") {
                let _ = tx.send(addr.trim().to_string());
            }
        }
    });
    tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(60)))
        .await
        .map_err(|e| Error::Protocol(e.to_string()))?
        .map_err(|_| Error::Timeout(format!("{what} did not print `listening on`")))
}

/// Stops a child: SIGTERM, then SIGKILL after 10 s.
pub(crate) async fn stop_child(mut child: Child) {
    // SAFETY: sending a signal to our own child by its pid.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
        }
    }
}

fn spawn_error(bin: &std::path::Path, e: std::io::Error) -> Error {
    Error::Config(format!(
        "cannot run {}: {e} (build it with `cargo build --release -p forum`, or pass --forum-bin)",
        bin.display()
    ))
}

/// `ws://…` for an `http://…` base (and `wss` for `https`).
pub fn ws_base(http_base: &str) -> String {
    if let Some(rest) = http_base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = http_base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        http_base.to_string()
    }
}

/// Raises the soft limit on open files to the hard limit (at most 2^20);
/// children inherit it. Returns (soft before, soft now, hard).
///
/// # Errors
/// When the limit cannot be read or set.
pub fn raise_nofile() -> Result<(u64, u64, u64)> {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain system calls on a local struct.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    // `rlim_t` is not `u64` on every platform.
    #[allow(clippy::unnecessary_cast)]
    let (before, hard) = (r.rlim_cur as u64, r.rlim_max as u64);
    let want = hard.min(1 << 20);
    if before < want {
        let new = libc::rlimit {
            rlim_cur: want as libc::rlim_t,
            rlim_max: r.rlim_max,
        };
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &new) } != 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        return Ok((before, want, hard));
    }
    Ok((before, before, hard))
}

/// The resident memory of process `pid`, in KiB.
///
/// # Errors
/// When `/proc/<pid>/status` cannot be read or has no `VmRSS`.
pub fn rss_kib(pid: u32) -> Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    parse_vmrss(&text).ok_or_else(|| Error::Protocol(format!("no VmRSS for pid {pid}")))
}

/// The peak resident memory of process `pid` since it started (`VmHWM`),
/// in KiB.
///
/// # Errors
/// When `/proc/<pid>/status` cannot be read or has no `VmHWM`.
pub fn peak_rss_kib(pid: u32) -> Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    parse_status_kib(&text, "VmHWM")
        .ok_or_else(|| Error::Protocol(format!("no VmHWM for pid {pid}")))
}

/// The `VmRSS` of a `/proc/<pid>/status` text, in KiB.
pub fn parse_vmrss(status: &str) -> Option<u64> {
    parse_status_kib(status, "VmRSS")
}

/// The field `name` (`VmRSS`, `VmHWM`, …) of a `/proc/<pid>/status` text,
/// in KiB.
pub fn parse_status_kib(status: &str, name: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// The host of a URL (`scheme://user@host:port/path`), without brackets.
pub fn url_host(url: &str) -> Option<&str> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split(']').next()?
    } else {
        host_port.split(':').next()?
    };
    (!host.is_empty()).then_some(host)
}

/// Whether a URL points at this machine's loopback interface.
pub fn is_loopback(url: &str) -> bool {
    match url_host(url) {
        Some("localhost") => true,
        Some(h) => h.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback()),
        None => false,
    }
}

/// Refuses a URL that is not on loopback.
///
/// # Errors
/// [`Error::Config`] naming `what`.
pub fn require_loopback(what: &str, url: &str) -> Result<()> {
    if is_loopback(url) {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "{what} {url:?} is not on loopback; the suite only loads this machine"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vmrss_is_read_in_kib() {
        let status = "Name:\tforum\nVmPeak:\t  9000 kB\nVmRSS:\t   41236 kB\nThreads: 5\n";
        assert_eq!(parse_vmrss(status), Some(41236));
        assert_eq!(parse_vmrss("Name: x\n"), None);
        let status = "VmHWM:\t  52000 kB\nVmRSS:\t   19000 kB\n";
        assert_eq!(parse_status_kib(status, "VmHWM"), Some(52000));
        assert_eq!(parse_status_kib(status, "VmRSS"), Some(19000));
        assert_eq!(parse_status_kib(status, "VmHW"), None);
    }

    #[test]
    fn only_loopback_urls_are_accepted() {
        assert!(is_loopback("http://127.0.0.1:8080"));
        assert!(is_loopback("postgres://postgres@127.0.0.1:5432"));
        assert!(is_loopback("nats://localhost:4222"));
        assert!(is_loopback("http://[::1]:80/api"));
        assert!(is_loopback("127.0.0.2"));
        assert!(!is_loopback("http://10.0.0.1:8080"));
        assert!(!is_loopback("http://example.org"));
        assert!(!is_loopback("http://127.0.0.1.example.org/"));
        assert!(!is_loopback(""));
        assert_eq!(url_host("postgres://u:p@[::1]:5432/db"), Some("::1"));
    }

    #[test]
    fn websocket_base_follows_the_http_scheme() {
        assert_eq!(ws_base("http://127.0.0.1:9"), "ws://127.0.0.1:9");
        assert_eq!(ws_base("https://localhost"), "wss://localhost");
    }
}

/// CPU time consumed so far, in clock ticks: by the loaded server's
/// processes (the forum's, or the CRUD floor's), this process, Postgres,
/// NATS, and the whole machine.
#[derive(Debug, Clone)]
pub struct Cpu {
    at: Instant,
    /// The name of the loaded server's group (`forum`, `CRUD server`).
    label: &'static str,
    server: u64,
    bench: u64,
    postgres: u64,
    nats: u64,
    machine_busy: u64,
}

impl Cpu {
    /// Reads `/proc`: processes named `forum_comm` (the `forum` binary's
    /// file name, as the kernel shortens it), this process, `postgres` and
    /// `nats-server` processes, and the machine's busy time. Unreadable
    /// entries count as zero.
    pub fn sample(forum_comm: &str) -> Cpu {
        Cpu::sample_as("forum", forum_comm)
    }

    /// As [`Cpu::sample`], for a loaded server named `label` whose
    /// processes the kernel names `comm` (the forum's processes then count
    /// as `other`).
    pub fn sample_as(label: &'static str, server_comm: &str) -> Cpu {
        let me = std::process::id();
        let mut cpu = Cpu {
            at: Instant::now(),
            label,
            server: 0,
            bench: 0,
            postgres: 0,
            nats: 0,
            machine_busy: std::fs::read_to_string("/proc/stat")
                .ok()
                .and_then(|s| parse_machine_busy(&s))
                .unwrap_or(0),
        };
        let comm: String = server_comm.chars().take(15).collect();
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return cpu;
        };
        for entry in dir.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            let Some((name, ticks)) = parse_proc_stat(&stat) else {
                continue;
            };
            if pid == me {
                cpu.bench += ticks;
            } else if name == comm {
                cpu.server += ticks;
            } else if name == "postgres" {
                cpu.postgres += ticks;
            } else if name == "nats-server" {
                cpu.nats += ticks;
            }
        }
        cpu
    }

    /// CPU used since `earlier`, in percent of one core, by group: `forum`
    /// (or the label of [`Cpu::sample_as`]), `bench`, `postgres`, `nats`,
    /// `other` (the rest of the machine: other processes, interrupts).
    pub fn since(&self, earlier: &Cpu) -> Vec<(&'static str, f64)> {
        // SAFETY: a plain sysconf query.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        let secs = self.at.duration_since(earlier.at).as_secs_f64().max(1e-3);
        let pct = |a: u64, b: u64| a.saturating_sub(b) as f64 / hz / secs * 100.0;
        let groups = [
            (self.label, pct(self.server, earlier.server)),
            ("bench", pct(self.bench, earlier.bench)),
            ("postgres", pct(self.postgres, earlier.postgres)),
            ("nats", pct(self.nats, earlier.nats)),
        ];
        let known: f64 = groups.iter().map(|(_, p)| p).sum();
        let machine = pct(self.machine_busy, earlier.machine_busy);
        let mut out = groups.to_vec();
        out.push(("other", (machine - known).max(0.0)));
        out
    }
}

/// (command name, user + system ticks) of a `/proc/<pid>/stat` line.
pub fn parse_proc_stat(stat: &str) -> Option<(&str, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = &stat[open + 1..close];
    let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    // Fields after the name start at field 3 (state); utime is 14, stime 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((name, utime + stime))
}

/// Busy ticks of the machine from `/proc/stat` (user, nice, system, irq,
/// softirq, steal).
pub fn parse_machine_busy(stat: &str) -> Option<u64> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let get = |i: usize| v.get(i).copied().unwrap_or(0);
    Some(get(0) + get(1) + get(2) + get(5) + get(6) + get(7))
}

#[cfg(test)]
mod cpu_tests {
    use super::*;

    #[test]
    fn proc_stat_lines_give_name_and_ticks() {
        let line = "4242 (forum main) S 1 4242 4242 0 -1 4194560 2000 0 0 0 150 37 0 0 20 0 9 0 100 1000 200";
        assert_eq!(parse_proc_stat(line), Some(("forum main", 187)));
        assert_eq!(parse_proc_stat("garbage"), None);
    }

    #[test]
    fn machine_busy_time_leaves_idle_and_iowait_out() {
        let stat = "cpu  100 5 50 9000 40 3 2 1 0 0\ncpu0 1 1 1 1\n";
        assert_eq!(parse_machine_busy(stat), Some(161));
    }
}

/// The name of the transactions counter in [`PgStats::per`].
pub const TRANSACTIONS: &str = "transactions";

/// Counters of one database from `pg_stat_database`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PgStats {
    /// Committed transactions.
    pub commits: i64,
    /// Rows inserted.
    pub inserted: i64,
    /// Rows updated.
    pub updated: i64,
    /// Rows fetched by index scans.
    pub fetched: i64,
    /// Rows read by sequential scans of read-model tables (`proj_*`).
    pub seq_read: i64,
    /// (table, sequential scans, rows they read) of every read-model table.
    pub seq_tables: Vec<(String, i64, i64)>,
}

impl PgStats {
    /// Samples the counters of the environment's database. Postgres
    /// publishes a busy backend's counters up to a second late, and the
    /// last second of a backend that then goes idle only after 10 s idle
    /// (Postgres 15 and later): sample 11 s after the load for exact
    /// figures (W1 does).
    ///
    /// # Errors
    /// Database failure.
    pub async fn sample(env: &Env) -> Result<PgStats> {
        Self::sample_db(&env.pool, &env.db_name).await
    }

    /// Samples the counters of the database `db_name`, through `pool` (a
    /// pool on that database), as [`PgStats::sample`].
    ///
    /// # Errors
    /// Database failure.
    pub async fn sample_db(pool: &PgPool, db_name: &str) -> Result<PgStats> {
        // The server is shared: a full connection table is worth a retry.
        let mut last = None;
        for _ in 0..5 {
            match Self::sample_once(pool, db_name).await {
                Ok(s) => return Ok(s),
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        Err(last.unwrap_or_else(|| Error::Timeout("pg_stat_database".into())))
    }

    async fn sample_once(pool: &PgPool, db_name: &str) -> Result<PgStats> {
        let (commits, inserted, updated, fetched): (i64, i64, i64, i64) = sqlx::query_as(
            "select xact_commit, tup_inserted, tup_updated, tup_fetched
             from pg_stat_database where datname = $1",
        )
        .bind(db_name)
        .fetch_one(pool)
        .await?;
        let seq_tables: Vec<(String, i64, i64)> = sqlx::query_as(
            "select schemaname || '.' || relname, coalesce(seq_scan, 0), coalesce(seq_tup_read, 0)
             from pg_stat_user_tables where schemaname like 'proj\\_%'",
        )
        .fetch_all(pool)
        .await?;
        Ok(PgStats {
            commits,
            inserted,
            updated,
            fetched,
            seq_read: seq_tables.iter().map(|t| t.2).sum(),
            seq_tables,
        })
    }

    /// The read-model table whose sequential scans read the most rows since
    /// `earlier`, as a note; `None` when none was scanned.
    pub fn most_seq_scanned(&self, earlier: &PgStats) -> Option<String> {
        self.seq_tables
            .iter()
            .map(|(t, scans, rows)| {
                let before = earlier.seq_tables.iter().find(|e| &e.0 == t);
                let (s0, r0) = before.map_or((0, 0), |e| (e.1, e.2));
                (t, scans - s0, rows - r0)
            })
            .filter(|(_, _, rows)| *rows > 0)
            .max_by_key(|(_, _, rows)| *rows)
            .map(|(t, scans, rows)| {
                format!(
                    "most rows read by sequential scans: {t}, {scans} scans reading {rows} rows"
                )
            })
    }

    /// The counters of `self` minus `earlier`, each divided by `n`.
    pub fn per(&self, earlier: &PgStats, n: u64) -> [(&'static str, f64); 5] {
        let d = |a: i64, b: i64| (a - b) as f64 / n.max(1) as f64;
        [
            (TRANSACTIONS, d(self.commits, earlier.commits)),
            ("rows inserted", d(self.inserted, earlier.inserted)),
            ("rows updated", d(self.updated, earlier.updated)),
            ("rows fetched", d(self.fetched, earlier.fetched)),
            (
                "read-model rows seq-scanned",
                d(self.seq_read, earlier.seq_read),
            ),
        ]
    }
}

//! The CRUD floor of W1: a plain axum + sqlx server doing one INSERT per
//! request, the thing the forum must beat. W1 loads it exactly as it loads
//! the forum (same users' tokens, same connection count, same duration,
//! same bodies, in the same run) and reports the forum's requests/s and p99
//! against it.
//!
//! It runs as its own process, `forum-bench crud-floor` (a hidden
//! subcommand of this very binary, so it is always built and in step with
//! the suite), on a fresh database of its own, `forum_bench_<id>_crud`,
//! with a pool as large as the forum's work connections
//! (`--db-max-connections`): its CPU is accounted apart from the forum's
//! and the bench's (the processes named like this binary other than the
//! bench itself), and its Postgres work is read from its own
//! `pg_stat_database` row.
//!
//! # Layout
//! - [`server`]: the server itself (command line, routes, handlers,
//!   schema).
//! - [`CrudFloor`] (here): the suite's side: the database, the child process,
//!   its counters, its clean-up.

pub mod server;

use std::process::{Child, Stdio};
use std::time::Duration;

use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;

use crate::system::{self, Cpu, PgStats, Settings};
use crate::{Error, Result};

/// The name of the CRUD server's group in CPU figures.
pub const CPU_LABEL: &str = "CRUD server";

/// A started CRUD floor: its base URL, its database and its process.
pub struct CrudFloor {
    /// The HTTP base URL (`http://127.0.0.1:PORT`).
    pub base: String,
    /// Its database (`forum_bench_<id>_crud`).
    pub db_name: String,
    /// The size of its pool.
    pub connections: u32,
    pg: String,
    comm: String,
    /// One connection on its database, for the counters.
    pool: PgPool,
    child: Option<Child>,
}

impl CrudFloor {
    /// Creates the database `forum_bench_<run_id>_crud` and starts the
    /// server on it, on a free loopback port.
    ///
    /// # Errors
    /// When Postgres refuses, the child cannot be started or does not print
    /// its address within 60 s (what was created is then removed).
    pub async fn start(settings: &Settings, run_id: &str) -> Result<CrudFloor> {
        let db_name = format!("forum_bench_{run_id}_crud");
        let db_url = format!("{}/{}", settings.pg.trim_end_matches('/'), db_name);
        system::create_database(&settings.pg, &db_name).await?;
        let pool = match PgPoolOptions::new()
            .max_connections(1)
            .idle_timeout(Duration::from_secs(5))
            .acquire_timeout(Duration::from_secs(30))
            .connect_lazy(&db_url)
        {
            Ok(pool) => pool,
            Err(e) => {
                system::drop_database(&settings.pg, &db_name).await;
                return Err(e.into());
            }
        };
        let connections = settings.forum_work_connections();
        let comm = settings
            .bench_bin
            .file_name()
            .map(|n| n.to_string_lossy().chars().take(15).collect())
            .unwrap_or_else(|| "forum-bench".into());
        let mut floor = CrudFloor {
            base: String::new(),
            db_name,
            connections,
            pg: settings.pg.clone(),
            comm,
            pool,
            child: None,
        };
        let spawned = std::process::Command::new(&settings.bench_bin)
            .arg(server::SUBCOMMAND)
            .args(["--listen", "127.0.0.1:0", "--database-url", &db_url])
            .args(["--db-max-connections", &connections.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn();
        let started = match spawned {
            Ok(mut child) => {
                let stdout = child.stdout.take();
                floor.child = Some(child);
                match stdout {
                    Some(out) => system::listening_addr(out, "forum-bench crud-floor").await,
                    None => Err(Error::Protocol("no stdout".into())),
                }
            }
            Err(e) => Err(Error::Config(format!(
                "cannot run {} {}: {e}",
                settings.bench_bin.display(),
                server::SUBCOMMAND
            ))),
        };
        match started {
            Ok(addr) => {
                floor.base = format!("http://{addr}");
                Ok(floor)
            }
            Err(e) => {
                floor.shutdown().await;
                Err(e)
            }
        }
    }

    /// A CPU sample, the CRUD server's processes as the loaded server.
    pub fn cpu(&self) -> Cpu {
        Cpu::sample_as(CPU_LABEL, &self.comm)
    }

    /// The counters of its database.
    ///
    /// # Errors
    /// Database failure.
    pub async fn pg_stats(&self) -> Result<PgStats> {
        PgStats::sample_db(&self.pool, &self.db_name).await
    }

    /// Stops the server and drops its database. Best effort: failures are
    /// printed, not returned.
    pub async fn shutdown(mut self) {
        if let Some(child) = self.child.take() {
            system::stop_child(child).await;
        }
        self.pool.close().await;
        system::drop_database(&self.pg, &self.db_name).await;
    }
}

impl Drop for CrudFloor {
    fn drop(&mut self) {
        // Only when `shutdown` was not reached: never leave the child running.
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

//! Rebuilding projections from the event logs, listing their versions and
//! verifying a rebuilt version against another.
//!
//! A rebuild fills a new version (its own schema, its own checkpoints from
//! zero) beside the live one while readers keep using the live views. It
//! catches up in large batches, reading the next batch while the current one
//! is applied. Once it is within a small lag of every source log's head it
//! takes the append lock of every source log in one transaction, applies
//! the last events, re-points the `read` views, retires the old version and
//! makes the new one live, and commits: no write can slip between the last
//! applied event and the switch. A rebuild only reads the logs.
//!
//! One rebuild of a projection runs at a time: the rebuild holds a
//! session-level advisory lock for its whole duration (released by the
//! database if the process dies). A rebuild that was interrupted leaves its
//! version in state `rebuilding` with its checkpoints; the next rebuild of
//! that projection continues it.
//!
//! An event the rebuild cannot apply is parked on the rebuilt version (see
//! [`crate::poison`]) and reported, and the rebuild goes on; the same
//! events as the live version's are normally parked, and [`verify`]
//! compares the parked events of both versions too.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use forum_events::{RecordedEvent, Service};
use forum_store::log;
use sqlx::{Connection, PgConnection, PgPool, Row};
use tokio::sync::mpsc;

use crate::error::Failure;
use crate::poison::{self, Parked, ParkedEvent};
use crate::{registry, Error, Projection, Result};

/// The advisory lock class held (session-level) by a running rebuild; the
/// second key is `hashtext(<projection>)`.
const REBUILD_LOCK_CLASS: i32 = 0x5245_4255;

/// Events applied before the rebuilt tables are first analyzed (then
/// again each time the count doubles).
const ANALYZE_FIRST: u64 = 5_000;

/// Events read per batch during the bulk catch-up, by default.
pub const DEFAULT_BATCH: i64 = 20_000;

/// How many events behind the head a rebuild may be when it takes the
/// append locks and switches, by default.
pub const DEFAULT_SWITCH_LAG: u64 = 1_000;

/// Where one source log of a projection version stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceStatus {
    /// The log.
    pub service: String,
    /// The version's checkpoint in it.
    pub checkpoint: u64,
    /// The log's last position.
    pub head: u64,
}

impl SourceStatus {
    /// Events of the log not applied yet.
    pub fn lag(&self) -> u64 {
        self.head.saturating_sub(self.checkpoint)
    }
}

/// One version of one projection, as `forum replay list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionStatus {
    /// The projection.
    pub projection: String,
    /// The version.
    pub version: u32,
    /// `live`, `rebuilding` or `retired`.
    pub state: String,
    /// Checkpoint and head per source log.
    pub sources: Vec<SourceStatus>,
    /// Row count per table of the version's schema.
    pub rows: Vec<(String, i64)>,
    /// The events parked on this version.
    pub parked: Vec<ParkedEvent>,
}

/// Every registered version of every projection, with checkpoints, lag, row
/// counts and parked events.
///
/// # Errors
/// Database failure.
pub async fn list(pool: &PgPool) -> Result<Vec<VersionStatus>> {
    let mut conn = pool.acquire().await?;
    let rows = sqlx::query(
        "select projection, version, state from proj.registry order by projection, version",
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut heads: BTreeMap<String, u64> = BTreeMap::new();
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let projection: String = r.try_get("projection")?;
        let version = r.try_get::<i32, _>("version")? as u32;
        let mut sources = Vec::new();
        for (service, checkpoint) in registry::checkpoints(&mut conn, &projection, version).await? {
            let head = match (heads.get(&service), Service::parse(&service)) {
                (Some(h), _) => *h,
                (None, Some(s)) => {
                    let h = log::head(&mut conn, s).await?;
                    heads.insert(service.clone(), h);
                    h
                }
                (None, None) => 0,
            };
            sources.push(SourceStatus {
                service,
                checkpoint,
                head,
            });
        }
        let schema = format!("proj_{projection}_v{version}");
        let mut counts = Vec::new();
        for table in schema_tables(&mut conn, &schema).await? {
            let n: i64 = sqlx::query_scalar(&format!(
                "select count(*) from {}.{}",
                ident(&schema),
                ident(&table)
            ))
            .fetch_one(&mut *conn)
            .await?;
            counts.push((table, n));
        }
        let parked = poison::list(&mut conn, Some(&projection), Some(version)).await?;
        out.push(VersionStatus {
            projection,
            version,
            state: r.try_get("state")?,
            sources,
            rows: counts,
            parked,
        });
    }
    Ok(out)
}

/// How a rebuild runs.
#[derive(Debug, Clone, Copy)]
pub struct RebuildOptions {
    /// Events read and applied per transaction during the catch-up.
    pub batch: i64,
    /// Lag (events, per log) under which the rebuild locks the logs and
    /// switches.
    pub switch_lag: u64,
}

impl Default for RebuildOptions {
    fn default() -> Self {
        RebuildOptions {
            batch: DEFAULT_BATCH,
            switch_lag: DEFAULT_SWITCH_LAG,
        }
    }
}

/// What a rebuild tells its caller while it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// The version being filled, and whether it continues an interrupted
    /// rebuild (then with the checkpoints it resumes from).
    Started {
        /// The projection.
        projection: &'static str,
        /// The version being filled.
        version: u32,
        /// The live version readers keep using meanwhile.
        live: u32,
        /// `Some(checkpoints)` when an interrupted rebuild is continued.
        resumed_from: Option<Vec<(String, u64)>>,
    },
    /// After every applied batch.
    Progress {
        /// The projection.
        projection: &'static str,
        /// Events applied so far (sum of checkpoints).
        done: u64,
        /// Events to apply (sum of log heads, as last seen).
        total: u64,
        /// Events applied by this run.
        applied: u64,
        /// Time since this run started.
        elapsed: Duration,
    },
    /// Events parked on the version being filled (they could not be
    /// applied); the rebuild goes on.
    Parked {
        /// The projection.
        projection: &'static str,
        /// The version being filled.
        version: u32,
        /// The events, with their errors.
        events: Vec<Parked>,
    },
    /// The views point at the new version; the old one is retired.
    Switched {
        /// The projection.
        projection: &'static str,
        /// The new live version.
        version: u32,
        /// The retired version.
        retired: Option<u32>,
        /// Events applied by this run.
        applied: u64,
        /// Events parked on the new version, in all (this run and any
        /// interrupted one it continued).
        parked: u64,
        /// Time this run took.
        elapsed: Duration,
    },
}

/// Rebuilds projection `p` into a new version beside the live one and
/// switches reads to it once it has caught up (see the module docs).
/// `report` is called when the rebuild starts, after every batch and after
/// the switch.
///
/// # Errors
/// [`Error::State`] when another rebuild of the projection is running;
/// database errors (the version stays `rebuilding` at its last
/// checkpoint; the next rebuild continues it). Events that cannot be
/// applied are not errors: they are parked and reported.
pub async fn rebuild(
    pool: &PgPool,
    p: Arc<dyn Projection>,
    options: RebuildOptions,
    report: &mut (dyn FnMut(Report) + Send),
) -> Result<u32> {
    let name = p.name();
    let batch = options.batch.max(1);
    let mut guard = pool.acquire().await?.detach();
    let locked: bool = sqlx::query_scalar("select pg_try_advisory_lock($1, hashtext($2))")
        .bind(REBUILD_LOCK_CLASS)
        .bind(name)
        .fetch_one(&mut guard)
        .await?;
    if !locked {
        return Err(Error::State(format!(
            "a rebuild of projection {name} is already running; wait for it to finish"
        )));
    }
    let result = rebuild_locked(pool, p, batch, options.switch_lag, report).await;
    let _ = sqlx::query("select pg_advisory_unlock($1, hashtext($2))")
        .bind(REBUILD_LOCK_CLASS)
        .bind(name)
        .execute(&mut guard)
        .await;
    let _ = guard.close().await;
    result
}

async fn rebuild_locked(
    pool: &PgPool,
    p: Arc<dyn Projection>,
    batch: i64,
    switch_lag: u64,
    report: &mut (dyn FnMut(Report) + Send),
) -> Result<u32> {
    let name = p.name();
    let live = registry::ensure_live(pool, &*p).await?;
    let (version, resumed) = prepare_version(pool, &*p).await?;
    registry::clear_error(pool, name, version).await?;
    report(Report::Started {
        projection: name,
        version,
        live,
        resumed_from: resumed,
    });
    let started = Instant::now();
    let mut applied = 0u64;
    loop {
        let mut conn = pool.acquire().await?;
        let mut heads = BTreeMap::new();
        let mut behind = false;
        for &service in p.sources() {
            heads.insert(service, log::head(&mut conn, service).await?);
        }
        let checkpoints = checkpoints_of(&mut conn, name, version).await?;
        drop(conn);
        let mut done: u64 = checkpoints.values().sum();
        let mut total: u64 = heads.values().sum();
        for &service in p.sources() {
            let from = checkpoints.get(&service).copied().unwrap_or(0);
            if heads
                .get(&service)
                .copied()
                .unwrap_or(0)
                .saturating_sub(from)
                > switch_lag
            {
                behind = true;
            }
            let mut on_batch = |n: u64, parked: Vec<Parked>| {
                done += n;
                applied += n;
                total = total.max(done);
                if !parked.is_empty() {
                    report(Report::Parked {
                        projection: name,
                        version,
                        events: parked,
                    });
                }
                report(Report::Progress {
                    projection: name,
                    done,
                    total,
                    applied,
                    elapsed: started.elapsed(),
                });
            };
            catch_up(
                pool,
                p.clone(),
                version,
                service,
                from,
                batch,
                &mut on_batch,
            )
            .await?;
        }
        if !behind {
            break;
        }
    }
    let (retired, last, parked) = switch(pool, &*p, version, batch).await?;
    applied += last;
    if !parked.is_empty() {
        report(Report::Parked {
            projection: name,
            version,
            events: parked,
        });
    }
    let mut conn = pool.acquire().await?;
    let parked = poison::list(&mut conn, Some(name), Some(version))
        .await?
        .len() as u64;
    drop(conn);
    report(Report::Switched {
        projection: name,
        version,
        retired,
        applied,
        parked,
        elapsed: started.elapsed(),
    });
    Ok(version)
}

/// Picks the version to fill: an interrupted `rebuilding` version is
/// continued (unless this build's code version is newer: then it is
/// retired and the code's version is created); otherwise the code's version
/// if it is newer than every registered one, else the highest registered
/// version plus one. Returns it, with the checkpoints it resumes from when
/// it is continued.
async fn prepare_version(
    pool: &PgPool,
    p: &dyn Projection,
) -> Result<(u32, Option<Vec<(String, u64)>>)> {
    let name = p.name();
    let mut tx = pool.begin().await?;
    registry::lock(&mut tx, name).await?;
    let rebuilding: Option<i32> = sqlx::query_scalar(
        "select max(version) from proj.registry where projection = $1 and state = 'rebuilding'",
    )
    .bind(name)
    .fetch_one(&mut *tx)
    .await?;
    if let Some(v) = rebuilding.map(|v| v as u32) {
        if p.version() <= v {
            let cps = registry::checkpoints(&mut tx, name, v).await?;
            tx.commit().await?;
            return Ok((v, Some(cps)));
        }
        sqlx::query(
            "update proj.registry set state = 'retired' where projection = $1 and version = $2",
        )
        .bind(name)
        .bind(v as i32)
        .execute(&mut *tx)
        .await?;
    }
    let highest: Option<i32> =
        sqlx::query_scalar("select max(version) from proj.registry where projection = $1")
            .bind(name)
            .fetch_one(&mut *tx)
            .await?;
    let highest = highest.map(|v| v as u32).unwrap_or(0);
    let version = if p.version() > highest {
        p.version()
    } else {
        highest + 1
    };
    registry::create_version(&mut tx, p, version, "rebuilding").await?;
    tx.commit().await?;
    Ok((version, None))
}

async fn checkpoints_of(
    conn: &mut PgConnection,
    name: &str,
    version: u32,
) -> Result<BTreeMap<Service, u64>> {
    Ok(registry::checkpoints(conn, name, version)
        .await?
        .into_iter()
        .filter_map(|(s, p)| Service::parse(&s).map(|s| (s, p)))
        .collect())
}

/// Applies `service`'s events after `from` up to the head seen by the
/// reader, one transaction per batch; a reader task fetches (and turns into
/// events) the next batch while the current one is applied.
async fn catch_up(
    pool: &PgPool,
    p: Arc<dyn Projection>,
    version: u32,
    service: Service,
    from: u64,
    batch: i64,
    on_batch: &mut (dyn FnMut(u64, Vec<Parked>) + Send),
) -> Result<()> {
    let (sender, mut batches) = mpsc::channel::<Result<Vec<RecordedEvent>>>(2);
    let reader_pool = pool.clone();
    let reader = tokio::spawn(async move {
        let mut after = from;
        loop {
            let events = async {
                let mut conn = reader_pool.acquire().await?;
                Ok::<_, Error>(log::read_after(&mut conn, service, after, batch).await?)
            }
            .await;
            let events = match events {
                Ok(events) => events,
                Err(e) => {
                    let _ = sender.send(Err(e)).await;
                    return;
                }
            };
            let Some(last) = events.last().map(|e| e.position) else {
                return;
            };
            let full = events.len() as i64 == batch;
            after = last;
            if sender.send(Ok(events)).await.is_err() || !full {
                return;
            }
        }
    });
    let schema = p.schema(version);
    // The new tables start empty and without statistics; autovacuum comes
    // too late, and without them the planner scans whole tables for the
    // batch updates (quadratic). Analyze as they grow.
    let (mut applied, mut analyze_at) = (0u64, ANALYZE_FIRST);
    while let Some(events) = batches.recv().await {
        let events = events?;
        let parked = apply_batch(pool, &*p, version, &schema, service, &events).await?;
        on_batch(events.len() as u64, parked);
        applied += events.len() as u64;
        if applied >= analyze_at {
            for table in p.tables() {
                sqlx::query(&format!("analyze {schema}.{table}"))
                    .execute(pool)
                    .await?;
            }
            analyze_at = applied * 2;
        }
    }
    let _ = reader.await;
    Ok(())
}

/// Applies one batch right after the version's checkpoint and moves the
/// checkpoint past it, in one transaction; on a deterministic failure the
/// batch is applied again with [`poison::apply_isolating`] and the
/// culprits are parked. Returns the parked events.
async fn apply_batch(
    pool: &PgPool,
    p: &dyn Projection,
    version: u32,
    schema: &str,
    service: Service,
    events: &[RecordedEvent],
) -> Result<Vec<Parked>> {
    let (Some(first), Some(last)) = (events.first(), events.last()) else {
        return Ok(Vec::new());
    };
    let mut isolate = false;
    loop {
        let mut tx = pool.begin().await?;
        let checkpoint = lock_checkpoint(&mut tx, p.name(), version, service).await?;
        if first.position != checkpoint + 1 {
            return Err(Error::State(format!(
                "checkpoint of {} v{version} on {service} moved to {checkpoint} under the rebuild",
                p.name()
            )));
        }
        let parked = if isolate {
            poison::apply_isolating(&mut tx, p, schema, events).await?
        } else {
            match poison::apply_guarded(&mut tx, p, schema, events).await {
                Ok(()) => Vec::new(),
                Err(e) if e.failure() == Failure::Transient => return Err(e),
                Err(_) => {
                    tx.rollback().await?;
                    isolate = true;
                    continue;
                }
            }
        };
        poison::park(&mut tx, p.name(), version, &parked).await?;
        registry::set_checkpoint(&mut tx, p.name(), version, service, last.position).await?;
        tx.commit().await?;
        poison::log_parked(p.name(), version, &parked);
        return Ok(parked);
    }
}

async fn lock_checkpoint(
    tx: &mut PgConnection,
    name: &str,
    version: u32,
    service: Service,
) -> Result<u64> {
    registry::lock_checkpoint(tx, name, version, service)
        .await?
        .ok_or_else(|| {
            Error::State(format!(
                "projection {name} v{version} has no checkpoint on {service}"
            ))
        })
}

/// The switch: with every source log's append lock held, applies the last
/// events (parking the ones that cannot be applied), retires the live
/// version, makes `version` live and re-points the views, in one
/// transaction. Returns the retired version, the number of events applied
/// here and the events parked here.
async fn switch(
    pool: &PgPool,
    p: &dyn Projection,
    version: u32,
    batch: i64,
) -> Result<(Option<u32>, u64, Vec<Parked>)> {
    let name = p.name();
    let schema = p.schema(version);
    let mut sources = p.sources().to_vec();
    sources.sort();
    let mut tx = pool.begin().await?;
    for &service in &sources {
        log::lock(&mut tx, service).await?;
    }
    registry::lock(&mut tx, name).await?;
    let mut applied = 0u64;
    let mut parked = Vec::new();
    for &service in &sources {
        loop {
            let checkpoint = lock_checkpoint(&mut tx, name, version, service).await?;
            let events = log::read_after(&mut tx, service, checkpoint, batch).await?;
            let Some(last) = events.last().map(|e| e.position) else {
                break;
            };
            // Under savepoints: a failure must not lose the locks held.
            let culprits = poison::apply_isolating(&mut tx, p, &schema, &events).await?;
            poison::park(&mut tx, name, version, &culprits).await?;
            parked.extend(culprits);
            registry::set_checkpoint(&mut tx, name, version, service, last).await?;
            applied += events.len() as u64;
        }
    }
    let retired = registry::live_version(&mut tx, name).await?;
    // Retire first: at most one version may be live (`registry_one_live`).
    sqlx::query(
        "update proj.registry set state = 'retired' where projection = $1 and state = 'live'",
    )
    .bind(name)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "update proj.registry set state = 'live', switched_at = now()
         where projection = $1 and version = $2",
    )
    .bind(name)
    .bind(version as i32)
    .execute(&mut *tx)
    .await?;
    registry::point_views(&mut tx, p, version).await?;
    tx.commit().await?;
    poison::log_parked(name, version, &parked);
    Ok((retired, applied, parked))
}

/// The comparison of one table between two versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableComparison {
    /// The table.
    pub table: String,
    /// Rows in the older version.
    pub left_rows: i64,
    /// Rows in the newer version.
    pub right_rows: i64,
    /// md5 of the older version's rows (compared columns only).
    pub left_checksum: String,
    /// md5 of the newer version's rows.
    pub right_checksum: String,
    /// Rows of the older version missing from the newer one.
    pub only_left: i64,
    /// Rows of the newer version missing from the older one.
    pub only_right: i64,
    /// Columns compared.
    pub columns: Vec<String>,
    /// Columns left out: not derived from events, or present in only one
    /// version.
    pub ignored: Vec<String>,
}

impl TableComparison {
    /// Whether the two versions hold the same rows.
    pub fn same(&self) -> bool {
        self.left_rows == self.right_rows
            && self.left_checksum == self.right_checksum
            && self.only_left == 0
            && self.only_right == 0
    }
}

/// The comparison of two versions of a projection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    /// The projection.
    pub projection: String,
    /// The older version (by default the newest retired one).
    pub left: u32,
    /// The newer version (by default the live one).
    pub right: u32,
    /// One entry per table.
    pub tables: Vec<TableComparison>,
    /// The events parked on the older version.
    pub left_parked: Vec<ParkedEvent>,
    /// The events parked on the newer version.
    pub right_parked: Vec<ParkedEvent>,
}

impl Verification {
    /// Whether every table is the same in both versions and the same
    /// events (log and position) are parked on both.
    pub fn same(&self) -> bool {
        self.tables.iter().all(TableComparison::same) && self.parked_same()
    }

    /// Whether the same events (log and position) are parked on both
    /// versions: then equal tables mean both skipped the same events.
    pub fn parked_same(&self) -> bool {
        let key = |v: &[ParkedEvent]| -> Vec<(Service, u64)> {
            let mut k: Vec<_> = v
                .iter()
                .map(|e| (e.event.service, e.event.position))
                .collect();
            k.sort();
            k
        };
        key(&self.left_parked) == key(&self.right_parked)
    }
}

/// Compares two versions of `p` table by table: row count, a checksum
/// (md5 of the rows' text, in sorted order) and the rows present in only
/// one of them, on the columns both versions have minus
/// [`Projection::volatile_columns`], and the events parked on each.
/// Without `versions`, compares the newest retired version with the live
/// one.
///
/// # Errors
/// [`Error::State`] when there is nothing to compare; database errors.
pub async fn verify(
    pool: &PgPool,
    p: &dyn Projection,
    versions: Option<(u32, u32)>,
) -> Result<Verification> {
    let name = p.name();
    let mut conn = pool.acquire().await?;
    let (left, right) = match versions {
        Some(v) => v,
        None => {
            let live = registry::live_version(&mut conn, name)
                .await?
                .ok_or_else(|| Error::State(format!("projection {name} has no live version")))?;
            let retired: Option<i32> = sqlx::query_scalar(
                "select max(version) from proj.registry where projection = $1 and state = 'retired'",
            )
            .bind(name)
            .fetch_one(&mut *conn)
            .await?;
            let retired = retired.ok_or_else(|| {
                Error::State(format!(
                    "projection {name} has no retired version to compare with live v{live}; \
                     rebuild it first or name two versions"
                ))
            })?;
            (retired as u32, live)
        }
    };
    let (ls, rs) = (p.schema(left), p.schema(right));
    for schema in [&ls, &rs] {
        if schema_tables(&mut conn, schema).await?.is_empty() {
            return Err(Error::State(format!("schema {schema} has no tables")));
        }
    }
    let mut tables = Vec::new();
    for table in p.tables() {
        let lc = table_columns(&mut conn, &ls, table).await?;
        let rc = table_columns(&mut conn, &rs, table).await?;
        let volatile = p.volatile_columns();
        let columns: Vec<String> = lc
            .iter()
            .filter(|c| rc.contains(c) && !volatile.contains(&c.as_str()))
            .cloned()
            .collect();
        let mut ignored: Vec<String> = lc
            .iter()
            .chain(rc.iter())
            .filter(|c| !columns.contains(c))
            .cloned()
            .collect();
        ignored.sort();
        ignored.dedup();
        let list = columns
            .iter()
            .map(|c| ident(c))
            .collect::<Vec<_>>()
            .join(", ");
        let (lt, rt) = (
            format!("{}.{}", ident(&ls), ident(table)),
            format!("{}.{}", ident(&rs), ident(table)),
        );
        let (left_rows, left_checksum) = checksum(&mut conn, &lt, &list).await?;
        let (right_rows, right_checksum) = checksum(&mut conn, &rt, &list).await?;
        let only_left = except_count(&mut conn, &lt, &rt, &list).await?;
        let only_right = except_count(&mut conn, &rt, &lt, &list).await?;
        tables.push(TableComparison {
            table: table.to_string(),
            left_rows,
            right_rows,
            left_checksum,
            right_checksum,
            only_left,
            only_right,
            columns,
            ignored,
        });
    }
    let left_parked = poison::list(&mut conn, Some(name), Some(left)).await?;
    let right_parked = poison::list(&mut conn, Some(name), Some(right)).await?;
    Ok(Verification {
        projection: name.to_string(),
        left,
        right,
        tables,
        left_parked,
        right_parked,
    })
}

async fn checksum(conn: &mut PgConnection, table: &str, columns: &str) -> Result<(i64, String)> {
    let row = sqlx::query(&format!(
        "select count(*) as n, md5(coalesce(string_agg(r, E'\\n' order by r collate \"C\"), '')) as sum
         from (select row({columns})::text as r from {table}) t"
    ))
    .fetch_one(&mut *conn)
    .await?;
    Ok((row.try_get("n")?, row.try_get("sum")?))
}

async fn except_count(conn: &mut PgConnection, a: &str, b: &str, columns: &str) -> Result<i64> {
    Ok(sqlx::query_scalar(&format!(
        "select count(*) from (select {columns} from {a} except all select {columns} from {b}) d"
    ))
    .fetch_one(&mut *conn)
    .await?)
}

async fn schema_tables(conn: &mut PgConnection, schema: &str) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "select table_name::text from information_schema.tables
         where table_schema = $1 and table_type = 'BASE TABLE' order by 1",
    )
    .bind(schema)
    .fetch_all(&mut *conn)
    .await?)
}

async fn table_columns(conn: &mut PgConnection, schema: &str, table: &str) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "select column_name::text from information_schema.columns
         where table_schema = $1 and table_name = $2 order by ordinal_position",
    )
    .bind(schema)
    .bind(table)
    .fetch_all(&mut *conn)
    .await?)
}

/// A quoted SQL identifier.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

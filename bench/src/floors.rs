//! The floors: what the system's parts cost alone, measured in the same run
//! as the scenario: a NATS request-reply round trip (responder in this
//! process), a NATS publish→subscribe hop at about 1,000 msg/s, a
//! single-row Postgres insert commit (one connection; then commits/s with
//! 16 connections), and a `COPY` of rows shaped like the scenario's rows
//! into a scratch table (schema `bench_scratch` of the scenario's database).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use sqlx::{Connection as _, PgPool};

use crate::gen::{filler, Rng};
use crate::report::{Metric, Unit};
use crate::stats::{Samples, Summary};
use crate::system::Env;
use crate::{copy, Error, Result};

/// The shape of the rows a scenario writes, for the `COPY` floor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// A post row.
    Post,
    /// A comment row.
    Comment,
    /// A private message row.
    Message,
    /// An event-log row (~300-byte payload).
    Event,
}

impl Shape {
    /// The name printed with the floor.
    pub fn name(self) -> &'static str {
        match self {
            Shape::Post => "post",
            Shape::Comment => "comment",
            Shape::Message => "message",
            Shape::Event => "event",
        }
    }

    fn create(self, table: &str) -> String {
        match self {
            Shape::Post => format!(
                "create table {table} (id uuid primary key, author_id uuid not null,
                 author_nickname text not null, title text not null, content text not null,
                 categories text[] not null, created_at timestamptz not null, position bigint not null)"
            ),
            Shape::Comment => format!(
                "create table {table} (id uuid primary key, post_id uuid not null,
                 author_id uuid not null, author_nickname text not null, content text not null,
                 created_at timestamptz not null, position bigint not null)"
            ),
            Shape::Message => format!(
                "create table {table} (id uuid primary key, conversation_id uuid not null,
                 from_id uuid not null, to_id uuid not null, content text not null,
                 sent_at timestamptz not null, position bigint not null)"
            ),
            Shape::Event => format!(
                "create table {table} (position bigint primary key, stream_id uuid not null,
                 version integer not null, event_id uuid not null unique, event_type text not null,
                 schema_version smallint not null, payload bytea not null,
                 correlation_id uuid not null, causation_id uuid not null, actor uuid,
                 recorded_at timestamptz not null, unique (stream_id, version))"
            ),
        }
    }

    fn row(self, out: &mut String, i: usize, rng: &mut Rng) {
        let at = 1_790_000_000_000_000 + i as i64 * 1_000;
        match self {
            Shape::Post => {
                copy::uuid(out, rng.uuid());
                copy::tab(out);
                copy::uuid(out, rng.uuid());
                let _ = write!(out, "\tuser_{}\t", i % 1000);
                copy::text(out, filler(rng, 20, 80));
                copy::tab(out);
                copy::text(out, filler(rng, 100, 600));
                copy::tab(out);
                copy::words(out, &crate::gen::categories(rng));
                copy::tab(out);
                copy::time(out, at);
                let _ = write!(out, "\t{i}");
            }
            Shape::Comment => {
                copy::uuid(out, rng.uuid());
                copy::tab(out);
                copy::uuid(out, rng.uuid());
                copy::tab(out);
                copy::uuid(out, rng.uuid());
                let _ = write!(out, "\tuser_{}\t", i % 1000);
                copy::text(out, filler(rng, 40, 300));
                copy::tab(out);
                copy::time(out, at);
                let _ = write!(out, "\t{i}");
            }
            Shape::Message => {
                for _ in 0..4 {
                    copy::uuid(out, rng.uuid());
                    copy::tab(out);
                }
                copy::text(out, filler(rng, 20, 200));
                copy::tab(out);
                copy::time(out, at);
                let _ = write!(out, "\t{i}");
            }
            Shape::Event => {
                let _ = write!(out, "{}\t", i + 1);
                copy::uuid(out, rng.uuid());
                out.push_str("\t1\t");
                copy::uuid(out, rng.uuid());
                out.push_str("\tpost_created\t1\t");
                copy::bytea(out, filler(rng, 200, 400).as_bytes());
                for _ in 0..3 {
                    copy::tab(out);
                    copy::uuid(out, rng.uuid());
                }
                copy::tab(out);
                copy::time(out, at);
            }
        }
        copy::end(out);
    }
}

/// The floors measured for one scenario.
#[derive(Debug, Clone)]
pub struct Floors {
    /// NATS request-reply round trip, one requester.
    pub nats_rtt: Summary,
    /// NATS publish→subscribe hop at ~1k msg/s.
    pub nats_hop: Summary,
    /// Postgres single-row insert commit, one connection.
    pub pg_commit: Summary,
    /// Postgres single-row insert commits per second, 16 connections.
    pub pg_commits_per_s: f64,
    /// `COPY` rows per second of [`Floors::shape`] rows.
    pub copy_rows_per_s: f64,
    /// The rows copied.
    pub shape: Shape,
}

impl Floors {
    /// Round trip + commit, at the median.
    pub fn rtt_commit_p50(&self) -> f64 {
        (self.nats_rtt.p50 + self.pg_commit.p50) as f64
    }

    /// Round trip + commit, at the 99th percentile.
    pub fn rtt_commit_p99(&self) -> f64 {
        (self.nats_rtt.p99 + self.pg_commit.p99) as f64
    }

    /// The floors as rows of the table.
    pub fn metrics(&self) -> Vec<Metric> {
        vec![
            Metric::new(
                "floor: NATS req-reply p50",
                self.nats_rtt.p50 as f64,
                Unit::Micros,
            ),
            Metric::new(
                "floor: NATS req-reply p99",
                self.nats_rtt.p99 as f64,
                Unit::Micros,
            ),
            Metric::new(
                "floor: NATS pub→sub hop p50",
                self.nats_hop.p50 as f64,
                Unit::Micros,
            ),
            Metric::new(
                "floor: NATS pub→sub hop p99",
                self.nats_hop.p99 as f64,
                Unit::Micros,
            ),
            Metric::new(
                "floor: PG insert commit p50",
                self.pg_commit.p50 as f64,
                Unit::Micros,
            ),
            Metric::new(
                "floor: PG insert commit p99",
                self.pg_commit.p99 as f64,
                Unit::Micros,
            ),
            Metric::new(
                "floor: PG commits, 16 conns",
                self.pg_commits_per_s,
                Unit::PerSec,
            ),
            Metric::new(
                format!("floor: COPY {} rows", self.shape.name()),
                self.copy_rows_per_s,
                Unit::PerSec,
            ),
        ]
    }
}

/// Measures every floor, each for about `each`.
///
/// # Errors
/// When NATS or Postgres fail.
pub async fn measure(env: &Env, shape: Shape, each: Duration) -> Result<Floors> {
    let subject = format!("{}.bench.floor", env.prefix);
    let nats_rtt = nats_rtt(&env.settings.nats, &format!("{subject}.rtt"), each).await?;
    let nats_hop = nats_hop(&env.settings.nats, &format!("{subject}.hop"), each).await?;
    sqlx::query("create schema if not exists bench_scratch")
        .execute(&env.pool)
        .await?;
    let (pg_commit, pg_commits_per_s) = pg_commits(&env.pool, each).await?;
    let copy_rows_per_s = copy_rate(&env.pool, shape, each).await?;
    Ok(Floors {
        nats_rtt,
        nats_hop,
        pg_commit,
        pg_commits_per_s,
        copy_rows_per_s,
        shape,
    })
}

async fn nats_rtt(url: &str, subject: &str, each: Duration) -> Result<Summary> {
    let responder = async_nats::connect(url).await.map_err(Error::nats)?;
    let mut sub = responder
        .subscribe(subject.to_string())
        .await
        .map_err(Error::nats)?;
    responder.flush().await.map_err(Error::nats)?;
    let answer = responder.clone();
    let task = tokio::spawn(async move {
        while let Some(m) = sub.next().await {
            if let Some(reply) = m.reply {
                let _ = answer.publish(reply, m.payload).await;
            }
        }
    });
    let requester = async_nats::connect(url).await.map_err(Error::nats)?;
    let payload = Bytes::from(vec![b'x'; 256]);
    let mut samples = Samples::with_cap(500_000);
    // Warm-up, not counted.
    for _ in 0..50 {
        requester
            .request(subject.to_string(), payload.clone())
            .await
            .map_err(Error::nats)?;
    }
    let end = Instant::now() + each;
    while Instant::now() < end && samples.len() < 500_000 {
        let t = Instant::now();
        requester
            .request(subject.to_string(), payload.clone())
            .await
            .map_err(Error::nats)?;
        samples.record(t.elapsed());
    }
    task.abort();
    Ok(samples.summary())
}

async fn nats_hop(url: &str, subject: &str, each: Duration) -> Result<Summary> {
    let receiver = async_nats::connect(url).await.map_err(Error::nats)?;
    let mut sub = receiver
        .subscribe(subject.to_string())
        .await
        .map_err(Error::nats)?;
    receiver.flush().await.map_err(Error::nats)?;
    let sender = async_nats::connect(url).await.map_err(Error::nats)?;
    let base = Instant::now();
    let n = (each.as_secs_f64() * 1_000.0).max(10.0) as usize;
    let subject_owned = subject.to_string();
    let publisher = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        for _ in 0..n {
            tick.tick().await;
            let sent = base.elapsed().as_micros() as u64;
            let mut payload = sent.to_le_bytes().to_vec();
            payload.resize(256, b'x');
            if sender
                .publish(subject_owned.clone(), Bytes::from(payload))
                .await
                .is_err()
            {
                break;
            }
        }
    });
    let mut samples = Samples::with_cap(n);
    let deadline = tokio::time::Instant::now() + each + Duration::from_secs(2);
    while samples.len() < n {
        match tokio::time::timeout_at(deadline, sub.next()).await {
            Ok(Some(m)) => {
                let now = base.elapsed().as_micros() as u64;
                let mut sent = [0u8; 8];
                if m.payload.len() >= 8 {
                    sent.copy_from_slice(&m.payload[..8]);
                }
                samples.push(now.saturating_sub(u64::from_le_bytes(sent)));
            }
            _ => break,
        }
    }
    publisher.abort();
    Ok(samples.summary())
}

async fn pg_commits(pool: &PgPool, each: Duration) -> Result<(Summary, f64)> {
    sqlx::query(
        "create table if not exists bench_scratch.commit_floor (
            id uuid primary key, title text not null, content text not null,
            at timestamptz not null default now())",
    )
    .execute(pool)
    .await?;
    let insert = "insert into bench_scratch.commit_floor (id, title, content) values ($1, $2, $3)";
    let mut rng = Rng::new(11);
    let mut conn = pool.acquire().await?;
    let mut samples = Samples::with_cap(1_000_000);
    let end = Instant::now() + each;
    while Instant::now() < end {
        let (id, title, content) = (
            rng.uuid(),
            filler(&mut rng, 20, 80),
            filler(&mut rng, 100, 600),
        );
        let t = Instant::now();
        sqlx::query(insert)
            .bind(id)
            .bind(title)
            .bind(content)
            .execute(&mut *conn)
            .await?;
        samples.record(t.elapsed());
    }
    drop(conn);
    let commits = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let end = started + each;
    let mut tasks = Vec::new();
    // Dedicated connections, closed afterwards (the pool stays small).
    let options = pool.connect_options();
    for k in 0..16u64 {
        let options = (*options).clone();
        let commits = commits.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng::new(100 + k);
            let mut conn = sqlx::PgConnection::connect_with(&options).await?;
            while Instant::now() < end {
                sqlx::query(insert)
                    .bind(rng.uuid())
                    .bind(filler(&mut rng, 20, 80))
                    .bind(filler(&mut rng, 100, 600))
                    .execute(&mut conn)
                    .await?;
                commits.fetch_add(1, Ordering::Relaxed);
            }
            let _ = conn.close().await;
            Ok::<_, Error>(())
        }));
    }
    for t in tasks {
        t.await.map_err(|e| Error::Protocol(e.to_string()))??;
    }
    let rate = commits.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    sqlx::query("drop table bench_scratch.commit_floor")
        .execute(pool)
        .await?;
    Ok((samples.summary(), rate))
}

async fn copy_rate(pool: &PgPool, shape: Shape, each: Duration) -> Result<f64> {
    // About as many rows as COPY takes `each` to write (~150k rows/s here).
    let n = ((each.as_secs_f64() * 100_000.0) as usize).clamp(5_000, 400_000);
    let mut rng = Rng::new(5);
    let mut data = String::with_capacity(n * 400);
    for i in 0..n {
        shape.row(&mut data, i, &mut rng);
    }
    let table = format!("bench_scratch.copy_{}", shape.name());
    let mut conn = pool.acquire().await?;
    sqlx::query(&format!("drop table if exists {table}"))
        .execute(&mut *conn)
        .await?;
    sqlx::query(&shape.create(&table))
        .execute(&mut *conn)
        .await?;
    let t = Instant::now();
    let rows = copy::copy_in(
        &mut conn,
        &format!("copy {table} from stdin"),
        data.as_bytes(),
    )
    .await?;
    let secs = t.elapsed().as_secs_f64();
    sqlx::query(&format!("drop table {table}"))
        .execute(&mut *conn)
        .await?;
    Ok(rows as f64 / secs.max(1e-6))
}

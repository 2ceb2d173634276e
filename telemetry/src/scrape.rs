//! The `/metrics` text of a process: the families recorded since it started,
//! followed by gauges read when the scrape comes (so they hold whatever
//! instance answers, and survive restarts): the Postgres pool and the NATS
//! connection, and for the followers this process runs, how far behind
//! their log they are and how many events they parked.

use std::fmt::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use forum_events::Service;
use sqlx::PgPool;

use crate::names::at_scrape as g;
use crate::recorder;

/// How long a scrape waits for one of its Postgres reads.
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);

/// How long the gauges read from Postgres serve later scrapes.
const FRESH_FOR: Duration = Duration::from_secs(1);

/// What a process reports at scrape time besides its pool and NATS link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The outbox relays of these logs: `forum_relay_lag_*`.
    Relays(Vec<Service>),
    /// The live versions of every projection: `forum_projection_lag_*`.
    Projections,
    /// The notifications deriver: `forum_deriver_lag_*`.
    Deriver,
    /// Parked events of every live projection version, and of these
    /// followers that are not projections (the deriver's name), zero
    /// included: `forum_poison_events`.
    Poison(Vec<String>),
}

/// Renders a process's `/metrics`; cloning shares it.
#[derive(Clone)]
pub struct Exporter {
    inner: Arc<Inner>,
}

struct Inner {
    pool: PgPool,
    nats: Option<async_nats::Client>,
    sources: Vec<Source>,
    /// The last gauges read from Postgres, and when.
    cached: tokio::sync::Mutex<Option<(Instant, String)>>,
    /// How long they serve later scrapes.
    fresh_for: Duration,
}

impl Exporter {
    /// The exporter of a process with this pool and NATS connection.
    pub fn new(pool: PgPool, nats: Option<async_nats::Client>, sources: Vec<Source>) -> Self {
        Self {
            inner: Arc::new(Inner {
                pool,
                nats,
                sources,
                cached: tokio::sync::Mutex::new(None),
                fresh_for: FRESH_FOR,
            }),
        }
    }

    /// The same exporter, whose gauges read from Postgres serve later
    /// scrapes for `fresh_for` (a second by default).
    pub fn fresh_for(self, fresh_for: Duration) -> Self {
        let inner = &self.inner;
        Self {
            inner: Arc::new(Inner {
                pool: inner.pool.clone(),
                nats: inner.nats.clone(),
                sources: inner.sources.clone(),
                cached: tokio::sync::Mutex::new(None),
                fresh_for,
            }),
        }
    }

    /// The Prometheus text exposition, now. A gauge whose Postgres read
    /// fails or takes over two seconds is left out (and logged).
    pub async fn render(&self) -> String {
        let mut out = recorder::handle().map(|h| h.render()).unwrap_or_default();
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        let mut w = Text(&mut out);
        let pool = &self.inner.pool;
        let max = pool.options().get_max_connections();
        let size = pool.size();
        let idle = u32::try_from(pool.num_idle()).unwrap_or(u32::MAX).min(size);
        w.family(
            g::PG_POOL,
            "gauge",
            "The process's Postgres connections, by state.",
        );
        w.sample(g::PG_POOL, &[("state", "idle")], f64::from(idle));
        w.sample(g::PG_POOL, &[("state", "in_use")], f64::from(size - idle));
        w.family(g::PG_POOL_MAX, "gauge", "The Postgres pool's bound.");
        w.sample(g::PG_POOL_MAX, &[], f64::from(max));
        if let Some(nats) = &self.inner.nats {
            let up = nats.connection_state() == async_nats::connection::State::Connected;
            let connects = nats
                .statistics()
                .connects
                .load(std::sync::atomic::Ordering::Relaxed);
            w.family(
                g::NATS_CONNECTED,
                "gauge",
                "1 while the NATS connection is up, else 0.",
            );
            w.sample(g::NATS_CONNECTED, &[], if up { 1.0 } else { 0.0 });
            w.family(
                g::NATS_CONNECTS,
                "counter",
                "NATS connections made (a reconnect adds one).",
            );
            w.sample(g::NATS_CONNECTS, &[], connects as f64);
        }
        out.push_str(&self.read_at_scrape().await);
        out
    }

    /// The gauges of [`Source`]s: read from Postgres at most once a
    /// [`FRESH_FOR`] (or [`Exporter::fresh_for`]), however many scrapes come (`/metrics` is not rate
    /// limited: a flood of scrapes must not become a flood of queries).
    /// Concurrent scrapes wait for the one read under way.
    async fn read_at_scrape(&self) -> String {
        let mut cached = self.inner.cached.lock().await;
        if let Some((at, text)) = &*cached {
            if at.elapsed() < self.inner.fresh_for {
                return text.clone();
            }
        }
        let mut text = String::new();
        let mut w = Text(&mut text);
        for source in &self.inner.sources {
            if let Err(e) = self.source(&mut w, source).await {
                tracing::warn!(?source, error = %e, "gauges left out of this scrape");
            }
        }
        *cached = Some((Instant::now(), text.clone()));
        text
    }

    async fn source(&self, w: &mut Text<'_>, source: &Source) -> Result<(), String> {
        let pool = &self.inner.pool;
        match source {
            Source::Relays(services) => {
                let rows = timed(lags(pool, relay_sql(services))).await?;
                w.lags(
                    &rows,
                    (
                        g::RELAY_LAG_EVENTS,
                        "Committed events not yet published, by service.",
                    ),
                    (
                        g::RELAY_LAG_SECONDS,
                        "Age of the oldest unpublished event (0 when none).",
                    ),
                    |r| vec![("service", r.source.as_str())],
                );
            }
            Source::Deriver => {
                let rows = timed(lags(pool, deriver_sql())).await?;
                w.lags(
                    &rows,
                    (
                        g::DERIVER_LAG_EVENTS,
                        "Events of a log the notifications deriver has not gone through.",
                    ),
                    (
                        g::DERIVER_LAG_SECONDS,
                        "Age of the oldest of them (0 when none).",
                    ),
                    |r| vec![("source", r.source.as_str())],
                );
            }
            Source::Projections => {
                let rows = timed(lags(pool, projections_sql())).await?;
                w.lags(
                    &rows,
                    (
                        g::PROJECTION_LAG_EVENTS,
                        "Events of a log the live version of a projection has not applied.",
                    ),
                    (
                        g::PROJECTION_LAG_SECONDS,
                        "Age of the oldest of them (0 when none).",
                    ),
                    |r| {
                        vec![
                            ("projection", r.follower.as_str()),
                            ("source", r.source.as_str()),
                        ]
                    },
                );
            }
            Source::Poison(others) => {
                let rows = timed(poison_counts(pool, others)).await?;
                w.family(g::POISON_EVENTS, "gauge", "Events parked as poison (not applied), per live projection version and the notifications deriver.");
                for (projection, version, n) in rows {
                    let version = version.to_string();
                    w.sample(
                        g::POISON_EVENTS,
                        &[("projection", &projection), ("version", &version)],
                        n as f64,
                    );
                }
            }
        }
        Ok(())
    }
}

/// How far one follower is behind one log.
#[derive(Debug)]
struct Lag {
    follower: String,
    source: String,
    events: i64,
    seconds: f64,
}

/// The rows of `sql`: (follower, source log, events behind, age in seconds
/// of the first event not yet followed).
async fn lags(pool: &PgPool, sql: String) -> Result<Vec<Lag>, sqlx::Error> {
    let rows: Vec<(String, String, i64, f64)> = sqlx::query_as(&sql).fetch_all(pool).await?;
    Ok(rows
        .into_iter()
        .map(|(follower, source, events, seconds)| Lag {
            follower,
            source,
            events,
            seconds,
        })
        .collect())
}

/// `read`, or why it gave nothing within [`QUERY_TIMEOUT`].
async fn timed<T>(
    read: impl std::future::Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, String> {
    match tokio::time::timeout(QUERY_TIMEOUT, read).await {
        Ok(Ok(rows)) => Ok(rows),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no answer within two seconds".to_string()),
    }
}

/// One follower's position in one log, as a select over that log: the head
/// and the age of the next event (positions have no gaps, so it is
/// `position + 1`). `positions` selects `follower`, `position`.
fn behind(service: Service, positions: &str) -> String {
    let log = service.as_str();
    format!(
        "select f.follower, '{log}'::text as source,
                greatest(h.head - f.position, 0)::bigint as events,
                coalesce(extract(epoch from (now() - e.recorded_at))::float8, 0) as seconds
         from ({positions}) f
         cross join (select coalesce(max(position), 0) as head from {log}.events) h
         left join {log}.events e on e.position = f.position + 1"
    )
}

fn relay_sql(services: &[Service]) -> String {
    let parts: Vec<String> = services
        .iter()
        .map(|s| {
            behind(
                *s,
                &format!(
                    "select 'relay'::text as follower, published_position as position from {}.outbox",
                    s.as_str()
                ),
            )
        })
        .collect();
    parts.join(" union all ")
}

fn deriver_sql() -> String {
    let parts: Vec<String> = Service::ALL
        .iter()
        .map(|s| {
            behind(
                *s,
                &format!(
                    "select 'deriver'::text as follower, position from notifications.deriver_checkpoints
                     where service = '{}'",
                    s.as_str()
                ),
            )
        })
        .collect();
    parts.join(" union all ") + " order by 2"
}

fn projections_sql() -> String {
    let parts: Vec<String> = Service::ALL
        .iter()
        .map(|s| {
            behind(
                *s,
                &format!(
                    "select c.projection as follower, c.position from proj.checkpoints c
                     join proj.registry r on r.projection = c.projection and r.version = c.version
                     where r.state = 'live' and c.service = '{}'",
                    s.as_str()
                ),
            )
        })
        .collect();
    parts.join(" union all ") + " order by 1, 2"
}

/// (projection, version, parked events) for every live projection version
/// and each of `others` (version 1), zero included.
async fn poison_counts(
    pool: &PgPool,
    others: &[String],
) -> Result<Vec<(String, i32, i64)>, sqlx::Error> {
    sqlx::query_as(
        "select r.projection, r.version, count(p.position)
         from proj.registry r
         left join proj.poison p using (projection, version)
         where r.state = 'live'
         group by r.projection, r.version
         union all
         select o.name, 1, (select count(*) from proj.poison p where p.projection = o.name)
         from unnest($1::text[]) as o(name)
         order by 1, 2",
    )
    .bind(others)
    .fetch_all(pool)
    .await
}

/// Writes families and samples in the text exposition format.
struct Text<'a>(&'a mut String);

impl Text<'_> {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    /// The two gauges of one kind of follower's lag, `(name, help)` each:
    /// events behind, and the age in seconds of the oldest of them.
    fn lags(
        &mut self,
        rows: &[Lag],
        events: (&str, &str),
        seconds: (&str, &str),
        labels: for<'a> fn(&'a Lag) -> Vec<(&'static str, &'a str)>,
    ) {
        self.family(events.0, "gauge", events.1);
        for r in rows {
            self.sample(events.0, &labels(r), r.events as f64);
        }
        self.family(seconds.0, "gauge", seconds.1);
        for r in rows {
            self.sample(seconds.0, &labels(r), r.seconds);
        }
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        let _ = write!(self.0, "{name}");
        if !labels.is_empty() {
            let _ = write!(self.0, "{{");
            for (i, (k, v)) in labels.iter().enumerate() {
                let sep = if i == 0 { "" } else { "," };
                let _ = write!(self.0, "{sep}{k}=\"{}\"", escape(v));
            }
            let _ = write!(self.0, "}}");
        }
        let _ = writeln!(self.0, " {value}");
    }
}

/// A label value escaped for the text format.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_written_with_escaped_labels_and_plain_numbers() {
        let mut s = String::new();
        let mut w = Text(&mut s);
        w.family("x_total", "counter", "X.");
        w.sample("x_total", &[("a", "q\"uo\\te"), ("b", "line\nbreak")], 2.0);
        w.sample("x_total", &[], 0.25);
        assert_eq!(
            s,
            "# HELP x_total X.\n# TYPE x_total counter\n\
             x_total{a=\"q\\\"uo\\\\te\",b=\"line\\nbreak\"} 2\nx_total 0.25\n"
        );
    }

    #[test]
    fn the_lag_of_every_log_is_one_select_per_log() {
        let sql = projections_sql();
        assert_eq!(sql.matches(" union all ").count(), Service::ALL.len() - 1);
        for s in Service::ALL {
            assert!(
                sql.contains(&format!("from {}.events", s.as_str())),
                "{sql}"
            );
        }
    }
}

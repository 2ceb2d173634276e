//! `--metrics-plot`: scrapes the gateway's `/metrics` of the system under
//! load once a second for the whole run and keeps the series of a few
//! families ([`KEPT`]) in a [`Recording`], which [`crate::dashboard`] turns
//! into an SVG and a JSON file.
//!
//! Every scenario loads a system of its own (a new `forum up`, or the same
//! `--target`), so the scraper follows the scenarios: [`Tap::follow`] when
//! one starts (with the system's base URL), [`Tap::unfollow`] before it
//! stops. The scrapes of one scenario form a segment; counters start again
//! in the next one, and no rate is ever taken across two.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::prom;
use crate::{Error, Result};

/// The families kept (histograms by their `_bucket`, `_sum` and `_count`
/// series).
pub const KEPT: &[&str] = &[
    "forum_http_requests_total",
    "forum_http_request_duration_seconds_bucket",
    "forum_commands_total",
    "forum_command_duration_seconds_bucket",
    "forum_batch_commands_sum",
    "forum_batch_commands_count",
    "forum_group_commit_events_sum",
    "forum_group_commit_events_count",
    "forum_appends_total",
    "forum_appended_events_total",
    "forum_projection_lag_events",
    "forum_relay_lag_events",
    "forum_ws_open",
];

/// The time between two scrapes.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// A scrape that has not answered by then is given up (the gateway reads
/// its at-scrape gauges from Postgres for at most 2 s).
pub const SCRAPE_TIMEOUT: Duration = Duration::from_secs(3);

/// The most scrapes one run keeps (a day at one a second); past it the
/// scraper only waits for the run's end.
pub const MAX_SCRAPES: usize = 86_400;

/// One scenario's stretch of the run.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// The scenario's name (`W1`, …).
    pub scenario: String,
    /// The `/metrics` URL scraped, `None` when the scenario started no
    /// gateway (R1).
    pub url: Option<String>,
    /// Seconds since the run's start.
    pub start: f64,
    /// Seconds since the run's start, once it ended.
    pub end: Option<f64>,
}

/// One successful scrape.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scrape {
    /// Seconds since the run's start, when the GET was sent.
    pub t: f64,
    /// The index of its segment in [`Recording::segments`].
    pub segment: usize,
}

/// One series: a name and its labels, with its values.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The sample name.
    pub name: String,
    /// The labels, sorted by name.
    pub labels: Vec<(String, String)>,
    /// (index in [`Recording::scrapes`], value), in scrape order; only
    /// the scrapes where the series was there with a finite value.
    pub points: Vec<(u32, f64)>,
}

impl Series {
    /// The value of label `key`, if the series has it.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Everything scraped in a run.
#[derive(Debug, Clone, Default)]
pub struct Recording {
    /// The scenarios, in order.
    pub segments: Vec<Segment>,
    /// The successful scrapes, in order.
    pub scrapes: Vec<Scrape>,
    /// Every series seen.
    pub series: Vec<Series>,
    /// Scrapes that failed (no answer, an error status, a timeout).
    pub failed: u64,
    /// The first failure, for the warning.
    pub first_failure: Option<String>,
    /// Lines of the answers that did not parse, over the run.
    pub malformed: u64,
    /// Seconds since the run's start when the recording ended.
    pub end: f64,
    index: HashMap<(String, Vec<(String, String)>), usize>,
}

impl Recording {
    /// Opens a segment for `scenario`, closing the previous one at `t`.
    pub fn begin(&mut self, scenario: &str, url: Option<String>, t: f64) {
        self.close(t);
        self.segments.push(Segment {
            scenario: scenario.to_string(),
            url,
            start: t,
            end: None,
        });
    }

    /// Closes the open segment, if any, at `t`.
    pub fn close(&mut self, t: f64) {
        if let Some(s) = self.segments.last_mut() {
            if s.end.is_none() {
                s.end = Some(t);
            }
        }
    }

    /// The scrape URL of the open segment.
    pub fn open_url(&self) -> Option<&str> {
        self.segments
            .last()
            .filter(|s| s.end.is_none())
            .and_then(|s| s.url.as_deref())
    }

    /// Adds one successful scrape at `t` of the open segment: the samples
    /// of the [`KEPT`] families in `text`. Ignored when no segment is open.
    pub fn add(&mut self, t: f64, text: &str) {
        let Some(segment) = self.segments.len().checked_sub(1) else {
            return;
        };
        let parsed = prom::parse_filtered(text, |n| KEPT.contains(&n));
        self.malformed += parsed.malformed as u64;
        let at = self.scrapes.len() as u32;
        self.scrapes.push(Scrape { t, segment });
        for s in parsed.samples {
            if !s.value.is_finite() {
                continue;
            }
            let mut labels = s.labels;
            labels.sort();
            let key = (s.name, labels);
            let i = match self.index.get(&key) {
                Some(i) => *i,
                None => {
                    let i = self.series.len();
                    self.series.push(Series {
                        name: key.0.clone(),
                        labels: key.1.clone(),
                        points: Vec::new(),
                    });
                    self.index.insert(key, i);
                    i
                }
            };
            let points = &mut self.series[i].points;
            // A series repeated in one answer: the last value counts.
            match points.last_mut() {
                Some(last) if last.0 == at => last.1 = s.value,
                _ => points.push((at, s.value)),
            }
        }
    }

    /// Counts a failed scrape.
    pub fn fail(&mut self, why: String) {
        self.failed += 1;
        if self.first_failure.is_none() {
            self.first_failure = Some(why);
        }
    }
}

#[derive(Debug)]
enum Cmd {
    Follow { scenario: String, base: String },
    Unfollow,
    Stop,
}

/// The handle the scenarios use to point the scraper at their system.
#[derive(Debug, Clone)]
pub struct Tap {
    tx: mpsc::UnboundedSender<Cmd>,
}

impl Tap {
    /// Scenario `scenario` loads the system at `base` (`http://…`; empty
    /// when it started none) from now on.
    pub fn follow(&self, scenario: &str, base: &str) {
        let _ = self.tx.send(Cmd::Follow {
            scenario: scenario.to_string(),
            base: base.to_string(),
        });
    }

    /// The scenario is over: scrape nothing until the next one.
    pub fn unfollow(&self) {
        let _ = self.tx.send(Cmd::Unfollow);
    }
}

/// The running scraper.
pub struct Scraper {
    tap: Tap,
    task: JoinHandle<Recording>,
}

impl Scraper {
    /// Starts scraping (nothing until a scenario is followed); times count
    /// from now.
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn start() -> Result<Scraper> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(1)
            .timeout(SCRAPE_TIMEOUT)
            .tcp_nodelay(true)
            .build()?;
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(scrape_loop(http, rx, Instant::now()));
        Ok(Scraper {
            tap: Tap { tx },
            task,
        })
    }

    /// The handle for the scenarios.
    pub fn tap(&self) -> Tap {
        self.tap.clone()
    }

    /// Stops scraping and returns what was recorded.
    ///
    /// # Errors
    /// When the scraper's task died or does not stop within a few seconds.
    pub async fn stop(self) -> Result<Recording> {
        let _ = self.tap.tx.send(Cmd::Stop);
        let mut task = self.task;
        match tokio::time::timeout(SCRAPE_TIMEOUT + Duration::from_secs(5), &mut task).await {
            Ok(Ok(rec)) => Ok(rec),
            Ok(Err(e)) => Err(Error::Protocol(format!("the metrics scraper died: {e}"))),
            Err(_) => {
                task.abort();
                Err(Error::Timeout("the metrics scraper did not stop".into()))
            }
        }
    }
}

/// One GET of `url`: the body of a 200 answer.
async fn scrape_once(http: &reqwest::Client, url: &str) -> Result<String> {
    let resp = http.get(url).send().await?;
    let status = resp.status();
    if !status.is_success() {
        return Err(Error::Protocol(format!("GET {url}: {status}")));
    }
    Ok(resp.text().await?)
}

/// Scrapes the followed system every [`INTERVAL`] (a late scrape delays
/// the next; none is ever sent twice in one interval) until [`Cmd::Stop`]
/// or every [`Tap`] is gone; at most [`MAX_SCRAPES`] are attempted.
async fn scrape_loop(
    http: reqwest::Client,
    mut rx: mpsc::UnboundedReceiver<Cmd>,
    started: Instant,
) -> Recording {
    let mut rec = Recording::default();
    let now = |started: Instant| started.elapsed().as_secs_f64();
    let mut tick = tokio::time::interval(INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut attempts = 0usize;
    loop {
        let scrape = attempts < MAX_SCRAPES && rec.open_url().is_some();
        tokio::select! {
            cmd = rx.recv() => match cmd {
                Some(Cmd::Follow { scenario, base }) => {
                    let url = (!base.is_empty())
                        .then(|| format!("{}/metrics", base.trim_end_matches('/')));
                    rec.begin(&scenario, url, now(started));
                    // The first scrape of a system at once: it holds the
                    // counters from which the first rates start.
                    tick.reset_immediately();
                }
                Some(Cmd::Unfollow) => rec.close(now(started)),
                Some(Cmd::Stop) | None => break,
            },
            _ = tick.tick(), if scrape => {
                let Some(url) = rec.open_url().map(str::to_string) else {
                    continue;
                };
                attempts += 1;
                let t = now(started);
                match scrape_once(&http, &url).await {
                    Ok(text) => rec.add(t, &text),
                    Err(e) => rec.fail(e.to_string()),
                }
            }
        }
    }
    rec.end = now(started);
    rec.close(rec.end);
    rec
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recording_keeps_only_the_kept_families_and_interns_their_series() {
        let mut rec = Recording::default();
        rec.begin("W1", Some("http://127.0.0.1:1/metrics".into()), 0.0);
        let text = "# TYPE forum_ws_open gauge\n\
                    forum_ws_open 3\n\
                    forum_build_info{version=\"0.1.0\",role=\"up\"} 1\n\
                    forum_commands_total{service=\"posts\",outcome=\"accepted\",command=\"create_post\"} 5\n";
        rec.add(0.5, text);
        rec.add(
            1.5,
            &text.replace("} 5", "} 9").replace("open 3", "open NaN"),
        );
        assert_eq!(rec.scrapes.len(), 2);
        assert_eq!(rec.series.len(), 2);
        let ws = &rec.series[0];
        assert_eq!(ws.name, "forum_ws_open");
        assert_eq!(ws.points, vec![(0, 3.0)]);
        let c = &rec.series[1];
        assert_eq!(
            c.labels,
            vec![
                ("command".to_string(), "create_post".to_string()),
                ("outcome".to_string(), "accepted".to_string()),
                ("service".to_string(), "posts".to_string()),
            ]
        );
        assert_eq!(c.points, vec![(0, 5.0), (1, 9.0)]);
        assert_eq!(c.label("service"), Some("posts"));
    }

    #[test]
    fn segments_open_and_close_with_the_scenarios() {
        let mut rec = Recording::default();
        rec.add(0.0, "forum_ws_open 1\n");
        assert!(rec.scrapes.is_empty(), "no segment: nothing kept");
        rec.begin("W1", Some("http://a/metrics".into()), 1.0);
        assert_eq!(rec.open_url(), Some("http://a/metrics"));
        rec.begin("R1", None, 5.0);
        assert_eq!(rec.segments[0].end, Some(5.0));
        assert_eq!(rec.open_url(), None);
        rec.close(9.0);
        rec.close(10.0);
        assert_eq!(rec.segments[1].end, Some(9.0));
        rec.fail("first".into());
        rec.fail("second".into());
        assert_eq!(rec.failed, 2);
        assert_eq!(rec.first_failure.as_deref(), Some("first"));
    }

    #[tokio::test]
    async fn the_scraper_survives_a_dead_target_and_stops_when_asked() {
        let scraper = Scraper::start().expect("client");
        let tap = scraper.tap();
        // Port 1 on loopback: nothing listens there.
        tap.follow("W2", "http://127.0.0.1:1");
        tokio::time::sleep(Duration::from_millis(300)).await;
        tap.unfollow();
        let rec = scraper.stop().await.expect("stopped");
        assert!(rec.failed >= 1);
        assert!(rec.scrapes.is_empty());
        assert_eq!(rec.segments.len(), 1);
        assert!(rec.segments[0].end.is_some());
    }
}

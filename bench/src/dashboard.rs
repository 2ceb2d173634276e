//! `--metrics-plot`: the panels derived from a [`Recording`] (rates from
//! counter deltas, quantiles from histogram bucket deltas, averages from
//! `_sum`/`_count` deltas, gauges as read), the SVG dashboard that draws
//! them, and the JSON file of the raw series and of the panels.
//!
//! A rate, quantile or average belongs to the interval between two
//! successive scrapes of one scenario and is drawn at the later one; none
//! is taken across two scenarios (each loads a system of its own), nor
//! across a counter that went down (a restart).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;
use serde_json::{json, Value};

use crate::prom::{histogram_quantile, parse_value};
use crate::scrape::{Recording, Series};
use crate::{Error, Result};

/// The route of the scraper's own requests, left out of the HTTP panels.
pub const METRICS_ROUTE: &str = "/metrics";

/// How many routes the request-rate panel shows.
pub const TOP_ROUTES: usize = 6;

/// One line of a panel: a value per scrape of the recording (`None`: none
/// there).
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// The legend.
    pub name: String,
    /// One per [`Recording::scrapes`].
    pub values: Vec<Option<f64>>,
}

/// One panel of the dashboard.
#[derive(Debug, Clone, PartialEq)]
pub struct Panel {
    /// The title.
    pub title: String,
    /// The y axis' unit.
    pub unit: String,
    /// Its lines (only those with at least one value).
    pub lines: Vec<Line>,
}

/// The JSON file beside an SVG at `svg`: the same path with the extension
/// `.json`.
pub fn json_path(svg: &Path) -> PathBuf {
    svg.with_extension("json")
}

/// Every panel of the dashboard, in the order drawn (left to right, top to
/// bottom).
pub fn panels(rec: &Recording) -> Vec<Panel> {
    let by = |key: &'static str| move |s: &Series| s.label(key).map(str::to_string);
    let not_metrics =
        |s: &Series| (s.label("route") != Some(METRICS_ROUTE)).then(|| "all routes".to_string());
    let ms = |v: Option<f64>| v.map(|s| s * 1000.0);

    let mut routes: Vec<(f64, Line)> = counter_sums(rec, "forum_http_requests_total", |s| {
        s.label("route")
            .filter(|r| *r != METRICS_ROUTE)
            .map(str::to_string)
    })
    .into_iter()
    .map(|(route, sums)| {
        let values = rates(rec, &sums);
        let total = increase(rec, &values);
        (
            total,
            Line {
                name: route,
                values,
            },
        )
    })
    .filter(|(total, _)| *total > 0.0)
    .collect();
    routes.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.name.cmp(&b.1.name)));
    routes.truncate(TOP_ROUTES);

    let latency = ["p50", "p99"]
        .iter()
        .zip([0.5, 0.99])
        .flat_map(|(name, q)| {
            bucket_quantiles(
                rec,
                "forum_http_request_duration_seconds_bucket",
                q,
                not_metrics,
            )
            .into_values()
            .map(move |v| Line {
                name: name.to_string(),
                values: v.into_iter().map(ms).collect(),
            })
        })
        .collect();

    let commands = counter_sums(rec, "forum_commands_total", by("service"))
        .into_iter()
        .map(|(service, sums)| Line {
            name: service,
            values: rates(rec, &sums),
        })
        .collect();

    let average = |sum: &str, count: &str| -> Vec<Line> {
        let sums = counter_sums(rec, sum, by("service"));
        let counts = counter_sums(rec, count, by("service"));
        sums.into_iter()
            .filter_map(|(service, s)| {
                let c = counts.get(&service)?;
                Some(Line {
                    values: averages(rec, &s, c),
                    name: service,
                })
            })
            .collect()
    };

    let lag = gauges(
        rec,
        "forum_projection_lag_events",
        by("projection"),
        f64::max,
    )
    .into_iter()
    .map(|(projection, values)| Line {
        name: projection,
        values,
    })
    .collect();

    let sockets = gauges(rec, "forum_ws_open", |_| Some("open".into()), |a, b| a + b)
        .into_values()
        .map(|values| Line {
            name: "open".into(),
            values,
        })
        .collect();

    let command_p99 = bucket_quantiles(
        rec,
        "forum_command_duration_seconds_bucket",
        0.99,
        by("service"),
    )
    .into_iter()
    .map(|(service, v)| Line {
        name: service,
        values: v.into_iter().map(ms).collect(),
    })
    .collect();

    let panel = |title: &str, unit: &str, lines: Vec<Line>| Panel {
        title: title.into(),
        unit: unit.into(),
        lines: lines
            .into_iter()
            .filter(|l| l.values.iter().any(Option::is_some))
            .collect(),
    };
    vec![
        panel(
            "HTTP requests/s by route (top 6)",
            "requests/s",
            routes.into_iter().map(|(_, l)| l).collect(),
        ),
        panel("HTTP latency, all routes (p50, p99)", "ms", latency),
        panel("Commands/s by service", "commands/s", commands),
        panel(
            "Commands per batch (average per interval)",
            "commands",
            average("forum_batch_commands_sum", "forum_batch_commands_count"),
        ),
        panel(
            "Events per group commit (average per interval)",
            "events",
            average(
                "forum_group_commit_events_sum",
                "forum_group_commit_events_count",
            ),
        ),
        panel(
            "Projection lag by projection (max over sources)",
            "events",
            lag,
        ),
        panel("WebSockets open", "sockets", sockets),
        panel("Command latency p99 by service", "ms", command_p99),
    ]
}

/// The series of `name` at every scrape (`None` where it was not there).
fn dense(rec: &Recording, s: &Series) -> Vec<Option<f64>> {
    let mut out = vec![None; rec.scrapes.len()];
    for (i, v) in &s.points {
        if let Some(slot) = out.get_mut(*i as usize) {
            *slot = Some(*v);
        }
    }
    out
}

/// The sum of the counters `name` in each group `group` names (`None`:
/// left out), at every scrape; a series not there yet counts 0.
fn counter_sums(
    rec: &Recording,
    name: &str,
    group: impl Fn(&Series) -> Option<String>,
) -> BTreeMap<String, Vec<f64>> {
    let mut out: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for s in rec.series.iter().filter(|s| s.name == name) {
        let Some(g) = group(s) else { continue };
        let sums = out.entry(g).or_insert_with(|| vec![0.0; rec.scrapes.len()]);
        for (i, v) in &s.points {
            if let Some(slot) = sums.get_mut(*i as usize) {
                *slot += v;
            }
        }
    }
    out
}

/// The gauges `name` of each group folded with `fold` at every scrape
/// (`None` where the group had none: an at-scrape gauge left out).
fn gauges(
    rec: &Recording,
    name: &str,
    group: impl Fn(&Series) -> Option<String>,
    fold: impl Fn(f64, f64) -> f64,
) -> BTreeMap<String, Vec<Option<f64>>> {
    let mut out: BTreeMap<String, Vec<Option<f64>>> = BTreeMap::new();
    for s in rec.series.iter().filter(|s| s.name == name) {
        let Some(g) = group(s) else { continue };
        let acc = out
            .entry(g)
            .or_insert_with(|| vec![None; rec.scrapes.len()]);
        for (slot, v) in acc.iter_mut().zip(dense(rec, s)) {
            if let Some(v) = v {
                *slot = Some(slot.map_or(v, |a| fold(a, v)));
            }
        }
    }
    out
}

/// Whether scrapes `i - 1` and `i` are of one scenario, and the seconds
/// between them.
fn interval(rec: &Recording, i: usize) -> Option<f64> {
    let (a, b) = (rec.scrapes.get(i.checked_sub(1)?)?, rec.scrapes.get(i)?);
    let dt = b.t - a.t;
    (a.segment == b.segment && dt > 0.0).then_some(dt)
}

/// The per-second rate of a counter sum over each interval.
pub fn rates(rec: &Recording, sums: &[f64]) -> Vec<Option<f64>> {
    (0..sums.len())
        .map(|i| {
            let dt = interval(rec, i)?;
            let d = sums[i] - sums[i - 1];
            (d >= 0.0).then_some(d / dt)
        })
        .collect()
}

/// The whole increase behind a series of rates.
fn increase(rec: &Recording, rates: &[Option<f64>]) -> f64 {
    rates
        .iter()
        .enumerate()
        .filter_map(|(i, r)| Some((*r)? * interval(rec, i)?))
        .sum()
}

/// Δsum / Δcount over each interval (`None` when nothing was counted).
pub fn averages(rec: &Recording, sums: &[f64], counts: &[f64]) -> Vec<Option<f64>> {
    (0..sums.len().min(counts.len()))
        .map(|i| {
            interval(rec, i)?;
            let dc = counts[i] - counts[i - 1];
            let ds = sums[i] - sums[i - 1];
            (dc > 0.0 && ds >= 0.0).then_some(ds / dc)
        })
        .collect()
}

/// The `q`-quantile over each interval of the histogram buckets `name`
/// (`…_bucket`) of each group, from the increase of every bucket.
pub fn bucket_quantiles(
    rec: &Recording,
    name: &str,
    q: f64,
    group: impl Fn(&Series) -> Option<String>,
) -> BTreeMap<String, Vec<Option<f64>>> {
    // group → le → cumulative count at every scrape.
    let mut groups: BTreeMap<String, BTreeMap<String, (f64, Vec<f64>)>> = BTreeMap::new();
    for s in rec.series.iter().filter(|s| s.name == name) {
        let Some(g) = group(s) else { continue };
        let Some((le_text, le)) = s.label("le").and_then(|l| Some((l, parse_value(l)?))) else {
            continue;
        };
        let counts = groups
            .entry(g)
            .or_default()
            .entry(le_text.to_string())
            .or_insert_with(|| (le, vec![0.0; rec.scrapes.len()]));
        for (i, v) in &s.points {
            if let Some(slot) = counts.1.get_mut(*i as usize) {
                *slot += v;
            }
        }
    }
    groups
        .into_iter()
        .map(|(g, les)| {
            let values = (0..rec.scrapes.len())
                .map(|i| {
                    interval(rec, i)?;
                    let mut buckets = Vec::with_capacity(les.len());
                    for (le, counts) in les.values() {
                        let d = counts[i] - counts[i - 1];
                        if d < 0.0 {
                            return None;
                        }
                        buckets.push((*le, d));
                    }
                    histogram_quantile(q, &buckets)
                })
                .collect();
            (g, values)
        })
        .collect()
}

/// A number for an axis: `1.2k`, `35`, `5`, `0.25`.
pub fn short(v: f64) -> String {
    let a = v.abs();
    let text = if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if a >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else if a >= 10.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    };
    // `1.0k` reads better as `1k`.
    match text.split_once(".0") {
        Some((whole, unit)) if unit.chars().all(char::is_alphabetic) => format!("{whole}{unit}"),
        _ => text,
    }
}

const COLORS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

const WIDTH: u32 = 1400;
const HEADER: u32 = 60;
const PANEL_HEIGHT: u32 = 320;
const COLUMNS: usize = 2;

/// The dashboard of `rec` as an SVG document: a title, then the
/// [`panels`] in a grid of two columns, time in seconds since the run's
/// start on every x axis, the scenarios marked where they start.
///
/// # Errors
/// [`Error::Plot`] when drawing fails.
pub fn svg(rec: &Recording, title: &str) -> Result<String> {
    let panels = panels(rec);
    let rows = panels.len().div_ceil(COLUMNS).max(1);
    let height = HEADER + PANEL_HEIGHT * rows as u32;
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let (header, body) = root.split_vertically(HEADER);
        header
            .draw(&Text::new(
                title.to_string(),
                (12, 8),
                ("sans-serif", 22).into_font(),
            ))
            .map_err(plot_error)?;
        let scenarios: Vec<String> = rec
            .segments
            .iter()
            .map(|s| {
                format!(
                    "{} {:.0}–{:.0} s{}",
                    s.scenario,
                    s.start,
                    s.end.unwrap_or(rec.end),
                    if s.url.is_none() { " (no gateway)" } else { "" }
                )
            })
            .collect();
        let subtitle = format!(
            "{} scrapes, {} failed; scenarios: {}",
            rec.scrapes.len(),
            rec.failed,
            if scenarios.is_empty() {
                "none".to_string()
            } else {
                scenarios.join(", ")
            }
        );
        header
            .draw(&Text::new(
                subtitle,
                (12, 36),
                ("sans-serif", 13).into_font().color(&RGBColor(90, 90, 90)),
            ))
            .map_err(plot_error)?;
        let x_max = rec.end.max(1.0);
        for (area, panel) in body.split_evenly((rows, COLUMNS)).iter().zip(&panels) {
            draw_panel(area, rec, panel, x_max)?;
        }
        root.present().map_err(plot_error)?;
    }
    Ok(out)
}

fn plot_error(e: impl std::fmt::Display) -> Error {
    Error::Plot(e.to_string())
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    rec: &Recording,
    panel: &Panel,
    x_max: f64,
) -> Result<()> {
    let y_top = panel
        .lines
        .iter()
        .flat_map(|l| l.values.iter().flatten())
        .copied()
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    let y_max = if y_top > 0.0 { y_top * 1.15 } else { 1.0 };
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.title, ("sans-serif", 16).into_font())
        .margin(10)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(0f64..x_max, 0f64..y_max)
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_desc("time (s)")
        .y_desc(panel.unit.as_str())
        .x_labels(10)
        .y_labels(6)
        .x_label_formatter(&|v| short(*v))
        .y_label_formatter(&|v| short(*v))
        .light_line_style(RGBColor(238, 238, 238))
        .bold_line_style(RGBColor(215, 215, 215))
        .label_style(("sans-serif", 11).into_font())
        .axis_desc_style(("sans-serif", 12).into_font())
        .draw()
        .map_err(plot_error)?;

    // Where each scenario starts.
    let marker = RGBColor(160, 160, 160).stroke_width(1);
    for s in &rec.segments {
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(s.start, 0.0), (s.start, y_max)],
                marker,
            )))
            .map_err(plot_error)?;
        chart
            .draw_series(std::iter::once(Text::new(
                s.scenario.clone(),
                (s.start + x_max * 0.004, y_max * 0.99),
                ("sans-serif", 11)
                    .into_font()
                    .color(&RGBColor(110, 110, 110)),
            )))
            .map_err(plot_error)?;
    }

    if panel.lines.is_empty() {
        chart
            .draw_series(std::iter::once(Text::new(
                "no data",
                (x_max * 0.45, y_max * 0.5),
                ("sans-serif", 14)
                    .into_font()
                    .color(&RGBColor(150, 150, 150)),
            )))
            .map_err(plot_error)?;
        return Ok(());
    }
    for (n, line) in panel.lines.iter().enumerate() {
        let color = COLORS[n % COLORS.len()];
        let style = color.stroke_width(2);
        let mut labelled = false;
        for run in runs(rec, &line.values) {
            if run.len() == 1 {
                chart
                    .draw_series(run.iter().map(|p| Circle::new(*p, 2, color.filled())))
                    .map_err(plot_error)?;
                continue;
            }
            let drawn = chart
                .draw_series(LineSeries::new(run, style))
                .map_err(plot_error)?;
            if !labelled {
                labelled = true;
                drawn.label(line.name.clone()).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
            }
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .margin(6)
        .label_font(("sans-serif", 11).into_font())
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(200, 200, 200))
        .draw()
        .map_err(plot_error)?;
    Ok(())
}

/// The stretches of `values` to draw as one line each: successive scrapes
/// of one scenario that all have a value, as (seconds, value).
pub fn runs(rec: &Recording, values: &[Option<f64>]) -> Vec<Vec<(f64, f64)>> {
    let mut out: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut open = false;
    for (i, (scrape, v)) in rec.scrapes.iter().zip(values).enumerate() {
        match v.filter(|v| v.is_finite()) {
            Some(v) => {
                let continues = open
                    && rec
                        .scrapes
                        .get(i.wrapping_sub(1))
                        .is_some_and(|p| p.segment == scrape.segment);
                if !continues {
                    out.push(Vec::new());
                }
                if let Some(run) = out.last_mut() {
                    run.push((scrape.t, v));
                }
                open = true;
            }
            None => open = false,
        }
    }
    out
}

fn round_ms(t: f64) -> f64 {
    (t * 1000.0).round() / 1000.0
}

/// The JSON file: the scenarios, the scrapes' times, every raw series kept
/// (`[seconds, value]` points) and every panel's lines.
pub fn json(rec: &Recording) -> Value {
    let at = |i: u32| {
        rec.scrapes
            .get(i as usize)
            .map_or(f64::NAN, |s| round_ms(s.t))
    };
    let series: Vec<Value> = rec
        .series
        .iter()
        .map(|s| {
            let labels: serde_json::Map<String, Value> = s
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect();
            json!({
                "name": s.name,
                "labels": labels,
                "points": s.points.iter().map(|(i, v)| json!([at(*i), v])).collect::<Vec<_>>(),
            })
        })
        .collect();
    let panels: Vec<Value> = panels(rec)
        .iter()
        .map(|p| {
            json!({
                "title": p.title,
                "unit": p.unit,
                "lines": p.lines.iter().map(|l| json!({
                    "name": l.name,
                    "points": rec.scrapes.iter().zip(&l.values)
                        .filter_map(|(s, v)| Some(json!([round_ms(s.t), (*v)?])))
                        .collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "interval_secs": crate::scrape::INTERVAL.as_secs_f64(),
        "end": round_ms(rec.end),
        "scrapes": rec.scrapes.len(),
        "failed_scrapes": rec.failed,
        "first_failure": rec.first_failure,
        "malformed_lines": rec.malformed,
        "segments": rec.segments.iter().map(|s| json!({
            "scenario": s.scenario,
            "url": s.url,
            "start": round_ms(s.start),
            "end": s.end.map(round_ms),
        })).collect::<Vec<_>>(),
        "scrape_times": rec.scrapes.iter().map(|s| round_ms(s.t)).collect::<Vec<_>>(),
        "series": series,
        "panels": panels,
    })
}

/// Writes the SVG dashboard of `rec` to `path` and its JSON beside it
/// ([`json_path`]).
///
/// # Errors
/// Drawing or writing fails.
pub fn write(rec: &Recording, path: &Path, title: &str) -> Result<()> {
    let svg = svg(rec, title)?;
    std::fs::write(path, svg)?;
    let text = serde_json::to_string_pretty(&json(rec))?;
    std::fs::write(json_path(path), text + "\n")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A recording of two scenarios: `texts[i]` scraped at second `i`, in
    /// segment 0 for the first `split` texts, in segment 1 after.
    fn recording(texts: &[String], split: usize) -> Recording {
        let mut rec = Recording::default();
        rec.begin("W1", Some("http://127.0.0.1:1/metrics".into()), 0.0);
        for (i, t) in texts.iter().enumerate() {
            if i == split {
                rec.begin("W2", Some("http://127.0.0.1:2/metrics".into()), i as f64);
            }
            rec.add(i as f64, t);
        }
        rec.end = texts.len() as f64;
        rec.close(rec.end);
        rec
    }

    fn line<'a>(panels: &'a [Panel], title: &str, name: &str) -> &'a Line {
        panels
            .iter()
            .find(|p| p.title.starts_with(title))
            .and_then(|p| p.lines.iter().find(|l| l.name == name))
            .unwrap_or_else(|| panic!("no line {name} in {title}"))
    }

    fn requests(route_counts: &[(&str, u32)]) -> String {
        route_counts
            .iter()
            .map(|(r, n)| {
                format!(
                    "forum_http_requests_total{{method=\"GET\",route=\"{r}\",status=\"200\"}} {n}\n"
                )
            })
            .collect()
    }

    #[test]
    fn request_rates_come_from_counter_deltas_and_never_span_two_scenarios() {
        let texts = vec![
            requests(&[("/api/posts", 10)]),
            requests(&[("/api/posts", 30)]),
            requests(&[("/api/posts", 70)]),
            // A new system: the counter starts again.
            requests(&[("/api/posts", 5)]),
            requests(&[("/api/posts", 8)]),
        ];
        let rec = recording(&texts, 3);
        let p = panels(&rec);
        let l = line(&p, "HTTP requests/s", "/api/posts");
        assert_eq!(
            l.values,
            vec![None, Some(20.0), Some(40.0), None, Some(3.0)]
        );
        assert_eq!(runs(&rec, &l.values).len(), 2);
    }

    #[test]
    fn a_counter_that_goes_down_within_a_scenario_gives_no_rate() {
        let texts = vec![
            requests(&[("/a", 10)]),
            requests(&[("/a", 4)]),
            requests(&[("/a", 6)]),
        ];
        let rec = recording(&texts, 99);
        let p = panels(&rec);
        assert_eq!(
            line(&p, "HTTP requests/s", "/a").values,
            vec![None, None, Some(2.0)]
        );
    }

    #[test]
    fn only_the_busiest_routes_are_shown_and_metrics_is_left_out() {
        let routes: Vec<String> = (0..8).map(|i| format!("/r{i}")).collect();
        let at = |k: u32| {
            let mut counts: Vec<(&str, u32)> = routes
                .iter()
                .enumerate()
                .map(|(i, r)| (r.as_str(), k * (i as u32 + 1)))
                .collect();
            counts.push((METRICS_ROUTE, k * 1000));
            requests(&counts)
        };
        let rec = recording(&[at(0), at(1), at(2)], 99);
        let p = panels(&rec);
        let names: Vec<&str> = p[0].lines.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, vec!["/r7", "/r6", "/r5", "/r4", "/r3", "/r2"]);
    }

    fn durations(route: &str, counts: [u32; 4]) -> String {
        let les = ["0.001", "0.01", "0.1", "+Inf"];
        les.iter()
            .zip(counts)
            .map(|(le, n)| {
                format!("forum_http_request_duration_seconds_bucket{{method=\"GET\",route=\"{route}\",le=\"{le}\"}} {n}\n")
            })
            .collect()
    }

    #[test]
    fn http_latency_quantiles_come_from_bucket_deltas_between_scrapes() {
        let texts = vec![
            // Before: 100 fast requests, which must not weigh on the
            // interval after.
            durations("/a", [100, 100, 100, 100]) + &durations(METRICS_ROUTE, [0, 0, 0, 0]),
            // Then 10 requests in (1 ms, 10 ms] on /a; slow ones on
            // /metrics are left out.
            durations("/a", [100, 110, 110, 110]) + &durations(METRICS_ROUTE, [0, 0, 0, 50]),
        ];
        let rec = recording(&texts, 99);
        let p = panels(&rec);
        let p50 = line(&p, "HTTP latency", "p50").values[1].unwrap_or(f64::NAN);
        assert!((p50 - 5.5).abs() < 1e-9, "p50 {p50} ms");
        let p99 = line(&p, "HTTP latency", "p99").values[1].unwrap_or(f64::NAN);
        assert!((p99 - 9.91).abs() < 1e-9, "p99 {p99} ms");
    }

    #[test]
    fn batch_sizes_are_averages_of_sum_and_count_deltas() {
        let batch = |sum: u32, count: u32| {
            format!(
                "forum_batch_commands_sum{{service=\"posts\"}} {sum}\n\
                 forum_batch_commands_count{{service=\"posts\"}} {count}\n"
            )
        };
        let rec = recording(&[batch(10, 5), batch(40, 10), batch(40, 10)], 99);
        let p = panels(&rec);
        assert_eq!(
            line(&p, "Commands per batch", "posts").values,
            vec![None, Some(6.0), None]
        );
    }

    #[test]
    fn projection_lag_is_the_max_over_sources_and_absent_when_left_out() {
        let lag = |a: u32, b: u32| {
            format!(
                "forum_projection_lag_events{{projection=\"feed\",source=\"posts\"}} {a}\n\
                 forum_projection_lag_events{{projection=\"feed\",source=\"chat\"}} {b}\n\
                 forum_ws_open 4\n"
            )
        };
        let rec = recording(&[lag(3, 7), "forum_ws_open 5\n".into(), lag(9, 1)], 99);
        let p = panels(&rec);
        assert_eq!(
            line(&p, "Projection lag", "feed").values,
            vec![Some(7.0), None, Some(9.0)]
        );
        assert_eq!(
            line(&p, "WebSockets open", "open").values,
            vec![Some(4.0), Some(5.0), Some(4.0)]
        );
    }

    #[test]
    fn the_svg_has_every_panel_title_and_the_json_every_series() {
        let texts = vec![
            requests(&[("/api/posts", 1)])
                + "forum_commands_total{service=\"posts\",command=\"create_post\",outcome=\"accepted\"} 1\n",
            requests(&[("/api/posts", 9)])
                + "forum_commands_total{service=\"posts\",command=\"create_post\",outcome=\"accepted\"} 6\n",
            requests(&[("/api/posts", 20)])
                + "forum_commands_total{service=\"posts\",command=\"create_post\",outcome=\"accepted\"} 9\n",
        ];
        let rec = recording(&texts, 99);
        let svg = svg(&rec, "forum-bench metrics").expect("svg");
        assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(80)]);
        for p in panels(&rec) {
            assert!(svg.contains(&p.title), "no {}", p.title);
        }
        assert!(svg.contains("time (s)"));
        assert!(svg.contains("no data"));
        assert!(svg.contains("/api/posts"));
        let j = json(&rec);
        assert_eq!(j["series"].as_array().map(Vec::len), Some(2));
        assert_eq!(j["series"][0]["points"][1], json!([1.0, 9.0]));
        assert_eq!(j["panels"][2]["lines"][0]["points"][0], json!([1.0, 5.0]));
    }

    #[test]
    fn an_empty_recording_still_draws_every_panel() {
        let rec = Recording::default();
        let svg = svg(&rec, "t").expect("svg");
        assert_eq!(svg.matches("no data").count(), panels(&rec).len());
    }

    #[test]
    fn axis_numbers_are_short() {
        assert_eq!(short(0.0), "0");
        assert_eq!(short(0.25), "0.25");
        assert_eq!(short(2.5), "2.5");
        assert_eq!(short(5.0), "5");
        assert_eq!(short(1000.0), "1k");
        assert_eq!(short(0.05), "0.05");
        assert_eq!(short(35.0), "35");
        assert_eq!(short(1500.0), "1.5k");
        assert_eq!(short(25_000.0), "25k");
        assert_eq!(short(3_200_000.0), "3.2M");
    }

    #[test]
    fn the_json_file_sits_beside_the_svg() {
        assert_eq!(
            json_path(Path::new("out/metrics.svg")),
            PathBuf::from("out/metrics.json")
        );
        assert_eq!(json_path(Path::new("plot")), PathBuf::from("plot.json"));
    }
}

//! Result rows, the table printed on stdout and the JSON file.

use std::time::Duration;

use serde_json::{json, Value};

use crate::stats::{fmt_count, fmt_micros};

/// The unit of a figure, which also decides how it is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Microseconds (printed as µs, ms or s).
    Micros,
    /// Per second.
    PerSec,
    /// Kibibytes.
    KiB,
    /// Mebibytes.
    MiB,
    /// A plain count.
    Count,
    /// A dimensionless ratio.
    Ratio,
    /// Seconds.
    Seconds,
    /// Percent of one CPU core.
    CorePercent,
    /// A plain number with two decimals.
    Number,
}

impl Unit {
    /// The JSON name of the unit.
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Micros => "us",
            Unit::PerSec => "per_s",
            Unit::KiB => "KiB",
            Unit::MiB => "MiB",
            Unit::Count => "count",
            Unit::Ratio => "ratio",
            Unit::Seconds => "s",
            Unit::CorePercent => "percent_of_core",
            Unit::Number => "number",
        }
    }

    /// `value` printed in this unit.
    pub fn fmt(self, value: f64) -> String {
        match self {
            Unit::Micros => fmt_micros(value),
            Unit::PerSec => format!("{}/s", fmt_count(value)),
            Unit::KiB => format!("{value:.2} KiB"),
            Unit::MiB => format!("{value:.1} MiB"),
            Unit::Count => fmt_count(value),
            Unit::Ratio => format!("{value:.2}×"),
            Unit::Seconds => format!("{value:.2} s"),
            Unit::CorePercent => format!("{value:.0} % core"),
            Unit::Number => format!("{value:.2}"),
        }
    }
}

/// How a figure compares with its target bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    /// The figure must be at least the bound.
    AtLeast,
    /// The figure must be at most the bound.
    AtMost,
}

/// A target: a bound on the figure itself or on its ratio to the floor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Target {
    /// Whether the bound applies to the ratio (figure ÷ floor).
    pub on_ratio: bool,
    /// At least or at most.
    pub cmp: Cmp,
    /// The bound, in the figure's unit (or as a ratio).
    pub bound: f64,
}

/// The floor a figure is compared with.
#[derive(Debug, Clone, PartialEq)]
pub struct Floor {
    /// What the floor is, e.g. `NATS rtt + PG commit p50`.
    pub name: String,
    /// Its value.
    pub value: f64,
    /// Its unit.
    pub unit: Unit,
}

/// One row of the results.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    /// What was measured.
    pub name: String,
    /// The figure.
    pub value: f64,
    /// Its unit.
    pub unit: Unit,
    /// The floor it is compared with, if any.
    pub floor: Option<Floor>,
    /// Its target, if any.
    pub target: Option<Target>,
}

impl Metric {
    /// A figure without floor or target.
    pub fn new(name: impl Into<String>, value: f64, unit: Unit) -> Metric {
        Metric {
            name: name.into(),
            value,
            unit,
            floor: None,
            target: None,
        }
    }

    /// Adds the floor it is compared with.
    pub fn floor(mut self, name: impl Into<String>, value: f64, unit: Unit) -> Metric {
        self.floor = Some(Floor {
            name: name.into(),
            value,
            unit,
        });
        self
    }

    /// Adds a target on the figure.
    pub fn target(mut self, cmp: Cmp, bound: f64) -> Metric {
        self.target = Some(Target {
            on_ratio: false,
            cmp,
            bound,
        });
        self
    }

    /// Adds a target on the ratio figure ÷ floor.
    pub fn target_ratio(mut self, cmp: Cmp, bound: f64) -> Metric {
        self.target = Some(Target {
            on_ratio: true,
            cmp,
            bound,
        });
        self
    }

    /// Figure ÷ floor, when there is a non-zero floor.
    pub fn ratio(&self) -> Option<f64> {
        self.floor
            .as_ref()
            .filter(|f| f.value > 0.0)
            .map(|f| self.value / f.value)
    }

    /// Whether the target is met (`None` without a target or without the
    /// ratio it needs).
    pub fn met(&self) -> Option<bool> {
        let t = self.target?;
        let x = if t.on_ratio {
            self.ratio()?
        } else {
            self.value
        };
        Some(match t.cmp {
            Cmp::AtLeast => x >= t.bound,
            Cmp::AtMost => x <= t.bound,
        })
    }

    fn target_text(&self) -> String {
        let Some(t) = self.target else {
            return String::new();
        };
        let op = match t.cmp {
            Cmp::AtLeast => "≥",
            Cmp::AtMost => "≤",
        };
        if t.on_ratio {
            format!("{op} {:.2}× floor", t.bound)
        } else {
            format!("{op} {}", self.unit.fmt(t.bound))
        }
    }
}

/// How a scenario ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// It ran; its figures are in the metrics.
    Ran,
    /// It did not run, for the reason given (e.g. a missing feature).
    Skipped(String),
    /// It stopped on an error.
    Failed(String),
}

/// The result of one scenario (or one part of it, e.g. W1 comments).
#[derive(Debug, Clone)]
pub struct ScenarioReport {
    /// Short name, e.g. `W1-posts`.
    pub name: String,
    /// How it ended.
    pub status: Status,
    /// Its rows, floors included.
    pub metrics: Vec<Metric>,
    /// Notes (what was loaded, with which parameters).
    pub notes: Vec<String>,
    /// Wall time.
    pub elapsed: Duration,
}

impl ScenarioReport {
    /// An empty report that ran.
    pub fn new(name: impl Into<String>) -> ScenarioReport {
        ScenarioReport {
            name: name.into(),
            status: Status::Ran,
            metrics: Vec::new(),
            notes: Vec::new(),
            elapsed: Duration::ZERO,
        }
    }

    /// A report of a scenario that did not run.
    pub fn skipped(name: impl Into<String>, why: impl Into<String>) -> ScenarioReport {
        ScenarioReport {
            status: Status::Skipped(why.into()),
            ..ScenarioReport::new(name)
        }
    }

    /// Adds a row.
    pub fn push(&mut self, m: Metric) {
        self.metrics.push(m);
    }

    /// Adds a note.
    pub fn note(&mut self, s: impl Into<String>) {
        self.notes.push(s.into());
    }

    /// Adds Postgres work per acknowledged write (this system's database
    /// only).
    pub fn pg_per_write(&mut self, per: &[(&str, f64)]) {
        for (what, v) in per {
            self.metrics.push(Metric::new(
                format!("PG {what} per write"),
                *v,
                Unit::Number,
            ));
        }
    }

    /// Adds the CPU used during the measured window, by group (percent of
    /// one core; the machine has `cores` of them).
    pub fn cpu(&mut self, shares: &[(&str, f64)]) {
        for (group, pct) in shares {
            self.metrics.push(Metric::new(
                format!("CPU during load: {group}"),
                *pct,
                Unit::CorePercent,
            ));
        }
    }
}

/// The whole run.
#[derive(Debug, Clone)]
pub struct Report {
    /// When it started (RFC 3339).
    pub started_at: String,
    /// The command line.
    pub command: String,
    /// The commit of the working tree, when known.
    pub commit: Option<String>,
    /// Notes about the environment (file limit, cores).
    pub environment: Vec<String>,
    /// Every scenario, in the order run.
    pub scenarios: Vec<ScenarioReport>,
}

impl Report {
    /// The table printed on stdout: scenario, metric, value, floor, ratio,
    /// target, met.
    pub fn table(&self) -> String {
        let header = [
            "scenario", "metric", "value", "floor", "ratio", "target", "met",
        ];
        let mut rows: Vec<[String; 7]> = Vec::new();
        for s in &self.scenarios {
            match &s.status {
                Status::Ran => {}
                Status::Skipped(why) => rows.push([
                    s.name.clone(),
                    format!("skipped: {why}"),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                ]),
                Status::Failed(why) => rows.push([
                    s.name.clone(),
                    format!("error: {why}"),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                ]),
            }
            for m in &s.metrics {
                rows.push([
                    s.name.clone(),
                    m.name.clone(),
                    m.unit.fmt(m.value),
                    m.floor
                        .as_ref()
                        .map(|f| format!("{} {}", f.name, f.unit.fmt(f.value)))
                        .unwrap_or_default(),
                    m.ratio().map(|r| format!("{r:.2}")).unwrap_or_default(),
                    m.target_text(),
                    match m.met() {
                        Some(true) => "yes".into(),
                        Some(false) => "NO".into(),
                        None => String::new(),
                    },
                ]);
            }
        }
        let mut widths = header.map(|h| h.chars().count());
        for r in &rows {
            for (w, c) in widths.iter_mut().zip(r.iter()) {
                *w = (*w).max(c.chars().count());
            }
        }
        let line = |cells: &[String]| -> String {
            let mut out = String::from("|");
            for (c, w) in cells.iter().zip(widths.iter()) {
                let pad = w - c.chars().count();
                out.push(' ');
                out.push_str(c);
                out.push_str(&" ".repeat(pad));
                out.push_str(" |");
            }
            out.push('\n');
            out
        };
        let mut out = line(&header.map(String::from));
        out.push('|');
        for w in widths {
            out.push_str(&"-".repeat(w + 2));
            out.push('|');
        }
        out.push('\n');
        for r in &rows {
            out.push_str(&line(r));
        }
        out
    }

    /// The JSON document written to the results file.
    pub fn json(&self) -> Value {
        let scenarios: Vec<Value> = self
            .scenarios
            .iter()
            .map(|s| {
                let (status, reason) = match &s.status {
                    Status::Ran => ("ran", None),
                    Status::Skipped(r) => ("skipped", Some(r.clone())),
                    Status::Failed(r) => ("error", Some(r.clone())),
                };
                let metrics: Vec<Value> = s
                    .metrics
                    .iter()
                    .map(|m| {
                        json!({
                            "metric": m.name,
                            "value": m.value,
                            "unit": m.unit.as_str(),
                            "floor": m.floor.as_ref().map(|f| json!({
                                "name": f.name, "value": f.value, "unit": f.unit.as_str()
                            })),
                            "ratio": m.ratio(),
                            "target": m.target.map(|t| json!({
                                "on": if t.on_ratio { "ratio" } else { "value" },
                                "cmp": match t.cmp { Cmp::AtLeast => ">=", Cmp::AtMost => "<=" },
                                "bound": t.bound,
                            })),
                            "met": m.met(),
                        })
                    })
                    .collect();
                json!({
                    "scenario": s.name,
                    "status": status,
                    "reason": reason,
                    "elapsed_s": s.elapsed.as_secs_f64(),
                    "notes": s.notes,
                    "metrics": metrics,
                })
            })
            .collect();
        json!({
            "started_at": self.started_at,
            "command": self.command,
            "commit": self.commit,
            "environment": self.environment,
            "scenarios": scenarios,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ratio_target_is_judged_on_the_ratio_to_the_floor() {
        let m = Metric::new("p50", 900.0, Unit::Micros)
            .floor("rtt+commit", 400.0, Unit::Micros)
            .target_ratio(Cmp::AtMost, 3.0);
        assert_eq!(m.ratio(), Some(2.25));
        assert_eq!(m.met(), Some(true));
        let slow = Metric { value: 1300.0, ..m };
        assert_eq!(slow.met(), Some(false));
    }

    #[test]
    fn a_value_target_ignores_the_floor_and_no_target_is_no_verdict() {
        let m = Metric::new("throughput", 5_999.0, Unit::PerSec)
            .floor("commits", 17_000.0, Unit::PerSec)
            .target(Cmp::AtLeast, 6_000.0);
        assert_eq!(m.met(), Some(false));
        assert_eq!(Metric::new("n", 3.0, Unit::Count).met(), None);
        let zero_floor = Metric::new("x", 1.0, Unit::Ratio)
            .floor("f", 0.0, Unit::Ratio)
            .target_ratio(Cmp::AtMost, 1.0);
        assert_eq!(zero_floor.ratio(), None);
        assert_eq!(zero_floor.met(), None);
    }

    #[test]
    fn the_table_has_one_line_per_metric_and_per_skipped_scenario() {
        let mut w = ScenarioReport::new("W2");
        w.push(Metric::new("p50", 500.0, Unit::Micros).target(Cmp::AtMost, 1000.0));
        let report = Report {
            started_at: "t".into(),
            command: "c".into(),
            commit: None,
            environment: vec![],
            scenarios: vec![w, ScenarioReport::skipped("L1", "feature missing")],
        };
        let t = report.table();
        assert_eq!(t.lines().count(), 4, "{t}");
        assert!(t.contains("| W2 "));
        assert!(t.contains("skipped: feature missing"));
        assert!(t.contains("yes"));
        let j = report.json();
        assert_eq!(j["scenarios"][1]["status"], "skipped");
        assert_eq!(j["scenarios"][0]["metrics"][0]["met"], true);
    }
}

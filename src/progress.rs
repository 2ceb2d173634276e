//! Progress of long command-line work (`forum replay rebuild`, `forum
//! migrate`): a bar redrawn in place when stderr is a terminal (indicatif),
//! else a plain line on stderr at most once a second, so a log file gets a
//! readable record and no control characters.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often a plain line is written when stderr is not a terminal.
const LINE_EVERY: Duration = Duration::from_secs(1);

/// One piece of work counted in `unit`s.
pub struct Progress {
    bar: Option<ProgressBar>,
    label: String,
    unit: &'static str,
    started: Instant,
    last_line: Option<Instant>,
    silent: bool,
}

impl Progress {
    /// Progress of `label` over `total` `unit`s (events, steps).
    pub fn new(label: &str, total: u64, unit: &'static str) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            let template = format!(
                "{{prefix}} [{{bar:30}}] {{pos}}/{{len}} {unit}, {{per_sec}}, ETA {{eta}} {{msg}}"
            );
            if let Ok(style) = ProgressStyle::with_template(&template) {
                bar.set_style(style.progress_chars("#>."));
            }
            bar.set_prefix(label.to_string());
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Progress {
            bar,
            label: label.to_string(),
            unit,
            started: Instant::now(),
            last_line: None,
            silent: false,
        }
    }

    /// Progress that shows nothing (the same work run as part of a role).
    pub fn silent() -> Progress {
        Progress {
            bar: None,
            label: String::new(),
            unit: "",
            started: Instant::now(),
            last_line: None,
            silent: true,
        }
    }

    /// `done` of `total` now; `rate` is units a second (for the plain
    /// line), `message` what is being done.
    pub fn set(&mut self, done: u64, total: u64, rate: f64, message: &str) {
        if self.silent {
            return;
        }
        if let Some(bar) = &self.bar {
            bar.set_length(total);
            bar.set_position(done);
            bar.set_message(message.to_string());
            return;
        }
        let now = Instant::now();
        if self
            .last_line
            .is_some_and(|t| now.duration_since(t) < LINE_EVERY)
            && done < total
        {
            return;
        }
        self.last_line = Some(now);
        eprintln!("{}", self.line(done, total, rate, message));
    }

    /// The plain line: `LABEL: DONE/TOTAL UNIT, RATE UNIT/s, ETA Ns[, MESSAGE]`.
    fn line(&self, done: u64, total: u64, rate: f64, message: &str) -> String {
        let eta = if rate > 0.0 {
            format!("{:.0}s", total.saturating_sub(done) as f64 / rate)
        } else {
            "?".into()
        };
        let unit = self.unit;
        let mut line = format!(
            "{}: {done}/{total} {unit}, {rate:.0} {unit}/s, ETA {eta}",
            self.label
        );
        if !message.is_empty() {
            line.push_str(", ");
            line.push_str(message);
        }
        line
    }

    /// Prints `line` on stdout without breaking the bar.
    pub fn println(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.suspend(|| println!("{line}")),
            None => println!("{line}"),
        }
    }

    /// Time since the work started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Removes the bar (the last plain line stays).
    pub fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_line_gives_the_count_the_rate_and_the_time_left() {
        let p = Progress {
            bar: None,
            label: "users".into(),
            unit: "events",
            started: Instant::now(),
            last_line: None,
            silent: false,
        };
        assert_eq!(
            p.line(250, 1000, 50.0, ""),
            "users: 250/1000 events, 50 events/s, ETA 15s"
        );
        assert_eq!(
            p.line(0, 4, 0.0, "the stream"),
            "users: 0/4 events, 0 events/s, ETA ?, the stream"
        );
    }
}

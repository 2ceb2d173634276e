//! Latency samples (microseconds, bounded in count) and percentiles.

use std::time::Duration;

/// Latency samples in microseconds. Keeps at most `cap` samples and counts
/// the ones it had to drop, so memory stays bounded in any run.
#[derive(Debug, Clone)]
pub struct Samples {
    values: Vec<u64>,
    cap: usize,
    dropped: u64,
}

/// The usual figures of a set of samples, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Summary {
    /// Samples kept.
    pub n: usize,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// Largest sample.
    pub max: u64,
    /// Arithmetic mean.
    pub mean: f64,
}

impl Default for Samples {
    fn default() -> Self {
        Samples::with_cap(2_000_000)
    }
}

impl Samples {
    /// Samples keeping at most `cap` values.
    pub fn with_cap(cap: usize) -> Samples {
        Samples {
            values: Vec::new(),
            cap,
            dropped: 0,
        }
    }

    /// Adds one sample in microseconds.
    pub fn push(&mut self, micros: u64) {
        if self.values.len() < self.cap {
            self.values.push(micros);
        } else {
            self.dropped += 1;
        }
    }

    /// Adds one duration.
    pub fn record(&mut self, d: Duration) {
        self.push(d.as_micros().min(u64::MAX as u128) as u64);
    }

    /// Moves every sample of `other` in.
    pub fn merge(&mut self, other: Samples) {
        self.dropped += other.dropped;
        for v in other.values {
            self.push(v);
        }
    }

    /// Samples kept.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether no sample was kept.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Samples dropped because the cap was reached.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Percentiles, max and mean (all zero when there is no sample).
    pub fn summary(&mut self) -> Summary {
        self.values.sort_unstable();
        let v = &self.values;
        if v.is_empty() {
            return Summary::default();
        }
        let sum: u128 = v.iter().map(|&x| x as u128).sum();
        Summary {
            n: v.len(),
            p50: percentile(v, 50.0).unwrap_or(0),
            p90: percentile(v, 90.0).unwrap_or(0),
            p99: percentile(v, 99.0).unwrap_or(0),
            max: v[v.len() - 1],
            mean: sum as f64 / v.len() as f64,
        }
    }
}

/// The nearest-rank percentile `p` (0–100) of ascending `sorted` values;
/// `None` when empty.
pub fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let n = sorted.len();
    let rank = ((p / 100.0) * n as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, n) - 1])
}

/// A duration in microseconds as text: `850 µs`, `12.3 ms`, `4.20 s`.
pub fn fmt_micros(us: f64) -> String {
    if us < 1_000.0 {
        format!("{us:.0} µs")
    } else if us < 1_000_000.0 {
        format!("{:.1} ms", us / 1_000.0)
    } else {
        format!("{:.2} s", us / 1_000_000.0)
    }
}

/// A count with thousands separators: `1,234,567`.
pub fn fmt_count(x: f64) -> String {
    let neg = x < 0.0;
    let digits = format!("{:.0}", x.abs());
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if neg {
        format!("-{out}")
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles_of_one_to_a_hundred() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 99.0), Some(99));
        assert_eq!(percentile(&v, 100.0), Some(100));
        assert_eq!(percentile(&v, 0.0), Some(1));
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&[7], 99.0), Some(7));
    }

    #[test]
    fn p99_of_a_small_set_is_its_maximum() {
        let v = [1, 2, 3, 4, 1000];
        assert_eq!(percentile(&v, 99.0), Some(1000));
        assert_eq!(percentile(&v, 50.0), Some(3));
    }

    #[test]
    fn summary_sorts_and_the_cap_drops_the_excess() {
        let mut s = Samples::with_cap(4);
        for v in [40, 10, 30, 20, 99, 98] {
            s.push(v);
        }
        assert_eq!(s.len(), 4);
        assert_eq!(s.dropped(), 2);
        let sum = s.summary();
        assert_eq!((sum.p50, sum.max, sum.n), (20, 40, 4));
        assert!((sum.mean - 25.0).abs() < 1e-9);
        assert_eq!(Samples::with_cap(3).summary(), Summary::default());
    }

    #[test]
    fn numbers_are_printed_for_people() {
        assert_eq!(fmt_count(1_234_567.0), "1,234,567");
        assert_eq!(fmt_count(999.0), "999");
        assert_eq!(fmt_count(-1000.0), "-1,000");
        assert_eq!(fmt_micros(850.0), "850 µs");
        assert_eq!(fmt_micros(12_345.0), "12.3 ms");
        assert_eq!(fmt_micros(4_200_000.0), "4.20 s");
    }
}

//! Times on the wire: RFC 3339, UTC, exactly three fraction digits, `Z`.

use chrono::{DateTime, Utc};

/// Formats a time as `2026-11-24T09:15:02.123Z`.
pub fn format(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// Formats microseconds since the epoch.
pub fn format_us(us: i64) -> String {
    format(DateTime::from_timestamp_micros(us).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_have_three_fraction_digits_and_z() {
        assert_eq!(
            super::format_us(1_764_000_000_123_456),
            "2025-11-24T16:00:00.123Z"
        );
        assert_eq!(super::format_us(0), "1970-01-01T00:00:00.000Z");
    }
}

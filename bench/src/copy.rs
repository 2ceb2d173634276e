//! Postgres `COPY … FROM STDIN` text format: one row a line, columns
//! separated by tabs, `\N` for null, backslash escapes.

use std::fmt::Write as _;

use sqlx::PgConnection;
use uuid::Uuid;

use crate::Result;

/// Appends a text column, escaping backslash, tab, newline and carriage
/// return.
pub fn text(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

/// Appends a `bytea` column in hex form (`\x…`, its backslash escaped).
pub fn bytea(out: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push_str("\\\\x");
    out.reserve(bytes.len() * 2);
    for b in bytes {
        out.push(HEX[(b >> 4) as usize] as char);
        out.push(HEX[(b & 15) as usize] as char);
    }
}

/// Appends a `timestamptz` column from microseconds since the epoch (UTC).
pub fn time(out: &mut String, micros: i64) {
    let t = chrono::DateTime::from_timestamp_micros(micros).unwrap_or_default();
    let _ = write!(out, "{}", t.format("%Y-%m-%d %H:%M:%S%.6f+00"));
}

/// Appends a `uuid` column.
pub fn uuid(out: &mut String, id: Uuid) {
    let mut buf = Uuid::encode_buffer();
    out.push_str(id.hyphenated().encode_lower(&mut buf));
}

/// Appends a `text[]` column of simple words (letters, digits, `-`, `_`).
pub fn words(out: &mut String, items: &[String]) {
    out.push('{');
    for (i, w) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(w);
    }
    out.push('}');
}

/// Appends a column separator.
pub fn tab(out: &mut String) {
    out.push('\t');
}

/// Ends a row.
pub fn end(out: &mut String) {
    out.push('\n');
}

/// Runs `statement` (a `copy … from stdin`) and sends `data`; returns the
/// rows copied.
///
/// # Errors
/// When Postgres refuses the statement or a row.
pub async fn copy_in(conn: &mut PgConnection, statement: &str, data: &[u8]) -> Result<u64> {
    let mut copy = conn.copy_in_raw(statement).await?;
    for chunk in data.chunks(1 << 20) {
        copy.send(chunk).await?;
    }
    Ok(copy.finish().await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_columns_escape_what_copy_would_misread() {
        let mut s = String::new();
        text(&mut s, "a\tb\\c\nd");
        assert_eq!(s, "a\\tb\\\\c\\nd");
    }

    #[test]
    fn bytea_is_hex_with_an_escaped_backslash() {
        let mut s = String::new();
        bytea(&mut s, &[0x00, 0xab, 0x10]);
        assert_eq!(s, "\\\\x00ab10");
    }

    #[test]
    fn times_and_arrays_use_postgres_input_syntax() {
        let mut s = String::new();
        time(&mut s, 1_000_000_000_123_456);
        assert_eq!(s, "2001-09-09 01:46:40.123456+00");
        let mut a = String::new();
        words(&mut a, &["news".into(), "off-topic".into()]);
        assert_eq!(a, "{news,off-topic}");
    }
}

//! Cursor paging shared by the list routes: `?limit=N&cursor=C`, where the
//! cursor is the opaque form of the last item's log position, so pages are
//! stable while new items arrive; [`page`] cuts a fetched page.

use std::collections::{BTreeMap, HashMap};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sqlx::postgres::PgRow;
use sqlx::Row;

use crate::error::Result;

/// The opaque cursor of a log position.
pub fn encode_cursor(position: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("p{position}"))
}

/// The log position of a cursor, if it is one.
pub fn decode_cursor(s: &str) -> Option<i64> {
    let bytes = URL_SAFE_NO_PAD.decode(s).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    text.strip_prefix('p')?
        .parse::<i64>()
        .ok()
        .filter(|p| *p > 0)
}

/// Reads `limit` (1 to `max`, else `default`) and `cursor` of a list query;
/// problems go to `errors` under their parameter's name.
pub fn paging(
    q: &HashMap<String, String>,
    default: i64,
    max: i64,
    errors: &mut BTreeMap<String, String>,
) -> (i64, Option<i64>) {
    let limit = match q.get("limit") {
        None => default,
        Some(s) => match s.parse::<i64>() {
            Ok(n) if (1..=max).contains(&n) => n,
            _ => {
                errors.insert(
                    "limit".into(),
                    format!("must be an integer from 1 to {max}"),
                );
                default
            }
        },
    };
    let cursor = match q.get("cursor").map(String::as_str) {
        None | Some("") => None,
        Some(c) => match decode_cursor(c) {
            Some(p) => Some(p),
            None => {
                errors.insert("cursor".into(), "is not a valid cursor".into());
                None
            }
        },
    };
    (limit, cursor)
}

/// One page out of `rows`, fetched with a limit of `size + 1` so that a
/// row beyond the page tells that another page follows: the first `size`
/// rows as items, and the cursor after the last of them (its `position`
/// column), `None` on the last page.
///
/// # Errors
/// A row that does not map.
pub fn page<T>(
    rows: &[PgRow],
    size: i64,
    item: impl Fn(&PgRow) -> Result<T>,
) -> Result<(Vec<T>, Option<String>)> {
    let size = usize::try_from(size).unwrap_or(0);
    let mut items = Vec::with_capacity(rows.len().min(size));
    let mut last = None;
    for r in rows.iter().take(size) {
        items.push(item(r)?);
        last = Some(r.try_get::<i64, _>("position")?);
    }
    let next = if rows.len() > size {
        last.map(encode_cursor)
    } else {
        None
    };
    Ok((items, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        assert_eq!(decode_cursor(&encode_cursor(42)), Some(42));
        assert_eq!(decode_cursor("!!"), None);
        assert_eq!(decode_cursor(&URL_SAFE_NO_PAD.encode("p-1")), None);
        assert_eq!(decode_cursor(&URL_SAFE_NO_PAD.encode("x1")), None);
    }

    #[test]
    fn limits_out_of_range_and_bad_cursors_are_named() {
        let q: HashMap<String, String> = [
            ("limit".into(), "51".into()),
            ("cursor".into(), "zz".into()),
        ]
        .into();
        let mut errors = BTreeMap::new();
        assert_eq!(paging(&q, 10, 50, &mut errors), (10, None));
        assert_eq!(errors.len(), 2);
        let q: HashMap<String, String> = [("limit".into(), "50".into())].into();
        let mut errors = BTreeMap::new();
        assert_eq!(paging(&q, 10, 50, &mut errors), (50, None));
        assert!(errors.is_empty());
    }
}

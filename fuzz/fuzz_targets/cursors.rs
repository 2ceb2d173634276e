//! List cursors, `limit` and live-feed cursors: any string parses or is
//! refused; what parses re-encodes to itself.
#![no_main]

use std::collections::{BTreeMap, HashMap};

use forum_gateway::live::cursor::Cursor;
use forum_gateway::routes::paging::{decode_cursor, encode_cursor, paging};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(p) = decode_cursor(s) {
        assert!(p > 0);
        assert_eq!(decode_cursor(&encode_cursor(p)), Some(p));
    }
    if let Some(c) = Cursor::decode(s) {
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
    }
    let (limit, cursor) = s.split_once('&').unwrap_or((s, ""));
    let q = HashMap::from([
        ("limit".to_string(), limit.to_string()),
        ("cursor".to_string(), cursor.to_string()),
    ]);
    let mut errors = BTreeMap::new();
    let (n, _) = paging(&q, 20, 100, &mut errors);
    assert!((1..=100).contains(&n));
});

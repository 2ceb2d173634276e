//! A request body: bytes that are not JSON are refused by the parser (the
//! gateway answers `malformed_json`); a JSON object's fields are read or
//! named in one `validation_failed`, whatever their types.
#![no_main]

use forum_gateway::error::ApiError;
use forum_gateway::extract::Fields;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let mut f = Fields::new(&map);
    let strings = [
        "nickname",
        "email",
        "password",
        "first_name",
        "last_name",
        "gender",
        "login",
        "title",
        "content",
    ]
    .map(|name| f.string(name).is_some());
    let age = f.integer("age").is_some();
    match f.finish() {
        Ok(()) => assert!(age && strings.iter().all(|s| *s)),
        Err(ApiError::Validation(fields)) => assert!(!fields.is_empty()),
        Err(other) => panic!("unexpected refusal {other:?}"),
    }
});

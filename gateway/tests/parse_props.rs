//! Property tests of what the gateway parses from client bytes: list
//! cursors and `limit`, live-feed cursors, JSON request fields and whole
//! request bodies. Every input parses or gets the documented refusal; none
//! panics.

use std::collections::{BTreeMap, HashMap};

use forum_gateway::extract::{Fields, Validate};
use forum_gateway::live::cursor::Cursor;
use forum_gateway::live::frames::{parse_client, ClientFrame};
use forum_gateway::routes::auth::RegisterRequest;
use forum_gateway::routes::paging::{decode_cursor, encode_cursor, paging};
use proptest::prelude::*;
use serde_json::{Map, Value};

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        any::<String>().prop_map(Value::String),
        "[a-z0-9@. \\x00-\\x1f]{0,40}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map("[a-z_]{1,12}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn a_list_cursor_round_trips_and_any_other_string_is_refused_or_positive(
        position in 1i64..i64::MAX,
        garbage in any::<String>(),
    ) {
        prop_assert_eq!(decode_cursor(&encode_cursor(position)), Some(position));
        if let Some(p) = decode_cursor(&garbage) {
            prop_assert!(p > 0);
        }
    }

    #[test]
    fn paging_answers_a_limit_in_range_or_names_the_bad_parameter(
        limit in proptest::option::of(prop_oneof![any::<String>(), "-?[0-9]{1,20}".prop_map(|s| s)]),
        cursor in proptest::option::of(any::<String>()),
    ) {
        let mut q = HashMap::new();
        if let Some(l) = &limit {
            q.insert("limit".to_string(), l.clone());
        }
        if let Some(c) = &cursor {
            q.insert("cursor".to_string(), c.clone());
        }
        let mut errors = BTreeMap::new();
        let (n, before) = paging(&q, 20, 100, &mut errors);
        prop_assert!((1..=100).contains(&n));
        let limit_ok = limit.as_deref().is_none_or(|l| l.parse::<i64>().is_ok_and(|n| (1..=100).contains(&n)));
        prop_assert_eq!(errors.contains_key("limit"), !limit_ok);
        if let Some(p) = before {
            prop_assert!(p > 0);
        }
        prop_assert!(errors.keys().all(|k| k == "limit" || k == "cursor"));
    }

    #[test]
    fn a_live_cursor_round_trips_and_garbage_is_refused_or_well_formed(
        positions in any::<[u64; 3]>(),
        garbage in any::<String>(),
    ) {
        let c = Cursor { positions };
        prop_assert_eq!(Cursor::decode(&c.encode()), Some(c));
        if let Some(d) = Cursor::decode(&garbage) {
            prop_assert_eq!(Cursor::decode(&d.encode()), Some(d));
        }
    }

    #[test]
    fn a_client_frame_is_a_typing_frame_or_refused_with_a_documented_code(
        text in prop_oneof![
            any::<String>(),
            json_value().prop_map(|v| v.to_string()),
            (any::<u128>(), any::<bool>(), "[a-z]{0,8}").prop_map(|(id, active, t)| {
                serde_json::json!({"type": if t.is_empty() { "typing".to_string() } else { t },
                    "to": uuid::Uuid::from_u128(id).to_string(), "active": active}).to_string()
            }),
        ],
    ) {
        match parse_client(&text) {
            Ok(ClientFrame::Typing { to, active }) => {
                let v: Value = serde_json::from_str(&text).expect("accepted frames are JSON");
                prop_assert_eq!(v["type"].as_str(), Some("typing"));
                prop_assert_eq!(v["to"].as_str().map(|s| s.to_ascii_lowercase()), Some(to.to_string()));
                prop_assert_eq!(v["active"].as_bool(), Some(active));
            }
            Err((code, message)) => {
                prop_assert!(code == "malformed_json" || code == "validation_failed");
                prop_assert!(!message.is_empty() && message.len() < 200);
            }
        }
    }

    #[test]
    fn fields_of_any_json_object_are_read_or_named_in_the_refusal(
        map in proptest::collection::btree_map(
            prop_oneof![Just("nickname".to_string()), Just("age".to_string()), "[a-z]{1,8}"],
            json_value(),
            0..6,
        ),
    ) {
        let map: Map<String, Value> = map.into_iter().collect();
        let mut f = Fields::new(&map);
        let nickname = f.string("nickname");
        let age = f.integer("age");
        let present = (map.contains_key("nickname"), map.contains_key("age"));
        match f.finish() {
            Ok(()) => {
                prop_assert!(nickname.is_some() && age.is_some());
                prop_assert_eq!(present, (true, true));
            }
            Err(forum_gateway::error::ApiError::Validation(fields)) => {
                prop_assert!(!fields.is_empty());
                prop_assert_eq!(fields.contains_key("nickname"), nickname.is_none());
                prop_assert_eq!(fields.contains_key("age"), age.is_none());
            }
            Err(other) => prop_assert!(false, "unexpected {other:?}"),
        }
    }

    #[test]
    fn a_register_body_is_accepted_whole_or_refused_naming_every_bad_field(
        map in proptest::collection::btree_map(
            prop_oneof![
                Just("nickname".to_string()), Just("email".to_string()),
                Just("password".to_string()), Just("first_name".to_string()),
                Just("last_name".to_string()), Just("age".to_string()),
                Just("gender".to_string()), "[a-z]{1,8}",
            ],
            prop_oneof![
                json_value(),
                Just(Value::from("ann_1")), Just(Value::from("ann@example.com")),
                Just(Value::from("a long password")), Just(Value::from(30)),
                Just(Value::from(30.0)), Just(Value::from("other")),
            ],
            0..10,
        ),
    ) {
        const FIELDS: [&str; 7] =
            ["nickname", "email", "password", "first_name", "last_name", "age", "gender"];
        let map: Map<String, Value> = map.into_iter().collect();
        match RegisterRequest::parse(&map) {
            Ok(body) => {
                prop_assert!(FIELDS.iter().all(|f| map.contains_key(*f)));
                prop_assert!((13..=130).contains(&body.age));
            }
            Err(forum_gateway::error::ApiError::Validation(fields)) => {
                prop_assert!(!fields.is_empty());
                prop_assert!(fields.keys().all(|k| FIELDS.contains(&k.as_str())), "{fields:?}");
                for f in FIELDS {
                    if !map.contains_key(f) {
                        prop_assert!(fields.contains_key(f), "{f} missing but not named");
                    }
                }
            }
            Err(other) => prop_assert!(false, "unexpected {other:?}"),
        }
    }
}

//! Property tests of the edge validation every request body goes through:
//! any string either parses into a value that keeps the API's rules or is
//! refused with a message; none panics, and no accepted text holds a
//! control character other than tab and line breaks.

use forum_commands::auth::validate::{age, gender, Email, Nickname, Password, PersonName};
use forum_commands::chat::validate::MessageContent;
use forum_commands::posts::validate::{Categories, CommentContent, PostContent, Title};
use forum_commands::text;
use proptest::prelude::*;

/// Any text, biased towards what breaks things: controls, NUL, blanks,
/// combining marks, astral characters, long runs.
fn texts() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[\\x00-\\x1f\\x7f-\\u{9f} \\t\\r\\na-z]{0,40}",
        "\\PC{0,300}",
        proptest::collection::vec(any::<char>(), 0..30).prop_map(|v| v.into_iter().collect()),
        (1usize..25_000).prop_map(|n| "é".repeat(n)),
    ]
}

fn clean(s: &str) -> bool {
    !s.chars().any(text::is_refused)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn texts_parse_within_their_rules_or_are_refused(s in texts()) {
        let chars = s.chars().count();
        let controls = !clean(&s);
        if let Ok(t) = Title::parse(&s) {
            let t = t.into_inner();
            prop_assert!(clean(&t) && !t.trim().is_empty() && t.chars().count() <= 200);
        }
        if let Ok(c) = PostContent::parse(&s) {
            prop_assert!(clean(&s) && chars <= 20_000);
            prop_assert_eq!(c.into_inner(), s.clone());
        }
        if let Ok(c) = CommentContent::parse(&s) {
            prop_assert!(clean(&s) && chars <= 5_000);
            prop_assert_eq!(c.into_inner(), s.clone());
        }
        if let Ok(c) = MessageContent::parse(&s) {
            prop_assert!(clean(&s) && chars <= 2_000);
            prop_assert_eq!(c.into_inner(), s.clone());
        }
        if let Ok(n) = PersonName::parse(&s) {
            let n = n.into_inner();
            prop_assert!(clean(&n) && (1..=64).contains(&n.chars().count()));
        }
        if let Ok(n) = Nickname::parse(&s) {
            prop_assert!(n.into_inner().chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)));
        }
        if let Ok(e) = Email::parse(&s) {
            let e = e.into_inner();
            prop_assert!(clean(&e) && e.chars().count() <= 254 && e.matches('@').count() == 1);
        }
        if let Ok(p) = Password::parse(&s) {
            prop_assert!((8..=128).contains(&p.into_inner().chars().count()));
        }
        if controls {
            prop_assert_eq!(Title::parse(&s), Err(text::CONTROL_CHARACTER));
            prop_assert_eq!(PostContent::parse(&s), Err(text::CONTROL_CHARACTER));
            prop_assert_eq!(CommentContent::parse(&s), Err(text::CONTROL_CHARACTER));
            prop_assert_eq!(MessageContent::parse(&s), Err(text::CONTROL_CHARACTER));
            prop_assert_eq!(PersonName::parse(&s), Err(text::CONTROL_CHARACTER));
            prop_assert!(Nickname::parse(&s).is_err() && Email::parse(&s).is_err());
        }
        let _ = gender(&s);
    }

    #[test]
    fn ages_and_categories_parse_within_their_rules_or_are_refused(
        n in any::<i64>(),
        slugs in proptest::collection::vec(
            prop_oneof![Just("general".to_string()), Just("news".to_string()), "\\PC{0,12}"],
            0..8,
        ),
    ) {
        prop_assert_eq!(age(n).is_ok(), (13..=130).contains(&n));
        if let Ok(c) = Categories::parse(slugs.iter().map(String::as_str)) {
            let c = c.into_inner();
            prop_assert!((1..=5).contains(&c.len()));
        }
    }
}

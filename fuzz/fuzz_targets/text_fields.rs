//! Every text field's validation: any string parses within the API's rules
//! or is refused; nothing accepted holds a refused control character.
#![no_main]

use forum_commands::auth::validate::{Email, Nickname, Password, PersonName};
use forum_commands::chat::validate::MessageContent;
use forum_commands::posts::validate::{CommentContent, PostContent, Title};
use forum_commands::text;
use libfuzzer_sys::fuzz_target;

fn clean(s: &str) -> bool {
    !s.chars().any(text::is_refused)
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(t) = Title::parse(s) {
        assert!(clean(&t.into_inner()));
    }
    if PostContent::parse(s).is_ok()
        || CommentContent::parse(s).is_ok()
        || MessageContent::parse(s).is_ok()
    {
        assert!(clean(s));
    }
    if let Ok(n) = PersonName::parse(s) {
        assert!(clean(&n.into_inner()));
    }
    if Nickname::parse(s).is_ok() || Email::parse(s).is_ok() {
        assert!(clean(s));
    }
    let _ = Password::parse(s);
});

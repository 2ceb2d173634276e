//! The event decoder: any envelope bytes, and any payload under every known
//! (type, version), decode or are refused; what decodes re-encodes equal.
#![no_main]

use forum_events::auth::AuthEvent;
use forum_events::chat::ChatEvent;
use forum_events::envelope::{EventSet, RecordedEvent};
use forum_events::notifications::NotificationEvent;
use forum_events::posts::PostEvent;
use libfuzzer_sys::fuzz_target;

const TYPES: [&str; 15] = [
    "user_registered",
    "session_started",
    "session_revoked",
    "post_created",
    "post_edited",
    "post_deleted",
    "comment_created",
    "comment_edited",
    "comment_deleted",
    "reaction_set",
    "message_sent",
    "messages_read",
    "notification_created",
    "notifications_read",
    "all_notifications_read",
];

fn check<E: EventSet + PartialEq + std::fmt::Debug>(
    event_type: &str,
    version: u16,
    payload: &[u8],
) {
    if let Ok(event) = E::decode(event_type, version, payload) {
        let again = E::decode(
            event.event_type(),
            event.schema_version(),
            &event.encode_payload(),
        );
        assert_eq!(again.ok(), Some(event));
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(envelope) = RecordedEvent::from_bytes(data) {
        assert_eq!(
            RecordedEvent::from_bytes(&envelope.to_bytes()).ok(),
            Some(envelope)
        );
    }
    let Some((&selector, payload)) = data.split_first() else {
        return;
    };
    let event_type = TYPES[selector as usize % TYPES.len()];
    let version = u16::from(selector >> 6);
    check::<AuthEvent>(event_type, version, payload);
    check::<PostEvent>(event_type, version, payload);
    check::<ChatEvent>(event_type, version, payload);
    check::<NotificationEvent>(event_type, version, payload);
});

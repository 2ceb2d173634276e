//! Property tests of the event decoder: whatever bytes reach it (from the
//! log, from NATS, from a client that reached NATS), it answers an event or
//! a `DecodeError`, never panics, and what it accepts re-encodes to an event
//! that decodes equal.

use forum_events::auth::AuthEvent;
use forum_events::chat::ChatEvent;
use forum_events::envelope::{EventSet, Metadata, RecordedEvent, Service};
use forum_events::notifications::NotificationEvent;
use forum_events::posts::PostEvent;
use proptest::prelude::*;
use uuid::Uuid;

const TYPES: [&str; 16] = [
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
    "no_such_type",
];

/// Decodes with `E`; when it accepts, the event's own encoding decodes to
/// the same event.
fn decodes_or_refuses<E: EventSet + PartialEq + std::fmt::Debug>(
    event_type: &str,
    version: u16,
    payload: &[u8],
) -> Result<(), TestCaseError> {
    if let Ok(event) = E::decode(event_type, version, payload) {
        let again = E::decode(
            event.event_type(),
            event.schema_version(),
            &event.encode_payload(),
        );
        prop_assert_eq!(again.as_ref().ok(), Some(&event));
    }
    Ok(())
}

fn payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..64),
        proptest::collection::vec(any::<u8>(), 0..2048),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_payload_of_any_type_decodes_or_is_refused(
        event_type in proptest::sample::select(TYPES.to_vec()),
        version in 0u16..4,
        payload in payload(),
    ) {
        decodes_or_refuses::<AuthEvent>(event_type, version, &payload)?;
        decodes_or_refuses::<PostEvent>(event_type, version, &payload)?;
        decodes_or_refuses::<ChatEvent>(event_type, version, &payload)?;
        decodes_or_refuses::<NotificationEvent>(event_type, version, &payload)?;
    }

    #[test]
    fn any_envelope_bytes_decode_or_are_refused(bytes in payload()) {
        if let Ok(envelope) = RecordedEvent::from_bytes(&bytes) {
            prop_assert_eq!(RecordedEvent::from_bytes(&envelope.to_bytes()).ok(), Some(envelope));
        }
    }

    #[test]
    fn an_envelope_round_trips_and_trailing_or_missing_bytes_are_refused(
        service in proptest::sample::select(Service::ALL.to_vec()),
        position in 1u64..u64::MAX,
        version in 1u32..u32::MAX,
        event_type in "[a-z_]{0,40}",
        schema_version in any::<u16>(),
        payload in payload(),
        ids in any::<[u128; 4]>(),
        actor in any::<bool>(),
        recorded_at_us in any::<i64>(),
        extra in proptest::collection::vec(any::<u8>(), 1..8),
    ) {
        let event = RecordedEvent {
            service,
            position,
            stream_id: Uuid::from_u128(ids[0]),
            version,
            event_id: Uuid::from_u128(ids[1]),
            event_type,
            schema_version,
            payload,
            metadata: Metadata {
                correlation_id: Uuid::from_u128(ids[2]),
                causation_id: Uuid::from_u128(ids[3]),
                actor: actor.then(|| Uuid::from_u128(ids[0] ^ ids[3])),
                recorded_at_us,
            },
        };
        let bytes = event.to_bytes();
        prop_assert_eq!(RecordedEvent::from_bytes(&bytes).ok(), Some(event));
        let mut longer = bytes.clone();
        longer.extend_from_slice(&extra);
        prop_assert!(RecordedEvent::from_bytes(&longer).is_err());
        let step = (bytes.len() / 32).max(1);
        for cut in (0..bytes.len()).step_by(step) {
            prop_assert!(RecordedEvent::from_bytes(&bytes[..cut]).is_err());
        }
    }
}

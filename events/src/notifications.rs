//! Events of the notifications service (log `notifications`).
//!
//! Notifications are derived from other services' events. Each is created
//! exactly once per (causing event, recipient): its id is
//! [`notification_id`] of the two, so a redelivered cause maps to the same
//! id and is recognised. Every event of a user's notifications is stored in
//! that user's stream (stream id = user id).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::codec::{decode, encode, DecodeError};
use crate::{EventSet, Service};

/// The namespace of notification ids (a fixed random UUID).
const NOTIFICATIONS: Uuid = Uuid::from_u128(0x2e8a_71d4_05b3_4c6f_9d12_c4e7_88f0_1a5d);

/// The id of the notification `cause` (an event id) gives `recipient`.
pub fn notification_id(cause: Uuid, recipient: Uuid) -> Uuid {
    let mut name = [0u8; 32];
    name[..16].copy_from_slice(cause.as_bytes());
    name[16..].copy_from_slice(recipient.as_bytes());
    Uuid::new_v5(&NOTIFICATIONS, &name)
}

/// What a notification is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NotificationKind {
    /// Someone commented on the user's post.
    Comment,
    /// Someone liked or disliked the user's post or comment.
    Reaction,
    /// Someone sent the user a message.
    Message,
}

impl NotificationKind {
    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationKind::Comment => "comment",
            NotificationKind::Reaction => "reaction",
            NotificationKind::Message => "message",
        }
    }
}

/// A notification was created (`notification_created`, v1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationCreated {
    /// The notification ([`notification_id`] of cause and recipient).
    pub notification_id: Uuid,
    /// The notified user (the stream id).
    pub user_id: Uuid,
    /// What it is about.
    pub kind: NotificationKind,
    /// Who acted.
    pub actor_id: Uuid,
    /// Their nickname at the time.
    pub actor_nickname: String,
    /// The post concerned, if any.
    pub post_id: Option<Uuid>,
    /// The comment concerned, if any.
    pub comment_id: Option<Uuid>,
    /// The message concerned, if any.
    pub message_id: Option<Uuid>,
    /// The id of the event that caused it.
    pub cause_event_id: Uuid,
    /// When, µs since the epoch (the cause's time).
    pub created_at_us: i64,
}

/// A user marked some of their notifications read (`notifications_read`,
/// v1). Only ids that were theirs and unread are listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationsRead {
    /// The user (the stream id).
    pub user_id: Uuid,
    /// The notifications now read.
    pub ids: Vec<Uuid>,
    /// When, µs.
    pub read_at_us: i64,
}

/// A user marked every notification they had read
/// (`all_notifications_read`, v1): those created before this event in the
/// log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllNotificationsRead {
    /// The user (the stream id).
    pub user_id: Uuid,
    /// When, µs.
    pub read_at_us: i64,
}

/// Every event of the notifications service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotificationEvent {
    /// See [`NotificationCreated`].
    Created(NotificationCreated),
    /// See [`NotificationsRead`].
    Read(NotificationsRead),
    /// See [`AllNotificationsRead`].
    AllRead(AllNotificationsRead),
}

impl NotificationEvent {
    /// The user whose stream holds the event.
    pub fn user_id(&self) -> Uuid {
        match self {
            NotificationEvent::Created(e) => e.user_id,
            NotificationEvent::Read(e) => e.user_id,
            NotificationEvent::AllRead(e) => e.user_id,
        }
    }
}

impl EventSet for NotificationEvent {
    const SERVICE: Service = Service::Notifications;

    fn event_type(&self) -> &'static str {
        match self {
            NotificationEvent::Created(_) => "notification_created",
            NotificationEvent::Read(_) => "notifications_read",
            NotificationEvent::AllRead(_) => "all_notifications_read",
        }
    }

    fn schema_version(&self) -> u16 {
        1
    }

    fn encode_payload(&self) -> Vec<u8> {
        match self {
            NotificationEvent::Created(e) => encode(e),
            NotificationEvent::Read(e) => encode(e),
            NotificationEvent::AllRead(e) => encode(e),
        }
    }

    fn decode(event_type: &str, schema_version: u16, payload: &[u8]) -> Result<Self, DecodeError> {
        match (event_type, schema_version) {
            ("notification_created", 1) => decode(payload).map(NotificationEvent::Created),
            ("notifications_read", 1) => decode(payload).map(NotificationEvent::Read),
            ("all_notifications_read", 1) => decode(payload).map(NotificationEvent::AllRead),
            _ => Err(DecodeError::UnknownType {
                event_type: event_type.to_string(),
                schema_version,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{hex, id, unhex};

    fn golden() -> Vec<(&'static str, u16, &'static str, NotificationEvent)> {
        vec![
            (
                "notification_created",
                1,
                "1001010101010101010101010101010101100202020202020202020202020202020201100303030303030303030303030303030303626f6201100404040404040404040404040404040401100505050505050505050505050505050500100606060606060606060606060606060680897a",
                NotificationEvent::Created(NotificationCreated {
                    notification_id: id(1),
                    user_id: id(2),
                    kind: NotificationKind::Reaction,
                    actor_id: id(3),
                    actor_nickname: "bob".into(),
                    post_id: Some(id(4)),
                    comment_id: Some(id(5)),
                    message_id: None,
                    cause_event_id: id(6),
                    created_at_us: 1_000_000,
                }),
            ),
            (
                "notifications_read",
                1,
                "100202020202020202020202020202020202100101010101010101010101010101010110070707070707070707070707070707078092f401",
                NotificationEvent::Read(NotificationsRead {
                    user_id: id(2),
                    ids: vec![id(1), id(7)],
                    read_at_us: 2_000_000,
                }),
            ),
            (
                "all_notifications_read",
                1,
                "1002020202020202020202020202020202809bee02",
                NotificationEvent::AllRead(AllNotificationsRead {
                    user_id: id(2),
                    read_at_us: 3_000_000,
                }),
            ),
        ]
    }

    #[test]
    fn golden_vectors_of_every_notifications_event_decode() {
        for (ty, ver, bytes, expected) in golden() {
            assert_eq!(
                hex(&expected.encode_payload()),
                bytes,
                "{ty} v{ver} encodes"
            );
            let decoded = NotificationEvent::decode(ty, ver, &unhex(bytes))
                .unwrap_or_else(|e| panic!("{ty} v{ver}: {e}"));
            assert_eq!(decoded, expected, "{ty} v{ver}");
            assert_eq!(expected.event_type(), ty);
        }
    }

    #[test]
    fn trailing_bytes_and_unknown_types_are_rejected() {
        let (ty, ver, bytes, _) = &golden()[2];
        let mut b = unhex(bytes);
        b.push(0);
        assert_eq!(
            NotificationEvent::decode(ty, *ver, &b),
            Err(DecodeError::TrailingBytes(1))
        );
        assert!(matches!(
            NotificationEvent::decode("notification_created", 2, &[]),
            Err(DecodeError::UnknownType { .. })
        ));
    }

    #[test]
    fn a_cause_gives_each_recipient_one_stable_id() {
        let (cause, a, b) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        assert_eq!(notification_id(cause, a), notification_id(cause, a));
        assert_ne!(notification_id(cause, a), notification_id(cause, b));
        assert_ne!(
            notification_id(cause, a),
            notification_id(Uuid::new_v4(), a)
        );
    }
}

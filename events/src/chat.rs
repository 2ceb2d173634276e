//! Events of the chat service (log `chat`): private messages and read
//! receipts.
//!
//! Every event of a conversation is stored in the conversation's stream,
//! whose id is derived from the two participants ([`conversation_id`]), so
//! the events of one conversation are totally ordered. Each event carries
//! what the live feed needs to build its frame without reading the database.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::codec::{decode, encode, DecodeError};
use crate::{EventSet, Service};

/// The namespace of conversation ids (a fixed random UUID).
const CONVERSATIONS: Uuid = Uuid::from_u128(0x6b1f_3c0e_9a4d_4e21_8f57_2d0c_51a9_e3b4);

/// The id of the conversation between `a` and `b`: the same for both
/// orders, different for every pair.
pub fn conversation_id(a: Uuid, b: Uuid) -> Uuid {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    let mut name = [0u8; 32];
    name[..16].copy_from_slice(lo.as_bytes());
    name[16..].copy_from_slice(hi.as_bytes());
    Uuid::new_v5(&CONVERSATIONS, &name)
}

/// A private message was sent (`message_sent`, v1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageSent {
    /// The message.
    pub message_id: Uuid,
    /// The conversation (the stream id).
    pub conversation_id: Uuid,
    /// The sender.
    pub from_id: Uuid,
    /// The sender's nickname when the message was sent.
    pub from_nickname: String,
    /// The recipient.
    pub to_id: Uuid,
    /// Content.
    pub content: String,
    /// When, µs since the epoch.
    pub sent_at_us: i64,
}

/// A participant read the other's messages up to one of them
/// (`messages_read`, v1): that message and every older one from `other_id`
/// to `reader_id` are read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessagesRead {
    /// The conversation (the stream id).
    pub conversation_id: Uuid,
    /// Who read.
    pub reader_id: Uuid,
    /// The other participant, whose messages were read.
    pub other_id: Uuid,
    /// The message read up to (as the client named it).
    pub up_to: Uuid,
    /// The chat-log position of that message's `message_sent`: messages
    /// at or before it are read.
    pub up_to_position: u64,
    /// When, µs.
    pub read_at_us: i64,
}

/// Every event of the chat service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatEvent {
    /// See [`MessageSent`].
    MessageSent(MessageSent),
    /// See [`MessagesRead`].
    MessagesRead(MessagesRead),
}

impl ChatEvent {
    /// The conversation whose stream holds the event.
    pub fn conversation_id(&self) -> Uuid {
        match self {
            ChatEvent::MessageSent(e) => e.conversation_id,
            ChatEvent::MessagesRead(e) => e.conversation_id,
        }
    }

    /// The two participants.
    pub fn participants(&self) -> [Uuid; 2] {
        match self {
            ChatEvent::MessageSent(e) => [e.from_id, e.to_id],
            ChatEvent::MessagesRead(e) => [e.reader_id, e.other_id],
        }
    }
}

impl EventSet for ChatEvent {
    const SERVICE: Service = Service::Chat;

    fn event_type(&self) -> &'static str {
        match self {
            ChatEvent::MessageSent(_) => "message_sent",
            ChatEvent::MessagesRead(_) => "messages_read",
        }
    }

    fn schema_version(&self) -> u16 {
        1
    }

    fn encode_payload(&self) -> Vec<u8> {
        match self {
            ChatEvent::MessageSent(e) => encode(e),
            ChatEvent::MessagesRead(e) => encode(e),
        }
    }

    fn decode(event_type: &str, schema_version: u16, payload: &[u8]) -> Result<Self, DecodeError> {
        match (event_type, schema_version) {
            ("message_sent", 1) => decode(payload).map(ChatEvent::MessageSent),
            ("messages_read", 1) => decode(payload).map(ChatEvent::MessagesRead),
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

    fn golden() -> Vec<(&'static str, u16, &'static str, ChatEvent)> {
        vec![
            (
                "message_sent",
                1,
                "10010101010101010101010101010101011002020202020202020202020202020202100303030303030303030303030303030303616e6e100404040404040404040404040404040402686980897a",
                ChatEvent::MessageSent(MessageSent {
                    message_id: id(1),
                    conversation_id: id(2),
                    from_id: id(3),
                    from_nickname: "ann".into(),
                    to_id: id(4),
                    content: "hi".into(),
                    sent_at_us: 1_000_000,
                }),
            ),
            (
                "messages_read",
                1,
                "1002020202020202020202020202020202100404040404040404040404040404040410030303030303030303030303030303031001010101010101010101010101010101078092f401",
                ChatEvent::MessagesRead(MessagesRead {
                    conversation_id: id(2),
                    reader_id: id(4),
                    other_id: id(3),
                    up_to: id(1),
                    up_to_position: 7,
                    read_at_us: 2_000_000,
                }),
            ),
        ]
    }

    #[test]
    fn golden_vectors_of_every_chat_event_decode() {
        for (ty, ver, bytes, expected) in golden() {
            assert_eq!(
                hex(&expected.encode_payload()),
                bytes,
                "{ty} v{ver} encodes"
            );
            let decoded = ChatEvent::decode(ty, ver, &unhex(bytes))
                .unwrap_or_else(|e| panic!("{ty} v{ver}: {e}"));
            assert_eq!(decoded, expected, "{ty} v{ver}");
            assert_eq!(expected.event_type(), ty);
        }
    }

    #[test]
    fn trailing_bytes_and_unknown_types_are_rejected() {
        let (ty, ver, bytes, _) = &golden()[0];
        let mut b = unhex(bytes);
        b.push(0);
        assert_eq!(
            ChatEvent::decode(ty, *ver, &b),
            Err(DecodeError::TrailingBytes(1))
        );
        assert!(matches!(
            ChatEvent::decode("message_sent", 2, &[]),
            Err(DecodeError::UnknownType { .. })
        ));
    }

    #[test]
    fn a_conversation_has_one_id_whoever_starts_it() {
        let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        assert_eq!(conversation_id(a, b), conversation_id(b, a));
        assert_ne!(conversation_id(a, b), conversation_id(a, c));
        assert_ne!(conversation_id(a, b), conversation_id(b, c));
    }
}

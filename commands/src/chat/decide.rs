//! The chat decisions: pure functions of state and command. [`apply`]
//! folds events into [`World`] and holds no rule.

use std::collections::{BTreeSet, HashMap};

use forum_events::chat::{conversation_id, ChatEvent, MessageSent, MessagesRead};
use uuid::Uuid;

use crate::wire::Rejection;

/// A stored message as decisions see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageState {
    /// Its conversation.
    pub conversation_id: Uuid,
    /// The sender.
    pub from_id: Uuid,
    /// The recipient.
    pub to_id: Uuid,
    /// The chat-log position of its `message_sent`.
    pub position: u64,
}

/// How far one participant has read the other's messages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadState {
    /// Messages from the other at or before this chat-log position are read.
    pub read_up_to: u64,
    /// Positions of the other's messages to the reader after `read_up_to`
    /// (unread), as far as the batch's receipts can reach.
    pub unread: BTreeSet<u64>,
}

/// The state a batch of chat decisions reads and the events it folds into.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct World {
    /// Conversation stream versions (absent: no event yet).
    pub versions: HashMap<Uuid, u32>,
    /// Stored messages by id (those the batch names).
    pub messages: HashMap<Uuid, MessageState>,
    /// Read state by (reader, other).
    pub reads: HashMap<(Uuid, Uuid), ReadState>,
}

impl World {
    /// A conversation stream's version (0 before its first event).
    pub fn version(&self, conversation: Uuid) -> u32 {
        self.versions.get(&conversation).copied().unwrap_or(0)
    }
}

/// Folds one event into the world: the conversation's version moves by one;
/// a read receipt moves the reader's mark. A sent message has no position
/// until it is appended, so it is not added to `messages` here.
pub fn apply(world: &mut World, event: &ChatEvent) {
    *world.versions.entry(event.conversation_id()).or_insert(0) += 1;
    if let ChatEvent::MessagesRead(e) = event {
        let read = world.reads.entry((e.reader_id, e.other_id)).or_default();
        read.read_up_to = read.read_up_to.max(e.up_to_position);
        read.unread.retain(|p| *p > e.up_to_position);
    }
}

/// A message to send, after preparation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    /// Chosen id.
    pub message_id: Uuid,
    /// The actor.
    pub from_id: Uuid,
    /// The actor's nickname.
    pub from_nickname: String,
    /// The recipient (known to exist).
    pub to_id: Uuid,
    /// Validated content.
    pub content: String,
    /// µs.
    pub at_us: i64,
}

/// Sending a message: to anyone but oneself.
///
/// # Errors
/// [`Rejection::Validation`] on `to` for a message to oneself.
pub fn send_message(m: &NewMessage) -> Result<Vec<ChatEvent>, Rejection> {
    if m.from_id == m.to_id {
        return Err(Rejection::Validation(vec![(
            "to".into(),
            "cannot send a message to yourself".into(),
        )]));
    }
    Ok(vec![ChatEvent::MessageSent(MessageSent {
        message_id: m.message_id,
        conversation_id: conversation_id(m.from_id, m.to_id),
        from_id: m.from_id,
        from_nickname: m.from_nickname.clone(),
        to_id: m.to_id,
        content: m.content.clone(),
        sent_at_us: m.at_us,
    })])
}

/// A read receipt: `up_to` must be a message of the conversation between
/// `reader` and `other` (so only its participants can mark it). It reads
/// that message and every older one from `other` to `reader`; an event is
/// emitted only when one of them was unread.
///
/// # Errors
/// [`Rejection::NotFound`] when `up_to` is not a message of that
/// conversation.
pub fn mark_read(
    world: &World,
    reader: Uuid,
    other: Uuid,
    up_to: Uuid,
    at_us: i64,
) -> Result<Vec<ChatEvent>, Rejection> {
    let conversation = conversation_id(reader, other);
    let message = world
        .messages
        .get(&up_to)
        .filter(|m| reader != other && m.conversation_id == conversation)
        .ok_or(Rejection::NotFound)?;
    let changes = world
        .reads
        .get(&(reader, other))
        .and_then(|r| r.unread.range(..=message.position).next())
        .is_some();
    if !changes {
        return Ok(Vec::new());
    }
    Ok(vec![ChatEvent::MessagesRead(MessagesRead {
        conversation_id: conversation,
        reader_id: reader,
        other_id: other,
        up_to,
        up_to_position: message.position,
        read_at_us: at_us,
    })])
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANN: Uuid = Uuid::from_u128(1);
    const BOB: Uuid = Uuid::from_u128(2);
    const EVE: Uuid = Uuid::from_u128(3);

    fn message(n: u128, from: Uuid, to: Uuid, position: u64) -> (Uuid, MessageState) {
        (
            Uuid::from_u128(100 + n),
            MessageState {
                conversation_id: conversation_id(from, to),
                from_id: from,
                to_id: to,
                position,
            },
        )
    }

    /// Ann and Bob's conversation: Bob wrote at 1 and 2, Ann at 3, Bob at 4;
    /// Ann has read nothing.
    fn given() -> World {
        let mut w = World::default();
        for (id, m) in [
            message(1, BOB, ANN, 1),
            message(2, BOB, ANN, 2),
            message(3, ANN, BOB, 3),
            message(4, BOB, ANN, 4),
        ] {
            w.messages.insert(id, m);
        }
        w.versions.insert(conversation_id(ANN, BOB), 4);
        w.reads.insert(
            (ANN, BOB),
            ReadState {
                read_up_to: 0,
                unread: [1, 2, 4].into(),
            },
        );
        w
    }

    fn new_message(from: Uuid, to: Uuid) -> NewMessage {
        NewMessage {
            message_id: Uuid::from_u128(200),
            from_id: from,
            from_nickname: "ann".into(),
            to_id: to,
            content: "hi".into(),
            at_us: 9,
        }
    }

    #[test]
    fn given_two_users_when_one_sends_a_message_then_message_sent_in_their_conversation() {
        let events = send_message(&new_message(ANN, BOB)).expect("accepted");
        assert!(matches!(&events[..], [ChatEvent::MessageSent(e)]
            if e.conversation_id == conversation_id(BOB, ANN) && e.from_id == ANN
               && e.to_id == BOB && e.content == "hi" && e.sent_at_us == 9));
        let mut w = given();
        apply(&mut w, &events[0]);
        assert_eq!(w.version(conversation_id(ANN, BOB)), 5);
    }

    #[test]
    fn given_anyone_when_sending_a_message_to_oneself_then_validation_fails_on_to() {
        assert_eq!(
            send_message(&new_message(ANN, ANN)),
            Err(Rejection::Validation(vec![(
                "to".into(),
                "cannot send a message to yourself".into()
            )]))
        );
    }

    #[test]
    fn given_unread_messages_when_reading_up_to_one_then_messages_read_at_its_position() {
        let w = given();
        let events = mark_read(&w, ANN, BOB, Uuid::from_u128(102), 7).expect("accepted");
        assert_eq!(
            events,
            vec![ChatEvent::MessagesRead(MessagesRead {
                conversation_id: conversation_id(ANN, BOB),
                reader_id: ANN,
                other_id: BOB,
                up_to: Uuid::from_u128(102),
                up_to_position: 2,
                read_at_us: 7,
            })]
        );
        let mut w2 = w.clone();
        apply(&mut w2, &events[0]);
        assert_eq!(w2.reads[&(ANN, BOB)].read_up_to, 2);
        assert_eq!(w2.reads[&(ANN, BOB)].unread, [4].into());
    }

    #[test]
    fn given_everything_up_to_a_message_read_when_reading_it_again_then_nothing_happens() {
        let mut w = given();
        let events = mark_read(&w, ANN, BOB, Uuid::from_u128(102), 7).expect("first");
        apply(&mut w, &events[0]);
        assert_eq!(mark_read(&w, ANN, BOB, Uuid::from_u128(101), 8), Ok(vec![]));
        assert_eq!(mark_read(&w, ANN, BOB, Uuid::from_u128(102), 8), Ok(vec![]));
        // Ann's own later message: nothing unread from Bob up to it.
        assert_eq!(mark_read(&w, ANN, BOB, Uuid::from_u128(103), 8), Ok(vec![]));
        // Bob's later message is still unread.
        assert_eq!(
            mark_read(&w, ANN, BOB, Uuid::from_u128(104), 8)
                .expect("accepted")
                .len(),
            1
        );
    }

    #[test]
    fn given_a_conversation_when_the_sender_marks_their_own_messages_then_nothing_happens() {
        // Bob marks up to his own first message: nothing from Ann is at or
        // before it.
        let w = given();
        assert_eq!(mark_read(&w, BOB, ANN, Uuid::from_u128(101), 8), Ok(vec![]));
    }

    #[test]
    fn given_a_message_of_another_conversation_when_marking_it_read_then_not_found() {
        let w = given();
        assert_eq!(
            mark_read(&w, EVE, BOB, Uuid::from_u128(101), 8),
            Err(Rejection::NotFound)
        );
        assert_eq!(
            mark_read(&w, EVE, ANN, Uuid::from_u128(101), 8),
            Err(Rejection::NotFound)
        );
        assert_eq!(
            mark_read(&w, ANN, BOB, Uuid::from_u128(999), 8),
            Err(Rejection::NotFound)
        );
        assert_eq!(
            mark_read(&w, ANN, ANN, Uuid::from_u128(101), 8),
            Err(Rejection::NotFound)
        );
    }
}

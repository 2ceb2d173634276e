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
    use crate::testing::{Decider, NOW_US};

    /// The chat decisions, driven by the harness.
    enum Conversations {}

    /// What the chat decisions read once the given events are in the chat
    /// log: the [`World`] their `apply` folds, plus what the service adds
    /// around it. A sent message gets its log position only when appended;
    /// `recorded` (in `chat/mod.rs`) then stores it, and `load` reads it
    /// back with the recipient's unread positions. Here the given events
    /// are the log, numbered from 1.
    #[derive(Debug, Default)]
    struct Log {
        world: World,
        head: u64,
    }

    /// A chat command as the decisions receive it, after preparation (the
    /// recipient known to exist, ids and nickname chosen); receipts are
    /// stamped with [`NOW_US`].
    #[derive(Debug)]
    enum Cmd {
        SendMessage(NewMessage),
        MarkRead {
            reader: Uuid,
            other: Uuid,
            up_to: Uuid,
        },
    }

    impl Decider for Conversations {
        type State = Log;
        type Event = ChatEvent;
        type Command = Cmd;
        type Emitted = ChatEvent;
        type Error = Rejection;

        fn apply(log: &mut Log, event: &ChatEvent) {
            apply(&mut log.world, event);
            log.head += 1;
            if let ChatEvent::MessageSent(m) = event {
                let message = MessageState {
                    conversation_id: m.conversation_id,
                    from_id: m.from_id,
                    to_id: m.to_id,
                    position: log.head,
                };
                log.world.messages.insert(m.message_id, message);
                let recipient = log.world.reads.entry((m.to_id, m.from_id)).or_default();
                recipient.unread.insert(log.head);
            }
        }

        fn decide(log: &Log, command: &Cmd) -> Result<Vec<ChatEvent>, Rejection> {
            match command {
                Cmd::SendMessage(m) => send_message(m),
                Cmd::MarkRead {
                    reader,
                    other,
                    up_to,
                } => mark_read(&log.world, *reader, *other, *up_to, NOW_US),
            }
        }
    }

    const ANN: Uuid = Uuid::from_u128(1);
    const BOB: Uuid = Uuid::from_u128(2);
    const EVE: Uuid = Uuid::from_u128(3);

    /// The id of the `n`th message.
    fn message(n: u128) -> Uuid {
        Uuid::from_u128(100 + n)
    }

    fn sent(n: u128, from: Uuid, to: Uuid) -> ChatEvent {
        ChatEvent::MessageSent(MessageSent {
            message_id: message(n),
            conversation_id: conversation_id(from, to),
            from_id: from,
            from_nickname: if from == ANN { "ann" } else { "bob" }.into(),
            to_id: to,
            content: format!("message {n}"),
            sent_at_us: n as i64,
        })
    }

    /// Ann and Bob's conversation: Bob wrote at 1 and 2, Ann at 3, Bob at
    /// 4; Ann has read nothing.
    fn conversation() -> [ChatEvent; 4] {
        [
            sent(1, BOB, ANN),
            sent(2, BOB, ANN),
            sent(3, ANN, BOB),
            sent(4, BOB, ANN),
        ]
    }

    /// Ann read Bob's messages up to the `n`th, at `position`.
    fn ann_read(n: u128, position: u64) -> ChatEvent {
        ChatEvent::MessagesRead(MessagesRead {
            conversation_id: conversation_id(ANN, BOB),
            reader_id: ANN,
            other_id: BOB,
            up_to: message(n),
            up_to_position: position,
            read_at_us: NOW_US,
        })
    }

    fn mark_read_by(reader: Uuid, other: Uuid, n: u128) -> Cmd {
        Cmd::MarkRead {
            reader,
            other,
            up_to: message(n),
        }
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
    fn a_message_is_sent_in_the_conversation_of_its_two_users() {
        Conversations::given(conversation())
            .when(Cmd::SendMessage(new_message(ANN, BOB)))
            .then([ChatEvent::MessageSent(MessageSent {
                message_id: Uuid::from_u128(200),
                conversation_id: conversation_id(BOB, ANN),
                from_id: ANN,
                from_nickname: "ann".into(),
                to_id: BOB,
                content: "hi".into(),
                sent_at_us: 9,
            })]);
    }

    #[test]
    fn each_event_of_a_conversation_moves_its_version_by_one() {
        let given = Conversations::given(conversation());
        assert_eq!(given.state().world.version(conversation_id(ANN, BOB)), 4);
        let given = given.and([sent(5, ANN, BOB), ann_read(4, 4)]);
        assert_eq!(given.state().world.version(conversation_id(BOB, ANN)), 6);
        assert_eq!(given.state().world.version(conversation_id(ANN, EVE)), 0);
    }

    #[test]
    fn a_message_to_oneself_fails_validation_on_to() {
        Conversations::given([])
            .when(Cmd::SendMessage(new_message(ANN, ANN)))
            .then_rejected(Rejection::Validation(vec![(
                "to".into(),
                "cannot send a message to yourself".into(),
            )]));
    }

    #[test]
    fn reading_up_to_a_message_reads_it_and_the_older_ones_at_its_log_position() {
        Conversations::given(conversation())
            .when(mark_read_by(ANN, BOB, 2))
            .then([ann_read(2, 2)]);
    }

    #[test]
    fn a_read_receipt_moves_the_readers_mark_and_leaves_the_later_messages_unread() {
        let given = Conversations::given(conversation()).and([ann_read(2, 2)]);
        let read = &given.state().world.reads[&(ANN, BOB)];
        assert_eq!(read.read_up_to, 2);
        assert_eq!(read.unread, [4].into());
    }

    #[test]
    fn reading_again_up_to_a_message_already_read_changes_nothing() {
        for n in [1, 2] {
            Conversations::given(conversation())
                .and([ann_read(2, 2)])
                .when(mark_read_by(ANN, BOB, n))
                .then_nothing();
        }
    }

    #[test]
    fn reading_up_to_ones_own_later_message_changes_nothing_when_the_others_before_it_are_read() {
        Conversations::given(conversation())
            .and([ann_read(2, 2)])
            .when(mark_read_by(ANN, BOB, 3))
            .then_nothing();
    }

    #[test]
    fn reading_up_to_a_later_message_of_the_other_reads_it() {
        Conversations::given(conversation())
            .and([ann_read(2, 2)])
            .when(mark_read_by(ANN, BOB, 4))
            .then([ann_read(4, 4)]);
    }

    #[test]
    fn marking_ones_own_messages_read_changes_nothing() {
        // Bob marks up to his own first message: nothing from Ann is at or
        // before it.
        Conversations::given(conversation())
            .when(mark_read_by(BOB, ANN, 1))
            .then_nothing();
    }

    #[test]
    fn a_receipt_for_a_message_of_another_conversation_or_none_is_not_found() {
        for command in [
            mark_read_by(EVE, BOB, 1),
            mark_read_by(EVE, ANN, 1),
            mark_read_by(ANN, BOB, 999),
            mark_read_by(ANN, ANN, 1),
        ] {
            Conversations::given(conversation())
                .when(command)
                .then_rejected(Rejection::NotFound);
        }
    }
}

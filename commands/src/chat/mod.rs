//! The chat domain: private messages and read receipts.
//!
//! # Layout
//! - [`validate`]: the message content newtype, parsed at the edge.
//! - [`decide`]: the state, the pure decisions and their given/when/then
//!   tests.
//! - this file: the wire commands and the [`Domain`] glue (loading the
//!   batch's state in the append transaction, writing the write model;
//!   message rows, which need their log positions, are written once the
//!   events are appended).

pub mod decide;
pub mod validate;

use std::collections::{HashMap, HashSet};

use forum_events::chat::{conversation_id, ChatEvent, MessageSent};
use forum_events::{NewEvent, RecordedEvent, Service};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use crate::nicknames::Nicknames;
use crate::runtime::{Context, Domain, Outcome};
use crate::wire::Rejection;
use crate::Result;
use decide::{MessageState, NewMessage, World};

/// Send a message to another user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SendMessage {
    /// The recipient.
    pub to: Uuid,
    /// Validated content.
    pub content: String,
}

/// Mark the other participant's messages read, up to one message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MarkRead {
    /// The other participant.
    pub other: Uuid,
    /// A message of the conversation.
    pub up_to: Uuid,
}

/// Every command of the chat service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ChatCommand {
    /// See [`SendMessage`].
    SendMessage(SendMessage),
    /// See [`MarkRead`].
    MarkRead(MarkRead),
}

impl ChatCommand {
    /// The last token of the command's subject.
    pub fn name(&self) -> &'static str {
        match self {
            ChatCommand::SendMessage(_) => "send_message",
            ChatCommand::MarkRead(_) => "mark_read",
        }
    }
}

/// What an accepted chat command answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ChatData {
    /// The message was sent.
    Sent {
        /// Its id.
        message_id: Uuid,
    },
    /// The receipt was recorded (or changed nothing).
    Read,
    /// The message was sent: the event, from which its answer is made
    /// without reading the read model back.
    Message(MessageSent),
}

/// A command after preparation: actor known, ids, nicknames and time
/// chosen.
pub struct Prepared {
    actor: Uuid,
    at_us: i64,
    kind: Kind,
}

enum Kind {
    Send(NewMessage),
    MarkRead(MarkRead),
}

/// The chat service.
pub struct Chat {
    nicknames: Nicknames,
}

impl Chat {
    /// A service using `pool` for look-ups.
    pub fn new(pool: PgPool) -> Self {
        Chat {
            nicknames: Nicknames::new(pool),
        }
    }
}

impl Domain for Chat {
    const SERVICE: Service = Service::Chat;
    type Command = ChatCommand;
    type Prepared = Prepared;
    type Data = ChatData;

    async fn prepare(
        &self,
        ctx: &Context,
        command: ChatCommand,
    ) -> std::result::Result<Prepared, Rejection> {
        let actor = ctx.actor.ok_or(Rejection::Unauthorized)?;
        let at_us = chrono::Utc::now().timestamp_micros();
        let kind = match command {
            ChatCommand::SendMessage(c) => {
                let nicks = self.nicknames.of(&[actor, c.to]).await?;
                let from_nickname = nicks.get(&actor).cloned().ok_or(Rejection::Unauthorized)?;
                if !nicks.contains_key(&c.to) {
                    return Err(Rejection::NotFound);
                }
                Kind::Send(NewMessage {
                    message_id: Uuid::now_v7(),
                    from_id: actor,
                    from_nickname,
                    to_id: c.to,
                    content: c.content,
                    at_us,
                })
            }
            ChatCommand::MarkRead(c) => Kind::MarkRead(c),
        };
        Ok(Prepared { actor, at_us, kind })
    }

    async fn execute(
        &self,
        tx: &mut PgConnection,
        batch: &[(Context, Prepared)],
    ) -> Result<Vec<Outcome<ChatData>>> {
        let mut world = load(tx, batch).await?;
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut dirty_conversations = HashSet::new();
        let mut dirty_reads = HashSet::new();
        for (_, p) in batch {
            let decided = match &p.kind {
                Kind::Send(m) => decide::send_message(m).map(|events| {
                    let sent = events.iter().find_map(|e| match e {
                        ChatEvent::MessageSent(s) if s.message_id == m.message_id => {
                            Some(ChatData::Message(s.clone()))
                        }
                        _ => None,
                    });
                    let data = sent.unwrap_or(ChatData::Sent {
                        message_id: m.message_id,
                    });
                    (events, data)
                }),
                Kind::MarkRead(r) => decide::mark_read(&world, p.actor, r.other, r.up_to, p.at_us)
                    .map(|events| (events, ChatData::Read)),
            };
            outcomes.push(decided.map(|(events, data)| {
                let mut stored = Vec::with_capacity(events.len());
                for event in &events {
                    decide::apply(&mut world, event);
                    let conversation = event.conversation_id();
                    dirty_conversations.insert(conversation);
                    if let ChatEvent::MessagesRead(e) = event {
                        dirty_reads.insert((e.reader_id, e.other_id));
                    }
                    stored.push(NewEvent::new(
                        conversation,
                        world.version(conversation),
                        Uuid::now_v7(),
                        event,
                    ));
                }
                (stored, data)
            }));
        }
        write_model(tx, &world, &dirty_conversations, &dirty_reads).await?;
        Ok(outcomes)
    }

    fn unstorable(&self, prepared: &Prepared) -> Rejection {
        match &prepared.kind {
            Kind::Send(m) => Rejection::unstorable([("content", m.content.as_str())]),
            Kind::MarkRead(_) => Rejection::unstorable([]),
        }
    }

    async fn recorded(&self, tx: &mut PgConnection, events: &[RecordedEvent]) -> Result<()> {
        let (mut ids, mut conversations, mut froms, mut tos, mut positions) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for event in events {
            // Events this service just encoded: a failure here is a bug,
            // and fails the batch.
            let decoded = event.decode::<ChatEvent>().map_err(|e| {
                crate::Error::Store(forum_store::Error::Decode {
                    service: Service::Chat,
                    position: event.position,
                    source: e,
                })
            })?;
            if let ChatEvent::MessageSent(m) = decoded {
                ids.push(m.message_id);
                conversations.push(m.conversation_id);
                froms.push(m.from_id);
                tos.push(m.to_id);
                positions.push(event.position as i64);
            }
        }
        if ids.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "insert into chat.messages (message_id, conversation_id, from_id, to_id, position)
             select * from unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::bigint[])",
        )
        .bind(&ids)
        .bind(&conversations)
        .bind(&froms)
        .bind(&tos)
        .bind(&positions)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }
}

/// Loads, in one query per table, the state the batch's decisions read.
async fn load(tx: &mut PgConnection, batch: &[(Context, Prepared)]) -> Result<World> {
    let mut conversations = Vec::new();
    let mut message_ids = Vec::new();
    let mut pairs = Vec::new();
    for (_, p) in batch {
        match &p.kind {
            Kind::Send(m) => conversations.push(conversation_id(m.from_id, m.to_id)),
            Kind::MarkRead(r) => {
                conversations.push(conversation_id(p.actor, r.other));
                message_ids.push(r.up_to);
                pairs.push((p.actor, r.other, r.up_to));
            }
        }
    }
    let mut world = World::default();
    if !conversations.is_empty() {
        let rows = sqlx::query(
            "select conversation_id, version from chat.conversations
             where conversation_id = any($1)",
        )
        .bind(&conversations)
        .fetch_all(&mut *tx)
        .await?;
        for r in rows {
            world.versions.insert(
                r.try_get("conversation_id")?,
                r.try_get::<i32, _>("version")? as u32,
            );
        }
    }
    if message_ids.is_empty() {
        return Ok(world);
    }
    let rows = sqlx::query(
        "select message_id, conversation_id, from_id, to_id, position from chat.messages
         where message_id = any($1)",
    )
    .bind(&message_ids)
    .fetch_all(&mut *tx)
    .await?;
    for r in rows {
        world.messages.insert(
            r.try_get("message_id")?,
            MessageState {
                conversation_id: r.try_get("conversation_id")?,
                from_id: r.try_get("from_id")?,
                to_id: r.try_get("to_id")?,
                position: r.try_get::<i64, _>("position")? as u64,
            },
        );
    }
    // Per (reader, other): the read mark, and the unread positions up to
    // the furthest message the batch's receipts name.
    let mut reach: HashMap<(Uuid, Uuid), u64> = HashMap::new();
    for (reader, other, up_to) in pairs {
        if let Some(m) = world.messages.get(&up_to) {
            if m.conversation_id == conversation_id(reader, other) {
                let r = reach.entry((reader, other)).or_default();
                *r = (*r).max(m.position);
            }
        }
    }
    if reach.is_empty() {
        return Ok(world);
    }
    let (mut readers, mut others, mut uptos) = (Vec::new(), Vec::new(), Vec::new());
    for ((reader, other), up_to) in &reach {
        readers.push(*reader);
        others.push(*other);
        uptos.push(*up_to as i64);
        world.reads.entry((*reader, *other)).or_default();
    }
    let rows = sqlx::query(
        "select k.reader, k.other, coalesce(rm.up_to_position, 0) as read_up_to, m.position
         from unnest($1::uuid[], $2::uuid[], $3::bigint[]) as k(reader, other, reach)
         left join chat.read_marks rm on rm.reader_id = k.reader and rm.other_id = k.other
         left join chat.messages m
                on m.to_id = k.reader and m.from_id = k.other
               and m.position > coalesce(rm.up_to_position, 0) and m.position <= k.reach",
    )
    .bind(&readers)
    .bind(&others)
    .bind(&uptos)
    .fetch_all(&mut *tx)
    .await?;
    for r in rows {
        let key = (r.try_get("reader")?, r.try_get("other")?);
        let read = world.reads.entry(key).or_default();
        read.read_up_to = r.try_get::<i64, _>("read_up_to")? as u64;
        if let Some(p) = r.try_get::<Option<i64>, _>("position")? {
            read.unread.insert(p as u64);
        }
    }
    Ok(world)
}

/// Writes the touched rows of the world back, in the append transaction.
async fn write_model(
    tx: &mut PgConnection,
    world: &World,
    conversations: &HashSet<Uuid>,
    reads: &HashSet<(Uuid, Uuid)>,
) -> Result<()> {
    if !conversations.is_empty() {
        let ids: Vec<Uuid> = conversations.iter().copied().collect();
        let versions: Vec<i32> = ids.iter().map(|c| world.version(*c) as i32).collect();
        sqlx::query(
            "insert into chat.conversations (conversation_id, version)
             select * from unnest($1::uuid[], $2::int[])
             on conflict (conversation_id) do update set version = excluded.version",
        )
        .bind(&ids)
        .bind(&versions)
        .execute(&mut *tx)
        .await?;
    }
    if !reads.is_empty() {
        let (mut readers, mut others, mut marks) = (Vec::new(), Vec::new(), Vec::new());
        for key in reads {
            if let Some(r) = world.reads.get(key) {
                readers.push(key.0);
                others.push(key.1);
                marks.push(r.read_up_to as i64);
            }
        }
        sqlx::query(
            "insert into chat.read_marks (reader_id, other_id, up_to_position)
             select * from unnest($1::uuid[], $2::uuid[], $3::bigint[])
             on conflict (reader_id, other_id) do update set up_to_position = excluded.up_to_position",
        )
        .bind(&readers)
        .bind(&others)
        .bind(&marks)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

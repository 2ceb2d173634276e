//! `read.messages`, `read.conversations`: private messages as their two
//! participants see them.
//!
//! `conversations` has two rows per conversation, one per participant's
//! point of view (`user_id` is the viewer): the last message's time and
//! position, and how many of the other's messages the viewer has not read.
//! Messages are ordered by the log position of their `message_sent` (a
//! total order, stable within a millisecond), which is also the cursor.
//! Every query has its index:
//! - a conversation's messages, newest first: `messages (conversation_id,
//!   position desc)`;
//! - a reader's unread messages from one user (read receipts, counts):
//!   `messages (to_id, from_id, position) where read_at is null`;
//! - a user's conversations, most recent first: `conversations (user_id,
//!   last_position desc)` (the primary key serves the per-pair look-up).

use std::collections::HashMap;

use forum_events::chat::ChatEvent;
use forum_events::{RecordedEvent, Service};
use futures::future::BoxFuture;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{Error, Projection, Result};

/// The chat read model.
pub struct Chat;

impl Projection for Chat {
    fn name(&self) -> &'static str {
        "chat"
    }

    fn version(&self) -> u32 {
        1
    }

    fn sources(&self) -> &'static [Service] {
        &[Service::Chat]
    }

    fn tables(&self) -> &'static [&'static str] {
        &["messages", "conversations"]
    }

    fn create_sql(&self, schema: &str) -> String {
        format!(
            "create table if not exists {schema}.messages (
                id              uuid        primary key,
                conversation_id uuid        not null,
                from_id         uuid        not null,
                from_nickname   text        not null,
                to_id           uuid        not null,
                content         text        not null,
                sent_at         timestamptz not null,
                read_at         timestamptz,
                position        bigint      not null
            );
            create index if not exists messages_of_conversation on {schema}.messages (conversation_id, position desc);
            create index if not exists messages_unread on {schema}.messages (to_id, from_id, position) where read_at is null;
            create table if not exists {schema}.conversations (
                user_id         uuid        not null,
                other_id        uuid        not null,
                last_message_at timestamptz not null,
                last_position   bigint      not null,
                unread          integer     not null default 0,
                primary key (user_id, other_id)
            );
            create index if not exists conversations_recent on {schema}.conversations (user_id, last_position desc)"
        )
    }

    fn apply<'a>(
        &'a self,
        tx: &'a mut PgConnection,
        schema: &'a str,
        events: &'a [RecordedEvent],
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let mut decoded = Vec::with_capacity(events.len());
            for event in events {
                let e = event
                    .decode::<ChatEvent>()
                    .map_err(|e| Error::poison(event, e))?;
                decoded.push((event.position as i64, e));
            }
            // One statement per table for the whole batch, however the
            // types interleave: every message is inserted before the
            // receipts are applied, which gives the same rows as one event
            // at a time, because a receipt only reaches messages at or
            // before its `up_to_position`, all older than the receipt.
            let (sent, read): (Vec<_>, Vec<_>) = decoded
                .into_iter()
                .partition(|(_, e)| matches!(e, ChatEvent::MessageSent(_)));
            if !sent.is_empty() {
                messages_sent(tx, schema, &sent).await?;
            }
            if !read.is_empty() {
                messages_read(tx, schema, &read).await?;
            }
            Ok(())
        })
    }

    fn forget_stream<'a>(
        &'a self,
        tx: &'a mut PgConnection,
        schema: &'a str,
        stream: Uuid,
        events: &'a [RecordedEvent],
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            // A conversation's stream: its messages, and both participants'
            // rows of it (the pair is named by its events).
            let (mut a, mut b) = (Vec::new(), Vec::new());
            for event in events {
                let pair = match event.decode::<ChatEvent>() {
                    Ok(ChatEvent::MessageSent(e)) if e.conversation_id == stream => {
                        (e.from_id, e.to_id)
                    }
                    Ok(ChatEvent::MessagesRead(e)) if e.conversation_id == stream => {
                        (e.reader_id, e.other_id)
                    }
                    _ => continue,
                };
                a.push(pair.0);
                b.push(pair.1);
            }
            sqlx::query(&format!(
                "delete from {schema}.messages where conversation_id = $1"
            ))
            .bind(stream)
            .execute(&mut *tx)
            .await?;
            sqlx::query(&format!(
                "delete from {schema}.conversations c using unnest($1::uuid[], $2::uuid[]) as k(a, b)
                 where (c.user_id = k.a and c.other_id = k.b) or (c.user_id = k.b and c.other_id = k.a)"
            ))
            .bind(&a)
            .bind(&b)
            .execute(&mut *tx)
            .await?;
            Ok(())
        })
    }
}

/// The batch's `message_sent` events: one insert for the messages, one
/// upsert for both participants' conversation rows, from the messages
/// actually inserted (a redelivered message changes nothing).
async fn messages_sent(
    tx: &mut PgConnection,
    schema: &str,
    run: &[(i64, ChatEvent)],
) -> Result<()> {
    let mut ids = Vec::with_capacity(run.len());
    let mut conversations = Vec::with_capacity(run.len());
    let mut froms = Vec::with_capacity(run.len());
    let mut nicks = Vec::with_capacity(run.len());
    let mut tos = Vec::with_capacity(run.len());
    let mut contents = Vec::with_capacity(run.len());
    let mut sent = Vec::with_capacity(run.len());
    let mut positions = Vec::with_capacity(run.len());
    for (position, e) in run {
        if let ChatEvent::MessageSent(e) = e {
            ids.push(e.message_id);
            conversations.push(e.conversation_id);
            froms.push(e.from_id);
            nicks.push(e.from_nickname.as_str());
            tos.push(e.to_id);
            contents.push(e.content.as_str());
            sent.push(forum_store::log::to_time(e.sent_at_us));
            positions.push(*position);
        }
    }
    sqlx::query(&format!(
        "with ins as (
             insert into {schema}.messages (id, conversation_id, from_id, from_nickname, to_id,
                                            content, sent_at, position)
             select * from unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::uuid[],
                                  $6::text[], $7::timestamptz[], $8::bigint[])
             on conflict (id) do nothing
             returning from_id, to_id, sent_at, position),
         views as (
             select from_id as user_id, to_id as other_id, sent_at, position, 0 as unread from ins
             union all
             select to_id, from_id, sent_at, position, 1 from ins),
         latest as (
             select user_id, other_id,
                    (array_agg(sent_at order by position desc))[1] as last_message_at,
                    max(position) as last_position,
                    sum(unread)::int as unread
             from views group by user_id, other_id)
         insert into {schema}.conversations as c (user_id, other_id, last_message_at, last_position, unread)
         select user_id, other_id, last_message_at, last_position, unread from latest
         on conflict (user_id, other_id) do update set
             last_message_at = case when excluded.last_position > c.last_position
                                    then excluded.last_message_at else c.last_message_at end,
             last_position = greatest(c.last_position, excluded.last_position),
             unread = c.unread + excluded.unread"
    ))
    .bind(&ids)
    .bind(&conversations)
    .bind(&froms)
    .bind(&nicks)
    .bind(&tos)
    .bind(&contents)
    .bind(&sent)
    .bind(&positions)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The batch's `messages_read` events, in log order. A message takes the
/// time of the first receipt that covers it: per (reader, other), each
/// receipt reads the unread messages between the furthest position an
/// earlier receipt of the batch reached and its own, so the ranges do not
/// overlap and one statement applies them all, with the same result as one
/// event at a time. The readers' unread counts are then recounted.
async fn messages_read(
    tx: &mut PgConnection,
    schema: &str,
    run: &[(i64, ChatEvent)],
) -> Result<()> {
    let mut reached: HashMap<(Uuid, Uuid), i64> = HashMap::new();
    let (mut readers, mut others, mut lows, mut highs, mut times) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (_, e) in run {
        if let ChatEvent::MessagesRead(e) = e {
            let high = e.up_to_position as i64;
            let low = reached.entry((e.reader_id, e.other_id)).or_insert(0);
            if high <= *low {
                continue;
            }
            readers.push(e.reader_id);
            others.push(e.other_id);
            lows.push(*low);
            highs.push(high);
            times.push(forum_store::log::to_time(e.read_at_us));
            *low = high;
        }
    }
    if readers.is_empty() {
        return Ok(());
    }
    sqlx::query(&format!(
        "update {schema}.messages m set read_at = k.t
         from unnest($1::uuid[], $2::uuid[], $3::bigint[], $4::bigint[], $5::timestamptz[])
              as k(reader, other, low, high, t)
         where m.to_id = k.reader and m.from_id = k.other and m.read_at is null
           and m.position > k.low and m.position <= k.high"
    ))
    .bind(&readers)
    .bind(&others)
    .bind(&lows)
    .bind(&highs)
    .bind(&times)
    .execute(&mut *tx)
    .await?;
    let (pair_readers, pair_others): (Vec<Uuid>, Vec<Uuid>) = reached.into_keys().unzip();
    sqlx::query(&format!(
        "update {schema}.conversations c set unread = (
             select count(*) from {schema}.messages m
             where m.to_id = c.user_id and m.from_id = c.other_id and m.read_at is null)
         from unnest($1::uuid[], $2::uuid[]) as k(reader, other)
         where c.user_id = k.reader and c.other_id = k.other"
    ))
    .bind(&pair_readers)
    .bind(&pair_others)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

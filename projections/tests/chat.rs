//! The chat projection on a real Postgres, in fresh schemas: runs of
//! events written with multi-row statements give the same rows as one
//! event at a time, and a redelivered batch changes nothing.

mod common;

use common::PG;

use forum_events::chat::{conversation_id, ChatEvent, MessageSent, MessagesRead};
use forum_events::RecordedEvent;
use forum_projections::chat::Chat;
use forum_projections::Projection;
use sqlx::{PgPool, Row};
use uuid::Uuid;

const ANN: Uuid = Uuid::from_u128(1);
const BOB: Uuid = Uuid::from_u128(2);

fn recorded(position: u64, event: &ChatEvent) -> RecordedEvent {
    common::recorded(position, event.conversation_id(), event)
}

async fn fresh_schema(pool: &PgPool) -> String {
    common::fresh_schema(pool, &Chat).await
}

async fn apply(pool: &PgPool, schema: &str, events: &[RecordedEvent]) {
    common::apply(pool, &Chat, schema, events).await;
}

/// Every row of `table`, as sorted text.
async fn dump(pool: &PgPool, schema: &str, table: &str) -> String {
    sqlx::query_scalar(&format!(
        "select coalesce(string_agg(t::text, E'\\n' order by t::text), '') from {schema}.{table} t"
    ))
    .fetch_one(pool)
    .await
    .expect("dump")
}

fn message(n: u128, from: Uuid, to: Uuid, at: i64) -> ChatEvent {
    ChatEvent::MessageSent(MessageSent {
        message_id: Uuid::from_u128(100 + n),
        conversation_id: conversation_id(from, to),
        from_id: from,
        from_nickname: if from == ANN { "ann" } else { "bob" }.into(),
        to_id: to,
        content: format!("m{n}"),
        sent_at_us: at,
    })
}

fn read(reader: Uuid, other: Uuid, up_to: u128, position: u64, at: i64) -> ChatEvent {
    ChatEvent::MessagesRead(MessagesRead {
        conversation_id: conversation_id(reader, other),
        reader_id: reader,
        other_id: other,
        up_to: Uuid::from_u128(100 + up_to),
        up_to_position: position,
        read_at_us: at,
    })
}

#[tokio::test]
async fn runs_of_messages_and_receipts_equal_one_event_at_a_time_and_redelivery_changes_nothing() {
    let pool = PgPool::connect(PG).await.expect("connect");
    let events = [
        message(1, ANN, BOB, 1_000),
        message(2, ANN, BOB, 2_000),
        message(3, BOB, ANN, 3_000),
        message(4, ANN, BOB, 4_000),
        // Bob reads up to m2, then up to m4, in one run.
        read(BOB, ANN, 2, 2, 5_000),
        read(BOB, ANN, 4, 4, 6_000),
        message(5, ANN, BOB, 7_000),
        message(6, BOB, ANN, 8_000),
        read(ANN, BOB, 6, 8, 9_000),
    ];
    let recorded: Vec<RecordedEvent> = events
        .iter()
        .enumerate()
        .map(|(i, e)| recorded(i as u64 + 1, e))
        .collect();
    let batched = fresh_schema(&pool).await;
    apply(&pool, &batched, &recorded).await;
    let single = fresh_schema(&pool).await;
    for e in &recorded {
        apply(&pool, &single, std::slice::from_ref(e)).await;
    }
    for table in Chat.tables() {
        assert_eq!(
            dump(&pool, &batched, table).await,
            dump(&pool, &single, table).await,
            "{table}"
        );
    }

    let read_at: Vec<(String, Option<i64>)> = sqlx::query(&format!(
        "select content, (extract(epoch from read_at) * 1000000)::bigint as r
         from {batched}.messages order by position"
    ))
    .fetch_all(&pool)
    .await
    .expect("messages")
    .iter()
    .map(|r| (r.get("content"), r.get("r")))
    .collect();
    assert_eq!(
        read_at,
        vec![
            ("m1".into(), Some(5_000)),
            ("m2".into(), Some(5_000)),
            ("m3".into(), Some(9_000)),
            ("m4".into(), Some(6_000)),
            ("m5".into(), None),
            ("m6".into(), Some(9_000)),
        ]
    );
    let conversations: Vec<(Uuid, Uuid, i64, i32)> = sqlx::query_as(&format!(
        "select user_id, other_id, last_position, unread from {batched}.conversations
         order by user_id"
    ))
    .fetch_all(&pool)
    .await
    .expect("conversations");
    assert_eq!(conversations, vec![(ANN, BOB, 8, 0), (BOB, ANN, 8, 1)]);

    // The same batch again: nothing moves.
    let before = dump(&pool, &batched, "conversations").await;
    apply(&pool, &batched, &recorded).await;
    assert_eq!(dump(&pool, &batched, "conversations").await, before);
    assert_eq!(
        dump(&pool, &batched, "messages").await,
        dump(&pool, &single, "messages").await
    );

    for schema in [batched, single] {
        sqlx::query(&format!("drop schema {schema} cascade"))
            .execute(&pool)
            .await
            .expect("drop");
    }
}

//! The notifications projection on a real Postgres, in fresh schemas:
//! runs of events written with multi-row statements give the same rows as
//! one event at a time; "all read" reads only what came before it.

mod common;

use common::PG;

use forum_events::notifications::{
    AllNotificationsRead, NotificationCreated, NotificationEvent, NotificationKind,
    NotificationsRead,
};
use forum_events::RecordedEvent;
use forum_projections::notifications::Notifications;
use sqlx::PgPool;
use uuid::Uuid;

const ANN: Uuid = Uuid::from_u128(1);
const BOB: Uuid = Uuid::from_u128(2);

fn recorded(position: u64, event: &NotificationEvent) -> RecordedEvent {
    common::recorded(position, event.user_id(), event)
}

async fn fresh_schema(pool: &PgPool) -> String {
    common::fresh_schema(pool, &Notifications).await
}

async fn apply(pool: &PgPool, schema: &str, events: &[RecordedEvent]) {
    common::apply(pool, &Notifications, schema, events).await;
}

fn created(n: u128, user: Uuid) -> NotificationEvent {
    NotificationEvent::Created(NotificationCreated {
        notification_id: Uuid::from_u128(100 + n),
        user_id: user,
        kind: NotificationKind::Message,
        actor_id: Uuid::from_u128(9),
        actor_nickname: "eve".into(),
        post_id: None,
        comment_id: None,
        message_id: Some(Uuid::from_u128(200 + n)),
        cause_event_id: Uuid::from_u128(300 + n),
        created_at_us: 1_000 * n as i64,
    })
}

#[tokio::test]
async fn all_read_reads_only_earlier_notifications_and_runs_equal_single_events() {
    let pool = PgPool::connect(PG).await.expect("connect");
    let events = [
        created(1, ANN),
        created(2, ANN),
        created(3, BOB),
        NotificationEvent::AllRead(AllNotificationsRead {
            user_id: ANN,
            read_at_us: 1,
        }),
        created(4, ANN),
        created(5, BOB),
        // Bob names Ann's notification: not his, nothing happens to it.
        NotificationEvent::Read(NotificationsRead {
            user_id: BOB,
            ids: vec![Uuid::from_u128(104), Uuid::from_u128(105)],
            read_at_us: 2,
        }),
        created(6, ANN),
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
    let rows = |schema: String| {
        let pool = pool.clone();
        async move {
            sqlx::query_as::<_, (Uuid, Uuid, bool, i64)>(&format!(
                "select id, user_id, read, position from {schema}.notifications order by position"
            ))
            .fetch_all(&pool)
            .await
            .expect("rows")
        }
    };
    let got = rows(batched.clone()).await;
    assert_eq!(got, rows(single.clone()).await);
    let read: Vec<(u128, bool)> = got
        .iter()
        .map(|(id, _, read, _)| (id.as_u128() - 100, *read))
        .collect();
    assert_eq!(
        read,
        vec![
            (1, true),
            (2, true),
            (3, false),
            (4, false),
            (5, true),
            (6, false)
        ]
    );
    // Redelivered: the same rows.
    apply(&pool, &batched, &recorded).await;
    assert_eq!(rows(batched.clone()).await, got);
    for schema in [batched, single] {
        sqlx::query(&format!("drop schema {schema} cascade"))
            .execute(&pool)
            .await
            .expect("drop");
    }
}

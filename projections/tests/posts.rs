//! The posts projection on a real Postgres, in a fresh schema per test:
//! mixed runs of events (multi-row writes) end in the right rows.

use forum_events::posts::{
    CommentCreated, CommentDeleted, PostCreated, PostDeleted, PostEdited, PostEvent, Reaction,
    ReactionSet, TargetKind,
};
use forum_events::{EventSet, Metadata, RecordedEvent, Service};
use forum_projections::posts::Posts;
use forum_projections::Projection;
use sqlx::{PgPool, Row};
use uuid::Uuid;

const PG: &str = "postgres://postgres@127.0.0.1:5432/postgres";

fn recorded(position: u64, event: &PostEvent) -> RecordedEvent {
    RecordedEvent {
        service: Service::Posts,
        position,
        stream_id: event.post_id(),
        version: position as u32,
        event_id: Uuid::new_v4(),
        event_type: event.event_type().to_string(),
        schema_version: event.schema_version(),
        payload: event.encode_payload(),
        metadata: Metadata {
            correlation_id: Uuid::nil(),
            causation_id: Uuid::nil(),
            actor: None,
            recorded_at_us: 0,
        },
    }
}

async fn fresh_schema(pool: &PgPool) -> String {
    let schema = format!("t_posts_{}", &Uuid::new_v4().simple().to_string()[..12]);
    sqlx::query(&format!("create schema {schema}"))
        .execute(pool)
        .await
        .expect("schema");
    for statement in Posts
        .create_sql(&schema)
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        sqlx::query(statement).execute(pool).await.expect("create");
    }
    schema
}

fn post(id: Uuid, categories: &[&str]) -> PostEvent {
    PostEvent::PostCreated(PostCreated {
        post_id: id,
        author_id: Uuid::from_u128(1),
        author_nickname: "ada".into(),
        title: "t".into(),
        content: "c".into(),
        categories: categories.iter().map(|c| c.to_string()).collect(),
        created_at_us: 1_000,
    })
}

fn reaction(target: Uuid, user: u128, r: Reaction, likes: u32) -> PostEvent {
    PostEvent::ReactionSet(ReactionSet {
        target: TargetKind::Post,
        target_id: target,
        post_id: target,
        user_id: Uuid::from_u128(user),
        reaction: r,
        likes,
        dislikes: 0,
        at_us: 2_000,
    })
}

fn comment(id: Uuid, post_id: Uuid) -> PostEvent {
    PostEvent::CommentCreated(CommentCreated {
        comment_id: id,
        post_id,
        author_id: Uuid::from_u128(2),
        author_nickname: "bob".into(),
        content: "c".into(),
        created_at_us: 3_000,
    })
}

#[tokio::test]
async fn mixed_runs_of_events_end_in_the_right_rows() {
    let pool = PgPool::connect(PG).await.expect("connect");
    let schema = fresh_schema(&pool).await;
    let (a, b) = (Uuid::from_u128(10), Uuid::from_u128(11));
    let (c1, c2) = (Uuid::from_u128(20), Uuid::from_u128(21));
    let events = [
        post(a, &["news", "meta"]),
        post(b, &["news"]),
        reaction(a, 100, Reaction::Like, 1),
        reaction(a, 101, Reaction::Like, 2),
        reaction(a, 100, Reaction::None, 1),
        reaction(b, 101, Reaction::Like, 1),
        comment(c1, a),
        comment(c2, a),
        PostEvent::CommentDeleted(CommentDeleted {
            comment_id: c1,
            post_id: a,
            author_id: Uuid::from_u128(2),
            deleted_at_us: 4_000,
        }),
        PostEvent::PostEdited(PostEdited {
            post_id: b,
            author_id: Uuid::from_u128(1),
            author_nickname: "ada".into(),
            title: "t2".into(),
            content: "c2".into(),
            categories: vec!["help".into()],
            created_at_us: 1_000,
            edited_at_us: 5_000,
            comment_count: 0,
            likes: 1,
            dislikes: 0,
        }),
        PostEvent::PostDeleted(PostDeleted {
            post_id: a,
            author_id: Uuid::from_u128(1),
            deleted_at_us: 6_000,
        }),
    ];
    let recorded: Vec<RecordedEvent> = events
        .iter()
        .enumerate()
        .map(|(i, e)| recorded(i as u64 + 1, e))
        .collect();
    let mut tx = pool.begin().await.expect("begin");
    Posts
        .apply(&mut tx, &schema, &recorded)
        .await
        .expect("apply");
    tx.commit().await.expect("commit");

    let row = sqlx::query(&format!(
        "select likes, comment_count, deleted, position from {schema}.posts where id = $1"
    ))
    .bind(a)
    .fetch_one(&pool)
    .await
    .expect("a");
    assert_eq!(row.get::<i32, _>("likes"), 1);
    assert_eq!(row.get::<i32, _>("comment_count"), 1);
    assert!(row.get::<bool, _>("deleted"));
    assert_eq!(row.get::<i64, _>("position"), 1);

    let row = sqlx::query(&format!(
        "select title, categories, edited_at is not null as edited, likes from {schema}.posts where id = $1"
    ))
    .bind(b)
    .fetch_one(&pool)
    .await
    .expect("b");
    assert_eq!(row.get::<String, _>("title"), "t2");
    assert_eq!(row.get::<Vec<String>, _>("categories"), ["help"]);
    assert!(row.get::<bool, _>("edited"));
    assert_eq!(row.get::<i32, _>("likes"), 1);

    let cats: Vec<(Uuid, String)> = sqlx::query_as(&format!(
        "select post_id, category from {schema}.post_categories order by post_id, category"
    ))
    .fetch_all(&pool)
    .await
    .expect("categories");
    assert_eq!(cats, vec![(b, "help".to_string())]);

    let reactions: Vec<(Uuid, Uuid, String, Option<i64>)> = sqlx::query_as(&format!(
        "select target_id, user_id, reaction, post_position from {schema}.reactions
         order by target_id, user_id"
    ))
    .fetch_all(&pool)
    .await
    .expect("reactions");
    assert_eq!(
        reactions,
        vec![
            (a, Uuid::from_u128(101), "like".to_string(), Some(1)),
            (b, Uuid::from_u128(101), "like".to_string(), Some(2)),
        ]
    );

    let visible: Vec<Uuid> = sqlx::query_scalar(&format!(
        "select id from {schema}.comments where not deleted"
    ))
    .fetch_all(&pool)
    .await
    .expect("comments");
    assert_eq!(visible, vec![c2]);

    sqlx::query(&format!("drop schema {schema} cascade"))
        .execute(&pool)
        .await
        .expect("drop");
}

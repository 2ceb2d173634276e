//! The posts projection on a real Postgres, in a fresh schema per test:
//! mixed runs of events (multi-row writes) end in the right rows.

mod common;

use common::PG;

use forum_events::posts::{
    CommentCreated, CommentDeleted, PostCreated, PostDeleted, PostEdited, PostEvent, Reaction,
    ReactionSet, TargetKind,
};
use forum_events::RecordedEvent;
use forum_projections::posts::Posts;
use forum_projections::Projection;
use sqlx::{PgPool, Row};
use uuid::Uuid;

fn recorded(position: u64, event: &PostEvent) -> RecordedEvent {
    common::recorded(position, event.post_id(), event)
}

async fn fresh_schema(pool: &PgPool) -> String {
    common::fresh_schema(pool, &Posts).await
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

async fn dump(pool: &PgPool, schema: &str) -> Vec<String> {
    let mut rows = Vec::new();
    for (table, order) in [
        ("posts", "id"),
        ("post_categories", "post_id, category"),
        ("comments", "id"),
        ("reactions", "target_id, user_id"),
    ] {
        let text: Vec<String> = sqlx::query_scalar(&format!(
            "select t::text from {schema}.{table} t order by {order}"
        ))
        .fetch_all(pool)
        .await
        .expect("dump");
        rows.extend(text.into_iter().map(|r| format!("{table}: {r}")));
    }
    rows
}

#[tokio::test]
async fn one_batch_ends_in_the_same_rows_as_one_event_at_a_time() {
    let pool = PgPool::connect(PG).await.expect("connect");
    let (a, b) = (Uuid::from_u128(10), Uuid::from_u128(11));
    let (c1, c2, c3) = (
        Uuid::from_u128(20),
        Uuid::from_u128(21),
        Uuid::from_u128(22),
    );
    let edit = |id: Uuid, title: &str, cats: &[&str], at: i64| {
        PostEvent::PostEdited(PostEdited {
            post_id: id,
            author_id: Uuid::from_u128(1),
            author_nickname: "ada".into(),
            title: title.into(),
            content: format!("{title} body"),
            categories: cats.iter().map(|c| c.to_string()).collect(),
            created_at_us: 1_000,
            edited_at_us: at,
            comment_count: 0,
            likes: 0,
            dislikes: 0,
        })
    };
    let delete_comment = |id: Uuid, post: Uuid| {
        PostEvent::CommentDeleted(CommentDeleted {
            comment_id: id,
            post_id: post,
            author_id: Uuid::from_u128(2),
            deleted_at_us: 4_000,
        })
    };
    // Interleaved types; rows created early are changed later.
    let events = vec![
        post(a, &["news"]),
        comment(c1, a),
        reaction(a, 100, Reaction::Like, 1),
        post(b, &["meta", "help"]),
        comment(c2, b),
        edit(a, "a2", &["help"], 2_000),
        reaction(c1, 101, Reaction::Dislike, 0),
        comment(c3, a),
        delete_comment(c1, a),
        reaction(b, 100, Reaction::Like, 1),
        edit(b, "b2", &["general"], 3_000),
        reaction(a, 100, Reaction::None, 0),
        reaction(a, 101, Reaction::Like, 1),
        PostEvent::CommentEdited(forum_events::posts::CommentEdited {
            comment_id: c3,
            post_id: a,
            author_id: Uuid::from_u128(2),
            content: "edited".into(),
            edited_at_us: 5_000,
        }),
        delete_comment(c2, b),
        PostEvent::PostDeleted(PostDeleted {
            post_id: b,
            author_id: Uuid::from_u128(1),
            deleted_at_us: 6_000,
        }),
    ];
    let recorded: Vec<RecordedEvent> = events
        .iter()
        .enumerate()
        .map(|(i, e)| recorded(i as u64 + 1, e))
        .collect();
    // One batch.
    let whole = fresh_schema(&pool).await;
    let mut tx = pool.begin().await.expect("begin");
    Posts
        .apply(&mut tx, &whole, &recorded)
        .await
        .expect("apply");
    tx.commit().await.expect("commit");
    // One event per transaction, then split in two uneven batches.
    let single = fresh_schema(&pool).await;
    for e in &recorded {
        let mut tx = pool.begin().await.expect("begin");
        Posts
            .apply(&mut tx, &single, std::slice::from_ref(e))
            .await
            .expect("apply one");
        tx.commit().await.expect("commit");
    }
    let halves = fresh_schema(&pool).await;
    for part in [&recorded[..7], &recorded[7..]] {
        let mut tx = pool.begin().await.expect("begin");
        Posts
            .apply(&mut tx, &halves, part)
            .await
            .expect("apply part");
        tx.commit().await.expect("commit");
    }
    let expected = dump(&pool, &single).await;
    assert!(expected.iter().any(|r| r.contains("a2")), "{expected:#?}");
    assert_eq!(dump(&pool, &whole).await, expected);
    assert_eq!(dump(&pool, &halves).await, expected);
    let a_row: (i32, i32, bool) = sqlx::query_as(&format!(
        "select comment_count, likes, deleted from {single}.posts where id = $1"
    ))
    .bind(a)
    .fetch_one(&pool)
    .await
    .expect("a");
    assert_eq!(a_row, (1, 1, false));
    for s in [whole, single, halves] {
        sqlx::query(&format!("drop schema {s} cascade"))
            .execute(&pool)
            .await
            .expect("drop");
    }
}

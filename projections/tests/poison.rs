//! Parked (poison) events on a real Postgres: which failures park an
//! event, finding the culprits of a failing batch, the runner going on
//! past them, and retrying them after a fix.

mod common;

use common::PG;

use forum_events::posts::{
    CommentCreated, PostCreated, PostEvent, Reaction, ReactionSet, TargetKind,
};
use forum_events::{Metadata, NewEvent, RecordedEvent, Service};
use forum_projections::error::{sqlstate_failure, sqlx_failure, store_failure, Failure};
use forum_projections::inline::{Guard, Inline};
use forum_projections::poison::{self, Parked};
use forum_projections::posts::Posts;
use forum_projections::{registry, runner, Error, Projection};
use forum_store::log::{self, Pending};
use futures::future::BoxFuture;
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

/// The error Postgres answers to `sql`.
async fn server_error(pool: &PgPool, sql: &str) -> sqlx::Error {
    sqlx::query(sql)
        .execute(pool)
        .await
        .expect_err("the statement must fail")
}

/// A statement failing with SQLSTATE `code`.
fn raising(code: &str) -> String {
    format!("do $$ begin raise exception 'test' using errcode = '{code}'; end $$")
}

#[tokio::test]
async fn data_errors_of_classes_22_and_23_are_poison_and_connection_errors_are_transient() {
    let pool = PgPool::connect(PG).await.expect("connect");

    // The error the issue is about: text with U+0000.
    let nul = sqlx::query("select $1::text")
        .bind("a\0b")
        .execute(&pool)
        .await
        .expect_err("NUL is refused");
    assert!(nul.to_string().contains("0x00"), "{nul}");
    assert_eq!(sqlx_failure(&nul), Failure::Deterministic);
    assert_eq!(
        Error::from(nul).failure(),
        Failure::Deterministic,
        "through the crate's error too"
    );

    for code in [
        "22021", "22003", "22P02", "23502", "23503", "23505", "23514",
    ] {
        let e = server_error(&pool, &raising(code)).await;
        assert_eq!(sqlx_failure(&e), Failure::Deterministic, "{code}: {e}");
    }
    // Serialization failure, deadlock, Postgres shutting down or starting,
    // too many connections, a missing table (a deployment fixes it).
    for code in [
        "40001", "40P01", "57P01", "57P03", "53300", "42P01", "08006",
    ] {
        let e = server_error(&pool, &raising(code)).await;
        assert_eq!(sqlx_failure(&e), Failure::Transient, "{code}: {e}");
        assert_eq!(Error::from(e).failure(), Failure::Transient, "{code}");
    }

    // A unique violation becomes the store's Conflict: still poison.
    sqlx::query("create temporary table once (id int primary key)")
        .execute(&pool)
        .await
        .expect("table");
    let mut conn = pool.acquire().await.expect("conn");
    sqlx::query("create temporary table twice (id int primary key)")
        .execute(&mut *conn)
        .await
        .expect("table");
    sqlx::query("insert into twice values (1)")
        .execute(&mut *conn)
        .await
        .expect("first");
    let dup = sqlx::query("insert into twice values (1)")
        .execute(&mut *conn)
        .await
        .expect_err("duplicate");
    let store = forum_store::Error::from(dup);
    assert!(
        matches!(store, forum_store::Error::Conflict { .. }),
        "{store}"
    );
    assert_eq!(store_failure(&store), Failure::Deterministic);

    // No server at all, a pool that gives no connection in time.
    let refused = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(std::time::Duration::from_secs(1))
        .connect("postgres://postgres@127.0.0.1:1/postgres")
        .await
        .expect_err("nothing listens on port 1");
    assert_eq!(sqlx_failure(&refused), Failure::Transient, "{refused}");
    assert_eq!(Error::from(refused).failure(), Failure::Transient);
    assert_eq!(sqlx_failure(&sqlx::Error::PoolTimedOut), Failure::Transient);
    assert_eq!(sqlx_failure(&sqlx::Error::PoolClosed), Failure::Transient);

    // What the projections themselves raise.
    assert_eq!(
        Error::Panicked("boom".into()).failure(),
        Failure::Deterministic
    );
    let decode = Error::Poison {
        service: Service::Posts,
        position: 1,
        event_type: "post_created".into(),
        reason: "malformed".into(),
    };
    assert_eq!(decode.failure(), Failure::Deterministic);
    assert_eq!(Error::State("busy".into()).failure(), Failure::Transient);
    assert_eq!(sqlstate_failure(""), Failure::Transient);
}

/// A projection of test events: one row per event, whose type says how
/// applying it goes: `ok`, `panic` (in the fold, before any statement),
/// `refused` (a check constraint: SQLSTATE 23514) or `nul` (text with
/// U+0000: SQLSTATE 22021).
struct Items;

impl Projection for Items {
    fn name(&self) -> &'static str {
        "items"
    }

    fn version(&self) -> u32 {
        1
    }

    fn sources(&self) -> &'static [Service] {
        &[Service::Posts]
    }

    fn tables(&self) -> &'static [&'static str] {
        &["items"]
    }

    fn create_sql(&self, schema: &str) -> String {
        format!(
            "create table {schema}.items (
                position bigint primary key,
                kind     text   not null check (kind <> 'refused')
            )"
        )
    }

    fn apply<'a>(
        &'a self,
        tx: &'a mut PgConnection,
        schema: &'a str,
        events: &'a [RecordedEvent],
    ) -> BoxFuture<'a, forum_projections::Result<()>> {
        Box::pin(async move {
            let (mut positions, mut kinds) = (Vec::new(), Vec::new());
            for e in events {
                match e.event_type.as_str() {
                    "panic" => panic!("cannot fold the event at {}", e.position),
                    "nul" => kinds.push("a\0b".to_string()),
                    other => kinds.push(other.to_string()),
                }
                positions.push(e.position as i64);
            }
            sqlx::query(&format!(
                "insert into {schema}.items select * from unnest($1::bigint[], $2::text[])"
            ))
            .bind(&positions)
            .bind(&kinds)
            .execute(&mut *tx)
            .await?;
            Ok(())
        })
    }

    fn forget_stream<'a>(
        &'a self,
        _tx: &'a mut PgConnection,
        _schema: &'a str,
        _stream: Uuid,
        _events: &'a [RecordedEvent],
    ) -> BoxFuture<'a, forum_projections::Result<()>> {
        Box::pin(async { Ok(()) })
    }
}

fn item(position: u64, kind: &str) -> RecordedEvent {
    RecordedEvent {
        service: Service::Posts,
        position,
        stream_id: Uuid::from_u128(position as u128),
        version: 1,
        event_id: Uuid::new_v4(),
        event_type: kind.to_string(),
        schema_version: 1,
        payload: Vec::new(),
        metadata: Metadata {
            correlation_id: Uuid::new_v4(),
            causation_id: Uuid::nil(),
            actor: None,
            recorded_at_us: 0,
        },
    }
}

#[tokio::test]
async fn a_failing_batch_parks_only_the_events_that_fail_alone_and_applies_the_others() {
    let pool = PgPool::connect(PG).await.expect("connect");
    let schema = common::fresh_schema(&pool, &Items).await;
    let kind = |p: u64| match p {
        3 => "panic",
        8 => "refused",
        15 => "nul",
        _ => "ok",
    };
    let events: Vec<RecordedEvent> = (1..=20).map(|p| item(p, kind(p))).collect();

    let mut tx = pool.begin().await.expect("begin");
    let whole = poison::apply_guarded(&mut tx, &Items, &schema, &events)
        .await
        .expect_err("the batch fails as a whole");
    assert!(matches!(whole, Error::Panicked(_)), "{whole}");
    assert_eq!(whole.failure(), Failure::Deterministic);
    tx.rollback().await.expect("rollback");

    let mut tx = pool.begin().await.expect("begin");
    let parked = poison::apply_isolating(&mut tx, &Items, &schema, &events)
        .await
        .expect("isolated");
    tx.commit().await.expect("commit");
    let at: Vec<u64> = parked.iter().map(|p| p.position).collect();
    assert_eq!(at, vec![3, 8, 15], "{parked:?}");
    assert!(
        parked[0].error.contains("cannot fold the event at 3"),
        "{parked:?}"
    );
    assert!(parked[1].error.contains("check constraint"), "{parked:?}");
    assert!(parked[2].error.contains("0x00"), "{parked:?}");
    assert_eq!(parked[1].event_id, events[7].event_id);
    assert_eq!(parked[1].event_type, "refused");

    let applied: Vec<i64> = sqlx::query_scalar(&format!(
        "select position from {schema}.items order by position"
    ))
    .fetch_all(&pool)
    .await
    .expect("items");
    let expected: Vec<i64> = (1..=20).filter(|p| ![3, 8, 15].contains(p)).collect();
    assert_eq!(
        applied, expected,
        "every other event of the batch is applied"
    );
}

/// A fresh database with every migration applied; dropped by
/// [`drop_database`].
async fn fresh_database() -> (PgPool, String) {
    let name = format!("forum_pp_{}", &Uuid::new_v4().simple().to_string()[..12]);
    let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
    forum_store::setup::create_database(&url)
        .await
        .expect("create database");
    let pool = PgPool::connect(&url).await.expect("connect");
    forum_store::setup::migrate(&pool).await.expect("migrate");
    (pool, name)
}

async fn drop_database(pool: PgPool, name: &str) {
    pool.close().await;
    if let Ok(admin) = PgPool::connect(PG).await {
        let _ = sqlx::query(&format!("drop database if exists {name} with (force)"))
            .execute(&admin)
            .await;
    }
}

fn post(id: Uuid, content: &str) -> PostEvent {
    PostEvent::PostCreated(PostCreated {
        post_id: id,
        author_id: Uuid::from_u128(1),
        author_nickname: "ada".into(),
        title: "t".into(),
        content: content.into(),
        categories: vec!["news".into()],
        created_at_us: 1_000,
    })
}

fn comment(id: Uuid, post_id: Uuid, content: &str) -> PostEvent {
    PostEvent::CommentCreated(CommentCreated {
        comment_id: id,
        post_id,
        author_id: Uuid::from_u128(2),
        author_nickname: "bob".into(),
        content: content.into(),
        created_at_us: 2_000,
    })
}

fn like(post_id: Uuid, likes: u32) -> PostEvent {
    PostEvent::ReactionSet(ReactionSet {
        target: TargetKind::Post,
        target_id: post_id,
        post_id,
        user_id: Uuid::from_u128(3),
        reaction: Reaction::Like,
        likes,
        dislikes: 0,
        at_us: 3_000,
    })
}

/// Appends to the posts log as the service does: the stream is the post,
/// versions follow each other per stream.
async fn append(pool: &PgPool, events: &[PostEvent]) -> Vec<RecordedEvent> {
    let mut tx = pool.begin().await.expect("begin");
    log::lock(&mut tx, Service::Posts).await.expect("lock");
    let mut pending = Vec::new();
    for e in events {
        let stream = e.post_id();
        let version: i64 = sqlx::query_scalar(
            "select coalesce(max(version), 0)::bigint from posts.events where stream_id = $1",
        )
        .bind(stream)
        .fetch_one(&mut *tx)
        .await
        .expect("version");
        let earlier = pending
            .iter()
            .filter(|p: &&Pending| p.event.stream_id == stream)
            .count() as i64;
        pending.push(Pending {
            event: NewEvent::new(stream, (version + earlier + 1) as u32, Uuid::new_v4(), e),
            metadata: Metadata {
                correlation_id: Uuid::new_v4(),
                causation_id: Uuid::new_v4(),
                actor: None,
                recorded_at_us: 1_700_000_000_000_000,
            },
        });
    }
    let recorded = log::append(&mut tx, Service::Posts, pending)
        .await
        .expect("append");
    tx.commit().await.expect("commit");
    recorded
}

async fn posts_checkpoint(pool: &PgPool) -> i64 {
    sqlx::query_scalar(
        "select position from proj.checkpoints
         where projection = 'posts' and version = 1 and service = 'posts'",
    )
    .fetch_one(pool)
    .await
    .expect("checkpoint")
}

async fn parked_rows(pool: &PgPool) -> Vec<(i64, String, i32)> {
    sqlx::query_as(
        "select position, event_type, attempts from proj.poison
         where projection = 'posts' and version = 1 order by position",
    )
    .fetch_all(pool)
    .await
    .expect("poison")
}

#[tokio::test]
async fn the_runner_parks_an_event_it_cannot_store_moves_past_it_and_goes_on() {
    let (pool, db) = fresh_database().await;
    registry::ensure_live(&pool, &Posts).await.expect("live");
    let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let written = append(
        &pool,
        &[
            post(a, "fine"),
            post(b, "nul \0 inside"),
            post(c, "fine too"),
        ],
    )
    .await;
    // An event that does not decode, in a batch of its own.
    let undecodable = {
        let mut tx = pool.begin().await.expect("begin");
        log::lock(&mut tx, Service::Posts).await.expect("lock");
        let e = log::append(
            &mut tx,
            Service::Posts,
            vec![Pending {
                event: NewEvent {
                    stream_id: Uuid::new_v4(),
                    version: 1,
                    event_id: Uuid::new_v4(),
                    event_type: "comment_created",
                    schema_version: 1,
                    payload: vec![0xde, 0xad, 0xbe, 0xef],
                },
                metadata: written[0].metadata.clone(),
            }],
        )
        .await
        .expect("append");
        tx.commit().await.expect("commit");
        e
    };

    let stepped = runner::step(&pool, &Posts, 1, Service::Posts, 100)
        .await
        .expect("a poison event is not an error")
        .expect("a step");
    assert_eq!(stepped.position, 4, "the checkpoint moves past it");
    assert_eq!(stepped.events, 4);
    let at: Vec<u64> = stepped.parked.iter().map(|p| p.position).collect();
    assert_eq!(at, vec![2, 4], "{:?}", stepped.parked);
    assert_eq!(posts_checkpoint(&pool).await, 4);
    let row = sqlx::query(
        "select service, stream_id, event_id, event_type, correlation_id, error, attempts
         from proj.poison where projection = 'posts' and version = 1 and position = 2",
    )
    .fetch_one(&pool)
    .await
    .expect("the parked event is recorded");
    assert_eq!(row.get::<String, _>("service"), "posts");
    assert_eq!(row.get::<Uuid, _>("stream_id"), b);
    assert_eq!(row.get::<Uuid, _>("event_id"), written[1].event_id);
    assert_eq!(row.get::<String, _>("event_type"), "post_created");
    assert_eq!(
        row.get::<Uuid, _>("correlation_id"),
        written[1].metadata.correlation_id
    );
    assert!(row.get::<String, _>("error").contains("0x00"));
    assert_eq!(row.get::<i32, _>("attempts"), 1);
    let decode_error: String = sqlx::query_scalar(
        "select error from proj.poison where projection = 'posts' and position = 4",
    )
    .fetch_one(&pool)
    .await
    .expect("the undecodable event is recorded");
    assert!(
        decode_error.contains("cannot apply comment_created"),
        "{decode_error}"
    );
    assert_eq!(undecodable[0].position, 4);

    let ids: Vec<Uuid> = sqlx::query_scalar("select id from read.posts order by position")
        .fetch_all(&pool)
        .await
        .expect("posts");
    assert_eq!(ids, vec![a, c], "the events around it are applied");

    // Nothing left to do, found out without taking the checkpoint: a step
    // then leaves it free even for an append that takes it without
    // waiting (the inline read models' fast path); a later event goes
    // through as usual.
    assert!(runner::caught_up(&pool, &Posts, 1, Service::Posts)
        .await
        .expect("caught up"));
    let mut inline = pool.begin().await.expect("begin");
    sqlx::query(
        "select position from proj.checkpoints
         where projection = 'posts' and version = 1 and service = 'posts' for update",
    )
    .execute(&mut *inline)
    .await
    .expect("the checkpoint is free");
    assert!(runner::step(&pool, &Posts, 1, Service::Posts, 100)
        .await
        .expect("step")
        .is_none());
    inline.rollback().await.expect("rollback");
    let d = Uuid::new_v4();
    append(&pool, &[post(d, "later")]).await;
    assert!(!runner::caught_up(&pool, &Posts, 1, Service::Posts)
        .await
        .expect("behind"));
    let stepped = runner::step(&pool, &Posts, 1, Service::Posts, 100)
        .await
        .expect("step")
        .expect("a step");
    assert_eq!((stepped.position, stepped.parked.len()), (5, 0));
    let n: i64 = sqlx::query_scalar("select count(*) from read.posts")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(n, 3);
    drop_database(pool, &db).await;
}

/// Every row of the posts tables of `schema`, as text, sorted.
async fn dump(pool: &PgPool, schema: &str) -> Vec<String> {
    let mut rows = Vec::new();
    for table in Posts.tables() {
        let mut r: Vec<String> = sqlx::query_scalar(&format!(
            "select '{table}: ' || row(t.*)::text from {schema}.{table} t"
        ))
        .fetch_all(pool)
        .await
        .expect("dump");
        rows.append(&mut r);
    }
    rows.sort();
    rows
}

#[tokio::test]
async fn retry_poison_applies_a_fixed_event_in_stream_order_and_keeps_failing_ones_parked() {
    let (pool, db) = fresh_database().await;
    registry::ensure_live(&pool, &Posts).await.expect("live");
    // A bug that refuses some comments (fixed below by dropping it).
    sqlx::query(
        "alter table proj_posts_v1.comments add constraint no_refused check (content <> 'refused')",
    )
    .execute(&pool)
    .await
    .expect("constraint");
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let (c1, c2) = (Uuid::new_v4(), Uuid::new_v4());
    let stream_a = [
        post(a, "post a"),
        comment(c1, a, "refused"),
        comment(c2, a, "fine"),
        like(a, 1),
    ];
    let mut events = stream_a.to_vec();
    events.push(post(b, "nul \0 for good"));
    let written = append(&pool, &events).await;
    let stepped = runner::step(&pool, &Posts, 1, Service::Posts, 100)
        .await
        .expect("step")
        .expect("a step");
    let at: Vec<u64> = stepped.parked.iter().map(|p| p.position).collect();
    assert_eq!(at, vec![2, 5]);
    let count: i32 = sqlx::query_scalar("select comment_count from read.posts where id = $1")
        .bind(a)
        .fetch_one(&pool)
        .await
        .expect("a");
    assert_eq!(count, 1, "the refused comment is not counted");

    // Before the fix: both stay parked, with one more attempt each.
    let report = poison::retry(&pool, &Posts, None).await.expect("retry");
    assert!(report.applied.is_empty(), "{report:?}");
    let still: Vec<u64> = report.still.iter().map(|p| p.position).collect();
    assert_eq!(still, vec![2, 5]);
    assert!(report.newly.is_empty());
    assert_eq!(
        parked_rows(&pool).await,
        vec![
            (2, "comment_created".into(), 2),
            (5, "post_created".into(), 2)
        ]
    );

    // The fix: the refused comment now applies, after the stream's later
    // events were applied without it; the NUL one still fails.
    sqlx::query("alter table proj_posts_v1.comments drop constraint no_refused")
        .execute(&pool)
        .await
        .expect("fix");
    let report = poison::retry(&pool, &Posts, Some(1)).await.expect("retry");
    let applied: Vec<(u64, Uuid)> = report
        .applied
        .iter()
        .map(|p: &Parked| (p.position, p.event_id))
        .collect();
    assert_eq!(applied, vec![(2, written[1].event_id)]);
    let still: Vec<u64> = report.still.iter().map(|p| p.position).collect();
    assert_eq!(still, vec![5]);
    assert_eq!(
        parked_rows(&pool).await,
        vec![(5, "post_created".into(), 3)]
    );
    assert_eq!(posts_checkpoint(&pool).await, 5, "the checkpoint stays");

    // The same rows as the stream applied in order from scratch.
    let fresh = common::fresh_schema(&pool, &Posts).await;
    let mut tx = pool.begin().await.expect("begin");
    Posts
        .apply(&mut tx, &fresh, &written[..4])
        .await
        .expect("apply");
    tx.commit().await.expect("commit");
    assert_eq!(
        dump(&pool, "proj_posts_v1").await,
        dump(&pool, &fresh).await
    );
    let row = sqlx::query("select comment_count, likes from read.posts where id = $1")
        .bind(a)
        .fetch_one(&pool)
        .await
        .expect("a");
    assert_eq!(
        (
            row.get::<i32, _>("comment_count"),
            row.get::<i32, _>("likes")
        ),
        (2, 1)
    );
    drop_database(pool, &db).await;
}

/// Appends `events` to the posts log in `tx` (which holds its append lock).
async fn append_in(tx: &mut PgConnection, events: &[PostEvent]) -> Vec<RecordedEvent> {
    let pending = events
        .iter()
        .map(|e| Pending {
            event: NewEvent::new(e.post_id(), 1, Uuid::new_v4(), e),
            metadata: Metadata {
                correlation_id: Uuid::new_v4(),
                causation_id: Uuid::new_v4(),
                actor: None,
                recorded_at_us: 1_700_000_000_000_000,
            },
        })
        .collect();
    log::append(tx, Service::Posts, pending)
        .await
        .expect("append")
}

#[tokio::test]
async fn inline_fast_moves_the_checkpoint_with_the_rows_and_fails_where_careful_parks_or_skips() {
    let (pool, db) = fresh_database().await;
    registry::ensure_live(&pool, &Posts).await.expect("live");
    let inline = Inline::of(Service::Posts);
    let shown = |id: Uuid| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>("select count(*) from proj_posts_v1.posts where id = $1")
                .bind(id)
                .fetch_one(&pool)
                .await
                .expect("count")
        }
    };

    // Fast: applied, and the checkpoint moved, in the append's transaction.
    let a = Uuid::new_v4();
    let mut tx = log::begin_locked(&pool, Service::Posts)
        .await
        .expect("begin");
    let recorded = append_in(&mut tx, &[post(a, "fine")]).await;
    let applied = inline
        .apply(&mut tx, &recorded, Guard::Fast)
        .await
        .expect("applied");
    tx.commit().await.expect("commit");
    assert_eq!(applied.progress.len(), 1, "{applied:?}");
    assert_eq!(applied.progress[0].position, 1);
    assert_eq!(posts_checkpoint(&pool).await, 1);
    assert_eq!(shown(a).await, 1);

    // An event the read model cannot store: fast fails the transaction
    // (rolled back whole, the append with it), careful parks it and moves on.
    let b = Uuid::new_v4();
    let mut tx = log::begin_locked(&pool, Service::Posts)
        .await
        .expect("begin");
    let recorded = append_in(&mut tx, &[post(b, "nul \0 inside")]).await;
    assert!(inline.apply(&mut tx, &recorded, Guard::Fast).await.is_err());
    tx.rollback().await.expect("rollback");
    assert_eq!(posts_checkpoint(&pool).await, 1);
    let mut tx = log::begin_locked(&pool, Service::Posts)
        .await
        .expect("begin");
    let recorded = append_in(&mut tx, &[post(b, "nul \0 inside")]).await;
    let applied = inline
        .apply(&mut tx, &recorded, Guard::Careful)
        .await
        .expect("careful never fails on an event");
    tx.commit().await.expect("commit");
    assert_eq!(applied.parked.len(), 1, "{applied:?}");
    assert_eq!(posts_checkpoint(&pool).await, 2);
    assert_eq!(parked_rows(&pool).await.len(), 1);

    // A checkpoint the projector holds: fast leaves the events to it,
    // without waiting and without applying anything.
    let mut projector = pool.begin().await.expect("begin");
    sqlx::query("select position from proj.checkpoints where projection = 'posts' for update")
        .execute(&mut *projector)
        .await
        .expect("hold the checkpoint");
    let c = Uuid::new_v4();
    let mut tx = log::begin_locked(&pool, Service::Posts)
        .await
        .expect("begin");
    let recorded = append_in(&mut tx, &[post(c, "later")]).await;
    let applied = inline
        .apply(&mut tx, &recorded, Guard::Fast)
        .await
        .expect("skipped, not failed");
    tx.commit().await.expect("commit");
    projector.rollback().await.expect("release");
    assert!(applied.progress.is_empty(), "{applied:?}");
    assert_eq!(posts_checkpoint(&pool).await, 2);
    assert_eq!(shown(c).await, 0, "left to the projector");

    drop_database(pool, &db).await;
}

//! Events a projection cannot apply, end to end against the real binary,
//! Postgres and NATS: they are parked as poison and everything goes on
//! (API, other projections, live feed, notifications deriver), the replay
//! tooling lists, rebuilds, verifies and retries them, and a write whose
//! event is parked answers at once.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::ws::{connect, FRAME_WAIT};
use common::{append_posts, eventually, undecodable_event, System};
use forum_events::posts::{PostCreated, PostEvent};
use forum_events::NewEvent;
use serde_json::{json, Value};
use uuid::Uuid;

/// How long a test waits for the system to get somewhere.
const WITHIN: Duration = Duration::from_secs(60);

/// Runs `forum replay ...` to completion: (success, stdout, stderr).
async fn run_replay(sys: &System, args: &[&str]) -> (bool, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_forum"))
        .arg("replay")
        .args(args)
        .env("FORUM_DATABASE_URL", &sys.db_url)
        .env("FORUM_PREFIX", &sys.prefix)
        .env("FORUM_DB_MAX_CONNECTIONS", "8")
        .env(
            "RUST_LOG",
            std::env::var("TEST_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output()
        .await
        .expect("run forum replay");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A `post_created` whose content Postgres cannot store (U+0000).
fn post_with_nul(author: Uuid) -> NewEvent {
    let id = Uuid::new_v4();
    NewEvent::new(
        id,
        1,
        Uuid::new_v4(),
        &PostEvent::PostCreated(PostCreated {
            post_id: id,
            author_id: author,
            author_nickname: "ann".into(),
            title: "poison".into(),
            content: "a NUL \0 inside".into(),
            categories: vec!["news".into()],
            created_at_us: 1_700_000_000_000_000,
        }),
    )
}

/// (follower, version, position, attempts) of every parked event.
async fn parked(pool: &sqlx::PgPool) -> Vec<(String, i32, i64, i32)> {
    sqlx::query_as(
        "select projection, version, position, attempts from proj.poison
         order by projection, version, position",
    )
    .fetch_all(pool)
    .await
    .expect("poison")
}

async fn create_post(sys: &System, token: &str, title: &str) -> (u16, Value, Duration) {
    let started = Instant::now();
    let (status, body) = sys
        .post(
            "/api/posts",
            Some(token),
            json!({"title": title, "content": format!("content of {title}"), "categories": ["news"]}),
        )
        .await;
    (status, body, started.elapsed())
}

async fn metrics(sys: &System) -> String {
    let resp = sys
        .http
        .get(sys.url("/metrics"))
        .send()
        .await
        .expect("metrics");
    assert_eq!(resp.status().as_u16(), 200);
    resp.text().await.expect("metrics body")
}

#[tokio::test]
async fn events_the_projections_cannot_apply_are_parked_and_everything_goes_on() {
    let sys = System::up().await;
    let pool = sys.pool().await;
    let (ann, ann_id) = sys.register("ann").await;
    let (bob, _) = sys.register("bob").await;
    let mut live = connect(&sys.base, &bob, None).await;
    let (status, before, _) = create_post(&sys, &ann, "Before").await;
    assert_eq!(status, 201, "{before}");

    let ann_uuid: Uuid = ann_id.parse().expect("user id");
    let bad = append_posts(&pool, vec![post_with_nul(ann_uuid), undecodable_event()]).await;
    let (nul_at, undecodable_at) = (bad[0].position as i64, bad[1].position as i64);

    // Parked by the projection (both) and by the deriver (the one it
    // cannot decode; the other teaches it an author and fails nowhere).
    let rows = eventually(WITHIN, "the bad events parked", || async {
        let rows = parked(&pool).await;
        (rows.len() == 3).then_some(rows)
    })
    .await;
    assert_eq!(
        rows,
        vec![
            ("notifier".into(), 1, undecodable_at, 1),
            ("posts".into(), 1, nul_at, 1),
            ("posts".into(), 1, undecodable_at, 1),
        ]
    );
    let error: String = sqlx::query_scalar(
        "select error from proj.poison where projection = 'posts' and position = $1",
    )
    .bind(nul_at)
    .fetch_one(&pool)
    .await
    .expect("error");
    assert!(error.contains("0x00"), "{error}");

    // The API goes on: a later post is answered and shown, and the live
    // feed delivers it.
    let (status, later, took) = create_post(&sys, &ann, "After").await;
    assert_eq!(status, 201, "{later}");
    assert!(took < Duration::from_secs(30), "answered in {took:?}");
    let id = later["id"].as_str().expect("id").to_string();
    let (status, shown) = sys.get(&format!("/api/posts/{id}"), Some(&bob)).await;
    assert_eq!(status, 200, "{shown}");
    let deadline = Instant::now() + FRAME_WAIT;
    loop {
        let f = live.expect("post.new", FRAME_WAIT).await;
        if f["data"]["id"] == id.as_str() {
            break;
        }
        assert!(Instant::now() < deadline, "no post.new for the later post");
    }

    // Other projections and the deriver go on: a comment notifies.
    let (status, c) = sys
        .post(
            &format!("/api/posts/{id}/comments"),
            Some(&bob),
            json!({"content": "still here"}),
        )
        .await;
    assert_eq!(status, 201, "{c}");
    let (status, page) = sys.get("/api/notifications", Some(&ann)).await;
    assert_eq!(status, 200, "{page}");
    let items = page["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{page}");
    assert_eq!(items[0]["kind"], "comment", "{page}");
    sys.register("carol").await;

    // What an operator sees: the gauge, the list.
    let text = metrics(&sys).await;
    assert!(
        text.contains("forum_poison_events{projection=\"posts\",version=\"1\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("forum_poison_events{projection=\"notifier\",version=\"1\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("forum_poison_events{projection=\"users\",version=\"1\"} 0"),
        "{text}"
    );
    let (ok, out, err) = run_replay(&sys, &["list"]).await;
    assert!(ok, "{out}{err}");
    assert!(out.contains("posts v1 live"), "{out}");
    assert!(out.contains("2 parked event(s)"), "{out}");
    assert!(
        out.contains(&format!(
            "parked: posts position {nul_at} post_created event {}",
            bad[0].event_id
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "parked: posts position {undecodable_at} comment_created"
        )),
        "{out}"
    );
    assert!(
        out.contains("notifier (notifications deriver): 1 parked event(s)"),
        "{out}"
    );

    // A rebuild finishes, parking and reporting the same events; verify
    // finds both versions equal.
    let (ok, out, err) = run_replay(&sys, &["rebuild", "posts"]).await;
    assert!(ok, "the rebuild finishes: {out}{err}");
    assert!(
        out.contains(&format!(
            "parked on posts v2: posts position {nul_at} post_created"
        )),
        "{out}"
    );
    assert!(out.contains("switched posts to v2 (retired v1)"), "{out}");
    assert!(out.contains("posts v2: 2 event(s) parked"), "{out}");
    let (ok, out, err) = run_replay(&sys, &["verify", "posts"]).await;
    assert!(ok, "verify finds no difference: {out}{err}");
    assert!(
        out.contains("posts v1 = v2: the same 2 event(s) parked on both"),
        "{out}"
    );
    assert!(
        out.contains(&format!("posts v2: parked: posts position {nul_at}")),
        "{out}"
    );

    // Retrying changes nothing while they still fail.
    let (ok, out, _) = run_replay(&sys, &["retry-poison", "posts"]).await;
    assert!(!ok, "events stay parked: {out}");
    assert!(
        out.contains(&format!(
            "still parked: posts position {nul_at} post_created"
        )),
        "{out}"
    );
    assert!(out.contains("posts: 0 applied, 2 still parked"), "{out}");
    let (ok, out, _) = run_replay(&sys, &["retry-poison", "notifier"]).await;
    assert!(!ok, "{out}");
    assert!(out.contains("notifier: 0 applied, 1 still parked"), "{out}");
    let rows = parked(&pool).await;
    assert!(
        rows.contains(&("posts".into(), 2, nul_at, 2)),
        "one more attempt on the live version: {rows:?}"
    );
    assert!(
        rows.contains(&("notifier".into(), 1, undecodable_at, 2)),
        "{rows:?}"
    );

    // And after all that, writes still go through the new live version.
    let (status, body, _) = create_post(&sys, &bob, "After the rebuild").await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test]
async fn a_write_whose_event_is_parked_answers_at_once_and_retry_poison_shows_it_after_the_fix() {
    let sys = System::up().await;
    let pool = sys.pool().await;
    let (ann, _) = sys.register("ann").await;
    let (bob, _) = sys.register("bob").await;
    // A bug in the read model: it refuses some titles.
    sqlx::query(
        "alter table proj_posts_v1.posts add constraint refuses check (title <> 'Refused')",
    )
    .execute(&pool)
    .await
    .expect("constraint");

    let (status, body, took) = create_post(&sys, &ann, "Refused").await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(body["error"]["code"], "internal", "{body}");
    assert!(
        took < Duration::from_secs(30),
        "answered in {took:?}, not after the 60 s read timeout"
    );
    let (id, position): (Uuid, i64) = sqlx::query_as(
        "select stream_id, position from posts.events where event_type = 'post_created'",
    )
    .fetch_one(&pool)
    .await
    .expect("the write is stored");
    assert_eq!(parked(&pool).await, vec![("posts".into(), 1, position, 1)]);
    let (status, _) = sys.get(&format!("/api/posts/{id}"), Some(&ann)).await;
    assert_eq!(status, 404, "not shown");

    // An edit the read model refuses: without the check the handler would
    // answer 200 with the old title.
    let (status, original, _) = create_post(&sys, &bob, "Original").await;
    assert_eq!(status, 201, "{original}");
    let other = original["id"].as_str().expect("id").to_string();
    let (status, body) = sys
        .call(
            reqwest::Method::PATCH,
            &format!("/api/posts/{other}"),
            Some(&bob),
            Some(json!({"title": "Refused"})),
        )
        .await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(body["error"]["code"], "internal", "{body}");
    let (status, shown) = sys.get(&format!("/api/posts/{other}"), Some(&bob)).await;
    assert_eq!((status, shown["title"].as_str()), (200, Some("Original")));
    assert_eq!(parked(&pool).await.len(), 2);

    // The projection goes on.
    let (status, body, _) = create_post(&sys, &bob, "Fine").await;
    assert_eq!(status, 201, "{body}");

    // The fix, then the retry: both writes are shown, each post's stream
    // applied again in order (more on that order in
    // projections/tests/poison.rs).
    sqlx::query("alter table proj_posts_v1.posts drop constraint refuses")
        .execute(&pool)
        .await
        .expect("fix");
    let (ok, out, err) = run_replay(&sys, &["retry-poison", "posts"]).await;
    assert!(ok, "{out}{err}");
    assert!(
        out.contains(&format!("applied: posts position {position} post_created")),
        "{out}"
    );
    assert!(out.contains("post_edited"), "{out}");
    assert!(out.contains("posts: 2 applied, 0 still parked"), "{out}");
    assert!(parked(&pool).await.is_empty());
    let (status, post) = sys.get(&format!("/api/posts/{id}"), Some(&ann)).await;
    assert_eq!(status, 200, "{post}");
    assert_eq!(post["title"], "Refused");
    let (status, edited) = sys.get(&format!("/api/posts/{other}"), Some(&ann)).await;
    assert_eq!(status, 200, "{edited}");
    assert_eq!(edited["title"], "Refused");
    assert_eq!(edited["content"], "content of Original");
    let text = metrics(&sys).await;
    assert!(
        text.contains("forum_poison_events{projection=\"posts\",version=\"1\"} 0"),
        "{text}"
    );
}

#[tokio::test]
async fn the_deriver_parks_an_event_it_cannot_store_goes_on_and_derives_its_stream_again_after_the_fix(
) {
    let sys = System::up().await;
    let pool = sys.pool().await;
    let (ann, ann_id) = sys.register("ann").await;
    let (bob, _) = sys.register("bob").await;
    // A bug in the deriver's own table: it cannot record ann's posts.
    sqlx::query(&format!(
        "alter table notifications.authors add constraint refuses check (author_id <> '{ann_id}')"
    ))
    .execute(&pool)
    .await
    .expect("constraint");

    let (status, post, _) = create_post(&sys, &ann, "By ann").await;
    assert_eq!(status, 201, "{post}");
    let anns = post["id"].as_str().expect("id").to_string();
    let position: i64 =
        sqlx::query_scalar("select position from posts.events where event_type = 'post_created'")
            .fetch_one(&pool)
            .await
            .expect("position");
    let rows = eventually(WITHIN, "the deriver parks ann's post", || async {
        let rows = parked(&pool).await;
        (!rows.is_empty()).then_some(rows)
    })
    .await;
    assert_eq!(rows, vec![("notifier".into(), 1, position, 1)]);
    let error: String =
        sqlx::query_scalar("select error from proj.poison where projection = 'notifier'")
            .fetch_one(&pool)
            .await
            .expect("error");
    assert!(error.contains("check constraint"), "{error}");

    // It goes on: bob's post is learnt and carol's comment on it notifies
    // him; bob's comment on ann's post notifies nobody (her authorship was
    // not recorded).
    let (carol, _) = sys.register("carol").await;
    let (status, bobs, _) = create_post(&sys, &bob, "By bob").await;
    assert_eq!(status, 201, "{bobs}");
    let bobs = bobs["id"].as_str().expect("id").to_string();
    for (token, on) in [(&carol, &bobs), (&bob, &anns)] {
        let (status, c) = sys
            .post(
                &format!("/api/posts/{on}/comments"),
                Some(token),
                json!({"content": "hello"}),
            )
            .await;
        assert_eq!(status, 201, "{c}");
    }
    let count = |token: String| {
        let sys = &sys;
        async move {
            let (status, page) = sys.get("/api/notifications", Some(&token)).await;
            assert_eq!(status, 200, "{page}");
            page["items"].as_array().expect("items").len()
        }
    };
    assert_eq!(count(bob.clone()).await, 1);
    assert_eq!(count(ann.clone()).await, 0);
    assert_eq!(parked(&pool).await.len(), 1, "nothing else parked");

    // The fix, then the retry: ann's post is derived again with its
    // stream, so bob's comment now notifies her.
    sqlx::query("alter table notifications.authors drop constraint refuses")
        .execute(&pool)
        .await
        .expect("fix");
    let (ok, out, err) = run_replay(&sys, &["retry-poison", "notifier"]).await;
    assert!(ok, "{out}{err}");
    assert!(
        out.contains(&format!("applied: posts position {position} post_created")),
        "{out}"
    );
    assert!(parked(&pool).await.is_empty());
    eventually(WITHIN, "ann's notification", || async {
        (count(ann.clone()).await == 1).then_some(())
    })
    .await;
    assert_eq!(count(bob.clone()).await, 1, "nothing derived twice");
}

//! Notifications end to end: what notifies whom (and what does not), read
//! marks, the unread filter and count, paging, exactly-once derivation
//! (an event stored twice in the stream, a lost checkpoint, a service
//! killed mid-stream, a standby taking over), and a rebuild.

mod common;

use std::process::Stdio;
use std::time::Duration;

use async_nats::jetstream::{self, message::PublishMessage};
use bytes::Bytes;
use common::{eventually, System};
use forum_events::{subject::Subjects, Service};
use forum_store::log;
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

async fn new_post(sys: &System, token: &str) -> String {
    let (status, body) = sys
        .post(
            "/api/posts",
            Some(token),
            json!({"title": "A post", "content": "c", "categories": ["general"]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().expect("id").to_string()
}

async fn comment(sys: &System, token: &str, post: &str) -> String {
    let (status, body) = sys
        .post(
            &format!("/api/posts/{post}/comments"),
            Some(token),
            json!({"content": "a comment"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().expect("id").to_string()
}

async fn react(sys: &System, token: &str, path: &str, reaction: Value) {
    let (status, body) = sys
        .call(
            Method::PUT,
            &format!("{path}/reaction"),
            Some(token),
            Some(json!({ "reaction": reaction })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

async fn list(sys: &System, token: &str, query: &str) -> Value {
    let (status, body) = sys
        .get(&format!("/api/notifications{query}"), Some(token))
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

fn items(page: &Value) -> Vec<Value> {
    page["items"].as_array().expect("items").clone()
}

fn field(page: &Value, name: &str) -> Vec<Value> {
    items(page).iter().map(|n| n[name].clone()).collect()
}

fn is_time(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| s.len() == 24 && s.ends_with('Z') && s.as_bytes()[19] == b'.')
}

async fn mark(sys: &System, token: &str, body: Value) -> (u16, Value) {
    sys.post("/api/notifications/read", Some(token), body).await
}

async fn count(pool: &sqlx::PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.expect(sql)
}

#[tokio::test]
async fn a_comment_a_like_a_dislike_and_a_message_notify_their_targets_at_once() {
    let sys = System::up().await;
    let (ann, ann_id) = sys.register("ann").await;
    let (bob, bob_id) = sys.register("bob").await;
    let post = new_post(&sys, &ann).await;

    // Read-your-writes: the post's author sees the comment's notification
    // as soon as the comment is answered.
    let c = comment(&sys, &bob, &post).await;
    let page = list(&sys, &ann, "").await;
    assert_eq!(page["unread_count"], 1);
    assert_eq!(page["next_cursor"], Value::Null);
    let n = &items(&page)[0];
    assert_eq!(n["kind"], "comment");
    assert_eq!(n["actor"], json!({"id": bob_id, "nickname": "bob"}));
    assert_eq!(n["post_id"], post.as_str());
    assert_eq!(n["comment_id"], c.as_str());
    assert_eq!(n["message_id"], Value::Null);
    assert_eq!(n["read"], false);
    assert!(is_time(&n["created_at"]), "{n}");
    assert!(n["id"]
        .as_str()
        .and_then(|s| Uuid::parse_str(s).ok())
        .is_some());
    assert_eq!(n.as_object().expect("object").len(), 8, "{n}");

    react(&sys, &bob, &format!("/api/posts/{post}"), json!("like")).await;
    let page = list(&sys, &ann, "").await;
    assert_eq!(field(&page, "kind"), [json!("reaction"), json!("comment")]);
    assert_eq!(items(&page)[0]["post_id"], post.as_str());
    assert_eq!(items(&page)[0]["comment_id"], Value::Null);

    // Ann dislikes Bob's comment: Bob is notified, about that comment.
    react(&sys, &ann, &format!("/api/comments/{c}"), json!("dislike")).await;
    let page = list(&sys, &bob, "").await;
    assert_eq!(page["unread_count"], 1);
    let n = &items(&page)[0];
    assert_eq!(
        (
            n["kind"].clone(),
            n["actor"]["nickname"].clone(),
            n["post_id"].clone(),
            n["comment_id"].clone()
        ),
        (json!("reaction"), json!("ann"), json!(post), json!(c))
    );

    let (status, m) = sys
        .post(
            &format!("/api/conversations/{ann_id}/messages"),
            Some(&bob),
            json!({"content": "hi"}),
        )
        .await;
    assert_eq!(status, 201, "{m}");
    let page = list(&sys, &ann, "").await;
    assert_eq!(page["unread_count"], 3);
    let n = &items(&page)[0];
    assert_eq!(n["kind"], "message");
    assert_eq!(n["message_id"], m["id"]);
    assert_eq!(
        (n["post_id"].clone(), n["comment_id"].clone()),
        (Value::Null, Value::Null)
    );
    // Nobody else got anything.
    let (eve, _) = sys.register("eve").await;
    assert!(items(&list(&sys, &eve, "").await).is_empty());
}

#[tokio::test]
async fn nobody_is_notified_of_their_own_actions_nor_of_a_withdrawn_reaction() {
    let sys = System::up().await;
    let (ann, _) = sys.register("ann").await;
    let (bob, _) = sys.register("bob").await;
    let post = new_post(&sys, &ann).await;
    let own = comment(&sys, &ann, &post).await;
    react(&sys, &ann, &format!("/api/posts/{post}"), json!("like")).await;
    react(
        &sys,
        &ann,
        &format!("/api/comments/{own}"),
        json!("dislike"),
    )
    .await;
    let page = list(&sys, &ann, "").await;
    assert!(items(&page).is_empty(), "{page}");
    assert_eq!(page["unread_count"], 0);

    react(&sys, &bob, &format!("/api/posts/{post}"), json!("like")).await;
    assert_eq!(items(&list(&sys, &ann, "").await).len(), 1);
    react(&sys, &bob, &format!("/api/posts/{post}"), Value::Null).await;
    assert_eq!(items(&list(&sys, &ann, "").await).len(), 1, "withdrawn");
    // Bob's reactions to his own nothing: he has no notification at all.
    assert!(items(&list(&sys, &bob, "").await).is_empty());
}

#[tokio::test]
async fn notifications_are_marked_read_by_ids_or_all_and_listed_unread_only() {
    let sys = System::up().await;
    let (ann, _) = sys.register("ann").await;
    let (bob, _) = sys.register("bob").await;
    let post = new_post(&sys, &ann).await;
    for _ in 0..3 {
        comment(&sys, &bob, &post).await;
    }
    let bobs_post = new_post(&sys, &bob).await;
    comment(&sys, &ann, &bobs_post).await;
    let foreign = items(&list(&sys, &bob, "").await)[0]["id"].clone();
    let page = list(&sys, &ann, "").await;
    let ids = field(&page, "id");
    assert_eq!((ids.len(), page["unread_count"].clone()), (3, json!(3)));

    let unknown = json!(Uuid::now_v7().to_string());
    let (status, body) = mark(
        &sys,
        &ann,
        json!({"ids": [ids[1], foreign, unknown, ids[1]]}),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let page = list(&sys, &ann, "").await;
    assert_eq!(page["unread_count"], 2);
    assert_eq!(
        field(&page, "read"),
        [json!(false), json!(true), json!(false)]
    );
    let unread = list(&sys, &ann, "?unread=true").await;
    assert_eq!(field(&unread, "id"), [ids[0].clone(), ids[2].clone()]);
    assert_eq!(unread["unread_count"], 2);
    assert_eq!(
        list(&sys, &ann, "?unread=false").await["items"],
        page["items"]
    );
    // Bob's notification is untouched.
    assert_eq!(list(&sys, &bob, "").await["unread_count"], 1);
    // Nothing to mark is fine.
    assert_eq!(mark(&sys, &ann, json!({"ids": []})).await.0, 204);
    assert_eq!(mark(&sys, &ann, json!({"ids": [ids[1]]})).await.0, 204);

    let (status, body) = mark(&sys, &ann, json!({"all": true})).await;
    assert_eq!(status, 204, "{body}");
    let page = list(&sys, &ann, "").await;
    assert_eq!(page["unread_count"], 0);
    assert_eq!(field(&page, "read"), vec![json!(true); 3]);
    assert!(items(&list(&sys, &ann, "?unread=true").await).is_empty());
    assert_eq!(mark(&sys, &ann, json!({"all": true})).await.0, 204);
    // Later notifications are unread again.
    comment(&sys, &bob, &post).await;
    let unread = list(&sys, &ann, "?unread=true").await;
    assert_eq!(
        (items(&unread).len(), unread["unread_count"].clone()),
        (1, json!(1))
    );

    for bad in [
        json!({}),
        json!({"all": false}),
        json!({"all": "yes"}),
        json!({"ids": "x"}),
        json!({"ids": ["not-an-id"]}),
        json!({"ids": [7]}),
        json!({"ids": [ids[0]], "all": true}),
    ] {
        let (status, body) = mark(&sys, &ann, bad.clone()).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["error"]["code"], "validation_failed");
    }
    for query in ["?unread=yes", "?limit=0", "?limit=101", "?cursor=nope"] {
        let (status, body) = sys
            .get(&format!("/api/notifications{query}"), Some(&ann))
            .await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"]["code"], "validation_failed");
    }
    let (status, _) = sys.get("/api/notifications", None).await;
    assert_eq!(status, 401);
    let (status, _) = sys
        .post("/api/notifications/read", None, json!({"all": true}))
        .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn notifications_are_paged_newest_first_and_stable_while_new_ones_arrive() {
    let sys = System::up().await;
    let (ann, _) = sys.register("ann").await;
    let (bob, _) = sys.register("bob").await;
    let post = new_post(&sys, &ann).await;
    let mut comments = Vec::new();
    for _ in 0..25 {
        comments.push(json!(comment(&sys, &bob, &post).await));
    }
    comments.reverse();
    let first = list(&sys, &ann, "").await;
    assert_eq!(field(&first, "comment_id"), comments[..20]);
    assert_eq!(first["unread_count"], 25);
    let cursor = first["next_cursor"].as_str().expect("more").to_string();
    comment(&sys, &bob, &post).await;
    let second = list(&sys, &ann, &format!("?cursor={cursor}")).await;
    assert_eq!(field(&second, "comment_id"), comments[20..]);
    assert_eq!(second["next_cursor"], Value::Null);
    assert_eq!(second["unread_count"], 26);
    let small = list(&sys, &ann, "?limit=10&unread=true").await;
    assert_eq!(items(&small).len(), 10);
    let cursor = small["next_cursor"].as_str().expect("more");
    let next = list(
        &sys,
        &ann,
        &format!("?limit=10&unread=true&cursor={cursor}"),
    )
    .await;
    assert_eq!(field(&next, "comment_id"), comments[9..19]);
}

/// The stored `comment_created` events, in log order.
async fn stored_comments(pool: &sqlx::PgPool) -> Vec<forum_events::RecordedEvent> {
    let mut conn = pool.acquire().await.expect("conn");
    log::read_after(&mut conn, Service::Posts, 0, 10_000)
        .await
        .expect("read")
        .into_iter()
        .filter(|e| e.event_type == "comment_created")
        .collect()
}

#[tokio::test]
async fn the_same_event_stored_twice_in_the_stream_creates_one_notification() {
    let sys = System::up().await;
    let (ann, _) = sys.register("ann").await;
    let (bob, _) = sys.register("bob").await;
    let post = new_post(&sys, &ann).await;
    comment(&sys, &bob, &post).await;
    let pool = sys.pool().await;
    let stored = stored_comments(&pool).await;
    assert_eq!(stored.len(), 1);

    // A copy of the stored event under another Nats-Msg-Id: the stream
    // keeps both.
    let js = jetstream::new(async_nats::connect(common::NATS_URL).await.expect("nats"));
    let subjects = Subjects::new(&sys.prefix);
    let ack = js
        .send_publish(
            subjects.event(Service::Posts, "comment_created"),
            PublishMessage::build()
                .payload(Bytes::from(stored[0].to_bytes()))
                .message_id(Uuid::new_v4().to_string()),
        )
        .await
        .expect("publish")
        .await
        .expect("stored");
    assert!(!ack.duplicate, "the stream stored the copy");
    // The deriver has acknowledged it: processed and committed.
    let stream = js.get_stream(subjects.stream_name()).await.expect("stream");
    eventually(Duration::from_secs(60), "the copy acknowledged", || {
        let stream = stream.clone();
        async move {
            let mut consumer: jetstream::consumer::PullConsumer =
                stream.get_consumer("notifications").await.ok()?;
            let info = consumer.info().await.ok()?;
            (info.ack_floor.stream_sequence >= ack.sequence).then_some(())
        }
    })
    .await;
    let page = list(&sys, &ann, "").await;
    assert_eq!(items(&page).len(), 1, "{page}");
    assert_eq!(
        count(&pool, "select count(*) from notifications.events").await,
        1
    );
    // And the deriver goes on: the next comment is notified once too.
    comment(&sys, &bob, &post).await;
    assert_eq!(items(&list(&sys, &ann, "").await).len(), 2);
}

#[tokio::test]
async fn a_lost_deriver_checkpoint_creates_no_second_notification() {
    let sys = System::up().await;
    let (ann, _) = sys.register("ann").await;
    let (bob, _) = sys.register("bob").await;
    let post = new_post(&sys, &ann).await;
    for _ in 0..3 {
        comment(&sys, &bob, &post).await;
    }
    let pool = sys.pool().await;
    sqlx::query("update notifications.deriver_checkpoints set position = 0")
        .execute(&pool)
        .await
        .expect("forget the checkpoints");
    // Everything is derived again from the start; the existing ids are
    // refused, the new comment notifies once.
    comment(&sys, &bob, &post).await;
    let head = count(&pool, "select max(position) from posts.events").await;
    assert_eq!(
        count(
            &pool,
            "select position from notifications.deriver_checkpoints where service = 'posts'"
        )
        .await,
        head
    );
    assert_eq!(
        count(&pool, "select count(*) from notifications.events").await,
        4
    );
    assert_eq!(items(&list(&sys, &ann, "").await).len(), 4);
}

/// A system whose roles run as separate processes, the notifications
/// service among them as `notifications1`; writes wait `read_timeout_ms`
/// for the read models.
async fn separate_roles(read_timeout_ms: &str) -> System {
    let mut sys = System::empty();
    sys.migrate();
    // Small pools: seven processes share the test server's connections.
    let small = [("FORUM_DB_MAX_CONNECTIONS", "4")];
    sys.spawn("auth", &["service", "auth"], &small);
    sys.spawn("posts", &["service", "posts"], &small);
    sys.spawn("chat", &["service", "chat"], &small);
    sys.spawn("projector", &["projector"], &[]);
    sys.spawn("notifications1", &["service", "notifications"], &small);
    sys.spawn_gateway(&[
        ("FORUM_READ_TIMEOUT_MS", read_timeout_ms),
        ("FORUM_DB_MAX_CONNECTIONS", "4"),
    ]);
    sys
}

#[tokio::test]
async fn a_notifications_service_killed_mid_stream_ends_with_exactly_one_notification_per_comment()
{
    let mut sys = separate_roles("3000").await;
    let (ann, ann_id) = sys.register("ann").await;
    let (bob, _) = sys.register("bob").await;
    let post = new_post(&sys, &ann).await;
    let pool = sys.pool().await;
    // A burst of 100 comments from four writers (each waits for its
    // notification, or answers 503 while no deriver runs).
    let mut writers = Vec::new();
    for _ in 0..4 {
        let (http, base, bob, post) = (
            sys.http.clone(),
            sys.base.clone(),
            bob.clone(),
            post.clone(),
        );
        writers.push(tokio::spawn(async move {
            for _ in 0..25 {
                let (status, body) = common::call_at(
                    &http,
                    &base,
                    Method::POST,
                    &format!("/api/posts/{post}/comments"),
                    Some(&bob),
                    Some(json!({"content": "burst"})),
                )
                .await;
                assert!(status == 201 || status == 503, "{status}: {body}");
            }
        }));
    }
    eventually(
        Duration::from_secs(60),
        "a first notifications batch",
        || {
            let pool = pool.clone();
            async move {
                (count(&pool, "select count(*) from notifications.events").await >= 10)
                    .then_some(())
            }
        },
    )
    .await;
    sys.kill("notifications1");
    let at_kill = count(&pool, "select count(*) from notifications.events").await;
    sys.spawn(
        "notifications1",
        &["service", "notifications"],
        &[("FORUM_DB_MAX_CONNECTIONS", "4")],
    );
    for w in writers {
        w.await.expect("writer");
    }
    let comments = stored_comments(&pool).await.len() as i64;
    assert_eq!(comments, 100, "every comment was committed");
    eventually(Duration::from_secs(60), "every comment derived", || {
        let pool = pool.clone();
        async move {
            (count(&pool, "select count(*) from notifications.events").await >= comments)
                .then_some(())
        }
    })
    .await;
    let head = count(&pool, "select max(position) from notifications.events").await;
    eventually(Duration::from_secs(60), "the projection caught up", || {
        let pool = pool.clone();
        async move {
            (count(
                &pool,
                "select coalesce(max(position), 0) from read.notifications",
            )
            .await
                >= head)
                .then_some(())
        }
    })
    .await;
    assert_eq!(
        count(&pool, "select count(*) from notifications.events").await,
        comments,
        "exactly one notification per comment (killed after {at_kill})"
    );
    let rows: Vec<(Uuid, i64)> =
        sqlx::query_as("select comment_id, count(*) from read.notifications group by comment_id")
            .fetch_all(&pool)
            .await
            .expect("rows");
    assert_eq!(rows.len() as i64, comments);
    assert!(rows.iter().all(|(_, n)| *n == 1), "{rows:?}");
    let page = list(&sys, &ann, "?limit=1").await;
    assert_eq!(page["unread_count"], comments);
    let owners: i64 = sqlx::query_scalar(
        "select count(distinct user_id) from read.notifications where user_id = $1",
    )
    .bind(Uuid::parse_str(&ann_id).expect("id"))
    .fetch_one(&pool)
    .await
    .expect("owners");
    assert_eq!(owners, 1);
}

#[tokio::test]
async fn a_standby_notifications_service_takes_over_when_the_leader_dies() {
    let mut sys = separate_roles("30000").await;
    let (ann, _) = sys.register("ann").await;
    let (bob, _) = sys.register("bob").await;
    let post = new_post(&sys, &ann).await;
    // notifications1 leads (it answered this comment's wait).
    comment(&sys, &bob, &post).await;
    sys.spawn(
        "notifications2",
        &["service", "notifications"],
        &[("FORUM_DB_MAX_CONNECTIONS", "4")],
    );
    // Both serve the commands (one queue group).
    assert_eq!(mark(&sys, &ann, json!({"all": true})).await.0, 204);
    sys.kill("notifications1");
    // The standby takes the leader lock and derives the next comment
    // within the write's wait.
    let (status, body) = sys
        .post(
            &format!("/api/posts/{post}/comments"),
            Some(&bob),
            json!({"content": "after the leader died"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let page = list(&sys, &ann, "").await;
    assert_eq!(items(&page).len(), 2);
    assert_eq!(page["unread_count"], 1);
}

/// Runs `forum replay ...` to completion: (success, stdout + stderr).
async fn replay(sys: &System, args: &[&str]) -> (bool, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_forum"))
        .arg("replay")
        .args(args)
        .env("FORUM_DATABASE_URL", &sys.db_url)
        .env("FORUM_PREFIX", &sys.prefix)
        .env("FORUM_DB_MAX_CONNECTIONS", "8")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .await
        .expect("run forum replay");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test]
async fn a_rebuilt_notifications_projection_equals_the_live_one() {
    let sys = System::up().await;
    let (ann, _) = sys.register("ann").await;
    let (bob, _) = sys.register("bob").await;
    let post = new_post(&sys, &ann).await;
    for i in 0..12 {
        comment(&sys, &bob, &post).await;
        if i % 4 == 1 {
            let ids = field(&list(&sys, &ann, "?limit=1").await, "id");
            assert_eq!(mark(&sys, &ann, json!({ "ids": ids })).await.0, 204);
        }
        if i == 6 {
            assert_eq!(mark(&sys, &ann, json!({"all": true})).await.0, 204);
        }
    }
    react(&sys, &bob, &format!("/api/posts/{post}"), json!("dislike")).await;
    let before = list(&sys, &ann, "?limit=100").await;
    assert_eq!(before["unread_count"], 5);
    let (ok, out) = replay(&sys, &["rebuild", "notifications"]).await;
    assert!(ok, "{out}");
    assert!(
        out.contains("switched notifications to v2 (retired v1)"),
        "{out}"
    );
    let (ok, out) = replay(&sys, &["verify", "notifications"]).await;
    assert!(ok, "verify found differences: {out}");
    assert!(
        out.contains("notifications v1 = v2: notifications: 13 rows"),
        "{out}"
    );
    assert_eq!(list(&sys, &ann, "?limit=100").await, before);
    // The projector follows v2.
    comment(&sys, &bob, &post).await;
    assert_eq!(list(&sys, &ann, "?limit=100").await["unread_count"], 6);
}

//! Inline projections: the read models of a log are applied in the
//! transaction that appends to it, and the notifications a post, comment,
//! reaction or message causes are derived there too, so a write's answer
//! waits for one commit and no projector or deriver; with them turned off,
//! the projector and the deriver do the work.

mod common;

use common::System;
use serde_json::json;

/// Registers two users, then writes and reads back a post, a comment, a
/// reaction, a message and the notifications they cause.
async fn write_and_read_everything(sys: &System) {
    let (ann, ann_id) = sys.register("ann").await;
    let (bob, bob_id) = sys.register("bob").await;
    let (status, me) = sys.get("/api/auth/me", Some(&ann)).await;
    assert_eq!((status, &me["id"]), (200, &json!(ann_id)), "{me}");
    let (status, post) = sys
        .post(
            "/api/posts",
            Some(&ann),
            json!({"title": "inline", "content": "one commit", "categories": ["general"]}),
        )
        .await;
    assert_eq!(status, 201, "{post}");
    let id = post["id"].as_str().expect("id").to_string();
    let (status, comment) = sys
        .post(
            &format!("/api/posts/{id}/comments"),
            Some(&bob),
            json!({"content": "seen at once"}),
        )
        .await;
    assert_eq!(status, 201, "{comment}");
    let (status, _) = sys
        .call(
            reqwest::Method::PUT,
            &format!("/api/posts/{id}/reaction"),
            Some(&bob),
            Some(json!({"reaction": "like"})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, message) = sys
        .post(
            &format!("/api/conversations/{ann_id}/messages"),
            Some(&bob),
            json!({"content": "hello"}),
        )
        .await;
    assert_eq!(status, 201, "{message}");
    // Read-your-writes, straight after the answers.
    let (_, list) = sys.get("/api/posts", None).await;
    assert_eq!(list["items"][0]["id"], json!(id), "{list}");
    assert_eq!(list["items"][0]["comment_count"], json!(1), "{list}");
    assert_eq!(list["items"][0]["likes"], json!(1), "{list}");
    let (_, page) = sys
        .get(&format!("/api/conversations/{bob_id}/messages"), Some(&ann))
        .await;
    assert_eq!(page["items"][0]["content"], json!("hello"), "{page}");
    let (_, notes) = sys.get("/api/notifications", Some(&ann)).await;
    let mut kinds: Vec<&str> = notes["items"]
        .as_array()
        .map(|items| items.iter().filter_map(|n| n["kind"].as_str()).collect())
        .unwrap_or_default();
    kinds.sort_unstable();
    assert_eq!(kinds, ["comment", "message", "reaction"], "{notes}");
}

#[tokio::test]
async fn a_system_without_any_projector_answers_every_write_and_reads_it_back() {
    let mut sys = System::empty();
    sys.migrate();
    for service in ["auth", "posts", "chat", "notifications"] {
        sys.spawn(service, &["service", service], &[]);
    }
    sys.spawn_gateway(&[]);
    write_and_read_everything(&sys).await;
}

#[tokio::test]
async fn with_inline_projections_off_the_projector_builds_the_same_read_models() {
    let sys = System::up_with(&[("FORUM_INLINE_PROJECTIONS", "false")]).await;
    write_and_read_everything(&sys).await;
}

#[tokio::test]
async fn without_a_projector_or_a_notifications_service_writes_notify_in_their_own_commit() {
    // No deriver runs: the posts and chat services derive the notifications
    // in the transaction of the write that causes them.
    let mut sys = System::empty();
    sys.migrate();
    for service in ["auth", "posts", "chat"] {
        sys.spawn(service, &["service", service], &[]);
    }
    sys.spawn_gateway(&[]);
    // The notifications are listed straight after the answers.
    write_and_read_everything(&sys).await;
}

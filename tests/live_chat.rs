//! The live feed with chat and notifications: resume of a mixed backlog,
//! delivery across two gateways, read receipts, notification frames and
//! presence in `GET /api/users`.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::ws::{connect, Ws, FRAME_WAIT};
use common::{call_at, System};
use futures::StreamExt;
use reqwest::Method;
use serde_json::{json, Value};

const QUIET: Duration = Duration::from_millis(300);

async fn post_at(sys: &System, base: &str, path: &str, token: &str, body: Value) -> Value {
    let (status, body) =
        call_at(&sys.http, base, Method::POST, path, Some(token), Some(body)).await;
    assert!(status == 201 || status == 204, "{path}: {status} {body}");
    body
}

async fn message(sys: &System, base: &str, token: &str, to: &str, content: &str) -> String {
    let m = post_at(
        sys,
        base,
        &format!("/api/conversations/{to}/messages"),
        token,
        json!({ "content": content }),
    )
    .await;
    m["id"].as_str().expect("message id").to_string()
}

async fn online_in_list(sys: &System, base: &str, token: &str, user: &str) -> Option<bool> {
    let (status, list) = call_at(
        &sys.http,
        base,
        Method::GET,
        "/api/users",
        Some(token),
        None,
    )
    .await;
    assert_eq!(status, 200, "{list}");
    list.as_array()?
        .iter()
        .find(|u| u["id"] == user)
        .and_then(|u| u["online"].as_bool())
}

/// Reads durable frames until `n` arrived (panics on a timeout).
async fn take(ws: &mut Ws, n: usize) -> Vec<Value> {
    let mut frames = Vec::with_capacity(n);
    while frames.len() < n {
        let f = ws
            .next(FRAME_WAIT)
            .await
            .unwrap_or_else(|| panic!("only {} of {n} frames arrived", frames.len()));
        frames.push(f);
    }
    frames
}

#[tokio::test]
async fn a_client_reconnecting_with_its_cursor_gets_exactly_the_200_events_it_missed_in_order() {
    let sys = System::up().await;
    let (ann, ann_id) = sys.register("ann").await;
    let (bob, bob_id) = sys.register("bob").await;
    let (cid, cid_id) = sys.register("cid").await;
    // Ann's cursor is that of the last frame she saw: her own post's. (The
    // `hello` cursor is where the gateway's feed stood at the upgrade, which
    // may be just before a write acknowledged a moment earlier.)
    let mut a = connect(&sys.base, &ann, None).await;
    let own = post_at(
        &sys,
        &sys.base,
        "/api/posts",
        &ann,
        json!({"title": "mine", "content": "c", "categories": ["general"]}),
    )
    .await["id"]
        .as_str()
        .expect("id")
        .to_string();
    let seen = a.expect("post.new", FRAME_WAIT).await;
    assert_eq!(seen["data"]["id"], own.as_str());
    let cursor = seen["cursor"].as_str().expect("cursor").to_string();
    drop(a);
    // While Ann is away: 50 messages to her (50 message.new + 50
    // notification.new), 50 posts, 25 comments on her post (25
    // comment.new + 25 notification.new) = 200 frames for her; and a
    // conversation between Bob and Cid that is none of her business.
    let mut expected_messages = Vec::new();
    for i in 0..50 {
        expected_messages.push(message(&sys, &sys.base, &bob, &ann_id, &format!("m{i}")).await);
        if i % 10 == 0 {
            message(&sys, &sys.base, &cid, &bob_id, "not for ann").await;
            message(&sys, &sys.base, &bob, &cid_id, "not for ann either").await;
        }
    }
    let mut expected_posts = Vec::new();
    for i in 0..50 {
        let p = post_at(
            &sys,
            &sys.base,
            "/api/posts",
            &bob,
            json!({"title": format!("p{i}"), "content": "c", "categories": ["news"]}),
        )
        .await;
        expected_posts.push(p["id"].as_str().expect("id").to_string());
    }
    let mut expected_comments = Vec::new();
    for i in 0..25 {
        let c = post_at(
            &sys,
            &sys.base,
            &format!("/api/posts/{own}/comments"),
            &bob,
            json!({"content": format!("c{i}")}),
        )
        .await;
        expected_comments.push(c["id"].as_str().expect("id").to_string());
    }
    let mut a = connect(&sys.base, &ann, Some(&cursor)).await;
    assert_eq!(a.hello["data"]["resumed"], true);
    let frames = take(&mut a, 200).await;
    let of = |ty: &str| -> Vec<&Value> { frames.iter().filter(|f| f["type"] == ty).collect() };
    let ids = |fs: Vec<&Value>| -> Vec<String> {
        fs.iter()
            .map(|f| f["data"]["id"].as_str().expect("id").to_string())
            .collect()
    };
    assert_eq!(
        ids(of("message.new")),
        expected_messages,
        "messages in order"
    );
    assert_eq!(ids(of("post.new")), expected_posts, "posts in order");
    assert_eq!(
        ids(of("comment.new")),
        expected_comments,
        "comments in order"
    );
    let notes = of("notification.new");
    assert_eq!(notes.len(), 75);
    assert_eq!(
        notes
            .iter()
            .filter(|n| n["data"]["kind"] == "message")
            .count(),
        50
    );
    assert_eq!(
        notes
            .iter()
            .filter(|n| n["data"]["kind"] == "comment")
            .count(),
        25
    );
    let distinct: HashSet<&str> = frames
        .iter()
        .map(|f| f["cursor"].as_str().expect("cursor"))
        .collect();
    assert_eq!(distinct.len(), 200, "every frame has its own cursor");
    // Then live, with nothing repeated.
    let live = message(&sys, &sys.base, &bob, &ann_id, "live").await;
    let f = a.next(FRAME_WAIT).await.expect("live frame");
    let g = a.next(FRAME_WAIT).await.expect("live notification");
    let got: HashSet<String> = [&f, &g]
        .iter()
        .map(|f| f["type"].as_str().expect("type").to_string())
        .collect();
    assert_eq!(
        got,
        HashSet::from(["message.new".to_string(), "notification.new".to_string()])
    );
    // Two logs, two relays: either may come first.
    for frame in [&f, &g] {
        let id = if frame["type"] == "message.new" {
            &frame["data"]["id"]
        } else {
            &frame["data"]["message_id"]
        };
        assert_eq!(id, live.as_str(), "{frame}");
    }
    assert_eq!(a.next(QUIET).await, None, "no duplicate");
}

#[tokio::test]
async fn a_message_through_one_gateway_reaches_the_recipient_on_the_other_with_read_receipts_and_presence(
) {
    let mut sys = System::up().await;
    let g1 = sys.base.clone();
    let g2 = sys.spawn_gateway(&[]);
    let (ann, ann_id) = sys.register("ann").await;
    let (bob, bob_id) = sys.register("bob").await;
    let mut a = connect(&g1, &ann, None).await;
    let mut b1 = connect(&g2, &bob, None).await;
    let mut b2 = connect(&g2, &bob, None).await;
    common::eventually(FRAME_WAIT, "both online on both gateways", || {
        let (sys, ann, bob, ann_id, bob_id, g1, g2) =
            (&sys, &ann, &bob, &ann_id, &bob_id, &g1, &g2);
        async move {
            let all = online_in_list(sys, g1, ann, bob_id).await == Some(true)
                && online_in_list(sys, g2, ann, bob_id).await == Some(true)
                && online_in_list(sys, g1, bob, ann_id).await == Some(true)
                && online_in_list(sys, g2, bob, ann_id).await == Some(true);
            all.then_some(())
        }
    })
    .await;
    let id = message(&sys, &g1, &ann, &bob_id, "hello across").await;
    // The message and its notification are in two logs, committed together
    // and published by two relays: either frame may come first.
    let mut notified = None;
    for (i, ws) in [&mut a, &mut b1, &mut b2].into_iter().enumerate() {
        let f = loop {
            let f = ws.next(FRAME_WAIT).await.expect("message.new");
            if f["type"] == "notification.new" && i == 1 {
                notified = Some(f);
            } else if f["type"] == "message.new" {
                break f;
            }
        };
        assert_eq!(f["data"]["id"], id.as_str());
        assert_eq!(f["data"]["from"], json!({"id": ann_id, "nickname": "ann"}));
        assert_eq!(f["data"]["to"], bob_id.as_str());
        assert_eq!(f["data"]["content"], "hello across");
        assert_eq!(f["data"]["read_at"], Value::Null);
    }
    let n = match notified {
        Some(n) => n,
        None => b1.expect("notification.new", FRAME_WAIT).await,
    };
    assert_eq!(n["data"]["kind"], "message");
    assert_eq!(n["data"]["message_id"], id.as_str());
    post_at(
        &sys,
        &g2,
        &format!("/api/conversations/{ann_id}/read"),
        &bob,
        json!({ "up_to": id }),
    )
    .await;
    for ws in [&mut a, &mut b1] {
        let f = ws.expect("message.read", FRAME_WAIT).await;
        assert_eq!(
            f["data"],
            json!({"reader": bob_id, "other": ann_id, "up_to": id})
        );
    }
    // Ann got no notification for her own message.
    while let Some(f) = a.next(QUIET).await {
        assert_ne!(f["type"], "notification.new", "{f}");
    }
    // Bob leaves: offline on both gateways.
    for ws in [&mut b1, &mut b2] {
        ws.stream.close(None).await.expect("close");
        while ws.stream.next().await.is_some() {}
    }
    common::eventually(FRAME_WAIT, "bob offline on both gateways", || {
        let (sys, ann, bob_id, g1, g2) = (&sys, &ann, &bob_id, &g1, &g2);
        async move {
            let off = online_in_list(sys, g1, ann, bob_id).await == Some(false)
                && online_in_list(sys, g2, ann, bob_id).await == Some(false);
            off.then_some(())
        }
    })
    .await;
}

#[tokio::test]
async fn a_notification_frame_reaches_only_the_notified_user() {
    let sys = System::up().await;
    let (ann, _) = sys.register("ann").await;
    let (bob, bob_id) = sys.register("bob").await;
    let post = post_at(
        &sys,
        &sys.base,
        "/api/posts",
        &ann,
        json!({"title": "t", "content": "c", "categories": ["general"]}),
    )
    .await["id"]
        .as_str()
        .expect("id")
        .to_string();
    let mut a = connect(&sys.base, &ann, None).await;
    let mut b = connect(&sys.base, &bob, None).await;
    let (s, _) = sys
        .call(
            Method::PUT,
            &format!("/api/posts/{post}/reaction"),
            Some(&bob),
            Some(json!({"reaction": "dislike"})),
        )
        .await;
    assert_eq!(s, 200);
    let n = a.expect("notification.new", FRAME_WAIT).await;
    assert_eq!(n["data"]["kind"], "reaction");
    assert_eq!(n["data"]["actor"], json!({"id": bob_id, "nickname": "bob"}));
    assert_eq!(n["data"]["post_id"], post.as_str());
    assert_eq!(n["data"]["read"], false);
    let (s, list) = sys.get("/api/notifications", Some(&ann)).await;
    assert_eq!(s, 200);
    assert_eq!(
        list["items"][0]["id"], n["data"]["id"],
        "frame and list agree"
    );
    // Bob's socket may first get the post's own frame: the feed can trail
    // a write answered just before the upgrade.
    let r = b.expect("reaction.updated", FRAME_WAIT).await;
    assert_eq!(
        r["data"],
        json!({"target": "post", "id": post, "likes": 0, "dislikes": 1})
    );
    assert_eq!(
        b.next(QUIET).await,
        None,
        "bob is not notified of his own act"
    );
}

//! The live feed (`GET /api/ws`) end to end: real WebSocket clients
//! against the real binary, NATS and Postgres.

mod common;

use std::time::Duration;

use common::ws::{connect, try_connect, FRAME_WAIT};
use common::{eventually, System};
use futures::StreamExt;
use reqwest::Method;
use serde_json::{json, Value};

const QUIET: Duration = Duration::from_millis(300);

async fn create_post(sys: &System, token: &str, title: &str) -> String {
    let (status, body) = sys
        .post(
            "/api/posts",
            Some(token),
            json!({"title": title, "content": "body", "categories": ["general"]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().expect("id").to_string()
}

/// The gateway's `forum_ws_open` gauge.
async fn open_sockets(sys: &System) -> u64 {
    sys.metric("forum_ws_open")
        .await
        .expect("forum_ws_open in /metrics") as u64
}

async fn login(sys: &System, nickname: &str) -> String {
    sys.login(nickname).await
}

#[tokio::test]
async fn an_upgrade_without_a_valid_session_is_401() {
    let sys = System::up().await;
    assert_eq!(try_connect(&sys.base, None, None).await.err(), Some(401));
    assert_eq!(
        try_connect(&sys.base, Some("not-a-token"), None)
            .await
            .err(),
        Some(401)
    );
    let (token, _) = sys.register("ghost").await;
    let (status, _) = sys
        .call(Method::POST, "/api/auth/logout", Some(&token), None)
        .await;
    assert_eq!(status, 204);
    assert_eq!(
        try_connect(&sys.base, Some(&token), None).await.err(),
        Some(401)
    );
    // A plain GET without the upgrade headers is a clear 400.
    let (status, body) = sys.get("/api/ws", Some(&login(&sys, "ghost").await)).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "validation_failed");
}

#[tokio::test]
async fn hello_comes_first_and_a_new_post_reaches_every_socket_once() {
    let sys = System::up().await;
    let (ann, ann_id) = sys.register("ann").await;
    let (bob, _) = sys.register("bob").await;
    let mut a1 = connect(&sys.base, &ann, None).await;
    let mut a2 = connect(&sys.base, &ann, None).await;
    let mut b = connect(&sys.base, &bob, None).await;
    assert_eq!(a1.hello["data"]["user_id"], ann_id.as_str());
    assert_eq!(a1.hello["data"]["resumed"], false);
    // The session cookie authenticates as well as the header.
    let mut b2 = common::ws::connect_with_cookie(&sys.base, &bob).await;
    assert_eq!(b2.hello["type"], "hello");
    let id = create_post(&sys, &bob, "Live").await;
    for ws in [&mut a1, &mut a2, &mut b, &mut b2] {
        let f = ws.next(FRAME_WAIT).await.expect("post.new");
        assert_eq!(f["type"], "post.new", "{f}");
        assert_eq!(f["data"]["id"], id.as_str());
        assert_eq!(f["data"]["title"], "Live");
        assert_eq!(f["data"]["author"]["nickname"], "bob");
        assert_eq!(f["data"]["comment_count"], 0);
        assert_eq!(f["data"]["my_reaction"], Value::Null);
        assert!(f["cursor"].as_str().is_some_and(|c| !c.is_empty()));
        assert_eq!(ws.next(QUIET).await, None, "exactly once");
    }
}

#[tokio::test]
async fn comments_reactions_edits_and_deletes_reach_everyone() {
    let sys = System::up().await;
    let (ann, _) = sys.register("ann").await;
    let (bob, _) = sys.register("bob").await;
    let id = create_post(&sys, &ann, "Topic").await;
    let mut b = connect(&sys.base, &bob, None).await;
    let (s, c) = sys
        .post(
            &format!("/api/posts/{id}/comments"),
            Some(&bob),
            json!({"content": "first"}),
        )
        .await;
    assert_eq!(s, 201, "{c}");
    // The socket may start before the feed has the post (its write waited
    // for the read models, not for this gateway's feed): then the post's
    // own frame comes first, which is right.
    let mut f = b.next(FRAME_WAIT).await.expect("comment.new");
    if f["type"] == "post.new" {
        assert_eq!(f["data"]["id"], id.as_str());
        f = b.next(FRAME_WAIT).await.expect("comment.new");
    }
    assert_eq!(f["type"], "comment.new");
    assert_eq!(f["data"]["id"], c["id"]);
    assert_eq!(f["data"]["post_id"], id.as_str());
    assert_eq!(f["data"]["content"], "first");
    let (s, _) = sys
        .call(
            Method::PUT,
            &format!("/api/posts/{id}/reaction"),
            Some(&bob),
            Some(json!({"reaction": "like"})),
        )
        .await;
    assert_eq!(s, 200);
    let f = b.next(FRAME_WAIT).await.expect("reaction.updated");
    assert_eq!(f["type"], "reaction.updated");
    assert_eq!(
        f["data"],
        json!({"target": "post", "id": id, "likes": 1, "dislikes": 0})
    );
    let (s, _) = sys
        .call(
            Method::PATCH,
            &format!("/api/posts/{id}"),
            Some(&ann),
            Some(json!({"title": "Renamed"})),
        )
        .await;
    assert_eq!(s, 200);
    let f = b.next(FRAME_WAIT).await.expect("post.updated");
    assert_eq!(f["type"], "post.updated");
    assert_eq!(f["data"]["title"], "Renamed");
    assert_eq!(f["data"]["likes"], 1);
    assert_eq!(f["data"]["comment_count"], 1);
    assert!(f["data"]["edited_at"].is_string());
    let (s, _) = sys
        .call(
            Method::DELETE,
            &format!("/api/posts/{id}"),
            Some(&ann),
            None,
        )
        .await;
    assert_eq!(s, 204);
    let f = b.next(FRAME_WAIT).await.expect("post.deleted");
    assert_eq!(f["type"], "post.deleted");
    assert_eq!(f["data"], json!({"id": id}));
}

#[tokio::test]
async fn a_cursor_that_is_garbage_too_new_or_too_old_is_not_resumed() {
    let sys = System::up_with(&[("FORUM_WS_RESUME_MAX", "5")]).await;
    let (ann, _) = sys.register("ann").await;
    let ws = try_connect(&sys.base, Some(&ann), Some("garbage"))
        .await
        .expect("open");
    assert_eq!(ws.hello["data"]["resumed"], false);
    // From the future (another system): positions beyond the logs' heads.
    let future = "djEuOTk5OS45OTk5Ljk5OTk"; // v1.9999.9999.9999
    let ws = connect(&sys.base, &ann, Some(future)).await;
    assert_eq!(ws.hello["data"]["resumed"], false);
    let start = ws.hello_cursor();
    // This socket stays to show when the gateway's feed has the six posts:
    // a resume counts what the feed has, which may trail a write answered
    // a moment ago.
    let mut watcher = ws;
    for i in 0..6 {
        create_post(&sys, &ann, &format!("p{i}")).await;
    }
    for _ in 0..6 {
        watcher.expect("post.new", FRAME_WAIT).await;
    }
    let ws = connect(&sys.base, &ann, Some(&start)).await;
    assert_eq!(ws.hello["data"]["resumed"], false, "6 events > limit 5");
}

#[tokio::test]
async fn a_socket_reconnecting_with_its_cursor_gets_exactly_what_it_missed_then_live() {
    let sys = System::up().await;
    let (ann, _) = sys.register("ann").await;
    let (bob, _) = sys.register("bob").await;
    let mut a = connect(&sys.base, &ann, None).await;
    let first = create_post(&sys, &bob, "seen").await;
    let f = a.next(FRAME_WAIT).await.expect("post.new");
    assert_eq!(f["data"]["id"], first.as_str());
    let cursor = f["cursor"].as_str().expect("cursor").to_string();
    drop(a);
    let mut missed = Vec::new();
    for i in 0..40 {
        missed.push(create_post(&sys, &bob, &format!("missed {i}")).await);
    }
    let mut a = connect(&sys.base, &ann, Some(&cursor)).await;
    assert_eq!(a.hello["data"]["resumed"], true);
    for id in &missed {
        let f = a.next(FRAME_WAIT).await.expect("resumed frame");
        assert_eq!(f["type"], "post.new");
        assert_eq!(f["data"]["id"], id.as_str());
    }
    let live = create_post(&sys, &bob, "live").await;
    let f = a.next(FRAME_WAIT).await.expect("live frame");
    assert_eq!(f["data"]["id"], live.as_str());
    assert_eq!(a.next(QUIET).await, None, "no duplicate");
    // The hello cursor of a fresh socket resumes too.
    let b = connect(&sys.base, &bob, None).await;
    let start = b.hello_cursor();
    drop(b);
    let after = create_post(&sys, &ann, "after").await;
    let mut b = connect(&sys.base, &bob, Some(&start)).await;
    assert_eq!(b.hello["data"]["resumed"], true);
    let f = b.next(FRAME_WAIT).await.expect("resumed");
    assert_eq!(f["data"]["id"], after.as_str());
    assert_eq!(b.next(QUIET).await, None);
}

#[tokio::test]
async fn logout_closes_that_sessions_sockets_and_no_other() {
    let sys = System::up().await;
    let (first, _) = sys.register("ann").await;
    let second = login(&sys, "ann").await;
    let mut s1 = connect(&sys.base, &first, None).await;
    let mut s2 = connect(&sys.base, &second, None).await;
    let (status, _) = sys
        .call(Method::POST, "/api/auth/logout", Some(&first), None)
        .await;
    assert_eq!(status, 204);
    assert_eq!(s1.closed(FRAME_WAIT).await, Some(4001));
    let id = create_post(&sys, &second, "still here").await;
    let f = s2.next(FRAME_WAIT).await.expect("post.new");
    assert_eq!(f["data"]["id"], id.as_str());
}

#[tokio::test]
async fn bad_client_frames_get_an_error_frame_and_oversized_ones_close_with_1009() {
    let sys = System::up().await;
    let (ann, ann_id) = sys.register("ann").await;
    let (bob, bob_id) = sys.register("bob").await;
    let mut a = connect(&sys.base, &ann, None).await;
    for (frame, code) in [
        ("not json".to_string(), "malformed_json"),
        (json!({"type": "shout"}).to_string(), "validation_failed"),
        (json!([1, 2]).to_string(), "validation_failed"),
        (
            json!({"type": "typing", "to": "nobody", "active": true}).to_string(),
            "validation_failed",
        ),
        (
            json!({"type": "typing", "to": bob_id, "active": "yes"}).to_string(),
            "validation_failed",
        ),
        (
            json!({"type": "typing", "to": ann_id, "active": true}).to_string(),
            "validation_failed",
        ),
        (
            json!({"type": "typing", "to": "00000000-0000-0000-0000-000000000001", "active": true})
                .to_string(),
            "not_found",
        ),
    ] {
        a.send(&frame).await;
        let f = a.expect("error", FRAME_WAIT).await;
        assert_eq!(f["data"]["code"], code, "{frame}: {f}");
        assert!(f["data"]["message"].is_string());
    }
    // Still open and served.
    let id = create_post(&sys, &bob, "after errors").await;
    let f = a.next(FRAME_WAIT).await.expect("post.new");
    assert_eq!(f["data"]["id"], id.as_str());
    // A frame over the limit closes the socket with 1009.
    a.send(&"x".repeat(5_000)).await;
    assert_eq!(a.closed(FRAME_WAIT).await, Some(1009));
}

#[tokio::test]
async fn typing_reaches_only_the_addressee_and_ends_by_itself() {
    let sys = System::up().await;
    let (ann, ann_id) = sys.register("ann").await;
    let (bob, bob_id) = sys.register("bob").await;
    let (cid, _) = sys.register("cid").await;
    let mut a = connect(&sys.base, &ann, None).await;
    let mut b = connect(&sys.base, &bob, None).await;
    let mut c = connect(&sys.base, &cid, None).await;
    a.send(&json!({"type": "typing", "to": bob_id, "active": true}).to_string())
        .await;
    let t = b.expect("typing", FRAME_WAIT).await;
    assert_eq!(
        t["data"],
        json!({"from": {"id": ann_id, "nickname": "ann"}, "active": true})
    );
    assert!(t.get("cursor").is_none());
    let started = std::time::Instant::now();
    let t = b.expect("typing", Duration::from_secs(60)).await;
    assert_eq!(t["data"]["active"], false);
    let took = started.elapsed();
    assert!(
        // Never before the API's 5 s; the upper bound only says "by itself",
        // with room for a loaded machine.
        took >= Duration::from_millis(4_500) && took < Duration::from_secs(30),
        "typing ended after {took:?}"
    );
    for other in [&mut a, &mut c] {
        while let Some(f) = other.next_any(QUIET).await {
            assert_ne!(f["type"], "typing", "{f}");
        }
    }
}

#[tokio::test]
async fn a_socket_that_stops_answering_pings_is_closed() {
    let sys = System::up_with(&[("FORUM_WS_PING_MS", "1000")]).await;
    let (ann, _) = sys.register("ann").await;
    let mut a = connect(&sys.base, &ann, None).await;
    // Not reading means not answering pings: wait, without reading, until
    // the gateway has no socket open any more.
    eventually(Duration::from_secs(60), "the silent socket closed", || {
        let sys = &sys;
        async move { (open_sockets(sys).await == 0).then_some(()) }
    })
    .await;
    assert_eq!(a.closed(FRAME_WAIT).await, Some(1001));
    // A client that reads (and so answers) stays open across several pings.
    let mut b = connect(&sys.base, &ann, None).await;
    assert_eq!(b.closed(Duration::from_millis(3_500)).await, None);
}

#[tokio::test]
async fn a_slow_consumer_is_closed_with_4008_and_nobody_else_is_affected() {
    let sys = System::up_with(&[("FORUM_WS_QUEUE", "4")]).await;
    let (ann, _) = sys.register("ann").await;
    let (bob, _) = sys.register("bob").await;
    let mut slow = common::ws::connect_small_buffer(&sys.base, &ann).await;
    let mut fast = connect(&sys.base, &bob, None).await;
    let big = "y".repeat(19_000);
    let mut sent = 0;
    let mut closed = false;
    for round in 0..30 {
        for _ in 0..10 {
            let (s, body) = sys
                .post(
                    "/api/posts",
                    Some(&bob),
                    json!({"title": format!("big {round}"), "content": big, "categories": ["general"]}),
                )
                .await;
            assert_eq!(s, 201, "{body}");
            sent += 1;
        }
        // The fast socket keeps up.
        for _ in 0..10 {
            let f = fast.next(FRAME_WAIT).await.expect("fast socket frame");
            assert_eq!(f["type"], "post.new");
        }
        if sys
            .metric("forum_ws_closes_total{code=\"4008\"}")
            .await
            .is_some_and(|n| n > 0.0)
        {
            closed = true;
            break;
        }
    }
    assert!(closed, "no slow-consumer close after {sent} big posts");
    assert_eq!(slow.closed(FRAME_WAIT).await, Some(4008));
    // The fast socket is still served.
    let id = create_post(&sys, &bob, "after").await;
    let f = fast.next(FRAME_WAIT).await.expect("post.new");
    assert_eq!(f["data"]["id"], id.as_str());
}

#[tokio::test]
async fn two_gateways_share_the_feed_and_presence() {
    // A heartbeat of 1 s: expiry after 2.5 s, and no false expiry when a
    // loaded machine delays a heartbeat by a few hundred milliseconds.
    let mut sys = System::up_with(&[("FORUM_PRESENCE_HEARTBEAT_MS", "1000")]).await;
    let g2 = sys.spawn_gateway(&[("FORUM_PRESENCE_HEARTBEAT_MS", "1000")]);
    let (ann, ann_id) = sys.register("ann").await;
    let (bob, bob_id) = sys.register("bob").await;
    let mut a = connect(&sys.base, &ann, None).await;
    let mut b = connect(&g2, &bob, None).await;
    // Ann, on the first gateway, sees Bob come online on the second.
    let p = a.expect("presence", FRAME_WAIT).await;
    let p = if p["data"]["user_id"] == ann_id.as_str() {
        a.expect("presence", FRAME_WAIT).await
    } else {
        p
    };
    assert_eq!(p["data"], json!({"user_id": bob_id, "online": true}));
    // A post written through the first gateway reaches the second.
    let id = create_post(&sys, &ann, "across").await;
    let f = b.next(FRAME_WAIT).await.expect("post.new on gateway 2");
    assert_eq!(f["data"]["id"], id.as_str());
    // Bob's socket closing is seen on the first gateway.
    b.stream.close(None).await.expect("close");
    while b.stream.next().await.is_some() {}
    let p = a.expect("presence", FRAME_WAIT).await;
    assert_eq!(p["data"], json!({"user_id": bob_id, "online": false}));
    // Bob connects again on gateway 2, which then dies without a word: he
    // goes offline within a few heartbeats.
    let _b = connect(&g2, &bob, None).await;
    let p = a.expect("presence", FRAME_WAIT).await;
    assert_eq!(p["data"]["online"], true);
    sys.kill("gateway1");
    let died = std::time::Instant::now();
    let p = a.expect("presence", FRAME_WAIT).await;
    assert_eq!(p["data"], json!({"user_id": bob_id, "online": false}));
    assert!(
        died.elapsed() < Duration::from_secs(20),
        "{:?}",
        died.elapsed()
    );
}

#[tokio::test]
async fn a_stopping_gateway_closes_its_sockets_with_1001_and_its_users_go_offline_at_once() {
    let mut sys = System::up().await;
    let g2 = sys.spawn_gateway(&[]);
    let (ann, _) = sys.register("ann").await;
    let (bob, bob_id) = sys.register("bob").await;
    let mut a = connect(&sys.base, &ann, None).await;
    let mut b = connect(&g2, &bob, None).await;
    loop {
        let p = a.expect("presence", FRAME_WAIT).await;
        if p["data"]["user_id"] == bob_id.as_str() {
            assert_eq!(p["data"]["online"], true);
            break;
        }
    }
    sys.terminate("gateway1");
    assert_eq!(b.closed(FRAME_WAIT).await, Some(1001));
    // Default heartbeat is 10 s (expiry after 25 s): the goodbye, not the
    // expiry, made this.
    let p = a.expect("presence", Duration::from_secs(15)).await;
    assert_eq!(p["data"], json!({"user_id": bob_id, "online": false}));
    assert!(sys.wait_exit("gateway1", Duration::from_secs(60)));
}

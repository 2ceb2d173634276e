//! Chat end to end: the user list, messages with paging, read receipts,
//! who may read what, bad inputs, and a rebuild of the chat projection.

mod common;

use std::collections::HashSet;
use std::process::Stdio;

use common::System;
use reqwest::Method;
use serde_json::{json, Value};

async fn send(sys: &System, token: &str, to: &str, content: &str) -> Value {
    let (status, body) = sys
        .post(
            &format!("/api/conversations/{to}/messages"),
            Some(token),
            json!({ "content": content }),
        )
        .await;
    assert_eq!(status, 201, "send {content}: {body}");
    body
}

async fn page(sys: &System, token: &str, other: &str, query: &str) -> Value {
    let (status, body) = sys
        .get(
            &format!("/api/conversations/{other}/messages{query}"),
            Some(token),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

fn contents(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|m| m["content"].as_str().expect("content").to_string())
        .collect()
}

fn is_time(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| s.len() == 24 && s.ends_with('Z') && s.as_bytes()[19] == b'.')
}

async fn users(sys: &System, token: &str) -> Vec<Value> {
    let (status, body) = sys.get("/api/users", Some(token)).await;
    assert_eq!(status, 200, "{body}");
    body.as_array().expect("array").clone()
}

fn entry<'a>(list: &'a [Value], id: &str) -> &'a Value {
    list.iter()
        .find(|u| u["id"] == id)
        .unwrap_or_else(|| panic!("{id} not in {list:?}"))
}

async fn mark_read(sys: &System, token: &str, other: &str, up_to: &Value) -> (u16, Value) {
    sys.post(
        &format!("/api/conversations/{other}/read"),
        Some(token),
        json!({ "up_to": up_to["id"] }),
    )
    .await
}

#[tokio::test]
async fn a_message_is_sent_and_both_participants_read_it_at_once() {
    let sys = System::up().await;
    let (ann, ann_id) = sys.register("ann").await;
    let (bob, bob_id) = sys.register("bob").await;
    let m = send(&sys, &ann, &bob_id, "  hello Bob  ").await;
    assert_eq!(m["from"], json!({"id": ann_id, "nickname": "ann"}));
    assert_eq!(m["to"], bob_id.as_str());
    assert_eq!(m["content"], "  hello Bob  ", "stored as given");
    assert!(is_time(&m["sent_at"]), "{m}");
    assert_eq!(m["read_at"], Value::Null);
    assert_eq!(m.as_object().expect("object").len(), 6, "{m}");
    // Read-your-writes, from either side.
    let mine = page(&sys, &ann, &bob_id, "").await;
    let theirs = page(&sys, &bob, &ann_id, "").await;
    assert_eq!(mine["items"], json!([m.clone()]));
    assert_eq!(theirs["items"], json!([m]));
    assert_eq!(mine["next_cursor"], Value::Null);
}

#[tokio::test]
async fn messages_are_listed_newest_first_ten_a_page_and_stable_while_new_ones_arrive() {
    let sys = System::up().await;
    let (ann, ann_id) = sys.register("ann").await;
    let (bob, bob_id) = sys.register("bob").await;
    for i in 0..25 {
        if i % 2 == 0 {
            send(&sys, &ann, &bob_id, &format!("m{i:02}")).await;
        } else {
            send(&sys, &bob, &ann_id, &format!("m{i:02}")).await;
        }
    }
    let first = page(&sys, &ann, &bob_id, "").await;
    let expected: Vec<String> = (15..25).rev().map(|i| format!("m{i:02}")).collect();
    assert_eq!(contents(&first), expected);
    let cursor = first["next_cursor"]
        .as_str()
        .expect("more pages")
        .to_string();
    // New messages arrive: the next page is the 11th to 20th newest of
    // before, unchanged.
    for i in 25..28 {
        send(&sys, &bob, &ann_id, &format!("m{i:02}")).await;
    }
    let second = page(&sys, &ann, &bob_id, &format!("?cursor={cursor}")).await;
    let expected: Vec<String> = (5..15).rev().map(|i| format!("m{i:02}")).collect();
    assert_eq!(contents(&second), expected);
    let cursor = second["next_cursor"].as_str().expect("a last page");
    let third = page(&sys, &bob, &ann_id, &format!("?cursor={cursor}")).await;
    let expected: Vec<String> = (0..5).rev().map(|i| format!("m{i:02}")).collect();
    assert_eq!(contents(&third), expected);
    assert_eq!(
        third["next_cursor"],
        Value::Null,
        "a short page is the last"
    );
    // Other limits; the newest now first.
    let big = page(&sys, &bob, &ann_id, "?limit=50").await;
    assert_eq!(contents(&big).len(), 28);
    assert_eq!(contents(&big)[0], "m27");
    assert_eq!(big["next_cursor"], Value::Null);
    let one = page(&sys, &bob, &ann_id, "?limit=1").await;
    assert_eq!(contents(&one), ["m27"]);
    assert!(one["next_cursor"].is_string());
}

#[tokio::test]
async fn bad_limits_and_cursors_are_400_validation_failed() {
    let sys = System::up().await;
    let (ann, _) = sys.register("ann").await;
    let (_, bob_id) = sys.register("bob").await;
    for (query, field) in [
        ("?limit=0", "limit"),
        ("?limit=51", "limit"),
        ("?limit=ten", "limit"),
        ("?limit=2.5", "limit"),
        ("?cursor=%21%21", "cursor"),
        ("?cursor=eDE", "cursor"),
    ] {
        let (status, body) = sys
            .get(
                &format!("/api/conversations/{bob_id}/messages{query}"),
                Some(&ann),
            )
            .await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"]["code"], "validation_failed");
        assert!(body["error"]["fields"].get(field).is_some(), "{body}");
    }
}

#[tokio::test]
async fn a_read_receipt_marks_that_message_and_older_ones_from_that_user() {
    let sys = System::up().await;
    let (ann, ann_id) = sys.register("ann").await;
    let (bob, bob_id) = sys.register("bob").await;
    let m1 = send(&sys, &ann, &bob_id, "one").await;
    let m2 = send(&sys, &ann, &bob_id, "two").await;
    let reply = send(&sys, &bob, &ann_id, "reply").await;
    let m3 = send(&sys, &ann, &bob_id, "three").await;
    assert_eq!(entry(&users(&sys, &bob).await, &ann_id)["unread"], 3);
    assert_eq!(entry(&users(&sys, &ann).await, &bob_id)["unread"], 1);

    let (status, body) = mark_read(&sys, &bob, &ann_id, &m2).await;
    assert_eq!(status, 204, "{body}");
    // Read-your-writes: the counts and the messages show it at once.
    assert_eq!(entry(&users(&sys, &bob).await, &ann_id)["unread"], 1);
    let list = page(&sys, &bob, &ann_id, "").await;
    let read_at = |id: &Value| {
        list["items"]
            .as_array()
            .expect("items")
            .iter()
            .find(|m| m["id"] == *id)
            .map(|m| m["read_at"].clone())
            .expect("listed")
    };
    assert!(is_time(&read_at(&m1["id"])), "{list}");
    assert!(is_time(&read_at(&m2["id"])), "{list}");
    assert_eq!(read_at(&m3["id"]), Value::Null);
    assert_eq!(read_at(&reply["id"]), Value::Null, "Ann has not read it");
    assert_eq!(read_at(&m1["id"]), read_at(&m2["id"]), "one receipt");
    // Again, or an older one: 204 and nothing changes.
    let (status, _) = mark_read(&sys, &bob, &ann_id, &m1).await;
    assert_eq!(status, 204);
    assert_eq!(page(&sys, &bob, &ann_id, "").await, list);
    // Up to Bob's own reply: nothing of Ann's after m2 is before it.
    let (status, _) = mark_read(&sys, &bob, &ann_id, &reply).await;
    assert_eq!(status, 204);
    assert_eq!(entry(&users(&sys, &bob).await, &ann_id)["unread"], 1);
    // Ann reads Bob's reply (her last message is newer: the receipt
    // reaches every older message from Bob).
    let (status, _) = mark_read(&sys, &ann, &bob_id, &m3).await;
    assert_eq!(status, 204);
    assert_eq!(entry(&users(&sys, &ann).await, &bob_id)["unread"], 0);
    let (status, _) = mark_read(&sys, &bob, &ann_id, &m3).await;
    assert_eq!(status, 204);
    assert_eq!(entry(&users(&sys, &bob).await, &ann_id)["unread"], 0);
    // A bad body.
    for body in [json!({}), json!({"up_to": "nope"}), json!({"up_to": 5})] {
        let (status, b) = sys
            .post(
                &format!("/api/conversations/{ann_id}/read"),
                Some(&bob),
                body,
            )
            .await;
        assert_eq!(status, 400, "{b}");
        assert!(b["error"]["fields"].get("up_to").is_some(), "{b}");
    }
}

#[tokio::test]
async fn a_third_user_can_neither_read_nor_mark_a_conversation_of_others() {
    let sys = System::up().await;
    let (ann, ann_id) = sys.register("ann").await;
    let (_, bob_id) = sys.register("bob").await;
    let (eve, eve_id) = sys.register("eve").await;
    let m = send(&sys, &ann, &bob_id, "private").await;
    for other in [&ann_id, &bob_id] {
        let (status, body) = mark_read(&sys, &eve, other, &m).await;
        assert_eq!(status, 404, "{body}");
        assert_eq!(body["error"]["code"], "not_found");
        // Eve's conversations with Ann or Bob hold nothing of theirs.
        assert!(contents(&page(&sys, &eve, other, "").await).is_empty());
    }
    // Nor may Ann mark her message through a conversation it is not in.
    let (status, _) = mark_read(&sys, &ann, &eve_id, &m).await;
    assert_eq!(status, 404);
    let (status, _) = sys
        .post(
            &format!("/api/conversations/{bob_id}/read"),
            Some(&ann),
            json!({"up_to": uuid::Uuid::now_v7()}),
        )
        .await;
    assert_eq!(status, 404, "unknown message");
}

#[tokio::test]
async fn a_message_to_oneself_is_400_and_to_an_unknown_user_404() {
    let sys = System::up().await;
    let (ann, ann_id) = sys.register("ann").await;
    let (_, bob_id) = sys.register("bob").await;
    let (status, body) = sys
        .post(
            &format!("/api/conversations/{ann_id}/messages"),
            Some(&ann),
            json!({"content": "me"}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "validation_failed");
    assert!(body["error"]["fields"].get("to").is_some(), "{body}");
    // No conversation with oneself to read or mark either.
    let (status, _) = sys
        .get(&format!("/api/conversations/{ann_id}/messages"), Some(&ann))
        .await;
    assert_eq!(status, 404);
    let unknown = uuid::Uuid::now_v7().to_string();
    for path in [
        format!("/api/conversations/{unknown}/messages"),
        "/api/conversations/not-a-uuid/messages".to_string(),
    ] {
        let (status, body) = sys.post(&path, Some(&ann), json!({"content": "hi"})).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert_eq!(body["error"]["code"], "not_found");
        let (status, _) = sys.get(&path, Some(&ann)).await;
        assert_eq!(status, 404, "{path}");
    }
    // Content: 1-2000 characters, not blank.
    let to = format!("/api/conversations/{bob_id}/messages");
    for bad in [
        json!({}),
        json!({"content": ""}),
        json!({"content": " \n\t"}),
        json!({"content": 5}),
        json!({"content": "x".repeat(2_001)}),
    ] {
        let (status, body) = sys.post(&to, Some(&ann), bad.clone()).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body["error"]["fields"].get("content").is_some(), "{body}");
    }
    let (status, _) = sys
        .post(&to, Some(&ann), json!({"content": "é".repeat(2_000)}))
        .await;
    assert_eq!(status, 201);
    // Nothing of the refused ones was sent.
    assert_eq!(contents(&page(&sys, &ann, &bob_id, "").await).len(), 1);
}

#[tokio::test]
async fn chat_needs_a_session() {
    let sys = System::up().await;
    let (_, bob_id) = sys.register("bob").await;
    let m = format!("/api/conversations/{bob_id}/messages");
    let r = format!("/api/conversations/{bob_id}/read");
    for (method, path, body) in [
        (Method::GET, "/api/users", None),
        (Method::GET, m.as_str(), None),
        (Method::POST, m.as_str(), Some(json!({"content": "hi"}))),
        (Method::POST, r.as_str(), Some(json!({"up_to": bob_id}))),
    ] {
        let (status, body) = sys.call(method.clone(), path, None, body).await;
        assert_eq!(status, 401, "{method} {path}: {body}");
        assert_eq!(body["error"]["code"], "unauthorized");
    }
}

#[tokio::test]
async fn the_user_list_shows_conversations_first_most_recent_first_then_nicknames_case_insensitively(
) {
    let sys = System::up().await;
    let (me, me_id) = sys.register("myself").await;
    let mut ids = std::collections::HashMap::new();
    let mut tokens = std::collections::HashMap::new();
    for nick in ["zed", "Amy", "bob", "Carl", "dan"] {
        let (token, id) = sys.register(nick).await;
        ids.insert(nick, id);
        tokens.insert(nick, token);
    }
    let nicks = |list: &[Value]| -> Vec<String> {
        list.iter()
            .map(|u| u["nickname"].as_str().expect("nickname").to_string())
            .collect()
    };
    let list = users(&sys, &me).await;
    assert_eq!(nicks(&list), ["Amy", "bob", "Carl", "dan", "zed"]);
    for u in &list {
        assert_eq!(u["online"], false, "{u}");
        assert_eq!(u["last_message_at"], Value::Null, "{u}");
        assert_eq!(u["unread"], 0, "{u}");
        assert_eq!(u.as_object().expect("object").len(), 5, "{u}");
    }
    assert!(!list.iter().any(|u| u["id"] == me_id.as_str()), "not me");

    send(&sys, &me, &ids["dan"], "hi dan").await;
    send(&sys, &me, &ids["bob"], "hi bob").await;
    let list = users(&sys, &me).await;
    assert_eq!(nicks(&list), ["bob", "dan", "Amy", "Carl", "zed"]);
    assert!(is_time(&entry(&list, &ids["bob"])["last_message_at"]));
    assert_eq!(entry(&list, &ids["bob"])["unread"], 0, "sent, not received");
    // A message received counts too, and is unread.
    send(&sys, &tokens["zed"], &me_id, "hi me").await;
    let list = users(&sys, &me).await;
    assert_eq!(nicks(&list), ["zed", "bob", "dan", "Amy", "Carl"]);
    assert_eq!(entry(&list, &ids["zed"])["unread"], 1);
    // Seen from Dan: myself first (the only conversation), then the rest.
    let list = users(&sys, &tokens["dan"]).await;
    assert_eq!(nicks(&list), ["myself", "Amy", "bob", "Carl", "zed"]);
    // The public profile route still works beside the list.
    let (status, body) = sys.get(&format!("/api/users/{}", ids["Amy"]), None).await;
    assert_eq!((status, body["nickname"].clone()), (200, json!("Amy")));
}

#[tokio::test]
async fn an_idempotency_key_retry_sends_one_message() {
    let sys = System::up().await;
    let (ann, _) = sys.register("ann").await;
    let (_, bob_id) = sys.register("bob").await;
    let send = || {
        sys.http
            .post(sys.url(&format!("/api/conversations/{bob_id}/messages")))
            .bearer_auth(&ann)
            .header("Idempotency-Key", "message-once")
            .json(&json!({"content": "once"}))
            .send()
    };
    let first = send().await.expect("send");
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.expect("json");
    let second = send().await.expect("send");
    assert_eq!(second.status(), 201);
    assert_eq!(second.json::<Value>().await.expect("json"), first);
    assert_eq!(contents(&page(&sys, &ann, &bob_id, "").await), ["once"]);
}

#[tokio::test]
async fn the_openapi_description_lists_every_chat_and_notifications_route() {
    let sys = System::up().await;
    let (status, doc) = sys.get("/api/openapi.json", None).await;
    assert_eq!(status, 200);
    let paths = doc["paths"].as_object().expect("paths");
    for (path, method) in [
        ("/api/users", "get"),
        ("/api/users/{id}", "get"),
        ("/api/conversations/{user_id}/messages", "get"),
        ("/api/conversations/{user_id}/messages", "post"),
        ("/api/conversations/{user_id}/read", "post"),
        ("/api/notifications", "get"),
        ("/api/notifications/read", "post"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} missing"
        );
    }
    let schemas = doc["components"]["schemas"].as_object().expect("schemas");
    for s in [
        "Message",
        "MessagePage",
        "ChatUser",
        "Notification",
        "NotificationPage",
    ] {
        assert!(schemas.contains_key(s), "schema {s} missing");
    }
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
async fn a_rebuilt_chat_projection_equals_the_live_one() {
    let sys = System::up().await;
    let (ann, ann_id) = sys.register("ann").await;
    let (bob, bob_id) = sys.register("bob").await;
    let (eve, _) = sys.register("eve").await;
    for i in 0..30 {
        let last = send(&sys, &ann, &bob_id, &format!("a{i}")).await;
        send(&sys, &bob, &ann_id, &format!("b{i}")).await;
        if i % 7 == 3 {
            assert_eq!(mark_read(&sys, &bob, &ann_id, &last).await.0, 204);
        }
        if i % 11 == 5 {
            send(&sys, &eve, &ann_id, &format!("e{i}")).await;
        }
    }
    let before = page(&sys, &bob, &ann_id, "?limit=50").await;
    let users_before = users(&sys, &ann).await;
    let (ok, out) = replay(&sys, &["rebuild", "chat"]).await;
    assert!(ok, "{out}");
    assert!(out.contains("switched chat to v2 (retired v1)"), "{out}");
    let (ok, out) = replay(&sys, &["verify", "chat"]).await;
    assert!(ok, "verify found differences: {out}");
    assert!(out.contains("chat v1 = v2: messages: 63 rows"), "{out}");
    assert!(out.contains("chat v1 = v2: conversations: 4 rows"), "{out}");
    assert_eq!(page(&sys, &bob, &ann_id, "?limit=50").await, before);
    assert_eq!(users(&sys, &ann).await, users_before);
    // The projector follows v2: a new message is read at once.
    send(&sys, &bob, &ann_id, "after").await;
    assert_eq!(
        contents(&page(&sys, &ann, &bob_id, "?limit=1").await),
        ["after"]
    );
    let ids: HashSet<String> = page(&sys, &ann, &bob_id, "?limit=50").await["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|m| m["id"].as_str().expect("id").to_string())
        .collect();
    assert_eq!(ids.len(), 50);
}

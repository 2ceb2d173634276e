//! What a client sends can be refused, never stored half or answered with a
//! 500: control characters in every text field, tokens on anonymous routes,
//! paths and queries that do not parse, and the statuses the OpenAPI
//! description promises.

mod common;

use common::System;
use reqwest::Method;
use serde_json::{json, Value};

/// The texts every text field refuses: NUL, another C0 control, DEL, a C1
/// control.
const BAD: [&str; 4] = ["D\u{0}", "a\u{1b}[31m", "x\u{7f}", "y\u{85}z"];

async fn count(sys: &System, sql: &str) -> i64 {
    let pool = sys.pool().await;
    sqlx::query_scalar(sql)
        .fetch_one(&pool)
        .await
        .expect("count")
}

fn assert_field(status: u16, body: &Value, field: &str) {
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "validation_failed", "{body}");
    assert!(
        body["error"]["fields"][field].is_string(),
        "{field} is named: {body}"
    );
}

async fn new_post(sys: &System, token: &str) -> String {
    let (status, body) = sys
        .post(
            "/api/posts",
            Some(token),
            json!({"title": "fine", "content": "fine", "categories": ["general"]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().expect("id").to_string()
}

#[tokio::test]
async fn control_characters_are_refused_in_every_text_field_and_nothing_is_stored() {
    let sys = System::up().await;
    let (ann, _) = sys.register("ann").await;
    let (_, bob_id) = sys.register("bob").await;
    let post = new_post(&sys, &ann).await;
    let (status, comment) = sys
        .post(
            &format!("/api/posts/{post}/comments"),
            Some(&ann),
            json!({"content": "fine"}),
        )
        .await;
    assert_eq!(status, 201, "{comment}");
    let comment = comment["id"].as_str().expect("id").to_string();
    let events_before = count(&sys, "select count(*) from posts.events").await
        + count(&sys, "select count(*) from chat.events").await;
    let accounts_before = count(&sys, "select count(*) from auth.events").await;
    for bad in BAD {
        for field in ["first_name", "last_name", "email"] {
            let mut body = common::registration("carl");
            body[field] = json!(bad);
            let (status, body) = sys.post("/api/auth/register", None, body).await;
            assert_field(status, &body, field);
        }
        let (status, body) = sys
            .post(
                "/api/auth/login",
                None,
                json!({"login": format!("ann{bad}"), "password": "password-ann"}),
            )
            .await;
        assert_field(status, &body, "login");
        for field in ["title", "content"] {
            let mut body = json!({"title": "t", "content": "c", "categories": ["general"]});
            body[field] = json!(bad);
            let (status, body) = sys.post("/api/posts", Some(&ann), body).await;
            assert_field(status, &body, field);
            let (status, body) = sys
                .call(
                    Method::PATCH,
                    &format!("/api/posts/{post}"),
                    Some(&ann),
                    Some(json!({ field: bad })),
                )
                .await;
            assert_field(status, &body, field);
        }
        let (status, body) = sys
            .post(
                &format!("/api/posts/{post}/comments"),
                Some(&ann),
                json!({"content": bad}),
            )
            .await;
        assert_field(status, &body, "content");
        let (status, body) = sys
            .call(
                Method::PATCH,
                &format!("/api/comments/{comment}"),
                Some(&ann),
                Some(json!({"content": bad})),
            )
            .await;
        assert_field(status, &body, "content");
        let (status, body) = sys
            .post(
                &format!("/api/conversations/{bob_id}/messages"),
                Some(&ann),
                json!({"content": bad}),
            )
            .await;
        assert_field(status, &body, "content");
    }
    // Nothing was stored, and everything still works.
    let events_after = count(&sys, "select count(*) from posts.events").await
        + count(&sys, "select count(*) from chat.events").await;
    assert_eq!(events_after, events_before);
    assert_eq!(
        count(&sys, "select count(*) from auth.events").await,
        accounts_before
    );
    // Tab, line feed and carriage return are text like any other.
    let (status, body) = sys
        .post(
            &format!("/api/posts/{post}/comments"),
            Some(&ann),
            json!({"content": "two\r\nlines\tand a tab"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["content"], "two\r\nlines\tand a tab");
    let (status, body) = sys
        .post(
            &format!("/api/conversations/{bob_id}/messages"),
            Some(&ann),
            json!({"content": "still\nserved"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test]
async fn an_invalid_expired_or_revoked_token_is_ignored_on_anonymous_routes() {
    let sys = System::up_with(&[("FORUM_SESSION_TTL_SECS", "1")]).await;
    let (ann, _) = sys.register("ann").await;
    let post = new_post(&sys, &ann).await;
    // Revoked: a second session logs out.
    let (status, body) = sys
        .post(
            "/api/auth/login",
            None,
            json!({"login": "ann", "password": "password-ann"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let revoked = body["token"].as_str().expect("token").to_string();
    let (status, _) = sys
        .call(Method::POST, "/api/auth/logout", Some(&revoked), None)
        .await;
    assert_eq!(status, 204);
    // Expired: the first session's one second is over (polled, not slept).
    common::eventually(
        std::time::Duration::from_secs(60),
        "the first session to expire",
        || {
            let sys = &sys;
            let ann = ann.clone();
            async move {
                let (status, _) = sys.get("/api/auth/me", Some(&ann)).await;
                (status == 401).then_some(())
            }
        },
    )
    .await;
    let anonymous = [
        "/api/categories".to_string(),
        "/api/posts".to_string(),
        format!("/api/posts/{post}"),
        format!("/api/posts/{post}/comments"),
    ];
    for token in ["not-a-token", "a.b.c", revoked.as_str(), ann.as_str()] {
        for path in &anonymous {
            let (status, body) = sys.get(path, Some(token)).await;
            assert_eq!(status, 200, "{path} with a bad bearer token: {body}");
            let resp = sys
                .http
                .get(sys.url(path))
                .header("cookie", format!("session={token}"))
                .send()
                .await
                .expect("send");
            assert_eq!(resp.status().as_u16(), 200, "{path} with a bad cookie");
        }
        // The post reads as it would for anyone.
        let (_, body) = sys.get(&format!("/api/posts/{post}"), Some(token)).await;
        assert_eq!(body["my_reaction"], Value::Null);
        // What needs a login still needs one.
        let (status, body) = sys.get("/api/posts?author=me", Some(token)).await;
        assert_eq!(status, 401, "{body}");
        let (status, _) = sys.get("/api/auth/me", Some(token)).await;
        assert_eq!(status, 401);
    }
}

/// A raw request: the status and the body parsed as JSON (every error must
/// be the JSON error body).
async fn raw(sys: &System, method: Method, path: &str, token: &str) -> (u16, Value) {
    let resp = sys
        .http
        .request(method, sys.url(path))
        .bearer_auth(token)
        .send()
        .await
        .expect("send");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("text");
    let body: Value = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("{path}: {status} answered a body that is not JSON: {text:?}"));
    (status, body)
}

#[tokio::test]
async fn paths_and_queries_that_do_not_parse_get_the_error_body() {
    let sys = System::up().await;
    let (ann, ann_id) = sys.register("ann").await;
    for path in [
        "/api/posts/%FF",
        "/api/posts/%FF/comments",
        "/api/users/%C3%28",
        "/api/comments/%FF/reaction",
    ] {
        let method = if path.ends_with("reaction") {
            Method::PUT
        } else {
            Method::GET
        };
        let (status, body) = raw(&sys, method, path, &ann).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["error"]["code"], "validation_failed", "{path}");
        assert!(body["error"]["fields"]["path"].is_string(), "{body}");
    }
    for path in [
        "/api/posts/not-a-uuid",
        "/api/posts/12345/comments",
        "/api/users/nobody",
    ] {
        let (status, body) = raw(&sys, Method::GET, path, &ann).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert_eq!(body["error"]["code"], "not_found");
    }
    for query in [
        "?limit=%FF",
        "?cursor=%FF%FE",
        "?category=%00",
        "?limit=1e3",
        "?limit=-1",
        "?author=%FF",
        "?cursor=%00",
    ] {
        let (status, body) = raw(&sys, Method::GET, &format!("/api/posts{query}"), &ann).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"]["code"], "validation_failed", "{query}");
    }
    let resp = sys
        .http
        .get(sys.url("/api/notifications?limit=%FF"))
        .bearer_auth(&ann)
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status().as_u16(), 400);
    let body: Value = resp.json().await.expect("json body");
    assert_eq!(body["error"]["code"], "validation_failed");
    let resp = sys
        .http
        .get(sys.url(&format!("/api/conversations/{ann_id}/messages?cursor=%FF")))
        .bearer_auth(&ann)
        .send()
        .await
        .expect("send");
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.expect("json body");
    assert!(status == 400 || status == 404, "{status} {body}");
    assert!(body["error"]["code"].is_string(), "{body}");
}

#[tokio::test]
async fn the_openapi_description_lists_the_statuses_every_write_can_answer() {
    let sys = System::up().await;
    let (status, spec) = sys.get("/api/openapi.json", None).await;
    assert_eq!(status, 200);
    let paths = spec["paths"].as_object().expect("paths");
    let mut writes = 0;
    for (path, item) in paths {
        if !path.starts_with("/api/") {
            continue;
        }
        for (method, op) in item.as_object().expect("item") {
            let responses = op["responses"].as_object().expect("responses");
            for status in ["500", "503"] {
                assert!(
                    responses.contains_key(status),
                    "{method} {path} lacks {status}"
                );
            }
            if ["post", "put", "patch", "delete"].contains(&method.as_str()) {
                writes += 1;
                for status in ["400", "409", "413"] {
                    assert!(
                        responses.contains_key(status),
                        "{method} {path} lacks {status}"
                    );
                }
                if op.get("requestBody").is_some() {
                    assert!(responses.contains_key("415"), "{method} {path} lacks 415");
                }
                let params = op["parameters"].as_array().expect("parameters");
                assert!(
                    params.iter().any(|p| p["name"] == "Idempotency-Key"),
                    "{method} {path} lacks Idempotency-Key"
                );
            }
            if path.contains('{') {
                for status in ["400", "404"] {
                    assert!(
                        responses.contains_key(status),
                        "{method} {path} lacks {status}"
                    );
                }
            }
        }
    }
    assert!(writes >= 14, "every write route is described ({writes})");
}

//! Accounts end to end: every accounts row of API.md, bad inputs included.

mod common;

use common::{registration, System};
use reqwest::Method;
use serde_json::{json, Value};

#[tokio::test]
async fn register_answers_201_with_me_token_and_session_cookie() {
    let sys = System::up().await;
    let resp = sys
        .http
        .post(sys.url("/api/auth/register"))
        .json(&json!({"nickname": "Ada.L-1", "email": "Ada@Example.org", "password": "12345678",
                      "first_name": "  Ada ", "last_name": "Lovelace", "age": 36, "gender": "female"}))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 201);
    let cookie = resp.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .to_string();
    let body: Value = resp.json().await.expect("json");
    let token = body["token"].as_str().expect("token");
    assert!(cookie.starts_with(&format!("session={token};")), "{cookie}");
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(attr), "{cookie} lacks {attr}");
    }
    let user = &body["user"];
    assert_eq!(user["nickname"], "Ada.L-1");
    assert_eq!(user["email"], "Ada@Example.org");
    assert_eq!(user["first_name"], "Ada", "names are trimmed");
    assert_eq!(user["age"], 36);
    assert_eq!(user["gender"], "female");
    let created = user["created_at"].as_str().expect("created_at");
    assert_eq!(created.len(), 24, "{created}");
    assert!(
        created.ends_with('Z') && created.as_bytes()[19] == b'.',
        "{created}"
    );
    let keys: Vec<&String> = user.as_object().expect("object").keys().collect();
    assert_eq!(keys.len(), 8, "{keys:?}");

    // The cookie alone authenticates.
    let me = sys
        .http
        .get(sys.url("/api/auth/me"))
        .header("cookie", format!("session={token}"))
        .send()
        .await
        .expect("send");
    assert_eq!(me.status(), 200);
    assert_eq!(me.json::<Value>().await.expect("json"), *user);

    // The public view has no e-mail.
    let id = user["id"].as_str().expect("id");
    let (status, public) = sys.get(&format!("/api/users/{id}"), None).await;
    assert_eq!(status, 200);
    assert!(public.get("email").is_none());
    assert_eq!(public["nickname"], "Ada.L-1");
}

#[tokio::test]
async fn registration_validation_names_every_bad_field() {
    let sys = System::up().await;
    let (status, body) = sys
        .post(
            "/api/auth/register",
            None,
            json!({"nickname": "ab", "email": "nope", "password": "short",
               "first_name": "   ", "last_name": "x".repeat(65), "age": 12, "gender": "robot"}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "validation_failed");
    let fields = body["error"]["fields"].as_object().expect("fields");
    for f in [
        "nickname",
        "email",
        "password",
        "first_name",
        "last_name",
        "age",
        "gender",
    ] {
        assert!(fields.contains_key(f), "{f} not named: {body}");
    }
    // Wrong JSON types for age, and a missing field.
    for age in [json!("30"), json!(30.5), json!(true), Value::Null] {
        let mut b = registration("typed");
        b["age"] = age.clone();
        let (status, body) = sys.post("/api/auth/register", None, b).await;
        assert_eq!(status, 400, "age {age}");
        assert_eq!(body["error"]["code"], "validation_failed");
        assert!(
            body["error"]["fields"]["age"].is_string(),
            "age {age}: {body}"
        );
    }
    let mut b = registration("missing");
    b.as_object_mut().expect("object").remove("email");
    let (status, body) = sys.post("/api/auth/register", None, b).await;
    assert_eq!(status, 400);
    assert!(body["error"]["fields"]["email"].is_string());
    // Nothing was created by any of these.
    let (status, _) = sys
        .post(
            "/api/auth/login",
            None,
            json!({"login": "typed", "password": "password-typed"}),
        )
        .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn nickname_and_email_are_unique_case_insensitively() {
    let sys = System::up().await;
    sys.register("Grace").await;
    let mut b = registration("GRACE");
    b["email"] = json!("other@example.org");
    let (status, body) = sys.post("/api/auth/register", None, b).await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (409, json!("nickname_taken"))
    );
    let mut b = registration("hopper");
    b["email"] = json!("grace@EXAMPLE.org");
    let (status, body) = sys.post("/api/auth/register", None, b).await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (409, json!("email_taken"))
    );
}

#[tokio::test]
async fn twenty_concurrent_registrations_of_one_nickname_give_one_201() {
    let sys = System::up().await;
    let mut tasks = Vec::new();
    for i in 0..20 {
        let http = sys.http.clone();
        let url = sys.url("/api/auth/register");
        tasks.push(tokio::spawn(async move {
            let mut b = registration("racer");
            b["email"] = json!(format!("racer{i}@example.org"));
            // More at once than the hashing queue holds: a refused one
            // (503 with Retry-After, nothing written) is sent again, as
            // the API allows.
            for _ in 0..50 {
                let resp = http.post(&url).json(&b).send().await.expect("send");
                let status = resp.status().as_u16();
                let retry_after = resp
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok());
                let body: Value = resp.json().await.expect("json");
                match (status, retry_after) {
                    (503, Some(secs)) => {
                        tokio::time::sleep(std::time::Duration::from_millis(secs.min(2) * 200))
                            .await
                    }
                    _ => return (status, body["error"]["code"].clone()),
                }
            }
            panic!("still refused after 50 tries");
        }));
    }
    let mut created = 0;
    let mut taken = 0;
    for t in tasks {
        match t.await.expect("task") {
            (201, _) => created += 1,
            (409, code) if code == "nickname_taken" => taken += 1,
            other => panic!("unexpected answer {other:?}"),
        }
    }
    assert_eq!((created, taken), (1, 19));
}

#[tokio::test]
async fn login_works_by_nickname_or_email_in_any_case() {
    let sys = System::up().await;
    let (_, id) = sys.register("Linus").await;
    for login in ["Linus", "linus", "LINUS@example.ORG"] {
        let (status, body) = sys
            .post(
                "/api/auth/login",
                None,
                json!({"login": login, "password": "password-Linus"}),
            )
            .await;
        assert_eq!(status, 200, "{login}: {body}");
        assert_eq!(body["user"]["id"], id.as_str());
        assert_eq!(body["user"]["email"], "Linus@example.org");
        let (status, _) = sys.get("/api/auth/me", body["token"].as_str()).await;
        assert_eq!(status, 200);
    }
}

#[tokio::test]
async fn unknown_user_and_wrong_password_get_the_same_401() {
    let sys = System::up().await;
    sys.register("known").await;
    let (s1, b1) = sys
        .post(
            "/api/auth/login",
            None,
            json!({"login": "known", "password": "wrong-password"}),
        )
        .await;
    let (s2, b2) = sys
        .post(
            "/api/auth/login",
            None,
            json!({"login": "nobody", "password": "wrong-password"}),
        )
        .await;
    assert_eq!((s1, s2), (401, 401));
    assert_eq!(b1["error"]["code"], "invalid_credentials");
    assert_eq!(b1, b2);
    let (status, body) = sys
        .post("/api/auth/login", None, json!({"login": "known"}))
        .await;
    assert_eq!(status, 400);
    assert!(body["error"]["fields"]["password"].is_string());
}

#[tokio::test]
async fn session_checks_made_together_each_get_their_own_answer() {
    // The gateway answers the session checks that arrive together with one
    // query: open and revoked sessions of several users, asked at once,
    // must each get their own answer.
    let sys = System::up().await;
    let names: Vec<String> = (0..4).map(|i| format!("checked{i}")).collect();
    let users = sys.register_many(&names).await;
    let mut expected = Vec::new();
    for (i, (token, id)) in users.iter().enumerate() {
        let second = sys.login(&names[i]).await;
        if i % 2 == 0 {
            let (status, _) = sys.post("/api/auth/logout", Some(token), Value::Null).await;
            assert_eq!(status, 204);
            expected.push((token.clone(), None));
        } else {
            expected.push((token.clone(), Some(id.clone())));
        }
        expected.push((second, Some(id.clone())));
    }
    let asks = (0..5).flat_map(|_| expected.iter()).map(|(token, id)| {
        let sys = &sys;
        async move {
            let (status, body) = sys.get("/api/auth/me", Some(token)).await;
            match id {
                Some(id) => assert_eq!((status, &body["id"]), (200, &json!(id)), "{body}"),
                None => assert_eq!(status, 401, "{body}"),
            }
        }
    });
    futures::future::join_all(asks).await;
}

#[tokio::test]
async fn logout_ends_that_session_only_and_at_once() {
    let sys = System::up().await;
    let (first, _) = sys.register("sessions").await;
    let (_, body) = sys
        .post(
            "/api/auth/login",
            None,
            json!({"login": "sessions", "password": "password-sessions"}),
        )
        .await;
    let second = body["token"].as_str().expect("token").to_string();
    let resp = sys
        .http
        .post(sys.url("/api/auth/logout"))
        .bearer_auth(&first)
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 204);
    let cookie = resp.headers()["set-cookie"].to_str().expect("cookie");
    assert!(cookie.contains("Max-Age=0"), "{cookie}");
    let (status, body) = sys.get("/api/auth/me", Some(&first)).await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (401, json!("unauthorized"))
    );
    let (status, _) = sys
        .post("/api/auth/logout", Some(&first), Value::Null)
        .await;
    assert_eq!(status, 401, "a second logout with the same token");
    let (status, _) = sys.get("/api/auth/me", Some(&second)).await;
    assert_eq!(status, 200, "the other session keeps working");
}

#[tokio::test]
async fn bad_tokens_and_unknown_users_are_refused() {
    let sys = System::up().await;
    let (status, body) = sys.get("/api/auth/me", None).await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (401, json!("unauthorized"))
    );
    let (status, _) = sys.get("/api/auth/me", Some("not-a-token")).await;
    assert_eq!(status, 401);
    let (status, body) = sys
        .get(&format!("/api/users/{}", uuid::Uuid::new_v4()), None)
        .await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (404, json!("not_found"))
    );
    let (status, _) = sys.get("/api/users/not-a-uuid", None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn read_your_writes_holds_fifty_times_in_a_row() {
    let sys = System::up().await;
    for i in 0..50 {
        let nick = format!("ryw{i}");
        let (_, id) = sys.register(&nick).await;
        let (status, body) = sys
            .post(
                "/api/auth/login",
                None,
                json!({"login": nick, "password": format!("password-{nick}")}),
            )
            .await;
        assert_eq!(status, 200, "login {i}: {body}");
        let (status, me) = sys.get("/api/auth/me", body["token"].as_str()).await;
        assert_eq!(status, 200, "me {i}");
        assert_eq!(me["id"], id.as_str());
    }
}

#[tokio::test]
async fn the_gateway_answers_every_error_in_the_contract_shape() {
    let sys = System::up().await;
    let http = &sys.http;
    // Unknown route and method.
    let (status, body) = sys.get("/api/nowhere", None).await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (404, json!("not_found"))
    );
    let (status, body) = sys
        .call(Method::DELETE, "/api/auth/login", None, None)
        .await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (405, json!("method_not_allowed"))
    );
    // Not JSON at all.
    let r = http
        .post(sys.url("/api/auth/login"))
        .header("content-type", "application/json")
        .body("{nope")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.expect("json")["error"]["code"],
        "malformed_json"
    );
    // Another content type, or none.
    let r = http
        .post(sys.url("/api/auth/login"))
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 415);
    assert_eq!(
        r.json::<Value>().await.expect("json")["error"]["code"],
        "unsupported_media_type"
    );
    let r = http
        .post(sys.url("/api/auth/login"))
        .body("{}")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 415);
    // Exactly 64 KiB is read; one byte more is 413.
    let pad = |n: usize| {
        let skeleton = r#"{"login":"x","password":""}"#;
        format!(
            r#"{{"login":"x","password":"{}"}}"#,
            "p".repeat(n - skeleton.len())
        )
    };
    let ok = pad(65_536);
    assert_eq!(ok.len(), 65_536);
    let r = http
        .post(sys.url("/api/auth/login"))
        .header("content-type", "application/json")
        .body(ok)
        .send()
        .await
        .expect("send");
    assert_eq!(
        r.status(),
        401,
        "a 65,536-byte body is accepted (and the login fails)"
    );
    let r = http
        .post(sys.url("/api/auth/login"))
        .header("content-type", "application/json")
        .body(pad(65_537))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 413);
    assert_eq!(
        r.json::<Value>().await.expect("json")["error"]["code"],
        "payload_too_large"
    );
    // A JSON body that is not an object.
    let (status, body) = sys
        .call(Method::POST, "/api/auth/login", None, Some(json!([1, 2])))
        .await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (400, json!("validation_failed"))
    );
}

#[tokio::test]
async fn operations_endpoints_answer() {
    let sys = System::up().await;
    assert_eq!(sys.get("/healthz", None).await.0, 200);
    let (status, body) = sys.get("/readyz", None).await;
    assert_eq!(status, 200, "{body}");
    let (status, doc) = sys.get("/api/openapi.json", None).await;
    assert_eq!(status, 200);
    for path in [
        "/api/auth/register",
        "/api/auth/login",
        "/api/auth/logout",
        "/api/auth/me",
        "/api/users/{id}",
    ] {
        assert!(
            doc["paths"].get(path).is_some(),
            "{path} missing from the OpenAPI document"
        );
    }
    let text = sys
        .http
        .get(sys.url("/metrics"))
        .send()
        .await
        .expect("send")
        .text()
        .await
        .expect("text");
    assert!(
        text.contains("forum_http_requests_total{method=\"GET\",route=\"/api/openapi.json\",status=\"200\"} 1"),
        "{text}"
    );
}

#[tokio::test]
async fn sigterm_lets_requests_in_flight_finish() {
    let mut sys = System::up().await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (http, url) = (sys.http.clone(), sys.url("/api/auth/register"));
        tasks.push(tokio::spawn(async move {
            http.post(url)
                .json(&registration(&format!("inflight{i}")))
                .send()
                .await
                .map(|r| r.status().as_u16())
        }));
    }
    // Wait until the first has an account, so the others are under way.
    let pool = sys.pool().await;
    common::eventually(
        std::time::Duration::from_secs(60),
        "a first registration",
        || {
            let pool = pool.clone();
            async move {
                let n: i64 = sqlx::query_scalar("select count(*) from auth.accounts")
                    .fetch_one(&pool)
                    .await
                    .ok()?;
                (n > 0).then_some(())
            }
        },
    )
    .await;
    sys.terminate("up");
    for t in tasks {
        let status = t
            .await
            .expect("task")
            .expect("the request was answered, not cut");
        assert_eq!(status, 201);
    }
    assert!(
        sys.wait_exit("up", std::time::Duration::from_secs(60)),
        "the process exits after draining"
    );
}

//! Abuse and overload: rate limits per address and per user, the client
//! address behind a trusted proxy, idempotency keys of refused requests,
//! the server's header, body and idle timeouts, the connection cap, and the
//! sweep of expired idempotency keys.
//!
//! The harness may start systems with limits off; every test here turns
//! them on (or sets what it exercises) itself.

mod common;

use std::time::{Duration, Instant};

use common::{eventually, System};
use reqwest::Method;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const ON: (&str, &str) = ("FORUM_RATE_LIMITS", "on");

/// One answer: status, the three RateLimit headers and Retry-After, body.
#[derive(Debug)]
struct Answer {
    status: u16,
    limit: Option<u64>,
    remaining: Option<u64>,
    reset: Option<u64>,
    retry_after: Option<u64>,
    body: Value,
}

impl Answer {
    fn assert_headers(&self, what: &str) {
        assert!(
            self.limit.is_some() && self.remaining.is_some() && self.reset.is_some(),
            "{what}: RateLimit-* headers missing: {self:?}"
        );
    }
}

struct Req<'a> {
    method: Method,
    path: &'a str,
    token: Option<&'a str>,
    body: Option<Value>,
    forwarded_for: Option<&'a str>,
    key: Option<&'a str>,
    content_type: Option<&'a str>,
}

impl<'a> Req<'a> {
    fn new(method: Method, path: &'a str) -> Self {
        Req {
            method,
            path,
            token: None,
            body: None,
            forwarded_for: None,
            key: None,
            content_type: None,
        }
    }
}

async fn send(sys: &System, r: Req<'_>) -> Answer {
    let mut req = sys.http.request(r.method, sys.url(r.path));
    if let Some(t) = r.token {
        req = req.bearer_auth(t);
    }
    if let Some(x) = r.forwarded_for {
        req = req.header("x-forwarded-for", x);
    }
    if let Some(k) = r.key {
        req = req.header("idempotency-key", k);
    }
    if let Some(b) = r.body {
        req = req
            .header("content-type", r.content_type.unwrap_or("application/json"))
            .body(b.to_string());
    }
    let resp = req.send().await.expect("request");
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.parse::<u64>()
                    .expect("a whole number of seconds or requests")
            })
    };
    let (limit, remaining, reset, retry_after) = (
        header("ratelimit-limit"),
        header("ratelimit-remaining"),
        header("ratelimit-reset"),
        header("retry-after"),
    );
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    Answer {
        status,
        limit,
        remaining,
        reset,
        retry_after,
        body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
    }
}

async fn get(sys: &System, path: &str, token: Option<&str>) -> Answer {
    send(
        sys,
        Req {
            token,
            ..Req::new(Method::GET, path)
        },
    )
    .await
}

async fn post(sys: &System, path: &str, token: Option<&str>, body: Value) -> Answer {
    send(
        sys,
        Req {
            token,
            body: Some(body),
            ..Req::new(Method::POST, path)
        },
    )
    .await
}

fn new_post(title: &str) -> Value {
    json!({"title": title, "content": format!("content of {title}"), "categories": ["news"]})
}

fn assert_refused(a: &Answer, limit: u64) {
    assert_eq!(a.status, 429, "{a:?}");
    assert_eq!(a.body["error"]["code"], "rate_limited", "{a:?}");
    let retry = a.retry_after.expect("Retry-After");
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    assert_eq!(a.limit, Some(limit), "{a:?}");
    assert_eq!(a.remaining, Some(0), "{a:?}");
    assert!(a.reset.expect("RateLimit-Reset") >= retry, "{a:?}");
}

#[tokio::test]
async fn a_burst_of_logins_from_one_address_is_refused_with_retry_after_and_headers() {
    let sys = System::up_with(&[
        ON,
        ("FORUM_RATE_AUTH_PER_MIN", "1"),
        ("FORUM_RATE_AUTH_BURST", "4"),
    ])
    .await;
    // The registration takes the first of the address's four.
    sys.register("ann_burst").await;
    let login = json!({"login": "ann_burst", "password": "password-ann_burst"});
    let mut remaining = Vec::new();
    let mut refused = None;
    for i in 0..10 {
        let a = post(&sys, "/api/auth/login", None, login.clone()).await;
        if a.status == 429 {
            refused = Some((i, a));
            break;
        }
        assert_eq!(a.status, 200, "login {i}: {a:?}");
        a.assert_headers("a successful login");
        assert_eq!(a.limit, Some(4));
        remaining.push(a.remaining.expect("remaining"));
    }
    let (i, a) = refused.expect("a burst of logins is refused");
    assert_eq!(i, 3, "the fifth registration or login is refused");
    assert_eq!(remaining, [2, 1, 0]);
    assert_refused(&a, 4);
    // Reads have their own budget.
    let read = get(&sys, "/api/categories", None).await;
    assert_eq!(read.status, 200, "{read:?}");
}

#[tokio::test]
async fn a_normal_flow_stays_within_the_default_limits_and_sees_the_headers() {
    let sys = System::up_with(&[ON]).await;
    let ann = post(
        &sys,
        "/api/auth/register",
        None,
        common::registration("ann_flow"),
    )
    .await;
    assert_eq!(ann.status, 201, "{ann:?}");
    ann.assert_headers("register");
    let ann_token = ann.body["token"].as_str().expect("token").to_string();
    let (bob_token, bob_id) = sys.register("bob_flow").await;
    let login = json!({"login": "ann_flow", "password": "password-ann_flow"});
    let again = post(&sys, "/api/auth/login", None, login).await;
    assert_eq!(again.status, 200, "{again:?}");
    for i in 0..5 {
        let created = post(
            &sys,
            "/api/posts",
            Some(&ann_token),
            new_post(&format!("p{i}")),
        )
        .await;
        assert_eq!(created.status, 201, "{created:?}");
        created.assert_headers("create a post");
        let id = created.body["id"].as_str().expect("id").to_string();
        let path = format!("/api/posts/{id}/comments");
        let c = post(&sys, &path, Some(&bob_token), json!({"content": "nice"})).await;
        assert_eq!(c.status, 201, "{c:?}");
        let path = format!("/api/posts/{id}/reaction");
        let r = send(
            &sys,
            Req {
                token: Some(&bob_token),
                body: Some(json!({"reaction": "like"})),
                ..Req::new(Method::PUT, &path)
            },
        )
        .await;
        assert_eq!(r.status, 200, "{r:?}");
        r.assert_headers("react");
        let read = get(&sys, &format!("/api/posts/{id}"), None).await;
        assert_eq!(read.status, 200, "{read:?}");
        read.assert_headers("read a post");
    }
    let path = format!("/api/conversations/{bob_id}/messages");
    let m = post(&sys, &path, Some(&ann_token), json!({"content": "hi"})).await;
    assert_eq!(m.status, 201, "{m:?}");
    let list = get(&sys, "/api/posts?limit=10", Some(&ann_token)).await;
    assert_eq!(list.status, 200, "{list:?}");
    list.assert_headers("list posts");
    let ws = common::ws::try_connect(&sys.base, Some(&ann_token), None).await;
    assert!(ws.is_ok(), "a WebSocket upgrade within the limits");
    // The operations routes are not limited.
    let health = get(&sys, "/healthz", None).await;
    assert_eq!(health.status, 200);
    assert_eq!(health.limit, None, "{health:?}");
}

#[tokio::test]
async fn the_per_user_write_limit_stops_one_user_and_not_another() {
    let sys = System::up_with(&[
        ON,
        ("FORUM_RATE_USER_WRITE_PER_MIN", "1"),
        ("FORUM_RATE_USER_WRITE_BURST", "3"),
    ])
    .await;
    let (ann, _) = sys.register("ann_user").await;
    let (bob, _) = sys.register("bob_user").await;
    let mut refused = None;
    for i in 0..10 {
        let a = post(
            &sys,
            "/api/posts",
            Some(&ann),
            new_post(&format!("ann {i}")),
        )
        .await;
        if a.status == 429 {
            refused = Some((i, a));
            break;
        }
        assert_eq!(a.status, 201, "{a:?}");
        assert_eq!(a.limit, Some(3), "the user's budget is the tighter: {a:?}");
    }
    let (i, a) = refused.expect("ann is refused");
    assert_eq!(i, 3, "ann's fourth write is refused");
    assert_refused(&a, 3);
    // Another user from the same address writes on.
    let b = post(&sys, "/api/posts", Some(&bob), new_post("bob")).await;
    assert_eq!(b.status, 201, "{b:?}");
    assert_eq!(b.remaining, Some(2), "{b:?}");
    // Reads by the limited user go on.
    let read = get(&sys, "/api/posts", Some(&ann)).await;
    assert_eq!(read.status, 200, "{read:?}");
}

async fn categories_from(sys: &System, forwarded_for: &str) -> Answer {
    send(
        sys,
        Req {
            forwarded_for: Some(forwarded_for),
            ..Req::new(Method::GET, "/api/categories")
        },
    )
    .await
}

#[tokio::test]
async fn forwarded_for_from_a_trusted_proxy_gives_each_client_its_own_budget() {
    let sys = System::up_with(&[
        ON,
        ("FORUM_TRUSTED_PROXIES", "127.0.0.1,10.9.0.0/16"),
        ("FORUM_RATE_READ_PER_MIN", "1"),
        ("FORUM_RATE_READ_BURST", "3"),
    ])
    .await;
    for i in 0..3 {
        let a = categories_from(&sys, "198.51.100.1").await;
        assert_eq!(a.status, 200, "read {i}: {a:?}");
    }
    let a = categories_from(&sys, "198.51.100.1").await;
    assert_refused(&a, 3);
    // What the client put in front is ignored: the right-most untrusted
    // address is the client; trusted hops after it are skipped.
    let a = categories_from(&sys, "203.0.113.7, 198.51.100.1, 10.9.1.1").await;
    assert_eq!(a.status, 429, "{a:?}");
    // Another client behind the proxy has its own budget, and so has the
    // proxy itself.
    let b = categories_from(&sys, "198.51.100.2").await;
    assert_eq!(b.status, 200, "{b:?}");
    assert_eq!(b.remaining, Some(2), "{b:?}");
    let proxy = get(&sys, "/api/categories", None).await;
    assert_eq!(proxy.status, 200, "{proxy:?}");
}

#[tokio::test]
async fn forwarded_for_from_an_untrusted_peer_is_ignored() {
    let sys = System::up_with(&[
        ON,
        ("FORUM_RATE_READ_PER_MIN", "1"),
        ("FORUM_RATE_READ_BURST", "3"),
    ])
    .await;
    for (i, xff) in ["198.51.100.1", "198.51.100.2", "198.51.100.3"]
        .iter()
        .enumerate()
    {
        let a = categories_from(&sys, xff).await;
        assert_eq!(a.status, 200, "read {i}: {a:?}");
    }
    let a = categories_from(&sys, "198.51.100.4").await;
    assert_refused(&a, 3);
}

#[tokio::test]
async fn websocket_upgrades_are_limited_per_address() {
    let sys = System::up_with(&[
        ON,
        ("FORUM_RATE_WS_PER_MIN", "1"),
        ("FORUM_RATE_WS_BURST", "2"),
    ])
    .await;
    let (token, _) = sys.register("ann_ws").await;
    let _a = common::ws::try_connect(&sys.base, Some(&token), None)
        .await
        .expect("first socket");
    let _b = common::ws::try_connect(&sys.base, Some(&token), None)
        .await
        .expect("second socket");
    let third = common::ws::try_connect(&sys.base, Some(&token), None).await;
    assert_eq!(third.err(), Some(429));
}

#[tokio::test]
async fn a_request_refused_before_any_work_stores_no_idempotency_key() {
    let sys = System::up_with(&[
        ON,
        ("FORUM_RATE_USER_WRITE_PER_MIN", "1"),
        ("FORUM_RATE_USER_WRITE_BURST", "2"),
    ])
    .await;
    let (ann, _) = sys.register("ann_idem").await;
    let anonymous = send(
        &sys,
        Req {
            body: Some(new_post("no login")),
            key: Some("k-401"),
            ..Req::new(Method::POST, "/api/posts")
        },
    )
    .await;
    assert_eq!(anonymous.status, 401, "{anonymous:?}");
    let wrong_type = send(
        &sys,
        Req {
            token: Some(&ann),
            body: Some(new_post("plain text")),
            key: Some("k-415"),
            content_type: Some("text/plain"),
            ..Req::new(Method::POST, "/api/posts")
        },
    )
    .await;
    assert_eq!(wrong_type.status, 415, "{wrong_type:?}");
    let ok = send(
        &sys,
        Req {
            token: Some(&ann),
            body: Some(new_post("kept")),
            key: Some("k-201"),
            ..Req::new(Method::POST, "/api/posts")
        },
    )
    .await;
    assert_eq!(ok.status, 201, "{ok:?}");
    let limited = send(
        &sys,
        Req {
            token: Some(&ann),
            body: Some(new_post("limited")),
            key: Some("k-429"),
            ..Req::new(Method::POST, "/api/posts")
        },
    )
    .await;
    assert_refused(&limited, 2);
    let pool = sys.pool().await;
    // Only the accepted write's outcome is recorded, by its service; the
    // gateway caches its answer once it is sent.
    let recorded: i64 = sqlx::query_scalar("select count(*) from command.outcomes")
        .fetch_one(&pool)
        .await
        .expect("outcomes");
    assert_eq!(recorded, 1);
    let keys: Vec<String> = eventually(Duration::from_secs(60), "the answer cached", || async {
        let keys: Vec<String> =
            sqlx::query_scalar("select key from gateway.idempotency order by key")
                .fetch_all(&pool)
                .await
                .expect("keys");
        (!keys.is_empty()).then_some(keys)
    })
    .await;
    assert_eq!(keys, ["k-201"]);
}

#[tokio::test]
async fn expired_idempotency_keys_are_swept() {
    let sys = System::up_with(&[("FORUM_IDEMPOTENCY_SWEEP_MS", "100")]).await;
    let pool = sys.pool().await;
    for (key, age) in [("old", "25 hours"), ("fresh", "1 hour")] {
        sqlx::query(
            "insert into gateway.idempotency (scope, key, method, path, status, headers, body, created_at)
             values ($1, $2, 'POST', '/posts', 201, '{}', '', now() - $3::interval)",
        )
        .bind(uuid::Uuid::new_v4())
        .bind(key)
        .bind(age)
        .execute(&pool)
        .await
        .expect("insert");
    }
    eventually(Duration::from_secs(30), "the expired key is swept", || {
        let pool = pool.clone();
        async move {
            let n: i64 =
                sqlx::query_scalar("select count(*) from gateway.idempotency where key = 'old'")
                    .fetch_one(&pool)
                    .await
                    .expect("count");
            (n == 0).then_some(())
        }
    })
    .await;
    let fresh: i64 =
        sqlx::query_scalar("select count(*) from gateway.idempotency where key = 'fresh'")
            .fetch_one(&pool)
            .await
            .expect("count");
    assert_eq!(fresh, 1, "a key younger than 24 hours stays");
}

fn addr(sys: &System) -> String {
    sys.base.trim_start_matches("http://").to_string()
}

/// Reads until the server closes the connection or `within` passes;
/// returns what was read and whether the connection closed.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> (String, bool) {
    let deadline = tokio::time::Instant::now() + within;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return (String::from_utf8_lossy(&got).into_owned(), false),
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&got).into_owned(), true),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// Reads one response with a `Content-Length`, within `within`.
async fn read_response(stream: &mut TcpStream, within: Duration) -> Option<String> {
    let deadline = tokio::time::Instant::now() + within;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some(head_end) = text.find("\r\n\r\n") {
            let length = text[..head_end]
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if got.len() >= head_end + 4 + length {
                return Some(text);
            }
        }
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
            _ => return None,
        }
    }
}

#[tokio::test]
async fn a_client_that_stalls_in_its_headers_is_disconnected_within_the_header_timeout() {
    let sys = System::up_with(&[("FORUM_HEADER_TIMEOUT_MS", "500")]).await;
    // A whole request is answered.
    let mut whole = TcpStream::connect(addr(&sys)).await.expect("connect");
    whole
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .expect("write");
    let answer = read_response(&mut whole, Duration::from_secs(10))
        .await
        .expect("an answer");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // Half a request, then silence.
    let started = Instant::now();
    let mut slow = TcpStream::connect(addr(&sys)).await.expect("connect");
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\nX-Slow: ")
        .await
        .expect("write");
    let (got, closed) = read_until_closed(&mut slow, Duration::from_secs(15)).await;
    assert!(closed, "the stalled connection is still open after 15 s");
    assert!(!got.contains(" 200 "), "{got}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "closed only after {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_body_that_does_not_arrive_in_time_is_a_request_timeout() {
    let sys = System::up_with(&[("FORUM_BODY_TIMEOUT_MS", "500")]).await;
    let mut slow = TcpStream::connect(addr(&sys)).await.expect("connect");
    slow.write_all(
        b"POST /api/auth/login HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"login\":",
    )
    .await
    .expect("write");
    let (got, closed) = read_until_closed(&mut slow, Duration::from_secs(15)).await;
    assert!(got.starts_with("HTTP/1.1 408"), "{got}");
    assert!(got.contains("request_timeout"), "{got}");
    assert!(closed, "the connection closes after a 408");
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed() {
    let sys = System::up_with(&[("FORUM_IDLE_TIMEOUT_MS", "300")]).await;
    let mut conn = TcpStream::connect(addr(&sys)).await.expect("connect");
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .expect("write");
    let answer = read_response(&mut conn, Duration::from_secs(10))
        .await
        .expect("an answer");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let (_, closed) = read_until_closed(&mut conn, Duration::from_secs(8)).await;
    assert!(closed, "an idle connection stays open");
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_until_one_closes() {
    let sys = System::up_with(&[
        ("FORUM_MAX_CONNECTIONS", "2"),
        ("FORUM_HEADER_TIMEOUT_MS", "60000"),
        ("FORUM_IDLE_TIMEOUT_MS", "60000"),
    ])
    .await;
    let request = b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n";
    let mut first = TcpStream::connect(addr(&sys)).await.expect("connect");
    first.write_all(request).await.expect("write");
    assert!(read_response(&mut first, Duration::from_secs(10))
        .await
        .is_some());
    let mut second = TcpStream::connect(addr(&sys)).await.expect("connect");
    second.write_all(request).await.expect("write");
    assert!(read_response(&mut second, Duration::from_secs(10))
        .await
        .is_some());
    // Both places are taken (the connections are kept alive): a third
    // connection waits in the backlog.
    let mut third = TcpStream::connect(addr(&sys)).await.expect("connect");
    third.write_all(request).await.expect("write");
    assert!(
        read_response(&mut third, Duration::from_millis(500))
            .await
            .is_none(),
        "a third connection was served beyond the cap"
    );
    drop(first);
    let answer = read_response(&mut third, Duration::from_secs(10))
        .await
        .expect("served once a place is free");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

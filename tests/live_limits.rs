//! The live feed's limits end to end (API.md, "Details that clients rely
//! on"): sockets per user, typing frames per second, the `Origin` of
//! cookie-authenticated upgrades, the session's expiry, the write deadline,
//! and a resume that never holds more than the socket's queue.

mod common;

use std::time::{Duration, Instant};

use common::ws::{connect, try_connect, Ws, FRAME_WAIT};
use common::{eventually, System};
use futures::StreamExt;
use serde_json::{json, Value};

const QUIET: Duration = Duration::from_millis(300);

/// A post body of about 60 KB (20,000 three-byte characters: the most a
/// post may hold, just under the 64 KiB body limit).
fn big_content() -> String {
    "€".repeat(20_000)
}

async fn create_post(sys: &System, token: &str, title: &str, content: &str) -> String {
    let (status, body) = sys
        .post(
            "/api/posts",
            Some(token),
            json!({"title": title, "content": content, "categories": ["general"]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().expect("id").to_string()
}

async fn metric(sys: &System, name: &str) -> u64 {
    sys.metric(name)
        .await
        .unwrap_or_else(|| panic!("{name} in /metrics")) as u64
}

async fn open_with(base: &str, headers: &[(&'static str, String)]) -> Result<Ws, u16> {
    common::ws::try_connect_with(base, None, headers).await
}

/// Sends a well-formed upgrade request that the gateway is expected to
/// refuse; returns its status, `Retry-After` and JSON body.
async fn refused_upgrade(
    sys: &System,
    headers: &[(&'static str, String)],
) -> (u16, Option<String>, Value) {
    let mut req = sys
        .http
        .get(sys.url("/api/ws"))
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==");
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let resp = tokio::time::timeout(FRAME_WAIT, req.send())
        .await
        .expect("an answer in time")
        .expect("request");
    let status = resp.status().as_u16();
    assert_ne!(status, 101, "the upgrade was accepted");
    let retry_after = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().expect("ASCII").to_string());
    let text = tokio::time::timeout(FRAME_WAIT, resp.text())
        .await
        .expect("a body in time")
        .expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, retry_after, body)
}

fn bearer(token: &str) -> (&'static str, String) {
    ("authorization", format!("Bearer {token}"))
}

fn cookie(token: &str) -> (&'static str, String) {
    ("cookie", format!("theme=dark; session={token}"))
}

fn origin(o: &str) -> (&'static str, String) {
    ("origin", o.to_string())
}

async fn login(sys: &System, nickname: &str) -> String {
    sys.login(nickname).await
}

#[tokio::test]
async fn the_seventeenth_socket_of_a_user_is_refused_with_429_before_the_upgrade() {
    let sys = System::up().await;
    let (ann, _) = sys.register("ann").await;
    let (bob, _) = sys.register("bob").await;
    // The limit is the user's, whichever session opens the sockets.
    let ann2 = login(&sys, "ann").await;
    let mut sockets = Vec::new();
    for i in 0..16 {
        let token = if i % 2 == 0 { &ann } else { &ann2 };
        sockets.push(connect(&sys.base, token, None).await);
    }
    for token in [&ann, &ann2] {
        let (status, retry_after, body) = refused_upgrade(&sys, &[bearer(token)]).await;
        assert_eq!(status, 429, "{body}");
        assert_eq!(body["error"]["code"], "rate_limited", "{body}");
        assert!(body["error"]["message"].is_string(), "{body}");
        let secs: u64 = retry_after
            .expect("Retry-After")
            .parse()
            .expect("whole seconds");
        assert!(secs >= 1);
        assert_eq!(
            try_connect(&sys.base, Some(token), None).await.err(),
            Some(429)
        );
    }
    // Refused before the upgrade: nothing was opened for them.
    assert_eq!(metric(&sys, "forum_ws_open").await, 16);
    // Another user is not affected.
    let _b = connect(&sys.base, &bob, None).await;
    // Once one of Ann's sockets has closed, she may open one again.
    let mut first = sockets.remove(0);
    first.stream.close(None).await.expect("close");
    let deadline = Instant::now() + FRAME_WAIT;
    while first.stream.next().await.is_some() {
        assert!(Instant::now() < deadline, "the close handshake ended");
    }
    let again = eventually(FRAME_WAIT, "a free place for ann", || {
        let (base, ann) = (sys.base.clone(), ann.clone());
        async move { try_connect(&base, Some(&ann), None).await.ok() }
    })
    .await;
    assert_eq!(again.hello["type"], "hello");
    assert_eq!(
        try_connect(&sys.base, Some(&ann), None).await.err(),
        Some(429),
        "full again"
    );
}

#[tokio::test]
async fn the_sixth_typing_frame_within_a_second_gets_a_rate_limited_error_and_the_socket_stays_open(
) {
    let sys = System::up().await;
    let (ann, _) = sys.register("ann").await;
    let (bob, bob_id) = sys.register("bob").await;
    let (cid, cid_id) = sys.register("cid").await;
    let mut a = connect(&sys.base, &ann, None).await;
    let mut b = connect(&sys.base, &bob, None).await;
    let mut c = connect(&sys.base, &cid, None).await;
    // Five changes to Bob (each one a typing frame for him), then a sixth
    // frame, to Cid, in the same instant.
    let actives = [true, false, true, false, true];
    for active in actives {
        a.send(&json!({"type": "typing", "to": bob_id, "active": active}).to_string())
            .await;
    }
    a.send(&json!({"type": "typing", "to": cid_id, "active": true}).to_string())
        .await;
    let e = a.expect("error", FRAME_WAIT).await;
    assert_eq!(e["data"]["code"], "rate_limited", "{e}");
    assert!(e["data"]["message"].is_string(), "{e}");
    for active in actives {
        let t = b.expect("typing", FRAME_WAIT).await;
        assert_eq!(t["data"]["active"], active, "{t}");
    }
    while let Some(f) = b.next_any(QUIET).await {
        assert_ne!(f["type"], "typing", "at most five reach Bob: {f}");
    }
    // The socket is still open and served; the dropped frame never
    // reached Cid.
    let id = create_post(&sys, &bob, "after typing", "c").await;
    let f = a.next(FRAME_WAIT).await.expect("post.new");
    assert_eq!(f["type"], "post.new", "{f}");
    assert_eq!(f["data"]["id"], id.as_str());
    loop {
        let f = c.next_any(FRAME_WAIT).await.expect("post.new");
        assert_ne!(f["type"], "typing", "nothing typed to Cid: {f}");
        if f["type"] == "post.new" {
            break;
        }
    }
    // A second later typing goes through again.
    let mut through = false;
    for _ in 0..100 {
        a.send(&json!({"type": "typing", "to": cid_id, "active": true}).to_string())
            .await;
        if let Some(t) = c.next_any(QUIET).await {
            if t["type"] == "typing" {
                assert_eq!(t["data"]["active"], true, "{t}");
                through = true;
                break;
            }
        }
    }
    assert!(through, "typing never went through again");
}

#[tokio::test]
async fn a_cookie_upgrade_from_a_foreign_origin_is_403_and_from_its_own_or_an_allowed_one_succeeds()
{
    let sys = System::up_with(&[(
        "FORUM_ALLOWED_ORIGINS",
        "https://app.example, http://localhost:3000",
    )])
    .await;
    let (ann, ann_id) = sys.register("ann").await;
    let port = sys.base.rsplit(':').next().expect("port");
    for foreign in [
        "https://evil.example",
        "null",
        "http://app.example",
        &format!(
            "http://127.0.0.1:{}",
            port.parse::<u16>().expect("port") ^ 1
        ),
    ] {
        let (status, _, body) = refused_upgrade(&sys, &[cookie(&ann), origin(foreign)]).await;
        assert_eq!(status, 403, "{foreign}: {body}");
        assert_eq!(body["error"]["code"], "forbidden", "{body}");
        assert!(body["error"]["message"].is_string(), "{body}");
        assert_eq!(
            open_with(&sys.base, &[cookie(&ann), origin(foreign)])
                .await
                .err(),
            Some(403)
        );
    }
    for allowed in [
        "https://app.example",
        "http://localhost:3000",
        sys.base.as_str(),
    ] {
        let ws = open_with(&sys.base, &[cookie(&ann), origin(allowed)])
            .await
            .unwrap_or_else(|s| panic!("{allowed}: refused with {s}"));
        assert_eq!(ws.hello["data"]["user_id"], ann_id.as_str());
    }
    // No Origin: not a browser, accepted.
    open_with(&sys.base, &[cookie(&ann)])
        .await
        .expect("a cookie upgrade without Origin");
    // The bearer token is not origin-checked.
    open_with(&sys.base, &[bearer(&ann), origin("https://evil.example")])
        .await
        .expect("a bearer upgrade from a foreign origin");
    // The check comes after authentication: no session is still 401.
    assert_eq!(
        open_with(&sys.base, &[origin("https://evil.example")])
            .await
            .err(),
        Some(401)
    );
}

#[tokio::test]
async fn a_socket_whose_session_expires_is_closed_with_4001() {
    let sys = System::up_with(&[("FORUM_SESSION_TTL_SECS", "4")]).await;
    let (ann, _) = sys.register("ann").await;
    let started = Instant::now();
    let mut a = try_connect(&sys.base, Some(&ann), None)
        .await
        .unwrap_or_else(|s| panic!("refused with {s}: the 4 s session ran out before the upgrade"));
    let mut c = open_with(&sys.base, &[cookie(&ann)])
        .await
        .expect("cookie socket");
    // Reading answers the pings, so only the expiry can close them.
    assert_eq!(a.closed(Duration::from_secs(60)).await, Some(4001));
    assert_eq!(c.closed(Duration::from_secs(60)).await, Some(4001));
    assert!(started.elapsed() < Duration::from_secs(60));
    assert_eq!(
        try_connect(&sys.base, Some(&ann), None).await.err(),
        Some(401)
    );
}

#[tokio::test]
async fn a_client_that_does_not_read_its_frames_is_closed_with_4008_at_the_write_deadline() {
    // The queue holds more frames than the test ever sends: only the write
    // deadline can close the socket.
    const MAX_POSTS: usize = 200;
    let sys = System::up_with(&[
        ("FORUM_WS_QUEUE", "256"),
        ("FORUM_WS_WRITE_TIMEOUT_MS", "300"),
    ])
    .await;
    let (ann, _) = sys.register("ann").await;
    let (bob, _) = sys.register("bob").await;
    let mut stuck = common::ws::connect_small_buffer(&sys.base, &ann).await;
    let mut fast = connect(&sys.base, &bob, None).await;
    let big = big_content();
    let mut closed = false;
    for i in 0..MAX_POSTS {
        create_post(&sys, &bob, &format!("big {i}"), &big).await;
        let f = fast
            .next(FRAME_WAIT)
            .await
            .expect("the reading socket's frame");
        assert_eq!(f["type"], "post.new");
        // A counter appears with its first increment.
        let slow_closes = sys.metric("forum_ws_closes_total{code=\"4008\"}").await;
        if slow_closes.is_some_and(|n| n > 0.0) {
            closed = true;
            break;
        }
    }
    assert!(closed, "no close after {MAX_POSTS} big posts");
    assert_eq!(stuck.closed(FRAME_WAIT).await, Some(4008));
    // The reading socket is still served.
    let id = create_post(&sys, &bob, "after", "c").await;
    let f = fast.next(FRAME_WAIT).await.expect("post.new");
    assert_eq!(f["data"]["id"], id.as_str());
}

/// The process of this system's `forum up` (found by its `FORUM_PREFIX`).
fn system_pid(sys: &System) -> Option<u32> {
    let wanted = format!("FORUM_PREFIX={}", sys.prefix);
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let environ = std::fs::read(entry.path().join("environ")).ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let ours = environ.split(|b| *b == 0).any(|v| v == wanted.as_bytes());
            let up = cmdline.split(|b| *b == 0).any(|a| a == b"up");
            (ours && up).then_some(pid)
        })
}

/// A `/proc/<pid>/status` field in KiB.
fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| {
        l.strip_prefix(field)?
            .strip_prefix(':')?
            .trim()
            .strip_suffix("kB")?
            .trim()
            .parse()
            .ok()
    })
}

#[tokio::test]
async fn a_resume_of_many_large_events_through_a_small_queue_arrives_whole_in_order_then_live() {
    const BIG: usize = 300;
    const LIVE: usize = 10;
    let sys = System::up_with(&[("FORUM_WS_QUEUE", "4")]).await;
    let (ann, _) = sys.register("ann").await;
    let (bob, _) = sys.register("bob").await;
    let a = connect(&sys.base, &ann, None).await;
    let cursor = a.hello_cursor();
    drop(a);
    let big = big_content();
    let mut expected = Vec::with_capacity(BIG + LIVE);
    for i in 0..BIG {
        expected.push(create_post(&sys, &bob, &format!("big {i}"), &big).await);
    }
    let pid = system_pid(&sys);
    let peak_before = pid.and_then(|p| status_kib(p, "VmHWM"));
    let mut a = connect(&sys.base, &ann, Some(&cursor)).await;
    assert_eq!(a.hello["data"]["resumed"], true);
    let mut got = Vec::with_capacity(BIG + LIVE);
    let mut cursors = std::collections::HashSet::new();
    let mut live = None;
    let mut last = String::new();
    while got.len() < BIG + LIVE {
        let f = a
            .next(FRAME_WAIT)
            .await
            .unwrap_or_else(|| panic!("only {} of {} frames arrived", got.len(), BIG + LIVE));
        assert_eq!(f["type"], "post.new", "{}", f["type"]);
        if got.len() < BIG {
            assert_eq!(
                f["data"]["content"].as_str().map(str::len),
                Some(big.len()),
                "whole"
            );
        }
        last = f["cursor"].as_str().expect("cursor").to_string();
        assert!(cursors.insert(last.clone()), "each frame its own cursor");
        got.push(f["data"]["id"].as_str().expect("id").to_string());
        if got.len() == 10 {
            // New posts while the resume is under way.
            let (http, base, bob) = (sys.http.clone(), sys.base.clone(), bob.clone());
            live = Some(tokio::spawn(async move {
                let mut ids = Vec::new();
                for i in 0..LIVE {
                    let (status, body) = common::call_at(
                        &http,
                        &base,
                        reqwest::Method::POST,
                        "/api/posts",
                        Some(&bob),
                        Some(json!({"title": format!("live {i}"), "content": "c",
                                    "categories": ["general"]})),
                    )
                    .await;
                    assert_eq!(status, 201, "{body}");
                    ids.push(body["id"].as_str().expect("id").to_string());
                }
                ids
            }));
        }
    }
    let live = live.expect("started").await.expect("live posts");
    expected.extend(live);
    assert_eq!(got, expected, "every event once, in order");
    assert_eq!(a.next(QUIET).await, None, "no duplicate");
    let peak_after = pid.and_then(|p| status_kib(p, "VmHWM"));
    if let (Some(before), Some(after)) = (peak_before, peak_after) {
        // Holding the whole resume would take more than the posts' size
        // (their events and their frames); the queue holds four.
        let total_kib = (BIG * big.len() / 1024) as u64;
        eprintln!("peak RSS {before} KiB -> {after} KiB for {total_kib} KiB replayed");
        assert!(
            after.saturating_sub(before) < total_kib / 2,
            "peak RSS grew from {before} to {after} KiB replaying {total_kib} KiB"
        );
    } else {
        eprintln!("no /proc for the system's process: memory not measured");
    }
    // The last cursor resumes with nothing left to replay.
    drop(a);
    let mut again = connect(&sys.base, &ann, Some(&last)).await;
    assert_eq!(again.hello["data"]["resumed"], true);
    assert_eq!(
        again.next(QUIET).await,
        None,
        "nothing after the last cursor"
    );
}

//! What an operator sees, end to end against the real binary: every role's
//! `/metrics` during a small load, one request id followed from the HTTP
//! answer to the logs of the service and the projector that applied its
//! event, and the spans exported over OTLP with that id as their trace.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::ws::{connect, FRAME_WAIT};
use common::{append_posts, eventually, undecodable_event, until, Observed, System};
use reqwest::Method;
use serde_json::json;
use uuid::Uuid;

/// How long a test waits for the system to get somewhere.
const WITHIN: Duration = Duration::from_secs(60);

/// The samples of a text exposition: (series name, labels, value).
fn samples(text: &str) -> Vec<(String, String, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (name, labels) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            Some((name.to_string(), labels.to_string(), value.parse().ok()?))
        })
        .collect()
}

async fn scrape(http: &reqwest::Client, base: &str) -> String {
    let resp = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("scrape");
    assert_eq!(resp.status().as_u16(), 200);
    let kind = resp.headers()["content-type"]
        .to_str()
        .unwrap_or_default()
        .to_string();
    assert!(kind.starts_with("text/plain"), "{kind}");
    resp.text().await.expect("metrics text")
}

/// The families of `required` that have no sample above zero (`present`:
/// no sample at all) in `text`; a histogram is named by its `_count`.
fn missing(text: &str, required: &[&str], present: &[&str]) -> Vec<String> {
    let samples = samples(text);
    let has = |family: &str, positive: bool| {
        samples
            .iter()
            .any(|(n, _, v)| n == family && (!positive || *v > 0.0))
    };
    required
        .iter()
        .filter(|f| !has(f, true))
        .chain(present.iter().filter(|f| !has(f, false)))
        .map(|f| f.to_string())
        .collect()
}

/// Scrapes `base` until every family of `required` has a sample above
/// zero and every one of `present` a sample; panics with what is missing
/// after [`WITHIN`]. Returns the last text.
async fn families(
    http: &reqwest::Client,
    base: &str,
    required: &[&str],
    present: &[&str],
) -> String {
    until(WITHIN, || async {
        let text = scrape(http, base).await;
        let gone = missing(&text, required, present);
        if gone.is_empty() {
            Ok(text)
        } else {
            Err(format!("{base}: no samples of {gone:?} in\n{text}"))
        }
    })
    .await
}

/// Every role reports these.
const PROCESS: [&str; 4] = [
    "forum_build_info",
    "forum_pg_pool_max_connections",
    "forum_nats_connected",
    "forum_nats_connects_total",
];

#[tokio::test(flavor = "multi_thread")]
async fn every_role_serves_each_of_its_metric_families_with_samples_during_a_small_load() {
    let mut sys = System::empty();
    sys.migrate();
    // The read models are left to the projector and the notifications to
    // the deriver, so that those roles have work to report.
    let alone = [("FORUM_INLINE_PROJECTIONS", "false")];
    let mut services: Vec<(&str, Observed)> = Vec::new();
    for name in ["auth", "posts", "chat", "notifications"] {
        services.push((name, sys.spawn_observed(name, &["service", name], &alone)));
    }
    let projector = sys.spawn_observed("projector", &["projector"], &[]);
    let gateway = sys.spawn_observed("gateway", &["gateway", "--listen", "127.0.0.1:0"], &[]);
    sys.base = gateway.listening.clone().expect("gateway address");
    sys.gateways.push(sys.base.clone());

    // A small load touching every role.
    let (ann, _) = sys.register("ann_obs").await;
    let (bob, bob_id) = sys.register("bob_obs").await;
    let mut live = connect(&sys.base, &bob, None).await;
    let cursor = live.hello_cursor();
    let (status, post) = sys
        .post(
            "/api/posts",
            Some(&ann),
            json!({"title": "metrics", "content": "seen", "categories": ["news"]}),
        )
        .await;
    assert_eq!(status, 201, "{post}");
    let pid = post["id"].as_str().expect("post id").to_string();
    live.expect("post.new", FRAME_WAIT).await;
    let comment = json!({"content": "a comment"});
    let path = format!("/api/posts/{pid}/comments");
    for _ in 0..2 {
        // The second is the first's answer again.
        let resp = sys
            .http
            .post(sys.url(&path))
            .bearer_auth(&bob)
            .header("idempotency-key", "obs-comment-1")
            .json(&comment)
            .send()
            .await
            .expect("comment");
        assert_eq!(resp.status().as_u16(), 201);
    }
    let (status, _) = sys
        .call(
            Method::PUT,
            &format!("/api/posts/{pid}/reaction"),
            Some(&bob),
            Some(json!({"reaction": "like"})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = sys
        .post(
            &format!("/api/conversations/{bob_id}/messages"),
            Some(&ann),
            json!({"content": "hello bob"}),
        )
        .await;
    assert_eq!(status, 201);
    eventually(WITHIN, "ann's notifications", || async {
        let (_, body) = sys.get("/api/notifications", Some(&ann)).await;
        (body["items"].as_array().map_or(0, |a| a.len()) >= 2).then_some(())
    })
    .await;
    let (status, _) = sys
        .post("/api/notifications/read", Some(&ann), json!({"all": true}))
        .await;
    assert_eq!(status, 204);
    // Typing past five a second is refused; the socket drops without a
    // close frame, and a resume replays what it missed.
    let ann_id = sys.get("/api/auth/me", Some(&ann)).await.1["id"]
        .as_str()
        .expect("ann id")
        .to_string();
    for i in 0..7 {
        let typing = json!({"type": "typing", "to": ann_id, "active": i % 2 == 0});
        live.send(&typing.to_string()).await;
    }
    let refused = live.expect("error", FRAME_WAIT).await;
    assert_eq!(refused["data"]["code"], "rate_limited", "{refused}");
    drop(live);
    let mut resumed = connect(&sys.base, &bob, Some(&cursor)).await;
    resumed.expect("post.new", FRAME_WAIT).await;
    drop(resumed);

    // Lag: with the posts relay's checkpoint and the posts projection's held
    // by the test, an event appended to the posts log waits, and the
    // relay, the projector and the deriver (nothing is published) report
    // it, in events and seconds, until the test lets go.
    let http = &sys.http;
    let pool = sys.pool().await;
    let mut held = pool.begin().await.expect("begin");
    sqlx::query("select published_position from posts.outbox for update")
        .execute(&mut *held)
        .await
        .expect("hold the relay");
    sqlx::query(
        "select position from proj.checkpoints
         where projection = 'posts' and service = 'posts' for update",
    )
    .execute(&mut *held)
    .await
    .expect("hold the projection");
    append_posts(&pool, vec![undecodable_event()]).await;
    let posts_metrics = &services[1].1.metrics;
    let notifications_metrics = &services[3].1.metrics;
    for (base, series) in [
        (posts_metrics, "forum_relay_lag_events{service=\"posts\"}"),
        (posts_metrics, "forum_relay_lag_seconds{service=\"posts\"}"),
        (
            &projector.metrics,
            "forum_projection_lag_events{projection=\"posts\",source=\"posts\"}",
        ),
        (
            &projector.metrics,
            "forum_projection_lag_seconds{projection=\"posts\",source=\"posts\"}",
        ),
        (
            notifications_metrics,
            "forum_deriver_lag_events{source=\"posts\"}",
        ),
        (
            notifications_metrics,
            "forum_deriver_lag_seconds{source=\"posts\"}",
        ),
    ] {
        // Scrapes within a second of each other share one read.
        until(WITHIN, || async {
            let text = scrape(http, base).await;
            let value = text
                .lines()
                .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
                .and_then(|v| v.trim().parse::<f64>().ok());
            match value {
                Some(v) if v > 0.0 => Ok(()),
                _ => Err(format!("{series} in\n{text}")),
            }
        })
        .await;
    }
    held.rollback().await.expect("let go");

    let gateway_families = [
        "forum_http_requests_total",
        "forum_http_request_duration_seconds_count",
        "forum_rate_limited_total",
        "forum_idempotent_replays_total",
        "forum_bus_commands_total",
        "forum_bus_command_duration_seconds_count",
        "forum_ws_frames_sent_total",
        "forum_ws_closes_total",
        "forum_ws_resume_frames_count",
        "forum_poison_events",
    ];
    let text = families(
        http,
        &sys.base,
        &[&gateway_families[..], &PROCESS[..]].concat(),
        &["forum_ws_open", "forum_pg_pool_connections"],
    )
    .await;
    assert!(
        text.contains("route=\"/api/posts/{id}/comments\""),
        "requests are labelled by route template"
    );
    assert!(text.contains("forum_rate_limited_total{limit=\"typing\"}"));
    // The separate listener serves the same families as the gateway's port.
    let own = scrape(http, &gateway.metrics).await;
    assert!(missing(&own, &gateway_families[..2], &[]).is_empty());

    for (name, observed) in &services {
        let mut required = vec![
            "forum_commands_total",
            "forum_command_duration_seconds_count",
            "forum_batch_commands_count",
            "forum_batch_duration_seconds_count",
            "forum_appends_total",
            "forum_appended_events_total",
            "forum_group_commit_events_count",
            "forum_relay_published_total",
        ];
        required.extend(PROCESS);
        let mut present = vec!["forum_relay_lag_events", "forum_relay_lag_seconds"];
        if *name == "notifications" {
            required.push("forum_deriver_derived_total");
            present.extend(["forum_deriver_lag_events", "forum_deriver_lag_seconds"]);
        }
        let text = families(http, &observed.metrics, &required, &present).await;
        assert!(
            text.contains(&format!("forum_relay_lag_events{{service=\"{name}\"}}")),
            "{name}: {text}"
        );
    }

    let mut required = vec![
        "forum_projection_applied_events_total",
        "forum_projection_parked_total",
        "forum_poison_events",
    ];
    required.extend(PROCESS);
    let present = [
        "forum_projection_lag_events",
        "forum_projection_lag_seconds",
    ];
    let text = families(http, &projector.metrics, &required, &present).await;
    assert!(
        text.contains("forum_projection_parked_total{projection=\"posts\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("forum_projection_lag_events{projection=\"posts\",source=\"posts\"}"),
        "{text}"
    );
}

/// Creates a post with the request id `id`; its answer must be `201`.
async fn create_post_with_id(
    sys: &System,
    token: &str,
    id: Uuid,
    title: &str,
) -> reqwest::Response {
    let resp = sys
        .http
        .post(sys.url("/api/posts"))
        .bearer_auth(token)
        .header("x-request-id", id.to_string())
        .json(&json!({"title": title, "content": "follow me", "categories": ["news"]}))
        .send()
        .await
        .expect("create post");
    assert_eq!(resp.status().as_u16(), 201);
    resp
}

/// The first line of `role`'s log that holds `what` and the correlation id
/// `id`; panics with the whole log when none comes within [`WITHIN`].
async fn line_of(role: &Observed, id: Uuid, what: &str) -> String {
    let field = format!("correlation_id={id}");
    until(WITHIN, || async {
        let log = role.log();
        match log.lines().find(|l| l.contains(&field) && l.contains(what)) {
            Some(line) => Ok(line.to_string()),
            None => Err(format!("no line with {what} and {field} in:\n{log}")),
        }
    })
    .await
}

/// The debug logs that carry correlation ids, and little else.
const TRACE_LOG: &str =
    "warn,forum_gateway=debug,forum_commands::runtime=trace,forum::follow=debug";

#[tokio::test(flavor = "multi_thread")]
async fn one_request_id_is_followed_from_the_answer_to_the_service_and_projector_logs() {
    let mut sys = System::empty();
    sys.migrate();
    let logged = [
        ("RUST_LOG", TRACE_LOG),
        ("FORUM_INLINE_PROJECTIONS", "false"),
    ];
    sys.spawn("auth", &["service", "auth"], &[]);
    let posts = sys.spawn_observed("posts", &["service", "posts"], &logged);
    let projector = sys.spawn_observed("projector", &["projector"], &logged);
    let gateway = sys.spawn_observed("gateway", &["gateway", "--listen", "127.0.0.1:0"], &logged);
    sys.base = gateway.listening.clone().expect("gateway address");
    let (ann, _) = sys.register("ann_trace").await;

    let id = Uuid::now_v7();
    let resp = create_post_with_id(&sys, &ann, id, "traced").await;
    assert_eq!(
        resp.headers()["x-request-id"].to_str().ok(),
        Some(id.to_string().as_str())
    );
    let answered = line_of(&gateway, id, "answered").await;
    assert!(answered.contains("status=201"), "{answered}");
    let decided = line_of(&posts, id, "answered").await;
    assert!(decided.contains("command=create_post"), "{decided}");
    // A target's trace level is logged too (the steps of each batch).
    assert!(
        posts
            .log()
            .lines()
            .any(|l| l.contains("TRACE") && l.contains("batch transaction")),
        "{}",
        posts.log()
    );
    assert!(decided.contains("outcome=\"accepted\""), "{decided}");
    let applied = line_of(&projector, id, "applied").await;
    assert!(applied.contains("event_type=post_created"), "{applied}");
    assert!(
        applied.contains("follower=\"posts\"") || applied.contains("follower=posts"),
        "{applied}"
    );

    // A proxy's id that is not a UUID is echoed, and logged beside the
    // correlation id it stands for.
    let proxied = "nginx-7f3a9c0d2b";
    let resp = sys
        .http
        .get(sys.url("/api/posts"))
        .header("x-request-id", proxied)
        .send()
        .await
        .expect("list posts");
    assert_eq!(resp.headers()["x-request-id"].to_str().ok(), Some(proxied));
    let correlation = Uuid::new_v5(&Uuid::NAMESPACE_OID, proxied.as_bytes());
    let line = line_of(&gateway, correlation, "answered").await;
    assert!(line.contains(&format!("request_id={proxied}")), "{line}");
    // None, or one that is not an id (too long, spaces), gets a new UUID.
    let long = "x".repeat(129);
    for given in [None, Some("two words"), Some(long.as_str())] {
        let mut req = sys.http.get(sys.url("/api/posts"));
        if let Some(v) = given {
            req = req.header("x-request-id", v);
        }
        let resp = req.send().await.expect("list posts");
        let echoed = resp.headers()["x-request-id"]
            .to_str()
            .expect("id")
            .to_string();
        assert!(Uuid::parse_str(&echoed).is_ok(), "{echoed}");
    }
}

/// Collects the bodies of OTLP/HTTP export requests on a loopback port.
async fn collector() -> (String, Arc<Mutex<Vec<Vec<u8>>>>) {
    use axum::body::Bytes;
    use axum::routing::post;
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let kept = bodies.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        post(move |body: Bytes| {
            let kept = kept.clone();
            async move {
                kept.lock().expect("bodies").push(body.to_vec());
                (
                    [("content-type", "application/x-protobuf")],
                    Vec::<u8>::new(),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind collector");
    let addr = listener.local_addr().expect("collector address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), bodies)
}

#[tokio::test(flavor = "multi_thread")]
async fn with_an_otlp_endpoint_every_span_of_a_write_is_exported_under_its_request_id() {
    let (endpoint, bodies) = collector().await;
    let sys = System::up_with(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ("FORUM_INLINE_PROJECTIONS", "false"),
    ])
    .await;
    let (ann, _) = sys.register("ann_otlp").await;
    let id = Uuid::now_v7();
    create_post_with_id(&sys, &ann, id, "exported").await;
    // The trace id is the request id's 16 bytes, in the gateway's `http`
    // span, the service's `command` span and the projector's `follow` span.
    let trace = id.into_bytes();
    eventually(WITHIN, "the write's spans at the collector", || async {
        let bodies = bodies.lock().expect("bodies");
        let with_trace: Vec<&Vec<u8>> = bodies
            .iter()
            .filter(|b| b.windows(16).any(|w| w == trace))
            .collect();
        let names = ["http", "command", "follow"];
        names
            .iter()
            .all(|n| {
                with_trace
                    .iter()
                    .any(|b| b.windows(n.len()).any(|w| w == n.as_bytes()))
            })
            .then_some(())
    })
    .await;
}

#[test]
fn forum_migrate_reports_its_steps_as_plain_lines_when_not_on_a_terminal() {
    let sys = System::empty();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_forum"))
        .arg("migrate")
        .env("FORUM_DATABASE_URL", &sys.db_url)
        .env("FORUM_NATS_URL", common::NATS_URL)
        .env("FORUM_PREFIX", &sys.prefix)
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run forum migrate");
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("migrate: ")).collect();
    let first = lines.first().expect("a first progress line");
    let last = lines.last().expect("a last progress line");
    assert!(
        first.starts_with("migrate: 0/") && first.ends_with(", the database"),
        "{err}"
    );
    let total = first["migrate: 0/".len()..]
        .split(' ')
        .next()
        .expect("total");
    assert!(
        last.starts_with(&format!("migrate: {total}/{total} steps")),
        "{err}"
    );
    assert!(last.ends_with(", done"), "{err}");
    assert!(!err.contains('\r') && !err.contains('\x1b'), "{err}");
}

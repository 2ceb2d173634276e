//! Exactly once, end to end: a write retried with its `Idempotency-Key`
//! takes effect once and gets the first outcome, whatever happened to the
//! first attempt: a service killed after its commit and before its reply,
//! a client that dropped its connection, a `503` from a stalled read model,
//! a `503` while NATS restarts, a retry sent to another gateway, the same
//! key used for another request or with another service.

mod common;

use std::time::Duration;

use common::{eventually, registration, System};
use serde_json::{json, Value};

/// Sends `POST path` with `body` and `key` to `base`; (status, JSON body).
async fn keyed(
    sys: &System,
    base: &str,
    path: &str,
    token: Option<&str>,
    key: &str,
    body: &Value,
) -> (u16, Value) {
    let mut req = sys
        .http
        .post(format!("{base}{path}"))
        .header("idempotency-key", key)
        .json(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn post_body(title: &str) -> Value {
    json!({"title": title, "content": format!("content of {title}"), "categories": ["general"]})
}

/// The ids of the posts created in the posts log, in order.
async fn created_posts(pool: &sqlx::PgPool) -> Vec<uuid::Uuid> {
    sqlx::query_scalar(
        "select stream_id from posts.events where event_type = 'post_created' order by position",
    )
    .fetch_all(pool)
    .await
    .expect("posts log")
}

/// Holds an exclusive lock on the posts read model until dropped (rolled
/// back): its projector cannot apply anything, so a write's answer waits
/// for it.
async fn stall_posts_read_model(pool: &sqlx::PgPool) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let mut tx = pool.begin().await.expect("begin");
    sqlx::query("lock table read.posts in access exclusive mode")
        .execute(&mut *tx)
        .await
        .expect("lock the read model");
    tx
}

#[tokio::test]
async fn a_write_whose_service_died_after_its_commit_is_answered_to_its_retry_and_made_once() {
    let mut sys = System::empty();
    sys.migrate();
    sys.spawn("projector", &["projector"], &[]);
    for service in ["auth", "chat", "notifications"] {
        sys.spawn(service, &["service", service], &[]);
    }
    sys.spawn(
        "posts-crashing",
        &["service", "posts"],
        &[("FORUM_TEST_ABORT_AFTER_COMMIT", "true")],
    );
    // The first gateway (the harness's `base`, registrations included) has
    // the tests' patient timeouts; the second gives up on a command after
    // 3 s: the first attempt's answer is a 503.
    let patient = sys.spawn_gateway(&[]);
    let quick = sys.spawn_gateway(&[("FORUM_COMMAND_TIMEOUT_MS", "3000")]);
    let (token, _) = sys.register("survivor").await;
    let body = post_body("committed once");
    let (status, first) = keyed(&sys, &quick, "/api/posts", Some(&token), "crash-1", &body).await;
    assert_eq!(status, 503, "the service died before answering: {first}");
    assert!(
        sys.wait_exit("posts-crashing", Duration::from_secs(60)),
        "the service aborted"
    );
    let pool = sys.pool().await;
    let committed = created_posts(&pool).await;
    assert_eq!(committed.len(), 1, "the first attempt committed");
    // A new instance; the retry goes through the other gateway.
    sys.spawn("posts", &["service", "posts"], &[]);
    let (status, post) = keyed(&sys, &patient, "/api/posts", Some(&token), "crash-1", &body).await;
    assert_eq!(status, 201, "{post}");
    assert_eq!(post["id"], json!(committed[0]), "the first attempt's post");
    assert_eq!(post["title"], json!("committed once"));
    assert_eq!(
        created_posts(&pool).await,
        committed,
        "nothing written twice"
    );
    // And once more, through the first gateway: the same answer.
    let (status, again) = keyed(&sys, &quick, "/api/posts", Some(&token), "crash-1", &body).await;
    assert_eq!((status, again), (201, post));
}

#[tokio::test]
async fn a_write_answered_503_by_a_stalled_read_model_is_not_made_again_by_its_retry() {
    let mut sys = System::up().await;
    // A second gateway that waits for the read models 1 s only.
    let impatient = sys.spawn_gateway(&[("FORUM_READ_TIMEOUT_MS", "1000")]);
    let (token, _) = sys.register("stalled").await;
    let pool = sys.pool().await;
    let body = post_body("answered late");
    let lock = stall_posts_read_model(&pool).await;
    let (status, first) = keyed(
        &sys,
        &impatient,
        "/api/posts",
        Some(&token),
        "stall-1",
        &body,
    )
    .await;
    assert_eq!(status, 503, "{first}");
    assert_eq!(first["error"]["code"], json!("unavailable"));
    let committed = created_posts(&pool).await;
    assert_eq!(committed.len(), 1, "the write committed before the 503");
    lock.rollback().await.expect("release the read model");
    // The retry, on the other gateway: the first write, answered now.
    let base = sys.base.clone();
    let (status, post) = keyed(&sys, &base, "/api/posts", Some(&token), "stall-1", &body).await;
    assert_eq!(status, 201, "{post}");
    assert_eq!(post["id"], json!(committed[0]));
    let (status, again) = keyed(
        &sys,
        &impatient,
        "/api/posts",
        Some(&token),
        "stall-1",
        &body,
    )
    .await;
    assert_eq!((status, again), (201, post.clone()));
    assert_eq!(created_posts(&pool).await, committed);
    let (_, list) = sys.get("/api/posts", None).await;
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1), "{list}");
}

#[tokio::test]
async fn a_client_that_dropped_its_connection_gets_the_first_outcome_on_retry() {
    let sys = System::up().await;
    let (token, _) = sys.register("dropper").await;
    let pool = sys.pool().await;
    let body = post_body("dropped");
    let lock = stall_posts_read_model(&pool).await;
    // The client gives up after 1 s: the gateway is still waiting for the
    // read model, and its handler is dropped with the connection.
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_secs(1))
        .build()
        .expect("client");
    let dropped = impatient
        .post(sys.url("/api/posts"))
        .bearer_auth(&token)
        .header("idempotency-key", "drop-1")
        .json(&body)
        .send()
        .await;
    assert!(dropped.is_err(), "{dropped:?}");
    let committed = eventually(Duration::from_secs(60), "the write committed", || async {
        let posts = created_posts(&pool).await;
        (!posts.is_empty()).then_some(posts)
    })
    .await;
    // A retry while the read model is still stalled waits like any write
    // (never on the dropped attempt), and is answered once it moves.
    let base = sys.base.clone();
    let retry = tokio::spawn({
        let http = sys.http.clone();
        let token = token.clone();
        let body = body.clone();
        async move {
            let resp = http
                .post(format!("{base}/api/posts"))
                .bearer_auth(&token)
                .header("idempotency-key", "drop-1")
                .json(&body)
                .send()
                .await
                .expect("retry");
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.expect("json"))
        }
    });
    lock.rollback().await.expect("release the read model");
    let (status, post) = retry.await.expect("retry task");
    assert_eq!(status, 201, "{post}");
    assert_eq!(post["id"], json!(committed[0]));
    assert_eq!(created_posts(&pool).await, committed);
}

#[tokio::test]
async fn the_same_key_for_another_request_or_another_service_is_a_conflict_and_writes_nothing() {
    let sys = System::up().await;
    let (ann, _) = sys.register("ann").await;
    let (_, bob_id) = sys.register("bob").await;
    let base = sys.base.clone();
    let (status, _) = keyed(&sys, &base, "/api/posts", Some(&ann), "k", &post_body("a")).await;
    assert_eq!(status, 201);
    let pool = sys.pool().await;
    // With the gateways' answer cache, and without it (expired, or never
    // written): the services' records decide alone.
    for cache in ["kept", "lost"] {
        if cache == "lost" {
            eventually(Duration::from_secs(60), "the answer cached", || async {
                let n: i64 = sqlx::query_scalar("select count(*) from gateway.idempotency")
                    .fetch_one(&pool)
                    .await
                    .expect("count");
                (n > 0).then_some(())
            })
            .await;
            sqlx::query("delete from gateway.idempotency")
                .execute(&pool)
                .await
                .expect("forget the cache");
        }
        let (status, body) =
            keyed(&sys, &base, "/api/posts", Some(&ann), "k", &post_body("b")).await;
        assert_eq!(status, 409, "{cache}: {body}");
        assert_eq!(body["error"]["code"], json!("conflict"));
        let (status, body) = keyed(
            &sys,
            &base,
            &format!("/api/conversations/{bob_id}/messages"),
            Some(&ann),
            "k",
            &json!({"content": "hello"}),
        )
        .await;
        assert_eq!(status, 409, "{cache}: {body}");
        // The same request again is still the first answer.
        let (status, _) = keyed(&sys, &base, "/api/posts", Some(&ann), "k", &post_body("a")).await;
        assert_eq!(status, 201, "{cache}");
    }
    assert_eq!(created_posts(&pool).await.len(), 1);
    let messages: i64 = sqlx::query_scalar("select count(*) from chat.events")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(messages, 0);
    // Anonymous keys: bound to the request, never another client's answer,
    // with or without the cache.
    let (status, first) = keyed(
        &sys,
        &base,
        "/api/auth/register",
        None,
        "anon",
        &registration("cyd"),
    )
    .await;
    assert_eq!(status, 201, "{first}");
    sqlx::query("delete from gateway.idempotency")
        .execute(&pool)
        .await
        .expect("forget the cache");
    let (status, other) = keyed(
        &sys,
        &base,
        "/api/auth/register",
        None,
        "anon",
        &registration("dee"),
    )
    .await;
    assert_eq!(status, 409, "{other}");
    assert!(other.get("token").is_none());
    let (status, again) = keyed(
        &sys,
        &base,
        "/api/auth/register",
        None,
        "anon",
        &registration("cyd"),
    )
    .await;
    assert_eq!((status, &again), (201, &first), "the same token too");
}

#[tokio::test]
async fn concurrent_retries_through_two_gateways_make_one_write_and_get_one_answer() {
    let mut sys = System::up().await;
    let other = sys.spawn_gateway(&[]);
    let (token, _) = sys.register("twice").await;
    let base = sys.base.clone();
    let body = post_body("raced");
    let mut tries = Vec::new();
    for i in 0..6 {
        let at = if i % 2 == 0 { &base } else { &other };
        tries.push(keyed(&sys, at, "/api/posts", Some(&token), "race-1", &body));
    }
    let answers = futures::future::join_all(tries).await;
    let pool = sys.pool().await;
    let posts = created_posts(&pool).await;
    assert_eq!(posts.len(), 1, "{answers:?}");
    for (status, post) in &answers {
        assert_eq!(*status, 201, "{post}");
        assert_eq!(post["id"], json!(posts[0]));
    }
}

/// A nats-server with JetStream of this test's own, restartable on the same
/// port and store.
struct OwnNats {
    port: u16,
    dir: std::path::PathBuf,
    child: Option<std::process::Child>,
}

impl OwnNats {
    fn start() -> OwnNats {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let dir =
            std::env::temp_dir().join(format!("forum-once-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("store dir");
        let mut nats = OwnNats {
            port,
            dir,
            child: None,
        };
        nats.run();
        nats
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts the server and waits until it accepts connections.
    fn run(&mut self) {
        // Debian's package puts it in /usr/sbin, not always on PATH.
        let bin = if std::path::Path::new("/usr/sbin/nats-server").exists() {
            "/usr/sbin/nats-server"
        } else {
            "nats-server"
        };
        let child = std::process::Command::new(bin)
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(&self.dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start nats-server");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "nats-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL, and wait for it.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnNats {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn a_write_answered_503_while_nats_restarts_takes_effect_once_with_its_retries() {
    let mut nats = OwnNats::start();
    let url = nats.url();
    let mut sys = System::up_with(&[("FORUM_NATS_URL", &url)]).await;
    // A gateway that gives up on a command after 2 s.
    let quick = sys.spawn_gateway(&[
        ("FORUM_NATS_URL", &url),
        ("FORUM_COMMAND_TIMEOUT_MS", "2000"),
    ]);
    let (token, _) = sys.register("through").await;
    let body = post_body("across a restart");
    nats.kill();
    // The command may sit in a client's buffer and reach the service once
    // NATS is back, after this answer: the retries must not write again.
    let (status, first) = keyed(&sys, &quick, "/api/posts", Some(&token), "nats-1", &body).await;
    assert_eq!(status, 503, "{first}");
    nats.run();
    let base = sys.base.clone();
    let (status, post) = keyed(&sys, &base, "/api/posts", Some(&token), "nats-1", &body).await;
    assert_eq!(status, 201, "{post}");
    let (status, again) = keyed(&sys, &base, "/api/posts", Some(&token), "nats-1", &body).await;
    assert_eq!((status, &again["id"]), (201, &post["id"]), "{again}");
    let pool = sys.pool().await;
    let posts = created_posts(&pool).await;
    assert_eq!(posts.len(), 1, "{posts:?}");
    assert_eq!(post["id"], json!(posts[0]));
}

//! The mechanisms under the API: the event log, the outbox, projections,
//! the command bus, several instances of each role, idempotency.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{eventually, registration, System};
use forum_events::{subject::Subjects, Metadata, NewEvent, Service};
use forum_store::log::{self, Pending};
use futures::StreamExt;
use serde_json::{json, Value};
use uuid::Uuid;

fn pending(stream: Uuid, version: u32) -> Pending {
    let event = forum_events::auth::AuthEvent::SessionRevoked(forum_events::auth::SessionRevoked {
        session_id: stream,
        user_id: Uuid::new_v4(),
    });
    Pending {
        event: NewEvent::new(stream, version, Uuid::now_v7(), &event),
        metadata: Metadata {
            correlation_id: Uuid::now_v7(),
            causation_id: Uuid::now_v7(),
            actor: None,
            recorded_at_us: 1,
        },
    }
}

async fn stream_messages(
    js: async_nats::jetstream::Context,
    name: String,
    want: u64,
) -> Option<()> {
    let mut stream = js.get_stream(name).await.ok()?;
    (stream.info().await.ok()?.state.messages == want).then_some(())
}

async fn migrated() -> (System, sqlx::PgPool) {
    let sys = System::empty();
    sys.migrate();
    let pool = sys.pool().await;
    (sys, pool)
}

#[tokio::test]
async fn the_database_refuses_update_delete_and_truncate_on_event_logs() {
    let (_sys, pool) = migrated().await;
    let mut tx = pool.begin().await.expect("begin");
    log::lock(&mut tx, Service::Auth).await.expect("lock");
    log::append(&mut tx, Service::Auth, vec![pending(Uuid::new_v4(), 1)])
        .await
        .expect("append");
    tx.commit().await.expect("commit");
    for service in Service::ALL {
        let s = service.as_str();
        for sql in [
            format!("update {s}.events set event_type = 'x'"),
            format!("delete from {s}.events"),
            format!("truncate {s}.events"),
        ] {
            let err = sqlx::query(&sql).execute(&pool).await.expect_err(&sql);
            assert!(err.to_string().contains("append-only"), "{sql}: {err}");
        }
    }
    let n: i64 = sqlx::query_scalar("select count(*) from auth.events")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(n, 1);
}

#[tokio::test]
async fn migrate_gives_a_service_without_a_log_its_append_only_log_and_outbox() {
    let (sys, pool) = migrated().await;
    // A service this database has no log for (as a new domain would be).
    sqlx::query("drop schema chat cascade")
        .execute(&pool)
        .await
        .expect("drop the chat schema");
    sys.migrate();
    let mut tx = pool.begin().await.expect("begin");
    log::lock(&mut tx, Service::Chat).await.expect("lock");
    let recorded = log::append(&mut tx, Service::Chat, vec![pending(Uuid::new_v4(), 1)])
        .await
        .expect("append");
    tx.commit().await.expect("commit");
    assert_eq!(recorded[0].position, 1);
    let published: i64 = sqlx::query_scalar("select published_position from chat.outbox")
        .fetch_one(&pool)
        .await
        .expect("outbox");
    assert_eq!(published, 0);
    let err = sqlx::query("delete from chat.events")
        .execute(&pool)
        .await
        .expect_err("append-only");
    assert!(err.to_string().contains("append-only"), "{err}");
    // A second migrate leaves the existing logs alone.
    sys.migrate();
    let n: i64 = sqlx::query_scalar("select count(*) from chat.events")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(n, 1);
}

#[tokio::test]
async fn a_stale_stream_version_is_a_conflict() {
    let (_sys, pool) = migrated().await;
    let stream = Uuid::new_v4();
    for attempt in 0..2 {
        let mut tx = pool.begin().await.expect("begin");
        log::lock(&mut tx, Service::Auth).await.expect("lock");
        let r = log::append(&mut tx, Service::Auth, vec![pending(stream, 1)]).await;
        if attempt == 0 {
            r.expect("first append");
            tx.commit().await.expect("commit");
        } else {
            assert!(
                matches!(r, Err(forum_store::Error::Conflict { .. })),
                "{r:?}"
            );
        }
    }
}

#[tokio::test]
async fn concurrent_appends_are_gap_free_and_a_tail_reader_never_skips() {
    let (_sys, pool) = migrated().await;
    const WRITERS: usize = 8;
    const EACH: usize = 40;
    let mut writers = Vec::new();
    for _ in 0..WRITERS {
        let pool = pool.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..EACH {
                let mut tx = pool.begin().await.expect("begin");
                log::lock(&mut tx, Service::Chat).await.expect("lock");
                let n = 1 + i % 3;
                let events = (0..n).map(|_| pending(Uuid::new_v4(), 1)).collect();
                log::append(&mut tx, Service::Chat, events)
                    .await
                    .expect("append");
                tx.commit().await.expect("commit");
            }
        }));
    }
    // A tail reader following by position while the writers run.
    let reader_pool = pool.clone();
    let reader = tokio::spawn(async move {
        let mut seen = Vec::new();
        let mut at = 0u64;
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let expected: usize = (0..EACH).map(|i| 1 + i % 3).sum::<usize>() * WRITERS;
        while seen.len() < expected && std::time::Instant::now() < deadline {
            let mut conn = reader_pool.acquire().await.expect("conn");
            let batch = log::read_after(&mut conn, Service::Chat, at, 7)
                .await
                .expect("read");
            for e in batch {
                seen.push(e.position);
                at = e.position;
            }
            tokio::task::yield_now().await;
        }
        seen
    });
    for w in writers {
        w.await.expect("writer");
    }
    let seen = reader.await.expect("reader");
    let expected: Vec<u64> = (1..=seen.len() as u64).collect();
    assert_eq!(
        seen, expected,
        "the reader saw every position once, in order"
    );
    let total: usize = (0..EACH).map(|i| 1 + i % 3).sum::<usize>() * WRITERS;
    assert_eq!(seen.len(), total);
}

#[tokio::test]
async fn delivering_the_same_events_twice_changes_nothing_in_a_projection() {
    let sys = System::up().await;
    sys.register("twice").await;
    let pool = sys.pool().await;
    let users = forum_projections::by_name("users").expect("users projection");
    let mut conn = pool.acquire().await.expect("conn");
    let events = log::read_after(&mut conn, Service::Auth, 0, 100)
        .await
        .expect("read");
    assert!(!events.is_empty());
    let count = |pool: sqlx::PgPool| async move {
        let n: i64 = sqlx::query_scalar("select count(*) from read.users")
            .fetch_one(&pool)
            .await
            .expect("count");
        n
    };
    assert_eq!(count(pool.clone()).await, 1);
    // The same events again, straight into the live tables...
    let mut tx = pool.begin().await.expect("begin");
    users
        .apply(&mut tx, &users.schema(1), &events)
        .await
        .expect("apply again");
    tx.commit().await.expect("commit");
    // ...and through the checkpointed step, which finds nothing new.
    let stepped = forum_projections::runner::step(&pool, &*users, 1, Service::Auth, 100)
        .await
        .expect("step");
    assert!(
        stepped.is_none(),
        "the checkpoint already covers every event"
    );
    assert_eq!(count(pool.clone()).await, 1);
    let (status, body) = sys.get("/api/auth/me", None).await;
    assert_eq!(status, 401, "{body}");
}

#[tokio::test]
async fn every_event_reaches_the_stream_with_its_event_id_as_msg_id() {
    let sys = System::up().await;
    sys.register("streamed").await;
    let pool = sys.pool().await;
    let ids: Vec<Uuid> = sqlx::query_scalar("select event_id from auth.events order by position")
        .fetch_all(&pool)
        .await
        .expect("ids");
    assert_eq!(ids.len(), 2, "user_registered and session_started");
    let js = async_nats::jetstream::new(async_nats::connect(common::NATS_URL).await.expect("nats"));
    let subjects = Subjects::new(&sys.prefix);
    let stream = js.get_stream(subjects.stream_name()).await.expect("stream");
    eventually(Duration::from_secs(60), "both events in the stream", || {
        stream_messages(js.clone(), subjects.stream_name(), 2)
    })
    .await;
    for (seq, id) in ids.iter().enumerate() {
        let msg = stream
            .get_raw_message(seq as u64 + 1)
            .await
            .expect("message");
        let msg_id = msg.headers.get("Nats-Msg-Id").map(|v| v.to_string());
        assert_eq!(msg_id, Some(id.to_string()));
    }
}

#[tokio::test]
async fn a_crash_between_commit_and_publish_loses_nothing() {
    let mut sys = System::empty();
    sys.migrate();
    sys.spawn("projector", &["projector"], &[]);
    sys.spawn(
        "auth-crashing",
        &["service", "auth"],
        &[("FORUM_TEST_ABORT_AFTER_COMMIT", "true")],
    );
    sys.spawn_gateway(&[("FORUM_COMMAND_TIMEOUT_MS", "3000")]);
    // The service commits the registration, then dies before publishing or answering.
    let (status, body) = sys
        .post("/api/auth/register", None, registration("survivor"))
        .await;
    assert_eq!(status, 503, "{body}");
    assert!(
        sys.wait_exit("auth-crashing", Duration::from_secs(60)),
        "the service aborted"
    );
    let pool = sys.pool().await;
    let committed: i64 = sqlx::query_scalar("select count(*) from auth.events")
        .fetch_one(&pool)
        .await
        .expect("count");
    let published: i64 = sqlx::query_scalar("select published_position from auth.outbox")
        .fetch_one(&pool)
        .await
        .expect("outbox");
    assert_eq!((committed, published), (2, 0), "committed, not published");
    let js = async_nats::jetstream::new(async_nats::connect(common::NATS_URL).await.expect("nats"));
    let subjects = Subjects::new(&sys.prefix);
    let mut stream = js.get_stream(subjects.stream_name()).await.expect("stream");
    assert_eq!(stream.info().await.expect("info").state.messages, 0);
    // A restarted instance publishes what the dead one committed.
    sys.spawn("auth", &["service", "auth"], &[]);
    eventually(Duration::from_secs(60), "the events in the stream", || {
        stream_messages(js.clone(), subjects.stream_name(), 2)
    })
    .await;
    // And the account exists: the client can log in.
    let (status, _) = sys
        .post(
            "/api/auth/login",
            None,
            json!({"login": "survivor", "password": "password-survivor"}),
        )
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_service_that_does_not_answer_gives_503_unavailable() {
    let mut sys = System::empty();
    sys.migrate();
    sys.spawn("projector", &["projector"], &[]);
    sys.spawn_gateway(&[("FORUM_COMMAND_TIMEOUT_MS", "300")]);
    let (status, body) = sys
        .post("/api/auth/register", None, registration("nobody"))
        .await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (503, json!("unavailable"))
    );
}

#[tokio::test]
async fn two_gateways_and_two_auth_services_share_the_work_and_the_sessions() {
    let mut sys = System::empty();
    sys.migrate();
    sys.spawn("auth1", &["service", "auth"], &[]);
    sys.spawn("auth2", &["service", "auth"], &[]);
    sys.spawn("posts", &["service", "posts"], &[]);
    sys.spawn("projector", &["projector"], &[]);
    let g1 = sys.spawn_gateway(&[]);
    let g2 = sys.spawn_gateway(&[]);
    let http = sys.http.clone();
    // Registrations through both gateways, concurrently.
    let mut tasks = Vec::new();
    for i in 0..12 {
        let (http, base) = (
            http.clone(),
            if i % 2 == 0 { g1.clone() } else { g2.clone() },
        );
        tasks.push(tokio::spawn(async move {
            common::call_at(
                &http,
                &base,
                reqwest::Method::POST,
                "/api/auth/register",
                None,
                Some(registration(&format!("multi{i}"))),
            )
            .await
        }));
    }
    for t in tasks {
        let (status, body) = t.await.expect("task");
        assert_eq!(status, 201, "{body}");
    }
    // Registered on one, logged in on the other, logged out on the first:
    // the token is refused on both at once.
    let (status, body) = common::call_at(
        &http,
        &g2,
        reqwest::Method::POST,
        "/api/auth/login",
        None,
        Some(json!({"login": "multi0", "password": "password-multi0"})),
    )
    .await;
    assert_eq!(status, 200);
    let token = body["token"].as_str().expect("token").to_string();
    assert_eq!(
        common::call_at(
            &http,
            &g1,
            reqwest::Method::GET,
            "/api/auth/me",
            Some(&token),
            None
        )
        .await
        .0,
        200
    );
    assert_eq!(
        common::call_at(
            &http,
            &g1,
            reqwest::Method::POST,
            "/api/auth/logout",
            Some(&token),
            None
        )
        .await
        .0,
        204
    );
    assert_eq!(
        common::call_at(
            &http,
            &g2,
            reqwest::Method::GET,
            "/api/auth/me",
            Some(&token),
            None
        )
        .await
        .0,
        401
    );
    assert_eq!(
        common::call_at(
            &http,
            &g1,
            reqwest::Method::GET,
            "/api/auth/me",
            Some(&token),
            None
        )
        .await
        .0,
        401
    );
    // The posts service, on its own, behind either gateway.
    let (_, body) = common::call_at(
        &http,
        &g1,
        reqwest::Method::POST,
        "/api/auth/login",
        None,
        Some(json!({"login": "multi1", "password": "password-multi1"})),
    )
    .await;
    let writer = body["token"].as_str().expect("token").to_string();
    let (status, post) = common::call_at(
        &http,
        &g1,
        reqwest::Method::POST,
        "/api/posts",
        Some(&writer),
        Some(json!({"title": "Hello", "content": "From gateway one", "categories": ["general"]})),
    )
    .await;
    assert_eq!(status, 201, "{post}");
    let path = format!("/api/posts/{}", post["id"].as_str().expect("id"));
    let (status, read) = common::call_at(&http, &g2, reqwest::Method::GET, &path, None, None).await;
    assert_eq!((status, read["title"].clone()), (200, json!("Hello")));
    // One service instance down: the other carries on.
    sys.kill("auth1");
    let (status, body) = common::call_at(
        &http,
        &g1,
        reqwest::Method::POST,
        "/api/auth/register",
        None,
        Some(registration("after")),
    )
    .await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test]
async fn an_idempotency_key_replays_the_first_answer_and_changes_nothing() {
    let sys = System::up().await;
    let send = |key: &'static str, body: Value| {
        let req = sys
            .http
            .post(sys.url("/api/auth/register"))
            .header("idempotency-key", key)
            .json(&body);
        async move {
            let r = req.send().await.expect("send");
            let status = r.status().as_u16();
            let cookie = r
                .headers()
                .get("set-cookie")
                .map(|v| v.to_str().unwrap_or("").to_string());
            (status, cookie, r.text().await.expect("text"))
        }
    };
    let first = send("key-1", registration("idem")).await;
    assert_eq!(first.0, 201);
    let again = send("key-1", registration("idem")).await;
    assert_eq!(first, again, "same status, body and cookie");
    // Concurrent retries too.
    let (a, b) = tokio::join!(
        send("key-2", registration("idem2")),
        send("key-2", registration("idem2"))
    );
    assert_eq!(a, b);
    assert_eq!(a.0, 201);
    let pool = sys.pool().await;
    let n: i64 = sqlx::query_scalar("select count(*) from read.users")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(n, 2, "one account per key");
    // A rejection is an answer too; another key runs the command again.
    let taken = send("key-3", registration("idem")).await;
    assert_eq!(taken.0, 409);
    assert_eq!(send("key-3", registration("idem")).await, taken);
    // Bad keys, and a key reused for another request.
    let long: &'static str = Box::leak("k".repeat(129).into_boxed_str());
    let (status, _, body) = send(long, registration("long")).await;
    assert_eq!(status, 400, "{body}");
    let r = sys
        .http
        .post(sys.url("/api/auth/login"))
        .header("idempotency-key", "key-1")
        .json(&json!({"login": "idem", "password": "password-idem"}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 409);
}

#[tokio::test]
async fn an_idempotency_key_is_bound_to_its_body_so_two_clients_never_share_an_answer() {
    let sys = System::up().await;
    sys.register("ann").await;
    let (bob, _) = sys.register("bob").await;
    let login = |key: &'static str, who: &str| {
        let req = sys
            .http
            .post(sys.url("/api/auth/login"))
            .header("idempotency-key", key)
            .json(&json!({"login": who, "password": format!("password-{who}")}));
        async move {
            let r = req.send().await.expect("send");
            let status = r.status().as_u16();
            (status, r.text().await.expect("text"))
        }
    };
    // Two anonymous clients that happen to pick the same key.
    let ann = login("shared-key", "ann").await;
    assert_eq!(ann.0, 200, "{}", ann.1);
    let other = login("shared-key", "bob").await;
    assert_eq!(other.0, 409, "never Ann's answer: {}", other.1);
    assert!(!other.1.contains("token"), "{}", other.1);
    // Ann's own retry still gets her first answer.
    assert_eq!(login("shared-key", "ann").await, ann);
    // A user reusing a key on the same route with another body: 409.
    let post = |title: &str| {
        sys.http
            .post(sys.url("/api/posts"))
            .bearer_auth(&bob)
            .header("idempotency-key", "bob-post")
            .json(&json!({"title": title, "content": "c", "categories": ["general"]}))
            .send()
    };
    assert_eq!(post("first").await.expect("send").status(), 201);
    assert_eq!(post("first").await.expect("send").status(), 201);
    assert_eq!(post("another").await.expect("send").status(), 409);
    let pool = sys.pool().await;
    let n: i64 = sqlx::query_scalar("select count(*) from read.posts")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(n, 1);
}

#[tokio::test]
async fn a_seed_list_of_nats_servers_is_accepted_and_an_unreachable_one_skipped() {
    // A cluster's seed list, whose first server does not answer: the
    // client connects to the one that does.
    let sys = System::up_with(&[(
        "FORUM_NATS_URL",
        "nats://127.0.0.1:1, nats://127.0.0.1:4222",
    )])
    .await;
    let (token, _) = sys.register("seeded").await;
    let (status, body) = sys.get("/api/auth/me", Some(&token)).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn the_correlation_id_travels_from_the_request_into_the_events() {
    let sys = System::up().await;
    let rid = Uuid::now_v7();
    let r = sys
        .http
        .post(sys.url("/api/auth/register"))
        .header("x-request-id", rid.to_string())
        .json(&registration("traced"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 201);
    assert_eq!(
        r.headers()["x-request-id"].to_str().expect("header"),
        rid.to_string()
    );
    let pool = sys.pool().await;
    let ids: Vec<Uuid> = sqlx::query_scalar("select correlation_id from auth.events")
        .fetch_all(&pool)
        .await
        .expect("ids");
    assert_eq!(ids, vec![rid, rid]);
    let causes: HashSet<Uuid> = sqlx::query_scalar("select causation_id from auth.events")
        .fetch_all(&pool)
        .await
        .expect("ids")
        .into_iter()
        .collect();
    assert_eq!(causes.len(), 1, "both events caused by the one command");
}

#[tokio::test]
async fn the_events_published_on_nats_decode_to_the_stored_envelopes() {
    let sys = System::up().await;
    let client = async_nats::connect(common::NATS_URL).await.expect("nats");
    let subjects = Subjects::new(&sys.prefix);
    let mut sub = client
        .subscribe(subjects.events_of(Service::Auth))
        .await
        .expect("subscribe");
    client.flush().await.expect("flush");
    sys.register("wire").await;
    let msg = tokio::time::timeout(Duration::from_secs(60), sub.next())
        .await
        .expect("in time")
        .expect("message");
    assert_eq!(
        msg.subject.as_str(),
        subjects.event(Service::Auth, "user_registered")
    );
    let event = forum_events::RecordedEvent::from_bytes(&msg.payload).expect("envelope");
    assert_eq!(event.position, 1);
    let decoded: forum_events::auth::AuthEvent = event.decode().expect("payload");
    assert!(
        matches!(decoded, forum_events::auth::AuthEvent::UserRegistered(u) if u.nickname == "wire")
    );
}

#[tokio::test]
async fn a_locked_append_orders_appenders_and_its_announced_head_wakes_the_followers() {
    let (_sys, pool) = migrated().await;
    let mut listener = sqlx::postgres::PgListener::connect_with(&pool)
        .await
        .expect("listener");
    listener
        .listen(&log::channel(Service::Auth))
        .await
        .expect("listen");
    let mut first = log::begin_locked(&pool, Service::Auth)
        .await
        .expect("begin");
    let recorded = log::append(&mut first, Service::Auth, vec![pending(Uuid::new_v4(), 1)])
        .await
        .expect("append");
    // A second appender waits for the lock (not bounded by the lock wait
    // that holds after it) until the first commits, then numbers after it.
    let second = tokio::spawn({
        let pool = pool.clone();
        async move {
            let mut tx = log::begin_locked(&pool, Service::Auth)
                .await
                .expect("begin");
            let r = log::append(&mut tx, Service::Auth, vec![pending(Uuid::new_v4(), 1)])
                .await
                .expect("append");
            tx.commit().await.expect("commit");
            r[0].position
        }
    });
    // It is still waiting well past the 250 ms bound on the transaction's
    // later lock waits: the append lock is not one of them.
    eventually(
        Duration::from_secs(30),
        "the second appender waits for 400 ms",
        || async {
            let waited: Option<bool> = sqlx::query_scalar(
                "select now() - query_start > interval '400 ms' from pg_stat_activity
                 where datname = current_database() and wait_event = 'advisory'",
            )
            .fetch_optional(&pool)
            .await
            .expect("activity");
            (waited == Some(true)).then_some(())
        },
    )
    .await;
    assert!(!second.is_finished());
    first.commit().await.expect("commit");
    assert_eq!(second.await.expect("second"), recorded[0].position + 1);

    // Appends announce nothing themselves; the head is announced after.
    log::announce(&pool, &[(Service::Auth, 2)])
        .await
        .expect("announce");
    let n = tokio::time::timeout(Duration::from_secs(30), listener.recv())
        .await
        .expect("woken")
        .expect("notification");
    assert_eq!(
        (n.channel(), n.payload()),
        (log::channel(Service::Auth).as_str(), "2")
    );
}

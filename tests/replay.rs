//! `forum replay` end to end: rebuilds against the real binary, Postgres and
//! NATS.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{eventually, System};
use forum_events::auth::{AuthEvent, Gender, UserRegistered, UserRegisteredV1};
use forum_events::{codec, EventSet, Metadata, NewEvent, Service};
use forum_store::log::{self, Pending};
use serde_json::{json, Value};
use uuid::Uuid;

/// The `forum replay ...` command of this system.
fn replay(sys: &System, args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_forum"));
    cmd.arg("replay")
        .args(args)
        .env("FORUM_DATABASE_URL", &sys.db_url)
        .env("FORUM_PREFIX", &sys.prefix)
        .env("FORUM_DB_MAX_CONNECTIONS", "8")
        .env(
            "RUST_LOG",
            std::env::var("TEST_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// Runs `forum replay ...` to completion: (success, stdout, stderr).
async fn run_replay(sys: &System, args: &[&str]) -> (bool, String, String) {
    let out = replay(sys, args).output().await.expect("run forum replay");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn metadata() -> Metadata {
    Metadata {
        correlation_id: Uuid::new_v4(),
        causation_id: Uuid::new_v4(),
        actor: None,
        recorded_at_us: 1_700_000_000_000_000,
    }
}

/// A `user_registered` event as schema version 2 writes it.
fn registered_v2(nickname: &str) -> Pending {
    let id = Uuid::new_v4();
    let event = AuthEvent::UserRegistered(UserRegistered {
        user_id: id,
        nickname: nickname.to_string(),
        email: format!("{nickname}@example.org"),
        password_hash: "phc:test".into(),
        first_name: "Bulk".into(),
        last_name: "User".into(),
        age: 30,
        gender: Gender::Other,
        registered_at_us: 1_700_000_000_000_000,
        locale: Some("en-GB".into()),
    });
    Pending {
        event: NewEvent::new(id, 1, Uuid::new_v4(), &event),
        metadata: metadata(),
    }
}

/// A `user_registered` event as schema version 1 wrote it (the old shape,
/// encoded like the v1 golden vector).
fn registered_v1(nickname: &str) -> Pending {
    let id = Uuid::new_v4();
    let old = UserRegisteredV1 {
        user_id: id,
        nickname: nickname.to_string(),
        email: format!("{nickname}@example.org"),
        password_hash: "phc:old".into(),
        first_name: "Old".into(),
        last_name: "Timer".into(),
        age: 61,
        gender: Gender::Female,
        registered_at_us: 1_600_000_000_000_000,
    };
    Pending {
        event: NewEvent {
            stream_id: id,
            version: 1,
            event_id: Uuid::new_v4(),
            event_type: "user_registered",
            schema_version: 1,
            payload: codec::encode(&old),
        },
        metadata: metadata(),
    }
}

/// Appends events to the auth log the way a service does (append lock held).
async fn append(pool: &sqlx::PgPool, events: Vec<Pending>) {
    let mut tx = pool.begin().await.expect("begin");
    log::lock(&mut tx, Service::Auth).await.expect("lock");
    log::append(&mut tx, Service::Auth, events)
        .await
        .expect("append");
    tx.commit().await.expect("commit");
}

async fn registry(pool: &sqlx::PgPool, projection: &str) -> Vec<(i32, String)> {
    sqlx::query_as(
        "select version, state from proj.registry where projection = $1 order by version",
    )
    .bind(projection)
    .fetch_all(pool)
    .await
    .expect("registry")
}

async fn checkpoint(pool: &sqlx::PgPool, projection: &str, version: i32) -> i64 {
    sqlx::query_scalar(
        "select position from proj.checkpoints
         where projection = $1 and version = $2 and service = 'auth'",
    )
    .bind(projection)
    .bind(version)
    .fetch_optional(pool)
    .await
    .expect("checkpoint")
    .unwrap_or(0)
}

async fn count(pool: &sqlx::PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.expect(sql)
}

/// Registers, logs in and out: every auth event type.
async fn mixed_workload(sys: &System, prefix: &str, n: usize) {
    for i in 0..n {
        let nick = format!("{prefix}{i}");
        let (token, _) = sys.register(&nick).await;
        let (status, body) = sys
            .post(
                "/api/auth/login",
                None,
                json!({"login": nick, "password": format!("password-{nick}")}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        if i % 2 == 0 {
            let (status, _) = sys
                .post("/api/auth/logout", Some(&token), Value::Null)
                .await;
            assert_eq!(status, 204);
        }
    }
}

#[tokio::test]
async fn a_rebuild_equals_live_and_the_projector_follows_the_new_version() {
    let sys = System::up().await;
    mixed_workload(&sys, "mixed", 6).await;
    let pool = sys.pool().await;

    let (ok, out, err) = run_replay(&sys, &["rebuild", "--all"]).await;
    assert!(ok, "rebuild failed: {out}{err}");
    assert!(out.contains("switched users to v2 (retired v1)"), "{out}");
    // Not on a terminal, progress comes as plain lines, without a bar's
    // control characters.
    assert!(
        err.lines()
            .any(|l| l.starts_with("users: ") && l.contains(" events/s, ETA ")),
        "{err}"
    );
    assert!(!err.contains('\r') && !err.contains('\x1b'), "{err}");
    assert!(
        out.contains("switched sessions to v2 (retired v1)"),
        "{out}"
    );
    assert_eq!(
        registry(&pool, "users").await,
        vec![(1, "retired".into()), (2, "live".into())]
    );

    let (ok, out, err) = run_replay(&sys, &["verify", "--all"]).await;
    assert!(ok, "verify found differences: {out}{err}");
    assert!(out.contains("users v1 = v2: users: 6 rows"), "{out}");
    assert!(out.contains("sessions v1 = v2: sessions: 12 rows"), "{out}");

    // The running projector now fills v2: a new account is readable at once.
    let (_, id) = sys.register("after").await;
    let (status, body) = sys.get(&format!("/api/users/{id}"), None).await;
    assert_eq!((status, body["nickname"].clone()), (200, json!("after")));
    assert!(checkpoint(&pool, "users", 1).await < checkpoint(&pool, "users", 2).await);

    // v1 is retired and no longer follows: verify now reports the difference.
    let (ok, out, _) = run_replay(&sys, &["verify", "users"]).await;
    assert!(!ok, "verify must fail on a difference: {out}");
    assert!(
        out.contains("users v1 != v2: users: rows 6 vs 7") && out.contains("1 rows only in v2"),
        "{out}"
    );

    let (ok, out, _) = run_replay(&sys, &["list"]).await;
    assert!(ok);
    assert!(out.contains("users v1 retired"), "{out}");
    assert!(out.contains("users v2 live: auth checkpoint"), "{out}");
    assert!(out.contains("rows: users 7"), "{out}");
}

#[tokio::test]
async fn writes_during_a_rebuild_are_in_the_result() {
    let sys = System::up().await;
    let pool = sys.pool().await;
    append(
        &pool,
        (0..1500)
            .map(|i| registered_v2(&format!("bulk{i}")))
            .collect(),
    )
    .await;
    // Slow rebuild (one event per transaction) while accounts are created.
    let rebuild = replay(
        &sys,
        &["rebuild", "users", "--batch", "1", "--switch-lag", "5"],
    )
    .spawn()
    .expect("spawn rebuild");
    eventually(Duration::from_secs(60), "the rebuild to start", || async {
        (checkpoint(&pool, "users", 2).await > 0).then_some(())
    })
    .await;
    let mut during = Vec::new();
    for i in 0..8 {
        during.push(sys.register(&format!("during{i}")).await.1);
    }
    let out = rebuild.wait_with_output().await.expect("rebuild");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("switched users to v2"), "{stdout}");
    for id in &during {
        let (status, _) = sys.get(&format!("/api/users/{id}"), None).await;
        assert_eq!(status, 200, "user {id} written during the rebuild");
    }
    assert_eq!(count(&pool, "select count(*) from read.users").await, 1508);
    assert_eq!(
        count(&pool, "select count(*) from proj_users_v2.users").await,
        count(
            &pool,
            "select count(*) from auth.events where event_type = 'user_registered'"
        )
        .await
    );
}

#[tokio::test]
async fn a_killed_rebuild_resumes_from_its_checkpoint_and_a_second_one_is_refused() {
    let sys = System::empty();
    sys.migrate();
    let pool = sys.pool().await;
    append(
        &pool,
        (0..5000)
            .map(|i| registered_v2(&format!("bulk{i}")))
            .collect(),
    )
    .await;
    let mut slow = replay(&sys, &["rebuild", "users", "--batch", "1"])
        .spawn()
        .expect("spawn rebuild");
    eventually(
        Duration::from_secs(60),
        "the rebuild to make progress",
        || async { (checkpoint(&pool, "users", 2).await >= 20).then_some(()) },
    )
    .await;

    let (ok, out, err) = run_replay(&sys, &["rebuild", "users"]).await;
    assert!(!ok, "a second rebuild must be refused: {out}");
    assert!(
        err.contains("a rebuild of projection users is already running"),
        "{err}"
    );

    slow.kill().await.expect("kill");
    let at_kill = checkpoint(&pool, "users", 2).await;
    assert!(at_kill > 0 && at_kill < 5000, "killed at {at_kill}");
    assert_eq!(
        registry(&pool, "users").await,
        vec![(1, "live".into()), (2, "rebuilding".into())]
    );

    let (ok, out, err) = run_replay(&sys, &["rebuild", "users"]).await;
    assert!(ok, "{out}{err}");
    let resumed_at: i64 = out
        .lines()
        .find_map(|l| l.strip_prefix("resuming users v2 from auth "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no resume line: {out}"));
    assert!(
        resumed_at >= at_kill,
        "resumed at {resumed_at}, killed at {at_kill}"
    );
    let applied: u64 = out
        .lines()
        .find_map(|l| l.strip_prefix("switched users to v2 (retired v1): "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no switch line: {out}"));
    assert_eq!(
        applied,
        5000 - resumed_at as u64,
        "only the rest is applied"
    );
    assert_eq!(count(&pool, "select count(*) from read.users").await, 5000);
    assert_eq!(
        registry(&pool, "users").await,
        vec![(1, "retired".into()), (2, "live".into())]
    );
}

#[tokio::test]
async fn a_poison_event_is_parked_by_the_rebuild_which_finishes_and_lists_it() {
    let sys = System::empty();
    sys.migrate();
    let pool = sys.pool().await;
    append(
        &pool,
        (0..3).map(|i| registered_v2(&format!("ok{i}"))).collect(),
    )
    .await;
    sqlx::query(
        "insert into auth.events (position, stream_id, version, event_id, event_type,
                                  schema_version, payload, correlation_id, causation_id, recorded_at)
         values (4, gen_random_uuid(), 1, gen_random_uuid(), 'user_registered', 2,
                 '\\xdeadbeef', gen_random_uuid(), gen_random_uuid(), now())",
    )
    .execute(&pool)
    .await
    .expect("insert the poison event");
    append(
        &pool,
        (0..3)
            .map(|i| registered_v2(&format!("later{i}")))
            .collect(),
    )
    .await;

    let (ok, out, err) = run_replay(&sys, &["rebuild", "users"]).await;
    assert!(ok, "the rebuild finishes: {out} {err}");
    assert!(
        out.contains("parked on users v2: auth position 4 user_registered"),
        "{out}"
    );
    assert!(out.contains("users v2: 1 event(s) parked"), "{out}");
    // Every other event is applied, the later ones too.
    assert_eq!(checkpoint(&pool, "users", 2).await, 7, "went past it");
    assert_eq!(
        count(&pool, "select count(*) from proj_users_v2.users").await,
        6
    );
    let (ok, out, _) = run_replay(&sys, &["list"]).await;
    assert!(ok);
    assert!(
        out.contains("parked: auth position 4 user_registered"),
        "{out}"
    );
    // Still parked on a retry: a bad event is never applied half.
    let (ok, out, _) = run_replay(&sys, &["retry-poison", "users"]).await;
    assert!(!ok, "exits non-zero while one stays parked: {out}");
    assert!(out.contains("users: 0 applied, 1 still parked"), "{out}");
    assert_eq!(
        count(&pool, "select count(*) from proj_users_v2.users").await,
        6
    );
}

#[tokio::test]
async fn a_rebuild_over_v1_and_v2_registrations_upcasts_the_old_ones() {
    let sys = System::up().await;
    let pool = sys.pool().await;
    append(
        &pool,
        vec![registered_v1("oldone"), registered_v1("oldtwo")],
    )
    .await;
    sys.register("newone").await;
    let versions: Vec<i16> = sqlx::query_scalar(
        "select schema_version from auth.events where event_type = 'user_registered'
         order by position",
    )
    .fetch_all(&pool)
    .await
    .expect("versions");
    assert_eq!(
        versions,
        vec![1, 1, 2],
        "new registrations are written as v2"
    );

    let (ok, out, err) = run_replay(&sys, &["rebuild", "users"]).await;
    assert!(ok, "{out}{err}");
    let rows: Vec<(String, String, i16, String)> = sqlx::query_as(
        "select nickname, first_name, age, gender from read.users order by nickname",
    )
    .fetch_all(&pool)
    .await
    .expect("users");
    assert_eq!(
        rows,
        vec![
            ("newone".into(), "Test".into(), 30, "unspecified".into()),
            ("oldone".into(), "Old".into(), 61, "female".into()),
            ("oldtwo".into(), "Old".into(), 61, "female".into()),
        ]
    );
    assert_eq!(registered_v1("x").event.schema_version, 1);
    assert_eq!(
        AuthEvent::decode("user_registered", 1, &registered_v1("x").event.payload)
            .map(|e| e.schema_version()),
        Ok(2)
    );
}

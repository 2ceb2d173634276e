//! Login attempts are limited per account, counted the same on every
//! instance (in Postgres), and password hashing has admission control: a
//! flood of wrong logins neither delays what does not hash (logout, `me`)
//! nor keeps the CPU busy once it ends.
//!
//! The flood test prints its figures; see them with
//! `cargo test --test login_limits -- --nocapture`, and the size
//! (3,000 at 100 in flight) with `-- --ignored --nocapture`.

mod common;

use std::time::{Duration, Instant};

use common::System;
use futures::StreamExt;
use reqwest::Method;
use serde_json::{json, Value};

/// The gateways' own limits per client address are switched off (every
/// request of a test comes from one address): what is measured here is the
/// per-account count and the hashing queue. Kept-alive connections stay
/// open for the whole flood.
const ENV: [(&str, &str); 3] = [
    ("FORUM_RATE_LIMITS", "off"),
    ("FORUM_IDLE_TIMEOUT_MS", "120000"),
    ("FORUM_HEADER_TIMEOUT_MS", "120000"),
];

/// `POST /api/auth/login` at `base`: (status, body, Retry-After, latency).
async fn login_at(
    http: &reqwest::Client,
    base: &str,
    login: &str,
    password: &str,
) -> (u16, Value, Option<u64>, Duration) {
    let started = Instant::now();
    let resp = http
        .post(format!("{base}/api/auth/login"))
        .json(&json!({"login": login, "password": password}))
        .send()
        .await
        .expect("login request");
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    (status, body, retry_after, started.elapsed())
}

#[tokio::test]
async fn failed_logins_of_one_account_are_counted_across_gateways_and_instances_then_slowed_with_429(
) {
    let mut sys = System::up_with(&ENV).await;
    // A second gateway and a second auth instance: the count is theirs too.
    let other = sys.spawn_gateway(&ENV);
    sys.spawn("auth2", &["service", "auth"], &ENV);
    sys.register("victim").await;
    let bases = [sys.base.clone(), other.clone()];
    for i in 0..5 {
        // By nickname and by e-mail, through both gateways: one count.
        let login = if i % 2 == 0 {
            "victim"
        } else {
            "VICTIM@example.org"
        };
        let (status, body, _, _) =
            login_at(&sys.http, &bases[i % 2], login, "wrong-password").await;
        assert_eq!(status, 401, "failure {i}: {body}");
        assert_eq!(body["error"]["code"], "invalid_credentials");
    }
    // The fifth failure started a delay: even the right password is refused
    // at once, on either gateway, with Retry-After.
    for base in &bases {
        let (status, body, retry_after, took) =
            login_at(&sys.http, base, "victim", "password-victim").await;
        assert_eq!(status, 429, "{body}");
        assert_eq!(body["error"]["code"], "rate_limited");
        assert_eq!(retry_after, Some(1), "{body}");
        println!("a throttled login answered in {took:?}");
    }
    // After the delay the owner gets in, and the count starts over.
    common::eventually(
        Duration::from_secs(60),
        "the owner's login after the delay",
        || {
            let (http, other) = (sys.http.clone(), other.clone());
            async move {
                let (status, body, _, _) =
                    login_at(&http, &other, "victim", "password-victim").await;
                assert!(status == 200 || status == 429, "{status} {body}");
                (status == 200).then_some(())
            }
        },
    )
    .await;
    for i in 0..5 {
        let (status, body, _, _) = login_at(&sys.http, &sys.base, "victim", "wrong").await;
        assert_eq!(status, 401, "after the reset, failure {i}: {body}");
    }
    let (status, _, retry_after, _) = login_at(&sys.http, &sys.base, "victim", "wrong").await;
    assert_eq!((status, retry_after), (429, Some(1)));

    // A login nobody holds answers the same way: 401 five times, then 429.
    for i in 0..5 {
        let (status, body, _, _) = login_at(&sys.http, &bases[i % 2], "nobody", "wrong").await;
        assert_eq!(status, 401, "unknown, failure {i}: {body}");
    }
    let (status, body, retry_after, _) = login_at(&sys.http, &other, "nobody", "wrong").await;
    assert_eq!((status, retry_after), (429, Some(1)), "{body}");
    // The counts live in Postgres: one row per login key that failed.
    let pool = sys.pool().await;
    let rows: i64 = sqlx::query_scalar("select count(*) from auth.login_throttle")
        .fetch_one(&pool)
        .await
        .expect("rows");
    assert_eq!(rows, 2);
}

/// The pid of the `forum` process of the system with this prefix (the
/// harness does not expose its children's pids).
fn forum_pid(prefix: &str) -> u32 {
    let needle = format!("FORUM_PREFIX={prefix}\0");
    let entries = std::fs::read_dir("/proc").expect("/proc");
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim() != "forum" {
            continue;
        }
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        if environ
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
        {
            return pid;
        }
    }
    panic!("no forum process with prefix {prefix}");
}

/// CPU time (user + system) the process has used so far.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    // Fields after the command name, which ends with the last ')':
    // state is field 3, utime 14 and stime 15, in clock ticks.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    Duration::from_millis(ticks * 1000 / clock_ticks())
}

fn clock_ticks() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn summary(name: &str, mut latencies: Vec<Duration>) -> Duration {
    latencies.sort();
    let max = latencies.last().copied().unwrap_or_default();
    println!(
        "{name}: n={} p50={:?} p95={:?} max={max:?}",
        latencies.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.95)
    );
    max
}

/// A flood of `total` wrong logins, `in_flight` at a time: half against
/// one account (brute force: throttled to 429 without hashing), half with
/// logins nobody holds, each a new one (every one costs a hash: the queue
/// fills and refuses with 503). Meanwhile another user logs in, reads `me`
/// and logs out: each must be answered (`me` 200, logout 204, the login
/// 200 or 503 with Retry-After), never time out. Their latencies are
/// printed, not asserted: they depend on the machine's load of the day (the
/// figures are quoted from the ignored 3,000-login run). Then the forum's
/// CPU must go idle (polled with a generous deadline).
async fn flood(total: usize, in_flight: usize) {
    let sys = System::up_with(&ENV).await;
    let pid = forum_pid(&sys.prefix);
    sys.register("victim").await;
    let (token, _) = sys.register("bystander").await;
    // The brute force has begun: five failures in a row (one at a time, so
    // none is shed by the full queue) start the victim's delay, and the
    // flood's attempts on it are then refused without a hash.
    for i in 0..5 {
        let (status, body, _, _) = login_at(&sys.http, &sys.base, "victim", "wrong-password").await;
        assert_eq!(status, 401, "failure {i}: {body}");
    }

    let cpu_before = cpu_time(pid);
    let started = Instant::now();
    let http = sys.http.clone();
    let base = sys.base.clone();
    let flood = tokio::spawn(async move {
        let outcomes: Vec<(u16, Option<u64>)> = futures::stream::iter(0..total)
            .map(|i| {
                let http = http.clone();
                let base = base.clone();
                async move {
                    let login = if i % 2 == 0 {
                        "victim".to_string()
                    } else {
                        format!("ghost-{i}")
                    };
                    let (status, _, retry_after, _) =
                        login_at(&http, &base, &login, "wrong-password").await;
                    (status, retry_after)
                }
            })
            .buffer_unordered(in_flight)
            .collect()
            .await;
        outcomes
    });

    // While it runs: a logout, `me` and correct logins of another user.
    let mut logins = Vec::new();
    let mut login_statuses = Vec::new();
    let mut mes = Vec::new();
    let mut logouts = Vec::new();
    let mut rounds = 0;
    while !flood.is_finished() && rounds < 1_000 {
        rounds += 1;
        let (status, body, retry_after, took) =
            login_at(&sys.http, &sys.base, "bystander", "password-bystander").await;
        assert!(
            status == 200 || (status == 503 && retry_after.is_some()),
            "bystander's login: {status} {body}"
        );
        login_statuses.push(status);
        logins.push(took);
        let session = body["token"].as_str().map(str::to_string);
        let t = Instant::now();
        let (status, body) = sys.get("/api/auth/me", Some(&token)).await;
        assert_eq!(status, 200, "me: {body}");
        mes.push(t.elapsed());
        // The session that login opened ends (a logout never hashes).
        if let Some(session) = session {
            let t = Instant::now();
            let (status, body) = sys
                .call(Method::POST, "/api/auth/logout", Some(&session), None)
                .await;
            assert_eq!(status, 204, "logout: {body}");
            logouts.push(t.elapsed());
        }
    }
    let outcomes = flood.await.expect("flood");
    let flood_took = started.elapsed();
    let cpu_flood = cpu_time(pid).saturating_sub(cpu_before);

    let count = |s: u16| outcomes.iter().filter(|(st, _)| *st == s).count();
    let (n401, n429, n503) = (count(401), count(429), count(503));
    println!(
        "flood of {total} wrong logins at {in_flight} in flight: {flood_took:?}, \
         401={n401} 429={n429} 503={n503}, forum CPU {cpu_flood:?}"
    );
    assert_eq!(n401 + n429 + n503, total, "other answers: {outcomes:?}");
    assert!(n429 > 0, "the victim was never throttled");
    assert!(
        outcomes
            .iter()
            .all(|(s, ra)| *s == 401 || ra.is_some_and(|r| r >= 1)),
        "a 429 or 503 without Retry-After"
    );
    let ok = login_statuses.iter().filter(|s| **s == 200).count();
    println!(
        "bystander logins during the flood: {ok} of {} answered 200, the rest 503",
        login_statuses.len()
    );
    summary("bystander login", logins);
    summary("me", mes);
    summary("logout", logouts.clone());
    assert!(!logouts.is_empty(), "no logout during the flood");

    // The CPU goes idle within seconds: under a tenth of a core over half a
    // second.
    let ended = Instant::now();
    let window = Duration::from_millis(500);
    let sample = std::sync::Mutex::new((Instant::now(), cpu_time(pid)));
    let idle_after = common::eventually(
        Duration::from_secs(60),
        "the forum's CPU to go idle after the flood",
        || {
            // Polled: a sample is judged once half a second has passed
            // since the last one.
            let mut last = sample.lock().expect("sample");
            let (at, cpu) = *last;
            let judged = (at.elapsed() >= window).then(|| {
                let now = cpu_time(pid);
                *last = (Instant::now(), now);
                now.saturating_sub(cpu) < at.elapsed() / 10
            });
            std::future::ready((judged == Some(true)).then(|| ended.elapsed()))
        },
    )
    .await;
    println!("forum CPU idle {idle_after:?} after the flood ended");
    // The bystander logs in normally again.
    let (status, body, _, took) =
        login_at(&sys.http, &sys.base, "bystander", "password-bystander").await;
    assert_eq!(status, 200, "{body}");
    println!("bystander login after the flood: {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn during_a_flood_of_wrong_logins_logout_me_and_another_login_are_answered_and_the_cpu_goes_idle_after(
) {
    flood(600, 100).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long: the issue's 3,000 wrong logins at 100 in flight"]
async fn a_flood_of_three_thousand_wrong_logins_at_a_hundred_in_flight() {
    flood(3_000, 100).await;
}

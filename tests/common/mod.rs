//! Test harness: every test gets its own database and its own NATS prefix
//! (so its own subjects and stream), and runs the real `forum` binary's
//! roles against the real Postgres and NATS.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use uuid::Uuid;

pub const PG_SERVER: &str = "postgres://postgres@127.0.0.1:5432";
pub const NATS_URL: &str = "nats://127.0.0.1:4222";
pub const SECRET: &str = "test-secret-0123456789abcdef";
/// Command and read timeouts given to every system under test (60 s), far
/// above what any write takes even on a loaded machine.
pub const TEST_TIMEOUT_MS: &str = "60000";
/// How many registrations a test runs at once: each one is an argon2id hash
/// (19 MiB, 2 passes) on one of the machine's two cores, so a larger burst
/// only queues and races the timeouts.
pub const REGISTER_CONCURRENCY: usize = 4;

/// One isolated system under test.
pub struct System {
    pub db_url: String,
    pub db_name: String,
    pub prefix: String,
    /// Base URL of the first gateway.
    pub base: String,
    /// Base URLs of every gateway started.
    pub gateways: Vec<String>,
    pub http: reqwest::Client,
    procs: Vec<(String, Child)>,
}

/// A role spawned by [`System::spawn_observed`].
pub struct Observed {
    /// Base URL of its `/metrics`.
    pub metrics: String,
    /// Base URL of its API, for a gateway.
    pub listening: Option<String>,
    /// Its log so far.
    pub log: Arc<Mutex<String>>,
}

impl Observed {
    /// Its log so far.
    pub fn log(&self) -> String {
        self.log.lock().expect("log").clone()
    }
}

/// A fresh database name and prefix.
pub fn names() -> (String, String) {
    let id = Uuid::new_v4().simple().to_string();
    (format!("forum_t_{}", &id[..16]), format!("t{}", &id[..16]))
}

impl System {
    /// `forum up` on a free port.
    pub async fn up() -> System {
        Self::up_with(&[]).await
    }

    /// `forum up` with extra environment variables.
    pub async fn up_with(env: &[(&str, &str)]) -> System {
        let mut sys = System::empty();
        let base = sys.spawn_gateway_like("up", &["up", "--listen", "127.0.0.1:0"], env);
        sys.base = base.clone();
        sys.gateways.push(base);
        sys
    }

    /// A system with nothing running yet (call `migrate` and spawn roles).
    pub fn empty() -> System {
        let (db_name, prefix) = names();
        System {
            db_url: format!("{PG_SERVER}/{db_name}"),
            db_name,
            prefix,
            base: String::new(),
            gateways: Vec::new(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(120))
                .build()
                .expect("client"),
            procs: Vec::new(),
        }
    }

    fn command(&self, args: &[&str], env: &[(&str, &str)]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_forum"));
        cmd.args(args)
            .env("FORUM_DATABASE_URL", &self.db_url)
            .env("FORUM_NATS_URL", NATS_URL)
            .env("FORUM_PREFIX", &self.prefix)
            .env("FORUM_JWT_SECRET", SECRET)
            .env("FORUM_DB_MAX_CONNECTIONS", "8")
            // The suite runs many systems at once on a small machine: the
            // product's 5 s defaults would make a test's outcome depend on
            // the day's load. Tests that exercise a timeout set their own.
            .env("FORUM_COMMAND_TIMEOUT_MS", TEST_TIMEOUT_MS)
            .env("FORUM_READ_TIMEOUT_MS", TEST_TIMEOUT_MS)
            // Every test talks from 127.0.0.1: the per-address limits are for
            // the tests of limits (tests/rate_limits.rs turns them on).
            .env("FORUM_RATE_LIMITS", "off")
            .env(
                "RUST_LOG",
                std::env::var("TEST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs `forum migrate` to completion.
    pub fn migrate(&self) {
        let status = self
            .command(&["migrate"], &[])
            .stdout(Stdio::null())
            .status()
            .expect("run forum migrate");
        assert!(status.success(), "forum migrate failed");
    }

    /// Spawns a role that does not listen (service, projector).
    pub fn spawn(&mut self, name: &str, args: &[&str], env: &[(&str, &str)]) {
        let child = self
            .command(args, env)
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn forum");
        self.procs.push((name.to_string(), child));
    }

    /// Spawns a role that prints `listening on ADDR` and returns its base URL.
    pub fn spawn_gateway_like(
        &mut self,
        name: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> String {
        let mut child = self
            .command(args, env)
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn forum");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            while let Some(Ok(line)) = lines.next() {
                if let Some(addr) = line.strip_prefix("listening on ") {
                    let _ = tx.send(addr.to_string());
                }
            }
        });
        self.procs.push((name.to_string(), child));
        let addr = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("{name} did not start listening"));
        format!("http://{addr}")
    }

    /// Spawns a role with `FORUM_METRICS_LISTEN` on a free port and its log
    /// (stderr) collected; waits until it serves its metrics (and, for a
    /// gateway, its API).
    pub fn spawn_observed(&mut self, name: &str, args: &[&str], env: &[(&str, &str)]) -> Observed {
        let mut child = self
            .command(args, env)
            .env("FORUM_METRICS_LISTEN", "127.0.0.1:0")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn forum");
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let collected = log.clone();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stderr).lines();
            while let Some(Ok(line)) = lines.next() {
                let mut log = collected.lock().expect("log");
                log.push_str(&line);
                log.push('\n');
            }
        });
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            while let Some(Ok(line)) = lines.next() {
                for prefix in ["metrics on ", "listening on "] {
                    if let Some(addr) = line.strip_prefix(prefix) {
                        let _ = tx.send((prefix, format!("http://{addr}")));
                    }
                }
            }
        });
        self.procs.push((name.to_string(), child));
        let listens = matches!(args.first(), Some(&"gateway") | Some(&"up"));
        let (mut metrics, mut listening) = (None, None);
        let deadline = Instant::now() + Duration::from_secs(60);
        while metrics.is_none() || (listens && listening.is_none()) {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(("metrics on ", url)) => metrics = Some(url),
                Ok((_, url)) => listening = Some(url),
                Err(_) => panic!(
                    "{name} did not start serving; its log:\n{}",
                    log.lock().expect("log")
                ),
            }
        }
        Observed {
            metrics: metrics.expect("metrics address"),
            listening,
            log,
        }
    }

    /// Spawns another gateway on a free port.
    pub fn spawn_gateway(&mut self, env: &[(&str, &str)]) -> String {
        let n = self.gateways.len();
        let base = self.spawn_gateway_like(
            &format!("gateway{n}"),
            &["gateway", "--listen", "127.0.0.1:0"],
            env,
        );
        if self.base.is_empty() {
            self.base = base.clone();
        }
        self.gateways.push(base.clone());
        base
    }

    /// Kills the named role (SIGKILL) and waits for it.
    pub fn kill(&mut self, name: &str) {
        for (n, child) in self.procs.iter_mut() {
            if n == name {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        self.procs.retain(|(n, _)| n != name);
    }

    /// Sends SIGTERM to the named role (it keeps its place: see `wait_exit`).
    pub fn terminate(&mut self, name: &str) {
        for (n, child) in self.procs.iter_mut() {
            if n == name {
                let _ = Command::new("kill")
                    .args(["-TERM", &child.id().to_string()])
                    .status();
            }
        }
    }

    /// Waits until the named role has exited by itself; returns whether it did.
    pub fn wait_exit(&mut self, name: &str, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            for (n, child) in self.procs.iter_mut() {
                if n == name {
                    if let Ok(Some(_)) = child.try_wait() {
                        return true;
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// A connection pool to this system's database.
    pub async fn pool(&self) -> sqlx::PgPool {
        sqlx::postgres::PgPoolOptions::new()
            .max_connections(4)
            .connect(&self.db_url)
            .await
            .expect("connect to the test database")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Sends a request; returns (status, JSON body or Null).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        call_at(&self.http, &self.base, method, path, token, body).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, token, Some(body))
            .await
    }

    /// Registers `nickname` (e-mail `<nickname>@example.org`, password
    /// `password-<nickname>`); returns (token, user id).
    pub async fn register(&self, nickname: &str) -> (String, String) {
        let (status, body) = self
            .post("/api/auth/register", None, registration(nickname))
            .await;
        assert_eq!(status, 201, "register {nickname}: {body}");
        (
            body["token"].as_str().expect("token").to_string(),
            body["user"]["id"].as_str().expect("id").to_string(),
        )
    }

    /// The value of metric `name` (a line `name VALUE`) in the gateway's
    /// `/metrics`, if it is there.
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let text = self
            .http
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
    }

    /// Logs `nickname` in again (a new session, password as `register`
    /// sets it); returns the token.
    pub async fn login(&self, nickname: &str) -> String {
        let (status, body) = self
            .post(
                "/api/auth/login",
                None,
                json!({"login": nickname, "password": format!("password-{nickname}")}),
            )
            .await;
        assert_eq!(status, 200, "login {nickname}: {body}");
        body["token"].as_str().expect("token").to_string()
    }

    /// Registers every nickname, at most `REGISTER_CONCURRENCY` at a time;
    /// returns their (token, user id) in the order given.
    pub async fn register_many(&self, nicknames: &[String]) -> Vec<(String, String)> {
        use futures::StreamExt;
        futures::stream::iter(nicknames.iter().map(|n| self.register(n)))
            .buffered(REGISTER_CONCURRENCY)
            .collect()
            .await
    }
}

/// Sends a request to `base`.
pub async fn call_at(
    http: &reqwest::Client,
    base: &str,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = http.request(method, format!("{base}{path}"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, value)
}

/// A valid registration body for `nickname`.
pub fn registration(nickname: &str) -> Value {
    json!({
        "nickname": nickname,
        "email": format!("{nickname}@example.org"),
        "password": format!("password-{nickname}"),
        "first_name": "Test",
        "last_name": "User",
        "age": 30,
        "gender": "unspecified",
    })
}

/// Polls `check` until it returns `Some`, or panics after `within`.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    until(within, || {
        let checked = check();
        async move {
            checked
                .await
                .ok_or_else(|| format!("timed out waiting for {what}"))
        }
    })
    .await
}

/// Polls `check` until it returns `Ok`; after `within`, panics with the
/// last `Err` (what was missing, and what was seen instead).
pub async fn until<T, F, Fut>(within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + within;
    loop {
        match check().await {
            Ok(v) => return v,
            Err(why) => assert!(Instant::now() < deadline, "{why}"),
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Metadata of an event a test appends itself.
pub fn test_metadata() -> forum_events::Metadata {
    forum_events::Metadata {
        correlation_id: Uuid::new_v4(),
        causation_id: Uuid::new_v4(),
        actor: None,
        recorded_at_us: 1_700_000_000_000_000,
    }
}

/// Appends straight into the posts log, as the service does (append lock
/// held), on streams of their own so the service's write model never
/// meets them.
pub async fn append_posts(
    pool: &sqlx::PgPool,
    events: Vec<forum_events::NewEvent>,
) -> Vec<forum_events::RecordedEvent> {
    use forum_store::log;
    let mut tx = pool.begin().await.expect("begin");
    log::lock(&mut tx, forum_events::Service::Posts)
        .await
        .expect("lock");
    let pending = events
        .into_iter()
        .map(|event| log::Pending {
            event,
            metadata: test_metadata(),
        })
        .collect();
    let recorded = log::append(&mut tx, forum_events::Service::Posts, pending)
        .await
        .expect("append");
    tx.commit().await.expect("commit");
    recorded
}

/// A `comment_created` whose payload does not decode.
pub fn undecodable_event() -> forum_events::NewEvent {
    forum_events::NewEvent {
        stream_id: Uuid::new_v4(),
        version: 1,
        event_id: Uuid::new_v4(),
        event_type: "comment_created",
        schema_version: 1,
        payload: vec![0xde, 0xad, 0xbe, 0xef],
    }
}

impl Drop for System {
    fn drop(&mut self) {
        for (_, child) in self.procs.iter_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Best-effort clean-up of the database and the stream.
        let _ = Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-q",
                "-c",
                &format!("drop database if exists {} with (force)", self.db_name),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let prefix = self.prefix.clone();
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                if let Ok(client) = async_nats::connect(NATS_URL).await {
                    let js = async_nats::jetstream::new(client);
                    let subjects = forum_events::subject::Subjects::new(&prefix);
                    let _ = js.delete_stream(subjects.stream_name()).await;
                }
            });
        })
        .join();
    }
}
pub mod ws;

//! NATS locked down: every test starts its own nats-server from the
//! repository's `nats.conf` (rewritten for a free port, a temporary store
//! and the test's prefix, permissions unchanged), runs the forum against it
//! with the users of that file, and checks that what is not granted is
//! refused, and that no event on the bus carries an e-mail or a password
//! hash.

mod common;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{eventually, System};
use forum_events::subject::Subjects;
use futures::{FutureExt, StreamExt};
use serde_json::json;
use uuid::Uuid;

/// The example passwords of `nats.conf`.
fn password(user: &str) -> String {
    format!("example-{user}-password")
}

/// A nats-server of our own, configured by the repository's `nats.conf`.
struct Nats {
    url: String,
    dir: PathBuf,
    child: Child,
}

impl Nats {
    /// Starts nats-server with `nats.conf` rewritten: the port, the store
    /// directory, the size of the file store, no monitoring port, and the
    /// prefix `forum` (and the stream `FORUM_EVENTS`) replaced by `prefix`'s.
    fn start(prefix: &str) -> Nats {
        // A port found free may be taken by another test's server before
        // ours binds it: each try names its server and checks the name.
        for _ in 0..10 {
            if let Some(nats) = Self::try_start(prefix) {
                return nats;
            }
        }
        panic!("nats-server did not start");
    }

    fn try_start(prefix: &str) -> Option<Nats> {
        let conf = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/nats.conf"))
            .expect("read nats.conf");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let name = format!("forum-test-{}", Uuid::new_v4().simple());
        let dir = std::env::temp_dir().join(&name);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let stream = Subjects::new(prefix).stream_name();
        let mut out = format!("server_name: {name}\n");
        for line in conf.lines() {
            let trimmed = line.trim_start();
            let line = if trimmed.starts_with("port:") {
                format!("host: 127.0.0.1\nport: {port}")
            } else if trimmed.starts_with("http_port:") {
                continue;
            } else if trimmed.starts_with("store_dir:") {
                format!("store_dir: {:?}", dir.join("js").display().to_string())
            } else if trimmed.starts_with("max_file_store:") {
                "max_file_store: 1GB".to_string()
            } else {
                line.replace("\"forum.", &format!("\"{prefix}."))
                    .replace("FORUM_EVENTS", &stream)
            };
            out.push_str(&line);
            out.push('\n');
        }
        assert!(
            out.contains(&format!("\"{prefix}.cmd.>\"")) && !out.contains("\"forum."),
            "the prefix was not substituted:\n{out}"
        );
        let path = dir.join("nats.conf");
        std::fs::write(&path, out).expect("write the config");
        let child = Command::new("/usr/sbin/nats-server")
            .arg("-c")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("log")).expect("log"))
            .spawn()
            .expect("start nats-server");
        let mut nats = Nats {
            url: format!("nats://127.0.0.1:{port}"),
            dir,
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = nats.child.try_wait() {
                return None;
            }
            if let Some(info) = server_info(port) {
                return info
                    .contains(&format!("\"server_name\":\"{name}\""))
                    .then_some(nats);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// A client connected as `user`, with the server errors it receives.
    async fn client(&self, user: &str) -> (async_nats::Client, Arc<Mutex<Vec<String>>>) {
        let errors = Arc::new(Mutex::new(Vec::new()));
        let seen = errors.clone();
        let client =
            async_nats::ConnectOptions::with_user_and_password(user.into(), password(user))
                .event_callback(move |event| {
                    let seen = seen.clone();
                    async move {
                        if let async_nats::Event::ServerError(e) = event {
                            seen.lock().expect("errors").push(e.to_string());
                        }
                    }
                })
                .connect(&self.url)
                .await
                .unwrap_or_else(|e| panic!("connect as {user}: {e}"));
        (client, errors)
    }

    /// The environment of a role connecting as `user`.
    fn env(&self, user: &str) -> Vec<(String, String)> {
        vec![
            // Many processes per test: a small pool each.
            ("FORUM_DB_MAX_CONNECTIONS".into(), "4".into()),
            ("FORUM_NATS_URL".into(), self.url.clone()),
            ("FORUM_NATS_USER".into(), user.into()),
            ("FORUM_NATS_PASSWORD".into(), password(user)),
        ]
    }
}

/// The INFO line a NATS server on `port` greets a connection with.
fn server_info(port: u16) -> Option<String> {
    use std::io::BufRead;
    let stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let mut line = String::new();
    std::io::BufReader::new(stream).read_line(&mut line).ok()?;
    line.starts_with("INFO").then_some(line)
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Returns once the server has taken every subscription `client` made so
/// far: `flush` only writes them out, so a message to itself, on a subject
/// it subscribes to after them, comes back only after they took effect.
async fn synced(client: &async_nats::Client, subjects: &Subjects) {
    let subject = subjects.gateway(&format!("sync-{}", Uuid::new_v4().simple()));
    let mut echo = client.subscribe(subject.clone()).await.expect("subscribe");
    client
        .publish(subject, Bytes::from_static(b"sync"))
        .await
        .expect("publish");
    tokio::time::timeout(Duration::from_secs(10), echo.next())
        .await
        .expect("the echo in time")
        .expect("echo");
}

fn refs(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// Everything published on `<prefix>.evt.>`, as seen by the `forum` user.
struct Tap {
    messages: Arc<Mutex<Vec<(String, Bytes)>>>,
}

impl Tap {
    async fn start(nats: &Nats, prefix: &str) -> Tap {
        let (client, _) = nats.client("forum").await;
        let mut sub = client
            .subscribe(Subjects::new(prefix).all_events())
            .await
            .expect("subscribe");
        synced(&client, &Subjects::new(prefix)).await;
        let messages = Arc::new(Mutex::new(Vec::new()));
        let into = messages.clone();
        tokio::spawn(async move {
            let _client = client;
            while let Some(m) = sub.next().await {
                into.lock()
                    .expect("tap")
                    .push((m.subject.to_string(), m.payload));
            }
        });
        Tap { messages }
    }

    fn subjects(&self) -> Vec<String> {
        self.messages
            .lock()
            .expect("tap")
            .iter()
            .map(|(s, _)| s.clone())
            .collect()
    }
}

/// Registers alice and bob, writes a post and a comment, reads them back,
/// and checks the notification the deriver made; returns alice's token.
async fn write_and_read(sys: &System) -> String {
    let (alice, _) = sys.register("alice").await;
    let (bob, _) = sys.register("bob").await;
    let (status, post) = sys
        .post(
            "/api/posts",
            Some(&alice),
            json!({"title": "Locked down", "content": "c", "categories": ["general"]}),
        )
        .await;
    assert_eq!(status, 201, "{post}");
    let id = post["id"].as_str().expect("id");
    let (status, body) = sys
        .post(
            &format!("/api/posts/{id}/comments"),
            Some(&bob),
            json!({"content": "a comment"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, read) = sys.get(&format!("/api/posts/{id}"), Some(&bob)).await;
    assert_eq!(status, 200, "{read}");
    assert_eq!(read["title"], "Locked down");
    assert_eq!(read["comment_count"], 1);
    let (status, notes) = sys.get("/api/notifications", Some(&alice)).await;
    assert_eq!(status, 200, "{notes}");
    assert_eq!(notes["unread_count"], 1, "{notes}");
    let (status, body) = sys
        .post(
            "/api/auth/login",
            None,
            json!({"login": "bob@example.org", "password": "password-bob"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    alice
}

/// No e-mail address, password or password hash in any event on the bus.
fn assert_no_secrets(tap: &Tap) {
    let messages = tap.messages.lock().expect("tap");
    for (subject, payload) in messages.iter() {
        for secret in [
            &b"@example.org"[..],
            &b"$argon2id$"[..],
            &b"password-alice"[..],
            &b"password-bob"[..],
        ] {
            assert!(
                !payload.windows(secret.len()).any(|w| w == secret),
                "{subject} carries {:?}",
                String::from_utf8_lossy(secret)
            );
        }
    }
    // The registrations are there, in their public form.
    let registered: Vec<forum_events::auth::UserRegistered> = messages
        .iter()
        .filter(|(s, _)| s.ends_with(".evt.auth.user_registered"))
        .map(|(_, p)| {
            let e = forum_events::RecordedEvent::from_bytes(p).expect("envelope");
            assert_eq!(e.schema_version, forum_events::auth::USER_REGISTERED_PUBLIC);
            match e.decode().expect("payload") {
                forum_events::auth::AuthEvent::UserRegistered(u) => u,
                other => panic!("not a registration: {other:?}"),
            }
        })
        .collect();
    let nicks: Vec<&str> = registered.iter().map(|u| u.nickname.as_str()).collect();
    assert_eq!(nicks, ["alice", "bob"]);
    assert!(registered
        .iter()
        .all(|u| u.email.is_empty() && u.password_hash.is_empty()));
}

/// Waits until the tap has seen an event of every subject in `wanted`.
async fn tap_sees(tap: &Tap, prefix: &str, wanted: &[&str]) {
    eventually(Duration::from_secs(30), "events on the bus", || async {
        let seen = tap.subjects();
        wanted
            .iter()
            .all(|w| seen.contains(&format!("{prefix}.evt.{w}")))
            .then_some(())
    })
    .await;
}

const WANTED: [&str; 5] = [
    "auth.user_registered",
    "auth.session_started",
    "posts.post_created",
    "posts.comment_created",
    "notifications.notification_created",
];

#[tokio::test]
async fn forum_up_as_its_nats_user_works_end_to_end_and_the_bus_carries_no_email_or_hash() {
    let mut sys = System::empty();
    let nats = Nats::start(&sys.prefix);
    let tap = Tap::start(&nats, &sys.prefix).await;
    let env = nats.env("forum");
    let base = sys.spawn_gateway_like("up", &["up", "--listen", "127.0.0.1:0"], &refs(&env));
    sys.base = base.clone();
    sys.gateways.push(base);
    write_and_read(&sys).await;
    tap_sees(&tap, &sys.prefix, &WANTED).await;
    assert_no_secrets(&tap);
}

#[tokio::test]
async fn every_role_on_its_own_with_its_own_nats_user_works_end_to_end() {
    let mut sys = System::empty();
    let nats = Nats::start(&sys.prefix);
    let tap = Tap::start(&nats, &sys.prefix).await;
    sys.spawn("migrate", &["migrate"], &refs(&nats.env("migrate")));
    assert!(
        sys.wait_exit("migrate", Duration::from_secs(60)),
        "migrate did not finish"
    );
    for service in ["auth", "posts", "chat", "notifications"] {
        sys.spawn(service, &["service", service], &refs(&nats.env(service)));
    }
    // The projector holds one connection per log it follows, out of its pool.
    let mut projector = nats.env("projector");
    projector.push(("FORUM_DB_MAX_CONNECTIONS".into(), "12".into()));
    sys.spawn("projector", &["projector"], &refs(&projector));
    sys.spawn_gateway(&refs(&nats.env("gateway")));
    write_and_read(&sys).await;
    tap_sees(&tap, &sys.prefix, &WANTED).await;
    assert_no_secrets(&tap);
}

#[tokio::test]
async fn a_client_without_credentials_is_refused_and_the_gateway_user_cannot_forge_events_or_take_commands(
) {
    let (_, prefix) = common::names();
    let nats = Nats::start(&prefix);
    let subjects = Subjects::new(&prefix);

    // No credentials, or a wrong password: refused at connect.
    assert!(async_nats::connect(&nats.url).await.is_err());
    let wrong = async_nats::ConnectOptions::with_user_and_password("gateway".into(), "nope".into())
        .connect(&nats.url)
        .await;
    assert!(wrong.is_err(), "a wrong password was accepted");

    // An observer with the union's rights.
    let (observer, _) = nats.client("forum").await;
    let mut events = observer
        .subscribe(subjects.all_events())
        .await
        .expect("subscribe");
    let mut probes = observer
        .subscribe(subjects.gateway("probe"))
        .await
        .expect("subscribe");
    synced(&observer, &subjects).await;

    let (gateway, errors) = nats.client("gateway").await;
    // Taking commands: the subscription is refused.
    let mut stolen = gateway
        .subscribe(subjects.commands_of(forum_events::Service::Auth))
        .await
        .expect("subscribe is sent");
    // Forging an event: the publish is refused and delivered to nobody.
    gateway
        .publish(
            subjects.event(forum_events::Service::Auth, "session_revoked"),
            Bytes::from_static(b"forged"),
        )
        .await
        .expect("publish is sent");
    // Then a message it may send: once the observer has it, the forged one
    // would have arrived before it (one publisher, one subscriber: in order).
    gateway
        .publish(subjects.gateway("probe"), Bytes::from_static(b"probe"))
        .await
        .expect("publish");
    gateway.flush().await.expect("flush");
    let probe = tokio::time::timeout(Duration::from_secs(10), probes.next())
        .await
        .expect("the probe in time")
        .expect("probe");
    assert_eq!(&probe.payload[..], b"probe");
    assert!(
        events.next().now_or_never().is_none(),
        "the forged event was delivered"
    );
    // The server said so, for both.
    let errors = eventually(Duration::from_secs(10), "permission errors", || {
        let errors = errors.clone();
        async move {
            let errors = errors.lock().expect("errors").clone();
            let lower: Vec<String> = errors.iter().map(|e| e.to_lowercase()).collect();
            (lower
                .iter()
                .any(|e| e.contains("permissions violation for subscription"))
                && lower
                    .iter()
                    .any(|e| e.contains("permissions violation for publish")))
            .then_some(errors)
        }
    })
    .await;
    assert!(
        errors
            .iter()
            .any(|e| e.contains(&format!("{prefix}.cmd.auth.>"))),
        "{errors:?}"
    );
    // A command sent now reaches no one through the refused subscription:
    // the observer sends it, then a probe the gateway user may receive; once
    // the probe is in, the command would have been delivered before it.
    let mut back = gateway
        .subscribe(subjects.gateway("back"))
        .await
        .expect("subscribe");
    synced(&gateway, &subjects).await;
    observer
        .publish(
            subjects.command(forum_events::Service::Auth, "login"),
            Bytes::from_static(b"secret command"),
        )
        .await
        .expect("publish");
    observer
        .publish(subjects.gateway("back"), Bytes::from_static(b"back"))
        .await
        .expect("publish");
    observer.flush().await.expect("flush");
    let probe = tokio::time::timeout(Duration::from_secs(10), back.next())
        .await
        .expect("the probe in time")
        .expect("probe");
    assert_eq!(&probe.payload[..], b"back");
    assert!(
        !matches!(stolen.next().now_or_never(), Some(Some(_))),
        "the gateway user received a command"
    );

    // A service may publish only its own events.
    let (auth, auth_errors) = nats.client("auth").await;
    auth.publish(
        subjects.event(forum_events::Service::Posts, "post_created"),
        Bytes::from_static(b"forged"),
    )
    .await
    .expect("publish is sent");
    auth.flush().await.expect("flush");
    eventually(Duration::from_secs(10), "the auth user's violation", || {
        let e = auth_errors.clone();
        async move {
            e.lock()
                .expect("errors")
                .iter()
                .any(|e| {
                    e.to_lowercase()
                        .contains("permissions violation for publish")
                })
                .then_some(())
        }
    })
    .await;
}

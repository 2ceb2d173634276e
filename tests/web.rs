//! The web page (`GET /`), end to end: the real binary serves it, and
//! headless chromium (Debian's `/usr/bin/chromium`, driven by
//! `playwright-core` from `tests/web/`) uses it as people would. Each
//! browser test runs one node script, `tests/web/<name>.mjs BASE_URL ...`,
//! which drives the page by roles and labels, waits for conditions with
//! deadlines, prints one line per step and exits 0 when every step passed.
//! The scripts save screenshots of the main views to
//! `target/screenshots/`, or to `docs/screenshots/` (the README's) when
//! `UPDATE_SCREENSHOTS=1`, so a test run leaves the tracked files alone.
//!
//! `scripts/web-deps.sh` installs what they need (chromium, `npm ci`).
//!
//! The reconnect script asks this file to stop and start its gateway: it
//! prints `@@kill` or `@@start [NAME=VALUE ...]` and waits for `ok` on its
//! standard input.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use common::System;

/// How long one browser script may run on a slow, loaded machine.
const SCRIPT_DEADLINE: Duration = Duration::from_secs(480);

/// The browser tests make many requests from one address in a few
/// seconds; the per-address rate limits are not what they test.
const NO_RATE_LIMITS: (&str, &str) = ("FORUM_RATE_LIMITS", "off");

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

/// Fails with a hint when the browser or the node packages are missing.
fn check_tools() {
    let web = root().join("tests/web");
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.is_ok_and(|o| o.status.success()),
        "node is missing: the browser tests need Node.js 20 or later"
    );
    assert!(
        chromium().exists(),
        "{} is missing: run scripts/web-deps.sh (it installs Debian's chromium)",
        chromium().display()
    );
    assert!(
        web.join("node_modules/playwright-core/package.json")
            .exists(),
        "tests/web/node_modules is missing: run scripts/web-deps.sh (npm ci in tests/web)"
    );
}

/// A running browser script: its output lines as they come.
struct Script {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    output: Vec<String>,
    deadline: Instant,
}

impl Script {
    /// Starts `node tests/web/<name>.mjs args...`.
    fn start(name: &str, args: &[&str]) -> Script {
        check_tools();
        let web = root().join("tests/web");
        let screenshots = if std::env::var("UPDATE_SCREENSHOTS").is_ok_and(|v| v == "1") {
            root().join("docs/screenshots")
        } else {
            root().join("target/screenshots")
        };
        let mut child = Command::new("node")
            .arg(web.join(format!("{name}.mjs")))
            .args(args)
            .current_dir(&web)
            .env("SCREENSHOTS", &screenshots)
            .env("FAILURES", std::env::temp_dir())
            .env("CHROMIUM", chromium())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start node");
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        for (stream, prefix) in [
            (Box::new(stdout) as Box<dyn std::io::Read + Send>, ""),
            (Box::new(stderr), "stderr: "),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(format!("{prefix}{line}")).is_err() {
                        break;
                    }
                }
            });
        }
        Script {
            name: name.to_string(),
            stdin: child.stdin.take(),
            child,
            lines,
            output: Vec::new(),
            deadline: Instant::now() + SCRIPT_DEADLINE,
        }
    }

    /// The next line, `None` once the script closed its output.
    fn next_line(&mut self) -> Option<String> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        match self.lines.recv_timeout(left) {
            Ok(line) => {
                println!("[{}] {line}", self.name);
                self.output.push(line.clone());
                Some(line)
            }
            Err(RecvTimeoutError::Disconnected) => None,
            Err(RecvTimeoutError::Timeout) => {
                let _ = self.child.kill();
                panic!(
                    "{}.mjs did not finish within {SCRIPT_DEADLINE:?}:\n{}",
                    self.name,
                    self.output.join("\n")
                );
            }
        }
    }

    /// Answers the script's request.
    fn reply(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("the script's stdin");
        writeln!(stdin, "{line}").expect("write to the script");
        stdin.flush().expect("flush to the script");
    }

    /// Runs the script to its end, answering its `@@` requests with
    /// `handle`; asserts that it exits 0.
    fn finish(mut self, mut handle: impl FnMut(&str)) {
        while let Some(line) = self.next_line() {
            if let Some(request) = line.strip_prefix("@@") {
                handle(request);
                self.reply("ok");
            }
        }
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait for node") {
                break status;
            }
            if Instant::now() > self.deadline {
                let _ = self.child.kill();
                panic!("{}.mjs did not exit", self.name);
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(
            status.success(),
            "{}.mjs failed ({status}):\n{}",
            self.name,
            self.output.join("\n")
        );
    }
}

/// Runs a browser script that needs nothing from this side.
fn run_script(name: &str, args: &[&str]) {
    Script::start(name, args).finish(|request| panic!("unexpected request {request}"));
}

#[tokio::test]
async fn the_page_script_and_style_are_served_with_their_types_and_a_strict_policy() {
    let sys = System::up_with(&[NO_RATE_LIMITS]).await;
    let get = |path: &str| sys.http.get(sys.url(path)).send();
    let page = get("/").await.expect("GET /");
    assert_eq!(page.status(), 200);
    let headers = page.headers().clone();
    let html = page.text().await.expect("the page");
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(header("content-type"), "text/html; charset=utf-8");
    assert_eq!(header("x-content-type-options"), "nosniff");
    let csp = header("content-security-policy");
    for directive in [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "object-src 'none'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{directive} in {csp}");
    }
    assert!(!csp.contains("unsafe"), "{csp}");
    assert!(html.contains("<script type=\"module\" src=\"/assets/app.js\">"));
    assert!(html.contains("<link rel=\"stylesheet\" href=\"/assets/style.css\">"));

    for (path, kind) in [
        ("/assets/app.js", "text/javascript; charset=utf-8"),
        ("/assets/chat.js", "text/javascript; charset=utf-8"),
        ("/assets/style.css", "text/css; charset=utf-8"),
    ] {
        let response = get(path).await.expect(path);
        assert_eq!(response.status(), 200, "{path}");
        let headers = response.headers();
        assert_eq!(headers["content-type"], kind, "{path}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert!(headers.contains_key("content-security-policy"), "{path}");
        assert!(!response.text().await.expect(path).is_empty(), "{path}");
    }
    // Only the page and its files: any other path is the API's 404.
    let (status, body) = sys.get("/assets/missing.js", None).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "not_found");
    let (status, _) = sys.get("/index.html", None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_person_registers_logs_in_and_uses_the_feed_live_in_a_browser() {
    let sys = System::up_with(&[NO_RATE_LIMITS]).await;
    run_script("feed", &[&sys.base]);
}

#[tokio::test]
async fn two_people_chat_type_and_get_notifications_live_in_their_browsers() {
    let sys = System::up_with(&[NO_RATE_LIMITS]).await;
    run_script("chat", &[&sys.base]);
}

/// A free port on the loopback address (free when this returns).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

#[tokio::test]
async fn the_page_catches_up_with_no_gap_and_no_duplicate_after_its_gateway_restarts() {
    let mut sys = System::empty();
    sys.migrate();
    // Small pools: eight processes share the test server's connections (the
    // projector keeps the harness's, it holds one per log listener).
    let small = ("FORUM_DB_MAX_CONNECTIONS", "4");
    sys.spawn("auth", &["service", "auth"], &[small]);
    sys.spawn("posts", &["service", "posts"], &[small]);
    sys.spawn("chat", &["service", "chat"], &[small]);
    sys.spawn("notifications", &["service", "notifications"], &[small]);
    sys.spawn("projector", &["projector"], &[]);
    // The page's gateway, on a port of its own so it can come back there;
    // another one for the writes made while it is down.
    let listen = format!("127.0.0.1:{}", free_port());
    let gateway_args = ["gateway", "--listen", listen.as_str()];
    let page_base = sys.spawn_gateway_like("page-gateway", &gateway_args, &[small, NO_RATE_LIMITS]);
    let other_base = sys.spawn_gateway(&[small, NO_RATE_LIMITS]);

    let script = Script::start("reconnect", &[&page_base, &other_base]);
    script.finish(|request| {
        let mut words = request.split_whitespace();
        match words.next() {
            Some("kill") => sys.kill("page-gateway"),
            Some("start") => {
                let env: Vec<(&str, &str)> = words
                    .filter_map(|w| w.split_once('='))
                    .chain([small, NO_RATE_LIMITS])
                    .collect();
                let base = sys.spawn_gateway_like("page-gateway", &gateway_args, &env);
                assert_eq!(base, page_base, "the gateway came back elsewhere");
            }
            _ => panic!("unknown request {request}"),
        }
    });
}

//! The live feed as a client sees it (`GET /api/ws`): connect with a bearer
//! token (and a resume cursor), read the `hello` frame, then read and time
//! the frames that carry a benchmark marker, remembering the last cursor.
//! Also the pure part: counting gaps, duplicates and reorderings.
//!
//! Markers: every item a scenario creates has `bench#<seq>#` in its title or
//! content, so a frame is matched to its write without a full parse.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde::Deserialize;
use tokio::net::TcpStream;
use tokio::sync::{watch, Notify};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::{Error, Result};

/// One client socket.
pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The first frame of every socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// Whose socket.
    pub user_id: String,
    /// Whether the cursor given was resumed from.
    pub resumed: bool,
}

/// The marker put in the title or content of item `seq`.
pub fn mark(seq: u32) -> String {
    format!("bench#{seq}#")
}

/// The marker's number in a frame's text, if any.
pub fn marker(text: &str) -> Option<u32> {
    let at = text.find("bench#")? + "bench#".len();
    let rest = &text[at..];
    let end = rest.find('#')?;
    rest[..end].parse().ok()
}

#[derive(Deserialize)]
struct Head {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    cursor: Option<serde_json::Value>,
    #[serde(default)]
    data: Option<HelloData>,
}

#[derive(Deserialize)]
struct HelloData {
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    resumed: Option<bool>,
}

fn cursor_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Opens a socket as the holder of `token`, resuming after `cursor` when
/// given, and reads its `hello` frame (within 15 s).
///
/// # Errors
/// [`Error::FeatureMissing`] when the upgrade is answered 404; a refused
/// upgrade or a first frame that is not `hello` otherwise.
pub async fn connect(ws_base: &str, token: &str, cursor: Option<&str>) -> Result<(Ws, Hello)> {
    let url = match cursor {
        Some(c) => format!("{ws_base}/api/ws?cursor={}", crate::api::percent_encode(c)),
        None => format!("{ws_base}/api/ws"),
    };
    let mut req = url.as_str().into_client_request()?;
    let auth = HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|e| Error::Protocol(e.to_string()))?;
    req.headers_mut().insert("authorization", auth);
    // Small buffers: tungstenite zero-fills its read buffer, and this process
    // holds up to 10,000 sockets.
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_message_size(Some(1 << 20))
        .max_frame_size(Some(1 << 20));
    let (mut ws, _) =
        match tokio_tungstenite::connect_async_with_config(req, Some(config), true).await {
            Ok(x) => x,
            Err(WsError::Http(resp)) if resp.status() == 404 => {
                return Err(Error::FeatureMissing(
                    "GET /api/ws answers 404 (no live feed in this build)".into(),
                ))
            }
            Err(WsError::Http(resp)) => {
                return Err(Error::Protocol(format!(
                    "WebSocket upgrade answered {}",
                    resp.status()
                )))
            }
            Err(e) => return Err(e.into()),
        };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .map_err(|_| Error::Timeout("hello frame".into()))?;
        match msg {
            Some(Ok(Message::Text(t))) => {
                let head: Head = serde_json::from_str(t.as_str())?;
                if head.kind != "hello" {
                    return Err(Error::Protocol(format!(
                        "first frame is {:?}, not hello",
                        head.kind
                    )));
                }
                let data = head.data.unwrap_or(HelloData {
                    user_id: None,
                    resumed: None,
                });
                return Ok((
                    ws,
                    Hello {
                        user_id: data.user_id.unwrap_or_default(),
                        resumed: data.resumed.unwrap_or(false),
                    },
                ));
            }
            Some(Ok(Message::Close(c))) => {
                return Err(Error::Protocol(format!("closed before hello: {c:?}")))
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.into()),
            None => return Err(Error::Protocol("closed before hello".into())),
        }
    }
}

/// Counts the sockets that have every marker they wait for.
#[derive(Debug, Default)]
pub struct Progress {
    done: AtomicUsize,
    notify: Notify,
}

impl Progress {
    /// A shared counter at zero.
    pub fn new() -> Arc<Progress> {
        Arc::new(Progress::default())
    }

    /// Sockets complete so far.
    pub fn done(&self) -> usize {
        self.done.load(Ordering::Acquire)
    }

    fn complete(&self) {
        self.done.fetch_add(1, Ordering::AcqRel);
        self.notify.notify_waiters();
    }

    /// Waits until `n` sockets are complete or `deadline`; returns whether
    /// they are.
    pub async fn wait_for(&self, n: usize, deadline: tokio::time::Instant) -> bool {
        loop {
            let notified = self.notify.notified();
            if self.done() >= n {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.done() >= n;
            }
        }
    }
}

/// What a listening socket records.
#[derive(Debug, Clone)]
pub struct Listen {
    /// The frame type whose markers are recorded (e.g. `post.new`).
    pub kind: &'static str,
    /// Markers `lo..hi` the socket waits for; it counts as complete in
    /// `progress` once it has them all.
    pub expect: Option<(u32, u32)>,
    /// The shared completion counter.
    pub progress: Arc<Progress>,
    /// At most this many markers are kept.
    pub max_marks: usize,
    /// The socket stops reading at this instant whatever happens.
    pub deadline: tokio::time::Instant,
    /// Whether to parse every frame for its cursor (only resumes need it).
    pub track_cursor: bool,
}

/// What one socket saw.
#[derive(Debug, Clone, Default)]
pub struct SocketLog {
    /// (marker, when) of every recorded frame, in arrival order.
    pub marks: Vec<(u32, Instant)>,
    /// The cursor of the last frame that had one.
    pub last_cursor: Option<String>,
    /// Text frames read.
    pub frames: u64,
    /// Pings from the server.
    pub pings: u64,
    /// Why it stopped, when the server ended it (close frame or error).
    pub ended: Option<String>,
    /// When it had every expected marker.
    pub completed_at: Option<Instant>,
}

/// Reads frames until `stop` turns true, the server ends the socket, or
/// the deadline passes. Pings are answered by the library as they are read.
pub async fn listen(mut ws: Ws, l: Listen, mut stop: watch::Receiver<bool>) -> SocketLog {
    let mut log = SocketLog::default();
    let (lo, hi) = l.expect.unwrap_or((0, 0));
    let mut seen = vec![false; (hi.saturating_sub(lo)) as usize];
    let mut have = 0usize;
    let waiting = !seen.is_empty();
    let kind = format!("\"type\":\"{}\"", l.kind);
    if *stop.borrow() {
        return log;
    }
    loop {
        let msg = tokio::select! {
            _ = stop.changed() => break,
            _ = tokio::time::sleep_until(l.deadline) => break,
            m = ws.next() => m,
        };
        match msg {
            Some(Ok(Message::Text(t))) => {
                log.frames += 1;
                let text = t.as_str();
                // Cheap on purpose: this process reads up to ~100,000 frames
                // a second on the cores the server uses too.
                if l.track_cursor {
                    if let Ok(Head {
                        cursor: Some(c), ..
                    }) = serde_json::from_str::<Head>(text)
                    {
                        log.last_cursor = Some(cursor_text(&c));
                    }
                }
                let Some(seq) = marker(text) else { continue };
                // The server writes compact JSON; anything else is parsed.
                if !text.contains(&kind)
                    && !serde_json::from_str::<Head>(text).is_ok_and(|h| h.kind == l.kind)
                {
                    continue;
                }
                if log.marks.len() < l.max_marks {
                    log.marks.push((seq, Instant::now()));
                }
                if waiting && seq >= lo && seq < hi {
                    let slot = &mut seen[(seq - lo) as usize];
                    if !*slot {
                        *slot = true;
                        have += 1;
                        if have == seen.len() {
                            log.completed_at = Some(Instant::now());
                            l.progress.complete();
                        }
                    }
                }
            }
            Some(Ok(Message::Ping(_))) => log.pings += 1,
            Some(Ok(Message::Close(c))) => {
                log.ended = Some(match c {
                    Some(f) => format!("closed {} {}", u16::from(f.code), f.reason),
                    None => "closed".into(),
                });
                break;
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                log.ended = Some(format!("error: {e}"));
                break;
            }
            None => {
                log.ended = Some("eof".into());
                break;
            }
        }
    }
    log
}

/// Gaps, duplicates and reorderings of what one socket received against
/// what it should have received.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeqCheck {
    /// Expected markers never received.
    pub missing: usize,
    /// Markers received more than once (each extra copy counts).
    pub duplicates: usize,
    /// Markers received before one that was expected earlier.
    pub out_of_order: usize,
    /// Markers received that were not expected.
    pub unexpected: usize,
}

impl SeqCheck {
    /// Adds another socket's counts.
    pub fn add(&mut self, o: SeqCheck) {
        self.missing += o.missing;
        self.duplicates += o.duplicates;
        self.out_of_order += o.out_of_order;
        self.unexpected += o.unexpected;
    }
}

/// Compares `received` (in arrival order) with `expected` (in the order the
/// events happened).
pub fn check_sequence(expected: &[u32], received: &[u32]) -> SeqCheck {
    let index: HashMap<u32, usize> = expected.iter().enumerate().map(|(i, s)| (*s, i)).collect();
    let mut seen = HashSet::new();
    let mut c = SeqCheck::default();
    let mut last: Option<usize> = None;
    for r in received {
        let Some(&i) = index.get(r) else {
            c.unexpected += 1;
            continue;
        };
        if !seen.insert(*r) {
            c.duplicates += 1;
            continue;
        }
        if last.is_some_and(|l| i < l) {
            c.out_of_order += 1;
        }
        last = Some(last.map_or(i, |l| l.max(i)));
    }
    c.missing = expected.len() - seen.len();
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_found_in_frame_text() {
        let frame =
            r#"{"type":"post.new","cursor":"p:12","data":{"title":"hello bench#42# world"}}"#;
        assert_eq!(marker(frame), Some(42));
        assert_eq!(marker(&mark(7)), Some(7));
        assert_eq!(marker("bench#x#"), None);
        assert_eq!(marker("bench#12"), None);
        assert_eq!(marker("nothing"), None);
    }

    #[test]
    fn a_clean_sequence_has_no_gap_duplicate_or_reordering() {
        assert_eq!(check_sequence(&[1, 2, 3], &[1, 2, 3]), SeqCheck::default());
    }

    #[test]
    fn gaps_duplicates_reorderings_and_strangers_are_counted() {
        let c = check_sequence(&[1, 2, 3, 4, 5], &[1, 3, 2, 3, 3, 9, 5]);
        assert_eq!(
            c,
            SeqCheck {
                missing: 1,
                duplicates: 2,
                out_of_order: 1,
                unexpected: 1
            }
        );
        let mut total = SeqCheck::default();
        total.add(c);
        total.add(check_sequence(&[1], &[]));
        assert_eq!(total.missing, 2);
    }

    #[test]
    fn cursors_keep_their_text() {
        assert_eq!(cursor_text(&serde_json::json!("a:1")), "a:1");
        assert_eq!(cursor_text(&serde_json::json!(17)), "17");
    }

    #[tokio::test]
    async fn progress_waits_for_the_count_or_the_deadline() {
        let p = Progress::new();
        let soon = tokio::time::Instant::now() + Duration::from_millis(20);
        assert!(!p.wait_for(1, soon).await);
        let q = p.clone();
        tokio::spawn(async move { q.complete() });
        let later = tokio::time::Instant::now() + Duration::from_secs(5);
        assert!(p.wait_for(1, later).await);
    }
}

//! One WebSocket: upgrade, `hello`, resume, then live frames, pings and
//! client frames until it closes.
//!
//! Before the upgrade, a cookie-authenticated request is checked against
//! the allowed origins ([`super::origin`], `403`), and the user takes one of
//! their [`Settings::max_per_user`](super::Settings) places on this gateway
//! (`429` when none is left).
//!
//! A socket is one task holding its connection (with a small read buffer),
//! its bounded queue and a [`Control`] through which the hub asks it to
//! close (slow consumer, logout, shutdown). Writes are cut short by such a
//! request, and each frame must reach the connection within the write
//! deadline, so a client that stops reading cannot hold the task: it is
//! closed with 4008. The socket also closes with 4001 when its token
//! expires.
//!
//! # Resume
//! A socket given a cursor is registered but not live (see [`Hub`]): the
//! resume reads the logs after the cursor a page at a time, merges the
//! three logs in the order events happened, and pushes each frame into a
//! bounded resume queue, waiting for room (it never overflows), while the
//! socket task writes that queue out. It catches up with the feed in
//! rounds; then the socket goes live at the feed's cursor and the resume
//! sends what remains up to that cursor, while later events wait in the
//! live queue, which the socket drains only once the resume queue is done.
//! Every event up to the live cursor comes from the logs and every one
//! after it from the feed: no gap, no duplicate. In memory a resume holds
//! at most its queue and one page per log, however far behind the client is.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, Uri};
use axum::response::Response;
use bytes::Bytes;
use forum_events::chat::conversation_id;
use forum_events::{RecordedEvent, Service};
use forum_store::log;
use futures::SinkExt;
use tokio::sync::mpsc;
use tokio::time::Instant;
use uuid::Uuid;

use super::cursor::{Cursor, LOGS};
use super::frames::{self, Effect};
use super::hub::{Control, Hub, Slot, RESUME_FAILED, SESSION_ENDED, SLOW_CONSUMER};
use super::typing::{TypingRate, TYPING_PER_SECOND};
use crate::error::{ApiError, Result};
use crate::extract::AuthUser;
use crate::routes::users;
use crate::AppState;

/// Close code for a client frame over the size limit.
pub const TOO_BIG: u16 = 1009;
/// Close code for a socket that stopped answering pings.
pub const NOT_ANSWERING: u16 = 1001;
/// `Retry-After` (seconds) when a user already holds every socket allowed.
pub const FULL_RETRY_AFTER: u64 = 5;

/// Socket read buffer: client frames are small, and every byte of it is
/// resident for every socket.
const READ_BUFFER: usize = 256;
/// How long a closing handshake may take.
const CLOSE_WAIT: Duration = Duration::from_secs(3);
/// Frames written before one flush.
const WRITE_BATCH: usize = 64;
/// Events read from one log in one query during a resume (at most the
/// queue's size).
const RESUME_PAGE: usize = 256;
/// Rounds a resume makes to catch up with the feed before it goes live
/// (what happened during the last one then waits in the live queue).
const CATCH_UP_ROUNDS: usize = 8;

/// The live feed.
#[utoipa::path(get, path = "/api/ws", tag = "live",
    params(("cursor" = Option<String>, Query, description = "The `cursor` of the last frame received: \
        replays every event after it for this user, then goes live. Too old or unparsable: `hello` \
        says `resumed: false`.")),
    responses((status = 101, description = "Switching to the WebSocket protocol. The first frame is \
        `{\"type\":\"hello\",\"cursor\":C,\"data\":{\"user_id\",\"resumed\"}}` (its cursor is where the \
        socket starts); then one JSON text frame per event `{\"type\",\"cursor\",\"data\"}`, and \
        `presence` and `typing` frames without a cursor. More than 5 typing frames a second get an \
        `error` frame with code `rate_limited` and are dropped. Close codes: 4008 slow consumer (its \
        queue overflowed, or a frame was not taken within the write deadline; resume with the \
        cursor), 4001 session ended (logout or expiry of the token), 1009 client frame too big, \
        1001 going away or not answering pings, 1011 a resume failed half-way (resume again)."),
              (status = 400, body = crate::error::ErrorBody, description = "not a WebSocket upgrade"),
              (status = 401, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody, description = "authenticated by the \
                session cookie from a page whose `Origin` is neither the gateway's own nor one of \
                `FORUM_ALLOWED_ORIGINS` (an upgrade without `Origin`, or authenticated by the \
                `Authorization` header, is not checked)"),
              (status = 429, body = crate::error::ErrorBody, description = "the user already holds \
                `FORUM_WS_MAX_PER_USER` sockets on this gateway; with `Retry-After`")),
    security(("bearer" = []), ("cookie" = [])))]
pub async fn upgrade(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    uri: Uri,
    Query(q): Query<HashMap<String, String>>,
    ws: std::result::Result<
        WebSocketUpgrade,
        axum::extract::ws::rejection::WebSocketUpgradeRejection,
    >,
) -> Result<Response> {
    let ws = ws.map_err(|e| {
        ApiError::Validation(
            [(
                "upgrade".to_string(),
                format!("expected a WebSocket upgrade: {e}"),
            )]
            .into(),
        )
    })?;
    let settings = state.live.settings.clone();
    if !has_bearer(&headers) && !settings.allowed_origins.allows(&headers, &uri) {
        return Err(ApiError::Forbidden);
    }
    // The extractor checked the token; its expiry ends the socket.
    let exp = crate::extract::token(&headers)
        .and_then(|t| state.tokens.verify(t))
        .ok_or(ApiError::Unauthorized)?
        .exp;
    let slot = state
        .live
        .hub
        .reserve(user.user_id, settings.max_per_user)
        .ok_or_else(|| {
            crate::metrics::rate_limited("socket_per_user");
            ApiError::RateLimited(FULL_RETRY_AFTER)
        })?;
    let hard_limit = (settings.max_message * 2).max(64 * 1024);
    let cursor = q.get("cursor").cloned();
    Ok(ws
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .max_write_buffer_size(hard_limit * 4)
        .max_message_size(hard_limit)
        .max_frame_size(hard_limit)
        .on_upgrade(move |socket| run(state, socket, user, cursor, slot, exp)))
}

/// Whether the request carries a bearer token, which then authenticates
/// it (the header wins over the cookie, see [`crate::extract::token`]).
fn has_bearer(headers: &HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .is_some_and(|(scheme, t)| scheme.eq_ignore_ascii_case("bearer") && !t.trim().is_empty())
}

/// The instant of `at_ms` (milliseconds since the epoch); `None` when that
/// is beyond what a timer can hold.
fn instant_of(at_ms: i64) -> Option<Instant> {
    let left_ms = at_ms
        .saturating_sub(chrono::Utc::now().timestamp_millis())
        .max(0);
    Instant::now().checked_add(Duration::from_millis(left_ms.unsigned_abs()))
}

/// The socket's place in the hub and among its user's sockets, given up
/// however the task ends.
struct Registered {
    hub: Arc<Hub>,
    id: u64,
    _slot: Slot,
}

impl Registered {
    /// Leaves the hub (no more frames, offline if it was the user's last
    /// socket); the slot stays taken until the task ends.
    fn leave(&self) {
        self.hub.unregister(self.id);
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.leave();
    }
}

/// Why writing stopped.
enum Stop {
    /// The connection broke.
    Broken,
    /// A frame was not taken within the write deadline.
    TooSlow,
    /// The hub asked to close with this code.
    Close(u16),
}

/// The frames waiting for a socket: the resume's, then the feed's.
struct Outbox {
    /// Filled by the resume; `None` once it is done and drained.
    resume: Option<mpsc::Receiver<Utf8Bytes>>,
    /// Filled by the hub once the socket is live.
    live: mpsc::Receiver<Utf8Bytes>,
}

impl Outbox {
    /// Up to `max` frames, resumed ones before any live one; `None` when
    /// the hub let go of the socket. Cancel-safe.
    async fn next(&mut self, max: usize) -> Option<Vec<Utf8Bytes>> {
        if let Some(resume) = &mut self.resume {
            if let Some(first) = resume.recv().await {
                return Some(batch(resume, first, max));
            }
            self.resume = None;
        }
        let first = self.live.recv().await?;
        Some(batch(&mut self.live, first, max))
    }
}

fn batch(rx: &mut mpsc::Receiver<Utf8Bytes>, first: Utf8Bytes, max: usize) -> Vec<Utf8Bytes> {
    let mut batch = vec![first];
    while batch.len() < max {
        match rx.try_recv() {
            Ok(f) => batch.push(f),
            Err(_) => break,
        }
    }
    batch
}

fn texts(frames: Vec<Utf8Bytes>) -> Vec<Message> {
    frames.into_iter().map(Message::Text).collect()
}

async fn run(
    state: AppState,
    mut socket: WebSocket,
    user: AuthUser,
    cursor: Option<String>,
    slot: Slot,
    exp: i64,
) {
    let live = state.live.clone();
    let settings = live.settings.clone();
    let deadline = settings.write_timeout;
    let (tx, rx) = mpsc::channel::<Utf8Bytes>(settings.queue);
    let control = Arc::new(Control::default());
    let from = cursor.as_deref().and_then(Cursor::decode);
    let registration = live.hub.register(
        user.user_id,
        user.session_id,
        tx,
        control.clone(),
        from.is_none(),
    );
    let registered = Registered {
        hub: live.hub.clone(),
        id: registration.id,
        _slot: slot,
    };
    // The token is accepted through second `exp`; the session itself ends
    // at its `expires_at` (within that second), when a request with the
    // token is refused: the socket closes then.
    let token_ends_ms = exp.saturating_add(1).saturating_mul(1000);
    // A logout between the upgrade and the registration was not seen by
    // the hub: look once more.
    let session = users::read::session_expiry(&state.pool, user.session_id, user.user_id);
    let ends_ms = match Box::pin(session).await {
        // Rounded up: not a millisecond before the session ends.
        Ok(Some(at)) => (at.timestamp_micros().saturating_add(999) / 1000).min(token_ends_ms),
        Ok(None) => return Box::pin(close(&mut socket, SESSION_ENDED, "session ended")).await,
        Err(e) => {
            tracing::warn!(error = %e, "session check failed; keeping the socket");
            token_ends_ms
        }
    };
    let expires = instant_of(ends_ms);
    let mut out = Outbox {
        resume: None,
        live: rx,
    };
    let mut resuming = from.is_some();
    let mut replay: Pin<Box<dyn Future<Output = Result<()>> + Send + '_>> = match from {
        Some(from) => {
            let (resume_tx, resume_rx) = mpsc::channel(settings.queue);
            out.resume = Some(resume_rx);
            Box::pin(resume(
                &state,
                user.user_id,
                from,
                registration.id,
                resume_tx,
            ))
        }
        None => {
            let hello = frames::hello(user.user_id, false, &registration.start.encode());
            let hello = vec![Message::Text(Utf8Bytes::from(hello))];
            if let Err(stop) = write(&mut socket, &control, deadline, hello).await {
                return Box::pin(stopped(&mut socket, stop, &registered)).await;
            }
            Box::pin(std::future::ready(Ok(())))
        }
    };
    let expiry = async move {
        match expires {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    };
    let mut expiry = std::pin::pin!(expiry);
    let batch_max = WRITE_BATCH.min(settings.queue).max(1);
    let mut client = Client {
        nickname: None,
        known: None,
        rate: TypingRate::default(),
    };
    let ping_every = settings.ping;
    let mut ping = tokio::time::interval_at(Instant::now() + ping_every, ping_every);
    let mut answered = true;
    loop {
        tokio::select! {
            code = control.closed() => {
                return Box::pin(stopped(&mut socket, Stop::Close(code), &registered)).await
            }
            () = &mut expiry => {
                tracing::debug!(user = %user.user_id, "session expired");
                return Box::pin(stopped(&mut socket, Stop::Close(SESSION_ENDED), &registered)).await;
            }
            done = &mut replay, if resuming => {
                resuming = false;
                if let Err(e) = done {
                    tracing::warn!(error = %e, "resume failed half-way; closing the socket");
                    return Box::pin(stopped(&mut socket, Stop::Close(RESUME_FAILED), &registered)).await;
                }
            }
            frames = out.next(batch_max) => {
                let Some(frames) = frames else {
                    // The hub let go of the socket after asking it to close.
                    let code = control.code().unwrap_or(SLOW_CONSUMER);
                    return Box::pin(stopped(&mut socket, Stop::Close(code), &registered)).await;
                };
                if let Err(stop) = write(&mut socket, &control, deadline, texts(frames)).await {
                    return Box::pin(stopped(&mut socket, stop, &registered)).await;
                }
            }
            msg = socket.recv() => match msg {
                Some(Ok(Message::Text(text))) => {
                    answered = true;
                    if text.len() > settings.max_message {
                        return Box::pin(close(&mut socket, TOO_BIG, "message too big")).await;
                    }
                    if let Some(reply) = Box::pin(client.handle(&state, user.user_id, text.as_str())).await {
                        let reply = vec![Message::Text(Utf8Bytes::from(reply))];
                        if let Err(stop) = write(&mut socket, &control, deadline, reply).await {
                            return Box::pin(stopped(&mut socket, stop, &registered)).await;
                        }
                    }
                }
                Some(Ok(Message::Binary(_))) => {
                    answered = true;
                    let reply = frames::error("validation_failed", "frames must be JSON text");
                    let reply = vec![Message::Text(Utf8Bytes::from(reply))];
                    if let Err(stop) = write(&mut socket, &control, deadline, reply).await {
                        return Box::pin(stopped(&mut socket, stop, &registered)).await;
                    }
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => answered = true,
                Some(Ok(Message::Close(frame))) => {
                    crate::metrics::ws_closed(frame.map_or(1005, |f| f.code));
                    return;
                }
                None => {
                    crate::metrics::ws_closed(1006);
                    return;
                }
                Some(Err(e)) => {
                    if too_big(e) {
                        return Box::pin(close(&mut socket, TOO_BIG, "message too big")).await;
                    }
                    crate::metrics::ws_closed(1006);
                    return;
                }
            },
            _ = ping.tick() => {
                if !answered {
                    tracing::debug!(user = %user.user_id, "socket stopped answering pings");
                    return Box::pin(close(&mut socket, NOT_ANSWERING, "not answering pings")).await;
                }
                answered = false;
                let ping = vec![Message::Ping(Bytes::new())];
                if let Err(stop) = write(&mut socket, &control, deadline, ping).await {
                    return Box::pin(stopped(&mut socket, stop, &registered)).await;
                }
            }
        }
    }
}

fn too_big(e: axum::Error) -> bool {
    matches!(
        e.into_inner().downcast_ref::<tungstenite::Error>(),
        Some(tungstenite::Error::Capacity(_))
    )
}

/// Writes `messages` and flushes, unless the hub asks to close first; each
/// message, and the flush, must get through within `deadline`.
async fn write(
    socket: &mut WebSocket,
    control: &Control,
    deadline: Duration,
    messages: Vec<Message>,
) -> std::result::Result<(), Stop> {
    let io = async {
        for message in messages {
            match tokio::time::timeout(deadline, socket.feed(message)).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(Stop::Broken),
                Err(_) => return Err(Stop::TooSlow),
            }
        }
        match tokio::time::timeout(deadline, socket.flush()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(Stop::Broken),
            Err(_) => Err(Stop::TooSlow),
        }
    };
    tokio::select! {
        r = io => r,
        code = control.closed() => Err(Stop::Close(code)),
    }
}

/// Ends the socket after writing stopped: leaves the hub at once, then
/// closes with the code the reason calls for.
async fn stopped(socket: &mut WebSocket, stop: Stop, registered: &Registered) {
    registered.leave();
    let code = match stop {
        Stop::Broken => {
            crate::metrics::ws_closed(1006);
            return;
        }
        Stop::TooSlow => {
            tracing::debug!("a frame missed the write deadline; closing as a slow consumer");
            SLOW_CONSUMER
        }
        Stop::Close(code) => code,
    };
    let reason = match code {
        SLOW_CONSUMER => "slow consumer",
        SESSION_ENDED => "session ended",
        RESUME_FAILED => "resume failed",
        _ => "going away",
    };
    Box::pin(close(socket, code, reason)).await;
}

/// Sends a close frame and waits briefly for the client's answer.
async fn close(socket: &mut WebSocket, code: u16, reason: &'static str) {
    crate::metrics::ws_closed(code);
    let frame = Message::Close(Some(CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    }));
    let _ = tokio::time::timeout(CLOSE_WAIT, async {
        if socket.send(frame).await.is_ok() {
            while let Some(Ok(msg)) = socket.recv().await {
                if matches!(msg, Message::Close(_)) {
                    break;
                }
            }
        }
    })
    .await;
}

/// Replays, through `out`, the events after `from` that concern `user`,
/// then makes socket `id` live (see the module docs). The first frame is
/// `hello`; when `from` cannot be resumed (from another system, or more
/// than the resume limit behind) it says `resumed: false` and the socket
/// goes live at once.
///
/// # Errors
/// When reading the logs fails after `hello` said `resumed: true`.
async fn resume(
    state: &AppState,
    user: Uuid,
    from: Cursor,
    id: u64,
    out: mpsc::Sender<Utf8Bytes>,
) -> Result<()> {
    let hub = &state.live.hub;
    let settings = &state.live.settings;
    let mut replay = Replay {
        state,
        user,
        out,
        page: RESUME_PAGE.min(settings.queue).max(1),
        shown: from,
        streams: Vec::new(),
        streams_upto: 0,
        sent: 0,
    };
    let mut target = hub.cursor();
    let resumable = from.within(&target)
        && match Box::pin(replay.count(target, settings.resume_max)).await {
            Ok(n) => n <= settings.resume_max,
            Err(e) => {
                tracing::warn!(error = %e, "resume failed; the client reloads");
                false
            }
        };
    if !resumable {
        let start = hub.go_live(id).ok_or_else(gone)?;
        return replay
            .send(frames::hello(user, false, &start.encode()))
            .await;
    }
    replay
        .send(frames::hello(user, true, &from.encode()))
        .await?;
    for _ in 0..CATCH_UP_ROUNDS {
        Box::pin(replay.send_upto(target)).await?;
        target = hub.cursor();
        if target == replay.shown {
            break;
        }
    }
    let start = hub.go_live(id).ok_or_else(gone)?;
    Box::pin(replay.send_upto(start)).await?;
    crate::metrics::ws_resumed(replay.sent.saturating_sub(1));
    Ok(())
}

fn gone() -> ApiError {
    ApiError::Unavailable("the socket closed".into())
}

/// A resume in progress.
struct Replay<'a> {
    state: &'a AppState,
    user: Uuid,
    out: mpsc::Sender<Utf8Bytes>,
    /// Events per query.
    page: usize,
    /// The cursor of the last frame sent: every event up to it that
    /// concerns the user has been sent.
    shown: Cursor,
    /// The user's conversations (chat streams), as the chat projection
    /// knew them at chat position `streams_upto`.
    streams: Vec<Uuid>,
    streams_upto: u64,
    /// Frames queued so far, `hello` included.
    sent: u64,
}

/// One log's part of a replay: what was read, up to where, and what is
/// waiting to be sent.
struct Source {
    service: Service,
    /// Read up to this position.
    read: u64,
    /// Replayed up to this position.
    upto: u64,
    buf: VecDeque<RecordedEvent>,
}

impl Replay<'_> {
    /// Queues one frame, waiting for room.
    async fn send(&mut self, text: String) -> Result<()> {
        self.out
            .send(Utf8Bytes::from(text))
            .await
            .map_err(|_| gone())?;
        self.sent += 1;
        Ok(())
    }

    /// Makes sure the user's conversations are known up to chat position
    /// `upto`: the chat projection has seen every message up to it.
    async fn know_conversations(&mut self, upto: u64) -> Result<()> {
        if upto <= self.streams_upto {
            return Ok(());
        }
        self.state.watermarks.wait(&[(Service::Chat, upto)]).await?;
        let others: Vec<Uuid> =
            sqlx::query_scalar("select other_id from read.conversations where user_id = $1")
                .bind(self.user)
                .fetch_all(&self.state.pool)
                .await?;
        self.streams = others
            .iter()
            .map(|o| conversation_id(self.user, *o))
            .collect();
        self.streams_upto = upto;
        Ok(())
    }

    /// How many events after `shown` up to `upto` concern the user,
    /// counting no further than just past `max`.
    async fn count(&mut self, upto: Cursor, max: u64) -> Result<u64> {
        let mut n = upto.get(Service::Posts) - self.shown.get(Service::Posts);
        let (c0, c1) = (self.shown.get(Service::Chat), upto.get(Service::Chat));
        if n <= max && c1 > c0 {
            self.know_conversations(c1).await?;
            let streams = self.streams.clone();
            n += self
                .count_between(Service::Chat, &streams, c0, c1, max - n + 1)
                .await?;
        }
        let (n0, n1) = (
            self.shown.get(Service::Notifications),
            upto.get(Service::Notifications),
        );
        if n <= max && n1 > n0 {
            n += self
                .count_between(Service::Notifications, &[self.user], n0, n1, max - n + 1)
                .await?;
        }
        Ok(n)
    }

    async fn count_between(
        &self,
        service: Service,
        streams: &[Uuid],
        after: u64,
        upto: u64,
        limit: u64,
    ) -> Result<u64> {
        let n: i64 = sqlx::query_scalar(&format!(
            "select count(*) from (select 1 from {}.events
                                   where stream_id = any($1) and position > $2 and position <= $3
                                   limit $4) t",
            service.as_str()
        ))
        .bind(streams)
        .bind(after as i64)
        .bind(upto as i64)
        .bind(limit as i64)
        .fetch_one(&self.state.pool)
        .await?;
        Ok(n as u64)
    }

    /// Sends the events after `shown` up to `upto` that concern the user,
    /// in the order they happened (each log in its own order), reading a
    /// page per log at a time; `shown` is `upto` afterwards.
    async fn send_upto(&mut self, upto: Cursor) -> Result<()> {
        if upto.get(Service::Chat) > self.shown.get(Service::Chat) {
            self.know_conversations(upto.get(Service::Chat)).await?;
        }
        let mut sources = LOGS.map(|service| Source {
            service,
            read: self.shown.get(service),
            upto: upto.get(service),
            buf: VecDeque::new(),
        });
        loop {
            for source in &mut sources {
                if source.buf.is_empty() && source.read < source.upto {
                    Box::pin(self.fill(source)).await?;
                }
            }
            let next = sources
                .iter_mut()
                .filter_map(|s| {
                    let e = s.buf.front()?;
                    Some(((e.metadata.recorded_at_us, e.service, e.position), s))
                })
                .min_by_key(|(key, _)| *key)
                .and_then(|(_, s)| s.buf.pop_front());
            let Some(event) = next else { break };
            if let Ok(Effect::Frame(r)) = frames::render(&event) {
                if r.audience.includes(self.user) {
                    self.shown.set(event.service, event.position);
                    self.send(r.frame(&self.shown.encode())).await?;
                }
            }
        }
        self.shown = upto;
        Ok(())
    }

    /// Reads the next page of `source`'s log.
    async fn fill(&self, source: &mut Source) -> Result<()> {
        let page = self.page as u64;
        let mut conn = self.state.pool.acquire().await?;
        let mut events = match source.service {
            // Positions are gap-free: exactly the events wanted.
            Service::Posts => {
                let want = (source.upto - source.read).min(page);
                log::read_after(&mut conn, Service::Posts, source.read, want as i64).await?
            }
            Service::Chat if !self.streams.is_empty() => {
                log::read_streams_between(
                    &mut conn,
                    Service::Chat,
                    &self.streams,
                    source.read,
                    source.upto,
                    page as i64,
                )
                .await?
            }
            Service::Notifications => {
                log::read_streams_between(
                    &mut conn,
                    Service::Notifications,
                    &[self.user],
                    source.read,
                    source.upto,
                    page as i64,
                )
                .await?
            }
            _ => Vec::new(),
        };
        drop(conn);
        events.retain(|e| e.position > source.read && e.position <= source.upto);
        // A short page is the last one.
        source.read = match events.last() {
            Some(last) if events.len() as u64 >= page => last.position,
            _ => source.upto,
        };
        source.buf.extend(events);
        Ok(())
    }
}

/// What a socket remembers about its client's frames.
struct Client {
    nickname: Option<String>,
    /// The last addressee found to exist.
    known: Option<Uuid>,
    /// Its recent typing frames.
    rate: TypingRate,
}

impl Client {
    /// Handles one client frame; returns an `error` frame for a bad one.
    async fn handle(&mut self, state: &AppState, me: Uuid, text: &str) -> Option<String> {
        match self.typing(state, me, text).await {
            Ok(()) => None,
            Err((code, message)) => Some(frames::error(code, &message)),
        }
    }

    async fn typing(
        &mut self,
        state: &AppState,
        me: Uuid,
        text: &str,
    ) -> std::result::Result<(), (&'static str, String)> {
        let frames::ClientFrame::Typing { to, active } = frames::parse_client(text)?;
        if !self.rate.allow(Instant::now()) {
            crate::metrics::rate_limited("typing");
            return Err((
                "rate_limited",
                format!("at most {TYPING_PER_SECOND} typing frames a second; this one was dropped"),
            ));
        }
        if to == me {
            return Err((
                "validation_failed",
                "one does not type to oneself".to_string(),
            ));
        }
        let internal = |e: ApiError| {
            tracing::error!(error = %e, "typing look-up failed");
            ("internal", "internal error".to_string())
        };
        if self.known != Some(to) {
            if !users::read::exists(&state.pool, to)
                .await
                .map_err(internal)?
            {
                return Err(("not_found", "no such user".to_string()));
            }
            self.known = Some(to);
        }
        if self.nickname.is_none() {
            self.nickname = users::read::nickname(&state.pool, me)
                .await
                .map_err(internal)?;
        }
        let nickname = self.nickname.as_deref().unwrap_or_default();
        state.live.typing.send(me, nickname, to, active).await;
        Ok(())
    }
}

//! One WebSocket: upgrade, `hello`, resume, then live frames, pings and
//! client frames until it closes.
//!
//! A socket is one task holding its connection (with a small read buffer),
//! its bounded queue and a [`Control`] through which the hub asks it to
//! close (slow consumer, logout, shutdown). Writes are cut short by such a
//! request, so a client that stops reading cannot hold the task.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::Response;
use bytes::Bytes;
use forum_events::chat::conversation_id;
use forum_events::{RecordedEvent, Service};
use forum_store::log;
use futures::SinkExt;
use serde_json::Value;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::cursor::Cursor;
use super::frames::{self, Effect};
use super::hub::{Control, Hub, SESSION_ENDED};
use crate::error::{ApiError, Result};
use crate::extract::AuthUser;
use crate::AppState;

/// Close code for a client frame over the size limit.
pub const TOO_BIG: u16 = 1009;
/// Close code for a socket that stopped answering pings.
pub const NOT_ANSWERING: u16 = 1001;

/// Socket read buffer: client frames are small, and every byte of it is
/// resident for every socket.
const READ_BUFFER: usize = 256;
/// How long a closing handshake may take.
const CLOSE_WAIT: Duration = Duration::from_secs(3);
/// Frames written before one flush.
const WRITE_BATCH: usize = 64;

/// The live feed.
#[utoipa::path(get, path = "/api/ws", tag = "live",
    params(("cursor" = Option<String>, Query, description = "The `cursor` of the last frame received: \
        replays every event after it for this user, then goes live. Too old or unparsable: `hello` \
        says `resumed: false`.")),
    responses((status = 101, description = "Switching to the WebSocket protocol. The first frame is \
        `{\"type\":\"hello\",\"cursor\":C,\"data\":{\"user_id\",\"resumed\"}}` (its cursor is where the \
        socket starts); then one JSON text frame per event `{\"type\",\"cursor\",\"data\"}`, and \
        `presence` and `typing` frames without a cursor. Close codes: 4008 slow consumer (resume \
        with the cursor), 4001 session ended (logout), 1009 client frame too big, 1001 going away."),
              (status = 400, body = crate::error::ErrorBody, description = "not a WebSocket upgrade"),
              (status = 401, body = crate::error::ErrorBody)),
    security(("bearer" = []), ("cookie" = [])))]
pub async fn upgrade(
    State(state): State<AppState>,
    user: AuthUser,
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
    let hard_limit = (settings.max_message * 2).max(64 * 1024);
    let cursor = q.get("cursor").cloned();
    Ok(ws
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .max_write_buffer_size(hard_limit * 4)
        .max_message_size(hard_limit)
        .max_frame_size(hard_limit)
        .on_upgrade(move |socket| run(state, socket, user, cursor)))
}

/// Unregisters the socket however the task ends.
struct Registered {
    hub: Arc<Hub>,
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.hub.unregister(self.id);
    }
}

/// Why writing stopped.
enum Stop {
    /// The connection broke.
    Broken,
    /// The hub asked to close with this code.
    Close(u16),
}

async fn run(state: AppState, mut socket: WebSocket, user: AuthUser, cursor: Option<String>) {
    let live = state.live.clone();
    let (tx, mut rx) = mpsc::channel::<Utf8Bytes>(live.settings.queue);
    let control = Arc::new(Control::default());
    let registration = live
        .hub
        .register(user.user_id, user.session_id, tx, control.clone());
    let _registered = Registered {
        hub: live.hub.clone(),
        id: registration.id,
    };
    // A logout between the upgrade and the registration was not seen by
    // the hub: look once more.
    match Box::pin(session_open(&state, user)).await {
        Ok(true) => {}
        Ok(false) => return Box::pin(close(&mut socket, SESSION_ENDED, "session ended")).await,
        Err(e) => tracing::warn!(error = %e, "session check failed; keeping the socket"),
    }
    let from = cursor.as_deref().and_then(Cursor::decode);
    let replay = match from {
        Some(from) => {
            match Box::pin(resume(&state, user.user_id, from, registration.start)).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(error = %e, "resume failed; the client reloads");
                    None
                }
            }
        }
        None => None,
    };
    let (resumed, mut position) = match (&replay, from) {
        (Some(_), Some(from)) => (true, from),
        _ => (false, registration.start),
    };
    let hello = frames::hello(user.user_id, resumed, &position.encode());
    let mut first = vec![Utf8Bytes::from(hello)];
    for event in replay.into_iter().flatten() {
        if let Ok(Effect::Frame(r)) = frames::render(&event) {
            if r.audience.includes(user.user_id) {
                position.set(event.service, event.position);
                first.push(Utf8Bytes::from(r.frame(&position.encode())));
            }
        }
    }
    if let Err(stop) = write(&mut socket, &control, first).await {
        return Box::pin(stopped(&mut socket, stop)).await;
    }
    let mut client = Client {
        nickname: None,
        known: None,
    };
    let ping_every = live.settings.ping;
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + ping_every, ping_every);
    let mut answered = true;
    loop {
        tokio::select! {
            code = control.closed() => return Box::pin(stopped(&mut socket, Stop::Close(code))).await,
            frame = rx.recv() => {
                let Some(frame) = frame else { return };
                let mut batch = vec![frame];
                while batch.len() < WRITE_BATCH {
                    match rx.try_recv() {
                        Ok(f) => batch.push(f),
                        Err(_) => break,
                    }
                }
                if let Err(stop) = write(&mut socket, &control, batch).await {
                    return Box::pin(stopped(&mut socket, stop)).await;
                }
            }
            msg = socket.recv() => match msg {
                Some(Ok(Message::Text(text))) => {
                    answered = true;
                    if text.len() > live.settings.max_message {
                        return Box::pin(close(&mut socket, TOO_BIG, "message too big")).await;
                    }
                    if let Some(reply) = Box::pin(client.handle(&state, user.user_id, text.as_str())).await {
                        if let Err(stop) = write(&mut socket, &control, vec![Utf8Bytes::from(reply)]).await {
                            return Box::pin(stopped(&mut socket, stop)).await;
                        }
                    }
                }
                Some(Ok(Message::Binary(_))) => {
                    answered = true;
                    let reply = frames::error("validation_failed", "frames must be JSON text");
                    if let Err(stop) = write(&mut socket, &control, vec![Utf8Bytes::from(reply)]).await {
                        return Box::pin(stopped(&mut socket, stop)).await;
                    }
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => answered = true,
                Some(Ok(Message::Close(_))) | None => return,
                Some(Err(e)) => {
                    if too_big(e) {
                        return Box::pin(close(&mut socket, TOO_BIG, "message too big")).await;
                    }
                    return;
                }
            },
            _ = ping.tick() => {
                if !answered {
                    tracing::debug!(user = %user.user_id, "socket stopped answering pings");
                    return Box::pin(close(&mut socket, NOT_ANSWERING, "not answering pings")).await;
                }
                answered = false;
                let ping = Message::Ping(Bytes::new());
                let send = async {
                    socket.send(ping).await
                };
                tokio::select! {
                    r = send => if r.is_err() { return },
                    code = control.closed() => return Box::pin(stopped(&mut socket, Stop::Close(code))).await,
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

/// Writes `texts` and flushes, unless the hub asks to close first.
async fn write(
    socket: &mut WebSocket,
    control: &Control,
    texts: Vec<Utf8Bytes>,
) -> std::result::Result<(), Stop> {
    let io = async {
        for text in texts {
            socket.feed(Message::Text(text)).await?;
        }
        socket.flush().await
    };
    tokio::select! {
        r = io => r.map_err(|_| Stop::Broken),
        code = control.closed() => Err(Stop::Close(code)),
    }
}

async fn stopped(socket: &mut WebSocket, stop: Stop) {
    if let Stop::Close(code) = stop {
        let reason = match code {
            super::hub::SLOW_CONSUMER => "slow consumer",
            SESSION_ENDED => "session ended",
            _ => "going away",
        };
        Box::pin(close(socket, code, reason)).await;
    }
}

/// Sends a close frame and waits briefly for the client's answer.
async fn close(socket: &mut WebSocket, code: u16, reason: &'static str) {
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

async fn session_open(state: &AppState, user: AuthUser) -> Result<bool> {
    Ok(sqlx::query_scalar(
        "select exists (select 1 from read.sessions
                        where id = $1 and user_id = $2 and revoked_at is null and expires_at > now())",
    )
    .bind(user.session_id)
    .bind(user.user_id)
    .fetch_one(&state.pool)
    .await?)
}

/// The events after `from` up to `upto` that concern `user`, in the order
/// they happened; `None` when `from` cannot be resumed (from another
/// system, or more than the resume limit behind).
async fn resume(
    state: &AppState,
    user: Uuid,
    from: Cursor,
    upto: Cursor,
) -> Result<Option<Vec<RecordedEvent>>> {
    if !from.within(&upto) {
        return Ok(None);
    }
    let max = state.live.settings.resume_max;
    let (p0, p1) = (from.get(Service::Posts), upto.get(Service::Posts));
    if p1 - p0 > max {
        return Ok(None);
    }
    let mut conn = state.pool.acquire().await?;
    let mut events = Vec::new();
    if p1 > p0 {
        events.extend(log::read_after(&mut conn, Service::Posts, p0, (p1 - p0) as i64).await?);
    }
    let (c0, c1) = (from.get(Service::Chat), upto.get(Service::Chat));
    if c1 > c0 {
        // The user's conversations come from the chat projection: wait
        // until it has seen every message up to the resume point.
        state.watermarks.wait(&[(Service::Chat, c1)]).await?;
        let others: Vec<Uuid> =
            sqlx::query_scalar("select other_id from read.conversations where user_id = $1")
                .bind(user)
                .fetch_all(&mut *conn)
                .await?;
        let streams: Vec<Uuid> = others.iter().map(|o| conversation_id(user, *o)).collect();
        let chat =
            log::read_streams_between(&mut conn, Service::Chat, &streams, c0, c1, max as i64 + 1)
                .await?;
        if chat.len() as u64 > max {
            return Ok(None);
        }
        events.extend(chat);
    }
    let (n0, n1) = (
        from.get(Service::Notifications),
        upto.get(Service::Notifications),
    );
    if n1 > n0 {
        let notes = log::read_streams_between(
            &mut conn,
            Service::Notifications,
            &[user],
            n0,
            n1,
            max as i64 + 1,
        )
        .await?;
        if notes.len() as u64 > max {
            return Ok(None);
        }
        events.extend(notes);
    }
    if events.len() as u64 > max {
        return Ok(None);
    }
    events.sort_by_key(|e| (e.metadata.recorded_at_us, e.service, e.position));
    Ok(Some(events))
}

/// What a socket remembers about its client's frames.
struct Client {
    nickname: Option<String>,
    /// The last addressee found to exist.
    known: Option<Uuid>,
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
        let bad = |m: &str| ("validation_failed", m.to_string());
        let value: Value = serde_json::from_str(text)
            .map_err(|_| ("malformed_json", "frames must be JSON objects".to_string()))?;
        let obj = value
            .as_object()
            .ok_or_else(|| bad("frames must be JSON objects"))?;
        match obj.get("type").and_then(Value::as_str) {
            Some("typing") => {}
            Some(other) => return Err(bad(&format!("unknown frame type {other:?}"))),
            None => return Err(bad("`type` is required")),
        }
        let to = obj
            .get("to")
            .and_then(Value::as_str)
            .and_then(|s| Uuid::parse_str(s).ok())
            .ok_or_else(|| bad("`to` must be a user id"))?;
        let active = obj
            .get("active")
            .and_then(Value::as_bool)
            .ok_or_else(|| bad("`active` must be true or false"))?;
        if to == me {
            return Err(bad("one does not type to oneself"));
        }
        let internal = |e: sqlx::Error| {
            tracing::error!(error = %e, "typing look-up failed");
            ("internal", "internal error".to_string())
        };
        if self.known != Some(to) {
            let exists: bool =
                sqlx::query_scalar("select exists (select 1 from read.users where id = $1)")
                    .bind(to)
                    .fetch_one(&state.pool)
                    .await
                    .map_err(internal)?;
            if !exists {
                return Err(("not_found", "no such user".to_string()));
            }
            self.known = Some(to);
        }
        if self.nickname.is_none() {
            let nick: Option<String> =
                sqlx::query_scalar("select nickname from read.users where id = $1")
                    .bind(me)
                    .fetch_optional(&state.pool)
                    .await
                    .map_err(internal)?;
            self.nickname = nick;
        }
        let nickname = self.nickname.as_deref().unwrap_or_default();
        state.live.typing.send(me, nickname, to, active).await;
        Ok(())
    }
}

//! `Idempotency-Key`: a retried write with the same key, by the same user,
//! within 24 hours, gets the first answer again (status, body and cookie)
//! and changes nothing, whatever happened to the first attempt.
//!
//! Exactly once is kept by the command services, not here: this middleware
//! derives the request's command id from its key and its caller's scope
//! ([`command_id`]) and binds it to the request's digest (method, path and
//! the body's SHA-256). The service records the command's outcome under
//! that id in the transaction that appends its events, so a retry through
//! any gateway finds the first outcome, however the first attempt ended (a
//! `503`, a dropped connection, a process killed after its commit), and the
//! same key with another request is `409 conflict`. On register and login,
//! whose keys share one anonymous scope, that binding is what keeps one
//! client from ever receiving another's answer. A retry never waits on the
//! first attempt: it is a command like any other.
//!
//! The gateways also keep the first `2xx` answers in Postgres
//! (`gateway.idempotency`), written after the answer is sent, so that a
//! retry gets the very same body even when what it shows has changed since
//! (a post's counts); without it, a retry's answer is built from the
//! recorded outcome and today's read models. This cache is only a
//! convenience: its rows expire after 24 hours ([`sweep`]), the services'
//! records never do.
//!
//! A request refused before any work stores nothing: the rate limits run
//! before this middleware, and the token of a route that needs a login is
//! checked here first (`401`).

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use sqlx::{PgPool, Row};
use tokio::sync::watch;
use uuid::Uuid;

use crate::error::ApiError;
use crate::extract::token;
use crate::AppState;

/// The header.
pub const HEADER: &str = "idempotency-key";

/// How long a first answer is kept.
const KEEP_HOURS: i64 = 24;

/// Rows deleted by one statement of the sweep.
const SWEEP_BATCH: i64 = 1000;

/// Batches one sweep deletes at most (the next sweep goes on).
const SWEEP_MAX_BATCHES: usize = 100;

/// The advisory lock class held by the gateway sweeping ("IDEM").
const SWEEP_LOCK_CLASS: i32 = 0x4944_454d;

/// The namespace of command ids derived from keys (UUIDv5).
const COMMAND_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6f72_756d_6964_656d_706f_7465_6e63_7900);

/// Writes that need no login (their key is not scoped to a user).
fn anonymous(path: &str) -> bool {
    matches!(
        path.strip_prefix("/api").unwrap_or(path),
        "/auth/register" | "/auth/login"
    )
}

/// Headers of the first answer that a replay repeats.
const KEPT_HEADERS: [HeaderName; 2] = [header::CONTENT_TYPE, header::SET_COOKIE];

/// The command of a request with an `Idempotency-Key`, for
/// [`crate::bus::Bus::send`] (through [`crate::extract::Origin`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keyed {
    /// Derived from the key and its scope: [`command_id`].
    pub command_id: Uuid,
    /// [`request_digest`] of the request.
    pub digest: [u8; 32],
}

/// The command id of `key` used by `scope` (a user, or the nil id for
/// anonymous requests): the same on every gateway, for every retry.
pub fn command_id(scope: Uuid, key: &str) -> Uuid {
    let mut name = Vec::with_capacity(16 + key.len());
    name.extend_from_slice(scope.as_bytes());
    name.extend_from_slice(key.as_bytes());
    Uuid::new_v5(&COMMAND_ID_NAMESPACE, &name)
}

/// The SHA-256 of a request: its method, path and body.
pub fn request_digest(method: &str, path: &str, body: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(method.as_bytes());
    h.update([0]);
    h.update(path.as_bytes());
    h.update([0]);
    h.update(body);
    h.finalize().into()
}

/// What a key is bound to in the answer cache.
struct Bound<'a> {
    method: &'a str,
    path: &'a str,
    body_digest: &'a [u8],
}

/// The middleware.
pub async fn layer(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(req).await;
    }
    let Some(raw) = req.headers().get(HEADER) else {
        return next.run(req).await;
    };
    let key = match raw.to_str() {
        Ok(k) if (1..=128).contains(&k.chars().count()) => k.to_string(),
        _ => {
            return ApiError::field(
                "Idempotency-Key",
                "must be 1 to 128 visible ASCII characters",
            )
            .into_response()
        }
    };
    let scope = if anonymous(req.uri().path()) {
        // Register and login share the nil scope (a valid token's user
        // when there is one).
        token(req.headers())
            .and_then(|t| state.tokens.verify(t))
            .map_or(Uuid::nil(), |c| c.sub)
    } else {
        // Every other write needs a login: check it first, so a 401 does
        // no work. The route's `AuthUser` reuses this check.
        let Some(t) = token(req.headers()) else {
            return ApiError::Unauthorized.into_response();
        };
        match state.authenticate(t).await {
            Ok(user) => {
                req.extensions_mut().insert(user);
                user.user_id
            }
            Err(e) => return e.into_response(),
        }
    };
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    // The body is read here (at most the API's 64 KiB, within the body
    // timeout) to bind the key to it, then handed on to the route.
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, crate::extract::MAX_BODY).await {
        Ok(bytes) => bytes,
        Err(e) if crate::server::is_body_timeout(&e) => {
            return ApiError::RequestTimeout.into_response()
        }
        Err(_) => return ApiError::PayloadTooLarge.into_response(),
    };
    let body_digest = Sha256::digest(&bytes).to_vec();
    let keyed = Keyed {
        command_id: command_id(scope, &key),
        digest: request_digest(&method, &path, &bytes),
    };
    let mut req = Request::from_parts(parts, Body::from(bytes));
    req.extensions_mut().insert(keyed);
    let bound = Bound {
        method: &method,
        path: &path,
        body_digest: &body_digest,
    };
    match cached(&state.pool, scope, &key, &bound).await {
        Ok(Some(response)) => {
            crate::metrics::idempotent_replay();
            return response;
        }
        Ok(None) => {}
        Err(e) => return e.into_response(),
    }
    let response = next.run(req).await;
    if !response.status().is_success() {
        return response;
    }
    let (parts, body) = response.into_parts();
    let bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(bytes) => bytes,
        Err(e) => return ApiError::Internal(e.to_string()).into_response(),
    };
    let answer = Answer::of(parts.status, &parts.headers, bytes.to_vec());
    let pool = state.pool.clone();
    // Off the answer's path: the write is already recorded by its service.
    tokio::spawn(async move {
        let bound = Bound {
            method: &method,
            path: &path,
            body_digest: &body_digest,
        };
        if let Err(e) = remember(&pool, scope, &key, &bound, &answer).await {
            tracing::warn!(error = ?e, "first answer not cached");
        }
    });
    Response::from_parts(parts, Body::from(bytes))
}

/// The cached first answer of `key` in `scope`, if any; `409` when the key
/// was used for another request.
async fn cached(
    pool: &PgPool,
    scope: Uuid,
    key: &str,
    request: &Bound<'_>,
) -> Result<Option<Response>, ApiError> {
    let row = sqlx::query(
        "select method, path, body_digest, status, headers, body from gateway.idempotency
         where scope = $1 and key = $2
           and created_at >= now() - make_interval(hours => $3)",
    )
    .bind(scope)
    .bind(key)
    .bind(KEEP_HOURS as i32)
    .fetch_optional(pool)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let (m, p): (String, String) = (row.try_get("method")?, row.try_get("path")?);
    let digest: Option<Vec<u8>> = row.try_get("body_digest")?;
    if m != request.method || p != request.path || digest.is_some_and(|d| d != request.body_digest)
    {
        return Err(ApiError::Conflict(
            "this Idempotency-Key was used for another request".into(),
        ));
    }
    // A row without an answer was a claim of an earlier version: the
    // service's record decides.
    let Some(status) = row.try_get::<Option<i32>, _>("status")? else {
        return Ok(None);
    };
    let headers: Option<serde_json::Value> = row.try_get("headers")?;
    let body: Option<Vec<u8>> = row.try_get("body")?;
    Ok(Some(rebuild(status, headers, body.unwrap_or_default())))
}

fn rebuild(status: i32, headers: Option<serde_json::Value>, body: Vec<u8>) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = StatusCode::from_u16(status as u16).unwrap_or(StatusCode::OK);
    if let Some(serde_json::Value::Object(map)) = headers {
        for (name, values) in map {
            let Ok(name) = HeaderName::try_from(name) else {
                continue;
            };
            for v in values.as_array().into_iter().flatten() {
                if let Some(Ok(v)) = v.as_str().map(HeaderValue::from_str) {
                    response.headers_mut().append(name.clone(), v);
                }
            }
        }
    }
    response
}

/// A first answer, as cached.
struct Answer {
    status: u16,
    headers: serde_json::Value,
    body: Vec<u8>,
}

impl Answer {
    fn of(status: StatusCode, headers: &axum::http::HeaderMap, body: Vec<u8>) -> Answer {
        let mut kept = serde_json::Map::new();
        for name in KEPT_HEADERS {
            let values: Vec<serde_json::Value> = headers
                .get_all(&name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .map(|v| serde_json::Value::String(v.to_string()))
                .collect();
            if !values.is_empty() {
                kept.insert(name.to_string(), serde_json::Value::Array(values));
            }
        }
        Answer {
            status: status.as_u16(),
            headers: serde_json::Value::Object(kept),
            body,
        }
    }
}

/// Caches a first answer; the first one cached stays (an expired row is
/// replaced).
async fn remember(
    pool: &PgPool,
    scope: Uuid,
    key: &str,
    request: &Bound<'_>,
    answer: &Answer,
) -> Result<(), ApiError> {
    sqlx::query(
        "insert into gateway.idempotency
             (scope, key, method, path, body_digest, status, headers, body)
         values ($1, $2, $3, $4, $5, $6, $7, $8)
         on conflict (scope, key) do update
             set method = excluded.method, path = excluded.path,
                 body_digest = excluded.body_digest, status = excluded.status,
                 headers = excluded.headers, body = excluded.body, created_at = now()
             where gateway.idempotency.status is null
                or gateway.idempotency.created_at < now() - make_interval(hours => $9)",
    )
    .bind(scope)
    .bind(key)
    .bind(request.method)
    .bind(request.path)
    .bind(request.body_digest)
    .bind(i32::from(answer.status))
    .bind(&answer.headers)
    .bind(&answer.body)
    .bind(KEEP_HOURS as i32)
    .execute(pool)
    .await?;
    Ok(())
}

/// Deletes the answers older than 24 hours every `every`, until `stop`
/// turns true: in batches of 1,000 rows, each in its own short
/// transaction holding an advisory lock, so one gateway sweeps at a time
/// and the others skip their turn.
pub async fn sweep(pool: PgPool, every: Duration, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(every.max(Duration::from_millis(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        match sweep_once(&pool, &stop).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(deleted = n, "expired idempotency keys swept"),
            Err(e) => tracing::warn!(error = ?e, "idempotency sweep failed"),
        }
    }
}

/// One sweep; the rows it deleted.
///
/// # Errors
/// When Postgres fails.
pub async fn sweep_once(pool: &PgPool, stop: &watch::Receiver<bool>) -> Result<u64, ApiError> {
    let mut total = 0;
    for _ in 0..SWEEP_MAX_BATCHES {
        let mut tx = pool.begin().await?;
        let mine: bool = sqlx::query_scalar("select pg_try_advisory_xact_lock($1, 0)")
            .bind(SWEEP_LOCK_CLASS)
            .fetch_one(&mut *tx)
            .await?;
        if !mine {
            // Another gateway is sweeping.
            return Ok(total);
        }
        let deleted = sqlx::query(
            "delete from gateway.idempotency where ctid in (
                 select ctid from gateway.idempotency
                 where created_at < now() - make_interval(hours => $1)
                 limit $2
                 for update skip locked)",
        )
        .bind(KEEP_HOURS as i32)
        .bind(SWEEP_BATCH)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        total += deleted;
        if deleted < SWEEP_BATCH as u64 || *stop.borrow() {
            break;
        }
        // Leave room to the requests between two batches.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(total)
}

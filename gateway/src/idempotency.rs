//! `Idempotency-Key`: a retried write with the same key, by the same user,
//! within 24 hours, gets the first answer again (status, body and cookie)
//! and changes nothing. A key is bound to its request: method, path and a
//! SHA-256 of the body. The same key with another request is `409
//! conflict`; on register and login, whose keys share one anonymous scope,
//! that is what keeps one client from ever receiving another's answer. The answers live in Postgres, so every gateway
//! instance shares them.
//!
//! A request refused before any work stores nothing: the rate limits run
//! before this middleware, the token of a route that needs a login is
//! checked here before the key is claimed (`401` claims nothing), and an
//! answer `401`, `408`, `413`, `415` or `429` from the route gives the claim
//! back instead of remembering it, like a `5xx`.
//!
//! Expired answers (older than 24 hours) are deleted by [`sweep`], in
//! batches, one gateway at a time.

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

/// Statuses that mean the request was refused before any work: the claim
/// is given back rather than remembered.
const REFUSED: [StatusCode; 5] = [
    StatusCode::UNAUTHORIZED,
    StatusCode::REQUEST_TIMEOUT,
    StatusCode::PAYLOAD_TOO_LARGE,
    StatusCode::UNSUPPORTED_MEDIA_TYPE,
    StatusCode::TOO_MANY_REQUESTS,
];

/// Writes that need no login (their key is not scoped to a user).
fn anonymous(path: &str) -> bool {
    matches!(
        path.strip_prefix("/api").unwrap_or(path),
        "/auth/register" | "/auth/login"
    )
}

/// Headers of the first answer that a replay repeats.
const KEPT_HEADERS: [HeaderName; 2] = [header::CONTENT_TYPE, header::SET_COOKIE];

/// What a key is bound to.
struct Bound<'a> {
    method: &'a str,
    path: &'a str,
    digest: &'a [u8],
}

enum Claim {
    Mine,
    Done(Response),
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
        // Every other write needs a login: check it before claiming, so a
        // 401 stores nothing. The route's `AuthUser` reuses this check.
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
    let digest = Sha256::digest(&bytes).to_vec();
    let req = Request::from_parts(parts, Body::from(bytes));
    let request = Bound {
        method: &method,
        path: &path,
        digest: &digest,
    };
    match claim(&state, scope, &key, &request).await {
        Ok(Claim::Done(response)) => {
            state.metrics.idempotent_replay();
            return response;
        }
        Ok(Claim::Mine) => {}
        Err(e) => return e.into_response(),
    }
    let response = next.run(req).await;
    match remember(&state, scope, &key, response).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn claim(
    state: &AppState,
    scope: Uuid,
    key: &str,
    request: &Bound<'_>,
) -> Result<Claim, ApiError> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let inserted = sqlx::query(
            "insert into gateway.idempotency (scope, key, method, path, body_digest)
             values ($1, $2, $3, $4, $6)
             on conflict (scope, key) do update
                 set method = excluded.method, path = excluded.path,
                     body_digest = excluded.body_digest, status = null,
                     headers = null, body = null, created_at = now()
                 where gateway.idempotency.created_at < now() - make_interval(hours => $5)
             returning 1",
        )
        .bind(scope)
        .bind(key)
        .bind(request.method)
        .bind(request.path)
        .bind(KEEP_HOURS as i32)
        .bind(request.digest)
        .fetch_optional(&state.pool)
        .await?;
        if inserted.is_some() {
            return Ok(Claim::Mine);
        }
        let row = sqlx::query(
            "select method, path, body_digest, status, headers, body from gateway.idempotency
             where scope = $1 and key = $2",
        )
        .bind(scope)
        .bind(key)
        .fetch_optional(&state.pool)
        .await?;
        let Some(row) = row else { continue };
        let (m, p): (String, String) = (row.try_get("method")?, row.try_get("path")?);
        let digest: Option<Vec<u8>> = row.try_get("body_digest")?;
        if m != request.method || p != request.path || digest.is_some_and(|d| d != request.digest) {
            return Err(ApiError::Conflict(
                "this Idempotency-Key was used for another request".into(),
            ));
        }
        if let Some(status) = row.try_get::<Option<i32>, _>("status")? {
            let headers: Option<serde_json::Value> = row.try_get("headers")?;
            let body: Option<Vec<u8>> = row.try_get("body")?;
            return Ok(Claim::Done(rebuild(
                status,
                headers,
                body.unwrap_or_default(),
            )));
        }
        // The first request is still running: wait for its answer.
        if tokio::time::Instant::now() > deadline {
            return Err(ApiError::Conflict(
                "a request with this Idempotency-Key is still in progress".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
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

async fn remember(
    state: &AppState,
    scope: Uuid,
    key: &str,
    response: Response,
) -> Result<Response, ApiError> {
    let status = response.status();
    if status.is_server_error() || REFUSED.contains(&status) {
        // Not an answer worth repeating (or refused before any work): let
        // a retry run again.
        sqlx::query(
            "delete from gateway.idempotency where scope = $1 and key = $2 and status is null",
        )
        .bind(scope)
        .bind(key)
        .execute(&state.pool)
        .await?;
        return Ok(response);
    }
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut kept = serde_json::Map::new();
    for name in KEPT_HEADERS {
        let values: Vec<serde_json::Value> = parts
            .headers
            .get_all(&name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(|v| serde_json::Value::String(v.to_string()))
            .collect();
        if !values.is_empty() {
            kept.insert(name.to_string(), serde_json::Value::Array(values));
        }
    }
    sqlx::query(
        "update gateway.idempotency set status = $3, headers = $4, body = $5
         where scope = $1 and key = $2",
    )
    .bind(scope)
    .bind(key)
    .bind(status.as_u16() as i32)
    .bind(serde_json::Value::Object(kept))
    .bind(bytes.as_ref())
    .execute(&state.pool)
    .await?;
    Ok(Response::from_parts(parts, Body::from(bytes)))
}

/// Deletes the answers older than 24 hours every `every`, until `stop`
/// turns true: in batches of [`SWEEP_BATCH`] rows, each in its own short
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

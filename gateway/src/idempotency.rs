//! `Idempotency-Key`: a retried write with the same key, by the same user,
//! within 24 hours, gets the first answer again (status, body and cookie)
//! and changes nothing. The answers live in Postgres, so every gateway
//! instance shares them.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sqlx::Row;
use uuid::Uuid;

use crate::error::ApiError;
use crate::extract::token;
use crate::AppState;

/// The header.
pub const HEADER: &str = "idempotency-key";

/// How long a first answer is kept.
const KEEP_HOURS: i64 = 24;

/// Headers of the first answer that a replay repeats.
const KEPT_HEADERS: [HeaderName; 2] = [header::CONTENT_TYPE, header::SET_COOKIE];

enum Claim {
    Mine,
    Done(Response),
}

/// The middleware.
pub async fn layer(State(state): State<AppState>, req: Request, next: Next) -> Response {
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
    // The scope is the token's user; a bad token is refused later by the
    // route itself, and anonymous writes (register, login) share the nil scope.
    let scope = token(req.headers())
        .and_then(|t| state.tokens.verify(t))
        .map_or(Uuid::nil(), |c| c.sub);
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    match claim(&state, scope, &key, &method, &path).await {
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
    method: &str,
    path: &str,
) -> Result<Claim, ApiError> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let inserted = sqlx::query(
            "insert into gateway.idempotency (scope, key, method, path) values ($1, $2, $3, $4)
             on conflict (scope, key) do update
                 set method = excluded.method, path = excluded.path, status = null,
                     headers = null, body = null, created_at = now()
                 where gateway.idempotency.created_at < now() - make_interval(hours => $5)
             returning 1",
        )
        .bind(scope)
        .bind(key)
        .bind(method)
        .bind(path)
        .bind(KEEP_HOURS as i32)
        .fetch_optional(&state.pool)
        .await?;
        if inserted.is_some() {
            return Ok(Claim::Mine);
        }
        let row = sqlx::query(
            "select method, path, status, headers, body from gateway.idempotency
             where scope = $1 and key = $2",
        )
        .bind(scope)
        .bind(key)
        .fetch_optional(&state.pool)
        .await?;
        let Some(row) = row else { continue };
        let (m, p): (String, String) = (row.try_get("method")?, row.try_get("path")?);
        if m != method || p != path {
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
    if status.is_server_error() {
        // Not an answer worth repeating: let a retry run again.
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

//! The gateway: the HTTP API and the live feed. It authenticates, validates
//! the request's shape, sends a command over NATS, waits until the read
//! models reflect it (read-your-writes) and answers; reads go straight to
//! the Postgres read views. It keeps no state of its own, so any number of
//! gateways can run side by side.
//!
//! # Layout
//! - [`routes`]: one module per area, each exposing `router()`; an area
//!   with reads has its JSON shapes in `api` and its queries in `read`
//!   (`routes::users::read` holds every read of users and sessions).
//! - [`extract`]: the JSON body and its validation ([`extract::Validate`]),
//!   the authenticated user, the request id.
//! - [`error`]: [`error::ApiError`], the only error the API answers.
//! - [`bus`]: commands over NATS request-reply.
//! - [`watermarks`]: waiting for the projections after a write.
//! - [`idempotency`]: the `Idempotency-Key` middleware and the sweep of
//!   expired keys.
//! - [`limits`]: rate limits per client address and per user.
//! - [`server`]: the accept loop: HTTP/1.1, optional TLS, timeouts, the
//!   connection cap, graceful shutdown.
//! - [`token`]: session tokens (JWT); [`sessions`]: whether a token's
//!   session is open, one query for the checks that arrive together.
//! - [`metrics`], [`time`], [`openapi`]: counters, time format, API description.

pub mod bus;
pub mod error;
pub mod extract;
pub mod idempotency;
pub mod limits;
pub mod live;
pub mod metrics;
pub mod openapi;
pub mod routes;
pub mod server;
pub mod sessions;
pub mod time;
pub mod token;
pub mod watermarks;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use forum_events::subject::Subjects;
use sqlx::PgPool;
use tokio::net::{TcpListener, TcpSocket};
use tracing::Instrument;
use uuid::Uuid;

use crate::bus::Bus;
use crate::error::ApiError;
use crate::extract::{AuthUser, RequestId};
use crate::sessions::Sessions;
use crate::token::Tokens;
use crate::watermarks::Watermarks;

/// The gateway's settings.
#[derive(Clone)]
pub struct Config {
    /// The HS256 secret for session tokens.
    pub jwt_secret: Vec<u8>,
    /// How long to wait for a service's reply.
    pub command_timeout: Duration,
    /// How long to wait for the read models after a write.
    pub read_timeout: Duration,
    /// Mark the session cookie `Secure` (behind HTTPS).
    pub cookie_secure: bool,
    /// The live feed's tunables.
    pub live: live::Settings,
    /// Rate limits.
    pub limits: limits::Settings,
    /// How often expired `Idempotency-Key` answers are deleted.
    pub idempotency_sweep: Duration,
}

/// What every handler shares; cloning is shallow.
#[derive(Clone)]
pub struct AppState {
    /// Postgres, for reads.
    pub pool: PgPool,
    /// NATS.
    pub nats: async_nats::Client,
    /// Names under the configured prefix.
    pub subjects: Subjects,
    /// The command bus.
    pub bus: Bus,
    /// Projection checkpoints, for read-your-writes.
    pub watermarks: Watermarks,
    /// Token signing and checking.
    pub tokens: Arc<Tokens>,
    /// Whether sessions are open.
    pub sessions: Sessions,
    /// This process's `/metrics`.
    pub exporter: forum_telemetry::Exporter,
    /// Who is online, on every gateway.
    pub presence: live::Presence,
    /// The live feed.
    pub live: live::Live,
    /// Rate limiters.
    pub limits: limits::Limits,
    /// Settings.
    pub config: Arc<Config>,
}

impl AppState {
    /// Builds the state, starts following the projectors, the live feed,
    /// the rate limiters' clean-up and the sweep of expired idempotency
    /// keys; those tasks end and the feed's sockets close when `stop`
    /// turns true.
    ///
    /// # Errors
    /// When NATS refuses a subscription or Postgres is unreachable.
    pub async fn new(
        config: Config,
        pool: PgPool,
        nats: async_nats::Client,
        subjects: Subjects,
        exporter: forum_telemetry::Exporter,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> Result<Self, ApiError> {
        let bus = Bus::new(nats.clone(), subjects.clone(), config.command_timeout);
        let watermarks = Watermarks::new(pool.clone(), config.read_timeout);
        watermarks.follow(nats.clone(), &subjects).await?;
        let presence = live::Presence::default();
        let live = live::Live::start(
            config.live.clone(),
            pool.clone(),
            nats.clone(),
            &subjects,
            presence.clone(),
            stop.clone(),
        )
        .await?;
        // Served from the start, not from the first socket.
        ::metrics::gauge!(forum_telemetry::names::WS_OPEN).increment(0.0);
        let limits = limits::Limits::new(config.limits.clone());
        tokio::spawn(limits.clone().forget_idle_until(stop.clone()));
        tokio::spawn(idempotency::sweep(
            pool.clone(),
            config.idempotency_sweep,
            stop,
        ));
        Ok(AppState {
            sessions: Sessions::start(pool.clone()),
            pool,
            nats,
            subjects,
            bus,
            watermarks,
            tokens: Arc::new(Tokens::new(&config.jwt_secret)),
            exporter,
            presence,
            live,
            limits,
            config: Arc::new(config),
        })
    }

    /// Checks a token: signature, expiry, and that its session is open.
    ///
    /// # Errors
    /// 401 `unauthorized`.
    pub async fn authenticate(&self, token: &str) -> Result<AuthUser, ApiError> {
        let claims = self.tokens.verify(token).ok_or(ApiError::Unauthorized)?;
        if self.sessions.is_open(claims.sid, claims.sub).await? {
            Ok(AuthUser {
                user_id: claims.sub,
                session_id: claims.sid,
            })
        } else {
            Err(ApiError::Unauthorized)
        }
    }
}

/// The whole HTTP application.
pub fn app(state: AppState) -> Router {
    Router::new()
        .merge(routes::ops::router())
        .merge(routes::web::router())
        .nest(
            "/api",
            routes::auth::router()
                .merge(routes::users::router())
                .merge(routes::posts::router())
                .merge(routes::chat::router())
                .merge(routes::notifications::router())
                .merge(routes::docs::router())
                .route("/ws", axum::routing::get(live::socket::upgrade))
                .layer(middleware::from_fn_with_state(
                    state.clone(),
                    idempotency::layer,
                )),
        )
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        // Before anything else does work (idempotency claims, auth, bodies).
        .layer(middleware::from_fn_with_state(state.clone(), limits::layer))
        .layer(middleware::from_fn(observe))
        .with_state(state)
}

/// Request id, tracing span and metrics around every request.
async fn observe(mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_string();
    let (given, id) = request_id(req.headers());
    req.extensions_mut().insert(RequestId(id));
    let span = tracing::info_span!("http", method = %req.method(), path = %req.uri().path(),
        correlation_id = %id, request_id = tracing::field::Empty);
    // A proxy's id is logged beside the correlation id it stands for.
    if let Some(given) = given.as_deref().filter(|g| Uuid::parse_str(g).is_err()) {
        span.record("request_id", tracing::field::display(given));
    }
    forum_telemetry::correlate(&span, id);
    let mut response = next.run(req).instrument(span.clone()).await;
    let status = response.status();
    let echoed = given.unwrap_or_else(|| id.to_string());
    if let Ok(v) = HeaderValue::from_str(&echoed) {
        response.headers_mut().insert("x-request-id", v);
    }
    let took = started.elapsed();
    let micros = took.as_micros() as u64;
    metrics::request(method.as_str(), &route, status.as_u16(), took);
    span.in_scope(|| {
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(status = status.as_u16(), micros, "answered");
        } else {
            tracing::debug!(status = status.as_u16(), micros, "answered");
        }
    });
    response
}

/// Longest `X-Request-Id` taken from a client.
const REQUEST_ID_MAX: usize = 128;

/// The client's `X-Request-Id` when it is 1 to 128 visible ASCII
/// characters (a UUID, or a proxy's id such as nginx's `$request_id`), and
/// the request's correlation id: that id when it is a UUID, else a UUIDv5
/// of it (the same id always stands for the same correlation id), else,
/// without a usable header, a new UUIDv7.
fn request_id(headers: &axum::http::HeaderMap) -> (Option<String>, Uuid) {
    let given = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            (1..=REQUEST_ID_MAX).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_graphic())
        })
        .map(str::to_string);
    let id = match &given {
        Some(v) => {
            Uuid::parse_str(v).unwrap_or_else(|_| Uuid::new_v5(&Uuid::NAMESPACE_OID, v.as_bytes()))
        }
        None => Uuid::now_v7(),
    };
    (given, id)
}

/// Binds `addr` with a listen backlog large enough for thousands of sockets
/// connecting at once.
///
/// # Errors
/// When the address cannot be bound.
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_nodelay(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

/// Serves `app` on `listener` until `shutdown` resolves, then finishes the
/// requests in flight (see [`server`]).
///
/// # Errors
/// I/O failure of the listener.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    settings: server::Settings,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    server::serve(listener, app, settings, shutdown).await
}

/// A response with no body.
pub fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

//! `/metrics` on an address of its own, for a role without an HTTP port
//! (a command service, the projectors), or beside the gateway's.

use std::future::Future;
use std::net::SocketAddr;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::{Exporter, Result};

/// The content type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// Binds `addr` and answers `GET /metrics` with `exporter`'s text until
/// `shutdown` resolves. Returns the bound address (port 0 picks one) and the
/// server's future.
///
/// # Errors
/// When `addr` cannot be bound.
pub async fn bind(
    addr: SocketAddr,
    exporter: Exporter,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(SocketAddr, impl Future<Output = Result<()>>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route("/metrics", get(metrics))
        .with_state(exporter);
    let served = async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await?;
        Ok(())
    };
    Ok((bound, served))
}

async fn metrics(State(exporter): State<Exporter>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        exporter.render().await,
    )
}

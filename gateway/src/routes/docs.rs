//! `GET /api/openapi.json`.

use axum::routing::get;
use axum::{Json, Router};
use utoipa::OpenApi;

use crate::openapi::ApiDoc;
use crate::AppState;

/// The API description route.
pub fn router() -> Router<AppState> {
    Router::new().route("/openapi.json", get(|| async { Json(ApiDoc::openapi()) }))
}

//! User profiles from `read.users`.
//!
//! # Layout
//! - this module: the router and its handler;
//! - [`api`]: the JSON shapes ([`api::User`], [`api::Me`]);
//! - [`read`]: every read of `read.users` and `read.sessions` in the
//!   gateway (the session check of [`crate::AppState::authenticate`] and of
//!   the live feed included).

pub mod api;
pub mod read;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};

use self::api::User;
use crate::error::{ApiError, Result};
use crate::extract::{path_id, PathParam};
use crate::AppState;

/// The users routes.
pub fn router() -> Router<AppState> {
    Router::new().route("/users/{id}", get(get_user))
}

/// A user's public view.
#[utoipa::path(get, path = "/api/users/{id}", tag = "users",
    params(("id" = Uuid, Path, description = "User id")),
    responses((status = 200, body = User), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get_user(
    State(state): State<AppState>,
    PathParam(id): PathParam<String>,
) -> Result<Json<User>> {
    let id = path_id(&id)?;
    let me = read::me(&state.pool, id).await?.ok_or(ApiError::NotFound)?;
    Ok(Json(me.user))
}

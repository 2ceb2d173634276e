//! User profiles from `read.users`.

use axum::extract::State;

use crate::extract::PathParam;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;
use uuid::Uuid;

use crate::error::{ApiError, Result};
use crate::time;
use crate::AppState;

/// The users routes.
pub fn router() -> Router<AppState> {
    Router::new().route("/users/{id}", get(get_user))
}

/// A user's public view.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct User {
    /// Id.
    pub id: Uuid,
    /// Nickname, case as registered.
    pub nickname: String,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// Age.
    pub age: i16,
    /// `female`, `male`, `other` or `unspecified`.
    pub gender: String,
    /// Registration time.
    #[schema(example = "2026-11-24T09:15:02.123Z")]
    pub created_at: String,
}

/// The logged-in user's own view: [`User`] plus the e-mail address.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Me {
    /// The public fields.
    #[serde(flatten)]
    pub user: User,
    /// E-mail address.
    pub email: String,
}

/// Reads a user's `Me` view, if the user exists.
///
/// # Errors
/// Database failure.
pub async fn load_me(state: &AppState, id: Uuid) -> Result<Option<Me>> {
    let row = sqlx::query(
        "select id, nickname, first_name, last_name, age, gender, created_at, email
         from read.users where id = $1",
    )
    .bind(id)
    .fetch_optional(&state.pool)
    .await?;
    let Some(r) = row else { return Ok(None) };
    let created: DateTime<Utc> = r.try_get("created_at")?;
    Ok(Some(Me {
        user: User {
            id: r.try_get("id")?,
            nickname: r.try_get("nickname")?,
            first_name: r.try_get("first_name")?,
            last_name: r.try_get("last_name")?,
            age: r.try_get("age")?,
            gender: r.try_get("gender")?,
            created_at: time::format(created),
        },
        email: r.try_get("email")?,
    }))
}

/// A user's public view.
#[utoipa::path(get, path = "/api/users/{id}", tag = "users",
    params(("id" = Uuid, Path, description = "User id")),
    responses((status = 200, body = User), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get_user(
    State(state): State<AppState>,
    PathParam(id): PathParam<String>,
) -> Result<Json<User>> {
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::NotFound)?;
    let me = load_me(&state, id).await?.ok_or(ApiError::NotFound)?;
    Ok(Json(me.user))
}

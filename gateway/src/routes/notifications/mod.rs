//! Notifications: the caller's list (newest first, optionally only the
//! unread ones, with the unread count) and marking them read. Notifications
//! are created by the notifications service from other events; the only
//! writes here are read marks.
//!
//! # Layout
//! - this module: the router and the handlers;
//! - [`api`]: the JSON shapes, answers and the read-mark body;
//! - [`read`]: the read queries and the mapping of their rows.

pub mod api;
pub mod read;

use std::collections::BTreeMap;

use axum::extract::State;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use forum_commands::notifications::NotificationsData;
use forum_events::Service;

use self::api::{NotificationPage, NotificationsReadRequest};
use crate::error::{ApiError, Result};
use crate::extract::{AuthUser, JsonBody, Origin, QueryMap, Validate};
use crate::routes::paging::paging;
use crate::{no_content, AppState};

/// The notifications routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/notifications", get(list_notifications))
        .route("/notifications/read", post(mark_read))
}

/// The caller's notifications, newest first.
#[utoipa::path(get, path = "/api/notifications", tag = "notifications",
    params(("unread" = Option<bool>, Query, description = "`true`: only unread ones (`false`: all, the default)"),
           ("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "1-100, default 20"),
           ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page")),
    responses((status = 200, body = NotificationPage),
              (status = 400, body = crate::error::ErrorBody, description = "Bad `unread`, `limit` or `cursor`"),
              (status = 401, body = crate::error::ErrorBody)),
    security(("bearer" = []), ("cookie" = [])))]
pub async fn list_notifications(
    State(state): State<AppState>,
    user: AuthUser,
    QueryMap(q): QueryMap,
) -> Result<Json<NotificationPage>> {
    let mut errors = BTreeMap::new();
    let (limit, before) = paging(&q, 20, 100, &mut errors);
    let unread_only = match q.get("unread").map(String::as_str) {
        None | Some("") | Some("false") => false,
        Some("true") => true,
        Some(_) => {
            errors.insert("unread".into(), "must be `true` or `false`".into());
            false
        }
    };
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let page =
        read::notification_page(&state.pool, user.user_id, before, unread_only, limit).await?;
    Ok(Json(page))
}

/// Marks notifications read: `{"ids": [...]}` or `{"all": true}`.
#[utoipa::path(post, path = "/api/notifications/read", tag = "notifications",
    request_body = NotificationsReadRequest,
    responses((status = 204, description = "Read (also when nothing was unread)"),
              (status = 400, body = crate::error::ErrorBody,
               description = "validation_failed: neither or both fields, `ids` not an array of ids, `all` not true"),
              (status = 401, body = crate::error::ErrorBody)),
    security(("bearer" = []), ("cookie" = [])))]
pub async fn mark_read(
    State(state): State<AppState>,
    rid: Origin,
    user: AuthUser,
    JsonBody(body): JsonBody,
) -> Result<Response> {
    let command = NotificationsReadRequest::parse(&body)?.into_command();
    let accepted = state
        .bus
        .send::<_, NotificationsData>(
            Service::Notifications,
            command.name(),
            rid,
            Some(user.user_id),
            command,
        )
        .await?;
    state.watermarks.wait(&accepted.positions).await?;
    Ok(no_content())
}

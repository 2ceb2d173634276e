//! Notifications: the caller's list (newest first, optionally only the
//! unread ones, with the unread count) and marking them read. Notifications
//! are created by the notifications service from other events; the only
//! writes here are read marks.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use forum_commands::notifications::{MarkRead, NotificationsCommand, NotificationsData, MAX_IDS};
use forum_events::Service;
use serde::Serialize;
use serde_json::Value;
use sqlx::postgres::PgRow;
use sqlx::Row;
use uuid::Uuid;

use crate::error::{ApiError, Result};
use crate::extract::{AuthUser, JsonBody, Origin, QueryMap};
use crate::routes::paging::{encode_cursor, paging};
use crate::routes::posts::Author;
use crate::{no_content, time, AppState};

/// The notifications routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/notifications", get(list_notifications))
        .route("/notifications/read", post(mark_read))
}

/// A notification.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Notification {
    /// Id.
    pub id: Uuid,
    /// `comment` (on the caller's post), `reaction` (a like or dislike of
    /// the caller's post or comment) or `message` (to the caller).
    pub kind: String,
    /// Who acted (nickname at the time).
    pub actor: Author,
    /// The post concerned (comments and reactions).
    pub post_id: Option<Uuid>,
    /// The comment concerned (a comment, or a reaction to a comment).
    pub comment_id: Option<Uuid>,
    /// The message concerned (messages).
    pub message_id: Option<Uuid>,
    /// When the action happened.
    pub created_at: String,
    /// Whether the caller has read it.
    pub read: bool,
}

/// A page of notifications, newest first, with the caller's unread count.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NotificationPage {
    /// The notifications.
    pub items: Vec<Notification>,
    /// Pass as `cursor` for the next (older) page; null on the last page.
    pub next_cursor: Option<String>,
    /// How many of the caller's notifications are unread (all of them, not
    /// only this page's).
    pub unread_count: i64,
}

/// Body of `POST /api/notifications/read`: exactly one of the two fields.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct NotificationsReadRequest {
    /// Notification ids to mark read (at most 1000); ids that are not the
    /// caller's, or already read, are ignored.
    ids: Option<Vec<Uuid>>,
    /// `true`: mark every notification read.
    all: Option<bool>,
}

fn notification_from_row(r: &PgRow) -> Result<Notification> {
    Ok(Notification {
        id: r.try_get("id")?,
        kind: r.try_get("kind")?,
        actor: Author {
            id: r.try_get("actor_id")?,
            nickname: r.try_get("actor_nickname")?,
        },
        post_id: r.try_get("post_id")?,
        comment_id: r.try_get("comment_id")?,
        message_id: r.try_get("message_id")?,
        created_at: time::format(r.try_get("created_at")?),
        read: r.try_get("read")?,
    })
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
    let rows = sqlx::query(
        "select id, kind, actor_id, actor_nickname, post_id, comment_id, message_id,
                created_at, read, position
         from read.notifications
         where user_id = $1 and position < $2 and (not $3 or not read)
         order by position desc limit $4",
    )
    .bind(user.user_id)
    .bind(before.unwrap_or(i64::MAX))
    .bind(unread_only)
    .bind(limit + 1)
    .fetch_all(&state.pool)
    .await?;
    let unread_count: i64 = sqlx::query_scalar(
        "select count(*) from read.notifications where user_id = $1 and not read",
    )
    .bind(user.user_id)
    .fetch_one(&state.pool)
    .await?;
    let more = rows.len() as i64 > limit;
    let mut items = Vec::with_capacity(rows.len());
    let mut last = None;
    for r in rows.iter().take(limit as usize) {
        items.push(notification_from_row(r)?);
        last = Some(r.try_get::<i64, _>("position")?);
    }
    Ok(Json(NotificationPage {
        items,
        next_cursor: if more { last.map(encode_cursor) } else { None },
        unread_count,
    }))
}

/// The command a read-mark body asks for.
fn read_command(body: &serde_json::Map<String, Value>) -> Result<NotificationsCommand> {
    let both = "give either `ids` (an array of notification ids) or `all: true`";
    match (body.get("ids"), body.get("all")) {
        (Some(ids), None) => {
            let Some(items) = ids.as_array() else {
                return Err(ApiError::field(
                    "ids",
                    "must be an array of notification ids",
                ));
            };
            if items.len() > MAX_IDS {
                return Err(ApiError::field("ids", "at most 1000 ids"));
            }
            let ids = items
                .iter()
                .map(|v| v.as_str().and_then(|s| Uuid::parse_str(s).ok()))
                .collect::<Option<Vec<Uuid>>>()
                .ok_or_else(|| ApiError::field("ids", "must be an array of notification ids"))?;
            Ok(NotificationsCommand::MarkRead(MarkRead { ids }))
        }
        (None, Some(Value::Bool(true))) => Ok(NotificationsCommand::MarkAllRead),
        (None, Some(_)) => Err(ApiError::field("all", "must be true")),
        _ => Err(ApiError::field("body", both)),
    }
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
    let command = read_command(&body)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn command(v: Value) -> Result<NotificationsCommand> {
        match v {
            Value::Object(map) => read_command(&map),
            _ => unreachable!("test bodies are objects"),
        }
    }

    #[test]
    fn a_read_mark_body_is_ids_or_all_true_and_nothing_else() {
        let id = Uuid::now_v7();
        assert_eq!(
            command(json!({"ids": [id.to_string()]})).ok(),
            Some(NotificationsCommand::MarkRead(MarkRead { ids: vec![id] }))
        );
        assert_eq!(
            command(json!({"all": true})).ok(),
            Some(NotificationsCommand::MarkAllRead)
        );
        for bad in [
            json!({}),
            json!({"all": false}),
            json!({"all": "true"}),
            json!({"ids": "x"}),
            json!({"ids": ["not-a-uuid"]}),
            json!({"ids": [1]}),
            json!({"ids": [id.to_string()], "all": true}),
        ] {
            assert!(
                matches!(command(bad.clone()), Err(ApiError::Validation(_))),
                "{bad}"
            );
        }
    }
}

//! Chat: the user list with conversation state, private messages, read
//! receipts. Everything needs a session; only the two participants of a
//! conversation can read it (a conversation is always addressed as "mine
//! with `{user_id}`"). Writes go to the chat service as commands and wait
//! for the read models (and, for a message, for the recipient's
//! notification) before answering.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use forum_commands::chat::validate::MessageContent;
use forum_commands::chat::{ChatCommand, ChatData, MarkRead, SendMessage};
use forum_events::chat::conversation_id;
use forum_events::Service;
use serde::Serialize;
use sqlx::postgres::PgRow;
use sqlx::Row;
use uuid::Uuid;

use crate::error::{ApiError, Result};
use crate::extract::{AuthUser, Fields, JsonBody, Origin, PathParam, QueryMap};
use crate::routes::paging::{encode_cursor, paging};
use crate::routes::posts::{path_id, Author};
use crate::{no_content, time, AppState};

/// The chat routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/users", get(list_users))
        .route(
            "/conversations/{user_id}/messages",
            get(list_messages).post(send_message),
        )
        .route("/conversations/{user_id}/read", post(mark_read))
}

/// Another user, as the chat's user list shows them.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ChatUser {
    /// User id.
    pub id: Uuid,
    /// Nickname, case as registered.
    pub nickname: String,
    /// Whether the user has a live connection on some gateway.
    pub online: bool,
    /// The last message between the caller and this user, if any.
    #[schema(example = "2026-11-24T09:15:02.123Z")]
    pub last_message_at: Option<String>,
    /// Messages from this user the caller has not read.
    pub unread: i32,
}

/// A private message.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Message {
    /// Id.
    pub id: Uuid,
    /// The sender (nickname when sent).
    pub from: Author,
    /// The recipient's user id.
    pub to: Uuid,
    /// Content, as sent.
    pub content: String,
    /// When it was sent.
    pub sent_at: String,
    /// When the recipient read it, if they did.
    pub read_at: Option<String>,
}

/// A page of messages, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MessagePage {
    /// The messages.
    pub items: Vec<Message>,
    /// Pass as `cursor` for the next (older) page; null on the last page.
    pub next_cursor: Option<String>,
}

/// Body of `POST /api/conversations/{user_id}/messages`.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct SendMessageRequest {
    /// 1–2000 characters, not blank (stored as given); no control
    /// characters but tab and line breaks.
    #[schema(
        min_length = 1,
        max_length = 2000,
        pattern = "^[^\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\u007F-\\u009F]*[^\\s\\u0000-\\u001F\\u007F-\\u009F][^\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\u007F-\\u009F]*$"
    )]
    content: String,
}

/// Body of `POST /api/conversations/{user_id}/read`.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ReadReceiptRequest {
    /// A message of the conversation: it and every older message from
    /// `{user_id}` to the caller become read.
    up_to: Uuid,
}

const MESSAGE_COLUMNS: &str =
    "id, from_id, from_nickname, to_id, content, sent_at, read_at, position";

fn message_from_row(r: &PgRow) -> Result<Message> {
    Ok(Message {
        id: r.try_get("id")?,
        from: Author {
            id: r.try_get("from_id")?,
            nickname: r.try_get("from_nickname")?,
        },
        to: r.try_get("to_id")?,
        content: r.try_get("content")?,
        sent_at: time::format(r.try_get("sent_at")?),
        read_at: r
            .try_get::<Option<DateTime<Utc>>, _>("read_at")?
            .map(time::format),
    })
}

async fn user_exists(state: &AppState, id: Uuid) -> Result<bool> {
    Ok(
        sqlx::query_scalar("select exists (select 1 from read.users where id = $1)")
            .bind(id)
            .fetch_one(&state.pool)
            .await?,
    )
}

/// The other party of a conversation named by its path: an existing user
/// other than the caller, else 404.
async fn other_party(state: &AppState, user: AuthUser, id: &str) -> Result<Uuid> {
    let other = path_id(id)?;
    if other == user.user_id || !user_exists(state, other).await? {
        return Err(ApiError::NotFound);
    }
    Ok(other)
}

/// Everyone but the caller: first the users the caller has messages with,
/// most recent conversation first, then the others by nickname
/// (case-insensitively).
#[utoipa::path(get, path = "/api/users", tag = "chat",
    responses((status = 200, body = [ChatUser]),
              (status = 401, body = crate::error::ErrorBody)),
    security(("bearer" = []), ("cookie" = [])))]
pub async fn list_users(
    State(state): State<AppState>,
    user: AuthUser,
) -> Result<Json<Vec<ChatUser>>> {
    let rows = sqlx::query(
        "select u.id, u.nickname, c.last_message_at, coalesce(c.unread, 0) as unread
         from read.users u
         left join read.conversations c on c.user_id = $1 and c.other_id = u.id
         where u.id <> $1
         order by c.last_position desc nulls last, u.nickname_key, u.id",
    )
    .bind(user.user_id)
    .fetch_all(&state.pool)
    .await?;
    let mut users = Vec::with_capacity(rows.len());
    for r in rows {
        let id: Uuid = r.try_get("id")?;
        users.push(ChatUser {
            id,
            nickname: r.try_get("nickname")?,
            online: state.presence.is_online(id),
            last_message_at: r
                .try_get::<Option<DateTime<Utc>>, _>("last_message_at")?
                .map(time::format),
            unread: r.try_get("unread")?,
        });
    }
    Ok(Json(users))
}

/// Sends a message to `{user_id}`.
#[utoipa::path(post, path = "/api/conversations/{user_id}/messages", tag = "chat",
    request_body = SendMessageRequest,
    params(("user_id" = Uuid, Path, description = "The recipient")),
    responses((status = 201, body = Message),
              (status = 400, body = crate::error::ErrorBody,
               description = "validation_failed: bad `content`, or `to` when `{user_id}` is the caller"),
              (status = 401, body = crate::error::ErrorBody),
              (status = 404, body = crate::error::ErrorBody, description = "No such user")),
    security(("bearer" = []), ("cookie" = [])))]
pub async fn send_message(
    State(state): State<AppState>,
    rid: Origin,
    user: AuthUser,
    PathParam(id): PathParam<String>,
    JsonBody(body): JsonBody,
) -> Result<Response> {
    let to = path_id(&id)?;
    let mut f = Fields::new(&body);
    let content = f.parsed("content", MessageContent::parse);
    if to == user.user_id {
        f.fail("to", "cannot send a message to yourself");
    }
    f.finish()?;
    let Some(content) = content else {
        return Err(ApiError::Internal("validated fields missing".into()));
    };
    let command = ChatCommand::SendMessage(SendMessage {
        to,
        content: content.into_inner(),
    });
    let accepted = state
        .bus
        .send::<_, ChatData>(
            Service::Chat,
            command.name(),
            rid,
            Some(user.user_id),
            command,
        )
        .await?;
    state.watermarks.wait_notified(&accepted.positions).await?;
    let ChatData::Sent { message_id } = accepted.data else {
        return Err(ApiError::Internal("unexpected reply".into()));
    };
    let row = sqlx::query(&format!(
        "select {MESSAGE_COLUMNS} from read.messages where id = $1"
    ))
    .bind(message_id)
    .fetch_optional(&state.pool)
    .await?
    .ok_or_else(|| ApiError::Internal("sent message missing from read.messages".into()))?;
    Ok((StatusCode::CREATED, Json(message_from_row(&row)?)).into_response())
}

/// The caller's conversation with `{user_id}`, newest first; the cursor
/// pages to older messages.
#[utoipa::path(get, path = "/api/conversations/{user_id}/messages", tag = "chat",
    params(("user_id" = Uuid, Path, description = "The other participant"),
           ("limit" = Option<i64>, Query, minimum = 1, maximum = 50, description = "1-50, default 10"),
           ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page")),
    responses((status = 200, body = MessagePage),
              (status = 400, body = crate::error::ErrorBody, description = "Bad `limit` or `cursor`"),
              (status = 401, body = crate::error::ErrorBody),
              (status = 404, body = crate::error::ErrorBody,
               description = "No such user, or `{user_id}` is the caller (there is no conversation with oneself)")),
    security(("bearer" = []), ("cookie" = [])))]
pub async fn list_messages(
    State(state): State<AppState>,
    user: AuthUser,
    PathParam(id): PathParam<String>,
    QueryMap(q): QueryMap,
) -> Result<Json<MessagePage>> {
    let mut errors = BTreeMap::new();
    let (limit, before) = paging(&q, 10, 50, &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let other = other_party(&state, user, &id).await?;
    let rows = sqlx::query(&format!(
        "select {MESSAGE_COLUMNS} from read.messages
         where conversation_id = $1 and position < $2
         order by position desc limit $3"
    ))
    .bind(conversation_id(user.user_id, other))
    .bind(before.unwrap_or(i64::MAX))
    .bind(limit + 1)
    .fetch_all(&state.pool)
    .await?;
    let more = rows.len() as i64 > limit;
    let mut items = Vec::with_capacity(rows.len());
    let mut last = None;
    for r in rows.iter().take(limit as usize) {
        items.push(message_from_row(r)?);
        last = Some(r.try_get::<i64, _>("position")?);
    }
    Ok(Json(MessagePage {
        items,
        next_cursor: if more { last.map(encode_cursor) } else { None },
    }))
}

/// Marks `up_to` and every older message from `{user_id}` to the caller
/// read.
#[utoipa::path(post, path = "/api/conversations/{user_id}/read", tag = "chat",
    request_body = ReadReceiptRequest,
    params(("user_id" = Uuid, Path, description = "The other participant")),
    responses((status = 204, description = "Read (also when nothing was unread)"),
              (status = 400, body = crate::error::ErrorBody, description = "`up_to` missing or not a message id"),
              (status = 401, body = crate::error::ErrorBody),
              (status = 404, body = crate::error::ErrorBody,
               description = "No such user, or `up_to` is not a message of the caller's conversation with `{user_id}`")),
    security(("bearer" = []), ("cookie" = [])))]
pub async fn mark_read(
    State(state): State<AppState>,
    rid: Origin,
    user: AuthUser,
    PathParam(id): PathParam<String>,
    JsonBody(body): JsonBody,
) -> Result<Response> {
    let other = path_id(&id)?;
    let mut f = Fields::new(&body);
    let up_to = f.parsed("up_to", |s| {
        Uuid::parse_str(s).map_err(|_| "must be a message id")
    });
    f.finish()?;
    let Some(up_to) = up_to else {
        return Err(ApiError::Internal("validated fields missing".into()));
    };
    if other == user.user_id {
        return Err(ApiError::NotFound);
    }
    let command = ChatCommand::MarkRead(MarkRead { other, up_to });
    let accepted = state
        .bus
        .send::<_, ChatData>(
            Service::Chat,
            command.name(),
            rid,
            Some(user.user_id),
            command,
        )
        .await?;
    state.watermarks.wait(&accepted.positions).await?;
    Ok(no_content())
}

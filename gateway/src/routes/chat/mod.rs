//! Chat: the user list with conversation state, private messages, read
//! receipts. Everything needs a session; only the two participants of a
//! conversation can read it (a conversation is always addressed as "mine
//! with `{user_id}`"). Writes go to the chat service as commands and wait
//! for the read models (and, for a message, for the recipient's
//! notification) before answering.
//!
//! # Layout
//! - this module: the router and the handlers;
//! - [`api`]: the JSON shapes, answers and request bodies;
//! - [`read`]: the read queries and the mapping of their rows.

pub mod api;
pub mod read;

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use forum_commands::chat::{ChatCommand, ChatData, MarkRead, SendMessage};
use forum_events::chat::conversation_id;
use forum_events::Service;
use uuid::Uuid;

use self::api::{ChatUser, Message, MessagePage, ReadReceiptRequest, SendMessageRequest};
use crate::error::{ApiError, Result};
use crate::extract::{path_id, AuthUser, JsonBody, Origin, PathParam, QueryMap, Validate};
use crate::routes::paging::paging;
use crate::routes::users;
use crate::{no_content, AppState};

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

/// The other party of a conversation named by its path: an existing user
/// other than the caller, else 404.
async fn other_party(state: &AppState, user: AuthUser, id: &str) -> Result<Uuid> {
    let other = path_id(id)?;
    if other == user.user_id || !users::read::exists(&state.pool, other).await? {
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
    let users =
        read::chat_users(&state.pool, user.user_id, |id| state.presence.is_online(id)).await?;
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
    let body = SendMessageRequest::parse_with(&body, |f| {
        if to == user.user_id {
            f.fail("to", "cannot send a message to yourself");
        }
    })?;
    let command = ChatCommand::SendMessage(SendMessage {
        to,
        content: body.content.into_inner(),
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
    let message = match accepted.data {
        ChatData::Message(sent) => Message::from(sent),
        // An outcome recorded before answers carried the message.
        ChatData::Sent { message_id } => read::message(&state.pool, message_id)
            .await?
            .ok_or_else(|| ApiError::Internal("sent message missing from read.messages".into()))?,
        ChatData::Read => return Err(ApiError::Internal("unexpected reply".into())),
    };
    Ok((StatusCode::CREATED, Json(message)).into_response())
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
    let conversation = conversation_id(user.user_id, other);
    let page = read::message_page(&state.pool, conversation, before, limit).await?;
    Ok(Json(page))
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
    let ReadReceiptRequest { up_to } = ReadReceiptRequest::parse(&body)?;
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

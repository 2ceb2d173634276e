//! The chat's reads from `read.messages` and `read.conversations`, and the
//! mapping of their rows to [`Message`] and [`ChatUser`].

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};
use uuid::Uuid;

use super::api::{ChatUser, Message, MessagePage};
use crate::error::Result;
use crate::routes::paging::page;
use crate::routes::posts::api::Author;
use crate::time;

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

/// Everyone but `me`, with `me`'s conversation with them: first those `me`
/// has messages with, most recent conversation first, then the others by
/// nickname (case-insensitively). `online` says who is connected.
///
/// # Errors
/// Database failure.
pub async fn chat_users(
    pool: &PgPool,
    me: Uuid,
    online: impl Fn(Uuid) -> bool,
) -> Result<Vec<ChatUser>> {
    let rows = sqlx::query(
        "select u.id, u.nickname, c.last_message_at, coalesce(c.unread, 0) as unread
         from read.users u
         left join read.conversations c on c.user_id = $1 and c.other_id = u.id
         where u.id <> $1
         order by c.last_position desc nulls last, u.nickname_key, u.id",
    )
    .bind(me)
    .fetch_all(pool)
    .await?;
    let mut users = Vec::with_capacity(rows.len());
    for r in rows {
        let id: Uuid = r.try_get("id")?;
        users.push(ChatUser {
            id,
            nickname: r.try_get("nickname")?,
            online: online(id),
            last_message_at: r
                .try_get::<Option<DateTime<Utc>>, _>("last_message_at")?
                .map(time::format),
            unread: r.try_get("unread")?,
        });
    }
    Ok(users)
}

/// A message.
///
/// # Errors
/// Database failure.
pub async fn message(pool: &PgPool, id: Uuid) -> Result<Option<Message>> {
    let row = sqlx::query(&format!(
        "select {MESSAGE_COLUMNS} from read.messages where id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(message_from_row).transpose()
}

/// One page of `size` messages of a conversation before position `before`,
/// newest first.
///
/// # Errors
/// Database failure.
pub async fn message_page(
    pool: &PgPool,
    conversation: Uuid,
    before: Option<i64>,
    size: i64,
) -> Result<MessagePage> {
    let rows = sqlx::query(&format!(
        "select {MESSAGE_COLUMNS} from read.messages
         where conversation_id = $1 and position < $2
         order by position desc limit $3"
    ))
    .bind(conversation)
    .bind(before.unwrap_or(i64::MAX))
    .bind(size + 1)
    .fetch_all(pool)
    .await?;
    let (items, next_cursor) = page(&rows, size, message_from_row)?;
    Ok(MessagePage { items, next_cursor })
}

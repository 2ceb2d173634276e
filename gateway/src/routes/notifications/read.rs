//! The reads from `read.notifications` and the mapping of its rows to
//! [`Notification`].

use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};
use uuid::Uuid;

use super::api::{Notification, NotificationPage};
use crate::error::Result;
use crate::routes::paging::page;
use crate::routes::posts::api::Author;
use crate::time;

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

/// One page of `size` of `user`'s notifications before position `before`
/// (only the unread ones when `unread_only`), newest first, with the
/// user's unread count.
///
/// # Errors
/// Database failure.
pub async fn notification_page(
    pool: &PgPool,
    user: Uuid,
    before: Option<i64>,
    unread_only: bool,
    size: i64,
) -> Result<NotificationPage> {
    let rows = sqlx::query(
        "select id, kind, actor_id, actor_nickname, post_id, comment_id, message_id,
                created_at, read, position
         from read.notifications
         where user_id = $1 and position < $2 and (not $3 or not read)
         order by position desc limit $4",
    )
    .bind(user)
    .bind(before.unwrap_or(i64::MAX))
    .bind(unread_only)
    .bind(size + 1)
    .fetch_all(pool)
    .await?;
    let unread_count: i64 = sqlx::query_scalar(
        "select count(*) from read.notifications where user_id = $1 and not read",
    )
    .bind(user)
    .fetch_one(pool)
    .await?;
    let (items, next_cursor) = page(&rows, size, notification_from_row)?;
    Ok(NotificationPage {
        items,
        next_cursor,
        unread_count,
    })
}

//! Every read the gateway makes of `read.users` and `read.sessions`: the
//! session check behind each authenticated request and socket, a user's
//! profile, whether a user exists, a user's nickname.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Row};
use uuid::Uuid;

use super::api::{Me, User};
use crate::error::Result;
use crate::time;

/// When session `session_id` of `user_id` ends, or `None` when it is not
/// open (unknown, revoked by a logout, or expired).
///
/// # Errors
/// Database failure.
pub async fn session_expiry(
    pool: &PgPool,
    session_id: Uuid,
    user_id: Uuid,
) -> Result<Option<DateTime<Utc>>> {
    Ok(sqlx::query_scalar(
        "select expires_at from read.sessions
         where id = $1 and user_id = $2 and revoked_at is null and expires_at > now()",
    )
    .bind(session_id)
    .bind(user_id)
    .fetch_optional(pool)
    .await?)
}

/// Which of `sessions` are open: (session id, user id) of each that is
/// known, not revoked by a logout and not expired.
///
/// # Errors
/// Database failure.
pub async fn open_sessions(pool: &PgPool, sessions: &[Uuid]) -> Result<HashSet<(Uuid, Uuid)>> {
    let rows = sqlx::query(
        "select id, user_id from read.sessions
         where id = any($1) and revoked_at is null and expires_at > now()",
    )
    .bind(sessions)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("id")?, r.try_get("user_id")?)))
        .collect()
}

/// A user's own view, if the user exists.
///
/// # Errors
/// Database failure.
pub async fn me(pool: &PgPool, id: Uuid) -> Result<Option<Me>> {
    let row = sqlx::query(
        "select id, nickname, first_name, last_name, age, gender, created_at, email
         from read.users where id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?;
    let Some(r) = row else { return Ok(None) };
    Ok(Some(Me {
        user: User {
            id: r.try_get("id")?,
            nickname: r.try_get("nickname")?,
            first_name: r.try_get("first_name")?,
            last_name: r.try_get("last_name")?,
            age: r.try_get("age")?,
            gender: r.try_get("gender")?,
            created_at: time::format(r.try_get("created_at")?),
        },
        email: r.try_get("email")?,
    }))
}

/// Whether the user exists.
///
/// # Errors
/// Database failure.
pub async fn exists(pool: &PgPool, id: Uuid) -> Result<bool> {
    Ok(
        sqlx::query_scalar("select exists (select 1 from read.users where id = $1)")
            .bind(id)
            .fetch_one(pool)
            .await?,
    )
}

/// The user's nickname (case as registered), if the user exists.
///
/// # Errors
/// Database failure.
pub async fn nickname(pool: &PgPool, id: Uuid) -> Result<Option<String>> {
    Ok(
        sqlx::query_scalar("select nickname from read.users where id = $1")
            .bind(id)
            .fetch_optional(pool)
            .await?,
    )
}

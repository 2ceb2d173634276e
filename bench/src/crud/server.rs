//! The CRUD floor's server: what a competent engineer writes for "store a
//! post, a comment, a message" with axum and sqlx, and nothing more. One
//! `PgPool` sized like the forum's (`--db-max-connections`, the same 10 s
//! acquire timeout), one `insert … returning` per request on it (its own
//! implicit transaction), the row answered as JSON with `201`. No batching,
//! no cache, no queue.
//!
//! - `POST /api/posts` `{title, content, categories}` into `posts`;
//! - `POST /api/posts/{id}/comments` `{content}` into `comments`, whose
//!   foreign key on `posts` answers `404` for an unknown post;
//! - `POST /api/conversations/{user_id}/messages` `{content}` into
//!   `messages`.
//!
//! Each table has the index its list would page by (posts by author,
//! comments by post, messages by pair of users), as the forum's read models
//! have. A bearer token is required but only checked for presence: the
//! author is a UUID derived from it (v5), with no session lookup and no
//! signature check. Empty texts are refused with `400`; bodies are parsed
//! by axum's `Json` (serde).

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{FromRequestParts, Path, State};
use axum::http::{header, request::Parts, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::serve::ListenerExt as _;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use uuid::Uuid;

use crate::Result;

/// The name of the hidden subcommand that runs the server.
pub const SUBCOMMAND: &str = "crud-floor";

/// The command line of `forum-bench crud-floor` (a hidden subcommand, which
/// W1 starts itself).
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Address to listen on; `listening on ADDR` is printed on stdout once
    /// bound.
    #[arg(long, env = "FORUM_BENCH_CRUD_LISTEN", default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// The database to write to: it must exist, its tables are created when
    /// missing.
    #[arg(long, env = "FORUM_BENCH_CRUD_DATABASE_URL")]
    pub database_url: String,
    /// Most Postgres connections of the pool.
    #[arg(long, env = "FORUM_BENCH_CRUD_DB_MAX_CONNECTIONS", default_value_t = 8)]
    pub db_max_connections: u32,
}

/// The tables, created when missing.
const SCHEMA: &str = "
create table if not exists posts (
    id uuid primary key,
    author_id uuid not null,
    title text not null,
    content text not null,
    categories text[] not null,
    created_at timestamptz not null default now()
);
create index if not exists posts_by_author on posts (author_id, created_at);
create table if not exists comments (
    id uuid primary key,
    post_id uuid not null references posts (id),
    author_id uuid not null,
    content text not null,
    created_at timestamptz not null default now()
);
create index if not exists comments_by_post on comments (post_id, created_at);
create table if not exists messages (
    id uuid primary key,
    from_id uuid not null,
    to_id uuid not null,
    content text not null,
    sent_at timestamptz not null default now()
);
create index if not exists messages_by_pair
    on messages (least(from_id, to_id), greatest(from_id, to_id), sent_at);
";

/// Connects, creates the tables, listens, prints `listening on ADDR` and
/// serves until Ctrl-C or SIGTERM, then finishes the requests in flight.
///
/// # Errors
/// When Postgres cannot be reached, the tables cannot be created or the
/// address cannot be bound.
pub async fn serve(config: Config) -> Result<()> {
    let pool = PgPoolOptions::new()
        .max_connections(config.db_max_connections.max(1))
        .acquire_timeout(Duration::from_secs(10))
        .connect(&config.database_url)
        .await?;
    sqlx::raw_sql(SCHEMA).execute(&pool).await?;
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    println!("listening on {}", listener.local_addr()?);
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, router(pool))
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    Ok(())
}

/// The routes, on `pool`.
pub fn router(pool: PgPool) -> Router {
    Router::new()
        .route("/api/posts", post(create_post))
        .route("/api/posts/{id}/comments", post(create_comment))
        .route("/api/conversations/{user_id}/messages", post(send_message))
        .with_state(pool)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

/// A failed request.
#[derive(Debug)]
enum ApiError {
    /// 401: no bearer token.
    Unauthorized,
    /// 400: a field the server refuses.
    Invalid(&'static str),
    /// 404: the post does not exist.
    NotFound,
    /// 500: Postgres failed (logged, answered opaquely).
    Internal(sqlx::Error),
}

impl ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Invalid(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        ApiError::Internal(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let message = match &self {
            ApiError::Unauthorized => "a bearer token is required",
            ApiError::Invalid(why) => why,
            ApiError::NotFound => "not found",
            ApiError::Internal(e) => {
                eprintln!("forum-bench crud-floor: {e}");
                "internal error"
            }
        };
        (self.status_code(), Json(json!({ "error": message }))).into_response()
    }
}

/// The author of a request: a UUID derived from its bearer token, which is
/// only checked for presence.
struct Author(Uuid);

impl<S: Send + Sync> FromRequestParts<S> for Author {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .filter(|t| !t.is_empty())
            .ok_or(ApiError::Unauthorized)?;
        Ok(Author(Uuid::new_v5(&Uuid::NAMESPACE_OID, token.as_bytes())))
    }
}

fn non_empty(s: &str, why: &'static str) -> Result<(), ApiError> {
    if s.trim().is_empty() {
        Err(ApiError::Invalid(why))
    } else {
        Ok(())
    }
}

#[derive(Deserialize)]
struct NewPost {
    title: String,
    content: String,
    #[serde(default)]
    categories: Vec<String>,
}

#[derive(Serialize)]
struct PostRow {
    id: Uuid,
    author_id: Uuid,
    title: String,
    content: String,
    categories: Vec<String>,
    created_at: DateTime<Utc>,
}

async fn create_post(
    State(pool): State<PgPool>,
    Author(author): Author,
    Json(new): Json<NewPost>,
) -> Result<(StatusCode, Json<PostRow>), ApiError> {
    non_empty(&new.title, "title must not be empty")?;
    non_empty(&new.content, "content must not be empty")?;
    let (id, author_id, title, content, categories, created_at) = sqlx::query_as(
        "insert into posts (id, author_id, title, content, categories)
         values ($1, $2, $3, $4, $5)
         returning id, author_id, title, content, categories, created_at",
    )
    .bind(Uuid::now_v7())
    .bind(author)
    .bind(new.title)
    .bind(new.content)
    .bind(new.categories)
    .fetch_one(&pool)
    .await?;
    let row = PostRow {
        id,
        author_id,
        title,
        content,
        categories,
        created_at,
    };
    Ok((StatusCode::CREATED, Json(row)))
}

#[derive(Deserialize)]
struct NewText {
    content: String,
}

#[derive(Serialize)]
struct CommentRow {
    id: Uuid,
    post_id: Uuid,
    author_id: Uuid,
    content: String,
    created_at: DateTime<Utc>,
}

async fn create_comment(
    State(pool): State<PgPool>,
    Author(author): Author,
    Path(post_id): Path<Uuid>,
    Json(new): Json<NewText>,
) -> Result<(StatusCode, Json<CommentRow>), ApiError> {
    non_empty(&new.content, "content must not be empty")?;
    let inserted = sqlx::query_as(
        "insert into comments (id, post_id, author_id, content)
         values ($1, $2, $3, $4)
         returning id, post_id, author_id, content, created_at",
    )
    .bind(Uuid::now_v7())
    .bind(post_id)
    .bind(author)
    .bind(new.content)
    .fetch_one(&pool)
    .await;
    let (id, post_id, author_id, content, created_at) = match inserted {
        Ok(row) => row,
        Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => {
            return Err(ApiError::NotFound)
        }
        Err(e) => return Err(e.into()),
    };
    let row = CommentRow {
        id,
        post_id,
        author_id,
        content,
        created_at,
    };
    Ok((StatusCode::CREATED, Json(row)))
}

#[derive(Serialize)]
struct MessageRow {
    id: Uuid,
    from_id: Uuid,
    to_id: Uuid,
    content: String,
    sent_at: DateTime<Utc>,
}

async fn send_message(
    State(pool): State<PgPool>,
    Author(author): Author,
    Path(to): Path<Uuid>,
    Json(new): Json<NewText>,
) -> Result<(StatusCode, Json<MessageRow>), ApiError> {
    non_empty(&new.content, "content must not be empty")?;
    if to == author {
        return Err(ApiError::Invalid("cannot message yourself"));
    }
    let (id, from_id, to_id, content, sent_at) = sqlx::query_as(
        "insert into messages (id, from_id, to_id, content)
         values ($1, $2, $3, $4)
         returning id, from_id, to_id, content, sent_at",
    )
    .bind(Uuid::now_v7())
    .bind(author)
    .bind(to)
    .bind(new.content)
    .fetch_one(&pool)
    .await?;
    let row = MessageRow {
        id,
        from_id,
        to_id,
        content,
        sent_at,
    };
    Ok((StatusCode::CREATED, Json(row)))
}

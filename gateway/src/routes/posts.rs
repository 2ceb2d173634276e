//! The forum: categories, posts, comments, reactions. Reads need no login
//! and come from the `read.*` views; writes need a session, go to the forum
//! service as commands, wait for the projection (read-your-writes), then
//! answer from the read views.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, put};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use forum_commands::posts::decide::PostEdit;
use forum_commands::posts::validate::{Categories, CommentContent, PostContent, Title, CATEGORIES};
use forum_commands::posts::{
    CreateComment, CreatePost, DeleteComment, DeletePost, EditComment, EditPost, PostsCommand,
    PostsData, SetReaction,
};
use forum_events::posts::{Reaction, TargetKind};
use forum_events::Service;
use serde::Serialize;
use serde_json::Value;
use sqlx::postgres::PgRow;
use sqlx::{Postgres, QueryBuilder, Row};
use uuid::Uuid;

use crate::error::{ApiError, Result};
use crate::extract::{AuthUser, Fields, JsonBody, MaybeUser, Origin, PathParam, QueryMap};
use crate::routes::paging::{encode_cursor, paging};
use crate::{no_content, time, AppState};

/// The forum routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/categories", get(list_categories))
        .route("/posts", get(list_posts).post(create_post))
        .route(
            "/posts/{id}",
            get(get_post).patch(edit_post).delete(delete_post),
        )
        .route(
            "/posts/{id}/comments",
            get(list_comments).post(create_comment),
        )
        .route("/comments/{id}", patch(edit_comment).delete(delete_comment))
        .route("/posts/{id}/reaction", put(react_to_post))
        .route("/comments/{id}/reaction", put(react_to_comment))
}

/// A category.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Category {
    /// Stable identifier used in posts and filters.
    pub slug: String,
    /// Display name.
    pub name: String,
}

/// `{"id","nickname"}`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Author {
    /// User id.
    pub id: Uuid,
    /// Nickname when the item was written.
    pub nickname: String,
}

/// A post.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Post {
    /// Id.
    pub id: Uuid,
    /// Who wrote it.
    pub author: Author,
    /// Title.
    pub title: String,
    /// Content.
    pub content: String,
    /// Category slugs.
    pub categories: Vec<String>,
    /// Creation time.
    pub created_at: String,
    /// Last edit, if any.
    pub edited_at: Option<String>,
    /// Visible comments.
    pub comment_count: i32,
    /// Likes.
    pub likes: i32,
    /// Dislikes.
    pub dislikes: i32,
    /// The reader's reaction: `like`, `dislike` or null (always null for
    /// anonymous readers).
    pub my_reaction: Option<String>,
}

/// A comment.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Comment {
    /// Id.
    pub id: Uuid,
    /// Its post.
    pub post_id: Uuid,
    /// Who wrote it.
    pub author: Author,
    /// Content.
    pub content: String,
    /// Creation time.
    pub created_at: String,
    /// Last edit, if any.
    pub edited_at: Option<String>,
    /// Likes.
    pub likes: i32,
    /// Dislikes.
    pub dislikes: i32,
    /// The reader's reaction.
    pub my_reaction: Option<String>,
}

/// A page of posts, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PostPage {
    /// The posts.
    pub items: Vec<Post>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// A page of comments, oldest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CommentPage {
    /// The comments.
    pub items: Vec<Comment>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// A target's counts after a reaction, and the caller's reaction.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReactionState {
    /// Likes.
    pub likes: u32,
    /// Dislikes.
    pub dislikes: u32,
    /// `like`, `dislike` or null.
    pub my_reaction: Option<String>,
}

/// Body of `POST /api/posts`.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct CreatePostRequest {
    /// 1–200 characters, not blank (stored trimmed); no control characters
    /// but tab and line breaks.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\u007F-\\u009F]*[^\\s\\u0000-\\u001F\\u007F-\\u009F][^\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\u007F-\\u009F]*$"
    )]
    title: String,
    /// 1–20000 characters, not blank; no control characters but tab and
    /// line breaks.
    #[schema(
        min_length = 1,
        max_length = 20000,
        pattern = "^[^\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\u007F-\\u009F]*[^\\s\\u0000-\\u001F\\u007F-\\u009F][^\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\u007F-\\u009F]*$"
    )]
    content: String,
    /// 1–5 known category slugs (`GET /api/categories`); duplicates are ignored.
    #[schema(min_items = 1, max_items = 5)]
    categories: Vec<String>,
}

/// Body of `PATCH /api/posts/{id}`: at least one field.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct EditPostRequest {
    /// New title (as in creation).
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\u007F-\\u009F]*[^\\s\\u0000-\\u001F\\u007F-\\u009F][^\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\u007F-\\u009F]*$"
    )]
    title: Option<String>,
    /// New content (as in creation).
    #[schema(
        min_length = 1,
        max_length = 20000,
        pattern = "^[^\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\u007F-\\u009F]*[^\\s\\u0000-\\u001F\\u007F-\\u009F][^\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\u007F-\\u009F]*$"
    )]
    content: Option<String>,
    /// New categories (as in creation).
    #[schema(min_items = 1, max_items = 5)]
    categories: Option<Vec<String>>,
}

/// Body of comment writes.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct CommentRequest {
    /// 1–5000 characters, not blank; no control characters but tab and
    /// line breaks.
    #[schema(
        min_length = 1,
        max_length = 5000,
        pattern = "^[^\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\u007F-\\u009F]*[^\\s\\u0000-\\u001F\\u007F-\\u009F][^\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\u007F-\\u009F]*$"
    )]
    content: String,
}

/// Body of reaction writes.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ReactionRequest {
    /// `like`, `dislike`, or null to withdraw (required, null included).
    #[schema(required = true, nullable, pattern = "^(like|dislike)$")]
    reaction: Option<String>,
}

/// The filters of the post list.
#[derive(Debug, Clone, Default)]
pub struct PostFilter {
    /// Only posts in this category.
    pub category: Option<String>,
    /// Only posts by this author.
    pub author: Option<Uuid>,
    /// Only posts this user liked.
    pub liked_by: Option<Uuid>,
    /// Only posts older than this position.
    pub before: Option<i64>,
    /// Whose `my_reaction` to show.
    pub reader: Option<Uuid>,
    /// Rows to fetch.
    pub limit: i64,
}

const POST_COLUMNS: &str = "p.id, p.author_id, p.author_nickname, p.title, p.content, p.categories, \
     p.created_at, p.edited_at, p.comment_count, p.likes, p.dislikes, p.position, mr.reaction as my_reaction";

/// Appends the post list query for `filter` to `qb`, newest first. Each
/// filter drives the query from its own index: the category from
/// `post_categories`, liked posts from `reactions`, otherwise `posts`.
pub fn push_post_list(qb: &mut QueryBuilder<'_, Postgres>, filter: &PostFilter) {
    qb.push("select ");
    qb.push(POST_COLUMNS);
    qb.push(" from read.posts p");
    let order = if let Some(category) = &filter.category {
        qb.push(" join read.post_categories c on c.post_id = p.id and c.category = ");
        qb.push_bind(category.clone());
        "c.position"
    } else if filter.liked_by.is_some() {
        "lr.post_position"
    } else {
        "p.position"
    };
    if let Some(user) = filter.liked_by {
        qb.push(" join read.reactions lr on lr.target_id = p.id and lr.target_kind = 'post' and lr.reaction = 'like' and lr.user_id = ");
        qb.push_bind(user);
    }
    qb.push(" left join read.reactions mr on mr.target_id = p.id and mr.user_id = ");
    qb.push_bind(filter.reader);
    qb.push(" where not p.deleted");
    if let Some(author) = filter.author {
        qb.push(" and p.author_id = ");
        qb.push_bind(author);
    }
    if let Some(before) = filter.before {
        qb.push(format!(" and {order} < "));
        qb.push_bind(before);
    }
    qb.push(format!(" order by {order} desc limit "));
    qb.push_bind(filter.limit);
}

fn time_opt(r: &PgRow, col: &str) -> Result<Option<String>> {
    Ok(r.try_get::<Option<DateTime<Utc>>, _>(col)?
        .map(time::format))
}

fn post_from_row(r: &PgRow) -> Result<Post> {
    Ok(Post {
        id: r.try_get("id")?,
        author: Author {
            id: r.try_get("author_id")?,
            nickname: r.try_get("author_nickname")?,
        },
        title: r.try_get("title")?,
        content: r.try_get("content")?,
        categories: r.try_get("categories")?,
        created_at: time::format(r.try_get("created_at")?),
        edited_at: time_opt(r, "edited_at")?,
        comment_count: r.try_get("comment_count")?,
        likes: r.try_get("likes")?,
        dislikes: r.try_get("dislikes")?,
        my_reaction: r.try_get("my_reaction")?,
    })
}

fn comment_from_row(r: &PgRow) -> Result<Comment> {
    Ok(Comment {
        id: r.try_get("id")?,
        post_id: r.try_get("post_id")?,
        author: Author {
            id: r.try_get("author_id")?,
            nickname: r.try_get("author_nickname")?,
        },
        content: r.try_get("content")?,
        created_at: time::format(r.try_get("created_at")?),
        edited_at: time_opt(r, "edited_at")?,
        likes: r.try_get("likes")?,
        dislikes: r.try_get("dislikes")?,
        my_reaction: r.try_get("my_reaction")?,
    })
}

/// A visible post as `reader` sees it.
///
/// # Errors
/// Database failure.
pub async fn load_post(state: &AppState, id: Uuid, reader: Option<Uuid>) -> Result<Option<Post>> {
    let row = sqlx::query(&format!(
        "select {POST_COLUMNS} from read.posts p
         left join read.reactions mr on mr.target_id = p.id and mr.user_id = $2
         where p.id = $1 and not p.deleted"
    ))
    .bind(id)
    .bind(reader)
    .fetch_optional(&state.pool)
    .await?;
    row.as_ref().map(post_from_row).transpose()
}

const COMMENT_COLUMNS: &str = "c.id, c.post_id, c.author_id, c.author_nickname, c.content, \
     c.created_at, c.edited_at, c.likes, c.dislikes, c.position, mr.reaction as my_reaction";

async fn load_comment(state: &AppState, id: Uuid, reader: Option<Uuid>) -> Result<Option<Comment>> {
    let row = sqlx::query(&format!(
        "select {COMMENT_COLUMNS} from read.comments c
         join read.posts p on p.id = c.post_id and not p.deleted
         left join read.reactions mr on mr.target_id = c.id and mr.user_id = $2
         where c.id = $1 and not c.deleted"
    ))
    .bind(id)
    .bind(reader)
    .fetch_optional(&state.pool)
    .await?;
    row.as_ref().map(comment_from_row).transpose()
}

/// A path id: a malformed one names nothing, so 404.
pub(crate) fn path_id(id: &str) -> Result<Uuid> {
    Uuid::parse_str(id).map_err(|_| ApiError::NotFound)
}

fn categories_field(f: &mut Fields<'_>) -> Option<Vec<String>> {
    let Some(raw) = f.raw("categories") else {
        f.fail("categories", "is required");
        return None;
    };
    let Some(items) = raw.as_array() else {
        f.fail("categories", "must be an array of category slugs");
        return None;
    };
    let mut slugs = Vec::with_capacity(items.len());
    for item in items {
        match item.as_str() {
            Some(s) => slugs.push(s),
            None => {
                f.fail("categories", "must be an array of category slugs");
                return None;
            }
        }
    }
    match Categories::parse(slugs) {
        Ok(c) => Some(c.into_inner()),
        Err(m) => {
            f.fail("categories", m);
            None
        }
    }
}

/// Sends a forum command and waits for the read models. Comments, likes
/// and dislikes may notify someone: they also wait for the notifications
/// (see [`crate::watermarks::Watermarks::wait_notified`]).
async fn send(
    state: &AppState,
    rid: Origin,
    user: AuthUser,
    command: PostsCommand,
) -> Result<PostsData> {
    let notifies = match &command {
        PostsCommand::CreateComment(_) => true,
        PostsCommand::SetReaction(r) => r.reaction != Reaction::None,
        _ => false,
    };
    let accepted = state
        .bus
        .send::<_, PostsData>(
            Service::Posts,
            command.name(),
            rid,
            Some(user.user_id),
            command,
        )
        .await?;
    if notifies {
        state.watermarks.wait_notified(&accepted.positions).await?;
    } else {
        state.watermarks.wait(&accepted.positions).await?;
    }
    Ok(accepted.data)
}

fn done_id(data: PostsData) -> Result<Uuid> {
    match data {
        PostsData::Done { id } => Ok(id),
        PostsData::Reaction { .. } => Err(ApiError::Internal("unexpected reply".into())),
    }
}

/// The fixed set of categories.
#[utoipa::path(get, path = "/api/categories", tag = "forum",
    responses((status = 200, body = [Category])))]
pub async fn list_categories() -> Json<Vec<Category>> {
    Json(
        CATEGORIES
            .iter()
            .map(|(slug, name)| Category {
                slug: slug.to_string(),
                name: name.to_string(),
            })
            .collect(),
    )
}

/// Writes a post.
#[utoipa::path(post, path = "/api/posts", tag = "forum", request_body = CreatePostRequest,
    responses((status = 201, body = Post),
              (status = 400, body = crate::error::ErrorBody, description = "validation_failed naming every bad field"),
              (status = 401, body = crate::error::ErrorBody)),
    security(("bearer" = []), ("cookie" = [])))]
pub async fn create_post(
    State(state): State<AppState>,
    rid: Origin,
    user: AuthUser,
    JsonBody(body): JsonBody,
) -> Result<Response> {
    let mut f = Fields::new(&body);
    let title = f.parsed("title", Title::parse);
    let content = f.parsed("content", PostContent::parse);
    let categories = categories_field(&mut f);
    f.finish()?;
    let (Some(title), Some(content), Some(categories)) = (title, content, categories) else {
        return Err(ApiError::Internal("validated fields missing".into()));
    };
    let command = PostsCommand::CreatePost(CreatePost {
        title: title.into_inner(),
        content: content.into_inner(),
        categories,
    });
    let id = done_id(send(&state, rid, user, command).await?)?;
    let post = load_post(&state, id, Some(user.user_id))
        .await?
        .ok_or_else(|| ApiError::Internal("created post missing from read.posts".into()))?;
    Ok((StatusCode::CREATED, Json(post)).into_response())
}

/// Lists posts, newest first.
#[utoipa::path(get, path = "/api/posts", tag = "forum",
    params(("category" = Option<String>, Query, description = "Category slug"),
           ("author" = Option<String>, Query, description = "Author id, or `me` (needs login)"),
           ("reacted" = Option<String>, Query, description = "`like`: posts the caller liked (needs login)"),
           ("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "1-100, default 20"),
           ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page")),
    responses((status = 200, body = PostPage),
              (status = 400, body = crate::error::ErrorBody),
              (status = 401, body = crate::error::ErrorBody, description = "author=me or reacted=like without login")))]
pub async fn list_posts(
    State(state): State<AppState>,
    MaybeUser(user): MaybeUser,
    QueryMap(q): QueryMap,
) -> Result<Json<PostPage>> {
    let mut errors = BTreeMap::new();
    let (limit, before) = paging(&q, 20, 100, &mut errors);
    let mut needs_login = false;
    let category = match q.get("category").map(String::as_str) {
        None | Some("") => None,
        Some(c) if CATEGORIES.iter().any(|(s, _)| *s == c) => Some(c.to_string()),
        Some(_) => {
            errors.insert("category".into(), "unknown category".into());
            None
        }
    };
    let author = match q.get("author").map(String::as_str) {
        None | Some("") => None,
        Some("me") => {
            needs_login = true;
            user.map(|u| u.user_id)
        }
        Some(a) => match Uuid::parse_str(a) {
            Ok(id) => Some(id),
            Err(_) => {
                errors.insert("author".into(), "must be a user id or `me`".into());
                None
            }
        },
    };
    let liked_by = match q.get("reacted").map(String::as_str) {
        None | Some("") => None,
        Some("like") => {
            needs_login = true;
            user.map(|u| u.user_id)
        }
        Some(_) => {
            errors.insert("reacted".into(), "must be `like`".into());
            None
        }
    };
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    if needs_login && user.is_none() {
        return Err(ApiError::Unauthorized);
    }
    let filter = PostFilter {
        category,
        author,
        liked_by,
        before,
        reader: user.map(|u| u.user_id),
        limit: limit + 1,
    };
    let mut qb = QueryBuilder::new("");
    push_post_list(&mut qb, &filter);
    let rows = qb.build().fetch_all(&state.pool).await?;
    let more = rows.len() as i64 > limit;
    let mut items = Vec::with_capacity(rows.len());
    let mut last = None;
    for r in rows.iter().take(limit as usize) {
        items.push(post_from_row(r)?);
        last = Some(r.try_get::<i64, _>("position")?);
    }
    Ok(Json(PostPage {
        items,
        next_cursor: if more { last.map(encode_cursor) } else { None },
    }))
}

/// One post.
#[utoipa::path(get, path = "/api/posts/{id}", tag = "forum",
    params(("id" = Uuid, Path, description = "Post id")),
    responses((status = 200, body = Post), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get_post(
    State(state): State<AppState>,
    MaybeUser(user): MaybeUser,
    PathParam(id): PathParam<String>,
) -> Result<Json<Post>> {
    let id = path_id(&id)?;
    load_post(&state, id, user.map(|u| u.user_id))
        .await?
        .map(Json)
        .ok_or(ApiError::NotFound)
}

/// Edits one's post: any of title, content, categories.
#[utoipa::path(patch, path = "/api/posts/{id}", tag = "forum", request_body = EditPostRequest,
    params(("id" = Uuid, Path, description = "Post id")),
    responses((status = 200, body = Post),
              (status = 400, body = crate::error::ErrorBody, description = "A bad field, or no field at all (`body`)"),
              (status = 401, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody, description = "Not the author"),
              (status = 404, body = crate::error::ErrorBody)),
    security(("bearer" = []), ("cookie" = [])))]
pub async fn edit_post(
    State(state): State<AppState>,
    rid: Origin,
    user: AuthUser,
    PathParam(id): PathParam<String>,
    JsonBody(body): JsonBody,
) -> Result<Json<Post>> {
    let post_id = path_id(&id)?;
    let mut f = Fields::new(&body);
    let mut edit = PostEdit::default();
    if f.has("title") {
        edit.title = f.parsed("title", Title::parse).map(Title::into_inner);
    }
    if f.has("content") {
        edit.content = f
            .parsed("content", PostContent::parse)
            .map(PostContent::into_inner);
    }
    if f.has("categories") {
        edit.categories = categories_field(&mut f);
    }
    if !f.has("title") && !f.has("content") && !f.has("categories") {
        f.fail("body", "give at least one of title, content, categories");
    }
    f.finish()?;
    let command = PostsCommand::EditPost(EditPost { post_id, edit });
    send(&state, rid, user, command).await?;
    load_post(&state, post_id, Some(user.user_id))
        .await?
        .map(Json)
        .ok_or(ApiError::NotFound)
}

/// Deletes one's post.
#[utoipa::path(delete, path = "/api/posts/{id}", tag = "forum",
    params(("id" = Uuid, Path, description = "Post id")),
    responses((status = 204, description = "Deleted; later reads answer 404 and lists omit it"),
              (status = 401, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody),
              (status = 404, body = crate::error::ErrorBody)),
    security(("bearer" = []), ("cookie" = [])))]
pub async fn delete_post(
    State(state): State<AppState>,
    rid: Origin,
    user: AuthUser,
    PathParam(id): PathParam<String>,
) -> Result<Response> {
    let post_id = path_id(&id)?;
    send(
        &state,
        rid,
        user,
        PostsCommand::DeletePost(DeletePost { post_id }),
    )
    .await?;
    Ok(no_content())
}

/// Comments on a post.
#[utoipa::path(post, path = "/api/posts/{id}/comments", tag = "forum", request_body = CommentRequest,
    params(("id" = Uuid, Path, description = "Post id")),
    responses((status = 201, body = Comment),
              (status = 400, body = crate::error::ErrorBody),
              (status = 401, body = crate::error::ErrorBody),
              (status = 404, body = crate::error::ErrorBody)),
    security(("bearer" = []), ("cookie" = [])))]
pub async fn create_comment(
    State(state): State<AppState>,
    rid: Origin,
    user: AuthUser,
    PathParam(id): PathParam<String>,
    JsonBody(body): JsonBody,
) -> Result<Response> {
    let post_id = path_id(&id)?;
    let mut f = Fields::new(&body);
    let content = f.parsed("content", CommentContent::parse);
    f.finish()?;
    let Some(content) = content else {
        return Err(ApiError::Internal("validated fields missing".into()));
    };
    let command = PostsCommand::CreateComment(CreateComment {
        post_id,
        content: content.into_inner(),
    });
    let id = done_id(send(&state, rid, user, command).await?)?;
    let comment = load_comment(&state, id, Some(user.user_id))
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok((StatusCode::CREATED, Json(comment)).into_response())
}

/// A post's comments, oldest first.
#[utoipa::path(get, path = "/api/posts/{id}/comments", tag = "forum",
    params(("id" = Uuid, Path, description = "Post id"),
           ("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "1-100, default 20"),
           ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page")),
    responses((status = 200, body = CommentPage),
              (status = 400, body = crate::error::ErrorBody),
              (status = 404, body = crate::error::ErrorBody)))]
pub async fn list_comments(
    State(state): State<AppState>,
    MaybeUser(user): MaybeUser,
    PathParam(id): PathParam<String>,
    QueryMap(q): QueryMap,
) -> Result<Json<CommentPage>> {
    let post_id = path_id(&id)?;
    let mut errors = BTreeMap::new();
    let (limit, after) = paging(&q, 20, 100, &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let exists: bool = sqlx::query_scalar(
        "select exists (select 1 from read.posts where id = $1 and not deleted)",
    )
    .bind(post_id)
    .fetch_one(&state.pool)
    .await?;
    if !exists {
        return Err(ApiError::NotFound);
    }
    let rows = sqlx::query(&format!(
        "select {COMMENT_COLUMNS} from read.comments c
         left join read.reactions mr on mr.target_id = c.id and mr.user_id = $2
         where c.post_id = $1 and not c.deleted and c.position > $3
         order by c.position limit $4"
    ))
    .bind(post_id)
    .bind(user.map(|u| u.user_id))
    .bind(after.unwrap_or(0))
    .bind(limit + 1)
    .fetch_all(&state.pool)
    .await?;
    let more = rows.len() as i64 > limit;
    let mut items = Vec::with_capacity(rows.len());
    let mut last = None;
    for r in rows.iter().take(limit as usize) {
        items.push(comment_from_row(r)?);
        last = Some(r.try_get::<i64, _>("position")?);
    }
    Ok(Json(CommentPage {
        items,
        next_cursor: if more { last.map(encode_cursor) } else { None },
    }))
}

/// Edits one's comment.
#[utoipa::path(patch, path = "/api/comments/{id}", tag = "forum", request_body = CommentRequest,
    params(("id" = Uuid, Path, description = "Comment id")),
    responses((status = 200, body = Comment),
              (status = 400, body = crate::error::ErrorBody),
              (status = 401, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody),
              (status = 404, body = crate::error::ErrorBody)),
    security(("bearer" = []), ("cookie" = [])))]
pub async fn edit_comment(
    State(state): State<AppState>,
    rid: Origin,
    user: AuthUser,
    PathParam(id): PathParam<String>,
    JsonBody(body): JsonBody,
) -> Result<Json<Comment>> {
    let comment_id = path_id(&id)?;
    let mut f = Fields::new(&body);
    let content = f.parsed("content", CommentContent::parse);
    f.finish()?;
    let Some(content) = content else {
        return Err(ApiError::Internal("validated fields missing".into()));
    };
    let command = PostsCommand::EditComment(EditComment {
        comment_id,
        content: content.into_inner(),
    });
    send(&state, rid, user, command).await?;
    load_comment(&state, comment_id, Some(user.user_id))
        .await?
        .map(Json)
        .ok_or(ApiError::NotFound)
}

/// Deletes one's comment.
#[utoipa::path(delete, path = "/api/comments/{id}", tag = "forum",
    params(("id" = Uuid, Path, description = "Comment id")),
    responses((status = 204),
              (status = 401, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody),
              (status = 404, body = crate::error::ErrorBody)),
    security(("bearer" = []), ("cookie" = [])))]
pub async fn delete_comment(
    State(state): State<AppState>,
    rid: Origin,
    user: AuthUser,
    PathParam(id): PathParam<String>,
) -> Result<Response> {
    let comment_id = path_id(&id)?;
    let command = PostsCommand::DeleteComment(DeleteComment { comment_id });
    send(&state, rid, user, command).await?;
    Ok(no_content())
}

async fn react(
    state: AppState,
    rid: Origin,
    user: AuthUser,
    target: TargetKind,
    id: &str,
    body: serde_json::Map<String, Value>,
) -> Result<Json<ReactionState>> {
    let target_id = path_id(id)?;
    let reaction = match body.get("reaction") {
        None => Err(ApiError::field("reaction", "is required")),
        Some(Value::Null) => Ok(Reaction::None),
        Some(Value::String(s)) => Reaction::parse(s)
            .ok_or_else(|| ApiError::field("reaction", "must be `like`, `dislike` or null")),
        Some(_) => Err(ApiError::field(
            "reaction",
            "must be `like`, `dislike` or null",
        )),
    }?;
    let command = PostsCommand::SetReaction(SetReaction {
        target,
        target_id,
        reaction,
    });
    match send(&state, rid, user, command).await? {
        PostsData::Reaction {
            likes,
            dislikes,
            reaction,
        } => Ok(Json(ReactionState {
            likes,
            dislikes,
            my_reaction: reaction.as_str().map(str::to_string),
        })),
        PostsData::Done { .. } => Err(ApiError::Internal("unexpected reply".into())),
    }
}

/// Sets or withdraws one's reaction to a post.
#[utoipa::path(put, path = "/api/posts/{id}/reaction", tag = "forum", request_body = ReactionRequest,
    params(("id" = Uuid, Path, description = "Post id")),
    responses((status = 200, body = ReactionState),
              (status = 400, body = crate::error::ErrorBody),
              (status = 401, body = crate::error::ErrorBody),
              (status = 404, body = crate::error::ErrorBody)),
    security(("bearer" = []), ("cookie" = [])))]
pub async fn react_to_post(
    State(state): State<AppState>,
    rid: Origin,
    user: AuthUser,
    PathParam(id): PathParam<String>,
    JsonBody(body): JsonBody,
) -> Result<Json<ReactionState>> {
    react(state, rid, user, TargetKind::Post, &id, body).await
}

/// Sets or withdraws one's reaction to a comment.
#[utoipa::path(put, path = "/api/comments/{id}/reaction", tag = "forum", request_body = ReactionRequest,
    params(("id" = Uuid, Path, description = "Comment id")),
    responses((status = 200, body = ReactionState),
              (status = 400, body = crate::error::ErrorBody),
              (status = 401, body = crate::error::ErrorBody),
              (status = 404, body = crate::error::ErrorBody)),
    security(("bearer" = []), ("cookie" = [])))]
pub async fn react_to_comment(
    State(state): State<AppState>,
    rid: Origin,
    user: AuthUser,
    PathParam(id): PathParam<String>,
    JsonBody(body): JsonBody,
) -> Result<Json<ReactionState>> {
    react(state, rid, user, TargetKind::Comment, &id, body).await
}

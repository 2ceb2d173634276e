//! The forum: categories, posts, comments, reactions. Reads need no login
//! and come from the `read.*` views; writes need a session, go to the forum
//! service as commands, wait for the projection (read-your-writes), then
//! answer from the read views.
//!
//! # Layout
//! - this module: the router and the handlers;
//! - [`api`]: the JSON shapes, answers and request bodies (what the live
//!   feed and the other areas use);
//! - [`read`]: the read queries and the mapping of their rows.

pub mod api;
pub mod read;

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, put};
use axum::{Json, Router};
use forum_commands::posts::decide::PostEdit;
use forum_commands::posts::validate::CATEGORIES;
use forum_commands::posts::{
    CreateComment, CreatePost, DeleteComment, DeletePost, EditComment, EditPost, PostsCommand,
    PostsData, SetReaction,
};
use forum_events::posts::{Reaction, TargetKind};
use forum_events::Service;
use serde_json::{Map, Value};
use uuid::Uuid;

use self::api::{
    Category, Comment, CommentPage, CommentRequest, CreatePostRequest, EditPostRequest, Post,
    PostPage, ReactionRequest, ReactionState,
};
use crate::error::{ApiError, Result};
use crate::extract::{
    path_id, AuthUser, JsonBody, MaybeUser, Origin, PathParam, QueryMap, Validate,
};
use crate::routes::paging::paging;
use crate::{no_content, AppState};

// At this path for the end-to-end test of the list's query plans.
pub use self::read::{push_post_list, PostFilter};

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
        PostsData::PostCreated(p) => Ok(p.post_id),
        PostsData::CommentCreated(c) => Ok(c.comment_id),
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
    let body = CreatePostRequest::parse(&body)?;
    let command = PostsCommand::CreatePost(CreatePost {
        title: body.title.into_inner(),
        content: body.content.into_inner(),
        categories: body.categories.into_inner(),
    });
    let post = match send(&state, rid, user, command).await? {
        PostsData::PostCreated(created) => Post::from(created),
        // An outcome recorded before answers carried the post.
        other => read::post(&state.pool, done_id(other)?, Some(user.user_id))
            .await?
            .ok_or_else(|| ApiError::Internal("created post missing from read.posts".into()))?,
    };
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
        ..PostFilter::default()
    };
    Ok(Json(read::post_page(&state.pool, filter, limit).await?))
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
    read::post(&state.pool, id, user.map(|u| u.user_id))
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
    let body = EditPostRequest::parse(&body)?;
    let edit = PostEdit {
        title: body.title.map(|t| t.into_inner()),
        content: body.content.map(|c| c.into_inner()),
        categories: body.categories.map(|c| c.into_inner()),
    };
    let command = PostsCommand::EditPost(EditPost { post_id, edit });
    send(&state, rid, user, command).await?;
    read::post(&state.pool, post_id, Some(user.user_id))
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
    let body = CommentRequest::parse(&body)?;
    let command = PostsCommand::CreateComment(CreateComment {
        post_id,
        content: body.content.into_inner(),
    });
    let comment = match send(&state, rid, user, command).await? {
        PostsData::CommentCreated(created) => Comment::from(created),
        // An outcome recorded before answers carried the comment.
        other => read::comment(&state.pool, done_id(other)?, Some(user.user_id))
            .await?
            .ok_or(ApiError::NotFound)?,
    };
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
    if !read::post_exists(&state.pool, post_id).await? {
        return Err(ApiError::NotFound);
    }
    let reader = user.map(|u| u.user_id);
    let page = read::comment_page(&state.pool, post_id, reader, after, limit).await?;
    Ok(Json(page))
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
    let body = CommentRequest::parse(&body)?;
    let command = PostsCommand::EditComment(EditComment {
        comment_id,
        content: body.content.into_inner(),
    });
    send(&state, rid, user, command).await?;
    read::comment(&state.pool, comment_id, Some(user.user_id))
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
    body: Map<String, Value>,
) -> Result<Json<ReactionState>> {
    let target_id = path_id(id)?;
    let ReactionRequest { reaction } = ReactionRequest::parse(&body)?;
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
        _ => Err(ApiError::Internal("unexpected reply".into())),
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

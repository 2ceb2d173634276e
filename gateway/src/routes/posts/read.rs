//! The forum's reads from `read.posts`, `read.comments` and
//! `read.reactions`, and the mapping of their rows to [`Post`] and
//! [`Comment`].

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Postgres, QueryBuilder, Row};
use uuid::Uuid;

use super::api::{Author, Comment, CommentPage, Post, PostPage};
use crate::error::Result;
use crate::routes::paging::page;
use crate::time;

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
    /// Rows to fetch ([`post_page`] sets it).
    pub limit: i64,
}

const POST_COLUMNS: &str = "p.id, p.author_id, p.author_nickname, p.title, p.content, p.categories, \
     p.created_at, p.edited_at, p.comment_count, p.likes, p.dislikes, p.position, mr.reaction as my_reaction";

const COMMENT_COLUMNS: &str = "c.id, c.post_id, c.author_id, c.author_nickname, c.content, \
     c.created_at, c.edited_at, c.likes, c.dislikes, c.position, mr.reaction as my_reaction";

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

/// One page of `size` posts matching `filter`, newest first.
///
/// # Errors
/// Database failure.
pub async fn post_page(pool: &PgPool, filter: PostFilter, size: i64) -> Result<PostPage> {
    let filter = PostFilter {
        limit: size + 1,
        ..filter
    };
    let mut qb = QueryBuilder::new("");
    push_post_list(&mut qb, &filter);
    let rows = qb.build().fetch_all(pool).await?;
    let (items, next_cursor) = page(&rows, size, post_from_row)?;
    Ok(PostPage { items, next_cursor })
}

/// A visible post as `reader` sees it.
///
/// # Errors
/// Database failure.
pub async fn post(pool: &PgPool, id: Uuid, reader: Option<Uuid>) -> Result<Option<Post>> {
    let row = sqlx::query(&format!(
        "select {POST_COLUMNS} from read.posts p
         left join read.reactions mr on mr.target_id = p.id and mr.user_id = $2
         where p.id = $1 and not p.deleted"
    ))
    .bind(id)
    .bind(reader)
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(post_from_row).transpose()
}

/// Whether the post exists and is visible.
///
/// # Errors
/// Database failure.
pub async fn post_exists(pool: &PgPool, id: Uuid) -> Result<bool> {
    Ok(
        sqlx::query_scalar(
            "select exists (select 1 from read.posts where id = $1 and not deleted)",
        )
        .bind(id)
        .fetch_one(pool)
        .await?,
    )
}

/// A visible comment (of a visible post) as `reader` sees it.
///
/// # Errors
/// Database failure.
pub async fn comment(pool: &PgPool, id: Uuid, reader: Option<Uuid>) -> Result<Option<Comment>> {
    let row = sqlx::query(&format!(
        "select {COMMENT_COLUMNS} from read.comments c
         join read.posts p on p.id = c.post_id and not p.deleted
         left join read.reactions mr on mr.target_id = c.id and mr.user_id = $2
         where c.id = $1 and not c.deleted"
    ))
    .bind(id)
    .bind(reader)
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(comment_from_row).transpose()
}

/// One page of `size` of a post's visible comments after position
/// `after`, oldest first, as `reader` sees them.
///
/// # Errors
/// Database failure.
pub async fn comment_page(
    pool: &PgPool,
    post_id: Uuid,
    reader: Option<Uuid>,
    after: Option<i64>,
    size: i64,
) -> Result<CommentPage> {
    let rows = sqlx::query(&format!(
        "select {COMMENT_COLUMNS} from read.comments c
         left join read.reactions mr on mr.target_id = c.id and mr.user_id = $2
         where c.post_id = $1 and not c.deleted and c.position > $3
         order by c.position limit $4"
    ))
    .bind(post_id)
    .bind(reader)
    .bind(after.unwrap_or(0))
    .bind(size + 1)
    .fetch_all(pool)
    .await?;
    let (items, next_cursor) = page(&rows, size, comment_from_row)?;
    Ok(CommentPage { items, next_cursor })
}

//! The JSON shapes of the forum: what its routes answer (and the live feed
//! sends), and the request bodies, each one type that is both its OpenAPI
//! schema and its validation ([`Validate`]).

use forum_commands::posts::validate::{Categories, CommentContent, PostContent, Title};
use forum_events::posts::{CommentCreated, PostCreated, PostEdited, Reaction};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::extract::{Fields, Validate};
use crate::time::format_us;

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

impl From<PostEdited> for Post {
    /// The post as an edit left it: what its `post.updated` frame carries
    /// (`my_reaction` null, as for every reader of the feed).
    fn from(e: PostEdited) -> Self {
        Post {
            id: e.post_id,
            author: Author {
                id: e.author_id,
                nickname: e.author_nickname,
            },
            title: e.title,
            content: e.content,
            categories: e.categories,
            created_at: format_us(e.created_at_us),
            edited_at: Some(format_us(e.edited_at_us)),
            comment_count: e.comment_count as i32,
            likes: e.likes as i32,
            dislikes: e.dislikes as i32,
            my_reaction: None,
        }
    }
}

impl From<PostCreated> for Post {
    /// The post as it was created: what its `201` answers and its
    /// `post.new` frame carries.
    fn from(e: PostCreated) -> Self {
        Post {
            id: e.post_id,
            author: Author {
                id: e.author_id,
                nickname: e.author_nickname,
            },
            title: e.title,
            content: e.content,
            categories: e.categories,
            created_at: format_us(e.created_at_us),
            edited_at: None,
            comment_count: 0,
            likes: 0,
            dislikes: 0,
            my_reaction: None,
        }
    }
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

impl From<CommentCreated> for Comment {
    /// The comment as it was created: what its `201` answers and its
    /// `comment.new` frame carries.
    fn from(e: CommentCreated) -> Self {
        Comment {
            id: e.comment_id,
            post_id: e.post_id,
            author: Author {
                id: e.author_id,
                nickname: e.author_nickname,
            },
            content: e.content,
            created_at: format_us(e.created_at_us),
            edited_at: None,
            likes: 0,
            dislikes: 0,
            my_reaction: None,
        }
    }
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
#[derive(Debug, utoipa::ToSchema)]
pub struct CreatePostRequest {
    /// 1–200 characters, not blank (stored trimmed); no control characters
    /// but tab and line breaks.
    #[schema(
        value_type = String,
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\u007F-\\u009F]*[^\\s\\u0000-\\u001F\\u007F-\\u009F][^\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\u007F-\\u009F]*$"
    )]
    pub title: Title,
    /// 1–20000 characters, not blank; no control characters but tab and
    /// line breaks.
    #[schema(
        value_type = String,
        min_length = 1,
        max_length = 20000,
        pattern = "^[^\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\u007F-\\u009F]*[^\\s\\u0000-\\u001F\\u007F-\\u009F][^\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\u007F-\\u009F]*$"
    )]
    pub content: PostContent,
    /// 1–5 known category slugs (`GET /api/categories`); duplicates are ignored.
    #[schema(value_type = Vec<String>, min_items = 1, max_items = 5)]
    pub categories: Categories,
}

impl Validate for CreatePostRequest {
    fn validate(f: &mut Fields<'_>) -> Option<Self> {
        let title = f.parsed("title", Title::parse);
        let content = f.parsed("content", PostContent::parse);
        let categories = categories(f, "categories");
        Some(CreatePostRequest {
            title: title?,
            content: content?,
            categories: categories?,
        })
    }
}

/// Body of `PATCH /api/posts/{id}`: at least one field.
#[derive(Debug, utoipa::ToSchema)]
pub struct EditPostRequest {
    /// New title (as in creation).
    #[schema(
        value_type = Option<String>,
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\u007F-\\u009F]*[^\\s\\u0000-\\u001F\\u007F-\\u009F][^\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\u007F-\\u009F]*$"
    )]
    pub title: Option<Title>,
    /// New content (as in creation).
    #[schema(
        value_type = Option<String>,
        min_length = 1,
        max_length = 20000,
        pattern = "^[^\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\u007F-\\u009F]*[^\\s\\u0000-\\u001F\\u007F-\\u009F][^\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\u007F-\\u009F]*$"
    )]
    pub content: Option<PostContent>,
    /// New categories (as in creation).
    #[schema(value_type = Option<Vec<String>>, min_items = 1, max_items = 5)]
    pub categories: Option<Categories>,
}

impl Validate for EditPostRequest {
    fn validate(f: &mut Fields<'_>) -> Option<Self> {
        let title = f.optional("title", |f, name| f.parsed(name, Title::parse));
        let content = f.optional("content", |f, name| f.parsed(name, PostContent::parse));
        let categories = f.optional("categories", categories);
        if !f.has("title") && !f.has("content") && !f.has("categories") {
            f.fail("body", "give at least one of title, content, categories");
            return None;
        }
        Some(EditPostRequest {
            title: title?,
            content: content?,
            categories: categories?,
        })
    }
}

/// Body of comment writes.
#[derive(Debug, utoipa::ToSchema)]
pub struct CommentRequest {
    /// 1–5000 characters, not blank; no control characters but tab and
    /// line breaks.
    #[schema(
        value_type = String,
        min_length = 1,
        max_length = 5000,
        pattern = "^[^\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\u007F-\\u009F]*[^\\s\\u0000-\\u001F\\u007F-\\u009F][^\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\u007F-\\u009F]*$"
    )]
    pub content: CommentContent,
}

impl Validate for CommentRequest {
    fn validate(f: &mut Fields<'_>) -> Option<Self> {
        let content = f.parsed("content", CommentContent::parse);
        Some(CommentRequest { content: content? })
    }
}

/// Body of reaction writes.
#[derive(Debug, utoipa::ToSchema)]
pub struct ReactionRequest {
    /// `like`, `dislike`, or null to withdraw (required, null included).
    #[schema(value_type = Option<String>, required = true, nullable, pattern = "^(like|dislike)$")]
    pub reaction: Reaction,
}

impl Validate for ReactionRequest {
    fn validate(f: &mut Fields<'_>) -> Option<Self> {
        const ONE_OF: &str = "must be `like`, `dislike` or null";
        let reaction = f.field("reaction", |v| match v {
            None => Err("is required"),
            Some(Value::Null) => Ok(Reaction::None),
            Some(Value::String(s)) => Reaction::parse(s).ok_or(ONE_OF),
            Some(_) => Err(ONE_OF),
        });
        Some(ReactionRequest {
            reaction: reaction?,
        })
    }
}

/// A required array of category slugs.
fn categories(f: &mut Fields<'_>, name: &str) -> Option<Categories> {
    const SLUGS: &str = "must be an array of category slugs";
    f.field(name, |v| {
        let items = v.ok_or("is required")?.as_array().ok_or(SLUGS)?;
        let slugs = items
            .iter()
            .map(Value::as_str)
            .collect::<Option<Vec<&str>>>()
            .ok_or(SLUGS)?;
        Categories::parse(slugs)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ApiError;
    use serde_json::json;

    fn parse<T: Validate>(v: Value) -> Result<T, ApiError> {
        match v {
            Value::Object(map) => T::parse(&map),
            _ => unreachable!("test bodies are objects"),
        }
    }

    fn refused<T: Validate + std::fmt::Debug>(v: Value) -> Vec<String> {
        match parse::<T>(v) {
            Err(ApiError::Validation(fields)) => fields.into_keys().collect(),
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn a_post_body_names_every_bad_field_at_once() {
        let ok = parse::<CreatePostRequest>(
            json!({"title": " Hi ", "content": "x", "categories": ["news", "news"]}),
        )
        .expect("valid");
        assert_eq!(ok.title.into_inner(), "Hi");
        assert_eq!(ok.categories.into_inner(), ["news"]);
        assert_eq!(
            refused::<CreatePostRequest>(json!({"title": 1, "categories": ["nope"]})),
            ["categories", "content", "title"]
        );
        assert_eq!(
            refused::<CreatePostRequest>(
                json!({"title": "a\u{0}", "content": "b", "categories": [1]})
            ),
            ["categories", "title"]
        );
    }

    #[test]
    fn an_edit_needs_one_field_and_checks_those_given() {
        let edit = parse::<EditPostRequest>(json!({"content": "new"})).expect("valid");
        assert!(edit.title.is_none() && edit.categories.is_none());
        assert_eq!(refused::<EditPostRequest>(json!({})), ["body"]);
        assert_eq!(
            refused::<EditPostRequest>(json!({"title": null, "categories": []})),
            ["categories", "title"]
        );
    }

    #[test]
    fn a_reaction_is_like_dislike_or_null_and_required() {
        let r = |v| parse::<ReactionRequest>(v).map(|r| r.reaction).ok();
        assert_eq!(r(json!({"reaction": "like"})), Some(Reaction::Like));
        assert_eq!(r(json!({"reaction": null})), Some(Reaction::None));
        for bad in [
            json!({}),
            json!({"reaction": "love"}),
            json!({"reaction": 1}),
        ] {
            assert_eq!(refused::<ReactionRequest>(bad), ["reaction"]);
        }
    }
}

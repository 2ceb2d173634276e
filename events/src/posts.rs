//! Events of the forum service (log `posts`): posts, comments, reactions.
//!
//! Every event of a post, of its comments and of the reactions on both is
//! stored in the post's stream (stream id = post id), so the events of one
//! post are totally ordered. Each event carries what the live feed needs to
//! build its frame without reading the database.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::codec::{decode, encode, DecodeError};
use crate::{EventSet, Service};

/// What a reaction is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TargetKind {
    /// A post.
    Post,
    /// A comment.
    Comment,
}

impl TargetKind {
    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::Post => "post",
            TargetKind::Comment => "comment",
        }
    }
}

/// A user's reaction to a post or comment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Reaction {
    /// No reaction.
    #[default]
    None,
    /// `like`
    Like,
    /// `dislike`
    Dislike,
}

impl Reaction {
    /// The API spelling (`None` for no reaction).
    pub fn as_str(self) -> Option<&'static str> {
        match self {
            Reaction::None => None,
            Reaction::Like => Some("like"),
            Reaction::Dislike => Some("dislike"),
        }
    }

    /// Parses the API spelling.
    pub fn parse(s: &str) -> Option<Reaction> {
        match s {
            "like" => Some(Reaction::Like),
            "dislike" => Some(Reaction::Dislike),
            _ => None,
        }
    }
}

/// A post was written (`post_created`, v1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostCreated {
    /// The post's id (also the stream id).
    pub post_id: Uuid,
    /// The author.
    pub author_id: Uuid,
    /// The author's nickname when the post was written.
    pub author_nickname: String,
    /// Title, trimmed.
    pub title: String,
    /// Content.
    pub content: String,
    /// Category slugs, deduplicated, in the order given.
    pub categories: Vec<String>,
    /// Creation time, µs since the epoch.
    pub created_at_us: i64,
}

/// A post was edited (`post_edited`, v1). Carries the whole post after the
/// edit, counts included, so the `post.updated` frame needs no read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostEdited {
    /// The post.
    pub post_id: Uuid,
    /// The author.
    pub author_id: Uuid,
    /// The author's nickname.
    pub author_nickname: String,
    /// Title after the edit.
    pub title: String,
    /// Content after the edit.
    pub content: String,
    /// Categories after the edit.
    pub categories: Vec<String>,
    /// Creation time, µs.
    pub created_at_us: i64,
    /// Edit time, µs.
    pub edited_at_us: i64,
    /// Visible comments.
    pub comment_count: u32,
    /// Likes.
    pub likes: u32,
    /// Dislikes.
    pub dislikes: u32,
}

/// A post was deleted by its author (`post_deleted`, v1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostDeleted {
    /// The post.
    pub post_id: Uuid,
    /// The author.
    pub author_id: Uuid,
    /// Deletion time, µs.
    pub deleted_at_us: i64,
}

/// A comment was written (`comment_created`, v1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommentCreated {
    /// The comment.
    pub comment_id: Uuid,
    /// The post it belongs to (the stream id).
    pub post_id: Uuid,
    /// The author.
    pub author_id: Uuid,
    /// The author's nickname.
    pub author_nickname: String,
    /// Content.
    pub content: String,
    /// Creation time, µs.
    pub created_at_us: i64,
}

/// A comment was edited (`comment_edited`, v1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommentEdited {
    /// The comment.
    pub comment_id: Uuid,
    /// Its post.
    pub post_id: Uuid,
    /// The author.
    pub author_id: Uuid,
    /// Content after the edit.
    pub content: String,
    /// Edit time, µs.
    pub edited_at_us: i64,
}

/// A comment was deleted by its author (`comment_deleted`, v1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommentDeleted {
    /// The comment.
    pub comment_id: Uuid,
    /// Its post.
    pub post_id: Uuid,
    /// The author.
    pub author_id: Uuid,
    /// Deletion time, µs.
    pub deleted_at_us: i64,
}

/// A user's reaction to a post or comment changed (`reaction_set`, v1).
/// Carries the target's counts after the change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReactionSet {
    /// Post or comment.
    pub target: TargetKind,
    /// The post's or comment's id.
    pub target_id: Uuid,
    /// The post (the target itself, or the comment's post; the stream id).
    pub post_id: Uuid,
    /// Who reacted.
    pub user_id: Uuid,
    /// The new reaction (`None` withdraws it).
    pub reaction: Reaction,
    /// Likes after the change.
    pub likes: u32,
    /// Dislikes after the change.
    pub dislikes: u32,
    /// When, µs.
    pub at_us: i64,
}

/// Every event of the forum service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PostEvent {
    /// See [`PostCreated`].
    PostCreated(PostCreated),
    /// See [`PostEdited`].
    PostEdited(PostEdited),
    /// See [`PostDeleted`].
    PostDeleted(PostDeleted),
    /// See [`CommentCreated`].
    CommentCreated(CommentCreated),
    /// See [`CommentEdited`].
    CommentEdited(CommentEdited),
    /// See [`CommentDeleted`].
    CommentDeleted(CommentDeleted),
    /// See [`ReactionSet`].
    ReactionSet(ReactionSet),
}

impl PostEvent {
    /// The post whose stream holds the event.
    pub fn post_id(&self) -> Uuid {
        match self {
            PostEvent::PostCreated(e) => e.post_id,
            PostEvent::PostEdited(e) => e.post_id,
            PostEvent::PostDeleted(e) => e.post_id,
            PostEvent::CommentCreated(e) => e.post_id,
            PostEvent::CommentEdited(e) => e.post_id,
            PostEvent::CommentDeleted(e) => e.post_id,
            PostEvent::ReactionSet(e) => e.post_id,
        }
    }
}

impl EventSet for PostEvent {
    const SERVICE: Service = Service::Posts;

    fn event_type(&self) -> &'static str {
        match self {
            PostEvent::PostCreated(_) => "post_created",
            PostEvent::PostEdited(_) => "post_edited",
            PostEvent::PostDeleted(_) => "post_deleted",
            PostEvent::CommentCreated(_) => "comment_created",
            PostEvent::CommentEdited(_) => "comment_edited",
            PostEvent::CommentDeleted(_) => "comment_deleted",
            PostEvent::ReactionSet(_) => "reaction_set",
        }
    }

    fn schema_version(&self) -> u16 {
        1
    }

    fn encode_payload(&self) -> Vec<u8> {
        match self {
            PostEvent::PostCreated(e) => encode(e),
            PostEvent::PostEdited(e) => encode(e),
            PostEvent::PostDeleted(e) => encode(e),
            PostEvent::CommentCreated(e) => encode(e),
            PostEvent::CommentEdited(e) => encode(e),
            PostEvent::CommentDeleted(e) => encode(e),
            PostEvent::ReactionSet(e) => encode(e),
        }
    }

    fn decode(event_type: &str, schema_version: u16, payload: &[u8]) -> Result<Self, DecodeError> {
        match (event_type, schema_version) {
            ("post_created", 1) => decode(payload).map(PostEvent::PostCreated),
            ("post_edited", 1) => decode(payload).map(PostEvent::PostEdited),
            ("post_deleted", 1) => decode(payload).map(PostEvent::PostDeleted),
            ("comment_created", 1) => decode(payload).map(PostEvent::CommentCreated),
            ("comment_edited", 1) => decode(payload).map(PostEvent::CommentEdited),
            ("comment_deleted", 1) => decode(payload).map(PostEvent::CommentDeleted),
            ("reaction_set", 1) => decode(payload).map(PostEvent::ReactionSet),
            _ => Err(DecodeError::UnknownType {
                event_type: event_type.to_string(),
                schema_version,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{hex, id, unhex};

    /// (type, version, golden bytes, the event they must decode to).
    fn golden() -> Vec<(&'static str, u16, &'static str, PostEvent)> {
        vec![
            (
                "post_created",
                1,
                "10010101010101010101010101010101011002020202020202020202020202020202036e696302486904426f647902046e657773046d65746180897a",
                PostEvent::PostCreated(PostCreated {
                    post_id: id(1),
                    author_id: id(2),
                    author_nickname: "nic".into(),
                    title: "Hi".into(),
                    content: "Body".into(),
                    categories: vec!["news".into(), "meta".into()],
                    created_at_us: 1_000_000,
                }),
            ),
            (
                "post_edited",
                1,
                "10010101010101010101010101010101011002020202020202020202020202020202036e696302486f024232010468656c7080897a8092f401030405",
                PostEvent::PostEdited(PostEdited {
                    post_id: id(1),
                    author_id: id(2),
                    author_nickname: "nic".into(),
                    title: "Ho".into(),
                    content: "B2".into(),
                    categories: vec!["help".into()],
                    created_at_us: 1_000_000,
                    edited_at_us: 2_000_000,
                    comment_count: 3,
                    likes: 4,
                    dislikes: 5,
                }),
            ),
            (
                "post_deleted",
                1,
                "10010101010101010101010101010101011002020202020202020202020202020202809bee02",
                PostEvent::PostDeleted(PostDeleted {
                    post_id: id(1),
                    author_id: id(2),
                    deleted_at_us: 3_000_000,
                }),
            ),
            (
                "comment_created",
                1,
                "100303030303030303030303030303030310010101010101010101010101010101011002020202020202020202020202020202036e6963014380897a",
                PostEvent::CommentCreated(CommentCreated {
                    comment_id: id(3),
                    post_id: id(1),
                    author_id: id(2),
                    author_nickname: "nic".into(),
                    content: "C".into(),
                    created_at_us: 1_000_000,
                }),
            ),
            (
                "comment_edited",
                1,
                "1003030303030303030303030303030303100101010101010101010101010101010110020202020202020202020202020202020243328092f401",
                PostEvent::CommentEdited(CommentEdited {
                    comment_id: id(3),
                    post_id: id(1),
                    author_id: id(2),
                    content: "C2".into(),
                    edited_at_us: 2_000_000,
                }),
            ),
            (
                "comment_deleted",
                1,
                "100303030303030303030303030303030310010101010101010101010101010101011002020202020202020202020202020202809bee02",
                PostEvent::CommentDeleted(CommentDeleted {
                    comment_id: id(3),
                    post_id: id(1),
                    author_id: id(2),
                    deleted_at_us: 3_000_000,
                }),
            ),
            (
                "reaction_set",
                1,
                "0110030303030303030303030303030303031001010101010101010101010101010101100404040404040404040404040404040402010280897a",
                PostEvent::ReactionSet(ReactionSet {
                    target: TargetKind::Comment,
                    target_id: id(3),
                    post_id: id(1),
                    user_id: id(4),
                    reaction: Reaction::Dislike,
                    likes: 1,
                    dislikes: 2,
                    at_us: 1_000_000,
                }),
            ),
        ]
    }

    #[test]
    fn golden_vectors_of_every_posts_event_decode() {
        for (ty, ver, bytes, expected) in golden() {
            let decoded = PostEvent::decode(ty, ver, &unhex(bytes))
                .unwrap_or_else(|e| panic!("{ty} v{ver}: {e}"));
            assert_eq!(decoded, expected, "{ty} v{ver}");
            assert_eq!(
                hex(&expected.encode_payload()),
                bytes,
                "{ty} v{ver} encodes"
            );
            assert_eq!(expected.event_type(), ty);
        }
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        let (ty, ver, bytes, _) = &golden()[2];
        let mut b = unhex(bytes);
        b.push(0);
        assert_eq!(
            PostEvent::decode(ty, *ver, &b),
            Err(DecodeError::TrailingBytes(1))
        );
    }

    #[test]
    fn unknown_types_and_versions_are_rejected() {
        assert!(matches!(
            PostEvent::decode("post_created", 9, &[]),
            Err(DecodeError::UnknownType { .. })
        ));
        assert!(matches!(
            PostEvent::decode("nope", 1, &[]),
            Err(DecodeError::UnknownType { .. })
        ));
    }
}

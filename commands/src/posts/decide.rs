//! The forum decisions: pure functions of state and command. [`apply`]
//! folds events into [`World`] and holds no rule.

use std::collections::HashMap;

use forum_events::posts::{
    CommentCreated, CommentDeleted, CommentEdited, PostCreated, PostDeleted, PostEdited, PostEvent,
    Reaction, ReactionSet, TargetKind,
};
use uuid::Uuid;

use crate::wire::Rejection;

/// A post as decisions see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostState {
    /// The author.
    pub author_id: Uuid,
    /// The author's nickname.
    pub author_nickname: String,
    /// Current title.
    pub title: String,
    /// Current content.
    pub content: String,
    /// Current categories.
    pub categories: Vec<String>,
    /// Creation time, µs.
    pub created_at_us: i64,
    /// Deleted by its author.
    pub deleted: bool,
    /// The post stream's version (its last event's).
    pub version: u32,
    /// Likes.
    pub likes: u32,
    /// Dislikes.
    pub dislikes: u32,
    /// Visible comments.
    pub comment_count: u32,
}

/// A comment as decisions see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommentState {
    /// Its post.
    pub post_id: Uuid,
    /// The author.
    pub author_id: Uuid,
    /// Deleted by its author.
    pub deleted: bool,
    /// Likes.
    pub likes: u32,
    /// Dislikes.
    pub dislikes: u32,
}

/// The state a batch of decisions reads and the events it folds into.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct World {
    /// Posts by id.
    pub posts: HashMap<Uuid, PostState>,
    /// Comments by id.
    pub comments: HashMap<Uuid, CommentState>,
    /// Reactions by (target, user); absent means none.
    pub reactions: HashMap<(Uuid, Uuid), Reaction>,
}

impl World {
    /// A visible post.
    pub fn live_post(&self, id: Uuid) -> Option<&PostState> {
        self.posts.get(&id).filter(|p| !p.deleted)
    }

    /// A visible comment on a visible post.
    pub fn live_comment(&self, id: Uuid) -> Option<&CommentState> {
        self.comments
            .get(&id)
            .filter(|c| !c.deleted && self.live_post(c.post_id).is_some())
    }

    /// A user's reaction to a target.
    pub fn reaction(&self, target: Uuid, user: Uuid) -> Reaction {
        self.reactions
            .get(&(target, user))
            .copied()
            .unwrap_or_default()
    }
}

/// Folds one event into the world; the post's stream version moves by one.
pub fn apply(world: &mut World, event: &PostEvent) {
    match event {
        PostEvent::PostCreated(e) => {
            world.posts.insert(
                e.post_id,
                PostState {
                    author_id: e.author_id,
                    author_nickname: e.author_nickname.clone(),
                    title: e.title.clone(),
                    content: e.content.clone(),
                    categories: e.categories.clone(),
                    created_at_us: e.created_at_us,
                    deleted: false,
                    version: 0,
                    likes: 0,
                    dislikes: 0,
                    comment_count: 0,
                },
            );
        }
        PostEvent::PostEdited(e) => {
            if let Some(p) = world.posts.get_mut(&e.post_id) {
                p.title = e.title.clone();
                p.content = e.content.clone();
                p.categories = e.categories.clone();
            }
        }
        PostEvent::PostDeleted(e) => {
            if let Some(p) = world.posts.get_mut(&e.post_id) {
                p.deleted = true;
            }
        }
        PostEvent::CommentCreated(e) => {
            world.comments.insert(
                e.comment_id,
                CommentState {
                    post_id: e.post_id,
                    author_id: e.author_id,
                    deleted: false,
                    likes: 0,
                    dislikes: 0,
                },
            );
            if let Some(p) = world.posts.get_mut(&e.post_id) {
                p.comment_count += 1;
            }
        }
        PostEvent::CommentEdited(_) => {}
        PostEvent::CommentDeleted(e) => {
            if let Some(c) = world.comments.get_mut(&e.comment_id) {
                c.deleted = true;
            }
            if let Some(p) = world.posts.get_mut(&e.post_id) {
                p.comment_count = p.comment_count.saturating_sub(1);
            }
        }
        PostEvent::ReactionSet(e) => {
            match e.reaction {
                Reaction::None => world.reactions.remove(&(e.target_id, e.user_id)),
                r => world.reactions.insert((e.target_id, e.user_id), r),
            };
            match e.target {
                TargetKind::Post => {
                    if let Some(p) = world.posts.get_mut(&e.target_id) {
                        p.likes = e.likes;
                        p.dislikes = e.dislikes;
                    }
                }
                TargetKind::Comment => {
                    if let Some(c) = world.comments.get_mut(&e.target_id) {
                        c.likes = e.likes;
                        c.dislikes = e.dislikes;
                    }
                }
            }
        }
    }
    if let Some(p) = world.posts.get_mut(&event.post_id()) {
        p.version += 1;
    }
}

/// A post to write, after preparation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPost {
    /// Chosen id.
    pub post_id: Uuid,
    /// The actor.
    pub author_id: Uuid,
    /// The actor's nickname.
    pub author_nickname: String,
    /// Validated title.
    pub title: String,
    /// Validated content.
    pub content: String,
    /// Validated categories.
    pub categories: Vec<String>,
    /// µs.
    pub at_us: i64,
}

/// The fields an edit changes (`None` keeps the current value).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PostEdit {
    /// New title.
    pub title: Option<String>,
    /// New content.
    pub content: Option<String>,
    /// New categories.
    pub categories: Option<Vec<String>>,
}

/// A comment to write, after preparation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewComment {
    /// Chosen id.
    pub comment_id: Uuid,
    /// The post.
    pub post_id: Uuid,
    /// The actor.
    pub author_id: Uuid,
    /// The actor's nickname.
    pub author_nickname: String,
    /// Validated content.
    pub content: String,
    /// µs.
    pub at_us: i64,
}

/// Writing a post always succeeds (the id is new).
pub fn create_post(p: &NewPost) -> Vec<PostEvent> {
    vec![PostEvent::PostCreated(PostCreated {
        post_id: p.post_id,
        author_id: p.author_id,
        author_nickname: p.author_nickname.clone(),
        title: p.title.clone(),
        content: p.content.clone(),
        categories: p.categories.clone(),
        created_at_us: p.at_us,
    })]
}

fn own_post(world: &World, post_id: Uuid, actor: Uuid) -> Result<&PostState, Rejection> {
    let post = world.live_post(post_id).ok_or(Rejection::NotFound)?;
    if post.author_id != actor {
        return Err(Rejection::Forbidden);
    }
    Ok(post)
}

/// Editing a post: only its author, only while it exists.
///
/// # Errors
/// [`Rejection::NotFound`], [`Rejection::Forbidden`].
pub fn edit_post(
    world: &World,
    post_id: Uuid,
    actor: Uuid,
    edit: &PostEdit,
    at_us: i64,
) -> Result<Vec<PostEvent>, Rejection> {
    let post = own_post(world, post_id, actor)?;
    Ok(vec![PostEvent::PostEdited(PostEdited {
        post_id,
        author_id: post.author_id,
        author_nickname: post.author_nickname.clone(),
        title: edit.title.clone().unwrap_or_else(|| post.title.clone()),
        content: edit.content.clone().unwrap_or_else(|| post.content.clone()),
        categories: edit
            .categories
            .clone()
            .unwrap_or_else(|| post.categories.clone()),
        created_at_us: post.created_at_us,
        edited_at_us: at_us,
        comment_count: post.comment_count,
        likes: post.likes,
        dislikes: post.dislikes,
    })])
}

/// Deleting a post: only its author, once.
///
/// # Errors
/// [`Rejection::NotFound`], [`Rejection::Forbidden`].
pub fn delete_post(
    world: &World,
    post_id: Uuid,
    actor: Uuid,
    at_us: i64,
) -> Result<Vec<PostEvent>, Rejection> {
    let post = own_post(world, post_id, actor)?;
    Ok(vec![PostEvent::PostDeleted(PostDeleted {
        post_id,
        author_id: post.author_id,
        deleted_at_us: at_us,
    })])
}

/// Commenting: only on a visible post.
///
/// # Errors
/// [`Rejection::NotFound`].
pub fn create_comment(world: &World, c: &NewComment) -> Result<Vec<PostEvent>, Rejection> {
    world.live_post(c.post_id).ok_or(Rejection::NotFound)?;
    Ok(vec![PostEvent::CommentCreated(CommentCreated {
        comment_id: c.comment_id,
        post_id: c.post_id,
        author_id: c.author_id,
        author_nickname: c.author_nickname.clone(),
        content: c.content.clone(),
        created_at_us: c.at_us,
    })])
}

fn own_comment(world: &World, comment_id: Uuid, actor: Uuid) -> Result<&CommentState, Rejection> {
    let comment = world.live_comment(comment_id).ok_or(Rejection::NotFound)?;
    if comment.author_id != actor {
        return Err(Rejection::Forbidden);
    }
    Ok(comment)
}

/// Editing a comment: only its author, while it and its post exist.
///
/// # Errors
/// [`Rejection::NotFound`], [`Rejection::Forbidden`].
pub fn edit_comment(
    world: &World,
    comment_id: Uuid,
    actor: Uuid,
    content: &str,
    at_us: i64,
) -> Result<Vec<PostEvent>, Rejection> {
    let c = own_comment(world, comment_id, actor)?;
    Ok(vec![PostEvent::CommentEdited(CommentEdited {
        comment_id,
        post_id: c.post_id,
        author_id: c.author_id,
        content: content.to_string(),
        edited_at_us: at_us,
    })])
}

/// Deleting a comment: only its author, once.
///
/// # Errors
/// [`Rejection::NotFound`], [`Rejection::Forbidden`].
pub fn delete_comment(
    world: &World,
    comment_id: Uuid,
    actor: Uuid,
    at_us: i64,
) -> Result<Vec<PostEvent>, Rejection> {
    let c = own_comment(world, comment_id, actor)?;
    Ok(vec![PostEvent::CommentDeleted(CommentDeleted {
        comment_id,
        post_id: c.post_id,
        author_id: c.author_id,
        deleted_at_us: at_us,
    })])
}

/// The counts of a target after a reaction changes from `old` to `new`.
fn recount(likes: u32, dislikes: u32, old: Reaction, new: Reaction) -> (u32, u32) {
    let (mut l, mut d) = (likes, dislikes);
    match old {
        Reaction::Like => l = l.saturating_sub(1),
        Reaction::Dislike => d = d.saturating_sub(1),
        Reaction::None => {}
    }
    match new {
        Reaction::Like => l += 1,
        Reaction::Dislike => d += 1,
        Reaction::None => {}
    }
    (l, d)
}

/// Reacting: one reaction per user per visible target; like and dislike
/// exclude each other; the same reaction again changes nothing. Returns the
/// events and the target's (likes, dislikes) afterwards.
///
/// # Errors
/// [`Rejection::NotFound`] for a missing or deleted target (or a comment of
/// a deleted post).
pub fn set_reaction(
    world: &World,
    target: TargetKind,
    target_id: Uuid,
    user_id: Uuid,
    reaction: Reaction,
    at_us: i64,
) -> Result<(Vec<PostEvent>, u32, u32), Rejection> {
    let (post_id, likes, dislikes) = match target {
        TargetKind::Post => {
            let p = world.live_post(target_id).ok_or(Rejection::NotFound)?;
            (target_id, p.likes, p.dislikes)
        }
        TargetKind::Comment => {
            let c = world.live_comment(target_id).ok_or(Rejection::NotFound)?;
            (c.post_id, c.likes, c.dislikes)
        }
    };
    let old = world.reaction(target_id, user_id);
    if old == reaction {
        return Ok((Vec::new(), likes, dislikes));
    }
    let (likes, dislikes) = recount(likes, dislikes, old, reaction);
    Ok((
        vec![PostEvent::ReactionSet(ReactionSet {
            target,
            target_id,
            post_id,
            user_id,
            reaction,
            likes,
            dislikes,
            at_us,
        })],
        likes,
        dislikes,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const AUTHOR: Uuid = Uuid::from_u128(1);
    const OTHER: Uuid = Uuid::from_u128(2);
    const POST: Uuid = Uuid::from_u128(10);
    const COMMENT: Uuid = Uuid::from_u128(20);

    fn given(events: &[PostEvent]) -> World {
        let mut w = World::default();
        for e in events {
            apply(&mut w, e);
        }
        w
    }

    fn post_created() -> PostEvent {
        create_post(&NewPost {
            post_id: POST,
            author_id: AUTHOR,
            author_nickname: "ada".into(),
            title: "T".into(),
            content: "C".into(),
            categories: vec!["news".into()],
            at_us: 1,
        })
        .remove(0)
    }

    fn comment_created() -> PostEvent {
        PostEvent::CommentCreated(CommentCreated {
            comment_id: COMMENT,
            post_id: POST,
            author_id: OTHER,
            author_nickname: "bob".into(),
            content: "c".into(),
            created_at_us: 2,
        })
    }

    fn post_deleted() -> PostEvent {
        PostEvent::PostDeleted(PostDeleted {
            post_id: POST,
            author_id: AUTHOR,
            deleted_at_us: 3,
        })
    }

    fn react(w: &World, user: Uuid, r: Reaction) -> Result<(Vec<PostEvent>, u32, u32), Rejection> {
        set_reaction(w, TargetKind::Post, POST, user, r, 5)
    }

    #[test]
    fn given_nothing_when_creating_a_post_then_post_created_at_version_one() {
        let w = given(&[post_created()]);
        assert_eq!(w.posts[&POST].version, 1);
        assert_eq!(w.posts[&POST].author_nickname, "ada");
    }

    #[test]
    fn given_a_post_when_its_author_edits_then_post_edited_keeps_unchanged_fields() {
        let w = given(&[post_created(), comment_created()]);
        let edit = PostEdit {
            title: Some("New".into()),
            ..PostEdit::default()
        };
        let events = edit_post(&w, POST, AUTHOR, &edit, 9).expect("accepted");
        assert!(matches!(&events[..], [PostEvent::PostEdited(e)]
            if e.title == "New" && e.content == "C" && e.categories == ["news"]
               && e.edited_at_us == 9 && e.comment_count == 1 && e.author_nickname == "ada"));
    }

    #[test]
    fn given_a_post_when_someone_else_edits_or_deletes_then_forbidden() {
        let w = given(&[post_created()]);
        assert_eq!(
            edit_post(&w, POST, OTHER, &PostEdit::default(), 9),
            Err(Rejection::Forbidden)
        );
        assert_eq!(delete_post(&w, POST, OTHER, 9), Err(Rejection::Forbidden));
    }

    #[test]
    fn given_a_deleted_or_missing_post_when_acting_on_it_then_not_found() {
        let w = given(&[post_created(), comment_created(), post_deleted()]);
        assert_eq!(w.posts[&POST].version, 3);
        assert_eq!(
            edit_post(&w, POST, AUTHOR, &PostEdit::default(), 9),
            Err(Rejection::NotFound)
        );
        assert_eq!(delete_post(&w, POST, AUTHOR, 9), Err(Rejection::NotFound));
        assert_eq!(
            delete_post(&w, Uuid::from_u128(99), AUTHOR, 9),
            Err(Rejection::NotFound)
        );
        let c = NewComment {
            comment_id: Uuid::from_u128(21),
            post_id: POST,
            author_id: OTHER,
            author_nickname: "bob".into(),
            content: "x".into(),
            at_us: 9,
        };
        assert_eq!(create_comment(&w, &c), Err(Rejection::NotFound));
        assert_eq!(react(&w, OTHER, Reaction::Like), Err(Rejection::NotFound));
        assert_eq!(
            set_reaction(&w, TargetKind::Comment, COMMENT, AUTHOR, Reaction::Like, 9),
            Err(Rejection::NotFound)
        );
        assert_eq!(
            edit_comment(&w, COMMENT, OTHER, "y", 9),
            Err(Rejection::NotFound)
        );
    }

    #[test]
    fn given_a_comment_when_its_author_deletes_it_then_count_drops_and_it_is_gone() {
        let w = given(&[post_created(), comment_created()]);
        assert_eq!(
            delete_comment(&w, COMMENT, AUTHOR, 9),
            Err(Rejection::Forbidden)
        );
        let events = delete_comment(&w, COMMENT, OTHER, 9).expect("accepted");
        let mut w2 = w.clone();
        for e in &events {
            apply(&mut w2, e);
        }
        assert_eq!(w2.posts[&POST].comment_count, 0);
        assert_eq!(
            delete_comment(&w2, COMMENT, OTHER, 9),
            Err(Rejection::NotFound)
        );
        assert!(edit_comment(&w, COMMENT, OTHER, "z", 9).is_ok());
    }

    #[test]
    fn given_a_like_when_disliking_then_like_is_replaced() {
        let mut w = given(&[post_created()]);
        let (events, l, d) = react(&w, OTHER, Reaction::Like).expect("like");
        assert_eq!((l, d), (1, 0));
        for e in &events {
            apply(&mut w, e);
        }
        let (events, l, d) = react(&w, OTHER, Reaction::Dislike).expect("dislike");
        assert_eq!((l, d), (0, 1));
        assert!(matches!(&events[..], [PostEvent::ReactionSet(r)]
            if r.reaction == Reaction::Dislike && r.likes == 0 && r.dislikes == 1));
        for e in &events {
            apply(&mut w, e);
        }
        let (events, l, d) = react(&w, OTHER, Reaction::None).expect("none");
        assert_eq!((l, d, events.len()), (0, 0, 1));
    }

    #[test]
    fn given_a_like_when_liking_again_then_nothing_happens() {
        let mut w = given(&[post_created()]);
        let (events, ..) = react(&w, OTHER, Reaction::Like).expect("like");
        for e in &events {
            apply(&mut w, e);
        }
        assert_eq!(react(&w, OTHER, Reaction::Like), Ok((Vec::new(), 1, 0)));
        assert_eq!(
            react(&given(&[post_created()]), OTHER, Reaction::None),
            Ok((Vec::new(), 0, 0))
        );
    }

    #[test]
    fn given_a_comment_when_reacting_then_comment_counts_move() {
        let w = given(&[post_created(), comment_created()]);
        let (events, l, d) = set_reaction(
            &w,
            TargetKind::Comment,
            COMMENT,
            AUTHOR,
            Reaction::Dislike,
            9,
        )
        .expect("accepted");
        assert_eq!((l, d), (0, 1));
        assert!(matches!(&events[..], [PostEvent::ReactionSet(r)] if r.post_id == POST));
    }
}

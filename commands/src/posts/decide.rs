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
    use crate::testing::{Decider, NOW_US};

    /// The forum decisions, driven by the harness.
    enum Forum {}

    /// A forum command as the decisions receive it, after preparation: the
    /// actor known, new ids and the author's nickname chosen; the service's
    /// clock reads [`NOW_US`].
    #[derive(Debug)]
    enum Cmd {
        CreatePost(NewPost),
        EditPost {
            actor: Uuid,
            post_id: Uuid,
            edit: PostEdit,
        },
        DeletePost {
            actor: Uuid,
            post_id: Uuid,
        },
        CreateComment(NewComment),
        EditComment {
            actor: Uuid,
            comment_id: Uuid,
            content: String,
        },
        DeleteComment {
            actor: Uuid,
            comment_id: Uuid,
        },
        SetReaction {
            actor: Uuid,
            target: TargetKind,
            target_id: Uuid,
            reaction: Reaction,
        },
    }

    impl Decider for Forum {
        type State = World;
        type Event = PostEvent;
        type Command = Cmd;
        type Emitted = PostEvent;
        type Error = Rejection;

        fn apply(world: &mut World, event: &PostEvent) {
            apply(world, event);
        }

        fn decide(world: &World, command: &Cmd) -> Result<Vec<PostEvent>, Rejection> {
            let at = NOW_US;
            match command {
                Cmd::CreatePost(p) => Ok(create_post(p)),
                Cmd::EditPost {
                    actor,
                    post_id,
                    edit,
                } => edit_post(world, *post_id, *actor, edit, at),
                Cmd::DeletePost { actor, post_id } => delete_post(world, *post_id, *actor, at),
                Cmd::CreateComment(c) => create_comment(world, c),
                Cmd::EditComment {
                    actor,
                    comment_id,
                    content,
                } => edit_comment(world, *comment_id, *actor, content, at),
                Cmd::DeleteComment { actor, comment_id } => {
                    delete_comment(world, *comment_id, *actor, at)
                }
                Cmd::SetReaction {
                    actor,
                    target,
                    target_id,
                    reaction,
                } => set_reaction(world, *target, *target_id, *actor, *reaction, at)
                    .map(|(events, _likes, _dislikes)| events),
            }
        }
    }

    const AUTHOR: Uuid = Uuid::from_u128(1);
    const OTHER: Uuid = Uuid::from_u128(2);
    const POST: Uuid = Uuid::from_u128(10);
    const COMMENT: Uuid = Uuid::from_u128(20);

    /// AUTHOR's post.
    fn post_created() -> PostEvent {
        PostEvent::PostCreated(PostCreated {
            post_id: POST,
            author_id: AUTHOR,
            author_nickname: "ada".into(),
            title: "T".into(),
            content: "C".into(),
            categories: vec!["news".into()],
            created_at_us: 1,
        })
    }

    /// OTHER's comment on it.
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

    fn comment_deleted() -> PostEvent {
        PostEvent::CommentDeleted(CommentDeleted {
            comment_id: COMMENT,
            post_id: POST,
            author_id: OTHER,
            deleted_at_us: 4,
        })
    }

    /// `user`'s reaction to the post, leaving it at `likes` and `dislikes`.
    fn reacted(user: Uuid, reaction: Reaction, likes: u32, dislikes: u32) -> PostEvent {
        PostEvent::ReactionSet(ReactionSet {
            target: TargetKind::Post,
            target_id: POST,
            post_id: POST,
            user_id: user,
            reaction,
            likes,
            dislikes,
            at_us: NOW_US,
        })
    }

    fn react(actor: Uuid, reaction: Reaction) -> Cmd {
        Cmd::SetReaction {
            actor,
            target: TargetKind::Post,
            target_id: POST,
            reaction,
        }
    }

    fn retitle(actor: Uuid) -> Cmd {
        Cmd::EditPost {
            actor,
            post_id: POST,
            edit: PostEdit {
                title: Some("New".into()),
                ..PostEdit::default()
            },
        }
    }

    #[test]
    fn creating_a_post_writes_it_as_prepared() {
        Forum::given([])
            .when(Cmd::CreatePost(NewPost {
                post_id: POST,
                author_id: AUTHOR,
                author_nickname: "ada".into(),
                title: "T".into(),
                content: "C".into(),
                categories: vec!["news".into()],
                at_us: 1,
            }))
            .then([post_created()]);
    }

    #[test]
    fn a_post_is_at_version_one_when_created_and_each_of_its_events_moves_it_by_one() {
        let created = Forum::given([post_created()]);
        assert_eq!(created.state().posts[&POST].version, 1);
        assert_eq!(created.state().posts[&POST].author_nickname, "ada");
        let deleted = created.and([comment_created(), post_deleted()]);
        assert_eq!(deleted.state().posts[&POST].version, 3);
    }

    #[test]
    fn an_edit_by_the_author_keeps_the_fields_it_does_not_change() {
        Forum::given([post_created(), comment_created()])
            .when(retitle(AUTHOR))
            .then([PostEvent::PostEdited(PostEdited {
                post_id: POST,
                author_id: AUTHOR,
                author_nickname: "ada".into(),
                title: "New".into(),
                content: "C".into(),
                categories: vec!["news".into()],
                created_at_us: 1,
                edited_at_us: NOW_US,
                comment_count: 1,
                likes: 0,
                dislikes: 0,
            })]);
    }

    #[test]
    fn an_edit_by_someone_else_is_forbidden() {
        Forum::given([post_created()])
            .when(Cmd::EditPost {
                actor: OTHER,
                post_id: POST,
                edit: PostEdit::default(),
            })
            .then_rejected(Rejection::Forbidden);
    }

    #[test]
    fn deleting_ones_post_deletes_it() {
        Forum::given([post_created()])
            .when(Cmd::DeletePost {
                actor: AUTHOR,
                post_id: POST,
            })
            .then([PostEvent::PostDeleted(PostDeleted {
                post_id: POST,
                author_id: AUTHOR,
                deleted_at_us: NOW_US,
            })]);
    }

    #[test]
    fn deleting_someone_elses_post_is_forbidden() {
        Forum::given([post_created()])
            .when(Cmd::DeletePost {
                actor: OTHER,
                post_id: POST,
            })
            .then_rejected(Rejection::Forbidden);
    }

    #[test]
    fn acting_on_a_deleted_post_or_on_a_comment_of_it_is_not_found() {
        let on_the_deleted_post = || [post_created(), comment_created(), post_deleted()];
        let new_comment = NewComment {
            comment_id: Uuid::from_u128(21),
            post_id: POST,
            author_id: OTHER,
            author_nickname: "bob".into(),
            content: "x".into(),
            at_us: 9,
        };
        for command in [
            retitle(AUTHOR),
            Cmd::DeletePost {
                actor: AUTHOR,
                post_id: POST,
            },
            Cmd::CreateComment(new_comment),
            react(OTHER, Reaction::Like),
            Cmd::SetReaction {
                actor: AUTHOR,
                target: TargetKind::Comment,
                target_id: COMMENT,
                reaction: Reaction::Like,
            },
            Cmd::EditComment {
                actor: OTHER,
                comment_id: COMMENT,
                content: "y".into(),
            },
            Cmd::DeleteComment {
                actor: OTHER,
                comment_id: COMMENT,
            },
        ] {
            Forum::given(on_the_deleted_post())
                .when(command)
                .then_rejected(Rejection::NotFound);
        }
    }

    #[test]
    fn acting_on_a_post_that_never_existed_is_not_found() {
        Forum::given([post_created()])
            .when(Cmd::DeletePost {
                actor: AUTHOR,
                post_id: Uuid::from_u128(99),
            })
            .then_rejected(Rejection::NotFound);
        Forum::given([])
            .when(react(OTHER, Reaction::Like))
            .then_rejected(Rejection::NotFound);
    }

    #[test]
    fn commenting_on_a_post_writes_the_comment_as_prepared() {
        Forum::given([post_created()])
            .when(Cmd::CreateComment(NewComment {
                comment_id: COMMENT,
                post_id: POST,
                author_id: OTHER,
                author_nickname: "bob".into(),
                content: "c".into(),
                at_us: 2,
            }))
            .then([comment_created()]);
    }

    #[test]
    fn editing_ones_comment_replaces_its_content() {
        Forum::given([post_created(), comment_created()])
            .when(Cmd::EditComment {
                actor: OTHER,
                comment_id: COMMENT,
                content: "z".into(),
            })
            .then([PostEvent::CommentEdited(CommentEdited {
                comment_id: COMMENT,
                post_id: POST,
                author_id: OTHER,
                content: "z".into(),
                edited_at_us: NOW_US,
            })]);
    }

    #[test]
    fn editing_someone_elses_comment_even_on_ones_own_post_is_forbidden() {
        Forum::given([post_created(), comment_created()])
            .when(Cmd::EditComment {
                actor: AUTHOR,
                comment_id: COMMENT,
                content: "z".into(),
            })
            .then_rejected(Rejection::Forbidden);
    }

    #[test]
    fn deleting_someone_elses_comment_even_on_ones_own_post_is_forbidden() {
        Forum::given([post_created(), comment_created()])
            .when(Cmd::DeleteComment {
                actor: AUTHOR,
                comment_id: COMMENT,
            })
            .then_rejected(Rejection::Forbidden);
    }

    #[test]
    fn deleting_ones_comment_deletes_it() {
        Forum::given([post_created(), comment_created()])
            .when(Cmd::DeleteComment {
                actor: OTHER,
                comment_id: COMMENT,
            })
            .then([PostEvent::CommentDeleted(CommentDeleted {
                comment_id: COMMENT,
                post_id: POST,
                author_id: OTHER,
                deleted_at_us: NOW_US,
            })]);
    }

    #[test]
    fn a_deleted_comment_leaves_the_post_count_and_is_not_found_again() {
        let deleted = || [post_created(), comment_created(), comment_deleted()];
        assert_eq!(
            Forum::given(deleted()).state().posts[&POST].comment_count,
            0
        );
        Forum::given(deleted())
            .when(Cmd::DeleteComment {
                actor: OTHER,
                comment_id: COMMENT,
            })
            .then_rejected(Rejection::NotFound);
        Forum::given(deleted())
            .when(Cmd::EditComment {
                actor: OTHER,
                comment_id: COMMENT,
                content: "z".into(),
            })
            .then_rejected(Rejection::NotFound);
    }

    #[test]
    fn a_first_like_counts_one() {
        Forum::given([post_created()])
            .when(react(OTHER, Reaction::Like))
            .then([reacted(OTHER, Reaction::Like, 1, 0)]);
    }

    #[test]
    fn reactions_of_different_users_add_up() {
        Forum::given([post_created(), reacted(OTHER, Reaction::Like, 1, 0)])
            .when(react(AUTHOR, Reaction::Like))
            .then([reacted(AUTHOR, Reaction::Like, 2, 0)]);
    }

    #[test]
    fn a_dislike_replaces_ones_like() {
        Forum::given([post_created(), reacted(OTHER, Reaction::Like, 1, 0)])
            .when(react(OTHER, Reaction::Dislike))
            .then([reacted(OTHER, Reaction::Dislike, 0, 1)]);
    }

    #[test]
    fn withdrawing_ones_dislike_counts_it_no_more() {
        Forum::given([
            post_created(),
            reacted(OTHER, Reaction::Like, 1, 0),
            reacted(OTHER, Reaction::Dislike, 0, 1),
        ])
        .when(react(OTHER, Reaction::None))
        .then([reacted(OTHER, Reaction::None, 0, 0)]);
    }

    #[test]
    fn liking_again_changes_nothing() {
        Forum::given([post_created(), reacted(OTHER, Reaction::Like, 1, 0)])
            .when(react(OTHER, Reaction::Like))
            .then_nothing();
    }

    #[test]
    fn withdrawing_a_reaction_one_never_gave_changes_nothing() {
        Forum::given([post_created()])
            .when(react(OTHER, Reaction::None))
            .then_nothing();
    }

    #[test]
    fn a_reaction_answers_the_targets_counts_afterwards_even_when_nothing_changes() {
        // The counts are the reply, not an event: asked of the decision
        // itself, on the state the harness folds.
        let liked = Forum::given([post_created(), reacted(OTHER, Reaction::Like, 1, 0)]);
        let answer = |user, reaction| {
            set_reaction(
                liked.state(),
                TargetKind::Post,
                POST,
                user,
                reaction,
                NOW_US,
            )
        };
        assert_eq!(
            answer(OTHER, Reaction::Dislike),
            Ok((vec![reacted(OTHER, Reaction::Dislike, 0, 1)], 0, 1))
        );
        assert_eq!(answer(OTHER, Reaction::Like), Ok((Vec::new(), 1, 0)));
        assert_eq!(answer(AUTHOR, Reaction::None), Ok((Vec::new(), 1, 0)));
    }

    #[test]
    fn a_reaction_to_a_comment_moves_the_comments_counts() {
        Forum::given([post_created(), comment_created()])
            .when(Cmd::SetReaction {
                actor: AUTHOR,
                target: TargetKind::Comment,
                target_id: COMMENT,
                reaction: Reaction::Dislike,
            })
            .then([PostEvent::ReactionSet(ReactionSet {
                target: TargetKind::Comment,
                target_id: COMMENT,
                post_id: POST,
                user_id: AUTHOR,
                reaction: Reaction::Dislike,
                likes: 0,
                dislikes: 1,
                at_us: NOW_US,
            })]);
    }
}

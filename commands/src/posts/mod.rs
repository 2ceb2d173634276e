//! The forum domain: posts, comments, reactions.
//!
//! # Layout
//! - [`validate`]: newtypes that parse API input once, at the edge, and the
//!   fixed set of categories.
//! - [`decide`]: the state, the pure decisions and their given/when/then
//!   tests.
//! - this file: the wire commands and the [`Domain`] glue (loading the
//!   batch's state in the append transaction, writing the write model).

pub mod decide;
pub mod validate;

use std::collections::HashSet;

use forum_events::posts::{CommentCreated, PostCreated, PostEvent, Reaction, TargetKind};
use forum_events::{NewEvent, Service};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use crate::nicknames::Nicknames;
use crate::runtime::{Context, Domain, Outcome};
use crate::wire::Rejection;
use crate::Result;
use decide::{CommentState, NewComment, NewPost, PostEdit, PostState, World};

/// Write a post.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreatePost {
    /// Validated title.
    pub title: String,
    /// Validated content.
    pub content: String,
    /// Validated categories.
    pub categories: Vec<String>,
}

/// Edit one's post.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EditPost {
    /// The post.
    pub post_id: Uuid,
    /// The validated changes.
    pub edit: PostEdit,
}

/// Delete one's post.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeletePost {
    /// The post.
    pub post_id: Uuid,
}

/// Comment on a post.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateComment {
    /// The post.
    pub post_id: Uuid,
    /// Validated content.
    pub content: String,
}

/// Edit one's comment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EditComment {
    /// The comment.
    pub comment_id: Uuid,
    /// Validated content.
    pub content: String,
}

/// Delete one's comment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeleteComment {
    /// The comment.
    pub comment_id: Uuid,
}

/// Set (or withdraw) one's reaction to a post or comment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetReaction {
    /// Post or comment.
    pub target: TargetKind,
    /// Its id.
    pub target_id: Uuid,
    /// The new reaction.
    pub reaction: Reaction,
}

/// Every command of the forum service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PostsCommand {
    /// See [`CreatePost`].
    CreatePost(CreatePost),
    /// See [`EditPost`].
    EditPost(EditPost),
    /// See [`DeletePost`].
    DeletePost(DeletePost),
    /// See [`CreateComment`].
    CreateComment(CreateComment),
    /// See [`EditComment`].
    EditComment(EditComment),
    /// See [`DeleteComment`].
    DeleteComment(DeleteComment),
    /// See [`SetReaction`].
    SetReaction(SetReaction),
}

impl PostsCommand {
    /// The last token of the command's subject.
    pub fn name(&self) -> &'static str {
        match self {
            PostsCommand::CreatePost(_) => "create_post",
            PostsCommand::EditPost(_) => "edit_post",
            PostsCommand::DeletePost(_) => "delete_post",
            PostsCommand::CreateComment(_) => "create_comment",
            PostsCommand::EditComment(_) => "edit_comment",
            PostsCommand::DeleteComment(_) => "delete_comment",
            PostsCommand::SetReaction(_) => "set_reaction",
        }
    }
}

/// What an accepted forum command answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PostsData {
    /// A post or comment was written, edited or deleted.
    Done {
        /// Its id.
        id: Uuid,
    },
    /// The actor's reaction now stands as given.
    Reaction {
        /// Likes afterwards.
        likes: u32,
        /// Dislikes afterwards.
        dislikes: u32,
        /// The actor's reaction.
        reaction: Reaction,
    },
    /// A post was written: the event, from which its answer is made
    /// without reading the read model back.
    PostCreated(PostCreated),
    /// A comment was written: the event, as for `PostCreated`.
    CommentCreated(CommentCreated),
}

impl PostsData {
    /// What creating `id` answers: the created post or comment when
    /// `events` has it, else just the id.
    fn created(events: &[PostEvent], id: Uuid) -> PostsData {
        events
            .iter()
            .find_map(|e| match e {
                PostEvent::PostCreated(p) if p.post_id == id => {
                    Some(PostsData::PostCreated(p.clone()))
                }
                PostEvent::CommentCreated(c) if c.comment_id == id => {
                    Some(PostsData::CommentCreated(c.clone()))
                }
                _ => None,
            })
            .unwrap_or(PostsData::Done { id })
    }
}

/// A command after preparation: actor known, ids and time chosen.
pub struct Prepared {
    actor: Uuid,
    at_us: i64,
    kind: Kind,
}

enum Kind {
    CreatePost(NewPost),
    EditPost(EditPost),
    DeletePost(Uuid),
    CreateComment(NewComment),
    EditComment(EditComment),
    DeleteComment(Uuid),
    SetReaction(SetReaction),
}

/// The forum service.
pub struct Posts {
    nicknames: Nicknames,
}

impl Posts {
    /// A service using `pool` for look-ups.
    pub fn new(pool: PgPool) -> Self {
        Posts {
            nicknames: Nicknames::new(pool),
        }
    }
}

impl Domain for Posts {
    const SERVICE: Service = Service::Posts;
    type Command = PostsCommand;
    type Prepared = Prepared;
    type Data = PostsData;

    async fn prepare(
        &self,
        ctx: &Context,
        command: PostsCommand,
    ) -> std::result::Result<Prepared, Rejection> {
        let actor = ctx.actor.ok_or(Rejection::Unauthorized)?;
        let at_us = chrono::Utc::now().timestamp_micros();
        let kind = match command {
            PostsCommand::CreatePost(c) => Kind::CreatePost(NewPost {
                post_id: Uuid::now_v7(),
                author_id: actor,
                author_nickname: self.nicknames.actor(actor).await?,
                title: c.title,
                content: c.content,
                categories: c.categories,
                at_us,
            }),
            PostsCommand::EditPost(c) => Kind::EditPost(c),
            PostsCommand::DeletePost(c) => Kind::DeletePost(c.post_id),
            PostsCommand::CreateComment(c) => Kind::CreateComment(NewComment {
                comment_id: Uuid::now_v7(),
                post_id: c.post_id,
                author_id: actor,
                author_nickname: self.nicknames.actor(actor).await?,
                content: c.content,
                at_us,
            }),
            PostsCommand::EditComment(c) => Kind::EditComment(c),
            PostsCommand::DeleteComment(c) => Kind::DeleteComment(c.comment_id),
            PostsCommand::SetReaction(c) => Kind::SetReaction(c),
        };
        Ok(Prepared { actor, at_us, kind })
    }

    async fn execute(
        &self,
        tx: &mut PgConnection,
        batch: &[(Context, Prepared)],
    ) -> Result<Vec<Outcome<PostsData>>> {
        let mut world = load(tx, batch).await?;
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut dirty_posts = HashSet::new();
        let mut dirty_comments = HashSet::new();
        let mut dirty_reactions = HashSet::new();
        // A post's row is written once, in its state after the whole batch;
        // texts an earlier command of the batch gave it and a later one
        // replaced never reach the table. They must be storable all the
        // same, or whether a command is accepted would depend on what else
        // is in its batch: they are sent to Postgres to be checked.
        let mut batch_texts = HashSet::new();
        let mut replaced_texts = Vec::new();
        for (_, p) in batch {
            let decided = decide_one(&world, p);
            outcomes.push(decided.map(|(events, data)| {
                let mut stored = Vec::with_capacity(events.len());
                for event in &events {
                    let post_id = event.post_id();
                    if let PostEvent::PostCreated(_) | PostEvent::PostEdited(_) = event {
                        if !batch_texts.insert(post_id) {
                            if let Some(p) = world.posts.get(&post_id) {
                                replaced_texts.extend([p.title.clone(), p.content.clone()]);
                                replaced_texts.extend(p.categories.iter().cloned());
                            }
                        }
                    }
                    decide::apply(&mut world, event);
                    dirty_posts.insert(post_id);
                    match event {
                        PostEvent::CommentCreated(e) => {
                            dirty_comments.insert(e.comment_id);
                        }
                        PostEvent::CommentDeleted(e) => {
                            dirty_comments.insert(e.comment_id);
                        }
                        PostEvent::ReactionSet(e) => {
                            dirty_reactions.insert((e.target_id, e.user_id));
                            if e.target == TargetKind::Comment {
                                dirty_comments.insert(e.target_id);
                            }
                        }
                        _ => {}
                    }
                    let version = world.posts.get(&post_id).map_or(1, |s| s.version);
                    stored.push(NewEvent::new(post_id, version, Uuid::now_v7(), event));
                }
                (stored, data)
            }));
        }
        if !replaced_texts.is_empty() {
            sqlx::query("select count(*) from unnest($1::text[])")
                .bind(&replaced_texts)
                .execute(&mut *tx)
                .await?;
        }
        write_model(tx, &world, &dirty_posts, &dirty_comments, &dirty_reactions).await?;
        Ok(outcomes)
    }

    fn unstorable(&self, prepared: &Prepared) -> Rejection {
        let texts: Vec<(&str, &str)> = match &prepared.kind {
            Kind::CreatePost(n) => [("title", n.title.as_str()), ("content", &n.content)]
                .into_iter()
                .chain(n.categories.iter().map(|c| ("categories", c.as_str())))
                .collect(),
            Kind::EditPost(e) => (e.edit.title.iter().map(|t| ("title", t.as_str())))
                .chain(e.edit.content.iter().map(|c| ("content", c.as_str())))
                .chain((e.edit.categories.iter().flatten()).map(|c| ("categories", c.as_str())))
                .collect(),
            Kind::CreateComment(n) => vec![("content", n.content.as_str())],
            Kind::EditComment(e) => vec![("content", e.content.as_str())],
            Kind::DeletePost(_) | Kind::DeleteComment(_) | Kind::SetReaction(_) => Vec::new(),
        };
        Rejection::unstorable(texts)
    }
}

fn decide_one(
    world: &World,
    p: &Prepared,
) -> std::result::Result<(Vec<PostEvent>, PostsData), Rejection> {
    let (actor, at) = (p.actor, p.at_us);
    match &p.kind {
        Kind::CreatePost(n) => {
            let events = decide::create_post(n);
            let data = PostsData::created(&events, n.post_id);
            Ok((events, data))
        }
        Kind::EditPost(e) => decide::edit_post(world, e.post_id, actor, &e.edit, at)
            .map(|ev| (ev, PostsData::Done { id: e.post_id })),
        Kind::DeletePost(id) => {
            decide::delete_post(world, *id, actor, at).map(|ev| (ev, PostsData::Done { id: *id }))
        }
        Kind::CreateComment(n) => decide::create_comment(world, n).map(|ev| {
            let data = PostsData::created(&ev, n.comment_id);
            (ev, data)
        }),
        Kind::EditComment(e) => decide::edit_comment(world, e.comment_id, actor, &e.content, at)
            .map(|ev| (ev, PostsData::Done { id: e.comment_id })),
        Kind::DeleteComment(id) => decide::delete_comment(world, *id, actor, at)
            .map(|ev| (ev, PostsData::Done { id: *id })),
        Kind::SetReaction(r) => {
            decide::set_reaction(world, r.target, r.target_id, actor, r.reaction, at).map(
                |(ev, likes, dislikes)| {
                    (
                        ev,
                        PostsData::Reaction {
                            likes,
                            dislikes,
                            reaction: r.reaction,
                        },
                    )
                },
            )
        }
    }
}

/// Loads, in one query per table, the state the batch's decisions read.
async fn load(tx: &mut PgConnection, batch: &[(Context, Prepared)]) -> Result<World> {
    let mut post_ids = Vec::new();
    let mut comment_ids = Vec::new();
    let mut reaction_keys: Vec<(Uuid, Uuid)> = Vec::new();
    for (_, p) in batch {
        match &p.kind {
            Kind::CreatePost(_) => {}
            Kind::EditPost(e) => post_ids.push(e.post_id),
            Kind::DeletePost(id) => post_ids.push(*id),
            Kind::CreateComment(n) => post_ids.push(n.post_id),
            Kind::EditComment(e) => comment_ids.push(e.comment_id),
            Kind::DeleteComment(id) => comment_ids.push(*id),
            Kind::SetReaction(r) => {
                match r.target {
                    TargetKind::Post => post_ids.push(r.target_id),
                    TargetKind::Comment => comment_ids.push(r.target_id),
                }
                reaction_keys.push((r.target_id, p.actor));
            }
        }
    }
    let mut world = World::default();
    if !comment_ids.is_empty() {
        let rows = sqlx::query(
            "select comment_id, post_id, author_id, deleted, likes, dislikes
             from posts.comments where comment_id = any($1)",
        )
        .bind(&comment_ids)
        .fetch_all(&mut *tx)
        .await?;
        for r in rows {
            let post_id: Uuid = r.try_get("post_id")?;
            post_ids.push(post_id);
            world.comments.insert(
                r.try_get("comment_id")?,
                CommentState {
                    post_id,
                    author_id: r.try_get("author_id")?,
                    deleted: r.try_get("deleted")?,
                    likes: r.try_get::<i32, _>("likes")? as u32,
                    dislikes: r.try_get::<i32, _>("dislikes")? as u32,
                },
            );
        }
    }
    if !post_ids.is_empty() {
        let rows = sqlx::query(
            "select post_id, author_id, author_nickname, title, content, categories,
                    created_at_us, deleted, version, likes, dislikes, comment_count
             from posts.posts where post_id = any($1)",
        )
        .bind(&post_ids)
        .fetch_all(&mut *tx)
        .await?;
        for r in rows {
            world.posts.insert(
                r.try_get("post_id")?,
                PostState {
                    author_id: r.try_get("author_id")?,
                    author_nickname: r.try_get("author_nickname")?,
                    title: r.try_get("title")?,
                    content: r.try_get("content")?,
                    categories: r.try_get("categories")?,
                    created_at_us: r.try_get("created_at_us")?,
                    deleted: r.try_get("deleted")?,
                    version: r.try_get::<i32, _>("version")? as u32,
                    likes: r.try_get::<i32, _>("likes")? as u32,
                    dislikes: r.try_get::<i32, _>("dislikes")? as u32,
                    comment_count: r.try_get::<i32, _>("comment_count")? as u32,
                },
            );
        }
    }
    if !reaction_keys.is_empty() {
        let (targets, users): (Vec<Uuid>, Vec<Uuid>) = reaction_keys.into_iter().unzip();
        let rows = sqlx::query(
            "select r.target_id, r.user_id, r.reaction from posts.reactions r
             join unnest($1::uuid[], $2::uuid[]) as k(target_id, user_id)
               on r.target_id = k.target_id and r.user_id = k.user_id",
        )
        .bind(&targets)
        .bind(&users)
        .fetch_all(&mut *tx)
        .await?;
        for r in rows {
            let reaction = match r.try_get::<i16, _>("reaction")? {
                1 => Reaction::Like,
                2 => Reaction::Dislike,
                _ => Reaction::None,
            };
            world
                .reactions
                .insert((r.try_get("target_id")?, r.try_get("user_id")?), reaction);
        }
    }
    Ok(world)
}

/// The `posts.posts` rows of a batch, column by column.
#[derive(Default)]
struct PostRows<'a> {
    ids: Vec<Uuid>,
    authors: Vec<Uuid>,
    nicknames: Vec<&'a str>,
    titles: Vec<&'a str>,
    contents: Vec<&'a str>,
    /// Every post's categories, one after another.
    categories: Vec<&'a str>,
    /// Where each post's categories start and end in `categories`
    /// (1-based, inclusive, as Postgres slices).
    category_from: Vec<i32>,
    category_to: Vec<i32>,
    created: Vec<i64>,
    deleted: Vec<bool>,
    versions: Vec<i32>,
    likes: Vec<i32>,
    dislikes: Vec<i32>,
    comment_counts: Vec<i32>,
}

/// Writes the touched rows of the world back, in the append transaction.
async fn write_model(
    tx: &mut PgConnection,
    world: &World,
    posts: &HashSet<Uuid>,
    comments: &HashSet<Uuid>,
    reactions: &HashSet<(Uuid, Uuid)>,
) -> Result<()> {
    // One statement per table for the whole batch. Postgres arrays cannot
    // be ragged: the categories of every post travel in one array, each
    // post naming its slice of it.
    let mut p_rows = PostRows::default();
    for id in posts {
        let Some(p) = world.posts.get(id) else {
            continue;
        };
        p_rows.ids.push(*id);
        p_rows.authors.push(p.author_id);
        p_rows.nicknames.push(p.author_nickname.as_str());
        p_rows.titles.push(p.title.as_str());
        p_rows.contents.push(p.content.as_str());
        p_rows
            .category_from
            .push(p_rows.categories.len() as i32 + 1);
        p_rows
            .categories
            .extend(p.categories.iter().map(String::as_str));
        p_rows.category_to.push(p_rows.categories.len() as i32);
        p_rows.created.push(p.created_at_us);
        p_rows.deleted.push(p.deleted);
        p_rows.versions.push(p.version as i32);
        p_rows.likes.push(p.likes as i32);
        p_rows.dislikes.push(p.dislikes as i32);
        p_rows.comment_counts.push(p.comment_count as i32);
    }
    if !p_rows.ids.is_empty() {
        sqlx::query(
            "insert into posts.posts (post_id, author_id, author_nickname, title, content, categories,
                                      created_at_us, deleted, version, likes, dislikes, comment_count)
             select k.id, k.author, k.nickname, k.title, k.content,
                    coalesce(($13::text[])[k.cfrom:k.cto], '{}'),
                    k.created, k.deleted, k.version, k.likes, k.dislikes, k.comments
             from unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::int[],
                         $7::bigint[], $8::bool[], $9::int[], $10::int[], $11::int[], $12::int[],
                         $14::int[])
                  as k(id, author, nickname, title, content, cfrom,
                       created, deleted, version, likes, dislikes, comments, cto)
             on conflict (post_id) do update set
                title = excluded.title, content = excluded.content, categories = excluded.categories,
                deleted = excluded.deleted, version = excluded.version, likes = excluded.likes,
                dislikes = excluded.dislikes, comment_count = excluded.comment_count",
        )
        .bind(&p_rows.ids)
        .bind(&p_rows.authors)
        .bind(&p_rows.nicknames)
        .bind(&p_rows.titles)
        .bind(&p_rows.contents)
        .bind(&p_rows.category_from)
        .bind(&p_rows.created)
        .bind(&p_rows.deleted)
        .bind(&p_rows.versions)
        .bind(&p_rows.likes)
        .bind(&p_rows.dislikes)
        .bind(&p_rows.comment_counts)
        .bind(&p_rows.categories)
        .bind(&p_rows.category_to)
        .execute(&mut *tx)
        .await?;
    }
    let (mut c_ids, mut c_posts, mut c_authors, mut c_deleted, mut c_likes, mut c_dislikes) = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    for id in comments {
        let Some(c) = world.comments.get(id) else {
            continue;
        };
        c_ids.push(*id);
        c_posts.push(c.post_id);
        c_authors.push(c.author_id);
        c_deleted.push(c.deleted);
        c_likes.push(c.likes as i32);
        c_dislikes.push(c.dislikes as i32);
    }
    if !c_ids.is_empty() {
        sqlx::query(
            "insert into posts.comments (comment_id, post_id, author_id, deleted, likes, dislikes)
             select * from unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::bool[], $5::int[], $6::int[])
             on conflict (comment_id) do update set
                deleted = excluded.deleted, likes = excluded.likes, dislikes = excluded.dislikes",
        )
        .bind(&c_ids)
        .bind(&c_posts)
        .bind(&c_authors)
        .bind(&c_deleted)
        .bind(&c_likes)
        .bind(&c_dislikes)
        .execute(&mut *tx)
        .await?;
    }
    if !reactions.is_empty() {
        let (mut set_t, mut set_u, mut set_r) = (Vec::new(), Vec::new(), Vec::new());
        let (mut del_t, mut del_u) = (Vec::new(), Vec::new());
        for &(t, u) in reactions {
            match world.reaction(t, u) {
                Reaction::None => {
                    del_t.push(t);
                    del_u.push(u);
                }
                r => {
                    set_t.push(t);
                    set_u.push(u);
                    set_r.push(if r == Reaction::Like { 1i16 } else { 2i16 });
                }
            }
        }
        if !del_t.is_empty() {
            sqlx::query(
                "delete from posts.reactions r using unnest($1::uuid[], $2::uuid[]) as k(t, u)
                 where r.target_id = k.t and r.user_id = k.u",
            )
            .bind(&del_t)
            .bind(&del_u)
            .execute(&mut *tx)
            .await?;
        }
        if !set_t.is_empty() {
            sqlx::query(
                "insert into posts.reactions (target_id, user_id, reaction)
                 select * from unnest($1::uuid[], $2::uuid[], $3::smallint[])
                 on conflict (target_id, user_id) do update set reaction = excluded.reaction",
            )
            .bind(&set_t)
            .bind(&set_u)
            .bind(&set_r)
            .execute(&mut *tx)
            .await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use sqlx::Row;

    use super::*;
    use crate::runtime::testing::{ctx, log_of, rejection, TestDb};
    use crate::runtime::{run_batch, Options};
    use crate::wire::UNSTORABLE_TEXT;

    fn prepared(actor: Uuid, kind: Kind) -> (Context, Prepared) {
        let at_us = chrono::Utc::now().timestamp_micros();
        (ctx(actor), Prepared { actor, at_us, kind })
    }

    fn new_post(author: Uuid, title: &str, content: &str) -> NewPost {
        NewPost {
            post_id: Uuid::now_v7(),
            author_id: author,
            author_nickname: "ada".into(),
            title: title.into(),
            content: content.into(),
            categories: vec!["general".into()],
            at_us: chrono::Utc::now().timestamp_micros(),
        }
    }

    fn comment(author: Uuid, post_id: Uuid) -> Kind {
        Kind::CreateComment(NewComment {
            comment_id: Uuid::now_v7(),
            post_id,
            author_id: author,
            author_nickname: "ada".into(),
            content: "a comment".into(),
            at_us: chrono::Utc::now().timestamp_micros(),
        })
    }

    fn unstorable(field: &str) -> Rejection {
        Rejection::Validation(vec![(field.into(), UNSTORABLE_TEXT.into())])
    }

    #[tokio::test]
    async fn a_post_whose_text_cannot_be_stored_is_refused_with_what_depends_on_it_and_the_rest_commits(
    ) {
        let db = TestDb::new().await;
        let posts = Posts::new(db.pool.clone());
        let (ada, bob) = (Uuid::now_v7(), Uuid::now_v7());
        let good = new_post(ada, "one", "fine");
        let bad = new_post(ada, "two", "nul \0 inside");
        let (good_id, bad_id) = (good.post_id, bad.post_id);
        let batch = vec![
            prepared(ada, Kind::CreatePost(good)),
            prepared(ada, Kind::CreatePost(bad)),
            prepared(ada, comment(ada, bad_id)),
            prepared(ada, comment(ada, good_id)),
            prepared(
                ada,
                Kind::EditPost(EditPost {
                    post_id: good_id,
                    edit: PostEdit {
                        title: Some("t\0".into()),
                        ..PostEdit::default()
                    },
                }),
            ),
            prepared(
                bob,
                Kind::SetReaction(SetReaction {
                    target: TargetKind::Post,
                    target_id: good_id,
                    reaction: Reaction::Like,
                }),
            ),
        ];
        let replies = run_batch(&posts, &db.pool, batch, &Options::default()).await;
        let refused: Vec<Option<&Rejection>> = replies.iter().map(rejection).collect();
        assert_eq!(
            refused,
            [
                None,
                Some(&unstorable("content")),
                Some(&Rejection::NotFound),
                None,
                Some(&unstorable("title")),
                None
            ],
            "{replies:?}"
        );
        let log = log_of(&db.pool, Service::Posts).await;
        let streams: Vec<(Uuid, u32)> = log.iter().map(|e| (e.0, e.1)).collect();
        assert_eq!(streams, [(good_id, 1), (good_id, 2), (good_id, 3)]);
        let rows =
            sqlx::query("select post_id, title, version, likes, comment_count from posts.posts")
                .fetch_all(&db.pool)
                .await
                .expect("posts");
        assert_eq!(rows.len(), 1);
        let row = &rows[0];
        assert_eq!(row.get::<Uuid, _>("post_id"), good_id);
        assert_eq!(row.get::<String, _>("title"), "one");
        assert_eq!(row.get::<i32, _>("version"), 3);
        assert_eq!(row.get::<i32, _>("likes"), 1);
        assert_eq!(row.get::<i32, _>("comment_count"), 1);
        let comments: i64 = sqlx::query_scalar("select count(*) from posts.comments")
            .fetch_one(&db.pool)
            .await
            .expect("comments");
        assert_eq!(comments, 1);
    }

    fn edit(actor: Uuid, post_id: Uuid, title: &str) -> (Context, Prepared) {
        let edit = PostEdit {
            title: Some(title.into()),
            ..PostEdit::default()
        };
        prepared(actor, Kind::EditPost(EditPost { post_id, edit }))
    }

    #[tokio::test]
    async fn an_edit_that_cannot_be_stored_is_refused_even_when_a_later_edit_of_its_batch_replaces_it(
    ) {
        let db = TestDb::new().await;
        let posts = Posts::new(db.pool.clone());
        let ada = Uuid::now_v7();
        let post = new_post(ada, "one", "fine");
        let id = post.post_id;
        let replies = run_batch(
            &posts,
            &db.pool,
            vec![prepared(ada, Kind::CreatePost(post))],
            &Options::default(),
        )
        .await;
        assert!(rejection(&replies[0]).is_none(), "{replies:?}");

        let batch = vec![
            edit(ada, id, "two"),
            edit(ada, id, "bad \0"),
            edit(ada, id, "three"),
        ];
        let replies = run_batch(&posts, &db.pool, batch, &Options::default()).await;
        let refused: Vec<Option<&Rejection>> = replies.iter().map(rejection).collect();
        assert_eq!(
            refused,
            [None, Some(&unstorable("title")), None],
            "{replies:?}"
        );
        let versions: Vec<u32> = log_of(&db.pool, Service::Posts)
            .await
            .into_iter()
            .map(|e| e.1)
            .collect();
        assert_eq!(versions, [1, 2, 3]);
        let title: String = sqlx::query_scalar("select title from posts.posts where post_id = $1")
            .bind(id)
            .fetch_one(&db.pool)
            .await
            .expect("title");
        assert_eq!(title, "three");
    }
}

//! `read.posts`, `read.post_categories`, `read.comments`, `read.reactions`:
//! the forum as readers see it.
//!
//! Lists are ordered by the log position of the item's creation event (a
//! total order, stable within a millisecond), which is also the cursor.
//! Every list and filter has its index:
//! - the feed: `posts (position desc) where not deleted`;
//! - by category: `post_categories (category, position desc)` (rows of
//!   deleted posts are removed);
//! - by author: `posts (author_id, position desc) where not deleted`;
//! - liked by a user: `reactions (user_id, reaction, post_position desc)`
//!   for reactions on posts;
//! - comments of a post: `comments (post_id, position) where not deleted`.

use forum_events::posts::{PostEvent, Reaction, TargetKind};
use forum_events::{RecordedEvent, Service};
use std::collections::{HashMap, HashSet};

use futures::future::BoxFuture;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use crate::{Error, Projection, Result};

/// The forum read model.
pub struct Posts;

impl Projection for Posts {
    fn name(&self) -> &'static str {
        "posts"
    }

    fn version(&self) -> u32 {
        1
    }

    fn sources(&self) -> &'static [Service] {
        &[Service::Posts]
    }

    fn tables(&self) -> &'static [&'static str] {
        &["posts", "post_categories", "comments", "reactions"]
    }

    fn create_sql(&self, schema: &str) -> String {
        format!(
            "create table if not exists {schema}.posts (
                id              uuid        primary key,
                author_id       uuid        not null,
                author_nickname text        not null,
                title           text        not null,
                content         text        not null,
                categories      text[]      not null,
                created_at      timestamptz not null,
                edited_at       timestamptz,
                deleted         boolean     not null default false,
                likes           integer     not null default 0,
                dislikes        integer     not null default 0,
                comment_count   integer     not null default 0,
                position        bigint      not null
            );
            create index if not exists posts_feed on {schema}.posts (position desc) where not deleted;
            create index if not exists posts_author on {schema}.posts (author_id, position desc) where not deleted;
            create table if not exists {schema}.post_categories (
                post_id  uuid   not null,
                category text   not null,
                position bigint not null,
                primary key (post_id, category)
            );
            create index if not exists post_categories_feed on {schema}.post_categories (category, position desc);
            create table if not exists {schema}.comments (
                id              uuid        primary key,
                post_id         uuid        not null,
                author_id       uuid        not null,
                author_nickname text        not null,
                content         text        not null,
                created_at      timestamptz not null,
                edited_at       timestamptz,
                deleted         boolean     not null default false,
                likes           integer     not null default 0,
                dislikes        integer     not null default 0,
                position        bigint      not null
            );
            create index if not exists comments_of_post on {schema}.comments (post_id, position) where not deleted;
            create table if not exists {schema}.reactions (
                target_id     uuid   not null,
                user_id       uuid   not null,
                target_kind   text   not null,
                reaction      text   not null,
                post_position bigint,
                primary key (target_id, user_id)
            );
            create index if not exists reactions_liked on {schema}.reactions (user_id, reaction, post_position desc)
                where target_kind = 'post'"
        )
    }

    fn apply<'a>(
        &'a self,
        tx: &'a mut PgConnection,
        schema: &'a str,
        events: &'a [RecordedEvent],
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let mut batch = Batch::default();
            for event in events {
                let e = event
                    .decode::<PostEvent>()
                    .map_err(|e| Error::poison(event, e))?;
                batch.add(event.position as i64, e);
            }
            batch.write(tx, schema).await
        })
    }

    fn forget_stream<'a>(
        &'a self,
        tx: &'a mut PgConnection,
        schema: &'a str,
        stream: Uuid,
        _events: &'a [RecordedEvent],
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            // A post's stream is the post: its row, its categories, its
            // comments and the reactions to both.
            sqlx::query(&format!(
                "delete from {schema}.reactions
                 where target_id = $1
                    or target_id in (select id from {schema}.comments where post_id = $1)"
            ))
            .bind(stream)
            .execute(&mut *tx)
            .await?;
            for table in ["comments", "post_categories"] {
                sqlx::query(&format!("delete from {schema}.{table} where post_id = $1"))
                    .bind(stream)
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query(&format!("delete from {schema}.posts where id = $1"))
                .bind(stream)
                .execute(&mut *tx)
                .await?;
            Ok(())
        })
    }
}

/// A post created in the batch, as it stands after the batch.
struct NewPost {
    id: Uuid,
    author_id: Uuid,
    author_nickname: String,
    title: String,
    content: String,
    categories: Vec<String>,
    created_at_us: i64,
    edited_at_us: Option<i64>,
    deleted: bool,
    likes: i32,
    dislikes: i32,
    comment_count: i32,
    position: i64,
}

/// What the batch changes in a post written before it.
#[derive(Default)]
struct PostPatch {
    /// (title, content, categories, edited at): the last edit.
    edit: Option<(String, String, Vec<String>, i64)>,
    deleted: bool,
    comment_delta: i32,
    counts: Option<(i32, i32)>,
}

/// A comment created in the batch, as it stands after the batch.
struct NewComment {
    id: Uuid,
    post_id: Uuid,
    author_id: Uuid,
    author_nickname: String,
    content: String,
    created_at_us: i64,
    edited_at_us: Option<i64>,
    deleted: bool,
    likes: i32,
    dislikes: i32,
    position: i64,
}

/// What the batch changes in a comment written before it.
#[derive(Default)]
struct CommentPatch {
    edit: Option<(String, i64)>,
    deleted: bool,
    counts: Option<(i32, i32)>,
}

/// A batch of events folded in memory into the final state of every row
/// it touches, then written with one statement per table and kind of
/// change, however the event types interleave. Rebuilds apply batches of
/// tens of thousands of events, so this is what makes them fast.
#[derive(Default)]
struct Batch {
    new_posts: Vec<NewPost>,
    new_post_at: HashMap<Uuid, usize>,
    post_patches: HashMap<Uuid, PostPatch>,
    new_comments: Vec<NewComment>,
    new_comment_at: HashMap<Uuid, usize>,
    comment_patches: HashMap<Uuid, CommentPatch>,
    /// (post id of the comment) for comments written before the batch and
    /// deleted in it: their post's count drops only if they were visible.
    deleted_comments: Vec<Uuid>,
    /// The last reaction per (target, user).
    reactions: HashMap<(Uuid, Uuid), (TargetKind, Reaction)>,
    /// Posts whose categories rows must be rewritten.
    recategorized: Vec<Uuid>,
}

impl Batch {
    fn post(&mut self, id: Uuid) -> Result<&mut NewPost, &mut PostPatch> {
        match self.new_post_at.get(&id) {
            Some(&i) => Ok(&mut self.new_posts[i]),
            None => Err(self.post_patches.entry(id).or_default()),
        }
    }

    fn comment(&mut self, id: Uuid) -> Result<&mut NewComment, &mut CommentPatch> {
        match self.new_comment_at.get(&id) {
            Some(&i) => Ok(&mut self.new_comments[i]),
            None => Err(self.comment_patches.entry(id).or_default()),
        }
    }

    fn add(&mut self, position: i64, event: PostEvent) {
        match event {
            PostEvent::PostCreated(e) => {
                self.new_post_at.insert(e.post_id, self.new_posts.len());
                self.new_posts.push(NewPost {
                    id: e.post_id,
                    author_id: e.author_id,
                    author_nickname: e.author_nickname,
                    title: e.title,
                    content: e.content,
                    categories: e.categories,
                    created_at_us: e.created_at_us,
                    edited_at_us: None,
                    deleted: false,
                    likes: 0,
                    dislikes: 0,
                    comment_count: 0,
                    position,
                });
            }
            PostEvent::PostEdited(e) => {
                self.recategorized.push(e.post_id);
                match self.post(e.post_id) {
                    Ok(p) => {
                        p.title = e.title;
                        p.content = e.content;
                        p.categories = e.categories;
                        p.edited_at_us = Some(e.edited_at_us);
                    }
                    Err(patch) => {
                        patch.edit = Some((e.title, e.content, e.categories, e.edited_at_us))
                    }
                }
            }
            PostEvent::PostDeleted(e) => {
                self.recategorized.push(e.post_id);
                match self.post(e.post_id) {
                    Ok(p) => p.deleted = true,
                    Err(patch) => patch.deleted = true,
                }
            }
            PostEvent::CommentCreated(e) => {
                match self.post(e.post_id) {
                    Ok(p) => p.comment_count += 1,
                    Err(patch) => patch.comment_delta += 1,
                }
                self.new_comment_at
                    .insert(e.comment_id, self.new_comments.len());
                self.new_comments.push(NewComment {
                    id: e.comment_id,
                    post_id: e.post_id,
                    author_id: e.author_id,
                    author_nickname: e.author_nickname,
                    content: e.content,
                    created_at_us: e.created_at_us,
                    edited_at_us: None,
                    deleted: false,
                    likes: 0,
                    dislikes: 0,
                    position,
                });
            }
            PostEvent::CommentEdited(e) => match self.comment(e.comment_id) {
                Ok(c) => {
                    c.content = e.content;
                    c.edited_at_us = Some(e.edited_at_us);
                }
                Err(patch) => patch.edit = Some((e.content, e.edited_at_us)),
            },
            PostEvent::CommentDeleted(e) => match self.comment(e.comment_id) {
                Ok(c) => {
                    if !c.deleted {
                        c.deleted = true;
                        match self.post(e.post_id) {
                            Ok(p) => p.comment_count = (p.comment_count - 1).max(0),
                            Err(patch) => patch.comment_delta -= 1,
                        }
                    }
                }
                Err(patch) => {
                    if !patch.deleted {
                        patch.deleted = true;
                        self.deleted_comments.push(e.comment_id);
                    }
                }
            },
            PostEvent::ReactionSet(e) => {
                let counts = (e.likes as i32, e.dislikes as i32);
                match e.target {
                    TargetKind::Post => match self.post(e.target_id) {
                        Ok(p) => (p.likes, p.dislikes) = counts,
                        Err(patch) => patch.counts = Some(counts),
                    },
                    TargetKind::Comment => match self.comment(e.target_id) {
                        Ok(c) => (c.likes, c.dislikes) = counts,
                        Err(patch) => patch.counts = Some(counts),
                    },
                }
                self.reactions
                    .insert((e.target_id, e.user_id), (e.target, e.reaction));
            }
        }
    }

    async fn write(self, tx: &mut PgConnection, schema: &str) -> Result<()> {
        let to_time = forum_store::log::to_time;
        // Category rows: those of every new post, and those of every edited
        // or deleted older post (read back from its update), written from
        // memory rather than joined, so no plan can scan `posts`.
        let recategorized: HashSet<Uuid> = self
            .recategorized
            .iter()
            .filter(|id| !self.new_post_at.contains_key(id))
            .copied()
            .collect();
        let mut category_rows: Vec<(Uuid, String, i64)> = Vec::new();
        for p in self.new_posts.iter().filter(|p| !p.deleted) {
            for c in &p.categories {
                category_rows.push((p.id, c.clone(), p.position));
            }
        }
        if !self.new_posts.is_empty() {
            let p = &self.new_posts;
            // Slugs hold no comma.
            let cats: Vec<String> = p.iter().map(|p| p.categories.join(",")).collect();
            sqlx::query(&format!(
                "insert into {schema}.posts (id, author_id, author_nickname, title, content, categories,
                                             created_at, edited_at, deleted, likes, dislikes,
                                             comment_count, position)
                 select k.id, k.author, k.nick, k.title, k.content, string_to_array(k.cats, ','),
                        k.created, k.edited, k.deleted, k.likes, k.dislikes, k.comments, k.pos
                 from unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[],
                             $7::timestamptz[], $8::timestamptz[], $9::bool[], $10::int[], $11::int[],
                             $12::int[], $13::bigint[])
                      as k(id, author, nick, title, content, cats, created, edited, deleted, likes,
                           dislikes, comments, pos)
                 on conflict (id) do nothing"
            ))
            .bind(p.iter().map(|p| p.id).collect::<Vec<_>>())
            .bind(p.iter().map(|p| p.author_id).collect::<Vec<_>>())
            .bind(p.iter().map(|p| p.author_nickname.as_str()).collect::<Vec<_>>())
            .bind(p.iter().map(|p| p.title.as_str()).collect::<Vec<_>>())
            .bind(p.iter().map(|p| p.content.as_str()).collect::<Vec<_>>())
            .bind(&cats)
            .bind(p.iter().map(|p| to_time(p.created_at_us)).collect::<Vec<_>>())
            .bind(p.iter().map(|p| p.edited_at_us.map(to_time)).collect::<Vec<_>>())
            .bind(p.iter().map(|p| p.deleted).collect::<Vec<_>>())
            .bind(p.iter().map(|p| p.likes).collect::<Vec<_>>())
            .bind(p.iter().map(|p| p.dislikes).collect::<Vec<_>>())
            .bind(p.iter().map(|p| p.comment_count).collect::<Vec<_>>())
            .bind(p.iter().map(|p| p.position).collect::<Vec<_>>())
            .execute(&mut *tx)
            .await?;
        }
        if !self.post_patches.is_empty() {
            let (mut ids, mut titles, mut contents, mut cats, mut edited) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
            let (mut deleted, mut delta, mut likes, mut dislikes) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for (id, patch) in &self.post_patches {
                ids.push(*id);
                let edit = patch.edit.as_ref();
                titles.push(edit.map(|e| e.0.as_str()));
                contents.push(edit.map(|e| e.1.as_str()));
                cats.push(edit.map(|e| e.2.join(",")));
                edited.push(edit.map(|e| to_time(e.3)));
                deleted.push(patch.deleted);
                delta.push(patch.comment_delta);
                likes.push(patch.counts.map(|c| c.0));
                dislikes.push(patch.counts.map(|c| c.1));
            }
            let rows = sqlx::query(&format!(
                "update {schema}.posts p set
                    title = coalesce(k.title, p.title),
                    content = coalesce(k.content, p.content),
                    categories = case when k.cats is null then p.categories
                                      else string_to_array(k.cats, ',') end,
                    edited_at = coalesce(k.edited, p.edited_at),
                    deleted = p.deleted or k.deleted,
                    comment_count = greatest(p.comment_count + k.delta, 0),
                    likes = coalesce(k.likes, p.likes),
                    dislikes = coalesce(k.dislikes, p.dislikes)
                 from unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::timestamptz[],
                             $6::bool[], $7::int[], $8::int[], $9::int[])
                      as k(id, title, content, cats, edited, deleted, delta, likes, dislikes)
                 where p.id = k.id
                 returning p.id, p.categories, p.position, p.deleted"
            ))
            .bind(&ids)
            .bind(&titles)
            .bind(&contents)
            .bind(&cats)
            .bind(&edited)
            .bind(&deleted)
            .bind(&delta)
            .bind(&likes)
            .bind(&dislikes)
            .fetch_all(&mut *tx)
            .await?;
            for r in rows {
                let id: Uuid = r.try_get("id")?;
                if recategorized.contains(&id) {
                    let position: i64 = r.try_get("position")?;
                    if !r.try_get::<bool, _>("deleted")? {
                        for c in r.try_get::<Vec<String>, _>("categories")? {
                            category_rows.push((id, c, position));
                        }
                    }
                }
            }
        }
        if !self.new_comments.is_empty() {
            let c = &self.new_comments;
            sqlx::query(&format!(
                "insert into {schema}.comments (id, post_id, author_id, author_nickname, content,
                                                created_at, edited_at, deleted, likes, dislikes,
                                                position)
                 select * from unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[],
                                      $6::timestamptz[], $7::timestamptz[], $8::bool[], $9::int[],
                                      $10::int[], $11::bigint[])
                 on conflict (id) do nothing"
            ))
            .bind(c.iter().map(|c| c.id).collect::<Vec<_>>())
            .bind(c.iter().map(|c| c.post_id).collect::<Vec<_>>())
            .bind(c.iter().map(|c| c.author_id).collect::<Vec<_>>())
            .bind(
                c.iter()
                    .map(|c| c.author_nickname.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(c.iter().map(|c| c.content.as_str()).collect::<Vec<_>>())
            .bind(
                c.iter()
                    .map(|c| to_time(c.created_at_us))
                    .collect::<Vec<_>>(),
            )
            .bind(
                c.iter()
                    .map(|c| c.edited_at_us.map(to_time))
                    .collect::<Vec<_>>(),
            )
            .bind(c.iter().map(|c| c.deleted).collect::<Vec<_>>())
            .bind(c.iter().map(|c| c.likes).collect::<Vec<_>>())
            .bind(c.iter().map(|c| c.dislikes).collect::<Vec<_>>())
            .bind(c.iter().map(|c| c.position).collect::<Vec<_>>())
            .execute(&mut *tx)
            .await?;
        }
        if !self.comment_patches.is_empty() {
            let (mut ids, mut contents, mut edited, mut likes, mut dislikes) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for (id, patch) in &self.comment_patches {
                ids.push(*id);
                contents.push(patch.edit.as_ref().map(|e| e.0.as_str()));
                edited.push(patch.edit.as_ref().map(|e| to_time(e.1)));
                likes.push(patch.counts.map(|c| c.0));
                dislikes.push(patch.counts.map(|c| c.1));
            }
            sqlx::query(&format!(
                "update {schema}.comments c set
                    content = coalesce(k.content, c.content),
                    edited_at = coalesce(k.edited, c.edited_at),
                    likes = coalesce(k.likes, c.likes),
                    dislikes = coalesce(k.dislikes, c.dislikes)
                 from unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::int[], $5::int[])
                      as k(id, content, edited, likes, dislikes)
                 where c.id = k.id"
            ))
            .bind(&ids)
            .bind(&contents)
            .bind(&edited)
            .bind(&likes)
            .bind(&dislikes)
            .execute(&mut *tx)
            .await?;
        }
        if !self.deleted_comments.is_empty() {
            sqlx::query(&format!(
                "with gone as (
                     update {schema}.comments set deleted = true
                     where id = any($1) and not deleted
                     returning post_id)
                 update {schema}.posts p set comment_count = greatest(p.comment_count - n.n, 0)
                 from (select post_id, count(*)::int as n from gone group by post_id) n
                 where p.id = n.post_id"
            ))
            .bind(&self.deleted_comments)
            .execute(&mut *tx)
            .await?;
        }
        self.write_reactions(tx, schema).await?;
        if !recategorized.is_empty() {
            let ids: Vec<Uuid> = recategorized.into_iter().collect();
            sqlx::query(&format!(
                "delete from {schema}.post_categories where post_id = any($1)"
            ))
            .bind(&ids)
            .execute(&mut *tx)
            .await?;
        }
        if !category_rows.is_empty() {
            let (mut ids, mut cats, mut positions) = (Vec::new(), Vec::new(), Vec::new());
            for (id, c, p) in category_rows {
                ids.push(id);
                cats.push(c);
                positions.push(p);
            }
            sqlx::query(&format!(
                "insert into {schema}.post_categories (post_id, category, position)
                 select * from unnest($1::uuid[], $2::text[], $3::bigint[])
                 on conflict do nothing"
            ))
            .bind(&ids)
            .bind(&cats)
            .bind(&positions)
            .execute(&mut *tx)
            .await?;
        }
        Ok(())
    }

    /// The last reaction per (target, user): withdrawn ones deleted, the
    /// others upserted with their post's position (for the liked list).
    async fn write_reactions(&self, tx: &mut PgConnection, schema: &str) -> Result<()> {
        let (mut del_t, mut del_u) = (Vec::new(), Vec::new());
        let (mut set_t, mut set_u, mut set_k, mut set_r) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for ((t, u), (kind, reaction)) in &self.reactions {
            match reaction.as_str() {
                None => {
                    del_t.push(*t);
                    del_u.push(*u);
                }
                Some(r) => {
                    set_t.push(*t);
                    set_u.push(*u);
                    set_k.push(kind.as_str());
                    set_r.push(r);
                }
            }
        }
        if !del_t.is_empty() {
            sqlx::query(&format!(
                "delete from {schema}.reactions r using unnest($1::uuid[], $2::uuid[]) as k(t, u)
                 where r.target_id = k.t and r.user_id = k.u"
            ))
            .bind(&del_t)
            .bind(&del_u)
            .execute(&mut *tx)
            .await?;
        }
        if !set_t.is_empty() {
            sqlx::query(&format!(
                "insert into {schema}.reactions (target_id, user_id, target_kind, reaction, post_position)
                 select k.t, k.u, k.kind, k.r, p.position
                 from unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[]) as k(t, u, kind, r)
                 left join {schema}.posts p on p.id = k.t and k.kind = 'post'
                 on conflict (target_id, user_id) do update set reaction = excluded.reaction"
            ))
            .bind(&set_t)
            .bind(&set_u)
            .bind(&set_k)
            .bind(&set_r)
            .execute(&mut *tx)
            .await?;
        }
        Ok(())
    }
}

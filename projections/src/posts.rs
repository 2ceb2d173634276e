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
use std::collections::HashMap;

use futures::future::BoxFuture;
use sqlx::PgConnection;
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
            let mut decoded = Vec::with_capacity(events.len());
            for event in events {
                let e = event
                    .decode::<PostEvent>()
                    .map_err(|e| Error::poison(event, e))?;
                decoded.push((event.position as i64, e));
            }
            // Runs of creations and reactions are written with one
            // multi-row statement each; the rest one event at a time, in
            // order.
            let mut i = 0;
            while i < decoded.len() {
                let kind = std::mem::discriminant(&decoded[i].1);
                let end = decoded[i..]
                    .iter()
                    .position(|(_, e)| std::mem::discriminant(e) != kind)
                    .map_or(decoded.len(), |n| i + n);
                let run = &decoded[i..end];
                match &decoded[i].1 {
                    PostEvent::PostCreated(_) => posts_created(tx, schema, run).await?,
                    PostEvent::CommentCreated(_) => comments_created(tx, schema, run).await?,
                    PostEvent::ReactionSet(_) => reactions_set(tx, schema, run).await?,
                    _ => {
                        for (position, e) in run {
                            apply_one(tx, schema, *position, e).await?;
                        }
                    }
                }
                i = end;
            }
            Ok(())
        })
    }
}

async fn set_categories(
    tx: &mut PgConnection,
    schema: &str,
    post_id: uuid::Uuid,
    categories: &[String],
) -> Result<()> {
    sqlx::query(&format!(
        "delete from {schema}.post_categories where post_id = $1"
    ))
    .bind(post_id)
    .execute(&mut *tx)
    .await?;
    sqlx::query(&format!(
        "insert into {schema}.post_categories (post_id, category, position)
         select p.id, c, p.position from {schema}.posts p, unnest($2::text[]) as c
         where p.id = $1 and not p.deleted
         on conflict do nothing"
    ))
    .bind(post_id)
    .bind(categories)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

async fn apply_one(
    tx: &mut PgConnection,
    schema: &str,
    position: i64,
    event: &PostEvent,
) -> Result<()> {
    let to_time = forum_store::log::to_time;
    match event {
        PostEvent::PostEdited(e) => {
            sqlx::query(&format!(
                "update {schema}.posts set title = $2, content = $3, categories = $4, edited_at = $5
                 where id = $1"
            ))
            .bind(e.post_id)
            .bind(&e.title)
            .bind(&e.content)
            .bind(&e.categories)
            .bind(to_time(e.edited_at_us))
            .execute(&mut *tx)
            .await?;
            set_categories(tx, schema, e.post_id, &e.categories).await?;
        }
        PostEvent::PostDeleted(e) => {
            sqlx::query(&format!(
                "update {schema}.posts set deleted = true where id = $1"
            ))
            .bind(e.post_id)
            .execute(&mut *tx)
            .await?;
            set_categories(tx, schema, e.post_id, &[]).await?;
        }
        PostEvent::CommentEdited(e) => {
            sqlx::query(&format!(
                "update {schema}.comments set content = $2, edited_at = $3 where id = $1"
            ))
            .bind(e.comment_id)
            .bind(&e.content)
            .bind(to_time(e.edited_at_us))
            .execute(&mut *tx)
            .await?;
        }
        PostEvent::CommentDeleted(e) => {
            let changed = sqlx::query(&format!(
                "update {schema}.comments set deleted = true where id = $1 and not deleted"
            ))
            .bind(e.comment_id)
            .execute(&mut *tx)
            .await?;
            if changed.rows_affected() > 0 {
                sqlx::query(&format!(
                    "update {schema}.posts set comment_count = greatest(comment_count - 1, 0)
                     where id = $1"
                ))
                .bind(e.post_id)
                .execute(&mut *tx)
                .await?;
            }
        }
        PostEvent::PostCreated(_) | PostEvent::CommentCreated(_) | PostEvent::ReactionSet(_) => {
            // Written in runs, see `posts_created`, `comments_created`,
            // `reactions_set`.
            let run = [(position, event.clone())];
            match event {
                PostEvent::PostCreated(_) => posts_created(tx, schema, &run).await?,
                PostEvent::CommentCreated(_) => comments_created(tx, schema, &run).await?,
                _ => reactions_set(tx, schema, &run).await?,
            }
        }
    }
    Ok(())
}

/// A run of `post_created`: one insert for the posts, one for their
/// categories.
async fn posts_created(
    tx: &mut PgConnection,
    schema: &str,
    run: &[(i64, PostEvent)],
) -> Result<()> {
    let mut ids = Vec::new();
    let mut authors = Vec::new();
    let mut nicks = Vec::new();
    let mut titles = Vec::new();
    let mut contents = Vec::new();
    let mut categories = Vec::new();
    let mut created = Vec::new();
    let mut positions = Vec::new();
    for (position, e) in run {
        if let PostEvent::PostCreated(e) = e {
            ids.push(e.post_id);
            authors.push(e.author_id);
            nicks.push(e.author_nickname.as_str());
            titles.push(e.title.as_str());
            contents.push(e.content.as_str());
            // Slugs hold no comma.
            categories.push(e.categories.join(","));
            created.push(forum_store::log::to_time(e.created_at_us));
            positions.push(*position);
        }
    }
    sqlx::query(&format!(
        "insert into {schema}.posts (id, author_id, author_nickname, title, content, categories,
                                     created_at, position)
         select k.id, k.author, k.nick, k.title, k.content, string_to_array(k.cats, ','), k.created, k.pos
         from unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[],
                     $7::timestamptz[], $8::bigint[])
              as k(id, author, nick, title, content, cats, created, pos)
         on conflict (id) do nothing"
    ))
    .bind(&ids)
    .bind(&authors)
    .bind(&nicks)
    .bind(&titles)
    .bind(&contents)
    .bind(&categories)
    .bind(&created)
    .bind(&positions)
    .execute(&mut *tx)
    .await?;
    sqlx::query(&format!(
        "insert into {schema}.post_categories (post_id, category, position)
         select p.id, c, p.position from {schema}.posts p, unnest(p.categories) as c
         where p.id = any($1) and not p.deleted
         on conflict do nothing"
    ))
    .bind(&ids)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// A run of `comment_created`: one insert, one count update.
async fn comments_created(
    tx: &mut PgConnection,
    schema: &str,
    run: &[(i64, PostEvent)],
) -> Result<()> {
    let mut ids = Vec::new();
    let mut posts = Vec::new();
    let mut authors = Vec::new();
    let mut nicks = Vec::new();
    let mut contents = Vec::new();
    let mut created = Vec::new();
    let mut positions = Vec::new();
    for (position, e) in run {
        if let PostEvent::CommentCreated(e) = e {
            ids.push(e.comment_id);
            posts.push(e.post_id);
            authors.push(e.author_id);
            nicks.push(e.author_nickname.as_str());
            contents.push(e.content.as_str());
            created.push(forum_store::log::to_time(e.created_at_us));
            positions.push(*position);
        }
    }
    sqlx::query(&format!(
        "with ins as (
             insert into {schema}.comments (id, post_id, author_id, author_nickname, content,
                                            created_at, position)
             select * from unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[],
                                  $6::timestamptz[], $7::bigint[])
             on conflict (id) do nothing
             returning post_id)
         update {schema}.posts p set comment_count = p.comment_count + n.n
         from (select post_id, count(*)::int as n from ins group by post_id) n
         where p.id = n.post_id"
    ))
    .bind(&ids)
    .bind(&posts)
    .bind(&authors)
    .bind(&nicks)
    .bind(&contents)
    .bind(&created)
    .bind(&positions)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// A run of `reaction_set`: the events carry absolute counts and the
/// user's whole reaction, so the last event per target and per (target,
/// user) wins; one statement per table.
async fn reactions_set(
    tx: &mut PgConnection,
    schema: &str,
    run: &[(i64, PostEvent)],
) -> Result<()> {
    let mut counts: HashMap<Uuid, (TargetKind, i32, i32)> = HashMap::new();
    let mut reactions: HashMap<(Uuid, Uuid), (TargetKind, Reaction)> = HashMap::new();
    for (_, e) in run {
        if let PostEvent::ReactionSet(e) = e {
            counts.insert(e.target_id, (e.target, e.likes as i32, e.dislikes as i32));
            reactions.insert((e.target_id, e.user_id), (e.target, e.reaction));
        }
    }
    for (kind, table) in [
        (TargetKind::Post, "posts"),
        (TargetKind::Comment, "comments"),
    ] {
        let (mut ids, mut likes, mut dislikes) = (Vec::new(), Vec::new(), Vec::new());
        for (id, (k, l, d)) in &counts {
            if *k == kind {
                ids.push(*id);
                likes.push(*l);
                dislikes.push(*d);
            }
        }
        if ids.is_empty() {
            continue;
        }
        sqlx::query(&format!(
            "update {schema}.{table} t set likes = k.l, dislikes = k.d
             from unnest($1::uuid[], $2::int[], $3::int[]) as k(id, l, d) where t.id = k.id"
        ))
        .bind(&ids)
        .bind(&likes)
        .bind(&dislikes)
        .execute(&mut *tx)
        .await?;
    }
    let (mut del_t, mut del_u) = (Vec::new(), Vec::new());
    let (mut set_t, mut set_u, mut set_k, mut set_r) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for ((t, u), (kind, reaction)) in &reactions {
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

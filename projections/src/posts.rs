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
use futures::future::BoxFuture;
use sqlx::PgConnection;

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
            for event in events {
                let decoded = event
                    .decode::<PostEvent>()
                    .map_err(|e| Error::poison(event, e))?;
                apply_one(tx, schema, event, decoded).await?;
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
    event: &RecordedEvent,
    decoded: PostEvent,
) -> Result<()> {
    let position = event.position as i64;
    let to_time = forum_store::log::to_time;
    match decoded {
        PostEvent::PostCreated(e) => {
            sqlx::query(&format!(
                "insert into {schema}.posts (id, author_id, author_nickname, title, content, categories,
                                             created_at, position)
                 values ($1, $2, $3, $4, $5, $6, $7, $8) on conflict (id) do nothing"
            ))
            .bind(e.post_id)
            .bind(e.author_id)
            .bind(&e.author_nickname)
            .bind(&e.title)
            .bind(&e.content)
            .bind(&e.categories)
            .bind(to_time(e.created_at_us))
            .bind(position)
            .execute(&mut *tx)
            .await?;
            set_categories(tx, schema, e.post_id, &e.categories).await?;
        }
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
        PostEvent::CommentCreated(e) => {
            let inserted = sqlx::query(&format!(
                "insert into {schema}.comments (id, post_id, author_id, author_nickname, content,
                                                created_at, position)
                 values ($1, $2, $3, $4, $5, $6, $7) on conflict (id) do nothing"
            ))
            .bind(e.comment_id)
            .bind(e.post_id)
            .bind(e.author_id)
            .bind(&e.author_nickname)
            .bind(&e.content)
            .bind(to_time(e.created_at_us))
            .bind(position)
            .execute(&mut *tx)
            .await?;
            if inserted.rows_affected() > 0 {
                sqlx::query(&format!(
                    "update {schema}.posts set comment_count = comment_count + 1 where id = $1"
                ))
                .bind(e.post_id)
                .execute(&mut *tx)
                .await?;
            }
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
        PostEvent::ReactionSet(e) => {
            let table = match e.target {
                TargetKind::Post => "posts",
                TargetKind::Comment => "comments",
            };
            sqlx::query(&format!(
                "update {schema}.{table} set likes = $2, dislikes = $3 where id = $1"
            ))
            .bind(e.target_id)
            .bind(e.likes as i32)
            .bind(e.dislikes as i32)
            .execute(&mut *tx)
            .await?;
            match e.reaction.as_str() {
                None => {
                    sqlx::query(&format!(
                        "delete from {schema}.reactions where target_id = $1 and user_id = $2"
                    ))
                    .bind(e.target_id)
                    .bind(e.user_id)
                    .execute(&mut *tx)
                    .await?;
                }
                Some(reaction) => {
                    debug_assert!(e.reaction != Reaction::None);
                    sqlx::query(&format!(
                        "insert into {schema}.reactions (target_id, user_id, target_kind, reaction, post_position)
                         values ($1, $2, $3, $4,
                                 (select position from {schema}.posts where id = $1 and $3 = 'post'))
                         on conflict (target_id, user_id) do update set reaction = excluded.reaction"
                    ))
                    .bind(e.target_id)
                    .bind(e.user_id)
                    .bind(e.target.as_str())
                    .bind(reaction)
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
    }
    Ok(())
}

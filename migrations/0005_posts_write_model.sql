-- The forum service's own state, written in the same transaction as its
-- events (the log stays the source of truth). Decisions read it: who wrote
-- a post or comment, whether it is deleted, the post stream's version, the
-- reaction counts and each user's reaction.
create table posts.posts (
    post_id         uuid    primary key,
    author_id       uuid    not null,
    author_nickname text    not null,
    title           text    not null,
    content         text    not null,
    categories      text[]  not null,
    created_at_us   bigint  not null,
    deleted         boolean not null default false,
    version         integer not null,
    likes           integer not null default 0,
    dislikes        integer not null default 0,
    comment_count   integer not null default 0
);

create table posts.comments (
    comment_id uuid    primary key,
    post_id    uuid    not null,
    author_id  uuid    not null,
    deleted    boolean not null default false,
    likes      integer not null default 0,
    dislikes   integer not null default 0
);

-- One reaction per user per post or comment; no row means no reaction.
create table posts.reactions (
    target_id uuid     not null,
    user_id   uuid     not null,
    reaction  smallint not null check (reaction in (1, 2)), -- 1 like, 2 dislike
    primary key (target_id, user_id)
);

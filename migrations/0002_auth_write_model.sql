-- The accounts service's own state, written in the same transaction as its
-- events (the log stays the source of truth). It makes nickname and e-mail
-- uniqueness race-free and lets login find an account by either.
create table auth.accounts (
    user_id       uuid   primary key,
    nickname_key  text   not null unique, -- lower(nickname)
    email_key     text   not null unique, -- lower(email)
    password_hash text   not null,
    version       integer not null
);

create table auth.sessions (
    session_id uuid        primary key,
    user_id    uuid        not null,
    expires_at timestamptz not null,
    revoked    boolean     not null default false
);

-- The chat and notifications services' own state, written in the same
-- transaction as their events (the logs stay the source of truth).

-- Chat: every message with its conversation and the chat-log position of
-- its `message_sent`, so read receipts can name a message and be checked
-- against the conversation.
create table chat.messages (
    message_id      uuid   primary key,
    conversation_id uuid   not null,
    from_id         uuid   not null,
    to_id           uuid   not null,
    position        bigint not null
);
-- "Messages from `from_id` to `to_id` after a read mark."
create index messages_between on chat.messages (to_id, from_id, position);

-- A conversation stream's version (its last event's).
create table chat.conversations (
    conversation_id uuid    primary key,
    version         integer not null
);

-- How far `reader_id` has read `other_id`'s messages: every message from
-- other to reader at or before this chat-log position is read.
create table chat.read_marks (
    reader_id      uuid   not null,
    other_id       uuid   not null,
    up_to_position bigint not null,
    primary key (reader_id, other_id)
);

-- Notifications: every notification, whose it is and whether it is read.
create table notifications.notifications (
    notification_id uuid    primary key,
    user_id         uuid    not null,
    read            boolean not null default false
);
create index notifications_unread on notifications.notifications (user_id) where not read;

-- A user's notification stream: its version and how many are unread.
create table notifications.inboxes (
    user_id uuid    primary key,
    version integer not null,
    unread  integer not null default 0
);

-- The deriver's own state: who wrote each post and comment (filled from
-- `post_created` and `comment_created` in log order).
create table notifications.authors (
    target_id uuid primary key,
    author_id uuid not null
);

-- How far the deriver has processed each source log (the position of the
-- last event processed), moved in the transaction that appends what it
-- derived.
create table notifications.deriver_checkpoints (
    service  text   primary key,
    position bigint not null default 0
);
insert into notifications.deriver_checkpoints (service) values ('posts'), ('chat');

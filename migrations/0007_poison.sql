-- Events a follower of the logs could not apply, parked so that it goes on
-- with the next event (see docs/REPLAY.md, "Parked (poison) events").
-- `projection` is the follower: a projection's name with its version, or
-- `notifier` (version 1) for the notifications deriver. The follower's
-- checkpoint moved past the event in the transaction that parked it.
create table proj.poison (
    projection     text        not null,
    version        integer     not null,
    service        text        not null,
    position       bigint      not null,
    stream_id      uuid        not null,
    event_id       uuid        not null,
    event_type     text        not null,
    correlation_id uuid        not null,
    error          text        not null,
    parked_at      timestamptz not null default now(),
    -- How many times it failed (1 when parked, +1 per failed retry), and
    -- when it was last retried.
    attempts       integer     not null default 1,
    retried_at     timestamptz,
    primary key (projection, version, service, position)
);

-- Responses remembered for Idempotency-Key retries, shared by every gateway.
create schema if not exists gateway;

create table gateway.idempotency (
    scope      uuid        not null, -- the user, or the nil id before login
    key        text        not null,
    method     text        not null,
    path       text        not null,
    status     integer,              -- null while the first request runs
    headers    jsonb,
    body       bytea,
    created_at timestamptz not null default now(),
    primary key (scope, key)
);
create index idempotency_created_at on gateway.idempotency (created_at);

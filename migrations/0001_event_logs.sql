-- The event logs: one append-only table per service, each in its own schema.
-- Positions are assigned by the appender while it holds the service's
-- advisory lock, so they are gap-free and commit in position order.

create or replace function public.forum_refuse_change() returns trigger
language plpgsql as $$
begin
    raise exception 'event logs are append-only: % on %.% refused',
        tg_op, tg_table_schema, tg_table_name
        using errcode = 'insufficient_privilege';
end
$$;

do $$
declare
    svc text;
begin
    foreach svc in array array['auth', 'posts', 'chat', 'notifications'] loop
        execute format('create schema if not exists %I', svc);
        execute format($f$
            create table %I.events (
                position       bigint      primary key check (position > 0),
                stream_id      uuid        not null,
                version        integer     not null check (version > 0),
                event_id       uuid        not null unique,
                event_type     text        not null,
                schema_version smallint    not null,
                payload        bytea       not null,
                correlation_id uuid        not null,
                causation_id   uuid        not null,
                actor          uuid,
                recorded_at    timestamptz not null,
                unique (stream_id, version)
            )$f$, svc);
        execute format('create index on %I.events (stream_id, version)', svc);
        -- Statement-level, so that even an UPDATE or DELETE matching no row
        -- is refused.
        execute format('create trigger events_append_only before update or delete or truncate
                        on %I.events for each statement
                        execute function public.forum_refuse_change()', svc);
        -- Outbox: how far the log has been published to JetStream.
        execute format($f$
            create table %I.outbox (
                singleton          boolean primary key default true check (singleton),
                published_position bigint  not null default 0
            )$f$, svc);
        execute format('insert into %I.outbox default values', svc);
    end loop;
end
$$;

-- Exactly once: the outcome of every command sent with an Idempotency-Key,
-- recorded by the command service in the transaction that appends the
-- command's events. A retry (through any gateway, to any instance) finds it
-- and gets the same answer; nothing is written twice.
--
-- `command_id` is derived by the gateway from the key and its caller's
-- scope (the user, or the anonymous scope), so one key names one command
-- across every service: the same key sent to another service, or with
-- another request, is a conflict. `request_digest` is the SHA-256 of the
-- request (method, path and body) the key was first used for. `reply` is the
-- encoded answer (accepted with its log positions and data, or the domain's
-- refusal).
--
-- Kept for ever, like the logs (a row is about 100 bytes per keyed write):
-- deleting one could let a late retry write twice.
create schema if not exists command;

create table command.outcomes (
    command_id     uuid        primary key,
    service        text        not null,
    request_digest bytea       not null,
    reply          bytea       not null,
    recorded_at    timestamptz not null default now()
);

create trigger outcomes_append_only before update or delete or truncate
    on command.outcomes for each statement
    execute function public.forum_refuse_change();

-- Read projections live in versioned schemas (proj_<name>_v<version>), created
-- by the code that fills them. Reads go through views in the `read` schema,
-- which point at the live version; switching versions replaces the views in
-- one transaction.
create schema if not exists proj;
create schema if not exists read;

create table proj.registry (
    projection     text        not null,
    version        integer     not null,
    state          text        not null check (state in ('live', 'rebuilding', 'retired')),
    created_at     timestamptz not null default now(),
    switched_at    timestamptz,
    error          text,
    error_service  text,
    error_position bigint,
    error_type     text,
    primary key (projection, version)
);
-- At most one live version of a projection.
create unique index registry_one_live on proj.registry (projection) where state = 'live';

create table proj.checkpoints (
    projection text    not null,
    version    integer not null,
    service    text    not null,
    position   bigint  not null default 0,
    primary key (projection, version, service)
);

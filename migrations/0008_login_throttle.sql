-- Failed logins per account, counted once for every gateway and every auth
-- service instance (the auth service's own write-model state, not events:
-- a failed login is no fact of the domain, and the log is kept for ever).
--
-- `key` is the account's user id, or for a login no account holds a UUIDv5
-- of the lower-cased login, so unknown logins are throttled exactly like
-- known ones (the answers do not tell them apart). Rows are bounded: a row
-- is created only by a failed login, which costs an argon2 hash (attempts
-- refused during a delay are not counted and write nothing); a success
-- deletes the account's row; and every recorded failure deletes a few rows
-- quiet for 15 minutes, so the table holds at most what the hashing threads
-- can fail in 15 minutes.
create table auth.login_throttle (
    key           uuid        primary key,
    failures      integer     not null,
    -- Logins for this key are refused (429 + Retry-After) before this time.
    blocked_until timestamptz,
    last_failure  timestamptz not null
);

create index login_throttle_last_failure on auth.login_throttle (last_failure);

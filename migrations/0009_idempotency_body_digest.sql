-- A remembered answer is bound to its request's body too: the same key with
-- another body is a conflict, never another request's answer (anonymous
-- keys, on register and login, share one scope). Null on rows written
-- before this column (they compare by method and path alone).
alter table gateway.idempotency add column body_digest bytea;

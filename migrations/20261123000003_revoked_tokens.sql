-- Revoked JWTs (POST /logout): the durable record every API replica consults when Redis cannot
-- answer. Redis holds a copy under "<prefix>:revoked:<jti>" with a TTL until the token expires.
--
-- A row is only useful until its token expires (an expired token is refused anyway), so
-- `auth::Revocations::purge_expired` deletes rows with expires_at in the past, using the index below.

CREATE TABLE IF NOT EXISTS revoked_tokens
(
    jti        uuid PRIMARY KEY,
    -- The token's `exp`: after this instant the row may be deleted.
    expires_at timestamptz NOT NULL,
    -- The token's `sub`, for audit and for "revoke everything of this user" later.
    user_id    uuid        NOT NULL,
    revoked_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS revoked_tokens_expires_at ON revoked_tokens (expires_at);

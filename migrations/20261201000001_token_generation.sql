-- Ending a user's tokens at once (issue 15): every token carries the user's token generation at
-- issue time (claim `gen`); a password change, a role change and a deactivation add one to it in
-- the same transaction as their event, so every earlier token stops working on both APIs.
-- Redis keeps a copy per user ("<prefix>:standing:<user_id>", a minute's TTL); this column is
-- the durable record both APIs read when Redis cannot answer.
ALTER TABLE user_registry
    ADD COLUMN IF NOT EXISTS token_generation bigint NOT NULL DEFAULT 0;

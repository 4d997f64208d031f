-- The outbox relay's checkpoint: the last (transaction_id, global_position) pair that Kafka
-- acknowledged. The relay reads events strictly after this pair, in that order, and only from
-- transactions below the oldest running one, so no event that commits late is ever skipped.

CREATE TABLE IF NOT EXISTS relay_checkpoint
(
    name            text        PRIMARY KEY,
    transaction_id  xid8        NOT NULL,
    global_position bigint      NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

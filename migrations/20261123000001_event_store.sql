-- The event store: postgres-es's `events` and `snapshots` tables, plus the columns DESIGN.md adds
-- for the relay and the replay (global order, gap safety, identity and time of each event).
--
-- postgres-es names its columns on INSERT, so the added columns are filled by their defaults.

CREATE TABLE IF NOT EXISTS events
(
    aggregate_type  text                         NOT NULL,
    aggregate_id    text                         NOT NULL,
    sequence        bigint CHECK (sequence >= 0) NOT NULL,
    event_type      text                         NOT NULL,
    event_version   text                         NOT NULL,
    payload         json                         NOT NULL,
    metadata        json                         NOT NULL,
    -- Order of insertion across all aggregates. Values commit out of order, so never read
    -- "everything after position N" without the transaction_id rule below.
    global_position bigint GENERATED ALWAYS AS IDENTITY,
    -- The inserting transaction. A reader that only takes rows with
    -- transaction_id < pg_snapshot_xmin(pg_current_snapshot()) never skips a row that commits later.
    transaction_id  xid8                         NOT NULL DEFAULT pg_current_xact_id(),
    event_id        uuid                         NOT NULL DEFAULT gen_random_uuid(),
    recorded_at     timestamptz                  NOT NULL DEFAULT now(),
    PRIMARY KEY (aggregate_type, aggregate_id, sequence)
);

CREATE UNIQUE INDEX IF NOT EXISTS events_global_position ON events (global_position);
CREATE UNIQUE INDEX IF NOT EXISTS events_event_id ON events (event_id);
CREATE INDEX IF NOT EXISTS events_transaction_order ON events (transaction_id, global_position);

CREATE TABLE IF NOT EXISTS snapshots
(
    aggregate_type   text                                 NOT NULL,
    aggregate_id     text                                 NOT NULL,
    last_sequence    bigint CHECK (last_sequence >= 0)    NOT NULL,
    current_snapshot bigint CHECK (current_snapshot >= 0) NOT NULL,
    payload          json                                 NOT NULL,
    timestamp        timestamp with time zone DEFAULT (CURRENT_TIMESTAMP),
    PRIMARY KEY (aggregate_type, aggregate_id, last_sequence)
);

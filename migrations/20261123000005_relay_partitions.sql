-- The relay's progress on every Kafka partition it published to: the offset after the last
-- message Kafka acknowledged there (from the producer's delivery reports). Written in the same
-- statement as the relay checkpoint. The projector's lag is, partition by partition, this
-- offset minus its consumer group's committed offset: an exact count of the messages it has not
-- applied yet, which a single "highest position applied" cannot give once several partitions
-- are consumed at different speeds. Broker high watermarks are not used: the development broker
-- reports wrong ones (ADR 0001).

CREATE TABLE IF NOT EXISTS relay_partitions
(
    topic       text        NOT NULL,
    partition   integer     NOT NULL,
    next_offset bigint      NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, partition)
);

//! The relay's checkpoint: the position of the last event Kafka acknowledged
//! (`relay_checkpoint`), the next offset of every partition it published to
//! (`relay_partitions`), and the lag they imply.

use std::collections::HashMap;

use anyhow::Context as _;
use event_store::read::{self, Backlog, Position};
use sqlx::{PgConnection, PgExecutor, PgPool};

/// The name of the relay's row in `relay_checkpoint`.
pub const CHECKPOINT_NAME: &str = "kafka";

/// Per (topic, partition): the offset after the last message Kafka acknowledged in a batch.
pub(crate) type NextOffsets = HashMap<(String, i32), i64>;

/// The upsert of the relay's checkpoint row; a macro so that both statements below share it.
macro_rules! upsert_checkpoint {
    () => {
        "INSERT INTO relay_checkpoint (name, transaction_id, global_position, updated_at)
VALUES ($1, $2::text::xid8, $3, now())
ON CONFLICT (name) DO UPDATE
   SET transaction_id = EXCLUDED.transaction_id,
       global_position = EXCLUDED.global_position,
       updated_at = EXCLUDED.updated_at"
    };
}

const WRITE_CHECKPOINT: &str = upsert_checkpoint!();

/// The checkpoint and, in the same statement, the next offset of every partition the batch went
/// to (`relay_partitions`, read by the projector's lag).
const WRITE_CHECKPOINT_AND_PARTITIONS: &str = concat!(
    "WITH checkpoint AS (",
    upsert_checkpoint!(),
    ")
INSERT INTO relay_partitions (topic, partition, next_offset, updated_at)
SELECT topic, partition, next_offset, now()
  FROM UNNEST($4::text[], $5::int4[], $6::int8[]) AS p(topic, partition, next_offset)
ON CONFLICT (topic, partition) DO UPDATE
   SET next_offset = EXCLUDED.next_offset,
       updated_at = EXCLUDED.updated_at"
);

/// The stored checkpoint, if the relay published anything yet.
///
/// # Errors
/// PostgreSQL unreachable.
pub(crate) async fn read<'e>(executor: impl PgExecutor<'e>) -> anyhow::Result<Option<Position>> {
    let row: Option<(String, i64)> = sqlx::query_as(
        "SELECT transaction_id::text, global_position FROM relay_checkpoint WHERE name = $1",
    )
    .bind(CHECKPOINT_NAME)
    .fetch_optional(executor)
    .await
    .context("reading the relay checkpoint")?;
    Ok(row.map(|(transaction_id, global_position)| Position {
        transaction_id,
        global_position,
    }))
}

/// The stored checkpoint as `(transaction id, global position)`, if the relay published
/// anything yet.
///
/// # Errors
/// PostgreSQL unreachable.
pub async fn checkpoint(pool: &PgPool) -> anyhow::Result<Option<(u64, i64)>> {
    read(pool)
        .await?
        .map(|position| {
            Ok((
                parse_xid(&position.transaction_id)?,
                position.global_position,
            ))
        })
        .transpose()
}

pub(crate) fn parse_xid(xid: &str) -> anyhow::Result<u64> {
    xid.parse()
        .with_context(|| format!("transaction id {xid:?} is not a number"))
}

/// Stores `last` as the checkpoint and the partitions' next offsets, in one statement.
pub(crate) async fn store(
    connection: &mut PgConnection,
    last: &Position,
    next_offsets: NextOffsets,
) -> anyhow::Result<()> {
    let (topics, (partitions, offsets)): (Vec<String>, (Vec<i32>, Vec<i64>)) = next_offsets
        .into_iter()
        .map(|((topic, partition), offset)| (topic, (partition, offset)))
        .unzip();
    sqlx::query(WRITE_CHECKPOINT_AND_PARTITIONS)
        .bind(CHECKPOINT_NAME)
        .bind(&last.transaction_id)
        .bind(last.global_position)
        .bind(topics)
        .bind(partitions)
        .bind(offsets)
        .execute(connection)
        .await
        .context("storing the relay checkpoint")?;
    Ok(())
}

/// Moves the checkpoint back to the start and forgets the partitions' offsets: Kafka lost the
/// log, every event is published again.
pub(crate) async fn reset(connection: &mut PgConnection) -> anyhow::Result<()> {
    let start = Position::start();
    sqlx::query(WRITE_CHECKPOINT)
        .bind(CHECKPOINT_NAME)
        .bind(&start.transaction_id)
        .bind(start.global_position)
        .execute(&mut *connection)
        .await
        .context("resetting the relay checkpoint")?;
    // The lost log's offsets mean nothing in the new one (which may even have other
    // partitions); the re-published batches write them again.
    sqlx::query("DELETE FROM relay_partitions")
        .execute(&mut *connection)
        .await
        .context("forgetting the lost partitions' offsets")?;
    Ok(())
}

/// The relay's lag, from PostgreSQL positions (never Kafka watermarks): committed events after
/// its checkpoint and the age of the oldest.
///
/// # Errors
/// PostgreSQL unreachable.
pub async fn lag(pool: &PgPool) -> anyhow::Result<Backlog> {
    let position = read(pool).await?.unwrap_or_else(Position::start);
    read::backlog(pool, &position)
        .await
        .context("reading the relay lag")
}

/// The offset after the last message Kafka acknowledged, for every partition of `topics` the
/// relay published to (`relay_partitions`): `(topic, partition, next offset)`.
///
/// # Errors
/// PostgreSQL unreachable.
pub async fn partition_offsets(
    pool: &PgPool,
    topics: &[String],
) -> anyhow::Result<Vec<(String, i32, i64)>> {
    sqlx::query_as(
        "SELECT topic, partition, next_offset FROM relay_partitions
          WHERE topic = ANY($1) ORDER BY topic, partition",
    )
    .bind(topics)
    .fetch_all(pool)
    .await
    .context("reading the relay's partition offsets")
}

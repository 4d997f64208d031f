//! Reading events from the PostgreSQL event store (gap filling and replay).

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use read_model::{Envelope, EnvelopeMetadata};
use sqlx::PgPool;
use uuid::Uuid;

#[derive(Debug, sqlx::FromRow)]
struct Row {
    transaction_id: String,
    global_position: i64,
    event_id: Uuid,
    aggregate_type: String,
    aggregate_id: String,
    sequence: i64,
    event_type: String,
    event_version: String,
    payload: serde_json::Value,
    metadata: serde_json::Value,
    recorded_at: DateTime<Utc>,
}

impl Row {
    fn into_envelope(self) -> (String, Envelope) {
        (
            self.transaction_id,
            Envelope {
                event_id: self.event_id,
                aggregate_type: self.aggregate_type,
                aggregate_id: self.aggregate_id,
                sequence: self.sequence,
                global_position: self.global_position,
                event_type: self.event_type,
                event_version: self.event_version,
                occurred_at: self.recorded_at,
                metadata: EnvelopeMetadata::from_stored(&self.metadata),
                payload: self.payload,
            },
        )
    }
}

const COLUMNS: &str = "transaction_id::text AS transaction_id, global_position, event_id, \
     aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, recorded_at";

/// The events of one aggregate after `after_sequence`, in sequence order (filling a gap).
///
/// # Errors
/// PostgreSQL unreachable.
pub async fn of_aggregate(
    pool: &PgPool,
    aggregate_type: &str,
    aggregate_id: &str,
    after_sequence: i64,
) -> anyhow::Result<Vec<Envelope>> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM events
          WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence > $3
          ORDER BY sequence"
    ))
    .bind(aggregate_type)
    .bind(aggregate_id)
    .bind(after_sequence)
    .fetch_all(pool)
    .await
    .with_context(|| format!("reading the events of {aggregate_type} {aggregate_id}"))?;
    Ok(rows.into_iter().map(|row| row.into_envelope().1).collect())
}

/// A position in the commit order: `(transaction_id, global_position)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    /// The transaction id (xid8) as text.
    pub transaction_id: String,
    /// The global position.
    pub global_position: i64,
}

impl Position {
    /// Before the first event.
    #[must_use]
    pub fn start() -> Self {
        Self {
            transaction_id: "0".to_owned(),
            global_position: 0,
        }
    }
}

/// The next committed events after `after`, in `(transaction_id, global_position)` order, only
/// from transactions older than every running one (so none is skipped), at most `limit`.
///
/// # Errors
/// PostgreSQL unreachable.
pub async fn next_batch(
    pool: &PgPool,
    after: &Position,
    limit: i64,
) -> anyhow::Result<Vec<(Position, Envelope)>> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM events
          WHERE (transaction_id, global_position) > ($1::text::xid8, $2)
            AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())
          ORDER BY transaction_id, global_position
          LIMIT $3"
    ))
    .bind(&after.transaction_id)
    .bind(after.global_position)
    .bind(limit)
    .fetch_all(pool)
    .await
    .context("reading a batch of events in commit order")?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let global_position = row.global_position;
            let (transaction_id, envelope) = row.into_envelope();
            (
                Position {
                    transaction_id,
                    global_position,
                },
                envelope,
            )
        })
        .collect())
}

/// How many events there are in all, and how many are at or before `position`.
///
/// # Errors
/// PostgreSQL unreachable.
pub async fn progress(pool: &PgPool, position: &Position) -> anyhow::Result<(u64, u64)> {
    let (total, done): (i64, i64) = sqlx::query_as(
        "SELECT count(*),
                count(*) FILTER (WHERE (transaction_id, global_position) <= ($1::text::xid8, $2))
           FROM events",
    )
    .bind(&position.transaction_id)
    .bind(position.global_position)
    .fetch_one(pool)
    .await
    .context("counting events")?;
    Ok((
        u64::try_from(total).unwrap_or(0),
        u64::try_from(done).unwrap_or(0),
    ))
}

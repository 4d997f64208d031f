//! Reading the `events` table: the one place outside the cqrs-es repository that writes SQL
//! against it. The relay, the projector (live gap filling, catch-up and replay) and the query
//! API's task history all read through here, and all get the same [`Envelope`].
//!
//! - [`after`]: the gap-safe batch in commit order after a [`Position`], and [`held_back`]:
//!   whether committed events wait behind an older open transaction.
//! - [`of_aggregate`]: one aggregate's events after a sequence (gap filling, history pages).
//! - [`boundary`], [`by_aggregate`]: the replay's fixed set of events in primary-key order.
//! - [`backlog`], [`progress`], [`last_sequences`]: counts.
//!
//! Commit order is `(transaction_id, global_position)`, read only below the snapshot's xmin:
//! a transaction still open may hold a smaller id than one already committed, and reading past
//! it would skip its events for good (DESIGN.md, "The outbox relay").

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use domain::{AggregateType, UpcastError};
use serde::{Deserialize, Serialize};
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::Metadata;

/// One event as it leaves the event store: the JSON published to Kafka (DESIGN.md, "Event
/// envelope on Kafka"), read by the projector and shown by the history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// The event's unique id.
    pub event_id: Uuid,
    /// Whose event it is; the topic is `<prefix>.<aggregate_type>`.
    pub aggregate_type: AggregateType,
    /// The aggregate's id (a UUID string).
    pub aggregate_id: String,
    /// The event's sequence within its aggregate (1, 2, …).
    pub sequence: i64,
    /// The event's position in the whole store (commit order is *not* position order).
    pub global_position: i64,
    /// E.g. `"TaskCreated"`.
    pub event_type: String,
    /// E.g. `"1.0"`.
    pub event_version: String,
    /// When the event was recorded.
    pub occurred_at: DateTime<Utc>,
    /// Who caused it and in which request.
    #[serde(default)]
    pub metadata: Metadata,
    /// The domain event, externally tagged (`{"TaskCreated": {...}}` or `"TaskDeleted"`).
    pub payload: serde_json::Value,
}

/// A position in commit order: `(transaction_id, global_position)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    /// The transaction id (PostgreSQL `xid8`) as text.
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

    /// Whether this is before the first event.
    #[must_use]
    pub fn is_start(&self) -> bool {
        self.transaction_id == "0" && self.global_position == 0
    }
}

/// What can go wrong reading events.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// PostgreSQL refused or is unreachable.
    #[error("{what}: {source}")]
    Database {
        what: &'static str,
        #[source]
        source: sqlx::Error,
    },
    /// A stored event names an aggregate type this code does not know.
    #[error("a stored event: {0}")]
    UnknownAggregateType(#[from] domain::UnknownAggregateType),
}

fn database(what: &'static str) -> impl FnOnce(sqlx::Error) -> ReadError {
    move |source| ReadError::Database { what, source }
}

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
    fn into_envelope(self) -> Result<(Position, Envelope), ReadError> {
        let aggregate_type = self.aggregate_type.parse()?;
        // The column holds the `HashMap<String, String>` cqrs-es stores; anything else in it is
        // ignored, so every stored event stays readable.
        let map: HashMap<String, String> = match self.metadata {
            serde_json::Value::Object(object) => object
                .into_iter()
                .filter_map(|(key, value)| match value {
                    serde_json::Value::String(value) => Some((key, value)),
                    _ => None,
                })
                .collect(),
            _ => HashMap::new(),
        };
        Ok((
            Position {
                transaction_id: self.transaction_id,
                global_position: self.global_position,
            },
            Envelope {
                event_id: self.event_id,
                aggregate_type,
                aggregate_id: self.aggregate_id,
                sequence: self.sequence,
                global_position: self.global_position,
                event_type: self.event_type,
                event_version: self.event_version,
                occurred_at: self.recorded_at,
                metadata: Metadata::from_map(&map),
                payload: self.payload,
            },
        ))
    }
}

fn envelopes(rows: Vec<Row>) -> Result<Vec<Envelope>, ReadError> {
    rows.into_iter()
        .map(|row| row.into_envelope().map(|(_, envelope)| envelope))
        .collect()
}

impl Envelope {
    /// This event in the current shape of its type: a stored event of an older version goes
    /// through the upcasting chain of [`domain::upcast`]. The reads here return events as
    /// stored (the relay publishes them so); whoever decodes a payload upcasts it first.
    ///
    /// # Errors
    /// A version this build does not read ([`UpcastError`]).
    pub fn upcast(self) -> Result<Self, UpcastError> {
        let (payload, version) = domain::upcast::upcast(
            self.aggregate_type,
            &self.event_type,
            &self.event_version,
            self.payload,
        )?;
        Ok(Self {
            payload,
            event_version: version.to_owned(),
            ..self
        })
    }
}

const COLUMNS: &str = "transaction_id::text AS transaction_id, global_position, event_id, \
     aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, recorded_at";

/// The next committed events after `position` in commit order, at most `limit`, each with its
/// position; only events of transactions older than every running one, so none is skipped.
///
/// # Errors
/// PostgreSQL unreachable; an event of an unknown aggregate type.
pub async fn after<'e>(
    executor: impl PgExecutor<'e>,
    position: &Position,
    limit: i64,
) -> Result<Vec<(Position, Envelope)>, ReadError> {
    // `events.transaction_id`: the bare name would be the text output column of COLUMNS, and
    // text order puts `10000` before `9999`, so a batch would skip past older ids (tests
    // `events_across_a_digit_boundary_of_transaction_ids_all_arrive_in_commit_order`,
    // `the_in_order_read_crosses_a_digit_boundary_of_transaction_ids`). The column also lets the
    // planner walk the `(transaction_id, global_position)` index.
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM events
          WHERE (transaction_id, global_position) > ($1::text::xid8, $2)
            AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())
          ORDER BY events.transaction_id, global_position
          LIMIT $3"
    ))
    .bind(&position.transaction_id)
    .bind(position.global_position)
    .bind(limit)
    .fetch_all(executor)
    .await
    .map_err(database("reading a batch of events in commit order"))?;
    rows.into_iter().map(Row::into_envelope).collect()
}

/// Whether committed events exist after `position` in commit order, readable or not yet (held
/// back behind an older transaction that is still open): [`after`] found none, but there is
/// more to come as soon as that transaction ends.
///
/// # Errors
/// PostgreSQL unreachable.
pub async fn held_back<'e>(
    executor: impl PgExecutor<'e>,
    position: &Position,
) -> Result<bool, ReadError> {
    // Not `SELECT EXISTS (…)`: PostgreSQL drops an ORDER BY inside EXISTS and, expecting an early
    // hit, scans the whole table when there is none, which is the usual answer here (the relay
    // asks after every read that found nothing): 28 ms at 78,000 events, and growing with the
    // store. In the order of the `(transaction_id, global_position)` index with LIMIT 1 it reads
    // one index page.
    let next: Option<bool> = sqlx::query_scalar(
        "SELECT true FROM events
          WHERE (transaction_id, global_position) > ($1::text::xid8, $2)
          ORDER BY events.transaction_id, global_position
          LIMIT 1",
    )
    .bind(&position.transaction_id)
    .bind(position.global_position)
    .fetch_optional(executor)
    .await
    .map_err(database("looking for held-back events"))?;
    Ok(next.is_some())
}

/// The events of one aggregate after `after_sequence`, in sequence order, at most `limit`
/// (gap filling reads them all with `i64::MAX`; a history page reads one more than it shows).
///
/// # Errors
/// PostgreSQL unreachable; an event of an unknown aggregate type.
pub async fn of_aggregate<'e>(
    executor: impl PgExecutor<'e>,
    aggregate_type: AggregateType,
    aggregate_id: &str,
    after_sequence: i64,
    limit: i64,
) -> Result<Vec<Envelope>, ReadError> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM events
          WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence > $3
          ORDER BY sequence
          LIMIT $4"
    ))
    .bind(aggregate_type.as_str())
    .bind(aggregate_id)
    .bind(after_sequence)
    .bind(limit)
    .fetch_all(executor)
    .await
    .map_err(database("reading the events of an aggregate"))?;
    envelopes(rows)
}

/// Committed events after a position and the age of the oldest of them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backlog {
    /// Committed events after the position.
    pub events: i64,
    /// Age of the oldest of them in seconds (0 when there are none).
    pub seconds: f64,
}

/// How many committed events there are after `position`, and how old the oldest is.
///
/// # Errors
/// PostgreSQL unreachable.
pub async fn backlog<'e>(
    executor: impl PgExecutor<'e>,
    position: &Position,
) -> Result<Backlog, ReadError> {
    let (events, seconds): (i64, f64) = sqlx::query_as(
        "SELECT count(*), COALESCE(EXTRACT(EPOCH FROM now() - min(recorded_at)), 0)::float8
           FROM events
          WHERE (transaction_id, global_position) > ($1::text::xid8, $2)",
    )
    .bind(&position.transaction_id)
    .bind(position.global_position)
    .fetch_one(executor)
    .await
    .map_err(database("counting the events after a position"))?;
    Ok(Backlog { events, seconds })
}

/// The highest sequence of every aggregate: what the store holds, to check a copy against it.
///
/// # Errors
/// PostgreSQL unreachable; an event of an unknown aggregate type.
pub async fn last_sequences<'e>(
    executor: impl PgExecutor<'e>,
) -> Result<HashMap<(AggregateType, String), i64>, ReadError> {
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT aggregate_type, aggregate_id, max(sequence) FROM events
          GROUP BY aggregate_type, aggregate_id",
    )
    .fetch_all(executor)
    .await
    .map_err(database("reading the last sequence of every aggregate"))?;
    rows.into_iter()
        .map(|(aggregate_type, aggregate_id, sequence)| {
            Ok(((aggregate_type.parse()?, aggregate_id), sequence))
        })
        .collect()
}

/// Where a read in aggregate order stands: the events it covers (those of transactions below
/// `below_xmin`, every one of them committed) and the last one it read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggregateCursor {
    /// A snapshot's xmin (xid8, as text): every transaction below it had ended, so the events
    /// below it are a fixed set.
    pub below_xmin: String,
    /// The last event read: `(aggregate_type, aggregate_id, sequence)` (empty strings and 0
    /// before the first).
    pub after: (String, String, i64),
}

/// A fixed set of committed events to read in aggregate order, and the position in commit order
/// that is the last of them (a read in commit order continues after it).
///
/// # Errors
/// PostgreSQL unreachable.
pub async fn boundary<'e>(
    executor: impl PgExecutor<'e>,
) -> Result<(AggregateCursor, Position), ReadError> {
    let (below_xmin, transaction_id, global_position): (String, Option<String>, Option<i64>) =
        sqlx::query_as(
            "WITH snapshot AS (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin)
             SELECT snapshot.xmin::text, last.transaction_id::text, last.global_position
               FROM snapshot
               LEFT JOIN LATERAL (
                    SELECT transaction_id, global_position FROM events
                     WHERE transaction_id < snapshot.xmin
                     ORDER BY transaction_id DESC, global_position DESC
                     LIMIT 1) last ON true",
        )
        .fetch_one(executor)
        .await
        .map_err(database(
            "reading the boundary of a read in aggregate order",
        ))?;
    let end = match (transaction_id, global_position) {
        (Some(transaction_id), Some(global_position)) => Position {
            transaction_id,
            global_position,
        },
        _ => Position::start(),
    };
    Ok((
        AggregateCursor {
            below_xmin,
            after: (String::new(), String::new(), 0),
        },
        end,
    ))
}

/// The next events below the cursor's boundary after `cursor.after`, in aggregate order
/// (`aggregate_type, aggregate_id, sequence`: the primary key), at most `limit`, with the
/// cursor after the last of them.
///
/// # Errors
/// PostgreSQL unreachable; an event of an unknown aggregate type.
pub async fn by_aggregate(
    pool: &sqlx::PgPool,
    cursor: &AggregateCursor,
    limit: i64,
) -> Result<(AggregateCursor, Vec<Envelope>), ReadError> {
    let (aggregate_type, aggregate_id, sequence) = &cursor.after;
    let read = async {
        let mut transaction = pool.begin().await?;
        // PostgreSQL estimates a row comparison by its first column alone (here: the aggregate
        // types after this one), so it expects a few rows and plans a scan of every event after
        // the cursor plus a sort: 150 ms a batch over 100,000 events, growing with the store.
        // Walking the primary key in order reads only the batch (17 ms).
        sqlx::query("SET LOCAL enable_sort = off")
            .execute(&mut *transaction)
            .await?;
        let rows: Vec<Row> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM events
              WHERE (aggregate_type, aggregate_id, sequence) > ($1, $2, $3)
                AND transaction_id < $4::text::xid8
              ORDER BY aggregate_type, aggregate_id, sequence
              LIMIT $5"
        ))
        .bind(aggregate_type)
        .bind(aggregate_id)
        .bind(sequence)
        .bind(&cursor.below_xmin)
        .bind(limit)
        .fetch_all(&mut *transaction)
        .await?;
        transaction.commit().await?;
        Ok::<_, sqlx::Error>(rows)
    };
    let rows = read
        .await
        .map_err(database("reading a batch of events in aggregate order"))?;
    let mut next = cursor.clone();
    if let Some(last) = rows.last() {
        next.after = (
            last.aggregate_type.clone(),
            last.aggregate_id.clone(),
            last.sequence,
        );
    }
    Ok((next, envelopes(rows)?))
}

/// How many events there are in all, and how many a read has passed: those at or before
/// `position` in commit order, or, while it reads in aggregate order (`by_aggregate`), those
/// below the boundary at or before the cursor.
///
/// # Errors
/// PostgreSQL unreachable.
pub async fn progress<'e>(
    executor: impl PgExecutor<'e>,
    position: &Position,
    by_aggregate: Option<&AggregateCursor>,
) -> Result<(u64, u64), ReadError> {
    let (total, done): (i64, i64) = match by_aggregate {
        Some(cursor) => {
            let (aggregate_type, aggregate_id, sequence) = &cursor.after;
            sqlx::query_as(
                "SELECT count(*),
                        count(*) FILTER (WHERE transaction_id < $1::text::xid8
                                           AND (aggregate_type, aggregate_id, sequence)
                                               <= ($2, $3, $4))
                   FROM events",
            )
            .bind(&cursor.below_xmin)
            .bind(aggregate_type)
            .bind(aggregate_id)
            .bind(sequence)
            .fetch_one(executor)
            .await
        }
        None => {
            sqlx::query_as(
                "SELECT count(*),
                        count(*) FILTER (WHERE (transaction_id, global_position)
                                               <= ($1::text::xid8, $2))
                   FROM events",
            )
            .bind(&position.transaction_id)
            .bind(position.global_position)
            .fetch_one(executor)
            .await
        }
    }
    .map_err(database("counting events"))?;
    Ok((
        u64::try_from(total).unwrap_or(0),
        u64::try_from(done).unwrap_or(0),
    ))
}

#[cfg(test)]
mod tests;

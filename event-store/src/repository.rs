//! [`PgEventRepository`]: the cqrs-es `PersistedEventRepository` over the `events` table.
//!
//! Unlike postgres-es's repository it inserts the events of a commit with one statement, keeps
//! the write-side registry in step in the same transaction, and wakes the relay after the commit
//! (see [`crate::wake`]). A commit that changes nothing in the registry (every task command, most
//! others) is one statement.

use cqrs_es::Aggregate;
use cqrs_es::persist::{
    PersistedEventRepository, PersistenceError, ReplayStream, SerializedEvent, SerializedSnapshot,
};
use domain::AggregateType;
use domain::upcast::upcast;
use futures::StreamExt as _;
use serde_json::Value;
use sqlx::{PgConnection, PgPool};

use crate::error::{persistence_error, unexpected};
use crate::registry;
use crate::registry::access;
use crate::wake::RelayWaker;

const DEFAULT_STREAM_CHANNEL_SIZE: usize = 200;

/// All events of a commit in one statement. `global_position`, `transaction_id` and
/// `recorded_at` are filled by their column defaults; `event_id` comes from us (`$10`), a
/// time-ordered UUIDv7 (see [`insert_events`]). The events are inserted only if every
/// project the decision asked about (`$8`) is still at the access version it read (`$9`; see
/// `registry::access`): otherwise nothing is.
///
/// Each array comes through a subquery of its own, so the planner cannot see how many elements
/// it has: every execution then costs the same to it, and after five PostgreSQL keeps one
/// generic plan per connection. With the arrays in sight, it planned every INSERT again for its
/// array lengths (a custom plan always looks cheaper), which was 40% of PostgreSQL's CPU per
/// command. A project's version is looked up by its key (a subquery per checked project), so
/// the generic plan never scans `project_registry`.
const INSERT_EVENTS: &str = "
INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, event_id)
SELECT aggregate_type, aggregate_id, sequence, event_type, event_version, payload::json, metadata::json, event_id
  FROM UNNEST((SELECT $1::text[]), (SELECT $2::text[]), (SELECT $3::bigint[]), (SELECT $4::text[]),
              (SELECT $5::text[]), (SELECT $6::text[]), (SELECT $7::text[]), (SELECT $10::uuid[]))
    AS e (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, event_id)
 WHERE NOT EXISTS (
       SELECT FROM UNNEST((SELECT $8::uuid[]), (SELECT $9::bigint[])) AS checked (project_id, access_version)
        WHERE (SELECT p.access_version FROM project_registry p WHERE p.project_id = checked.project_id)
              IS DISTINCT FROM checked.access_version)";

const SELECT_EVENTS: &str = "
SELECT aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata
  FROM events
 WHERE aggregate_type = $1 AND aggregate_id = $2
 ORDER BY sequence";

const SELECT_EVENTS_AFTER: &str = "
SELECT aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata
  FROM events
 WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence > $3
 ORDER BY sequence";

const SELECT_ALL_EVENTS: &str = "
SELECT aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata
  FROM events
 WHERE aggregate_type = $1
 ORDER BY global_position";

/// An `events` row as cqrs-es reads it.
type EventRow = (String, String, i64, String, String, Value, Value);

/// The event repository of tasktrail, over the `events` table of migration 0001.
///
/// - `persist` writes all events of a commit with one multi-row `INSERT` and, in the same
///   transaction, updates the write-side registry (`user_registry`, `project_registry`,
///   `project_members`); after the commit it wakes the relay ([`crate::wake`]).
/// - A duplicate `(aggregate_type, aggregate_id, sequence)` is `OptimisticLockError`; a duplicate
///   username / e-mail is `UnknownError(UniqueViolation)`; an unreachable database or a pool
///   timeout is `ConnectionError`.
/// - **Snapshots are not supported**: `get_snapshot` answers `Ok(None)` and `persist` refuses a
///   snapshot update. Use it with `PersistedEventStore::new_event_store` (as
///   [`crate::CommandBus`] does); our aggregates have few events.
/// - `stream_all_events` streams an aggregate type's events in `global_position` order. That is
///   fine for a replay of committed history, not for following new events (positions commit
///   out of order; the relay reads by transaction id).
#[derive(Debug, Clone)]
pub struct PgEventRepository {
    pool: PgPool,
    stream_channel_size: usize,
    relay: RelayWaker,
}

impl PgEventRepository {
    /// A repository over `pool`.
    #[must_use]
    pub fn new(pool: PgPool) -> Self {
        Self {
            relay: RelayWaker::new(pool.clone()),
            pool,
            stream_channel_size: DEFAULT_STREAM_CHANNEL_SIZE,
        }
    }

    /// Buffers up to `size` events in the streams of `stream_events` / `stream_all_events`
    /// (default 200).
    #[must_use]
    pub fn with_stream_channel_size(self, size: usize) -> Self {
        Self {
            stream_channel_size: size.max(1),
            ..self
        }
    }

    /// The pool this repository writes to.
    #[must_use]
    pub const fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn select(
        &self,
        query: &'static str,
        aggregate_type: &str,
        aggregate_id: &str,
        after_sequence: Option<i64>,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        let mut query = sqlx::query_as::<_, EventRow>(query)
            .bind(aggregate_type)
            .bind(aggregate_id);
        if let Some(sequence) = after_sequence {
            query = query.bind(sequence);
        }
        let rows = query
            .fetch_all(&self.pool)
            .await
            .map_err(persistence_error)?;
        rows.into_iter().map(serialized_event).collect()
    }

    /// Streams the rows of `query` (bound to `binds`) through a [`ReplayStream`]; a database
    /// error is the stream's last item.
    fn stream(&self, query: &'static str, binds: Vec<String>) -> ReplayStream {
        let (mut feed, stream) = ReplayStream::new(self.stream_channel_size);
        let pool = self.pool.clone();
        tokio::spawn(async move {
            let mut query = sqlx::query_as::<_, EventRow>(query);
            for bind in binds {
                query = query.bind(bind);
            }
            let mut rows = query.fetch(&pool);
            while let Some(row) = rows.next().await {
                let item = row.map_err(persistence_error).and_then(serialized_event);
                let failed = item.is_err();
                // A closed feed means the reader went away: stop quietly.
                if feed.push(item).await.is_err() || failed {
                    return;
                }
            }
        });
        stream
    }
}

impl PersistedEventRepository for PgEventRepository {
    async fn get_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        self.select(SELECT_EVENTS, A::TYPE, aggregate_id, None)
            .await
    }

    async fn get_last_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
        last_sequence: usize,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        let after = i64::try_from(last_sequence)
            .map_err(|_| unexpected(format!("sequence {last_sequence} is out of range")))?;
        self.select(SELECT_EVENTS_AFTER, A::TYPE, aggregate_id, Some(after))
            .await
    }

    /// Always `Ok(None)`: snapshots are not supported (see the type's documentation).
    async fn get_snapshot<A: Aggregate>(
        &self,
        _aggregate_id: &str,
    ) -> Result<Option<SerializedSnapshot>, PersistenceError> {
        Ok(None)
    }

    async fn persist<A: Aggregate>(
        &self,
        events: &[SerializedEvent],
        snapshot_update: Option<(String, Value, usize)>,
    ) -> Result<(), PersistenceError> {
        if snapshot_update.is_some() {
            return Err(unexpected(
                "PgEventRepository does not store snapshots; use PersistedEventStore::new_event_store",
            ));
        }
        if events.is_empty() {
            return Ok(());
        }
        let registry_statements = registry::update::statements(events)?;
        // Wakes the relay however this ends: after a commit, and also after an error or a
        // dropped request, where the server may have committed all the same (a needless
        // wake-up costs one empty read).
        let _wake = self.relay.on_drop();
        if registry_statements.is_empty() {
            // One statement is a transaction of its own.
            let mut connection = self.pool.acquire().await.map_err(persistence_error)?;
            insert_events(&mut connection, events).await?;
        } else {
            let mut transaction = self.pool.begin().await.map_err(persistence_error)?;
            insert_events(&mut transaction, events).await?;
            registry::update::apply(&mut transaction, registry_statements).await?;
            transaction.commit().await.map_err(persistence_error)?;
        }
        Ok(())
    }

    async fn stream_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<ReplayStream, PersistenceError> {
        Ok(self.stream(
            SELECT_EVENTS,
            vec![A::TYPE.to_owned(), aggregate_id.to_owned()],
        ))
    }

    async fn stream_all_events<A: Aggregate>(&self) -> Result<ReplayStream, PersistenceError> {
        Ok(self.stream(SELECT_ALL_EVENTS, vec![A::TYPE.to_owned()]))
    }
}

/// Inserts the events with one `INSERT … SELECT … FROM UNNEST(…)`.
///
/// Each event gets a UUIDv7 as its id: ids made later sort later, so the unique index on
/// `event_id` grows at its end, like the other three. The column's default (a random v4, for
/// rows written by hand) puts every insert on a random leaf page of that index, so the whole
/// index must stay in memory, and after each checkpoint every page it touches again is written
/// to the WAL in full.
async fn insert_events(
    connection: &mut PgConnection,
    events: &[SerializedEvent],
) -> Result<(), PersistenceError> {
    let mut aggregate_types = Vec::with_capacity(events.len());
    let mut aggregate_ids = Vec::with_capacity(events.len());
    let mut sequences = Vec::with_capacity(events.len());
    let mut event_types = Vec::with_capacity(events.len());
    let mut event_versions = Vec::with_capacity(events.len());
    let mut payloads = Vec::with_capacity(events.len());
    let mut metadata = Vec::with_capacity(events.len());
    let mut event_ids = Vec::with_capacity(events.len());
    for event in events {
        aggregate_types.push(event.aggregate_type.as_str());
        aggregate_ids.push(event.aggregate_id.as_str());
        sequences.push(
            i64::try_from(event.sequence)
                .map_err(|_| unexpected(format!("sequence {} is out of range", event.sequence)))?,
        );
        event_types.push(event.event_type.as_str());
        event_versions.push(event.event_version.as_str());
        payloads.push(serde_json::to_string(&event.payload)?);
        metadata.push(serde_json::to_string(&event.metadata)?);
        event_ids.push(uuid::Uuid::now_v7());
    }
    let (projects, access_versions) = access::to_check();
    let checked = !projects.is_empty();
    let inserted = sqlx::query(INSERT_EVENTS)
        .bind(aggregate_types)
        .bind(aggregate_ids)
        .bind(sequences)
        .bind(event_types)
        .bind(event_versions)
        .bind(payloads)
        .bind(metadata)
        .bind(projects)
        .bind(access_versions)
        .bind(event_ids)
        .execute(connection)
        .await
        .map_err(persistence_error)?
        .rows_affected();
    if usize::try_from(inserted).ok() == Some(events.len()) {
        Ok(())
    } else if inserted == 0 && checked {
        // A project's access changed after the decision read it.
        access::found_stale();
        Err(PersistenceError::OptimisticLockError)
    } else {
        Err(unexpected(format!(
            "{inserted} of a commit's {} events were inserted",
            events.len()
        )))
    }
}

fn serialized_event(row: EventRow) -> Result<SerializedEvent, PersistenceError> {
    let (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) =
        row;
    let sequence = usize::try_from(sequence)
        .map_err(|_| unexpected(format!("stored sequence {sequence} is negative")))?;
    // An event stored in an older shape loads as the current one; one from a newer build is
    // an error, never a guess.
    let typed: AggregateType = aggregate_type
        .parse()
        .map_err(|error: domain::UnknownAggregateType| unexpected(error.to_string()))?;
    let (payload, event_version) = upcast(typed, &event_type, &event_version, payload)
        .map_err(|error| unexpected(error.to_string()))?;
    Ok(SerializedEvent::new(
        aggregate_id,
        sequence,
        aggregate_type,
        event_type,
        event_version.to_owned(),
        payload,
        metadata,
    ))
}

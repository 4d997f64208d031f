//! The fixture store of `fixtures/store-v1`: the events and write-side registry that the
//! command API of commit 1fa5aaf wrote through its HTTP routes (every event at version 1.0,
//! before tasks had priorities and labels). Committed as data, so that each build proves it
//! still reads what earlier builds wrote; `fixtures/store-v1/make.sh` says how it was made.
//!
//! Its story: alice (owner), bob and carol (members) in the project "Apollo 11" (carol was
//! removed at the end) with five tasks, and bob's archived project "Hermes" with one task. All
//! passwords are [`PASSWORD`].

use serde::Deserialize;
use uuid::Uuid;

/// The password of every fixture user.
pub const PASSWORD: &str = "fixture-password-1";

const EVENTS: &str = include_str!("../fixtures/store-v1/events.jsonl");
const REGISTRY: &str = include_str!("../fixtures/store-v1/registry.json");

/// One stored event of the fixture, every column but the ones PostgreSQL fills when inserting
/// (`global_position`, `transaction_id`).
#[derive(Debug, Clone, Deserialize)]
pub struct StoredEvent {
    /// `user`, `project` or `task`.
    pub aggregate_type: String,
    /// The aggregate id.
    pub aggregate_id: String,
    /// Its sequence.
    pub sequence: i64,
    /// The event type.
    pub event_type: String,
    /// The version it was written with.
    pub event_version: String,
    /// The payload, as stored.
    pub payload: serde_json::Value,
    /// The metadata, as stored.
    pub metadata: serde_json::Value,
    /// The event id.
    pub event_id: Uuid,
    /// When it was recorded.
    pub recorded_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Deserialize)]
struct Registry {
    users: Vec<serde_json::Value>,
    projects: Vec<serde_json::Value>,
    members: Vec<serde_json::Value>,
}

/// The fixture's events in the order they were committed.
///
/// # Panics
/// A line of the committed file is not an event (the file is broken).
#[must_use]
pub fn events() -> Vec<StoredEvent> {
    EVENTS
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| serde_json::from_str(line).expect("a fixture event"))
        .collect()
}

/// The id of the aggregate of type `aggregate_type` whose first event's payload has `field` =
/// `value` (e.g. the user whose `username` is `bob`, the task whose `title` is …).
///
/// # Panics
/// No such aggregate in the fixture.
#[must_use]
pub fn id_where(aggregate_type: &str, field: &str, value: &str) -> String {
    events()
        .into_iter()
        .find(|event| {
            event.aggregate_type == aggregate_type
                && event.sequence == 1
                && event
                    .payload
                    .as_object()
                    .and_then(|tagged| tagged.values().next())
                    .and_then(|fields| fields.get(field))
                    .and_then(serde_json::Value::as_str)
                    == Some(value)
        })
        .map(|event| event.aggregate_id)
        .unwrap_or_else(|| panic!("no {aggregate_type} with {field} = {value:?} in the fixture"))
}

/// Writes the fixture into `pool`'s (migrated, empty) database: the events in commit order,
/// one transaction each as they were committed, and the write-side registry.
///
/// # Errors
/// PostgreSQL refused a row (the database is not empty, or not migrated).
pub async fn load_store_v1(pool: &sqlx::PgPool) -> sqlx::Result<()> {
    let registry: Registry = serde_json::from_str(REGISTRY).expect("the fixture registry");
    // In this order: members refer to projects.
    for (table, rows) in [
        ("user_registry", registry.users),
        ("project_registry", registry.projects),
        ("project_members", registry.members),
    ] {
        for row in rows {
            // The columns the fixture has; a column added since takes its default, as it did
            // in the databases that were migrated.
            let columns = row
                .as_object()
                .map(|fields| fields.keys().cloned().collect::<Vec<_>>().join(", "))
                .expect("a registry row is a JSON object");
            sqlx::query(&format!(
                "INSERT INTO {table} ({columns}) \
                 SELECT {columns} FROM jsonb_populate_record(NULL::{table}, $1)"
            ))
            .bind(row)
            .execute(pool)
            .await?;
        }
    }
    for event in events() {
        sqlx::query(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, \
             payload, metadata, event_id, recorded_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&event.aggregate_type)
        .bind(&event.aggregate_id)
        .bind(event.sequence)
        .bind(&event.event_type)
        .bind(&event.event_version)
        .bind(&event.payload)
        .bind(&event.metadata)
        .bind(event.event_id)
        .bind(event.recorded_at)
        .execute(pool)
        .await?;
    }
    Ok(())
}

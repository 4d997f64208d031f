//! Schema evolution: stored events of an older shape are upcast to the current one when read.
//!
//! Every event type has a version, `"1.0"` until a change to its fields adds a step to
//! [`STEPS`]. A step is a pure function from the payload of version *n* to that of version
//! *n + 1*; reading an event runs every step from its stored version on ([`upcast`]), so an
//! event written by any earlier build reads as the current enum variant. Events are never
//! rewritten in the store.
//!
//! Who upcasts (ADR 0008): whoever turns a stored payload into a typed event. The command side
//! when it loads an aggregate (`event_store::PgEventRepository`), the projector when it
//! decodes an envelope (live, gap filling and replay), the query API's task history. The relay
//! publishes events to Kafka exactly as stored, so a consumer sees the version the event was
//! written with and upcasts with these same functions.
//!
//! A version this build does not know (an event written by a newer build) is refused with
//! [`UpcastError`], never guessed at: the projector parks the event, the command side fails the
//! command. An unknown event type passes through here and is refused when it is decoded.
//!
//! How to change an event: see the README's "Changing an event".

use serde_json::{Map, Value};

use crate::AggregateType;

/// The version of every event type before its first change.
pub const INITIAL_VERSION: &str = "1.0";

/// One step of the chain: `event_type` of `aggregate_type` from version `from` to `to`.
#[derive(Debug, Clone, Copy)]
pub struct Step {
    /// The aggregate the event belongs to.
    pub aggregate_type: AggregateType,
    /// The event type (the enum variant's name).
    pub event_type: &'static str,
    /// The version it reads.
    pub from: &'static str,
    /// The version it makes.
    pub to: &'static str,
    /// Rewrites the variant's fields (the object inside `{"<event_type>": {...}}`).
    pub upcast: fn(&mut Map<String, Value>),
}

/// Every step, in the order they were added.
pub const STEPS: &[Step] = &[Step {
    aggregate_type: AggregateType::Task,
    event_type: "TaskCreated",
    from: "1.0",
    to: "2.0",
    upcast: task_created_1_to_2,
}];

/// `TaskCreated` 1.0 → 2.0: tasks got a priority and labels; a task created before had
/// `normal` priority and no labels.
fn task_created_1_to_2(fields: &mut Map<String, Value>) {
    fields
        .entry("priority")
        .or_insert_with(|| Value::from("normal"));
    fields
        .entry("labels")
        .or_insert_with(|| Value::Array(Vec::new()));
}

/// Why a stored event cannot be upcast.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpcastError {
    /// A version no step leads from: written by a newer build, or corrupt.
    #[error(
        "{aggregate_type} event {event_type} has version {version}, which this build does not \
         read (it reads up to {current}); run a build that knows it"
    )]
    UnknownVersion {
        /// The aggregate type.
        aggregate_type: AggregateType,
        /// The event type.
        event_type: String,
        /// The stored version.
        version: String,
        /// The newest version this build reads.
        current: &'static str,
    },
    /// The payload is not `{"<event_type>": {...}}`, so a step cannot rewrite it.
    #[error("{aggregate_type} event {event_type} {version} has no {event_type} object to upcast")]
    Malformed {
        /// The aggregate type.
        aggregate_type: AggregateType,
        /// The event type.
        event_type: String,
        /// The stored version.
        version: String,
    },
}

fn step_from(
    aggregate_type: AggregateType,
    event_type: &str,
    version: &str,
) -> Option<&'static Step> {
    STEPS.iter().find(|step| {
        step.aggregate_type == aggregate_type
            && step.event_type == event_type
            && step.from == version
    })
}

/// The version this build writes `event_type` with: the end of its chain.
#[must_use]
pub fn current_version(aggregate_type: AggregateType, event_type: &str) -> &'static str {
    let mut version = INITIAL_VERSION;
    while let Some(step) = step_from(aggregate_type, event_type, version) {
        version = step.to;
    }
    version
}

/// The payload and version of a stored event, upcast to the current version of its type. An
/// event at the current version comes back unchanged.
///
/// # Errors
/// [`UpcastError`]: a version no step leads from, or a payload a step cannot rewrite.
pub fn upcast(
    aggregate_type: AggregateType,
    event_type: &str,
    version: &str,
    mut payload: Value,
) -> Result<(Value, &'static str), UpcastError> {
    let current = current_version(aggregate_type, event_type);
    let mut at = version;
    while at != current {
        let Some(step) = step_from(aggregate_type, event_type, at) else {
            return Err(UpcastError::UnknownVersion {
                aggregate_type,
                event_type: event_type.to_owned(),
                version: version.to_owned(),
                current,
            });
        };
        let fields = payload
            .get_mut(event_type)
            .and_then(Value::as_object_mut)
            .ok_or_else(|| UpcastError::Malformed {
                aggregate_type,
                event_type: event_type.to_owned(),
                version: version.to_owned(),
            })?;
        (step.upcast)(fields);
        at = step.to;
    }
    Ok((payload, current))
}

#[cfg(test)]
mod tests;

//! The event envelope on Kafka (DESIGN.md, "Event envelope on Kafka").

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One event, as `event_store::relay::Envelope` serializes it. `payload` is the domain event,
/// externally tagged (`{"TaskCreated": {...}}` or `"TaskDeleted"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// The event's unique id.
    pub event_id: Uuid,
    /// `"user"`, `"project"` or `"task"`.
    pub aggregate_type: String,
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
    pub metadata: EnvelopeMetadata,
    /// The domain event.
    pub payload: serde_json::Value,
}

/// Who caused an event and in which request; every field may be missing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvelopeMetadata {
    /// The authenticated user who sent the command.
    #[serde(default)]
    pub user_id: Option<String>,
    /// The HTTP request id.
    #[serde(default)]
    pub request_id: Option<String>,
    /// Ties together everything one user action caused.
    #[serde(default)]
    pub correlation_id: Option<String>,
    /// The message that directly caused the command.
    #[serde(default)]
    pub causation_id: Option<String>,
}

impl EnvelopeMetadata {
    /// Reads the `metadata` column of the `events` table (a JSON object of strings); anything
    /// else is ignored, so every stored event stays readable.
    #[must_use]
    pub fn from_stored(value: &serde_json::Value) -> Self {
        let field = |name: &str| {
            value
                .get(name)
                .and_then(serde_json::Value::as_str)
                .filter(|text| !text.is_empty())
                .map(str::to_owned)
        };
        Self {
            user_id: field("user_id"),
            request_id: field("request_id"),
            correlation_id: field("correlation_id"),
            causation_id: field("causation_id"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_what_the_relay_publishes() {
        let json = serde_json::json!({
            "event_id": "0b9a3f44-5d6e-4f7a-8b9c-0d1e2f3a4b5c",
            "aggregate_type": "task",
            "aggregate_id": "8d7c6b5a-4f3e-4d2c-9b1a-0f9e8d7c6b5a",
            "sequence": 2,
            "global_position": 17,
            "event_type": "TaskDeleted",
            "event_version": "1.0",
            "occurred_at": "2026-11-23T10:00:00.123456Z",
            "metadata": {"user_id": null, "request_id": "r", "correlation_id": "c", "causation_id": null},
            "payload": "TaskDeleted"
        });
        let envelope: Envelope = serde_json::from_value(json).expect("decodes");
        assert_eq!(envelope.sequence, 2);
        assert_eq!(envelope.metadata.request_id.as_deref(), Some("r"));
        assert_eq!(envelope.metadata.user_id, None);
    }

    #[test]
    fn stored_metadata_is_read_leniently() {
        let stored = serde_json::json!({"user_id": "u", "request_id": "", "other": 3});
        let metadata = EnvelopeMetadata::from_stored(&stored);
        assert_eq!(metadata.user_id.as_deref(), Some("u"));
        assert_eq!(metadata.request_id, None);
    }
}

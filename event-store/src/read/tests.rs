//! The Kafka wire format of [`super::Envelope`], pinned, and how leniently it is read.

use super::*;

/// The envelope's JSON is the wire format on Kafka: consumers built against it must keep
/// reading what the relay publishes. This pins it byte for byte.
#[test]
fn the_envelope_on_kafka_is_pinned() {
    let envelope = Envelope {
        event_id: Uuid::parse_str("0b9a3f44-5d6e-4f7a-8b9c-0d1e2f3a4b5c").expect("uuid"),
        aggregate_type: AggregateType::Task,
        aggregate_id: "8d7c6b5a-4f3e-4d2c-9b1a-0f9e8d7c6b5a".to_owned(),
        sequence: 2,
        global_position: 17,
        event_type: "TaskStatusChanged".to_owned(),
        event_version: "1.0".to_owned(),
        occurred_at: "2026-11-23T10:00:00.123456Z".parse().expect("time"),
        metadata: Metadata {
            user_id: Some(Uuid::parse_str("11111111-2222-4333-8444-555555555555").expect("uuid")),
            request_id: "req-1".to_owned(),
            correlation_id: "corr-1".to_owned(),
            causation_id: None,
            action: None,
        },
        payload: serde_json::json!({"TaskStatusChanged": {"status": "done"}}),
    };
    let wire = concat!(
        r#"{"event_id":"0b9a3f44-5d6e-4f7a-8b9c-0d1e2f3a4b5c","aggregate_type":"task","#,
        r#""aggregate_id":"8d7c6b5a-4f3e-4d2c-9b1a-0f9e8d7c6b5a","sequence":2,"#,
        r#""global_position":17,"event_type":"TaskStatusChanged","event_version":"1.0","#,
        r#""occurred_at":"2026-11-23T10:00:00.123456Z","#,
        r#""metadata":{"user_id":"11111111-2222-4333-8444-555555555555","#,
        r#""request_id":"req-1","correlation_id":"corr-1","causation_id":null},"#,
        r#""payload":{"TaskStatusChanged":{"status":"done"}}}"#
    );
    assert_eq!(serde_json::to_string(&envelope).expect("serializes"), wire);
    assert_eq!(
        serde_json::from_str::<Envelope>(wire).expect("decodes"),
        envelope
    );
}

#[test]
fn an_envelope_without_metadata_ids_still_decodes() {
    // Envelopes parked by earlier versions wrote absent ids as null.
    let json = serde_json::json!({
        "event_id": "0b9a3f44-5d6e-4f7a-8b9c-0d1e2f3a4b5c",
        "aggregate_type": "user",
        "aggregate_id": "8d7c6b5a-4f3e-4d2c-9b1a-0f9e8d7c6b5a",
        "sequence": 1,
        "global_position": 3,
        "event_type": "UserDeleted",
        "event_version": "1.0",
        "occurred_at": "2026-11-23T10:00:00Z",
        "metadata": {"user_id": null, "request_id": null, "correlation_id": "c"},
        "payload": "UserDeleted"
    });
    let envelope: Envelope = serde_json::from_value(json).expect("decodes");
    assert_eq!(envelope.aggregate_type, AggregateType::User);
    assert_eq!(envelope.metadata.request_id, "");
    assert_eq!(envelope.metadata.correlation_id, "c");
}

#[test]
fn an_unknown_aggregate_type_is_refused() {
    let json = serde_json::json!({
        "event_id": "0b9a3f44-5d6e-4f7a-8b9c-0d1e2f3a4b5c",
        "aggregate_type": "comment",
        "aggregate_id": "x", "sequence": 1, "global_position": 3,
        "event_type": "CommentAdded", "event_version": "1.0",
        "occurred_at": "2026-11-23T10:00:00Z", "payload": {}
    });
    assert!(serde_json::from_value::<Envelope>(json).is_err());
}

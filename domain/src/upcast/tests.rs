//! The upcasting chain: versions, refusals, and the property that an upcast old event applies
//! as the current event with the new fields at their defaults.

use std::collections::BTreeSet;

use chrono::NaiveDate;
use cqrs_es::Aggregate;
use proptest::prelude::*;
use serde_json::{Value, json};
use uuid::Uuid;

use super::*;
use crate::{Task, TaskEvent, TaskPriority, TaskStatus};

/// A `TaskCreated` payload as builds before 2.0 wrote it.
fn created_1_0(
    assignee: Option<Uuid>,
    due: Option<NaiveDate>,
    status: TaskStatus,
    title: &str,
) -> Value {
    json!({ "TaskCreated": {
        "task_id": Uuid::from_u128(7),
        "project_id": Uuid::from_u128(8),
        "title": title,
        "description": "as it was",
        "assignee_id": assignee,
        "due_date": due,
        "status": status,
        "created_by": Uuid::from_u128(9),
    }})
}

#[test]
fn every_event_type_but_task_created_is_still_at_1_0() {
    assert_eq!(current_version(AggregateType::Task, "TaskCreated"), "2.0");
    for (aggregate_type, event_type) in [
        (AggregateType::Task, "TaskStatusChanged"),
        (AggregateType::Project, "ProjectCreated"),
        (AggregateType::User, "UserRegistered"),
    ] {
        assert_eq!(current_version(aggregate_type, event_type), INITIAL_VERSION);
    }
}

#[test]
fn a_1_0_task_created_gets_normal_priority_and_no_labels() {
    let (payload, version) = upcast(
        AggregateType::Task,
        "TaskCreated",
        "1.0",
        created_1_0(None, None, TaskStatus::Pending, "Old"),
    )
    .expect("upcasts");
    assert_eq!(version, "2.0");
    assert_eq!(payload["TaskCreated"]["priority"], "normal");
    assert_eq!(payload["TaskCreated"]["labels"], json!([]));
    assert_eq!(payload["TaskCreated"]["title"], "Old");
}

#[test]
fn an_event_at_its_current_version_comes_back_unchanged() {
    let stored = json!({ "TaskStatusChanged": { "from": "pending", "to": "done" } });
    let (payload, version) = upcast(
        AggregateType::Task,
        "TaskStatusChanged",
        "1.0",
        stored.clone(),
    )
    .expect("current");
    assert_eq!((payload, version), (stored, "1.0"));
    let unit = json!("TaskDeleted");
    assert_eq!(
        upcast(AggregateType::Task, "TaskDeleted", "1.0", unit.clone()),
        Ok((unit, "1.0"))
    );
}

#[test]
fn a_version_from_a_newer_build_is_refused_not_guessed() {
    let refused = upcast(
        AggregateType::Task,
        "TaskCreated",
        "3.0",
        created_1_0(None, None, TaskStatus::Pending, "From the future"),
    )
    .expect_err("refused");
    assert_eq!(
        refused,
        UpcastError::UnknownVersion {
            aggregate_type: AggregateType::Task,
            event_type: "TaskCreated".to_owned(),
            version: "3.0".to_owned(),
            current: "2.0",
        }
    );
    assert!(refused.to_string().contains("reads up to 2.0"), "{refused}");
    assert!(
        upcast(
            AggregateType::Task,
            "TaskStatusChanged",
            "2.0",
            json!({ "TaskStatusChanged": {} })
        )
        .is_err()
    );
}

#[test]
fn a_payload_without_its_variant_is_malformed() {
    assert_eq!(
        upcast(
            AggregateType::Task,
            "TaskCreated",
            "1.0",
            json!({ "TaskEdited": {} })
        ),
        Err(UpcastError::Malformed {
            aggregate_type: AggregateType::Task,
            event_type: "TaskCreated".to_owned(),
            version: "1.0".to_owned(),
        })
    );
}

#[test]
fn the_chain_has_one_step_from_each_version_and_ends() {
    for step in STEPS {
        assert_eq!(
            STEPS
                .iter()
                .filter(|other| other.aggregate_type == step.aggregate_type
                    && other.event_type == step.event_type
                    && other.from == step.from)
                .count(),
            1,
            "{step:?}"
        );
        assert_ne!(step.from, step.to);
    }
}

proptest! {
    /// Upcasting a 1.0 `TaskCreated` and applying it equals applying the 2.0 event with the
    /// new fields at their defaults.
    #[test]
    fn upcasting_then_applying_equals_applying_the_defaults(
        assignee in proptest::option::of(any::<u128>().prop_map(Uuid::from_u128)),
        due in proptest::option::of((1_u32..=28).prop_map(|d| NaiveDate::from_ymd_opt(2027, 2, d).expect("date"))),
        status in proptest::sample::select(TaskStatus::ALL.to_vec()),
        title in "[A-Za-z][A-Za-z ]{0,40}",
    ) {
        let stored = created_1_0(assignee, due, status, &title);
        let (payload, _) = upcast(AggregateType::Task, "TaskCreated", "1.0", stored.clone())
            .expect("upcasts");
        let upcast_event: TaskEvent = serde_json::from_value(payload).expect("decodes as 2.0");

        let mut with_defaults = stored;
        let fields = with_defaults["TaskCreated"].as_object_mut().expect("object");
        fields.insert("priority".to_owned(), serde_json::to_value(TaskPriority::default()).expect("json"));
        fields.insert("labels".to_owned(), serde_json::to_value(BTreeSet::<crate::Label>::new()).expect("json"));
        let default_event: TaskEvent = serde_json::from_value(with_defaults).expect("decodes");

        let mut upcast_task = Task::default();
        upcast_task.apply(upcast_event);
        let mut default_task = Task::default();
        default_task.apply(default_event);
        prop_assert_eq!(&upcast_task, &default_task);
        let state = upcast_task.state().expect("created");
        prop_assert_eq!(state.priority, TaskPriority::Normal);
        prop_assert!(state.labels.is_empty());
    }
}

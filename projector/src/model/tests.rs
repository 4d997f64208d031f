//! Property and unit tests of the fold in memory ([`super::Model`]).

use std::collections::VecDeque;

use proptest::prelude::*;

use super::*;
use test_support::workload::{Rng, workload};

fn envelopes(seed: u64, target: usize) -> Vec<Envelope> {
    workload(seed, 6, target)
        .iter()
        .enumerate()
        .map(|(index, event)| event.envelope(i64::try_from(index).unwrap_or(0) + 1))
        .collect()
}

/// Everything a reader can see, in a comparable form.
fn view(model: &Model, notifications: &[NotificationView]) -> String {
    let mut out = Vec::new();
    let mut ids: Vec<&String> = model.users.keys().collect();
    ids.sort();
    for id in ids {
        out.push(format!("{:?}", model.user(id)));
        out.push(format!("{:?}", model.user_stats(id)));
    }
    let mut ids: Vec<&String> = model.projects.keys().collect();
    ids.sort();
    for id in ids {
        out.push(format!("{:?}", model.project(id)));
        out.push(format!("{:?}", model.project_stats(id)));
    }
    let mut ids: Vec<&String> = model.tasks.keys().collect();
    ids.sort();
    for id in ids {
        out.push(format!("{:?}", model.task(id)));
    }
    let mut positions: Vec<_> = model
        .stats
        .iter()
        .map(|(id, stats)| (id.clone(), stats.position))
        .collect();
    positions.sort();
    out.push(format!("{positions:?}"));
    let mut notes: Vec<String> = notifications.iter().map(|n| format!("{n:?}")).collect();
    notes.sort();
    out.extend(notes);
    out.join("\n")
}

fn in_order(events: &[Envelope]) -> String {
    let mut model = Model::new();
    for envelope in events {
        assert!(
            matches!(model.apply(envelope), Outcome::Applied),
            "{envelope:?}"
        );
    }
    let notifications = model.take_notifications();
    view(&model, &notifications)
}

#[test]
fn a_workload_applies_cleanly_and_computes_stats() {
    let events = envelopes(7, 400);
    let mut model = Model::new();
    for envelope in &events {
        assert_eq!(model.apply(envelope), Outcome::Applied);
    }
    let counted: i64 = model
        .projects
        .keys()
        .flat_map(|id| model.project_stats(id))
        .filter(|(field, _)| field.starts_with("status:"))
        .map(|(_, count)| count)
        .sum();
    let live_tasks = model.tasks.values().filter(|t| !t.deleted).count();
    assert_eq!(counted, i64::try_from(live_tasks).expect("small"));
    assert!(model.task_ids().count() > 10);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    /// The statistics moved by deltas equal a recount of the tasks, for every project and
    /// assignee, after any workload.
    #[test]
    fn deltas_equal_a_recount(seed in 0_u64..10_000) {
        let mut model = Model::new();
        for envelope in &envelopes(seed, 300) {
            prop_assert_eq!(model.apply(envelope), Outcome::Applied);
        }
        for project in model.projects.keys() {
            let tasks = model.tasks.values().filter(|t| &t.project_id == project);
            prop_assert_eq!(model.project_stats(project), projection::project_stats(tasks));
        }
        for user in model.users.keys() {
            let tasks = model
                .tasks
                .values()
                .filter(|t| t.assignee_id.as_deref() == Some(user.as_str()));
            prop_assert_eq!(model.user_stats(user), projection::user_stats(tasks));
        }
    }
}

#[test]
fn a_gap_is_reported_and_a_poison_event_parks_only_its_aggregate() {
    let events = envelopes(3, 200);
    let mut model = Model::new();
    let task = events
        .iter()
        .find(|e| e.aggregate_type == AggregateType::Task)
        .expect("a task event")
        .clone();
    let mut poison = task.clone();
    poison.payload = serde_json::json!({ "TaskCreated": { "nonsense": true } });
    for envelope in &events {
        let envelope = if envelope.event_id == task.event_id {
            &poison
        } else {
            envelope
        };
        let outcome = model.apply(envelope);
        if envelope.aggregate_id == task.aggregate_id && envelope.sequence > 1 {
            assert_eq!(outcome, Outcome::Held);
        } else if envelope.event_id == task.event_id {
            assert!(matches!(outcome, Outcome::Parked(_)), "{outcome:?}");
        } else {
            assert_eq!(outcome, Outcome::Applied);
        }
    }
    assert_eq!(model.parked.len(), 1);
    let mut fresh = Model::new();
    let later = events
        .iter()
        .find(|e| e.aggregate_type == AggregateType::User)
        .expect("a user event");
    let mut gap = later.clone();
    gap.sequence = 3;
    assert_eq!(fresh.apply(&gap), Outcome::Gap { version: 0 });
    // Dropping the poison event lets the rest through.
    let mut dropped = Model::new();
    dropped.dropped.insert((
        poison.aggregate_type,
        poison.aggregate_id.clone(),
        poison.sequence,
    ));
    for envelope in &events {
        let envelope = if envelope.event_id == task.event_id {
            &poison
        } else {
            envelope
        };
        let _outcome = dropped.apply(envelope);
    }
    assert!(!dropped.tasks.contains_key(&poison.aggregate_id));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Applying events one by one equals applying them with redeliveries, duplicates and
    /// any interleaving of the aggregates (per-aggregate order kept, as Kafka keeps it).
    #[test]
    fn redeliveries_and_cross_topic_order_change_nothing(seed in 0_u64..10_000, noise in 0_u64..10_000) {
        let events = envelopes(seed, 250);
        let expected = in_order(&events);

        let mut streams: BTreeMap<AggregateKey, VecDeque<Envelope>> = BTreeMap::new();
        for envelope in &events {
            streams
                .entry((envelope.aggregate_type, envelope.aggregate_id.clone()))
                .or_default()
                .push_back(envelope.clone());
        }
        let mut rng = Rng::new(noise);
        let mut model = Model::new();
        let mut seen: Vec<Envelope> = Vec::new();
        let mut keys: Vec<AggregateKey> = streams.keys().cloned().collect();
        // Users first then projects then tasks would be the global order; any other
        // interleaving must give the same result, except that an aggregate's own events
        // stay in order.
        while !keys.is_empty() {
            let index = rng.below(keys.len());
            let key = keys[index].clone();
            let Some(envelope) = streams.get_mut(&key).and_then(VecDeque::pop_front) else {
                keys.swap_remove(index);
                continue;
            };
            let outcome = model.apply(&envelope);
            prop_assert_eq!(outcome, Outcome::Applied);
            seen.push(envelope.clone());
            if rng.below(3) == 0 {
                prop_assert_eq!(model.apply(&envelope), Outcome::Duplicate);
            }
            if rng.below(4) == 0 {
                let old = seen[rng.below(seen.len())].clone();
                prop_assert_eq!(model.apply(&old), Outcome::Duplicate);
            }
        }
        let notifications = model.take_notifications();
        prop_assert_eq!(view(&model, &notifications), expected);
    }
}

#[test]
fn events_of_an_older_version_are_upcast_and_unknown_ones_park() {
    let events = envelopes(4, 60);
    let created = events
        .iter()
        .find(|e| e.event_type == "TaskCreated")
        .expect("a task creation")
        .clone();
    // As a build before priorities wrote it: version 1.0, no priority, no labels.
    let mut old = created.clone();
    old.event_version = "1.0".to_owned();
    let fields = old.payload["TaskCreated"]
        .as_object_mut()
        .expect("an object");
    fields.remove("priority");
    fields.remove("labels");
    let mut model = Model::new();
    assert_eq!(model.apply(&old), Outcome::Applied);
    let task = model.task(&old.aggregate_id).expect("projected");
    assert_eq!(
        (
            task.priority.as_str(),
            task.priority_rank,
            task.labels.len()
        ),
        ("normal", Some(1), 0)
    );

    // From a newer build, or a type this build does not know: parked, never skipped.
    for (version, event_type) in [("3.0", "TaskCreated"), ("1.0", "TaskArchived")] {
        let mut unknown = created.clone();
        unknown.event_version = version.to_owned();
        unknown.event_type = event_type.to_owned();
        if event_type != "TaskCreated" {
            unknown.payload = serde_json::json!({ event_type: {} });
        }
        let mut model = Model::new();
        let outcome = model.apply(&unknown);
        assert!(
            matches!(&outcome, Outcome::Parked(reason) if reason.contains(version) || reason.contains(event_type)),
            "{version} {event_type}: {outcome:?}"
        );
        assert_eq!(model.parked.len(), 1);
        assert!(model.task(&unknown.aggregate_id).is_none());
    }
}

#[test]
fn attachments_are_listed_in_the_order_added_and_leave_when_removed() {
    let events = envelopes(4, 60);
    let created = events
        .iter()
        .find(|e| e.event_type == "TaskCreated")
        .expect("a task creation")
        .clone();
    let next = |sequence: i64, event: domain::TaskEvent| {
        let mut envelope = created.clone();
        let payload = serde_json::to_value(&event).expect("JSON");
        envelope.sequence = sequence;
        envelope.event_type = payload
            .as_object()
            .and_then(|tagged| tagged.keys().next().cloned())
            .expect("externally tagged");
        envelope.event_version = "1.0".to_owned();
        envelope.payload = payload;
        envelope
    };
    let added = |n: u128| domain::TaskEvent::AttachmentAdded {
        attachment: domain::Attachment {
            attachment_id: uuid::Uuid::from_u128(n),
            file_name: domain::FileName::clean(&format!("f{n}.txt")).expect("name"),
            content_type: "text/plain".to_owned(),
            size: 10,
            sha256: "ab".repeat(32),
            storage_key: format!("tasks/t/{n}"),
        },
        uploaded_by: uuid::Uuid::from_u128(9),
    };
    let mut model = Model::new();
    assert_eq!(model.apply(&created), Outcome::Applied);
    assert_eq!(model.apply(&next(2, added(1))), Outcome::Applied);
    assert_eq!(model.apply(&next(3, added(2))), Outcome::Applied);
    let listed = |model: &Model| -> Vec<String> {
        model
            .task(&created.aggregate_id)
            .expect("projected")
            .attachments
            .iter()
            .map(|a| a.file_name.clone())
            .collect()
    };
    assert_eq!(listed(&model), ["f1.txt", "f2.txt"]);
    let removed = domain::TaskEvent::AttachmentRemoved {
        attachment_id: uuid::Uuid::from_u128(1),
        storage_key: "tasks/t/1".to_owned(),
    };
    assert_eq!(model.apply(&next(4, removed)), Outcome::Applied);
    assert_eq!(listed(&model), ["f2.txt"]);
    let task = model.task(&created.aggregate_id).expect("projected");
    assert_eq!(
        task.attachments[0].uploaded_by,
        uuid::Uuid::from_u128(9).to_string()
    );
    assert_eq!(task.version, 4);
}

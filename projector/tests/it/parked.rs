//! Poison events: parked, held behind, retried, dropped.

use mongodb::bson::doc;
use read_model::documents::TaskView;
use read_model::{Generation, names};
use tasktrail_projector::parked::{self, Retried};
use test_support::workload::{WorkloadEvent, workload};

use crate::helpers::{World, seed, start_projector, start_relay, wait_for_topics};

/// A task of its own: a valid creation (copied from `template`), a garbage event, an edit.
fn poisoned_task(template: &WorkloadEvent) -> Vec<WorkloadEvent> {
    let id = uuid::Uuid::new_v4();
    let mut payload = template.payload.clone();
    payload["TaskCreated"]["task_id"] = serde_json::json!(id.to_string());
    let event = |sequence: i64, event_type: &str, payload: serde_json::Value| WorkloadEvent {
        aggregate_type: domain::AggregateType::Task,
        aggregate_id: id,
        sequence,
        event_type: event_type.to_owned(),
        payload,
        actor: template.actor,
    };
    vec![
        event(1, "TaskCreated", payload),
        event(
            2,
            "TaskExploded",
            serde_json::json!({ "TaskExploded": { "boom": 1 } }),
        ),
        event(
            3,
            "TaskEdited",
            serde_json::json!({ "TaskEdited": { "title": "After the poison" } }),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_poison_event_parks_only_its_aggregate_and_retry_and_drop_work() {
    let world = World::new().await;
    let events = workload(31, 8, 300);
    let template = events
        .iter()
        .find(|e| e.event_type == "TaskCreated")
        .expect("a creation");
    let first = poisoned_task(template);
    let second = poisoned_task(template);
    seed(world.pool(), &events).await;
    seed(world.pool(), &first).await;
    seed(world.pool(), &second).await;
    let relay = start_relay(&world);
    wait_for_topics(&world).await;
    let projector = start_projector(&world).await;
    // Everything else converges (a fresh replay parks the same two aggregates).
    world.wait_converged().await;
    let all = parked::list(&world.store.db).await.expect("list");
    assert_eq!(all.len(), 2, "{all:?}");
    assert!(
        all.iter()
            .all(|p| p.sequence == 2 && p.event_type == "TaskExploded")
    );
    assert_eq!(projector.metric("tasktrail_projector_parked").await, 2.0);

    let generation = Generation::active(&world.store.db).await.expect("active");
    let tasks = world
        .store
        .db
        .collection::<TaskView>(&names::tasks(generation));
    let version = |id: uuid::Uuid| {
        let tasks = tasks.clone();
        async move {
            tasks
                .find_one(doc! { "_id": id.to_string() })
                .await
                .expect("find")
                .map(|t| (t.version, t.title))
        }
    };
    assert_eq!(version(first[0].aggregate_id).await.map(|v| v.0), Some(1));

    // Retry without a fix: still parked.
    let again = parked::retry(&world.store, &first[0].aggregate_id.to_string())
        .await
        .expect("retry");
    assert!(matches!(again, Retried::StillParked(_)), "{again:?}");
    // Fix the stored event (as an upcaster would), retry: applied.
    sqlx::query("UPDATE events SET payload = $1 WHERE aggregate_id = $2 AND sequence = 2")
        .bind(serde_json::json!({ "TaskDueDateChanged": { "due_date": null } }))
        .bind(first[0].aggregate_id.to_string())
        .execute(world.pool())
        .await
        .expect("fix");
    let fixed = parked::retry(&world.store, &first[0].aggregate_id.to_string())
        .await
        .expect("retry");
    assert_eq!(fixed, Retried::Applied(2));
    assert_eq!(
        version(first[0].aggregate_id).await,
        Some((3, "After the poison".to_owned()))
    );

    // Drop: the poison event is skipped, the one behind it applied.
    let dropped = parked::drop_event(&world.store, &second[0].aggregate_id.to_string())
        .await
        .expect("drop");
    assert_eq!(dropped, Retried::Applied(1));
    assert_eq!(
        version(second[0].aggregate_id).await,
        Some((3, "After the poison".to_owned()))
    );
    assert!(
        parked::list(&world.store.db)
            .await
            .expect("list")
            .is_empty()
    );
    // A fresh replay agrees (it honours the dropped event and reads the fixed one).
    world.wait_converged().await;
    projector.stop().await;
    relay.stop().await;
    world.cleanup().await;
}

#[tokio::test]
async fn events_held_behind_a_parked_one_are_listed_with_it() {
    let world = World::new().await;
    let events = workload(5, 2, 20);
    let poison = events[0].envelope(1);
    let behind = [events[1].envelope(2), events[2].envelope(3)];
    let key = (poison.aggregate_type, poison.aggregate_id.clone());
    parked::park(
        &world.store.db,
        &poison,
        "cannot apply",
        vec![behind[0].clone()],
    )
    .await
    .expect("park");
    parked::hold(&world.store.db, &key, &behind[1..])
        .await
        .expect("hold");
    let listed = parked::list(&world.store.db).await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].held, behind.to_vec());
}

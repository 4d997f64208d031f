//! `PgEventRepository` directly: reads, streams, the optimistic lock, unsupported snapshots.

use std::collections::HashMap;

use cqrs_es::persist::{PersistedEventRepository as _, PersistenceError, SerializedEvent};
use domain::{Role, User};
use event_store::PgEventRepository;
use serde_json::json;
use test_support::TestDatabase;
use uuid::Uuid;

use crate::helpers::Buses;

#[tokio::test]
async fn events_are_read_and_streamed_in_order() {
    let (db, buses) = Buses::fresh().await;
    let ids = [Uuid::new_v4(), Uuid::new_v4()];
    buses
        .register(ids[0], "first", "first@example.com", Role::User)
        .await;
    buses
        .register(ids[1], "second", "second@example.com", Role::User)
        .await;
    buses
        .users
        .execute(
            &ids[0].to_string(),
            domain::UserCommand::Deactivate {
                actor: domain::Actor::user(ids[0]),
            },
            crate::helpers::metadata(None),
            None,
        )
        .await
        .expect("deactivate");
    let repository = PgEventRepository::new(db.pool.clone()).with_stream_channel_size(1);

    let events = repository
        .get_events::<User>(&ids[0].to_string())
        .await
        .expect("events");
    let types: Vec<_> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(types, ["UserRegistered", "UserDeactivated"]);
    assert_eq!(events[1].payload, json!("UserDeactivated"));

    let last = repository
        .get_last_events::<User>(&ids[0].to_string(), 1)
        .await
        .expect("last events");
    assert_eq!(last.len(), 1);
    assert_eq!(last[0].sequence, 2);

    let mut stream = repository
        .stream_events::<User>(&ids[0].to_string())
        .await
        .expect("stream");
    let mut streamed = Vec::new();
    while let Some(event) = stream.next::<User>(&[]).await {
        streamed.push(event.expect("event").sequence);
    }
    assert_eq!(streamed, [1, 2]);

    let mut all = repository
        .stream_all_events::<User>()
        .await
        .expect("stream");
    let mut order = Vec::new();
    while let Some(event) = all.next::<User>(&[]).await {
        let event = event.expect("event");
        order.push((event.aggregate_id, event.sequence));
    }
    assert_eq!(
        order,
        [
            (ids[0].to_string(), 1),
            (ids[1].to_string(), 1),
            (ids[0].to_string(), 2)
        ],
        "global order"
    );
}

fn raw_event(aggregate_id: &str, sequence: usize) -> SerializedEvent {
    SerializedEvent::new(
        aggregate_id.to_owned(),
        sequence,
        "probe".to_owned(),
        "Probed".to_owned(),
        "1.0".to_owned(),
        json!({"Probed": {"n": sequence}}),
        json!(HashMap::from([("request_id", "r")])),
    )
}

#[tokio::test]
async fn a_duplicate_sequence_is_an_optimistic_lock_error_and_rolls_back_the_commit() {
    let db = TestDatabase::new().await;
    let repository = PgEventRepository::new(db.pool.clone());
    repository
        .persist::<User>(&[raw_event("a", 1), raw_event("a", 2)], None)
        .await
        .expect("first commit");

    let result = repository
        .persist::<User>(&[raw_event("a", 3), raw_event("a", 2)], None)
        .await;
    assert!(
        matches!(result, Err(PersistenceError::OptimisticLockError)),
        "{result:?}"
    );
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&db.pool)
        .await
        .expect("count");
    assert_eq!(count, 2, "sequence 3 was rolled back with the rest");
}

#[tokio::test]
async fn snapshots_are_not_supported() {
    let db = TestDatabase::new().await;
    let repository = PgEventRepository::new(db.pool.clone());
    assert_eq!(
        repository
            .get_snapshot::<User>("a")
            .await
            .expect("no error"),
        None
    );
    let result = repository
        .persist::<User>(&[raw_event("a", 1)], Some(("a".to_owned(), json!({}), 1)))
        .await;
    assert!(
        matches!(result, Err(PersistenceError::UnknownError(_))),
        "{result:?}"
    );
}

#[tokio::test]
async fn an_event_stored_in_an_older_shape_loads_upcast_and_a_newer_one_fails_the_command() {
    let (db, buses) = Buses::fresh().await;
    let (owner, project, task) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    buses.register_user(owner, "olga").await;
    buses.create_project(project, owner).await;
    buses.create_task(task, project, owner).await;
    // As a build before priorities wrote it.
    sqlx::query(
        "UPDATE events SET event_version = '1.0', \
         payload = json_build_object('TaskCreated', \
             (payload::jsonb -> 'TaskCreated') - 'priority' - 'labels') \
         WHERE aggregate_id = $1 AND sequence = 1",
    )
    .bind(task.to_string())
    .execute(&db.pool)
    .await
    .expect("rewrite as 1.0");
    let set = |priority| domain::TaskCommand::SetPriority {
        actor: domain::Actor::user(owner),
        priority,
    };
    // A fresh bus: nothing cached, the aggregate is loaded from the rows.
    let fresh = Buses::new(&db.pool);
    let committed = fresh
        .tasks
        .execute(
            &task.to_string(),
            set(domain::TaskPriority::Normal),
            crate::helpers::metadata(Some(owner)),
            None,
        )
        .await
        .expect("the upcast state decides");
    assert_eq!(
        committed.events, 0,
        "an upcast 1.0 task is already `normal`"
    );

    // From a newer build: the command fails loudly, nothing is written.
    sqlx::query("UPDATE events SET event_version = '3.0' WHERE aggregate_id = $1")
        .bind(task.to_string())
        .execute(&db.pool)
        .await
        .expect("rewrite as 3.0");
    let refused = Buses::new(&db.pool)
        .tasks
        .execute(
            &task.to_string(),
            set(domain::TaskPriority::High),
            crate::helpers::metadata(Some(owner)),
            None,
        )
        .await
        .expect_err("a version this build does not read");
    assert!(
        matches!(&refused, event_store::CommandError::Internal(message) if message.contains("3.0")),
        "{refused:?}"
    );
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE aggregate_id = $1")
        .bind(task.to_string())
        .fetch_one(&db.pool)
        .await
        .expect("count");
    assert_eq!(count, 1);
}

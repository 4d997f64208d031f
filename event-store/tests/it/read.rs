//! `event_store::read` against the real PostgreSQL: what each read returns for events committed
//! through the command buses.

use domain::AggregateType;
use event_store::read::{self, Position};
use test_support::{EVENTUALLY, eventually};
use uuid::Uuid;

use crate::helpers::Buses;

#[tokio::test]
async fn every_read_sees_the_committed_events_as_envelopes() {
    let (db, buses) = Buses::fresh().await;
    let owner = Uuid::new_v4();
    buses.register_user(owner, "reader").await;
    let project = Uuid::new_v4();
    buses.create_project(project, owner).await;
    let task = Uuid::new_v4();
    buses.create_task(task, project, owner).await;
    let pool = &db.pool;

    // In commit order from the start: user, project, task, each with its position. A read in
    // commit order stops below the oldest transaction still open in the cluster (another test's,
    // perhaps), so the events may take a moment to become readable; then they stay readable.
    let all = eventually(
        EVENTUALLY,
        "the three events readable in commit order",
        || async {
            let all = read::after(pool, &Position::start(), 100)
                .await
                .expect("read in commit order");
            (all.len() == 3).then_some(all)
        },
    )
    .await;
    let types: Vec<AggregateType> = all.iter().map(|(_, e)| e.aggregate_type).collect();
    assert_eq!(
        types,
        [
            AggregateType::User,
            AggregateType::Project,
            AggregateType::Task
        ]
    );
    assert!(all.windows(2).all(|pair| pair[0].0 != pair[1].0));
    let (first, user_created) = &all[0];
    assert_eq!(user_created.event_type, "UserRegistered");
    assert!(!user_created.metadata.request_id.is_empty());
    assert_eq!(
        all[1].1.metadata.user_id,
        Some(owner),
        "the project's creator"
    );
    // After the first position only the rest, and nothing after the last.
    let rest = read::after(pool, first, 100).await.expect("read after");
    assert_eq!(rest.len(), 2);
    let (last, _) = all.last().expect("three events");
    assert!(read::after(pool, last, 100).await.expect("read").is_empty());
    assert!(!read::held_back(pool, last).await.expect("held back"));
    assert!(read::held_back(pool, first).await.expect("held back"));

    // One aggregate's events after a sequence, at most `limit`.
    let task_id = task.to_string();
    let created = read::of_aggregate(pool, AggregateType::Task, &task_id, 0, 1)
        .await
        .expect("the task's first event");
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].event_type, "TaskCreated");
    assert!(
        read::of_aggregate(pool, AggregateType::Task, &task_id, 1, 10)
            .await
            .expect("after its last event")
            .is_empty()
    );
    assert!(
        read::of_aggregate(pool, AggregateType::Project, &task_id, 0, 10)
            .await
            .expect("another type, same id")
            .is_empty()
    );

    // Counts.
    let backlog = read::backlog(pool, first).await.expect("backlog");
    assert_eq!(backlog.events, 2);
    assert!(backlog.seconds >= 0.0);
    let sequences = read::last_sequences(pool).await.expect("last sequences");
    assert_eq!(sequences.len(), 3);
    assert_eq!(sequences[&(AggregateType::Task, task_id)], 1);
    let (total, done) = read::progress(pool, first, None).await.expect("progress");
    assert_eq!((total, done), (3, 1));
}

//! Each commit wakes the relay through `pg_notify`, sent after it: one with registry changes (a
//! transaction), and one without (one statement).

use std::time::Duration;

use event_store::NOTIFY_CHANNEL;
use sqlx::postgres::PgListener;
use uuid::Uuid;

use crate::helpers::Buses;

async fn notified(listener: &mut PgListener) {
    let notification = tokio::time::timeout(Duration::from_secs(5), listener.recv())
        .await
        .expect("a notification within 5 s")
        .expect("the listener works");
    assert_eq!(notification.channel(), "tasktrail_events");
    assert_eq!(notification.payload(), "");
}

#[tokio::test]
async fn every_commit_notifies_the_events_channel() {
    let (db, buses) = Buses::fresh().await;
    let mut listener = PgListener::connect_with(&db.pool)
        .await
        .expect("listener connects");
    listener.listen(NOTIFY_CHANNEL).await.expect("LISTEN");

    // A registration changes the registry: its commit is a transaction.
    let owner = Uuid::new_v4();
    buses.register_user(owner, "noisy").await;
    notified(&mut listener).await;
    let project = Uuid::new_v4();
    buses.create_project(project, owner).await;
    notified(&mut listener).await;

    // A task's events change nothing in the registry: the insert is one statement.
    let task = Uuid::new_v4();
    buses.create_task(task, project, owner).await;
    notified(&mut listener).await;
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE aggregate_id = $1")
        .bind(task.to_string())
        .fetch_one(&db.pool)
        .await
        .expect("count");
    assert_eq!(stored, 1);
}

//! Each commit wakes the relay through `pg_notify`.

use std::time::Duration;

use domain::Role;
use event_store::NOTIFY_CHANNEL;
use sqlx::postgres::PgListener;
use uuid::Uuid;

use crate::helpers::Buses;

#[tokio::test]
async fn a_commit_notifies_the_events_channel() {
    let (db, buses) = Buses::fresh().await;
    let mut listener = PgListener::connect_with(&db.pool)
        .await
        .expect("listener connects");
    listener.listen(NOTIFY_CHANNEL).await.expect("LISTEN");

    buses
        .register(Uuid::new_v4(), "noisy", "noisy@example.com", Role::User)
        .await;

    let notification = tokio::time::timeout(Duration::from_secs(5), listener.recv())
        .await
        .expect("a notification within 5 s")
        .expect("the listener works");
    assert_eq!(notification.channel(), "tasktrail_events");
    assert_eq!(notification.payload(), "");
}

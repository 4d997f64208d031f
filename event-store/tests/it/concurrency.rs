//! Optimistic concurrency: many writers on one aggregate.

use std::sync::Arc;

use domain::{Actor, PasswordHash, Role, UserCommand};
use event_store::CommandError;
use test_support::TestDatabase;
use uuid::Uuid;

use crate::helpers::{Buses, metadata};

const WRITERS: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_commands_on_one_aggregate_conflict_but_never_fail() {
    let db = TestDatabase::new().await;
    let buses = Arc::new(Buses::new(&db.pool));
    let user_id = Uuid::new_v4();
    buses.register_user(user_id, "busy").await;

    let writers: Vec<_> = (0..WRITERS)
        .map(|i| {
            let buses = Arc::clone(&buses);
            // Mostly password changes (always an event); some role changes (an event only for
            // the first to see the old role, nothing afterwards).
            let command = if i % 4 == 0 {
                UserCommand::ChangeRole {
                    actor: Actor::admin(Uuid::new_v4()),
                    role: Role::Admin,
                }
            } else {
                UserCommand::ChangePassword {
                    actor: Actor::user(user_id),
                    password_hash: PasswordHash::new(format!("$argon2id${i}")),
                }
            };
            tokio::spawn(async move {
                buses
                    .users
                    .execute(&user_id.to_string(), command, metadata(Some(user_id)), None)
                    .await
            })
        })
        .collect();

    let mut emitted = 0;
    let mut conflicts = 0;
    for writer in writers {
        match writer.await.expect("writer task") {
            Ok(committed) => emitted += committed.events,
            Err(CommandError::Concurrency) => conflicts += 1,
            Err(other) => panic!("a concurrent writer must win or conflict, got {other:?}"),
        }
    }
    assert!(emitted > 0, "at least one writer wins");

    let (_, version) = buses.users.load(&user_id.to_string()).await.expect("load");
    assert_eq!(
        version,
        1 + u64::try_from(emitted).expect("small"),
        "{conflicts} conflicts"
    );
    let sequences: Vec<i64> =
        sqlx::query_scalar("SELECT sequence FROM events WHERE aggregate_id = $1 ORDER BY sequence")
            .bind(user_id.to_string())
            .fetch_all(&db.pool)
            .await
            .expect("sequences");
    let expected: Vec<i64> = (1..=i64::try_from(version).expect("small")).collect();
    assert_eq!(sequences, expected, "no gaps, no duplicates");
}

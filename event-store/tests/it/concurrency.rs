//! Optimistic concurrency: many writers on one aggregate.

use std::sync::Arc;

use domain::{Actor, PasswordHash, ProjectCommand, Role, UserCommand};
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

/// Two buses over one database stand for two command-api replicas, each with its aggregate
/// cache. A command on an aggregate the other replica has moved on since meets a conflict at
/// commit, and the bus decides again on the stored state: the caller sees no difference.
#[tokio::test]
async fn a_stale_cached_aggregate_is_loaded_again_and_the_command_succeeds() {
    let (db, first) = Buses::fresh().await;
    let second = Buses::new(&db.pool);
    let user_id = Uuid::new_v4();
    first.register_user(user_id, "cached").await;
    let id = user_id.to_string();
    let change = |n: usize| UserCommand::ChangePassword {
        actor: Actor::user(user_id),
        password_hash: PasswordHash::new(format!("$argon2id${n}")),
    };
    // The first replica caches the user at version 2; the second moves it to 3.
    let cached = first
        .users
        .execute(&id, change(1), metadata(Some(user_id)), None)
        .await
        .expect("first change");
    assert_eq!(cached.version, 2);
    let moved = second
        .users
        .execute(&id, change(2), metadata(Some(user_id)), Some(2))
        .await
        .expect("second change");
    assert_eq!(moved.version, 3);
    // The first replica's cache says 2: its command still lands, at 4.
    let again = first
        .users
        .execute(&id, change(3), metadata(Some(user_id)), None)
        .await
        .expect("a change through the stale cache");
    assert_eq!(again.version, 4);
    // An expected version the cache agrees with but the store does not is a version conflict
    // naming the stored version.
    let refused = second
        .users
        .execute(&id, change(4), metadata(Some(user_id)), Some(3))
        .await
        .expect_err("the store is at 4");
    assert_eq!(
        refused,
        CommandError::VersionConflict {
            expected: 3,
            actual: 4
        }
    );
    let sequences: Vec<i64> =
        sqlx::query_scalar("SELECT sequence FROM events WHERE aggregate_id = $1 ORDER BY sequence")
            .bind(&id)
            .fetch_all(&db.pool)
            .await
            .expect("sequences");
    assert_eq!(sequences, [1, 2, 3, 4], "no gaps, no duplicates");
}

/// Without a cache every command loads its aggregate; the outcomes are the same.
#[tokio::test]
async fn a_bus_without_a_cache_loads_every_time() {
    let db = TestDatabase::new().await;
    let registry = event_store::Registry::new(db.pool.clone());
    let users: event_store::CommandBus<domain::User> =
        event_store::CommandBus::new(db.pool.clone(), registry.user_services())
            .with_cache_capacity(0);
    let other = Buses::new(&db.pool);
    let user_id = Uuid::new_v4();
    other.register_user(user_id, "uncached").await;
    let id = user_id.to_string();
    for (n, expected) in [(1, 1), (2, 2)] {
        let committed = users
            .execute(
                &id,
                UserCommand::ChangePassword {
                    actor: Actor::user(user_id),
                    password_hash: PasswordHash::new(format!("$argon2id${n}")),
                },
                metadata(Some(user_id)),
                Some(expected),
            )
            .await
            .expect("change");
        assert_eq!(committed.version, expected + 1);
    }
}

/// A refusal decided on a stale cached state is not the answer: the bus decides again on the
/// stored state. The first replica caches a project without the member; the second adds them;
/// removing them through the first replica succeeds.
#[tokio::test]
async fn a_refusal_from_a_stale_cache_is_decided_again_on_the_stored_state() {
    let (db, first) = Buses::fresh().await;
    let second = Buses::new(&db.pool);
    let owner = Uuid::new_v4();
    let member = Uuid::new_v4();
    first.register_user(owner, "owner").await;
    first.register_user(member, "member").await;
    let project = Uuid::new_v4();
    first.create_project(project, owner).await;
    let id = project.to_string();
    second
        .projects
        .execute(
            &id,
            ProjectCommand::AddMember {
                actor: Actor::user(owner),
                user_id: member,
            },
            metadata(Some(owner)),
            Some(1),
        )
        .await
        .expect("the second replica adds the member");
    let removed = first
        .projects
        .execute(
            &id,
            ProjectCommand::RemoveMember {
                actor: Actor::user(owner),
                user_id: member,
            },
            metadata(Some(owner)),
            None,
        )
        .await
        .expect("the member is removed, although the first replica's cache has none");
    assert_eq!((removed.version, removed.events), (3, 1));
}

/// A create decides on the default state without loading: an id that is taken after all (not
/// the API's fresh UUIDv7, but the same key twice) meets the commit's optimistic lock and
/// changes nothing.
#[tokio::test]
async fn a_create_on_an_id_already_used_conflicts_and_writes_nothing() {
    let (db, buses) = Buses::fresh().await;
    let owner = Uuid::new_v4();
    buses.register_user(owner, "creator").await;
    let project_id = Uuid::new_v4();
    let task_id = Uuid::new_v4();
    buses.create_project(project_id, owner).await;
    let command = crate::helpers::create_task(task_id, project_id, Actor::user(owner));
    let created = buses
        .tasks
        .create(&task_id.to_string(), command.clone(), metadata(Some(owner)))
        .await
        .expect("the first create");
    assert_eq!((created.version, created.events), (1, 1));
    // Another bus (another replica) has no cache entry for it either way.
    let again = Buses::new(&db.pool)
        .tasks
        .create(&task_id.to_string(), command, metadata(Some(owner)))
        .await
        .expect_err("the id is taken");
    assert_eq!(again, CommandError::Concurrency);
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE aggregate_id = $1")
        .bind(task_id.to_string())
        .fetch_one(&db.pool)
        .await
        .expect("count");
    assert_eq!(events, 1, "the stored task is untouched");
}

//! Unique usernames and e-mail addresses under races: the look-up gives the early error, the
//! unique indexes of the registry the guarantee.

use std::sync::Arc;

use domain::{
    BoxFuture, Email, Role, ServiceError, User, UserError, UserServices, UserServicesHandle,
    Username,
};
use event_store::{CommandBus, CommandError, Committed, UniqueViolation};
use test_support::TestDatabase;
use uuid::Uuid;

use crate::helpers::{Buses, metadata, register, unique_username};

const ROUNDS: usize = 20;

type Outcome = Result<Committed, CommandError<UserError>>;

/// Registers two users (different ids) at the same time; returns both outcomes.
async fn race(
    buses: &Arc<Buses>,
    first: (Uuid, String, String),
    second: (Uuid, String, String),
) -> (Outcome, Outcome) {
    let spawn = |(user_id, username, email): (Uuid, String, String)| {
        let buses = Arc::clone(buses);
        tokio::spawn(async move {
            buses
                .users
                .execute(
                    &user_id.to_string(),
                    register(user_id, &username, &email, Role::User),
                    metadata(None),
                    None,
                )
                .await
        })
    };
    let (a, b) = tokio::join!(spawn(first), spawn(second));
    (a.expect("task a"), b.expect("task b"))
}

/// Exactly one of the two is committed; the other is refused as `expected`. Returns the
/// index of the winner.
fn exactly_one_wins(
    outcomes: &(Outcome, Outcome),
    unique: UniqueViolation,
    taken: &UserError,
) -> usize {
    let refused = |outcome: &Outcome| match outcome {
        Err(CommandError::Unique(violation)) => *violation == unique,
        Err(CommandError::Domain(error)) => error == taken,
        _ => false,
    };
    match outcomes {
        (Ok(_), other) if refused(other) => 0,
        (other, Ok(_)) if refused(other) => 1,
        other => panic!("expected exactly one registration and one {unique:?}, got {other:?}"),
    }
}

async fn owners(db: &TestDatabase, column: &str, key: &str) -> Vec<Uuid> {
    sqlx::query_scalar(&format!(
        "SELECT user_id FROM user_registry WHERE {column} = lower($1)"
    ))
    .bind(key)
    .fetch_all(&db.pool)
    .await
    .expect("registry rows")
}

async fn registrations(db: &TestDatabase, user_id: Uuid) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM events WHERE aggregate_id = $1")
        .bind(user_id.to_string())
        .fetch_one(&db.pool)
        .await
        .expect("count")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_simultaneous_registrations_of_one_username_admit_one() {
    let db = TestDatabase::new().await;
    let buses = Arc::new(Buses::new(&db.pool));
    for round in 0..ROUNDS {
        let username = unique_username("race");
        let ids = [Uuid::new_v4(), Uuid::new_v4()];
        let outcomes = race(
            &buses,
            (
                ids[0],
                username.clone(),
                format!("first{round}@example.com"),
            ),
            (
                ids[1],
                username.clone(),
                format!("second{round}@example.com"),
            ),
        )
        .await;
        let winner = exactly_one_wins(
            &outcomes,
            UniqueViolation::Username,
            &UserError::UsernameTaken,
        );
        assert_eq!(
            owners(&db, "lower(username)", &username).await,
            vec![ids[winner]]
        );
        assert_eq!(registrations(&db, ids[winner]).await, 1);
        assert_eq!(
            registrations(&db, ids[1 - winner]).await,
            0,
            "the loser wrote nothing"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_simultaneous_registrations_of_one_email_admit_one() {
    let db = TestDatabase::new().await;
    let buses = Arc::new(Buses::new(&db.pool));
    for round in 0..ROUNDS {
        let email = format!("Shared{round}@Example.com");
        let ids = [Uuid::new_v4(), Uuid::new_v4()];
        let outcomes = race(
            &buses,
            (ids[0], unique_username("first"), email.clone()),
            (ids[1], unique_username("second"), email.to_lowercase()),
        )
        .await;
        let winner = exactly_one_wins(&outcomes, UniqueViolation::Email, &UserError::EmailTaken);
        assert_eq!(
            owners(&db, "email_normalized", &email).await,
            vec![ids[winner]]
        );
        assert_eq!(
            registrations(&db, ids[1 - winner]).await,
            0,
            "the loser wrote nothing"
        );
    }
}

/// A `UserServices` that never finds an owner: the look-up a racing registration got past.
struct Blind;

impl UserServices for Blind {
    fn username_owner<'a>(
        &'a self,
        _username: &'a Username,
    ) -> BoxFuture<'a, Result<Option<Uuid>, ServiceError>> {
        Box::pin(async { Ok(None) })
    }

    fn email_owner<'a>(
        &'a self,
        _email: &'a Email,
    ) -> BoxFuture<'a, Result<Option<Uuid>, ServiceError>> {
        Box::pin(async { Ok(None) })
    }
}

#[tokio::test]
async fn the_unique_indexes_refuse_what_the_look_up_missed() {
    let db = TestDatabase::new().await;
    let users: CommandBus<User> =
        CommandBus::new(db.pool.clone(), Arc::new(Blind) as UserServicesHandle);
    let execute = |user_id: Uuid, username: &'static str, email: &'static str| {
        let users = &users;
        async move {
            users
                .execute(
                    &user_id.to_string(),
                    register(user_id, username, email, Role::User),
                    metadata(None),
                    None,
                )
                .await
        }
    };
    execute(Uuid::new_v4(), "alice", "alice@example.com")
        .await
        .expect("the first registration");

    let same_username = execute(Uuid::new_v4(), "ALICE", "other@example.com").await;
    assert_eq!(
        same_username,
        Err(CommandError::Unique(UniqueViolation::Username))
    );
    let same_email = execute(Uuid::new_v4(), "alicia", "Alice@EXAMPLE.com").await;
    assert_eq!(
        same_email,
        Err(CommandError::Unique(UniqueViolation::Email))
    );

    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM user_registry")
        .fetch_one(&db.pool)
        .await
        .expect("count");
    assert_eq!(rows, 1);
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&db.pool)
        .await
        .expect("count");
    assert_eq!(events, 1, "a refused commit rolls back its events too");
}

#[tokio::test]
async fn changing_to_a_taken_email_is_refused() {
    let (_db, buses) = Buses::fresh().await;
    let alice = Uuid::new_v4();
    let bob = Uuid::new_v4();
    buses.register_user(alice, "alice").await;
    buses.register_user(bob, "bob").await;

    let result = buses
        .users
        .execute(
            &bob.to_string(),
            domain::UserCommand::ChangeProfile {
                actor: domain::Actor::user(bob),
                email: Some(Email::parse("ALICE@example.com").expect("valid")),
                first_name: None,
                last_name: None,
                age: None,
            },
            metadata(Some(bob)),
            None,
        )
        .await;
    assert_eq!(result, Err(CommandError::Domain(UserError::EmailTaken)));
}

//! A database that is down is "unavailable" (→ 503), never a 500.

use std::time::Duration;

use domain::{ProjectServices as _, Role};
use event_store::{CommandError, Registry};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use uuid::Uuid;

use crate::helpers::{Buses, metadata, register};

fn dead_pool() -> PgPool {
    let url = format!(
        "postgres://postgres@{}/tasktrail",
        test_support::dead_address()
    );
    PgPoolOptions::new()
        .acquire_timeout(Duration::from_secs(1))
        .connect_lazy(&url)
        .expect("a valid URL")
}

#[tokio::test]
async fn commands_and_loads_on_a_dead_database_are_unavailable() {
    let buses = Buses::new(&dead_pool());
    let user_id = Uuid::new_v4();

    let result = buses
        .users
        .execute(
            &user_id.to_string(),
            register(user_id, "nobody", "nobody@example.com", Role::User),
            metadata(None),
            None,
        )
        .await;
    assert!(
        matches!(result, Err(CommandError::Unavailable(_))),
        "{result:?}"
    );
    let loaded = buses.users.load(&user_id.to_string()).await;
    assert!(
        matches!(loaded, Err(CommandError::Unavailable(_))),
        "{loaded:?}"
    );
}

#[tokio::test]
async fn registry_look_ups_on_a_dead_database_are_service_errors() {
    let registry = Registry::new(dead_pool());
    assert!(registry.credentials("nobody").await.is_err());
    let status = registry.user_status(Uuid::new_v4()).await;
    assert!(status.is_err(), "{status:?}");
}

/// `connect_lazy` skips sqlx's ping before handing out a connection that came back recently;
/// one that sat idle is still pinged, so a connection the server closed meanwhile (a restart, an
/// idle timeout) is replaced instead of failing the next statement.
#[tokio::test]
async fn a_connection_the_server_closed_while_idle_is_replaced() {
    let database = test_support::TestDatabase::new().await;
    let settings = service_runtime::settings::DatabaseSettings {
        max_connections: 1,
        ..database.settings()
    };
    let pool = event_store::connect_lazy(&settings).expect("a valid URL");
    let first: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&pool)
        .await
        .expect("a first statement");
    // The pool takes the connection back (after its own ping) in a task of its own.
    test_support::eventually(
        Duration::from_secs(5),
        "the connection to come back to the pool",
        || async { (pool.num_idle() == 1).then_some(()) },
    )
    .await;

    let terminated: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(first)
        .fetch_one(&database.pool)
        .await
        .expect("terminating the pool's backend");
    assert!(terminated);
    // Long enough to count as idle: the next acquire pings, finds it dead and connects anew.
    tokio::time::sleep(event_store::PING_WHEN_IDLE_FOR + Duration::from_millis(200)).await;

    let second: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&pool)
        .await
        .expect("the pool replaced the closed connection");
    assert_ne!(second, first);
}

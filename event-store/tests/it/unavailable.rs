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

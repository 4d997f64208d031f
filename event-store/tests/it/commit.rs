//! Committing events: the rows, the metadata, the version, loading back.

use domain::{Actor, Description, ProjectCommand, ProjectName, Role, UserCommand, UserError};
use event_store::{CommandError, Metadata};
use serde_json::Value;
use uuid::Uuid;

use crate::helpers::{Buses, register, unique_username};

/// The columns of an `events` row that cqrs-es does not read.
#[derive(Debug, sqlx::FromRow)]
struct EventRow {
    aggregate_type: String,
    sequence: i64,
    event_type: String,
    event_id: Option<Uuid>,
    global_position: Option<i64>,
    transaction_id: Option<String>,
    metadata: Value,
    payload: Value,
    recorded: bool,
}

#[tokio::test]
async fn committed_events_get_their_columns_and_metadata_and_load_back() {
    let (db, buses) = Buses::fresh().await;
    let user_id = Uuid::new_v4();
    let metadata = Metadata {
        user_id: Some(user_id),
        request_id: "req-1".to_owned(),
        correlation_id: "corr-1".to_owned(),
        causation_id: Some("cause-1".to_owned()),
        ..Metadata::default()
    };

    let committed = buses
        .users
        .execute(
            &user_id.to_string(),
            register(user_id, "alice", "Alice@Example.com", Role::User),
            metadata.clone(),
            Some(0),
        )
        .await
        .expect("registration should be committed");
    assert_eq!(committed.aggregate_id, user_id.to_string());
    assert_eq!(committed.version, 1);
    assert_eq!(committed.events, 1);

    let row: EventRow = sqlx::query_as(
        "SELECT aggregate_type, sequence, event_type, event_id, global_position,
                transaction_id::text AS transaction_id, metadata, payload,
                recorded_at IS NOT NULL AS recorded
           FROM events WHERE aggregate_id = $1",
    )
    .bind(user_id.to_string())
    .fetch_one(&db.pool)
    .await
    .expect("the event row");
    let EventRow {
        aggregate_type,
        sequence,
        event_type,
        event_id,
        global_position,
        transaction_id,
        metadata: stored,
        payload,
        recorded,
    } = row;
    assert_eq!(aggregate_type, "user");
    assert_eq!(sequence, 1);
    assert_eq!(event_type, "UserRegistered");
    assert_eq!(
        event_id.map(|id| id.get_version_num()),
        Some(7),
        "event ids are time-ordered UUIDv7s, made by the repository"
    );
    assert!(
        global_position.is_some_and(|p| p > 0),
        "global_position filled"
    );
    assert!(transaction_id.is_some(), "transaction_id filled");
    assert!(recorded, "recorded_at filled");
    assert_eq!(
        stored,
        serde_json::json!({
            "user_id": user_id.to_string(),
            "request_id": "req-1",
            "correlation_id": "corr-1",
            "causation_id": "cause-1",
        })
    );
    assert_eq!(payload["UserRegistered"]["username"], "alice");

    let (user, version) = buses.users.load(&user_id.to_string()).await.expect("load");
    assert_eq!(version, 1);
    let profile = user.profile().expect("registered");
    assert_eq!(profile.username.as_str(), "alice");
    assert_eq!(profile.email.as_str(), "Alice@Example.com");
}

#[tokio::test]
async fn an_unknown_aggregate_loads_as_default_at_version_zero() {
    let (_db, buses) = Buses::fresh().await;
    let (user, version) = buses
        .users
        .load(&Uuid::new_v4().to_string())
        .await
        .expect("load");
    assert_eq!(version, 0);
    assert!(!user.is_registered());
}

#[tokio::test]
async fn the_events_of_one_command_are_written_together() {
    let (db, buses) = Buses::fresh().await;
    let owner = Uuid::new_v4();
    buses
        .register(
            owner,
            &unique_username("owner"),
            "owner@example.com",
            Role::User,
        )
        .await;
    let project_id = Uuid::new_v4();
    buses.create_project(project_id, owner).await;

    let committed = buses
        .projects
        .execute(
            &project_id.to_string(),
            ProjectCommand::Update {
                actor: Actor::user(owner),
                name: Some(ProjectName::parse("Gemini").expect("valid")),
                description: Some(Description::parse("two events").expect("valid")),
                deadline: None,
            },
            crate::helpers::metadata(Some(owner)),
            Some(1),
        )
        .await
        .expect("update");
    assert_eq!(committed.version, 3);
    assert_eq!(committed.events, 2);

    let rows: Vec<(i64, String, i64)> = sqlx::query_as(
        "SELECT sequence, transaction_id::text, global_position
           FROM events WHERE aggregate_id = $1 AND sequence > 1 ORDER BY sequence",
    )
    .bind(project_id.to_string())
    .fetch_all(&db.pool)
    .await
    .expect("rows");
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].1, rows[1].1, "one transaction");
    assert_eq!(rows[0].0, 2);
    assert_eq!(rows[1].0, 3);
    assert!(rows[0].2 < rows[1].2, "positions follow the sequence");
}

#[tokio::test]
async fn a_stale_expected_version_is_a_version_conflict() {
    let (_db, buses) = Buses::fresh().await;
    let user_id = Uuid::new_v4();
    buses.register_user(user_id, "bob").await;
    let change = || UserCommand::ChangePassword {
        actor: Actor::user(user_id),
        password_hash: domain::PasswordHash::new("$argon2id$new"),
    };

    let stale = buses
        .users
        .execute(
            &user_id.to_string(),
            change(),
            crate::helpers::metadata(Some(user_id)),
            Some(0),
        )
        .await;
    assert_eq!(
        stale,
        Err(CommandError::VersionConflict {
            expected: 0,
            actual: 1
        })
    );

    let fresh = buses
        .users
        .execute(
            &user_id.to_string(),
            change(),
            crate::helpers::metadata(Some(user_id)),
            Some(1),
        )
        .await
        .expect("the current version is accepted");
    assert_eq!(fresh.version, 2);
}

#[tokio::test]
async fn a_command_without_events_keeps_the_version() {
    let (db, buses) = Buses::fresh().await;
    let user_id = Uuid::new_v4();
    buses.register_user(user_id, "carol").await;

    let committed = buses
        .users
        .execute(
            &user_id.to_string(),
            UserCommand::ChangeRole {
                actor: Actor::admin(Uuid::new_v4()),
                role: Role::User,
            },
            crate::helpers::metadata(None),
            None,
        )
        .await
        .expect("a no-op is accepted");
    assert_eq!(committed.version, 1);
    assert_eq!(committed.events, 0);
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&db.pool)
        .await
        .expect("count");
    assert_eq!(count, 1);
}

#[tokio::test]
async fn a_refusal_is_a_domain_error_and_writes_nothing() {
    let (_db, buses) = Buses::fresh().await;
    let result = buses
        .users
        .execute(
            &Uuid::new_v4().to_string(),
            UserCommand::Deactivate {
                actor: Actor::admin(Uuid::new_v4()),
            },
            crate::helpers::metadata(None),
            None,
        )
        .await;
    assert_eq!(result, Err(CommandError::Domain(UserError::NotFound)));
}

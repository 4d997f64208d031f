//! Keeps the write-side registry in step with the events, inside the transaction that inserts
//! them: one function per aggregate type, one statement per event that matters.
//!
//! Events are read back as the typed domain events (they were just serialized from them, so no
//! upcasting is needed). An update that finds no row means the registry is out of step with the
//! events: that is a bug, and the commit fails rather than making it worse.

use cqrs_es::Aggregate as _;
use cqrs_es::persist::{PersistenceError, SerializedEvent};
use domain::{Project, ProjectEvent, User, UserEvent};
use serde::de::DeserializeOwned;
use sqlx::postgres::PgArguments;
use sqlx::{PgConnection, Postgres};
use uuid::Uuid;

use crate::error::{persistence_error, unexpected};

pub(crate) type Statement = sqlx::query::Query<'static, Postgres, PgArguments>;

/// The registry statements of a commit's events, in order, each with its event: none for a
/// commit that changes nothing the registry keeps (every task event, most others).
pub(crate) fn statements(
    events: &[SerializedEvent],
) -> Result<Vec<(Statement, &SerializedEvent)>, PersistenceError> {
    let mut statements = Vec::new();
    for event in events {
        let statement = match event.aggregate_type.as_str() {
            User::TYPE => user_statement(aggregate_uuid(event)?, decode(event)?)?,
            Project::TYPE => project_statement(aggregate_uuid(event)?, &decode(event)?)?,
            // Tasks (and anything else) keep nothing in the registry.
            _ => None,
        };
        statements.extend(statement.map(|statement| (statement, event)));
    }
    Ok(statements)
}

/// Runs [`statements`] in the commit's transaction, in order.
pub(crate) async fn apply(
    connection: &mut PgConnection,
    statements: Vec<(Statement, &SerializedEvent)>,
) -> Result<(), PersistenceError> {
    for (statement, event) in statements {
        execute_one(connection, statement, event).await?;
    }
    Ok(())
}

/// What a user event changes in `user_registry`.
fn user_statement(user_id: Uuid, event: UserEvent) -> Result<Option<Statement>, PersistenceError> {
    let statement = match event {
        UserEvent::UserRegistered {
            user_id: registered,
            username,
            email,
            password_hash,
            role,
            ..
        } => {
            same_id("user_id", user_id, registered)?;
            sqlx::query(
                "INSERT INTO user_registry
                     (user_id, username, email_normalized, password_hash, role, active)
                 VALUES ($1, $2, $3, $4, $5, true)",
            )
            .bind(user_id)
            .bind(username.into_inner())
            .bind(email.normalized())
            .bind(password_hash.into_inner())
            .bind(role.as_str())
        }
        UserEvent::UserProfileChanged {
            email: Some(email), ..
        } => sqlx::query("UPDATE user_registry SET email_normalized = $2 WHERE user_id = $1")
            .bind(user_id)
            .bind(email.normalized()),
        UserEvent::UserProfileChanged { email: None, .. }
        | UserEvent::UserNotificationsRead { .. } => return Ok(None),
        UserEvent::UserPasswordChanged { password_hash } => sqlx::query(
            "UPDATE user_registry
                 SET password_hash = $2, token_generation = token_generation + 1
                 WHERE user_id = $1",
        )
        .bind(user_id)
        .bind(password_hash.into_inner()),
        UserEvent::UserRoleChanged { role } => sqlx::query(
            "UPDATE user_registry
                 SET role = $2, token_generation = token_generation + 1
                 WHERE user_id = $1",
        )
        .bind(user_id)
        .bind(role.as_str()),
        UserEvent::UserDeactivated => sqlx::query(
            "UPDATE user_registry
                 SET active = false, token_generation = token_generation + 1
                 WHERE user_id = $1",
        )
        .bind(user_id),
    };
    Ok(Some(statement))
}

/// What a project event changes in `project_registry` / `project_members`.
fn project_statement(
    project_id: Uuid,
    event: &ProjectEvent,
) -> Result<Option<Statement>, PersistenceError> {
    let statement = match event {
        ProjectEvent::ProjectCreated {
            project_id: created,
            owner_id,
            ..
        } => {
            same_id("project_id", project_id, *created)?;
            sqlx::query(
                "INSERT INTO project_registry (project_id, owner_id, archived)
                 VALUES ($1, $2, false)",
            )
            .bind(project_id)
            .bind(*owner_id)
        }
        // A change to who may work in the project moves its access version on (see
        // `registry::access`); the statement's row count is the members' change.
        ProjectEvent::ProjectMemberAdded { user_id } => sqlx::query(
            "WITH moved_on AS (UPDATE project_registry SET access_version = access_version + 1
                                WHERE project_id = $1)
             INSERT INTO project_members (project_id, user_id) VALUES ($1, $2)",
        )
        .bind(project_id)
        .bind(*user_id),
        ProjectEvent::ProjectMemberRemoved { user_id } => sqlx::query(
            "WITH moved_on AS (UPDATE project_registry SET access_version = access_version + 1
                                WHERE project_id = $1)
             DELETE FROM project_members WHERE project_id = $1 AND user_id = $2",
        )
        .bind(project_id)
        .bind(*user_id),
        ProjectEvent::ProjectArchived => sqlx::query(
            "UPDATE project_registry SET archived = true, access_version = access_version + 1
              WHERE project_id = $1",
        )
        .bind(project_id),
        ProjectEvent::ProjectRenamed { .. }
        | ProjectEvent::ProjectDescribed { .. }
        | ProjectEvent::ProjectDeadlineChanged { .. } => return Ok(None),
    };
    Ok(Some(statement))
}

/// Runs a registry statement that must touch exactly one row.
async fn execute_one(
    connection: &mut PgConnection,
    statement: Statement,
    event: &SerializedEvent,
) -> Result<(), PersistenceError> {
    let result = statement
        .execute(connection)
        .await
        .map_err(persistence_error)?;
    if result.rows_affected() == 1 {
        Ok(())
    } else {
        Err(unexpected(format!(
            "write-side registry is out of step: {} of {} {} changed {} rows",
            event.event_type,
            event.aggregate_type,
            event.aggregate_id,
            result.rows_affected()
        )))
    }
}

fn decode<E: DeserializeOwned>(event: &SerializedEvent) -> Result<E, PersistenceError> {
    E::deserialize(&event.payload)
        .map_err(|error| PersistenceError::DeserializationError(Box::new(error)))
}

/// The aggregate id as a UUID (every aggregate of tasktrail is identified by one).
fn aggregate_uuid(event: &SerializedEvent) -> Result<Uuid, PersistenceError> {
    Uuid::parse_str(&event.aggregate_id).map_err(|_| {
        unexpected(format!(
            "{} id {:?} is not a UUID",
            event.aggregate_type, event.aggregate_id
        ))
    })
}

/// The id inside a creation event must be the aggregate's id, or later events would update
/// another row than the one it creates.
fn same_id(field: &str, aggregate_id: Uuid, in_event: Uuid) -> Result<(), PersistenceError> {
    if aggregate_id == in_event {
        Ok(())
    } else {
        Err(unexpected(format!(
            "{field} {in_event} differs from the aggregate id {aggregate_id}"
        )))
    }
}

//! How PostgreSQL errors become cqrs-es [`PersistenceError`]s, and [`UniqueViolation`], the
//! error that says which uniqueness rule of the write-side registry refused a commit.

use cqrs_es::AggregateError;
use cqrs_es::persist::PersistenceError;

/// The primary key of `events`: a duplicate `(aggregate_type, aggregate_id, sequence)` means
/// another writer committed to the same aggregate first.
const EVENTS_PRIMARY_KEY: &str = "events_pkey";
/// The unique index on `lower(username)` (migration `20261123000002_write_side.sql`).
const USERNAME_INDEX: &str = "user_registry_username_key";
/// The unique index on `email_normalized` (same migration).
const EMAIL_INDEX: &str = "user_registry_email_key";

/// A uniqueness rule of the write-side registry that a commit broke: another user registered
/// (or changed to) the same username or e-mail address between the look-up and the commit.
///
/// The repository returns it as `PersistenceError::UnknownError(Box::new(UniqueViolation::..))`
/// (cqrs-es has no variant for it); [`UniqueViolation::from_aggregate_error`] recognises it in
/// the `AggregateError` that cqrs-es makes of that. [`crate::CommandBus`] does this for you and
/// answers [`crate::CommandError::Unique`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum UniqueViolation {
    /// Another user has this username.
    #[error("username is already taken")]
    Username,
    /// Another user has this e-mail address.
    #[error("email is already taken")]
    Email,
}

impl UniqueViolation {
    /// The violation a unique index or constraint stands for, if it is one of ours.
    fn of_constraint(constraint: &str) -> Option<Self> {
        match constraint {
            USERNAME_INDEX => Some(Self::Username),
            EMAIL_INDEX => Some(Self::Email),
            _ => None,
        }
    }

    /// The violation carried by an error of the repository, if any.
    #[must_use]
    pub fn from_persistence_error(error: &PersistenceError) -> Option<Self> {
        match error {
            PersistenceError::UnknownError(inner) => inner.downcast_ref::<Self>().copied(),
            _ => None,
        }
    }

    /// The violation carried by an error of cqrs-es (e.g. from `EventStore::commit` or
    /// `CqrsFramework::execute`), if any.
    #[must_use]
    pub fn from_aggregate_error<T: std::error::Error>(error: &AggregateError<T>) -> Option<Self> {
        match error {
            AggregateError::UnexpectedError(inner) => inner.downcast_ref::<Self>().copied(),
            _ => None,
        }
    }
}

/// Classifies an error of sqlx for cqrs-es:
/// - a duplicate event (or a serialization failure / deadlock) → `OptimisticLockError`;
/// - a duplicate username / e-mail → `UnknownError(UniqueViolation)`;
/// - the database unreachable, shutting down or out of connections → `ConnectionError`;
/// - anything else → `UnknownError`.
pub(crate) fn persistence_error(error: sqlx::Error) -> PersistenceError {
    if let sqlx::Error::Database(database_error) = &error {
        match database_error.code().as_deref() {
            Some("23505") => {
                let constraint = database_error.constraint();
                if constraint == Some(EVENTS_PRIMARY_KEY) {
                    return PersistenceError::OptimisticLockError;
                }
                if let Some(violation) = constraint.and_then(UniqueViolation::of_constraint) {
                    return PersistenceError::UnknownError(Box::new(violation));
                }
            }
            // serialization_failure, deadlock_detected: lost to a concurrent writer.
            Some("40001" | "40P01") => return PersistenceError::OptimisticLockError,
            _ => {}
        }
    }
    if is_connection_error(&error) {
        PersistenceError::ConnectionError(Box::new(error))
    } else {
        PersistenceError::UnknownError(Box::new(error))
    }
}

/// Whether the error means "the database is not there right now" (HTTP 503), as opposed to a bug.
pub(crate) fn is_connection_error(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(database_error) => database_error.code().is_some_and(|code| {
            // Class 08: connection exception; 57P0x: shutting down / cannot connect now;
            // 53300: too many connections.
            code.starts_with("08") || code.starts_with("57P") || code == "53300"
        }),
        _ => false,
    }
}

/// An error of the repository that is not the database's: a row it cannot decode, an event it
/// cannot apply to the registry.
pub(crate) fn unexpected(message: impl Into<String>) -> PersistenceError {
    PersistenceError::UnknownError(message.into().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_unique_violation_survives_the_trip_through_cqrs_es() {
        let persistence = PersistenceError::UnknownError(Box::new(UniqueViolation::Email));
        assert_eq!(
            UniqueViolation::from_persistence_error(&persistence),
            Some(UniqueViolation::Email)
        );
        let aggregate: AggregateError<std::fmt::Error> = persistence.into();
        assert_eq!(
            UniqueViolation::from_aggregate_error(&aggregate),
            Some(UniqueViolation::Email)
        );
    }

    #[test]
    fn other_errors_carry_no_unique_violation() {
        let aggregate: AggregateError<std::fmt::Error> =
            PersistenceError::OptimisticLockError.into();
        assert_eq!(UniqueViolation::from_aggregate_error(&aggregate), None);
        assert_eq!(
            UniqueViolation::from_persistence_error(&unexpected("boom")),
            None
        );
    }

    #[test]
    fn pool_errors_are_connection_errors() {
        assert!(matches!(
            persistence_error(sqlx::Error::PoolTimedOut),
            PersistenceError::ConnectionError(_)
        ));
        assert!(matches!(
            persistence_error(sqlx::Error::RowNotFound),
            PersistenceError::UnknownError(_)
        ));
    }
}

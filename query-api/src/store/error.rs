//! [`StoreError`]: why a read failed, from the MongoDB, read-model and PostgreSQL errors.

/// A read that failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// MongoDB could not be reached (503 naming mongodb).
    #[error("MongoDB unavailable: {0}")]
    MongoUnavailable(String),
    /// PostgreSQL could not be reached (503 naming postgres).
    #[error("PostgreSQL unavailable: {0}")]
    PostgresUnavailable(String),
    /// A bug or a malformed document (500, logged).
    #[error("{0}")]
    Internal(String),
}

impl From<mongodb::error::Error> for StoreError {
    fn from(error: mongodb::error::Error) -> Self {
        use mongodb::error::ErrorKind;
        match *error.kind {
            ErrorKind::Command(_)
            | ErrorKind::BsonDeserialization(_)
            | ErrorKind::BsonSerialization(_)
            | ErrorKind::InvalidArgument { .. } => Self::Internal(format!("MongoDB: {error}")),
            _ => Self::MongoUnavailable(error.to_string()),
        }
    }
}

impl From<read_model::Error> for StoreError {
    fn from(error: read_model::Error) -> Self {
        match error {
            read_model::Error::Mongo(error) => error.into(),
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        match error {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => Self::PostgresUnavailable(error.to_string()),
            other => Self::Internal(format!("PostgreSQL: {other}")),
        }
    }
}

impl From<event_store::read::ReadError> for StoreError {
    fn from(error: event_store::read::ReadError) -> Self {
        match error {
            event_store::read::ReadError::Database { source, .. } => source.into(),
            other => Self::Internal(other.to_string()),
        }
    }
}

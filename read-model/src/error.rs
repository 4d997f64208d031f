//! The error of the read-model helpers.

/// Something went wrong reading or preparing the read models.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// MongoDB refused or could not be reached.
    #[error("MongoDB: {0}")]
    Mongo(#[from] mongodb::error::Error),
    /// Redis refused or could not be reached.
    #[error("Redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// A stored document does not have the expected shape.
    #[error("malformed read-model document: {0}")]
    Malformed(String),
}

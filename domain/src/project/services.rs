//! What the `Project` aggregate asks outside itself: whether a user exists and is active.

use std::sync::Arc;

use uuid::Uuid;

use crate::BoxFuture;
use crate::error::ServiceError;

/// What the project needs to know about a user it adds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserStatus {
    /// `false` once the user is deactivated.
    pub active: bool,
}

/// Look-ups for the `Project` aggregate, implemented by the command API against its
/// write-side tables. Implement each method as `Box::pin(async move { ... })`.
pub trait ProjectServices: Send + Sync {
    /// The status of a user, or `None` if no such user is registered.
    fn user_status(&self, user_id: Uuid)
    -> BoxFuture<'_, Result<Option<UserStatus>, ServiceError>>;
}

/// The `Services` type of the `Project` aggregate.
pub type ProjectServicesHandle = Arc<dyn ProjectServices>;

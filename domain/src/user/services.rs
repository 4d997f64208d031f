//! What the `User` aggregate asks outside itself: who owns a username or e-mail address.

use std::sync::Arc;

use uuid::Uuid;

use crate::BoxFuture;
use crate::error::ServiceError;
use crate::values::{Email, Username};

/// Uniqueness look-ups for the `User` aggregate, implemented by the command API against its
/// write-side table (the unique index written with the events is the real guarantee; these
/// give the early, clear error).
///
/// Implement each method as `Box::pin(async move { ... })`:
///
/// ```
/// use std::collections::HashMap;
/// use std::sync::Arc;
/// use tasktrail_domain::{BoxFuture, Email, ServiceError, UserServices, UserServicesHandle, Username};
/// use uuid::Uuid;
///
/// struct InMemoryIndex {
///     usernames: HashMap<String, Uuid>,
///     emails: HashMap<String, Uuid>, // keyed by `Email::normalized()`
/// }
///
/// impl UserServices for InMemoryIndex {
///     fn username_owner<'a>(
///         &'a self,
///         username: &'a Username,
///     ) -> BoxFuture<'a, Result<Option<Uuid>, ServiceError>> {
///         Box::pin(async move { Ok(self.usernames.get(username.as_str()).copied()) })
///     }
///
///     fn email_owner<'a>(
///         &'a self,
///         email: &'a Email,
///     ) -> BoxFuture<'a, Result<Option<Uuid>, ServiceError>> {
///         Box::pin(async move { Ok(self.emails.get(&email.normalized()).copied()) })
///     }
/// }
///
/// let services: UserServicesHandle = Arc::new(InMemoryIndex {
///     usernames: HashMap::new(),
///     emails: HashMap::new(),
/// });
/// # let _ = services;
/// ```
pub trait UserServices: Send + Sync {
    /// The id of the user who owns this username, if any.
    fn username_owner<'a>(
        &'a self,
        username: &'a Username,
    ) -> BoxFuture<'a, Result<Option<Uuid>, ServiceError>>;

    /// The id of the user who owns this e-mail address, compared by [`Email::normalized`].
    fn email_owner<'a>(
        &'a self,
        email: &'a Email,
    ) -> BoxFuture<'a, Result<Option<Uuid>, ServiceError>>;
}

/// The `Services` type of the `User` aggregate.
pub type UserServicesHandle = Arc<dyn UserServices>;

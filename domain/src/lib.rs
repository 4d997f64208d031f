//! The aggregates of tasktrail: `user`, `project` and `task`. Each decides commands (`handle`)
//! and applies its events (`apply`); nothing here does I/O.
//!
//! - [`values`] holds the validated newtypes the API builds from its DTOs (`parse`).
//! - [`actor`] says who sends a command ([`Actor`], [`Role`]).
//! - [`error`] holds the shared [`ErrorKind`] (the HTTP status class of every refusal),
//!   [`ValidationError`] and [`ServiceError`].
//! - Each aggregate module has `commands`, `events`, `error`, `services` (the cross-aggregate
//!   look-ups it needs, implemented by the command API against its write-side tables) and
//!   `aggregate`.
//! - [`upcast`] reads events stored in an older shape as the current one.

pub mod actor;
mod aggregate_type;
pub mod error;
pub mod project;
pub mod serde_helpers;
pub mod task;
#[cfg(test)]
mod testing;
pub mod upcast;
pub mod user;
pub mod values;

use std::future::Future;
use std::pin::Pin;

pub use actor::{Actor, Role};
pub use aggregate_type::{AggregateType, UnknownAggregateType};
pub use error::{DomainError, ErrorKind, ServiceError, ValidationError};
pub use project::{
    Project, ProjectCommand, ProjectError, ProjectEvent, ProjectServices, ProjectServicesHandle,
    UserStatus,
};
pub use task::{
    Attachment, ProjectAccess, Task, TaskCommand, TaskError, TaskEvent, TaskPriority, TaskServices,
    TaskServicesHandle, TaskStatus, UnknownPriority,
};
pub use upcast::UpcastError;
pub use user::{User, UserCommand, UserError, UserEvent, UserServices, UserServicesHandle};
pub use values::{
    Age, Description, Email, FileName, Label, Password, PasswordHash, PersonName, ProjectName,
    TaskTitle, Username,
};

/// A boxed, `Send` future: what the services traits return, so they stay object-safe
/// (`Arc<dyn UserServices>` etc.) without an `async-trait` dependency.
///
/// Implement a method with `Box::pin(async move { ... })`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

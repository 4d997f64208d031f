//! The `Task` aggregate (`TYPE = "task"`): a piece of work in a project, with a status
//! workflow, a priority, labels, an optional assignee and due date. Every command checks the project through
//! [`TaskServices`] (exists, not archived, actor and assignee belong to it).

mod aggregate;
mod attachment;
mod commands;
mod error;
mod events;
mod priority;
mod services;
mod status;
#[cfg(test)]
mod tests;

pub use aggregate::{Task, TaskState};
pub use attachment::Attachment;
pub use commands::TaskCommand;
pub use error::TaskError;
pub use events::TaskEvent;
pub use priority::{TaskPriority, UnknownPriority};
pub use services::{ProjectAccess, TaskServices, TaskServicesHandle};
pub use status::{ALLOWED_TRANSITIONS, TaskStatus};

//! The `Project` aggregate (`TYPE = "project"`, the seeds' "goal"): an owner, members,
//! a name, a description, an optional deadline; it can be archived. Membership needs the
//! added user to exist and be active, checked through [`ProjectServices`].

mod aggregate;
mod commands;
mod error;
mod events;
mod services;
#[cfg(test)]
mod tests;

pub use aggregate::{Project, ProjectState};
pub use commands::ProjectCommand;
pub use error::ProjectError;
pub use events::ProjectEvent;
pub use services::{ProjectServices, ProjectServicesHandle, UserStatus};

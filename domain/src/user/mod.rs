//! The `User` aggregate (`TYPE = "user"`): registration, profile, password, role,
//! deactivation. Username and e-mail uniqueness are checked through [`UserServices`].

mod aggregate;
mod commands;
mod error;
mod events;
mod services;
#[cfg(test)]
mod tests;

pub use aggregate::{User, UserProfile};
pub use commands::UserCommand;
pub use error::UserError;
pub use events::UserEvent;
pub use services::{UserServices, UserServicesHandle};

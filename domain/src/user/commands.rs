//! Commands the `User` aggregate accepts.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::actor::{Actor, Role};
use crate::values::{Age, Email, PasswordHash, PersonName, Username};

/// A request to change a user. The aggregate id is the user id.
#[derive(Debug, Clone, PartialEq)]
pub enum UserCommand {
    /// Create the user. `actor: None` is self-registration and may only create `Role::User`;
    /// an admin actor may create any role; any other actor is refused (`Forbidden`).
    Register {
        /// The new user's id (must equal the aggregate id).
        user_id: Uuid,
        /// Unique login name.
        username: Username,
        /// Unique e-mail address (unique by [`Email::normalized`]).
        email: Email,
        /// The hash of the chosen password.
        password_hash: PasswordHash,
        /// First name.
        first_name: PersonName,
        /// Last name.
        last_name: PersonName,
        /// Optional age.
        age: Option<Age>,
        /// The role to create the user with.
        role: Role,
        /// Who registers the user; `None` for self-registration.
        actor: Option<Actor>,
    },
    /// Change some profile fields (the user themself or an admin). `None` = leave as is;
    /// `age: Some(None)` clears the age. Nothing different from the current profile → no event.
    ChangeProfile {
        /// Who asks.
        actor: Actor,
        /// New e-mail address.
        email: Option<Email>,
        /// New first name.
        first_name: Option<PersonName>,
        /// New last name.
        last_name: Option<PersonName>,
        /// New age: `Some(Some(age))` sets it, `Some(None)` clears it.
        age: Option<Option<Age>>,
    },
    /// Replace the password hash (the user themself or an admin). Always emits an event.
    ChangePassword {
        /// Who asks.
        actor: Actor,
        /// The new hash.
        password_hash: PasswordHash,
    },
    /// Change the role (admins only; also allowed on a deactivated user). Same role → no event.
    ChangeRole {
        /// Who asks.
        actor: Actor,
        /// The new role.
        role: Role,
    },
    /// Deactivate the user (the user themself or an admin). Already inactive → `Deactivated`.
    Deactivate {
        /// Who asks.
        actor: Actor,
    },
    /// Mark every notification created at or before `up_to` as read (the user themself only).
    /// A watermark at or before the current one → no event.
    MarkNotificationsRead {
        /// Who asks.
        actor: Actor,
        /// The new read watermark (the caller clamps it to "now").
        up_to: DateTime<Utc>,
    },
}

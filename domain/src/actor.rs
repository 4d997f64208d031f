//! Who sends a command: a user id and a role, taken by the API from the verified JWT.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The role of a user. Admins may do anything any owner may do.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// An ordinary user (the default).
    #[default]
    User,
    /// An administrator: manages users and roles, and may act as the owner of anything.
    Admin,
}

impl Role {
    /// The wire name: `"user"` or `"admin"` (same as serde).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Admin => "admin",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The sender of a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Actor {
    /// The id of the user who sends the command.
    pub user_id: Uuid,
    /// That user's role.
    pub role: Role,
}

impl Actor {
    /// An actor with `Role::User`.
    #[must_use]
    pub const fn user(user_id: Uuid) -> Self {
        Self {
            user_id,
            role: Role::User,
        }
    }

    /// An actor with `Role::Admin`.
    #[must_use]
    pub const fn admin(user_id: Uuid) -> Self {
        Self {
            user_id,
            role: Role::Admin,
        }
    }

    /// Whether this actor is an administrator.
    #[must_use]
    pub const fn is_admin(&self) -> bool {
        matches!(self.role, Role::Admin)
    }

    /// Whether this actor is the given user, or an administrator.
    #[must_use]
    pub fn is_self_or_admin(&self, user_id: Uuid) -> bool {
        self.is_admin() || self.user_id == user_id
    }
}

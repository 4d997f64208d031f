//! Refusals of the `User` aggregate.

use crate::error::{DomainError, ErrorKind, ServiceError};

/// Why a user command was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum UserError {
    /// The user does not exist (never registered).
    #[error("user not found")]
    NotFound,
    /// `Register` on a user that already exists.
    #[error("user is already registered")]
    AlreadyRegistered,
    /// The actor may not do this.
    #[error("not allowed")]
    Forbidden,
    /// Another user has this username.
    #[error("username is already taken")]
    UsernameTaken,
    /// Another user has this e-mail address.
    #[error("email is already taken")]
    EmailTaken,
    /// The user is deactivated and accepts no command except `ChangeRole` by an admin.
    #[error("user is deactivated")]
    Deactivated,
    /// A uniqueness look-up failed.
    #[error(transparent)]
    Unavailable(#[from] ServiceError),
}

impl UserError {
    /// The HTTP class of this error.
    #[must_use]
    pub const fn kind(&self) -> ErrorKind {
        match self {
            Self::NotFound => ErrorKind::NotFound,
            Self::Forbidden => ErrorKind::Forbidden,
            Self::AlreadyRegistered
            | Self::UsernameTaken
            | Self::EmailTaken
            | Self::Deactivated => ErrorKind::Conflict,
            Self::Unavailable(_) => ErrorKind::Unavailable,
        }
    }

    /// A stable snake_case code for the JSON error body.
    #[must_use]
    pub const fn code(&self) -> &'static str {
        match self {
            Self::NotFound => "user_not_found",
            Self::AlreadyRegistered => "user_already_registered",
            Self::Forbidden => "forbidden",
            Self::UsernameTaken => "username_taken",
            Self::EmailTaken => "email_taken",
            Self::Deactivated => "user_deactivated",
            Self::Unavailable(_) => "service_unavailable",
        }
    }
}

impl DomainError for UserError {
    fn kind(&self) -> ErrorKind {
        Self::kind(self)
    }
    fn code(&self) -> &'static str {
        Self::code(self)
    }
}

//! Refusals of the `Project` aggregate.

use crate::error::{DomainError, ErrorKind, ServiceError};

/// Why a project command was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProjectError {
    /// The project does not exist.
    #[error("project not found")]
    NotFound,
    /// `Create` on a project that already exists.
    #[error("project already exists")]
    AlreadyExists,
    /// The actor may not do this (not the owner, not an admin, or not even a member).
    #[error("not allowed")]
    Forbidden,
    /// The project is archived and accepts no command.
    #[error("project is archived")]
    Archived,
    /// The user is already a member (or the owner).
    #[error("user is already a member")]
    AlreadyMember,
    /// The user is not a member.
    #[error("user is not a member")]
    NotAMember,
    /// The owner cannot be removed from their project.
    #[error("the owner cannot be removed")]
    OwnerCannotBeRemoved,
    /// The user to add does not exist.
    #[error("user not found")]
    UserNotFound,
    /// The user to add is deactivated.
    #[error("user is deactivated")]
    UserInactive,
    /// The user look-up failed.
    #[error(transparent)]
    Unavailable(#[from] ServiceError),
}

impl ProjectError {
    /// The HTTP class of this error.
    #[must_use]
    pub const fn kind(&self) -> ErrorKind {
        match self {
            Self::NotFound | Self::NotAMember | Self::UserNotFound => ErrorKind::NotFound,
            Self::Forbidden => ErrorKind::Forbidden,
            Self::AlreadyExists
            | Self::Archived
            | Self::AlreadyMember
            | Self::OwnerCannotBeRemoved
            | Self::UserInactive => ErrorKind::Conflict,
            Self::Unavailable(_) => ErrorKind::Unavailable,
        }
    }

    /// A stable snake_case code for the JSON error body.
    #[must_use]
    pub const fn code(&self) -> &'static str {
        match self {
            Self::NotFound => "project_not_found",
            Self::AlreadyExists => "project_already_exists",
            Self::Forbidden => "forbidden",
            Self::Archived => "project_archived",
            Self::AlreadyMember => "already_member",
            Self::NotAMember => "not_a_member",
            Self::OwnerCannotBeRemoved => "owner_cannot_be_removed",
            Self::UserNotFound => "user_not_found",
            Self::UserInactive => "user_deactivated",
            Self::Unavailable(_) => "service_unavailable",
        }
    }
}

impl DomainError for ProjectError {
    fn kind(&self) -> ErrorKind {
        Self::kind(self)
    }
    fn code(&self) -> &'static str {
        Self::code(self)
    }
}

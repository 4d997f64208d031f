//! Refusals of the `Task` aggregate.

use uuid::Uuid;

use super::TaskStatus;
use crate::error::{DomainError, ErrorKind, ServiceError};

/// Why a task command was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TaskError {
    /// The task was never created.
    #[error("task not found")]
    NotFound,
    /// The task was deleted.
    #[error("task was deleted")]
    Deleted,
    /// `Create` on a task that already exists (even if deleted).
    #[error("task already exists")]
    AlreadyExists,
    /// The task's project does not exist.
    #[error("project not found")]
    ProjectNotFound,
    /// The task's project is archived.
    #[error("project is archived")]
    ProjectArchived,
    /// The actor is not the project's owner, a member, or an admin.
    #[error("not allowed")]
    Forbidden,
    /// The assignee is not the project's owner or a member.
    #[error("assignee {assignee_id} is not a member of the project")]
    AssigneeNotMember {
        /// The refused assignee.
        assignee_id: Uuid,
    },
    /// The task already has this status.
    #[error("task is already {status}")]
    StatusUnchanged {
        /// The current status.
        status: TaskStatus,
    },
    /// The status change is not in the allowed transitions.
    #[error("cannot move a task from {from} to {to}")]
    InvalidTransition {
        /// The current status.
        from: TaskStatus,
        /// The requested status.
        to: TaskStatus,
    },
    /// The task already holds the most labels it may.
    #[error("a task has at most {max} labels")]
    TooManyLabels {
        /// The limit ([`crate::values::Label::MAX_PER_TASK`]).
        max: usize,
    },
    /// The task already holds the most attachments it may.
    #[error("a task has at most {max} attachments")]
    TooManyAttachments {
        /// The limit ([`super::Attachment::MAX_PER_TASK`]).
        max: usize,
    },
    /// The task has an attachment with this id already.
    #[error("the task already has this attachment")]
    AttachmentExists,
    /// The task has no attachment with this id.
    #[error("attachment not found")]
    AttachmentNotFound,
    /// The project look-up failed.
    #[error(transparent)]
    Unavailable(#[from] ServiceError),
}

impl TaskError {
    /// The HTTP class of this error.
    #[must_use]
    pub const fn kind(&self) -> ErrorKind {
        match self {
            Self::NotFound | Self::Deleted | Self::ProjectNotFound | Self::AttachmentNotFound => {
                ErrorKind::NotFound
            }
            Self::Forbidden => ErrorKind::Forbidden,
            Self::AssigneeNotMember { .. } => ErrorKind::Invalid,
            Self::AlreadyExists
            | Self::ProjectArchived
            | Self::StatusUnchanged { .. }
            | Self::InvalidTransition { .. }
            | Self::TooManyLabels { .. }
            | Self::TooManyAttachments { .. }
            | Self::AttachmentExists => ErrorKind::Conflict,
            Self::Unavailable(_) => ErrorKind::Unavailable,
        }
    }

    /// A stable snake_case code for the JSON error body.
    #[must_use]
    pub const fn code(&self) -> &'static str {
        match self {
            Self::NotFound => "task_not_found",
            Self::Deleted => "task_deleted",
            Self::AlreadyExists => "task_already_exists",
            Self::ProjectNotFound => "project_not_found",
            Self::ProjectArchived => "project_archived",
            Self::Forbidden => "forbidden",
            Self::AssigneeNotMember { .. } => "assignee_not_member",
            Self::StatusUnchanged { .. } => "status_unchanged",
            Self::InvalidTransition { .. } => "invalid_transition",
            Self::TooManyLabels { .. } => "too_many_labels",
            Self::TooManyAttachments { .. } => "too_many_attachments",
            Self::AttachmentExists => "attachment_exists",
            Self::AttachmentNotFound => "attachment_not_found",
            Self::Unavailable(_) => "service_unavailable",
        }
    }
}

impl DomainError for TaskError {
    fn kind(&self) -> ErrorKind {
        Self::kind(self)
    }
    fn code(&self) -> &'static str {
        Self::code(self)
    }
}

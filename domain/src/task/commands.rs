//! Commands the `Task` aggregate accepts.

use std::collections::BTreeSet;

use chrono::NaiveDate;
use uuid::Uuid;

use super::{Attachment, TaskPriority, TaskStatus};
use crate::actor::Actor;
use crate::values::{Description, Label, TaskTitle};

/// A request to change a task. The aggregate id is the task id. The actor must be the
/// project's owner, a member, or an admin; the project must exist and not be archived.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskCommand {
    /// Create the task in a project, status `Pending`.
    Create {
        /// The new task's id (must equal the aggregate id).
        task_id: Uuid,
        /// Who creates it.
        actor: Actor,
        /// The project it belongs to (never changes).
        project_id: Uuid,
        /// Title.
        title: TaskTitle,
        /// Description (may be empty).
        description: Description,
        /// Optional assignee: must be the project's owner or a member.
        assignee_id: Option<Uuid>,
        /// Optional due date.
        due_date: Option<NaiveDate>,
        /// Priority (`Normal` unless said).
        priority: TaskPriority,
        /// Labels (at most [`Label::MAX_PER_TASK`]).
        labels: BTreeSet<Label>,
    },
    /// Change title and/or description. Only fields that differ become part of the event;
    /// nothing changed → no event.
    Edit {
        /// Who asks.
        actor: Actor,
        /// New title.
        title: Option<TaskTitle>,
        /// New description.
        description: Option<Description>,
    },
    /// Assign (`Some`, must be owner or member) or unassign (`None`). No change → no event.
    Assign {
        /// Who asks.
        actor: Actor,
        /// The new assignee, `None` to unassign.
        assignee_id: Option<Uuid>,
    },
    /// Move the task to another status (see [`super::ALLOWED_TRANSITIONS`]).
    ChangeStatus {
        /// Who asks.
        actor: Actor,
        /// The target status.
        status: TaskStatus,
    },
    /// Set or clear the due date. No change → no event.
    SetDueDate {
        /// Who asks.
        actor: Actor,
        /// The new due date, `None` to clear it.
        due_date: Option<NaiveDate>,
    },
    /// Change the priority. No change → no event.
    SetPriority {
        /// Who asks.
        actor: Actor,
        /// The new priority.
        priority: TaskPriority,
    },
    /// Put a label on the task. Already there → no event; a task holds at most
    /// [`Label::MAX_PER_TASK`] labels (`TooManyLabels`).
    AddLabel {
        /// Who asks.
        actor: Actor,
        /// The label.
        label: Label,
    },
    /// Take a label off the task. Not there → no event.
    RemoveLabel {
        /// Who asks.
        actor: Actor,
        /// The label.
        label: Label,
    },
    /// Attach a file whose bytes are already stored under `attachment.storage_key`. An id the
    /// task already has is `AttachmentExists`; a task holds at most
    /// [`Attachment::MAX_PER_TASK`] (`TooManyAttachments`).
    AddAttachment {
        /// Who asks (the uploader).
        actor: Actor,
        /// What was stored.
        attachment: Attachment,
    },
    /// Remove an attachment (`AttachmentNotFound` if the task has none with this id).
    RemoveAttachment {
        /// Who asks.
        actor: Actor,
        /// The attachment's id.
        attachment_id: Uuid,
    },
    /// Delete the task; it then accepts no command (`Deleted`).
    Delete {
        /// Who asks.
        actor: Actor,
    },
}

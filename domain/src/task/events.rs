//! Events of the `Task` aggregate.

use std::collections::BTreeSet;

use chrono::NaiveDate;
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Attachment, TaskPriority, TaskStatus};
use crate::AggregateType;
use crate::values::{Description, Label, TaskTitle};

/// Something that happened to a task. Serialized externally tagged:
/// `{"TaskCreated": {...}}`, `"TaskDeleted"`. Dates are `"YYYY-MM-DD"`.
///
/// A change to a variant's fields is a new version of that event: stored events of older
/// versions are upcast when read ([`crate::upcast`], which also says each event's current
/// version).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TaskEvent {
    /// The task was created.
    TaskCreated {
        /// The task's id.
        task_id: Uuid,
        /// The project it belongs to.
        project_id: Uuid,
        /// Title.
        title: TaskTitle,
        /// Description.
        description: Description,
        /// Assignee, if any.
        assignee_id: Option<Uuid>,
        /// Due date, if any.
        due_date: Option<NaiveDate>,
        /// Initial status (`pending`).
        status: TaskStatus,
        /// Who created it.
        created_by: Uuid,
        /// Priority (since version 2.0; older events are upcast to `normal`).
        priority: TaskPriority,
        /// Labels (since version 2.0; older events are upcast to none).
        labels: BTreeSet<Label>,
    },
    /// Title and/or description changed; `None` = unchanged.
    TaskEdited {
        /// New title.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        title: Option<TaskTitle>,
        /// New description.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<Description>,
    },
    /// The task was assigned (or reassigned) to a user.
    TaskAssigned {
        /// The new assignee.
        assignee_id: Uuid,
    },
    /// The task lost its assignee.
    TaskUnassigned {
        /// Who was assigned before.
        previous_assignee_id: Uuid,
    },
    /// The status changed.
    TaskStatusChanged {
        /// The status before.
        from: TaskStatus,
        /// The status after.
        to: TaskStatus,
    },
    /// The due date was set, moved or cleared (`None`).
    TaskDueDateChanged {
        /// The new due date.
        due_date: Option<NaiveDate>,
    },
    /// The priority changed.
    TaskPriorityChanged {
        /// The priority before.
        from: TaskPriority,
        /// The priority after.
        to: TaskPriority,
    },
    /// A label was put on the task.
    TaskLabelAdded {
        /// The label.
        label: Label,
    },
    /// A label was taken off the task.
    TaskLabelRemoved {
        /// The label.
        label: Label,
    },
    /// A file was attached. Its bytes were stored under `storage_key` before this event.
    AttachmentAdded {
        /// What was attached.
        #[serde(flatten)]
        attachment: Attachment,
        /// Who uploaded it.
        uploaded_by: Uuid,
    },
    /// An attachment was removed; its object is deleted after this event.
    AttachmentRemoved {
        /// The attachment's id.
        attachment_id: Uuid,
        /// Where its bytes are (so the cleaner needs no other state).
        storage_key: String,
    },
    /// The task was deleted.
    TaskDeleted,
}

impl DomainEvent for TaskEvent {
    fn event_type(&self) -> String {
        match self {
            Self::TaskCreated { .. } => "TaskCreated",
            Self::TaskEdited { .. } => "TaskEdited",
            Self::TaskAssigned { .. } => "TaskAssigned",
            Self::TaskUnassigned { .. } => "TaskUnassigned",
            Self::TaskStatusChanged { .. } => "TaskStatusChanged",
            Self::TaskDueDateChanged { .. } => "TaskDueDateChanged",
            Self::TaskPriorityChanged { .. } => "TaskPriorityChanged",
            Self::TaskLabelAdded { .. } => "TaskLabelAdded",
            Self::TaskLabelRemoved { .. } => "TaskLabelRemoved",
            Self::AttachmentAdded { .. } => "AttachmentAdded",
            Self::AttachmentRemoved { .. } => "AttachmentRemoved",
            Self::TaskDeleted => "TaskDeleted",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        crate::upcast::current_version(AggregateType::Task, &self.event_type()).to_owned()
    }
}

//! The `Task` aggregate: `handle` decides, `apply` mutates.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{
    Attachment, ProjectAccess, TaskCommand, TaskError, TaskEvent, TaskPriority, TaskServices,
    TaskServicesHandle, TaskStatus,
};
use crate::actor::Actor;
use crate::values::{Description, Label, TaskTitle};

/// A task. `Default` is "not created".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Task {
    state: Option<TaskState>,
}

/// The state of a created task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskState {
    /// The task's id.
    pub task_id: Uuid,
    /// The project it belongs to.
    pub project_id: Uuid,
    /// Title.
    pub title: TaskTitle,
    /// Description.
    pub description: Description,
    /// Assignee, if any.
    pub assignee_id: Option<Uuid>,
    /// Due date, if any.
    pub due_date: Option<NaiveDate>,
    /// Status.
    pub status: TaskStatus,
    /// Who created it.
    pub created_by: Uuid,
    /// Priority.
    pub priority: TaskPriority,
    /// Labels.
    pub labels: BTreeSet<Label>,
    /// Attachments: id → storage key.
    #[serde(default)]
    pub attachments: BTreeMap<Uuid, String>,
    /// `true` once deleted.
    pub deleted: bool,
}

impl Task {
    /// The created task's state (also after deletion), or `None` if never created.
    #[must_use]
    pub const fn state(&self) -> Option<&TaskState> {
        self.state.as_ref()
    }

    /// Whether `actor` may attach a file to this task now: it exists and is not deleted, the
    /// actor may work in its project (not archived), and it has room for another attachment.
    /// What `AddAttachment` checks, asked before the bytes are stored so that a refused upload
    /// stores nothing.
    ///
    /// # Errors
    /// The [`TaskError`] `AddAttachment` would give.
    pub async fn check_attach(
        &self,
        actor: Actor,
        services: &dyn TaskServices,
    ) -> Result<(), TaskError> {
        let state = self.state.as_ref().ok_or(TaskError::NotFound)?;
        if state.deleted {
            return Err(TaskError::Deleted);
        }
        project_access(services, state.project_id, actor).await?;
        if state.attachments.len() >= Attachment::MAX_PER_TASK {
            return Err(TaskError::TooManyAttachments {
                max: Attachment::MAX_PER_TASK,
            });
        }
        Ok(())
    }

    /// Decides a command without changing state: the events to write, or a refusal.
    async fn decide(
        &self,
        command: TaskCommand,
        services: &dyn TaskServices,
    ) -> Result<Vec<TaskEvent>, TaskError> {
        if let TaskCommand::Create {
            task_id,
            actor,
            project_id,
            title,
            description,
            assignee_id,
            due_date,
            priority,
            labels,
        } = command
        {
            if self.state.is_some() {
                return Err(TaskError::AlreadyExists);
            }
            if labels.len() > Label::MAX_PER_TASK {
                return Err(TaskError::TooManyLabels {
                    max: Label::MAX_PER_TASK,
                });
            }
            let access = project_access(services, project_id, actor).await?;
            if let Some(assignee_id) = assignee_id {
                ensure_assignable(&access, assignee_id)?;
            }
            return Ok(vec![TaskEvent::TaskCreated {
                task_id,
                project_id,
                title,
                description,
                assignee_id,
                due_date,
                status: TaskStatus::Pending,
                created_by: actor.user_id,
                priority,
                labels,
            }]);
        }

        let state = self.state.as_ref().ok_or(TaskError::NotFound)?;
        if state.deleted {
            return Err(TaskError::Deleted);
        }
        match command {
            TaskCommand::Create { .. } => Err(TaskError::AlreadyExists),
            TaskCommand::Edit {
                actor,
                title,
                description,
            } => {
                project_access(services, state.project_id, actor).await?;
                let title = title.filter(|title| *title != state.title);
                let description =
                    description.filter(|description| *description != state.description);
                if title.is_none() && description.is_none() {
                    return Ok(Vec::new());
                }
                Ok(vec![TaskEvent::TaskEdited { title, description }])
            }
            TaskCommand::Assign { actor, assignee_id } => {
                let access = project_access(services, state.project_id, actor).await?;
                match (assignee_id, state.assignee_id) {
                    (new, current) if new == current => Ok(Vec::new()),
                    (Some(assignee_id), _) => {
                        ensure_assignable(&access, assignee_id)?;
                        Ok(vec![TaskEvent::TaskAssigned { assignee_id }])
                    }
                    (None, Some(previous_assignee_id)) => Ok(vec![TaskEvent::TaskUnassigned {
                        previous_assignee_id,
                    }]),
                    (None, None) => Ok(Vec::new()),
                }
            }
            TaskCommand::ChangeStatus { actor, status } => {
                project_access(services, state.project_id, actor).await?;
                let from = state.status;
                if from == status {
                    return Err(TaskError::StatusUnchanged { status });
                }
                if !from.can_become(status) {
                    return Err(TaskError::InvalidTransition { from, to: status });
                }
                Ok(vec![TaskEvent::TaskStatusChanged { from, to: status }])
            }
            TaskCommand::SetDueDate { actor, due_date } => {
                project_access(services, state.project_id, actor).await?;
                if due_date == state.due_date {
                    return Ok(Vec::new());
                }
                Ok(vec![TaskEvent::TaskDueDateChanged { due_date }])
            }
            TaskCommand::SetPriority { actor, priority } => {
                project_access(services, state.project_id, actor).await?;
                if priority == state.priority {
                    return Ok(Vec::new());
                }
                Ok(vec![TaskEvent::TaskPriorityChanged {
                    from: state.priority,
                    to: priority,
                }])
            }
            TaskCommand::AddLabel { actor, label } => {
                project_access(services, state.project_id, actor).await?;
                if state.labels.contains(&label) {
                    return Ok(Vec::new());
                }
                if state.labels.len() >= Label::MAX_PER_TASK {
                    return Err(TaskError::TooManyLabels {
                        max: Label::MAX_PER_TASK,
                    });
                }
                Ok(vec![TaskEvent::TaskLabelAdded { label }])
            }
            TaskCommand::RemoveLabel { actor, label } => {
                project_access(services, state.project_id, actor).await?;
                if !state.labels.contains(&label) {
                    return Ok(Vec::new());
                }
                Ok(vec![TaskEvent::TaskLabelRemoved { label }])
            }
            TaskCommand::AddAttachment { actor, attachment } => {
                self.check_attach(actor, services).await?;
                if state.attachments.contains_key(&attachment.attachment_id) {
                    return Err(TaskError::AttachmentExists);
                }
                Ok(vec![TaskEvent::AttachmentAdded {
                    attachment,
                    uploaded_by: actor.user_id,
                }])
            }
            TaskCommand::RemoveAttachment {
                actor,
                attachment_id,
            } => {
                project_access(services, state.project_id, actor).await?;
                let storage_key = state
                    .attachments
                    .get(&attachment_id)
                    .ok_or(TaskError::AttachmentNotFound)?;
                Ok(vec![TaskEvent::AttachmentRemoved {
                    attachment_id,
                    storage_key: storage_key.clone(),
                }])
            }
            TaskCommand::Delete { actor } => {
                project_access(services, state.project_id, actor).await?;
                Ok(vec![TaskEvent::TaskDeleted])
            }
        }
    }
}

/// Asks for the project and checks, in order: it exists (`ProjectNotFound`), the actor is
/// its owner, a member or an admin (`Forbidden`), it is not archived (`ProjectArchived`).
async fn project_access(
    services: &dyn TaskServices,
    project_id: Uuid,
    actor: Actor,
) -> Result<ProjectAccess, TaskError> {
    let access = services
        .project_access(project_id)
        .await?
        .ok_or(TaskError::ProjectNotFound)?;
    if !access.admits(&actor) {
        return Err(TaskError::Forbidden);
    }
    if access.archived {
        return Err(TaskError::ProjectArchived);
    }
    Ok(access)
}

fn ensure_assignable(access: &ProjectAccess, assignee_id: Uuid) -> Result<(), TaskError> {
    if access.includes(assignee_id) {
        Ok(())
    } else {
        Err(TaskError::AssigneeNotMember { assignee_id })
    }
}

impl Aggregate for Task {
    const TYPE: &'static str = crate::AggregateType::Task.as_str();
    type Command = TaskCommand;
    type Event = TaskEvent;
    type Error = TaskError;
    type Services = TaskServicesHandle;

    async fn handle(
        &mut self,
        command: Self::Command,
        services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let events = self.decide(command, services.as_ref()).await?;
        for event in events {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        if let TaskEvent::TaskCreated {
            task_id,
            project_id,
            title,
            description,
            assignee_id,
            due_date,
            status,
            created_by,
            priority,
            labels,
        } = event
        {
            self.state = Some(TaskState {
                task_id,
                project_id,
                title,
                description,
                assignee_id,
                due_date,
                status,
                created_by,
                priority,
                labels,
                attachments: BTreeMap::new(),
                deleted: false,
            });
            return;
        }
        let Some(state) = &mut self.state else {
            return;
        };
        match event {
            TaskEvent::TaskCreated { .. } => {}
            TaskEvent::TaskEdited { title, description } => {
                if let Some(title) = title {
                    state.title = title;
                }
                if let Some(description) = description {
                    state.description = description;
                }
            }
            TaskEvent::TaskAssigned { assignee_id } => state.assignee_id = Some(assignee_id),
            TaskEvent::TaskUnassigned { .. } => state.assignee_id = None,
            TaskEvent::TaskStatusChanged { to, .. } => state.status = to,
            TaskEvent::TaskDueDateChanged { due_date } => state.due_date = due_date,
            TaskEvent::TaskPriorityChanged { to, .. } => state.priority = to,
            TaskEvent::TaskLabelAdded { label } => {
                state.labels.insert(label);
            }
            TaskEvent::TaskLabelRemoved { label } => {
                state.labels.remove(&label);
            }
            TaskEvent::AttachmentAdded { attachment, .. } => {
                state
                    .attachments
                    .insert(attachment.attachment_id, attachment.storage_key);
            }
            TaskEvent::AttachmentRemoved { attachment_id, .. } => {
                state.attachments.remove(&attachment_id);
            }
            TaskEvent::TaskDeleted => state.deleted = true,
        }
    }
}

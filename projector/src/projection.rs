//! The pure part of the projections: decoding an envelope and applying one event to the
//! document of its aggregate, the notifications an event causes, and the statistics of a set of
//! tasks. No I/O here: the live projector ([`crate::store`]) and the replay ([`crate::model`])
//! both build on these functions, so they produce the same documents.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use domain::{AggregateType, ProjectEvent, TaskEvent, UserEvent};
use event_store::read::Envelope;
use read_model::documents::{
    AttachmentView, NotificationView, ProjectView, TaskView, UserView, kind, status,
};
use read_model::keys;

/// A decoded domain event.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// An event of a user.
    User(UserEvent),
    /// An event of a project.
    Project(ProjectEvent),
    /// An event of a task.
    Task(TaskEvent),
}

/// Why an event cannot be projected (it gets parked).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Poison(pub String);

/// Decodes the payload of `envelope` as the event of its aggregate type, upcast first from the
/// version it was stored with ([`domain::upcast`]).
///
/// # Errors
/// A payload that is not one of its aggregate's events, or a version this build does not read.
pub fn decode(envelope: &Envelope) -> Result<Event, Poison> {
    let (payload, _) = domain::upcast::upcast(
        envelope.aggregate_type,
        &envelope.event_type,
        &envelope.event_version,
        envelope.payload.clone(),
    )
    .map_err(|error| Poison(error.to_string()))?;
    let decoded = match envelope.aggregate_type {
        AggregateType::User => serde_json::from_value(payload).map(Event::User),
        AggregateType::Project => serde_json::from_value(payload).map(Event::Project),
        AggregateType::Task => serde_json::from_value(payload).map(Event::Task),
    };
    decoded.map_err(|error| {
        Poison(format!(
            "cannot decode {} {} payload: {error}",
            envelope.aggregate_type, envelope.event_type
        ))
    })
}

fn occurred(envelope: &Envelope) -> DateTime<Utc> {
    read_model::time::truncate(envelope.occurred_at)
}

fn missing(envelope: &Envelope) -> Poison {
    Poison(format!(
        "{} {} at sequence {} applies to a {} that does not exist",
        envelope.aggregate_type, envelope.event_type, envelope.sequence, envelope.aggregate_type
    ))
}

fn exists(envelope: &Envelope) -> Poison {
    Poison(format!(
        "{} at sequence {} creates a {} that already exists",
        envelope.event_type, envelope.sequence, envelope.aggregate_type
    ))
}

/// Applies a user event to the user's document (`None` before registration).
///
/// # Errors
/// A creation of an existing user, or a change of a missing one.
pub fn apply_user(
    document: Option<UserView>,
    envelope: &Envelope,
    event: &UserEvent,
) -> Result<UserView, Poison> {
    let at = occurred(envelope);
    let mut user = match (document, event) {
        (
            None,
            UserEvent::UserRegistered {
                user_id,
                username,
                email,
                first_name,
                last_name,
                age,
                role,
                ..
            },
        ) => UserView {
            id: user_id.to_string(),
            username: username.as_str().to_owned(),
            username_lower: username.as_str().to_lowercase(),
            email: email.as_str().to_owned(),
            first_name: first_name.as_str().to_owned(),
            first_name_lower: first_name.as_str().to_lowercase(),
            last_name: last_name.as_str().to_owned(),
            last_name_lower: last_name.as_str().to_lowercase(),
            age: age.map(domain::Age::get),
            role: role.as_str().to_owned(),
            active: true,
            created_at: at,
            updated_at: at,
            notifications_read_up_to: None,
            version: 0,
        },
        (Some(_), UserEvent::UserRegistered { .. }) => return Err(exists(envelope)),
        (None, _) => return Err(missing(envelope)),
        (Some(mut user), event) => {
            match event {
                UserEvent::UserRegistered { .. } => {}
                UserEvent::UserProfileChanged {
                    email,
                    first_name,
                    last_name,
                    age,
                } => {
                    if let Some(email) = email {
                        email.as_str().clone_into(&mut user.email);
                    }
                    if let Some(first_name) = first_name {
                        first_name.as_str().clone_into(&mut user.first_name);
                        user.first_name_lower = first_name.as_str().to_lowercase();
                    }
                    if let Some(last_name) = last_name {
                        last_name.as_str().clone_into(&mut user.last_name);
                        user.last_name_lower = last_name.as_str().to_lowercase();
                    }
                    if let Some(age) = age {
                        user.age = age.map(domain::Age::get);
                    }
                }
                UserEvent::UserPasswordChanged { .. } => {}
                UserEvent::UserRoleChanged { role } => role.as_str().clone_into(&mut user.role),
                UserEvent::UserDeactivated => user.active = false,
                UserEvent::UserNotificationsRead { up_to } => {
                    user.notifications_read_up_to = Some(read_model::time::truncate(*up_to));
                }
            }
            user
        }
    };
    user.updated_at = at;
    user.version = envelope.sequence;
    Ok(user)
}

/// Applies a project event to the project's document (`None` before creation).
///
/// # Errors
/// A creation of an existing project, or a change of a missing one.
pub fn apply_project(
    document: Option<ProjectView>,
    envelope: &Envelope,
    event: &ProjectEvent,
) -> Result<ProjectView, Poison> {
    let at = occurred(envelope);
    let mut project = match (document, event) {
        (
            None,
            ProjectEvent::ProjectCreated {
                project_id,
                owner_id,
                name,
                description,
                deadline,
            },
        ) => ProjectView {
            id: project_id.to_string(),
            name: name.as_str().to_owned(),
            name_lower: name.as_str().to_lowercase(),
            description: description.as_str().to_owned(),
            owner_id: owner_id.to_string(),
            member_ids: Vec::new(),
            deadline: *deadline,
            archived: false,
            created_at: at,
            updated_at: at,
            version: 0,
        },
        (Some(_), ProjectEvent::ProjectCreated { .. }) => return Err(exists(envelope)),
        (None, _) => return Err(missing(envelope)),
        (Some(mut project), event) => {
            match event {
                ProjectEvent::ProjectCreated { .. } => {}
                ProjectEvent::ProjectRenamed { name } => {
                    name.as_str().clone_into(&mut project.name);
                    project.name_lower = name.as_str().to_lowercase();
                }
                ProjectEvent::ProjectDescribed { description } => {
                    description.as_str().clone_into(&mut project.description);
                }
                ProjectEvent::ProjectDeadlineChanged { deadline } => project.deadline = *deadline,
                ProjectEvent::ProjectMemberAdded { user_id } => {
                    let id = user_id.to_string();
                    if !project.member_ids.contains(&id) {
                        project.member_ids.push(id);
                    }
                }
                ProjectEvent::ProjectMemberRemoved { user_id } => {
                    let id = user_id.to_string();
                    project.member_ids.retain(|member| *member != id);
                }
                ProjectEvent::ProjectArchived => project.archived = true,
            }
            project
        }
    };
    project.updated_at = at;
    project.version = envelope.sequence;
    Ok(project)
}

/// Applies a task event to the task's document (`None` before creation).
///
/// # Errors
/// A creation of an existing task, or a change of a missing one.
pub fn apply_task(
    document: Option<TaskView>,
    envelope: &Envelope,
    event: &TaskEvent,
) -> Result<TaskView, Poison> {
    let at = occurred(envelope);
    let mut task = match (document, event) {
        (
            None,
            TaskEvent::TaskCreated {
                task_id,
                project_id,
                title,
                description,
                assignee_id,
                due_date,
                status: initial,
                created_by,
                priority,
                labels,
            },
        ) => TaskView {
            id: task_id.to_string(),
            project_id: project_id.to_string(),
            title: title.as_str().to_owned(),
            title_lower: title.as_str().to_lowercase(),
            description: description.as_str().to_owned(),
            status: initial.as_str().to_owned(),
            priority: priority.as_str().to_owned(),
            priority_rank: Some(priority.rank()),
            labels: labels
                .iter()
                .map(|label| label.as_str().to_owned())
                .collect(),
            attachments: Vec::new(),
            assignee_id: assignee_id.map(|id| id.to_string()),
            created_by: created_by.to_string(),
            due_date: *due_date,
            completed_on: (initial.as_str() == status::DONE).then(|| at.date_naive()),
            created_at: at,
            updated_at: at,
            deleted: false,
            version: 0,
        },
        (Some(_), TaskEvent::TaskCreated { .. }) => return Err(exists(envelope)),
        (None, _) => return Err(missing(envelope)),
        (Some(mut task), event) => {
            match event {
                TaskEvent::TaskCreated { .. } => {}
                TaskEvent::TaskEdited { title, description } => {
                    if let Some(title) = title {
                        title.as_str().clone_into(&mut task.title);
                        task.title_lower = title.as_str().to_lowercase();
                    }
                    if let Some(description) = description {
                        description.as_str().clone_into(&mut task.description);
                    }
                }
                TaskEvent::TaskAssigned { assignee_id } => {
                    task.assignee_id = Some(assignee_id.to_string());
                }
                TaskEvent::TaskUnassigned { .. } => task.assignee_id = None,
                TaskEvent::TaskStatusChanged { to, .. } => {
                    to.as_str().clone_into(&mut task.status);
                    task.completed_on = (to.as_str() == status::DONE).then(|| at.date_naive());
                }
                TaskEvent::TaskDueDateChanged { due_date } => task.due_date = *due_date,
                TaskEvent::TaskPriorityChanged { to, .. } => {
                    to.as_str().clone_into(&mut task.priority);
                    task.priority_rank = Some(to.rank());
                }
                TaskEvent::TaskLabelAdded { label } => {
                    if let Err(at) = task
                        .labels
                        .binary_search_by(|l| l.as_str().cmp(label.as_str()))
                    {
                        task.labels.insert(at, label.as_str().to_owned());
                    }
                }
                TaskEvent::TaskLabelRemoved { label } => {
                    task.labels.retain(|l| l != label.as_str());
                }
                TaskEvent::AttachmentAdded {
                    attachment,
                    uploaded_by,
                } => {
                    let id = attachment.attachment_id.to_string();
                    task.attachments.retain(|a| a.id != id);
                    task.attachments.push(AttachmentView {
                        id,
                        file_name: attachment.file_name.as_str().to_owned(),
                        content_type: attachment.content_type.clone(),
                        size: attachment.size,
                        sha256: attachment.sha256.clone(),
                        storage_key: attachment.storage_key.clone(),
                        uploaded_by: uploaded_by.to_string(),
                        uploaded_at: at,
                    });
                }
                TaskEvent::AttachmentRemoved { attachment_id, .. } => {
                    let id = attachment_id.to_string();
                    task.attachments.retain(|a| a.id != id);
                }
                TaskEvent::TaskDeleted => task.deleted = true,
            }
            task
        }
    };
    task.updated_at = at;
    task.version = envelope.sequence;
    Ok(task)
}

/// The notifications a task event causes, given the task after the event (ids are
/// deterministic, so writing them twice is harmless).
#[must_use]
pub fn notifications(
    envelope: &Envelope,
    event: &TaskEvent,
    task: &TaskView,
) -> Vec<NotificationView> {
    let actor = envelope.metadata.user_id.map(|user_id| user_id.to_string());
    let notify = |recipient: &str, kind: &str, message: String| NotificationView {
        id: format!("{}:{recipient}", envelope.event_id),
        user_id: recipient.to_owned(),
        kind: kind.to_owned(),
        task_id: task.id.clone(),
        project_id: task.project_id.clone(),
        message,
        actor_id: actor.clone(),
        created_at: occurred(envelope),
    };
    let not_the_actor = |recipient: &str| actor.as_deref() != Some(recipient);
    match event {
        TaskEvent::TaskCreated {
            assignee_id: Some(assignee),
            ..
        }
        | TaskEvent::TaskAssigned {
            assignee_id: assignee,
        } => {
            let assignee = assignee.to_string();
            if not_the_actor(&assignee) {
                vec![notify(
                    &assignee,
                    kind::TASK_ASSIGNED,
                    format!("You were assigned the task \"{}\"", task.title),
                )]
            } else {
                Vec::new()
            }
        }
        TaskEvent::TaskStatusChanged { from, to } => {
            if not_the_actor(&task.created_by) {
                vec![notify(
                    &task.created_by,
                    kind::TASK_STATUS_CHANGED,
                    format!("The task \"{}\" moved from {from} to {to}", task.title),
                )]
            } else {
                Vec::new()
            }
        }
        _ => Vec::new(),
    }
}

/// The overdue notification of `task` (made once per task and due date by the deadline job), or
/// `None` if the task is not overdue on `today`. It goes to the assignee, else the creator; its
/// time is the start of the first overdue day, so it is the same whenever the job runs.
#[must_use]
pub fn overdue_notification(task: &TaskView, today: NaiveDate) -> Option<NotificationView> {
    if !task.is_overdue(today) {
        return None;
    }
    let due = task.due_date?;
    let first_overdue_day = due.succ_opt()?;
    let recipient = task
        .assignee_id
        .clone()
        .unwrap_or_else(|| task.created_by.clone());
    Some(NotificationView {
        id: format!("overdue:{}:{}", task.id, due.format("%Y-%m-%d")),
        user_id: recipient,
        kind: kind::TASK_OVERDUE.to_owned(),
        task_id: task.id.clone(),
        project_id: task.project_id.clone(),
        message: format!("The task \"{}\" is overdue (due {due})", task.title),
        actor_id: None,
        created_at: first_overdue_day.and_time(NaiveTime::MIN).and_utc(),
    })
}

/// The users whose statistics a task event may change: the assignee before and after.
#[must_use]
pub fn affected_assignees(before: Option<&TaskView>, after: &TaskView) -> Vec<String> {
    let mut users: Vec<String> = before
        .and_then(|task| task.assignee_id.clone())
        .into_iter()
        .chain(after.assignee_id.clone())
        .collect();
    users.sort();
    users.dedup();
    users
}

/// The counter fields of a project's stats hash (zero counts are left out).
pub fn project_stats<'a>(tasks: impl IntoIterator<Item = &'a TaskView>) -> BTreeMap<String, i64> {
    let mut fields = BTreeMap::new();
    for task in tasks.into_iter().filter(|task| !task.deleted) {
        *fields.entry(keys::status_field(&task.status)).or_default() += 1;
        if task.priority_rank.is_some() {
            *fields
                .entry(keys::priority_field(&task.priority))
                .or_default() += 1;
        }
        for label in &task.labels {
            *fields.entry(keys::label_field(label)).or_default() += 1;
        }
        if let Some(assignee) = &task.assignee_id {
            *fields
                .entry(keys::assignee_field(assignee, &task.status))
                .or_default() += 1;
        }
        if let Some(day) = task.completed_on {
            *fields.entry(keys::done_field(day)).or_default() += 1;
        }
    }
    fields
}

/// The counter fields of an assignee's stats hash, from the tasks assigned to them.
pub fn user_stats<'a>(tasks: impl IntoIterator<Item = &'a TaskView>) -> BTreeMap<String, i64> {
    let mut fields = BTreeMap::new();
    for task in tasks.into_iter().filter(|task| !task.deleted) {
        *fields.entry(keys::status_field(&task.status)).or_default() += 1;
    }
    fields
}

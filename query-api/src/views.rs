//! What the query API answers: the read-model documents as API objects (`id` instead of `_id`,
//! no search helper fields, `overdue` computed, e-mail only for oneself and admins).

use chrono::{DateTime, NaiveDate, Utc};
use read_model::documents::{AttachmentView, NotificationView, ProjectView, TaskView, UserView};
use serde::Serialize;
use utoipa::ToSchema;

use crate::extract::Viewer;
use crate::store::TaskNames;

/// A user. `email` is shown only to the user themself and to admins.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct User {
    /// The user id.
    pub id: String,
    /// Login name.
    pub username: String,
    /// E-mail address (only for yourself, or for admins).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// Age in years, if given.
    pub age: Option<u8>,
    /// `user` or `admin`.
    pub role: String,
    /// False once deactivated.
    pub active: bool,
    /// When the user registered.
    pub created_at: DateTime<Utc>,
    /// When the user last changed.
    pub updated_at: DateTime<Utc>,
    /// The user's version (pass a command reply's `version` as `min_version`).
    pub version: i64,
}

impl User {
    /// The user as `viewer` may see it.
    pub fn for_viewer(user: UserView, viewer: &Viewer) -> Self {
        let own = viewer.admin || user.id == viewer.id();
        Self {
            email: own.then_some(user.email),
            id: user.id,
            username: user.username,
            first_name: user.first_name,
            last_name: user.last_name,
            age: user.age,
            role: user.role,
            active: user.active,
            created_at: user.created_at,
            updated_at: user.updated_at,
            version: user.version,
        }
    }
}

/// Tasks by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct StatusCounts {
    /// Pending.
    pub pending: i64,
    /// In progress.
    pub in_progress: i64,
    /// Done.
    pub done: i64,
    /// Cancelled.
    pub cancelled: i64,
}

impl StatusCounts {
    /// Adds `count` tasks of `status` (unknown statuses are ignored).
    pub fn add(&mut self, status: &str, count: i64) {
        use read_model::documents::status;
        match status {
            status::PENDING => self.pending += count,
            status::IN_PROGRESS => self.in_progress += count,
            status::DONE => self.done += count,
            status::CANCELLED => self.cancelled += count,
            _ => {}
        }
    }

    /// Every counted task.
    pub fn total(&self) -> i64 {
        self.pending + self.in_progress + self.done + self.cancelled
    }
}

/// Tasks by priority.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct PriorityCounts {
    /// Low.
    pub low: i64,
    /// Normal.
    pub normal: i64,
    /// High.
    pub high: i64,
    /// Urgent.
    pub urgent: i64,
}

impl PriorityCounts {
    /// Adds `count` tasks of `priority` (unknown priorities are ignored).
    pub fn add(&mut self, priority: &str, count: i64) {
        use read_model::documents::priority;
        match priority {
            priority::LOW => self.low += count,
            priority::NORMAL => self.normal += count,
            priority::HIGH => self.high += count,
            priority::URGENT => self.urgent += count,
            _ => {}
        }
    }
}

/// A project (the seeds' goal).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Project {
    /// The project id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// The owner.
    pub owner_id: String,
    /// Members other than the owner.
    pub member_ids: Vec<String>,
    /// Deadline, if any.
    pub deadline: Option<NaiveDate>,
    /// True once archived.
    pub archived: bool,
    /// Not-deleted tasks by status.
    pub task_counts: StatusCounts,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// The project's version (for `min_version`).
    pub version: i64,
}

impl Project {
    /// The project with its task counts (from its statistics,
    /// [`crate::store::ReadStore::project_counters`]).
    pub fn new(project: ProjectView, task_counts: StatusCounts) -> Self {
        Self {
            id: project.id,
            name: project.name,
            description: project.description,
            owner_id: project.owner_id,
            member_ids: project.member_ids,
            deadline: project.deadline,
            archived: project.archived,
            task_counts,
            created_at: project.created_at,
            updated_at: project.updated_at,
            version: project.version,
        }
    }
}

/// A task.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Task {
    /// The task id.
    pub id: String,
    /// Its project.
    pub project_id: String,
    /// The project's current name (absent only while the project is not yet in the read model).
    pub project_name: Option<String>,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// `pending`, `in_progress`, `done` or `cancelled`.
    pub status: String,
    /// `low`, `normal`, `high` or `urgent`.
    pub priority: String,
    /// Labels, sorted.
    pub labels: Vec<String>,
    /// Attached files, oldest first.
    pub attachments: Vec<Attachment>,
    /// Assignee, if any.
    pub assignee_id: Option<String>,
    /// The assignee's current username (absent while unassigned, or while the user is not yet in
    /// the read model).
    pub assignee_username: Option<String>,
    /// Who created it.
    pub created_by: String,
    /// Due date, if any.
    pub due_date: Option<NaiveDate>,
    /// Due before today (UTC) and still pending or in progress.
    pub overdue: bool,
    /// The day it was last marked done (while done).
    pub completed_on: Option<NaiveDate>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// The task's version (for `min_version`).
    pub version: i64,
}

impl Task {
    /// The task as seen on `today` (which decides `overdue`), with its project's and assignee's
    /// names from `names`.
    pub fn on(mut task: TaskView, today: NaiveDate, names: &TaskNames) -> Self {
        let attachments = std::mem::take(&mut task.attachments)
            .into_iter()
            .map(|attachment| Attachment::of(&task.id, attachment))
            .collect();
        Self {
            overdue: task.is_overdue(today),
            project_name: names.projects.get(&task.project_id).cloned(),
            assignee_username: task
                .assignee_id
                .as_ref()
                .and_then(|id| names.users.get(id))
                .cloned(),
            id: task.id,
            project_id: task.project_id,
            title: task.title,
            description: task.description,
            status: task.status,
            priority: task.priority,
            labels: task.labels,
            attachments,
            assignee_id: task.assignee_id,
            created_by: task.created_by,
            due_date: task.due_date,
            completed_on: task.completed_on,
            created_at: task.created_at,
            updated_at: task.updated_at,
            version: task.version,
        }
    }
}

/// A file attached to a task.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Attachment {
    /// Its id.
    pub id: String,
    /// The file's name.
    pub file_name: String,
    /// Its media type, found in its bytes.
    pub content_type: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of its bytes, hex.
    pub sha256: String,
    /// Who uploaded it.
    pub uploaded_by: String,
    /// When it was attached.
    pub uploaded_at: DateTime<Utc>,
    /// Where to download it (this API; it redirects to a short-lived storage URL).
    #[schema(example = "/tasks/0190c2a4-…/attachments/0190c2a5-…")]
    pub download_path: String,
}

impl Attachment {
    fn of(task_id: &str, attachment: AttachmentView) -> Self {
        Self {
            download_path: format!("/tasks/{task_id}/attachments/{}", attachment.id),
            id: attachment.id,
            file_name: attachment.file_name,
            content_type: attachment.content_type,
            size: attachment.size,
            sha256: attachment.sha256,
            uploaded_by: attachment.uploaded_by,
            uploaded_at: attachment.uploaded_at,
        }
    }
}

/// A notification.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Notification {
    /// Its id.
    pub id: String,
    /// `task_assigned`, `task_status_changed` or `task_overdue`.
    pub kind: String,
    /// The task concerned.
    pub task_id: String,
    /// Its project.
    pub project_id: String,
    /// Human-readable text.
    pub message: String,
    /// Who caused it (absent for deadline reminders).
    pub actor_id: Option<String>,
    /// When it happened.
    pub created_at: DateTime<Utc>,
    /// Whether it was read: created at or before the time given to the last
    /// `POST /notifications/read` of the command API.
    pub read: bool,
}

impl Notification {
    /// The API form; read when created at or before the recipient's read watermark.
    #[must_use]
    pub fn new(n: NotificationView, read_up_to: Option<DateTime<Utc>>) -> Self {
        Self {
            read: read_up_to.is_some_and(|up_to| n.created_at <= up_to),
            id: n.id,
            kind: n.kind,
            task_id: n.task_id,
            project_id: n.project_id,
            message: n.message,
            actor_id: n.actor_id,
            created_at: n.created_at,
        }
    }
}

/// Today in UTC (decides `overdue`).
pub fn today() -> NaiveDate {
    Utc::now().date_naive()
}

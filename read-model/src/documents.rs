//! The read-model documents (MongoDB collections of a generation; the same structs are the JSON
//! kept in Redis). `_id` is the aggregate id; `version` is the last applied sequence of the
//! document's own aggregate; `updated_at` is the time of that event (never the wall clock), so a
//! replay rebuilds identical documents. Dates are `"YYYY-MM-DD"` strings.
//!
//! The projector may store a few extra bookkeeping fields next to these (guards of the
//! denormalized values); deserialization ignores them.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// Task statuses, as stored.
pub mod status {
    /// Not started.
    pub const PENDING: &str = "pending";
    /// Being worked on.
    pub const IN_PROGRESS: &str = "in_progress";
    /// Finished.
    pub const DONE: &str = "done";
    /// Given up.
    pub const CANCELLED: &str = "cancelled";
    /// Every status.
    pub const ALL: [&str; 4] = [PENDING, IN_PROGRESS, DONE, CANCELLED];
    /// The statuses of an open task (one that can become overdue).
    pub const OPEN: [&str; 2] = [PENDING, IN_PROGRESS];
}

/// Task priorities, as stored.
pub mod priority {
    /// Can wait.
    pub const LOW: &str = "low";
    /// The default.
    pub const NORMAL: &str = "normal";
    /// Soon.
    pub const HIGH: &str = "high";
    /// Now.
    pub const URGENT: &str = "urgent";
    /// Every priority, least urgent first (the index is its rank).
    pub const ALL: [&str; 4] = [LOW, NORMAL, HIGH, URGENT];

    pub(crate) fn normal() -> String {
        NORMAL.to_owned()
    }
}

/// Notification kinds, as stored.
pub mod kind {
    /// A task was assigned to the recipient.
    pub const TASK_ASSIGNED: &str = "task_assigned";
    /// A task the recipient created changed status.
    pub const TASK_STATUS_CHANGED: &str = "task_status_changed";
    /// A task of the recipient is past its due date.
    pub const TASK_OVERDUE: &str = "task_overdue";
}

/// A user (`users_g{N}`). Never the password hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserView {
    /// The user id.
    #[serde(rename = "_id")]
    pub id: String,
    /// Login name (lowercase already).
    pub username: String,
    /// `username` lowercased, for prefix search.
    pub username_lower: String,
    /// E-mail address as typed.
    pub email: String,
    /// First name.
    pub first_name: String,
    /// `first_name` lowercased, for prefix search.
    pub first_name_lower: String,
    /// Last name.
    pub last_name: String,
    /// `last_name` lowercased, for prefix search.
    pub last_name_lower: String,
    /// Age in years, if given.
    pub age: Option<u8>,
    /// `"user"` or `"admin"`.
    pub role: String,
    /// False once deactivated.
    pub active: bool,
    /// When the user registered.
    #[serde(with = "crate::time")]
    pub created_at: DateTime<Utc>,
    /// Time of the last applied event.
    #[serde(with = "crate::time")]
    pub updated_at: DateTime<Utc>,
    /// The user's notifications created at or before this time are read.
    #[serde(default, with = "crate::time::option")]
    pub notifications_read_up_to: Option<DateTime<Utc>>,
    /// Last applied sequence of the user.
    pub version: i64,
}

/// A project (`projects_g{N}`): its own events only. Its task counts are in its statistics
/// ([`crate::names::stats`]), which task events move without writing the project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectView {
    /// The project id.
    #[serde(rename = "_id")]
    pub id: String,
    /// Name.
    pub name: String,
    /// `name` lowercased, for search.
    pub name_lower: String,
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
    /// When the project was created.
    #[serde(with = "crate::time")]
    pub created_at: DateTime<Utc>,
    /// Time of the last applied event of the project.
    #[serde(with = "crate::time")]
    pub updated_at: DateTime<Utc>,
    /// Last applied sequence of the project.
    pub version: i64,
}

/// A task (`tasks_g{N}`). `overdue` is not stored: see [`TaskView::is_overdue`]. Neither are
/// the project's name and the assignee's username: the query API looks them up when it answers,
/// so a rename writes one document, not one per task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskView {
    /// The task id.
    #[serde(rename = "_id")]
    pub id: String,
    /// The project it belongs to.
    pub project_id: String,
    /// Title.
    pub title: String,
    /// `title` lowercased, for search.
    pub title_lower: String,
    /// Description.
    pub description: String,
    /// One of [`status::ALL`].
    pub status: String,
    /// One of [`priority::ALL`]. Documents written before priorities existed read as
    /// `normal`, which is what their events upcast to.
    #[serde(default = "priority::normal")]
    pub priority: String,
    /// The rank of `priority`, 0 (`low`) to 3 (`urgent`) (`domain::TaskPriority::rank`): what
    /// lists sort by. `None` on a document a projector
    /// wrote before priorities existed (and since, until its priority changes): the
    /// statistics did not count its priority, so they do not uncount it either; `projector
    /// replay` gives every document its rank.
    #[serde(default)]
    pub priority_rank: Option<i32>,
    /// Labels, sorted.
    #[serde(default)]
    pub labels: Vec<String>,
    /// Attached files, oldest first (metadata only; the bytes are in object storage).
    #[serde(default)]
    pub attachments: Vec<AttachmentView>,
    /// Assignee, if any.
    pub assignee_id: Option<String>,
    /// Who created it.
    pub created_by: String,
    /// Due date, if any.
    pub due_date: Option<NaiveDate>,
    /// Date of the last change to done; `None` unless done.
    pub completed_on: Option<NaiveDate>,
    /// When the task was created.
    #[serde(with = "crate::time")]
    pub created_at: DateTime<Utc>,
    /// Time of the last applied event of the task.
    #[serde(with = "crate::time")]
    pub updated_at: DateTime<Utc>,
    /// True once deleted.
    pub deleted: bool,
    /// Last applied sequence of the task.
    pub version: i64,
}

/// A file attached to a task, as its `AttachmentAdded` event recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentView {
    /// The attachment's id.
    pub id: String,
    /// The file's name.
    pub file_name: String,
    /// Its media type, found in its bytes.
    pub content_type: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of its bytes, hex.
    pub sha256: String,
    /// Where its bytes are in the bucket.
    pub storage_key: String,
    /// Who uploaded it.
    pub uploaded_by: String,
    /// When it was attached.
    #[serde(with = "crate::time")]
    pub uploaded_at: DateTime<Utc>,
}

impl TaskView {
    /// Overdue on `today` (UTC): due before today, still open, not deleted.
    #[must_use]
    pub fn is_overdue(&self, today: NaiveDate) -> bool {
        !self.deleted
            && status::OPEN.contains(&self.status.as_str())
            && self.due_date.is_some_and(|due| due < today)
    }
}

/// A notification (`notifications_g{N}`). The id is deterministic:
/// `"{event_id}:{recipient}"` or `"overdue:{task_id}:{due_date}"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationView {
    /// Deterministic id.
    #[serde(rename = "_id")]
    pub id: String,
    /// The recipient.
    pub user_id: String,
    /// One of the [`kind`] constants.
    pub kind: String,
    /// The task concerned.
    pub task_id: String,
    /// Its project.
    pub project_id: String,
    /// Human-readable text.
    pub message: String,
    /// Who caused it (`None` for the deadline job).
    pub actor_id: Option<String>,
    /// The causing event's time (for overdue: the start of the first overdue day). Read or
    /// unread is not stored here: it is `created_at <= UserView::notifications_read_up_to` of
    /// the recipient, which stays right whatever order the two aggregates' events arrive in.
    #[serde(with = "crate::time")]
    pub created_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_in_json() {
        let time = DateTime::parse_from_rfc3339("2026-01-02T03:04:05.678Z")
            .expect("valid")
            .with_timezone(&Utc);
        let notification = NotificationView {
            id: "n".into(),
            user_id: "u".into(),
            kind: kind::TASK_ASSIGNED.into(),
            task_id: "t".into(),
            project_id: "p".into(),
            message: "m".into(),
            actor_id: None,
            created_at: time,
        };
        let json = serde_json::to_value(&notification).expect("serializes");
        assert_eq!(json["created_at"], "2026-01-02T03:04:05.678Z");
        let back: NotificationView = serde_json::from_value(json).expect("deserializes");
        assert_eq!(back, notification);
    }

    #[test]
    fn overdue_is_computed() {
        let day = |d| NaiveDate::from_ymd_opt(2026, 1, d).expect("valid");
        let mut task = TaskView {
            id: "t".into(),
            project_id: "p".into(),
            title: "T".into(),
            title_lower: "t".into(),
            description: String::new(),
            status: status::PENDING.into(),
            priority: priority::NORMAL.into(),
            priority_rank: Some(1),
            labels: Vec::new(),
            attachments: Vec::new(),
            assignee_id: None,
            created_by: "u".into(),
            due_date: Some(day(2)),
            completed_on: None,
            created_at: Utc::now(),
            updated_at: Utc::now(),
            deleted: false,
            version: 1,
        };
        assert!(task.is_overdue(day(3)));
        assert!(!task.is_overdue(day(2)));
        task.status = status::DONE.into();
        assert!(!task.is_overdue(day(3)));
    }
}

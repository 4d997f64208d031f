//! The change feed: a Redis stream (`{prefix}:changes`) on which the live projector appends
//! every project, task and notification document a batch wrote, after the batch committed, for
//! the query API's `GET /stream`. Every query-API replica reads the same stream, so every
//! replica can serve every client, and a client that reconnects names the last entry it got
//! (the SSE `Last-Event-ID` is the entry id) and is sent what it missed while the stream still
//! holds it.
//!
//! The stream is trimmed to about `max_len` entries (`XADD … MAXLEN ~`): that is the window a
//! client may be away and still resume. It is a notification channel, not a read model: it is
//! not rebuilt by a replay, and a redelivered batch appends its changes again (a client sees the
//! same version twice; versions tell).

use std::collections::HashMap;

use serde::Serialize;

use crate::documents::{NotificationView, ProjectView, TaskView};

/// What kind of document changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A project (its members decide who sees it).
    Project,
    /// A task (seen by whoever sees its project).
    Task,
    /// A notification (seen by its recipient only).
    Notification,
}

impl Kind {
    /// The name on the stream (and the SSE `event:`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Project => "project",
            Self::Task => "task",
            Self::Notification => "notification",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        [Self::Project, Self::Task, Self::Notification]
            .into_iter()
            .find(|kind| kind.as_str() == name)
    }
}

/// One entry of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// What changed.
    pub kind: Kind,
    /// The document's id.
    pub id: String,
    /// Its version (a notification's is 0: it never changes).
    pub version: i64,
    /// The project it belongs to (a project's own id).
    pub project_id: String,
    /// Who may see a project (owner and members) or a notification (its recipient); empty for a
    /// task, which whoever sees its project sees.
    pub audience: Vec<String>,
    /// The document as stored (JSON of [`ProjectView`], [`TaskView`] or [`NotificationView`]).
    pub document: String,
}

/// The stream's key.
#[must_use]
pub fn key(prefix: &str) -> String {
    format!("{prefix}:changes")
}

/// The entries a stream holds unless the projector's settings say otherwise.
pub const DEFAULT_MAX_LEN: usize = 10_000;

impl Change {
    /// A project's change.
    ///
    /// # Errors
    /// The document does not encode (never, for these types).
    pub fn of_project(project: &ProjectView) -> serde_json::Result<Self> {
        let mut audience = vec![project.owner_id.clone()];
        audience.extend(project.member_ids.iter().cloned());
        Ok(Self {
            kind: Kind::Project,
            id: project.id.clone(),
            version: project.version,
            project_id: project.id.clone(),
            audience,
            document: serde_json::to_string(project)?,
        })
    }

    /// A task's change.
    ///
    /// # Errors
    /// The document does not encode.
    pub fn of_task(task: &TaskView) -> serde_json::Result<Self> {
        Ok(Self {
            kind: Kind::Task,
            id: task.id.clone(),
            version: task.version,
            project_id: task.project_id.clone(),
            audience: Vec::new(),
            document: serde_json::to_string(task)?,
        })
    }

    /// A new notification.
    ///
    /// # Errors
    /// The document does not encode.
    pub fn of_notification(notification: &NotificationView) -> serde_json::Result<Self> {
        Ok(Self {
            kind: Kind::Notification,
            id: notification.id.clone(),
            version: 0,
            project_id: notification.project_id.clone(),
            audience: vec![notification.user_id.clone()],
            document: serde_json::to_string(notification)?,
        })
    }

    /// The entry's field/value pairs, for `XADD`.
    #[must_use]
    pub fn fields(&self) -> [(&'static str, String); 6] {
        [
            ("kind", self.kind.as_str().to_owned()),
            ("id", self.id.clone()),
            ("version", self.version.to_string()),
            ("project_id", self.project_id.clone()),
            ("audience", self.audience.join(",")),
            ("document", self.document.clone()),
        ]
    }

    /// The change of an entry's fields; `None` for an entry this build does not understand
    /// (a newer projector's), which readers skip.
    #[must_use]
    pub fn from_fields(fields: &HashMap<String, String>) -> Option<Self> {
        let audience = fields.get("audience")?;
        Some(Self {
            kind: Kind::parse(fields.get("kind")?)?,
            id: fields.get("id")?.clone(),
            version: fields.get("version")?.parse().ok()?,
            project_id: fields.get("project_id")?.clone(),
            audience: audience
                .split(',')
                .filter(|user| !user.is_empty())
                .map(str::to_owned)
                .collect(),
            document: fields.get("document")?.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_reads_back_as_it_was_written() {
        let change = Change {
            kind: Kind::Project,
            id: "p".to_owned(),
            version: 3,
            project_id: "p".to_owned(),
            audience: vec!["owner".to_owned(), "member".to_owned()],
            document: "{}".to_owned(),
        };
        let fields: HashMap<String, String> = change
            .fields()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        assert_eq!(Change::from_fields(&fields), Some(change));
        let mut unknown = fields.clone();
        unknown.insert("kind".to_owned(), "comment".to_owned());
        assert_eq!(Change::from_fields(&unknown), None);
        let mut task = fields;
        task.insert("audience".to_owned(), String::new());
        assert_eq!(
            Change::from_fields(&task).map(|c| c.audience),
            Some(Vec::new())
        );
    }
}

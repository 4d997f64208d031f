//! Events of the `Project` aggregate.

use chrono::NaiveDate;
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::values::{Description, ProjectName};

/// Something that happened to a project. Serialized externally tagged:
/// `{"ProjectCreated": {...}}`, `"ProjectArchived"`. Dates are `"YYYY-MM-DD"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ProjectEvent {
    /// The project was created.
    ProjectCreated {
        /// The project's id.
        project_id: Uuid,
        /// The owner (the creator).
        owner_id: Uuid,
        /// Name.
        name: ProjectName,
        /// Description.
        description: Description,
        /// Deadline, if any.
        deadline: Option<NaiveDate>,
    },
    /// The project got a new name.
    ProjectRenamed {
        /// The new name.
        name: ProjectName,
    },
    /// The project got a new description.
    ProjectDescribed {
        /// The new description.
        description: Description,
    },
    /// The deadline was set, moved or cleared (`None`).
    ProjectDeadlineChanged {
        /// The new deadline, `None` = no deadline.
        deadline: Option<NaiveDate>,
    },
    /// A user became a member.
    ProjectMemberAdded {
        /// The new member.
        user_id: Uuid,
    },
    /// A member left or was removed.
    ProjectMemberRemoved {
        /// The former member.
        user_id: Uuid,
    },
    /// The project was archived.
    ProjectArchived,
}

impl DomainEvent for ProjectEvent {
    fn event_type(&self) -> String {
        match self {
            Self::ProjectCreated { .. } => "ProjectCreated",
            Self::ProjectRenamed { .. } => "ProjectRenamed",
            Self::ProjectDescribed { .. } => "ProjectDescribed",
            Self::ProjectDeadlineChanged { .. } => "ProjectDeadlineChanged",
            Self::ProjectMemberAdded { .. } => "ProjectMemberAdded",
            Self::ProjectMemberRemoved { .. } => "ProjectMemberRemoved",
            Self::ProjectArchived => "ProjectArchived",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        crate::upcast::current_version(crate::AggregateType::Project, &self.event_type()).to_owned()
    }
}

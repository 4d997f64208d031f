//! Commands the `Project` aggregate accepts.

use chrono::NaiveDate;
use uuid::Uuid;

use crate::actor::Actor;
use crate::values::{Description, ProjectName};

/// A request to change a project. The aggregate id is the project id.
#[derive(Debug, Clone, PartialEq)]
pub enum ProjectCommand {
    /// Create the project; the actor becomes its owner.
    Create {
        /// The new project's id (must equal the aggregate id).
        project_id: Uuid,
        /// Who creates it (the owner).
        actor: Actor,
        /// Name.
        name: ProjectName,
        /// Description (may be empty).
        description: Description,
        /// Optional deadline.
        deadline: Option<NaiveDate>,
    },
    /// Change some fields (owner or admin). `None` = leave as is; `deadline: Some(None)`
    /// clears the deadline. One event per field that really changes, in the order
    /// name, description, deadline; nothing changed → no event.
    Update {
        /// Who asks.
        actor: Actor,
        /// New name.
        name: Option<ProjectName>,
        /// New description.
        description: Option<Description>,
        /// New deadline: `Some(Some(date))` sets it, `Some(None)` clears it.
        deadline: Option<Option<NaiveDate>>,
    },
    /// Add a member (owner or admin). The user must exist and be active.
    AddMember {
        /// Who asks.
        actor: Actor,
        /// The user to add.
        user_id: Uuid,
    },
    /// Remove a member (owner or admin, or a member removing themself). The owner cannot be
    /// removed.
    RemoveMember {
        /// Who asks.
        actor: Actor,
        /// The member to remove.
        user_id: Uuid,
    },
    /// Archive the project (owner or admin). An archived project accepts no command.
    Archive {
        /// Who asks.
        actor: Actor,
    },
}

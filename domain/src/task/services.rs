//! What the `Task` aggregate asks outside itself: who may work in a project.

use std::collections::BTreeSet;
use std::sync::Arc;

use uuid::Uuid;

use crate::BoxFuture;
use crate::actor::Actor;
use crate::error::ServiceError;

/// Who belongs to a project and whether it is archived: what a task needs to decide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectAccess {
    /// The project's owner.
    pub owner_id: Uuid,
    /// Members other than the owner (the owner may be listed too; it makes no difference).
    pub members: BTreeSet<Uuid>,
    /// Whether the project is archived.
    pub archived: bool,
}

impl ProjectAccess {
    /// Whether the user is the owner or a member.
    #[must_use]
    pub fn includes(&self, user_id: Uuid) -> bool {
        self.owner_id == user_id || self.members.contains(&user_id)
    }

    /// Whether the actor may work on the project's tasks (owner, member or admin).
    #[must_use]
    pub fn admits(&self, actor: &Actor) -> bool {
        actor.is_admin() || self.includes(actor.user_id)
    }
}

/// Look-ups for the `Task` aggregate, implemented by the command API against its
/// write-side tables. Implement each method as `Box::pin(async move { ... })`.
pub trait TaskServices: Send + Sync {
    /// The project's access data, or `None` if no such project exists.
    fn project_access(
        &self,
        project_id: Uuid,
    ) -> BoxFuture<'_, Result<Option<ProjectAccess>, ServiceError>>;
}

/// The `Services` type of the `Task` aggregate.
pub type TaskServicesHandle = Arc<dyn TaskServices>;

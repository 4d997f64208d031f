//! The `Project` aggregate: `handle` decides, `apply` mutates.

use std::collections::BTreeSet;

use chrono::NaiveDate;
use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{ProjectCommand, ProjectError, ProjectEvent, ProjectServices, ProjectServicesHandle};
use crate::actor::Actor;
use crate::values::{Description, ProjectName};

/// A project. `Default` is "not created".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Project {
    state: Option<ProjectState>,
}

/// The state of a created project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProjectState {
    /// The project's id.
    pub project_id: Uuid,
    /// The owner; not listed in `members`, but counts as one.
    pub owner_id: Uuid,
    /// Name.
    pub name: ProjectName,
    /// Description.
    pub description: Description,
    /// Deadline, if any.
    pub deadline: Option<NaiveDate>,
    /// Members other than the owner.
    pub members: BTreeSet<Uuid>,
    /// `true` once archived.
    pub archived: bool,
}

impl ProjectState {
    /// Whether the user is the owner or a member.
    #[must_use]
    pub fn includes(&self, user_id: Uuid) -> bool {
        self.owner_id == user_id || self.members.contains(&user_id)
    }

    /// The owner or an admin.
    fn authorize_owner(&self, actor: Actor) -> Result<(), ProjectError> {
        if actor.is_self_or_admin(self.owner_id) {
            Ok(())
        } else {
            Err(ProjectError::Forbidden)
        }
    }
}

impl Project {
    /// The created project's state, or `None` if not created.
    #[must_use]
    pub const fn state(&self) -> Option<&ProjectState> {
        self.state.as_ref()
    }

    /// Decides a command without changing state: the events to write, or a refusal.
    async fn decide(
        &self,
        command: ProjectCommand,
        services: &dyn ProjectServices,
    ) -> Result<Vec<ProjectEvent>, ProjectError> {
        if let ProjectCommand::Create {
            project_id,
            actor,
            name,
            description,
            deadline,
        } = command
        {
            if self.state.is_some() {
                return Err(ProjectError::AlreadyExists);
            }
            return Ok(vec![ProjectEvent::ProjectCreated {
                project_id,
                owner_id: actor.user_id,
                name,
                description,
                deadline,
            }]);
        }

        let state = self.state.as_ref().ok_or(ProjectError::NotFound)?;
        match command {
            ProjectCommand::Create { .. } => Err(ProjectError::AlreadyExists),
            ProjectCommand::Update {
                actor,
                name,
                description,
                deadline,
            } => {
                state.authorize_owner(actor)?;
                ensure_not_archived(state)?;
                let mut events = Vec::new();
                if let Some(name) = name.filter(|name| *name != state.name) {
                    events.push(ProjectEvent::ProjectRenamed { name });
                }
                if let Some(description) =
                    description.filter(|description| *description != state.description)
                {
                    events.push(ProjectEvent::ProjectDescribed { description });
                }
                if let Some(deadline) = deadline.filter(|deadline| *deadline != state.deadline) {
                    events.push(ProjectEvent::ProjectDeadlineChanged { deadline });
                }
                Ok(events)
            }
            ProjectCommand::AddMember { actor, user_id } => {
                state.authorize_owner(actor)?;
                ensure_not_archived(state)?;
                if state.includes(user_id) {
                    return Err(ProjectError::AlreadyMember);
                }
                match services.user_status(user_id).await? {
                    None => Err(ProjectError::UserNotFound),
                    Some(status) if !status.active => Err(ProjectError::UserInactive),
                    Some(_) => Ok(vec![ProjectEvent::ProjectMemberAdded { user_id }]),
                }
            }
            ProjectCommand::RemoveMember { actor, user_id } => {
                if actor.user_id != user_id {
                    state.authorize_owner(actor)?;
                }
                ensure_not_archived(state)?;
                if user_id == state.owner_id {
                    return Err(ProjectError::OwnerCannotBeRemoved);
                }
                if !state.members.contains(&user_id) {
                    return Err(ProjectError::NotAMember);
                }
                Ok(vec![ProjectEvent::ProjectMemberRemoved { user_id }])
            }
            ProjectCommand::Archive { actor } => {
                state.authorize_owner(actor)?;
                ensure_not_archived(state)?;
                Ok(vec![ProjectEvent::ProjectArchived])
            }
        }
    }
}

fn ensure_not_archived(state: &ProjectState) -> Result<(), ProjectError> {
    if state.archived {
        Err(ProjectError::Archived)
    } else {
        Ok(())
    }
}

impl Aggregate for Project {
    const TYPE: &'static str = crate::AggregateType::Project.as_str();
    type Command = ProjectCommand;
    type Event = ProjectEvent;
    type Error = ProjectError;
    type Services = ProjectServicesHandle;

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
        if let ProjectEvent::ProjectCreated {
            project_id,
            owner_id,
            name,
            description,
            deadline,
        } = event
        {
            self.state = Some(ProjectState {
                project_id,
                owner_id,
                name,
                description,
                deadline,
                members: BTreeSet::new(),
                archived: false,
            });
            return;
        }
        let Some(state) = &mut self.state else {
            return;
        };
        match event {
            ProjectEvent::ProjectCreated { .. } => {}
            ProjectEvent::ProjectRenamed { name } => state.name = name,
            ProjectEvent::ProjectDescribed { description } => state.description = description,
            ProjectEvent::ProjectDeadlineChanged { deadline } => state.deadline = deadline,
            ProjectEvent::ProjectMemberAdded { user_id } => {
                state.members.insert(user_id);
            }
            ProjectEvent::ProjectMemberRemoved { user_id } => {
                state.members.remove(&user_id);
            }
            ProjectEvent::ProjectArchived => state.archived = true,
        }
    }
}

//! The `User` aggregate: `handle` decides, `apply` mutates.

use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{UserCommand, UserError, UserEvent, UserServices, UserServicesHandle};
use crate::actor::{Actor, Role};
use crate::values::{Age, Email, PersonName, Username};

/// A user account. `Default` is "not registered".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct User {
    profile: Option<UserProfile>,
}

/// The state of a registered user (the password hash is not kept: no decision needs it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserProfile {
    /// The user's id.
    pub user_id: Uuid,
    /// Login name.
    pub username: Username,
    /// E-mail address as typed.
    pub email: Email,
    /// First name.
    pub first_name: PersonName,
    /// Last name.
    pub last_name: PersonName,
    /// Age, if known.
    pub age: Option<Age>,
    /// Role.
    pub role: Role,
    /// `false` once deactivated.
    pub active: bool,
    /// Notifications created at or before this time are read.
    #[serde(default)]
    pub notifications_read_up_to: Option<DateTime<Utc>>,
}

impl User {
    /// The registered user's state, or `None` if not registered.
    #[must_use]
    pub const fn profile(&self) -> Option<&UserProfile> {
        self.profile.as_ref()
    }

    /// Whether the user is registered.
    #[must_use]
    pub const fn is_registered(&self) -> bool {
        self.profile.is_some()
    }

    /// Decides a command without changing state: the events to write, or a refusal.
    async fn decide(
        &self,
        command: UserCommand,
        services: &dyn UserServices,
    ) -> Result<Vec<UserEvent>, UserError> {
        if let UserCommand::Register {
            user_id,
            username,
            email,
            password_hash,
            first_name,
            last_name,
            age,
            role,
            actor,
        } = command
        {
            if self.profile.is_some() {
                return Err(UserError::AlreadyRegistered);
            }
            let allowed = match actor {
                None => role == Role::User,
                Some(actor) => actor.is_admin(),
            };
            if !allowed {
                return Err(UserError::Forbidden);
            }
            if owned_by_other(services.username_owner(&username).await?, user_id) {
                return Err(UserError::UsernameTaken);
            }
            if owned_by_other(services.email_owner(&email).await?, user_id) {
                return Err(UserError::EmailTaken);
            }
            return Ok(vec![UserEvent::UserRegistered {
                user_id,
                username,
                email,
                password_hash,
                first_name,
                last_name,
                age,
                role,
            }]);
        }

        let profile = self.profile.as_ref().ok_or(UserError::NotFound)?;
        match command {
            UserCommand::Register { .. } => Err(UserError::AlreadyRegistered),
            UserCommand::ChangeProfile {
                actor,
                email,
                first_name,
                last_name,
                age,
            } => {
                profile.authorize_self_or_admin(actor)?;
                let email = email.filter(|email| *email != profile.email);
                let first_name = first_name.filter(|name| *name != profile.first_name);
                let last_name = last_name.filter(|name| *name != profile.last_name);
                let age = age.filter(|age| *age != profile.age);
                if email.is_none() && first_name.is_none() && last_name.is_none() && age.is_none() {
                    return Ok(Vec::new());
                }
                if let Some(email) = &email
                    && owned_by_other(services.email_owner(email).await?, profile.user_id)
                {
                    return Err(UserError::EmailTaken);
                }
                Ok(vec![UserEvent::UserProfileChanged {
                    email,
                    first_name,
                    last_name,
                    age,
                }])
            }
            UserCommand::ChangePassword {
                actor,
                password_hash,
            } => {
                profile.authorize_self_or_admin(actor)?;
                Ok(vec![UserEvent::UserPasswordChanged { password_hash }])
            }
            UserCommand::ChangeRole { actor, role } => {
                if !actor.is_admin() {
                    return Err(UserError::Forbidden);
                }
                if role == profile.role {
                    return Ok(Vec::new());
                }
                Ok(vec![UserEvent::UserRoleChanged { role }])
            }
            UserCommand::Deactivate { actor } => {
                profile.authorize_self_or_admin(actor)?;
                Ok(vec![UserEvent::UserDeactivated])
            }
            UserCommand::MarkNotificationsRead { actor, up_to } => {
                // Reading is personal: not even an admin reads someone else's notifications.
                if actor.user_id != profile.user_id {
                    return Err(UserError::Forbidden);
                }
                if !profile.active {
                    return Err(UserError::Deactivated);
                }
                if profile
                    .notifications_read_up_to
                    .is_some_and(|current| up_to <= current)
                {
                    return Ok(Vec::new());
                }
                Ok(vec![UserEvent::UserNotificationsRead { up_to }])
            }
        }
    }
}

impl UserProfile {
    /// The actor must be this user or an admin, and the user must be active.
    fn authorize_self_or_admin(&self, actor: Actor) -> Result<(), UserError> {
        if !actor.is_self_or_admin(self.user_id) {
            return Err(UserError::Forbidden);
        }
        if !self.active {
            return Err(UserError::Deactivated);
        }
        Ok(())
    }
}

/// Whether a look-up found an owner other than `user_id`.
fn owned_by_other(owner: Option<Uuid>, user_id: Uuid) -> bool {
    owner.is_some_and(|owner| owner != user_id)
}

impl Aggregate for User {
    const TYPE: &'static str = crate::AggregateType::User.as_str();
    type Command = UserCommand;
    type Event = UserEvent;
    type Error = UserError;
    type Services = UserServicesHandle;

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
        match event {
            UserEvent::UserRegistered {
                user_id,
                username,
                email,
                password_hash: _,
                first_name,
                last_name,
                age,
                role,
            } => {
                self.profile = Some(UserProfile {
                    user_id,
                    username,
                    email,
                    first_name,
                    last_name,
                    age,
                    role,
                    active: true,
                    notifications_read_up_to: None,
                });
            }
            UserEvent::UserProfileChanged {
                email,
                first_name,
                last_name,
                age,
            } => {
                if let Some(profile) = &mut self.profile {
                    if let Some(email) = email {
                        profile.email = email;
                    }
                    if let Some(first_name) = first_name {
                        profile.first_name = first_name;
                    }
                    if let Some(last_name) = last_name {
                        profile.last_name = last_name;
                    }
                    if let Some(age) = age {
                        profile.age = age;
                    }
                }
            }
            UserEvent::UserPasswordChanged { .. } => {}
            UserEvent::UserRoleChanged { role } => {
                if let Some(profile) = &mut self.profile {
                    profile.role = role;
                }
            }
            UserEvent::UserDeactivated => {
                if let Some(profile) = &mut self.profile {
                    profile.active = false;
                }
            }
            UserEvent::UserNotificationsRead { up_to } => {
                if let Some(profile) = &mut self.profile {
                    profile.notifications_read_up_to = Some(up_to);
                }
            }
        }
    }
}

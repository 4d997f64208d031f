//! Events of the `User` aggregate.

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::actor::Role;
use crate::values::{Age, Email, PasswordHash, PersonName, Username};

/// Something that happened to a user. Serialized externally tagged:
/// `{"UserRegistered": {...}}`, `"UserDeactivated"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum UserEvent {
    /// The user was created.
    UserRegistered {
        /// The user's id.
        user_id: Uuid,
        /// Login name.
        username: Username,
        /// E-mail address as typed.
        email: Email,
        /// Password hash.
        password_hash: PasswordHash,
        /// First name.
        first_name: PersonName,
        /// Last name.
        last_name: PersonName,
        /// Age, if given.
        age: Option<Age>,
        /// Role.
        role: Role,
    },
    /// Some profile fields changed; only changed fields are present (absent / `None` = unchanged).
    UserProfileChanged {
        /// New e-mail address.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        email: Option<Email>,
        /// New first name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        first_name: Option<PersonName>,
        /// New last name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        last_name: Option<PersonName>,
        /// New age: absent = unchanged, `null` = cleared, number = set.
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            with = "crate::serde_helpers::double_option"
        )]
        age: Option<Option<Age>>,
    },
    /// The password hash was replaced.
    UserPasswordChanged {
        /// The new hash.
        password_hash: PasswordHash,
    },
    /// The role changed.
    UserRoleChanged {
        /// The new role.
        role: Role,
    },
    /// The user was deactivated.
    UserDeactivated,
    /// The user read their notifications: every one created at or before `up_to` is read.
    UserNotificationsRead {
        /// The read watermark (only ever moves forward).
        up_to: DateTime<Utc>,
    },
}

impl DomainEvent for UserEvent {
    fn event_type(&self) -> String {
        match self {
            Self::UserRegistered { .. } => "UserRegistered",
            Self::UserProfileChanged { .. } => "UserProfileChanged",
            Self::UserPasswordChanged { .. } => "UserPasswordChanged",
            Self::UserRoleChanged { .. } => "UserRoleChanged",
            Self::UserDeactivated => "UserDeactivated",
            Self::UserNotificationsRead { .. } => "UserNotificationsRead",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        crate::upcast::current_version(crate::AggregateType::User, &self.event_type()).to_owned()
    }
}

//! [`Metadata`]: who caused an event and in which request, stored with every event.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The metadata of the events of one command, stored in the `metadata` column as the
/// `HashMap<String, String>` cqrs-es keeps (keys [`Metadata::USER_ID`], [`Metadata::REQUEST_ID`],
/// [`Metadata::CORRELATION_ID`], [`Metadata::CAUSATION_ID`]; a `None` is left out) and carried
/// on into the Kafka envelope.
///
/// Reading it back (from the Kafka envelope) is lenient: a missing or `null` id is empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Metadata {
    /// The authenticated user who sent the command (`None` for self-registration).
    pub user_id: Option<Uuid>,
    /// The id of the HTTP request.
    #[serde(deserialize_with = "null_as_empty")]
    pub request_id: String,
    /// The id that ties together everything one user action caused.
    #[serde(deserialize_with = "null_as_empty")]
    pub correlation_id: String,
    /// The id of the message (request or event) that directly caused this command, if any.
    pub causation_id: Option<String>,
    /// What kind of act this was when the event alone does not say, e.g.
    /// [`Metadata::ADMIN_PASSWORD_RESET`] on a `UserPasswordChanged` an admin made for another
    /// user (no current password was asked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(deserializer)?.unwrap_or_default())
}

impl Metadata {
    /// Key of [`Metadata::user_id`].
    pub const USER_ID: &'static str = "user_id";
    /// Key of [`Metadata::request_id`].
    pub const REQUEST_ID: &'static str = "request_id";
    /// Key of [`Metadata::correlation_id`].
    pub const CORRELATION_ID: &'static str = "correlation_id";
    /// Key of [`Metadata::causation_id`].
    pub const CAUSATION_ID: &'static str = "causation_id";
    /// Key of [`Metadata::action`].
    pub const ACTION: &'static str = "action";
    /// The [`Metadata::action`] of an admin's reset of another user's password.
    pub const ADMIN_PASSWORD_RESET: &'static str = "admin_password_reset";

    /// The map cqrs-es stores.
    #[must_use]
    pub fn into_map(self) -> HashMap<String, String> {
        let mut map = HashMap::with_capacity(4);
        if let Some(user_id) = self.user_id {
            map.insert(Self::USER_ID.to_owned(), user_id.to_string());
        }
        map.insert(Self::REQUEST_ID.to_owned(), self.request_id);
        map.insert(Self::CORRELATION_ID.to_owned(), self.correlation_id);
        if let Some(causation_id) = self.causation_id {
            map.insert(Self::CAUSATION_ID.to_owned(), causation_id);
        }
        if let Some(action) = self.action {
            map.insert(Self::ACTION.to_owned(), action);
        }
        map
    }

    /// Reads back a stored map. Lenient: a missing id is empty, a `user_id` that is not a UUID
    /// is `None` (events stay readable whatever their metadata).
    #[must_use]
    pub fn from_map(map: &HashMap<String, String>) -> Self {
        Self {
            user_id: map
                .get(Self::USER_ID)
                .and_then(|user_id| Uuid::parse_str(user_id).ok()),
            request_id: map.get(Self::REQUEST_ID).cloned().unwrap_or_default(),
            correlation_id: map.get(Self::CORRELATION_ID).cloned().unwrap_or_default(),
            causation_id: map.get(Self::CAUSATION_ID).cloned(),
            action: map.get(Self::ACTION).cloned(),
        }
    }
}

impl From<Metadata> for HashMap<String, String> {
    fn from(metadata: Metadata) -> Self {
        metadata.into_map()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_the_stored_map() {
        let metadata = Metadata {
            user_id: Some(Uuid::new_v4()),
            request_id: "req-1".to_owned(),
            correlation_id: "corr-1".to_owned(),
            causation_id: Some("cause-1".to_owned()),
            action: Some(Metadata::ADMIN_PASSWORD_RESET.to_owned()),
        };
        let map = metadata.clone().into_map();
        assert_eq!(map.len(), 5);
        assert_eq!(Metadata::from_map(&map), metadata);
    }

    #[test]
    fn absent_options_are_left_out() {
        let map = Metadata {
            request_id: "req-1".to_owned(),
            correlation_id: "req-1".to_owned(),
            ..Metadata::default()
        }
        .into_map();
        assert_eq!(map.len(), 2);
        assert!(!map.contains_key(Metadata::USER_ID));
        assert!(!map.contains_key(Metadata::CAUSATION_ID));
    }
}

//! [`AggregateType`]: which aggregate an event belongs to, as stored in the `events` table,
//! named in the Kafka envelope and in the topic `<prefix>.<type>`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The three aggregates of tasktrail. On the wire (the `events` table, the Kafka envelope, the
/// read models) it is the lowercase name: `"user"`, `"project"`, `"task"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AggregateType {
    // In the order of their names, so that ordering by the type orders as the `events` table's
    // primary key does.
    Project,
    Task,
    User,
}

impl AggregateType {
    /// Every aggregate type, in the order the relay creates their topics.
    pub const ALL: [Self; 3] = [Self::User, Self::Project, Self::Task];

    /// The stored name (`cqrs_es::Aggregate::TYPE` of the aggregate).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Project => "project",
            Self::Task => "task",
        }
    }

    /// The Kafka topic of this aggregate's events: `<prefix>.<type>`.
    #[must_use]
    pub fn topic(self, prefix: &str) -> String {
        format!("{prefix}.{}", self.as_str())
    }
}

impl fmt::Display for AggregateType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An aggregate type this code does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown aggregate type {0:?}")]
pub struct UnknownAggregateType(pub String);

impl FromStr for AggregateType {
    type Err = UnknownAggregateType;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|aggregate_type| aggregate_type.as_str() == name)
            .ok_or_else(|| UnknownAggregateType(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_it_prints_and_refuses_the_rest() {
        for aggregate_type in AggregateType::ALL {
            assert_eq!(aggregate_type.as_str().parse(), Ok(aggregate_type));
            assert_eq!(
                serde_json::to_value(aggregate_type).expect("serializes"),
                serde_json::json!(aggregate_type.as_str())
            );
        }
        assert_eq!(
            "comment".parse::<AggregateType>(),
            Err(UnknownAggregateType("comment".to_owned()))
        );
        assert_eq!(AggregateType::Task.topic("tasktrail"), "tasktrail.task");
        let mut by_type = AggregateType::ALL;
        by_type.sort();
        let mut by_name = AggregateType::ALL.map(AggregateType::as_str);
        by_name.sort_unstable();
        assert_eq!(by_type.map(AggregateType::as_str), by_name);
    }
}

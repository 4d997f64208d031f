//! How urgent a task is.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A task's priority. Serialized snake_case: `"low"`, `"normal"`, `"high"`, `"urgent"`. New
/// tasks, and tasks created before priorities existed, are `Normal`. Ordered from the least to
/// the most urgent.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum TaskPriority {
    /// Can wait.
    Low,
    /// The default.
    #[default]
    Normal,
    /// Soon.
    High,
    /// Now.
    Urgent,
}

impl TaskPriority {
    /// All priorities, least urgent first.
    pub const ALL: [Self; 4] = [Self::Low, Self::Normal, Self::High, Self::Urgent];

    /// The wire name (same as serde).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Normal => "normal",
            Self::High => "high",
            Self::Urgent => "urgent",
        }
    }

    /// 0 (`low`) to 3 (`urgent`): what the read model sorts by.
    #[must_use]
    pub const fn rank(self) -> i32 {
        match self {
            Self::Low => 0,
            Self::Normal => 1,
            Self::High => 2,
            Self::Urgent => 3,
        }
    }
}

impl fmt::Display for TaskPriority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not a priority.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown priority {0:?} (low, normal, high or urgent)")]
pub struct UnknownPriority(pub String);

impl FromStr for TaskPriority {
    type Err = UnknownPriority;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|priority| priority.as_str() == name)
            .ok_or_else(|| UnknownPriority(name.to_owned()))
    }
}

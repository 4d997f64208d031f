//! The status workflow of a task.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Where a task stands. Serialized snake_case: `"pending"`, `"in_progress"`, `"done"`,
/// `"cancelled"`. New tasks are `Pending`.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// Not started (the default).
    #[default]
    Pending,
    /// Being worked on.
    InProgress,
    /// Finished.
    Done,
    /// Given up.
    Cancelled,
}

/// Every allowed `(from, to)` status change. Anything else is `InvalidTransition`.
pub const ALLOWED_TRANSITIONS: [(TaskStatus, TaskStatus); 9] = {
    use TaskStatus::{Cancelled, Done, InProgress, Pending};
    [
        (Pending, InProgress),
        (Pending, Done),
        (Pending, Cancelled),
        (InProgress, Pending),
        (InProgress, Done),
        (InProgress, Cancelled),
        (Done, InProgress),
        (Done, Pending),
        (Cancelled, Pending),
    ]
};

impl TaskStatus {
    /// All statuses.
    pub const ALL: [Self; 4] = [Self::Pending, Self::InProgress, Self::Done, Self::Cancelled];

    /// Whether `self → to` is in [`ALLOWED_TRANSITIONS`].
    #[must_use]
    pub fn can_become(self, to: Self) -> bool {
        ALLOWED_TRANSITIONS.contains(&(self, to))
    }

    /// The wire name (same as serde).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::InProgress => "in_progress",
            Self::Done => "done",
            Self::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

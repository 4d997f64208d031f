//! MongoDB collection names. The read models of generation `g` live in `<name>_g<g>`.

/// The pointer to the active generation (`{ _id: "generation", active, previous, swapped_at }`).
pub const META: &str = "read_model_meta";
/// The `_id` of the generation pointer in [`META`].
pub const GENERATION_ID: &str = "generation";
/// Parked (poison) events, one document per aggregate (projector internal, not generation-scoped).
pub const PARKED: &str = "projector_parked";
/// The replay checkpoint (projector internal, not generation-scoped).
pub const REPLAY: &str = "projector_replay";

/// `users_g{g}`.
#[must_use]
pub fn users(generation: u64) -> String {
    format!("users_g{generation}")
}

/// `projects_g{g}`.
#[must_use]
pub fn projects(generation: u64) -> String {
    format!("projects_g{generation}")
}

/// `tasks_g{g}`.
#[must_use]
pub fn tasks(generation: u64) -> String {
    format!("tasks_g{generation}")
}

/// `notifications_g{g}`.
#[must_use]
pub fn notifications(generation: u64) -> String {
    format!("notifications_g{generation}")
}

/// `stats_g{g}`: the statistics of projects and assignees, one document each (`_id`
/// [`StatsOwner::id`]), `{fields: {counter: n}, position, rev}`; the Redis statistics hashes
/// are copies.
#[must_use]
pub fn stats(generation: u64) -> String {
    format!("stats_g{generation}")
}

/// Every collection of generation `g`.
#[must_use]
pub fn all(generation: u64) -> [String; 5] {
    [
        users(generation),
        projects(generation),
        tasks(generation),
        notifications(generation),
        stats(generation),
    ]
}

/// Whose statistics a `stats_g{N}` document holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatsOwner<'a> {
    /// A project's: its tasks by status, by assignee and status, completions per day.
    Project(&'a str),
    /// An assignee's: their tasks by status.
    User(&'a str),
}

impl<'a> StatsOwner<'a> {
    /// The document's `_id`: `project:{id}` or `user:{id}`.
    #[must_use]
    pub fn id(self) -> String {
        match self {
            Self::Project(id) => format!("project:{id}"),
            Self::User(id) => format!("user:{id}"),
        }
    }

    /// The owner of the document with this `_id`.
    #[must_use]
    pub fn parse(id: &'a str) -> Option<Self> {
        if let Some(project) = id.strip_prefix("project:") {
            Some(Self::Project(project))
        } else {
            id.strip_prefix("user:").map(Self::User)
        }
    }
}

#[cfg(test)]
mod stats_owner_tests {
    use super::StatsOwner;

    #[test]
    fn a_stats_id_names_its_owner() {
        for owner in [StatsOwner::Project("p-1"), StatsOwner::User("u:2")] {
            assert_eq!(StatsOwner::parse(&owner.id()), Some(owner));
        }
        assert_eq!(StatsOwner::parse("task:1"), None);
    }
}

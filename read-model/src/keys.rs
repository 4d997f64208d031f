//! Redis keys of generation `g`: `{prefix}:g{g}:…`.

/// `{prefix}:g{g}:user:{id}`: JSON of [`crate::documents::UserView`].
#[must_use]
pub fn user(prefix: &str, generation: u64, id: &str) -> String {
    format!("{prefix}:g{generation}:user:{id}")
}

/// `{prefix}:g{g}:project:{id}`: JSON of [`crate::documents::ProjectView`].
#[must_use]
pub fn project(prefix: &str, generation: u64, id: &str) -> String {
    format!("{prefix}:g{generation}:project:{id}")
}

/// `{prefix}:g{g}:stats:project:{id}`: hash of task counters of a project.
#[must_use]
pub fn project_stats(prefix: &str, generation: u64, id: &str) -> String {
    format!("{prefix}:g{generation}:stats:project:{id}")
}

/// `{prefix}:g{g}:stats:user:{id}`: hash of task counters of an assignee.
#[must_use]
pub fn user_stats(prefix: &str, generation: u64, id: &str) -> String {
    format!("{prefix}:g{generation}:stats:user:{id}")
}

/// A `SCAN MATCH` pattern for every key of generation `g`.
#[must_use]
pub fn generation_pattern(prefix: &str, generation: u64) -> String {
    format!("{prefix}:g{generation}:*")
}

/// Field of a stats hash: the `global_position` of the last event that changed it.
pub const STATS_VERSION: &str = "version";
/// Field of a stats hash: the projector's recount number (guards against an older recount).
pub const STATS_RECOUNT: &str = "recount";

/// Stats field `status:{status}`.
#[must_use]
pub fn status_field(status: &str) -> String {
    format!("status:{status}")
}

/// Stats field `assignee:{user_id}:{status}`.
#[must_use]
pub fn assignee_field(user_id: &str, status: &str) -> String {
    format!("assignee:{user_id}:{status}")
}

/// Stats field `priority:{priority}`.
#[must_use]
pub fn priority_field(priority: &str) -> String {
    format!("priority:{priority}")
}

/// Stats field `label:{label}`.
#[must_use]
pub fn label_field(label: &str) -> String {
    format!("label:{label}")
}

/// Stats field `done:{YYYY-MM-DD}`.
#[must_use]
pub fn done_field(date: chrono::NaiveDate) -> String {
    format!("done:{}", date.format("%Y-%m-%d"))
}

/// The channel on which the projector announces each batch it committed (the payload is the
/// generation), so a reader waiting for a version re-reads at once instead of on a timer.
#[must_use]
pub fn applied_channel(prefix: &str) -> String {
    format!("{prefix}:applied")
}

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

/// `stats_g{g}`: the projector's recount counters of the statistics (projector internal).
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

//! The read models of a batch, held in memory: the documents and statistics the batch's events
//! touch, and those events applied to them. The live projector loads the working set of each
//! batch from MongoDB ([`crate::store`]), the replay does the same for each batch it reads from
//! PostgreSQL, and the property tests fold whole workloads into one model: one apply path.
//!
//! Applying an event twice, or an older one again, changes nothing (the per-aggregate version
//! guard). Statistics move by deltas: a task event subtracts what the task counted before it
//! and adds what it counts after it ([`contribution`]), so the cost of an event does not depend
//! on how many tasks its project or assignee has.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use domain::AggregateType;
use event_store::read::Envelope;
use read_model::documents::{NotificationView, ProjectView, TaskView, UserView};
use read_model::keys;
use read_model::names::StatsOwner;

use crate::projection::{self, Event, Poison};

/// What happened to one envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Applied; the document moved to the envelope's sequence.
    Applied,
    /// Already applied (sequence <= version): nothing changed.
    Duplicate,
    /// An operator dropped it: the document's version moved past it, nothing else changed.
    Dropped,
    /// Later than the next expected sequence: not applied.
    Gap {
        /// The document's version.
        version: i64,
    },
    /// Held behind a parked event of the same aggregate.
    Held,
    /// Cannot be applied: the aggregate is now parked at this event.
    Parked(String),
}

/// An aggregate stopped at a poison event.
#[derive(Debug, Clone, PartialEq)]
pub struct ParkedAt {
    /// The poison event.
    pub envelope: Envelope,
    /// Why it cannot be applied.
    pub reason: String,
    /// Later events of the aggregate, waiting behind it.
    pub held: Vec<Envelope>,
}

/// `(aggregate_type, aggregate_id)`.
pub type AggregateKey = (AggregateType, String);

/// The statistics of a project or an assignee: counters that move by deltas.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Counter fields (`status:…`, `assignee:…:…`, `done:…`); a counter at 0 is removed, so the
    /// fields equal a recount of the tasks ([`projection::project_stats`]).
    pub fields: BTreeMap<String, i64>,
    /// The highest global position of the task events counted (the hash's `version`).
    pub position: i64,
}

impl Stats {
    fn add(&mut self, field: String, delta: i64) {
        match self.fields.entry(field) {
            std::collections::btree_map::Entry::Occupied(mut entry) => {
                *entry.get_mut() += delta;
                if *entry.get() == 0 {
                    entry.remove();
                }
            }
            std::collections::btree_map::Entry::Vacant(entry) => {
                if delta != 0 {
                    entry.insert(delta);
                }
            }
        }
    }
}

/// What a task counts for, as `(stats id, field)` pairs: nothing once deleted; else its status
/// (in its project and, when assigned, its assignee's), its priority and labels, its assignee
/// by status and its completion day (in its project).
#[must_use]
pub fn contribution(task: &TaskView) -> Vec<(String, String)> {
    if task.deleted {
        return Vec::new();
    }
    let project = StatsOwner::Project(&task.project_id).id();
    let mut fields = vec![(project.clone(), keys::status_field(&task.status))];
    // A document from before priorities (no rank) was counted without one.
    if task.priority_rank.is_some() {
        fields.push((project.clone(), keys::priority_field(&task.priority)));
    }
    fields.extend(
        task.labels
            .iter()
            .map(|label| (project.clone(), keys::label_field(label))),
    );
    if let Some(assignee) = &task.assignee_id {
        fields.push((
            project.clone(),
            keys::assignee_field(assignee, &task.status),
        ));
        fields.push((
            StatsOwner::User(assignee).id(),
            keys::status_field(&task.status),
        ));
    }
    if let Some(day) = task.completed_on {
        fields.push((project, keys::done_field(day)));
    }
    fields
}

/// The read models of a batch (or, in tests, of a whole event stream).
#[derive(Debug, Default, Clone)]
pub struct Model {
    /// Users by id.
    pub users: HashMap<String, UserView>,
    /// Projects by id.
    pub projects: HashMap<String, ProjectView>,
    /// Tasks by id.
    pub tasks: HashMap<String, TaskView>,
    /// Statistics by id ([`StatsOwner::id`]).
    pub stats: HashMap<String, Stats>,
    /// Notifications made since the last [`Model::take_notifications`].
    pub notifications: Vec<NotificationView>,
    /// Aggregates parked by this model's events.
    pub parked: BTreeMap<AggregateKey, ParkedAt>,
    /// Events an operator dropped: `(aggregate_type, aggregate_id, sequence)`, applied as no-ops.
    pub dropped: HashSet<(AggregateType, String, i64)>,
    /// Versions of aggregates whose document does not exist (a dropped creation).
    skipped_versions: HashMap<AggregateKey, i64>,
    /// What changed since the last [`Model::take_dirty`].
    dirty: Dirty,
}

/// Ids whose documents (or statistics) changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Dirty {
    /// Users.
    pub users: BTreeSet<String>,
    /// Projects.
    pub projects: BTreeSet<String>,
    /// Tasks.
    pub tasks: BTreeSet<String>,
    /// Statistics.
    pub stats: BTreeSet<String>,
}

impl Model {
    /// An empty model.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// A model of stored documents (nothing dirty): the working set of a batch.
    #[must_use]
    pub fn with_documents(
        users: Vec<UserView>,
        projects: Vec<ProjectView>,
        tasks: Vec<TaskView>,
        stats: HashMap<String, Stats>,
    ) -> Self {
        Self {
            users: users.into_iter().map(|u| (u.id.clone(), u)).collect(),
            projects: projects.into_iter().map(|p| (p.id.clone(), p)).collect(),
            tasks: tasks.into_iter().map(|t| (t.id.clone(), t)).collect(),
            stats,
            ..Self::default()
        }
    }

    /// The version of an aggregate's document (0 if none).
    #[must_use]
    pub fn version(&self, aggregate_type: AggregateType, aggregate_id: &str) -> i64 {
        let stored = match aggregate_type {
            AggregateType::User => self.users.get(aggregate_id).map(|d| d.version),
            AggregateType::Project => self.projects.get(aggregate_id).map(|d| d.version),
            AggregateType::Task => self.tasks.get(aggregate_id).map(|d| d.version),
        };
        let skipped = self
            .skipped_versions
            .get(&(aggregate_type, aggregate_id.to_owned()))
            .copied();
        stored.into_iter().chain(skipped).max().unwrap_or(0)
    }

    /// Applies one envelope (see [`Outcome`]).
    pub fn apply(&mut self, envelope: &Envelope) -> Outcome {
        let key = (envelope.aggregate_type, envelope.aggregate_id.clone());
        if let Some(parked) = self.parked.get_mut(&key) {
            if envelope.sequence > parked.envelope.sequence
                && !parked.held.iter().any(|h| h.sequence == envelope.sequence)
            {
                parked.held.push(envelope.clone());
            }
            return Outcome::Held;
        }
        let version = self.version(envelope.aggregate_type, &envelope.aggregate_id);
        if envelope.sequence <= version {
            return Outcome::Duplicate;
        }
        if envelope.sequence > version + 1 {
            return Outcome::Gap { version };
        }
        if self.dropped.contains(&(
            envelope.aggregate_type,
            envelope.aggregate_id.clone(),
            envelope.sequence,
        )) {
            self.skip(envelope);
            return Outcome::Dropped;
        }
        match self.apply_event(envelope) {
            Ok(()) => Outcome::Applied,
            Err(Poison(reason)) => {
                self.parked.insert(
                    key,
                    ParkedAt {
                        envelope: envelope.clone(),
                        reason: reason.clone(),
                        held: Vec::new(),
                    },
                );
                Outcome::Parked(reason)
            }
        }
    }

    /// A dropped event: the aggregate's version moves past it, nothing else changes.
    fn skip(&mut self, envelope: &Envelope) {
        let id = envelope.aggregate_id.clone();
        let bumped = match envelope.aggregate_type {
            AggregateType::User => self.users.get_mut(&id).map(|d| {
                d.version = envelope.sequence;
                self.dirty.users.insert(id.clone());
            }),
            AggregateType::Project => self.projects.get_mut(&id).map(|d| {
                d.version = envelope.sequence;
                self.dirty.projects.insert(id.clone());
            }),
            AggregateType::Task => self.tasks.get_mut(&id).map(|d| {
                d.version = envelope.sequence;
                self.dirty.tasks.insert(id.clone());
            }),
        };
        if bumped.is_none() {
            self.skipped_versions
                .insert((envelope.aggregate_type, id), envelope.sequence);
        }
    }

    fn apply_event(&mut self, envelope: &Envelope) -> Result<(), Poison> {
        let id = envelope.aggregate_id.clone();
        match projection::decode(envelope)? {
            Event::User(event) => {
                let user = projection::apply_user(self.users.get(&id).cloned(), envelope, &event)?;
                self.users.insert(id.clone(), user);
                self.dirty.users.insert(id);
            }
            Event::Project(event) => {
                let project =
                    projection::apply_project(self.projects.get(&id).cloned(), envelope, &event)?;
                self.projects.insert(id.clone(), project);
                self.dirty.projects.insert(id);
            }
            Event::Task(event) => {
                let before = self.tasks.get(&id).cloned();
                let task = projection::apply_task(before.clone(), envelope, &event)?;
                self.notifications
                    .extend(projection::notifications(envelope, &event, &task));
                self.count(before.as_ref(), &task, envelope.global_position);
                if let domain::TaskEvent::TaskUnassigned {
                    previous_assignee_id,
                } = &event
                {
                    self.touch_stats(
                        &StatsOwner::User(&previous_assignee_id.to_string()).id(),
                        envelope.global_position,
                    );
                }
                self.dirty.tasks.insert(id.clone());
                self.tasks.insert(id, task);
            }
        }
        Ok(())
    }

    /// Moves the statistics by what the task counted before and counts after the event, and
    /// records the event's position in the statistics of its project and both assignees.
    fn count(&mut self, before: Option<&TaskView>, after: &TaskView, position: i64) {
        for (stats, field) in before.map(contribution).unwrap_or_default() {
            self.stats.entry(stats).or_default().add(field, -1);
        }
        for (stats, field) in contribution(after) {
            self.stats.entry(stats).or_default().add(field, 1);
        }
        self.touch_stats(&StatsOwner::Project(&after.project_id).id(), position);
        for user in projection::affected_assignees(before, after) {
            self.touch_stats(&StatsOwner::User(&user).id(), position);
        }
    }

    fn touch_stats(&mut self, id: &str, position: i64) {
        let stats = self.stats.entry(id.to_owned()).or_default();
        stats.position = stats.position.max(position);
        self.dirty.stats.insert(id.to_owned());
    }

    /// A task.
    #[must_use]
    pub fn task(&self, id: &str) -> Option<TaskView> {
        self.tasks.get(id).cloned()
    }

    /// A project.
    #[must_use]
    pub fn project(&self, id: &str) -> Option<ProjectView> {
        self.projects.get(id).cloned()
    }

    /// A user.
    #[must_use]
    pub fn user(&self, id: &str) -> Option<UserView> {
        self.users.get(id).cloned()
    }

    /// The stats hash fields of a project (without `version`).
    #[must_use]
    pub fn project_stats(&self, id: &str) -> BTreeMap<String, i64> {
        self.stats
            .get(&StatsOwner::Project(id).id())
            .map(|s| s.fields.clone())
            .unwrap_or_default()
    }

    /// The stats hash fields of an assignee (without `version`).
    #[must_use]
    pub fn user_stats(&self, id: &str) -> BTreeMap<String, i64> {
        self.stats
            .get(&StatsOwner::User(id).id())
            .map(|s| s.fields.clone())
            .unwrap_or_default()
    }

    /// What changed since the last call.
    pub fn take_dirty(&mut self) -> Dirty {
        std::mem::take(&mut self.dirty)
    }

    /// The notifications made since the last call.
    pub fn take_notifications(&mut self) -> Vec<NotificationView> {
        std::mem::take(&mut self.notifications)
    }

    /// Every task id.
    pub fn task_ids(&self) -> impl Iterator<Item = &String> {
        self.tasks.keys()
    }
}

#[cfg(test)]
mod tests;

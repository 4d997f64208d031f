//! The read models held in memory and built by folding events in global order: what the replay
//! uses (and what the property tests compare against). Applying an event twice, or an older one
//! again, changes nothing (the per-aggregate version guard), exactly as in the live projector.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use read_model::Envelope;
use read_model::documents::{NotificationView, ProjectView, TaskView, UserView};

use crate::projection::{self, Event, Poison};

/// What happened to one envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Applied; the document moved to the envelope's sequence.
    Applied,
    /// Already applied (sequence <= version): nothing changed.
    Duplicate,
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
pub type AggregateKey = (String, String);

/// Every read model of one generation, in memory.
#[derive(Debug, Default, Clone)]
pub struct Model {
    /// Users by id.
    pub users: HashMap<String, UserView>,
    /// Projects by id (`task_counts` are filled by [`Model::project`]).
    pub projects: HashMap<String, ProjectView>,
    /// Tasks by id (denormalized names are filled by [`Model::task`]).
    pub tasks: HashMap<String, TaskView>,
    /// Notifications made since the last [`Model::take_notifications`].
    pub notifications: Vec<NotificationView>,
    /// The highest global position of the task events that touched each project's stats.
    pub project_stats_version: HashMap<String, i64>,
    /// The same for each assignee's stats.
    pub user_stats_version: HashMap<String, i64>,
    /// Parked aggregates.
    pub parked: BTreeMap<AggregateKey, ParkedAt>,
    /// Events an operator dropped: `(aggregate_type, aggregate_id, sequence)`, applied as no-ops.
    pub dropped: HashSet<(String, String, i64)>,
    /// Versions of aggregates whose document does not exist (a dropped creation).
    skipped_versions: HashMap<AggregateKey, i64>,
    tasks_by_project: HashMap<String, BTreeSet<String>>,
    tasks_by_assignee: HashMap<String, BTreeSet<String>>,
    /// What changed since the last [`Model::take_dirty`].
    dirty: Dirty,
}

/// Ids whose documents (or stats) changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Dirty {
    /// Users.
    pub users: BTreeSet<String>,
    /// Projects (own fields or task counts).
    pub projects: BTreeSet<String>,
    /// Tasks (own fields or denormalized names).
    pub tasks: BTreeSet<String>,
    /// Projects whose stats hash changed.
    pub project_stats: BTreeSet<String>,
    /// Assignees whose stats hash changed.
    pub user_stats: BTreeSet<String>,
}

impl Model {
    /// An empty model.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a model from stored documents (a replay resuming from its checkpoint). Everything
    /// is marked dirty, so the next flush rewrites it all consistently.
    #[must_use]
    pub fn from_documents(
        users: Vec<UserView>,
        projects: Vec<ProjectView>,
        tasks: Vec<TaskView>,
        project_stats_version: HashMap<String, i64>,
        user_stats_version: HashMap<String, i64>,
    ) -> Self {
        let mut model = Self {
            project_stats_version,
            user_stats_version,
            ..Self::default()
        };
        for user in users {
            model.dirty.users.insert(user.id.clone());
            model.users.insert(user.id.clone(), user);
        }
        for project in projects {
            model.dirty.projects.insert(project.id.clone());
            model.projects.insert(project.id.clone(), project);
        }
        for task in tasks {
            model.index_task(None, &task);
            model.dirty.tasks.insert(task.id.clone());
            model.dirty.project_stats.insert(task.project_id.clone());
            if let Some(assignee) = &task.assignee_id {
                model.dirty.user_stats.insert(assignee.clone());
            }
            model.tasks.insert(task.id.clone(), task);
        }
        model
    }

    /// The version of an aggregate's document (0 if none).
    #[must_use]
    pub fn version(&self, aggregate_type: &str, aggregate_id: &str) -> i64 {
        let stored = match aggregate_type {
            "user" => self.users.get(aggregate_id).map(|d| d.version),
            "project" => self.projects.get(aggregate_id).map(|d| d.version),
            "task" => self.tasks.get(aggregate_id).map(|d| d.version),
            _ => None,
        };
        let skipped = self
            .skipped_versions
            .get(&(aggregate_type.to_owned(), aggregate_id.to_owned()))
            .copied();
        stored.into_iter().chain(skipped).max().unwrap_or(0)
    }

    /// Applies one envelope (see [`Outcome`]).
    pub fn apply(&mut self, envelope: &Envelope) -> Outcome {
        let key = (
            envelope.aggregate_type.clone(),
            envelope.aggregate_id.clone(),
        );
        if let Some(parked) = self.parked.get_mut(&key) {
            if envelope.sequence > parked.envelope.sequence
                && !parked.held.iter().any(|h| h.sequence == envelope.sequence)
            {
                parked.held.push(envelope.clone());
            }
            return Outcome::Held;
        }
        let version = self.version(&envelope.aggregate_type, &envelope.aggregate_id);
        if envelope.sequence <= version {
            return Outcome::Duplicate;
        }
        if envelope.sequence > version + 1 {
            return Outcome::Gap { version };
        }
        if self.dropped.contains(&(
            envelope.aggregate_type.clone(),
            envelope.aggregate_id.clone(),
            envelope.sequence,
        )) {
            self.skip(envelope);
            return Outcome::Applied;
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
        let bumped = match envelope.aggregate_type.as_str() {
            "user" => self.users.get_mut(&id).map(|d| {
                d.version = envelope.sequence;
                self.dirty.users.insert(id.clone());
            }),
            "project" => self.projects.get_mut(&id).map(|d| {
                d.version = envelope.sequence;
                self.dirty.projects.insert(id.clone());
            }),
            "task" => self.tasks.get_mut(&id).map(|d| {
                d.version = envelope.sequence;
                self.dirty.tasks.insert(id.clone());
            }),
            _ => None,
        };
        if bumped.is_none() {
            self.skipped_versions
                .insert((envelope.aggregate_type.clone(), id), envelope.sequence);
        }
    }

    fn apply_event(&mut self, envelope: &Envelope) -> Result<(), Poison> {
        let id = envelope.aggregate_id.clone();
        match projection::decode(envelope)? {
            Event::User(event) => {
                let user = projection::apply_user(self.users.get(&id).cloned(), envelope, &event)?;
                self.users.insert(id.clone(), user);
                self.dirty.users.insert(id.clone());
                // Tasks assigned to this user show its name.
                if let Some(tasks) = self.tasks_by_assignee.get(&id) {
                    self.dirty.tasks.extend(tasks.iter().cloned());
                }
            }
            Event::Project(event) => {
                let project =
                    projection::apply_project(self.projects.get(&id).cloned(), envelope, &event)?;
                self.projects.insert(id.clone(), project);
                self.dirty.projects.insert(id.clone());
                if let Some(tasks) = self.tasks_by_project.get(&id) {
                    self.dirty.tasks.extend(tasks.iter().cloned());
                }
            }
            Event::Task(event) => {
                let before = self.tasks.get(&id).cloned();
                let task = projection::apply_task(before.clone(), envelope, &event)?;
                self.notifications
                    .extend(projection::notifications(envelope, &event, &task));
                self.index_task(before.as_ref(), &task);
                let position = envelope.global_position;
                let project_version = self
                    .project_stats_version
                    .entry(task.project_id.clone())
                    .or_default();
                *project_version = (*project_version).max(position);
                self.dirty.project_stats.insert(task.project_id.clone());
                self.dirty.projects.insert(task.project_id.clone());
                for user in projection::affected_assignees(before.as_ref(), &task) {
                    let user_version = self.user_stats_version.entry(user.clone()).or_default();
                    *user_version = (*user_version).max(position);
                    self.dirty.user_stats.insert(user);
                }
                self.dirty.tasks.insert(id.clone());
                self.tasks.insert(id, task);
            }
        }
        Ok(())
    }

    fn index_task(&mut self, before: Option<&TaskView>, after: &TaskView) {
        if let Some(old) = before.and_then(|task| task.assignee_id.as_ref())
            && Some(old) != after.assignee_id.as_ref()
            && let Some(set) = self.tasks_by_assignee.get_mut(old)
        {
            set.remove(&after.id);
        }
        if let Some(assignee) = &after.assignee_id {
            self.tasks_by_assignee
                .entry(assignee.clone())
                .or_default()
                .insert(after.id.clone());
        }
        self.tasks_by_project
            .entry(after.project_id.clone())
            .or_default()
            .insert(after.id.clone());
    }

    /// A task with its denormalized names filled in.
    #[must_use]
    pub fn task(&self, id: &str) -> Option<TaskView> {
        let mut task = self.tasks.get(id)?.clone();
        task.project_name = self.projects.get(&task.project_id).map(|p| p.name.clone());
        task.assignee_username = task
            .assignee_id
            .as_ref()
            .and_then(|assignee| self.users.get(assignee))
            .map(|user| user.username.clone());
        Some(task)
    }

    /// A project with its task counts filled in.
    #[must_use]
    pub fn project(&self, id: &str) -> Option<ProjectView> {
        let mut project = self.projects.get(id)?.clone();
        project.task_counts = projection::task_counts(self.tasks_of_project(id));
        Some(project)
    }

    /// A user.
    #[must_use]
    pub fn user(&self, id: &str) -> Option<UserView> {
        self.users.get(id).cloned()
    }

    fn tasks_of_project<'a>(&'a self, id: &str) -> impl Iterator<Item = &'a TaskView> + 'a {
        self.tasks_by_project
            .get(id)
            .into_iter()
            .flatten()
            .filter_map(|task| self.tasks.get(task))
    }

    /// The stats hash fields of a project (without `version`).
    #[must_use]
    pub fn project_stats(&self, id: &str) -> BTreeMap<String, i64> {
        projection::project_stats(self.tasks_of_project(id))
    }

    /// The stats hash fields of an assignee (without `version`).
    #[must_use]
    pub fn user_stats(&self, id: &str) -> BTreeMap<String, i64> {
        projection::user_stats(
            self.tasks_by_assignee
                .get(id)
                .into_iter()
                .flatten()
                .filter_map(|task| self.tasks.get(task))
                .filter(|task| task.assignee_id.as_deref() == Some(id)),
        )
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
mod tests {
    use std::collections::VecDeque;

    use proptest::prelude::*;

    use super::*;
    use crate::workload::{Rng, workload};

    fn envelopes(seed: u64, target: usize) -> Vec<Envelope> {
        workload(seed, 6, target)
            .iter()
            .enumerate()
            .map(|(index, event)| event.envelope(i64::try_from(index).unwrap_or(0) + 1))
            .collect()
    }

    /// Everything a reader can see, in a comparable form.
    fn view(model: &Model, notifications: &[NotificationView]) -> String {
        let mut out = Vec::new();
        let mut ids: Vec<&String> = model.users.keys().collect();
        ids.sort();
        for id in ids {
            out.push(format!("{:?}", model.user(id)));
            out.push(format!("{:?}", model.user_stats(id)));
        }
        let mut ids: Vec<&String> = model.projects.keys().collect();
        ids.sort();
        for id in ids {
            out.push(format!("{:?}", model.project(id)));
            out.push(format!("{:?}", model.project_stats(id)));
        }
        let mut ids: Vec<&String> = model.tasks.keys().collect();
        ids.sort();
        for id in ids {
            out.push(format!("{:?}", model.task(id)));
        }
        let mut versions: Vec<_> = model.project_stats_version.iter().collect();
        versions.sort();
        out.push(format!("{versions:?}"));
        let mut versions: Vec<_> = model.user_stats_version.iter().collect();
        versions.sort();
        out.push(format!("{versions:?}"));
        let mut notes: Vec<String> = notifications.iter().map(|n| format!("{n:?}")).collect();
        notes.sort();
        out.extend(notes);
        out.join("\n")
    }

    fn in_order(events: &[Envelope]) -> String {
        let mut model = Model::new();
        for envelope in events {
            assert!(
                matches!(model.apply(envelope), Outcome::Applied),
                "{envelope:?}"
            );
        }
        let notifications = model.take_notifications();
        view(&model, &notifications)
    }

    #[test]
    fn a_workload_applies_cleanly_and_computes_stats() {
        let events = envelopes(7, 400);
        let mut model = Model::new();
        for envelope in &events {
            assert_eq!(model.apply(envelope), Outcome::Applied);
        }
        let counted: i64 = model
            .projects
            .keys()
            .map(|id| {
                let counts = model.project(id).expect("project").task_counts;
                counts.pending + counts.in_progress + counts.done + counts.cancelled
            })
            .sum();
        let live_tasks = model.tasks.values().filter(|t| !t.deleted).count();
        assert_eq!(counted, i64::try_from(live_tasks).expect("small"));
        assert!(model.task_ids().count() > 10);
    }

    #[test]
    fn a_gap_is_reported_and_a_poison_event_parks_only_its_aggregate() {
        let events = envelopes(3, 200);
        let mut model = Model::new();
        let task = events
            .iter()
            .find(|e| e.aggregate_type == "task")
            .expect("a task event")
            .clone();
        let mut poison = task.clone();
        poison.payload = serde_json::json!({ "TaskCreated": { "nonsense": true } });
        for envelope in &events {
            let envelope = if envelope.event_id == task.event_id {
                &poison
            } else {
                envelope
            };
            let outcome = model.apply(envelope);
            if envelope.aggregate_id == task.aggregate_id && envelope.sequence > 1 {
                assert_eq!(outcome, Outcome::Held);
            } else if envelope.event_id == task.event_id {
                assert!(matches!(outcome, Outcome::Parked(_)), "{outcome:?}");
            } else {
                assert_eq!(outcome, Outcome::Applied);
            }
        }
        assert_eq!(model.parked.len(), 1);
        let mut fresh = Model::new();
        let later = events
            .iter()
            .find(|e| e.aggregate_type == "user")
            .expect("a user event");
        let mut gap = later.clone();
        gap.sequence = 3;
        assert_eq!(fresh.apply(&gap), Outcome::Gap { version: 0 });
        // Dropping the poison event lets the rest through.
        let mut dropped = Model::new();
        dropped.dropped.insert((
            poison.aggregate_type.clone(),
            poison.aggregate_id.clone(),
            poison.sequence,
        ));
        for envelope in &events {
            let envelope = if envelope.event_id == task.event_id {
                &poison
            } else {
                envelope
            };
            let _outcome = dropped.apply(envelope);
        }
        assert!(!dropped.tasks.contains_key(&poison.aggregate_id));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Applying events one by one equals applying them with redeliveries, duplicates and
        /// any interleaving of the aggregates (per-aggregate order kept, as Kafka keeps it).
        #[test]
        fn redeliveries_and_cross_topic_order_change_nothing(seed in 0_u64..10_000, noise in 0_u64..10_000) {
            let events = envelopes(seed, 250);
            let expected = in_order(&events);

            let mut streams: BTreeMap<AggregateKey, VecDeque<Envelope>> = BTreeMap::new();
            for envelope in &events {
                streams
                    .entry((envelope.aggregate_type.clone(), envelope.aggregate_id.clone()))
                    .or_default()
                    .push_back(envelope.clone());
            }
            let mut rng = Rng::new(noise);
            let mut model = Model::new();
            let mut seen: Vec<Envelope> = Vec::new();
            let mut keys: Vec<AggregateKey> = streams.keys().cloned().collect();
            // Users first then projects then tasks would be the global order; any other
            // interleaving must give the same result, except that an aggregate's own events
            // stay in order.
            while !keys.is_empty() {
                let index = rng.below(keys.len());
                let key = keys[index].clone();
                let Some(envelope) = streams.get_mut(&key).and_then(VecDeque::pop_front) else {
                    keys.swap_remove(index);
                    continue;
                };
                let outcome = model.apply(&envelope);
                prop_assert_eq!(outcome, Outcome::Applied);
                seen.push(envelope.clone());
                if rng.below(3) == 0 {
                    prop_assert_eq!(model.apply(&envelope), Outcome::Duplicate);
                }
                if rng.below(4) == 0 {
                    let old = seen[rng.below(seen.len())].clone();
                    prop_assert_eq!(model.apply(&old), Outcome::Duplicate);
                }
            }
            let notifications = model.take_notifications();
            prop_assert_eq!(view(&model, &notifications), expected);
        }
    }
}

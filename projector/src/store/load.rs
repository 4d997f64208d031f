//! Reading what a batch touches, in its transaction: its aggregates' documents (filling gaps
//! from the event store) and the statistics its tasks count in.

use std::collections::{BTreeSet, HashMap};

use anyhow::Context as _;
use domain::AggregateType;
use event_store::read::Envelope;
use futures::TryStreamExt as _;
use mongodb::bson::{Document, doc};
use mongodb::{ClientSession, Database};
use read_model::documents::{ProjectView, TaskView, UserView};
use read_model::names;
use read_model::names::StatsOwner;
use serde::de::DeserializeOwned;

use crate::model::{AggregateKey, Model, Stats};
use crate::projection::{self, Event};
use event_store::read;

use super::Store;

/// The documents a batch read, as stored: each write is guarded by the version (revision) it
/// was read at and sets only the fields that changed.
#[derive(Debug, Default)]
pub(super) struct Loaded {
    pub(super) users: HashMap<String, Document>,
    pub(super) projects: HashMap<String, Document>,
    pub(super) tasks: HashMap<String, Document>,
    pub(super) stats: HashMap<String, Document>,
}

impl Loaded {
    /// The revision of each statistics document read.
    pub(super) fn revisions(&self) -> HashMap<String, i64> {
        self.stats
            .iter()
            .map(|(id, d)| (id.clone(), d.get_i64("rev").unwrap_or(0)))
            .collect()
    }
}

impl Store {
    /// Reads what the batch touches: its aggregates' documents, then the statistics of the
    /// projects and assignees its tasks count in. Sorts each group by sequence and fills it from
    /// the event store when it has a gap (before its first event or inside it).
    pub(super) async fn load(
        &self,
        session: &mut ClientSession,
        generation: u64,
        groups: &mut HashMap<AggregateKey, Vec<Envelope>>,
        read_created: bool,
    ) -> anyhow::Result<(Model, Loaded)> {
        let raw_users = find_by_ids(
            &self.db,
            session,
            &names::users(generation),
            &ids_of(groups, AggregateType::User, read_created),
        )
        .await?;
        let raw_projects = find_by_ids(
            &self.db,
            session,
            &names::projects(generation),
            &ids_of(groups, AggregateType::Project, read_created),
        )
        .await?;
        let raw_tasks = find_by_ids(
            &self.db,
            session,
            &names::tasks(generation),
            &ids_of(groups, AggregateType::Task, read_created),
        )
        .await?;
        let users: Vec<UserView> = decode_all(&raw_users)?;
        let projects: Vec<ProjectView> = decode_all(&raw_projects)?;
        let tasks: Vec<TaskView> = decode_all(&raw_tasks)?;

        // Gaps: the events after the stored version come from the event store.
        let mut versions: HashMap<AggregateKey, i64> = HashMap::new();
        versions.extend(
            users
                .iter()
                .map(|d| ((AggregateType::User, d.id.clone()), d.version)),
        );
        versions.extend(
            projects
                .iter()
                .map(|d| ((AggregateType::Project, d.id.clone()), d.version)),
        );
        versions.extend(
            tasks
                .iter()
                .map(|d| ((AggregateType::Task, d.id.clone()), d.version)),
        );
        for (key, group) in groups.iter_mut() {
            group.sort_by_key(|e| e.sequence);
            group.dedup_by_key(|e| e.sequence);
            let version = versions.get(key).copied().unwrap_or(0);
            // The events after the stored version must follow it without a hole (one can sit
            // before the batch's first event or between two of them).
            let unapplied = group.iter().filter(|e| e.sequence > version);
            if unapplied
                .zip(version + 1..)
                .any(|(e, next)| e.sequence != next)
            {
                tracing::debug!(
                    aggregate_type = %key.0,
                    aggregate_id = key.1,
                    version,
                    "projector: filling a gap from the event store"
                );
                *group = read::of_aggregate(&self.pool, key.0, &key.1, version, i64::MAX).await?;
            }
        }

        // The statistics the batch's tasks count in, before and after its events: their
        // projects' and assignees'.
        let mut stats_ids: BTreeSet<String> = BTreeSet::new();
        for task in &tasks {
            stats_ids.insert(StatsOwner::Project(&task.project_id).id());
            stats_ids.extend(
                task.assignee_id
                    .as_deref()
                    .map(|a| StatsOwner::User(a).id()),
            );
        }
        for envelope in groups.values().flatten() {
            if let Ok(Event::Task(event)) = projection::decode(envelope) {
                match event {
                    domain::TaskEvent::TaskCreated {
                        project_id,
                        assignee_id,
                        ..
                    } => {
                        stats_ids.insert(StatsOwner::Project(&project_id.to_string()).id());
                        stats_ids
                            .extend(assignee_id.map(|id| StatsOwner::User(&id.to_string()).id()));
                    }
                    domain::TaskEvent::TaskAssigned { assignee_id }
                    | domain::TaskEvent::TaskUnassigned {
                        previous_assignee_id: assignee_id,
                    } => {
                        stats_ids.insert(StatsOwner::User(&assignee_id.to_string()).id());
                    }
                    _ => {}
                }
            }
        }
        let stats_ids: Vec<String> = stats_ids.into_iter().collect();
        let raw_stats =
            find_by_ids(&self.db, session, &names::stats(generation), &stats_ids).await?;

        let model = Model::with_documents(
            users,
            projects,
            tasks,
            raw_stats.iter().filter_map(decode_stats).collect(),
        );
        let by_id = |documents: Vec<Document>| -> HashMap<String, Document> {
            documents
                .into_iter()
                .filter_map(|d| Some((d.get_str("_id").ok()?.to_owned(), d)))
                .collect()
        };
        let loaded = Loaded {
            users: by_id(raw_users),
            projects: by_id(raw_projects),
            tasks: by_id(raw_tasks),
            stats: by_id(raw_stats),
        };
        Ok((model, loaded))
    }
}

/// The ids of the aggregates of one type in a batch whose documents it reads: all of them with
/// `read_created`, else those it does not create (whose events start after sequence 1).
fn ids_of(
    groups: &HashMap<AggregateKey, Vec<Envelope>>,
    aggregate_type: AggregateType,
    read_created: bool,
) -> Vec<String> {
    groups
        .iter()
        .filter(|((t, _), group)| {
            *t == aggregate_type
                && (read_created || group.iter().map(|e| e.sequence).min() != Some(1))
        })
        .map(|((_, id), _)| id.clone())
        .collect()
}

/// The documents of `collection` with these ids, read in the transaction.
async fn find_by_ids(
    db: &Database,
    session: &mut ClientSession,
    collection: &str,
    ids: &[String],
) -> anyhow::Result<Vec<Document>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut cursor = db
        .collection::<Document>(collection)
        .find(doc! { "_id": { "$in": ids } })
        .session(&mut *session)
        .await
        .with_context(|| format!("reading {collection}"))?;
    cursor
        .stream(session)
        .try_collect()
        .await
        .with_context(|| format!("reading {collection}"))
}

/// Stored documents as read-model structs.
fn decode_all<T: DeserializeOwned>(documents: &[Document]) -> anyhow::Result<Vec<T>> {
    documents
        .iter()
        .map(|d| read_model::codec::from_document(d.clone()).context("decoding a read model"))
        .collect()
}

/// A stored statistics document: its id and counters.
fn decode_stats(document: &Document) -> Option<(String, Stats)> {
    let id = document.get_str("_id").ok()?.to_owned();
    let fields = document
        .get_document("fields")
        .map(|fields| {
            fields
                .iter()
                .filter_map(|(k, v)| {
                    let n = v.as_i64().or_else(|| v.as_i32().map(i64::from))?;
                    Some((k.clone(), n))
                })
                .collect()
        })
        .unwrap_or_default();
    let position = document.get_i64("position").unwrap_or(0);
    Some((id, Stats { fields, position }))
}

/// The version of an aggregate's document in `generation` (0 if none).
///
/// # Errors
/// MongoDB unreachable.
pub async fn version(db: &Database, generation: u64, key: &AggregateKey) -> anyhow::Result<i64> {
    let collection = match key.0 {
        AggregateType::User => names::users(generation),
        AggregateType::Project => names::projects(generation),
        AggregateType::Task => names::tasks(generation),
    };
    let found = db
        .collection::<Document>(&collection)
        .find_one(doc! { "_id": &key.1 })
        .projection(doc! { "version": 1 })
        .await
        .context("reading a document version")?;
    Ok(found.and_then(|d| d.get_i64("version").ok()).unwrap_or(0))
}

//! The read models in MongoDB and Redis, written a batch at a time (ADR 0005).
//!
//! [`Store::apply_batch`] is the one apply path of the live projector, the replay and the
//! parked-event retry:
//!
//! 1. in one MongoDB transaction, read the documents and statistics the batch touches (one
//!    query per collection), fill gaps from PostgreSQL, fold the events into a [`Model`] in
//!    memory, write what changed with unordered bulk `update` commands, each guarded by the
//!    version (or statistics revision) it was read at, and commit;
//! 2. copy every document and statistic the batch touched to Redis in one pipeline (guarded,
//!    so an older copy never replaces a newer one), and publish the applied versions.
//!
//! The transaction makes a batch all or nothing: a statistic moves by a task's delta exactly
//! when the task's document moves to the event's version, so redelivery (the version guard turns
//! applied events into no-ops), a crash anywhere and a replay's catch-up all count each event
//! once. Two projector members that touch the same documents conflict, and one retries.
//!
//! A document holds its own aggregate's events only, and the statistics only task events: nothing
//! is copied from one aggregate into another's document (the query API joins a task to its
//! project's and assignee's names, and a project to its task counts, when it answers). So no
//! event writes documents of other aggregates, its cost does not depend on how many tasks name
//! its aggregate, and two projector members that move the same statistics conflict on them and
//! one retries.

use std::collections::{BTreeSet, HashMap, HashSet};

use anyhow::Context as _;
use chrono::NaiveDate;
use futures::TryStreamExt as _;
use mongodb::bson::{Bson, Document, doc};
use mongodb::{ClientSession, Database};
use read_model::documents::{ProjectView, TaskView, UserView, status};
use read_model::names::StatsOwner;
use read_model::{Envelope, keys, names};
use redis::aio::ConnectionManager;
use serde::de::DeserializeOwned;
use sqlx::PgPool;

use crate::events;
use crate::model::{AggregateKey, Model, Outcome, ParkedAt, Stats};
use crate::parked;
use crate::projection::{self, Event};

/// Statements per bulk `update` command (well under the server's 100,000 and 16 MiB limits).
const BULK_CHUNK: usize = 1000;

/// Writes a document's JSON unless Redis already holds a newer one (by `version`).
const SET_JSON: &str = r"
local current = redis.call('GET', KEYS[1])
if current then
  local ok, old = pcall(cjson.decode, current)
  if ok and type(old) == 'table' and tonumber(ARGV[2]) < (tonumber(old['version']) or 0) then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[1])
return 1
";

/// Replaces a stats hash with a revision at least as new: ARGV = revision, position, then
/// field/value pairs.
const SET_STATS: &str = r"
local recount = tonumber(redis.call('HGET', KEYS[1], 'recount') or '-1')
if tonumber(ARGV[1]) < recount then
  return 0
end
redis.call('DEL', KEYS[1])
for i = 3, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
redis.call('HSET', KEYS[1], 'recount', ARGV[1], 'version', ARGV[2])
return 1
";

/// The read models.
#[derive(Clone)]
pub struct Store {
    /// The read-model database.
    pub db: Database,
    /// Redis.
    pub redis: ConnectionManager,
    /// `settings.redis.key_prefix`.
    pub prefix: String,
    /// The event store (gap filling).
    pub pool: PgPool,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("db", &self.db.name())
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// What a batch did.
#[derive(Debug, Default)]
pub struct Applied {
    /// Events applied (not counting duplicates and dropped ones).
    pub applied: u64,
    /// Aggregates that got parked, with the events behind them.
    pub parked: Vec<ParkedAt>,
}

/// How a batch treats parked aggregates, and what else it writes.
#[derive(Debug, Clone)]
pub struct BatchOptions {
    /// Events of aggregates parked in `projector_parked` are held there, not applied (the live
    /// projector). A replay applies everything and meets the poison events itself.
    pub hold_parked: bool,
    /// Record aggregates this batch parks in `projector_parked` (not in a dry run).
    pub park: bool,
    /// Written in the same transaction (a replay's checkpoint).
    pub also: Option<AlsoWrite>,
}

impl BatchOptions {
    /// The live projector's.
    #[must_use]
    pub fn live() -> Self {
        Self {
            hold_parked: true,
            park: true,
            also: None,
        }
    }
}

/// A write to do in the batch's transaction besides the read models (the replay's checkpoint).
#[derive(Debug, Clone)]
pub struct AlsoWrite {
    /// The collection.
    pub collection: String,
    /// The document's `_id`.
    pub id: String,
    /// Fields to `$set` (upserted).
    pub set: Document,
}

/// The documents a batch read, as stored: each write is guarded by the version (revision) it
/// was read at and sets only the fields that changed.
#[derive(Debug, Default)]
struct Loaded {
    users: HashMap<String, Document>,
    projects: HashMap<String, Document>,
    tasks: HashMap<String, Document>,
    stats: HashMap<String, Document>,
}

impl Loaded {
    /// The revision of each statistics document read.
    fn revisions(&self) -> HashMap<String, i64> {
        self.stats
            .iter()
            .map(|(id, d)| (id.clone(), d.get_i64("rev").unwrap_or(0)))
            .collect()
    }
}

impl Store {
    /// Applies `envelopes` (any order, duplicates allowed) to `generation`, as `options` say.
    ///
    /// # Errors
    /// MongoDB, Redis or PostgreSQL failed, a transaction conflicted with another writer, or a
    /// gap the event store cannot fill: nothing is half-done, the caller retries the batch.
    pub async fn apply_batch(
        &self,
        generation: u64,
        envelopes: Vec<Envelope>,
        options: BatchOptions,
    ) -> anyhow::Result<Applied> {
        let mut groups: HashMap<AggregateKey, Vec<Envelope>> = HashMap::new();
        for envelope in envelopes {
            groups
                .entry((
                    envelope.aggregate_type.clone(),
                    envelope.aggregate_id.clone(),
                ))
                .or_default()
                .push(envelope);
        }
        // Which of the batch's aggregates are parked, and which events an operator dropped: two
        // reads at once (each a round trip on the path of every event).
        let keys: Vec<AggregateKey> = groups.keys().cloned().collect();
        let (parked, dropped) = tokio::try_join!(
            async {
                if options.hold_parked {
                    parked::parked_among(&self.db, &keys).await
                } else {
                    Ok(HashSet::new())
                }
            },
            parked::dropped(&self.db),
        )?;
        for key in parked {
            if let Some(held) = groups.remove(&key) {
                parked::hold(&self.db, &key, &held).await?;
            }
        }
        if groups.is_empty() {
            return Ok(Applied::default());
        }

        // An aggregate whose first event here is its creation has no document yet, unless the
        // batch is a redelivery: its document is not read but inserted, and an insert that
        // meets one (a duplicate `_id`) makes the batch run again reading every document.
        let (mut model, applied) = match self
            .transact(
                generation,
                &mut groups,
                &dropped,
                options.also.as_ref(),
                false,
            )
            .await
        {
            Err(error) if error.is::<DuplicateInsert>() => {
                tracing::debug!(
                    error = format!("{error:#}"),
                    "projector: a created aggregate has a document already; reading them all"
                );
                self.transact(
                    generation,
                    &mut groups,
                    &dropped,
                    options.also.as_ref(),
                    true,
                )
                .await?
            }
            outcome => outcome?,
        };
        let parked = std::mem::take(&mut model.parked);
        if options.park {
            for at in parked.values() {
                parked::park(&self.db, &at.envelope, &at.reason, at.held.clone()).await?;
            }
        }
        Ok(Applied {
            applied,
            parked: parked.into_values().collect(),
        })
    }

    /// The batch's MongoDB transaction, then its Redis copy: reads what it touches (with
    /// `read_created`, also the documents of aggregates it creates), folds, writes, commits.
    /// Returns the model and the number of events applied.
    async fn transact(
        &self,
        generation: u64,
        groups: &mut HashMap<AggregateKey, Vec<Envelope>>,
        dropped: &HashSet<(String, String, i64)>,
        also: Option<&AlsoWrite>,
        read_created: bool,
    ) -> anyhow::Result<(Model, u64)> {
        let started = std::time::Instant::now();
        let mut session = self
            .db
            .client()
            .start_session()
            .await
            .context("starting a MongoDB session")?;
        session
            .start_transaction()
            .await
            .context("starting a MongoDB transaction")?;
        let (mut model, loaded) = self
            .load(&mut session, generation, groups, read_created)
            .await?;
        model.dropped = dropped.clone();
        let loaded_at = started.elapsed();

        let mut applied = 0;
        for (key, group) in groups.iter() {
            for envelope in group {
                match model.apply(envelope) {
                    Outcome::Applied => applied += 1,
                    Outcome::Gap { version } => anyhow::bail!(
                        "{} {} has a gap after sequence {version} that the event store cannot fill",
                        key.0,
                        key.1
                    ),
                    Outcome::Duplicate | Outcome::Dropped | Outcome::Held | Outcome::Parked(_) => {}
                }
            }
        }
        let folded_at = started.elapsed();
        let written = self
            .write(&mut session, generation, &mut model, &loaded, also.cloned())
            .await?;
        let written_at = started.elapsed();
        session
            .commit_transaction()
            .await
            .context("committing the batch's MongoDB transaction")?;
        let committed_at = started.elapsed();
        let mut revisions = loaded.revisions();
        revisions.extend(written);
        self.copy_to_redis(generation, &model, &revisions).await?;
        tracing::debug!(
            events = applied,
            read_ms = loaded_at.as_millis(),
            fold_ms = (folded_at - loaded_at).as_millis(),
            write_ms = (written_at - folded_at).as_millis(),
            commit_ms = (committed_at - written_at).as_millis(),
            redis_ms = (started.elapsed() - committed_at).as_millis(),
            "projector: batch timings"
        );
        Ok((model, applied))
    }

    /// Reads what the batch touches: its aggregates' documents, then the statistics of the
    /// projects and assignees its tasks count in. Sorts each group by sequence and fills it from
    /// the event store when it has a gap (before its first event or inside it).
    async fn load(
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
            &ids_of(groups, "user", read_created),
        )
        .await?;
        let raw_projects = find_by_ids(
            &self.db,
            session,
            &names::projects(generation),
            &ids_of(groups, "project", read_created),
        )
        .await?;
        let raw_tasks = find_by_ids(
            &self.db,
            session,
            &names::tasks(generation),
            &ids_of(groups, "task", read_created),
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
                .map(|d| (("user".into(), d.id.clone()), d.version)),
        );
        versions.extend(
            projects
                .iter()
                .map(|d| (("project".into(), d.id.clone()), d.version)),
        );
        versions.extend(
            tasks
                .iter()
                .map(|d| (("task".into(), d.id.clone()), d.version)),
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
                    aggregate_type = key.0,
                    aggregate_id = key.1,
                    version,
                    "projector: filling a gap from the event store"
                );
                *group = events::of_aggregate(&self.pool, &key.0, &key.1, version).await?;
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

    /// Writes what changed in the model, in the transaction; returns the statistics written
    /// (with their new revisions).
    async fn write(
        &self,
        session: &mut ClientSession,
        generation: u64,
        model: &mut Model,
        loaded: &Loaded,
        also: Option<AlsoWrite>,
    ) -> anyhow::Result<HashMap<String, i64>> {
        let dirty = model.take_dirty();
        let notifications = model.take_notifications();

        // Statistics.
        let mut revisions = HashMap::new();
        let mut writes = Writes::default();
        for id in &dirty.stats {
            let stats = model.stats.get(id).cloned().unwrap_or_default();
            let previous = loaded.stats.get(id);
            let revision = previous.and_then(|d| d.get_i64("rev").ok()).unwrap_or(0) + 1;
            let fields: Document = stats
                .fields
                .iter()
                .map(|(k, v)| (k.clone(), Bson::Int64(*v)))
                .collect();
            let document = doc! {
                "_id": id, "fields": fields, "position": stats.position, "rev": revision,
            };
            writes.guarded("rev", previous, document);
            revisions.insert(id.clone(), revision);
        }
        writes
            .run(&self.db, session, &names::stats(generation))
            .await?;

        // Documents, each guarded by the version it was read at.
        let mut writes = Writes::default();
        for id in &dirty.users {
            if let Some(user) = model.user(id) {
                let document = read_model::codec::to_document(&user).context("encoding a user")?;
                writes.guarded("version", loaded.users.get(id), document);
            }
        }
        writes
            .run(&self.db, session, &names::users(generation))
            .await?;
        let mut writes = Writes::default();
        for id in &dirty.projects {
            if let Some(project) = model.project(id) {
                let document =
                    read_model::codec::to_document(&project).context("encoding a project")?;
                writes.guarded("version", loaded.projects.get(id), document);
            }
        }
        writes
            .run(&self.db, session, &names::projects(generation))
            .await?;
        let mut writes = Writes::default();
        for id in &dirty.tasks {
            if let Some(task) = model.task(id) {
                let document = read_model::codec::to_document(&task).context("encoding a task")?;
                writes.guarded("version", loaded.tasks.get(id), document);
            }
        }
        writes
            .run(&self.db, session, &names::tasks(generation))
            .await?;

        // Notifications have deterministic ids and are made only by an event applied in this
        // batch (its aggregate's guarded write is in the same transaction): always new.
        let mut writes = Writes::default();
        for notification in &notifications {
            writes.inserts.push(
                read_model::codec::to_document(notification).context("encoding a notification")?,
            );
        }
        writes
            .run(&self.db, session, &names::notifications(generation))
            .await?;

        if let Some(also) = also {
            let command = doc! {
                "update": &also.collection,
                "updates": [{ "q": { "_id": &also.id }, "u": { "$set": also.set }, "upsert": true }],
            };
            write_command(&self.db, session, &also.collection, command).await?;
        }
        Ok(revisions)
    }

    /// Copies every document and statistic of the model to Redis (guarded), in one pipeline,
    /// and announces the batch on [`keys::applied_channel`]. Documents the batch only read are copied
    /// too: after a crash between the commit and this copy, the redelivered batch repairs Redis.
    /// `revisions`: the stored revision of each statistic.
    async fn copy_to_redis(
        &self,
        generation: u64,
        model: &Model,
        revisions: &HashMap<String, i64>,
    ) -> anyhow::Result<()> {
        let prefix = &self.prefix;
        let set_json = redis::Script::new(SET_JSON);
        let set_stats = redis::Script::new(SET_STATS);
        let mut pipe = redis::pipe();
        // The scripts run by their hash (EVALSHA): load them first, in the same pipeline (a
        // no-op when Redis has them; Redis forgets them when it restarts).
        for script in [SET_JSON, SET_STATS] {
            pipe.cmd("SCRIPT").arg("LOAD").arg(script).ignore();
        }
        for user in model.users.values() {
            let json = serde_json::to_string(user).context("encoding a user")?;
            pipe.invoke_script(
                set_json
                    .key(keys::user(prefix, generation, &user.id))
                    .arg(json)
                    .arg(user.version),
            )
            .ignore();
        }
        for project in model.projects.values() {
            let json = serde_json::to_string(project).context("encoding a project")?;
            pipe.invoke_script(
                set_json
                    .key(keys::project(prefix, generation, &project.id))
                    .arg(json)
                    .arg(project.version),
            )
            .ignore();
        }
        for (id, revision) in revisions {
            let stats = model.stats.get(id).cloned().unwrap_or_default();
            let key = match StatsOwner::parse(id) {
                Some(StatsOwner::Project(project)) => {
                    keys::project_stats(prefix, generation, project)
                }
                Some(StatsOwner::User(user)) => keys::user_stats(prefix, generation, user),
                None => continue,
            };
            let mut invocation = set_stats.key(key);
            invocation.arg(*revision).arg(stats.position);
            for (field, value) in &stats.fields {
                invocation.arg(field).arg(value);
            }
            pipe.invoke_script(&invocation).ignore();
        }
        pipe.publish(keys::applied_channel(prefix), generation)
            .ignore();
        let mut redis = self.redis.clone();
        let () = pipe
            .query_async(&mut redis)
            .await
            .context("writing the Redis read models")?;
        Ok(())
    }

    /// Writes the overdue notifications of every open task due before `today`; returns how many
    /// tasks are overdue. Notifications have deterministic ids (task and due date), so they are
    /// inserted in unordered bulk commands and one that exists already (a duplicate `_id`) is
    /// left as it is: running the pass again changes nothing.
    ///
    /// # Errors
    /// MongoDB unreachable, or a write error other than a duplicate `_id`.
    pub async fn overdue_pass(&self, generation: u64, today: NaiveDate) -> anyhow::Result<u64> {
        let collection = names::notifications(generation);
        let today_text = today.format("%Y-%m-%d").to_string();
        let mut cursor = self
            .db
            .collection::<TaskView>(&names::tasks(generation))
            .find(doc! {
                "deleted": false,
                "status": { "$in": status::OPEN.to_vec() },
                "due_date": { "$lt": today_text, "$ne": null },
            })
            .await
            .context("finding overdue tasks")?;
        let mut overdue = 0;
        let mut chunk = Vec::with_capacity(BULK_CHUNK);
        loop {
            let task = cursor.try_next().await.context("reading overdue tasks")?;
            if let Some(notification) = task
                .as_ref()
                .and_then(|task| projection::overdue_notification(task, today))
            {
                chunk.push(
                    read_model::codec::to_document(&notification)
                        .context("encoding a notification")?,
                );
                overdue += 1;
            }
            if chunk.len() == BULK_CHUNK || (task.is_none() && !chunk.is_empty()) {
                let command = doc! {
                    "insert": &collection,
                    "documents": std::mem::take(&mut chunk),
                    "ordered": false,
                };
                let reply = self
                    .db
                    .run_command(command)
                    .await
                    .context("inserting overdue notifications")?;
                let errors = reply.get_array("writeErrors").map(Vec::as_slice);
                let other = errors.unwrap_or_default().iter().find(|error| {
                    error
                        .as_document()
                        .and_then(|e| e.get_i32("code").ok())
                        .is_none_or(|code| code != DUPLICATE_KEY)
                });
                if let Some(error) = other {
                    anyhow::bail!("inserting overdue notifications: {error:?}");
                }
            }
            if task.is_none() {
                return Ok(overdue);
            }
        }
    }
}

/// MongoDB's error code for a duplicate key.
const DUPLICATE_KEY: i32 = 11000;

/// The ids of the aggregates of one type in a batch whose documents it reads: all of them with
/// `read_created`, else those it does not create (whose events start after sequence 1).
fn ids_of(
    groups: &HashMap<AggregateKey, Vec<Envelope>>,
    aggregate_type: &str,
    read_created: bool,
) -> Vec<String> {
    groups
        .iter()
        .filter(|((t, _), group)| {
            t == aggregate_type
                && (read_created || group.iter().map(|e| e.sequence).min() != Some(1))
        })
        .map(|((_, id), _)| id.clone())
        .collect()
}

/// An insert met a document with its `_id`: the batch read too little (a redelivered creation)
/// or another writer came in between.
#[derive(Debug)]
struct DuplicateInsert {
    collection: String,
}

impl std::fmt::Display for DuplicateInsert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: a document with this _id exists", self.collection)
    }
}

impl std::error::Error for DuplicateInsert {}

/// The writes of one collection in a batch: new documents and guarded updates.
#[derive(Debug, Default, PartialEq)]
struct Writes {
    /// Documents the batch did not find when it read: inserted (if one exists after all, the
    /// insert fails on its duplicate `_id` and the batch is retried).
    inserts: Vec<Document>,
    /// Update statements, each guarded by the value its field was read with.
    updates: Vec<Document>,
}

impl Writes {
    /// Writes `after` over the document read as `before`, where `field` still has the value it
    /// was read with, setting only the fields that changed (an index is touched only when its
    /// keys changed); or inserts `after` where nothing was read.
    fn guarded(&mut self, field: &str, before: Option<&Document>, after: Document) {
        let Some(before) = before else {
            self.inserts.push(after);
            return;
        };
        let previous = before.get(field).cloned().unwrap_or(Bson::Null);
        let id = before.get("_id").cloned().unwrap_or(Bson::Null);
        let mut changed: Document = after
            .into_iter()
            .filter(|(key, value)| before.get(key) != Some(value))
            .collect();
        if changed.is_empty() {
            // Still a write: two batches that touch one document must conflict.
            changed.insert(field, previous.clone());
        }
        self.updates
            .push(doc! { "q": { "_id": id, field: previous }, "u": { "$set": changed } });
    }

    /// Runs them in the transaction: unordered bulk `insert` commands, then unordered bulk
    /// `update` commands of which every statement must match one document. A duplicate `_id` or
    /// a document another writer changed in between fails the batch, which is retried.
    async fn run(
        self,
        db: &Database,
        session: &mut ClientSession,
        collection: &str,
    ) -> anyhow::Result<()> {
        let started = std::time::Instant::now();
        let (inserts, updates) = (self.inserts.len(), self.updates.len());
        for chunk in self.inserts.chunks(BULK_CHUNK) {
            let command =
                doc! { "insert": collection, "documents": chunk.to_vec(), "ordered": false };
            write_command(db, session, collection, command).await?;
        }
        for chunk in self.updates.chunks(BULK_CHUNK) {
            let command =
                doc! { "update": collection, "updates": chunk.to_vec(), "ordered": false };
            let reply = write_command(db, session, collection, command).await?;
            let matched = reply
                .get_i32("n")
                .map(i64::from)
                .or_else(|_| reply.get_i64("n"))
                .unwrap_or(0);
            anyhow::ensure!(
                usize::try_from(matched).is_ok_and(|n| n == chunk.len()),
                "{collection}: {} of {} documents changed while the batch was applied; retrying",
                chunk
                    .len()
                    .saturating_sub(usize::try_from(matched).unwrap_or(0)),
                chunk.len()
            );
        }
        if inserts + updates > 0 {
            tracing::trace!(
                collection,
                inserts,
                updates,
                elapsed_ms = started.elapsed().as_millis(),
                "projector: bulk write"
            );
        }
        Ok(())
    }
}

/// Runs a write command on `collection` in the transaction; returns its reply. A write error
/// (a duplicate `_id` among them: another writer came in between) fails the batch, which is
/// retried.
async fn write_command(
    db: &Database,
    session: &mut ClientSession,
    collection: &str,
    command: Document,
) -> anyhow::Result<Document> {
    let reply = db
        .run_command(command)
        .session(&mut *session)
        .await
        .with_context(|| format!("writing {collection}"))?;
    if let Ok(errors) = reply.get_array("writeErrors") {
        let duplicates = errors.iter().all(|error| {
            error
                .as_document()
                .and_then(|e| e.get_i32("code").ok())
                .is_some_and(|code| code == DUPLICATE_KEY)
        });
        if duplicates {
            return Err(DuplicateInsert {
                collection: collection.to_owned(),
            }
            .into());
        }
        anyhow::bail!("writing {collection} (the batch is retried): {errors:?}");
    }
    Ok(reply)
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
    let collection = match key.0.as_str() {
        "user" => names::users(generation),
        "project" => names::projects(generation),
        "task" => names::tasks(generation),
        _ => return Ok(0),
    };
    let found = db
        .collection::<Document>(&collection)
        .find_one(doc! { "_id": &key.1 })
        .projection(doc! { "version": 1 })
        .await
        .context("reading a document version")?;
    Ok(found.and_then(|d| d.get_i64("version").ok()).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guarded_write_sets_what_changed_at_the_read_version_or_inserts() {
        let before = doc! { "_id": "a", "title": "old", "status": "pending", "version": 2_i64 };
        let after = doc! { "_id": "a", "title": "new", "status": "pending", "version": 3_i64 };
        let mut writes = Writes::default();
        writes.guarded("version", Some(&before), after.clone());
        writes.guarded("version", Some(&before), before.clone());
        writes.guarded("version", None, after.clone());
        assert_eq!(
            writes,
            Writes {
                inserts: vec![after],
                updates: vec![
                    doc! {
                        "q": { "_id": "a", "version": 2_i64 },
                        "u": { "$set": { "title": "new", "version": 3_i64 } },
                    },
                    // An unchanged document is still written (batches touching it conflict).
                    doc! { "q": { "_id": "a", "version": 2_i64 }, "u": { "$set": { "version": 2_i64 } } },
                ],
            }
        );
    }
}

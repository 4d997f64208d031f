//! `projector replay`: rebuilds the read models from the event store into a new generation,
//! then swaps the pointer (ADR 0003).
//!
//! 1. Folds every committed event, in `(transaction_id, global_position)` order and only from
//!    transactions older than every running one, into an in-memory [`Model`]; flushes the
//!    changed documents in bulk into generation N+1 after every batch, with a checkpoint in
//!    `projector_replay` (a killed replay resumes from it).
//! 2. Repeats until no event is left (caught up), writes the overdue notifications, swaps the
//!    pointer in `read_model_meta`.
//! 3. Catches up again through the live projector's guarded writes (live projectors now write
//!    to N+1 too; the version guard makes the overlap harmless), then drops generation N.
//!
//! Never touches Kafka. Any error fails the command (non-zero exit).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::Write as _;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::{StreamExt as _, TryStreamExt as _};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use mongodb::bson::{self, Document, doc};
use mongodb::error::ErrorKind;
use read_model::documents::{NotificationView, ProjectView, TaskView, UserView, kind};
use read_model::{Generation, keys, names};
use serde::de::DeserializeOwned;

use crate::events::{self, Position};
use crate::model::{AggregateKey, Model, Outcome};
use crate::parked;
use crate::settings::ProjectorSettings;
use crate::store::{self, COUNTS_RECOUNT, PROJECT_NAME_VERSION, Recounts, Store};

/// The `_id` of the checkpoint in `projector_replay`.
pub const CHECKPOINT_ID: &str = "replay";
/// Dry runs build into generation `active + SCRATCH_OFFSET`.
pub const SCRATCH_OFFSET: u64 = 1_000_000;
/// How long after the swap the replay waits before its last catch-up (live projectors re-read
/// the pointer at least every second, at the start of each batch).
const SETTLE: Duration = Duration::from_secs(2);

/// Which projection a dry run compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Projection {
    /// `users_g{N}` and the Redis user JSON.
    Users,
    /// `projects_g{N}`, the Redis project JSON and project stats.
    Projects,
    /// `tasks_g{N}` and the Redis user stats.
    Tasks,
    /// `notifications_g{N}`.
    Notifications,
    /// Everything.
    All,
}

impl Projection {
    fn includes(self, other: Self) -> bool {
        self == Self::All || self == other
    }
}

/// How to replay.
#[derive(Debug, Clone, Copy)]
pub struct ReplayOptions {
    /// What a dry run compares (a real replay always rebuilds a whole generation).
    pub projection: Projection,
    /// Build into a scratch generation, compare, drop it; never swap.
    pub dry_run: bool,
    /// Show a progress bar on stderr.
    pub progress: bool,
}

/// What a replay did.
#[derive(Debug, Clone, Default)]
pub struct ReplayReport {
    /// The generation built (the scratch one for a dry run).
    pub generation: u64,
    /// Events folded in this run.
    pub events: u64,
    /// How long it took.
    pub elapsed: Duration,
    /// Dry run: each difference found, one line each.
    pub differences: Vec<String>,
    /// Whether this run resumed an interrupted one.
    pub resumed: bool,
}

impl ReplayReport {
    /// Events per second of the fold.
    #[must_use]
    pub fn rate(&self) -> f64 {
        #[expect(clippy::cast_precision_loss, reason = "a rate")]
        let events = self.events as f64;
        events / self.elapsed.as_secs_f64().max(1e-9)
    }
}

#[derive(Debug, Clone)]
struct Checkpoint {
    generation: u64,
    position: Position,
    status: String,
}

async fn read_checkpoint(db: &mongodb::Database) -> anyhow::Result<Option<Checkpoint>> {
    let found = db
        .collection::<Document>(names::REPLAY)
        .find_one(doc! { "_id": CHECKPOINT_ID })
        .await
        .context("reading the replay checkpoint")?;
    Ok(found.and_then(|d| {
        Some(Checkpoint {
            generation: u64::try_from(d.get_i64("generation").ok()?).ok()?,
            position: Position {
                transaction_id: d.get_str("transaction_id").ok()?.to_owned(),
                global_position: d.get_i64("global_position").ok()?,
            },
            status: d.get_str("status").ok()?.to_owned(),
        })
    }))
}

async fn write_checkpoint(
    db: &mongodb::Database,
    generation: u64,
    position: &Position,
    status: &str,
    fresh: bool,
) -> anyhow::Result<()> {
    let mut set = doc! {
        "generation": i64::try_from(generation).unwrap_or(i64::MAX),
        "transaction_id": &position.transaction_id,
        "global_position": position.global_position,
        "status": status,
        "updated_at": bson::DateTime::now(),
    };
    if fresh {
        set.insert("started_at", bson::DateTime::now());
    }
    db.collection::<Document>(names::REPLAY)
        .update_one(doc! { "_id": CHECKPOINT_ID }, doc! { "$set": set })
        .upsert(true)
        .await
        .context("writing the replay checkpoint")?;
    Ok(())
}

fn say(message: &str) {
    let _ignored = writeln!(std::io::stderr(), "{message}");
}

/// Runs a replay (see the module documentation).
///
/// # Errors
/// Any server error, a gap in the event store, or a `--projection` other than `all` without
/// `--dry-run`.
pub async fn replay(
    store: &Store,
    settings: &ProjectorSettings,
    options: ReplayOptions,
) -> anyhow::Result<ReplayReport> {
    anyhow::ensure!(
        options.dry_run || options.projection == Projection::All,
        "a generation is rebuilt as a whole (its projections depend on each other): \
         --projection selects what --dry-run compares; use it with --dry-run"
    );
    let started = Instant::now();
    let db = &store.db;
    let pointer = Generation::pointer(db).await?;
    if options.dry_run {
        let scratch = pointer.active + SCRATCH_OFFSET;
        drop_generation(store, scratch).await?;
        read_model::ensure_indexes(db, scratch).await?;
        let mut builder = Builder::new(store, scratch, Model::new(), options.progress);
        let folded = builder.fold(settings, Position::start(), None).await;
        let outcome = match folded {
            Ok(events) => {
                store
                    .overdue_pass(scratch, chrono::Utc::now().date_naive())
                    .await?;
                let differences = compare(store, pointer.active, scratch, options.projection).await;
                differences.map(|differences| (events, differences))
            }
            Err(error) => Err(error),
        };
        drop_generation(store, scratch).await?;
        let (events, differences) = outcome?;
        return Ok(ReplayReport {
            generation: scratch,
            events,
            elapsed: started.elapsed(),
            differences,
            resumed: false,
        });
    }

    let checkpoint = read_checkpoint(db).await?;
    let mut report = ReplayReport::default();
    let (generation, position, previous) = match checkpoint {
        Some(checkpoint)
            if checkpoint.status == "swapped" && checkpoint.generation == pointer.active =>
        {
            say(&format!(
                "resuming the replay of generation {} after its swap",
                checkpoint.generation
            ));
            report.resumed = true;
            (checkpoint.generation, checkpoint.position, pointer.previous)
        }
        Some(checkpoint)
            if checkpoint.status == "building" && checkpoint.generation > pointer.active =>
        {
            say(&format!(
                "resuming the replay of generation {} from global position {}",
                checkpoint.generation, checkpoint.position.global_position
            ));
            report.resumed = true;
            let generation = checkpoint.generation;
            let model = load_model(store, generation).await?;
            let mut builder = Builder::new(store, generation, model, options.progress);
            builder.mark_persisted().await?;
            report.events = builder
                .fold(settings, checkpoint.position.clone(), Some(generation))
                .await?;
            let position = builder.position.clone();
            builder.finish_build(&position).await?;
            (generation, position, Some(pointer.active))
        }
        _ => {
            let generation = pointer.active + 1;
            drop_generation(store, generation).await?;
            read_model::ensure_indexes(db, generation).await?;
            write_checkpoint(db, generation, &Position::start(), "building", true).await?;
            let mut builder = Builder::new(store, generation, Model::new(), options.progress);
            report.events = builder
                .fold(settings, Position::start(), Some(generation))
                .await?;
            let position = builder.position.clone();
            builder.finish_build(&position).await?;
            (generation, position, Some(pointer.active))
        }
    };
    report.generation = generation;
    report.elapsed = started.elapsed();

    if Generation::active(db).await? != generation {
        Generation::swap(db, generation).await?;
        write_checkpoint(db, generation, &position, "swapped", false).await?;
        say(&format!(
            "swapped the read models to generation {generation}"
        ));
    }
    let swapped_at = Instant::now();
    tokio::time::sleep(SETTLE).await;
    let caught_up = catch_up(store, settings, generation, position).await?;
    write_checkpoint(db, generation, &caught_up, "swapped", false).await?;
    if let Some(previous) = previous.filter(|p| *p != generation) {
        let wait =
            Duration::from_secs(settings.drop_old_after_secs).saturating_sub(swapped_at.elapsed());
        tokio::time::sleep(wait).await;
        drop_generation(store, previous).await?;
        say(&format!("dropped generation {previous}"));
    }
    write_checkpoint(db, generation, &caught_up, "done", false).await?;
    Ok(report)
}

/// Applies the events after `position` through the live projector's guarded writes, until none
/// is left; returns the last position.
async fn catch_up(
    store: &Store,
    settings: &ProjectorSettings,
    generation: u64,
    mut position: Position,
) -> anyhow::Result<Position> {
    loop {
        let batch = events::next_batch(&store.pool, &position, settings.replay_batch_size).await?;
        let Some((last, _)) = batch.last() else {
            return Ok(position);
        };
        position = last.clone();
        let dropped = parked::dropped(&store.db).await?;
        let mut groups: BTreeMap<AggregateKey, Vec<read_model::Envelope>> = BTreeMap::new();
        for (_, envelope) in batch {
            groups
                .entry((
                    envelope.aggregate_type.clone(),
                    envelope.aggregate_id.clone(),
                ))
                .or_default()
                .push(envelope);
        }
        let keys: Vec<AggregateKey> = groups.keys().cloned().collect();
        let parked_keys = parked::parked_among(&store.db, &keys).await?;
        let mut recounts = Recounts::default();
        for (key, envelopes) in groups {
            if parked_keys.contains(&key) {
                continue;
            }
            let result = store
                .apply_aggregate(generation, &key, envelopes, &dropped)
                .await?;
            recounts.merge(result.recounts);
            if let Some((envelope, reason, held)) = result.parked {
                parked::park(&store.db, &envelope, &reason, held).await?;
            }
        }
        store.recount(generation, &recounts).await?;
    }
}

/// Folds events into a model and flushes it into one generation.
struct Builder<'a> {
    store: &'a Store,
    generation: u64,
    model: Model,
    position: Position,
    bar: ProgressBar,
    persisted_users: HashSet<String>,
    persisted_projects: HashSet<String>,
    persisted_tasks: HashSet<String>,
    persisted_counters: HashSet<String>,
}

impl<'a> Builder<'a> {
    fn new(store: &'a Store, generation: u64, model: Model, progress: bool) -> Self {
        let bar = if progress {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            if let Ok(style) = ProgressStyle::with_template(
                "{elapsed_precise} [{bar:40}] {human_pos}/{human_len} events, {per_sec}, ETA {eta}",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar
        } else {
            ProgressBar::hidden()
        };
        Self {
            store,
            generation,
            model,
            position: Position::start(),
            bar,
            persisted_users: HashSet::new(),
            persisted_projects: HashSet::new(),
            persisted_tasks: HashSet::new(),
            persisted_counters: HashSet::new(),
        }
    }

    /// After a resume: everything loaded is already in MongoDB.
    async fn mark_persisted(&mut self) -> anyhow::Result<()> {
        self.persisted_users = self.model.users.keys().cloned().collect();
        self.persisted_projects = self.model.projects.keys().cloned().collect();
        self.persisted_tasks = self.model.tasks.keys().cloned().collect();
        let counters: Vec<Document> = self
            .store
            .db
            .collection::<Document>(&names::stats(self.generation))
            .find(doc! {})
            .projection(doc! { "_id": 1 })
            .await?
            .try_collect()
            .await?;
        self.persisted_counters = counters
            .into_iter()
            .filter_map(|d| d.get_str("_id").ok().map(str::to_owned))
            .collect();
        Ok(())
    }

    /// Folds every committed event after `from`; checkpoints into `checkpoint` after each batch
    /// (none for a dry run). Returns the number of events folded.
    async fn fold(
        &mut self,
        settings: &ProjectorSettings,
        from: Position,
        checkpoint: Option<u64>,
    ) -> anyhow::Result<u64> {
        let (total, done) = events::progress(&self.store.pool, &from).await?;
        self.bar.set_length(total);
        self.bar.set_position(done);
        self.bar.reset_eta();
        self.position = from;
        self.model.dropped = parked::dropped(&self.store.db).await?;
        let mut folded = 0_u64;
        loop {
            let batch =
                events::next_batch(&self.store.pool, &self.position, settings.replay_batch_size)
                    .await?;
            if batch.is_empty() {
                break;
            }
            let count = batch.len() as u64;
            for (position, envelope) in batch {
                match self.model.apply(&envelope) {
                    Outcome::Gap { version } => anyhow::bail!(
                        "{} {} jumps from version {version} to sequence {} in commit order",
                        envelope.aggregate_type,
                        envelope.aggregate_id,
                        envelope.sequence
                    ),
                    Outcome::Parked(reason) => tracing::warn!(
                        aggregate_type = envelope.aggregate_type,
                        aggregate_id = envelope.aggregate_id,
                        sequence = envelope.sequence,
                        reason,
                        "replay: event cannot be applied; its aggregate is parked"
                    ),
                    Outcome::Applied | Outcome::Duplicate | Outcome::Held => {}
                }
                self.position = position;
            }
            self.flush().await?;
            if let Some(generation) = checkpoint {
                write_checkpoint(
                    &self.store.db,
                    generation,
                    &self.position,
                    "building",
                    false,
                )
                .await?;
            }
            folded += count;
            if self
                .bar
                .length()
                .is_some_and(|len| self.bar.position() + count > len)
            {
                self.bar.set_length(self.bar.position() + count);
            }
            self.bar.inc(count);
        }
        self.bar.finish_and_clear();
        Ok(folded)
    }

    /// After the fold of a real replay: overdue notifications and parked aggregates.
    async fn finish_build(&mut self, position: &Position) -> anyhow::Result<()> {
        self.store
            .overdue_pass(self.generation, chrono::Utc::now().date_naive())
            .await?;
        for parked_at in self.model.parked.values() {
            parked::park(
                &self.store.db,
                &parked_at.envelope,
                &parked_at.reason,
                parked_at.held.clone(),
            )
            .await?;
        }
        write_checkpoint(&self.store.db, self.generation, position, "building", false).await
    }

    /// Writes what changed since the last flush.
    async fn flush(&mut self) -> anyhow::Result<()> {
        let dirty = self.model.take_dirty();
        let notifications = self.model.take_notifications();
        let g = self.generation;
        let db = &self.store.db;

        let users: Vec<UserView> = dirty
            .users
            .iter()
            .filter_map(|id| self.model.user(id))
            .collect();
        let mut projects = Vec::new();
        for id in &dirty.projects {
            if let Some(project) = self.model.project(id) {
                let mut document = read_model::codec::to_document(&project)?;
                document.insert(COUNTS_RECOUNT, 1_i64);
                projects.push((id.clone(), document, project));
            }
        }
        let mut tasks = Vec::new();
        for id in &dirty.tasks {
            if let Some(task) = self.model.task(id) {
                let mut document = read_model::codec::to_document(&task)?;
                if let Some(project) = self.model.projects.get(&task.project_id) {
                    document.insert(PROJECT_NAME_VERSION, project.version);
                }
                tasks.push((id.clone(), document));
            }
        }
        let mut counters = Vec::new();
        let mut project_counters: BTreeSet<&String> = dirty.projects.iter().collect();
        project_counters.extend(dirty.project_stats.iter());
        for id in project_counters {
            let mut counter = doc! { "_id": format!("project:{id}"), "recount": 1_i64 };
            if let Some(version) = self.model.project_stats_version.get(id) {
                counter.insert("version", *version);
            }
            counters.push((format!("project:{id}"), counter));
        }
        for id in &dirty.user_stats {
            let mut counter = doc! { "_id": format!("user:{id}"), "recount": 1_i64 };
            if let Some(version) = self.model.user_stats_version.get(id) {
                counter.insert("version", *version);
            }
            counters.push((format!("user:{id}"), counter));
        }

        let user_documents = users
            .iter()
            .map(|u| Ok((u.id.clone(), read_model::codec::to_document(u)?)))
            .collect::<Result<Vec<_>, bson::ser::Error>>()?;
        write_documents(
            db,
            &names::users(g),
            user_documents,
            &mut self.persisted_users,
        )
        .await?;
        write_documents(
            db,
            &names::projects(g),
            projects
                .iter()
                .map(|(id, d, _)| (id.clone(), d.clone()))
                .collect(),
            &mut self.persisted_projects,
        )
        .await?;
        write_documents(db, &names::tasks(g), tasks, &mut self.persisted_tasks).await?;
        write_documents(db, &names::stats(g), counters, &mut self.persisted_counters).await?;
        if !notifications.is_empty() {
            let documents = notifications
                .iter()
                .map(read_model::codec::to_document)
                .collect::<Result<Vec<_>, _>>()?;
            insert_ignoring_duplicates(db, &names::notifications(g), documents).await?;
        }

        // Redis, pipelined.
        let prefix = &self.store.prefix;
        let mut commands: Vec<redis::Cmd> = Vec::new();
        for user in &users {
            commands.push(redis::Cmd::set(
                keys::user(prefix, g, &user.id),
                serde_json::to_string(user)?,
            ));
        }
        for (id, _, project) in &projects {
            commands.push(redis::Cmd::set(
                keys::project(prefix, g, id),
                store::project_json(project, 1)?,
            ));
        }
        for id in &dirty.project_stats {
            let version = self
                .model
                .project_stats_version
                .get(id)
                .copied()
                .unwrap_or(0);
            stats_commands(
                &mut commands,
                &keys::project_stats(prefix, g, id),
                &self.model.project_stats(id),
                version,
            );
        }
        for id in &dirty.user_stats {
            let version = self.model.user_stats_version.get(id).copied().unwrap_or(0);
            stats_commands(
                &mut commands,
                &keys::user_stats(prefix, g, id),
                &self.model.user_stats(id),
                version,
            );
        }
        let mut redis = self.store.redis.clone();
        for chunk in commands.chunks(2000) {
            let mut pipe = redis::pipe();
            for command in chunk {
                pipe.add_command(command.clone()).ignore();
            }
            let () = pipe
                .query_async(&mut redis)
                .await
                .context("writing the Redis read models")?;
        }
        Ok(())
    }
}

fn stats_commands(
    commands: &mut Vec<redis::Cmd>,
    key: &str,
    fields: &BTreeMap<String, i64>,
    version: i64,
) {
    commands.push(redis::Cmd::del(key));
    let mut items: Vec<(String, i64)> = fields.iter().map(|(k, v)| (k.clone(), *v)).collect();
    items.push((keys::STATS_VERSION.to_owned(), version));
    items.push((keys::STATS_RECOUNT.to_owned(), 1));
    commands.push(redis::Cmd::hset_multiple(key, &items));
}

/// Inserts the documents not yet in the collection (in bulk) and replaces the others.
async fn write_documents(
    db: &mongodb::Database,
    collection: &str,
    documents: Vec<(String, Document)>,
    persisted: &mut HashSet<String>,
) -> anyhow::Result<()> {
    let collection_handle = db.collection::<Document>(collection);
    let (existing, new): (Vec<_>, Vec<_>) = documents
        .into_iter()
        .partition(|(id, _)| persisted.contains(id));
    let new_ids: Vec<String> = new.iter().map(|(id, _)| id.clone()).collect();
    if !new.is_empty() {
        insert_ignoring_duplicates(db, collection, new.into_iter().map(|(_, d)| d).collect())
            .await?;
    }
    persisted.extend(new_ids);
    futures::stream::iter(existing)
        .map(|(id, document)| {
            let collection_handle = collection_handle.clone();
            async move {
                collection_handle
                    .replace_one(doc! { "_id": &id }, document)
                    .upsert(true)
                    .await
                    .with_context(|| format!("replacing {id}"))
            }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<_>>()
        .await?;
    Ok(())
}

/// `insert_many`, unordered; documents that already exist (a resumed replay) are left alone.
async fn insert_ignoring_duplicates(
    db: &mongodb::Database,
    collection: &str,
    documents: Vec<Document>,
) -> anyhow::Result<()> {
    for chunk in documents.chunks(10_000) {
        match db
            .collection::<Document>(collection)
            .insert_many(chunk)
            .ordered(false)
            .await
        {
            Ok(_) => {}
            Err(error) => {
                let only_duplicates = match error.kind.as_ref() {
                    ErrorKind::InsertMany(failure) => {
                        failure.write_concern_error.is_none()
                            && failure
                                .write_errors
                                .as_ref()
                                .is_some_and(|errors| errors.iter().all(|e| e.code == 11000))
                    }
                    _ => false,
                };
                if !only_duplicates {
                    return Err(error).with_context(|| format!("bulk insert into {collection}"));
                }
            }
        }
    }
    Ok(())
}

async fn load_all<T: DeserializeOwned + Send + Sync>(
    db: &mongodb::Database,
    collection: &str,
) -> anyhow::Result<Vec<T>> {
    db.collection::<T>(collection)
        .find(doc! {})
        .await
        .with_context(|| format!("reading {collection}"))?
        .try_collect()
        .await
        .with_context(|| format!("reading {collection}"))
}

/// A model from the documents of a generation being built (resuming a replay).
async fn load_model(store: &Store, generation: u64) -> anyhow::Result<Model> {
    let db = &store.db;
    let users: Vec<UserView> = load_all(db, &names::users(generation)).await?;
    let projects: Vec<ProjectView> = load_all(db, &names::projects(generation)).await?;
    let tasks: Vec<TaskView> = load_all(db, &names::tasks(generation)).await?;
    let counters: Vec<Document> = load_all(db, &names::stats(generation)).await?;
    let mut project_versions = HashMap::new();
    let mut user_versions = HashMap::new();
    for counter in counters {
        let (Ok(id), Ok(version)) = (counter.get_str("_id"), counter.get_i64("version")) else {
            continue;
        };
        if let Some(project) = id.strip_prefix("project:") {
            project_versions.insert(project.to_owned(), version);
        } else if let Some(user) = id.strip_prefix("user:") {
            user_versions.insert(user.to_owned(), version);
        }
    }
    Ok(Model::from_documents(
        users,
        projects,
        tasks,
        project_versions,
        user_versions,
    ))
}

/// Drops every collection and Redis key of a generation.
///
/// # Errors
/// MongoDB or Redis unreachable.
pub async fn drop_generation(store: &Store, generation: u64) -> anyhow::Result<()> {
    for collection in names::all(generation) {
        store
            .db
            .collection::<Document>(&collection)
            .drop()
            .await
            .with_context(|| format!("dropping {collection}"))?;
    }
    let mut redis = store.redis.clone();
    let pattern = keys::generation_pattern(&store.prefix, generation);
    let mut cursor: u64 = 0;
    loop {
        let (next, found): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut redis)
            .await
            .context("scanning Redis keys")?;
        if !found.is_empty() {
            let _removed: i64 = redis::cmd("UNLINK")
                .arg(&found)
                .query_async(&mut redis)
                .await
                .context("removing Redis keys")?;
        }
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}

/// Documents of one collection, by id, as JSON (hidden bookkeeping fields dropped).
async fn documents_as_json<T>(
    db: &mongodb::Database,
    collection: &str,
) -> anyhow::Result<BTreeMap<String, serde_json::Value>>
where
    T: DeserializeOwned + serde::Serialize + Send + Sync,
{
    let documents: Vec<T> = load_all(db, collection).await?;
    let mut by_id = BTreeMap::new();
    for document in documents {
        let json = serde_json::to_value(&document)?;
        let id = json
            .get("_id")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_owned();
        by_id.insert(id, json);
    }
    Ok(by_id)
}

fn version_of(json: &serde_json::Value) -> Option<i64> {
    json.get("version").and_then(serde_json::Value::as_i64)
}

/// Differences of the live generation from the scratch one, document by document. A live
/// document with a higher version than the scratch one is newer (written after the dry run
/// read the store) and not a difference.
fn diff_maps(
    label: &str,
    live: &BTreeMap<String, serde_json::Value>,
    scratch: &BTreeMap<String, serde_json::Value>,
    out: &mut Vec<String>,
) {
    let ids: BTreeSet<&String> = live.keys().chain(scratch.keys()).collect();
    for id in ids {
        match (live.get(id), scratch.get(id)) {
            (Some(_), None) => out.push(format!("{label}/{id}: only in the live generation")),
            (None, Some(_)) => out.push(format!("{label}/{id}: missing from the live generation")),
            (Some(l), Some(s)) if l != s => {
                if let (Some(lv), Some(sv)) = (version_of(l), version_of(s))
                    && lv > sv
                {
                    continue;
                }
                let fields: BTreeSet<&String> = l
                    .as_object()
                    .into_iter()
                    .flat_map(|o| o.keys())
                    .chain(s.as_object().into_iter().flat_map(|o| o.keys()))
                    .collect();
                for field in fields {
                    if l.get(field) != s.get(field) {
                        out.push(format!(
                            "{label}/{id}: {field}: live={} replay={}",
                            l.get(field).unwrap_or(&serde_json::Value::Null),
                            s.get(field).unwrap_or(&serde_json::Value::Null)
                        ));
                    }
                }
            }
            _ => {}
        }
    }
}

async fn redis_values(
    store: &Store,
    generation: u64,
    kind: &str,
) -> anyhow::Result<BTreeMap<String, serde_json::Value>> {
    let mut redis = store.redis.clone();
    let prefix = format!("{}:g{generation}:{kind}:", store.prefix);
    let pattern = format!("{prefix}*");
    let mut cursor: u64 = 0;
    let mut out = BTreeMap::new();
    loop {
        let (next, found): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut redis)
            .await
            .context("scanning Redis keys")?;
        for key in found {
            let id = key.trim_start_matches(&prefix).to_owned();
            let value: serde_json::Value = if kind.starts_with("stats") {
                let mut hash: BTreeMap<String, String> = redis::cmd("HGETALL")
                    .arg(&key)
                    .query_async(&mut redis)
                    .await
                    .context("reading a stats hash")?;
                hash.remove(keys::STATS_RECOUNT);
                serde_json::to_value(hash)?
            } else {
                let text: Option<String> = redis::cmd("GET")
                    .arg(&key)
                    .query_async(&mut redis)
                    .await
                    .context("reading a Redis document")?;
                let mut value: serde_json::Value =
                    serde_json::from_str(&text.unwrap_or_default()).unwrap_or_default();
                if let Some(object) = value.as_object_mut() {
                    object.remove(store::JSON_COUNTS_RECOUNT);
                }
                value
            };
            out.insert(id, value);
        }
        if next == 0 {
            return Ok(out);
        }
        cursor = next;
    }
}

/// Compares the live generation with the scratch one.
async fn compare(
    store: &Store,
    live: u64,
    scratch: u64,
    projection: Projection,
) -> anyhow::Result<Vec<String>> {
    let db = &store.db;
    let mut out = Vec::new();
    if projection.includes(Projection::Users) {
        diff_maps(
            "users",
            &documents_as_json::<UserView>(db, &names::users(live)).await?,
            &documents_as_json::<UserView>(db, &names::users(scratch)).await?,
            &mut out,
        );
        diff_maps(
            "redis/user",
            &redis_values(store, live, "user").await?,
            &redis_values(store, scratch, "user").await?,
            &mut out,
        );
    }
    if projection.includes(Projection::Projects) {
        diff_maps(
            "projects",
            &documents_as_json::<ProjectView>(db, &names::projects(live)).await?,
            &documents_as_json::<ProjectView>(db, &names::projects(scratch)).await?,
            &mut out,
        );
        diff_maps(
            "redis/project",
            &redis_values(store, live, "project").await?,
            &redis_values(store, scratch, "project").await?,
            &mut out,
        );
        diff_maps(
            "redis/stats:project",
            &redis_values(store, live, "stats:project").await?,
            &redis_values(store, scratch, "stats:project").await?,
            &mut out,
        );
    }
    if projection.includes(Projection::Tasks) {
        diff_maps(
            "tasks",
            &documents_as_json::<TaskView>(db, &names::tasks(live)).await?,
            &documents_as_json::<TaskView>(db, &names::tasks(scratch)).await?,
            &mut out,
        );
        diff_maps(
            "redis/stats:user",
            &redis_values(store, live, "stats:user").await?,
            &redis_values(store, scratch, "stats:user").await?,
            &mut out,
        );
    }
    if projection.includes(Projection::Notifications) {
        // Overdue notifications come from the periodic deadline job, not from events: which
        // exist depends on when it last ran, so they are not compared.
        let from_events = |mut all: BTreeMap<String, serde_json::Value>| {
            all.retain(|_, n| {
                n.get("kind").and_then(serde_json::Value::as_str) != Some(kind::TASK_OVERDUE)
            });
            all
        };
        diff_maps(
            "notifications",
            &from_events(
                documents_as_json::<NotificationView>(db, &names::notifications(live)).await?,
            ),
            &from_events(
                documents_as_json::<NotificationView>(db, &names::notifications(scratch)).await?,
            ),
            &mut out,
        );
    }
    Ok(out)
}

//! `projector replay`: rebuilds the read models from the event store into a new generation,
//! then swaps the pointer (ADR 0003).
//!
//! 1. Fixes a boundary: the events of every transaction older than every running one (all
//!    committed, a set that no longer changes). Reads them in aggregate order (the primary key),
//!    a batch at a time, and applies each batch to generation N+1 with the live projector's own
//!    [`Store::apply_batch`] (ADR 0005). An aggregate's events arrive together, so its document
//!    is written once (an insert) instead of once per batch its events are spread over; this is
//!    the same fold as commit order because a document holds its own aggregate's events only and
//!    statistics are sums (ADR 0005, "Replay in aggregate order"). The batch's transaction also
//!    moves the checkpoint in `projector_replay`, so a killed replay resumes exactly where its
//!    last batch ended.
//! 2. Then reads what committed after the boundary in `(transaction_id, global_position)` order
//!    (only from transactions older than every running one), until no event is left (caught up),
//!    builds the tasks' indexes (once, over the folded collection: cheaper than keeping seven
//!    indexes through every write), writes the overdue notifications, swaps the pointer in
//!    `read_model_meta`.
//! 3. Catches up again the same way (live projectors now write to N+1 too; the version guards
//!    and the transactions make the overlap harmless), then drops generation N.
//!
//! Never touches Kafka. Any error fails the command (non-zero exit).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::TryStreamExt as _;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use mongodb::bson::{self, Bson, Document, doc};
use read_model::documents::{NotificationView, ProjectView, TaskView, UserView, kind};
use read_model::{Generation, IndexScope, keys, names};
use serde::de::DeserializeOwned;

use crate::events::{self, AggregateCursor, Position};
use crate::settings::ProjectorSettings;
use crate::store::{self, AlsoWrite, BatchOptions, Store};

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
    /// Where the in-order phase starts (or went on from).
    position: Position,
    /// While the first phase (aggregate order) is not done: where it stands.
    by_aggregate: Option<AggregateCursor>,
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
            by_aggregate: d.get_document("by_aggregate").ok().and_then(|c| {
                Some(AggregateCursor {
                    below_xmin: c.get_str("below_xmin").ok()?.to_owned(),
                    after: (
                        c.get_str("aggregate_type").ok()?.to_owned(),
                        c.get_str("aggregate_id").ok()?.to_owned(),
                        c.get_i64("sequence").ok()?,
                    ),
                })
            }),
            status: d.get_str("status").ok()?.to_owned(),
        })
    }))
}

/// The checkpoint as a write of the batch that reaches `position` (or, in the first phase,
/// `by_aggregate`).
fn checkpoint_write(
    generation: u64,
    position: &Position,
    by_aggregate: Option<&AggregateCursor>,
    status: &str,
) -> AlsoWrite {
    AlsoWrite {
        collection: names::REPLAY.to_owned(),
        id: CHECKPOINT_ID.to_owned(),
        set: checkpoint_fields(generation, position, by_aggregate, status),
    }
}

fn checkpoint_fields(
    generation: u64,
    position: &Position,
    by_aggregate: Option<&AggregateCursor>,
    status: &str,
) -> Document {
    let by_aggregate = by_aggregate.map_or(Bson::Null, |cursor| {
        let (aggregate_type, aggregate_id, sequence) = &cursor.after;
        Bson::Document(doc! {
            "below_xmin": &cursor.below_xmin,
            "aggregate_type": aggregate_type,
            "aggregate_id": aggregate_id,
            "sequence": sequence,
        })
    });
    doc! {
        "generation": i64::try_from(generation).unwrap_or(i64::MAX),
        "transaction_id": &position.transaction_id,
        "global_position": position.global_position,
        "by_aggregate": by_aggregate,
        "status": status,
        "updated_at": bson::DateTime::now(),
    }
}

async fn write_checkpoint(
    db: &mongodb::Database,
    generation: u64,
    position: &Position,
    by_aggregate: Option<&AggregateCursor>,
    status: &str,
    fresh: bool,
) -> anyhow::Result<()> {
    let mut set = checkpoint_fields(generation, position, by_aggregate, status);
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
        // No secondary indexes: nothing queries the scratch generation but the comparison.
        drop_generation(store, scratch).await?;
        let mut builder = Builder::new(store, scratch, options.progress, false);
        let (cursor, end) = events::boundary(&store.pool).await?;
        let folded = builder.fold(settings, Some(cursor), end, false).await;
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
            let mut builder = Builder::new(store, generation, options.progress, true);
            report.events = builder
                .fold(
                    settings,
                    checkpoint.by_aggregate.clone(),
                    checkpoint.position.clone(),
                    true,
                )
                .await?;
            builder.finish_build().await?;
            (generation, builder.position, Some(pointer.active))
        }
        _ => {
            let generation = pointer.active + 1;
            drop_generation(store, generation).await?;
            // The tasks' indexes come after the fold (finish_build): the fold reads and writes
            // by `_id`, and building them once is cheaper than keeping seven indexes through
            // every write. The others are built now: an index built over a large collection
            // is one transaction on secantusd-rs, and one over a million-event replay's
            // notifications outgrew its cache and never finished (ADR 0005).
            read_model::ensure_indexes(db, generation, IndexScope::AllButTasks).await?;
            let (cursor, end) = events::boundary(&store.pool).await?;
            write_checkpoint(db, generation, &end, Some(&cursor), "building", true).await?;
            let mut builder = Builder::new(store, generation, options.progress, true);
            report.events = builder.fold(settings, Some(cursor), end, true).await?;
            builder.finish_build().await?;
            (generation, builder.position, Some(pointer.active))
        }
    };
    report.generation = generation;
    report.elapsed = started.elapsed();

    if Generation::active(db).await? != generation {
        Generation::swap(db, generation).await?;
        write_checkpoint(db, generation, &position, None, "swapped", false).await?;
        say(&format!(
            "swapped the read models to generation {generation}"
        ));
    }
    let swapped_at = Instant::now();
    tokio::time::sleep(SETTLE).await;
    let caught_up = catch_up(store, settings, generation, position).await?;
    write_checkpoint(db, generation, &caught_up, None, "swapped", false).await?;
    if let Some(previous) = previous.filter(|p| *p != generation) {
        let wait =
            Duration::from_secs(settings.drop_old_after_secs).saturating_sub(swapped_at.elapsed());
        tokio::time::sleep(wait).await;
        drop_generation(store, previous).await?;
        say(&format!("dropped generation {previous}"));
    }
    write_checkpoint(db, generation, &caught_up, None, "done", false).await?;
    Ok(report)
}

/// Applies the events after `position` with the live projector's guarded batch (live members
/// now write this generation too), until none is left; returns the last position.
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
        let envelopes = batch.into_iter().map(|(_, envelope)| envelope).collect();
        apply_with_retries(store, generation, envelopes, BatchOptions::live()).await?;
    }
}

/// How long the fold waits, at most, for committed events held back by an open transaction.
const HELD_BACK_LIMIT: Duration = Duration::from_secs(30);
/// How soon it reads again while they are held back.
const HELD_BACK_PAUSE: Duration = Duration::from_millis(50);

/// How often a replay tries a batch before it fails.
const ATTEMPTS: u32 = 5;

/// [`Store::apply_batch`], tried up to [`ATTEMPTS`] times with a growing pause: a batch that
/// conflicted with a live projector, or a transaction the server aborted, is all or nothing, so
/// trying it again is safe. The last error fails the replay.
async fn apply_with_retries(
    store: &Store,
    generation: u64,
    envelopes: Vec<read_model::Envelope>,
    options: BatchOptions,
) -> anyhow::Result<store::Applied> {
    let mut attempt = 1;
    loop {
        match store
            .apply_batch(generation, envelopes.clone(), options.clone())
            .await
        {
            Ok(applied) => return Ok(applied),
            Err(error) if attempt < ATTEMPTS => {
                let pause = Duration::from_millis(500 << attempt);
                tracing::warn!(
                    error = format!("{error:#}"),
                    attempt,
                    retry_in_ms = pause.as_millis(),
                    "replay: applying a batch failed; trying it again"
                );
                tokio::time::sleep(pause).await;
                attempt += 1;
            }
            Err(error) => {
                return Err(error.context(format!("a replay batch failed {ATTEMPTS} times")));
            }
        }
    }
}

/// Folds the event store into one generation, batch by batch, through [`Store::apply_batch`].
struct Builder<'a> {
    store: &'a Store,
    generation: u64,
    position: Position,
    bar: ProgressBar,
    /// Park poison events in `projector_parked` (not for a dry run).
    park: bool,
}

impl<'a> Builder<'a> {
    fn new(store: &'a Store, generation: u64, progress: bool, park: bool) -> Self {
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
            position: Position::start(),
            bar,
            park,
        }
    }

    /// Folds every committed event not folded yet: first, while `by_aggregate` is set, the
    /// events below its boundary in aggregate order from where it stands; then those after
    /// `from` in commit order. Each batch writes the checkpoint in its own transaction when
    /// `checkpoint` (none for a dry run). Returns the number of events folded.
    async fn fold(
        &mut self,
        settings: &ProjectorSettings,
        by_aggregate: Option<AggregateCursor>,
        from: Position,
        checkpoint: bool,
    ) -> anyhow::Result<u64> {
        let (total, done) =
            events::progress(&self.store.pool, &from, by_aggregate.as_ref()).await?;
        self.bar.set_length(total);
        self.bar.set_position(done);
        self.bar.reset_eta();
        self.position = from;
        let mut folded = 0_u64;
        let store = self.store;
        let pool = &store.pool;
        let size = settings.replay_batch_size;

        if let Some(cursor) = by_aggregate {
            let (mut cursor, mut batch) = events::next_by_aggregate(pool, &cursor, size).await?;
            while !batch.is_empty() {
                let count = batch.len() as u64;
                let also = checkpoint.then(|| {
                    checkpoint_write(self.generation, &self.position, Some(&cursor), "building")
                });
                // The next batch is read from PostgreSQL while this one is written to MongoDB.
                let (applied, next) = tokio::join!(
                    apply_with_retries(store, self.generation, batch, self.options(also)),
                    events::next_by_aggregate(pool, &cursor, size),
                );
                log_parked(&applied?.parked);
                (cursor, batch) = next?;
                folded += count;
                self.advance(count);
            }
        }

        let mut batch = events::next_batch(pool, &self.position, size).await?;
        let mut held_for = Duration::ZERO;
        loop {
            while let Some((last, _)) = batch.last() {
                let last = last.clone();
                let count = batch.len() as u64;
                let also =
                    checkpoint.then(|| checkpoint_write(self.generation, &last, None, "building"));
                let envelopes = batch.into_iter().map(|(_, envelope)| envelope).collect();
                let (applied, next) = tokio::join!(
                    apply_with_retries(store, self.generation, envelopes, self.options(also)),
                    events::next_batch(pool, &last, size),
                );
                log_parked(&applied?.parked);
                batch = next?;
                self.position = last;
                folded += count;
                self.advance(count);
            }
            // Committed events the read could not take yet wait behind an older transaction
            // that is still open (anywhere in the cluster): fold them too once it ends, so the
            // generation swapped in holds everything committed before the replay finished.
            if !events::committed_after(pool, &self.position).await? {
                break;
            }
            if held_for >= HELD_BACK_LIMIT {
                tracing::warn!(
                    waited_ms = held_for.as_millis(),
                    "replay: committed events are still held back by an open transaction; \
                     the catch-up after the swap and the live projector apply them"
                );
                break;
            }
            tokio::time::sleep(HELD_BACK_PAUSE).await;
            held_for += HELD_BACK_PAUSE;
            batch = events::next_batch(pool, &self.position, size).await?;
        }
        self.bar.finish_and_clear();
        Ok(folded)
    }

    fn options(&self, also: Option<AlsoWrite>) -> BatchOptions {
        BatchOptions {
            hold_parked: false,
            park: self.park,
            also,
        }
    }

    fn advance(&self, count: u64) {
        if self
            .bar
            .length()
            .is_some_and(|len| self.bar.position() + count > len)
        {
            self.bar.set_length(self.bar.position() + count);
        }
        self.bar.inc(count);
    }

    /// After the fold of a real replay: the tasks' indexes and, at the same time (the overdue
    /// pass reads the tasks and writes notifications, whose indexes exist), the overdue
    /// notifications.
    async fn finish_build(&mut self) -> anyhow::Result<()> {
        let (indexed, overdue) = tokio::join!(
            async {
                let started = Instant::now();
                read_model::ensure_indexes(&self.store.db, self.generation, IndexScope::All)
                    .await
                    .map(|()| started.elapsed())
            },
            async {
                let started = Instant::now();
                self.store
                    .overdue_pass(self.generation, chrono::Utc::now().date_naive())
                    .await
                    .map(|overdue| (overdue, started.elapsed()))
            },
        );
        let (indexed, (overdue, overdue_took)) = (indexed?, overdue?);
        tracing::debug!(
            indexes_ms = indexed.as_millis(),
            overdue,
            overdue_ms = overdue_took.as_millis(),
            "replay: indexes built, overdue notifications written"
        );
        Ok(())
    }
}

fn log_parked(parked: &[crate::model::ParkedAt]) {
    for parked in parked {
        tracing::warn!(
            aggregate_type = parked.envelope.aggregate_type,
            aggregate_id = parked.envelope.aggregate_id,
            sequence = parked.envelope.sequence,
            reason = parked.reason,
            "replay: event cannot be applied; its aggregate is parked"
        );
    }
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
                serde_json::from_str(&text.unwrap_or_default()).unwrap_or_default()
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

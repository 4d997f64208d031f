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
//!    writes the overdue notifications, swaps the pointer in `read_model_meta`. The generation's
//!    indexes exist before its first write (ADR 0005).
//! 3. Catches up again the same way (live projectors now write to N+1 too; the version guards
//!    and the transactions make the overlap harmless), then drops generation N.
//!
//! Never touches Kafka. Any error fails the command (non-zero exit).

//!
//! The modules: [`checkpoint`] (where a replay stands, for resuming), [`builder`] (reading and
//! applying batches), [`compare`] (`--dry-run`'s differences).

mod builder;
mod checkpoint;
mod compare;

use std::io::Write as _;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use mongodb::bson::Document;
use read_model::{Generation, keys, names};
use tokio_util::sync::CancellationToken;

use event_store::read::{self, Position};

use self::builder::{Builder, apply_with_retries};
use self::checkpoint::{read_checkpoint, write_checkpoint};
use self::compare::compare;
use crate::settings::ProjectorSettings;
use crate::store::{BatchOptions, Store};

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
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// What a dry run compares (a real replay always rebuilds a whole generation).
    pub projection: Projection,
    /// Build into a scratch generation, compare, drop it; never swap.
    pub dry_run: bool,
    /// Show a progress bar on stderr.
    pub progress: bool,
    /// Once cancelled (the CLI cancels it on SIGINT or SIGTERM), the fold stops after the batch
    /// it is applying and the replay fails with [`Stopped`]; run it again to resume.
    pub stop: CancellationToken,
}

/// The error of a replay whose [`ReplayOptions::stop`] was cancelled while it folded.
#[derive(Debug, thiserror::Error)]
#[error(
    "stopped when asked, after {folded} events; run the replay again to resume from its checkpoint"
)]
pub struct Stopped {
    /// Events folded in this run before it stopped.
    pub folded: u64,
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

fn say(message: &str) {
    let _ignored = writeln!(std::io::stderr(), "{message}");
}

/// Runs a replay (see the module documentation).
///
/// # Errors
/// Any server error, a gap in the event store, a `--projection` other than `all` without
/// `--dry-run`, or [`Stopped`].
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
        let mut builder = Builder::new(store, scratch, &options, false);
        let (cursor, end) = read::boundary(&store.pool).await?;
        let folded = builder.fold(settings, Some(cursor), end, false).await;
        let outcome = match folded {
            Ok(events) => {
                store
                    .overdue_pass(scratch, chrono::Utc::now().date_naive(), false)
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
            // A no-op unless the interrupted build began without them (an older version).
            read_model::ensure_indexes(db, generation).await?;
            let mut builder = Builder::new(store, generation, &options, true);
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
            // Before the first write: an index built over a folded collection is one
            // transaction on secantusd-rs, and never finished over a million events (ADR 0005).
            read_model::ensure_indexes(db, generation).await?;
            let (cursor, end) = read::boundary(&store.pool).await?;
            write_checkpoint(db, generation, &end, Some(&cursor), "building", true).await?;
            let mut builder = Builder::new(store, generation, &options, true);
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
    pause(SETTLE, &options.stop, report.events).await?;
    let caught_up = catch_up(store, settings, generation, position).await?;
    write_checkpoint(db, generation, &caught_up, None, "swapped", false).await?;
    if let Some(previous) = previous.filter(|p| *p != generation) {
        let wait =
            Duration::from_secs(settings.drop_old_after_secs).saturating_sub(swapped_at.elapsed());
        pause(wait, &options.stop, report.events).await?;
        drop_generation(store, previous).await?;
        say(&format!("dropped generation {previous}"));
    }
    write_checkpoint(db, generation, &caught_up, None, "done", false).await?;
    Ok(report)
}

/// Sleeps `duration`, or fails with [`Stopped`] as soon as `stop` is cancelled (the swapped
/// checkpoint is written before each pause, so a new run resumes with the catch-up).
async fn pause(duration: Duration, stop: &CancellationToken, folded: u64) -> anyhow::Result<()> {
    tokio::select! {
        () = tokio::time::sleep(duration) => Ok(()),
        () = stop.cancelled() => Err(Stopped { folded }.into()),
    }
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
        let batch = read::after(&store.pool, &position, settings.replay_batch_size).await?;
        let Some((last, _)) = batch.last() else {
            return Ok(position);
        };
        position = last.clone();
        let envelopes = batch.into_iter().map(|(_, envelope)| envelope).collect();
        apply_with_retries(store, generation, envelopes, BatchOptions::catch_up()).await?;
    }
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
        let (next, found) = scan(&mut redis, &pattern, cursor).await?;
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

/// One page of `SCAN cursor MATCH pattern COUNT 1000`: the next cursor (0 at the end) and the
/// keys found.
async fn scan(
    redis: &mut redis::aio::ConnectionManager,
    pattern: &str,
    cursor: u64,
) -> anyhow::Result<(u64, Vec<String>)> {
    redis::cmd("SCAN")
        .arg(cursor)
        .arg("MATCH")
        .arg(pattern)
        .arg("COUNT")
        .arg(1000)
        .query_async(redis)
        .await
        .context("scanning Redis keys")
}

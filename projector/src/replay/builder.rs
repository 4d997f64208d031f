//! [`Builder`]: reads the event store a batch at a time (in aggregate order, then in commit
//! order) and applies each batch to the generation being built, with retries.

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio_util::sync::CancellationToken;

use crate::settings::ProjectorSettings;
use crate::store::{self, AlsoWrite, BatchOptions, Store};
use event_store::read::{self, AggregateCursor, Position};

use super::checkpoint::checkpoint_write;
use super::{ReplayOptions, Stopped};

/// How long the fold waits, at most, for committed events held back by an open transaction.
const HELD_BACK_LIMIT: Duration = Duration::from_secs(30);
/// How soon it reads again while they are held back.
const HELD_BACK_PAUSE: Duration = Duration::from_millis(50);

/// How often a replay tries a batch before it fails.
const ATTEMPTS: u32 = 5;

/// [`Store::apply_batch`], tried up to [`ATTEMPTS`] times with a growing pause: a batch that
/// conflicted with a live projector, or a transaction the server aborted, is all or nothing, so
/// trying it again is safe. The last error fails the replay.
pub(super) async fn apply_with_retries(
    store: &Store,
    generation: u64,
    envelopes: Vec<read::Envelope>,
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
pub(super) struct Builder<'a> {
    pub(super) store: &'a Store,
    pub(super) generation: u64,
    pub(super) position: Position,
    pub(super) bar: ProgressBar,
    /// Park poison events in `projector_parked` (not for a dry run).
    pub(super) park: bool,
    /// [`super::ReplayOptions::stop`].
    stop: CancellationToken,
}

impl<'a> Builder<'a> {
    pub(super) fn new(
        store: &'a Store,
        generation: u64,
        options: &ReplayOptions,
        park: bool,
    ) -> Self {
        let bar = if options.progress {
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
            stop: options.stop.clone(),
        }
    }

    /// Folds every committed event not folded yet: first, while `by_aggregate` is set, the
    /// events below its boundary in aggregate order from where it stands; then those after
    /// `from` in commit order. Each batch writes the checkpoint in its own transaction when
    /// `checkpoint` (none for a dry run). Returns the number of events folded.
    pub(super) async fn fold(
        &mut self,
        settings: &ProjectorSettings,
        by_aggregate: Option<AggregateCursor>,
        from: Position,
        checkpoint: bool,
    ) -> anyhow::Result<u64> {
        let (total, done) = read::progress(&self.store.pool, &from, by_aggregate.as_ref()).await?;
        self.bar.set_length(total);
        self.bar.set_position(done);
        self.bar.reset_eta();
        self.position = from;
        let mut folded = 0_u64;
        let store = self.store;
        let pool = &store.pool;
        let size = settings.replay_batch_size;

        if let Some(cursor) = by_aggregate {
            let (mut cursor, mut batch) = read::by_aggregate(pool, &cursor, size).await?;
            while !batch.is_empty() {
                let count = batch.len() as u64;
                let also = checkpoint.then(|| {
                    checkpoint_write(self.generation, &self.position, Some(&cursor), "building")
                });
                // The next batch is read from PostgreSQL while this one is written to MongoDB.
                let (applied, next) = tokio::join!(
                    apply_with_retries(store, self.generation, batch, self.options(also)),
                    read::by_aggregate(pool, &cursor, size),
                );
                log_parked(&applied?.parked);
                folded += count;
                self.advance(count);
                self.stop_if_asked(folded)?;
                (cursor, batch) = next?;
            }
        }

        let mut batch = read::after(pool, &self.position, size).await?;
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
                    read::after(pool, &last, size),
                );
                log_parked(&applied?.parked);
                self.position = last;
                folded += count;
                self.advance(count);
                self.stop_if_asked(folded)?;
                batch = next?;
            }
            // Committed events the read could not take yet wait behind an older transaction
            // that is still open (anywhere in the cluster): fold them too once it ends, so the
            // generation swapped in holds everything committed before the replay finished.
            if !read::held_back(pool, &self.position).await? {
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
            batch = read::after(pool, &self.position, size).await?;
        }
        self.bar.finish_and_clear();
        Ok(folded)
    }

    /// [`Stopped`] once [`ReplayOptions::stop`] is cancelled: the batches applied so far and
    /// the checkpoint that went with each are committed, so a new replay resumes after them.
    fn stop_if_asked(&self, folded: u64) -> anyhow::Result<()> {
        if self.stop.is_cancelled() {
            self.bar.abandon();
            return Err(Stopped { folded }.into());
        }
        Ok(())
    }

    pub(super) fn options(&self, also: Option<AlsoWrite>) -> BatchOptions {
        BatchOptions {
            hold_parked: false,
            park: self.park,
            also,
            announce: false,
        }
    }

    pub(super) fn advance(&self, count: u64) {
        if self
            .bar
            .length()
            .is_some_and(|len| self.bar.position() + count > len)
        {
            self.bar.set_length(self.bar.position() + count);
        }
        self.bar.inc(count);
    }

    /// After the fold of a real replay: the overdue notifications.
    pub(super) async fn finish_build(&mut self) -> anyhow::Result<()> {
        let started = Instant::now();
        let overdue = self
            .store
            .overdue_pass(self.generation, chrono::Utc::now().date_naive(), false)
            .await?;
        tracing::debug!(
            overdue,
            overdue_ms = started.elapsed().as_millis(),
            "replay: overdue notifications written"
        );
        Ok(())
    }
}

fn log_parked(parked: &[crate::model::ParkedAt]) {
    for parked in parked {
        tracing::warn!(
            aggregate_type = %parked.envelope.aggregate_type,
            aggregate_id = parked.envelope.aggregate_id,
            sequence = parked.envelope.sequence,
            reason = parked.reason,
            "replay: event cannot be applied; its aggregate is parked"
        );
    }
}

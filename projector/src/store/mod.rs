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
//!    so an older copy never replaces a newer one), publish the applied versions and append
//!    the documents written to the change feed of `GET /stream` ([`read_model::changes`]).
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

//!
//! The modules: [`load`] (reading what a batch touches, gap filling), [`write`] (the guarded
//! MongoDB writes), [`copy`] (the Redis copy), [`overdue`] (the overdue notifications).

mod copy;
mod load;
mod overdue;
mod write;

use std::collections::{HashMap, HashSet};

use anyhow::Context as _;
use domain::AggregateType;
use event_store::read::Envelope;
use mongodb::Database;
use mongodb::bson::Document;
use redis::aio::ConnectionManager;
use sqlx::PgPool;

use crate::model::{AggregateKey, Model, Outcome, ParkedAt};
use crate::parked;

pub use self::load::version;
use self::write::DuplicateInsert;

/// Statements per bulk `update` command (well under the server's 100,000 and 16 MiB limits).
const BULK_CHUNK: usize = 1000;

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
    /// About how many entries the change feed keeps (0: no feed).
    pub stream_max_len: usize,
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
    /// Append the documents written to the change feed ([`read_model::changes`]): the live
    /// generation's batches do, a replay building a new generation does not.
    pub announce: bool,
}

impl BatchOptions {
    /// The live projector's.
    #[must_use]
    pub fn live() -> Self {
        Self {
            hold_parked: true,
            park: true,
            also: None,
            announce: true,
        }
    }

    /// A replay's catch-up of the generation it builds: as live, but announcing nothing (the
    /// live generation's batches announce the same events).
    #[must_use]
    pub fn catch_up() -> Self {
        Self {
            announce: false,
            ..Self::live()
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
                .entry((envelope.aggregate_type, envelope.aggregate_id.clone()))
                .or_default()
                .push(envelope);
        }
        // Which of the batch's aggregates are parked, and which events an operator dropped: two
        // reads at once (each a round trip on the path of every event).
        let keys: Vec<AggregateKey> = groups.keys().cloned().collect();
        let checks_started = std::time::Instant::now();
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
        tracing::debug!(
            checks_us = checks_started.elapsed().as_micros(),
            "projector: parked and dropped read"
        );
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
            .transact(generation, &mut groups, &dropped, &options, false)
            .await
        {
            Err(error) if error.is::<DuplicateInsert>() => {
                tracing::debug!(
                    error = format!("{error:#}"),
                    "projector: a created aggregate has a document already; reading them all"
                );
                self.transact(generation, &mut groups, &dropped, &options, true)
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
        dropped: &HashSet<(AggregateType, String, i64)>,
        options: &BatchOptions,
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
            .write(
                &mut session,
                generation,
                &mut model,
                &loaded,
                options.also.clone(),
            )
            .await?;
        let written_at = started.elapsed();
        session
            .commit_transaction()
            .await
            .context("committing the batch's MongoDB transaction")?;
        let committed_at = started.elapsed();
        let mut revisions = loaded.revisions();
        revisions.extend(written.revisions);
        let announced = options.announce.then_some(&written.changes);
        self.copy_to_redis(generation, &model, &revisions, announced)
            .await?;
        tracing::debug!(
            events = applied,
            read_us = loaded_at.as_micros(),
            fold_us = (folded_at - loaded_at).as_micros(),
            write_us = (written_at - folded_at).as_micros(),
            commit_us = (committed_at - written_at).as_micros(),
            redis_us = (started.elapsed() - committed_at).as_micros(),
            "projector: batch timings"
        );
        Ok((model, applied))
    }
}

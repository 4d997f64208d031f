//! [`CommandBus`]: load an aggregate (or take it from the bus's cache), check the expected
//! version, decide, commit.

use std::fmt;
use std::sync::Mutex;

use cqrs_es::event_sink::EventSink;
use cqrs_es::persist::{EventStoreAggregateContext, PersistedEventStore};
use cqrs_es::{Aggregate, AggregateError, EventStore as _};
use hashlink::LruCache;
use sqlx::PgPool;

use crate::error::UniqueViolation;
use crate::metadata::Metadata;
use crate::registry::access::{self, AnswersFrom};
use crate::repository::PgEventRepository;

/// What an accepted command did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// The aggregate the command went to.
    pub aggregate_id: String,
    /// The aggregate's version after the command: the sequence of its last event (unchanged if
    /// the command emitted nothing).
    pub version: u64,
    /// How many events the command emitted (0 for a command that changed nothing).
    pub events: usize,
}

/// Why a command was not committed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CommandError<E> {
    /// The aggregate refused the command (its own error says how to answer).
    #[error(transparent)]
    Domain(E),
    /// The caller expected another version than the stored one (HTTP 409 / 412).
    #[error("expected version {expected}, but the aggregate is at version {actual}")]
    VersionConflict {
        /// The version the caller sent.
        expected: u64,
        /// The version loaded from the store.
        actual: u64,
    },
    /// Another writer committed to the same aggregate between our load and our commit: the
    /// optimistic lock was lost (HTTP 409; retrying reloads the new state).
    #[error("the aggregate was changed concurrently")]
    Concurrency,
    /// The commit broke a uniqueness rule of the registry: another user took the username or
    /// e-mail address in the meantime (HTTP 409).
    #[error(transparent)]
    Unique(UniqueViolation),
    /// The database cannot be reached (HTTP 503). The message is for logs.
    #[error("event store unavailable: {0}")]
    Unavailable(String),
    /// A bug: an event that does not deserialize, a registry out of step… (HTTP 500). The
    /// message is for logs.
    #[error("event store error: {0}")]
    Internal(String),
}

impl<E: std::error::Error> From<AggregateError<E>> for CommandError<E> {
    fn from(error: AggregateError<E>) -> Self {
        if let Some(violation) = UniqueViolation::from_aggregate_error(&error) {
            return Self::Unique(violation);
        }
        match error {
            AggregateError::UserError(error) => Self::Domain(error),
            AggregateError::AggregateConflict => Self::Concurrency,
            AggregateError::DatabaseConnectionError(error) => Self::Unavailable(error.to_string()),
            AggregateError::DeserializationError(error) => {
                Self::Internal(format!("deserialization: {error}"))
            }
            AggregateError::UnexpectedError(error) => Self::Internal(error.to_string()),
        }
    }
}

/// How many aggregates a [`CommandBus`] keeps in memory unless told otherwise
/// ([`CommandBus::with_cache_capacity`]).
pub const DEFAULT_CACHE_CAPACITY: usize = 10_000;

/// Runs the commands of one aggregate type against the event store.
///
/// Unlike `CqrsFramework::execute`, it checks an expected version against the version it
/// loaded (the optimistic lock of the commit is tied to that same version) and returns the new
/// version. There are no query processors: the read side is fed through the relay.
///
/// **The aggregate cache.** The bus keeps the state and sequence of the aggregates it used most
/// recently (at most its capacity, least recently used first out), so a command on one of them
/// loads nothing. The cache is never the authority: the commit's optimistic lock (the `events`
/// table's primary key) still decides, and only a commit proves the cached state current. A
/// cached aggregate another writer has moved on (another command-api replica, say) fails its
/// commit with a conflict; and a refusal or a command that changes nothing may have been decided
/// on such a state. In each of these cases the bus forgets the entry, loads the stored state and
/// decides once more, exactly as a bus without a cache would have.
pub struct CommandBus<A: Aggregate> {
    store: PersistedEventStore<PgEventRepository, A>,
    services: A::Services,
    /// Recently used aggregates: id → (state, sequence). `None` when the capacity is 0.
    cache: Option<Mutex<LruCache<String, (A, usize)>>>,
}

impl<A: Aggregate> fmt::Debug for CommandBus<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CommandBus")
            .field("aggregate_type", &A::TYPE)
            .finish_non_exhaustive()
    }
}

impl<A: Aggregate> CommandBus<A> {
    /// A bus over the event store in `pool`, handing `services` to the aggregate (e.g.
    /// [`crate::Registry::user_services`]).
    #[must_use]
    pub fn new(pool: PgPool, services: A::Services) -> Self {
        Self {
            store: PersistedEventStore::new_event_store(PgEventRepository::new(pool)),
            services,
            cache: None,
        }
        .with_cache_capacity(DEFAULT_CACHE_CAPACITY)
    }

    /// The same bus keeping at most `capacity` aggregates in memory (0: none, every command
    /// loads its aggregate).
    #[must_use]
    pub fn with_cache_capacity(mut self, capacity: usize) -> Self {
        self.cache = (capacity > 0).then(|| Mutex::new(LruCache::new(capacity)));
        self
    }

    /// Loads the aggregate, refuses if `expected_version` is given and differs from the
    /// loaded version, lets the aggregate decide, and commits its events with `metadata`.
    ///
    /// A command that emits no events succeeds with the unchanged version.
    ///
    /// # Errors
    /// - [`CommandError::VersionConflict`] if `expected_version` is not the stored version;
    /// - [`CommandError::Domain`] if the aggregate refuses;
    /// - [`CommandError::Concurrency`] if another writer committed to this aggregate first;
    /// - [`CommandError::Unique`] if the username / e-mail was taken in the meantime;
    /// - [`CommandError::Unavailable`] if the database is down;
    /// - [`CommandError::Internal`] on a bug.
    #[tracing::instrument(
        name = "command",
        skip_all,
        fields(aggregate_type = A::TYPE, aggregate_id = %aggregate_id, version, events)
    )]
    pub async fn execute(
        &self,
        aggregate_id: &str,
        command: A::Command,
        metadata: Metadata,
        expected_version: Option<u64>,
    ) -> Result<Committed, CommandError<A::Error>>
    where
        A: Clone,
        A::Command: Clone,
    {
        if let Some((aggregate, sequence)) = self.cached(aggregate_id)
            && expected_version.is_none_or(|expected| expected == version(sequence))
        {
            let context = decision_context(aggregate_id.to_owned(), aggregate, sequence);
            // The expected version, if any, is the cached one (checked above).
            let outcome = self
                .decide_and_commit(context, command.clone(), metadata.clone())
                .await;
            match outcome {
                // A commit at the next sequence proves the cached state was the stored one.
                Ok(committed) if committed.events > 0 => return Ok(committed),
                // Not about the aggregate's state: a fresh load would meet the same.
                Err(
                    CommandError::Unavailable(_)
                    | CommandError::Internal(_)
                    | CommandError::Unique(_),
                ) => return outcome,
                // A refusal or a no-op may come from a stale state, and a conflict does: decide
                // again on the stored state.
                _ => {
                    tracing::debug!("deciding again on the stored state");
                    self.forget(aggregate_id);
                }
            }
        }
        let context = self.store.load_aggregate(aggregate_id).await?;
        let loaded = version(context.current_sequence);
        if let Some(expected) = expected_version
            && expected != loaded
        {
            return Err(CommandError::VersionConflict {
                expected,
                actual: loaded,
            });
        }
        self.decide_and_commit(context, command, metadata).await
    }

    /// Runs a command that creates the aggregate `aggregate_id`, an id nobody has used yet
    /// (one the API has just generated): the aggregate decides on its default state, with
    /// nothing loaded. If the id was taken after all, the commit's optimistic lock refuses it
    /// ([`CommandError::Concurrency`]); nothing is overwritten.
    ///
    /// # Errors
    /// As [`CommandBus::execute`], without [`CommandError::VersionConflict`].
    #[tracing::instrument(
        name = "command",
        skip_all,
        fields(aggregate_type = A::TYPE, aggregate_id = %aggregate_id, version, events)
    )]
    pub async fn create(
        &self,
        aggregate_id: &str,
        command: A::Command,
        metadata: Metadata,
    ) -> Result<Committed, CommandError<A::Error>>
    where
        A: Clone,
        A::Command: Clone,
    {
        let context = decision_context(aggregate_id.to_owned(), A::default(), 0);
        self.decide_and_commit(context, command, metadata).await
    }

    /// Lets the aggregate of `context` decide and commits its events ([`Self::attempt`]).
    ///
    /// Decides a second time, on fresh answers, if the first decision used a project's access
    /// that its commit found changed, or refused (or changed nothing) on a cached one (see
    /// `registry::access`). A second stale answer is [`CommandError::Concurrency`].
    async fn decide_and_commit(
        &self,
        context: EventStoreAggregateContext<A>,
        command: A::Command,
        metadata: Metadata,
    ) -> Result<Committed, CommandError<A::Error>>
    where
        A: Clone,
        A::Command: Clone,
    {
        let first = decision_context(
            context.aggregate_id.clone(),
            context.aggregate.clone(),
            context.current_sequence,
        );
        let (outcome, checks) = access::checked(
            AnswersFrom::Cache,
            self.attempt(first, command.clone(), metadata.clone()),
        )
        .await;
        let refused_or_no_op = matches!(
            outcome,
            Err(CommandError::Domain(_)) | Ok(Committed { events: 0, .. })
        );
        if !checks.decide_again(refused_or_no_op) {
            return outcome;
        }
        tracing::debug!("deciding again on a project's current access");
        checks.forget();
        access::checked(
            AnswersFrom::Database,
            self.attempt(context, command, metadata),
        )
        .await
        .0
    }

    /// Lets the aggregate of `context` decide, commits its events, and keeps the new state in
    /// the cache (forgets it when the commit failed).
    async fn attempt(
        &self,
        mut context: EventStoreAggregateContext<A>,
        command: A::Command,
        metadata: Metadata,
    ) -> Result<Committed, CommandError<A::Error>>
    where
        A: Clone,
    {
        let loaded = version(context.current_sequence);
        let sink = EventSink::default();
        context
            .aggregate
            .handle(command, &self.services, &sink)
            .await
            .map_err(CommandError::Domain)?;
        let events = sink.collect().await;
        let count = events.len();
        let aggregate_id = context.aggregate_id.clone();
        // The sink applied the events: this is the state after the command.
        let after = (context.aggregate.clone(), context.current_sequence + count);
        if count > 0
            && let Err(error) = self
                .store
                .commit(events, context, metadata.into_map())
                .await
        {
            self.forget(&aggregate_id);
            return Err(error.into());
        }
        if after.1 > 0 {
            self.remember(&aggregate_id, after);
        }
        let committed = Committed {
            aggregate_id,
            version: loaded + version(count),
            events: count,
        };
        let span = tracing::Span::current();
        span.record("version", committed.version);
        span.record("events", count);
        tracing::debug!("command committed");
        Ok(committed)
    }

    /// Runs `change` on the cache, if the bus has one.
    fn with_cache<R>(
        &self,
        change: impl FnOnce(&mut LruCache<String, (A, usize)>) -> R,
    ) -> Option<R> {
        let cache = self.cache.as_ref()?;
        let mut cache = cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Some(change(&mut cache))
    }

    /// The cached state and sequence of `aggregate_id`, if the bus has it.
    fn cached(&self, aggregate_id: &str) -> Option<(A, usize)>
    where
        A: Clone,
    {
        self.with_cache(|cache| cache.get(aggregate_id).cloned())
            .flatten()
    }

    fn remember(&self, aggregate_id: &str, entry: (A, usize)) {
        self.with_cache(|cache| cache.insert(aggregate_id.to_owned(), entry));
    }

    fn forget(&self, aggregate_id: &str) {
        self.with_cache(|cache| cache.remove(aggregate_id));
    }

    /// The aggregate's current state and version (0 and `A::default()` if it has no events).
    ///
    /// # Errors
    /// [`CommandError::Unavailable`] if the database is down, [`CommandError::Internal`] if an
    /// event does not deserialize.
    pub async fn load(&self, aggregate_id: &str) -> Result<(A, u64), CommandError<A::Error>> {
        let context = self.store.load_aggregate(aggregate_id).await?;
        Ok((context.aggregate, version(context.current_sequence)))
    }
}

/// What a decision starts from: the aggregate `aggregate_id` in the state `aggregate`, at
/// `current_sequence` (no snapshots).
fn decision_context<A: Aggregate>(
    aggregate_id: String,
    aggregate: A,
    current_sequence: usize,
) -> EventStoreAggregateContext<A> {
    EventStoreAggregateContext {
        aggregate_id,
        aggregate,
        current_sequence,
        current_snapshot: None,
    }
}

/// A sequence number or event count as a version (`usize` always fits in `u64` on the platforms
/// we build for; saturate rather than panic).
fn version(sequence: usize) -> u64 {
    u64::try_from(sequence).unwrap_or(u64::MAX)
}

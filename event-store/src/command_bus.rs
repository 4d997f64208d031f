//! [`CommandBus`]: load an aggregate, check the expected version, decide, commit.

use std::fmt;

use cqrs_es::event_sink::EventSink;
use cqrs_es::persist::PersistedEventStore;
use cqrs_es::{Aggregate, AggregateError, EventStore as _};
use sqlx::PgPool;

use crate::error::UniqueViolation;
use crate::metadata::Metadata;
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

/// Runs the commands of one aggregate type against the event store.
///
/// Unlike `CqrsFramework::execute`, it checks an expected version against the version it
/// loaded (the optimistic lock of the commit is tied to that same version) and returns the new
/// version. There are no query processors: the read side is fed through the relay.
pub struct CommandBus<A: Aggregate> {
    store: PersistedEventStore<PgEventRepository, A>,
    services: A::Services,
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
        }
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
    ) -> Result<Committed, CommandError<A::Error>> {
        let mut context = self.store.load_aggregate(aggregate_id).await?;
        let loaded = version(context.current_sequence);
        if let Some(expected) = expected_version
            && expected != loaded
        {
            return Err(CommandError::VersionConflict {
                expected,
                actual: loaded,
            });
        }
        let sink = EventSink::default();
        context
            .aggregate
            .handle(command, &self.services, &sink)
            .await
            .map_err(CommandError::Domain)?;
        let events = sink.collect().await;
        let count = events.len();
        if count > 0 {
            self.store
                .commit(events, context, metadata.into_map())
                .await?;
        }
        let committed = Committed {
            aggregate_id: aggregate_id.to_owned(),
            version: loaded + version(count),
            events: count,
        };
        let span = tracing::Span::current();
        span.record("version", committed.version);
        span.record("events", count);
        tracing::debug!("command committed");
        Ok(committed)
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

/// A sequence number or event count as a version (`usize` always fits in `u64` on the platforms
/// we build for; saturate rather than panic).
fn version(sequence: usize) -> u64 {
    u64::try_from(sequence).unwrap_or(u64::MAX)
}

//! The read-model contract shared by the projector (which writes) and the query API (which
//! reads): see `docs/read-model-contract.md`.
//!
//! - [`Envelope`]: one event as the relay publishes it to Kafka (and as the replay reads it).
//! - [`documents`]: the MongoDB documents (also the JSON kept in Redis).
//! - [`names`], [`keys`]: collection names and Redis keys of a generation.
//! - [`Generation`], [`ActiveGeneration`]: which generation serves reads.
//! - [`ensure_indexes`]: the indexes of a generation's collections.

pub mod codec;
pub mod documents;
mod envelope;
mod error;
mod generation;
mod indexes;
pub mod keys;
pub mod names;
pub mod time;

pub use envelope::{Envelope, EnvelopeMetadata};
pub use error::Error;
pub use generation::{ActiveGeneration, CACHE_FOR, Generation, Pointer};
pub use indexes::{IndexScope, ensure_indexes};

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

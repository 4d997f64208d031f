//! The read-model contract shared by the projector (which writes) and the query API (which
//! reads): see `docs/read-model-contract.md`.
//!
//! - [`documents`]: the MongoDB documents (also the JSON kept in Redis).
//! - [`names`], [`keys`]: collection names and Redis keys of a generation.
//! - [`Generation`], [`ActiveGeneration`]: which generation serves reads.
//! - [`ensure_indexes`]: the indexes of a generation's collections.
//! - [`mongo`]: the MongoDB client and its `/readyz` check.
//! - [`changes`]: the change feed the projector appends to and `GET /stream` reads.

pub mod changes;
pub mod codec;
pub mod documents;
mod error;
mod generation;
mod indexes;
pub mod keys;
pub mod mongo;
pub mod names;
pub mod time;

pub use error::Error;
pub use generation::{ActiveGeneration, CACHE_FOR, Generation, Pointer};
pub use indexes::ensure_indexes;

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

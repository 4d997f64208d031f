//! The projector: consumes the event stream and builds the read models
//! (`docs/read-model-contract.md`, ADR 0003).
//!
//! - [`projection`]: the pure part — decoding, applying one event to a document, notifications,
//!   statistics.
//! - [`model`]: the read models in memory (the replay's fold).
//! - [`store`]: the live read models in MongoDB and Redis (guarded writes, gap filling).
//! - [`live`]: `projector run`, the Kafka consumer group and the deadline job.
//! - [`parked`]: poison events and `projector parked …`.
//! - [`lag`]: how far the projector trails, per Kafka partition (`/metrics`).
//! - [`replay`]: `projector replay`.
//!
//! `main.rs` parses the command line ([`cli`]) and runs the chosen subcommand.

pub mod cli;
pub mod lag;
pub mod live;
pub mod metrics;
pub mod model;
pub mod parked;
pub mod projection;
pub mod replay;
pub mod settings;
pub mod startup;
pub mod store;

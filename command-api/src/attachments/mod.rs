//! What keeps the attachments' bucket equal to the events: the [`cleaner`] deletes the files
//! of removed attachments and deleted tasks after their events, and the [`sweep`] deletes
//! files whose `AttachmentAdded` event never came (a crash between the upload and the
//! command, a presigned upload never completed). Both are idempotent, so every command-API
//! replica may run them. Replay and the read side never touch the bucket.

pub mod cleaner;
pub mod sweep;

pub use cleaner::Cleaner;
pub use sweep::{Swept, sweep};

//! Where attachments' bytes live: an S3-compatible bucket (Garage in development, MinIO or
//! AWS S3 elsewhere), reached through `object_store` (ADR 0009).
//!
//! Events carry only an attachment's metadata; its bytes are in the bucket under a key that
//! never changes, `[<prefix>/]tasks/<task id>/<attachment id>`. The object is written before its
//! `AttachmentAdded` event, so an object may exist without an event (a crash, a refused
//! command): the command API's orphan sweep deletes those after a grace period. Objects of
//! removed attachments and deleted tasks are deleted after their events.
//!
//! - [`AttachmentStore`] does streamed uploads with a size limit, content sniffing against an
//!   allow-list and a SHA-256; presigned upload and download URLs; deletes; the sweep's listing.
//! - [`sniff`] finds the media type of a file, from its first bytes.
//! - [`StorageSettings`] reads `TASKTRAIL_STORAGE__*`.

pub mod settings;
pub mod sniff;
mod store;

pub use settings::StorageSettings;
pub use store::{AttachmentStore, StoreError, Stored, StoredObject, content_disposition};

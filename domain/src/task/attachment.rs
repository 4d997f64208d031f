//! A file attached to a task: its metadata. The bytes live in object storage under
//! `storage_key`, which never changes; events carry only this.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::values::FileName;

/// An attached file as events record it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// The attachment's id (part of its storage key).
    pub attachment_id: Uuid,
    /// The file's name, cleaned.
    pub file_name: FileName,
    /// The media type found by looking at the bytes (never the client's claim).
    pub content_type: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the bytes, lowercase hex.
    pub sha256: String,
    /// The object's key in the bucket.
    pub storage_key: String,
}

impl Attachment {
    /// The most attachments a task holds.
    pub const MAX_PER_TASK: usize = 100;
}

//! [`AttachmentStore`]: the bucket, through `object_store`'s S3 client.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use domain::FileName;
use futures::{Stream, StreamExt as _, TryStreamExt as _};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::signer::{Method, SignedUrlOptions, Signer as _};
use object_store::{
    Attribute, Attributes, BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt as _,
    PutPayload, RetryConfig, WriteMultipart,
};
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

use crate::settings::StorageSettings;
use crate::sniff::{self, SNIFF_BYTES};

/// The size of each part of a multipart upload (S3's minimum), and how much of a body is
/// held before it: a body that ends within it is sent in one PUT.
const PART_BYTES: usize = 5 * 1024 * 1024;

/// Parts of one upload sent at once. With [`PART_BYTES`], an upload holds at most about
/// 15 MiB of its body in memory, whatever the file's size.
const PARTS_IN_FLIGHT: usize = 2;

/// Why storing or reading an attachment failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Larger than `TASKTRAIL_STORAGE__MAX_BYTES` (413).
    #[error("the file is larger than the limit of {max} bytes")]
    TooLarge {
        /// The limit.
        max: u64,
    },
    /// No bytes at all (422).
    #[error("the file is empty")]
    Empty,
    /// Its bytes are not one of the accepted media types (415).
    #[error("files of this type are not accepted (found: {})", found.unwrap_or("unknown binary data"))]
    Unsupported {
        /// What the bytes look like, if anything known.
        found: Option<&'static str>,
    },
    /// The client's body broke off (400).
    #[error("the upload was interrupted: {0}")]
    Body(String),
    /// No object under the key (an upload URL never used, or an orphan swept).
    #[error("no uploaded file was found")]
    Missing,
    /// The storage refused or did not answer (503).
    #[error("attachment storage is unavailable: {0}")]
    Unavailable(#[from] object_store::Error),
}

/// What was stored: the facts an `AttachmentAdded` event records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the bytes, lowercase hex.
    pub sha256: String,
    /// The media type found in the bytes.
    pub content_type: &'static str,
}

/// An object in the bucket, as the orphan sweep sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    /// Its full key.
    pub key: String,
    /// The task and attachment its key names.
    pub task_id: Uuid,
    /// The attachment.
    pub attachment_id: Uuid,
    /// When it was written.
    pub last_modified: DateTime<Utc>,
}

/// The attachments' bucket: uploads (streamed, limited, sniffed, hashed), presigned URLs,
/// deletes and the listing the orphan sweep needs. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AttachmentStore {
    store: Arc<AmazonS3>,
    /// Signs URLs for clients (the public endpoint).
    signer: Arc<AmazonS3>,
    /// Key prefix without surrounding slashes; empty for none.
    prefix: String,
    max_bytes: u64,
    allowed: Arc<[String]>,
    upload_url_ttl: Duration,
    download_url_ttl: Duration,
}

impl AttachmentStore {
    /// Why attachment routes answer 503 when [`Self::from_settings`] gave no store.
    pub const NOT_CONFIGURED: &str =
        "no attachment storage is configured (TASKTRAIL_STORAGE__ACCESS_KEY_ID)";

    /// The store `settings` describe, or `None` when no access key is configured. Nothing is
    /// contacted: a storage that is down makes each operation fail with
    /// [`StoreError::Unavailable`].
    ///
    /// # Errors
    /// Settings that cannot work (see [`StorageSettings::validate`]) or an endpoint the client
    /// refuses.
    pub fn from_settings(settings: &StorageSettings) -> Result<Option<Self>, String> {
        settings.validate()?;
        if !settings.configured() {
            return Ok(None);
        }
        let public = if settings.public_endpoint.is_empty() {
            &settings.endpoint
        } else {
            &settings.public_endpoint
        };
        let store = Arc::new(client(settings, &settings.endpoint)?);
        let signer = Arc::new(client(settings, public)?);
        Ok(Some(Self {
            store,
            signer,
            prefix: settings.prefix.trim_matches('/').to_owned(),
            max_bytes: settings.max_bytes,
            allowed: settings.allowed().map(str::to_owned).collect(),
            upload_url_ttl: settings.upload_url_ttl(),
            download_url_ttl: settings.download_url_ttl(),
        }))
    }

    /// The largest attachment accepted, in bytes.
    #[must_use]
    pub const fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// How long a presigned upload URL is valid.
    #[must_use]
    pub const fn upload_url_ttl(&self) -> Duration {
        self.upload_url_ttl
    }

    /// The key an attachment's bytes are stored under; it never changes.
    #[must_use]
    pub fn key(&self, task_id: Uuid, attachment_id: Uuid) -> String {
        format!("{}tasks/{task_id}/{attachment_id}", self.folder())
    }

    /// The prefix every object of a task starts with.
    fn task_folder(&self, task_id: Uuid) -> String {
        format!("{}tasks/{task_id}", self.folder())
    }

    fn folder(&self) -> String {
        if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix)
        }
    }

    /// Streams `body` to `key`: it is read once, hashed and counted on the way, and refused
    /// as soon as it passes the size limit or its first bytes are not an accepted type.
    /// A body of up to 5 MiB is sent in one PUT; a larger one as a multipart upload, with
    /// about 15 MiB of it in memory at most. A refused or broken upload leaves no object
    /// behind (the multipart upload is aborted).
    ///
    /// # Errors
    /// [`StoreError::TooLarge`], [`StoreError::Empty`], [`StoreError::Unsupported`],
    /// [`StoreError::Body`] (the client's stream failed) or [`StoreError::Unavailable`].
    pub async fn put<S, E>(
        &self,
        key: &str,
        file_name: &FileName,
        mut body: S,
    ) -> Result<Stored, StoreError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + Unpin,
        E: std::fmt::Display,
    {
        let mut count = Counter::new(self.max_bytes);
        // The first part: enough to sniff, and a whole small file.
        let mut held: Vec<Bytes> = Vec::new();
        let mut held_bytes = 0;
        let mut ended = false;
        while held_bytes < PART_BYTES {
            match body.next().await {
                None => {
                    ended = true;
                    break;
                }
                Some(Err(error)) => return Err(StoreError::Body(error.to_string())),
                Some(Ok(chunk)) => {
                    count.add(&chunk)?;
                    held_bytes += chunk.len();
                    held.push(chunk);
                }
            }
        }
        let head = first_bytes(&held, SNIFF_BYTES);
        let whole = ended && held_bytes <= SNIFF_BYTES;
        let content_type = self.accept(&head, whole, count.size)?;
        let path = Path::from(key);
        let attributes = attributes(content_type, file_name);
        if ended {
            let payload: PutPayload = held.into_iter().collect();
            self.store
                .put_opts(&path, payload, attributes.into())
                .await?;
            return Ok(count.finish(content_type));
        }
        let upload = self
            .store
            .put_multipart_opts(&path, attributes.into())
            .await?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
        for chunk in held {
            writer.put(chunk);
        }
        loop {
            let chunk = match body.next().await {
                None => break,
                Some(Ok(chunk)) => chunk,
                Some(Err(error)) => {
                    abort(writer).await;
                    return Err(StoreError::Body(error.to_string()));
                }
            };
            if let Err(error) = count.add(&chunk) {
                abort(writer).await;
                return Err(error);
            }
            if let Err(error) = writer.wait_for_capacity(PARTS_IN_FLIGHT).await {
                abort(writer).await;
                return Err(error.into());
            }
            writer.put(chunk);
        }
        writer.finish().await?;
        Ok(count.finish(content_type))
    }

    /// Reads what a client uploaded to `key` with a presigned URL and checks it as
    /// [`Self::put`] checks a body (size limit, accepted type) and returns its size and SHA-256.
    /// An object that fails a check, or that was uploaded longer ago than an upload URL is
    /// valid (the orphan sweep may delete it), is deleted.
    ///
    /// # Errors
    /// [`StoreError::Missing`] when nothing was uploaded, the refusals of [`Self::put`], or
    /// [`StoreError::Unavailable`].
    pub async fn check_uploaded(&self, key: &str) -> Result<Stored, StoreError> {
        let path = Path::from(key);
        let result = match self.store.get(&path).await {
            Ok(result) => result,
            Err(object_store::Error::NotFound { .. }) => return Err(StoreError::Missing),
            Err(error) => return Err(error.into()),
        };
        let checked = async {
            // Older than an upload URL's validity: the sweep may take it any time now.
            let expired = chrono::Duration::from_std(self.upload_url_ttl)
                .is_ok_and(|ttl| result.meta.last_modified < Utc::now() - ttl);
            if expired {
                return Err(StoreError::Missing);
            }
            if result.meta.size > self.max_bytes {
                return Err(StoreError::TooLarge {
                    max: self.max_bytes,
                });
            }
            let mut count = Counter::new(self.max_bytes);
            let mut head = Vec::with_capacity(SNIFF_BYTES);
            let mut stream = result.into_stream();
            while let Some(chunk) = stream.try_next().await? {
                count.add(&chunk)?;
                if head.len() < SNIFF_BYTES {
                    let take = (SNIFF_BYTES - head.len()).min(chunk.len());
                    head.extend_from_slice(&chunk[..take]);
                }
            }
            let whole = count.size <= SNIFF_BYTES as u64;
            let content_type = self.accept(&head, whole, count.size)?;
            Ok(count.finish(content_type))
        }
        .await;
        if let Err(
            StoreError::TooLarge { .. }
            | StoreError::Empty
            | StoreError::Unsupported { .. }
            | StoreError::Missing,
        ) = &checked
        {
            self.delete(key).await?;
        }
        checked
    }

    /// A URL the client PUTs the file's bytes to, valid for
    /// `TASKTRAIL_STORAGE__UPLOAD_URL_SECS`.
    ///
    /// # Errors
    /// The signer failed (it reads no server; only a broken configuration fails).
    pub async fn upload_url(&self, key: &str) -> Result<String, StoreError> {
        let url = self
            .signer
            .signed_url(Method::PUT, &Path::from(key), self.upload_url_ttl)
            .await?;
        Ok(url.into())
    }

    /// A URL that downloads the object at `key` for `TASKTRAIL_STORAGE__DOWNLOAD_URL_SECS`,
    /// served as `content_type` with `Content-Disposition: attachment` and `file_name`
    /// (S3's `response-*` overrides, so what the client sent at upload never decides them).
    ///
    /// # Errors
    /// The signer failed.
    pub async fn download_url(
        &self,
        key: &str,
        file_name: &str,
        content_type: &str,
    ) -> Result<String, StoreError> {
        let options = SignedUrlOptions::new().with_query([
            (
                "response-content-disposition",
                content_disposition(file_name),
            ),
            ("response-content-type", content_type.to_owned()),
            ("response-cache-control", "private, no-store".to_owned()),
        ]);
        let url = self
            .signer
            .signed_url_opts(
                Method::GET,
                &Path::from(key),
                self.download_url_ttl,
                &options,
            )
            .await?;
        Ok(url.into())
    }

    /// Whether an object is stored at `key`.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    pub async fn exists(&self, key: &str) -> Result<bool, StoreError> {
        match self.store.head(&Path::from(key)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(error) => Err(error.into()),
        }
    }

    /// Deletes the object at `key`; one already gone is fine.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        match self.store.delete(&Path::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    /// Deletes every object of a task; returns how many there were.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    pub async fn delete_task(&self, task_id: Uuid) -> Result<usize, StoreError> {
        let keys: Vec<Path> = self
            .store
            .list(Some(&Path::from(self.task_folder(task_id))))
            .map_ok(|meta| meta.location)
            .try_collect()
            .await?;
        for key in &keys {
            self.delete(key.as_ref()).await?;
        }
        Ok(keys.len())
    }

    /// Every attachment object written before `before` (what the orphan sweep checks).
    /// Objects under the prefix whose key names no task and attachment are skipped.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    pub async fn objects_before(
        &self,
        before: DateTime<Utc>,
    ) -> Result<Vec<StoredObject>, StoreError> {
        let folder = format!("{}tasks", self.folder());
        let objects: Vec<_> = self
            .store
            .list(Some(&Path::from(folder.as_str())))
            .try_collect()
            .await?;
        Ok(objects
            .into_iter()
            .filter(|meta| meta.last_modified < before)
            .filter_map(|meta| {
                let key = meta.location.to_string();
                let rest = key.strip_prefix(&folder)?.strip_prefix('/')?;
                let (task, attachment) = rest.split_once('/')?;
                Some(StoredObject {
                    task_id: task.parse().ok()?,
                    attachment_id: attachment.parse().ok()?,
                    last_modified: meta.last_modified,
                    key,
                })
            })
            .collect())
    }

    /// The media type of a file starting with `head`, if accepted.
    fn accept(&self, head: &[u8], whole: bool, size: u64) -> Result<&'static str, StoreError> {
        if size == 0 {
            return Err(StoreError::Empty);
        }
        let found = sniff::media_type(head, whole);
        match found {
            Some(media_type) if self.allowed.iter().any(|allowed| allowed == media_type) => {
                Ok(media_type)
            }
            _ => Err(StoreError::Unsupported { found }),
        }
    }
}

/// Counts and hashes a body on its way, refusing it past the limit.
struct Counter {
    size: u64,
    max: u64,
    hasher: Sha256,
}

impl Counter {
    fn new(max: u64) -> Self {
        Self {
            size: 0,
            max,
            hasher: Sha256::new(),
        }
    }

    fn add(&mut self, chunk: &[u8]) -> Result<(), StoreError> {
        self.size = self.size.saturating_add(chunk.len() as u64);
        if self.size > self.max {
            return Err(StoreError::TooLarge { max: self.max });
        }
        self.hasher.update(chunk);
        Ok(())
    }

    fn finish(self, content_type: &'static str) -> Stored {
        let digest = self.hasher.finalize();
        Stored {
            size: self.size,
            sha256: digest.iter().map(|byte| format!("{byte:02x}")).collect(),
            content_type,
        }
    }
}

/// Aborts a multipart upload; a failure is only logged (the storage's own expiry of
/// incomplete uploads, or the sweep, removes what is left).
async fn abort(writer: WriteMultipart) {
    if let Err(error) = writer.abort().await {
        tracing::warn!(%error, "aborting a refused multipart upload failed");
    }
}

/// Up to `n` leading bytes of `chunks`.
fn first_bytes(chunks: &[Bytes], n: usize) -> Vec<u8> {
    let mut head = Vec::with_capacity(n);
    for chunk in chunks {
        let take = (n - head.len()).min(chunk.len());
        head.extend_from_slice(&chunk[..take]);
        if head.len() == n {
            break;
        }
    }
    head
}

/// The attributes an object is stored with: its sniffed type, and served as a download.
fn attributes(content_type: &str, file_name: &FileName) -> Attributes {
    [
        (Attribute::ContentType, content_type.to_owned()),
        (
            Attribute::ContentDisposition,
            content_disposition(file_name.as_str()),
        ),
    ]
    .into_iter()
    .collect()
}

/// `attachment; filename="<ASCII stand-in>"; filename*=UTF-8''<percent-encoded>` (RFC 6266):
/// always a download, never shown inline, with the name intact for clients that read
/// `filename*`.
#[must_use]
pub fn content_disposition(file_name: &str) -> String {
    let ascii: String = file_name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::with_capacity(file_name.len() * 3);
    for byte in file_name.bytes() {
        if byte.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

/// An S3 client for `endpoint` that fails fast when the storage is down: 2 s to connect,
/// two retries within 5 s, 30 s for a request (a 5 MiB part).
fn client(settings: &StorageSettings, endpoint: &str) -> Result<AmazonS3, String> {
    let options = ClientOptions::new()
        .with_connect_timeout(Duration::from_secs(2))
        .with_timeout(Duration::from_secs(30));
    let retry = RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            base: 2.0,
        },
        max_retries: 2,
        retry_timeout: Duration::from_secs(5),
    };
    AmazonS3Builder::new()
        .with_endpoint(endpoint)
        .with_region(&settings.region)
        .with_bucket_name(&settings.bucket)
        .with_access_key_id(&settings.access_key_id)
        .with_secret_access_key(settings.secret_access_key.expose())
        .with_virtual_hosted_style_request(false)
        .with_client_options(options)
        .with_allow_http(endpoint.starts_with("http://"))
        .with_retry(retry)
        .build()
        .map_err(|error| format!("TASKTRAIL_STORAGE__ENDPOINT {endpoint:?}: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downloads_are_attachments_with_the_name_kept_and_quotes_escaped() {
        assert_eq!(
            content_disposition("plan \"v2\".pdf"),
            "attachment; filename=\"plan _v2_.pdf\"; filename*=UTF-8''plan%20%22v2%22.pdf"
        );
        assert_eq!(
            content_disposition("café.txt"),
            "attachment; filename=\"caf_.txt\"; filename*=UTF-8''caf%C3%A9.txt"
        );
    }

    #[test]
    fn the_first_bytes_span_chunks() {
        let chunks = [Bytes::from_static(b"ab"), Bytes::from_static(b"cde")];
        assert_eq!(first_bytes(&chunks, 4), b"abcd");
        assert_eq!(first_bytes(&chunks, 10), b"abcde");
    }

    #[test]
    fn the_counter_refuses_past_the_limit_and_hashes_what_it_took() {
        let mut counter = Counter::new(5);
        assert!(counter.add(b"hello").is_ok());
        let stored = counter.finish("text/plain");
        assert_eq!(
            stored.sha256,
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        let mut counter = Counter::new(5);
        assert!(matches!(
            counter.add(b"hello!"),
            Err(StoreError::TooLarge { max: 5 })
        ));
    }
}

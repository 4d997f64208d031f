//! `TASKTRAIL_STORAGE__*`: the bucket attachments live in, and the limits of what goes in.

use std::time::Duration;

use serde::Deserialize;
use service_runtime::settings::Secret;

/// Where attachments are stored and what is accepted (`TASKTRAIL_STORAGE__*`). Without an
/// access key the APIs still start, and every attachment route answers 503.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct StorageSettings {
    /// The S3 endpoint the services use (`scripts/services` starts Garage on
    /// `http://127.0.0.1:3900`).
    pub endpoint: String,
    /// The endpoint presigned URLs name, when clients reach the storage at another address
    /// than the services do (for example `http://localhost:3900` outside docker compose).
    /// Empty: `endpoint`.
    pub public_endpoint: String,
    /// The region the server expects in signatures (Garage: its `s3_region`).
    pub region: String,
    /// The bucket. It must exist: tasktrail never creates buckets.
    pub bucket: String,
    /// The access key id. Empty: no storage, attachment routes answer 503.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: Secret,
    /// Prepended to every object key (a folder, e.g. `tasktrail/`), so a bucket can be shared.
    pub prefix: String,
    /// The largest attachment, in bytes (larger: 413). 25 MiB.
    pub max_bytes: u64,
    /// Media types accepted, comma separated, as found in the bytes (never the client's claim).
    pub allowed_types: String,
    /// How long a presigned upload URL is valid, in seconds.
    pub upload_url_secs: u64,
    /// How long a presigned download URL is valid, in seconds.
    pub download_url_secs: u64,
    /// How often the orphan sweep runs, in seconds (0: never).
    pub sweep_interval_secs: u64,
    /// An object without its `AttachmentAdded` event older than this is an orphan and is
    /// deleted, in seconds. At least twice the upload URL's validity (a presigned upload must
    /// be completed within that validity of its upload).
    pub orphan_grace_secs: u64,
    /// The Kafka consumer group of the command API's cleaner, which deletes the files of
    /// removed attachments and deleted tasks. Empty (the default):
    /// `<TASKTRAIL_KAFKA__TOPIC_PREFIX>.attachment-cleaner`, one group per set of topics.
    pub cleaner_group: String,
}

/// The media types accepted by default: images, PDF, plain text and archives. No HTML, SVG or
/// anything a browser would run.
pub const DEFAULT_ALLOWED_TYPES: &str = "image/png,image/jpeg,image/gif,image/webp,application/pdf,text/plain,application/zip,application/gzip";

impl Default for StorageSettings {
    fn default() -> Self {
        Self {
            endpoint: "http://127.0.0.1:3900".to_owned(),
            public_endpoint: String::new(),
            region: "garage".to_owned(),
            bucket: "tasktrail".to_owned(),
            access_key_id: String::new(),
            secret_access_key: Secret::new(""),
            prefix: String::new(),
            max_bytes: 25 * 1024 * 1024,
            allowed_types: DEFAULT_ALLOWED_TYPES.to_owned(),
            upload_url_secs: 15 * 60,
            download_url_secs: 60,
            sweep_interval_secs: 15 * 60,
            orphan_grace_secs: 60 * 60,
            cleaner_group: String::new(),
        }
    }
}

impl StorageSettings {
    /// Refuses values that cannot work, naming the variable.
    ///
    /// # Errors
    /// A message naming the `TASKTRAIL_STORAGE__*` variable at fault.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_bytes == 0 {
            return Err("TASKTRAIL_STORAGE__MAX_BYTES must be above 0".to_owned());
        }
        // S3 refuses presigned URLs valid for more than 7 days.
        for (name, secs) in [
            ("UPLOAD_URL_SECS", self.upload_url_secs),
            ("DOWNLOAD_URL_SECS", self.download_url_secs),
        ] {
            if !(1..=7 * 24 * 3600).contains(&secs) {
                return Err(format!(
                    "TASKTRAIL_STORAGE__{name} must be between 1 and 604800 (got {secs})"
                ));
            }
        }
        if self.orphan_grace_secs < self.upload_url_secs.saturating_mul(2) {
            return Err(format!(
                "TASKTRAIL_STORAGE__ORPHAN_GRACE_SECS ({}) must be at least twice \
                 TASKTRAIL_STORAGE__UPLOAD_URL_SECS ({}): an upload that may still be completed \
                 is no orphan",
                self.orphan_grace_secs, self.upload_url_secs
            ));
        }
        if self.allowed().next().is_none() {
            return Err("TASKTRAIL_STORAGE__ALLOWED_TYPES names no media type".to_owned());
        }
        if !self.access_key_id.is_empty() && self.secret_access_key.expose().is_empty() {
            return Err(
                "TASKTRAIL_STORAGE__SECRET_ACCESS_KEY is empty but an access key id is set"
                    .to_owned(),
            );
        }
        Ok(())
    }

    /// The cleaner's consumer group for topics under `topic_prefix` (see
    /// [`Self::cleaner_group`]).
    #[must_use]
    pub fn cleaner_group_for(&self, topic_prefix: &str) -> String {
        if self.cleaner_group.is_empty() {
            format!("{topic_prefix}.attachment-cleaner")
        } else {
            self.cleaner_group.clone()
        }
    }

    /// Whether storage is configured (an access key is set).
    #[must_use]
    pub fn configured(&self) -> bool {
        !self.access_key_id.is_empty()
    }

    /// The accepted media types.
    pub fn allowed(&self) -> impl Iterator<Item = &str> {
        self.allowed_types
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
    }

    /// [`Self::upload_url_secs`] as a duration.
    #[must_use]
    pub const fn upload_url_ttl(&self) -> Duration {
        Duration::from_secs(self.upload_url_secs)
    }

    /// [`Self::download_url_secs`] as a duration.
    #[must_use]
    pub const fn download_url_ttl(&self) -> Duration {
        Duration::from_secs(self.download_url_secs)
    }

    /// [`Self::orphan_grace_secs`] as a duration.
    #[must_use]
    pub const fn orphan_grace(&self) -> Duration {
        Duration::from_secs(self.orphan_grace_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid_and_unconfigured() {
        let settings = StorageSettings::default();
        assert_eq!(settings.validate(), Ok(()));
        assert!(!settings.configured());
        assert!(settings.allowed().any(|t| t == "application/pdf"));
        assert!(!settings.allowed().any(|t| t == "text/html"));
    }

    #[test]
    fn the_cleaner_has_a_group_per_set_of_topics_unless_one_is_named() {
        let mut settings = StorageSettings::default();
        assert_eq!(
            settings.cleaner_group_for("tasktrail"),
            "tasktrail.attachment-cleaner"
        );
        settings.cleaner_group = "mine".to_owned();
        assert_eq!(settings.cleaner_group_for("tasktrail"), "mine");
    }

    #[test]
    fn a_grace_shorter_than_an_upload_url_is_refused() {
        let settings = StorageSettings {
            orphan_grace_secs: 60,
            upload_url_secs: 900,
            ..StorageSettings::default()
        };
        let error = settings.validate().expect_err("refused");
        assert!(error.contains("ORPHAN_GRACE_SECS"), "{error}");
    }
}

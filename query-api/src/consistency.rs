//! Read-your-writes: a command reply carries `{id, version}`; a query that passes
//! `min_version` waits (bounded by `TASKTRAIL_READ__MIN_VERSION_TIMEOUT_MS`) until the read model
//! reached that version, else answers 409 `read_model_behind` with `Retry-After: 1`.
//!
//! The wait is woken by the projector: each batch it commits is announced on a Redis channel
//! ([`read_model::keys::applied_channel`]), and every waiter reads again at once. The poll
//! interval is only the fallback for a notification that never comes (Redis down).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt as _;
use serde::Deserialize;
use tokio::sync::watch;
use utoipa::IntoParams;

use crate::error::ApiError;
use crate::settings::ReadSettings;
use crate::store::StoreError;

/// How long and how often to wait for the read model.
#[derive(Debug, Clone)]
pub struct Consistency {
    timeout: Duration,
    poll: Duration,
    /// Requests answered 409 `read_model_behind` (for `/metrics`).
    pub behind: Arc<AtomicU64>,
    /// Bumped for every batch the projector announces.
    applied: Arc<watch::Sender<u64>>,
}

/// `?min_version=` of a single-resource GET.
#[derive(Debug, Clone, Copy, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MinVersion {
    /// Wait (bounded) until the read model holds at least this version of the resource: pass
    /// the `version` of a command reply to read your own write. On timeout: 409
    /// `read_model_behind` with `Retry-After: 1`.
    pub min_version: Option<u64>,
}

impl Consistency {
    /// From the settings; waits poll only (see [`Self::listen`]).
    pub fn new(settings: &ReadSettings) -> Self {
        Self {
            timeout: settings.timeout(),
            poll: settings.poll_interval(),
            behind: Arc::default(),
            applied: Arc::new(watch::Sender::new(0)),
        }
    }

    /// Wakes the waits whenever the projector announces a batch on Redis (`redis_url`, key
    /// prefix `prefix`): a background task subscribes, and subscribes again after an error.
    ///
    /// # Errors
    /// An invalid Redis URL.
    pub fn listen(&self, redis_url: &str, prefix: &str) -> anyhow::Result<()> {
        let client = redis::Client::open(redis_url)?;
        let channel = read_model::keys::applied_channel(prefix);
        let applied = Arc::clone(&self.applied);
        tokio::spawn(async move {
            loop {
                match client.get_async_pubsub().await {
                    Ok(mut pubsub) => match pubsub.subscribe(&channel).await {
                        Ok(()) => {
                            let mut messages = pubsub.on_message();
                            while messages.next().await.is_some() {
                                applied.send_modify(|n| *n = n.wrapping_add(1));
                            }
                            tracing::debug!("read-your-writes: the Redis subscription ended");
                        }
                        Err(error) => {
                            tracing::debug!(error = %error, "read-your-writes: cannot subscribe");
                        }
                    },
                    Err(error) => {
                        tracing::debug!(error = %error, "read-your-writes: Redis unreachable");
                    }
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        Ok(())
    }

    /// Reads with `read` until what it returns has a version of at least `wanted` (at once
    /// without `wanted`). `read` should return `None` for what the caller may not see, so a
    /// refusal and a missing document look alike.
    ///
    /// # Errors
    /// 409 `read_model_behind` on timeout; the error of `read`.
    pub async fn read<T, F, Fut>(
        &self,
        aggregate_id: &str,
        wanted: Option<u64>,
        version: impl Fn(&T) -> i64,
        mut read: F,
    ) -> Result<Option<T>, ApiError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Option<T>, StoreError>>,
    {
        let Some(wanted) = wanted else {
            return Ok(read().await?);
        };
        let deadline = tokio::time::Instant::now() + self.timeout;
        let mut applied = self.applied.subscribe();
        loop {
            // A batch announced from here on wakes the wait below, even one announced while
            // this read runs.
            applied.mark_unchanged();
            let found = read().await?;
            let current = found.as_ref().map(&version);
            if current.is_some_and(|v| u64::try_from(v).is_ok_and(|v| v >= wanted)) {
                return Ok(found);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                self.behind.fetch_add(1, Ordering::Relaxed);
                return Err(crate::error::read_model_behind(
                    aggregate_id,
                    wanted,
                    current,
                ));
            }
            let fallback = self.poll.min(deadline - now);
            // The sender lives as long as `self`, so `changed` only ever returns Ok.
            let _woken = tokio::time::timeout(fallback, applied.changed()).await;
        }
    }
}

/// `?wait_for=<id>&min_version=N` of a list: both or neither.
///
/// # Errors
/// 422 when only one of them is given.
pub fn wait_pair(
    wait_for: Option<uuid::Uuid>,
    min_version: Option<u64>,
) -> Result<Option<(String, u64)>, ApiError> {
    match (wait_for, min_version) {
        (None, None) => Ok(None),
        (Some(id), Some(version)) => Ok(Some((id.to_string(), version))),
        (Some(_), None) => Err(ApiError::invalid(
            "wait_for needs min_version (the version of the command reply)",
        )),
        (None, Some(_)) => Err(ApiError::invalid(
            "min_version on a list needs wait_for (the id of the aggregate you changed)",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn consistency(timeout_ms: u64) -> Consistency {
        Consistency::new(&ReadSettings {
            min_version_timeout_ms: timeout_ms,
            poll_interval_ms: 5,
        })
    }

    #[tokio::test]
    async fn waits_until_the_version_arrives() {
        let mut reads = 0;
        let found = consistency(1000)
            .read(
                "a",
                Some(3),
                |v: &i64| *v,
                || {
                    reads += 1;
                    let version = reads;
                    async move { Ok(Some(version)) }
                },
            )
            .await
            .expect("reached");
        assert_eq!(found, Some(3));
    }

    #[tokio::test]
    async fn times_out_with_read_model_behind() {
        let c = consistency(30);
        let error = c
            .read("a", Some(5), |v: &i64| *v, || async { Ok(Some(2)) })
            .await
            .expect_err("behind");
        assert_eq!(error.body.code, "read_model_behind");
        assert_eq!(error.body.details["current"], 2);
        assert_eq!(error.retry_after, Some(1));
        assert_eq!(c.behind.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn wait_for_and_min_version_come_together() {
        assert!(wait_pair(None, None).expect("neither").is_none());
        assert!(wait_pair(Some(uuid::Uuid::nil()), None).is_err());
        assert!(wait_pair(None, Some(1)).is_err());
    }
}

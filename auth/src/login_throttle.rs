//! Login throttling that holds whatever the caller attaches: failed logins are counted per
//! account (the username tried) and per client address in Redis, shared by every replica.
//!
//! - `{prefix}:login:account:{username}` and `{prefix}:login:client:{address}` count failures;
//!   each expires `login_window_secs` after its first failure.
//! - Once an account has `login_failures_per_account` failures (or a client
//!   `login_failures_per_client`), its logins are refused with 429 and `Retry-After` (the
//!   counter's remaining lifetime) without checking the password, whether the account exists or
//!   not, so the refusal says nothing about which usernames exist.
//! - A successful login clears its account's counter (not the client's).
//! - Redis down or slow: logins go through unthrottled (logged at most every 10 s), like the
//!   request rate limit: logging in must keep working while Redis is down.

use std::sync::Arc;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use redis::Script;
use redis::aio::ConnectionManager;
use serde_json::json;
use service_runtime::error::ErrorBody;

use crate::rate_limit::{REDIS_TIMEOUT, RateLimitSettings};
use crate::throttle::Throttle;

/// The longest username kept in a counter's key (longer input is cut; it cannot be a username).
const MAX_ACCOUNT_KEY_CHARS: usize = 64;

/// Returns the two counters and their remaining lifetimes in seconds.
const READ_SCRIPT: &str = r"
local account = tonumber(redis.call('GET', KEYS[1]) or '0')
local client = tonumber(redis.call('GET', KEYS[2]) or '0')
return {account, redis.call('TTL', KEYS[1]), client, redis.call('TTL', KEYS[2])}
";

/// Counts one failure on both counters, giving each its window on first use.
const FAIL_SCRIPT: &str = r"
for _, key in ipairs(KEYS) do
  local count = redis.call('INCR', key)
  if count == 1 or redis.call('TTL', key) < 0 then
    redis.call('EXPIRE', key, ARGV[1])
  end
end
return 1
";

static REDIS_DOWN: Throttle = Throttle::new(10);

/// Refused: too many failed logins; retry after this many seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    pub retry_after_secs: u64,
}

impl IntoResponse for Throttled {
    fn into_response(self) -> Response {
        tracing::info!(retry_after_secs = self.retry_after_secs, "login throttled");
        let mut response = ErrorBody::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!(
                "too many failed logins; retry in {} s",
                self.retry_after_secs
            ),
        )
        .with_details(json!({ "retry_after_secs": self.retry_after_secs }))
        .into_response();
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(self.retry_after_secs),
        );
        response
    }
}

/// The failed-login counters. Cheap to clone.
#[derive(Clone)]
pub struct LoginThrottle {
    redis: ConnectionManager,
    key_prefix: Arc<str>,
    per_account: u32,
    per_client: u32,
    window_secs: u64,
    trust_forwarded_for: bool,
    read: Arc<Script>,
    fail: Arc<Script>,
}

impl std::fmt::Debug for LoginThrottle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginThrottle")
            .field("key_prefix", &self.key_prefix)
            .field("per_account", &self.per_account)
            .field("per_client", &self.per_client)
            .field("window_secs", &self.window_secs)
            .finish_non_exhaustive()
    }
}

impl LoginThrottle {
    /// Limits from `settings` (`login_*`, zero raised to 1); `trust_forwarded_for` as there.
    pub fn new(
        redis: ConnectionManager,
        key_prefix: impl Into<String>,
        settings: &RateLimitSettings,
    ) -> Self {
        Self {
            redis,
            key_prefix: Arc::from(key_prefix.into()),
            per_account: settings.login_failures_per_account.max(1),
            per_client: settings.login_failures_per_client.max(1),
            window_secs: settings.login_window_secs.max(1),
            trust_forwarded_for: settings.trust_forwarded_for,
            read: Arc::new(Script::new(READ_SCRIPT)),
            fail: Arc::new(Script::new(FAIL_SCRIPT)),
        }
    }

    /// Whether `X-Forwarded-For` names the client (see [`crate::rate_limit::client_address`]).
    pub fn trust_forwarded_for(&self) -> bool {
        self.trust_forwarded_for
    }

    fn keys(&self, account: &str, client: &str) -> [String; 2] {
        let account: String = account
            .trim()
            .to_lowercase()
            .chars()
            .take(MAX_ACCOUNT_KEY_CHARS)
            .collect();
        [
            format!("{}:login:account:{account}", self.key_prefix),
            format!("{}:login:client:{client}", self.key_prefix),
        ]
    }

    /// Before checking a password: refuses when the account or the client has too many
    /// recent failures.
    ///
    /// # Errors
    /// [`Throttled`] with the seconds to wait.
    pub async fn check(&self, account: &str, client: &str) -> Result<(), Throttled> {
        let [account_key, client_key] = self.keys(account, client);
        let mut redis = self.redis.clone();
        let mut invocation = self.read.key(account_key);
        invocation.key(client_key);
        let counts = tokio::time::timeout(
            REDIS_TIMEOUT,
            invocation.invoke_async::<(u64, i64, u64, i64)>(&mut redis),
        )
        .await;
        let (account_failures, account_ttl, client_failures, client_ttl) = match counts {
            Ok(Ok(counts)) => counts,
            Ok(Err(error)) => {
                redis_down(&error);
                return Ok(());
            }
            Err(_) => {
                redis_down(&"timed out");
                return Ok(());
            }
        };
        let retry = |ttl: i64| Throttled {
            retry_after_secs: u64::try_from(ttl).unwrap_or(self.window_secs).max(1),
        };
        if account_failures >= u64::from(self.per_account) {
            return Err(retry(account_ttl));
        }
        if client_failures >= u64::from(self.per_client) {
            return Err(retry(client_ttl));
        }
        Ok(())
    }

    /// After a wrong password (or unknown account): counts one failure for both.
    pub async fn failed(&self, account: &str, client: &str) {
        let [account_key, client_key] = self.keys(account, client);
        let mut redis = self.redis.clone();
        let mut invocation = self.fail.key(account_key);
        invocation.key(client_key).arg(self.window_secs);
        match tokio::time::timeout(REDIS_TIMEOUT, invocation.invoke_async::<i64>(&mut redis)).await
        {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => redis_down(&error),
            Err(_) => redis_down(&"timed out"),
        }
    }

    /// After a successful login: the account's failures are forgotten.
    pub async fn succeeded(&self, account: &str, client: &str) {
        let [account_key, _] = self.keys(account, client);
        let mut redis = self.redis.clone();
        let mut del = redis::cmd("DEL");
        del.arg(account_key);
        match tokio::time::timeout(REDIS_TIMEOUT, del.query_async::<i64>(&mut redis)).await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => redis_down(&error),
            Err(_) => redis_down(&"timed out"),
        }
    }
}

fn redis_down(error: &dyn std::fmt::Display) {
    if REDIS_DOWN.ready() {
        tracing::warn!(%error, "login throttle not applied: Redis failed (logged at most every 10 s)");
    }
}

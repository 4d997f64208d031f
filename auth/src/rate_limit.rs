//! Rate limits shared by every replica: a fixed window per caller, counted in Redis.
//!
//! The caller is `user:{sub}` when the request carries a bearer token that verifies (signature,
//! `exp`, `iss`; an unverified `sub` is never trusted) and the path is not a login or
//! registration one (those are counted per address whatever token is attached, see
//! [`is_credential_path`]), otherwise `ip:{address}` (the peer address
//! from axum's `ConnectInfo<SocketAddr>`, or the last `X-Forwarded-For` entry when
//! `trust_forwarded_for` is set; `ip:unknown` if neither is known). Each request costs one Redis
//! round trip: a Lua script that `INCR`s `"{prefix}:rl:{who}:{window}"` and sets its expiry on
//! first use, where `window` is the Unix time divided by the window length.
//!
//! Every limited response carries `X-RateLimit-Limit` and `X-RateLimit-Remaining`; over the limit
//! the answer is 429 with `Retry-After` (seconds until the window ends) and code `rate_limited`.
//! The refused request's body is read and dropped first (up to [`DRAIN_LIMIT_BYTES`]; past that,
//! or if it cannot be read, the answer says `Connection: close`), so a kept-alive connection
//! stays usable for the client's next request.
//! When Redis fails or is slow the request goes through (logged at most every 10 s): commands
//! must keep working while Redis is down (DESIGN.md). `/healthz`, `/readyz`, `/metrics`,
//! `/docs*` and `/openapi.json` are never limited.
//!
//! Settings (`TASKTRAIL_RATE_LIMIT__*`): `REQUESTS` (100), `WINDOW_SECS` (60), `ENABLED` (true),
//! `TRUST_FORWARDED_FOR` (false; set it only behind a proxy that overwrites the header), and the
//! login throttle's (see [`crate::login_throttle`]): `LOGIN_FAILURES_PER_ACCOUNT` (10),
//! `LOGIN_FAILURES_PER_CLIENT` (100), `LOGIN_WINDOW_SECS` (900).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use redis::Script;
use redis::aio::ConnectionManager;
use serde::Deserialize;
use serde_json::json;
use service_runtime::error::ErrorBody;

use crate::extract::bearer_token;
use crate::throttle::Throttle;
use crate::tokens::Tokens;

/// How long a request waits for Redis before going through unlimited.
pub const REDIS_TIMEOUT: Duration = Duration::from_millis(500);

/// The most of a refused request's body that is read (and dropped) to keep its connection usable.
pub const DRAIN_LIMIT_BYTES: usize = 1024 * 1024;

/// `X-RateLimit-Limit`: the requests allowed per window.
pub const LIMIT_HEADER: HeaderName = HeaderName::from_static("x-ratelimit-limit");
/// `X-RateLimit-Remaining`: the requests left in the current window.
pub const REMAINING_HEADER: HeaderName = HeaderName::from_static("x-ratelimit-remaining");

/// Increments the window's counter and makes sure it expires; returns the new count.
const SCRIPT: &str = r"
local count = redis.call('INCR', KEYS[1])
if count == 1 or redis.call('TTL', KEYS[1]) < 0 then
  redis.call('EXPIRE', KEYS[1], ARGV[1])
end
return count
";

/// `TASKTRAIL_RATE_LIMIT__*`. Compose as `#[serde(default)] pub rate_limit: RateLimitSettings`.
#[derive(Debug, Clone, Deserialize)]
pub struct RateLimitSettings {
    /// Requests allowed per caller and window.
    #[serde(default = "default_requests")]
    pub requests: u32,
    /// Length of a window in seconds.
    #[serde(default = "default_window_secs")]
    pub window_secs: u64,
    #[serde(default = "default_enabled")]
    pub enabled: bool,
    /// Take the client address from the last `X-Forwarded-For` entry (the one our proxy added)
    /// instead of the peer address. Only behind a proxy that sets it; otherwise clients choose
    /// their own address.
    #[serde(default)]
    pub trust_forwarded_for: bool,
    /// Failed logins per account (username) and window before its logins are refused (429).
    #[serde(default = "default_login_failures_per_account")]
    pub login_failures_per_account: u32,
    /// Failed logins per client address and window before its logins are refused (429).
    #[serde(default = "default_login_failures_per_client")]
    pub login_failures_per_client: u32,
    /// The login throttle's window in seconds (a success resets the account's count).
    #[serde(default = "default_login_window_secs")]
    pub login_window_secs: u64,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            requests: default_requests(),
            window_secs: default_window_secs(),
            enabled: default_enabled(),
            trust_forwarded_for: false,
            login_failures_per_account: default_login_failures_per_account(),
            login_failures_per_client: default_login_failures_per_client(),
            login_window_secs: default_login_window_secs(),
        }
    }
}

fn default_login_failures_per_account() -> u32 {
    10
}
fn default_login_failures_per_client() -> u32 {
    100
}
fn default_login_window_secs() -> u64 {
    900
}

fn default_requests() -> u32 {
    100
}
fn default_window_secs() -> u64 {
    60
}
fn default_enabled() -> bool {
    true
}

/// Rate-limit settings that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum RateLimitSettingsError {
    #[error(
        "TASKTRAIL_RATE_LIMIT__REQUESTS must be at least 1 (disable with TASKTRAIL_RATE_LIMIT__ENABLED=false)"
    )]
    ZeroRequests,
    #[error("TASKTRAIL_RATE_LIMIT__WINDOW_SECS must be at least 1")]
    ZeroWindow,
    #[error(
        "TASKTRAIL_RATE_LIMIT__LOGIN_FAILURES_PER_ACCOUNT, __LOGIN_FAILURES_PER_CLIENT and \
         __LOGIN_WINDOW_SECS must be at least 1"
    )]
    ZeroLoginLimit,
}

impl RateLimitSettings {
    /// # Errors
    /// Zero requests or a zero-length window.
    pub fn validate(&self) -> Result<(), RateLimitSettingsError> {
        if self.requests == 0 {
            return Err(RateLimitSettingsError::ZeroRequests);
        }
        if self.window_secs == 0 {
            return Err(RateLimitSettingsError::ZeroWindow);
        }
        if self.login_failures_per_account == 0
            || self.login_failures_per_client == 0
            || self.login_window_secs == 0
        {
            return Err(RateLimitSettingsError::ZeroLoginLimit);
        }
        Ok(())
    }
}

/// The outcome of counting one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    /// Requests left in this window after this one.
    pub remaining: u32,
    /// Seconds until the window ends (at least 1): the `Retry-After` of a refusal.
    pub reset_after_secs: u64,
}

/// Counts requests per caller in Redis. Cheap to clone; pass it to
/// `axum::middleware::from_fn_with_state(limiter, rate_limit::middleware)`.
#[derive(Clone)]
pub struct RateLimiter {
    redis: ConnectionManager,
    key_prefix: Arc<str>,
    limit: u32,
    window_secs: u64,
    enabled: bool,
    trust_forwarded_for: bool,
    tokens: Arc<Tokens>,
    script: Arc<Script>,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("key_prefix", &self.key_prefix)
            .field("limit", &self.limit)
            .field("window_secs", &self.window_secs)
            .field("enabled", &self.enabled)
            .field("trust_forwarded_for", &self.trust_forwarded_for)
            .finish_non_exhaustive()
    }
}

static REDIS_DOWN: Throttle = Throttle::new(10);

impl RateLimiter {
    /// `tokens` identify callers by their verified `sub`. A zero limit or window is raised to 1
    /// (call [`RateLimitSettings::validate`] at start to refuse them instead).
    pub fn new(
        redis: ConnectionManager,
        key_prefix: impl Into<String>,
        settings: &RateLimitSettings,
        tokens: Arc<Tokens>,
    ) -> Self {
        Self {
            redis,
            key_prefix: Arc::from(key_prefix.into()),
            limit: settings.requests.max(1),
            window_secs: settings.window_secs.max(1),
            enabled: settings.enabled,
            trust_forwarded_for: settings.trust_forwarded_for,
            tokens,
            script: Arc::new(Script::new(SCRIPT)),
        }
    }

    pub fn limit(&self) -> u32 {
        self.limit
    }

    pub fn window_secs(&self) -> u64 {
        self.window_secs
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Who the request is from: `user:{sub}` for a verified bearer token (except on the login
    /// and registration paths), else `ip:{address}`.
    pub fn caller(&self, path: &str, headers: &HeaderMap, peer: Option<SocketAddr>) -> String {
        if !is_credential_path(path)
            && let Some(claims) = bearer_token(headers).and_then(|t| self.tokens.verify(t).ok())
        {
            return format!("user:{}", claims.sub);
        }
        format!(
            "ip:{}",
            client_address(headers, peer, self.trust_forwarded_for)
        )
    }

    /// Counts one request of `who` in the current window.
    ///
    /// # Errors
    /// The Redis error, if Redis fails (the middleware then lets the request through).
    pub async fn check(&self, who: &str) -> redis::RedisResult<Decision> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let window = now / self.window_secs;
        let key = format!("{}:rl:{who}:{window}", self.key_prefix);
        let mut redis = self.redis.clone();
        let count: u64 = self
            .script
            .key(key)
            .arg(self.window_secs)
            .invoke_async(&mut redis)
            .await?;
        let limit = u64::from(self.limit);
        Ok(Decision {
            allowed: count <= limit,
            limit: self.limit,
            remaining: u32::try_from(limit.saturating_sub(count)).unwrap_or(0),
            reset_after_secs: ((window + 1) * self.window_secs).saturating_sub(now).max(1),
        })
    }
}

/// The client's address: the last `X-Forwarded-For` entry when `trust_forwarded_for`, else the
/// peer's; `unknown` when neither is known.
pub fn client_address(
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
    trust_forwarded_for: bool,
) -> String {
    let forwarded = trust_forwarded_for
        .then(|| last_forwarded_for(headers))
        .flatten();
    forwarded
        .or(peer.map(|p| p.ip()))
        .map_or_else(|| "unknown".to_owned(), |ip| ip.to_string())
}

/// Paths that take credentials instead of a token: limited per client address whatever token is
/// attached (a throwaway account's token must not buy another budget of password guesses).
pub fn is_credential_path(path: &str) -> bool {
    matches!(
        path,
        "/auth/token" | "/token" | "/login" | "/auth/register" | "/register"
    )
}

/// The client address the proxy appended: the last entry of the last `X-Forwarded-For`.
fn last_forwarded_for(headers: &HeaderMap) -> Option<IpAddr> {
    headers
        .get_all("x-forwarded-for")
        .iter()
        .next_back()?
        .to_str()
        .ok()?
        .rsplit(',')
        .next()?
        .trim()
        .parse()
        .ok()
}

/// Paths that are never limited: probes, metrics and the API documentation.
pub fn is_exempt(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/metrics" | "/openapi.json")
        || path.starts_with("/docs")
}

/// The middleware: `router.layer(axum::middleware::from_fn_with_state(limiter, middleware))`.
/// Serve with `into_make_service_with_connect_info::<SocketAddr>()` so anonymous callers are
/// told apart by address.
pub async fn middleware(
    State(limiter): State<RateLimiter>,
    request: Request,
    next: Next,
) -> Response {
    if !limiter.enabled || is_exempt(request.uri().path()) {
        return next.run(request).await;
    }
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0);
    let who = limiter.caller(request.uri().path(), request.headers(), peer);
    let decision = match tokio::time::timeout(REDIS_TIMEOUT, limiter.check(&who)).await {
        Ok(Ok(decision)) => Some(decision),
        Ok(Err(error)) => {
            if REDIS_DOWN.ready() {
                tracing::warn!(%error, "rate limit not applied: Redis failed (logged at most every 10 s)");
            }
            None
        }
        Err(_) => {
            if REDIS_DOWN.ready() {
                tracing::warn!(
                    "rate limit not applied: Redis did not answer within {REDIS_TIMEOUT:?} (logged at most every 10 s)"
                );
            }
            None
        }
    };
    let Some(decision) = decision else {
        let mut response = next.run(request).await;
        response
            .headers_mut()
            .insert(LIMIT_HEADER, HeaderValue::from(limiter.limit));
        return response;
    };
    let mut response = if decision.allowed {
        next.run(request).await
    } else {
        tracing::info!(who = %who, "rate limited");
        // Read the body the client sent (and drop it): answering before reading it could reset
        // a kept-alive connection under the client's next request.
        let drained = axum::body::to_bytes(request.into_body(), DRAIN_LIMIT_BYTES)
            .await
            .is_ok();
        let mut refused = ErrorBody::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!(
                "too many requests: at most {} per {} s; retry in {} s",
                decision.limit, limiter.window_secs, decision.reset_after_secs
            ),
        )
        .with_details(json!({
            "limit": decision.limit,
            "window_secs": limiter.window_secs,
            "retry_after_secs": decision.reset_after_secs,
        }))
        .into_response();
        refused.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(decision.reset_after_secs),
        );
        if !drained {
            refused
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        refused
    };
    let headers = response.headers_mut();
    headers.insert(LIMIT_HEADER, HeaderValue::from(decision.limit));
    headers.insert(REMAINING_HEADER, HeaderValue::from(decision.remaining));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_metrics_and_docs_are_exempt() {
        for path in [
            "/healthz",
            "/readyz",
            "/metrics",
            "/openapi.json",
            "/docs",
            "/docs/index.html",
        ] {
            assert!(is_exempt(path), "{path}");
        }
        for path in ["/projects", "/auth/token", "/healthz/x", "/", "/metricsx"] {
            assert!(!is_exempt(path), "{path}");
        }
    }

    #[test]
    fn defaults_and_validation() {
        let settings: RateLimitSettings = serde_json::from_value(json!({})).expect("defaults");
        assert_eq!(
            (
                settings.requests,
                settings.window_secs,
                settings.enabled,
                settings.trust_forwarded_for
            ),
            (100, 60, true, false)
        );
        assert_eq!(
            (
                settings.login_failures_per_account,
                settings.login_failures_per_client,
                settings.login_window_secs
            ),
            (10, 100, 900)
        );
        settings.validate().expect("defaults are valid");
        let zero = RateLimitSettings {
            requests: 0,
            ..settings.clone()
        };
        assert!(matches!(
            zero.validate(),
            Err(RateLimitSettingsError::ZeroRequests)
        ));
        let no_window = RateLimitSettings {
            window_secs: 0,
            ..settings
        };
        assert!(matches!(
            no_window.validate(),
            Err(RateLimitSettingsError::ZeroWindow)
        ));
    }

    #[test]
    fn the_last_forwarded_for_entry_is_the_one_our_proxy_added() {
        let mut headers = HeaderMap::new();
        headers.append(
            "x-forwarded-for",
            HeaderValue::from_static("6.6.6.6, 10.0.0.1"),
        );
        headers.append(
            "x-forwarded-for",
            HeaderValue::from_static("6.6.6.6, 203.0.113.7"),
        );
        assert_eq!(last_forwarded_for(&headers), "203.0.113.7".parse().ok());
        headers.insert("x-forwarded-for", HeaderValue::from_static("garbage"));
        assert_eq!(last_forwarded_for(&headers), None);
    }
}

//! Who is calling and how often: shared by the command API and the query API.
//!
//! - [`settings`]: [`AuthSettings`] (`TASKTRAIL_AUTH__*`), validated at start.
//! - [`tokens`]: JWT [`Claims`]; [`Tokens`] issues and verifies them with one pinned algorithm
//!   (HS256 with a shared secret, or RS256 / EdDSA with a key pair).
//! - [`revocation`]: [`Revocations`], so `POST /auth/logout` stops a token at once on every replica
//!   of both APIs (PostgreSQL durably, Redis as the fast path).
//! - [`standing`]: a user's current role, activity and token generation, so deactivation and
//!   password / role changes end earlier tokens at once (same stores as revocations).
//! - [`password`]: argon2id hashing and verification off the async workers.
//! - [`extract`]: the [`AuthUser`] extractor and its rejection [`AuthError`] (401 / 503).
//! - [`rate_limit`]: a fixed-window limit per user (or per IP) in Redis, as axum middleware.
//! - [`login_throttle`]: failed logins counted per account and per client address in Redis.
//!
//! Wiring, in a service's `startup::build`:
//!
//! ```ignore
//! let tokens = Arc::new(Tokens::from_settings(&settings.auth)?); // query API: Tokens::verify_only
//! let revocations = Revocations::new(redis.clone(), pool.clone(), prefix.clone());
//! let authenticator = Authenticator::new(Arc::clone(&tokens), revocations.clone());
//! let limiter = RateLimiter::new(redis, prefix, &settings.rate_limit, Arc::clone(&tokens));
//! let router = routes::router() // handlers take `user: AuthUser`; `Authenticator: FromRef<State>`
//!     .layer(axum::middleware::from_fn_with_state(limiter, rate_limit::middleware))
//!     .with_state(state);
//! tokio::spawn(revocations.run_maintenance(Duration::from_secs(60), shutdown));
//! ```

pub mod extract;
pub mod login_throttle;
pub mod password;
pub mod rate_limit;
pub mod revocation;
pub mod settings;
pub mod standing;
pub mod tokens;

mod claims;
mod error;
mod throttle;

pub use extract::{AuthError, AuthUser, Authenticator, bearer_token};
pub use login_throttle::{LoginThrottle, Throttled};
pub use password::{
    PasswordError, Plaintext, dummy_verify, hash_password, hash_password_blocking, verify_password,
    verify_password_blocking, verify_password_or_dummy,
};
pub use rate_limit::{RateLimitSettings, RateLimiter};
pub use revocation::{RevocationError, Revocations};
pub use settings::{AuthSettings, AuthSettingsError, JwtAlgorithm};
pub use standing::Standing;
pub use tokens::{Claims, IssuedToken, TokenError, Tokens};

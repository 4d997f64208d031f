//! End-to-end tests of the auth crate against the real Redis and PostgreSQL
//! (`scripts/services up && source .services/env`). Each test uses its own database and Redis
//! key prefix and deletes its keys.

mod extractor;
mod rate_limit;
mod revocation;

use std::sync::Arc;
use std::time::Duration;

use auth::{AuthSettings, Tokens};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::response::Response;
use redis::aio::ConnectionManager;
use service_runtime::settings::{RedisSettings, Secret};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use test_support::{dead_address, server_down, servers, unique_name};

pub const SECRET: &str = "integration-test-secret-0123456789abcdef";

/// HS256 tokens with the test secret.
pub fn tokens() -> Arc<Tokens> {
    Arc::new(
        Tokens::from_settings(&AuthSettings {
            jwt_secret: Secret::new(SECRET),
            ..AuthSettings::default()
        })
        .expect("tokens"),
    )
}

/// The real Redis and a key prefix of this test's own.
#[expect(
    missing_debug_implementations,
    reason = "a test fixture; ConnectionManager has no Debug"
)]
pub struct TestRedis {
    pub connection: ConnectionManager,
    pub prefix: String,
}

impl TestRedis {
    pub async fn new() -> Self {
        let settings = &servers().redis;
        let mut connection = service_runtime::redis::connect(settings).expect("redis client");
        if let Err(error) = redis::cmd("PING")
            .query_async::<String>(&mut connection)
            .await
        {
            server_down("Redis", settings.url.expose(), error);
        }
        Self {
            connection,
            prefix: unique_name("auth_test"),
        }
    }

    /// The keys under this test's prefix.
    pub async fn keys(&self) -> Vec<String> {
        let mut connection = self.connection.clone();
        redis::cmd("KEYS")
            .arg(format!("{}:*", self.prefix))
            .query_async(&mut connection)
            .await
            .expect("KEYS")
    }

    pub async fn ttl(&self, key: &str) -> i64 {
        let mut connection = self.connection.clone();
        redis::cmd("TTL")
            .arg(key)
            .query_async(&mut connection)
            .await
            .expect("TTL")
    }

    /// Deletes this test's keys (call at the end of the test).
    pub async fn clean(&self) {
        let keys = self.keys().await;
        if !keys.is_empty() {
            let mut connection = self.connection.clone();
            let _: i64 = redis::cmd("DEL")
                .arg(&keys)
                .query_async(&mut connection)
                .await
                .expect("DEL");
        }
    }
}

/// A Redis client for an address where nothing listens: every command fails fast.
pub fn dead_redis() -> ConnectionManager {
    service_runtime::redis::connect(&RedisSettings {
        url: Secret::new(format!("redis://{}", dead_address())),
        key_prefix: "unused".to_owned(),
    })
    .expect("redis client")
}

/// A pool for an address where nothing listens: every query fails within a second.
pub fn dead_pool() -> PgPool {
    PgPoolOptions::new()
        .acquire_timeout(Duration::from_secs(1))
        .connect_lazy(&format!("postgres://postgres@{}/nothing", dead_address()))
        .expect("pool")
}

/// Sends `request` to `app` and returns the response with its body as JSON (`null` if empty, a
/// JSON string if not JSON).
pub async fn send(app: axum::Router, request: Request<Body>) -> (Response<()>, serde_json::Value) {
    use tower::ServiceExt as _;
    let response = app.oneshot(request).await.expect("response");
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20).await.expect("body");
    let json = if bytes.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|_| {
            serde_json::Value::String(String::from_utf8_lossy(&bytes).into_owned())
        })
    };
    (Response::from_parts(parts, ()), json)
}

pub fn assert_status(response: &Response<()>, body: &serde_json::Value, status: StatusCode) {
    assert_eq!(response.status(), status, "{body}");
}

/// Puts `user_id` in the write-side registry (as a registration would), with `role`, active and
/// token generation 0: the authenticator accepts tokens only of users it finds there.
pub async fn register(pool: &PgPool, user_id: uuid::Uuid, role: domain::Role) {
    sqlx::query(
        "INSERT INTO user_registry (user_id, username, email_normalized, password_hash, role, active)
         VALUES ($1, $2, $3, 'not-a-hash', $4, true)",
    )
    .bind(user_id)
    .bind(format!("u{}", user_id.simple()))
    .bind(format!("{}@example.com", user_id.simple()))
    .bind(role.as_str())
    .execute(pool)
    .await
    .expect("register a user");
}

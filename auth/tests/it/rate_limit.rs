use std::net::SocketAddr;
use std::sync::Arc;

use auth::Tokens;
use auth::rate_limit::{self, LIMIT_HEADER, REMAINING_HEADER, RateLimitSettings, RateLimiter};
use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Request, StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use domain::Role;
use serde_json::Value;
use uuid::Uuid;

use crate::{TestRedis, assert_status, dead_redis, send, tokens};

/// An hour-long window: the test cannot straddle two windows except within milliseconds of
/// a full hour.
const WINDOW_SECS: u64 = 3600;

fn settings(requests: u32) -> RateLimitSettings {
    RateLimitSettings {
        requests,
        window_secs: WINDOW_SECS,
        ..RateLimitSettings::default()
    }
}

fn app(limiter: RateLimiter) -> Router {
    Router::new()
        .route("/things", get(|| async { "ok" }))
        .route("/healthz", get(|| async { "ok" }))
        .layer(axum::middleware::from_fn_with_state(
            limiter,
            rate_limit::middleware,
        ))
}

/// `GET path` from `ip`, with a bearer token if given.
fn request(path: &str, ip: &str, token: Option<&str>) -> Request<Body> {
    let mut request = Request::get(path);
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let mut request = request.body(Body::empty()).expect("request");
    let peer: SocketAddr = format!("{ip}:40000").parse().expect("address");
    request.extensions_mut().insert(ConnectInfo(peer));
    request
}

fn header_u64(response: &Response<()>, name: impl header::AsHeaderName) -> Option<u64> {
    response.headers().get(name)?.to_str().ok()?.parse().ok()
}

async fn hit(app: &Router, path: &str, ip: &str, token: Option<&str>) -> (Response<()>, Value) {
    send(app.clone(), request(path, ip, token)).await
}

#[tokio::test]
async fn the_request_over_the_limit_gets_429_with_retry_after_and_each_user_has_a_budget() {
    let redis = TestRedis::new().await;
    let tokens = tokens();
    let limiter = RateLimiter::new(
        redis.connection.clone(),
        &redis.prefix,
        &settings(3),
        Arc::clone(&tokens),
    );
    let app = app(limiter);
    let alice = tokens
        .issue(Uuid::new_v4(), Role::User)
        .expect("issue")
        .access_token;
    let bob_id = Uuid::new_v4();
    let bob = tokens
        .issue(bob_id, Role::User)
        .expect("issue")
        .access_token;

    for remaining in [2, 1, 0] {
        let (response, body) = hit(&app, "/things", "10.0.0.1", Some(&alice)).await;
        assert_status(&response, &body, StatusCode::OK);
        assert_eq!(header_u64(&response, LIMIT_HEADER), Some(3));
        assert_eq!(header_u64(&response, REMAINING_HEADER), Some(remaining));
    }
    let (response, body) = hit(&app, "/things", "10.0.0.1", Some(&alice)).await;
    assert_status(&response, &body, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    let retry_after = header_u64(&response, header::RETRY_AFTER).expect("Retry-After");
    assert!(
        (1..=WINDOW_SECS).contains(&retry_after),
        "Retry-After: {retry_after}"
    );
    assert_eq!(body["error"]["details"]["retry_after_secs"], retry_after);
    assert_eq!(header_u64(&response, REMAINING_HEADER), Some(0));

    // Same address, another user: a budget of its own.
    let (response, body) = hit(&app, "/things", "10.0.0.1", Some(&bob)).await;
    assert_status(&response, &body, StatusCode::OK);
    assert_eq!(header_u64(&response, REMAINING_HEADER), Some(2));
    // A new token of the same user shares the user's budget.
    let bob_again = tokens
        .issue(bob_id, Role::User)
        .expect("issue")
        .access_token;
    let (response, _) = hit(&app, "/things", "10.0.0.2", Some(&bob_again)).await;
    assert_eq!(header_u64(&response, REMAINING_HEADER), Some(1));

    // Probes are never limited, and carry no rate-limit headers.
    for _ in 0..5 {
        let (response, body) = hit(&app, "/healthz", "10.0.0.1", Some(&alice)).await;
        assert_status(&response, &body, StatusCode::OK);
        assert!(response.headers().get(LIMIT_HEADER).is_none());
    }

    let keys = redis.keys().await;
    let window = chrono::Utc::now().timestamp().cast_unsigned() / WINDOW_SECS;
    assert!(
        keys.iter()
            .all(|k| k.starts_with(&format!("{}:rl:user:", redis.prefix))
                && k.ends_with(&format!(":{window}"))),
        "{keys:?}"
    );
    let ttl = redis.ttl(&keys[0]).await;
    assert!(ttl > 0 && ttl.cast_unsigned() <= WINDOW_SECS, "TTL {ttl}");
    redis.clean().await;
}

#[tokio::test]
async fn anonymous_callers_are_counted_per_address_and_a_forged_sub_is_not_trusted() {
    let redis = TestRedis::new().await;
    let tokens = tokens();
    let limiter = RateLimiter::new(
        redis.connection.clone(),
        &redis.prefix,
        &settings(2),
        Arc::clone(&tokens),
    );
    let app = app(limiter.clone());
    // Tokens signed by someone else: each claims another user, all from one address.
    let forger = Tokens::from_settings(&auth::AuthSettings {
        jwt_secret: service_runtime::settings::Secret::new("a-secret-that-is-not-ours-0123456789"),
        ..auth::AuthSettings::default()
    })
    .expect("tokens");
    let statuses = forged_token_statuses(&app, &forger).await;
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
    let (response, body) = hit(&app, "/things", "192.0.2.9", None).await;
    assert_status(&response, &body, StatusCode::OK);

    let mut headers = HeaderMap::new();
    assert_eq!(limiter.caller("/things", &headers, None), "ip:unknown");
    let peer: SocketAddr = "[2001:db8::1]:5000".parse().expect("address");
    assert_eq!(
        limiter.caller("/things", &headers, Some(peer)),
        "ip:2001:db8::1"
    );
    headers.insert("x-forwarded-for", "203.0.113.7".parse().expect("header"));
    assert_eq!(
        limiter.caller("/things", &headers, Some(peer)),
        "ip:2001:db8::1",
        "not trusted by default"
    );
    let behind_proxy = RateLimiter::new(
        redis.connection.clone(),
        &redis.prefix,
        &RateLimitSettings {
            trust_forwarded_for: true,
            ..settings(2)
        },
        Arc::clone(&tokens),
    );
    assert_eq!(
        behind_proxy.caller("/things", &headers, Some(peer)),
        "ip:203.0.113.7"
    );
    // A genuine token attached to a login does not buy a budget of its own (issue 15, finding 4)
    let genuine = tokens
        .issue(Uuid::new_v4(), Role::User)
        .expect("issue")
        .access_token;
    headers.insert(
        header::AUTHORIZATION,
        format!("Bearer {genuine}").parse().expect("header"),
    );
    assert!(
        limiter
            .caller("/things", &headers, Some(peer))
            .starts_with("user:")
    );
    for path in ["/auth/token", "/login", "/token", "/auth/register"] {
        assert_eq!(
            limiter.caller(path, &headers, Some(peer)),
            "ip:2001:db8::1",
            "{path}"
        );
    }
    redis.clean().await;
}

async fn forged_token_statuses(app: &Router, forger: &Tokens) -> Vec<StatusCode> {
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let forged = forger
            .issue(Uuid::new_v4(), Role::Admin)
            .expect("issue")
            .access_token;
        let (response, _) = hit(app, "/things", "192.0.2.1", Some(&forged)).await;
        statuses.push(response.status());
    }
    statuses
}

#[tokio::test]
async fn with_redis_down_every_request_goes_through() {
    let tokens = tokens();
    let limiter = RateLimiter::new(dead_redis(), "unused", &settings(3), Arc::clone(&tokens));
    let app = app(limiter);
    let token = tokens
        .issue(Uuid::new_v4(), Role::User)
        .expect("issue")
        .access_token;
    for _ in 0..6 {
        let (response, body) = hit(&app, "/things", "10.0.0.1", Some(&token)).await;
        assert_status(&response, &body, StatusCode::OK);
        assert_eq!(header_u64(&response, LIMIT_HEADER), Some(3));
        assert!(
            response.headers().get(REMAINING_HEADER).is_none(),
            "unknown while Redis is down"
        );
    }
}

#[tokio::test]
async fn a_disabled_limiter_neither_counts_nor_adds_headers() {
    let redis = TestRedis::new().await;
    let limiter = RateLimiter::new(
        redis.connection.clone(),
        &redis.prefix,
        &RateLimitSettings {
            enabled: false,
            ..settings(1)
        },
        tokens(),
    );
    let app = app(limiter);
    for _ in 0..3 {
        let (response, body) = hit(&app, "/things", "10.0.0.1", None).await;
        assert_status(&response, &body, StatusCode::OK);
        assert!(response.headers().get(LIMIT_HEADER).is_none());
    }
    assert!(redis.keys().await.is_empty());
}

use std::sync::Arc;

use auth::{AuthUser, Authenticator, Revocations, Tokens};
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::routing::get;
use axum::{Json, Router};
use domain::Role;
use serde_json::{Value, json};
use test_support::TestDatabase;
use uuid::Uuid;

use crate::{TestRedis, assert_status, dead_pool, dead_redis, send, tokens};

/// A tiny app with one protected route that echoes the caller.
fn app(tokens: Arc<Tokens>, revocations: Revocations) -> Router {
    Router::new()
        .route(
            "/me",
            get(|user: AuthUser| async move {
                Json(json!({ "sub": user.claims.sub, "admin": user.actor().is_admin() }))
            }),
        )
        .with_state(Authenticator::new(tokens, revocations))
}

fn me(authorization: Option<&str>) -> Request<Body> {
    let mut request = Request::get("/me");
    if let Some(value) = authorization {
        request = request.header(header::AUTHORIZATION, value);
    }
    request.body(Body::empty()).expect("request")
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn assert_unauthorized(response: &axum::response::Response<()>, body: &Value, message: &str) {
    assert_status(response, body, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "unauthorized", "{body}");
    assert_eq!(body["error"]["message"], message, "{body}");
    let challenge = response
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(
        challenge.starts_with("Bearer"),
        "WWW-Authenticate: {challenge:?}"
    );
}

#[tokio::test]
async fn missing_bad_expired_and_revoked_tokens_are_401_and_a_good_one_passes() {
    let db = TestDatabase::new().await;
    let redis = TestRedis::new().await;
    let tokens = tokens();
    let revocations = Revocations::new(redis.connection.clone(), db.pool.clone(), &redis.prefix);
    let app = app(Arc::clone(&tokens), revocations.clone());
    let user = Uuid::new_v4();
    let good = tokens.issue(user, Role::Admin).expect("issue").access_token;

    let (response, body) = send(app.clone(), me(Some(&bearer(&good)))).await;
    assert_status(&response, &body, StatusCode::OK);
    assert_eq!(body, json!({ "sub": user, "admin": true }));

    let (response, body) = send(app.clone(), me(None)).await;
    assert_unauthorized(&response, &body, "missing bearer token");
    let (response, body) = send(app.clone(), me(Some("Basic dXNlcjpwYXNz"))).await;
    assert_unauthorized(&response, &body, "missing bearer token");

    let (response, body) = send(app.clone(), me(Some("Bearer not.a.token"))).await;
    assert_unauthorized(&response, &body, "invalid bearer token");
    let tampered = format!("{good}x");
    let (response, body) = send(app.clone(), me(Some(&bearer(&tampered)))).await;
    assert_unauthorized(&response, &body, "invalid bearer token");

    let mut old = tokens.claims_for(user, Role::User);
    old.exp = chrono::Utc::now().timestamp() - 1;
    let expired = tokens.sign(&old).expect("sign");
    let (response, body) = send(app.clone(), me(Some(&bearer(&expired)))).await;
    assert_unauthorized(&response, &body, "the token has expired");

    let claims = tokens.verify(&good).expect("verify");
    revocations.revoke(&claims).await.expect("revoke");
    let (response, body) = send(app.clone(), me(Some(&bearer(&good)))).await;
    assert_unauthorized(&response, &body, "the token has been revoked");

    let fresh = tokens.issue(user, Role::User).expect("issue").access_token;
    let (response, body) = send(app, me(Some(&bearer(&fresh)))).await;
    assert_status(&response, &body, StatusCode::OK);
    redis.clean().await;
}

#[tokio::test]
async fn with_redis_down_a_revoked_token_is_still_refused_and_a_good_one_passes() {
    let db = TestDatabase::new().await;
    let tokens = tokens();
    let revocations = Revocations::new(dead_redis(), db.pool.clone(), "unused");
    let app = app(Arc::clone(&tokens), revocations.clone());
    let revoked = tokens
        .issue(Uuid::new_v4(), Role::User)
        .expect("issue")
        .access_token;
    revocations
        .revoke(&tokens.verify(&revoked).expect("verify"))
        .await
        .expect("revoke");
    let good = tokens
        .issue(Uuid::new_v4(), Role::User)
        .expect("issue")
        .access_token;

    let (response, body) = send(app.clone(), me(Some(&bearer(&revoked)))).await;
    assert_unauthorized(&response, &body, "the token has been revoked");
    let (response, body) = send(app, me(Some(&bearer(&good)))).await;
    assert_status(&response, &body, StatusCode::OK);
}

#[tokio::test]
async fn with_redis_and_postgres_down_a_valid_token_gets_503_and_a_bad_one_still_401() {
    let tokens = tokens();
    let app = app(
        Arc::clone(&tokens),
        Revocations::new(dead_redis(), dead_pool(), "unused"),
    );
    let good = tokens
        .issue(Uuid::new_v4(), Role::User)
        .expect("issue")
        .access_token;

    let (response, body) = send(app.clone(), me(Some(&bearer(&good)))).await;
    assert_status(&response, &body, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"]["code"], "unavailable", "{body}");
    assert!(response.headers().get(header::WWW_AUTHENTICATE).is_none());

    let (response, body) = send(app, me(Some("Bearer garbage"))).await;
    assert_unauthorized(&response, &body, "invalid bearer token");
}

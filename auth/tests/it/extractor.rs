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

use crate::{TestRedis, assert_status, dead_pool, dead_redis, register, send, tokens};

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
    register(&db.pool, user, Role::Admin).await;
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
    let user = Uuid::new_v4();
    register(&db.pool, user, Role::User).await;
    let revoked = tokens.issue(user, Role::User).expect("issue").access_token;
    revocations
        .revoke(&tokens.verify(&revoked).expect("verify"))
        .await
        .expect("revoke");
    let good = tokens.issue(user, Role::User).expect("issue").access_token;

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

/// Issue 15, findings 2 and 10: a token of a user who never existed, or who was deactivated,
/// demoted or changed password since it was issued, no longer works; the role that authorizes is
/// the current one. With Redis up and with Redis down (PostgreSQL answers).
#[tokio::test]
async fn a_token_works_only_while_its_user_is_active_and_its_generation_is_current() {
    for redis_up in [true, false] {
        // Given an admin with a token, and a token for a user who never existed
        let db = TestDatabase::new().await;
        let redis = TestRedis::new().await;
        let tokens = tokens();
        let revocations = if redis_up {
            Revocations::new(redis.connection.clone(), db.pool.clone(), &redis.prefix)
        } else {
            Revocations::new(dead_redis(), db.pool.clone(), "unused")
        };
        let app = app(Arc::clone(&tokens), revocations.clone());
        let admin = Uuid::new_v4();
        register(&db.pool, admin, Role::Admin).await;
        let token = tokens
            .issue(admin, Role::Admin)
            .expect("issue")
            .access_token;
        let (response, body) = send(app.clone(), me(Some(&bearer(&token)))).await;
        assert_status(&response, &body, StatusCode::OK);
        let ghost = tokens.issue(Uuid::new_v4(), Role::Admin).expect("issue");
        let (response, body) = send(app.clone(), me(Some(&bearer(&ghost.access_token)))).await;
        assert_unauthorized(&response, &body, "the account is not active");

        // When the admin is demoted without a generation change (as if only the role moved)
        sqlx::query("UPDATE user_registry SET role = 'user' WHERE user_id = $1")
            .bind(admin)
            .execute(&db.pool)
            .await
            .expect("demote");
        revocations.refresh_standing(admin).await.expect("refresh");
        // Then the token authorizes as a user: the role is the current one
        let (response, body) = send(app.clone(), me(Some(&bearer(&token)))).await;
        assert_status(&response, &body, StatusCode::OK);
        assert_eq!(body["admin"], false, "{body}");

        // When the generation moves on (a password change, say)
        sqlx::query(
            "UPDATE user_registry SET token_generation = token_generation + 1 WHERE user_id = $1",
        )
        .bind(admin)
        .execute(&db.pool)
        .await
        .expect("new generation");
        revocations.refresh_standing(admin).await.expect("refresh");
        // Then the earlier token is refused, and one issued with the new generation works
        let (response, body) = send(app.clone(), me(Some(&bearer(&token)))).await;
        assert_unauthorized(&response, &body, "the token has been revoked");
        let fresh = tokens
            .issue_for(admin, Role::User, 1)
            .expect("issue")
            .access_token;
        let (response, body) = send(app.clone(), me(Some(&bearer(&fresh)))).await;
        assert_status(&response, &body, StatusCode::OK);

        // When the user is deactivated
        sqlx::query(
            "UPDATE user_registry SET active = false, token_generation = token_generation + 1
             WHERE user_id = $1",
        )
        .bind(admin)
        .execute(&db.pool)
        .await
        .expect("deactivate");
        revocations.refresh_standing(admin).await.expect("refresh");
        // Then even a token of the new generation is refused
        let current = tokens
            .issue_for(admin, Role::User, 2)
            .expect("issue")
            .access_token;
        let (response, body) = send(app, me(Some(&bearer(&current)))).await;
        assert_unauthorized(&response, &body, "the account is not active");
        redis.clean().await;
    }
}

/// A slow reader cannot put an older standing back over a newer one in Redis.
#[tokio::test]
async fn an_older_standing_never_replaces_a_newer_one_in_redis() {
    let db = TestDatabase::new().await;
    let redis = TestRedis::new().await;
    let revocations = Revocations::new(redis.connection.clone(), db.pool.clone(), &redis.prefix);
    let user = Uuid::new_v4();
    register(&db.pool, user, Role::User).await;
    let mut connection = redis.connection.clone();
    let key = revocations.standing_key(user);
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg("5:admin:1")
        .query_async(&mut connection)
        .await
        .expect("SET");
    revocations.refresh_standing(user).await.expect("refresh");
    let stored: String = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut connection)
        .await
        .expect("GET");
    assert_eq!(stored, "5:admin:1");
    redis.clean().await;
}

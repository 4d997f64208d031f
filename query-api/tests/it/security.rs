//! Issue 15 on the query API: tokens end with their user's standing (finding 2), the security
//! headers (finding 8) and an OpenAPI document that lists every error (finding 11).

use auth::Revocations;
use domain::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, user};

/// Finding 2 on the query API: deactivation, a role change or a new password generation end
/// an earlier token at once; the role that reads is the current one.
#[tokio::test]
async fn a_deactivated_or_changed_users_earlier_token_is_refused_at_once() {
    // Given a user whose token reads their profile
    let app = TestApp::spawn().await;
    let me = user("me", "M", "E");
    app.put_user(&me).await;
    let token = app.token(&me.id, Role::User).await;
    assert_eq!(app.get("/me", Some(&token)).await.status, StatusCode::OK);
    let revocations = Revocations::new(app.redis.clone(), app.db.pool.clone(), app.prefix.clone());
    let id = uuid::Uuid::parse_str(&me.id).expect("uuid");

    // When their password changes (the command moves the generation on and refreshes Redis)
    sqlx::query(
        "UPDATE user_registry SET token_generation = token_generation + 1 WHERE user_id = $1",
    )
    .bind(id)
    .execute(&app.db.pool)
    .await
    .expect("password change");
    revocations.refresh_standing(id).await.expect("refresh");
    // Then the earlier token is refused
    let reply = app.get("/me", Some(&token)).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.body);

    // When they are deactivated, then even a token of the current generation is refused
    let current = app.token(&me.id, Role::User).await;
    assert_eq!(app.get("/me", Some(&current)).await.status, StatusCode::OK);
    sqlx::query("UPDATE user_registry SET active = false WHERE user_id = $1")
        .bind(id)
        .execute(&app.db.pool)
        .await
        .expect("deactivate");
    revocations.refresh_standing(id).await.expect("refresh");
    let reply = app.get("/me", Some(&current)).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.body);
    assert_eq!(reply.body["error"]["message"], "the account is not active");
}

/// Finding 8 on the query API.
#[tokio::test]
async fn answers_carry_nosniff_and_no_store() {
    let app = TestApp::spawn().await;
    let me = user("hdr", "H", "D");
    app.put_user(&me).await;
    let token = app.token(&me.id, Role::User).await;
    for reply in [
        app.get("/me", Some(&token)).await,
        app.get("/me", None).await,
        app.get("/tasks/not-a-uuid", Some(&token)).await,
    ] {
        assert_eq!(reply.headers["x-content-type-options"], "nosniff");
        assert_eq!(reply.headers["cache-control"], "no-store");
    }
}

/// Finding 11 on the query API.
#[tokio::test]
async fn the_openapi_document_lists_every_error_with_its_schema_and_enums() {
    let app = TestApp::spawn().await;
    let spec: Value = app
        .http
        .get(format!("{}/openapi.json", app.url))
        .send()
        .await
        .expect("openapi")
        .json()
        .await
        .expect("json");
    let mut operations = 0;
    for (path, item) in spec["paths"].as_object().expect("paths") {
        let Some(operation) = item.get("get") else {
            continue;
        };
        operations += 1;
        for status in ["400", "401", "403", "404", "409", "422", "429", "503"] {
            assert_eq!(
                operation["responses"][status]["content"]["application/json"]["schema"]["$ref"],
                "#/components/schemas/Error",
                "GET {path} {status}"
            );
        }
    }
    assert!(operations >= 15, "{operations}");
    let schemas = &spec["components"]["schemas"];
    assert_eq!(
        schemas["Task"]["properties"]["status"]["enum"],
        json!(["pending", "in_progress", "done", "cancelled"])
    );
    assert_eq!(
        schemas["User"]["properties"]["role"]["enum"],
        json!(["user", "admin"])
    );
}

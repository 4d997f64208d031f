//! In-process router tests (`oneshot`, no listening socket): authentication, parameter
//! validation and the documentation routes.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use domain::Role;
use serde_json::Value;
use tasktrail_query_api::startup;
use test_support::{TestDatabase, unique_name};
use tower::ServiceExt as _;
use uuid::Uuid;

use crate::helpers::{SECRET, settings};

async fn app() -> (Router, TestDatabase) {
    let db = TestDatabase::new().await;
    let settings = settings(&db, &unique_name("qtest"), &unique_name("qtest"));
    let router = startup::app(&settings).await.expect("app").router;
    (router, db)
}

/// A token of a new user registered with `role` in `db`'s write-side registry.
async fn token(db: &TestDatabase, role: Role) -> String {
    let tokens = auth::Tokens::from_settings(&auth::AuthSettings {
        jwt_secret: service_runtime::settings::Secret::new(SECRET),
        ..auth::AuthSettings::default()
    })
    .expect("tokens");
    let user = Uuid::new_v4();
    let generation = crate::helpers::register_user(&db.pool, user, role).await;
    tokens
        .issue_for(user, role, generation)
        .expect("issue")
        .access_token
}

async fn get(app: &Router, path: &str, token: Option<&str>) -> (StatusCode, Value) {
    let mut request = Request::get(path);
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).expect("request"))
        .await
        .expect("response");
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 22)
        .await
        .expect("body");
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, body)
}

#[tokio::test]
async fn every_query_needs_a_valid_token() {
    let (app, _db) = app().await;
    let forged = {
        let other = auth::Tokens::from_settings(&auth::AuthSettings {
            jwt_secret: service_runtime::settings::Secret::new(
                "another-secret-that-is-also-long-enough-for-hs256",
            ),
            ..auth::AuthSettings::default()
        })
        .expect("tokens");
        other
            .issue(Uuid::new_v4(), Role::Admin)
            .expect("issue")
            .access_token
    };
    for path in [
        "/users",
        "/users/search?query=a",
        &format!("/users/{}", Uuid::new_v4()),
        "/me",
        "/projects",
        "/goals",
        &format!("/projects/{}/stats", Uuid::new_v4()),
        "/tasks",
        &format!("/tasks/{}/history", Uuid::new_v4()),
        "/notifications",
        "/stats/me",
    ] {
        for token in [None, Some("not-a-jwt"), Some(forged.as_str())] {
            let (status, body) = get(&app, path, token).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{path} {token:?}: {body}");
            assert_eq!(body["error"]["code"], "unauthorized", "{path}: {body}");
        }
    }
}

#[tokio::test]
async fn malformed_ids_are_400_and_bad_parameters_422() {
    let (app, db) = app().await;
    let token = token(&db, Role::User).await;
    for path in [
        "/users/not-a-uuid",
        "/projects/42",
        "/goals/x/tasks",
        "/projects/x/stats",
        "/tasks/nope",
        "/tasks/nope/history",
    ] {
        let (status, body) = get(&app, path, Some(&token)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert_eq!(body["error"]["code"], "invalid_id", "{path}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("UUID")),
            "{path}: {body}"
        );
    }
    let id = Uuid::new_v4();
    for path in [
        "/tasks?limit=0".to_owned(),
        "/tasks?limit=101".to_owned(),
        "/tasks?limit=abc".to_owned(),
        "/tasks?status=bogus".to_owned(),
        "/tasks?sort=title".to_owned(),
        "/tasks?order=sideways".to_owned(),
        "/tasks?overdue=maybe".to_owned(),
        "/tasks?project_id=nope".to_owned(),
        "/tasks?assignee_id=nope".to_owned(),
        "/tasks?q=".to_owned(),
        "/tasks?unknown=1".to_owned(),
        "/tasks?cursor=garbage".to_owned(),
        format!("/tasks?wait_for={id}"),
        "/tasks?min_version=3".to_owned(),
        format!("/projects/{id}/tasks?project_id={id}"),
        format!("/tasks/{id}?min_version=-1"),
        format!("/tasks/{id}/history?limit=0"),
        "/users/search".to_owned(),
        "/users/search?query=%20".to_owned(),
        "/users?limit=1000".to_owned(),
        "/notifications?unread=perhaps".to_owned(),
        "/stats/me?days=0".to_owned(),
        "/projects?archived=2".to_owned(),
    ] {
        let (status, body) = get(&app, &path, Some(&token)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{path}: {body}");
        assert_eq!(body["error"]["code"], "invalid", "{path}: {body}");
    }
}

#[tokio::test]
async fn docs_and_the_openapi_document_need_no_token() {
    let (app, _db) = app().await;
    let (status, body) = get(&app, "/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    let paths = body["paths"].as_object().expect("paths");
    for path in [
        "/users",
        "/users/search",
        "/users/{id}",
        "/users/by-username/{username}",
        "/me",
        "/projects",
        "/projects/{id}",
        "/projects/by-name/{name}",
        "/projects/{id}/stats",
        "/projects/{id}/tasks",
        "/tasks",
        "/tasks/{id}",
        "/tasks/{id}/history",
        "/notifications",
        "/stats/me",
    ] {
        assert!(
            paths.contains_key(path),
            "{path} missing from the OpenAPI document"
        );
    }
    let description = body["info"]["description"].as_str().unwrap_or_default();
    assert!(description.contains("min_version") && description.contains("read_model_behind"));
    let response = app
        .clone()
        .oneshot(Request::get("/docs/").body(Body::empty()).expect("request"))
        .await
        .expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    let (status, _) = get(&app, "/healthz", None).await;
    assert_eq!(status, StatusCode::OK);
}

//! In-process router tests (`oneshot`, no listening socket) of `startup::app()`, against the real
//! PostgreSQL and Redis: a command's reply, the JSON error body of every kind of bad request,
//! authentication and the documentation routes.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::{Value, json};
use tasktrail_command_api::startup;
use test_support::TestDatabase;
use tower::ServiceExt as _;
use uuid::Uuid;

use crate::helpers::{PASSWORD, registration, settings};

/// The application over a fresh database, without the relay (nothing here reads Kafka).
async fn app() -> (Router, TestDatabase) {
    let db = TestDatabase::new().await;
    let mut settings = settings(&db);
    settings.relay.enabled = false;
    let app = startup::app(&settings).await.expect("app");
    assert!(app.relay.is_none());
    (app.router, db)
}

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Value,
}

impl Reply {
    fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_default()
    }
}

async fn send(app: &Router, request: Request<Body>) -> Reply {
    let response = app.clone().oneshot(request).await.expect("response");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 22)
        .await
        .expect("body");
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        body,
    }
}

fn json_request(method: &str, path: &str, token: Option<&str>, body: &str) -> Request<Body> {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    request.body(Body::from(body.to_owned())).expect("request")
}

/// Registers a user and returns its token.
async fn token(app: &Router) -> String {
    let username = format!("u{}", &Uuid::new_v4().simple().to_string()[..12]);
    let registered = send(
        app,
        json_request(
            "POST",
            "/auth/register",
            None,
            &registration(&username).to_string(),
        ),
    )
    .await;
    assert_eq!(
        registered.status,
        StatusCode::CREATED,
        "{}",
        registered.body
    );
    let issued = send(
        app,
        json_request(
            "POST",
            "/auth/token",
            None,
            &json!({ "username": username, "password": PASSWORD }).to_string(),
        ),
    )
    .await;
    assert_eq!(issued.status, StatusCode::OK, "{}", issued.body);
    issued.body["access_token"]
        .as_str()
        .expect("access token")
        .to_owned()
}

#[tokio::test]
async fn a_created_project_answers_201_with_its_version_location_and_etag() {
    let (app, _db) = app().await;
    let token = token(&app).await;
    let created = send(
        &app,
        json_request(
            "POST",
            "/projects",
            Some(&token),
            r#"{"name": "Apollo", "description": "to the moon"}"#,
        ),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["version"], 1);
    let id = created.body["id"].as_str().expect("id");
    let location = created.headers[header::LOCATION].to_str().expect("ascii");
    assert!(
        location.ends_with(&format!("/projects/{id}")),
        "Location {location}"
    );
    assert_eq!(created.headers[header::ETAG], "\"1\"");

    let renamed = send(
        &app,
        json_request(
            "PATCH",
            &format!("/projects/{id}"),
            Some(&token),
            r#"{"name": "Artemis"}"#,
        ),
    )
    .await;
    assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.body);
    assert_eq!(renamed.body["version"], 2);
}

#[tokio::test]
async fn a_task_gets_a_priority_and_labels_and_bad_ones_are_refused() {
    let (app, _db) = app().await;
    let token = token(&app).await;
    let project = send(
        &app,
        json_request("POST", "/projects", Some(&token), r#"{"name": "Labels"}"#),
    )
    .await;
    let project = project.body["id"].as_str().expect("id").to_owned();
    let tasks = format!("/projects/{project}/tasks");
    let created = send(
        &app,
        json_request(
            "POST",
            &tasks,
            Some(&token),
            r#"{"title": "Ship", "priority": "high", "labels": ["UI", "ui", "needs review"]}"#,
        ),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let task = created.body["id"].as_str().expect("id").to_owned();

    let request =
        |method: &str, path: String, body: &str| json_request(method, &path, Some(&token), body);
    let changed = send(
        &app,
        request(
            "PUT",
            format!("/tasks/{task}/priority"),
            r#"{"priority": "urgent"}"#,
        ),
    )
    .await;
    assert_eq!(
        (changed.status, changed.body["version"].clone()),
        (StatusCode::OK, json!(2))
    );
    let same = send(
        &app,
        request(
            "PUT",
            format!("/tasks/{task}/priority"),
            r#"{"priority": "urgent"}"#,
        ),
    )
    .await;
    assert_eq!(same.body["version"], 2, "the same priority writes nothing");
    let added = send(
        &app,
        request(
            "POST",
            format!("/tasks/{task}/labels"),
            r#"{"label": "Docs"}"#,
        ),
    )
    .await;
    assert_eq!(added.body["version"], 3, "{}", added.body);
    let removed = send(
        &app,
        request("DELETE", format!("/tasks/{task}/labels/Needs%20Review"), ""),
    )
    .await;
    assert_eq!(removed.body["version"], 4, "{}", removed.body);
    let absent = send(
        &app,
        request("DELETE", format!("/tasks/{task}/labels/never"), ""),
    )
    .await;
    assert_eq!(
        absent.body["version"], 4,
        "removing a missing label writes nothing"
    );

    let too_many: Vec<String> = (0..=20).map(|n| format!("l{n}")).collect();
    for (method, path, body, code) in [
        (
            "PUT",
            format!("/tasks/{task}/priority"),
            r#"{"priority": "asap"}"#.to_owned(),
            "invalid",
        ),
        (
            "POST",
            format!("/tasks/{task}/labels"),
            r#"{"label": "a/b"}"#.to_owned(),
            "invalid",
        ),
        (
            "POST",
            format!("/tasks/{task}/labels"),
            r#"{"label": "   "}"#.to_owned(),
            "invalid",
        ),
        (
            "POST",
            format!("/tasks/{task}/labels"),
            json!({ "label": "x".repeat(33) }).to_string(),
            "invalid",
        ),
        (
            "POST",
            tasks.clone(),
            json!({ "title": "Too many", "labels": too_many }).to_string(),
            "invalid",
        ),
    ] {
        let refused = send(&app, request(method, path.clone(), &body)).await;
        assert_eq!(
            (refused.status, refused.code()),
            (StatusCode::UNPROCESSABLE_ENTITY, code),
            "{method} {path} {body}: {}",
            refused.body
        );
    }
    // ui and docs, then 18 more: 20, the most a task holds.
    for n in 0..18 {
        let label = json!({ "label": format!("extra {n}") }).to_string();
        let added = send(
            &app,
            request("POST", format!("/tasks/{task}/labels"), &label),
        )
        .await;
        assert_eq!(added.status, StatusCode::OK, "{}", added.body);
    }
    let full = send(
        &app,
        request(
            "POST",
            format!("/tasks/{task}/labels"),
            r#"{"label": "one more"}"#,
        ),
    )
    .await;
    assert_eq!(
        (full.status, full.code()),
        (StatusCode::CONFLICT, "too_many_labels"),
        "{}",
        full.body
    );
}

#[tokio::test]
async fn every_bad_request_gets_the_json_error_body() {
    let (app, _db) = app().await;
    let token = token(&app).await;
    let task = Uuid::new_v4();
    let cases = [
        (
            json_request("PATCH", "/tasks/not-a-uuid", Some(&token), "{}"),
            StatusCode::BAD_REQUEST,
            "invalid_id",
        ),
        (
            json_request("POST", "/projects", Some(&token), "{not json"),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            json_request(
                "POST",
                "/projects",
                Some(&token),
                r#"{"name": "A", "$where": "1"}"#,
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
        ),
        (
            json_request(
                "POST",
                "/projects",
                Some(&token),
                r#"{"name": "A", "colour": "red"}"#,
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
        ),
        (
            Request::post("/projects")
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .body(Body::from(r#"{"name": "A"}"#))
                .expect("request"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            json_request(
                "PUT",
                &format!("/tasks/{task}/status?expected_version=x"),
                Some(&token),
                r#"{"status": "done"}"#,
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
        ),
        (
            json_request(
                "PUT",
                &format!("/tasks/{task}/status"),
                Some(&token),
                r#"{"status": "done"}"#,
            ),
            StatusCode::NOT_FOUND,
            "task_not_found",
        ),
        (
            json_request("POST", "/projects", None, r#"{"name": "A"}"#),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            json_request("POST", "/projects", Some("not.a.token"), r#"{"name": "A"}"#),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
    ];
    for (request, status, code) in cases {
        let what = format!("{} {}", request.method(), request.uri());
        let reply = send(&app, request).await;
        assert_eq!(reply.status, status, "{what}: {}", reply.body);
        assert_eq!(reply.code(), code, "{what}: {}", reply.body);
        assert!(
            reply.body["error"]["message"].is_string(),
            "{what}: {}",
            reply.body
        );
    }
}

#[tokio::test]
async fn the_documentation_describes_the_commands_and_bearer_auth() {
    let (app, _db) = app().await;
    let document = send(
        &app,
        Request::get("/openapi.json")
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(document.status, StatusCode::OK);
    assert_eq!(
        document.body["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert!(document.body["paths"]["/tasks/{id}/status"]["put"].is_object());
    let ui = app
        .clone()
        .oneshot(Request::get("/docs/").body(Body::empty()).expect("request"))
        .await
        .expect("response");
    assert_eq!(ui.status(), StatusCode::OK);
}

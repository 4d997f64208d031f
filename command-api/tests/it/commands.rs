//! End-to-end tests of the command API over HTTP against the real PostgreSQL and Redis: every command a
//! user can send, every refusal, and the events each accepted command left in the event store.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use service_runtime::settings::Secret;
use tasktrail_command_api::settings::Settings;
use tasktrail_command_api::startup;
use test_support::{TestDatabase, spawn, unique_name};

use crate::helpers::{PASSWORD, SECRET, registration, settings};

struct TestApp {
    url: String,
    db: TestDatabase,
    http: reqwest::Client,
}

struct Reply {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Reply {
    fn id(&self) -> String {
        self.body["id"]
            .as_str()
            .expect("reply has an id")
            .to_owned()
    }
    fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_default()
    }
}

impl TestApp {
    async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    async fn spawn_with(configure: impl FnOnce(&mut Settings)) -> Self {
        let db = TestDatabase::new().await;
        let mut settings = settings(&db);
        configure(&mut settings);
        let url = spawn(
            startup::build(settings)
                .await
                .expect("build the command API"),
        );
        Self {
            url,
            db,
            http: reqwest::Client::new(),
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut request = self.http.request(method, format!("{}{path}", self.url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"))
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    async fn post(&self, path: &str, token: &str, body: Value) -> Reply {
        self.send(Method::POST, path, Some(token), Some(body)).await
    }

    async fn put(&self, path: &str, token: &str, body: Value) -> Reply {
        self.send(Method::PUT, path, Some(token), Some(body)).await
    }

    /// Registers `username` and returns (user id, token).
    async fn user(&self, username: &str) -> (String, String) {
        let registered = self
            .send(
                Method::POST,
                "/auth/register",
                None,
                Some(registration(username)),
            )
            .await;
        assert_eq!(
            registered.status,
            StatusCode::CREATED,
            "{}",
            registered.body
        );
        let token = self.token(username, PASSWORD).await;
        (registered.id(), token)
    }

    async fn token(&self, username: &str, password: &str) -> String {
        let reply = self
            .send(
                Method::POST,
                "/auth/token",
                None,
                Some(json!({ "username": username, "password": password })),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        reply.body["access_token"]
            .as_str()
            .expect("token")
            .to_owned()
    }

    /// (sequence, event_type, metadata) of one aggregate's events, in order.
    async fn events(&self, aggregate_type: &str, id: &str) -> Vec<(i64, String, Value)> {
        sqlx::query_as::<_, (i64, String, sqlx::types::Json<Value>)>(
            "SELECT sequence, event_type, metadata::jsonb FROM events
             WHERE aggregate_type = $1 AND aggregate_id = $2 ORDER BY sequence",
        )
        .bind(aggregate_type)
        .bind(id)
        .fetch_all(&self.db.pool)
        .await
        .expect("events")
        .into_iter()
        .map(|(sequence, event_type, metadata)| (sequence, event_type, metadata.0))
        .collect()
    }

    /// Registers `username` and makes them an admin in the write-side registry (there is no
    /// self-service way to the first admin); returns (user id, token).
    async fn admin(&self, username: &str) -> (String, String) {
        let (id, token) = self.user(username).await;
        sqlx::query("UPDATE user_registry SET role = 'admin' WHERE user_id = $1::uuid")
            .bind(&id)
            .execute(&self.db.pool)
            .await
            .expect("promote in the registry");
        (id, token)
    }

    async fn event_types(&self, aggregate_type: &str, id: &str) -> Vec<String> {
        self.events(aggregate_type, id)
            .await
            .into_iter()
            .map(|(_, t, _)| t)
            .collect()
    }
}

#[tokio::test]
async fn a_user_registers_plans_a_project_and_works_a_task_through_to_deletion() {
    let app = TestApp::spawn().await;
    let (ada, ada_token) = app.user("ada").await;
    let (bob, _) = app.user("bob").await;

    let project = app
        .post(
            "/projects",
            &ada_token,
            json!({ "name": "Launch", "description": "v1", "deadline": "2026-12-31" }),
        )
        .await;
    assert_eq!(project.status, StatusCode::CREATED, "{}", project.body);
    assert_eq!(project.body["version"], 1);
    let project_id = project.id();
    let location = project.headers["location"].to_str().expect("location");
    assert!(
        location.ends_with(&format!("/projects/{project_id}")),
        "{location}"
    );

    let member = app
        .post(
            &format!("/projects/{project_id}/members"),
            &ada_token,
            json!({ "user_id": bob }),
        )
        .await;
    assert_eq!(
        (member.status, member.body["version"].clone()),
        (StatusCode::OK, json!(2))
    );

    let task = app
        .post(
            &format!("/projects/{project_id}/tasks"),
            &ada_token,
            json!({ "title": "Write the README", "description": "all of it", "due_date": "2026-12-01" }),
        )
        .await;
    assert_eq!(task.status, StatusCode::CREATED, "{}", task.body);
    let task_id = task.id();

    let assigned = app
        .put(
            &format!("/tasks/{task_id}/assignee"),
            &ada_token,
            json!({ "assignee_id": bob }),
        )
        .await;
    assert_eq!(assigned.status, StatusCode::OK, "{}", assigned.body);
    let started = app
        .put(
            &format!("/tasks/{task_id}/status"),
            &ada_token,
            json!({ "status": "in_progress" }),
        )
        .await;
    assert_eq!(started.status, StatusCode::OK, "{}", started.body);
    let done = app
        .put(
            &format!("/tasks/{task_id}"),
            &ada_token,
            json!({ "status": "done" }),
        )
        .await;
    assert_eq!(
        (done.status, done.body["version"].clone()),
        (StatusCode::OK, json!(4))
    );
    let edited = app
        .send(
            Method::PATCH,
            &format!("/tasks/{task_id}"),
            Some(&ada_token),
            Some(json!({ "title": "Write the docs" })),
        )
        .await;
    assert_eq!(edited.status, StatusCode::OK, "{}", edited.body);
    let due = app
        .put(
            &format!("/tasks/{task_id}/due-date"),
            &ada_token,
            json!({ "due_date": null }),
        )
        .await;
    assert_eq!(due.status, StatusCode::OK, "{}", due.body);
    let deleted = app
        .send(
            Method::DELETE,
            &format!("/tasks/{task_id}"),
            Some(&ada_token),
            None,
        )
        .await;
    assert_eq!(
        (deleted.status, deleted.body["version"].clone()),
        (StatusCode::OK, json!(7))
    );
    let after = app
        .put(
            &format!("/tasks/{task_id}/status"),
            &ada_token,
            json!({ "status": "pending" }),
        )
        .await;
    assert_eq!(after.status, StatusCode::NOT_FOUND, "{}", after.body);

    // Seed aliases: a goal with only a description, and a task in it with only a description.
    let goal = app
        .post("/goals", &ada_token, json!({ "description": "Learn Rust" }))
        .await;
    assert_eq!(goal.status, StatusCode::CREATED, "{}", goal.body);
    let seed_task = app
        .post(
            &format!("/goals/{}/tasks", goal.id()),
            &ada_token,
            json!({ "description": "read the book", "assignee_id": ada }),
        )
        .await;
    assert_eq!(seed_task.status, StatusCode::CREATED, "{}", seed_task.body);
    let seed_c = app
        .post(
            "/tasks",
            &ada_token,
            json!({ "project_id": project_id, "title": "Seed C task", "description": "" }),
        )
        .await;
    assert_eq!(seed_c.status, StatusCode::CREATED, "{}", seed_c.body);

    // Exactly the expected events, with the request's metadata.
    assert_eq!(app.event_types("user", &ada).await, ["UserRegistered"]);
    assert_eq!(
        app.event_types("project", &project_id).await,
        ["ProjectCreated", "ProjectMemberAdded"]
    );
    assert_eq!(
        app.event_types("task", &task_id).await,
        [
            "TaskCreated",
            "TaskAssigned",
            "TaskStatusChanged",
            "TaskStatusChanged",
            "TaskEdited",
            "TaskDueDateChanged",
            "TaskDeleted"
        ]
    );
    for (_, _, metadata) in app.events("task", &task_id).await {
        assert_eq!(metadata["user_id"], json!(ada), "{metadata}");
        assert!(
            !metadata["request_id"]
                .as_str()
                .unwrap_or_default()
                .is_empty(),
            "{metadata}"
        );
        assert!(
            !metadata["correlation_id"]
                .as_str()
                .unwrap_or_default()
                .is_empty(),
            "{metadata}"
        );
    }
    let stamped: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE event_id IS NOT NULL AND global_position IS NOT NULL AND recorded_at IS NOT NULL",
    )
    .fetch_one(&app.db.pool)
    .await
    .expect("count");
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&app.db.pool)
        .await
        .expect("count");
    assert_eq!((stamped, total), (14, 14));
}

#[tokio::test]
async fn a_request_id_from_the_client_reaches_the_event_metadata() {
    let app = TestApp::spawn().await;
    let (_, token) = app.user("carol").await;
    let response = app
        .http
        .post(format!("{}/projects", app.url))
        .bearer_auth(&token)
        .header("x-request-id", "req-42")
        .header("x-correlation-id", "corr-7")
        .json(&json!({ "name": "Traced" }))
        .send()
        .await
        .expect("request");
    assert_eq!(response.headers()["x-request-id"], "req-42");
    let body: Value = response.json().await.expect("json");
    let events = app
        .events("project", body["id"].as_str().expect("id"))
        .await;
    assert_eq!(events[0].2["request_id"], "req-42");
    assert_eq!(events[0].2["correlation_id"], "corr-7");
}

#[tokio::test]
async fn bad_input_is_refused_with_a_clear_4xx() {
    let app = TestApp::spawn().await;
    let (_, token) = app.user("dave").await;
    let project = app
        .post("/projects", &token, json!({ "name": "P" }))
        .await
        .id();

    for (path, body, field) in [
        (
            "/auth/register",
            json!({"username": "x", "email": "x@example.com", "password": "12345678", "first_name": "a", "last_name": "b"}),
            "username",
        ),
        (
            "/auth/register",
            json!({"username": "xavier", "email": "nope", "password": "12345678", "first_name": "a", "last_name": "b"}),
            "email",
        ),
        (
            "/auth/register",
            json!({"username": "xavier", "email": "x@example.com", "password": "short", "first_name": "a", "last_name": "b"}),
            "password",
        ),
        (
            "/auth/register",
            json!({"username": "xavier", "email": "x@example.com", "password": "12345678", "first_name": "a", "last_name": "b", "age": 151}),
            "age",
        ),
    ] {
        let reply = app.send(Method::POST, path, None, Some(body)).await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            reply.body
        );
        assert_eq!(
            reply.body["error"]["details"]["field"], field,
            "{}",
            reply.body
        );
    }
    let unknown_field = app
        .post(
            "/projects",
            &token,
            json!({ "name": "P", "owner_id": "someone" }),
        )
        .await;
    assert_eq!(
        (unknown_field.status, unknown_field.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid")
    );
    let dollar = app
        .post(
            "/projects",
            &token,
            json!({ "name": "P", "description": { "$gt": "" } }),
        )
        .await;
    assert_eq!(
        dollar.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        dollar.body
    );
    assert!(
        dollar.body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains('$'),
        "{}",
        dollar.body
    );
    let bad_status = app
        .post(
            &format!("/projects/{project}/tasks"),
            &token,
            json!({ "title": "t" }),
        )
        .await
        .id();
    let reply = app
        .put(
            &format!("/tasks/{bad_status}/status"),
            &token,
            json!({ "status": "finished" }),
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reply.body
    );
    let empty_title = app
        .post(
            &format!("/projects/{project}/tasks"),
            &token,
            json!({ "title": "  " }),
        )
        .await;
    assert_eq!(
        empty_title.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        empty_title.body
    );

    let malformed = app
        .http
        .post(format!("{}/projects", app.url))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .expect("request");
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
    let huge = app
        .post(
            "/projects",
            &token,
            json!({ "name": "P", "description": "x".repeat(70 * 1024) }),
        )
        .await;
    assert_eq!(huge.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", huge.body);
    let no_route = app
        .send(Method::POST, "/nothing-here", Some(&token), Some(json!({})))
        .await;
    assert_eq!(
        (no_route.status, no_route.code()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let bad_id = app
        .put(
            "/tasks/not-a-uuid/status",
            &token,
            json!({ "status": "done" }),
        )
        .await;
    assert_eq!(
        (bad_id.status, bad_id.code()),
        (StatusCode::BAD_REQUEST, "invalid_id"),
        "{}",
        bad_id.body
    );
}

#[tokio::test]
async fn refusals_map_to_403_404_and_409() {
    let app = TestApp::spawn().await;
    let (_, owner) = app.user("erin").await;
    let (frank, stranger) = app.user("frank").await;
    let project = app
        .post("/projects", &owner, json!({ "name": "Private" }))
        .await
        .id();
    let task = app
        .post(
            &format!("/projects/{project}/tasks"),
            &owner,
            json!({ "title": "t" }),
        )
        .await
        .id();

    // Not a member: 403.
    let forbidden = app
        .put(
            &format!("/tasks/{task}/status"),
            &stranger,
            json!({ "status": "done" }),
        )
        .await;
    assert_eq!(
        (forbidden.status, forbidden.code()),
        (StatusCode::FORBIDDEN, "forbidden"),
        "{}",
        forbidden.body
    );
    let forbidden = app
        .post(
            &format!("/projects/{project}/tasks"),
            &stranger,
            json!({ "title": "t" }),
        )
        .await;
    assert_eq!(
        forbidden.status,
        StatusCode::FORBIDDEN,
        "{}",
        forbidden.body
    );
    // Assignee not a member: 422.
    let not_member = app
        .put(
            &format!("/tasks/{task}/assignee"),
            &owner,
            json!({ "assignee_id": frank }),
        )
        .await;
    assert_eq!(
        not_member.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        not_member.body
    );
    // A regular user cannot create users or change roles: 403.
    let reply = app
        .put(
            &format!("/users/{frank}/role"),
            &stranger,
            json!({ "role": "admin" }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.body);

    // Unknown: 404.
    let unknown = uuid::Uuid::now_v7();
    let reply = app
        .put(
            &format!("/tasks/{unknown}/status"),
            &owner,
            json!({ "status": "done" }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.body);
    let reply = app
        .post(
            &format!("/projects/{unknown}/tasks"),
            &owner,
            json!({ "title": "t" }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.body);

    // Stale expected version: 409, and nothing was written.
    let stale = app
        .http
        .put(format!("{}/tasks/{task}/status", app.url))
        .bearer_auth(&owner)
        .header("if-match", "\"7\"")
        .json(&json!({ "status": "in_progress" }))
        .send()
        .await
        .expect("request");
    assert_eq!(stale.status(), StatusCode::CONFLICT);
    let body: Value = stale.json().await.expect("json");
    assert_eq!(body["error"]["code"], "version_conflict", "{body}");
    assert_eq!(body["error"]["details"]["current_version"], 1, "{body}");
    let fresh = app
        .send(
            Method::PUT,
            &format!("/tasks/{task}/status?expected_version=1"),
            Some(&owner),
            Some(json!({ "status": "in_progress" })),
        )
        .await;
    assert_eq!(fresh.status, StatusCode::OK, "{}", fresh.body);
    // Disallowed transition and unchanged status: 409.
    let same = app
        .put(
            &format!("/tasks/{task}/status"),
            &owner,
            json!({ "status": "in_progress" }),
        )
        .await;
    assert_eq!(same.status, StatusCode::CONFLICT, "{}", same.body);
    // Duplicate username (sequential): 409.
    let again = app
        .send(Method::POST, "/register", None, Some(json!({
            "username": "ERIN", "email": "other@example.com", "password": "12345678", "first_name": "a", "last_name": "b"
        })))
        .await;
    assert_eq!(
        (again.status, again.code()),
        (StatusCode::CONFLICT, "username_taken"),
        "{}",
        again.body
    );
    assert_eq!(
        app.event_types("task", &task).await,
        ["TaskCreated", "TaskStatusChanged"]
    );
}

#[tokio::test]
async fn two_registrations_of_one_username_at_once_one_wins_the_other_gets_409() {
    let app = TestApp::spawn().await;
    let attempts = (0..8).map(|n| {
        app.send(
            Method::POST,
            "/auth/register",
            None,
            Some(json!({
                "username": "grace", "email": format!("grace{n}@example.com"),
                "password": "12345678", "first_name": "Grace", "last_name": "Hopper",
            })),
        )
    });
    let replies = futures::future::join_all(attempts).await;
    let statuses: Vec<_> = replies.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::CREATED)
            .count(),
        1,
        "{statuses:?}"
    );
    assert!(
        replies.iter().all(|r| r.status == StatusCode::CREATED
            || (r.status == StatusCode::CONFLICT && r.code() == "username_taken")),
        "{:?}",
        replies.iter().map(|r| &r.body).collect::<Vec<_>>()
    );
    let registered: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'UserRegistered'")
            .fetch_one(&app.db.pool)
            .await
            .expect("count");
    assert_eq!(registered, 1);
}

#[tokio::test]
async fn fifty_concurrent_status_changes_never_lose_an_update_nor_fail_with_5xx() {
    let app = TestApp::spawn().await;
    let (_, token) = app.user("heidi").await;
    let project = app
        .post("/projects", &token, json!({ "name": "Busy" }))
        .await
        .id();
    let task = app
        .post(
            &format!("/projects/{project}/tasks"),
            &token,
            json!({ "title": "contended" }),
        )
        .await
        .id();

    let statuses = ["in_progress", "pending", "done", "in_progress", "cancelled"];
    let path = format!("/tasks/{task}/status");
    let requests = (0..50).map(|n| {
        app.put(
            &path,
            &token,
            json!({ "status": statuses[n % statuses.len()] }),
        )
    });
    let replies = futures::future::join_all(requests).await;
    let accepted = replies.iter().filter(|r| r.status.is_success()).count();
    assert!(
        replies
            .iter()
            .all(|r| r.status.is_success() || r.status == StatusCode::CONFLICT),
        "{:?}",
        replies
            .iter()
            .map(|r| (r.status, &r.body))
            .collect::<Vec<_>>()
    );
    assert!(accepted >= 1);
    let events = app.events("task", &task).await;
    let final_version = events.last().map(|e| e.0).unwrap_or_default();
    assert_eq!(
        final_version,
        1 + accepted as i64,
        "one TaskCreated plus one event per 2xx"
    );
}

fn forged(claims: &Value, header: &jsonwebtoken::Header, secret: &str) -> String {
    jsonwebtoken::encode(
        header,
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("encode")
}

#[tokio::test]
async fn bad_expired_revoked_and_unsigned_tokens_are_401() {
    let app = TestApp::spawn().await;
    let (ivan, token) = app.user("ivan").await;
    let create = |token: String| {
        let app = &app;
        async move { app.post("/projects", &token, json!({ "name": "P" })).await }
    };
    assert_eq!(create(token.clone()).await.status, StatusCode::CREATED);

    let now = chrono::Utc::now().timestamp();
    let claims = |exp: i64| json!({ "sub": ivan, "role": "user", "iat": now - 10, "exp": exp, "jti": uuid::Uuid::new_v4(), "iss": "tasktrail" });
    let hs256 = jsonwebtoken::Header::default();
    let wrong_signature = forged(
        &claims(now + 600),
        &hs256,
        "another-secret-that-is-long-enough-too!!",
    );
    let expired = forged(&claims(now - 120), &hs256, SECRET);
    let unsigned = {
        use base64::Engine as _;
        let encode = |text: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text);
        format!(
            "{}.{}.",
            encode(r#"{"alg":"none","typ":"JWT"}"#),
            encode(&claims(now + 600).to_string())
        )
    };
    for (what, bad) in [
        ("wrong signature", wrong_signature),
        ("expired", expired),
        ("alg none", unsigned),
        ("garbage", "x.y.z".to_owned()),
    ] {
        let reply = create(bad).await;
        assert_eq!(
            (reply.status, reply.code()),
            (StatusCode::UNAUTHORIZED, "unauthorized"),
            "{what}: {}",
            reply.body
        );
    }
    let missing = app
        .send(
            Method::POST,
            "/projects",
            None,
            Some(json!({ "name": "P" })),
        )
        .await;
    assert_eq!(missing.status, StatusCode::UNAUTHORIZED);

    let logout = app
        .send(Method::POST, "/auth/logout", Some(&token), None)
        .await;
    assert_eq!(logout.status, StatusCode::NO_CONTENT, "{}", logout.body);
    assert_eq!(
        create(token.clone()).await.status,
        StatusCode::UNAUTHORIZED,
        "revoked at once"
    );
    let fresh = app.token("ivan", "correct horse").await;
    assert_eq!(create(fresh).await.status, StatusCode::CREATED);

    let wrong_password = app
        .send(
            Method::POST,
            "/login",
            None,
            Some(json!({ "username": "ivan", "password": "not the password" })),
        )
        .await;
    assert_eq!(wrong_password.status, StatusCode::UNAUTHORIZED);
    let form = app
        .http
        .post(format!("{}/token", app.url))
        .form(&[
            ("grant_type", "password"),
            ("username", "ivan"),
            ("password", "correct horse"),
        ])
        .send()
        .await
        .expect("form login");
    assert_eq!(form.status(), StatusCode::OK);
    let body: Value = form.json().await.expect("json");
    assert_eq!(body["token_type"], "bearer");
    assert!(body["expires_in"].as_u64().unwrap_or_default() > 0);
}

#[tokio::test]
async fn the_101st_request_in_a_minute_is_429_with_retry_after() {
    let app = TestApp::spawn_with(|settings| {
        settings.rate_limit.requests = 5;
        settings.rate_limit.window_secs = 3600;
    })
    .await;
    let (_, token) = app.user("judy").await;
    let mut last = None;
    for _ in 0..6 {
        last = Some(app.post("/projects", &token, json!({ "name": "P" })).await);
    }
    let last = last.expect("six replies");
    assert_eq!(
        (last.status, last.code()),
        (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
        "{}",
        last.body
    );
    let retry_after: u64 = last.headers["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=3600).contains(&retry_after), "{retry_after}");
    // Health and docs are never limited.
    let health = app
        .http
        .get(format!("{}/healthz", app.url))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status(), StatusCode::OK);
}

#[tokio::test]
async fn openapi_and_swagger_ui_are_served_offline() {
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
    for path in [
        "/auth/token",
        "/projects",
        "/projects/{id}/tasks",
        "/tasks/{id}/status",
        "/users/{id}",
    ] {
        assert!(
            spec["paths"][path].is_object(),
            "{path} missing from the OpenAPI document"
        );
    }
    let docs = app
        .http
        .get(format!("{}/docs/", app.url))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("docs");
    assert_eq!(docs.status(), StatusCode::OK);
    assert!(
        docs.text().await.expect("html").contains("swagger"),
        "Swagger UI page"
    );
}

#[tokio::test]
async fn an_accepted_command_reaches_kafka_through_the_hosted_relay() {
    use futures::StreamExt as _;
    use rdkafka::Message as _;
    use rdkafka::consumer::Consumer as _;

    let prefix = unique_name("relaytest");
    let app = TestApp::spawn_with(|settings| settings.kafka.topic_prefix = prefix.clone()).await;
    let (_, token) = app.user("kim").await;
    let project = app
        .post("/projects", &token, json!({ "name": "Streamed" }))
        .await
        .id();

    let consumer = test_support::kafka_consumer("relaytest_group");
    let topic = format!("{prefix}.project");
    test_support::eventually(
        test_support::EVENTUALLY,
        "the relay to create its topics",
        || async { consumer.subscribe(&[&topic]).ok() },
    )
    .await;
    let envelope: Value = {
        let mut stream = consumer.stream();
        let message = tokio::time::timeout(Duration::from_secs(60), stream.next())
            .await
            .expect("the project's event within 60 s")
            .expect("stream open")
            .expect("message");
        assert_eq!(message.key(), Some(project.as_bytes()));
        serde_json::from_slice(message.payload().expect("payload")).expect("JSON envelope")
    };
    test_support::drop_within(consumer, Duration::from_secs(10));
    assert_eq!(envelope["event_type"], "ProjectCreated", "{envelope}");
    assert_eq!(envelope["aggregate_id"], json!(project), "{envelope}");
    assert_eq!(envelope["sequence"], 1, "{envelope}");
}

#[tokio::test]
async fn marking_notifications_read_moves_my_watermark_forward_only() {
    let app = TestApp::spawn().await;
    let (id, token) = app.user("reader").await;
    let up_to = "2026-01-02T03:04:05Z";
    let marked = app
        .post("/notifications/read", &token, json!({ "up_to": up_to }))
        .await;
    assert_eq!(marked.status, StatusCode::OK, "{}", marked.body);
    assert_eq!(
        (marked.id(), &marked.body["version"]),
        (id.clone(), &json!(2))
    );
    let events = app.events("user", &id).await;
    assert_eq!(events[1].1, "UserNotificationsRead");
    let payload: Value = sqlx::query_scalar(
        "SELECT payload::jsonb FROM events WHERE aggregate_id = $1 AND sequence = 2",
    )
    .bind(&id)
    .fetch_one(&app.db.pool)
    .await
    .expect("payload");
    assert_eq!(
        payload,
        json!({ "UserNotificationsRead": { "up_to": "2026-01-02T03:04:05Z" } })
    );

    // An earlier watermark changes nothing; the default ("now") moves it on.
    let earlier = app
        .post(
            "/notifications/read",
            &token,
            json!({ "up_to": "2025-01-01T00:00:00Z" }),
        )
        .await;
    assert_eq!(
        (earlier.status, &earlier.body["version"]),
        (StatusCode::OK, &json!(2))
    );
    let now = app.post("/notifications/read", &token, json!({})).await;
    assert_eq!(
        (now.status, &now.body["version"]),
        (StatusCode::OK, &json!(3))
    );
    // A time in the future counts as now: it cannot mark future notifications read.
    let future = app
        .post(
            "/notifications/read",
            &token,
            json!({ "up_to": "2999-01-01T00:00:00Z" }),
        )
        .await;
    assert_eq!(future.status, StatusCode::OK);
    let latest: Value = sqlx::query_scalar(
        "SELECT payload::jsonb FROM events WHERE aggregate_id = $1 ORDER BY sequence DESC LIMIT 1",
    )
    .bind(&id)
    .fetch_one(&app.db.pool)
    .await
    .expect("payload");
    let stored = latest["UserNotificationsRead"]["up_to"]
        .as_str()
        .expect("a time")
        .to_owned();
    assert!(stored.as_str() < "2999", "clamped to now: {stored}");

    for bad in [
        json!({ "up_to": "yesterday" }),
        json!({ "up_to": 5 }),
        json!({ "until": up_to }),
    ] {
        let refused = app.post("/notifications/read", &token, bad.clone()).await;
        assert_eq!(
            refused.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{bad}: {}",
            refused.body
        );
    }
}

// ---- Issue 15: one test per finding (numbered as in the issue) ----

/// Finding 1: no shared default secret. Without a key the API refuses to start and says how to
/// make one; a token signed with the secret that used to ship in the source is refused.
#[tokio::test]
async fn finding_01_without_a_signing_key_the_service_refuses_to_start() {
    // Given settings with no secret
    let db = TestDatabase::new().await;
    let mut settings = settings(&db);
    settings.auth.jwt_secret = Secret::new("");
    // When the API is built, then it refuses, naming the variable and the command
    let error = startup::build(settings)
        .await
        .expect_err("no secret, no start");
    let message = format!("{error:#}");
    assert!(
        message.contains("TASKTRAIL_AUTH__JWT_SECRET")
            && message.contains("openssl rand -base64 48"),
        "{message}"
    );
    // And a running API refuses an admin token forged with the old published secret
    let app = TestApp::spawn().await;
    let now = chrono::Utc::now().timestamp();
    let forged_admin = forged(
        &json!({ "sub": uuid::Uuid::new_v4(), "role": "admin", "iat": now, "nbf": now,
                 "exp": now + 600, "jti": uuid::Uuid::new_v4(), "iss": "tasktrail" }),
        &jsonwebtoken::Header::default(),
        "tasktrail-dev-only-jwt-secret-never-use-in-production",
    );
    let reply = app.post("/users", &forged_admin, json!({})).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.body);
}

/// Finding 2: deactivation, a password change and a role change end earlier tokens at once;
/// the role that authorizes is the current one.
#[tokio::test]
async fn finding_02_deactivation_password_and_role_changes_end_earlier_tokens() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.admin("root").await;
    let create = |token: String| {
        let app = &app;
        async move {
            app.post("/projects", &token, json!({ "name": "P" }))
                .await
                .status
        }
    };

    // Given a user with a working token, when they are deactivated, then it stops at once
    let (kim, kim_token) = app.user("kim").await;
    assert_eq!(create(kim_token.clone()).await, StatusCode::CREATED);
    let reply = app
        .send(Method::DELETE, &format!("/users/{kim}"), Some(&admin), None)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(create(kim_token).await, StatusCode::UNAUTHORIZED);

    // Given a user who changes their password, then the earlier token stops, the new one works
    let (lee, lee_token) = app.user("lee").await;
    let reply = app
        .put(
            &format!("/users/{lee}/password"),
            &lee_token,
            json!({ "password": "a brand new one", "current_password": "correct horse" }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(create(lee_token).await, StatusCode::UNAUTHORIZED);
    let fresh = app.token("lee", "a brand new one").await;
    assert_eq!(create(fresh).await, StatusCode::CREATED);

    // Given an admin who is demoted, then their earlier token stops, and with a new one they
    // cannot promote anyone (their role is the current one)
    let (max, max_token) = app.admin("max").await;
    let (ned, _) = app.user("ned").await;
    // (max is an admin in the registry only; make the aggregate agree, then demote for real)
    for role in ["admin", "user"] {
        let reply = app
            .put(
                &format!("/users/{max}/role"),
                &admin,
                json!({ "role": role }),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    }
    let promote_ned = |token: String| {
        let app = &app;
        let ned = ned.clone();
        async move {
            app.put(
                &format!("/users/{ned}/role"),
                &token,
                json!({ "role": "admin" }),
            )
            .await
            .status
        }
    };
    assert_eq!(promote_ned(max_token).await, StatusCode::UNAUTHORIZED);
    let demoted = app.token("max", "correct horse").await;
    assert_eq!(promote_ned(demoted).await, StatusCode::FORBIDDEN);
}

/// Finding 3: changing your own password needs the current one; an admin's reset of another
/// user's does not, and its event's metadata says so.
#[tokio::test]
async fn finding_03_a_password_change_needs_the_current_password_an_admin_reset_is_recorded() {
    let app = TestApp::spawn().await;
    let (oli, token) = app.user("oli").await;
    let path = format!("/users/{oli}/password");
    // Without the current password: 422 naming the field
    let reply = app
        .put(&path, &token, json!({ "password": "new password!" }))
        .await;
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reply.body
    );
    assert_eq!(reply.body["error"]["details"]["field"], "current_password");
    // With a wrong one: 403, and nothing changed
    let reply = app
        .put(
            &path,
            &token,
            json!({ "password": "new password!", "current_password": "a guess!" }),
        )
        .await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::FORBIDDEN, "wrong_password")
    );
    assert_eq!(app.event_types("user", &oli).await, ["UserRegistered"]);
    // An admin resets it without the current password; the metadata records it
    let (_, admin) = app.admin("boss").await;
    let reply = app
        .put(&path, &admin, json!({ "password": "reset by boss" }))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let events = app.events("user", &oli).await;
    assert_eq!(events[1].1, "UserPasswordChanged");
    assert_eq!(
        events[1].2["action"], "admin_password_reset",
        "{}",
        events[1].2
    );
    app.token("oli", "reset by boss").await;
}

/// Finding 4: failed logins are throttled per account and per client, whatever token is
/// attached; a success resets the account's count.
#[tokio::test]
async fn finding_04_login_throttling_holds_per_account_and_per_client_whatever_token() {
    let app = TestApp::spawn_with(|settings| {
        settings.rate_limit.login_failures_per_account = 3;
        settings.rate_limit.login_failures_per_client = 8;
    })
    .await;
    let (_, pat) = app.user("pat").await;
    let (_, quinn) = app.user("quinn").await;
    let login = |username: &'static str, password: &'static str, token: Option<String>| {
        let app = &app;
        async move {
            app.send(
                Method::POST,
                "/auth/token",
                token.as_deref(),
                Some(json!({ "username": username, "password": password })),
            )
            .await
        }
    };
    // A success resets: two failures, a success, two failures still pass through to 401
    for _ in 0..2 {
        assert_eq!(
            login("pat", "wrong!!!", None).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        login("pat", "correct horse", None).await.status,
        StatusCode::OK
    );
    // Three wrong passwords against pat, each with a different user's token attached
    for token in [Some(pat.clone()), Some(quinn.clone()), None] {
        assert_eq!(
            login("pat", "wrong!!!", token).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    // Then even the right password is refused with 429 and Retry-After
    let refused = login("pat", "correct horse", Some(quinn.clone())).await;
    assert_eq!(
        (refused.status, refused.code()),
        (StatusCode::TOO_MANY_REQUESTS, "rate_limited")
    );
    let retry: u64 = refused.headers["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("secs");
    assert!((1..=900).contains(&retry), "{retry}");
    // Another account is not locked by pat's failures…
    assert_eq!(
        login("quinn", "correct horse", None).await.status,
        StatusCode::OK
    );
    // …but this client is, after its eighth failure (five so far), for every account
    for user in ["nobody1", "nobody2", "nobody3"] {
        assert_eq!(
            login(user, "wrong!!!", None).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    let refused = login("quinn", "correct horse", None).await;
    assert_eq!(
        refused.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        refused.body
    );
}

/// Findings 5 and 6: hostile text is refused with 422 naming the field, and never reaches
/// PostgreSQL as a NUL (which answered 503).
#[tokio::test]
async fn finding_05_06_hostile_text_is_422_naming_the_field_never_503() {
    let app = TestApp::spawn().await;
    let (_, token) = app.user("rae").await;
    let register = |email: &str| {
        json!({ "username": "sam", "email": email, "password": "12345678",
                "first_name": "S", "last_name": "T" })
    };
    for email in [
        "sam\u{0}@example.com",
        "sam@exa\u{0}mple.com",
        "sam\u{1b}[2J@example.com",
        "sam\u{202E}moc.elpmaxe@example.com",
        "<script>alert(1)</script>@example.com",
        "\"<b>\"@example.com",
    ] {
        let reply = app
            .send(Method::POST, "/auth/register", None, Some(register(email)))
            .await;
        assert_eq!(
            (
                reply.status,
                reply.body["error"]["details"]["field"].as_str()
            ),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("email")),
            "{email:?}: {}",
            reply.body
        );
    }
    // A NUL at login is a wrong login, not a database error
    for (username, password) in [("rae\u{0}", "correct horse"), ("rae", "correct\u{0}horse")] {
        let reply = app
            .send(
                Method::POST,
                "/auth/token",
                None,
                Some(json!({ "username": username, "password": password })),
            )
            .await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.body);
    }
    let project = app
        .post("/projects", &token, json!({ "name": "P" }))
        .await
        .id();
    for (path, body, field) in [
        ("/projects".to_owned(), json!({ "name": "\u{0}" }), "name"),
        (
            "/projects".to_owned(),
            json!({ "name": "ok", "description": "a\u{0}b" }),
            "description",
        ),
        (
            format!("/projects/{project}/tasks"),
            json!({ "title": "\u{0}" }),
            "title",
        ),
        (
            format!("/projects/{project}/tasks"),
            json!({ "title": "a\u{202E}b" }),
            "title",
        ),
    ] {
        let reply = app.post(&path, &token, body).await;
        assert_eq!(
            (
                reply.status,
                reply.body["error"]["details"]["field"].as_str()
            ),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(field)),
            "{path}: {}",
            reply.body
        );
    }
}

/// Finding 7: a client's `X-Request-Id` is kept only in a safe shape, else replaced.
#[tokio::test]
async fn finding_07_an_unsafe_request_id_is_replaced_before_it_is_stored() {
    let app = TestApp::spawn().await;
    let (_, token) = app.user("tess").await;
    for (sent, kept) in [("<img src=x onerror=alert(1)>", false), ("req-7.a_B", true)] {
        let response = app
            .http
            .post(format!("{}/projects", app.url))
            .bearer_auth(&token)
            .header("x-request-id", sent)
            .header("x-correlation-id", sent)
            .json(&json!({ "name": "Traced" }))
            .send()
            .await
            .expect("request");
        let echoed = response.headers()["x-request-id"]
            .to_str()
            .expect("ascii")
            .to_owned();
        let body: Value = response.json().await.expect("json");
        let events = app
            .events("project", body["id"].as_str().expect("id"))
            .await;
        let stored = events[0].2["request_id"]
            .as_str()
            .expect("request id")
            .to_owned();
        let correlation = events[0].2["correlation_id"]
            .as_str()
            .expect("correlation")
            .to_owned();
        if kept {
            assert_eq!(
                (stored.as_str(), echoed.as_str(), correlation.as_str()),
                (sent, sent, sent)
            );
        } else {
            assert!(uuid::Uuid::parse_str(&stored).is_ok(), "{stored}");
            assert_eq!(echoed, stored);
            assert_eq!(
                correlation, stored,
                "an unsafe correlation id falls back to the request id"
            );
        }
    }
}

/// Finding 8: `nosniff` everywhere, `no-store` on authenticated answers (and refusals).
#[tokio::test]
async fn finding_08_nosniff_and_no_store_headers() {
    let app = TestApp::spawn().await;
    let (_, token) = app.user("uma").await;
    let ok = app.post("/projects", &token, json!({ "name": "P" })).await;
    let refused = app
        .send(Method::POST, "/projects", None, Some(json!({})))
        .await;
    let missing = app.send(Method::POST, "/nothing", None, None).await;
    for reply in [&ok, &refused, &missing] {
        assert_eq!(reply.headers["x-content-type-options"], "nosniff");
        assert_eq!(reply.headers["cache-control"], "no-store");
    }
    // CORS is off by default: no allow-origin for a foreign origin
    let preflight = app
        .http
        .request(Method::OPTIONS, format!("{}/projects", app.url))
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .expect("preflight");
    assert!(
        preflight
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    // …and an allow-listed origin gets it
    let cors = TestApp::spawn_with(|settings| {
        settings.http.cors_allowed_origins = "https://app.example".to_owned();
    })
    .await;
    let preflight = cors
        .http
        .request(Method::OPTIONS, format!("{}/projects", cors.url))
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .expect("preflight");
    assert_eq!(
        preflight.headers()["access-control-allow-origin"],
        "https://app.example"
    );
}

/// Finding 10: `nbf` enforced, `exp` bounded by `iat` + TTL, and `sub` must be an active user.
#[tokio::test]
async fn finding_10_nbf_exp_bound_and_unknown_sub_are_401() {
    let app = TestApp::spawn().await;
    let (wes, _) = app.user("wes").await;
    let now = chrono::Utc::now().timestamp();
    let claims = |sub: &str, nbf: i64, exp: i64| {
        json!({ "sub": sub, "role": "user", "iat": now, "nbf": nbf, "exp": exp,
                "jti": uuid::Uuid::new_v4(), "iss": "tasktrail" })
    };
    let hs256 = jsonwebtoken::Header::default();
    let ghost = uuid::Uuid::new_v4().to_string();
    for (what, claims) in [
        ("nbf in an hour", claims(&wes, now + 3600, now + 3600)),
        ("exp in 9999", claims(&wes, now, 253_402_300_799)),
        ("a sub that never existed", claims(&ghost, now, now + 600)),
    ] {
        let token = forged(&claims, &hs256, SECRET);
        let reply = app.post("/projects", &token, json!({ "name": "P" })).await;
        assert_eq!(
            reply.status,
            StatusCode::UNAUTHORIZED,
            "{what}: {}",
            reply.body
        );
    }
    let fine = forged(&claims(&wes, now, now + 600), &hs256, SECRET);
    let reply = app.post("/projects", &fine, json!({ "name": "P" })).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
}

/// Finding 11: the OpenAPI document lists the error statuses with the error schema, enums for
/// status and role, `If-Match`; a malformed path id is 400 `invalid_id` (as on the query API).
#[tokio::test]
async fn finding_11_the_openapi_document_tells_the_truth() {
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
        for (method, operation) in item.as_object().expect("item") {
            if !["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                continue;
            }
            operations += 1;
            for status in [
                "400", "401", "403", "404", "409", "413", "415", "422", "429", "503",
            ] {
                assert_eq!(
                    operation["responses"][status]["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/Error",
                    "{method} {path} {status}"
                );
            }
            if method != "post" && path.contains("{id}") {
                let documented = operation["parameters"].as_array().is_some_and(|ps| {
                    ps.iter()
                        .any(|p| p["name"] == "If-Match" && p["in"] == "header")
                });
                assert!(documented, "{method} {path}: If-Match");
            }
        }
    }
    assert!(operations >= 20, "{operations}");
    let schemas = &spec["components"]["schemas"];
    assert_eq!(
        schemas["ChangeStatusRequest"]["properties"]["status"]["enum"],
        json!(["pending", "in_progress", "done", "cancelled"])
    );
    assert_eq!(
        schemas["ChangeRoleRequest"]["properties"]["role"]["enum"],
        json!(["user", "admin"])
    );
    let (_, token) = app.user("xena").await;
    for path in [
        "/users/not-a-uuid/role",
        "/tasks/42/status",
        "/users/x/password",
    ] {
        let reply = app.put(path, &token, json!({})).await;
        assert_eq!(
            (reply.status, reply.code()),
            (StatusCode::BAD_REQUEST, "invalid_id"),
            "{path}"
        );
    }
}

/// Sends `requests` in one write on one connection (pipelined; the last should say
/// `Connection: close`) and returns everything the server answered until it closed.
async fn pipelined(url: &str, requests: &[String]) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let address = url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    stream
        .write_all(requests.concat().as_bytes())
        .await
        .expect("write");
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut answer))
        .await
        .expect("the server closes the connection")
        .ok();
    String::from_utf8_lossy(&answer).into_owned()
}

fn raw_post(path: &str, token: Option<&str>, body: &str, close: bool) -> String {
    let authorization =
        token.map_or_else(String::new, |t| format!("authorization: Bearer {t}\r\n"));
    let connection = if close { "connection: close\r\n" } else { "" };
    format!(
        "POST {path} HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n{authorization}{connection}\r\n{body}",
        body.len()
    )
}

/// Finding 9, on the wire: after a 429 whose body was never used, the next request pipelined on
/// the same connection is still answered (the refused body was drained); a 401 that answers
/// before reading the body either serves the next request too or says `Connection: close`.
#[tokio::test]
async fn finding_09_a_refused_body_never_breaks_a_pipelined_connection() {
    let app = TestApp::spawn_with(|settings| {
        settings.rate_limit.requests = 3;
        settings.rate_limit.window_secs = 3600;
    })
    .await;
    let (_, token) = app.user("wyn").await;
    // (three requests per window: the address spent two on registering and logging in)
    for _ in 0..3 {
        assert_eq!(
            app.post("/projects", &token, json!({ "name": "P" }))
                .await
                .status,
            StatusCode::CREATED
        );
    }
    let body = json!({ "name": "P", "description": "d".repeat(60 * 1024) }).to_string();
    // Given the caller is over its limit, when two POSTs go down one connection
    let answer = pipelined(
        &app.url,
        &[
            raw_post("/projects", Some(&token), &body, false),
            raw_post("/projects", Some(&token), &body, true),
        ],
    )
    .await;
    // Then both are answered 429
    assert_eq!(
        answer.matches("HTTP/1.1 429").count(),
        2,
        "{}",
        &answer[..answer.len().min(2000)]
    );

    // And a request refused before its body is read never leaves the connection in doubt
    let answer = pipelined(
        &app.url,
        &[
            raw_post("/projects", None, &body, false),
            "GET /healthz HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n".to_owned(),
        ],
    )
    .await;
    let first = answer
        .split("\r\n\r\n")
        .next()
        .unwrap_or_default()
        .to_lowercase();
    assert!(first.starts_with("http/1.1 401"), "{first}");
    assert!(
        answer.matches("HTTP/1.1 ").count() == 2 || first.contains("connection: close"),
        "{}",
        &answer[..answer.len().min(2000)]
    );
}

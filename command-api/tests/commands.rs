//! End-to-end tests of the command API against the real PostgreSQL and Redis: every command a
//! user can send, every refusal, and the events each accepted command left in the event store.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use service_runtime::settings::{DatabaseSettings, HttpSettings, RedisSettings, Secret};
use tasktrail_command_api::settings::Settings;
use tasktrail_command_api::startup;
use test_support::{TestDatabase, servers, spawn, unique_name};

const SECRET: &str = "a-test-secret-that-is-long-enough-for-hs256!";

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
        let mut settings: Settings =
            service_runtime::settings::load(&[("http.port", "0")]).expect("default settings");
        settings.http = HttpSettings::with_port(0);
        settings.database = DatabaseSettings {
            url: Secret::new(db.url.clone()),
            ..DatabaseSettings::default()
        };
        settings.redis = RedisSettings {
            key_prefix: unique_name("cmdtest"),
            ..servers().redis.clone()
        };
        settings.kafka = servers().kafka.clone();
        settings.kafka.topic_prefix = unique_name("cmdtest");
        settings.auth.jwt_secret = Secret::new(SECRET);
        settings.rate_limit.requests = 10_000;
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
                Some(json!({
                    "username": username, "email": format!("{username}@example.com"),
                    "password": "correct horse", "first_name": "Test", "last_name": username,
                })),
            )
            .await;
        assert_eq!(
            registered.status,
            StatusCode::CREATED,
            "{}",
            registered.body
        );
        let token = self.token(username, "correct horse").await;
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
    assert_eq!(bad_id.status, StatusCode::NOT_FOUND, "{}", bad_id.body);
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
        use base64_like::encode;
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

/// Unpadded base64url, enough to forge an `alg: none` token without another dependency.
mod base64_like {
    pub fn encode(input: &str) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let bytes = input.as_bytes();
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
            for i in 0..=chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            }
        }
        out
    }
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

//! The whole system: command API (with its outbox relay) → Kafka → projector → MongoDB /
//! Redis → query API, reading its own writes with `min_version`.

use reqwest::StatusCode;
use serde_json::{Value, json};
use service_runtime::settings::{DatabaseSettings, HttpSettings, Secret};
use test_support::{TestDatabase, servers, spawn, unique_name};

use crate::helpers::{ReadSide, SECRET, settings};

struct System {
    command_url: String,
    query_url: String,
    http: reqwest::Client,
    _db: TestDatabase,
    _read_side: ReadSide,
}

impl System {
    async fn start() -> Self {
        let db = TestDatabase::new().await;
        let read_side = ReadSide::new();
        let topic_prefix = unique_name("qe2e");
        let database = DatabaseSettings {
            url: Secret::new(db.url.clone()),
            ..DatabaseSettings::default()
        };

        let mut query = settings(&db, &read_side.database, &read_side.prefix);
        query.log.filter = "warn".to_owned();
        service_runtime::telemetry::init(&query.log);
        // The first read waits for the projector's consumer group to join on the dev broker.
        query.read.min_version_timeout_ms = 30_000;
        let query_url = spawn(
            tasktrail_query_api::startup::build(query)
                .await
                .expect("build the query API"),
        );

        let mut command: tasktrail_command_api::settings::Settings =
            service_runtime::settings::load(&[("http.port", "0")]).expect("command settings");
        command.http = HttpSettings::with_port(0);
        command.database = database.clone();
        command.redis.key_prefix.clone_from(&read_side.prefix);
        command.redis.url = servers().redis.url.clone();
        command.kafka = servers().kafka.clone();
        command.kafka.topic_prefix.clone_from(&topic_prefix);
        command.auth.jwt_secret = Secret::new(SECRET);
        command.rate_limit.requests = 100_000;
        command.relay.poll_interval_ms = 50;
        command.query_api.public_url.clone_from(&query_url);
        let command_url = spawn(
            tasktrail_command_api::startup::build(command)
                .await
                .expect("build the command API"),
        );

        let mut projector: tasktrail_projector::settings::Settings =
            service_runtime::settings::load(&[("http.port", "0")]).expect("projector settings");
        projector.http = HttpSettings::with_port(0);
        projector.database = database;
        projector.kafka = servers().kafka.clone();
        projector.kafka.topic_prefix = topic_prefix;
        projector.mongo.url = servers().mongo.url.clone();
        projector.mongo.database.clone_from(&read_side.database);
        projector.redis.url = servers().redis.url.clone();
        projector.redis.key_prefix.clone_from(&read_side.prefix);
        projector.projector.group_id = unique_name("qe2e");
        projector.projector.deadline_interval_secs = 3600;
        spawn(
            tasktrail_projector::startup::build(projector)
                .await
                .expect("build the projector"),
        );

        Self {
            command_url,
            query_url,
            http: reqwest::Client::new(),
            _db: db,
            _read_side: read_side,
        }
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        token: Option<&str>,
    ) -> (StatusCode, Value) {
        let request = match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        let response = request.send().await.expect("request");
        let status = response.status();
        let body = response.json().await.unwrap_or(Value::Null);
        (status, body)
    }

    async fn command(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Value,
    ) -> Value {
        let request = self
            .http
            .request(method, format!("{}{path}", self.command_url))
            .json(&body);
        let (status, reply) = self.send(request, token).await;
        assert!(status.is_success(), "{path}: {status} {reply}");
        reply
    }

    async fn query(&self, path: &str, token: &str) -> (StatusCode, Value) {
        let request = self.http.get(format!("{}{path}", self.query_url));
        self.send(request, Some(token)).await
    }
}

#[tokio::test]
async fn a_write_is_readable_with_min_version_through_the_whole_pipeline() {
    let system = System::start().await;
    let post = reqwest::Method::POST;
    let registered = system
        .command(
            post.clone(),
            "/auth/register",
            None,
            json!({
                "username": "ada", "email": "ada@example.com", "password": "correct horse",
                "first_name": "Ada", "last_name": "Lovelace",
            }),
        )
        .await;
    let user_id = registered["id"].as_str().expect("user id").to_owned();
    let token = system
        .command(
            post.clone(),
            "/auth/token",
            None,
            json!({ "username": "ada", "password": "correct horse" }),
        )
        .await["access_token"]
        .as_str()
        .expect("token")
        .to_owned();

    let project = system
        .command(
            post.clone(),
            "/projects",
            Some(&token),
            json!({ "name": "Engine" }),
        )
        .await;
    let project_id = project["id"].as_str().expect("project id");
    let task = system
        .command(
            post.clone(),
            &format!("/projects/{project_id}/tasks"),
            Some(&token),
            json!({ "title": "Design", "assignee_id": user_id }),
        )
        .await;
    let task_id = task["id"].as_str().expect("task id");

    let (status, body) = system
        .query(
            &format!("/tasks/{task_id}?min_version={}", task["version"]),
            &token,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["title"], "Design");
    assert_eq!(body["status"], "pending");

    let changed = system
        .command(
            reqwest::Method::PUT,
            &format!("/tasks/{task_id}/status"),
            Some(&token),
            json!({ "status": "in_progress" }),
        )
        .await;
    let (status, body) = system
        .query(
            &format!(
                "/tasks?wait_for={task_id}&min_version={}&status=in_progress",
                changed["version"]
            ),
            &token,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["items"][0]["id"], task_id);

    let (status, body) = system
        .query(
            &format!("/projects/{project_id}?min_version={}", project["version"]),
            &token,
        )
        .await;
    assert_eq!(
        (status, &body["name"]),
        (StatusCode::OK, &json!("Engine")),
        "{body}"
    );
    let (status, me) = system
        .query(
            &format!("/me?min_version={}", registered["version"]),
            &token,
        )
        .await;
    assert_eq!(
        (status, &me["username"]),
        (StatusCode::OK, &json!("ada")),
        "{me}"
    );

    let (status, history) = system
        .query(&format!("/tasks/{task_id}/history"), &token)
        .await;
    assert_eq!(status, StatusCode::OK, "{history}");
    let types: Vec<_> = history["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["event_type"].as_str().expect("type"))
        .collect();
    assert_eq!(types, ["TaskCreated", "TaskStatusChanged"]);
    assert_eq!(history["events"][1]["actor"], user_id.as_str());

    // Logging out in the command API stops the token in the query API.
    system
        .command(post, "/auth/logout", Some(&token), json!({}))
        .await;
    let (status, _) = system.query("/me", &token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

//! The whole system: command API (with its outbox relay) → Kafka → projector → MongoDB /
//! Redis → query API, reading its own writes with `min_version`.

use reqwest::StatusCode;
use serde_json::{Value, json};
use service_runtime::settings::{HttpSettings, Secret};
use test_support::{TestDatabase, servers, spawn, unique_name};

use crate::helpers::{ReadSide, SECRET, settings};

pub struct System {
    pub command_url: String,
    pub query_url: String,
    pub http: reqwest::Client,
    projector: tasktrail_projector::settings::Settings,
    _db: TestDatabase,
    pub read_side: ReadSide,
}

impl System {
    async fn start() -> Self {
        Self::start_on(TestDatabase::new().await).await
    }

    /// The whole system on `db` (which may hold events already: the relay publishes them).
    pub async fn start_on(db: TestDatabase) -> Self {
        Self::start_with(db, |_, _| {}).await
    }

    /// [`System::start_on`], with the query API's and the projector's settings changed by
    /// `configure`.
    pub async fn start_with(
        db: TestDatabase,
        configure: impl FnOnce(
            &mut tasktrail_query_api::settings::Settings,
            &mut tasktrail_projector::settings::Settings,
        ),
    ) -> Self {
        let read_side = ReadSide::new();
        let topic_prefix = unique_name("qe2e");
        let database = db.settings();

        let mut query = settings(&db, &read_side.database, &read_side.prefix);
        query.log.filter = "warn".to_owned();
        service_runtime::telemetry::init(&query.log);
        // The first read waits for the projector's consumer group to join on the dev broker.
        query.read.min_version_timeout_ms = 30_000;
        let mut projector: tasktrail_projector::settings::Settings =
            service_runtime::settings::load(&[("http.port", "0")]).expect("projector settings");
        configure(&mut query, &mut projector);
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
        command.storage = servers().storage.clone();
        command.storage.prefix.clone_from(&read_side.prefix);
        let command_url = spawn(
            tasktrail_command_api::startup::build(command)
                .await
                .expect("build the command API"),
        );

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
            tasktrail_projector::startup::build(projector.clone())
                .await
                .expect("build the projector"),
        );

        Self {
            command_url,
            query_url,
            http: reqwest::Client::new(),
            projector,
            _db: db,
            read_side,
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

    pub async fn command(
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

    pub async fn query(&self, path: &str, token: &str) -> (StatusCode, Value) {
        let request = self.http.get(format!("{}{path}", self.query_url));
        self.send(request, Some(token)).await
    }

    /// `projector replay` of every projection, running in the background.
    pub async fn spawn_replay(
        &self,
    ) -> tokio::task::JoinHandle<anyhow::Result<tasktrail_projector::replay::ReplayReport>> {
        let store = tasktrail_projector::startup::store(&self.projector)
            .await
            .expect("projector store");
        let settings = self.projector.projector.clone();
        tokio::spawn(async move {
            let options = tasktrail_projector::replay::ReplayOptions {
                projection: tasktrail_projector::replay::Projection::All,
                dry_run: false,
                progress: false,
                stop: tokio_util::sync::CancellationToken::new(),
            };
            tasktrail_projector::replay::replay(&store, &settings, options).await
        })
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

    // A teammate: assigning them a task notifies them; their status change notifies Ada.
    let bob = system
        .command(
            post.clone(),
            "/auth/register",
            None,
            json!({
                "username": "bob", "email": "bob@example.com", "password": "correct horse",
                "first_name": "Bob", "last_name": "Babbage",
            }),
        )
        .await;
    let bob_id = bob["id"].as_str().expect("bob's id").to_owned();
    let bob_token = system
        .command(
            post.clone(),
            "/auth/token",
            None,
            json!({ "username": "bob", "password": "correct horse" }),
        )
        .await["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    system
        .command(
            post.clone(),
            &format!("/projects/{project_id}/members"),
            Some(&token),
            json!({ "user_id": bob_id }),
        )
        .await;
    let review = system
        .command(
            post.clone(),
            &format!("/projects/{project_id}/tasks"),
            Some(&token),
            json!({ "title": "Review", "assignee_id": bob_id }),
        )
        .await;
    let review_id = review["id"].as_str().expect("task id");
    let done = system
        .command(
            reqwest::Method::PUT,
            &format!("/tasks/{review_id}/status"),
            Some(&bob_token),
            json!({ "status": "in_progress" }),
        )
        .await;
    let (status, _) = system
        .query(
            &format!("/tasks/{review_id}?min_version={}", done["version"]),
            &bob_token,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // Notifications and statistics are written right after the task's document (min_version
    // covers the document): they follow within moments.
    let kinds = |body: &Value| -> Vec<String> {
        body["items"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .map(|n| n["kind"].as_str().unwrap_or_default().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    let bobs = test_support::eventually(test_support::EVENTUALLY, "bob's notification", || {
        let system = &system;
        let bob_token = &bob_token;
        async move {
            let (status, body) = system.query("/notifications", bob_token).await;
            (status == StatusCode::OK && !kinds(&body).is_empty()).then_some(body)
        }
    })
    .await;
    assert_eq!(kinds(&bobs), ["task_assigned"]);
    assert_eq!(bobs["items"][0]["read"], false);
    let adas = test_support::eventually(test_support::EVENTUALLY, "ada's notification", || {
        let system = &system;
        let token = &token;
        async move {
            let (status, body) = system.query("/notifications", token).await;
            (status == StatusCode::OK && !kinds(&body).is_empty()).then_some(body)
        }
    })
    .await;
    assert_eq!(kinds(&adas), ["task_status_changed"]);
    let stats = test_support::eventually(test_support::EVENTUALLY, "project stats", || {
        let system = &system;
        let token = &token;
        async move {
            let (status, body) = system
                .query(&format!("/projects/{project_id}/stats"), token)
                .await;
            (status == StatusCode::OK && body["by_status"]["in_progress"] == 2).then_some(body)
        }
    })
    .await;
    assert_eq!(stats["total"], 2, "{stats}");
    assert_eq!(
        stats["by_assignee"].as_array().map(Vec::len),
        Some(2),
        "{stats}"
    );

    // Bob reads his notifications, then reads his own write.
    let marked = system
        .command(
            post.clone(),
            "/notifications/read",
            Some(&bob_token),
            json!({}),
        )
        .await;
    assert_eq!(marked["id"], bob_id.as_str());
    let (status, unread) = system
        .query(
            &format!(
                "/notifications?unread=true&wait_for={bob_id}&min_version={}",
                marked["version"]
            ),
            &bob_token,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{unread}");
    assert!(kinds(&unread).is_empty(), "{unread}");
    // Without `min_version` a read may still get the previous copy for a few milliseconds
    // (Redis trails MongoDB): read your write by passing it again.
    let (_, all) = system
        .query(
            &format!(
                "/notifications?wait_for={bob_id}&min_version={}",
                marked["version"]
            ),
            &bob_token,
        )
        .await;
    assert_eq!(all["items"][0]["read"], true, "{all}");
    let (_, adas) = system.query("/notifications?unread=true", &token).await;
    assert_eq!(kinds(&adas), ["task_status_changed"], "Ada's stay unread");

    // `projector replay` rebuilds every read model into a new generation beside the live one
    // (with the live projector running) and swaps; the query API answers all along.
    let replaying = system.spawn_replay().await;
    let mut answered = 0;
    loop {
        let finished = replaying.is_finished();
        let (status, body) = system.query(&format!("/tasks/{review_id}"), &token).await;
        assert_eq!(
            (status, &body["title"]),
            (StatusCode::OK, &json!("Review")),
            "{body}"
        );
        let (status, body) = system.query(&format!("/users/{bob_id}"), &token).await;
        assert_eq!(
            (status, &body["username"]),
            (StatusCode::OK, &json!("bob")),
            "{body}"
        );
        let (status, body) = system.query("/notifications", &bob_token).await;
        assert_eq!(
            (status, kinds(&body)),
            (StatusCode::OK, vec!["task_assigned".to_owned()])
        );
        answered += 1;
        if finished {
            break;
        }
    }
    let report = replaying.await.expect("the replay task").expect("replay");
    assert_eq!(report.generation, 2, "rebuilt beside generation 1");
    assert!(answered > 1, "queries were answered during the rebuild");

    // Wiping MongoDB and Redis, then `projector replay`, restores what the query API answers
    // exactly; while the read models are gone it answers 404, never an error.
    let reads = [
        (format!("/tasks/{review_id}"), token.as_str()),
        (format!("/users/{bob_id}"), token.as_str()),
        (format!("/projects/{project_id}/stats"), token.as_str()),
        ("/notifications".to_owned(), bob_token.as_str()),
    ];
    let mut before = Vec::new();
    for (path, token) in &reads {
        let (status, body) = system.query(path, token).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        before.push(body);
    }
    system
        .read_side
        .wipe()
        .await
        .expect("wipe MongoDB and Redis");
    let replaying = system.spawn_replay().await;
    let mut statuses = std::collections::BTreeSet::new();
    while !replaying.is_finished() {
        for (path, token) in &reads {
            let (status, body) = system.query(path, token).await;
            assert!(
                matches!(status, StatusCode::OK | StatusCode::NOT_FOUND),
                "{path} during the rebuild: {status} {body}"
            );
            statuses.insert(status.as_u16());
        }
    }
    replaying.await.expect("the replay task").expect("replay");
    test_support::eventually(test_support::EVENTUALLY, "the restored read models", || {
        let (reads, before) = (&reads, &before);
        let system = &system;
        async move {
            for ((path, token), expected) in reads.iter().zip(before) {
                let (status, body) = system.query(path, token).await;
                if status != StatusCode::OK || body != *expected {
                    return None;
                }
            }
            Some(())
        }
    })
    .await;
    assert!(
        !statuses.is_empty(),
        "queries were answered during the rebuild"
    );

    // Logging out in the command API stops the token in the query API.
    system
        .command(post, "/auth/logout", Some(&token), json!({}))
        .await;
    let (status, _) = system.query("/me", &token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

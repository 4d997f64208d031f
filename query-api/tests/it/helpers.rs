//! The query API under test: a server of its own with a fresh MongoDB database, Redis key
//! prefix and PostgreSQL database, and builders that seed read-model documents directly (through
//! `read_model::documents`), so these tests do not depend on the projector.

use std::time::Duration;

use auth::{AuthSettings, Tokens};
use chrono::{DateTime, NaiveDate, Utc};
use domain::Role;
use mongodb::bson::doc;
use read_model::documents::{NotificationView, ProjectView, TaskView, UserView};
use read_model::{keys, names};
use redis::aio::ConnectionManager;
use reqwest::StatusCode;
use serde::Serialize;
use serde_json::Value;
use service_runtime::settings::{HttpSettings, MongoSettings, Secret};
use tasktrail_query_api::settings::Settings;
use tasktrail_query_api::startup;
use test_support::{TestDatabase, servers, unique_name};
use uuid::Uuid;

/// The HS256 secret of these tests.
pub const SECRET: &str = "a-query-test-secret-that-is-long-enough-for-hs256";

/// A running query API and the stores it reads.
pub struct TestApp {
    pub url: String,
    pub http: reqwest::Client,
    pub db: TestDatabase,
    pub mongo: mongodb::Database,
    pub redis: ConnectionManager,
    pub prefix: String,
    pub tokens: Tokens,
    /// Stops the server (as SIGTERM does) when sent to, or dropped.
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    running: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// An answer.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_default()
    }

    /// The ids of a page's items, in order.
    pub fn ids(&self) -> Vec<String> {
        self.body["items"]
            .as_array()
            .unwrap_or_else(|| panic!("not a page: {}", self.body))
            .iter()
            .map(|item| item["id"].as_str().expect("item id").to_owned())
            .collect()
    }
}

/// Settings pointing at the real servers, with a private database, prefix and port 0.
pub fn settings(db: &TestDatabase, mongo_database: &str, prefix: &str) -> Settings {
    let mut settings: Settings =
        service_runtime::settings::load(&[("http.port", "0")]).expect("default settings");
    settings.http = HttpSettings::with_port(0);
    settings.database = db.settings();
    settings.mongo = servers().mongo_database(mongo_database);
    settings.redis = servers().redis_with_prefix(prefix);
    settings.auth.jwt_secret = Secret::new(SECRET);
    settings.rate_limit.requests = 100_000;
    settings.read.min_version_timeout_ms = 2000;
    settings.storage.prefix = prefix.to_owned();
    settings
}

/// A URL on which no server listens (a dependency that is down), failing fast.
pub fn dead_mongo() -> MongoSettings {
    MongoSettings {
        url: Secret::new(format!(
            "mongodb://{}/?directConnection=true&serverSelectionTimeoutMS=300",
            test_support::dead_address()
        )),
        ..MongoSettings::default()
    }
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// A query API whose settings `configure` may change (e.g. point Redis at a dead address);
    /// the test's own handles always reach the real servers.
    pub async fn spawn_with(configure: impl FnOnce(&mut Settings)) -> Self {
        let db = TestDatabase::new().await;
        let mongo_name = unique_name("qtest");
        let prefix = unique_name("qtest");
        let mut settings = settings(&db, &mongo_name, &prefix);
        configure(&mut settings);
        settings.log.filter = "warn".to_owned();
        service_runtime::telemetry::init(&settings.log);
        let server = startup::build(settings).await.expect("build the query API");
        let url = format!("http://127.0.0.1:{}", server.port());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = tokio::spawn(server.run_until_stopped(async move {
            let _stopped_or_dropped = stopped.await;
        }));
        let client = read_model::mongo::connect(&servers().mongo)
            .await
            .expect("MongoDB client");
        let redis = service_runtime::redis::connect(&servers().redis).expect("Redis client");
        let tokens = Tokens::from_settings(&AuthSettings {
            jwt_secret: Secret::new(SECRET),
            ..AuthSettings::default()
        })
        .expect("tokens");
        Self {
            url,
            http: reqwest::Client::new(),
            db,
            mongo: client.database(&mongo_name),
            redis,
            prefix,
            tokens,
            stop: Some(stop),
            running: Some(running),
        }
    }

    /// Stops the server as SIGTERM does; resolves when it stopped serving.
    pub fn stop(&mut self) -> tokio::task::JoinHandle<anyhow::Result<()>> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.running.take().expect("running")
    }

    /// A valid token of `user_id`, who is put in the write-side registry with `role` first
    /// (a token works only while its user is active there; a changed role moves the user's
    /// token generation on, as a real role change does).
    pub async fn token(&self, user_id: &str, role: Role) -> String {
        let id = Uuid::parse_str(user_id).expect("a UUID");
        let generation = register_user(&self.db.pool, id, role).await;
        // As the command API does after a role change: Redis gets the new standing at once.
        auth::Revocations::new(
            self.redis.clone(),
            self.db.pool.clone(),
            self.prefix.clone(),
        )
        .refresh_standing(id)
        .await
        .expect("refresh the user's standing");
        self.tokens
            .issue_for(id, role, generation)
            .expect("issue")
            .access_token
    }

    /// `GET path` with `token` (none if `None`).
    pub async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        let mut request = self.http.get(format!("{}{path}", self.url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Reply {
            status,
            headers,
            body,
        }
    }

    /// `GET path` as `user`, expecting 200.
    pub async fn ok(&self, path: &str, token: &str) -> Value {
        let reply = self.get(path, Some(token)).await;
        assert_eq!(reply.status, StatusCode::OK, "GET {path}: {}", reply.body);
        reply.body
    }

    async fn upsert<T: Serialize + Send + Sync>(&self, collection: String, id: &str, document: &T) {
        let document = read_model::codec::to_document(document).expect("to BSON");
        self.mongo
            .collection::<mongodb::bson::Document>(&collection)
            .replace_one(doc! { "_id": id }, document)
            .upsert(true)
            .await
            .unwrap_or_else(|e| panic!("seeding {collection}: {e}"));
    }

    pub async fn put_user(&self, user: &UserView) {
        self.upsert(names::users(1), &user.id, user).await;
    }

    pub async fn put_project(&self, project: &ProjectView) {
        self.upsert(names::projects(1), &project.id, project).await;
    }

    pub async fn put_task(&self, task: &TaskView) {
        self.upsert(names::tasks(1), &task.id, task).await;
    }

    pub async fn put_notification(&self, notification: &NotificationView) {
        self.upsert(names::notifications(1), &notification.id, notification)
            .await;
    }

    /// Writes `value` as JSON under `key` in Redis.
    pub async fn redis_set(&self, key: &str, value: &impl Serialize) {
        let mut redis = self.redis.clone();
        let json = serde_json::to_string(value).expect("JSON");
        redis::cmd("SET")
            .arg(key)
            .arg(json)
            .query_async::<()>(&mut redis)
            .await
            .expect("SET");
    }

    /// Caches `user` in Redis (generation 1).
    pub async fn cache_user(&self, user: &UserView) {
        self.redis_set(&keys::user(&self.prefix, 1, &user.id), user)
            .await;
    }

    /// Caches `project` in Redis (generation 1).
    pub async fn cache_project(&self, project: &ProjectView) {
        self.redis_set(&keys::project(&self.prefix, 1, &project.id), project)
            .await;
    }

    /// Sets fields of a statistics hash.
    pub async fn redis_hash(&self, key: &str, fields: &[(&str, i64)]) {
        let mut redis = self.redis.clone();
        let mut command = redis::cmd("HSET");
        command.arg(key);
        for (field, value) in fields {
            command.arg(*field).arg(*value);
        }
        command.query_async::<()>(&mut redis).await.expect("HSET");
    }

    /// The text of `/metrics`.
    pub async fn metrics(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.url))
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics text")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        drop(ReadSide {
            database: self.mongo.name().to_owned(),
            prefix: self.prefix.clone(),
        });
    }
}

/// A test's MongoDB database and Redis key prefix, removed when dropped (nothing is left behind).
pub struct ReadSide {
    pub database: String,
    pub prefix: String,
}

impl ReadSide {
    /// A fresh database name and prefix.
    pub fn new() -> Self {
        Self {
            database: unique_name("qtest"),
            prefix: unique_name("qtest"),
        }
    }
}

impl ReadSide {
    /// Drops its MongoDB database and deletes its Redis keys (what an operator's wipe does).
    pub async fn wipe(&self) -> anyhow::Result<()> {
        wipe(&self.database, &self.prefix).await
    }
}

impl Drop for ReadSide {
    fn drop(&mut self) {
        // The test's runtime is blocked while this runs, so the clean-up uses clients of its own.
        let database = self.database.clone();
        let prefix = self.prefix.clone();
        let cleanup = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                let _ignored =
                    tokio::time::timeout(Duration::from_secs(5), wipe(&database, &prefix)).await;
            });
        });
        let _ignored = cleanup.join();
    }
}

async fn wipe(database: &str, prefix: &str) -> anyhow::Result<()> {
    let client = read_model::mongo::connect(&servers().mongo).await?;
    client.database(database).drop().await?;
    let mut redis = service_runtime::redis::connect(&servers().redis)?;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut redis)
        .await?;
    if !keys.is_empty() {
        redis::cmd("DEL")
            .arg(keys)
            .query_async::<()>(&mut redis)
            .await?;
    }
    Ok(())
}

/// A fresh id.
pub fn id() -> String {
    Uuid::new_v4().to_string()
}

/// A fixed instant plus `seconds`.
pub fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_767_225_600 + seconds, 0).expect("valid time")
}

/// `days` from today (UTC; negative = in the past).
pub fn day(days: i64) -> NaiveDate {
    Utc::now().date_naive() + chrono::Duration::days(days)
}

pub fn user(username: &str, first_name: &str, last_name: &str) -> UserView {
    UserView {
        id: id(),
        username: username.to_owned(),
        username_lower: username.to_lowercase(),
        email: format!("{username}@example.com"),
        first_name: first_name.to_owned(),
        first_name_lower: first_name.to_lowercase(),
        last_name: last_name.to_owned(),
        last_name_lower: last_name.to_lowercase(),
        age: None,
        role: "user".to_owned(),
        active: true,
        created_at: at(0),
        updated_at: at(0),
        notifications_read_up_to: None,
        version: 1,
    }
}

pub fn project(name: &str, owner_id: &str, member_ids: &[&str]) -> ProjectView {
    ProjectView {
        id: id(),
        name: name.to_owned(),
        name_lower: name.to_lowercase(),
        description: String::new(),
        owner_id: owner_id.to_owned(),
        member_ids: member_ids.iter().map(|m| (*m).to_owned()).collect(),
        deadline: None,
        archived: false,
        created_at: at(0),
        updated_at: at(0),
        version: 1,
    }
}

pub fn task(project: &ProjectView, title: &str, created_second: i64) -> TaskView {
    TaskView {
        id: id(),
        project_id: project.id.clone(),
        title: title.to_owned(),
        title_lower: title.to_lowercase(),
        description: String::new(),
        status: "pending".to_owned(),
        priority: "normal".to_owned(),
        priority_rank: Some(1),
        labels: Vec::new(),
        attachments: Vec::new(),
        assignee_id: None,
        created_by: project.owner_id.clone(),
        due_date: None,
        completed_on: None,
        created_at: at(created_second),
        updated_at: at(created_second),
        deleted: false,
        version: 1,
    }
}

/// Puts `user_id` in the write-side registry with `role` (active), or changes its role (moving
/// its token generation on, as a real role change does); returns its token generation.
pub async fn register_user(pool: &sqlx::PgPool, user_id: Uuid, role: Role) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO user_registry (user_id, username, email_normalized, password_hash, role, active)
         VALUES ($1, $2, $3, 'not-a-hash', $4, true)
         ON CONFLICT (user_id) DO UPDATE SET role = EXCLUDED.role,
             token_generation = user_registry.token_generation
                 + CASE WHEN user_registry.role = EXCLUDED.role THEN 0 ELSE 1 END
         RETURNING token_generation",
    )
    .bind(user_id)
    .bind(format!("u{}", user_id.simple()))
    .bind(format!("{}@example.com", user_id.simple()))
    .bind(role.as_str())
    .fetch_one(pool)
    .await
    .expect("register a user in the write-side registry")
}

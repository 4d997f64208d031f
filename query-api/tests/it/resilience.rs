//! End-to-end: Redis down (served from MongoDB), MongoDB down (503), read-your-writes
//! (`min_version`), revoked tokens, task history from the event store, metrics.

use std::time::Duration;

use auth::Revocations;
use domain::Role;
use reqwest::StatusCode;
use serde_json::json;
use service_runtime::settings::{RedisSettings, Secret};

use crate::helpers::{TestApp, dead_mongo, project, task, user};

#[tokio::test]
async fn with_redis_down_reads_are_served_from_mongodb() {
    let app = TestApp::spawn_with(|settings| {
        settings.redis = RedisSettings {
            url: Secret::new(format!("redis://{}", test_support::dead_address())),
            key_prefix: settings.redis.key_prefix.clone(),
        };
    })
    .await;
    let owner = user("owner", "O", "W");
    app.put_user(&owner).await;
    let p = project("Apollo", &owner.id, &[]);
    app.put_project(&p).await;
    let t = task(&p, "Launch", 1);
    app.put_task(&t).await;
    let token = app.token(&owner.id, Role::User).await;

    assert_eq!(app.ok("/me", &token).await["username"], "owner");
    assert_eq!(
        app.ok(&format!("/users/{}", owner.id), &token).await["version"],
        1
    );
    assert_eq!(
        app.ok(&format!("/projects/{}", p.id), &token).await["name"],
        "Apollo"
    );
    assert_eq!(
        app.ok(&format!("/tasks/{}", t.id), &token).await["title"],
        "Launch"
    );
    let stats = app.ok(&format!("/projects/{}/stats", p.id), &token).await;
    assert_eq!(stats["source"], "mongodb");
    assert_eq!(stats["by_status"]["pending"], 1);
    assert_eq!(app.ok("/stats/me", &token).await["source"], "mongodb");
    let metrics = app.metrics().await;
    let fallbacks: u64 = metrics
        .lines()
        .find_map(|line| line.strip_prefix("tasktrail_query_read_model_fallbacks_total "))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no fallback counter in {metrics}"));
    assert!(fallbacks >= 4, "{metrics}");
}

#[tokio::test]
async fn with_mongodb_down_reads_answer_503_naming_mongodb() {
    let app = TestApp::spawn_with(|settings| settings.mongo = dead_mongo()).await;
    let token = app
        .token(&uuid::Uuid::new_v4().to_string(), Role::User)
        .await;
    for path in [
        "/me".to_owned(),
        "/users".to_owned(),
        "/projects".to_owned(),
        format!("/projects/{}", uuid::Uuid::new_v4()),
        "/tasks".to_owned(),
        "/notifications".to_owned(),
        "/stats/me".to_owned(),
    ] {
        let reply = app.get(&path, Some(&token)).await;
        assert_eq!(
            reply.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{path}: {}",
            reply.body
        );
        assert_eq!(reply.code(), "unavailable");
        assert_eq!(reply.body["error"]["details"]["dependency"], "mongodb");
        assert!(
            !reply.body.to_string().contains("27017"),
            "no internals: {}",
            reply.body
        );
    }
}

#[tokio::test]
async fn min_version_waits_for_the_read_model_or_answers_409() {
    let app = TestApp::spawn_with(|settings| settings.read.min_version_timeout_ms = 1500).await;
    let owner = user("owner", "O", "W");
    app.put_user(&owner).await;
    let p = project("Apollo", &owner.id, &[]);
    app.put_project(&p).await;
    let t = task(&p, "Launch", 1);
    app.put_task(&t).await;
    let token = app.token(&owner.id, Role::User).await;

    // Already there: at once.
    assert_eq!(
        app.ok(&format!("/tasks/{}?min_version=1", t.id), &token)
            .await["version"],
        1
    );

    // Version 2 arrives after a delay: the read waits for it.
    let mut newer = t.clone();
    newer.title = "Launched".to_owned();
    newer.version = 2;
    let writer = {
        let mongo = app.mongo.clone();
        let newer = newer.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let document = read_model::codec::to_document(&newer).expect("BSON");
            mongo
                .collection::<mongodb::bson::Document>(&read_model::names::tasks(1))
                .replace_one(mongodb::bson::doc! { "_id": &newer.id }, document)
                .await
                .expect("write v2");
        })
    };
    let body = app
        .ok(&format!("/tasks/{}?min_version=2", t.id), &token)
        .await;
    assert_eq!(
        (body["version"].as_i64(), body["title"].as_str()),
        (Some(2), Some("Launched"))
    );
    writer.await.expect("writer");

    // A list waits for the aggregate named by wait_for.
    let body = app
        .ok(&format!("/tasks?wait_for={}&min_version=2", t.id), &token)
        .await;
    assert_eq!(body["items"][0]["title"], "Launched");

    // Never arrives: 409 read_model_behind with Retry-After.
    for path in [
        format!("/tasks/{}?min_version=3", t.id),
        format!("/projects/{}?min_version=5", p.id),
        format!("/users/{}?min_version=5", owner.id),
        format!("/tasks?wait_for={}&min_version=3", t.id),
        format!("/tasks/{}?min_version=1", uuid::Uuid::new_v4()),
    ] {
        let reply = app.get(&path, Some(&token)).await;
        assert_eq!(reply.status, StatusCode::CONFLICT, "{path}: {}", reply.body);
        assert_eq!(reply.code(), "read_model_behind");
        assert_eq!(reply.headers["retry-after"], "1");
        assert!(
            reply.body["error"]["details"]["wanted"].is_u64(),
            "{}",
            reply.body
        );
    }
    let reply = app
        .get(&format!("/tasks/{}?min_version=3", t.id), Some(&token))
        .await;
    assert_eq!(reply.body["error"]["details"]["current"], 2);

    // The Redis copy of a project is older than MongoDB's: min_version takes the newer one.
    let mut stale = p.clone();
    stale.name = "stale".to_owned();
    app.cache_project(&stale).await;
    let mut fresh = p.clone();
    fresh.version = 2;
    fresh.name = "fresh".to_owned();
    app.put_project(&fresh).await;
    assert_eq!(
        app.ok(&format!("/projects/{}", p.id), &token).await["name"],
        "stale"
    );
    assert_eq!(
        app.ok(&format!("/projects/{}?min_version=2", p.id), &token)
            .await["name"],
        "fresh"
    );
    assert!(
        app.metrics()
            .await
            .contains("tasktrail_query_read_model_behind_total 6")
    );
}

#[tokio::test]
async fn revoked_tokens_are_refused() {
    let app = TestApp::spawn().await;
    let me = user("me", "M", "E");
    app.put_user(&me).await;
    let token = app.token(&me.id, Role::User).await;
    assert_eq!(app.get("/me", Some(&token)).await.status, StatusCode::OK);
    let claims = app.tokens.verify(&token).expect("valid");
    let revocations = Revocations::new(app.redis.clone(), app.db.pool.clone(), app.prefix.clone());
    revocations.revoke(&claims).await.expect("revoke");
    let reply = app.get("/me", Some(&token)).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(
        reply.body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("revoked")
    );
}

#[tokio::test]
async fn task_history_comes_from_the_event_store_in_order() {
    let app = TestApp::spawn().await;
    let owner = user("owner", "O", "W");
    let stranger = user("stranger", "S", "T");
    let p = project("Apollo", &owner.id, &[]);
    app.put_project(&p).await;
    let task_id = uuid::Uuid::new_v4().to_string();
    let events = [
        (
            1,
            "TaskCreated",
            json!({ "TaskCreated": {
            "task_id": task_id, "project_id": p.id, "title": "Launch", "description": "",
            "assignee_id": null, "due_date": null, "status": "pending", "created_by": owner.id,
        } }),
        ),
        (
            2,
            "TaskStatusChanged",
            json!({ "TaskStatusChanged": { "from": "pending", "to": "in_progress" } }),
        ),
        (3, "TaskDeleted", json!("TaskDeleted")),
    ];
    // Inserted out of order: the history is in sequence order all the same.
    for (sequence, event_type, payload) in events.iter().rev() {
        sqlx::query(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
             VALUES ('task', $1, $2, $3, '1.0', $4, $5)",
        )
        .bind(&task_id)
        .bind(i64::from(*sequence))
        .bind(*event_type)
        .bind(payload)
        .bind(json!({ "user_id": owner.id, "request_id": format!("req-{sequence}") }))
        .execute(&app.db.pool)
        .await
        .expect("insert event");
    }
    let token = app.token(&owner.id, Role::User).await;
    // Not in the read model at all: the history is still there.
    let history = app.ok(&format!("/tasks/{task_id}/history"), &token).await;
    let events = history["events"].as_array().expect("events");
    let types: Vec<_> = events
        .iter()
        .map(|e| e["event_type"].as_str().expect("type"))
        .collect();
    assert_eq!(types, ["TaskCreated", "TaskStatusChanged", "TaskDeleted"]);
    assert_eq!(events[1]["sequence"], 2);
    assert_eq!(events[1]["actor"], owner.id.as_str());
    assert_eq!(events[1]["request_id"], "req-2");
    assert_eq!(
        events[1]["payload"]["TaskStatusChanged"]["to"],
        "in_progress"
    );
    assert!(events[0]["occurred_at"].is_string());

    let page = app
        .ok(&format!("/tasks/{task_id}/history?limit=2"), &token)
        .await;
    assert_eq!(page["next_after"], 2);
    let rest = app
        .ok(&format!("/tasks/{task_id}/history?after=2"), &token)
        .await;
    assert_eq!(rest["events"][0]["event_type"], "TaskDeleted");

    let other = app.token(&stranger.id, Role::User).await;
    let reply = app
        .get(&format!("/tasks/{task_id}/history"), Some(&other))
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    let admin = app.token(&stranger.id, Role::Admin).await;
    assert_eq!(
        app.get(&format!("/tasks/{task_id}/history"), Some(&admin))
            .await
            .status,
        StatusCode::OK
    );
    let missing = app
        .get(
            &format!("/tasks/{}/history", uuid::Uuid::new_v4()),
            Some(&token),
        )
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_status() {
    let app = TestApp::spawn().await;
    let me = user("me", "M", "E");
    app.put_user(&me).await;
    let token = app.token(&me.id, Role::User).await;
    app.ok("/me", &token).await;
    app.get("/tasks/nope", Some(&token)).await;
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("tasktrail_query_requests_by_route{route=\"/me\",status=\"200\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics
            .contains("tasktrail_query_requests_by_route{route=\"/tasks/{id}\",status=\"400\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("tasktrail_query_requests_total 2"),
        "{metrics}"
    );
}

//! Schema evolution end to end: a store written by the build before event versions (the
//! fixture `store-v1`, every `TaskCreated` at 1.0) loads on the command side, projects through
//! Kafka, replays, and shows its history, all in the current shapes.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use test_support::fixture::{self, PASSWORD};
use test_support::{EVENTUALLY, TestDatabase, eventually};

use crate::end_to_end::System;

async fn login(system: &System, username: &str) -> String {
    system
        .command(
            Method::POST,
            "/auth/token",
            None,
            json!({ "username": username, "password": PASSWORD }),
        )
        .await["access_token"]
        .as_str()
        .expect("token")
        .to_owned()
}

/// Waits until `path` answers 200 and `ready` holds for the body; returns the body.
async fn read_until(system: &System, path: &str, token: &str, ready: fn(&Value) -> bool) -> Value {
    eventually(EVENTUALLY, path, || async move {
        let (status, body) = system.query(path, token).await;
        (status == StatusCode::OK && ready(&body)).then_some(body)
    })
    .await
}

#[tokio::test]
async fn a_store_written_before_event_versions_loads_projects_replays_and_shows_history() {
    let db = TestDatabase::new().await;
    fixture::load_store_v1(&db.pool)
        .await
        .expect("load the fixture");
    let stored_versions: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT event_version FROM events")
            .fetch_all(&db.pool)
            .await
            .expect("versions");
    assert_eq!(stored_versions, ["1.0"], "the fixture is all 1.0");
    let pool = db.pool.clone();
    let system = System::start_on(db).await;

    let apollo = fixture::id_where("project", "name", "Apollo");
    let hermes = fixture::id_where("project", "name", "Hermes");
    let readme = fixture::id_where("task", "title", "Write the README");
    let logo = fixture::id_where("task", "title", "Pick a logo");
    let mistake = fixture::id_where("task", "title", "A mistake");
    let alice = login(&system, "alice").await;
    let bob = login(&system, "bob").await;

    // Projected live: the relay publishes the 1.0 events as stored, the projector upcasts them.
    let task = read_until(&system, &format!("/tasks/{readme}"), &alice, |t| {
        t["status"] == "done"
    })
    .await;
    assert_eq!(task["priority"], "normal", "{task}");
    assert_eq!(task["labels"], json!([]), "{task}");
    assert_eq!(task["title"], "Write the README");
    let (status, _) = system.query(&format!("/tasks/{mistake}"), &alice).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "the deleted task stays deleted"
    );
    let hermes_tasks = read_until(
        &system,
        &format!("/projects/{hermes}/tasks"),
        &bob,
        |page| {
            page["items"]
                .as_array()
                .is_some_and(|items| items.len() == 1)
        },
    )
    .await;
    assert_eq!(hermes_tasks["items"][0]["priority"], "normal");

    // Loaded on the command side: commands on old tasks build on their upcast state.
    let urgent = system
        .command(
            Method::PUT,
            &format!("/tasks/{readme}/priority"),
            Some(&alice),
            json!({ "priority": "urgent" }),
        )
        .await;
    assert_eq!(
        urgent["version"], 4,
        "created, in progress, done, then this"
    );
    let same = system
        .command(
            Method::PUT,
            &format!("/tasks/{readme}/priority"),
            Some(&alice),
            json!({ "priority": "urgent" }),
        )
        .await;
    assert_eq!(same["version"], 4, "the same priority writes nothing");
    let labelled = system
        .command(
            Method::POST,
            &format!("/tasks/{logo}/labels"),
            Some(&bob),
            json!({ "label": "Design" }),
        )
        .await;
    let task = read_until(
        &system,
        &format!("/tasks/{logo}?min_version={}", labelled["version"]),
        &bob,
        |_| true,
    )
    .await;
    assert_eq!(task["labels"], json!(["design"]), "{task}");
    assert_eq!(
        task["title"], "Pick a logo and colours",
        "the 1.0 edit still applies"
    );
    let listed = read_until(
        &system,
        &format!(
            "/tasks?project_id={apollo}&sort=priority&wait_for={readme}&min_version={}",
            urgent["version"]
        ),
        &alice,
        |_| true,
    )
    .await;
    assert_eq!(listed["items"][0]["id"], readme.as_str(), "{listed}");
    let (_, by_label) = system.query("/tasks?label=DESIGN", &alice).await;
    let ids: Vec<&str> = by_label["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|t| t["id"].as_str())
        .collect();
    assert_eq!(ids, [logo.as_str()]);
    let stats = read_until(&system, &format!("/projects/{apollo}/stats"), &alice, |s| {
        s["by_label"]["design"] == 1
    })
    .await;
    assert_eq!(
        stats["by_priority"],
        json!({ "low": 0, "normal": 3, "high": 0, "urgent": 1 }),
        "{stats}"
    );

    // The history shows every event in its current shape; the store keeps what was written.
    let (status, history) = system
        .query(&format!("/tasks/{readme}/history"), &alice)
        .await;
    assert_eq!(status, StatusCode::OK, "{history}");
    let created = &history["events"][0];
    assert_eq!(created["event_type"], "TaskCreated");
    assert_eq!(created["event_version"], "2.0");
    assert_eq!(created["payload"]["TaskCreated"]["priority"], "normal");
    assert_eq!(created["payload"]["TaskCreated"]["labels"], json!([]));
    let last = &history["events"][3];
    assert_eq!(
        (&last["event_type"], &last["payload"]["TaskPriorityChanged"]),
        (
            &json!("TaskPriorityChanged"),
            &json!({ "from": "normal", "to": "urgent" })
        )
    );
    let stored: String = sqlx::query_scalar(
        "SELECT event_version FROM events WHERE aggregate_id = $1 AND sequence = 1",
    )
    .bind(&readme)
    .fetch_one(&pool)
    .await
    .expect("stored version");
    assert_eq!(stored, "1.0", "upcasting never rewrites the store");

    // Replayed from the event store into a new generation: the same answers.
    let reads = [
        (format!("/tasks/{readme}"), alice.clone()),
        (format!("/tasks/{logo}"), bob.clone()),
        (format!("/projects/{apollo}/stats"), alice.clone()),
        (format!("/projects/{hermes}/tasks"), bob.clone()),
    ];
    let mut before = Vec::new();
    for (path, token) in &reads {
        let (status, body) = system.query(path, token).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        before.push(body);
    }
    let report = system
        .spawn_replay()
        .await
        .await
        .expect("the replay task")
        .expect("replay");
    assert_eq!(report.generation, 2);
    for ((path, token), expected) in reads.iter().zip(&before) {
        let (status, body) = system.query(path, token).await;
        assert_eq!(
            (status, &body),
            (StatusCode::OK, expected),
            "{path} after the replay"
        );
    }
}

//! `/healthz` and `/readyz` of the query API against the real servers.

use tasktrail_query_api::startup;
use test_support::{TestDatabase, get_json, spawn, unique_name};

use crate::helpers::{dead_mongo, settings};

#[tokio::test]
async fn ready_when_mongodb_redis_and_postgres_answer() {
    let db = TestDatabase::new().await;
    let settings = settings(&db, &unique_name("qtest"), &unique_name("qtest"));
    let url = spawn(startup::build(settings).await.expect("build"));
    let (status, body) = get_json(&format!("{url}/readyz")).await;
    assert_eq!(status, 200, "{body}");
    for dependency in ["mongodb", "redis", "postgres"] {
        assert_eq!(body["checks"][dependency], "ok", "{body}");
    }
}

#[tokio::test]
async fn unavailable_names_mongodb_when_it_is_down() {
    let db = TestDatabase::new().await;
    let mut settings = settings(&db, &unique_name("qtest"), &unique_name("qtest"));
    settings.mongo = dead_mongo();
    let url = spawn(startup::build(settings).await.expect("build"));
    let (status, body) = get_json(&format!("{url}/readyz")).await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["checks"]["mongodb"]
            .as_str()
            .unwrap_or_default()
            .starts_with("down: "),
        "{body}"
    );
    assert_eq!(body["checks"]["redis"], "ok", "{body}");
    assert_eq!(get_json(&format!("{url}/healthz")).await.0, 200);
}

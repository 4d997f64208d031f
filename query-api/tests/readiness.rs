//! `/healthz` and `/readyz` of the query API against the real servers.

use service_runtime::settings::{DatabaseSettings, HttpSettings, MongoSettings, Secret};
use tasktrail_query_api::settings::Settings;
use tasktrail_query_api::startup;
use test_support::{TestDatabase, dead_address, get_json, servers, spawn};

fn settings(db: &TestDatabase) -> Settings {
    Settings {
        http: HttpSettings::with_port(0),
        database: DatabaseSettings {
            url: Secret::new(db.url.clone()),
            ..DatabaseSettings::default()
        },
        mongo: servers().mongo.clone(),
        redis: servers().redis.clone(),
        log: Default::default(),
    }
}

#[tokio::test]
async fn ready_when_mongodb_redis_and_postgres_answer() {
    let db = TestDatabase::new().await;
    let url = spawn(startup::build(settings(&db)).await.expect("build"));
    let (status, body) = get_json(&format!("{url}/readyz")).await;
    assert_eq!(status, 200, "{body}");
    for dependency in ["mongodb", "redis", "postgres"] {
        assert_eq!(body["checks"][dependency], "ok", "{body}");
    }
}

#[tokio::test]
async fn unavailable_names_mongodb_when_it_is_down() {
    let db = TestDatabase::new().await;
    let settings = Settings {
        mongo: MongoSettings {
            url: Secret::new(format!(
                "mongodb://{}/?directConnection=true&serverSelectionTimeoutMS=500",
                dead_address()
            )),
            ..MongoSettings::default()
        },
        ..settings(&db)
    };
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

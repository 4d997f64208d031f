//! `/healthz` and `/readyz` of the projector against the real servers.

use service_runtime::settings::{HttpSettings, KafkaSettings};
use tasktrail_projector::settings::Settings;
use tasktrail_projector::startup;
use test_support::{TestDatabase, dead_address, get_json, servers, spawn};

fn settings(db: &TestDatabase) -> Settings {
    Settings {
        http: HttpSettings::with_port(0),
        database: db.settings(),
        kafka: servers().kafka.clone(),
        mongo: servers().mongo.clone(),
        redis: servers().redis.clone(),
        log: Default::default(),
        projector: Default::default(),
    }
}

#[tokio::test]
async fn ready_when_all_four_servers_answer() {
    let db = TestDatabase::new().await;
    let url = spawn(startup::build(settings(&db)).await.expect("build"));
    let (status, body) = get_json(&format!("{url}/readyz")).await;
    assert_eq!(status, 200, "{body}");
    for dependency in ["kafka", "mongodb", "redis", "postgres"] {
        assert_eq!(body["checks"][dependency], "ok", "{body}");
    }
}

#[tokio::test]
async fn unavailable_names_kafka_when_it_is_down() {
    let db = TestDatabase::new().await;
    let settings = Settings {
        kafka: KafkaSettings {
            brokers: dead_address(),
            ..KafkaSettings::default()
        },
        ..settings(&db)
    };
    let url = spawn(startup::build(settings).await.expect("build"));
    let (status, body) = get_json(&format!("{url}/readyz")).await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["checks"]["kafka"]
            .as_str()
            .unwrap_or_default()
            .starts_with("down: "),
        "{body}"
    );
    assert_eq!(body["checks"]["postgres"], "ok", "{body}");
}

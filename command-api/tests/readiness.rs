//! `/healthz` and `/readyz` of the command API against the real servers.

use service_runtime::settings::{
    DatabaseSettings, HttpSettings, KafkaSettings, RedisSettings, Secret,
};
use tasktrail_command_api::settings::Settings;
use tasktrail_command_api::startup;
use test_support::{TestDatabase, dead_address, get_json, servers, spawn};

fn settings(db: &TestDatabase) -> Settings {
    let defaults: Settings =
        service_runtime::settings::load(&[("http.port", "0")]).expect("default settings");
    Settings {
        http: HttpSettings::with_port(0),
        database: DatabaseSettings {
            url: Secret::new(db.url.clone()),
            ..DatabaseSettings::default()
        },
        redis: servers().redis.clone(),
        kafka: KafkaSettings {
            topic_prefix: test_support::unique_name("readiness"),
            ..servers().kafka.clone()
        },
        ..defaults
    }
}

#[tokio::test]
async fn ready_when_postgres_redis_and_kafka_answer() {
    let db = TestDatabase::new().await;
    let url = spawn(startup::build(settings(&db)).await.expect("build"));

    let (status, body) = get_json(&format!("{url}/healthz")).await;
    assert_eq!((status, &body["status"]), (200, &"ok".into()));
    let (status, body) = get_json(&format!("{url}/readyz")).await;
    assert_eq!(status, 200, "{body}");
    for dependency in ["postgres", "redis", "kafka"] {
        assert_eq!(body["checks"][dependency], "ok", "{body}");
    }
}

#[tokio::test]
async fn unavailable_names_redis_and_kafka_when_they_are_down() {
    let db = TestDatabase::new().await;
    let settings = Settings {
        redis: RedisSettings {
            url: Secret::new(format!("redis://{}", dead_address())),
            ..RedisSettings::default()
        },
        kafka: KafkaSettings {
            brokers: dead_address(),
            ..KafkaSettings::default()
        },
        ..settings(&db)
    };
    let url = spawn(startup::build(settings).await.expect("build"));

    let (status, body) = get_json(&format!("{url}/readyz")).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["checks"]["postgres"], "ok", "{body}");
    for dependency in ["redis", "kafka"] {
        let check = body["checks"][dependency].as_str().unwrap_or_default();
        assert!(check.starts_with("down: "), "{dependency}: {body}");
    }
    // The process itself is fine.
    assert_eq!(get_json(&format!("{url}/healthz")).await.0, 200);
}

#[tokio::test]
async fn refuses_to_start_without_postgres() {
    let settings = Settings {
        database: DatabaseSettings {
            url: Secret::new(format!("postgres://postgres@{}/tasktrail", dead_address())),
            acquire_timeout_secs: 1,
            ..DatabaseSettings::default()
        },
        ..settings(&TestDatabase::new().await)
    };
    let error = startup::build(settings)
        .await
        .expect_err("no schema, no start");
    assert!(format!("{error:#}").contains("migrations"), "{error:#}");
}

//! `/healthz` and `/readyz` of the command API against the real servers.

use service_runtime::settings::{DatabaseSettings, KafkaSettings, RedisSettings, Secret};
use tasktrail_command_api::settings::{RelayConfig, Settings};
use tasktrail_command_api::startup;
use test_support::{EVENTUALLY, TestDatabase, dead_address, eventually, get_json, spawn};

use crate::helpers::settings;

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

async fn insert_event(db: &TestDatabase) {
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         VALUES ('task', gen_random_uuid()::text, 1, 'Something', '1.0', '{}', '{}')",
    )
    .execute(&db.pool)
    .await
    .expect("insert an event");
}

async fn metrics(url: &str) -> String {
    let response = reqwest::get(format!("{url}/metrics"))
        .await
        .expect("GET /metrics");
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("text/plain; version=0.0.4")
    );
    response.text().await.expect("metrics text")
}

fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
        .parse()
        .expect("a number")
}

#[tokio::test]
async fn readyz_says_when_the_relay_is_behind_its_bound_and_metrics_show_the_lag() {
    let db = TestDatabase::new().await;
    let defaults = settings(&db);
    let settings = Settings {
        relay: RelayConfig {
            enabled: false, // another instance's job, which is not running: the lag grows
            max_lag_events: 1,
            ..defaults.relay.clone()
        },
        ..defaults
    };
    let url = spawn(startup::build(settings).await.expect("build"));
    insert_event(&db).await;
    assert_eq!(
        get_json(&format!("{url}/readyz")).await.0,
        200,
        "1 event is within the bound"
    );
    insert_event(&db).await;

    let (status, body) = get_json(&format!("{url}/readyz")).await;
    assert_eq!(status, 503, "{body}");
    let check = body["checks"]["relay"].as_str().unwrap_or_default();
    assert!(check.starts_with("down: behind by 2 events"), "{body}");
    let text = metrics(&url).await;
    assert_eq!(sample(&text, "tasktrail_relay_lag_events"), 2.0);
    assert!(sample(&text, "tasktrail_relay_lag_seconds") >= 0.0);
    assert!(
        !text.contains("tasktrail_relay_active"),
        "no relay here: {text}"
    );
}

#[tokio::test]
async fn the_hosted_relay_publishes_and_reports_its_counters() {
    let db = TestDatabase::new().await;
    let url = spawn(startup::build(settings(&db)).await.expect("build"));
    for _ in 0..3 {
        insert_event(&db).await;
    }
    let text = eventually(EVENTUALLY, "the relay to publish 3 events", || async {
        let text = metrics(&url).await;
        (sample(&text, "tasktrail_relay_events_published_total") >= 3.0).then_some(text)
    })
    .await;
    assert_eq!(sample(&text, "tasktrail_relay_lag_events"), 0.0);
    assert_eq!(sample(&text, "tasktrail_relay_active"), 1.0);
    assert_eq!(sample(&text, "tasktrail_relay_publish_errors_total"), 0.0);
    assert_eq!(get_json(&format!("{url}/readyz")).await.0, 200);
}

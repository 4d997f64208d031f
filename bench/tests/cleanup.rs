//! The bench's cleanup against the real broker of `scripts/services`.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use tasktrail_bench::services::{Target, database_server_url};

type Admin = AdminClient<DefaultClientContext>;

/// The sorted names of the broker's topics that start with `prefix`.
async fn topics_starting_with(admin: &std::sync::Arc<Admin>, prefix: &str) -> Vec<String> {
    let (admin, prefix) = (std::sync::Arc::clone(admin), prefix.to_owned());
    tokio::task::spawn_blocking(move || {
        let metadata = admin
            .inner()
            .fetch_metadata(None, Duration::from_secs(10))
            .unwrap_or_else(|error| {
                test_support::server_down("Kafka", &test_support::servers().kafka.brokers, error)
            });
        let mut names: Vec<String> = metadata
            .topics()
            .iter()
            .map(|topic| topic.name().to_owned())
            .filter(|name| name.starts_with(&prefix))
            .collect();
        names.sort();
        names
    })
    .await
    .expect("the topic listing")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_topics_removes_the_runs_topics_and_no_others() {
    let run = test_support::unique_name("benchclean");
    let target = Target {
        kafka_brokers: test_support::servers().kafka.brokers.clone(),
        ..Target::from_env(&run, database_server_url())
    };
    let admin: std::sync::Arc<Admin> = std::sync::Arc::new(
        ClientConfig::new()
            .set("bootstrap.servers", &target.kafka_brokers)
            .create()
            .expect("admin client"),
    );
    // Two topics of the run, and one whose name only begins like the run's prefix.
    let neighbour = format!("{run}x.task");
    let mut all = vec![
        format!("{run}.project"),
        format!("{run}.task"),
        neighbour.clone(),
    ];
    all.sort();
    let new_topics: Vec<NewTopic<'_>> = all
        .iter()
        .map(|name| NewTopic::new(name, 1, TopicReplication::Fixed(1)))
        .collect();
    let created = admin
        .create_topics(&new_topics, &AdminOptions::new())
        .await
        .unwrap_or_else(|error| test_support::server_down("Kafka", &target.kafka_brokers, error));
    assert!(created.iter().all(Result::is_ok), "{created:?}");
    test_support::eventually(
        test_support::EVENTUALLY,
        "the three topics listed",
        || async { (topics_starting_with(&admin, &run).await == all).then_some(()) },
    )
    .await;

    let deleted = target.delete_topics().await;
    // (a broker may list a deleted topic for a moment)
    let mut left = topics_starting_with(&admin, &run).await;
    let deadline = std::time::Instant::now() + test_support::EVENTUALLY;
    while left != [neighbour.clone()] && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        left = topics_starting_with(&admin, &run).await;
    }
    // Nothing of this test stays on the shared broker, whatever the outcome.
    let names: Vec<&str> = left.iter().map(String::as_str).collect();
    let _ignored = admin.delete_topics(&names, &AdminOptions::new()).await;

    assert_eq!(deleted.expect("delete_topics"), 2);
    assert_eq!(left, [neighbour]);
}

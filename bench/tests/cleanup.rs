//! The bench's cleanup against the real broker of `scripts/services`.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use tasktrail_bench::services::{Target, database_server_url};

/// The names of the broker's topics that start with `prefix`.
async fn topics_starting_with(
    admin: &AdminClient<DefaultClientContext>,
    prefix: &str,
) -> Vec<String> {
    let metadata = admin
        .inner()
        .fetch_metadata(None, Duration::from_secs(10))
        .expect("metadata");
    let mut names: Vec<String> = metadata
        .topics()
        .iter()
        .map(|topic| topic.name().to_owned())
        .filter(|name| name.starts_with(prefix))
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_topics_removes_the_runs_topics_and_no_others() {
    let run = test_support::unique_name("benchclean");
    let target = Target::from_env(&run, database_server_url());
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &target.kafka_brokers)
        .create()
        .expect("admin client");
    // Two topics of the run, and one whose name only begins like the run's prefix.
    let ours = [format!("{run}.task"), format!("{run}.project")];
    let neighbour = format!("{run}x.task");
    let new_topics: Vec<NewTopic<'_>> = ours
        .iter()
        .chain([&neighbour])
        .map(|name| NewTopic::new(name, 1, TopicReplication::Fixed(1)))
        .collect();
    let created = admin
        .create_topics(&new_topics, &AdminOptions::new())
        .await
        .expect("create topics");
    assert!(created.iter().all(Result::is_ok), "{created:?}");
    test_support::eventually(
        test_support::EVENTUALLY,
        "the three topics listed",
        || async { (topics_starting_with(&admin, &run).await.len() == 3).then_some(()) },
    )
    .await;

    let deleted = target.delete_topics().await.expect("delete_topics");

    assert_eq!(deleted, 2);
    test_support::eventually(
        test_support::EVENTUALLY,
        "only the neighbour left",
        || async {
            (topics_starting_with(&admin, &run).await == [neighbour.clone()]).then_some(())
        },
    )
    .await;
    let gone = admin
        .delete_topics(&[&neighbour], &AdminOptions::new())
        .await
        .expect("delete the neighbour");
    assert!(gone.iter().all(Result::is_ok), "{gone:?}");
}

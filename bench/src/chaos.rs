//! `tasktrail-chaos`: the fault harness. Users create and change tasks through the command API
//! while, one after another, the services are killed with SIGKILL and restarted, the broker is
//! paused and resumed, restarted (keeping its log) and emptied (stopped, its storage deleted,
//! started), MongoDB is stopped and started and Redis is killed and restarted. Then
//! everything settles and the harness checks that every acknowledged command is in PostgreSQL,
//! in Kafka and in the read models, and that the read models equal a fresh replay
//! (`projector replay --dry-run` finds no difference). It prints the counts and exits non-zero
//! on any loss. Run it through `scripts/chaos`, which starts the servers and builds first.
//!
//! Its modules, in `src/chaos/` (named with `#[path]`: this crate root's modules would otherwise
//! be looked up in `src/`, beside the library's): [`faults`] (the list) and
//! [`inject`](mod@inject) (causing and undoing each), [`system`] (the services), [`users`] (the
//! load), [`verify`](mod@verify) (the checks), [`report`] (what they found) and
//! [`private_redis`].

#[path = "chaos/cli.rs"]
mod cli;
#[path = "chaos/faults.rs"]
mod faults;
#[path = "chaos/inject.rs"]
mod inject;
#[path = "chaos/private_redis.rs"]
mod private_redis;
#[path = "chaos/report.rs"]
mod report;
#[path = "chaos/system.rs"]
mod system;
#[path = "chaos/users.rs"]
mod users;
#[path = "chaos/verify.rs"]
mod verify;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use tasktrail_bench::product::Api;
use tasktrail_bench::services::{Target, database_server_url, event_store_tables, fresh_database};
use tokio_util::sync::CancellationToken;

use crate::cli::Cli;
use crate::faults::FAULTS;
use crate::inject::inject;
use crate::private_redis::PrivateRedis;
use crate::system::System;
use crate::users::{Acknowledged, Sent, user};
use crate::verify::{settle, verify};

fn say(text: &str) {
    #[expect(clippy::print_stderr, reason = "the harness reports on stderr")]
    {
        eprintln!("chaos: {text}");
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    std::fs::create_dir_all(&cli.logs)?;
    let run = chrono::Utc::now().format("%H%M%S").to_string();
    let mut redis = PrivateRedis::start(&cli.logs.join("redis"))?;
    let database_url = fresh_database(&database_server_url(), "tasktrail_chaos").await?;
    let target = Target {
        redis_url: redis.url(),
        ..Target::from_env(&format!("chaos{run}"), database_url)
    };
    let pool = sqlx::PgPool::connect(&target.database_url).await?;
    event_store_tables(&pool).await?;

    let mut system = System::start(&target, &cli.logs).await?;
    let api = Api::new(&system.command.url, &system.query.url);
    let acknowledged: Acknowledged = Arc::default();
    let stop = CancellationToken::new();
    say(&format!(
        "{} users send commands for {} s; a fault every {} s",
        cli.clients, cli.seconds, cli.fault_every
    ));
    let mut users = Vec::new();
    for n in 0..cli.clients {
        users.push(tokio::spawn(user(
            api.clone(),
            run.clone(),
            n,
            Arc::clone(&acknowledged),
            stop.clone(),
        )));
    }

    let started = Instant::now();
    let mut injected: Vec<String> = Vec::new();
    for fault in FAULTS.iter().cycle() {
        tokio::time::sleep(Duration::from_secs(cli.fault_every)).await;
        if started.elapsed() >= Duration::from_secs(cli.seconds) {
            break;
        }
        system.revive().await?;
        let outcome = inject(*fault, &mut system, &mut redis, &cli).await?;
        say(&format!(
            "{:>5.1} s  {outcome}",
            started.elapsed().as_secs_f64()
        ));
        injected.push(outcome);
    }
    stop.cancel();
    let mut sent = Sent::default();
    for user in users {
        sent.add(user.await.context("a user task panicked")?);
    }
    let acknowledged = acknowledged
        .lock()
        .map_or_else(|e| e.into_inner().clone(), |a| a.clone());
    say(&format!(
        "load over: {} commands acknowledged, {} refused or failed while faults were on",
        sent.acknowledged, sent.failed
    ));

    say("settling: relay and projector lag gauges at 0");
    settle(&mut system).await?;

    let report = verify(&pool, &target, &acknowledged, &cli.logs).await?;
    say(&format!("faults injected: {}", injected.len()));
    for line in report.lines() {
        say(&line);
    }
    say(&format!(
        "services that exited on their own: {}",
        system.exits.len()
    ));
    let ok = report.ok && system.exits.is_empty();
    drop(system);
    redis.stop();
    cleanup(&target).await;
    anyhow::ensure!(
        ok,
        "acknowledged commands were lost, the read models drifted or a service crashed"
    );
    say("nothing lost");
    Ok(())
}

/// Drops the run's Kafka topics and MongoDB database (once verified: the verdict is printed).
async fn cleanup(target: &Target) {
    match target.delete_topics().await {
        Ok(deleted) => say(&format!("cleanup: deleted the run's {deleted} topics")),
        Err(error) => say(&format!("cleanup: the run's topics stay ({error:#})")),
    }
    if let Ok(client) = mongodb::Client::with_uri_str(&target.mongo_url).await {
        let _ignored = client.database(&target.mongo_database).drop().await;
    }
}

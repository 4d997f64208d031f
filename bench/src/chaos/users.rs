//! The users: commands sent through the command API while the faults go on, and every
//! version it acknowledged.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tasktrail_bench::product::{Actor, Api};
use tokio_util::sync::CancellationToken;

/// Every acknowledged command: aggregate id → the highest version a reply acknowledged.
pub(crate) type Acknowledged = Arc<Mutex<HashMap<String, i64>>>;

#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Sent {
    pub(crate) acknowledged: u64,
    pub(crate) failed: u64,
}

impl Sent {
    pub(crate) fn add(&mut self, other: Self) {
        self.acknowledged += other.acknowledged;
        self.failed += other.failed;
    }
}

/// One user: registers (retrying through faults), then creates tasks and moves them along,
/// recording every version the command API acknowledged.
pub(crate) async fn user(
    api: Api,
    run: String,
    n: usize,
    acknowledged: Acknowledged,
    stop: CancellationToken,
) -> Sent {
    let mut sent = Sent::default();
    let mut attempt = 0;
    let actor: Actor = loop {
        if stop.is_cancelled() {
            return sent;
        }
        // A registration cut short by a fault (user created, token or project refused) would
        // fail again with "taken": a new name per attempt.
        attempt += 1;
        match api.actor(&format!("{run}a{attempt}"), n).await {
            Ok(actor) => break actor,
            Err(_refused) => {
                sent.failed += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    record(&acknowledged, &actor.user_id, 1);
    record(&acknowledged, &actor.project_id, 1);
    // Each task with whether it is in progress: every status change is a valid one (pending ↔
    // in progress), so a refusal can only come from a fault.
    let mut tasks: Vec<(String, bool)> = Vec::new();
    let mut count = 0_u64;
    while !stop.is_cancelled() {
        count += 1;
        let outcome = if tasks.is_empty() || count.is_multiple_of(3) {
            api.create_task(&actor, count).await.map(|(id, version)| {
                tasks.push((id.clone(), false));
                (id, version)
            })
        } else {
            let index = usize::try_from(count).unwrap_or(0) % tasks.len();
            let (task, in_progress) = tasks[index].clone();
            let status = if in_progress {
                "pending"
            } else {
                "in_progress"
            };
            let outcome = api.change_status(&actor, &task, status).await;
            // "status_unchanged": an earlier change was committed but its reply was lost to a
            // fault; the task already has the status asked for.
            let unchanged = outcome
                .as_ref()
                .is_err_and(|error| error.to_string().contains("status_unchanged"));
            if outcome.is_ok() || unchanged {
                tasks[index].1 = !in_progress;
            }
            outcome.map(|version| (task, version))
        };
        match outcome {
            Ok((id, version)) => {
                sent.acknowledged += 1;
                record(&acknowledged, &id, version);
            }
            Err(_refused) => {
                sent.failed += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    sent
}

fn record(acknowledged: &Acknowledged, id: &str, version: i64) {
    if let Ok(mut map) = acknowledged.lock() {
        let entry = map.entry(id.to_owned()).or_default();
        *entry = (*entry).max(version);
    }
}

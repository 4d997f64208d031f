//! `projector replay --dry-run`: the differences between the live generation and a rebuilt one,
//! in MongoDB and Redis.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Context as _;
use futures::TryStreamExt as _;
use mongodb::bson::doc;
use read_model::documents::{NotificationView, ProjectView, TaskView, UserView, kind};
use read_model::{keys, names};
use serde::de::DeserializeOwned;

use crate::store::Store;

use super::{Projection, scan};

/// Documents of one collection, by id, as JSON (hidden bookkeeping fields dropped).
async fn documents_as_json<T>(
    db: &mongodb::Database,
    collection: &str,
) -> anyhow::Result<BTreeMap<String, serde_json::Value>>
where
    T: DeserializeOwned + serde::Serialize + Send + Sync,
{
    let documents: Vec<T> = load_all(db, collection).await?;
    let mut by_id = BTreeMap::new();
    for document in documents {
        let json = serde_json::to_value(&document)?;
        let id = json
            .get("_id")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_owned();
        by_id.insert(id, json);
    }
    Ok(by_id)
}

fn version_of(json: &serde_json::Value) -> Option<i64> {
    json.get("version").and_then(serde_json::Value::as_i64)
}

/// Differences of the live generation from the scratch one, document by document. A live
/// document with a higher version than the scratch one is newer (written after the dry run
/// read the store) and not a difference.
fn diff_maps(
    label: &str,
    live: &BTreeMap<String, serde_json::Value>,
    scratch: &BTreeMap<String, serde_json::Value>,
    out: &mut Vec<String>,
) {
    let ids: BTreeSet<&String> = live.keys().chain(scratch.keys()).collect();
    for id in ids {
        match (live.get(id), scratch.get(id)) {
            (Some(_), None) => out.push(format!("{label}/{id}: only in the live generation")),
            (None, Some(_)) => out.push(format!("{label}/{id}: missing from the live generation")),
            (Some(l), Some(s)) if l != s => {
                if let (Some(lv), Some(sv)) = (version_of(l), version_of(s))
                    && lv > sv
                {
                    continue;
                }
                let fields: BTreeSet<&String> = l
                    .as_object()
                    .into_iter()
                    .flat_map(|o| o.keys())
                    .chain(s.as_object().into_iter().flat_map(|o| o.keys()))
                    .collect();
                for field in fields {
                    if l.get(field) != s.get(field) {
                        out.push(format!(
                            "{label}/{id}: {field}: live={} replay={}",
                            l.get(field).unwrap_or(&serde_json::Value::Null),
                            s.get(field).unwrap_or(&serde_json::Value::Null)
                        ));
                    }
                }
            }
            _ => {}
        }
    }
}

async fn redis_values(
    store: &Store,
    generation: u64,
    kind: &str,
) -> anyhow::Result<BTreeMap<String, serde_json::Value>> {
    let mut redis = store.redis.clone();
    let prefix = format!("{}:g{generation}:{kind}:", store.prefix);
    let pattern = format!("{prefix}*");
    let mut cursor: u64 = 0;
    let mut out = BTreeMap::new();
    loop {
        let (next, found) = scan(&mut redis, &pattern, cursor).await?;
        for key in found {
            let id = key.trim_start_matches(&prefix).to_owned();
            let value: serde_json::Value = if kind.starts_with("stats") {
                let mut hash: BTreeMap<String, String> = redis::cmd("HGETALL")
                    .arg(&key)
                    .query_async(&mut redis)
                    .await
                    .context("reading a stats hash")?;
                hash.remove(keys::STATS_RECOUNT);
                serde_json::to_value(hash)?
            } else {
                let text: Option<String> = redis::cmd("GET")
                    .arg(&key)
                    .query_async(&mut redis)
                    .await
                    .context("reading a Redis document")?;
                serde_json::from_str(&text.unwrap_or_default()).unwrap_or_default()
            };
            out.insert(id, value);
        }
        if next == 0 {
            return Ok(out);
        }
        cursor = next;
    }
}

/// Compares the live generation with the scratch one.
pub(super) async fn compare(
    store: &Store,
    live: u64,
    scratch: u64,
    projection: Projection,
) -> anyhow::Result<Vec<String>> {
    let db = &store.db;
    let mut out = Vec::new();
    if projection.includes(Projection::Users) {
        diff_maps(
            "users",
            &documents_as_json::<UserView>(db, &names::users(live)).await?,
            &documents_as_json::<UserView>(db, &names::users(scratch)).await?,
            &mut out,
        );
        diff_maps(
            "redis/user",
            &redis_values(store, live, "user").await?,
            &redis_values(store, scratch, "user").await?,
            &mut out,
        );
    }
    if projection.includes(Projection::Projects) {
        diff_maps(
            "projects",
            &documents_as_json::<ProjectView>(db, &names::projects(live)).await?,
            &documents_as_json::<ProjectView>(db, &names::projects(scratch)).await?,
            &mut out,
        );
        diff_maps(
            "redis/project",
            &redis_values(store, live, "project").await?,
            &redis_values(store, scratch, "project").await?,
            &mut out,
        );
        diff_maps(
            "redis/stats:project",
            &redis_values(store, live, "stats:project").await?,
            &redis_values(store, scratch, "stats:project").await?,
            &mut out,
        );
    }
    if projection.includes(Projection::Tasks) {
        diff_maps(
            "tasks",
            &documents_as_json::<TaskView>(db, &names::tasks(live)).await?,
            &documents_as_json::<TaskView>(db, &names::tasks(scratch)).await?,
            &mut out,
        );
        diff_maps(
            "redis/stats:user",
            &redis_values(store, live, "stats:user").await?,
            &redis_values(store, scratch, "stats:user").await?,
            &mut out,
        );
    }
    if projection.includes(Projection::Notifications) {
        // Overdue notifications come from the periodic deadline job, not from events: which
        // exist depends on when it last ran, so they are not compared.
        let from_events = |mut all: BTreeMap<String, serde_json::Value>| {
            all.retain(|_, n| {
                n.get("kind").and_then(serde_json::Value::as_str) != Some(kind::TASK_OVERDUE)
            });
            all
        };
        diff_maps(
            "notifications",
            &from_events(
                documents_as_json::<NotificationView>(db, &names::notifications(live)).await?,
            ),
            &from_events(
                documents_as_json::<NotificationView>(db, &names::notifications(scratch)).await?,
            ),
            &mut out,
        );
    }
    Ok(out)
}

async fn load_all<T: DeserializeOwned + Send + Sync>(
    db: &mongodb::Database,
    collection: &str,
) -> anyhow::Result<Vec<T>> {
    db.collection::<T>(collection)
        .find(doc! {})
        .await
        .with_context(|| format!("reading {collection}"))?
        .try_collect()
        .await
        .with_context(|| format!("reading {collection}"))
}

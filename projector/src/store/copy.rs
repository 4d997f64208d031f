//! The Redis copy of what a batch changed: one pipeline of guarded writes (an older copy never
//! replaces a newer one), and the applied versions published.

use std::collections::HashMap;

use anyhow::Context as _;
use read_model::changes::{self, Change};
use read_model::keys;
use read_model::names::StatsOwner;
use redis::streams::StreamMaxlen;

use crate::model::Model;

use super::Store;

/// Writes a document's JSON unless Redis already holds a newer one (by `version`).
const SET_JSON: &str = r"
local current = redis.call('GET', KEYS[1])
if current then
  local ok, old = pcall(cjson.decode, current)
  if ok and type(old) == 'table' and tonumber(ARGV[2]) < (tonumber(old['version']) or 0) then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[1])
return 1
";

/// Replaces a stats hash with a revision at least as new: ARGV = revision, position, then
/// field/value pairs.
const SET_STATS: &str = r"
local recount = tonumber(redis.call('HGET', KEYS[1], 'recount') or '-1')
if tonumber(ARGV[1]) < recount then
  return 0
end
redis.call('DEL', KEYS[1])
for i = 3, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
redis.call('HSET', KEYS[1], 'recount', ARGV[1], 'version', ARGV[2])
return 1
";

impl Store {
    /// Copies every document and statistic of the model to Redis (guarded), in one pipeline,
    /// and announces the batch on [`keys::applied_channel`]. Documents the batch only read are copied
    /// too: after a crash between the commit and this copy, the redelivered batch repairs Redis.
    /// `revisions`: the stored revision of each statistic. `announced`: the changes to append
    /// to the change feed (in the same pipeline, after the copies, so a reader of the feed finds
    /// the Redis copies already current).
    pub(super) async fn copy_to_redis(
        &self,
        generation: u64,
        model: &Model,
        revisions: &HashMap<String, i64>,
        announced: Option<&Vec<Change>>,
    ) -> anyhow::Result<()> {
        let prefix = &self.prefix;
        let set_json = redis::Script::new(SET_JSON);
        let set_stats = redis::Script::new(SET_STATS);
        let mut pipe = redis::pipe();
        // The scripts run by their hash (EVALSHA): load them first, in the same pipeline (a
        // no-op when Redis has them; Redis forgets them when it restarts).
        for script in [SET_JSON, SET_STATS] {
            pipe.cmd("SCRIPT").arg("LOAD").arg(script).ignore();
        }
        for user in model.users.values() {
            let json = serde_json::to_string(user).context("encoding a user")?;
            pipe.invoke_script(
                set_json
                    .key(keys::user(prefix, generation, &user.id))
                    .arg(json)
                    .arg(user.version),
            )
            .ignore();
        }
        for project in model.projects.values() {
            let json = serde_json::to_string(project).context("encoding a project")?;
            pipe.invoke_script(
                set_json
                    .key(keys::project(prefix, generation, &project.id))
                    .arg(json)
                    .arg(project.version),
            )
            .ignore();
        }
        for (id, revision) in revisions {
            let stats = model.stats.get(id).cloned().unwrap_or_default();
            let key = match StatsOwner::parse(id) {
                Some(StatsOwner::Project(project)) => {
                    keys::project_stats(prefix, generation, project)
                }
                Some(StatsOwner::User(user)) => keys::user_stats(prefix, generation, user),
                None => continue,
            };
            let mut invocation = set_stats.key(key);
            invocation.arg(*revision).arg(stats.position);
            for (field, value) in &stats.fields {
                invocation.arg(field).arg(value);
            }
            pipe.invoke_script(&invocation).ignore();
        }
        pipe.publish(keys::applied_channel(prefix), generation)
            .ignore();
        self.append_to_feed(&mut pipe, announced.map_or(&[][..], Vec::as_slice));
        let mut redis = self.redis.clone();
        let () = pipe
            .query_async(&mut redis)
            .await
            .context("writing the Redis read models")?;
        Ok(())
    }

    /// Appends `changes` to the change feed, on their own (the overdue pass's notifications).
    ///
    /// # Errors
    /// Redis unreachable.
    pub(super) async fn announce(&self, changes: &[Change]) -> anyhow::Result<()> {
        if changes.is_empty() || self.stream_max_len == 0 {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        self.append_to_feed(&mut pipe, changes);
        let mut redis = self.redis.clone();
        let () = pipe
            .query_async(&mut redis)
            .await
            .context("appending to the change feed")?;
        Ok(())
    }

    /// Adds the `XADD`s of `changes` to `pipe` (none when the feed is off).
    fn append_to_feed(&self, pipe: &mut redis::Pipeline, changes: &[Change]) {
        if self.stream_max_len == 0 {
            return;
        }
        let feed = changes::key(&self.prefix);
        for change in changes {
            pipe.xadd_maxlen(
                &feed,
                StreamMaxlen::Approx(self.stream_max_len),
                "*",
                &change.fields(),
            )
            .ignore();
        }
    }
}

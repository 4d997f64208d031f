//! What lists show beside their documents, read with one query per collection: the names
//! tasks show ([`TaskNames`]) and the statistics counters of projects.

use std::collections::HashMap;

use mongodb::bson::doc;
use read_model::documents::TaskView;
use read_model::names::StatsOwner;

use super::{ReadStore, StoreError};

/// The names tasks show ([`ReadStore::task_names`]).
#[derive(Debug, Default)]
pub struct TaskNames {
    /// Project names by project id.
    pub projects: HashMap<String, String>,
    /// Usernames by user id.
    pub users: HashMap<String, String>,
}

impl ReadStore {
    /// The names `tasks` show: their projects' names and their assignees' usernames. They are
    /// not stored in the tasks, so renaming a project writes one document however many tasks it
    /// has, and every task shows the new name at once.
    ///
    /// One task (`GET /tasks/{id}`, each change of `GET /stream`) reads them from the hot
    /// copies in Redis, as `GET /projects/{id}` does; a list reads them with one MongoDB query
    /// per collection.
    ///
    /// # Errors
    /// MongoDB unreachable.
    pub async fn task_names(&self, tasks: &[TaskView]) -> Result<TaskNames, StoreError> {
        if let [task] = tasks {
            return self.names_of_one(task).await;
        }
        let mut project_ids: Vec<&str> = tasks.iter().map(|t| t.project_id.as_str()).collect();
        let mut user_ids: Vec<&str> = tasks
            .iter()
            .filter_map(|t| t.assignee_id.as_deref())
            .collect();
        for ids in [&mut project_ids, &mut user_ids] {
            ids.sort_unstable();
            ids.dedup();
        }
        let (projects, users) = futures::try_join!(
            self.names_of(read_model::names::projects, &project_ids, "name"),
            self.names_of(read_model::names::users, &user_ids, "username"),
        )?;
        Ok(TaskNames { projects, users })
    }

    /// The counters of these projects' statistics documents (`status:…`, `assignee:…:…`,
    /// `done:…`), by project id: task events move them, the project documents hold no counts. A
    /// project without tasks has none.
    ///
    /// # Errors
    /// MongoDB unreachable.
    pub async fn project_counters(
        &self,
        project_ids: &[&str],
    ) -> Result<HashMap<String, HashMap<String, i64>>, StoreError> {
        let ids: Vec<String> = project_ids
            .iter()
            .map(|id| StatsOwner::Project(id).id())
            .collect();
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        let documents = self
            .find_by_ids(read_model::names::stats, &ids, doc! { "fields": 1 })
            .await?;
        Ok(documents
            .iter()
            .filter_map(|d| {
                let Some(StatsOwner::Project(id)) = StatsOwner::parse(d.get_str("_id").ok()?)
                else {
                    return None;
                };
                let counters = d
                    .get_document("fields")
                    .ok()?
                    .iter()
                    .filter_map(|(field, value)| Some((field.clone(), value.as_i64()?)))
                    .collect();
                Some((id.to_owned(), counters))
            })
            .collect())
    }

    /// `field` of the documents of `collection` with these ids, by id.
    /// The names one task shows, from the hot copies (Redis first, then MongoDB).
    async fn names_of_one(&self, task: &TaskView) -> Result<TaskNames, StoreError> {
        let (project, assignee) =
            futures::try_join!(self.project(&task.project_id, None), async {
                match task.assignee_id.as_deref() {
                    Some(id) => self.user(id, None).await,
                    None => Ok(None),
                }
            })?;
        Ok(TaskNames {
            projects: project.map(|p| (p.id, p.name)).into_iter().collect(),
            users: assignee.map(|u| (u.id, u.username)).into_iter().collect(),
        })
    }

    async fn names_of(
        &self,
        collection: fn(u64) -> String,
        ids: &[&str],
        field: &str,
    ) -> Result<HashMap<String, String>, StoreError> {
        let documents = self.find_by_ids(collection, ids, doc! { field: 1 }).await?;
        Ok(documents
            .into_iter()
            .filter_map(|d| {
                let id = d.get_str("_id").ok()?.to_owned();
                let name = d.get_str(field).ok()?.to_owned();
                Some((id, name))
            })
            .collect())
    }
}

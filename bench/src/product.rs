//! tasktrail itself, driven over HTTP like its users drive it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::{Value, json};

use crate::load::{self, Latencies, OpenLoop, Throughput};

/// One benchmark user with a token and a project of their own.
#[derive(Debug, Clone)]
pub struct Actor {
    pub token: String,
    pub user_id: String,
    pub project_id: String,
}

/// Command and query API addresses and one shared HTTP client (connection pool).
#[derive(Debug, Clone)]
pub struct Api {
    pub http: reqwest::Client,
    /// The same, without following redirects (to look at one).
    pub no_redirects: reqwest::Client,
    pub command: String,
    pub query: String,
}

impl Api {
    pub fn new(command: &str, query: &str) -> Self {
        Self {
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(256)
                .build()
                .unwrap_or_default(),
            no_redirects: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap_or_default(),
            command: command.to_owned(),
            query: query.to_owned(),
        }
    }

    /// A command; its JSON reply when it was accepted.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: &Value,
    ) -> anyhow::Result<Value> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.command))
            .json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await?;
        let status = response.status();
        let reply: Value = response.json().await.unwrap_or(Value::Null);
        anyhow::ensure!(status.is_success(), "{path}: {status} {reply}");
        Ok(reply)
    }

    /// A query: status and JSON body.
    pub async fn get(&self, path: &str, token: &str) -> anyhow::Result<(u16, Value)> {
        let response = self
            .http
            .get(format!("{}{path}", self.query))
            .bearer_auth(token)
            .send()
            .await?;
        let status = response.status().as_u16();
        Ok((status, response.json().await.unwrap_or(Value::Null)))
    }

    /// Registers `bench-<run>-<n>`, logs in and creates their project.
    pub async fn actor(&self, run: &str, n: usize) -> anyhow::Result<Actor> {
        let post = reqwest::Method::POST;
        let username = format!("b{run}-{n}");
        let registered = self
            .send(
                post.clone(),
                "/auth/register",
                None,
                &json!({
                    "username": username, "email": format!("{username}@bench.example"),
                    "password": "correct horse battery", "first_name": "Bench",
                    "last_name": format!("User{n}"),
                }),
            )
            .await?;
        let token = self
            .send(
                post.clone(),
                "/auth/token",
                None,
                &json!({ "username": username, "password": "correct horse battery" }),
            )
            .await?["access_token"]
            .as_str()
            .context("no access_token")?
            .to_owned();
        let project = self
            .send(
                post,
                "/projects",
                Some(&token),
                &json!({ "name": format!("Bench {run} {n}") }),
            )
            .await?;
        Ok(Actor {
            token,
            user_id: registered["id"].as_str().context("no user id")?.to_owned(),
            project_id: project["id"].as_str().context("no project id")?.to_owned(),
        })
    }

    /// `POST /projects/{id}/tasks`: the new task's id and version.
    pub async fn create_task(&self, actor: &Actor, n: u64) -> anyhow::Result<(String, i64)> {
        let reply = self
            .send(
                reqwest::Method::POST,
                &format!("/projects/{}/tasks", actor.project_id),
                Some(&actor.token),
                &json!({ "title": format!("Task {n}"), "description": "benchmark", "assignee_id": actor.user_id }),
            )
            .await?;
        Ok((
            reply["id"].as_str().context("no task id")?.to_owned(),
            reply["version"].as_i64().context("no version")?,
        ))
    }

    /// `PUT /tasks/{id}/status`: the new version.
    pub async fn change_status(
        &self,
        actor: &Actor,
        task: &str,
        status: &str,
    ) -> anyhow::Result<i64> {
        self.put_task(actor, task, "status", status).await
    }

    /// `PUT /tasks/{id}/priority`: the new version.
    pub async fn set_priority(
        &self,
        actor: &Actor,
        task: &str,
        priority: &str,
    ) -> anyhow::Result<i64> {
        self.put_task(actor, task, "priority", priority).await
    }

    /// `PUT /tasks/{id}/{field}` with `{field: value}`: the new version.
    async fn put_task(
        &self,
        actor: &Actor,
        task: &str,
        field: &str,
        value: &str,
    ) -> anyhow::Result<i64> {
        let reply = self
            .send(
                reqwest::Method::PUT,
                &format!("/tasks/{task}/{field}"),
                Some(&actor.token),
                &json!({ field: value }),
            )
            .await?;
        reply["version"].as_i64().context("no version")
    }
}

/// Every task each actor created, by actor.
pub type Tasks = Arc<Vec<Mutex<Vec<(String, bool)>>>>;

/// Create-task commands from `actors.len()` clients, back to back.
pub async fn create_tasks(api: &Api, actors: &[Actor], duration: Duration) -> (Throughput, Tasks) {
    let tasks: Tasks = Arc::new(actors.iter().map(|_| Mutex::new(Vec::new())).collect());
    let (api, actors_shared, tasks_shared) =
        (api.clone(), Arc::new(actors.to_vec()), Arc::clone(&tasks));
    let result = load::closed_loop(actors.len(), duration, u64::MAX, move |client, n| {
        let (api, actors, tasks) = (
            api.clone(),
            Arc::clone(&actors_shared),
            Arc::clone(&tasks_shared),
        );
        async move {
            let (id, _) = api.create_task(&actors[client], n).await?;
            if let Ok(mut mine) = tasks[client].lock() {
                mine.push((id, false));
            }
            Ok(())
        }
    })
    .await;
    (result, tasks)
}

/// Status changes (pending ⇄ in progress) of each client's own tasks, back to back.
pub async fn change_statuses(
    api: &Api,
    actors: &[Actor],
    tasks: &Tasks,
    duration: Duration,
) -> Throughput {
    let (api, actors, tasks) = (api.clone(), Arc::new(actors.to_vec()), Arc::clone(tasks));
    load::closed_loop(actors.len(), duration, u64::MAX, move |client, n| {
        let (api, actors, tasks) = (api.clone(), Arc::clone(&actors), Arc::clone(&tasks));
        async move {
            let (task, started) = {
                let mut mine = tasks[client]
                    .lock()
                    .map_err(|_| anyhow::anyhow!("poisoned"))?;
                anyhow::ensure!(!mine.is_empty(), "no task to change");
                let index = usize::try_from(n).unwrap_or(0) % mine.len();
                let entry = &mut mine[index];
                entry.1 = !entry.1;
                (entry.0.clone(), entry.1)
            };
            let status = if started { "in_progress" } else { "pending" };
            api.change_status(&actors[client], &task, status).await?;
            Ok(())
        }
    })
    .await
}

/// Create-task commands at a fixed rate (open loop), spread over the actors.
pub async fn create_tasks_at(
    api: &Api,
    actors: &[Actor],
    rate: f64,
    duration: Duration,
) -> OpenLoop {
    let (api, actors) = (api.clone(), Arc::new(actors.to_vec()));
    load::open_loop(rate, duration, move |n| {
        let (api, actors) = (api.clone(), Arc::clone(&actors));
        async move {
            let actor = &actors[usize::try_from(n).unwrap_or(0) % actors.len()];
            api.create_task(actor, n).await.map(|_| ())
        }
    })
    .await
}

/// Read-your-writes lag: a status change accepted by the command API → the query API answers
/// `GET /tasks/{id}?min_version=<its version>` with that version (the wait is the query API's
/// own). One change at a time, from each actor in turn, for `duration` (the load beside it
/// lasts as long: no sample is taken on an idle system) or `samples` changes, whichever ends
/// first. Also returns how many changes were not visible within 10 s (left out of the
/// latencies); stops after three such in a row with nothing seen (the projector is stuck, the
/// rest would only wait).
pub async fn read_your_writes(
    api: &Api,
    actors: &[Actor],
    tasks: &Tasks,
    samples: usize,
    duration: Duration,
) -> anyhow::Result<(Latencies, u64)> {
    let mut lags = Latencies::default();
    let mut missed = 0;
    let started = Instant::now();
    for n in 0..samples {
        if started.elapsed() >= duration {
            break;
        }
        if missed >= 3 && lags.is_empty() {
            break;
        }
        let client = n % actors.len();
        let actor = &actors[client];
        let (task, started) = {
            let mut mine = tasks[client]
                .lock()
                .map_err(|_| anyhow::anyhow!("poisoned"))?;
            let index = (n / actors.len()) % mine.len().max(1);
            let entry = mine.get_mut(index).context("no task")?;
            entry.1 = !entry.1;
            (entry.0.clone(), entry.1)
        };
        let status = if started { "in_progress" } else { "pending" };
        let version = api.change_status(actor, &task, status).await?;
        let accepted = Instant::now();
        loop {
            let (code, body) = api
                .get(
                    &format!("/tasks/{task}?min_version={version}"),
                    &actor.token,
                )
                .await?;
            if code == 200 && body["version"].as_i64().unwrap_or(0) >= version {
                lags.push(accepted.elapsed());
                break;
            }
            // 409 read_model_behind after the query API's own bound: ask again, up to 10 s.
            if accepted.elapsed() > Duration::from_secs(10) {
                missed += 1;
                break;
            }
        }
    }
    Ok((lags, missed))
}

/// `count` create-task commands in `actor`'s project from `clients` clients at once (a project
/// with many tasks, for the list query).
pub async fn fill_project(api: &Api, actor: &Actor, clients: usize, count: u64) -> Throughput {
    let (api, actor) = (api.clone(), actor.clone());
    load::closed_loop(clients, Duration::from_secs(3600), count, move |_, n| {
        let (api, actor) = (api.clone(), actor.clone());
        async move {
            api.create_task(&actor, n).await?;
            Ok(())
        }
    })
    .await
}

/// GETs of `path` with `actor`'s token from `clients` clients, back to back; only 200 counts.
pub async fn query_one(
    api: &Api,
    actor: &Actor,
    clients: usize,
    duration: Duration,
    path: String,
) -> Throughput {
    let (api, actor) = (api.clone(), actor.clone());
    load::closed_loop(clients, duration, u64::MAX, move |_, _| {
        let (api, actor, path) = (api.clone(), actor.clone(), path.clone());
        async move {
            let (status, _) = api.get(&path, &actor.token).await?;
            anyhow::ensure!(status == 200, "status {status}");
            Ok(())
        }
    })
    .await
}

/// GETs of `path(actor)` from every actor's client, back to back; only 200 counts.
pub async fn query_load(
    api: &Api,
    actors: &[Actor],
    duration: Duration,
    path: fn(&Actor) -> String,
) -> Throughput {
    let (api, actors) = (api.clone(), Arc::new(actors.to_vec()));
    load::closed_loop(actors.len(), duration, u64::MAX, move |client, _| {
        let (api, actors) = (api.clone(), Arc::clone(&actors));
        async move {
            let actor = &actors[client];
            let (status, _) = api.get(&path(actor), &actor.token).await?;
            anyhow::ensure!(status == 200, "status {status}");
            Ok(())
        }
    })
    .await
}

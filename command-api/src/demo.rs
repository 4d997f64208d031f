//! The first administrator and the demo data of a first start.
//!
//! - [`create_admin`] (`command-api create-admin`): registers an administrator. Only an
//!   administrator may create another one, so the first one is made here, by the operator, with
//!   the same command and events as any registration (its actor is the system: no user id).
//! - [`seed`] (`command-api demo-data`, run by `scripts/dev up` and by docker compose): on an
//!   empty event store, an administrator, three users, two projects with members and tasks in
//!   every status (some overdue, so the deadline job makes notifications) and an attachment,
//!   sent through the command API's own routes, in process: events like every other. On a
//!   store that holds any event it adds nothing, so it never runs twice.

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, header};
use chrono::{Days, Utc};
use domain::{Actor, Email, Password, PersonName, Role, User, UserCommand, Username};
use event_store::read::{self, Position};
use event_store::{CommandBus, CommandError, Metadata, Registry};
use serde_json::{Value, json};
use tower::ServiceExt as _;
use uuid::Uuid;

use crate::settings::Settings;
use crate::startup;

/// The password of every demo user (the demo is for a laptop, never for production).
pub const DEMO_PASSWORD: &str = "demo password";

/// The demo users: username, first name, last name.
pub const DEMO_USERS: [(&str, &str, &str); 3] = [
    ("ada", "Ada", "Lovelace"),
    ("grace", "Grace", "Hopper"),
    ("linus", "Linus", "Torvalds"),
];

/// The demo attachment's text.
const DEMO_ATTACHMENT: &str = "Launch checklist\n\n- [ ] post written and reviewed\n- [ ] signup form fixed\n- [ ] analytics on\n";

/// The demo administrator's username.
pub const DEMO_ADMIN: &str = "admin";

/// What [`seed`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seeded {
    /// The store was empty: the demo data is in it now (`events` events).
    Added {
        /// Events in the store afterwards.
        events: i64,
    },
    /// The store held events already: nothing was added.
    StoreNotEmpty,
}

/// Registers the administrator `username` with `email` and `password`; returns its id.
///
/// # Errors
/// Invalid values, a username or e-mail already taken, PostgreSQL unreachable.
pub async fn create_admin(
    settings: &Settings,
    username: &str,
    email: &str,
    password: &str,
) -> anyhow::Result<Uuid> {
    let pool = event_store::connect_lazy(&settings.database)?;
    event_store::migrate(&pool).await?;
    let registry = Registry::new(pool.clone());
    let bus: CommandBus<User> = CommandBus::new(pool, registry.user_services());
    let user_id = Uuid::now_v7();
    let password_hash = auth::hash_password(&Password::parse(password)?).await?;
    let command = UserCommand::Register {
        user_id,
        username: Username::parse(username)?,
        email: Email::parse(email)?,
        password_hash,
        first_name: PersonName::parse("Admin")?,
        last_name: PersonName::parse("Istrator")?,
        age: None,
        role: Role::Admin,
        // The system: the only actor that may create the first administrator.
        actor: Some(Actor::admin(Uuid::nil())),
    };
    let metadata = Metadata {
        correlation_id: "create-admin".to_owned(),
        ..Metadata::default()
    };
    match bus
        .execute(&user_id.to_string(), command, metadata, Some(0))
        .await
    {
        Ok(_) => Ok(user_id),
        Err(CommandError::Domain(error)) => anyhow::bail!("{username}: {error}"),
        Err(CommandError::Unique(taken)) => anyhow::bail!("{username}: {taken}"),
        Err(error) => Err(error.into()),
    }
}

/// Adds the demo data to an empty event store (see the module documentation).
///
/// # Errors
/// PostgreSQL or Redis unreachable, or a command refused (a bug in the demo data).
pub async fn seed(settings: &Settings) -> anyhow::Result<Seeded> {
    let pool = event_store::connect_lazy(&settings.database)?;
    event_store::migrate(&pool).await?;
    let everything = Position::start();
    if read::backlog(&pool, &everything).await?.events > 0 {
        return Ok(Seeded::StoreNotEmpty);
    }
    create_admin(settings, DEMO_ADMIN, "admin@demo.example", DEMO_PASSWORD).await?;

    // The command API's own routes, in process (the running service's relay publishes).
    let mut settings = settings.clone();
    settings.relay.enabled = false;
    settings.rate_limit.enabled = false;
    let api = Api(startup::app(&settings).await?.router);
    let mut tokens = Vec::new();
    let mut ids = Vec::new();
    for (username, first_name, last_name) in DEMO_USERS {
        let registered = api
            .call(
                Method::POST,
                "/auth/register",
                None,
                json!({
                    "username": username, "email": format!("{username}@demo.example"),
                    "password": DEMO_PASSWORD, "first_name": first_name, "last_name": last_name,
                }),
            )
            .await?;
        ids.push(text(&registered, "id")?);
        let token = api
            .call(
                Method::POST,
                "/auth/token",
                None,
                json!({ "username": username, "password": DEMO_PASSWORD }),
            )
            .await?;
        tokens.push(text(&token, "access_token")?);
    }
    let (ada, grace, linus) = (&tokens[0], &tokens[1], &tokens[2]);
    let today = Utc::now().date_naive();
    let day = |offset: i64| {
        let moved = if offset < 0 {
            today.checked_sub_days(Days::new(offset.unsigned_abs()))
        } else {
            today.checked_add_days(Days::new(offset.unsigned_abs()))
        };
        moved.unwrap_or(today).format("%Y-%m-%d").to_string()
    };

    let website = api
        .call(
            Method::POST,
            "/projects",
            Some(ada),
            json!({ "name": "Website relaunch", "description": "The new site, live by the deadline",
                    "deadline": day(30) }),
        )
        .await?;
    let website = text(&website, "id")?;
    let mobile = api
        .call(
            Method::POST,
            "/projects",
            Some(grace),
            json!({ "name": "Mobile app", "description": "Version 1.0 for both stores" }),
        )
        .await?;
    let mobile = text(&mobile, "id")?;
    for (project, owner, member) in [
        (&website, ada, &ids[1]),
        (&website, ada, &ids[2]),
        (&mobile, grace, &ids[0]),
    ] {
        api.call(
            Method::POST,
            &format!("/projects/{project}/members"),
            Some(owner),
            json!({ "user_id": member }),
        )
        .await?;
    }

    let (website, mobile) = (website.as_str(), mobile.as_str());
    let (ada_id, grace_id, linus_id) = (
        Some(ids[0].as_str()),
        Some(ids[1].as_str()),
        Some(ids[2].as_str()),
    );
    let tasks = [
        DemoTask::new(
            website,
            ada,
            "Write the launch post",
            grace_id,
            Some(-3),
            "high",
            &["content"],
            &[],
        ),
        DemoTask::new(
            website,
            ada,
            "Fix the signup form",
            linus_id,
            Some(-1),
            "urgent",
            &["bug", "frontend"],
            &["in_progress"],
        ),
        DemoTask::new(
            website,
            grace,
            "Choose the colour palette",
            ada_id,
            Some(5),
            "normal",
            &["design"],
            &["in_progress", "done"],
        ),
        DemoTask::new(
            website,
            linus,
            "Migrate the old blog",
            None,
            Some(20),
            "low",
            &[],
            &["cancelled"],
        ),
        DemoTask::new(
            website,
            linus,
            "Set up analytics",
            linus_id,
            None,
            "normal",
            &[],
            &[],
        ),
        DemoTask::new(
            mobile,
            grace,
            "Design the onboarding",
            ada_id,
            Some(10),
            "high",
            &["design"],
            &["in_progress"],
        ),
        DemoTask::new(
            mobile,
            ada,
            "Crash when the phone rotates",
            grace_id,
            Some(-2),
            "urgent",
            &["bug"],
            &[],
        ),
        DemoTask::new(
            mobile,
            grace,
            "Submit 1.0 to the stores",
            grace_id,
            Some(40),
            "normal",
            &["release"],
            &["done"],
        ),
    ];
    let mut task_ids = Vec::new();
    for task in tasks {
        let created = api
            .call(
                Method::POST,
                &format!("/projects/{}/tasks", task.project),
                Some(task.creator),
                json!({
                    "title": task.title, "assignee_id": task.assignee,
                    "due_date": task.due_in_days.map(day),
                    "priority": task.priority, "labels": task.labels,
                }),
            )
            .await?;
        let id = text(&created, "id")?;
        task_ids.push(id.clone());
        for status in task.moves {
            api.call(
                Method::PUT,
                &format!("/tasks/{id}/status"),
                Some(task.creator),
                json!({ "status": status }),
            )
            .await?;
        }
    }
    // An attachment on the launch post (when storage is configured; a storage that is down
    // costs the demo only its file).
    if settings.storage.configured() {
        let path = format!(
            "/tasks/{}/attachments?file_name=launch-checklist.txt",
            task_ids[0]
        );
        if let Err(error) = api.upload(&path, ada, DEMO_ATTACHMENT.as_bytes()).await {
            tracing::warn!(
                error = format!("{error:#}"),
                "the demo attachment was not added"
            );
        }
    }
    Ok(Seeded::Added {
        events: read::backlog(&pool, &everything).await?.events,
    })
}

/// One demo task: where, by whom, what, and the status moves after its creation.
struct DemoTask<'a> {
    project: &'a str,
    creator: &'a str,
    title: &'a str,
    assignee: Option<&'a str>,
    due_in_days: Option<i64>,
    priority: &'a str,
    labels: &'a [&'a str],
    moves: &'a [&'a str],
}

impl<'a> DemoTask<'a> {
    #[expect(
        clippy::too_many_arguments,
        reason = "one row of the demo's table of tasks"
    )]
    const fn new(
        project: &'a str,
        creator: &'a str,
        title: &'a str,
        assignee: Option<&'a str>,
        due_in_days: Option<i64>,
        priority: &'a str,
        labels: &'a [&'a str],
        moves: &'a [&'a str],
    ) -> Self {
        Self {
            project,
            creator,
            title,
            assignee,
            due_in_days,
            priority,
            labels,
            moves,
        }
    }
}

/// How to sign in, for a new user (printed after the demo data is added).
#[must_use]
pub fn sign_in_help(command_api: &str) -> String {
    let users = DEMO_USERS
        .iter()
        .map(|(username, ..)| *username)
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "demo data added. Sign in as {users} (projects, tasks, notifications) or {DEMO_ADMIN} \
         (an administrator), all with the password \"{DEMO_PASSWORD}\":\n  \
         curl -s -X POST {command_api}/auth/token -d 'username=ada&password={DEMO_PASSWORD}'"
    )
}

fn text(reply: &Value, field: &str) -> anyhow::Result<String> {
    reply[field]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("the reply has no {field}: {reply}"))
}

/// The command API's router, called in process.
struct Api(Router);

impl Api {
    /// A JSON request; its JSON reply, or an error naming the refusal.
    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Value,
    ) -> anyhow::Result<Value> {
        self.send(
            method,
            path,
            token,
            "application/json",
            Body::from(body.to_string()),
        )
        .await
    }

    /// Uploads `bytes` as a raw body (an attachment); its JSON reply.
    async fn upload(&self, path: &str, token: &str, bytes: &'static [u8]) -> anyhow::Result<Value> {
        self.send(
            Method::POST,
            path,
            Some(token),
            "text/plain",
            Body::from(bytes),
        )
        .await
    }

    /// A request with `body` of `content_type`; its JSON reply, or an error naming the refusal.
    async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        content_type: &str,
        body: Body,
    ) -> anyhow::Result<Value> {
        let mut request = Request::builder()
            .method(method.clone())
            .uri(path)
            .header(header::CONTENT_TYPE, content_type);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let response = self.0.clone().oneshot(request.body(body)?).await?;
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await?;
        let reply: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        anyhow::ensure!(status.is_success(), "{method} {path}: {status} {reply}");
        Ok(reply)
    }
}

//! Buses over a test database, and commands with valid values.

use chrono::NaiveDate;
use domain::{
    Actor, Description, Email, PasswordHash, PersonName, Project, ProjectCommand, ProjectName,
    Role, Task, TaskCommand, TaskTitle, User, UserCommand, Username,
};
use event_store::{CommandBus, Metadata, Registry};
use sqlx::PgPool;
use test_support::TestDatabase;
use uuid::Uuid;

/// One command bus per aggregate and the registry, over one pool.
pub struct Buses {
    pub users: CommandBus<User>,
    pub projects: CommandBus<Project>,
    pub tasks: CommandBus<Task>,
    pub registry: Registry,
}

impl Buses {
    /// A fresh database and the buses over it.
    pub async fn fresh() -> (TestDatabase, Self) {
        let db = TestDatabase::new().await;
        let buses = Self::new(&db.pool);
        (db, buses)
    }

    pub fn new(pool: &PgPool) -> Self {
        let registry = Registry::new(pool.clone());
        Self {
            users: CommandBus::new(pool.clone(), registry.user_services()),
            projects: CommandBus::new(pool.clone(), registry.project_services()),
            tasks: CommandBus::new(pool.clone(), registry.task_services()),
            registry,
        }
    }

    /// Registers a user (self-registration for `Role::User`, by an admin otherwise) and checks
    /// it was committed.
    pub async fn register(&self, user_id: Uuid, username: &str, email: &str, role: Role) {
        let committed = self
            .users
            .execute(
                &user_id.to_string(),
                register(user_id, username, email, role),
                metadata(None),
                Some(0),
            )
            .await
            .unwrap_or_else(|e| panic!("registering {username}: {e:?}"));
        assert_eq!(committed.version, 1);
    }

    /// Registers the `Role::User` `username` (e-mail `<username>@example.com`) as `user_id`.
    pub async fn register_user(&self, user_id: Uuid, username: &str) {
        let email = format!("{username}@example.com");
        self.register(user_id, username, &email, Role::User).await;
    }

    /// Creates the task `task_id` in `project_id`, sent by `actor` (a member), and checks it was
    /// committed.
    pub async fn create_task(&self, task_id: Uuid, project_id: Uuid, actor: Uuid) {
        self.tasks
            .execute(
                &task_id.to_string(),
                create_task(task_id, project_id, Actor::user(actor)),
                metadata(Some(actor)),
                Some(0),
            )
            .await
            .unwrap_or_else(|e| panic!("creating task {task_id}: {e:?}"));
    }

    /// Creates a project owned by `owner`.
    pub async fn create_project(&self, project_id: Uuid, owner: Uuid) {
        let committed = self
            .projects
            .execute(
                &project_id.to_string(),
                ProjectCommand::Create {
                    project_id,
                    actor: Actor::user(owner),
                    name: ProjectName::parse("Apollo").expect("valid name"),
                    description: Description::empty(),
                    deadline: NaiveDate::from_ymd_opt(2030, 1, 31),
                },
                metadata(Some(owner)),
                None,
            )
            .await
            .unwrap_or_else(|e| panic!("creating project: {e:?}"));
        assert_eq!(committed.version, 1);
    }
}

pub fn register(user_id: Uuid, username: &str, email: &str, role: Role) -> UserCommand {
    UserCommand::Register {
        user_id,
        username: Username::parse(username).expect("valid username"),
        email: Email::parse(email).expect("valid email"),
        password_hash: PasswordHash::new("$argon2id$v=19$initial"),
        first_name: PersonName::parse("Ada").expect("valid name"),
        last_name: PersonName::parse("Lovelace").expect("valid name"),
        age: None,
        actor: (role == Role::Admin).then(|| Actor::admin(Uuid::new_v4())),
        role,
    }
}

pub fn create_task(task_id: Uuid, project_id: Uuid, actor: Actor) -> TaskCommand {
    TaskCommand::Create {
        task_id,
        actor,
        project_id,
        title: TaskTitle::parse("Write the docs").expect("valid title"),
        description: Description::empty(),
        assignee_id: None,
        due_date: None,
        priority: domain::TaskPriority::Normal,
        labels: std::collections::BTreeSet::new(),
    }
}

pub fn metadata(user_id: Option<Uuid>) -> Metadata {
    Metadata {
        user_id,
        request_id: format!("req-{}", Uuid::new_v4().simple()),
        correlation_id: format!("corr-{}", Uuid::new_v4().simple()),
        causation_id: None,
        ..Metadata::default()
    }
}

/// A username no other test uses (3–32 characters of `[a-z0-9_.-]`).
pub fn unique_username(label: &str) -> String {
    let suffix = Uuid::new_v4().simple().to_string();
    format!("{label}_{}", &suffix[..12])
}

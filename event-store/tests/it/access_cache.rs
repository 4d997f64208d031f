//! Task commands decide on a project's access answered from memory (`registry::access`): two
//! command buses over one database stand for two command-api replicas, and a change one of them
//! makes to a project's members is never missed by a decision of the other.

use domain::{Actor, ProjectCommand, Task, TaskCommand, TaskError, TaskStatus};
use event_store::{CommandError, Committed};
use test_support::TestDatabase;
use uuid::Uuid;

use crate::helpers::{Buses, create_task, metadata};

/// Two replicas over one fresh database, an owner and a project of theirs.
struct Replicas {
    _db: TestDatabase,
    one: Buses,
    other: Buses,
    owner: Uuid,
    project_id: Uuid,
}

impl Replicas {
    async fn new() -> Self {
        let db = TestDatabase::new().await;
        let one = Buses::new(&db.pool);
        let other = Buses::new(&db.pool);
        let owner = Uuid::new_v4();
        one.register_user(owner, "owner").await;
        let project_id = Uuid::new_v4();
        one.create_project(project_id, owner).await;
        Self {
            _db: db,
            one,
            other,
            owner,
            project_id,
        }
    }

    /// `replica` runs `command` on the project, as its owner.
    async fn change_project(&self, replica: &Buses, command: ProjectCommand) {
        replica
            .projects
            .execute(
                &self.project_id.to_string(),
                command,
                metadata(Some(self.owner)),
                None,
            )
            .await
            .unwrap_or_else(|e| panic!("changing the project: {e:?}"));
    }

    /// `replica` creates a task in the project, sent by `actor`.
    async fn create_task(
        &self,
        replica: &Buses,
        actor: Uuid,
    ) -> (Uuid, Result<Committed, CommandError<TaskError>>) {
        let task_id = Uuid::new_v4();
        let outcome = replica
            .tasks
            .create(
                &task_id.to_string(),
                create_task(task_id, self.project_id, Actor::user(actor)),
                metadata(Some(actor)),
            )
            .await;
        (task_id, outcome)
    }
}

async fn version_of(buses: &Buses, task_id: Uuid) -> u64 {
    let (_task, version): (Task, u64) = buses
        .tasks
        .load(&task_id.to_string())
        .await
        .expect("loading the task");
    version
}

#[tokio::test]
async fn a_member_removed_on_another_replica_is_refused_on_this_one() {
    let replicas = Replicas::new().await;
    let (one, other) = (&replicas.one, &replicas.other);
    let member = Uuid::new_v4();
    one.register_user(member, "member").await;
    replicas
        .change_project(
            one,
            ProjectCommand::AddMember {
                actor: Actor::user(replicas.owner),
                user_id: member,
            },
        )
        .await;
    // This replica now knows the member.
    let (task_id, created) = replicas.create_task(one, member).await;
    created.expect("a member creates a task");

    replicas
        .change_project(
            other,
            ProjectCommand::RemoveMember {
                actor: Actor::user(replicas.owner),
                user_id: member,
            },
        )
        .await;

    let (refused_id, refused) = replicas.create_task(one, member).await;
    assert_eq!(refused, Err(CommandError::Domain(TaskError::Forbidden)));
    assert_eq!(
        version_of(one, refused_id).await,
        0,
        "nothing was committed"
    );
    let changed = one
        .tasks
        .execute(
            &task_id.to_string(),
            TaskCommand::ChangeStatus {
                actor: Actor::user(member),
                status: TaskStatus::InProgress,
            },
            metadata(Some(member)),
            None,
        )
        .await;
    assert_eq!(changed, Err(CommandError::Domain(TaskError::Forbidden)));
    assert_eq!(version_of(one, task_id).await, 1, "nothing was committed");
}

#[tokio::test]
async fn a_member_added_on_another_replica_is_admitted_on_this_one() {
    let replicas = Replicas::new().await;
    let (one, other) = (&replicas.one, &replicas.other);
    let newcomer = Uuid::new_v4();
    one.register_user(newcomer, "newcomer").await;
    // This replica learns the project without the newcomer, and turns them away.
    let (_, created) = replicas.create_task(one, replicas.owner).await;
    created.expect("the owner creates a task");
    let (_, refused) = replicas.create_task(one, newcomer).await;
    assert_eq!(refused, Err(CommandError::Domain(TaskError::Forbidden)));

    replicas
        .change_project(
            other,
            ProjectCommand::AddMember {
                actor: Actor::user(replicas.owner),
                user_id: newcomer,
            },
        )
        .await;

    let (task_id, admitted) = replicas.create_task(one, newcomer).await;
    assert_eq!(admitted.expect("now a member").version, 1);
    assert_eq!(version_of(one, task_id).await, 1);
}

#[tokio::test]
async fn a_project_archived_on_another_replica_takes_no_task_on_this_one() {
    let replicas = Replicas::new().await;
    let (one, other) = (&replicas.one, &replicas.other);
    let (_, created) = replicas.create_task(one, replicas.owner).await;
    created.expect("the owner creates a task");

    replicas
        .change_project(
            other,
            ProjectCommand::Archive {
                actor: Actor::user(replicas.owner),
            },
        )
        .await;

    let (task_id, refused) = replicas.create_task(one, replicas.owner).await;
    assert_eq!(
        refused,
        Err(CommandError::Domain(TaskError::ProjectArchived))
    );
    assert_eq!(version_of(one, task_id).await, 0, "nothing was committed");
}

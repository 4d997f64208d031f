//! The registry follows the events, and answers the look-ups accordingly.

use domain::{
    Actor, Email, PasswordHash, ProjectCommand, ProjectServices as _, Role, TaskError,
    TaskServices as _, UserCommand, UserServices as _, UserStatus, Username,
};
use event_store::CommandError;
use uuid::Uuid;

use crate::helpers::{Buses, create_task, metadata};

fn email(raw: &str) -> Email {
    Email::parse(raw).expect("valid email")
}

#[tokio::test]
async fn the_user_registry_follows_profile_password_role_and_deactivation() {
    let (_db, buses) = Buses::fresh().await;
    let user_id = Uuid::new_v4();
    buses
        .register(user_id, "dora", "Dora@Example.com", Role::User)
        .await;
    let registry = &buses.registry;

    let username = Username::parse("dora").expect("valid");
    assert_eq!(registry.username_owner(&username).await, Ok(Some(user_id)));
    assert_eq!(
        registry.email_owner(&email("dora@example.COM")).await,
        Ok(Some(user_id))
    );
    let credentials = registry
        .credentials("  DORA ")
        .await
        .expect("look-up")
        .expect("registered");
    assert_eq!(credentials.user_id, user_id);
    assert_eq!(credentials.username, "dora");
    assert_eq!(
        credentials.password_hash,
        PasswordHash::new("$argon2id$v=19$initial")
    );
    assert_eq!(credentials.role, Role::User);
    assert!(credentials.active);
    assert_eq!(
        registry.credentials(&username).await,
        Ok(Some(credentials.clone()))
    );
    assert_eq!(registry.credentials("nobody").await, Ok(None));

    let user_key = user_id.to_string();
    let execute = |command| {
        buses
            .users
            .execute(&user_key, command, metadata(Some(user_id)), None)
    };
    execute(UserCommand::ChangeProfile {
        actor: Actor::user(user_id),
        email: Some(email("dora.new@example.com")),
        first_name: None,
        last_name: None,
        age: None,
    })
    .await
    .expect("email change");
    assert_eq!(
        registry.email_owner(&email("dora@example.com")).await,
        Ok(None)
    );
    assert_eq!(
        registry.email_owner(&email("Dora.New@example.com")).await,
        Ok(Some(user_id))
    );

    execute(UserCommand::ChangePassword {
        actor: Actor::user(user_id),
        password_hash: PasswordHash::new("$argon2id$changed"),
    })
    .await
    .expect("password change");
    execute(UserCommand::ChangeRole {
        actor: Actor::admin(Uuid::new_v4()),
        role: Role::Admin,
    })
    .await
    .expect("role change");
    let credentials = registry
        .credentials_by_id(user_id)
        .await
        .expect("look-up")
        .expect("registered");
    assert_eq!(
        credentials.password_hash,
        PasswordHash::new("$argon2id$changed")
    );
    assert_eq!(credentials.role, Role::Admin);

    assert_eq!(
        registry.user_status(user_id).await,
        Ok(Some(UserStatus { active: true }))
    );
    let committed = execute(UserCommand::Deactivate {
        actor: Actor::user(user_id),
    })
    .await
    .expect("deactivation");
    assert_eq!(committed.version, 5);
    assert_eq!(
        registry.user_status(user_id).await,
        Ok(Some(UserStatus { active: false }))
    );
    let credentials = registry
        .credentials("dora")
        .await
        .expect("look-up")
        .expect("still registered");
    assert!(!credentials.active);
    assert_eq!(registry.user_status(Uuid::new_v4()).await, Ok(None));
    assert_eq!(registry.user_exists(user_id).await, Ok(true));
    assert_eq!(registry.user_exists(Uuid::new_v4()).await, Ok(false));
}

#[tokio::test]
async fn project_access_follows_members_and_archiving() {
    let (_db, buses) = Buses::fresh().await;
    let registry = &buses.registry;
    let owner = Uuid::new_v4();
    let member = Uuid::new_v4();
    let outsider = Uuid::new_v4();
    buses.register_user(owner, "owner").await;
    buses.register_user(member, "member").await;
    buses.register_user(outsider, "outsider").await;
    let project_id = Uuid::new_v4();
    assert_eq!(registry.project_access(project_id).await, Ok(None));
    assert_eq!(registry.project_exists(project_id).await, Ok(false));
    buses.create_project(project_id, owner).await;

    let access = registry
        .project_access(project_id)
        .await
        .expect("look-up")
        .expect("created");
    assert_eq!(access.owner_id, owner);
    assert!(access.members.is_empty());
    assert!(!access.archived);
    assert_eq!(registry.project_exists(project_id).await, Ok(true));

    let project_key = project_id.to_string();
    let project = |command| {
        buses
            .projects
            .execute(&project_key, command, metadata(Some(owner)), None)
    };
    project(ProjectCommand::AddMember {
        actor: Actor::user(owner),
        user_id: member,
    })
    .await
    .expect("add member");
    project(ProjectCommand::AddMember {
        actor: Actor::user(owner),
        user_id: outsider,
    })
    .await
    .expect("add outsider");
    project(ProjectCommand::RemoveMember {
        actor: Actor::user(owner),
        user_id: outsider,
    })
    .await
    .expect("remove outsider");
    let access = registry
        .project_access(project_id)
        .await
        .expect("look-up")
        .expect("created");
    assert_eq!(access.members.into_iter().collect::<Vec<_>>(), vec![member]);

    // The task aggregate asks the registry: a member may create a task, an outsider may not.
    let task_id = Uuid::new_v4();
    buses.create_task(task_id, project_id, member).await;
    let refused_id = Uuid::new_v4();
    let refused = buses
        .tasks
        .execute(
            &refused_id.to_string(),
            create_task(refused_id, project_id, Actor::user(outsider)),
            metadata(Some(outsider)),
            None,
        )
        .await;
    assert_eq!(refused, Err(CommandError::Domain(TaskError::Forbidden)));

    project(ProjectCommand::Archive {
        actor: Actor::user(owner),
    })
    .await
    .expect("archive");
    let access = registry
        .project_access(project_id)
        .await
        .expect("look-up")
        .expect("created");
    assert!(access.archived);
    let archived_id = Uuid::new_v4();
    let refused = buses
        .tasks
        .execute(
            &archived_id.to_string(),
            create_task(archived_id, project_id, Actor::user(owner)),
            metadata(Some(owner)),
            None,
        )
        .await;
    assert_eq!(
        refused,
        Err(CommandError::Domain(TaskError::ProjectArchived))
    );
}

#[tokio::test]
async fn a_deactivated_user_cannot_be_added_to_a_project() {
    let (_db, buses) = Buses::fresh().await;
    let owner = Uuid::new_v4();
    let gone = Uuid::new_v4();
    buses.register_user(owner, "owner").await;
    buses.register_user(gone, "gone").await;
    buses
        .users
        .execute(
            &gone.to_string(),
            UserCommand::Deactivate {
                actor: Actor::user(gone),
            },
            metadata(Some(gone)),
            None,
        )
        .await
        .expect("deactivate");
    let project_id = Uuid::new_v4();
    buses.create_project(project_id, owner).await;

    let project_key = project_id.to_string();
    let add = |user_id| {
        buses.projects.execute(
            &project_key,
            ProjectCommand::AddMember {
                actor: Actor::user(owner),
                user_id,
            },
            metadata(Some(owner)),
            None,
        )
    };
    assert_eq!(
        add(gone).await,
        Err(CommandError::Domain(domain::ProjectError::UserInactive))
    );
    assert_eq!(
        add(Uuid::new_v4()).await,
        Err(CommandError::Domain(domain::ProjectError::UserNotFound))
    );
}

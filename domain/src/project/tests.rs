//! Given/when/then tests and a replay property for the `Project` aggregate.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::NaiveDate;
use cqrs_es::DomainEvent;
use cqrs_es::test::TestFramework;
use proptest::prelude::*;
use uuid::Uuid;

use super::*;
use crate::BoxFuture;
use crate::actor::Actor;
use crate::error::{ErrorKind, ServiceError};
use crate::testing::{check_replay, id};
use crate::values::{Description, ProjectName};

const PROJECT: Uuid = id(100);
const OWNER: Uuid = id(1);
const MEMBER: Uuid = id(2);
const STRANGER: Uuid = id(3);
const INACTIVE: Uuid = id(4);
const GHOST: Uuid = id(5);
const ROOT: Uuid = id(9);

/// A hand-written fake: user statuses by id, or "down".
#[derive(Debug)]
struct FakeProjectServices {
    users: HashMap<Uuid, UserStatus>,
    down: bool,
}

impl Default for FakeProjectServices {
    fn default() -> Self {
        let active = UserStatus { active: true };
        Self {
            users: HashMap::from([
                (OWNER, active),
                (MEMBER, active),
                (STRANGER, active),
                (ROOT, active),
                (INACTIVE, UserStatus { active: false }),
            ]),
            down: false,
        }
    }
}

impl FakeProjectServices {
    fn down() -> Self {
        Self {
            down: true,
            ..Self::default()
        }
    }

    fn handle(self) -> ProjectServicesHandle {
        Arc::new(self)
    }
}

impl ProjectServices for FakeProjectServices {
    fn user_status(
        &self,
        user_id: Uuid,
    ) -> BoxFuture<'_, Result<Option<UserStatus>, ServiceError>> {
        Box::pin(async move {
            if self.down {
                return Err(ServiceError::new("user table down"));
            }
            Ok(self.users.get(&user_id).copied())
        })
    }
}

fn framework() -> TestFramework<Project> {
    TestFramework::with(FakeProjectServices::default().handle())
}

fn name(raw: &str) -> ProjectName {
    ProjectName::parse(raw).expect("valid test value")
}

fn description(raw: &str) -> Description {
    Description::parse(raw).expect("valid test value")
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("valid date")
}

fn owner() -> Actor {
    Actor::user(OWNER)
}

fn member() -> Actor {
    Actor::user(MEMBER)
}

fn stranger() -> Actor {
    Actor::user(STRANGER)
}

fn root() -> Actor {
    Actor::admin(ROOT)
}

fn created() -> ProjectEvent {
    ProjectEvent::ProjectCreated {
        project_id: PROJECT,
        owner_id: OWNER,
        name: name("Apollo"),
        description: description("to the moon"),
        deadline: Some(date(1969, 7, 20)),
    }
}

fn with_member() -> Vec<ProjectEvent> {
    vec![
        created(),
        ProjectEvent::ProjectMemberAdded { user_id: MEMBER },
    ]
}

fn archived() -> Vec<ProjectEvent> {
    vec![
        created(),
        ProjectEvent::ProjectMemberAdded { user_id: MEMBER },
        ProjectEvent::ProjectArchived,
    ]
}

fn rename(actor: Actor, to: &str) -> ProjectCommand {
    ProjectCommand::Update {
        actor,
        name: Some(name(to)),
        description: None,
        deadline: None,
    }
}

// ---- Create ----

#[test]
fn creating_a_project_makes_the_actor_its_owner() {
    framework()
        .given_no_previous_events()
        .when(ProjectCommand::Create {
            project_id: PROJECT,
            actor: owner(),
            name: name("Apollo"),
            description: description("to the moon"),
            deadline: Some(date(1969, 7, 20)),
        })
        .then_expect_events(vec![created()]);
}

#[test]
fn creating_an_existing_project_is_a_conflict() {
    framework()
        .given(vec![created()])
        .when(ProjectCommand::Create {
            project_id: PROJECT,
            actor: owner(),
            name: name("Gemini"),
            description: Description::empty(),
            deadline: None,
        })
        .then_expect_error(ProjectError::AlreadyExists);
}

// ---- Update ----

#[test]
fn an_update_writes_one_event_per_changed_field() {
    framework()
        .given(vec![created()])
        .when(ProjectCommand::Update {
            actor: owner(),
            name: Some(name("Artemis")),
            description: Some(description("back to the moon")),
            deadline: Some(None),
        })
        .then_expect_events(vec![
            ProjectEvent::ProjectRenamed {
                name: name("Artemis"),
            },
            ProjectEvent::ProjectDescribed {
                description: description("back to the moon"),
            },
            ProjectEvent::ProjectDeadlineChanged { deadline: None },
        ]);
}

#[test]
fn an_update_skips_fields_that_do_not_change() {
    framework()
        .given(vec![created()])
        .when(ProjectCommand::Update {
            actor: owner(),
            name: Some(name("Apollo")),
            description: Some(description("to the moon")),
            deadline: Some(Some(date(1969, 7, 21))),
        })
        .then_expect_events(vec![ProjectEvent::ProjectDeadlineChanged {
            deadline: Some(date(1969, 7, 21)),
        }]);
}

#[test]
fn an_update_that_changes_nothing_writes_no_event() {
    framework()
        .given(vec![created()])
        .when(ProjectCommand::Update {
            actor: owner(),
            name: None,
            description: None,
            deadline: Some(Some(date(1969, 7, 20))),
        })
        .then_expect_events(vec![]);
}

#[test]
fn an_admin_may_update_any_project() {
    framework()
        .given(vec![created()])
        .when(rename(root(), "Artemis"))
        .then_expect_events(vec![ProjectEvent::ProjectRenamed {
            name: name("Artemis"),
        }]);
}

#[test]
fn a_member_cannot_update_the_project() {
    framework()
        .given(with_member())
        .when(rename(member(), "Artemis"))
        .then_expect_error(ProjectError::Forbidden);
}

#[test]
fn a_stranger_cannot_update_the_project() {
    framework()
        .given(vec![created()])
        .when(rename(stranger(), "Artemis"))
        .then_expect_error(ProjectError::Forbidden);
}

#[test]
fn updating_a_missing_project_is_not_found() {
    framework()
        .given_no_previous_events()
        .when(rename(owner(), "Artemis"))
        .then_expect_error(ProjectError::NotFound);
}

#[test]
fn an_archived_project_cannot_be_updated() {
    framework()
        .given(archived())
        .when(rename(owner(), "Artemis"))
        .then_expect_error(ProjectError::Archived);
}

// ---- AddMember ----

#[test]
fn the_owner_adds_an_active_user() {
    framework()
        .given(vec![created()])
        .when(ProjectCommand::AddMember {
            actor: owner(),
            user_id: MEMBER,
        })
        .then_expect_events(vec![ProjectEvent::ProjectMemberAdded { user_id: MEMBER }]);
}

#[test]
fn an_admin_adds_a_member() {
    framework()
        .given(vec![created()])
        .when(ProjectCommand::AddMember {
            actor: root(),
            user_id: STRANGER,
        })
        .then_expect_events(vec![ProjectEvent::ProjectMemberAdded { user_id: STRANGER }]);
}

#[test]
fn a_member_cannot_add_members() {
    framework()
        .given(with_member())
        .when(ProjectCommand::AddMember {
            actor: member(),
            user_id: STRANGER,
        })
        .then_expect_error(ProjectError::Forbidden);
}

#[test]
fn adding_a_member_twice_is_a_conflict() {
    framework()
        .given(with_member())
        .when(ProjectCommand::AddMember {
            actor: owner(),
            user_id: MEMBER,
        })
        .then_expect_error(ProjectError::AlreadyMember);
}

#[test]
fn the_owner_is_already_a_member() {
    framework()
        .given(vec![created()])
        .when(ProjectCommand::AddMember {
            actor: root(),
            user_id: OWNER,
        })
        .then_expect_error(ProjectError::AlreadyMember);
}

#[test]
fn adding_an_unknown_user_is_not_found() {
    framework()
        .given(vec![created()])
        .when(ProjectCommand::AddMember {
            actor: owner(),
            user_id: GHOST,
        })
        .then_expect_error(ProjectError::UserNotFound);
}

#[test]
fn adding_a_deactivated_user_is_a_conflict() {
    framework()
        .given(vec![created()])
        .when(ProjectCommand::AddMember {
            actor: owner(),
            user_id: INACTIVE,
        })
        .then_expect_error(ProjectError::UserInactive);
}

#[test]
fn adding_a_member_while_the_user_look_up_fails_is_unavailable() {
    TestFramework::<Project>::with(FakeProjectServices::down().handle())
        .given(vec![created()])
        .when(ProjectCommand::AddMember {
            actor: owner(),
            user_id: MEMBER,
        })
        .then_expect_error(ProjectError::Unavailable(ServiceError::new(
            "user table down",
        )));
}

#[test]
fn adding_a_member_to_an_archived_project_is_refused() {
    framework()
        .given(archived())
        .when(ProjectCommand::AddMember {
            actor: owner(),
            user_id: STRANGER,
        })
        .then_expect_error(ProjectError::Archived);
}

#[test]
fn adding_a_member_to_a_missing_project_is_not_found() {
    framework()
        .given_no_previous_events()
        .when(ProjectCommand::AddMember {
            actor: owner(),
            user_id: MEMBER,
        })
        .then_expect_error(ProjectError::NotFound);
}

// ---- RemoveMember ----

#[test]
fn the_owner_removes_a_member() {
    framework()
        .given(with_member())
        .when(ProjectCommand::RemoveMember {
            actor: owner(),
            user_id: MEMBER,
        })
        .then_expect_events(vec![ProjectEvent::ProjectMemberRemoved { user_id: MEMBER }]);
}

#[test]
fn an_admin_removes_a_member() {
    framework()
        .given(with_member())
        .when(ProjectCommand::RemoveMember {
            actor: root(),
            user_id: MEMBER,
        })
        .then_expect_events(vec![ProjectEvent::ProjectMemberRemoved { user_id: MEMBER }]);
}

#[test]
fn a_member_leaves_the_project() {
    framework()
        .given(with_member())
        .when(ProjectCommand::RemoveMember {
            actor: member(),
            user_id: MEMBER,
        })
        .then_expect_events(vec![ProjectEvent::ProjectMemberRemoved { user_id: MEMBER }]);
}

#[test]
fn a_member_cannot_remove_another_member() {
    framework()
        .given(vec![
            created(),
            ProjectEvent::ProjectMemberAdded { user_id: MEMBER },
            ProjectEvent::ProjectMemberAdded { user_id: STRANGER },
        ])
        .when(ProjectCommand::RemoveMember {
            actor: member(),
            user_id: STRANGER,
        })
        .then_expect_error(ProjectError::Forbidden);
}

#[test]
fn removing_a_non_member_is_not_a_member() {
    framework()
        .given(vec![created()])
        .when(ProjectCommand::RemoveMember {
            actor: owner(),
            user_id: STRANGER,
        })
        .then_expect_error(ProjectError::NotAMember);
}

#[test]
fn the_owner_cannot_be_removed() {
    for actor in [owner(), root()] {
        framework()
            .given(with_member())
            .when(ProjectCommand::RemoveMember {
                actor,
                user_id: OWNER,
            })
            .then_expect_error(ProjectError::OwnerCannotBeRemoved);
    }
}

#[test]
fn removing_a_member_of_an_archived_project_is_refused() {
    framework()
        .given(archived())
        .when(ProjectCommand::RemoveMember {
            actor: member(),
            user_id: MEMBER,
        })
        .then_expect_error(ProjectError::Archived);
}

#[test]
fn removing_a_member_of_a_missing_project_is_not_found() {
    framework()
        .given_no_previous_events()
        .when(ProjectCommand::RemoveMember {
            actor: owner(),
            user_id: MEMBER,
        })
        .then_expect_error(ProjectError::NotFound);
}

// ---- Archive ----

#[test]
fn the_owner_archives_the_project() {
    framework()
        .given(vec![created()])
        .when(ProjectCommand::Archive { actor: owner() })
        .then_expect_events(vec![ProjectEvent::ProjectArchived]);
}

#[test]
fn an_admin_archives_a_project() {
    framework()
        .given(vec![created()])
        .when(ProjectCommand::Archive { actor: root() })
        .then_expect_events(vec![ProjectEvent::ProjectArchived]);
}

#[test]
fn a_member_cannot_archive_the_project() {
    framework()
        .given(with_member())
        .when(ProjectCommand::Archive { actor: member() })
        .then_expect_error(ProjectError::Forbidden);
}

#[test]
fn archiving_twice_is_a_conflict() {
    framework()
        .given(archived())
        .when(ProjectCommand::Archive { actor: owner() })
        .then_expect_error(ProjectError::Archived);
}

#[test]
fn archiving_a_missing_project_is_not_found() {
    framework()
        .given_no_previous_events()
        .when(ProjectCommand::Archive { actor: owner() })
        .then_expect_error(ProjectError::NotFound);
}

// ---- state, events, errors ----

#[test]
fn applied_events_build_the_state() {
    let (project, _) = check_replay::<Project>(
        &FakeProjectServices::default().handle(),
        vec![
            ProjectCommand::Create {
                project_id: PROJECT,
                actor: owner(),
                name: name("Apollo"),
                description: Description::empty(),
                deadline: None,
            },
            ProjectCommand::AddMember {
                actor: owner(),
                user_id: MEMBER,
            },
            ProjectCommand::AddMember {
                actor: owner(),
                user_id: STRANGER,
            },
            ProjectCommand::RemoveMember {
                actor: stranger(),
                user_id: STRANGER,
            },
        ],
    );
    let state = project.state().expect("the aggregate exists");
    assert_eq!(state.owner_id, OWNER);
    assert_eq!(
        state.members.iter().copied().collect::<Vec<_>>(),
        vec![MEMBER]
    );
    assert!(state.includes(OWNER) && state.includes(MEMBER) && !state.includes(STRANGER));
}

#[test]
fn event_types_are_the_variant_names_at_version_1_0() {
    let events = [
        (created(), "ProjectCreated"),
        (
            ProjectEvent::ProjectRenamed { name: name("x") },
            "ProjectRenamed",
        ),
        (
            ProjectEvent::ProjectDescribed {
                description: Description::empty(),
            },
            "ProjectDescribed",
        ),
        (
            ProjectEvent::ProjectDeadlineChanged { deadline: None },
            "ProjectDeadlineChanged",
        ),
        (
            ProjectEvent::ProjectMemberAdded { user_id: MEMBER },
            "ProjectMemberAdded",
        ),
        (
            ProjectEvent::ProjectMemberRemoved { user_id: MEMBER },
            "ProjectMemberRemoved",
        ),
        (ProjectEvent::ProjectArchived, "ProjectArchived"),
    ];
    for (event, event_type) in events {
        assert_eq!(event.event_type(), event_type);
        assert_eq!(event.event_version(), "1.0");
    }
}

#[test]
fn created_event_json_has_the_documented_shape() {
    assert_eq!(
        serde_json::to_value(created()).expect("JSON round trip"),
        serde_json::json!({ "ProjectCreated": {
            "project_id": PROJECT,
            "owner_id": OWNER,
            "name": "Apollo",
            "description": "to the moon",
            "deadline": "1969-07-20",
        }})
    );
    assert_eq!(
        serde_json::to_value(ProjectEvent::ProjectArchived).expect("JSON round trip"),
        serde_json::json!("ProjectArchived")
    );
}

#[test]
fn errors_map_to_their_kinds() {
    use ProjectError as E;
    for (error, kind) in [
        (E::NotFound, ErrorKind::NotFound),
        (E::NotAMember, ErrorKind::NotFound),
        (E::UserNotFound, ErrorKind::NotFound),
        (E::Forbidden, ErrorKind::Forbidden),
        (E::AlreadyExists, ErrorKind::Conflict),
        (E::Archived, ErrorKind::Conflict),
        (E::AlreadyMember, ErrorKind::Conflict),
        (E::OwnerCannotBeRemoved, ErrorKind::Conflict),
        (E::UserInactive, ErrorKind::Conflict),
        (
            E::Unavailable(ServiceError::new("x")),
            ErrorKind::Unavailable,
        ),
    ] {
        assert_eq!(error.kind(), kind, "{error:?}");
    }
}

// ---- property: replaying accepted events equals the running state ----

fn arb_user_id() -> impl Strategy<Value = Uuid> {
    prop_oneof![
        Just(OWNER),
        Just(MEMBER),
        Just(STRANGER),
        Just(INACTIVE),
        Just(GHOST),
        Just(ROOT)
    ]
}

fn arb_actor() -> impl Strategy<Value = Actor> {
    prop_oneof![
        3 => Just(owner()),
        2 => Just(member()),
        1 => Just(stranger()),
        2 => Just(root()),
    ]
}

fn arb_name() -> impl Strategy<Value = ProjectName> {
    prop_oneof![Just("Apollo"), Just("Gemini")].prop_map(name)
}

fn arb_description() -> impl Strategy<Value = Description> {
    prop_oneof![Just(""), Just("to the moon")].prop_map(description)
}

fn arb_deadline() -> impl Strategy<Value = Option<NaiveDate>> {
    proptest::option::of((1_u32..=3).prop_map(|day| date(2030, 1, day)))
}

fn arb_command() -> impl Strategy<Value = ProjectCommand> {
    prop_oneof![
        1 => (arb_actor(), arb_name(), arb_description(), arb_deadline()).prop_map(
            |(actor, name, description, deadline)| ProjectCommand::Create {
                project_id: PROJECT,
                actor,
                name,
                description,
                deadline,
            }
        ),
        3 => (
            arb_actor(),
            proptest::option::of(arb_name()),
            proptest::option::of(arb_description()),
            proptest::option::of(arb_deadline()),
        )
            .prop_map(|(actor, name, description, deadline)| ProjectCommand::Update {
                actor,
                name,
                description,
                deadline,
            }),
        4 => (arb_actor(), arb_user_id())
            .prop_map(|(actor, user_id)| ProjectCommand::AddMember { actor, user_id }),
        3 => (arb_actor(), arb_user_id())
            .prop_map(|(actor, user_id)| ProjectCommand::RemoveMember { actor, user_id }),
        1 => arb_actor().prop_map(|actor| ProjectCommand::Archive { actor }),
    ]
}

proptest! {
    #[test]
    fn replaying_accepted_project_events_rebuilds_the_state(
        start_created in proptest::bool::weighted(0.8),
        commands in proptest::collection::vec(arb_command(), 0..40),
        down in proptest::bool::weighted(0.1),
    ) {
        let services = FakeProjectServices { down, ..FakeProjectServices::default() }.handle();
        let start = start_created.then(|| ProjectCommand::Create {
            project_id: PROJECT,
            actor: owner(),
            name: name("Apollo"),
            description: Description::empty(),
            deadline: None,
        });
        let (project, _) = check_replay::<Project>(&services, start.into_iter().chain(commands).collect());
        if let Some(state) = project.state() {
            // Only registered, active users other than the owner ever become members.
            prop_assert!(!state.members.contains(&state.owner_id));
            prop_assert!(!state.members.contains(&INACTIVE) && !state.members.contains(&GHOST));
        }
    }
}

//! Given/when/then tests and a replay property for the `Task` aggregate.

use std::collections::{BTreeSet, HashMap};
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
use crate::values::{Description, Label, TaskTitle};

const TASK: Uuid = id(200);
const PROJECT: Uuid = id(100);
const ARCHIVED_PROJECT: Uuid = id(101);
const MISSING_PROJECT: Uuid = id(102);
const OWNER: Uuid = id(1);
const MEMBER: Uuid = id(2);
const STRANGER: Uuid = id(3);
const ROOT: Uuid = id(9);

/// A hand-written fake: project access by id, or "down".
#[derive(Debug)]
struct FakeTaskServices {
    projects: HashMap<Uuid, ProjectAccess>,
    down: bool,
}

impl Default for FakeTaskServices {
    fn default() -> Self {
        let access = |archived| ProjectAccess {
            owner_id: OWNER,
            members: BTreeSet::from([MEMBER]),
            archived,
        };
        Self {
            projects: HashMap::from([(PROJECT, access(false)), (ARCHIVED_PROJECT, access(true))]),
            down: false,
        }
    }
}

impl FakeTaskServices {
    fn down() -> Self {
        Self {
            down: true,
            ..Self::default()
        }
    }

    fn handle(self) -> TaskServicesHandle {
        Arc::new(self)
    }
}

impl TaskServices for FakeTaskServices {
    fn project_access(
        &self,
        project_id: Uuid,
    ) -> BoxFuture<'_, Result<Option<ProjectAccess>, ServiceError>> {
        Box::pin(async move {
            if self.down {
                return Err(ServiceError::new("project table down"));
            }
            Ok(self.projects.get(&project_id).cloned())
        })
    }
}

fn framework() -> TestFramework<Task> {
    TestFramework::with(FakeTaskServices::default().handle())
}

fn title(raw: &str) -> TaskTitle {
    TaskTitle::parse(raw).expect("valid test value")
}

fn description(raw: &str) -> Description {
    Description::parse(raw).expect("valid test value")
}

fn label(raw: &str) -> Label {
    Label::parse(raw).expect("valid test value")
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

fn create_in(project_id: Uuid, actor: Actor, assignee_id: Option<Uuid>) -> TaskCommand {
    TaskCommand::Create {
        task_id: TASK,
        actor,
        project_id,
        title: title("Write docs"),
        description: description("all of them"),
        assignee_id,
        due_date: Some(date(2030, 1, 31)),
        priority: TaskPriority::Normal,
        labels: BTreeSet::new(),
    }
}

fn created_in(project_id: Uuid, assignee_id: Option<Uuid>) -> TaskEvent {
    TaskEvent::TaskCreated {
        task_id: TASK,
        project_id,
        title: title("Write docs"),
        description: description("all of them"),
        assignee_id,
        due_date: Some(date(2030, 1, 31)),
        status: TaskStatus::Pending,
        created_by: MEMBER,
        priority: TaskPriority::Normal,
        labels: BTreeSet::new(),
    }
}

fn created() -> TaskEvent {
    created_in(PROJECT, None)
}

fn status_changed(from: TaskStatus, to: TaskStatus) -> TaskEvent {
    TaskEvent::TaskStatusChanged { from, to }
}

/// Every command other than `Create`, sent by `actor`.
fn every_other_command(actor: Actor) -> Vec<TaskCommand> {
    vec![
        TaskCommand::Edit {
            actor,
            title: Some(title("New")),
            description: None,
        },
        TaskCommand::Assign {
            actor,
            assignee_id: Some(OWNER),
        },
        TaskCommand::ChangeStatus {
            actor,
            status: TaskStatus::Done,
        },
        TaskCommand::SetDueDate {
            actor,
            due_date: None,
        },
        TaskCommand::Delete { actor },
    ]
}

// ---- Create ----

#[test]
fn a_member_creates_a_pending_task() {
    framework()
        .given_no_previous_events()
        .when(create_in(PROJECT, member(), None))
        .then_expect_events(vec![created()]);
}

#[test]
fn a_task_may_be_created_assigned_to_the_owner() {
    framework()
        .given_no_previous_events()
        .when(create_in(PROJECT, member(), Some(OWNER)))
        .then_expect_events(vec![created_in(PROJECT, Some(OWNER))]);
}

#[test]
fn an_admin_creates_a_task_in_any_project() {
    let mut expected = created();
    if let TaskEvent::TaskCreated { created_by, .. } = &mut expected {
        *created_by = ROOT;
    }
    framework()
        .given_no_previous_events()
        .when(create_in(PROJECT, root(), None))
        .then_expect_events(vec![expected]);
}

#[test]
fn a_stranger_cannot_create_a_task() {
    framework()
        .given_no_previous_events()
        .when(create_in(PROJECT, stranger(), None))
        .then_expect_error(TaskError::Forbidden);
}

#[test]
fn a_task_cannot_be_assigned_to_a_non_member() {
    framework()
        .given_no_previous_events()
        .when(create_in(PROJECT, owner(), Some(STRANGER)))
        .then_expect_error(TaskError::AssigneeNotMember {
            assignee_id: STRANGER,
        });
}

#[test]
fn a_task_in_a_missing_project_is_refused() {
    framework()
        .given_no_previous_events()
        .when(create_in(MISSING_PROJECT, owner(), None))
        .then_expect_error(TaskError::ProjectNotFound);
}

#[test]
fn a_task_in_an_archived_project_is_refused() {
    framework()
        .given_no_previous_events()
        .when(create_in(ARCHIVED_PROJECT, owner(), None))
        .then_expect_error(TaskError::ProjectArchived);
}

#[test]
fn creating_a_task_while_the_project_look_up_fails_is_unavailable() {
    TestFramework::<Task>::with(FakeTaskServices::down().handle())
        .given_no_previous_events()
        .when(create_in(PROJECT, owner(), None))
        .then_expect_error(TaskError::Unavailable(ServiceError::new(
            "project table down",
        )));
}

#[test]
fn creating_an_existing_task_is_a_conflict() {
    framework()
        .given(vec![created()])
        .when(create_in(PROJECT, owner(), None))
        .then_expect_error(TaskError::AlreadyExists);
}

// ---- Priority and labels ----

#[test]
fn a_task_is_created_with_its_priority_and_labels() {
    let mut command = create_in(PROJECT, member(), None);
    let mut expected = created();
    let labels = BTreeSet::from([label("bug"), label("ui")]);
    if let TaskCommand::Create {
        priority,
        labels: wanted,
        ..
    } = &mut command
    {
        *priority = TaskPriority::Urgent;
        wanted.clone_from(&labels);
    }
    if let TaskEvent::TaskCreated {
        priority,
        labels: got,
        ..
    } = &mut expected
    {
        *priority = TaskPriority::Urgent;
        *got = labels;
    }
    framework()
        .given_no_previous_events()
        .when(command)
        .then_expect_events(vec![expected]);
}

#[test]
fn creating_a_task_with_too_many_labels_is_refused() {
    let mut command = create_in(PROJECT, member(), None);
    if let TaskCommand::Create { labels, .. } = &mut command {
        *labels = (0..=Label::MAX_PER_TASK)
            .map(|n| label(&format!("l{n}")))
            .collect();
    }
    framework()
        .given_no_previous_events()
        .when(command)
        .then_expect_error(TaskError::TooManyLabels {
            max: Label::MAX_PER_TASK,
        });
}

#[test]
fn changing_the_priority_records_both_ends_and_the_same_one_writes_nothing() {
    framework()
        .given(vec![created()])
        .when(TaskCommand::SetPriority {
            actor: member(),
            priority: TaskPriority::High,
        })
        .then_expect_events(vec![TaskEvent::TaskPriorityChanged {
            from: TaskPriority::Normal,
            to: TaskPriority::High,
        }]);
    framework()
        .given(vec![created()])
        .when(TaskCommand::SetPriority {
            actor: member(),
            priority: TaskPriority::Normal,
        })
        .then_expect_events(vec![]);
    framework()
        .given(vec![created()])
        .when(TaskCommand::SetPriority {
            actor: stranger(),
            priority: TaskPriority::Low,
        })
        .then_expect_error(TaskError::Forbidden);
}

#[test]
fn labels_are_added_and_removed_once() {
    let bug = || label("bug");
    framework()
        .given(vec![created()])
        .when(TaskCommand::AddLabel {
            actor: owner(),
            label: bug(),
        })
        .then_expect_events(vec![TaskEvent::TaskLabelAdded { label: bug() }]);
    framework()
        .given(vec![created(), TaskEvent::TaskLabelAdded { label: bug() }])
        .when(TaskCommand::AddLabel {
            actor: owner(),
            label: bug(),
        })
        .then_expect_events(vec![]);
    framework()
        .given(vec![created(), TaskEvent::TaskLabelAdded { label: bug() }])
        .when(TaskCommand::RemoveLabel {
            actor: member(),
            label: bug(),
        })
        .then_expect_events(vec![TaskEvent::TaskLabelRemoved { label: bug() }]);
    framework()
        .given(vec![created()])
        .when(TaskCommand::RemoveLabel {
            actor: member(),
            label: bug(),
        })
        .then_expect_events(vec![]);
}

#[test]
fn a_task_holds_at_most_the_label_limit() {
    let mut given = vec![created()];
    given.extend((0..Label::MAX_PER_TASK).map(|n| TaskEvent::TaskLabelAdded {
        label: label(&format!("l{n}")),
    }));
    framework()
        .given(given)
        .when(TaskCommand::AddLabel {
            actor: owner(),
            label: label("one more"),
        })
        .then_expect_error(TaskError::TooManyLabels {
            max: Label::MAX_PER_TASK,
        });
}

// ---- Attachments ----

fn attachment(id: u128) -> Attachment {
    let attachment_id = Uuid::from_u128(id);
    Attachment {
        attachment_id,
        file_name: crate::FileName::clean("notes.txt").expect("a valid name"),
        content_type: "text/plain".to_owned(),
        size: 5,
        sha256: "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824".to_owned(),
        storage_key: format!("tasks/{TASK}/{attachment_id}"),
    }
}

fn attached(id: u128) -> TaskEvent {
    TaskEvent::AttachmentAdded {
        attachment: attachment(id),
        uploaded_by: OWNER,
    }
}

#[test]
fn a_member_attaches_a_file_once_and_removes_it_with_its_storage_key() {
    framework()
        .given(vec![created()])
        .when(TaskCommand::AddAttachment {
            actor: owner(),
            attachment: attachment(1),
        })
        .then_expect_events(vec![attached(1)]);
    framework()
        .given(vec![created(), attached(1)])
        .when(TaskCommand::AddAttachment {
            actor: owner(),
            attachment: attachment(1),
        })
        .then_expect_error(TaskError::AttachmentExists);
    framework()
        .given(vec![created(), attached(1)])
        .when(TaskCommand::RemoveAttachment {
            actor: member(),
            attachment_id: Uuid::from_u128(1),
        })
        .then_expect_events(vec![TaskEvent::AttachmentRemoved {
            attachment_id: Uuid::from_u128(1),
            storage_key: attachment(1).storage_key,
        }]);
    framework()
        .given(vec![created(), attached(1)])
        .when(TaskCommand::RemoveAttachment {
            actor: member(),
            attachment_id: Uuid::from_u128(2),
        })
        .then_expect_error(TaskError::AttachmentNotFound);
}

#[test]
fn strangers_and_deleted_tasks_take_no_attachment() {
    framework()
        .given(vec![created()])
        .when(TaskCommand::AddAttachment {
            actor: stranger(),
            attachment: attachment(1),
        })
        .then_expect_error(TaskError::Forbidden);
    framework()
        .given(vec![created(), attached(1)])
        .when(TaskCommand::RemoveAttachment {
            actor: stranger(),
            attachment_id: Uuid::from_u128(1),
        })
        .then_expect_error(TaskError::Forbidden);
    framework()
        .given(vec![created(), TaskEvent::TaskDeleted])
        .when(TaskCommand::AddAttachment {
            actor: owner(),
            attachment: attachment(1),
        })
        .then_expect_error(TaskError::Deleted);
}

#[test]
fn a_task_holds_at_most_the_attachment_limit() {
    let mut given = vec![created()];
    given.extend((0..Attachment::MAX_PER_TASK as u128).map(|n| attached(n + 10)));
    framework()
        .given(given)
        .when(TaskCommand::AddAttachment {
            actor: owner(),
            attachment: attachment(1),
        })
        .then_expect_error(TaskError::TooManyAttachments {
            max: Attachment::MAX_PER_TASK,
        });
}

#[test]
fn the_attachment_check_asked_before_an_upload_agrees_with_the_command() {
    let services = FakeTaskServices::default().handle();
    let task_with = |events: Vec<TaskEvent>| {
        let mut task = Task::default();
        for event in events {
            cqrs_es::Aggregate::apply(&mut task, event);
        }
        task
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime");
    let check =
        |task: &Task, actor: Actor| runtime.block_on(task.check_attach(actor, services.as_ref()));
    assert_eq!(check(&Task::default(), owner()), Err(TaskError::NotFound));
    assert_eq!(check(&task_with(vec![created()]), owner()), Ok(()));
    assert_eq!(
        check(&task_with(vec![created()]), stranger()),
        Err(TaskError::Forbidden)
    );
    assert_eq!(
        check(&task_with(vec![created(), TaskEvent::TaskDeleted]), owner()),
        Err(TaskError::Deleted)
    );
}

#[test]
fn attachment_events_have_a_flat_documented_shape() {
    assert_eq!(
        serde_json::to_value(attached(1)).expect("JSON"),
        serde_json::json!({ "AttachmentAdded": {
            "attachment_id": Uuid::from_u128(1),
            "file_name": "notes.txt",
            "content_type": "text/plain",
            "size": 5,
            "sha256": "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
            "storage_key": format!("tasks/{TASK}/{}", Uuid::from_u128(1)),
            "uploaded_by": OWNER,
        }})
    );
    let back: TaskEvent =
        serde_json::from_value(serde_json::to_value(attached(1)).expect("JSON")).expect("back");
    assert_eq!(back, attached(1));
}

// ---- Edit ----

#[test]
fn editing_writes_only_the_changed_fields() {
    framework()
        .given(vec![created()])
        .when(TaskCommand::Edit {
            actor: owner(),
            title: Some(title("Write docs")),
            description: Some(description("only the README")),
        })
        .then_expect_events(vec![TaskEvent::TaskEdited {
            title: None,
            description: Some(description("only the README")),
        }]);
}

#[test]
fn an_edit_that_changes_nothing_writes_no_event() {
    framework()
        .given(vec![created()])
        .when(TaskCommand::Edit {
            actor: member(),
            title: Some(title("  Write docs ")),
            description: None,
        })
        .then_expect_events(vec![]);
}

#[test]
fn a_stranger_cannot_edit_a_task() {
    framework()
        .given(vec![created()])
        .when(TaskCommand::Edit {
            actor: stranger(),
            title: Some(title("Mine now")),
            description: None,
        })
        .then_expect_error(TaskError::Forbidden);
}

// ---- Assign ----

#[test]
fn assigning_a_member_writes_task_assigned() {
    framework()
        .given(vec![created()])
        .when(TaskCommand::Assign {
            actor: owner(),
            assignee_id: Some(MEMBER),
        })
        .then_expect_events(vec![TaskEvent::TaskAssigned {
            assignee_id: MEMBER,
        }]);
}

#[test]
fn reassigning_writes_task_assigned() {
    framework()
        .given(vec![created_in(PROJECT, Some(MEMBER))])
        .when(TaskCommand::Assign {
            actor: root(),
            assignee_id: Some(OWNER),
        })
        .then_expect_events(vec![TaskEvent::TaskAssigned { assignee_id: OWNER }]);
}

#[test]
fn unassigning_writes_the_previous_assignee() {
    framework()
        .given(vec![created_in(PROJECT, Some(MEMBER))])
        .when(TaskCommand::Assign {
            actor: member(),
            assignee_id: None,
        })
        .then_expect_events(vec![TaskEvent::TaskUnassigned {
            previous_assignee_id: MEMBER,
        }]);
}

#[test]
fn assigning_the_current_assignee_or_unassigning_nobody_writes_no_event() {
    framework()
        .given(vec![created_in(PROJECT, Some(MEMBER))])
        .when(TaskCommand::Assign {
            actor: owner(),
            assignee_id: Some(MEMBER),
        })
        .then_expect_events(vec![]);
    framework()
        .given(vec![created()])
        .when(TaskCommand::Assign {
            actor: owner(),
            assignee_id: None,
        })
        .then_expect_events(vec![]);
}

#[test]
fn assigning_a_non_member_is_invalid() {
    framework()
        .given(vec![created()])
        .when(TaskCommand::Assign {
            actor: owner(),
            assignee_id: Some(STRANGER),
        })
        .then_expect_error(TaskError::AssigneeNotMember {
            assignee_id: STRANGER,
        });
}

// ---- ChangeStatus ----

#[test]
fn every_allowed_transition_writes_its_event() {
    for (from, to) in ALLOWED_TRANSITIONS {
        let mut given = vec![created()];
        if from != TaskStatus::Pending {
            given.push(status_changed(TaskStatus::Pending, from));
        }
        framework()
            .given(given)
            .when(TaskCommand::ChangeStatus {
                actor: member(),
                status: to,
            })
            .then_expect_events(vec![status_changed(from, to)]);
    }
}

#[test]
fn every_other_transition_is_refused() {
    for from in TaskStatus::ALL {
        for to in TaskStatus::ALL {
            if from == to || ALLOWED_TRANSITIONS.contains(&(from, to)) {
                continue;
            }
            let mut given = vec![created()];
            if from != TaskStatus::Pending {
                given.push(status_changed(TaskStatus::Pending, from));
            }
            framework()
                .given(given)
                .when(TaskCommand::ChangeStatus {
                    actor: member(),
                    status: to,
                })
                .then_expect_error(TaskError::InvalidTransition { from, to });
        }
    }
}

#[test]
fn cancelled_cannot_become_done_directly() {
    framework()
        .given(vec![
            created(),
            status_changed(TaskStatus::Pending, TaskStatus::Cancelled),
        ])
        .when(TaskCommand::ChangeStatus {
            actor: owner(),
            status: TaskStatus::Done,
        })
        .then_expect_error(TaskError::InvalidTransition {
            from: TaskStatus::Cancelled,
            to: TaskStatus::Done,
        });
}

#[test]
fn the_same_status_is_refused() {
    framework()
        .given(vec![created()])
        .when(TaskCommand::ChangeStatus {
            actor: owner(),
            status: TaskStatus::Pending,
        })
        .then_expect_error(TaskError::StatusUnchanged {
            status: TaskStatus::Pending,
        });
}

// ---- SetDueDate ----

#[test]
fn setting_a_new_due_date_writes_an_event() {
    framework()
        .given(vec![created()])
        .when(TaskCommand::SetDueDate {
            actor: member(),
            due_date: Some(date(2030, 2, 1)),
        })
        .then_expect_events(vec![TaskEvent::TaskDueDateChanged {
            due_date: Some(date(2030, 2, 1)),
        }]);
}

#[test]
fn clearing_the_due_date_writes_an_event() {
    framework()
        .given(vec![created()])
        .when(TaskCommand::SetDueDate {
            actor: member(),
            due_date: None,
        })
        .then_expect_events(vec![TaskEvent::TaskDueDateChanged { due_date: None }]);
}

#[test]
fn the_same_due_date_writes_no_event() {
    framework()
        .given(vec![created()])
        .when(TaskCommand::SetDueDate {
            actor: member(),
            due_date: Some(date(2030, 1, 31)),
        })
        .then_expect_events(vec![]);
}

// ---- Delete ----

#[test]
fn a_member_deletes_a_task() {
    framework()
        .given(vec![created()])
        .when(TaskCommand::Delete { actor: member() })
        .then_expect_events(vec![TaskEvent::TaskDeleted]);
}

// ---- refusals shared by every command after Create ----

#[test]
fn every_command_on_a_never_created_task_is_not_found() {
    for command in every_other_command(owner()) {
        framework()
            .given_no_previous_events()
            .when(command)
            .then_expect_error(TaskError::NotFound);
    }
}

#[test]
fn every_command_on_a_deleted_task_is_refused_as_deleted() {
    for command in every_other_command(owner()) {
        framework()
            .given(vec![created(), TaskEvent::TaskDeleted])
            .when(command)
            .then_expect_error(TaskError::Deleted);
    }
    framework()
        .given(vec![created(), TaskEvent::TaskDeleted])
        .when(create_in(PROJECT, owner(), None))
        .then_expect_error(TaskError::AlreadyExists);
}

#[test]
fn every_command_from_a_stranger_is_forbidden() {
    for command in every_other_command(stranger()) {
        framework()
            .given(vec![created()])
            .when(command)
            .then_expect_error(TaskError::Forbidden);
    }
}

#[test]
fn every_command_in_an_archived_project_is_refused() {
    for command in every_other_command(owner()) {
        framework()
            .given(vec![created_in(ARCHIVED_PROJECT, None)])
            .when(command)
            .then_expect_error(TaskError::ProjectArchived);
    }
}

#[test]
fn every_command_whose_project_vanished_is_project_not_found() {
    for command in every_other_command(root()) {
        framework()
            .given(vec![created_in(MISSING_PROJECT, None)])
            .when(command)
            .then_expect_error(TaskError::ProjectNotFound);
    }
}

#[test]
fn every_command_while_the_project_look_up_fails_is_unavailable() {
    for command in every_other_command(owner()) {
        TestFramework::<Task>::with(FakeTaskServices::down().handle())
            .given(vec![created()])
            .when(command)
            .then_expect_error(TaskError::Unavailable(ServiceError::new(
                "project table down",
            )));
    }
}

// ---- state, events, errors ----

#[test]
fn applied_events_build_the_state() {
    let (task, events) = check_replay::<Task>(
        &FakeTaskServices::default().handle(),
        vec![
            create_in(PROJECT, member(), Some(MEMBER)),
            TaskCommand::ChangeStatus {
                actor: member(),
                status: TaskStatus::InProgress,
            },
            TaskCommand::Assign {
                actor: owner(),
                assignee_id: None,
            },
            TaskCommand::Delete { actor: owner() },
        ],
    );
    assert_eq!(events.len(), 4);
    let state = task.state().expect("the aggregate exists");
    assert_eq!(state.status, TaskStatus::InProgress);
    assert_eq!(state.assignee_id, None);
    assert!(state.deleted);
}

#[test]
fn statuses_serialize_snake_case() {
    let names: Vec<_> = TaskStatus::ALL
        .iter()
        .map(|status| serde_json::to_value(status).expect("JSON round trip"))
        .collect();
    assert_eq!(
        names,
        vec!["pending", "in_progress", "done", "cancelled"]
            .into_iter()
            .map(serde_json::Value::from)
            .collect::<Vec<_>>()
    );
    for status in TaskStatus::ALL {
        assert_eq!(
            serde_json::to_value(status).expect("JSON round trip"),
            status.as_str()
        );
    }
    assert_eq!(TaskStatus::default(), TaskStatus::Pending);
}

#[test]
fn event_types_are_the_variant_names_at_their_current_versions() {
    let events = [
        (created(), "TaskCreated"),
        (
            TaskEvent::TaskEdited {
                title: None,
                description: None,
            },
            "TaskEdited",
        ),
        (
            TaskEvent::TaskAssigned { assignee_id: OWNER },
            "TaskAssigned",
        ),
        (
            TaskEvent::TaskUnassigned {
                previous_assignee_id: OWNER,
            },
            "TaskUnassigned",
        ),
        (
            status_changed(TaskStatus::Pending, TaskStatus::Done),
            "TaskStatusChanged",
        ),
        (
            TaskEvent::TaskDueDateChanged { due_date: None },
            "TaskDueDateChanged",
        ),
        (
            TaskEvent::TaskPriorityChanged {
                from: TaskPriority::Normal,
                to: TaskPriority::High,
            },
            "TaskPriorityChanged",
        ),
        (
            TaskEvent::TaskLabelAdded { label: label("x") },
            "TaskLabelAdded",
        ),
        (
            TaskEvent::TaskLabelRemoved { label: label("x") },
            "TaskLabelRemoved",
        ),
        (attached(1), "AttachmentAdded"),
        (
            TaskEvent::AttachmentRemoved {
                attachment_id: Uuid::from_u128(1),
                storage_key: "k".to_owned(),
            },
            "AttachmentRemoved",
        ),
        (TaskEvent::TaskDeleted, "TaskDeleted"),
    ];
    for (event, event_type) in events {
        assert_eq!(event.event_type(), event_type);
        // TaskCreated gained its priority and labels in 2.0; the others never changed.
        let version = if event_type == "TaskCreated" {
            "2.0"
        } else {
            "1.0"
        };
        assert_eq!(event.event_version(), version, "{event_type}");
    }
}

#[test]
fn created_event_json_has_the_documented_shape() {
    assert_eq!(
        serde_json::to_value(created()).expect("JSON round trip"),
        serde_json::json!({ "TaskCreated": {
            "task_id": TASK,
            "project_id": PROJECT,
            "title": "Write docs",
            "description": "all of them",
            "assignee_id": null,
            "due_date": "2030-01-31",
            "status": "pending",
            "created_by": MEMBER,
            "priority": "normal",
            "labels": [],
        }})
    );
    assert_eq!(
        serde_json::to_value(status_changed(TaskStatus::InProgress, TaskStatus::Done))
            .expect("JSON round trip"),
        serde_json::json!({ "TaskStatusChanged": { "from": "in_progress", "to": "done" } })
    );
}

#[test]
fn errors_map_to_their_kinds() {
    use TaskError as E;
    for (error, kind) in [
        (E::NotFound, ErrorKind::NotFound),
        (E::Deleted, ErrorKind::NotFound),
        (E::ProjectNotFound, ErrorKind::NotFound),
        (E::Forbidden, ErrorKind::Forbidden),
        (
            E::AssigneeNotMember {
                assignee_id: STRANGER,
            },
            ErrorKind::Invalid,
        ),
        (E::AlreadyExists, ErrorKind::Conflict),
        (E::ProjectArchived, ErrorKind::Conflict),
        (
            E::StatusUnchanged {
                status: TaskStatus::Done,
            },
            ErrorKind::Conflict,
        ),
        (
            E::InvalidTransition {
                from: TaskStatus::Cancelled,
                to: TaskStatus::Done,
            },
            ErrorKind::Conflict,
        ),
        (
            E::Unavailable(ServiceError::new("x")),
            ErrorKind::Unavailable,
        ),
    ] {
        assert_eq!(error.kind(), kind, "{error:?}");
    }
    assert_eq!(
        E::InvalidTransition {
            from: TaskStatus::Cancelled,
            to: TaskStatus::Done
        }
        .to_string(),
        "cannot move a task from cancelled to done"
    );
}

// ---- property: replaying accepted events equals the running state ----

fn arb_actor() -> impl Strategy<Value = Actor> {
    prop_oneof![
        3 => Just(owner()),
        3 => Just(member()),
        1 => Just(stranger()),
        1 => Just(root()),
    ]
}

fn arb_user_id() -> impl Strategy<Value = Uuid> {
    prop_oneof![Just(OWNER), Just(MEMBER), Just(STRANGER)]
}

fn arb_status() -> impl Strategy<Value = TaskStatus> {
    proptest::sample::select(TaskStatus::ALL.to_vec())
}

fn arb_title() -> impl Strategy<Value = TaskTitle> {
    prop_oneof![Just("Write docs"), Just("Ship it")].prop_map(title)
}

fn arb_description() -> impl Strategy<Value = Description> {
    prop_oneof![Just(""), Just("all of them")].prop_map(description)
}

fn arb_due_date() -> impl Strategy<Value = Option<NaiveDate>> {
    proptest::option::of((1_u32..=3).prop_map(|day| date(2030, 1, day)))
}

fn arb_create() -> impl Strategy<Value = TaskCommand> {
    (
        prop_oneof![4 => Just(PROJECT), 1 => Just(ARCHIVED_PROJECT), 1 => Just(MISSING_PROJECT)],
        arb_actor(),
        arb_title(),
        arb_description(),
        proptest::option::of(arb_user_id()),
        arb_due_date(),
        arb_priority(),
        proptest::collection::btree_set(arb_label(), 0..3),
    )
        .prop_map(
            |(project_id, actor, title, description, assignee_id, due_date, priority, labels)| {
                TaskCommand::Create {
                    task_id: TASK,
                    actor,
                    project_id,
                    title,
                    description,
                    assignee_id,
                    due_date,
                    priority,
                    labels,
                }
            },
        )
}

fn arb_priority() -> impl Strategy<Value = TaskPriority> {
    proptest::sample::select(TaskPriority::ALL.to_vec())
}

fn arb_label() -> impl Strategy<Value = Label> {
    prop_oneof![Just("bug"), Just("ui"), Just("docs")].prop_map(label)
}

fn arb_command() -> impl Strategy<Value = TaskCommand> {
    prop_oneof![
        1 => arb_create(),
        2 => (
            arb_actor(),
            proptest::option::of(arb_title()),
            proptest::option::of(arb_description()),
        )
            .prop_map(|(actor, title, description)| TaskCommand::Edit { actor, title, description }),
        3 => (arb_actor(), proptest::option::of(arb_user_id()))
            .prop_map(|(actor, assignee_id)| TaskCommand::Assign { actor, assignee_id }),
        5 => (arb_actor(), arb_status())
            .prop_map(|(actor, status)| TaskCommand::ChangeStatus { actor, status }),
        2 => (arb_actor(), arb_due_date())
            .prop_map(|(actor, due_date)| TaskCommand::SetDueDate { actor, due_date }),
        2 => (arb_actor(), arb_priority())
            .prop_map(|(actor, priority)| TaskCommand::SetPriority { actor, priority }),
        2 => (arb_actor(), arb_label())
            .prop_map(|(actor, label)| TaskCommand::AddLabel { actor, label }),
        2 => (arb_actor(), arb_label())
            .prop_map(|(actor, label)| TaskCommand::RemoveLabel { actor, label }),
        2 => (arb_actor(), 1..4_u128).prop_map(|(actor, id)| TaskCommand::AddAttachment {
            actor,
            attachment: attachment(id),
        }),
        1 => (arb_actor(), 1..4_u128).prop_map(|(actor, id)| TaskCommand::RemoveAttachment {
            actor,
            attachment_id: Uuid::from_u128(id),
        }),
        1 => arb_actor().prop_map(|actor| TaskCommand::Delete { actor }),
    ]
}

proptest! {
    #[test]
    fn replaying_accepted_task_events_rebuilds_the_state(
        start_created in proptest::bool::weighted(0.8),
        commands in proptest::collection::vec(arb_command(), 0..40),
        down in proptest::bool::weighted(0.1),
    ) {
        let services = FakeTaskServices { down, ..FakeTaskServices::default() }.handle();
        let start = start_created.then(|| create_in(PROJECT, member(), None));
        let (task, events) = check_replay::<Task>(&services, start.into_iter().chain(commands).collect());
        if let Some(state) = task.state() {
            // An assignee is always someone of the project.
            prop_assert!(state.assignee_id.is_none_or(|assignee| assignee != STRANGER));
        }
        // Every status change the aggregate accepted is in the table.
        for event in &events {
            if let TaskEvent::TaskStatusChanged { from, to } = event {
                prop_assert!(ALLOWED_TRANSITIONS.contains(&(*from, *to)));
            }
        }
    }
}

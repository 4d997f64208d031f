//! Synthetic, valid event streams (users, projects, tasks and their changes), deterministic for
//! a seed: for the property tests, the end-to-end tests and the replay benchmark.

use chrono::{Duration, NaiveDate, TimeZone as _, Utc};
use std::collections::BTreeSet;

use domain::{
    Age, AggregateType, Attachment, Description, Email, FileName, Label, PasswordHash, PersonName,
    ProjectEvent, ProjectName, Role, TaskEvent, TaskPriority, TaskStatus, TaskTitle, UserEvent,
    Username,
};
use event_store::Metadata;
use event_store::read::Envelope;
use uuid::Uuid;

/// One event of a workload, as stored in the `events` table.
#[derive(Debug, Clone)]
pub struct WorkloadEvent {
    /// Whose event it is.
    pub aggregate_type: AggregateType,
    /// The aggregate id.
    pub aggregate_id: Uuid,
    /// Its sequence.
    pub sequence: i64,
    /// The event type (the payload's tag).
    pub event_type: String,
    /// The externally tagged payload.
    pub payload: serde_json::Value,
    /// Who caused it.
    pub actor: Uuid,
}

impl WorkloadEvent {
    /// The `metadata` column.
    #[must_use]
    pub fn metadata(&self) -> serde_json::Value {
        serde_json::json!(self.stored_metadata().into_map())
    }

    fn stored_metadata(&self) -> Metadata {
        Metadata {
            user_id: Some(self.actor),
            request_id: format!("req-{}-{}", self.aggregate_id.simple(), self.sequence),
            correlation_id: "workload".to_owned(),
            ..Metadata::default()
        }
    }

    /// The version this build writes the event with.
    #[must_use]
    pub fn event_version(&self) -> &'static str {
        domain::upcast::current_version(self.aggregate_type, &self.event_type)
    }

    /// The envelope of this event at `global_position` (event id and time derived from it).
    #[must_use]
    pub fn envelope(&self, global_position: i64) -> Envelope {
        Envelope {
            event_id: Uuid::from_u128(u128::try_from(global_position).unwrap_or(0)),
            aggregate_type: self.aggregate_type,
            aggregate_id: self.aggregate_id.to_string(),
            sequence: self.sequence,
            global_position,
            event_type: self.event_type.clone(),
            event_version: self.event_version().to_owned(),
            occurred_at: Utc
                .timestamp_millis_opt(1_767_225_600_000 + global_position * 1000)
                .single()
                .unwrap_or_default(),
            metadata: self.stored_metadata(),
            payload: self.payload.clone(),
        }
    }
}

/// A small deterministic generator (xorshift64*).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// A number below `n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let value = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        usize::try_from(value % (n.max(1) as u64)).unwrap_or(0)
    }
}

fn tag(payload: &serde_json::Value) -> String {
    match payload {
        serde_json::Value::String(tag) => tag.clone(),
        serde_json::Value::Object(map) => map.keys().next().cloned().unwrap_or_default(),
        _ => String::new(),
    }
}

fn uuid(rng: &mut Rng) -> Uuid {
    let high = rng.below(usize::MAX) as u128;
    let low = rng.below(usize::MAX) as u128;
    uuid::Builder::from_random_bytes(((high << 64) | low).to_le_bytes()).into_uuid()
}

struct Builder {
    events: Vec<WorkloadEvent>,
}

impl Builder {
    fn push(
        &mut self,
        aggregate_type: AggregateType,
        id: Uuid,
        sequence: &mut i64,
        payload: serde_json::Value,
        actor: Uuid,
    ) {
        *sequence += 1;
        self.events.push(WorkloadEvent {
            aggregate_type,
            aggregate_id: id,
            sequence: *sequence,
            event_type: tag(&payload),
            payload,
            actor,
        });
    }
}

fn json<T: serde::Serialize>(event: &T) -> serde_json::Value {
    serde_json::to_value(event).unwrap_or_default()
}

/// Roughly `target` events: `users` users, a project per 4 users, then tasks created and
/// changed (assigned, edited, status changes, due dates, priorities, labels, deletions, project
/// renames).
#[must_use]
pub fn workload(seed: u64, users: usize, target: usize) -> Vec<WorkloadEvent> {
    let mut rng = Rng::new(seed);
    let mut b = Builder {
        events: Vec::with_capacity(target),
    };
    let name = |text: &str| PersonName::parse(text).ok();
    let mut user_ids = Vec::new();
    let mut user_sequences = Vec::new();
    for index in 0..users.max(1) {
        let id = uuid(&mut rng);
        let mut sequence = 0;
        let (Ok(username), Ok(email), Some(first), Some(last)) = (
            Username::parse(&format!("user{index}_{seed}")),
            Email::parse(&format!("user{index}@example.com")),
            name("Ada"),
            name(&format!("Lovelace{index}")),
        ) else {
            continue;
        };
        b.push(
            AggregateType::User,
            id,
            &mut sequence,
            json(&UserEvent::UserRegistered {
                user_id: id,
                username,
                email,
                password_hash: PasswordHash::new("$argon2id$v=19$x"),
                first_name: first,
                last_name: last,
                age: Age::parse(30).ok(),
                role: Role::User,
            }),
            id,
        );
        user_ids.push(id);
        user_sequences.push(sequence);
    }
    struct Project {
        id: Uuid,
        sequence: i64,
        owner: Uuid,
    }
    let mut projects = Vec::new();
    for index in 0..user_ids.len().div_ceil(4) {
        let owner = user_ids[index * 4 % user_ids.len()];
        let id = uuid(&mut rng);
        let mut sequence = 0;
        let Ok(project_name) = ProjectName::parse(&format!("Project {index}")) else {
            continue;
        };
        b.push(
            AggregateType::Project,
            id,
            &mut sequence,
            json(&ProjectEvent::ProjectCreated {
                project_id: id,
                owner_id: owner,
                name: project_name,
                description: Description::empty(),
                deadline: NaiveDate::from_ymd_opt(2030, 1, 1),
            }),
            owner,
        );
        for member in user_ids.iter().skip(index * 4 + 1).take(3) {
            b.push(
                AggregateType::Project,
                id,
                &mut sequence,
                json(&ProjectEvent::ProjectMemberAdded { user_id: *member }),
                owner,
            );
        }
        projects.push(Project {
            id,
            sequence,
            owner,
        });
    }
    struct Task {
        id: Uuid,
        sequence: i64,
        project: usize,
        status: TaskStatus,
        assignee: Option<Uuid>,
        priority: TaskPriority,
        labels: BTreeSet<Label>,
        attachments: Vec<Uuid>,
        deleted: bool,
    }
    let mut tasks: Vec<Task> = Vec::new();
    let labels: Vec<Label> = ["bug", "ui", "docs", "needs review"]
        .into_iter()
        .filter_map(|label| Label::parse(label).ok())
        .collect();
    let day0 = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap_or_default();
    while b.events.len() < target && !projects.is_empty() {
        let choice = rng.below(10);
        if tasks.is_empty() || choice < 3 {
            let project = rng.below(projects.len());
            let id = uuid(&mut rng);
            let mut sequence = 0;
            let owner = projects[project].owner;
            let assignee = (rng.below(2) == 0).then(|| user_ids[rng.below(user_ids.len())]);
            let Ok(title) = TaskTitle::parse(&format!("Task {}", tasks.len())) else {
                continue;
            };
            let priority = TaskPriority::ALL[rng.below(TaskPriority::ALL.len())];
            let first_labels: BTreeSet<Label> = (rng.below(3) == 0)
                .then(|| labels[rng.below(labels.len())].clone())
                .into_iter()
                .collect();
            b.push(
                AggregateType::Task,
                id,
                &mut sequence,
                json(&TaskEvent::TaskCreated {
                    task_id: id,
                    project_id: projects[project].id,
                    title,
                    description: Description::empty(),
                    assignee_id: assignee,
                    due_date: Some(
                        day0 + Duration::days(i64::try_from(rng.below(400)).unwrap_or(0)),
                    ),
                    status: TaskStatus::Pending,
                    created_by: owner,
                    priority,
                    labels: first_labels.clone(),
                }),
                owner,
            );
            tasks.push(Task {
                id,
                sequence,
                project,
                status: TaskStatus::Pending,
                assignee,
                priority,
                labels: first_labels,
                attachments: Vec::new(),
                deleted: false,
            });
            continue;
        }
        if choice == 9 && rng.below(4) == 1 {
            // A user reads their notifications up to some day of the workload.
            let index = rng.below(user_ids.len());
            let day = i64::try_from(rng.below(400)).unwrap_or(0);
            let up_to = (day0 + Duration::days(day))
                .and_hms_opt(12, 0, 0)
                .unwrap_or_default()
                .and_utc();
            b.push(
                AggregateType::User,
                user_ids[index],
                &mut user_sequences[index],
                json(&UserEvent::UserNotificationsRead { up_to }),
                user_ids[index],
            );
            continue;
        }
        if choice == 9 && rng.below(4) == 0 {
            let index = rng.below(projects.len());
            let project = &mut projects[index];
            let Ok(new_name) =
                ProjectName::parse(&format!("Project {index} v{}", project.sequence))
            else {
                continue;
            };
            b.push(
                AggregateType::Project,
                project.id,
                &mut project.sequence,
                json(&ProjectEvent::ProjectRenamed { name: new_name }),
                project.owner,
            );
            continue;
        }
        let index = rng.below(tasks.len());
        let actor = user_ids[rng.below(user_ids.len())];
        let task = &mut tasks[index];
        if task.deleted {
            continue;
        }
        let payload = match choice {
            3 | 4 => {
                let candidates: Vec<TaskStatus> = TaskStatus::ALL
                    .iter()
                    .copied()
                    .filter(|to| task.status.can_become(*to))
                    .collect();
                let to = candidates[rng.below(candidates.len())];
                let from = task.status;
                task.status = to;
                json(&TaskEvent::TaskStatusChanged { from, to })
            }
            5 => {
                let assignee = user_ids[rng.below(user_ids.len())];
                if task.assignee == Some(assignee) {
                    continue;
                }
                task.assignee = Some(assignee);
                json(&TaskEvent::TaskAssigned {
                    assignee_id: assignee,
                })
            }
            6 => {
                let Some(previous) = task.assignee.take() else {
                    continue;
                };
                json(&TaskEvent::TaskUnassigned {
                    previous_assignee_id: previous,
                })
            }
            7 if rng.below(2) == 0 => {
                let to = TaskPriority::ALL[rng.below(TaskPriority::ALL.len())];
                if to == task.priority {
                    continue;
                }
                let from = std::mem::replace(&mut task.priority, to);
                json(&TaskEvent::TaskPriorityChanged { from, to })
            }
            7 => json(&TaskEvent::TaskEdited {
                title: TaskTitle::parse(&format!("Task {index} e{}", task.sequence)).ok(),
                description: None,
            }),
            8 if rng.below(2) == 0 => {
                let label = labels[rng.below(labels.len())].clone();
                if task.labels.remove(&label) {
                    json(&TaskEvent::TaskLabelRemoved { label })
                } else {
                    task.labels.insert(label.clone());
                    json(&TaskEvent::TaskLabelAdded { label })
                }
            }
            8 if rng.below(3) == 0 => {
                if !task.attachments.is_empty() && rng.below(2) == 0 {
                    let attachment_id = task.attachments.remove(0);
                    json(&TaskEvent::AttachmentRemoved {
                        attachment_id,
                        storage_key: format!("tasks/{}/{attachment_id}", task.id),
                    })
                } else {
                    let attachment_id = uuid(&mut rng);
                    task.attachments.push(attachment_id);
                    let Ok(file_name) = FileName::clean(&format!("file {attachment_id}.txt"))
                    else {
                        continue;
                    };
                    json(&TaskEvent::AttachmentAdded {
                        attachment: Attachment {
                            attachment_id,
                            file_name,
                            content_type: "text/plain".to_owned(),
                            size: u64::try_from(rng.below(100_000)).unwrap_or(0) + 1,
                            sha256: format!("{:064x}", attachment_id.as_u128()),
                            storage_key: format!("tasks/{}/{attachment_id}", task.id),
                        },
                        uploaded_by: actor,
                    })
                }
            }
            8 => json(&TaskEvent::TaskDueDateChanged {
                due_date: (rng.below(3) > 0)
                    .then(|| day0 + Duration::days(i64::try_from(rng.below(400)).unwrap_or(0))),
            }),
            _ => {
                if rng.below(5) > 0 {
                    continue;
                }
                task.deleted = true;
                json(&TaskEvent::TaskDeleted)
            }
        };
        let _ = projects[task.project].id;
        b.push(
            AggregateType::Task,
            task.id,
            &mut task.sequence,
            payload,
            actor,
        );
    }
    b.events
}

/// Inserts `events` the way postgres-es does (the column defaults fill position, transaction,
/// event id and time), 500 rows per statement.
///
/// # Errors
/// The insert failed (a duplicate sequence included).
pub async fn insert(pool: &sqlx::PgPool, events: &[WorkloadEvent]) -> sqlx::Result<()> {
    for chunk in events.chunks(500) {
        insert_statement(chunk).build().execute(pool).await?;
    }
    Ok(())
}

/// Inserts one event with `executor` (a pool, or a transaction the test keeps open).
///
/// # Errors
/// The insert failed (a duplicate sequence included).
pub async fn insert_one<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    event: &WorkloadEvent,
) -> sqlx::Result<()> {
    insert_statement(std::slice::from_ref(event))
        .build()
        .execute(executor)
        .await?;
    Ok(())
}

fn insert_statement(events: &[WorkloadEvent]) -> sqlx::QueryBuilder<'_, sqlx::Postgres> {
    let mut builder = sqlx::QueryBuilder::new(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) ",
    );
    builder.push_values(events, |mut row, event| {
        row.push_bind(event.aggregate_type.as_str())
            .push_bind(event.aggregate_id.to_string())
            .push_bind(event.sequence)
            .push_bind(&event.event_type)
            .push_bind(event.event_version())
            .push_bind(&event.payload)
            .push_bind(event.metadata());
    });
    builder
}

//! Who may work in a project, as task commands ask it: answered from memory, checked by the
//! commit.
//!
//! Every task command asks the registry for its project's [`ProjectAccess`] (owner, members,
//! archived). The registry keeps its most recent answers in an [`AccessCache`], each with the
//! project's `access_version`: a counter that every change to the access (a member added or
//! removed, the project archived) adds one to, in the transaction of that change's event.
//!
//! A cached answer is never trusted on its own. While a [`crate::CommandBus`] decides and
//! commits, it collects the projects and versions the decision used ([`checked`]); the
//! commit's `INSERT` then inserts the events only if every one of those projects is still at
//! that version. If one moved on, nothing is inserted: the repository forgets the stale answers
//! and fails as a lost optimistic lock, and the bus decides once more on fresh answers. A
//! refusal (or a command that changes nothing) decided on a cached answer is decided again on
//! fresh ones too: a user just added to a project is not turned away by an old member list.
//!
//! So a command on a project in steady use costs no look-up, and an answer is as good as one
//! read by the commit's own statement (with several command-api replicas too): a decision made
//! on an answer older than the `INSERT`'s snapshot never commits. The check takes no lock, so a
//! change that commits while the `INSERT` runs orders after the task's events, as between any
//! two commands that do not wait for each other (ADR 0002).

use std::cell::RefCell;
use std::sync::{Arc, Mutex, PoisonError};

use domain::ProjectAccess;
use hashlink::LruCache;
use uuid::Uuid;

/// The registry's recent answers: project → (access, `access_version`), least recently used out
/// (none kept when the capacity is 0). Cheap to clone: the clones share the answers.
///
/// An entry is the owner, the archived flag and the member ids: under 2 KiB for a project of 50
/// members, so 10,000 entries stay under about 20 MiB.
#[derive(Debug, Clone)]
pub(crate) struct AccessCache(Option<Arc<Mutex<Answers>>>);

/// Project → (access, `access_version`).
type Answers = LruCache<Uuid, (ProjectAccess, i64)>;

impl AccessCache {
    pub(crate) fn new(capacity: usize) -> Self {
        Self((capacity > 0).then(|| Arc::new(Mutex::new(LruCache::new(capacity)))))
    }

    fn with<R>(&self, change: impl FnOnce(&mut Answers) -> R) -> Option<R> {
        let cache = self.0.as_ref()?;
        Some(change(
            &mut cache.lock().unwrap_or_else(PoisonError::into_inner),
        ))
    }

    fn get(&self, project_id: Uuid) -> Option<(ProjectAccess, i64)> {
        self.with(|cache| cache.get(&project_id).cloned()).flatten()
    }

    /// Keeps `access` at `version` unless the cache has a newer answer already (a look-up that
    /// read before a change may finish after one that read after it).
    fn insert(&self, project_id: Uuid, access: ProjectAccess, version: i64) {
        self.with(|cache| {
            if cache
                .peek(&project_id)
                .is_none_or(|(_, cached)| *cached <= version)
            {
                cache.insert(project_id, (access, version));
            }
        });
    }

    fn remove(&self, project_id: Uuid) {
        self.with(|cache| cache.remove(&project_id));
    }
}

/// The project accesses one decision used, for its commit to check.
#[derive(Debug, Default)]
pub(crate) struct AccessChecks {
    /// (project, `access_version`), each project once.
    projects: Vec<(Uuid, i64)>,
    /// Where the answers came from, to forget them if they turn out stale.
    cache: Option<AccessCache>,
    /// Whether an answer came from the cache (rather than from PostgreSQL, just now).
    from_cache: bool,
    /// Whether the commit found an answer stale (and inserted nothing).
    stale: bool,
    /// Whether every answer must be read from PostgreSQL (a decision made again).
    fresh: bool,
}

impl AccessChecks {
    /// Whether the decision should be made again on fresh answers: the commit found one stale,
    /// or the decision refused or changed nothing on a cached one (`refused_or_no_op`).
    pub(crate) fn decide_again(&self, refused_or_no_op: bool) -> bool {
        self.stale || (self.from_cache && refused_or_no_op)
    }

    /// Notes that the decision used `project_id`'s access at `version`, from `cache`.
    fn note(&mut self, cache: &AccessCache, project_id: Uuid, version: i64) {
        match self.projects.iter_mut().find(|(id, _)| *id == project_id) {
            Some(noted) => noted.1 = version,
            None => self.projects.push((project_id, version)),
        }
        self.cache.get_or_insert_with(|| cache.clone());
    }

    /// Forgets the cached answers this decision used.
    pub(crate) fn forget(&self) {
        if let Some(cache) = &self.cache {
            for (project_id, _) in &self.projects {
                cache.remove(*project_id);
            }
        }
    }
}

tokio::task_local! {
    /// The checks of the decision being made on this task, set by [`checked`].
    static CHECKS: RefCell<AccessChecks>;
}

/// How a decision gets its project access answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AnswersFrom {
    /// The cache when it has them.
    Cache,
    /// Always PostgreSQL: the decision is made again because one on cached answers failed.
    Database,
}

/// Runs `decide_and_commit` (an aggregate's decision and its commit, on this task), collecting
/// the project accesses the decision uses for the commit to check; returns its output and them.
pub(crate) async fn checked<F: Future>(
    answers: AnswersFrom,
    decide_and_commit: F,
) -> (F::Output, AccessChecks) {
    let checks = AccessChecks {
        fresh: answers == AnswersFrom::Database,
        ..AccessChecks::default()
    };
    CHECKS
        .scope(RefCell::new(checks), async {
            let output = decide_and_commit.await;
            (output, CHECKS.with(RefCell::take))
        })
        .await
}

/// Inside [`checked`] (a command's decision), the cached access of `project_id`, noted as used;
/// outside (a look-up that no commit will check), always `None`.
pub(crate) fn cached(cache: &AccessCache, project_id: Uuid) -> Option<ProjectAccess> {
    CHECKS
        .try_with(|checks| {
            if checks.borrow().fresh {
                return None;
            }
            let (access, version) = cache.get(project_id)?;
            let mut checks = checks.borrow_mut();
            checks.from_cache = true;
            checks.note(cache, project_id, version);
            Some(access)
        })
        .ok()
        .flatten()
}

/// `project_id`'s access at `version`, just read from PostgreSQL: stores it in `cache` and
/// notes that the decision under way (if any) used it.
pub(crate) fn read(cache: &AccessCache, project_id: Uuid, access: ProjectAccess, version: i64) {
    cache.insert(project_id, access, version);
    let _outside_a_command =
        CHECKS.try_with(|checks| checks.borrow_mut().note(cache, project_id, version));
}

/// The checks the commit under way must make, as the two array parameters of the `INSERT`'s
/// check: projects and their versions (empty outside [`checked`]).
pub(crate) fn to_check() -> (Vec<Uuid>, Vec<i64>) {
    CHECKS
        .try_with(|checks| checks.borrow().projects.iter().copied().unzip())
        .unwrap_or_default()
}

/// The commit found a project's access changed since the decision read it, and inserted
/// nothing: forgets the stale answers and marks the decision to be made again.
pub(crate) fn found_stale() {
    let _outside_a_command = CHECKS.try_with(|checks| {
        let mut checks = checks.borrow_mut();
        checks.stale = true;
        checks.forget();
    });
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn access(archived: bool) -> ProjectAccess {
        ProjectAccess {
            owner_id: Uuid::nil(),
            members: BTreeSet::new(),
            archived,
        }
    }

    #[test]
    fn an_answer_read_before_a_change_does_not_replace_one_read_after_it() {
        let cache = AccessCache::new(10);
        let project = Uuid::new_v4();
        cache.insert(project, access(true), 2);
        cache.insert(project, access(false), 1);
        assert_eq!(cache.get(project), Some((access(true), 2)));
        cache.insert(project, access(false), 3);
        assert_eq!(cache.get(project), Some((access(false), 3)));
    }

    #[test]
    fn a_cache_of_capacity_zero_keeps_nothing() {
        let cache = AccessCache::new(0);
        let project = Uuid::new_v4();
        cache.insert(project, access(false), 1);
        assert_eq!(cache.get(project), None);
    }
}

//! The TrainingJobs as this process knows them: the watch cache, with its own newer
//! writes on top and jobs with work in flight as that work will leave them ("assume, then
//! write in the background"), so a job admitted in one pass is never seen as pending in
//! the next while the watch catches up.

use crate::work::{resource_version, InFlight, Landed};
use computenet_api::view;
use computenet_api::TrainingJob;
use foldhash::{HashMap, HashSet};
use kube::runtime::reflector::Store;
use std::future::Future;
use std::sync::Arc;

/// A test-only scope, from COMPUTENET_TEST_NAMESPACE_PREFIX (unset in production): the
/// service sees only TrainingJobs in namespaces with this prefix, so end-to-end tests that
/// share one hub do not act on each other's jobs.
fn test_namespace_prefix() -> Option<&'static str> {
    static PREFIX: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    PREFIX.get_or_init(|| std::env::var("COMPUTENET_TEST_NAMESPACE_PREFIX").ok().filter(|p| !p.is_empty())).as_deref()
}

/// The overlay over the hub's TrainingJob cache.
#[derive(Debug)]
pub struct Overlay {
    /// Objects as last written, until the watch cache catches up with them.
    overrides: HashMap<String, Arc<TrainingJob>>,
    work: InFlight,
}

impl Overlay {
    pub fn new(work: InFlight) -> Self {
        Overlay { overrides: HashMap::default(), work }
    }

    /// The current TrainingJobs.
    pub fn jobs(&mut self, cache: &Store<TrainingJob>) -> Vec<Arc<TrainingJob>> {
        let mut jobs = cache.state();
        // Called several times a pass over every job: no per-job allocation, and no lookup
        // in a map that is empty.
        let mut kept = 0;
        let working = self.work.count() > 0;
        for tj in &mut jobs {
            if self.overrides.is_empty() && !working {
                break;
            }
            let cached = tj.clone();
            let id = view::uid(&cached);
            if let Some(mine) = self.overrides.get(id) {
                if resource_version(mine) > resource_version(tj) {
                    *tj = mine.clone();
                    kept += 1;
                } else {
                    self.overrides.remove(id);
                }
            }
            if let Some(expected) = self.work.expected(id) {
                *tj = expected.clone();
            }
        }
        // Overrides of jobs no longer in the cache (deleted) go; when every one kept was
        // matched above, there are none (the API server gives each object its own UID, so
        // no override is matched twice).
        if self.overrides.len() > kept {
            let seen: HashSet<&str> = jobs.iter().map(|j| view::uid(j)).collect();
            self.overrides.retain(|id, _| seen.contains(id.as_str()));
        }
        if let Some(prefix) = test_namespace_prefix() {
            jobs.retain(|j| j.metadata.namespace.as_deref().is_some_and(|n| n.starts_with(prefix)));
        }
        jobs
    }

    /// Whether the job has work in flight (and so must be left alone this pass).
    pub fn busy(&self, uid: &str) -> bool {
        self.work.contains(uid)
    }

    /// Starts work for a job, seen as `expected` until it lands; false when it is busy.
    pub fn start(&mut self, expected: Arc<TrainingJob>, work: impl Future<Output = Landed> + Send + 'static) -> bool {
        self.work.start(expected, work)
    }

    /// Jobs with work in flight.
    pub fn in_flight(&self) -> usize {
        self.work.count()
    }

    /// The work that landed since the last call; what it stored overrides the cache.
    pub fn landed(&mut self) -> Vec<Landed> {
        let landed = self.work.landed();
        for l in &landed {
            if let Some(stored) = &l.stored {
                self.overrides.insert(l.uid.clone(), stored.clone());
            }
        }
        landed
    }
}

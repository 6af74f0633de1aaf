//! The scheduling pass: snapshot, cycle, then the cycle's decisions as writes.
//!
//! 1. snapshot: the core's input from the hub and the members ([`crate::snapshot`]);
//! 2. cycle: the pure core decides (admit, reserve, preempt, queue) with explanations;
//! 3. plan: each decision becomes a status transition ([`plan`], pure);
//! 4. write: admissions (sealed with the service's key, then dispatch), preemptions and
//!    queue positions start as background work; the overlay shows them as done meanwhile.

use crate::overlay::Overlay;
use crate::seal::{self, AdmissionKey};
use crate::snapshot::Built;
use crate::transitions::{self, Requeue, Transition};
use crate::work::{self, Target};
use computenet_api::training_job::TrainingJobStatus;
use computenet_api::view;
use computenet_api::TrainingJob;
use computenet_core::{Action, AdaptConfig, Adjustment, CycleOutcome, Scheduler, Snapshot};
use computenet_members::Members;
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One write the pass wants.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// Admit, then dispatch.
    Admit(Arc<TrainingJob>, Transition),
    /// Stop the victim on its member, then requeue it.
    Preempt(Arc<TrainingJob>, Transition),
    /// A waiting job's position, reason and explanation.
    Queued(Arc<TrainingJob>, TrainingJobStatus),
    /// A job that cannot enter its queue.
    Problem(Arc<TrainingJob>, TrainingJobStatus),
}

/// The writes that carry out a cycle's outcome (pure). Jobs for which `busy` is true have
/// work in flight and are decided again next pass, on what that work leaves.
pub fn plan(
    jobs: &[Arc<TrainingJob>],
    built: &Built,
    outcome: &CycleOutcome,
    busy: impl Fn(&str) -> bool,
    now: Timestamp,
) -> Vec<Write> {
    let by_uid: HashMap<&str, &Arc<TrainingJob>> = jobs.iter().map(|j| (view::uid(j), j)).collect();
    let mut writes = Vec::new();
    for (id, problem) in &built.problems {
        let Some(tj) = by_uid.get(id.as_str()).filter(|j| !busy(view::uid(j))) else { continue };
        if let Some(status) = transitions::problem(tj, &view::status(tj), problem, now) {
            writes.push(Write::Problem((*tj).clone(), status));
        }
    }
    for decision in &outcome.decisions {
        let Some(tj) = by_uid.get(decision.job.as_str()).filter(|j| !busy(view::uid(j))) else { continue };
        let current = view::status(tj);
        match &decision.action {
            Action::Admit(p) => {
                writes.push(Write::Admit((*tj).clone(), transitions::admitted(tj, &current, p, decision, built, now)));
                continue;
            }
            Action::Preempt { victims, cluster } => {
                for v in victims {
                    let Some(victim) = by_uid.get(v.as_str()).filter(|j| !busy(view::uid(j))) else { continue };
                    let why = format!("preempted on {cluster} for {}", view::job_name(tj));
                    let t = transitions::requeued(victim, &view::status(victim), Requeue::Preempted, &why, now);
                    writes.push(Write::Preempt((*victim).clone(), t));
                }
            }
            _ => {}
        }
        let status = transitions::queued(tj, &current, decision, outcome, now);
        if transitions::differs(&current, &status) {
            writes.push(Write::Queued((*tj).clone(), status));
        }
    }
    writes
}

/// The adjustments of a re-optimisation round as status writes (pure): each running job
/// the round moves or resizes gets its [`transitions::adjusted`] status; jobs with work in
/// flight (`busy`) are left for the next round.
pub fn plan_adjustments(
    jobs: &[Arc<TrainingJob>],
    built: &Built,
    adjustments: &[Adjustment],
    busy: impl Fn(&str) -> bool,
    now: Timestamp,
) -> Vec<(Arc<TrainingJob>, Transition)> {
    let by_uid: HashMap<&str, &Arc<TrainingJob>> = jobs.iter().map(|j| (view::uid(j), j)).collect();
    adjustments
        .iter()
        .filter_map(|a| {
            let tj = by_uid.get(a.job.as_str()).filter(|j| !busy(view::uid(j)))?;
            Some(((*tj).clone(), transitions::adjusted(tj, &view::status(tj), a, built, now)))
        })
        .collect()
}

/// When and how the re-optimisation round runs.
#[derive(Debug, Clone, PartialEq)]
pub struct AdaptPolicy {
    /// Time between rounds; `None` turns them off.
    pub interval: Option<Duration>,
    /// The round's knobs (gain over the restart cost, moves per hour).
    pub config: AdaptConfig,
}

impl Default for AdaptPolicy {
    fn default() -> Self {
        AdaptPolicy { interval: Some(Duration::from_secs(300)), config: AdaptConfig::default() }
    }
}

/// How long a queued job's new position may wait before it is written, when nothing else
/// about the job changed: positions shift with every admission, and rewriting every
/// pending job each pass would load the hub for little use.
pub const POSITION_REFRESH: Duration = Duration::from_secs(5);

/// The scheduling pass and the little state it keeps between passes.
#[allow(missing_debug_implementations)] // kube::Client has no Debug implementation.
pub struct Scheduling {
    client: Client,
    scheduler: Scheduler,
    /// When each queued job's position was last written.
    position_writes: HashMap<String, Instant>,
    /// The key admissions are sealed with.
    key: Arc<AdmissionKey>,
    adapt: AdaptPolicy,
    /// When the last re-optimisation round ran (or the leader started).
    last_round: Instant,
}

impl Scheduling {
    pub fn new(client: Client, scheduler: Scheduler, key: Arc<AdmissionKey>, adapt: AdaptPolicy) -> Self {
        Scheduling { client, scheduler, position_writes: HashMap::new(), key, adapt, last_round: Instant::now() }
    }

    /// Whether a re-optimisation round is due.
    pub fn adapt_due(&self) -> bool {
        self.adapt.interval.is_some_and(|i| self.last_round.elapsed() >= i)
    }

    /// One re-optimisation round over `built` (built after this pass's admissions): the
    /// running restartable jobs the core moves or resizes get their adjustment written,
    /// sealed like an admission; their dispatch then stops the old attempt and starts
    /// the new one.
    pub fn adapt(&mut self, overlay: &mut Overlay, jobs: &[Arc<TrainingJob>], built: &Built, now: Timestamp) {
        self.last_round = Instant::now();
        let mut adaptable = view::adaptable(jobs.iter().map(AsRef::as_ref), &built.running, view::unix(now));
        adaptable.retain(|a| !overlay.busy(&a.job.id));
        // A spent budget admits nothing new: no growth or move (a new attempt) either.
        adaptable.retain(|a| {
            built.queues.iter().find(|q| q.name == a.job.queue).is_none_or(|q| q.budget_exhausted.is_none())
        });
        if adaptable.is_empty() {
            return;
        }
        let snapshot = Snapshot {
            now: view::unix(now),
            pool: &built.pool,
            queues: &built.queues,
            cohorts: &built.cohorts,
            pending: &built.pending,
            running: &built.running,
        };
        let adjustments = self.scheduler.adapt(&snapshot, &adaptable, &self.adapt.config);
        tracing::debug!(adaptable = adaptable.len(), adjustments = adjustments.len(), "re-optimisation round");
        for (tj, mut t) in plan_adjustments(jobs, built, &adjustments, |uid| overlay.busy(uid), now) {
            tracing::info!(job = %view::job_name(&tj), what = ?t.event.as_ref().map(|e| &e.1), "adjusting a running job");
            t.status.admission_seal = seal::seal(&self.key, &tj, &t.status);
            let expected = work::with_status(&tj, &t.status);
            overlay.start(expected, work::adjust(self.client.clone(), tj, t));
        }
    }

    /// The scheduler in force (model and cycle settings).
    pub fn scheduler(&self) -> &Scheduler {
        &self.scheduler
    }

    /// Replaces the throughput model and cycle settings (new profiles were loaded).
    pub fn set_scheduler(&mut self, scheduler: Scheduler) {
        self.scheduler = scheduler;
    }

    /// Replaces the rates learned from running jobs (see [`crate::progress`]).
    pub fn set_learned(&mut self, learned: &computenet_core::learn::LearnedProfiles) {
        if self.scheduler.model.learned != *learned {
            self.scheduler.model.learned = learned.clone();
        }
    }

    /// Steps 2 to 4: the cycle over `built`, and its writes started. `target` says where
    /// an admitted job is dispatched.
    pub fn pass(
        &mut self,
        overlay: &mut Overlay,
        target: impl Fn(&TrainingJob) -> Option<Target>,
        members: &Members,
        jobs: &[Arc<TrainingJob>],
        built: &Built,
        now: Timestamp,
    ) -> CycleOutcome {
        let outcome = self.scheduler.cycle(&Snapshot {
            now: view::unix(now),
            pool: &built.pool,
            queues: &built.queues,
            cohorts: &built.cohorts,
            pending: &built.pending,
            running: &built.running,
        });
        for write in plan(jobs, built, &outcome, |uid| overlay.busy(uid), now) {
            match write {
                Write::Admit(tj, mut t) => {
                    t.status.admission_seal = seal::seal(&self.key, &tj, &t.status);
                    let expected = work::with_status(&tj, &t.status);
                    let target = target(&expected);
                    overlay.start(expected, work::admit_and_dispatch(self.client.clone(), tj, Some(t), target));
                }
                Write::Preempt(victim, t) => {
                    let member = view::placed_on(&victim).and_then(|c| members.get(c)).cloned();
                    let expected = work::with_status(&victim, &t.status);
                    overlay.start(expected, work::stop_then_write(self.client.clone(), victim, member, t));
                }
                Write::Queued(tj, status) => {
                    let id = view::uid(&tj).to_string();
                    let recent = self.position_writes.get(&id).is_some_and(|t| t.elapsed() < POSITION_REFRESH);
                    if recent && transitions::only_position_differs(&view::status(&tj), &status) {
                        continue;
                    }
                    self.position_writes.insert(id, Instant::now());
                    start_write(overlay, &self.client, tj, Transition { status, event: None });
                }
                Write::Problem(tj, status) => {
                    start_write(overlay, &self.client, tj, Transition { status, event: None })
                }
            }
        }
        let live: std::collections::HashSet<&str> = jobs.iter().map(|j| view::uid(j)).collect();
        self.position_writes.retain(|id, _| live.contains(id.as_str()));
        outcome
    }
}

/// Starts a status write as the job's work in flight.
pub fn start_write(overlay: &mut Overlay, client: &Client, tj: Arc<TrainingJob>, t: Transition) {
    let expected = work::with_status(&tj, &t.status);
    overlay.start(expected, work::write_status(client.clone(), tj, t));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{self, MemberView};
    use computenet_api::conditions::{reasons, types};
    use computenet_api::training_job::TrainingJobPhase;
    use computenet_api::{ComputeQueue, MemberCluster};
    use computenet_members::MemberNodes;
    use std::collections::BTreeMap;

    fn member() -> Arc<MemberCluster> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "apiVersion": "computenet.io/v1alpha1", "kind": "MemberCluster", "metadata": {"name": "ai-1"},
                "spec": {"kind": "AI", "site": "s", "kubernetes": {"kubeconfigSecretRef": {"name": "k", "namespace": "n", "key": "kubeconfig"}}}
            }))
            .unwrap(),
        )
    }

    fn gpu_node(name: &str) -> Arc<k8s_openapi::api::core::v1::Node> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": name, "labels": {"nvidia.com/gpu.product": "A100-80G"}},
                "status": {"allocatable": {"cpu": "64", "memory": "512Gi", "nvidia.com/gpu": "8"},
                           "conditions": [{"type": "Ready", "status": "True"}]}
            }))
            .unwrap(),
        )
    }

    fn queue(quota: u32) -> Arc<ComputeQueue> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "apiVersion": "computenet.io/v1alpha1", "kind": "ComputeQueue", "metadata": {"name": "q"},
                "spec": {"namespaceSelector": {}, "quotas": [{"resource": "nvidia.com/gpu", "nominal": quota}]}
            }))
            .unwrap(),
        )
    }

    fn job(name: &str, queue: &str, gpus: i32, created: i64) -> Arc<TrainingJob> {
        let mut tj: TrainingJob = serde_json::from_value(serde_json::json!({
            "apiVersion": "computenet.io/v1alpha1", "kind": "TrainingJob",
            "metadata": {"name": name, "namespace": "team-a", "uid": format!("uid-{name}"), "generation": 1,
                         "creationTimestamp": Timestamp::from_second(created).unwrap().to_string()},
            "spec": {"queueName": queue, "replicas": 1,
                     "resources": {"cpu": "4", "memory": "16Gi", "accelerators": {"count": gpus}},
                     "workload": {"image": "x", "command": ["true"]}, "work": {"gpuHours": 1}}
        }))
        .unwrap();
        tj.status = None;
        Arc::new(tj)
    }

    fn run(jobs: &[Arc<TrainingJob>], quota: u32, busy: &[&str]) -> Vec<Write> {
        let views = vec![MemberView {
            workload_kinds: Vec::new(),
            member: member(),
            ready: true,
            nodes: MemberNodes::Kubernetes {
                nodes: vec![gpu_node("n1"), gpu_node("n2")],
                pods: Vec::new(),
                memo: Default::default(),
            },
            measured: None,
        }];
        let now = Timestamp::from_second(10_000).unwrap();
        let built = snapshot::build(
            view::unix(now),
            &views,
            &[queue(quota)],
            &[],
            jobs,
            &BTreeMap::new(),
            &mut Default::default(),
        );
        let outcome = Scheduler::default().cycle(&Snapshot {
            now: view::unix(now),
            pool: &built.pool,
            queues: &built.queues,
            cohorts: &built.cohorts,
            pending: &built.pending,
            running: &built.running,
        });
        plan(jobs, &built, &outcome, |uid| busy.contains(&uid), now)
    }

    #[test]
    fn fitting_jobs_are_admitted_with_their_placement_and_the_rest_wait_with_a_reason() {
        let jobs = [job("a", "q", 8, 1), job("b", "q", 8, 2), job("c", "q", 8, 3), job("lost", "nope", 1, 4)];
        let writes = run(&jobs, 16, &[]);
        let mut admitted = Vec::new();
        let mut queued = Vec::new();
        let mut problems = Vec::new();
        for w in &writes {
            match w {
                Write::Admit(tj, t) => {
                    let p = t.status.placement.as_ref().unwrap();
                    assert_eq!((p.cluster.as_str(), p.gpus, p.nodes.len()), ("ai-1", 8, 1));
                    assert_eq!(t.status.phase, Some(TrainingJobPhase::Admitted));
                    assert!(t.status.explanation.as_ref().unwrap().summary.contains("peak-TFLOPS fallback"));
                    admitted.push(tj.metadata.name.clone().unwrap());
                }
                Write::Queued(tj, s) => {
                    let c = computenet_api::conditions::find(&s.conditions, types::ADMITTED).unwrap();
                    assert_eq!(c.reason, reasons::QUOTA_EXCEEDED);
                    assert_eq!(s.queue_position, Some(1));
                    queued.push(tj.metadata.name.clone().unwrap());
                }
                Write::Problem(tj, s) => {
                    assert_eq!(s.phase, Some(TrainingJobPhase::Pending));
                    assert_eq!(s.conditions[0].reason, reasons::QUEUE_NOT_FOUND);
                    problems.push(tj.metadata.name.clone().unwrap());
                }
                Write::Preempt(..) => panic!("nothing to preempt"),
            }
        }
        assert_eq!(admitted, ["a", "b"]);
        assert_eq!(queued, ["c"]);
        assert_eq!(problems, ["lost"]);
    }

    #[test]
    fn jobs_with_work_in_flight_are_left_for_the_next_pass() {
        let jobs = [job("a", "q", 8, 1), job("lost", "nope", 1, 2)];
        assert!(run(&jobs, 16, &["uid-a", "uid-lost"]).is_empty());
    }

    #[test]
    fn an_unchanged_queued_status_is_not_written_again() {
        let waiting = job("c", "q", 8, 3);
        let first = run(std::slice::from_ref(&waiting), 0, &[]);
        let [Write::Queued(_, status)] = first.as_slice() else { panic!("one queued write: {first:?}") };
        let mut stored = (*waiting).clone();
        stored.status = Some(status.clone());
        assert!(run(&[Arc::new(stored)], 0, &[]).is_empty());
    }
}

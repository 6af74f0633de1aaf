//! The hub as the core sees it: one translation of hub objects into the core's terms
//! (catalogue, job predicates, pending and running jobs, queue usage, the running jobs the
//! re-optimisation round may adapt, progress and attempt history), shared by the
//! service, the `kubectl computenet` plugin, the dashboard and the `kubectl get` columns so
//! that they cannot disagree.

use crate::conditions::{reasons, types};
use crate::convert;
use crate::training_job::{
    AttemptStatus, ProgressSource, ProgressStatus, TrainingJobPhase, TrainingJobSpec, TrainingJobStatus,
    MAX_ATTEMPTS_KEPT,
};
use crate::{ComputeCohort, ComputeQueue, MemberCluster, TrainingJob};
use computenet_core::adapt::remaining_work;
use computenet_core::pool::NodeSlot;
use computenet_core::queue::{Cohort, ResourceName};
use computenet_core::{Adaptable, Catalogue, Job, Pool, Queue, ReplicaRequest, RunningJob};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use std::collections::{BTreeMap, HashMap};

/// Bandwidth assumed between sites when a data set must move (Gbit/s). One figure for the
/// service and the plugin until members report their own links.
pub const WAN_GBPS: f64 = 10.0;

/// The accelerator catalogue: built-in figures with every member's overrides.
pub fn catalogue<'a>(members: impl IntoIterator<Item = &'a MemberCluster>) -> Catalogue {
    let mut catalogue = Catalogue::built_in();
    for m in members {
        for (name, spec) in convert::efficiency(&m.spec.efficiency).1 {
            catalogue.set(&name, spec);
        }
    }
    catalogue
}

/// The job's UID ("" before the apiserver gave it one).
pub fn uid(job: &TrainingJob) -> &str {
    job.metadata.uid.as_deref().unwrap_or_default()
}

/// `namespace/name`, for messages.
pub fn job_name(job: &TrainingJob) -> String {
    format!(
        "{}/{}",
        job.metadata.namespace.as_deref().unwrap_or_default(),
        job.metadata.name.as_deref().unwrap_or_default()
    )
}

/// The job's status, or an empty one.
pub fn status(job: &TrainingJob) -> TrainingJobStatus {
    job.status.clone().unwrap_or_default()
}

/// The job's phase, if it has one.
pub fn phase(job: &TrainingJob) -> Option<TrainingJobPhase> {
    job.status.as_ref().and_then(|s| s.phase)
}

/// Whether the job holds capacity (admitted, dispatched or running).
pub fn is_admitted(job: &TrainingJob) -> bool {
    job.status.as_ref().and_then(|s| s.admitted).unwrap_or(false)
}

/// Whether the job has ended.
pub fn is_finished(job: &TrainingJob) -> bool {
    phase(job).is_some_and(TrainingJobPhase::is_finished)
}

/// Whether all its replicas run.
pub fn is_running(job: &TrainingJob) -> bool {
    phase(job) == Some(TrainingJobPhase::Running)
}

/// The member the job is placed on, if any.
pub fn placed_on(job: &TrainingJob) -> Option<&str> {
    Some(job.status.as_ref()?.placement.as_ref()?.cluster.as_str())
}

/// Seconds since the epoch of the job's creation (0 when unknown).
pub fn created_at(job: &TrainingJob) -> u64 {
    job.metadata.creation_timestamp.as_ref().map_or(0, |t| unix(t.0))
}

/// Seconds since the epoch (0 before it).
pub fn unix(t: Timestamp) -> u64 {
    u64::try_from(t.as_second()).unwrap_or(0)
}

/// Accelerators of the whole gang, as the spec asks.
pub fn gang_accelerators(job: &TrainingJob) -> u64 {
    let per_replica = job.spec.resources.accelerators.as_ref().map_or(0, |a| a.count);
    u64::try_from(i64::from(job.spec.replicas) * i64::from(per_replica)).unwrap_or(0)
}

/// Accelerators the job holds: its placement's, while admitted.
pub fn accelerators_held(job: &TrainingJob) -> u64 {
    if !is_admitted(job) {
        return 0;
    }
    job.status.as_ref().and_then(|s| s.placement.as_ref()).map_or(0, |p| u64::try_from(p.gpus).unwrap_or(0))
}

/// Why a TrainingJob cannot enter its queue.
#[derive(Debug, Clone, PartialEq)]
pub enum Problem {
    UnknownQueue(String),
    NamespaceNotAllowed {
        queue: String,
        namespace: String,
    },
    /// Its priority is outside what its queue allows (an admin's choice).
    PriorityNotAllowed {
        queue: String,
        priority: i32,
        min: i32,
        max: i32,
    },
    Invalid(String),
}

impl Problem {
    /// The condition that carries the problem: Admitted for a priority the queue does not
    /// allow (the job is in its queue but may not be admitted as it is), Queued otherwise.
    pub fn condition_type(&self) -> &'static str {
        match self {
            Problem::PriorityNotAllowed { .. } => types::ADMITTED,
            _ => types::QUEUED,
        }
    }

    /// The condition's reason and message.
    pub fn reason_and_message(&self) -> (&'static str, String) {
        match self {
            Problem::PriorityNotAllowed { queue, priority, min, max } => (
                reasons::PRIORITY_NOT_ALLOWED,
                format!(
                    "priority {priority} is outside the range ComputeQueue {queue:?} allows ({min} to {max}); ask its admin or lower spec.priority"
                ),
            ),
            Problem::UnknownQueue(q) => (reasons::QUEUE_NOT_FOUND, format!("ComputeQueue {q:?} does not exist")),
            Problem::NamespaceNotAllowed { queue, namespace } => (
                reasons::NAMESPACE_NOT_ALLOWED,
                format!(
                    "ComputeQueue {queue:?} does not admit jobs from namespace {namespace:?} (its namespaceSelector does not match)"
                ),
            ),
            Problem::Invalid(m) => (reasons::INVALID_SPEC, m.clone()),
        }
    }
}

/// A waiting TrainingJob as the core's pending job, or why it cannot be queued: its queue
/// must exist and admit its namespace (by labels), allow its priority, and its spec must
/// convert.
pub fn pending_job(
    job: &TrainingJob,
    queues: &BTreeMap<String, &ComputeQueue>,
    namespace_labels: &BTreeMap<String, String>,
) -> Result<Job, Problem> {
    let queue_name = &job.spec.queue_name;
    let Some(queue) = queues.get(queue_name) else {
        return Err(Problem::UnknownQueue(queue_name.clone()));
    };
    if !convert::selector_matches(queue.spec.namespace_selector.as_ref(), namespace_labels) {
        let namespace = job.metadata.namespace.clone().unwrap_or_default();
        return Err(Problem::NamespaceNotAllowed { queue: queue_name.clone(), namespace });
    }
    let range = queue.spec.priority_range;
    if !range.allows(job.spec.priority) {
        return Err(Problem::PriorityNotAllowed {
            queue: queue_name.clone(),
            priority: job.spec.priority,
            min: range.min,
            max: range.max,
        });
    }
    core_job(job, recorded_progress(job)).map_err(|e| Problem::Invalid(e.to_string()))
}

/// The job as the core sees it, with `done` (0..=1) of its work behind it: a restartable
/// job resumes with the rest; any other starts over, so its progress does not count.
/// `replicas` is the size the spec asks for.
fn core_job(job: &TrainingJob, done: f64) -> crate::Result<Job> {
    let mut core = convert::job(uid(job), &job.spec, created_at(job))?;
    core.tenant = job.metadata.namespace.clone().unwrap_or_default();
    if core.restart.is_some() && done > 0.0 {
        core.work = remaining_work(&core.work, 1.0 - done);
    }
    Ok(core)
}

/// Whether the job checkpoints and may be stopped and resumed (`spec.checkpoint.restartable`).
pub fn is_restartable(job: &TrainingJob) -> bool {
    job.spec.checkpoint.is_some_and(|c| c.restartable)
}

/// Replicas of the gang as placed (`status.placement.replicas`), else as the spec asks.
pub fn current_replicas(job: &TrainingJob) -> i32 {
    job.status.as_ref().and_then(|s| s.placement.as_ref()?.replicas).unwrap_or(job.spec.replicas)
}

/// A share of work, as 0..=1 (NaN as 0: a status written by hand may hold anything).
fn share(v: f64) -> f64 {
    if v.is_nan() {
        0.0
    } else {
        v.clamp(0.0, 1.0)
    }
}

/// The progress recorded in the status (0 when none).
pub fn recorded_progress(job: &TrainingJob) -> f64 {
    job.status.as_ref().and_then(|s| s.progress.as_ref()).map_or(0.0, |p| share(p.completed))
}

/// The share of the job's work done by `now` (seconds): a measured progress as recorded;
/// otherwise the recorded progress (as of the current attempt's start) plus, while the job
/// runs, the current attempt's share of the rest, estimated from its elapsed time since
/// dispatch (else admission) against `placement.estimatedRuntimeSeconds` (the estimate for
/// the work left at admission). No usable estimate: the attempt is credited nothing.
pub fn progress(job: &TrainingJob, now: u64) -> f64 {
    let done = recorded_progress(job);
    let Some(status) = job.status.as_ref() else { return done };
    let measured = status.progress.as_ref().is_some_and(|p| p.source == ProgressSource::Measured);
    if measured || !is_running(job) {
        return done;
    }
    let (Some(placement), Some(since)) =
        (&status.placement, status.dispatch_time.as_ref().or(status.start_time.as_ref()))
    else {
        return done;
    };
    let estimate = placement.estimated_runtime_seconds;
    if !estimate.is_finite() || estimate <= 0.0 {
        return done;
    }
    let elapsed = now.saturating_sub(unix(since.0)) as f64;
    share(done + (1.0 - done) * (elapsed / estimate).min(1.0))
}

/// Moves and resizes counted against `AdaptConfig::max_moves_per_hour`: ended attempts
/// with reason Moved or Resized whose end lies within the hour before `now`.
pub fn recent_moves(job: &TrainingJob, now: u64) -> u32 {
    let since = now.saturating_sub(3600);
    let attempts = job.status.as_ref().map_or(&[][..], |s| &s.attempts[..]);
    let moves = attempts.iter().filter(|a| {
        matches!(a.reason.as_str(), reasons::MOVED | reasons::RESIZED)
            && a.end_time.as_ref().is_some_and(|t| unix(t.0) >= since)
    });
    u32::try_from(moves.count()).unwrap_or(u32::MAX)
}

/// The running restartable jobs as the core's re-optimisation round needs them, in the
/// order of `running` (the snapshot's running jobs, matched by UID): each with its
/// remaining work at its [`progress`] now, its elastic range and restart cost, `replicas`
/// as the spec asks, and its [`recent_moves`]. Jobs not running (admitted or dispatched
/// only), suspended, being deleted, not restartable or whose spec does not convert are
/// left out.
pub fn adaptable<'a>(
    jobs: impl IntoIterator<Item = &'a TrainingJob>,
    running: &[RunningJob],
    now: u64,
) -> Vec<Adaptable> {
    let by_uid: BTreeMap<&str, &TrainingJob> = jobs.into_iter().map(|j| (uid(j), j)).collect();
    running
        .iter()
        .enumerate()
        .filter_map(|(i, r)| {
            let tj = *by_uid.get(r.id.as_str())?;
            if !is_running(tj) || tj.spec.suspend || tj.metadata.deletion_timestamp.is_some() || !is_restartable(tj) {
                return None;
            }
            let job = core_job(tj, progress(tj, now)).ok()?;
            Some(Adaptable { running: i, job, recent_moves: recent_moves(tj, now) })
        })
        .collect()
}

/// `status.attempts` once the current attempt has ended at `now` for `reason` (a word of
/// [`reasons`]: Moved, Resized, Preempted, MemberLost, ...): the attempt is appended from
/// the status's attempt, placement and start time, with the progress `completed` at its
/// end, and only the last [`MAX_ATTEMPTS_KEPT`] are kept. Recording the same attempt again
/// replaces it, so a retried status write does not list it twice. A job without a
/// placement has no current attempt: the list is returned as it is.
pub fn end_attempt(
    job: &TrainingJob,
    now: Timestamp,
    reason: &str,
    message: Option<&str>,
    completed: Option<f64>,
) -> Vec<AttemptStatus> {
    let status = status(job);
    let mut attempts = status.attempts;
    let Some(placement) = status.placement else { return attempts };
    let number = status.attempt.unwrap_or_else(|| attempts.last().map_or(1, |a| a.attempt.saturating_add(1)));
    if attempts.last().is_some_and(|a| a.attempt == number) {
        attempts.pop();
    }
    attempts.push(AttemptStatus {
        attempt: number,
        cluster: placement.cluster,
        accelerator: placement.accelerator,
        replicas: placement.replicas.unwrap_or(job.spec.replicas),
        start_time: status.start_time,
        end_time: Some(Time(now)),
        reason: crate::conditions::reason_word(reason),
        message: message.map(|m| crate::conditions::cut(m, crate::conditions::MAX_MESSAGE_BYTES)),
        completed: completed.map(share),
        // As admitted: the placement's, else the spec's (frozen while the job is admitted,
        // and an attempt is only ended while it is).
        queue: placement.queue.clone().or_else(|| Some(job.spec.queue_name.clone())),
        gpus: Some(placement.gpus),
        cpu_millis: placement.cpu_millis.or_else(|| {
            let replicas = u64::try_from(placement.replicas.unwrap_or(job.spec.replicas).max(0)).unwrap_or(0);
            i64::try_from(per_replica(job).cpu_millis.saturating_mul(replicas)).ok()
        }),
    });
    let excess = attempts.len().saturating_sub(MAX_ATTEMPTS_KEPT);
    attempts.drain(..excess);
    attempts
}

/// `status.progress` once the current attempt has ended at `now`: the [`progress`] made by
/// then, carried into the next attempt. Estimated from then on (even if last measured),
/// so that the next attempt's share is added from its elapsed time until a new measured
/// figure is written.
pub fn ended_progress(job: &TrainingJob, now: Timestamp) -> ProgressStatus {
    ProgressStatus {
        completed: progress(job, unix(now)),
        source: ProgressSource::Estimated,
        updated_at: Some(Time(now)),
    }
}

/// Whether a job waits for a decision: not admitted, finished, deleted or suspended.
pub fn is_waiting(job: &TrainingJob) -> bool {
    !is_admitted(job) && !is_finished(job) && job.metadata.deletion_timestamp.is_none() && !job.spec.suspend
}

/// What one replica of an admitted job holds.
pub fn per_replica(job: &TrainingJob) -> ReplicaRequest {
    convert::job("", &job.spec, 0).map(|j| j.per_replica).unwrap_or_default()
}

/// Each cluster's node numbers by node name, and the clusters' numbers by name: built once
/// per pool for all its running jobs ([`running_job`]), not once per job.
#[derive(Debug, Default)]
pub struct NodeNumbers {
    clusters: HashMap<String, usize>,
    nodes: Vec<HashMap<String, u32>>,
}

impl NodeNumbers {
    pub fn of(pool: &Pool) -> Self {
        NodeNumbers {
            clusters: pool.clusters.iter().enumerate().rev().map(|(i, c)| (c.name.clone(), i)).collect(),
            nodes: pool
                .clusters
                .iter()
                .map(|c| c.nodes.iter().enumerate().rev().map(|(i, n)| (n.name.clone(), i as u32)).collect())
                .collect(),
        }
    }
}

/// An admitted TrainingJob as a running gang of the pool `numbers` was built from, on the
/// nodes its placement records (nodes the pool does not have are left out). `None` when
/// it has no placement or its member is not in the pool.
pub fn running_job(job: &TrainingJob, numbers: &NodeNumbers, now: u64) -> Option<RunningJob> {
    running_job_with(job, numbers, now, || running_figures(&job.spec))
}

/// What a running gang takes from its spec: the request per replica and the restart cost
/// (none and zero when the spec does not convert: an object stored under an older schema).
pub fn running_figures(spec: &TrainingJobSpec) -> RunningFigures {
    let core = convert::job("", spec, 0).ok();
    RunningFigures {
        per_replica: core.as_ref().map(|j| j.per_replica.clone()).unwrap_or_default(),
        restart_cost_s: core.and_then(|j| j.restart).map(|r| r.restart_cost_s),
    }
}

/// See [`running_figures`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunningFigures {
    pub per_replica: ReplicaRequest,
    pub restart_cost_s: Option<u64>,
}

/// As [`running_job`], with the spec's figures from `figures` (called only when the job
/// is on a member of the pool), so that callers can keep them between passes.
pub fn running_job_with(
    job: &TrainingJob,
    numbers: &NodeNumbers,
    now: u64,
    figures: impl FnOnce() -> RunningFigures,
) -> Option<RunningJob> {
    let status = job.status.as_ref()?;
    let placement = status.placement.as_ref()?;
    let cluster = *numbers.clusters.get(&placement.cluster)?;
    let index = &numbers.nodes[cluster];
    let slots: Vec<NodeSlot> = placement
        .nodes
        .iter()
        .filter_map(|nr| {
            Some(NodeSlot { node: *index.get(nr.node.as_str())?, replicas: u32::try_from(nr.replicas).ok()? })
        })
        .collect();
    let started_at = status.start_time.as_ref().map_or(now, |t| unix(t.0));
    let RunningFigures { per_replica, restart_cost_s } = figures();
    Some(RunningJob {
        id: uid(job).to_string(),
        queue: job.spec.queue_name.clone(),
        priority: job.spec.priority,
        cluster,
        accelerator: placement.accelerator.clone(),
        slots,
        per_replica,
        started_at,
        estimated_end: started_at.saturating_add(estimated_seconds(placement.estimated_runtime_seconds)),
        restart_cost_s,
    })
}

/// A runtime estimate in whole seconds, bounded so that adding it to a time cannot overflow.
pub fn estimated_seconds(runtime_s: f64) -> u64 {
    computenet_core::throughput::bounded_seconds(runtime_s).ceil() as u64
}

/// The ComputeQueues of a hub, read once.
#[derive(Debug, Default)]
pub struct HubQueues<'a> {
    /// The valid ones as the core sees them.
    pub core: Vec<Queue>,
    /// The valid ones by name.
    pub by_name: BTreeMap<String, &'a ComputeQueue>,
    /// Invalid ones (left out): name and why.
    pub invalid: Vec<(String, String)>,
}

/// The ComputeQueues as the core sees them; invalid ones are left out, with why.
pub fn queues<'a>(queues: impl IntoIterator<Item = &'a ComputeQueue>) -> HubQueues<'a> {
    let (mut core, mut by_name, mut invalid) = (Vec::new(), BTreeMap::new(), Vec::new());
    for q in queues {
        let name = q.metadata.name.clone().unwrap_or_default();
        match convert::queue(&name, &q.spec) {
            Ok(c) => {
                core.push(c);
                by_name.insert(name, q);
            }
            Err(e) => invalid.push((name, e.to_string())),
        }
    }
    HubQueues { core, by_name, invalid }
}

/// The ComputeCohorts of a hub, read once.
#[derive(Debug, Default)]
pub struct HubCohorts {
    /// The valid ones as the core sees them.
    pub core: Vec<Cohort>,
    /// Invalid ones (left out: a queue naming one sees a root without quota): name and why.
    pub invalid: Vec<(String, String)>,
}

/// The ComputeCohorts as the core sees them; invalid ones are left out, with why.
pub fn cohorts<'a>(cohorts: impl IntoIterator<Item = &'a ComputeCohort>) -> HubCohorts {
    let mut out = HubCohorts::default();
    for c in cohorts {
        let name = c.metadata.name.clone().unwrap_or_default();
        match convert::cohort(&name, &c.spec) {
            Ok(core) => out.core.push(core),
            Err(e) => out.invalid.push((name, e.to_string())),
        }
    }
    out
}

/// A queue's jobs and accelerators, as `kubectl get cnq`, the dashboard, the metrics and
/// `kubectl computenet queue` all show them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueUsage {
    /// Waiting jobs (not admitted, not finished).
    pub pending: u64,
    /// Jobs holding capacity (admitted, dispatched or running).
    pub admitted: u64,
    /// Admitted jobs whose replicas run (a subset of `admitted`).
    pub running: u64,
    /// Accelerators held by the admitted jobs.
    pub accelerators_used: u64,
    /// Nominal accelerator quota: the all-types quota, else the sum of per-type quotas;
    /// `None` when the queue sets none (unlimited) or is invalid.
    pub accelerators_quota: Option<u64>,
}

impl QueueUsage {
    /// `used/quota` for `kubectl get cnq` ("-" for no quota).
    pub fn gpu_usage(&self) -> String {
        format!(
            "{}/{}",
            self.accelerators_used,
            self.accelerators_quota.map_or_else(|| "-".to_string(), |q| q.to_string())
        )
    }
}

/// The nominal accelerator quota of a queue (see [`QueueUsage::accelerators_quota`]).
pub fn accelerator_quota(queue: &Queue) -> Option<u64> {
    let accelerators = queue.quotas.iter().filter(|x| x.resource == ResourceName::Accelerators);
    match accelerators.clone().find(|x| x.accelerator.is_none()) {
        Some(all_types) => Some(all_types.nominal),
        // Saturating: quotas are parsed from the spec and may be as large as u64 allows.
        None => accelerators.map(|x| x.nominal).reduce(|a, b| a.saturating_add(b)),
    }
}

/// Usage of the queue named `name` by `jobs` (any jobs: the queue's are picked out).
pub fn queue_usage<'a>(
    name: &str,
    queue: Option<&Queue>,
    jobs: impl IntoIterator<Item = &'a TrainingJob>,
) -> QueueUsage {
    let mut usage = QueueUsage { accelerators_quota: queue.and_then(accelerator_quota), ..QueueUsage::default() };
    for j in jobs.into_iter().filter(|j| j.spec.queue_name == name && !is_finished(j)) {
        if is_admitted(j) {
            usage.admitted += 1;
            usage.running += u64::from(is_running(j));
            usage.accelerators_used = usage.accelerators_used.saturating_add(accelerators_held(j));
        } else {
            usage.pending += 1;
        }
    }
    usage
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::training_job::{PlacementStatus, TrainingJobSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn job(name: &str, queue: &str, status: Option<TrainingJobStatus>) -> TrainingJob {
        let spec: TrainingJobSpec = serde_json::from_value(serde_json::json!({
            "queueName": queue, "replicas": 2,
            "resources": {"cpu": "4", "memory": "16Gi", "accelerators": {"count": 4}},
            "workload": {"image": "x", "command": ["true"]}
        }))
        .unwrap();
        let mut tj = TrainingJob::new(name, spec);
        tj.metadata.uid = Some(format!("uid-{name}"));
        tj.metadata.namespace = Some("team-a".into());
        tj.status = status;
        tj
    }

    fn admitted(phase: TrainingJobPhase, gpus: i64) -> Option<TrainingJobStatus> {
        Some(TrainingJobStatus {
            phase: Some(phase),
            admitted: Some(true),
            placement: Some(PlacementStatus { cluster: "ai-1".into(), gpus, ..Default::default() }),
            start_time: Some(Time(Timestamp::from_second(1_000).unwrap())),
            ..Default::default()
        })
    }

    fn queue(yaml: &str) -> Queue {
        convert::queue("q", &serde_yaml::from_str(yaml).unwrap()).unwrap()
    }

    #[test]
    fn usage_counts_the_queues_unfinished_jobs_and_their_placements() {
        let jobs = [
            job("wait", "q", None),
            job("run", "q", admitted(TrainingJobPhase::Running, 8)),
            job("new", "q", admitted(TrainingJobPhase::Admitted, 4)),
            job(
                "done",
                "q",
                Some(TrainingJobStatus { phase: Some(TrainingJobPhase::Succeeded), ..Default::default() }),
            ),
            job("other", "r", admitted(TrainingJobPhase::Running, 16)),
        ];
        let q = queue("quotas: [{resource: nvidia.com/gpu, nominal: 32}]");
        let u = queue_usage("q", Some(&q), &jobs);
        assert_eq!(
            u,
            QueueUsage { pending: 1, admitted: 2, running: 1, accelerators_used: 12, accelerators_quota: Some(32) }
        );
        assert_eq!(u.gpu_usage(), "12/32");
        assert_eq!(queue_usage("q", None, &jobs).gpu_usage(), "12/-");
    }

    #[test]
    fn the_quota_is_the_all_types_one_else_the_per_type_sum() {
        let per_type = queue(
            "quotas: [{resource: nvidia.com/gpu, accelerator: A100-80G, nominal: 8}, {resource: nvidia.com/gpu, accelerator: H800, nominal: 16}]",
        );
        assert_eq!(accelerator_quota(&per_type), Some(24));
        let both = queue(
            "quotas: [{resource: nvidia.com/gpu, accelerator: H800, nominal: 16}, {resource: nvidia.com/gpu, nominal: 20}]",
        );
        assert_eq!(accelerator_quota(&both), Some(20));
        assert_eq!(accelerator_quota(&queue("quotas: [{resource: cpu, nominal: 10}]")), None);
    }

    #[test]
    fn pending_jobs_need_a_queue_that_admits_their_namespace() {
        let cq: ComputeQueue = serde_json::from_value(serde_json::json!({
            "apiVersion": "computenet.io/v1alpha1", "kind": "ComputeQueue", "metadata": {"name": "q"},
            "spec": {"namespaceSelector": {"matchLabels": {"tenant": "a"}}}
        }))
        .unwrap();
        let queues = BTreeMap::from([("q".to_string(), &cq)]);
        let tenant_a = BTreeMap::from([("tenant".to_string(), "a".to_string())]);
        let j = pending_job(&job("x", "q", None), &queues, &tenant_a).unwrap();
        assert_eq!((j.id.as_str(), j.replicas, j.per_replica.accelerators), ("uid-x", 2, 4));
        assert_eq!(
            pending_job(&job("x", "q", None), &queues, &BTreeMap::new()).unwrap_err(),
            Problem::NamespaceNotAllowed { queue: "q".into(), namespace: "team-a".into() }
        );
        assert_eq!(
            pending_job(&job("x", "nope", None), &queues, &tenant_a).unwrap_err(),
            Problem::UnknownQueue("nope".into())
        );
    }

    #[test]
    fn a_priority_outside_the_queues_range_is_a_problem_naming_the_range() {
        let cq = |range: serde_json::Value| -> ComputeQueue {
            serde_json::from_value(serde_json::json!({
                "apiVersion": "computenet.io/v1alpha1", "kind": "ComputeQueue", "metadata": {"name": "q"},
                "spec": {"namespaceSelector": {}, "priorityRange": range}
            }))
            .unwrap()
        };
        let with_priority = |p: i32| {
            let mut tj = job("x", "q", None);
            tj.spec.priority = p;
            tj
        };
        let none = BTreeMap::new();
        // Absent: only 0.
        let default: ComputeQueue = serde_json::from_value(serde_json::json!({
            "apiVersion": "computenet.io/v1alpha1", "kind": "ComputeQueue", "metadata": {"name": "q"},
            "spec": {"namespaceSelector": {}}
        }))
        .unwrap();
        let queues = BTreeMap::from([("q".to_string(), &default)]);
        assert!(pending_job(&with_priority(0), &queues, &none).is_ok());
        let refused = pending_job(&with_priority(1), &queues, &none).unwrap_err();
        assert_eq!(refused, Problem::PriorityNotAllowed { queue: "q".into(), priority: 1, min: 0, max: 0 });
        let (reason, message) = refused.reason_and_message();
        assert_eq!((reason, refused.condition_type()), ("PriorityNotAllowed", "Admitted"));
        assert!(message.contains("(0 to 0)"), "{message}");
        let ranged = cq(serde_json::json!({"min": -10, "max": 100}));
        let queues = BTreeMap::from([("q".to_string(), &ranged)]);
        for p in [-10, 0, 100] {
            assert_eq!(pending_job(&with_priority(p), &queues, &none).unwrap().priority, p);
        }
        for p in [-11, 101, i32::MAX] {
            assert!(matches!(
                pending_job(&with_priority(p), &queues, &none),
                Err(Problem::PriorityNotAllowed { min: -10, max: 100, .. })
            ));
        }
    }

    const HOUR: u64 = 3600;
    const NOW: u64 = 100_000;

    fn at(t: u64) -> Time {
        Time(Timestamp::from_second(t as i64).unwrap())
    }

    /// A running 2-replica job, restartable when `restart_cost` is given, with 1000 steps of
    /// bert, dispatched at `dispatched`, estimated to take an hour, `recorded` done.
    fn restartable(name: &str, restart_cost: Option<i64>, dispatched: u64, recorded: Option<f64>) -> TrainingJob {
        let mut tj = job(name, "q", admitted(TrainingJobPhase::Running, 8));
        tj.spec.work = serde_json::from_value(serde_json::json!({"model": "bert", "steps": 1000})).unwrap();
        tj.spec.checkpoint = restart_cost.map(|c| crate::training_job::CheckpointSpec {
            restartable: true,
            restart_cost_seconds: c,
            ..Default::default()
        });
        let status = tj.status.as_mut().unwrap();
        status.dispatch_time = Some(at(dispatched));
        status.start_time = Some(at(dispatched - 60));
        status.attempt = Some(3);
        let placement = status.placement.as_mut().unwrap();
        placement.estimated_runtime_seconds = HOUR as f64;
        placement.accelerator = Some("H800".into());
        status.progress = recorded.map(|completed| ProgressStatus { completed, ..Default::default() });
        tj
    }

    fn steps(j: &Job) -> u64 {
        match j.work {
            computenet_core::Work::ModelSteps { steps, .. } => steps,
            ref w => panic!("{w:?}"),
        }
    }

    #[test]
    fn progress_adds_the_running_attempts_elapsed_share_of_what_was_left() {
        let half_hour_ago = NOW - HOUR / 2;
        assert_eq!(progress(&restartable("a", Some(60), half_hour_ago, None), NOW), 0.5);
        assert_eq!(progress(&restartable("a", Some(60), half_hour_ago, Some(0.5)), NOW), 0.75);
        assert_eq!(progress(&restartable("a", Some(60), NOW - 10 * HOUR, Some(0.5)), NOW), 1.0, "at most all");
        assert_eq!(progress(&restartable("a", Some(60), NOW + HOUR, Some(0.5)), NOW), 0.5, "dispatched later");
        let mut measured = restartable("a", Some(60), half_hour_ago, Some(0.3));
        measured.status.as_mut().unwrap().progress.as_mut().unwrap().source = ProgressSource::Measured;
        assert_eq!(progress(&measured, NOW), 0.3, "a measured figure is taken as it is");
        let mut dispatching = restartable("a", Some(60), half_hour_ago, Some(0.5));
        dispatching.status.as_mut().unwrap().phase = Some(TrainingJobPhase::Dispatched);
        assert_eq!(progress(&dispatching, NOW), 0.5, "not running: no elapsed share");
        let mut no_dispatch = restartable("a", Some(60), half_hour_ago + 60, None);
        no_dispatch.status.as_mut().unwrap().dispatch_time = None;
        assert_eq!(progress(&no_dispatch, NOW), 0.5, "from admission when the dispatch is not recorded");
        for estimate in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let mut odd = restartable("a", Some(60), half_hour_ago, Some(0.25));
            odd.status.as_mut().unwrap().placement.as_mut().unwrap().estimated_runtime_seconds = estimate;
            assert_eq!(progress(&odd, NOW), 0.25, "estimate {estimate}");
        }
        for (recorded, expected) in [(f64::NAN, 0.5), (-3.0, 0.5), (7.0, 1.0)] {
            assert_eq!(progress(&restartable("a", Some(60), half_hour_ago, Some(recorded)), NOW), expected);
        }
        assert_eq!(progress(&job("x", "q", None), NOW), 0.0);
    }

    #[test]
    fn recent_moves_count_moves_and_resizes_of_the_last_hour() {
        let mut tj = restartable("a", Some(60), NOW - 60, None);
        let ended = |reason: &str, ago: u64| AttemptStatus {
            reason: reason.into(),
            end_time: Some(at(NOW - ago)),
            ..Default::default()
        };
        tj.status.as_mut().unwrap().attempts = vec![
            ended(reasons::MOVED, HOUR + 1),
            ended(reasons::RESIZED, HOUR),
            ended(reasons::PREEMPTED, 60),
            ended(reasons::MOVED, 600),
            AttemptStatus { reason: reasons::MOVED.into(), end_time: None, ..Default::default() },
        ];
        assert_eq!(recent_moves(&tj, NOW), 2);
        assert_eq!(recent_moves(&tj, NOW + HOUR), 0);
    }

    #[test]
    fn adaptable_jobs_are_the_running_restartable_ones_with_their_remaining_work() {
        let mut resized = restartable("resized", Some(120), NOW - HOUR / 2, Some(0.5));
        resized.spec.elastic = Some(crate::training_job::ElasticSpec { min_replicas: 1, max_replicas: 4 });
        resized.status.as_mut().unwrap().placement.as_mut().unwrap().replicas = Some(4);
        resized.status.as_mut().unwrap().attempts =
            vec![AttemptStatus { reason: reasons::RESIZED.into(), end_time: Some(at(NOW - 60)), ..Default::default() }];
        let rigid = restartable("rigid", None, NOW - HOUR / 2, None);
        let mut suspended = restartable("suspended", Some(60), NOW - HOUR / 2, None);
        suspended.spec.suspend = true;
        let mut admitted_only = restartable("admitted", Some(60), NOW - HOUR / 2, None);
        admitted_only.status.as_mut().unwrap().phase = Some(TrainingJobPhase::Admitted);
        let fresh = restartable("fresh", Some(60), NOW, None);
        let running_of = |tj: &TrainingJob| RunningJob {
            id: uid(tj).to_string(),
            queue: "q".into(),
            priority: 0,
            cluster: 0,
            accelerator: None,
            slots: Vec::new(),
            per_replica: ReplicaRequest::default(),
            started_at: 0,
            estimated_end: 0,
            restart_cost_s: None,
        };
        let jobs = [rigid.clone(), fresh.clone(), suspended.clone(), admitted_only.clone(), resized.clone()];
        let running: Vec<RunningJob> = [&rigid, &resized, &suspended, &admitted_only, &fresh]
            .into_iter()
            .map(running_of)
            .chain([RunningJob { id: "gone".into(), ..running_of(&rigid) }])
            .collect();
        let a = adaptable(&jobs, &running, NOW);
        let summary: Vec<(usize, &str, u64, u32, u32)> =
            a.iter().map(|a| (a.running, a.job.id.as_str(), steps(&a.job), a.job.replicas, a.recent_moves)).collect();
        assert_eq!(summary, [(1, "uid-resized", 250, 2, 1), (4, "uid-fresh", 1000, 2, 0)]);
        let resized = &a[0].job;
        assert_eq!(resized.restart.map(|r| r.restart_cost_s), Some(120));
        assert_eq!(resized.elastic.map(|e| (e.min_replicas, e.max_replicas)), Some((1, 4)));
        assert_eq!(resized.tenant, "team-a");
    }

    #[test]
    fn a_restartable_job_waits_with_the_work_it_has_left_and_a_rigid_one_with_all() {
        let cq: ComputeQueue = serde_json::from_value(serde_json::json!({
            "apiVersion": "computenet.io/v1alpha1", "kind": "ComputeQueue", "metadata": {"name": "q"},
            "spec": {"namespaceSelector": {}}
        }))
        .unwrap();
        let queues = BTreeMap::from([("q".to_string(), &cq)]);
        let waiting = |restart: Option<i64>| {
            let mut tj = restartable("w", restart, NOW - HOUR / 2, Some(0.25));
            let status = tj.status.as_mut().unwrap();
            (status.phase, status.admitted, status.placement) = (Some(TrainingJobPhase::Preempted), None, None);
            pending_job(&tj, &queues, &BTreeMap::new()).unwrap()
        };
        let resumed = waiting(Some(60));
        assert_eq!((steps(&resumed), resumed.restart.map(|r| r.grace_period_s)), (750, Some(30)));
        let rigid = waiting(None);
        assert_eq!((steps(&rigid), rigid.restart), (1000, None));
    }

    #[test]
    fn an_ended_attempt_is_appended_once_and_only_the_last_twenty_are_kept() {
        let mut tj = restartable("a", Some(60), NOW - HOUR / 2, Some(0.5));
        tj.status.as_mut().unwrap().placement.as_mut().unwrap().replicas = Some(3);
        let end = Timestamp::from_second(NOW as i64).unwrap();
        let attempts = end_attempt(&tj, end, reasons::MOVED, Some("to ai-2: 2h faster"), Some(0.75));
        assert_eq!(
            attempts,
            [AttemptStatus {
                attempt: 3,
                cluster: "ai-1".into(),
                accelerator: Some("H800".into()),
                replicas: 3,
                start_time: Some(at(NOW - HOUR / 2 - 60)),
                end_time: Some(at(NOW)),
                reason: "Moved".into(),
                message: Some("to ai-2: 2h faster".into()),
                completed: Some(0.75),
                queue: Some(tj.spec.queue_name.clone()),
                gpus: Some(tj.status.as_ref().unwrap().placement.as_ref().unwrap().gpus),
                cpu_millis: Some(3 * i64::try_from(per_replica(&tj).cpu_millis).unwrap()),
            }]
        );
        tj.status.as_mut().unwrap().attempts = attempts.clone();
        assert_eq!(end_attempt(&tj, end, reasons::MOVED, None, None).len(), 1, "the same attempt again replaces it");
        let old: Vec<AttemptStatus> =
            (1..=25).map(|n| AttemptStatus { attempt: n, reason: "Preempted".into(), ..Default::default() }).collect();
        let status = tj.status.as_mut().unwrap();
        (status.attempts, status.attempt) = (old, Some(26));
        let kept = end_attempt(&tj, end, "not a word!", Some(&"x".repeat(5000)), Some(f64::NAN));
        assert_eq!(kept.len(), MAX_ATTEMPTS_KEPT);
        assert_eq!((kept[0].attempt, kept[19].attempt), (7, 26), "the latest are kept, oldest first");
        assert_eq!((kept[19].reason.as_str(), kept[19].completed), ("notaword", Some(0.0)));
        assert!(kept[19].message.as_ref().unwrap().len() <= crate::conditions::MAX_MESSAGE_BYTES);
        tj.status.as_mut().unwrap().placement = None;
        assert_eq!(end_attempt(&tj, end, reasons::MOVED, None, None).len(), 25, "no current attempt");
        let carried = ended_progress(&restartable("a", Some(60), NOW - HOUR / 2, Some(0.5)), end);
        assert_eq!((carried.completed, carried.source), (0.75, ProgressSource::Estimated));
    }

    #[test]
    fn running_jobs_carry_their_restart_cost_and_current_size() {
        let pool = Pool {
            clusters: vec![computenet_core::Cluster {
                workload_kinds: Vec::new(),
                tenants: None,
                name: "ai-1".into(),
                kind: computenet_core::ClusterKind::AI,
                site: String::new(),
                ready: true,
                cordoned: false,
                efficiency: Default::default(),
                data_sets: Default::default(),
                nodes: Vec::new(),
            }],
            catalogue: Catalogue::built_in(),
            data_sets: BTreeMap::new(),
            wan_gbps: WAN_GBPS,
        };
        let mut tj = restartable("a", Some(90), NOW - 60, None);
        assert_eq!(running_job(&tj, &NodeNumbers::of(&pool), NOW).unwrap().restart_cost_s, Some(90));
        assert_eq!(current_replicas(&tj), 2, "no size recorded: the spec's");
        tj.status.as_mut().unwrap().placement.as_mut().unwrap().replicas = Some(4);
        assert_eq!(current_replicas(&tj), 4);
        tj.spec.checkpoint.as_mut().unwrap().restartable = false;
        assert_eq!(running_job(&tj, &NodeNumbers::of(&pool), NOW).unwrap().restart_cost_s, None, "not restartable");
    }

    #[test]
    fn running_jobs_end_at_start_plus_a_bounded_estimate() {
        let mut tj = job("run", "q", admitted(TrainingJobPhase::Running, 8));
        if let Some(p) = tj.status.as_mut().and_then(|s| s.placement.as_mut()) {
            p.estimated_runtime_seconds = 1e300;
        }
        let pool = Pool {
            clusters: vec![computenet_core::Cluster {
                workload_kinds: Vec::new(),
                tenants: None,
                name: "ai-1".into(),
                kind: computenet_core::ClusterKind::AI,
                site: String::new(),
                ready: true,
                cordoned: false,
                efficiency: Default::default(),
                data_sets: Default::default(),
                nodes: Vec::new(),
            }],
            catalogue: Catalogue::built_in(),
            data_sets: BTreeMap::new(),
            wan_gbps: WAN_GBPS,
        };
        let r = running_job(&tj, &NodeNumbers::of(&pool), 5).unwrap();
        assert_eq!(r.started_at, 1_000);
        assert_eq!(r.estimated_end, 1_000 + estimated_seconds(f64::INFINITY));
        assert_eq!(r.per_replica.accelerators, 4);
    }
}

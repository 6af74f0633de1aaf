//! The hub as the core sees it: one translation of hub objects into the core's terms
//! (catalogue, job predicates, pending and running jobs, queue usage), shared by the
//! service, the `kubectl computenet` plugin, the dashboard and the `kubectl get` columns so
//! that they cannot disagree.

use crate::conditions::{reasons, types};
use crate::convert;
use crate::training_job::{TrainingJobPhase, TrainingJobStatus};
use crate::{ComputeQueue, MemberCluster, TrainingJob};
use computenet_core::pool::NodeSlot;
use computenet_core::queue::ResourceName;
use computenet_core::{Catalogue, Job, Pool, Queue, ReplicaRequest, RunningJob};
use k8s_openapi::jiff::Timestamp;
use std::collections::BTreeMap;

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
    let mut pending =
        convert::job(uid(job), &job.spec, created_at(job)).map_err(|e| Problem::Invalid(e.to_string()))?;
    pending.tenant = job.metadata.namespace.clone().unwrap_or_default();
    Ok(pending)
}

/// Whether a job waits for a decision: not admitted, finished, deleted or suspended.
pub fn is_waiting(job: &TrainingJob) -> bool {
    !is_admitted(job) && !is_finished(job) && job.metadata.deletion_timestamp.is_none() && !job.spec.suspend
}

/// What one replica of an admitted job holds.
pub fn per_replica(job: &TrainingJob) -> ReplicaRequest {
    convert::job("", &job.spec, 0).map(|j| j.per_replica).unwrap_or_default()
}

/// An admitted TrainingJob as a running gang of `pool`, on the nodes its placement
/// records (nodes `pool` does not have are left out). `None` when it has no placement or
/// its member is not in the pool.
pub fn running_job(job: &TrainingJob, pool: &Pool, now: u64) -> Option<RunningJob> {
    let status = job.status.as_ref()?;
    let placement = status.placement.as_ref()?;
    let cluster = pool.cluster_index(&placement.cluster)?;
    let nodes = &pool.clusters[cluster].nodes;
    let index: BTreeMap<&str, u32> = nodes.iter().enumerate().map(|(i, n)| (n.name.as_str(), i as u32)).collect();
    let slots: Vec<NodeSlot> = placement
        .nodes
        .iter()
        .filter_map(|nr| {
            Some(NodeSlot { node: *index.get(nr.node.as_str())?, replicas: u32::try_from(nr.replicas).ok()? })
        })
        .collect();
    let started_at = status.start_time.as_ref().map_or(now, |t| unix(t.0));
    Some(RunningJob {
        id: uid(job).to_string(),
        queue: job.spec.queue_name.clone(),
        priority: job.spec.priority,
        cluster,
        accelerator: placement.accelerator.clone(),
        slots,
        per_replica: per_replica(job),
        started_at,
        estimated_end: started_at.saturating_add(estimated_seconds(placement.estimated_runtime_seconds)),
        restart_cost_s: None,
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

    #[test]
    fn running_jobs_end_at_start_plus_a_bounded_estimate() {
        let mut tj = job("run", "q", admitted(TrainingJobPhase::Running, 8));
        if let Some(p) = tj.status.as_mut().and_then(|s| s.placement.as_mut()) {
            p.estimated_runtime_seconds = 1e300;
        }
        let pool = Pool {
            clusters: vec![computenet_core::Cluster {
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
        let r = running_job(&tj, &pool, 5).unwrap();
        assert_eq!(r.started_at, 1_000);
        assert_eq!(r.estimated_end, 1_000 + estimated_seconds(f64::INFINITY));
        assert_eq!(r.per_replica.accelerators, 4);
    }
}

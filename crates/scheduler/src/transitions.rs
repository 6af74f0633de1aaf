//! A TrainingJob's status transitions, as pure functions of the job, what was decided or
//! observed, and the time: the scheduling pass and the per-job reconciler only choose
//! which one applies, and these say what the status becomes.

use crate::snapshot::Built;
use computenet_api::conditions::{self, reasons, types, EventReason};
use computenet_api::convert::{self, round3};
use computenet_api::training_job::{
    ExplanationStatus, NodeReplicas, PlacementStatus, RetryStatus, TrainingJobPhase, TrainingJobStatus,
};
use computenet_api::view::{self, Problem};
use computenet_api::TrainingJob;
use computenet_core::explain::Placement;
use computenet_core::throughput::EstimateSource;
use computenet_core::{Action, CycleOutcome, Decision, QueuedReason};
use computenet_members::RemoteStatus;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// Longest node name recorded from a member (a Kubernetes object name's limit).
const MAX_NODE_NAME_BYTES: usize = 253;
use k8s_openapi::jiff::Timestamp;

/// A new status and the Event to record once it is stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub status: TrainingJobStatus,
    pub event: Option<(EventReason, String)>,
}

fn set(
    tj: &TrainingJob,
    current: &TrainingJobStatus,
    type_: &str,
    ok: bool,
    reason: &str,
    message: &str,
    now: Timestamp,
) -> Vec<Condition> {
    let c = conditions::condition(&current.conditions, type_, ok, reason, message, tj.metadata.generation, now);
    conditions::upsert(&current.conditions, c)
}

fn explanation(decision: &Decision, summary: String) -> ExplanationStatus {
    convert::explanation_status(&decision.explanation, summary)
}

/// Which estimate the chosen placement rests on, in words.
pub fn estimate_words(source: EstimateSource) -> String {
    match source {
        EstimateSource::Learned { jobs } => {
            format!("runtime learned from {jobs} running job{}", if jobs == 1 { "" } else { "s" })
        }
        EstimateSource::Measured => "runtime from a measured profile".into(),
        EstimateSource::ScaledProfile => "runtime from a measured profile, scaled".into(),
        EstimateSource::PeakTflops | EstimateSource::Unknown => "runtime from the peak-TFLOPS fallback".into(),
    }
}

/// The status of a placement: its size and devices are what was placed (an elastic gang
/// may run smaller or larger than `spec.replicas`), with the nodes named.
fn placement_status(tj: &TrainingJob, p: &Placement, nodes: &[computenet_core::Node]) -> PlacementStatus {
    let replicas: u64 = p.slots.iter().map(|s| u64::from(s.replicas)).sum();
    let per_replica = u64::try_from(tj.spec.resources.accelerators.as_ref().map_or(0, |a| a.count)).unwrap_or(0);
    PlacementStatus {
        cluster: p.cluster.clone(),
        accelerator: p.accelerator.clone(),
        gpus: i64::try_from(replicas.saturating_mul(per_replica)).unwrap_or(i64::MAX),
        replicas: i32::try_from(replicas).ok(),
        nodes: p
            .slots
            .iter()
            .filter_map(|s| {
                let node = nodes.get(s.node as usize)?;
                Some(NodeReplicas { node: node.name.clone(), replicas: i32::try_from(s.replicas).ok()? })
            })
            .collect(),
        estimated_runtime_seconds: round3(p.estimate.runtime_s + p.estimate.transfer_s),
        estimated_energy_k_wh: round3(p.estimate.energy_kwh),
        estimated_cost: round3(p.estimate.cost),
        backfilled: p.backfilled,
        queue: Some(tj.spec.queue_name.clone()),
        cpu_millis: i64::try_from(view::per_replica(tj).cpu_millis.saturating_mul(replicas)).ok(),
    }
}

/// Admitted to a placement by the cycle.
pub fn admitted(
    tj: &TrainingJob,
    current: &TrainingJobStatus,
    p: &Placement,
    decision: &Decision,
    built: &Built,
    now: Timestamp,
) -> Transition {
    let nodes = &built.pool.clusters[p.cluster_index].nodes;
    let accelerator = p.accelerator.as_deref().unwrap_or("CPU");
    let summary = format!(
        "admitted to {} ({accelerator}){}: best of {} feasible member(s) by {:?}; {}",
        p.cluster,
        if p.backfilled { ", backfilled" } else { "" },
        decision.explanation.feasible_clusters,
        tj.spec.placement.objective,
        estimate_words(p.estimate.source),
    );
    let status = TrainingJobStatus {
        phase: Some(TrainingJobPhase::Admitted),
        queue_position: None,
        admitted: Some(true),
        placement: Some(placement_status(tj, p, nodes)),
        // Sealed with the service's key when written (it is not known here).
        admission_seal: None,
        remote: None,
        explanation: Some(explanation(decision, summary)),
        start_time: Some(Time(now)),
        dispatch_time: None,
        completion_time: None,
        exit_code: None,
        retry: None,
        requeues: current.requeues,
        // Every admission is a new attempt with its own key on the member.
        attempt: Some(current.attempt.unwrap_or(0).saturating_add(1)),
        progress: current.progress.clone(),
        attempts: current.attempts.clone(),
        metered_through: None,
        conditions: set(
            tj,
            current,
            types::ADMITTED,
            true,
            reasons::ADMITTED,
            &format!("placed on {}", p.cluster),
            now,
        ),
    };
    Transition { status, event: Some((EventReason::Admitted, format!("placed on {} ({accelerator})", p.cluster))) }
}

/// The progress and attempt history once the job's current attempt ends for `reason`: a
/// restartable job keeps the progress made by now (resumed from its checkpoint, it has
/// only the rest to do) and records it with the attempt; any other job starts over, so its
/// recorded progress stays as it was. A job never placed has no attempt to record.
fn ended(
    tj: &TrainingJob,
    reason: &str,
    message: &str,
    now: Timestamp,
) -> (Option<computenet_api::training_job::ProgressStatus>, Vec<computenet_api::training_job::AttemptStatus>) {
    let current = view::status(tj);
    if current.placement.is_none() || !view::is_admitted(tj) {
        return (current.progress, current.attempts);
    }
    if view::is_restartable(tj) {
        let progress = view::ended_progress(tj, now);
        let attempts = view::end_attempt(tj, now, reason, Some(message), Some(progress.completed));
        (Some(progress), attempts)
    } else {
        (current.progress, view::end_attempt(tj, now, reason, Some(message), None))
    }
}

/// A running restartable job moved or resized by the re-optimisation round: its current
/// attempt ends (recorded with the progress made, reason Moved or Resized and the round's
/// sentence), the progress is carried, and it is admitted anew to the adjustment's
/// placement and size as the next attempt, not dispatched: the dispatch of the new
/// attempt stops the old one first.
pub fn adjusted(
    tj: &TrainingJob,
    current: &TrainingJobStatus,
    a: &computenet_core::Adjustment,
    built: &Built,
    now: Timestamp,
) -> Transition {
    let reason = match a.kind {
        computenet_core::AdjustmentKind::Migrate => reasons::MOVED,
        computenet_core::AdjustmentKind::Grow | computenet_core::AdjustmentKind::Shrink => reasons::RESIZED,
    };
    let progress = view::ended_progress(tj, now);
    let attempts = view::end_attempt(tj, now, reason, Some(&a.reason), Some(progress.completed));
    let p = &a.placement;
    let nodes = built.pool.clusters.get(p.cluster_index).map_or(&[][..], |c| &c.nodes[..]);
    let replicas = i32::try_from(a.replicas).unwrap_or(i32::MAX);
    let attempt = current.attempt.unwrap_or(0).saturating_add(1);
    let message = format!("attempt {attempt}: {}", a.reason);
    let mut explanation = current.explanation.clone();
    if let Some(e) = explanation.as_mut() {
        e.summary = format!(
            "{reason} to {} ({}), {replicas} replica(s): {}",
            p.cluster,
            p.accelerator.as_deref().unwrap_or("CPU"),
            a.reason
        );
    }
    let conditions = set(tj, current, types::ADMITTED, true, reason, &message, now);
    let running =
        conditions::condition(&conditions, types::RUNNING, false, reason, &message, tj.metadata.generation, now);
    let status = TrainingJobStatus {
        phase: Some(TrainingJobPhase::Admitted),
        admitted: Some(true),
        placement: Some(placement_status(tj, p, nodes)),
        // Sealed with the service's key when written.
        admission_seal: None,
        explanation,
        start_time: Some(Time(now)),
        requeues: current.requeues,
        attempt: Some(attempt),
        progress: Some(progress),
        attempts,
        conditions: conditions::upsert(&conditions, running),
        ..TrainingJobStatus::default()
    };
    Transition { status, event: Some((EventReason::Adjusted, message)) }
}

/// Why a job goes back to its queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requeue {
    Preempted,
    MemberLost,
}

/// Back in the queue after a preemption or a member loss, one more requeue counted.
pub fn requeued(
    tj: &TrainingJob,
    current: &TrainingJobStatus,
    why: Requeue,
    message: &str,
    now: Timestamp,
) -> Transition {
    let (phase, reason, event) = match why {
        Requeue::Preempted => (TrainingJobPhase::Preempted, reasons::PREEMPTED, EventReason::Preempted),
        Requeue::MemberLost => (TrainingJobPhase::Queued, reasons::MEMBER_LOST, EventReason::MemberLost),
    };
    let (progress, attempts) = ended(tj, reason, message, now);
    let status = TrainingJobStatus {
        phase: Some(phase),
        admitted: Some(false),
        requeues: Some(current.requeues.unwrap_or(0).saturating_add(1)),
        attempt: current.attempt,
        progress,
        attempts,
        conditions: set(tj, current, types::ADMITTED, false, reason, message, now),
        ..TrainingJobStatus::default()
    };
    Transition { status, event: Some((event, message.to_string())) }
}

/// The Admitted=False reason for a job the cycle left waiting.
pub fn queued_reason(r: &QueuedReason) -> &'static str {
    match r {
        QueuedReason::UnknownQueue { .. } => reasons::QUEUE_NOT_FOUND,
        QueuedReason::Invalid { .. } => reasons::INVALID_SPEC,
        QueuedReason::InsufficientCapacity => reasons::INSUFFICIENT_CAPACITY,
        QueuedReason::QuotaExceeded => reasons::QUOTA_EXCEEDED,
        QueuedReason::Unschedulable => reasons::UNSCHEDULABLE,
        QueuedReason::BlockedByQueueHead { .. } => reasons::BLOCKED_BY_QUEUE_HEAD,
        QueuedReason::WaitingForPreemption => reasons::WAITING_FOR_PREEMPTION,
        QueuedReason::BudgetExhausted { .. } => reasons::BUDGET_EXHAUSTED,
    }
}

/// Left waiting by the cycle: position, reason and explanation.
pub fn queued(
    tj: &TrainingJob,
    current: &TrainingJobStatus,
    decision: &Decision,
    outcome: &CycleOutcome,
    now: Timestamp,
) -> TrainingJobStatus {
    let (reason, summary) = match &decision.action {
        Action::Reserve { cluster, start_at, .. } => (
            reasons::RESERVED,
            format!(
                "first in line: capacity reserved on {cluster} from {}",
                i64::try_from(*start_at)
                    .ok()
                    .and_then(|s| Timestamp::from_second(s).ok())
                    .map_or_else(|| start_at.to_string(), |t| t.to_string())
            ),
        ),
        Action::Preempt { cluster, victims } => {
            (reasons::PREEMPTING, format!("preempting {} job(s) on {cluster} to make room", victims.len()))
        }
        Action::Queued(r) => (queued_reason(r), r.to_string()),
        Action::Admit(_) => (reasons::ADMITTED, String::new()),
    };
    let position = outcome.positions.get(&decision.job).and_then(|p| i32::try_from(p.position).ok());
    let stays_preempted = current.phase == Some(TrainingJobPhase::Preempted) && reason != reasons::RESERVED;
    TrainingJobStatus {
        phase: Some(if stays_preempted { TrainingJobPhase::Preempted } else { TrainingJobPhase::Queued }),
        queue_position: position,
        admitted: Some(false),
        explanation: Some(explanation(decision, summary.clone())),
        requeues: current.requeues,
        attempt: current.attempt,
        progress: current.progress.clone(),
        attempts: current.attempts.clone(),
        conditions: set(tj, current, types::ADMITTED, false, reason, &summary, now),
        ..TrainingJobStatus::default()
    }
}

/// Cannot enter its queue: Pending with the reason. `None` when the status says so already.
pub fn problem(
    tj: &TrainingJob,
    current: &TrainingJobStatus,
    problem: &Problem,
    now: Timestamp,
) -> Option<TrainingJobStatus> {
    let (reason, message) = problem.reason_and_message();
    let conditions = set(tj, current, problem.condition_type(), false, reason, &message, now);
    let unchanged =
        current.phase == Some(TrainingJobPhase::Pending) && conditions::same(&conditions, &current.conditions);
    (!unchanged).then(|| TrainingJobStatus {
        phase: Some(TrainingJobPhase::Pending),
        conditions,
        requeues: current.requeues,
        attempt: current.attempt,
        progress: current.progress.clone(),
        attempts: current.attempts.clone(),
        ..TrainingJobStatus::default()
    })
}

/// An admission the service cannot stand behind (not sealed by it, or its queue no longer
/// takes the job before dispatch): back to its queue with no placement and a Warning, to
/// be decided normally. The attempt is kept: a new admission counts the next one.
pub fn admission_not_issued(tj: &TrainingJob, current: &TrainingJobStatus, why: &str, now: Timestamp) -> Transition {
    let status = TrainingJobStatus {
        phase: Some(TrainingJobPhase::Queued),
        admitted: Some(false),
        requeues: current.requeues,
        attempt: current.attempt,
        progress: current.progress.clone(),
        attempts: current.attempts.clone(),
        conditions: set(tj, current, types::ADMITTED, false, reasons::ADMISSION_NOT_ISSUED, why, now),
        ..TrainingJobStatus::default()
    };
    Transition { status, event: Some((EventReason::AdmissionNotIssued, why.to_string())) }
}

/// Stopped by `spec.suspend`; its capacity is released.
pub fn suspended(tj: &TrainingJob, current: &TrainingJobStatus, now: Timestamp) -> Transition {
    let condition = conditions::condition(
        &current.conditions,
        types::ADMITTED,
        false,
        reasons::SUSPENDED,
        "spec.suspend is true",
        tj.metadata.generation,
        now,
    );
    let (progress, attempts) = ended(tj, reasons::SUSPENDED, "spec.suspend is true", now);
    let status = TrainingJobStatus {
        phase: Some(TrainingJobPhase::Suspended),
        admitted: Some(false),
        conditions: vec![condition],
        requeues: current.requeues,
        attempt: current.attempt,
        progress,
        attempts,
        ..TrainingJobStatus::default()
    };
    Transition { status, event: Some((EventReason::Suspended, "stopped; resumes when spec.suspend is false".into())) }
}

/// `spec.suspend` set back to false: queued again.
pub fn resumed(current: &TrainingJobStatus) -> TrainingJobStatus {
    TrainingJobStatus {
        phase: Some(TrainingJobPhase::Queued),
        admitted: Some(false),
        requeues: current.requeues,
        attempt: current.attempt,
        progress: current.progress.clone(),
        attempts: current.attempts.clone(),
        ..TrainingJobStatus::default()
    }
}

/// A dispatch that failed: the Dispatched=False condition with the error, and when the
/// next attempt is due.
pub fn dispatch_failed(
    tj: &TrainingJob,
    current: &TrainingJobStatus,
    error: &str,
    attempts: u32,
    next_attempt: Timestamp,
    now: Timestamp,
) -> TrainingJobStatus {
    TrainingJobStatus {
        conditions: set(tj, current, types::DISPATCHED, false, reasons::DISPATCH_FAILED, error, now),
        retry: Some(RetryStatus {
            attempts: i32::try_from(attempts).unwrap_or(i32::MAX),
            next_attempt_time: Time(next_attempt),
        }),
        ..current.clone()
    }
}

/// A dispatch the member refused for good (see `computenet_members::error::Retry`): the
/// job ends Failed, and since a finished job holds nothing, its capacity and quota are
/// free for the next pass. The member's message, cut to [`conditions::MAX_MESSAGE_BYTES`],
/// goes on both the Dispatched and the Finished condition.
pub fn dispatch_rejected(tj: &TrainingJob, current: &TrainingJobStatus, error: &str, now: Timestamp) -> Transition {
    let message = conditions::cut(error, conditions::MAX_MESSAGE_BYTES);
    let rejected = reasons::DISPATCH_REJECTED;
    let dispatched = set(tj, current, types::DISPATCHED, false, rejected, &message, now);
    let finished =
        conditions::condition(&dispatched, types::FINISHED, false, rejected, &message, tj.metadata.generation, now);
    let status = TrainingJobStatus {
        phase: Some(TrainingJobPhase::Failed),
        admitted: Some(false),
        completion_time: Some(Time(now)),
        retry: None,
        conditions: conditions::upsert(&dispatched, finished),
        ..current.clone()
    };
    Transition { status, event: Some((EventReason::DispatchRejected, message)) }
}

/// What kind of member runs the job, for the Running reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberKind {
    Kubernetes,
    Slurm,
}

/// A dispatch made by this process that the status does not record yet.
#[derive(Debug, Clone, PartialEq)]
pub struct DispatchRecord {
    pub remote: computenet_api::training_job::RemoteReference,
    /// When the member's objects were created (status.dispatchTime).
    pub time: Timestamp,
}

/// The job's status after what its member reports: the phase, the dispatch (recorded with
/// the first state written after it), the nodes the member chose, and the end. `None` when
/// nothing users see changed.
pub fn mirrored(
    tj: &TrainingJob,
    current: &TrainingJobStatus,
    remote: RemoteStatus,
    kind: MemberKind,
    record: Option<&DispatchRecord>,
    now: Timestamp,
) -> Option<Transition> {
    let RemoteStatus { phase: new_phase, failure, exit_code, nodes } = remote;
    // Nothing changed (most jobs, most passes): no copy of the status at all.
    let same_nodes = |p: &PlacementStatus, nodes: &[String]| {
        let replicas = usize::try_from(view::current_replicas(tj)).unwrap_or(0).max(1);
        p.nodes.len() == nodes.len().min(replicas)
            && p.nodes
                .iter()
                .zip(nodes)
                .all(|(r, n)| r.replicas == 1 && r.node == conditions::cut(n, MAX_NODE_NAME_BYTES))
    };
    if current.phase == Some(new_phase)
        && record.is_none()
        && match (&nodes, &current.placement) {
            (Some(nodes), Some(p)) => same_nodes(p, nodes),
            _ => true,
        }
    {
        return None;
    }
    let cluster = current.placement.as_ref().map(|p| p.cluster.clone()).unwrap_or_default();
    let mut status = TrainingJobStatus { phase: Some(new_phase), ..current.clone() };
    if let Some(d) = record {
        status.remote = Some(d.remote.clone());
        status.dispatch_time = Some(Time(d.time));
        status.retry = None;
        status.conditions = conditions::upsert(
            &current.conditions,
            conditions::condition(
                &current.conditions,
                types::DISPATCHED,
                true,
                EventReason::Dispatched.as_str(),
                &format!("{} {} on {cluster}", d.remote.kind, d.remote.name),
                tj.metadata.generation,
                now,
            ),
        );
    }
    // Where the member picks the nodes itself (Slurm), record the real ones so the
    // snapshot charges the job where it runs.
    let mut moved = false;
    if let (Some(nodes), Some(p)) = (nodes, status.placement.as_mut()) {
        // A member may list anything: at most one node per replica, names of a valid length.
        let replicas = usize::try_from(view::current_replicas(tj)).unwrap_or(0).max(1);
        let real: Vec<NodeReplicas> = nodes
            .into_iter()
            .take(replicas)
            .map(|node| NodeReplicas { node: conditions::cut(&node, MAX_NODE_NAME_BYTES), replicas: 1 })
            .collect();
        if p.nodes != real {
            p.nodes = real;
            moved = true;
        }
    }
    if current.phase == Some(new_phase) && record.is_none() {
        return moved.then_some(Transition { status, event: None });
    }
    status.exit_code = exit_code;
    let base = status.conditions.clone();
    let with = |type_: &str, ok: bool, reason: &str, message: &str| {
        let c = conditions::condition(&base, type_, ok, reason, message, tj.metadata.generation, now);
        conditions::upsert(&base, c)
    };
    let event = match new_phase {
        TrainingJobPhase::Running => {
            let reason = match kind {
                MemberKind::Kubernetes => reasons::PODS_RUNNING,
                MemberKind::Slurm => reasons::BATCH_JOB_RUNNING,
            };
            status.conditions = with(types::RUNNING, true, reason, "all replicas started on the member");
            // The phase and the Running condition say so; no Event (one hub write fewer
            // per job: the Dispatched Event already named the member).
            None
        }
        TrainingJobPhase::Succeeded => {
            status.completion_time = Some(Time(now));
            status.conditions = with(types::FINISHED, true, reasons::SUCCEEDED, "all replicas completed");
            Some(EventReason::Succeeded)
        }
        TrainingJobPhase::Failed => {
            let (reason, message) = failure.unwrap_or_else(|| (reasons::FAILED.into(), String::new()));
            status.completion_time = Some(Time(now));
            status.conditions = with(types::FINISHED, false, &reason, &message);
            Some(EventReason::Failed)
        }
        // The Dispatched Event went out when the objects were created.
        _ => None,
    };
    Some(Transition { status, event: event.map(|e| (e, format!("on member {cluster}"))) })
}

/// Whether a queued status differs from the stored one in what users see.
pub fn differs(current: &TrainingJobStatus, new: &TrainingJobStatus) -> bool {
    current.phase != new.phase
        || current.queue_position != new.queue_position
        || current.admitted != new.admitted
        || current.explanation.as_ref().map(|e| &e.summary) != new.explanation.as_ref().map(|e| &e.summary)
        || !conditions::same(&current.conditions, &new.conditions)
}

/// Whether the only difference is the queue position (written less often).
pub fn only_position_differs(current: &TrainingJobStatus, new: &TrainingJobStatus) -> bool {
    differs(current, new)
        && !differs(current, &TrainingJobStatus { queue_position: current.queue_position, ..new.clone() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{self, MemberView};
    use computenet_api::training_job::{CheckpointSpec, TrainingJobSpec};
    use computenet_api::MemberCluster;
    use computenet_core::{Adjustment, AdjustmentKind, Estimate};
    use computenet_members::MemberNodes;
    use std::collections::BTreeMap;
    use std::sync::Arc;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    /// A restartable job running on ai-1 (A100, 1 replica of 8 GPUs) for half its estimate.
    fn running() -> TrainingJob {
        let spec: TrainingJobSpec = serde_json::from_value(serde_json::json!({
            "queueName": "q", "replicas": 1,
            "resources": {"cpu": "4", "memory": "16Gi", "accelerators": {"count": 8}},
            "workload": {"image": "x", "command": ["true"]}, "work": {"gpuHours": 100}
        }))
        .unwrap();
        let mut tj = TrainingJob::new("j", spec);
        tj.metadata.uid = Some("uid-1".into());
        tj.metadata.namespace = Some("team-a".into());
        tj.spec.checkpoint = Some(CheckpointSpec { restartable: true, ..Default::default() });
        tj.status = Some(TrainingJobStatus {
            phase: Some(TrainingJobPhase::Running),
            admitted: Some(true),
            attempt: Some(1),
            placement: Some(PlacementStatus {
                cluster: "ai-1".into(),
                accelerator: Some("A100-80G".into()),
                gpus: 8,
                replicas: Some(1),
                estimated_runtime_seconds: 2000.0,
                ..Default::default()
            }),
            start_time: Some(Time(t(9_000))),
            dispatch_time: Some(Time(t(9_000))),
            remote: Some(Default::default()),
            admission_seal: Some("ab".repeat(32)),
            ..Default::default()
        });
        tj
    }

    fn built() -> Built {
        let member: MemberCluster = serde_json::from_value(serde_json::json!({
            "apiVersion": "computenet.io/v1alpha1", "kind": "MemberCluster", "metadata": {"name": "ai-3"},
            "spec": {"kind": "AI", "site": "s", "kubernetes": {"kubeconfigSecretRef": {"name": "k", "namespace": "n", "key": "kubeconfig"}}}
        }))
        .unwrap();
        let node: k8s_openapi::api::core::v1::Node = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "h1", "labels": {"nvidia.com/gpu.product": "H800"}},
            "status": {"allocatable": {"cpu": "64", "memory": "512Gi", "nvidia.com/gpu": "8"},
                       "conditions": [{"type": "Ready", "status": "True"}]}
        }))
        .unwrap();
        let views = vec![MemberView {
            workload_kinds: Vec::new(),
            member: Arc::new(member),
            ready: true,
            nodes: MemberNodes::Kubernetes { nodes: vec![Arc::new(node)], pods: Vec::new(), memo: Default::default() },
            measured: None,
        }];
        snapshot::build(10_000, &views, &[], &[], &[], &BTreeMap::new(), &mut Default::default())
    }

    #[test]
    fn an_adjustment_ends_the_attempt_carries_the_progress_and_admits_the_next() {
        let tj = running();
        let a = Adjustment {
            job: "uid-1".into(),
            kind: AdjustmentKind::Migrate,
            replicas: 1,
            placement: Placement {
                cluster_index: 0,
                cluster: "ai-3".into(),
                accelerator: Some("H800".into()),
                slots: vec![computenet_core::pool::NodeSlot { node: 0, replicas: 1 }],
                estimate: Estimate {
                    runtime_s: 500.0,
                    transfer_s: 0.0,
                    energy_kwh: 1.0,
                    cost: 1.0,
                    carbon_kg: None,
                    source: computenet_core::throughput::EstimateSource::PeakTflops,
                },
                backfilled: false,
            },
            remaining_s: 1000.0,
            adjusted_s: 560.0,
            reason: "moves from ai-1 to ai-3: 0.16 h left instead of 0.28 h, restart included".into(),
        };
        let out = adjusted(&tj, &view::status(&tj), &a, &built(), t(10_000));
        let s = &out.status;
        assert_eq!((s.phase, s.admitted, s.attempt), (Some(TrainingJobPhase::Admitted), Some(true), Some(2)));
        let p = s.placement.as_ref().unwrap();
        assert_eq!(
            (p.cluster.as_str(), p.accelerator.as_deref(), p.replicas, p.gpus),
            ("ai-3", Some("H800"), Some(1), 8)
        );
        assert_eq!(p.nodes[0].node, "h1");
        assert_eq!((s.remote.as_ref(), s.dispatch_time.as_ref(), s.admission_seal.as_ref()), (None, None, None));
        assert_eq!(s.progress.as_ref().map(|p| p.completed), Some(0.5), "1000 s of an estimated 2000 s");
        let ended = &s.attempts[0];
        assert_eq!((ended.attempt, ended.cluster.as_str(), ended.reason.as_str()), (1, "ai-1", reasons::MOVED));
        assert_eq!((ended.completed, ended.end_time.as_ref()), (Some(0.5), Some(&Time(t(10_000)))));
        assert!(ended.message.as_deref().unwrap().starts_with("moves from ai-1 to ai-3"));
        assert!(conditions::find(&s.conditions, types::ADMITTED).is_some_and(|c| c.reason == reasons::MOVED));
        assert!(!conditions::is_true(&s.conditions, types::RUNNING), "not running until the new attempt does");
        assert_eq!(out.event.as_ref().map(|e| e.0), Some(EventReason::Adjusted));
        // A growth's placement holds the new size (as the round's always do).
        let mut placement = a.placement.clone();
        placement.slots = vec![computenet_core::pool::NodeSlot { node: 0, replicas: 2 }];
        let grow = Adjustment { kind: AdjustmentKind::Grow, replicas: 2, placement, ..a };
        let resized = adjusted(&tj, &view::status(&tj), &grow, &built(), t(10_000)).status;
        assert_eq!(resized.attempts[0].reason, reasons::RESIZED);
        assert_eq!(resized.placement.map(|p| (p.replicas, p.gpus)), Some((Some(2), 16)));
    }

    #[test]
    fn a_preempted_restartable_job_keeps_its_progress_and_a_rigid_one_starts_over() {
        let tj = running();
        let r = requeued(&tj, &view::status(&tj), Requeue::Preempted, "preempted on ai-1 for team-a/b", t(10_000));
        assert_eq!(r.status.progress.as_ref().map(|p| p.completed), Some(0.5));
        assert_eq!((r.status.attempts.len(), r.status.attempts[0].reason.as_str()), (1, reasons::PREEMPTED));
        assert_eq!(r.status.attempts[0].completed, Some(0.5));
        let mut rigid = running();
        rigid.spec.checkpoint = None;
        let r = requeued(&rigid, &view::status(&rigid), Requeue::Preempted, "preempted", t(10_000));
        assert_eq!(r.status.progress, None, "a rigid job's run is lost");
        assert_eq!(r.status.attempts[0].completed, None);
        // Waiting and admitted again, the history stays.
        let mut waiting = rigid.clone();
        waiting.status = Some(r.status.clone());
        let again = resumed(&view::status(&waiting));
        assert_eq!(again.attempts.len(), 1);
    }
}

//! Hand-built hub objects for the unit tests.

use computenet_api::conditions::{reasons, types};
use computenet_api::member_cluster::{AcceleratorCapacity, FreeNodeGroup};
use computenet_api::training_job::{ExplanationStatus, NodeReplicas, PlacementStatus, RejectedStatus};
use computenet_api::{
    ComputeQueue, MemberCluster, MemberClusterStatus, TrainingJob, TrainingJobPhase, TrainingJobStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

/// "Now" in the tests, seconds since the epoch.
pub const NOW: i64 = 1_700_000_000;

const GI: i64 = 1 << 30;

pub fn time(seconds: i64) -> Time {
    Time(Timestamp::from_second(seconds).expect("valid time"))
}

pub fn rfc3339(seconds: i64) -> String {
    Timestamp::from_second(seconds).expect("valid time").to_string()
}

pub fn condition(type_: &str, status: bool, reason: &str, message: &str) -> Condition {
    Condition {
        type_: type_.into(),
        status: if status { "True" } else { "False" }.into(),
        reason: reason.into(),
        message: message.into(),
        last_transition_time: time(NOW - 60),
        observed_generation: None,
    }
}

/// A Kubernetes member with `(type, free, total, devices per node)` accelerators and
/// `(free, total)` CPU cores, as `computenet serve` writes its status: GPU nodes of 32 cores
/// and 256 GiB, filled one node after the other, each used device with 2 cores and 8 GiB
/// beside it; CPU-only nodes of 32 cores, 4 GiB per used core, when it has no accelerators.
/// Heartbeat 5 s before [`NOW`].
pub fn member(
    name: &str,
    kind: &str,
    site: &str,
    accelerators: &[(&str, i64, i64, i64)],
    cpus: (i64, i64),
    ready: bool,
) -> MemberCluster {
    let spec = serde_yaml::from_str(&format!(
        "kind: {kind}\nsite: {site}\nkubernetes: {{kubeconfigSecretRef: {{name: {name}-kubeconfig, namespace: computenet-system, key: kubeconfig}}}}\nefficiency: {{pue: 1.1, energyPricePerKWh: 0.5}}"
    ))
    .expect("valid member spec");
    let mut m = MemberCluster::new(name, spec);
    let mut groups = Vec::new();
    let mut nodes = 0;
    // (type, per node, free units per node, count); units are devices, or cores for CPU nodes.
    let mut split = |accelerator: Option<&str>, free: i64, total: i64, per: i64| {
        let (full, rest) = (free / per, free % per);
        let used = total / per - full - i64::from(rest > 0);
        nodes += total / per;
        for (count, f) in [(full, per), (i64::from(rest > 0), rest), (used, 0)] {
            if count == 0 {
                continue;
            }
            let busy = per - f;
            groups.push(match accelerator {
                Some(t) => FreeNodeGroup {
                    accelerator: Some(t.to_string()),
                    count,
                    accelerators: per,
                    free_accelerators: f,
                    cpu_millis: 32_000,
                    free_cpu_millis: 32_000 - busy * 2000,
                    memory_bytes: 256 * GI,
                    free_memory_bytes: (256 - busy * 8) * GI,
                },
                None => FreeNodeGroup {
                    accelerator: None,
                    count,
                    accelerators: 0,
                    free_accelerators: 0,
                    cpu_millis: per * 1000,
                    free_cpu_millis: f * 1000,
                    memory_bytes: 256 * GI,
                    free_memory_bytes: (256 - busy * 4) * GI,
                },
            });
        }
    };
    for (t, free, total, per) in accelerators {
        split(Some(t), *free, *total, *per);
    }
    if accelerators.is_empty() && cpus.1 > 0 {
        split(None, cpus.0, cpus.1, 32);
    }
    m.status = Some(MemberClusterStatus {
        gpus: Some(format!(
            "{}/{}",
            accelerators.iter().map(|a| a.1).sum::<i64>(),
            accelerators.iter().map(|a| a.2).sum::<i64>()
        )),
        cpus: Some(format!("{}/{}", cpus.0, cpus.1)),
        accelerators: accelerators
            .iter()
            .map(|(t, free, total, per)| AcceleratorCapacity {
                accelerator: t.to_string(),
                total: *total,
                free: *free,
                largest_free_slot: (*free).min(*per),
            })
            .collect(),
        free_nodes: groups,
        nodes: Some(nodes as i32),
        measured: None,
        last_heartbeat: Some(time(NOW - 5)),
        conditions: vec![if ready {
            condition(types::READY, true, reasons::REACHABLE, "8 schedulable nodes")
        } else {
            condition(types::READY, false, "Unreachable", "no successful contact for 30s")
        }],
    });
    m
}

pub fn queue(name: &str, spec_yaml: &str) -> ComputeQueue {
    let mut q = ComputeQueue::new(name, serde_yaml::from_str(spec_yaml).expect("valid queue spec"));
    q.metadata.creation_timestamp = Some(time(NOW - 3600));
    q
}

/// A job of `replicas` x (4 cores, 16 GiB, `gpus` GPUs) for 8 GPU-hours, created at `created`.
pub fn job(namespace: &str, name: &str, queue: &str, replicas: i32, gpus: i64, created: i64) -> TrainingJob {
    let accelerators = if gpus > 0 { format!(", accelerators: {{count: {gpus}}}") } else { String::new() };
    let spec = serde_yaml::from_str(&format!(
        "queueName: {queue}\nreplicas: {replicas}\nresources: {{cpu: \"4\", memory: 16Gi{accelerators}}}\nworkload: {{image: example/train:1, command: [python, train.py]}}\nwork: {{gpuHours: 8}}"
    ))
    .expect("valid job spec");
    let mut j = TrainingJob::new(name, spec);
    j.metadata.namespace = Some(namespace.into());
    j.metadata.uid = Some(format!("uid-{namespace}-{name}"));
    j.metadata.creation_timestamp = Some(time(created));
    j
}

/// The job as the scheduler leaves a queued one.
pub fn queued(mut j: TrainingJob, position: i32, summary: &str) -> TrainingJob {
    j.status = Some(TrainingJobStatus {
        phase: Some(TrainingJobPhase::Queued),
        queue_position: Some(position),
        admitted: Some(false),
        explanation: Some(ExplanationStatus {
            summary: summary.into(),
            candidates: Vec::new(),
            rejected: vec![RejectedStatus { cluster: "ai-west".into(), reason: "only 1 replicas fit now".into() }],
        }),
        conditions: vec![condition(types::ADMITTED, false, reasons::INSUFFICIENT_CAPACITY, summary)],
        ..TrainingJobStatus::default()
    });
    j
}

/// The job as the scheduler leaves a running one, placed on `nodes` of `cluster`.
pub fn running(
    mut j: TrainingJob,
    cluster: &str,
    accelerator: &str,
    nodes: &[(&str, i32)],
    started: i64,
) -> TrainingJob {
    let gpus = i64::from(j.spec.replicas) * j.spec.resources.accelerators.as_ref().map_or(0, |a| i64::from(a.count));
    j.status = Some(TrainingJobStatus {
        phase: Some(TrainingJobPhase::Running),
        admitted: Some(true),
        placement: Some(PlacementStatus {
            cluster: cluster.into(),
            accelerator: Some(accelerator.into()),
            gpus,
            replicas: Some(j.spec.replicas),
            nodes: nodes.iter().map(|(n, r)| NodeReplicas { node: n.to_string(), replicas: *r }).collect(),
            estimated_runtime_seconds: 3600.0,
            estimated_energy_k_wh: 10.0,
            estimated_cost: 5.0,
            backfilled: false,
            ..PlacementStatus::default()
        }),
        explanation: Some(ExplanationStatus {
            summary: format!("admitted to {cluster} ({accelerator}): best of 1 feasible member(s) by Balanced"),
            candidates: Vec::new(),
            rejected: Vec::new(),
        }),
        start_time: Some(time(started)),
        conditions: vec![condition(types::ADMITTED, true, reasons::ADMITTED, &format!("placed on {cluster}"))],
        ..TrainingJobStatus::default()
    });
    j
}

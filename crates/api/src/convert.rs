//! Turning the resources into the core's types, with errors that name the field.

use crate::cohort::ComputeCohortSpec;
use crate::compute_queue::{self, ComputeQueueSpec, QuotaSpec};
use crate::error::{Error, Result};
use crate::member_cluster::{EfficiencyProfile, FreeNodeGroup, MemberCluster, MAX_FREE_NODE_GROUPS};
use crate::quantity::Quantity;
use crate::training_job::{self, TrainingJobSpec, MAX_RUN_SECONDS};
use computenet_core::accelerator::AcceleratorSpec;
use computenet_core::quantity::{parse_bytes, parse_count, parse_cpu_millis};
use computenet_core::queue::{
    Cohort, PreemptionPolicy, PreemptionScope, PriorityRange, QueueingStrategy, Quota, ResourceName,
};
use computenet_core::{
    AcceleratorConstraint, Cluster, ClusterEfficiency, ClusterKind, ElasticRange, Job, Node, NodeCapacity, Objective,
    Queue, ReplicaRequest, Restart, Work,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use std::collections::BTreeMap;

/// The text of a quantity, as written.
pub fn quantity_text(q: &Quantity) -> String {
    q.text().into_owned()
}

fn parse_with(field: &str, q: &Quantity, parse: fn(&str) -> computenet_core::Result<u64>) -> Result<u64> {
    parse(&q.text()).map_err(|e| Error::field(field, e.to_string()))
}

/// The core's cluster kind.
pub fn cluster_kind(kind: training_job::ClusterKind) -> ClusterKind {
    match kind {
        training_job::ClusterKind::General => ClusterKind::General,
        training_job::ClusterKind::AI => ClusterKind::AI,
        training_job::ClusterKind::HPC => ClusterKind::HPC,
    }
}

/// A TrainingJob as the core sees it. `id` is its UID; `submitted_at` its creation time
/// in seconds.
pub fn job(id: &str, spec: &TrainingJobSpec, submitted_at: u64) -> Result<Job> {
    let replicas = u32::try_from(spec.replicas)
        .ok()
        .filter(|r| *r > 0)
        .ok_or_else(|| Error::field("spec.replicas", "must be at least 1"))?;
    let accelerators = match &spec.resources.accelerators {
        Some(a) => u32::try_from(a.count)
            .ok()
            .filter(|c| *c > 0)
            .ok_or_else(|| Error::field("spec.resources.accelerators.count", "must be at least 1"))?,
        None => 0,
    };
    let per_replica = ReplicaRequest {
        cpu_millis: parse_with("spec.resources.cpu", &spec.resources.cpu, parse_cpu_millis)?,
        memory_bytes: parse_with("spec.resources.memory", &spec.resources.memory, parse_bytes)?,
        accelerators,
        extended: BTreeMap::new(),
    };
    let accelerator = spec
        .resources
        .accelerators
        .as_ref()
        .map(|a| AcceleratorConstraint {
            types: a.types.clone(),
            min_memory_gib: a.min_memory_gi_b.and_then(|m| u32::try_from(m).ok()),
        })
        .unwrap_or_default();
    let w = &spec.work;
    let work = match (&w.model, w.steps, w.gpu_hours) {
        (Some(model), Some(steps), None) => Work::ModelSteps {
            model: model.clone(),
            steps: u64::try_from(steps)
                .ok()
                .filter(|s| (1..=training_job::MAX_STEPS as u64).contains(s))
                .ok_or_else(|| Error::field("spec.work.steps", format!("must be 1 to {}", training_job::MAX_STEPS)))?,
            batch_size: w.batch_size.and_then(|b| u32::try_from(b).ok()),
        },
        (None, None, Some(hours)) if (0.0..=training_job::MAX_GPU_HOURS).contains(&hours) => Work::DeviceHours {
            hours,
            reference: w.reference_accelerator.clone().unwrap_or_else(|| "V100".to_string()),
        },
        (None, None, None) => Work::Unknown,
        (None, None, Some(_)) => {
            return Err(Error::field("spec.work.gpuHours", format!("must be 0 to {}", training_job::MAX_GPU_HOURS)))
        }
        _ => return Err(Error::field("spec.work", "give model and steps, or gpuHours")),
    };
    let objective = match spec.placement.objective {
        training_job::Objective::Fastest => Objective::Fastest,
        training_job::Objective::Cheapest => Objective::Cheapest,
        training_job::Objective::Greenest => Objective::Greenest,
        training_job::Objective::Balanced => Objective::Balanced,
    };
    Ok(Job {
        workload_kind: spec.source.as_ref().map(|s| s.kind.clone()),
        tenant: String::new(),
        id: id.to_string(),
        queue: spec.queue_name.clone(),
        priority: Some(spec.priority)
            .filter(|p| (training_job::MIN_PRIORITY..=training_job::MAX_PRIORITY).contains(p))
            .ok_or_else(|| {
                Error::field(
                    "spec.priority",
                    format!("must be {} to {}", training_job::MIN_PRIORITY, training_job::MAX_PRIORITY),
                )
            })?,
        submitted_at,
        replicas,
        per_replica,
        accelerator,
        cluster_kinds: spec.placement.cluster_kinds.iter().copied().map(cluster_kind).collect(),
        sites: spec.placement.sites.clone(),
        data_set: spec.placement.data_set.clone(),
        work,
        objective,
        // Objects stored under an older schema may hold more: cap, as estimates are capped.
        max_runtime_s: spec.max_run_seconds.and_then(|s| u64::try_from(s).ok()).map(|s| s.min(MAX_RUN_SECONDS as u64)),
        elastic: elastic(spec, replicas)?,
        restart: restart(spec)?,
    })
}

/// The elastic range; checked again here, as objects stored under an older schema may
/// break the rules the CRD now enforces.
fn elastic(spec: &TrainingJobSpec, replicas: u32) -> Result<Option<ElasticRange>> {
    let Some(e) = spec.elastic else { return Ok(None) };
    let size = |v: i32, field: &str| {
        u32::try_from(v).ok().filter(|v| (1..=4096).contains(v)).ok_or_else(|| Error::field(field, "must be 1 to 4096"))
    };
    let range = ElasticRange {
        min_replicas: size(e.min_replicas, "spec.elastic.minReplicas")?,
        max_replicas: size(e.max_replicas, "spec.elastic.maxReplicas")?,
    };
    if range.min_replicas > range.max_replicas {
        return Err(Error::field("spec.elastic", "minReplicas must be at most maxReplicas"));
    }
    if !range.contains(replicas) {
        return Err(Error::field("spec.replicas", "must lie within spec.elastic.minReplicas..maxReplicas"));
    }
    Ok(Some(range))
}

/// The restart figures of a restartable job; `None` unless `checkpoint.restartable`.
fn restart(spec: &TrainingJobSpec) -> Result<Option<Restart>> {
    let Some(c) = spec.checkpoint.filter(|c| c.restartable) else { return Ok(None) };
    let seconds = |v: i64, max: i64, field: &str| {
        Some(v)
            .filter(|v| (0..=max).contains(v))
            .map(|v| v as u64)
            .ok_or_else(|| Error::field(field, format!("must be 0 to {max}")))
    };
    Ok(Some(Restart {
        grace_period_s: seconds(
            c.grace_period_seconds,
            training_job::MAX_GRACE_PERIOD_SECONDS,
            "spec.checkpoint.gracePeriodSeconds",
        )?,
        restart_cost_s: seconds(
            c.restart_cost_seconds,
            training_job::MAX_RESTART_COST_SECONDS,
            "spec.checkpoint.restartCostSeconds",
        )?,
    }))
}

fn resource_name(resource: &str) -> ResourceName {
    match resource {
        "cpu" => ResourceName::Cpu,
        "memory" => ResourceName::Memory,
        r if r.ends_with("/gpu") || r.ends_with("/npu") || r == "accelerators" => ResourceName::Accelerators,
        other => ResourceName::Extended(other.to_string()),
    }
}

fn quota(i: usize, q: &QuotaSpec) -> Result<Quota> {
    let resource = resource_name(&q.resource);
    let parse: fn(&str) -> computenet_core::Result<u64> = match resource {
        ResourceName::Cpu => parse_cpu_millis,
        ResourceName::Memory => parse_bytes,
        _ => parse_count,
    };
    let field = |f: &str| format!("spec.quotas[{i}].{f}");
    Ok(Quota {
        resource,
        accelerator: q.accelerator.clone(),
        nominal: parse_with(&field("nominal"), &q.nominal, parse)?,
        borrowing_limit: q
            .borrowing_limit
            .as_ref()
            .map(|v| parse_with(&field("borrowingLimit"), v, parse))
            .transpose()?,
        lending_limit: q.lending_limit.as_ref().map(|v| parse_with(&field("lendingLimit"), v, parse)).transpose()?,
    })
}

/// A ComputeQueue as the core sees it.
pub fn queue(name: &str, spec: &ComputeQueueSpec) -> Result<Queue> {
    let scope = |s: compute_queue::PreemptionScope| match s {
        compute_queue::PreemptionScope::Never => PreemptionScope::Never,
        compute_queue::PreemptionScope::LowerPriority => PreemptionScope::LowerPriority,
        compute_queue::PreemptionScope::Any => PreemptionScope::Any,
    };
    Ok(Queue {
        name: name.to_string(),
        cohort: spec.cohort.clone(),
        weight: spec.weight,
        quotas: spec.quotas.iter().enumerate().map(|(i, q)| quota(i, q)).collect::<Result<_>>()?,
        preemption: PreemptionPolicy {
            within_queue: scope(spec.preemption.within_queue),
            reclaim_within_cohort: scope(spec.preemption.reclaim_within_cohort),
        },
        strategy: match spec.queueing_strategy {
            compute_queue::QueueingStrategy::StrictFIFO => QueueingStrategy::StrictFifo,
            compute_queue::QueueingStrategy::BestEffortFIFO => QueueingStrategy::BestEffortFifo,
        },
        priority_range: priority_range(&spec.priority_range)?,
        // Filled in from the usage store by the view (fair share with memory, budgets).
        past_share: 0.0,
        budget_exhausted: None,
    })
}

/// A ComputeCohort as the core sees it. Two quotas of one (resource, accelerator) are
/// refused: the core would count only the first.
pub fn cohort(name: &str, spec: &ComputeCohortSpec) -> Result<Cohort> {
    let quotas: Vec<Quota> = spec.quotas.iter().enumerate().map(|(i, q)| quota(i, q)).collect::<Result<_>>()?;
    for (i, q) in quotas.iter().enumerate() {
        if quotas[..i].iter().any(|p| p.resource == q.resource && p.accelerator == q.accelerator) {
            return Err(Error::field(
                &format!("spec.quotas[{i}]"),
                "a second quota of the same resource and accelerator",
            ));
        }
    }
    Ok(Cohort {
        name: name.to_string(),
        parent: spec.parent.clone(),
        quotas,
        budget: spec.budget.as_ref().map(|b| b.core()),
    })
}

/// A queue's allowed priorities; bounds outside the priorities a job may have, or min
/// above max (stored under an older, looser schema), make the queue invalid.
fn priority_range(range: &compute_queue::PriorityRange) -> Result<PriorityRange> {
    let bounds = training_job::MIN_PRIORITY..=training_job::MAX_PRIORITY;
    if !bounds.contains(&range.min) || !bounds.contains(&range.max) || range.min > range.max {
        return Err(Error::field(
            "spec.priorityRange",
            format!(
                "min and max must be {} to {}, min at most max",
                training_job::MIN_PRIORITY,
                training_job::MAX_PRIORITY
            ),
        ));
    }
    Ok(PriorityRange { min: range.min, max: range.max })
}

/// A member's efficiency profile, and its accelerator figure overrides.
pub fn efficiency(profile: &EfficiencyProfile) -> (ClusterEfficiency, Vec<(String, AcceleratorSpec)>) {
    (
        ClusterEfficiency {
            pue: profile.pue,
            energy_price_per_kwh: profile.energy_price_per_kwh,
            carbon_g_per_kwh: profile.carbon_g_per_kwh,
            power_scale: 1.0,
        },
        profile
            .accelerators
            .iter()
            .map(|(name, f)| {
                (
                    name.clone(),
                    AcceleratorSpec {
                        peak_tflops: f.peak_tflops,
                        board_power_w: f.board_power_w,
                        memory_gib: f.memory_gi_b,
                    },
                )
            })
            .collect(),
    )
}

/// Whether a label selector matches labels (Kubernetes semantics; `None` matches nothing).
pub fn selector_matches(selector: Option<&LabelSelector>, labels: &BTreeMap<String, String>) -> bool {
    let Some(selector) = selector else { return false };
    let labels_ok = selector.match_labels.iter().flatten().all(|(k, v)| labels.get(k) == Some(v));
    let expressions_ok = selector.match_expressions.iter().flatten().all(|e| {
        let value = labels.get(&e.key);
        let values = e.values.as_deref().unwrap_or_default();
        match e.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        }
    });
    labels_ok && expressions_ok
}

/// Significant binary digits that CPU and memory keep, coarsest last, when a cluster has
/// more distinct node shapes than `status.freeNodes` may hold.
const GROUP_PRECISIONS: [u32; 8] = [8, 7, 6, 5, 4, 3, 2, 1];

/// Nodes rebuilt from one group at most, whatever a status claims.
pub const MAX_NODES_PER_GROUP: i64 = 100_000;

/// Nodes rebuilt from one member's status at most, in total (64 full groups would be
/// millions: seconds and gigabytes every cycle).
pub const MAX_NODES_PER_MEMBER: usize = 100_000;

/// `v` rounded down to its `bits` most significant binary digits (relative error < 2^(1-bits)).
fn round_down(v: u64, bits: u32) -> u64 {
    let shift = (u64::BITS - v.leading_zeros()).saturating_sub(bits);
    (v >> shift) << shift
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Groups nodes by (type, devices, free devices, CPU, free CPU, memory, free memory), CPU and
/// memory rounded down to `bits` significant digits when given, device counts to powers of
/// two when `round_devices`.
fn group_nodes(nodes: &[&Node], bits: Option<u32>, round_devices: bool) -> Vec<FreeNodeGroup> {
    type Key = (Option<String>, u32, u32, u64, u64, u64, u64);
    let r = |v: u64| bits.map_or(v, |b| round_down(v, b));
    let d = |v: u32| if round_devices { round_down(u64::from(v), 1) as u32 } else { v };
    let mut groups: BTreeMap<Key, i64> = BTreeMap::new();
    for n in nodes {
        let free = n.free();
        let a = &n.allocatable;
        let key = (
            n.accelerator.clone(),
            d(a.accelerators),
            d(free.accelerators),
            r(a.cpu_millis),
            r(free.cpu_millis),
            r(a.memory_bytes),
            r(free.memory_bytes),
        );
        *groups.entry(key).or_default() += 1;
    }
    groups
        .into_iter()
        .map(|((accelerator, acc, free_acc, cpu, free_cpu, mem, free_mem), count)| FreeNodeGroup {
            accelerator,
            count,
            accelerators: i64::from(acc),
            free_accelerators: i64::from(free_acc),
            cpu_millis: to_i64(cpu),
            free_cpu_millis: to_i64(free_cpu),
            memory_bytes: to_i64(mem),
            free_memory_bytes: to_i64(free_mem),
        })
        .collect()
}

/// A member's schedulable nodes as `status.freeNodes`: grouped by accelerator type, what
/// each node offers and what it has free, so that gang fits can be told without the nodes.
///
/// At most [`MAX_FREE_NODE_GROUPS`] groups. When the exact shapes are more, CPU and memory
/// are rounded down to fewer significant binary digits (8 down to 1, i.e. to within 1 % ..
/// 50 %), then device counts to powers of two; rounding is always down, so the groups never
/// offer more than the nodes do. Should even that leave too many, the groups with the least
/// free are left out. Unschedulable nodes are not counted.
pub fn free_node_groups(cluster: &Cluster) -> Vec<FreeNodeGroup> {
    let nodes: Vec<&Node> = cluster.nodes.iter().filter(|n| !n.unschedulable).collect();
    let mut groups = group_nodes(&nodes, None, false);
    for bits in GROUP_PRECISIONS {
        if groups.len() <= MAX_FREE_NODE_GROUPS {
            return groups;
        }
        groups = group_nodes(&nodes, Some(bits), false);
    }
    if groups.len() > MAX_FREE_NODE_GROUPS {
        groups = group_nodes(&nodes, Some(1), true);
    }
    if groups.len() > MAX_FREE_NODE_GROUPS {
        let mut by_use: Vec<(usize, FreeNodeGroup)> = groups.into_iter().enumerate().collect();
        by_use.sort_by(|(i, a), (j, b)| {
            (b.free_accelerators, b.free_cpu_millis, b.count, *j).cmp(&(
                a.free_accelerators,
                a.free_cpu_millis,
                a.count,
                *i,
            ))
        });
        by_use.truncate(MAX_FREE_NODE_GROUPS);
        by_use.sort_by_key(|(i, _)| *i);
        groups = by_use.into_iter().map(|(_, g)| g).collect();
    }
    groups
}

/// The core's view of a member as its status shows it: kind, site, efficiency, data sets
/// and cordon from the spec, readiness from the `Ready` condition, and one synthetic node
/// per node of `status.freeNodes` (named `<member>/<group>-<i>`) offering and having free
/// what its group says. Gang fits on it are those on the member when the status was
/// written. `None` when the member has no status yet.
pub fn cluster_from_status(member: &MemberCluster) -> Option<Cluster> {
    let status = member.status.as_ref()?;
    let name = member.metadata.name.clone().unwrap_or_default();
    let spec = &member.spec;
    let count = |v: i64| u32::try_from(v.max(0)).unwrap_or(u32::MAX);
    let amount = |v: i64| u64::try_from(v).unwrap_or(0);
    let mut nodes = Vec::new();
    for (g, group) in status.free_nodes.iter().enumerate() {
        let free = NodeCapacity {
            cpu_millis: amount(group.free_cpu_millis),
            memory_bytes: amount(group.free_memory_bytes),
            accelerators: count(group.free_accelerators),
            extended: BTreeMap::new(),
        };
        let allocatable = NodeCapacity {
            cpu_millis: amount(group.cpu_millis).max(free.cpu_millis),
            memory_bytes: amount(group.memory_bytes).max(free.memory_bytes),
            accelerators: count(group.accelerators).max(free.accelerators),
            extended: BTreeMap::new(),
        };
        let allocated = allocatable.saturating_sub(&free);
        for i in 0..group.count.clamp(0, MAX_NODES_PER_GROUP) {
            if nodes.len() >= MAX_NODES_PER_MEMBER {
                break;
            }
            nodes.push(Node {
                name: format!("{name}/{g}-{i}"),
                accelerator: group.accelerator.clone(),
                allocatable: allocatable.clone(),
                allocated: allocated.clone(),
                topology_domain: String::new(),
                unschedulable: false,
            });
        }
    }
    Some(Cluster {
        workload_kinds: Vec::new(),
        name,
        kind: cluster_kind(spec.kind),
        site: spec.site.clone(),
        ready: crate::conditions::is_true(&status.conditions, crate::conditions::types::READY),
        cordoned: spec.cordoned,
        efficiency: efficiency(&spec.efficiency).0,
        data_sets: spec.data_sets.clone(),
        nodes,
        tenants: tenants(spec),
    })
}

/// The tenants (hub namespaces) a member runs jobs of; `None` for every tenant.
pub fn tenants(spec: &crate::member_cluster::MemberClusterSpec) -> Option<Vec<String>> {
    spec.slurm.as_ref().and_then(|s| s.tenant_namespaces())
}

/// Rounds a figure for status (three decimals).
pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// How an estimate's source is shown: learned from running jobs, profile-based or a fallback.
pub fn estimate_source(source: computenet_core::throughput::EstimateSource) -> &'static str {
    use computenet_core::throughput::EstimateSource as S;
    match source {
        S::Learned { .. } => "Learned",
        S::Measured => "Profile",
        S::ScaledProfile => "ScaledProfile",
        S::PeakTflops | S::Unknown => "Fallback",
    }
}

/// A decision's explanation as written in TrainingJob status: the candidates with their
/// score breakdown and the reason each rejected member was rejected.
pub fn explanation_status(
    e: &computenet_core::explain::Explanation,
    summary: String,
) -> training_job::ExplanationStatus {
    training_job::ExplanationStatus {
        summary,
        candidates: e
            .candidates
            .iter()
            .map(|c| training_job::CandidateStatus {
                cluster: c.cluster.to_string(),
                accelerator: c.accelerator.as_deref().map(str::to_string),
                score: round3(c.score.total),
                time_score: round3(c.score.time),
                energy_score: round3(c.score.energy),
                cost_score: round3(c.score.cost),
                carbon_score: round3(c.score.carbon),
                runtime_seconds: round3(c.estimate.runtime_s),
                energy_k_wh: round3(c.estimate.energy_kwh),
                estimate_source: Some(estimate_source(c.estimate.source).to_string()),
            })
            .collect(),
        rejected: e
            .rejected
            .iter()
            .map(|r| training_job::RejectedStatus { cluster: r.cluster.to_string(), reason: r.reason.to_string() })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn spec(yaml: &str) -> TrainingJobSpec {
        serde_yaml::from_str(yaml).expect("valid spec")
    }

    const BERT: &str = r#"
queueName: research
priority: 100
replicas: 4
resources: {cpu: "8", memory: 64Gi, accelerators: {count: 8, types: [A100-80G, H800]}}
workload: {image: example/bert:1.0, command: ["torchrun", "train.py"]}
work: {model: bert, steps: 100000}
placement: {clusterKinds: [AI, HPC], dataSet: city-corpus, objective: Balanced}
maxRunSeconds: 86400
"#;

    #[test]
    fn the_issue_example_converts() {
        let j = job("uid-1", &spec(BERT), 7).expect("converts");
        assert_eq!((j.replicas, j.per_replica.accelerators, j.per_replica.cpu_millis), (4, 8, 8000));
        assert_eq!(j.per_replica.memory_bytes, 64 << 30);
        assert_eq!(j.accelerator.types, vec!["A100-80G", "H800"]);
        assert_eq!(j.cluster_kinds, vec![ClusterKind::AI, ClusterKind::HPC]);
        assert_eq!(j.work, Work::ModelSteps { model: "bert".into(), steps: 100_000, batch_size: None });
        assert_eq!((j.submitted_at, j.max_runtime_s, j.priority), (7, Some(86400), 100));
    }

    #[test]
    fn elastic_and_restartable_jobs_convert_and_defaults_stay_rigid() {
        let rigid = job("u", &spec(BERT), 0).expect("converts");
        assert_eq!((rigid.elastic, rigid.restart), (None, None));
        let adaptive =
            format!("{BERT}elastic: {{minReplicas: 2, maxReplicas: 8}}\ncheckpoint: {{restartable: true}}\n");
        let j = job("u", &spec(&adaptive), 0).expect("converts");
        assert_eq!(j.elastic, Some(ElasticRange { min_replicas: 2, max_replicas: 8 }));
        assert_eq!(j.restart, Some(Restart { grace_period_s: 30, restart_cost_s: 60 }), "the defaults");
        assert_eq!(j.replicas, 4, "the size asked for");
        j.validate().expect("the core accepts it");
        let not_restartable = format!("{BERT}checkpoint: {{gracePeriodSeconds: 10, restartCostSeconds: 5}}\n");
        assert_eq!(job("u", &spec(&not_restartable), 0).expect("converts").restart, None);
        let costly =
            format!("{BERT}checkpoint: {{restartable: true, gracePeriodSeconds: 0, restartCostSeconds: 86400}}\n");
        assert_eq!(
            job("u", &spec(&costly), 0).unwrap().restart,
            Some(Restart { grace_period_s: 0, restart_cost_s: 86_400 })
        );
    }

    #[test]
    fn elastic_and_checkpoint_figures_outside_the_schema_name_their_field() {
        // Stored under an older schema, or written past the CEL rules: an error, never a panic.
        let cases = [
            ("elastic: {minReplicas: 5, maxReplicas: 8}", "spec.replicas:"),
            ("elastic: {minReplicas: 1, maxReplicas: 3}", "spec.replicas:"),
            ("elastic: {minReplicas: 8, maxReplicas: 2}", "spec.elastic:"),
            ("elastic: {minReplicas: 0, maxReplicas: 4}", "spec.elastic.minReplicas:"),
            ("elastic: {minReplicas: 1, maxReplicas: 5000}", "spec.elastic.maxReplicas:"),
            ("checkpoint: {restartable: true, gracePeriodSeconds: -1}", "spec.checkpoint.gracePeriodSeconds:"),
            ("checkpoint: {restartable: true, restartCostSeconds: 86401}", "spec.checkpoint.restartCostSeconds:"),
        ];
        for (extra, field) in cases {
            let err = job("u", &spec(&format!("{BERT}{extra}\n")), 0).unwrap_err().to_string();
            assert!(err.starts_with(field), "{extra}: {err}");
        }
    }

    #[test]
    fn bad_quantities_name_their_field() {
        let bad = BERT.replace("memory: 64Gi", "memory: lots");
        let err = job("u", &spec(&bad), 0).unwrap_err().to_string();
        assert!(err.starts_with("spec.resources.memory:"), "{err}");
    }

    #[test]
    fn plain_byte_counts_beyond_i32_convert() {
        let big = BERT.replace("memory: 64Gi", "memory: 68719476736").replace("cpu: \"8\"", "cpu: 8");
        let j = job("u", &spec(&big), 0).expect("converts");
        assert_eq!((j.per_replica.memory_bytes, j.per_replica.cpu_millis), (64 << 30, 8000));
    }

    #[test]
    fn numbers_outside_the_schema_name_their_field() {
        let cases = [
            ("priority: 100", "priority: 2000000000", "spec.priority:"),
            ("steps: 100000", "steps: 1000000000001", "spec.work.steps:"),
            ("memory: 64Gi", "memory: -1", "spec.resources.memory:"),
            ("memory: 64Gi", "memory: \" 8\"", "spec.resources.memory:"),
            ("cpu: \"8\"", "cpu: \"8x\"", "spec.resources.cpu:"),
        ];
        for (from, to, field) in cases {
            let err = job("u", &spec(&BERT.replace(from, to)), 0).unwrap_err().to_string();
            assert!(err.starts_with(field), "{to}: {err}");
        }
        let hours = BERT.replace("work: {model: bert, steps: 100000}", "work: {gpuHours: 1e300}");
        let err = job("u", &spec(&hours), 0).unwrap_err().to_string();
        assert!(err.starts_with("spec.work.gpuHours:"), "{err}");
        let long = BERT.replace("maxRunSeconds: 86400", "maxRunSeconds: 9000000000000");
        assert_eq!(job("u", &spec(&long), 0).unwrap().max_runtime_s, Some(MAX_RUN_SECONDS as u64));
    }

    fn any_quantity() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
        use proptest::prelude::*;
        prop_oneof![
            (0u64..=crate::quantity::MAX_INTEGER).prop_map(serde_json::Value::from),
            proptest::string::string_regex("[0-9]{1,12}(\\.[0-9]{0,3})?(m|k|M|G|T|Ki|Mi|Gi|Ti)?")
                .unwrap()
                .prop_map(serde_json::Value::from),
        ]
    }

    fn any_work() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
        use proptest::prelude::*;
        prop_oneof![
            Just(serde_json::json!({})),
            (1i64..=training_job::MAX_STEPS, proptest::option::of(1i32..=training_job::MAX_BATCH_SIZE))
                .prop_map(|(steps, batch)| serde_json::json!({"model": "bert", "steps": steps, "batchSize": batch})),
            prop_oneof![Just(0.0), Just(training_job::MAX_GPU_HOURS), 0.0..=training_job::MAX_GPU_HOURS]
                .prop_map(|h| serde_json::json!({"gpuHours": h, "referenceAccelerator": "V100"})),
        ]
    }

    proptest::proptest! {
        /// Any spec the schema admits converts without panicking, and its estimates on
        /// every catalogue type are finite, non-negative and bounded.
        #[test]
        fn valid_specs_give_finite_bounded_estimates(
            replicas in 1i32..=4096,
            count in proptest::option::of(1i32..=64),
            cpu in any_quantity(),
            memory in any_quantity(),
            priority in training_job::MIN_PRIORITY..=training_job::MAX_PRIORITY,
            work in any_work(),
            max_run in proptest::option::of(1i64..=MAX_RUN_SECONDS),
            nodes in 1u32..=4096,
        ) {
            let mut resources = serde_json::json!({"cpu": cpu, "memory": memory});
            if let Some(count) = count {
                resources["accelerators"] = serde_json::json!({"count": count});
            }
            let spec: TrainingJobSpec = serde_json::from_value(serde_json::json!({
                "queueName": "q", "priority": priority, "replicas": replicas, "resources": resources,
                "workload": {"image": "i", "command": ["c"]}, "work": work, "maxRunSeconds": max_run,
            })).unwrap();
            // Quantities larger than the parser's units are conversion errors, never panics.
            let Ok(j) = job("u", &spec, u64::MAX) else { return Ok(()) };
            let catalogue = computenet_core::Catalogue::built_in();
            let model = computenet_core::ThroughputModel::default();
            let cluster = Cluster { workload_kinds: Vec::new(), tenants: None,
                name: "c".into(), kind: ClusterKind::AI, site: String::new(), ready: true, cordoned: false,
                efficiency: ClusterEfficiency { pue: 5.0, energy_price_per_kwh: 1e6, carbon_g_per_kwh: Some(1e5), power_scale: 4.0 },
                data_sets: Vec::new(), nodes: Vec::new(),
            };
            let pool = computenet_core::Pool { clusters: vec![cluster.clone()], catalogue: catalogue.clone(), data_sets: BTreeMap::new(), wan_gbps: 1.0 };
            for accelerator in [None, Some("A100-80G"), Some("V100"), Some("no-such-type")] {
                let e = model.estimate(&j, &pool, &cluster, accelerator, nodes);
                let max = computenet_core::throughput::MAX_RUNTIME_S;
                proptest::prop_assert!(e.runtime_s.is_finite() && (0.0..=max).contains(&e.runtime_s), "{:?}", e);
                proptest::prop_assert!(e.energy_kwh.is_finite() && e.energy_kwh >= 0.0, "{:?}", e);
                proptest::prop_assert!(e.cost.is_finite() && e.cost >= 0.0, "{:?}", e);
                proptest::prop_assert!(e.carbon_kg.is_none_or(|c| c.is_finite() && c >= 0.0), "{:?}", e);
                proptest::prop_assert!(serde_json::to_value(round3(e.runtime_s)).unwrap().is_number());
            }
        }
    }

    #[test]
    fn cohorts_convert_with_parent_quotas_and_budget() {
        let spec: ComputeCohortSpec = serde_yaml::from_str(
            "parent: org\nquotas: [{resource: nvidia.com/gpu, nominal: 8, borrowingLimit: 4, lendingLimit: 2}]\nbudget: {period: Day, gpuHours: 100}",
        )
        .expect("valid");
        let c = cohort("dept-a", &spec).expect("converts");
        assert_eq!((c.name.as_str(), c.parent.as_deref()), ("dept-a", Some("org")));
        assert_eq!(
            (c.quotas[0].resource.clone(), c.quotas[0].nominal, c.quotas[0].borrowing_limit, c.quotas[0].lending_limit),
            (ResourceName::Accelerators, 8, Some(4), Some(2))
        );
        assert_eq!(c.budget.and_then(|b| b.gpu_hours), Some(100.0));
        let twice: ComputeCohortSpec = serde_yaml::from_str(
            "quotas: [{resource: nvidia.com/gpu, nominal: 8}, {resource: nvidia.com/gpu, nominal: 2}]",
        )
        .expect("valid");
        let err = cohort("dept-a", &twice).expect_err("two quotas of one key");
        assert!(err.to_string().starts_with("spec.quotas[1]: "), "{err}");
        let bad: ComputeCohortSpec = serde_yaml::from_str("quotas: [{resource: cpu, nominal: lots}]").expect("parses");
        assert!(cohort("c", &bad).expect_err("bad quantity").to_string().starts_with("spec.quotas[0].nominal"));
    }

    #[test]
    fn queues_convert_with_quantities() {
        let q: ComputeQueueSpec = serde_yaml::from_str(
            "cohort: city\nweight: 2\nquotas: [{resource: nvidia.com/gpu, nominal: 64, borrowingLimit: 32}, {resource: cpu, nominal: \"500\"}]\npreemption: {withinQueue: LowerPriority}\nqueueingStrategy: StrictFIFO",
        )
        .expect("valid");
        let q = queue("research", &q).expect("converts");
        assert_eq!(q.quotas[0].resource, ResourceName::Accelerators);
        assert_eq!((q.quotas[0].nominal, q.quotas[0].borrowing_limit), (64, Some(32)));
        assert_eq!(q.quotas[1].nominal, 500_000, "cpu in millicores");
        assert_eq!(q.strategy, QueueingStrategy::StrictFifo);
        assert_eq!(q.preemption.within_queue, PreemptionScope::LowerPriority);
    }

    fn node(name: &str, accelerator: Option<&str>, allocatable: (u32, u64, u64), used: (u32, u64, u64)) -> Node {
        let cap = |(a, c, m): (u32, u64, u64)| NodeCapacity {
            cpu_millis: c,
            memory_bytes: m,
            accelerators: a,
            extended: BTreeMap::new(),
        };
        Node {
            name: name.into(),
            accelerator: accelerator.map(str::to_string),
            allocatable: cap(allocatable),
            allocated: cap(used),
            topology_domain: String::new(),
            unschedulable: false,
        }
    }

    const GI: u64 = 1 << 30;

    fn mixed_cluster() -> Cluster {
        let gpu = |i: usize, t: &str, used: u32| {
            node(
                &format!("n{i}"),
                Some(t),
                (8, 64_000, 512 * GI),
                (used, u64::from(used) * 4000, u64::from(used) * 32 * GI),
            )
        };
        let mut nodes = vec![
            gpu(0, "A100-80G", 0),
            gpu(1, "A100-80G", 3),
            gpu(2, "A100-80G", 8),
            gpu(3, "A100-80G", 0),
            gpu(4, "H800", 4),
            gpu(5, "H800", 4),
            node("c0", None, (0, 32_000, 128 * GI), (0, 8_500, 16 * GI)),
            node("c1", None, (0, 32_000, 128 * GI), (0, 0, 0)),
        ];
        let mut cordoned = gpu(6, "H800", 0);
        cordoned.unschedulable = true;
        nodes.push(cordoned);
        Cluster {
            workload_kinds: Vec::new(),
            tenants: None,
            name: "ai-west".into(),
            kind: ClusterKind::AI,
            site: "west".into(),
            ready: true,
            cordoned: false,
            efficiency: ClusterEfficiency { pue: 1.2, energy_price_per_kwh: 0.6, ..ClusterEfficiency::default() },
            data_sets: vec!["corpus".into()],
            nodes,
        }
    }

    fn member_with(cluster: &Cluster, groups: Vec<FreeNodeGroup>) -> MemberCluster {
        let mut m = MemberCluster::new(
            &cluster.name,
            serde_yaml::from_str(
                "kind: AI\nsite: west\nkubernetes: {kubeconfigSecretRef: {name: s, namespace: n, key: k}}\nefficiency: {pue: 1.2, energyPricePerKWh: 0.6}\ndataSets: [corpus]",
            )
            .expect("valid spec"),
        );
        m.status = Some(crate::MemberClusterStatus {
            free_nodes: groups,
            conditions: vec![k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
                type_: "Ready".into(),
                status: "True".into(),
                reason: "Reachable".into(),
                message: String::new(),
                last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                    k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
                ),
                observed_generation: None,
            }],
            ..Default::default()
        });
        m
    }

    /// Whether `replicas` x `request` fits on nodes of `accelerator`, or how many replicas do.
    fn gang_fit(
        cluster: &Cluster,
        accelerator: Option<&str>,
        request: &ReplicaRequest,
        replicas: u32,
    ) -> Result<(), u32> {
        let index = computenet_core::index::ClusterIndex::new(cluster);
        let Some(g) = index.groups().iter().position(|g| g.accelerator.as_deref() == accelerator) else {
            return Err(0);
        };
        index.find_slots(g, request, replicas, None).map(|_| ())
    }

    fn request(accelerators: u32, cores: u64, gib: u64) -> ReplicaRequest {
        ReplicaRequest { cpu_millis: cores * 1000, memory_bytes: gib * GI, accelerators, extended: BTreeMap::new() }
    }

    const SHAPES: [(Option<&str>, u32, u64, u64, u32); 10] = [
        (Some("A100-80G"), 8, 4, 16, 2),
        (Some("A100-80G"), 8, 4, 16, 3),
        (Some("A100-80G"), 5, 4, 16, 3),
        (Some("A100-80G"), 1, 1, 1, 21),
        (Some("A100-80G"), 1, 1, 1, 22),
        (Some("A100-80G"), 4, 40, 16, 2),
        (Some("H800"), 4, 8, 64, 2),
        (Some("H800"), 8, 8, 64, 1),
        (None, 0, 23, 64, 2),
        (None, 0, 24, 64, 2),
    ];

    #[test]
    fn free_node_groups_round_trip_to_the_same_gang_fits() {
        let cluster = mixed_cluster();
        let groups = free_node_groups(&cluster);
        assert_eq!(groups.iter().map(|g| g.count).sum::<i64>(), 8, "the cordoned node is left out");
        assert_eq!(groups.len(), 6, "{groups:?}");
        let rebuilt = cluster_from_status(&member_with(&cluster, groups)).expect("has a status");
        assert_eq!((rebuilt.kind, rebuilt.site.as_str(), rebuilt.ready), (ClusterKind::AI, "west", true));
        assert_eq!((rebuilt.efficiency.pue, rebuilt.efficiency.energy_price_per_kwh), (1.2, 0.6));
        assert_eq!(rebuilt.data_sets, cluster.data_sets);
        assert_eq!(rebuilt.nodes.len(), 8);
        for (accelerator, gpus, cores, gib, replicas) in SHAPES {
            let r = request(gpus, cores, gib);
            assert_eq!(
                gang_fit(&rebuilt, accelerator, &r, replicas),
                gang_fit(&cluster, accelerator, &r, replicas),
                "{replicas} x {r:?} on {accelerator:?}"
            );
        }
        assert_eq!(gang_fit(&rebuilt, Some("A100-80G"), &request(8, 4, 16), 2), Ok(()));
        assert_eq!(gang_fit(&rebuilt, Some("A100-80G"), &request(8, 4, 16), 3), Err(2));
    }

    #[test]
    fn many_node_shapes_stay_within_the_bound_and_never_fit_more() {
        let mut cluster = mixed_cluster();
        cluster.nodes = (0..600u64)
            .map(|i| {
                let t = ["A100-80G", "H800", "V100"][(i % 3) as usize];
                node(
                    &format!("n{i}"),
                    Some(t),
                    (8, 96_000 + i * 10, 700 * GI + i * 12_345_678),
                    ((i % 9) as u32, i * 97, i * 3 * GI / 7),
                )
            })
            .collect();
        let groups = free_node_groups(&cluster);
        assert!(groups.len() <= MAX_FREE_NODE_GROUPS, "{} groups", groups.len());
        assert_eq!(groups.iter().map(|g| g.count).sum::<i64>(), 600, "coarsening keeps every node");
        let rebuilt = cluster_from_status(&member_with(&cluster, groups)).expect("has a status");
        for t in ["A100-80G", "H800", "V100"] {
            for (gpus, cores, gib) in [(1, 1, 1), (4, 16, 128), (8, 90, 600), (2, 64, 64)] {
                for replicas in [1, 10, 50, 150, 400] {
                    let r = request(gpus, cores, gib);
                    let (orig, back) =
                        (gang_fit(&cluster, Some(t), &r, replicas), gang_fit(&rebuilt, Some(t), &r, replicas));
                    assert!(
                        orig.is_ok() || back.is_err(),
                        "{replicas} x {r:?} on {t}: rebuilt fits, original does not"
                    );
                }
            }
        }
    }

    #[test]
    fn a_member_without_status_has_no_cluster_and_readiness_follows_the_condition() {
        let cluster = mixed_cluster();
        let mut member = member_with(&cluster, free_node_groups(&cluster));
        member.status.as_mut().expect("status").conditions[0].status = "False".into();
        assert!(!cluster_from_status(&member).expect("status").ready);
        member.status = None;
        assert!(cluster_from_status(&member).is_none());
    }

    #[test]
    fn rounding_keeps_leading_digits() {
        assert_eq!(round_down(0, 1), 0);
        assert_eq!(round_down(6, 1), 4);
        assert_eq!(round_down(23, 2), 16);
        assert_eq!(round_down(24, 2), 24);
        assert_eq!(round_down(1000, 64), 1000);
    }

    #[test]
    fn selectors_follow_kubernetes_semantics() {
        let labels: BTreeMap<String, String> = [("computenet.io/tenant".to_string(), "research".to_string())].into();
        let by_label = LabelSelector { match_labels: Some(labels.clone()), ..LabelSelector::default() };
        assert!(selector_matches(Some(&by_label), &labels));
        assert!(!selector_matches(Some(&by_label), &BTreeMap::new()));
        assert!(selector_matches(Some(&LabelSelector::default()), &BTreeMap::new()), "{{}} matches all");
        assert!(!selector_matches(None, &labels), "no selector matches nothing");
        let not_in = LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "computenet.io/tenant".into(),
                operator: "NotIn".into(),
                values: Some(vec!["research".into()]),
            }]),
            ..LabelSelector::default()
        };
        assert!(!selector_matches(Some(&not_in), &labels));
        assert!(selector_matches(Some(&not_in), &BTreeMap::new()));
    }
}

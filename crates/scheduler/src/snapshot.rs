//! Builds the core's input from the caches: the pool from member Nodes and Pods, the
//! queues, and the pending and running jobs from TrainingJobs.

use computenet_api::convert;
use computenet_api::member_cluster::MeasuredEfficiency;
use computenet_api::{ComputeQueue, MemberCluster, TrainingJob};
use computenet_core::pool::NodeSlot;
use computenet_core::quantity::{parse_bytes, parse_count, parse_cpu_millis};
use computenet_core::{
    Catalogue, Cluster, Job, Node as CoreNode, NodeCapacity, Pool, Queue, ReplicaRequest, RunningJob,
};
use computenet_members::labels;
use computenet_members::prometheus::Reading;
use computenet_members::slurm::convert as slurm;
use computenet_members::MemberNodes;
use k8s_openapi::api::core::v1::{Node, Pod};
use std::collections::BTreeMap;
use std::sync::Arc;

/// What a member looks like now.
#[derive(Debug)]
pub struct MemberView {
    pub member: Arc<MemberCluster>,
    pub ready: bool,
    pub nodes: MemberNodes,
    /// The latest fresh reading of its efficiency series, if it names a Prometheus.
    pub measured: Option<Reading>,
}

/// What measurements make of a cluster: the status to show, and the cluster's efficiency
/// with the measured PUE and power scale in place of the configured figures.
fn measured(
    reading: &Reading,
    cluster: &Cluster,
    catalogue: &Catalogue,
) -> (MeasuredEfficiency, computenet_core::ClusterEfficiency) {
    let mut efficiency = cluster.efficiency.clone();
    if let Some(pue) = reading.pue {
        efficiency.pue = pue;
    }
    let derived = match (reading.gpu_power_w, reading.gpu_utilization) {
        (Some(p), Some(u)) => {
            computenet_core::throughput::measured_efficiency(cluster, catalogue, p, u, efficiency.pue)
        }
        _ => None,
    };
    if let Some(d) = derived {
        efficiency.power_scale = d.power_scale;
    }
    let round = |x: f64| (x * 1000.0).round() / 1000.0;
    let status = MeasuredEfficiency {
        gpu_power_watts: reading.gpu_power_w.map(round),
        gpu_utilization: reading.gpu_utilization.map(round),
        pue: reading.pue.map(round),
        tflops_per_watt: derived.map(|d| (d.tflops_per_watt * 1e6).round() / 1e6),
        power_scale: derived.map(|d| round(d.power_scale)),
        sampled_at: reading
            .at
            .map(|t| k8s_openapi::jiff::Timestamp::try_from(t).map_or_else(|_| String::new(), |t| t.to_string())),
        error: reading.error.clone(),
    };
    (status, efficiency)
}

/// Why a TrainingJob cannot be queued.
#[derive(Debug, Clone, PartialEq)]
pub enum Problem {
    UnknownQueue(String),
    NamespaceNotAllowed { queue: String, namespace: String },
    Invalid(String),
}

impl Problem {
    /// Condition reason and message.
    pub fn reason_and_message(&self) -> (&'static str, String) {
        match self {
            Problem::UnknownQueue(q) => ("QueueNotFound", format!("ComputeQueue {q:?} does not exist")),
            Problem::NamespaceNotAllowed { queue, namespace } => {
                ("NamespaceNotAllowed", format!("ComputeQueue {queue:?} does not admit jobs from namespace {namespace:?} (its namespaceSelector does not match)"))
            }
            Problem::Invalid(m) => ("InvalidSpec", m.clone()),
        }
    }
}

/// The core's input plus what is needed to act on its decisions.
#[derive(Debug)]
pub struct Built {
    pub pool: Pool,
    pub queues: Vec<Queue>,
    pub pending: Vec<Job>,
    pub running: Vec<RunningJob>,
    /// TrainingJobs (by UID) that cannot be queued, and why.
    pub problems: Vec<(String, Problem)>,
    /// What each cluster's measurements say (same order as `pool.clusters`).
    pub measured: Vec<Option<MeasuredEfficiency>>,
}

fn quantity(
    map: Option<&BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>,
    key: &str,
    parse: fn(&str) -> computenet_core::Result<u64>,
) -> u64 {
    map.and_then(|m| m.get(key)).and_then(|q| parse(&q.0).ok()).unwrap_or(0)
}

fn node_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Requests of a pod (sum of containers; init containers are ignored as they do not overlap).
fn pod_requests(pod: &Pod) -> NodeCapacity {
    let mut cap = NodeCapacity::default();
    for c in pod.spec.iter().flat_map(|s| &s.containers) {
        let requests = c.resources.as_ref().and_then(|r| r.requests.as_ref().or(r.limits.as_ref()));
        cap.cpu_millis += quantity(requests, "cpu", parse_cpu_millis);
        cap.memory_bytes += quantity(requests, "memory", parse_bytes);
        cap.accelerators += quantity(requests, labels::GPU_RESOURCE, parse_count) as u32;
    }
    cap
}

fn is_managed(labels_map: Option<&BTreeMap<String, String>>) -> bool {
    labels_map.is_some_and(|l| l.get(labels::MANAGED).is_some_and(|v| v == "true"))
}

/// The catalogue: built-in figures with every member's overrides.
pub fn catalogue(members: &[Arc<MemberCluster>]) -> Catalogue {
    let mut catalogue = Catalogue::built_in();
    for m in members {
        for (name, spec) in convert::efficiency(&m.spec.efficiency).1 {
            catalogue.set(&name, spec);
        }
    }
    catalogue
}

/// A GPU node's accelerator type: (catalogue name, raw `nvidia.com/gpu.product` label value).
/// `None` for nodes without `nvidia.com/gpu` capacity.
pub fn node_accelerator(node: &Node, catalogue: &Catalogue) -> Option<(String, String)> {
    let allocatable = node.status.as_ref().and_then(|s| s.allocatable.as_ref());
    if quantity(allocatable, labels::GPU_RESOURCE, parse_count) == 0 {
        return None;
    }
    let raw = node
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(labels::GPU_PRODUCT))
        .cloned()
        .unwrap_or_else(|| "unknown-gpu".to_string());
    let canonical = catalogue.canonical_name(&raw).unwrap_or_else(|| raw.clone());
    Some((canonical, raw))
}

/// Raw accelerator names on a member by catalogue name: the `nvidia.com/gpu.product`
/// label value (Kubernetes) or the `gres` type (Slurm) to ask for a type by.
pub fn raw_accelerator_names(nodes: &MemberNodes, catalogue: &Catalogue) -> BTreeMap<String, String> {
    match nodes {
        MemberNodes::None => BTreeMap::new(),
        MemberNodes::Kubernetes { nodes, .. } => nodes.iter().filter_map(|n| node_accelerator(n, catalogue)).collect(),
        MemberNodes::Slurm { nodes, .. } => nodes
            .iter()
            .filter_map(|n| match slurm::core_node(n, catalogue) {
                (CoreNode { accelerator: Some(a), .. }, Some(raw)) => Some((a, raw)),
                _ => None,
            })
            .collect(),
    }
}

/// Builds one core cluster from a member's nodes, with its measured efficiency applied.
fn cluster(view: &MemberView, catalogue: &Catalogue) -> (Cluster, Option<MeasuredEfficiency>) {
    let spec = &view.member.spec;
    let (efficiency, _) = convert::efficiency(&spec.efficiency);
    let nodes = match &view.nodes {
        MemberNodes::None => Vec::new(),
        MemberNodes::Kubernetes { nodes, pods } => kubernetes_nodes(nodes, pods, catalogue),
        MemberNodes::Slurm { nodes, .. } => {
            let mut core: Vec<CoreNode> = nodes.iter().map(|n| slurm::core_node(n, catalogue).0).collect();
            core.sort_by(|a, b| a.name.cmp(&b.name));
            core
        }
    };
    let mut cluster = Cluster {
        name: view.member.metadata.name.clone().unwrap_or_default(),
        kind: convert::cluster_kind(spec.kind),
        site: spec.site.clone(),
        ready: view.ready,
        cordoned: spec.cordoned,
        efficiency,
        data_sets: spec.data_sets.clone(),
        nodes,
    };
    let status = view.measured.as_ref().map(|reading| {
        let (status, efficiency) = measured(reading, &cluster, catalogue);
        cluster.efficiency = efficiency;
        status
    });
    (cluster, status)
}

/// Core nodes from Kubernetes Nodes, charged with the pods not run by computenet.
fn kubernetes_nodes(view_nodes: &[Arc<Node>], pods: &[Arc<Pod>], catalogue: &Catalogue) -> Vec<CoreNode> {
    let mut nodes: Vec<CoreNode> = Vec::with_capacity(view_nodes.len());
    let mut by_name: BTreeMap<&str, usize> = BTreeMap::new();
    let mut sorted: Vec<&Arc<Node>> = view_nodes.iter().collect();
    sorted.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    for node in sorted {
        let name = node.metadata.name.clone().unwrap_or_default();
        let allocatable = node.status.as_ref().and_then(|s| s.allocatable.as_ref());
        let gpus = quantity(allocatable, labels::GPU_RESOURCE, parse_count) as u32;
        let accelerator = node_accelerator(node, catalogue).map(|(canonical, _)| canonical);
        by_name.insert(node.metadata.name.as_deref().unwrap_or_default(), nodes.len());
        nodes.push(CoreNode {
            name,
            accelerator,
            allocatable: NodeCapacity {
                cpu_millis: quantity(allocatable, "cpu", parse_cpu_millis),
                memory_bytes: quantity(allocatable, "memory", parse_bytes),
                accelerators: gpus,
                extended: BTreeMap::new(),
            },
            allocated: NodeCapacity::default(),
            labels: node.metadata.labels.clone().unwrap_or_default(),
            topology_domain: node
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("topology.kubernetes.io/zone"))
                .cloned()
                .unwrap_or_default(),
            unschedulable: node.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false) || !node_ready(node),
        });
    }
    for pod in pods {
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("Pending");
        if matches!(phase, "Succeeded" | "Failed") || is_managed(pod.metadata.labels.as_ref()) {
            continue;
        }
        let Some(n) = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()).and_then(|n| by_name.get(n)) else {
            continue;
        };
        let used = pod_requests(pod);
        let a = &mut nodes[*n].allocated;
        a.cpu_millis += used.cpu_millis;
        a.memory_bytes += used.memory_bytes;
        a.accelerators += used.accelerators;
    }
    nodes
}

/// Seconds since the epoch of a TrainingJob's creation.
pub fn created_at(job: &TrainingJob) -> u64 {
    job.metadata.creation_timestamp.as_ref().map_or(0, |t| u64::try_from(t.0.as_second()).unwrap_or(0))
}

/// Whether a TrainingJob is admitted (holds capacity).
pub fn is_admitted(job: &TrainingJob) -> bool {
    job.status.as_ref().and_then(|s| s.admitted).unwrap_or(false)
}

/// Whether a TrainingJob has ended.
pub fn is_finished(job: &TrainingJob) -> bool {
    job.status.as_ref().and_then(|s| s.phase).is_some_and(|p| p.is_finished())
}

/// Builds the core's input.
pub fn build(
    now: u64,
    members: &[MemberView],
    queues: &[Arc<ComputeQueue>],
    jobs: &[Arc<TrainingJob>],
    namespace_labels: &BTreeMap<String, BTreeMap<String, String>>,
) -> Built {
    let specs: Vec<Arc<MemberCluster>> = members.iter().map(|m| m.member.clone()).collect();
    let catalogue = catalogue(&specs);
    let (clusters, measured): (Vec<Cluster>, Vec<_>) = members.iter().map(|m| cluster(m, &catalogue)).unzip();
    let mut built = Built {
        pool: Pool { clusters, catalogue, data_sets: BTreeMap::new(), wan_gbps: 10.0 },
        queues: Vec::new(),
        pending: Vec::new(),
        running: Vec::new(),
        problems: Vec::new(),
        measured,
    };

    let mut queue_specs: BTreeMap<&str, &ComputeQueue> = BTreeMap::new();
    for q in queues {
        let name = q.metadata.name.as_deref().unwrap_or_default();
        match convert::queue(name, &q.spec) {
            Ok(core) => {
                built.queues.push(core);
                queue_specs.insert(name, q);
            }
            Err(e) => tracing::warn!(queue = name, error = %e, "ignoring invalid ComputeQueue"),
        }
    }

    let mut sorted: Vec<&Arc<TrainingJob>> = jobs.iter().collect();
    sorted.sort_by(|a, b| a.metadata.uid.cmp(&b.metadata.uid));
    for tj in sorted {
        let uid = tj.metadata.uid.clone().unwrap_or_default();
        if is_finished(tj) {
            continue;
        }
        if is_admitted(tj) {
            if let Some(running) = running_job(tj, &built.pool, now) {
                // Slurm's node allocations already include a running batch job: take it
                // out first, so charging by placement counts it once.
                if let Some(MemberNodes::Slurm { held, .. }) = members.get(running.cluster).map(|m| &m.nodes) {
                    if let Some(held_nodes) = held.get(&uid) {
                        let one = NodeCapacity {
                            cpu_millis: running.per_replica.cpu_millis,
                            memory_bytes: running.per_replica.memory_bytes,
                            accelerators: running.per_replica.accelerators,
                            extended: BTreeMap::new(),
                        };
                        for node in &mut built.pool.clusters[running.cluster].nodes {
                            if held_nodes.contains(&node.name) {
                                node.allocated = node.allocated.saturating_sub(&one);
                            }
                        }
                    }
                }
                built.pool.charge(running.cluster, &running.slots, &running.per_replica);
                built.running.push(running);
            }
            continue;
        }
        if tj.metadata.deletion_timestamp.is_some() || tj.spec.suspend {
            continue;
        }
        let namespace = tj.metadata.namespace.clone().unwrap_or_default();
        let Some(queue) = queue_specs.get(tj.spec.queue_name.as_str()) else {
            built.problems.push((uid, Problem::UnknownQueue(tj.spec.queue_name.clone())));
            continue;
        };
        let empty = BTreeMap::new();
        let ns_labels = namespace_labels.get(&namespace).unwrap_or(&empty);
        if !convert::selector_matches(queue.spec.namespace_selector.as_ref(), ns_labels) {
            built.problems.push((uid, Problem::NamespaceNotAllowed { queue: tj.spec.queue_name.clone(), namespace }));
            continue;
        }
        match convert::job(&uid, &tj.spec, created_at(tj)) {
            Ok(job) => built.pending.push(job),
            Err(e) => built.problems.push((uid, Problem::Invalid(e.to_string()))),
        }
    }
    built
}

/// An admitted TrainingJob as a running gang on its member (by its recorded placement).
fn running_job(tj: &TrainingJob, pool: &Pool, now: u64) -> Option<RunningJob> {
    let status = tj.status.as_ref()?;
    let placement = status.placement.as_ref()?;
    let cluster = pool.cluster_index(&placement.cluster)?;
    let nodes = &pool.clusters[cluster].nodes;
    let slots: Vec<NodeSlot> = placement
        .nodes
        .iter()
        .filter_map(|nr| {
            let node = nodes.iter().position(|n| n.name == nr.node)?;
            Some(NodeSlot { node: node as u32, replicas: u32::try_from(nr.replicas).ok()? })
        })
        .collect();
    let per_replica =
        convert::job("", &tj.spec, 0).map(|j| j.per_replica).unwrap_or_else(|_| ReplicaRequest::default());
    let started = status
        .start_time
        .as_deref()
        .and_then(|t| t.parse::<k8s_openapi::jiff::Timestamp>().ok())
        .map_or(now, |t| u64::try_from(t.as_second()).unwrap_or(now));
    Some(RunningJob {
        id: tj.metadata.uid.clone().unwrap_or_default(),
        queue: tj.spec.queue_name.clone(),
        priority: tj.spec.priority,
        cluster,
        accelerator: placement.accelerator.clone(),
        slots,
        per_replica,
        started_at: started,
        estimated_end: started + placement.estimated_runtime_seconds.max(0.0).ceil() as u64,
    })
}

//! A Kubernetes member's Nodes and Pods as the core's nodes (pure).

use super::watched::WatchedPod;
use crate::labels;
use computenet_core::quantity::{parse_bytes, parse_count, parse_cpu_millis};
use computenet_core::{Catalogue, Node as CoreNode, NodeCapacity};
use foldhash::{HashMap, HashSet};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

/// Accelerator type of nodes that carry GPUs but no product label.
pub const UNKNOWN_GPU: &str = "unknown-gpu";

fn quantity(
    map: Option<&BTreeMap<String, Quantity>>,
    key: &str,
    parse: fn(&str) -> computenet_core::Result<u64>,
) -> u64 {
    map.and_then(|m| m.get(key)).and_then(|q| parse(&q.0).ok()).unwrap_or(0)
}

fn allocatable(node: &Node) -> Option<&BTreeMap<String, Quantity>> {
    node.status.as_ref().and_then(|s| s.allocatable.as_ref())
}

fn node_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Requests of a pod (sum of its containers; init containers do not overlap with them).
fn pod_requests(pod: &WatchedPod) -> NodeCapacity {
    let mut cap = NodeCapacity::default();
    for c in pod.spec.iter().flat_map(|s| s.containers.iter().flatten()) {
        let requests = c.resources.as_ref().and_then(|r| r.requests.as_ref().or(r.limits.as_ref()));
        cap.cpu_millis = cap.cpu_millis.saturating_add(quantity(requests, "cpu", parse_cpu_millis));
        cap.memory_bytes = cap.memory_bytes.saturating_add(quantity(requests, "memory", parse_bytes));
        let gpus = u32::try_from(quantity(requests, labels::GPU_RESOURCE, parse_count)).unwrap_or(u32::MAX);
        cap.accelerators = cap.accelerators.saturating_add(gpus);
    }
    cap
}

/// What this hub charges on one member by its TrainingJobs' placements rather than by
/// their pods: the pods of its jobs admitted there (and not finished), in their member
/// namespace; and the pods of those jobs' copies (JobSets, TrainJobs, PyTorchJobs), by the
/// label their controllers give a copy's pods. Every other pod uses its node like any
/// workload: another hub's, a finished job's, one of a job placed elsewhere now (moved,
/// requeued, deleted) whose pods are still stopping, one that only claims to be
/// computenet's. A job placed here again keeps its earlier attempt's pods uncharged while
/// they stop: its new attempt starts only once they are gone, and charging both would
/// count the same devices twice.
///
/// Hashed, not ordered: every pod of the member is looked up in it in every pass.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Placed {
    /// Job UID label values by member namespace.
    jobs: HashMap<String, HashSet<String>>,
    /// (label key, label value) of the placed copies' pods, by namespace.
    copy_pods: BTreeMap<String, BTreeSet<(String, String)>>,
}

impl Placed {
    /// A job admitted to the member: its UID's label value, in `namespace`.
    pub fn job(&mut self, namespace: &str, uid_label: &str) {
        // The namespace is copied only the first time (jobs of one tenant share it).
        match self.jobs.get_mut(namespace) {
            Some(uids) => {
                uids.insert(uid_label.to_string());
            }
            None => {
                self.jobs.insert(namespace.to_string(), HashSet::from_iter([uid_label.to_string()]));
            }
        }
    }

    /// A copy of such a job: its pods in `namespace` carry the label `key=value`.
    pub fn copy_pods(&mut self, namespace: &str, key: &str, value: &str) {
        self.copy_pods.entry(namespace.to_string()).or_default().insert((key.to_string(), value.to_string()));
    }
}

/// Whether the pod is charged by a placement of the hub `hub` (see [`Placed`]), not to its
/// node. Looked up without allocating: it runs for every pod in every pass.
pub fn charged_by_placement(pod: &WatchedPod, hub: &str, placed: &Placed) -> bool {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
    let Some(l) = pod.metadata.labels.as_ref() else { return false };
    let label = |key: &str| l.get(key).map(String::as_str).unwrap_or_default();
    let ours = label(labels::MANAGED) == "true" && label(labels::HUB) == hub;
    if ours && placed.jobs.get(namespace).is_some_and(|uids| uids.contains(label(labels::JOB_UID))) {
        return true;
    }
    placed.copy_pods.get(namespace).is_some_and(|copies| copies.iter().any(|(k, v)| l.get(k) == Some(v)))
}

/// A GPU node's accelerator type: (catalogue name, raw `nvidia.com/gpu.product` value).
/// `None` for nodes without `nvidia.com/gpu` capacity.
pub fn node_accelerator(node: &Node, catalogue: &Catalogue) -> Option<(String, String)> {
    if quantity(allocatable(node), labels::GPU_RESOURCE, parse_count) == 0 {
        return None;
    }
    let raw = node
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(labels::GPU_PRODUCT))
        .cloned()
        .unwrap_or_else(|| UNKNOWN_GPU.to_string());
    let canonical = catalogue.canonical_name(&raw).unwrap_or_else(|| raw.clone());
    Some((canonical, raw))
}

/// The last conversion of one member's Nodes and Pods to core nodes, kept so that a pass
/// reuses what did not change: converting parses every node's quantities and copies its
/// names, the largest part of a pass at a few thousand jobs. Each node is kept with its
/// conversion, so a node that changed (a heartbeat, a new label) is converted again on its
/// own, not with all its member's nodes. The pods' charges are kept apart, and charged
/// again only when a pod changed (computenet's own, which change all the time during a
/// burst, are not among them: see [`charged_by_placement`]). The member's own
/// accelerator names come from the same conversion. Shared by the clones of a member's
/// connection; a new connection starts empty.
#[derive(Debug, Default, Clone)]
pub struct NodesMemo(Arc<Mutex<Option<Converted>>>);

#[derive(Debug)]
struct Converted {
    /// Sorted by name.
    nodes: Vec<ConvertedNode>,
    catalogue: Catalogue,
    /// The member's own accelerator names by catalogue name, from `nodes`.
    raw: BTreeMap<String, String>,
    /// Whether `nodes` changed since `core` was charged.
    core_stale: bool,
    pods: Vec<Arc<WatchedPod>>,
    charges: Vec<NodeCapacity>,
    core: Vec<CoreNode>,
}

/// One node as converted.
#[derive(Debug, Clone)]
struct ConvertedNode {
    // The very object converted: a watch replaces an object's Arc when it changes, and
    // holding it keeps its address from being reused, so equal pointers mean the same object.
    object: Arc<Node>,
    /// With nothing allocated.
    uncharged: CoreNode,
    /// Its `nvidia.com/gpu.product` value, for a GPU node.
    raw_accelerator: Option<String>,
}

fn same<T>(a: &[Arc<T>], b: &[Arc<T>]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| Arc::ptr_eq(x, y))
}

impl Converted {
    fn empty(catalogue: &Catalogue) -> Self {
        Converted {
            nodes: Vec::new(),
            catalogue: catalogue.clone(),
            raw: BTreeMap::new(),
            core_stale: false,
            pods: Vec::new(),
            charges: Vec::new(),
            core: Vec::new(),
        }
    }

    /// Converts again the nodes that are not the very objects converted last.
    fn refresh_nodes(&mut self, nodes: &[Arc<Node>]) {
        if self.nodes.len() == nodes.len() && same_nodes(&self.nodes, nodes) {
            return;
        }
        let (converted, any_new) = reconvert(std::mem::take(&mut self.nodes), nodes, &self.catalogue);
        self.nodes = converted;
        if any_new {
            self.raw = raw_names(&self.nodes);
            self.core_stale = true;
        }
    }
}

impl NodesMemo {
    /// The conversion of these nodes with this catalogue, brought up to date: a new
    /// connection or another catalogue starts from nothing converted.
    fn with<T>(&self, nodes: &[Arc<Node>], catalogue: &Catalogue, f: impl FnOnce(&mut Converted) -> T) -> T {
        let mut memo = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut c = memo.take().filter(|c| c.catalogue == *catalogue).unwrap_or_else(|| Converted::empty(catalogue));
        c.refresh_nodes(nodes);
        let out = f(&mut c);
        *memo = Some(c);
        out
    }

    /// [`core_nodes`] of these objects. Only the nodes that are not the very objects
    /// converted last are converted again (all of them when the catalogue changed); the
    /// pods are read again when one of them is not, and the nodes charged again when what
    /// they charge changed.
    pub fn core_nodes(&self, nodes: &[Arc<Node>], pods: &[Arc<WatchedPod>], catalogue: &Catalogue) -> Vec<CoreNode> {
        self.with(nodes, catalogue, |c| {
            if c.core_stale || !same(&c.pods, pods) {
                let uncharged: Vec<&CoreNode> = c.nodes.iter().map(|n| &n.uncharged).collect();
                let charges = pod_charges(&uncharged, pods);
                if c.core_stale || charges != c.charges {
                    c.core = charged(&uncharged, &charges);
                    c.charges = charges;
                    c.core_stale = false;
                }
                c.pods = pods.to_vec();
            }
            c.core.clone()
        })
    }

    /// [`raw_accelerator_names`] of these nodes, converting only what changed.
    pub fn raw_accelerator_names(&self, nodes: &[Arc<Node>], catalogue: &Catalogue) -> BTreeMap<String, String> {
        self.with(nodes, catalogue, |c| c.raw.clone())
    }
}

/// Whether `nodes`, in any order, are the very objects of `kept` (sorted by name).
fn same_nodes(kept: &[ConvertedNode], nodes: &[Arc<Node>]) -> bool {
    nodes.iter().all(|n| {
        let name = n.metadata.name.as_deref().unwrap_or_default();
        kept.binary_search_by(|c| c.uncharged.name.as_str().cmp(name)).is_ok_and(|i| Arc::ptr_eq(&kept[i].object, n))
    })
}

/// `nodes` sorted by name, each converted: taken from `kept` (sorted by name) where it is
/// the very object converted there, else converted. Also whether any node was converted,
/// or one of `kept` is gone.
fn reconvert(kept: Vec<ConvertedNode>, nodes: &[Arc<Node>], catalogue: &Catalogue) -> (Vec<ConvertedNode>, bool) {
    let mut sorted: Vec<&Arc<Node>> = nodes.iter().collect();
    sorted.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let gone = kept.len() != nodes.len();
    // Both sorted by name: one walk through `kept`.
    let mut kept = kept.into_iter().peekable();
    let mut converted_any = false;
    let out = sorted
        .into_iter()
        .map(|node| {
            let name = node.metadata.name.as_deref().unwrap_or_default();
            while kept.next_if(|c| c.uncharged.name.as_str() < name).is_some() {}
            match kept.next_if(|c| Arc::ptr_eq(&c.object, node)) {
                Some(same) => same,
                None => {
                    converted_any = true;
                    convert(node, catalogue)
                }
            }
        })
        .collect();
    (out, converted_any || gone)
}

/// The member's own accelerator names by catalogue name: of two nodes of one type with
/// different labels, the later by name.
fn raw_names(nodes: &[ConvertedNode]) -> BTreeMap<String, String> {
    nodes.iter().filter_map(|n| Some((n.uncharged.accelerator.clone()?, n.raw_accelerator.clone()?))).collect()
}

/// The member's own accelerator names by catalogue name (see [`NodesMemo::raw_accelerator_names`]).
pub fn raw_accelerator_names(nodes: &[Arc<Node>], catalogue: &Catalogue) -> BTreeMap<String, String> {
    raw_names(&reconvert(Vec::new(), nodes, catalogue).0)
}

/// Core nodes (sorted by name), charged with the running ones of `pods` (those not
/// [`charged_by_placement`]).
pub fn core_nodes(nodes: &[Arc<Node>], pods: &[Arc<WatchedPod>], catalogue: &Catalogue) -> Vec<CoreNode> {
    let (converted, _) = reconvert(Vec::new(), nodes, catalogue);
    let uncharged: Vec<&CoreNode> = converted.iter().map(|n| &n.uncharged).collect();
    charged(&uncharged, &pod_charges(&uncharged, pods))
}

/// One node as a core node, with nothing allocated, and its own accelerator name.
fn convert(node: &Arc<Node>, catalogue: &Catalogue) -> ConvertedNode {
    let alloc = allocatable(node);
    let (accelerator, raw_accelerator) = node_accelerator(node, catalogue).unzip();
    let zone = node.metadata.labels.as_ref().and_then(|l| l.get("topology.kubernetes.io/zone"));
    let uncharged = CoreNode {
        name: node.metadata.name.clone().unwrap_or_default(),
        accelerator,
        allocatable: NodeCapacity {
            cpu_millis: quantity(alloc, "cpu", parse_cpu_millis),
            memory_bytes: quantity(alloc, "memory", parse_bytes),
            accelerators: u32::try_from(quantity(alloc, labels::GPU_RESOURCE, parse_count)).unwrap_or(u32::MAX),
            extended: BTreeMap::new(),
        },
        allocated: NodeCapacity::default(),
        topology_domain: zone.cloned().unwrap_or_default(),
        unschedulable: node.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false) || !node_ready(node),
    };
    ConvertedNode { object: node.clone(), uncharged, raw_accelerator }
}

/// What the running ones of `pods` use on each of `nodes` (sorted by name), in their order.
fn pod_charges(nodes: &[&CoreNode], pods: &[Arc<WatchedPod>]) -> Vec<NodeCapacity> {
    let mut charges = vec![NodeCapacity::default(); nodes.len()];
    for pod in pods {
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("Pending");
        if matches!(phase, "Succeeded" | "Failed") {
            continue;
        }
        let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) else { continue };
        let Ok(n) = nodes.binary_search_by(|c| c.name.as_str().cmp(node)) else { continue };
        let used = pod_requests(pod);
        let c = &mut charges[n];
        c.cpu_millis = c.cpu_millis.saturating_add(used.cpu_millis);
        c.memory_bytes = c.memory_bytes.saturating_add(used.memory_bytes);
        c.accelerators = c.accelerators.saturating_add(used.accelerators);
    }
    charges
}

/// The nodes with their charges allocated.
fn charged(nodes: &[&CoreNode], charges: &[NodeCapacity]) -> Vec<CoreNode> {
    nodes.iter().zip(charges).map(|(n, c)| CoreNode { allocated: c.clone(), ..(*n).clone() }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, gpus: u32, product: Option<&str>, ready: bool) -> Arc<Node> {
        let mut labels = serde_json::json!({"topology.kubernetes.io/zone": "zone-a"});
        if let Some(p) = product {
            labels[labels::GPU_PRODUCT] = p.into();
        }
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": name, "labels": labels},
                "status": {
                    "allocatable": {"cpu": "64", "memory": "512Gi", "nvidia.com/gpu": gpus.to_string()},
                    "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]
                }
            }))
            .unwrap(),
        )
    }

    fn pod(node: &str, gpus: u32, managed: bool, phase: &str) -> Arc<WatchedPod> {
        let labels = if managed {
            serde_json::json!({"computenet.io/managed": "true", "computenet.io/hub": "h", "computenet.io/job-uid": "u1"})
        } else {
            serde_json::json!({})
        };
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "p", "labels": labels},
                "spec": {"nodeName": node, "containers": [{"name": "c", "resources": {"requests": {
                    "cpu": "500m", "memory": "1Gi", "nvidia.com/gpu": gpus.to_string()}}}]},
                "status": {"phase": phase}
            }))
            .unwrap(),
        )
    }

    #[test]
    fn nodes_are_sorted_typed_and_charged_with_running_pods_only() {
        let catalogue = Catalogue::built_in();
        let nodes =
            [node("b", 8, Some("NVIDIA-H800"), true), node("a", 8, Some("A100-80G"), false), node("c", 0, None, true)];
        let pods = [pod("b", 2, false, "Running"), pod("b", 1, false, "Succeeded"), pod("b", 4, false, "Failed")];
        let core = core_nodes(&nodes, &pods, &catalogue);
        let names: Vec<&str> = core.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert!(core[0].unschedulable, "a NotReady node is unschedulable");
        assert_eq!(core[1].allocated.accelerators, 2, "finished pods are not charged");
        assert_eq!(core[1].allocated.cpu_millis, 500);
        assert_eq!(core[2].accelerator, None);
        assert_eq!(core[1].topology_domain, "zone-a");
    }

    #[test]
    fn the_memo_converts_again_only_when_an_object_or_the_catalogue_changes() {
        let catalogue = Catalogue::built_in();
        let memo = NodesMemo::default();
        let nodes = vec![node("a", 8, Some("NVIDIA-A100-80G"), true)];
        let mut pods = vec![pod("a", 2, false, "Running")];
        let first = memo.core_nodes(&nodes, &pods, &catalogue);
        assert_eq!(first, core_nodes(&nodes, &pods, &catalogue));
        // The same objects: the kept conversion, equal to a fresh one.
        assert_eq!(memo.core_nodes(&nodes, &pods, &catalogue), first);
        // A pod changed (a watch gives it a new Arc): charged anew, not from the memo.
        pods[0] = pod("a", 2, false, "Succeeded");
        let after = memo.core_nodes(&nodes, &pods, &catalogue);
        assert_eq!(after[0].allocated.accelerators, 0);
        assert_eq!(after, core_nodes(&nodes, &pods, &catalogue));
        // One pod more: charged.
        pods.push(pod("a", 3, false, "Running"));
        assert_eq!(memo.core_nodes(&nodes, &pods, &catalogue)[0].allocated.accelerators, 3);
        // A pod gone: charged no more.
        pods.push(pod("a", 4, false, "Running"));
        assert_eq!(memo.core_nodes(&nodes, &pods, &catalogue)[0].allocated.accelerators, 7);
        pods.pop();
        assert_eq!(memo.core_nodes(&nodes, &pods, &catalogue)[0].allocated.accelerators, 3);
        // A node changed: converted again, and charged.
        let nodes = vec![node("a", 6, Some("NVIDIA-A100-80G"), true)];
        let again = memo.core_nodes(&nodes, &pods, &catalogue);
        assert_eq!((again[0].allocatable.accelerators, again[0].allocated.accelerators), (6, 3));
        assert_eq!(again, core_nodes(&nodes, &pods, &catalogue));
        // Another catalogue (a member describes the label's spelling as a type of its own):
        // converted with it.
        assert_eq!(after[0].accelerator.as_deref(), Some("A100-80G"));
        let mut other = catalogue.clone();
        other.set("NVIDIA-A100-80G", catalogue.get("A100-80G").unwrap().clone());
        assert_eq!(memo.core_nodes(&nodes, &pods, &other)[0].accelerator.as_deref(), Some("NVIDIA-A100-80G"));
    }

    #[test]
    fn the_memo_converts_each_changed_node_on_its_own_and_agrees_with_a_fresh_conversion() {
        let catalogue = Catalogue::built_in();
        let memo = NodesMemo::default();
        let mut nodes: Vec<Arc<Node>> =
            (0..6).map(|i| node(&format!("n{i}"), 8, Some("NVIDIA-A100-80G"), true)).collect();
        let mut pods = vec![pod("n1", 2, false, "Running")];
        // A fixed pseudo-random walk of changes: a node replaced (its Arc new), one gone,
        // one added, the list reordered, a pod added or finished.
        let mut seed = 0x9e37_79b9_u32;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed as usize % n
        };
        for step in 0..300 {
            match next(6) {
                0 if !nodes.is_empty() => {
                    let i = next(nodes.len());
                    let name = nodes[i].metadata.name.clone().unwrap();
                    // Two spellings of one type: which one is the member's own name moves.
                    let product = if next(2) == 0 { "NVIDIA-A100-80G" } else { "A100-SXM4-80GB" };
                    nodes[i] = node(&name, 1 + next(8) as u32, Some(product), next(4) > 0);
                }
                1 if nodes.len() > 1 => {
                    nodes.remove(next(nodes.len()));
                }
                2 => nodes.push(node(&format!("n{}", next(12)), 4, None, true)),
                3 => nodes.reverse(),
                4 => pods.push(pod(&format!("n{}", next(12)), 1, next(2) == 0, "Running")),
                _ if !pods.is_empty() => {
                    let i = next(pods.len());
                    pods[i] = pod("n1", 1, false, "Succeeded");
                }
                _ => {}
            }
            // Two nodes of one name never come from a store: the walk keeps one.
            let mut seen = std::collections::BTreeSet::new();
            nodes.retain(|n| seen.insert(n.metadata.name.clone()));
            // Either asked first: one refreshes the nodes for the other.
            let raw_first = next(2) == 0;
            if raw_first {
                assert_eq!(
                    memo.raw_accelerator_names(&nodes, &catalogue),
                    raw_accelerator_names(&nodes, &catalogue),
                    "step {step}"
                );
            }
            assert_eq!(
                memo.core_nodes(&nodes, &pods, &catalogue),
                core_nodes(&nodes, &pods, &catalogue),
                "step {step}"
            );
            if !raw_first {
                assert_eq!(
                    memo.raw_accelerator_names(&nodes, &catalogue),
                    raw_accelerator_names(&nodes, &catalogue),
                    "step {step}"
                );
            }
        }
    }

    #[test]
    fn only_the_nodes_that_changed_are_converted_again() {
        let catalogue = Catalogue::built_in();
        let (a, b) = (node("a", 8, None, true), node("b", 8, None, true));
        let (kept, converted) = reconvert(Vec::new(), &[b.clone(), a.clone()], &catalogue);
        assert!(converted);
        // Marked, to tell a kept conversion from a new one.
        let kept: Vec<_> = kept
            .into_iter()
            .map(|n| ConvertedNode { uncharged: CoreNode { topology_domain: "kept".into(), ..n.uncharged }, ..n })
            .collect();
        let (same, converted) = reconvert(kept.clone(), &[a.clone(), b.clone()], &catalogue);
        assert!(!converted);
        assert!(same.iter().all(|n| n.uncharged.topology_domain == "kept"), "nothing converted again");
        let b2 = node("b", 4, None, true);
        let (after, converted) = reconvert(kept.clone(), &[a.clone(), b2], &catalogue);
        assert!(converted);
        let domains: Vec<&str> = after.iter().map(|n| n.uncharged.topology_domain.as_str()).collect();
        assert_eq!(domains, ["kept", "zone-a"], "only b, which changed");
        assert_eq!(after[1].uncharged.allocatable.accelerators, 4);
        let (fewer, converted) = reconvert(kept, &[a], &catalogue);
        assert!(converted && fewer.len() == 1, "a node gone is a change");
    }

    #[test]
    fn only_this_hubs_pods_of_jobs_placed_here_are_charged_by_placement() {
        let mut placed = Placed::default();
        placed.job("computenet-jobs-team", "u1");
        placed.copy_pods("computenet-jobs-team", "jobset.sigs.k8s.io/jobset-name", "sweep");
        let with = |namespace: &str, labels: serde_json::Value| -> WatchedPod {
            serde_json::from_value(
                serde_json::json!({"metadata": {"name": "p", "namespace": namespace, "labels": labels}}),
            )
            .unwrap()
        };
        let ours = serde_json::json!({
            "computenet.io/managed": "true", "computenet.io/hub": "h",
            "computenet.io/job-uid": "u1", "computenet.io/attempt": "2"
        });
        let charged = |pod: &WatchedPod, hub: &str| charged_by_placement(pod, hub, &placed);
        assert!(charged(&with("computenet-jobs-team", ours.clone()), "h"));
        // Any attempt of a job placed here, or a pod from before attempts were labelled:
        // the new attempt waits for the old one's pods, so the devices are counted once.
        let mut earlier = ours.clone();
        earlier["computenet.io/attempt"] = "1".into();
        assert!(charged(&with("computenet-jobs-team", earlier), "h"));
        let mut unlabelled = ours.clone();
        unlabelled.as_object_mut().unwrap().remove("computenet.io/attempt");
        assert!(charged(&with("computenet-jobs-team", unlabelled), "h"));
        // Another hub's pod on a shared member uses its node.
        assert!(!charged(&with("computenet-jobs-team", ours.clone()), "other-hub"));
        // So does one outside the job's member namespace, and one of a job not placed here.
        assert!(!charged(&with("default", ours.clone()), "h"));
        let mut elsewhere = ours.clone();
        elsewhere["computenet.io/job-uid"] = "u2".into();
        assert!(!charged(&with("computenet-jobs-team", elsewhere), "h"));
        // Labels that only claim it: any of the three missing or another value.
        for key in ["computenet.io/managed", "computenet.io/hub", "computenet.io/job-uid"] {
            let mut missing = ours.clone();
            missing.as_object_mut().unwrap().remove(key);
            assert!(!charged(&with("computenet-jobs-team", missing), "h"), "without {key}");
        }
        let mut other = ours.clone();
        other["computenet.io/managed"] = "yes".into();
        assert!(!charged(&with("computenet-jobs-team", other), "h"));
        // A placed copy's pods, by the label its controller gives them, in its namespace only.
        let copy_pod = serde_json::json!({"jobset.sigs.k8s.io/jobset-name": "sweep"});
        assert!(charged(&with("computenet-jobs-team", copy_pod.clone()), "h"));
        assert!(!charged(&with("computenet-jobs-other", copy_pod), "h"));
        assert!(!charged(
            &with("computenet-jobs-team", serde_json::json!({"jobset.sigs.k8s.io/jobset-name": "x"})),
            "h"
        ));
        assert!(!charged(&with("computenet-jobs-team", serde_json::json!({})), "h"));
        assert!(!charged(&pod("n", 1, true, "Running"), "h"), "no namespace");
    }

    #[test]
    fn raw_names_are_each_types_label_from_the_last_node_by_name() {
        let catalogue = Catalogue::built_in();
        let nodes = [
            node("b", 8, Some("A100-SXM4-80GB"), true),
            node("a", 8, Some("NVIDIA-A100-80G"), true),
            node("c", 8, Some("NVIDIA-H800"), false),
            node("d", 0, Some("NVIDIA-H800-gone"), true),
            node("e", 4, None, true),
        ];
        let expected = BTreeMap::from([
            ("A100-80G".to_string(), "A100-SXM4-80GB".to_string()),
            ("H800".to_string(), "NVIDIA-H800".to_string()),
            (UNKNOWN_GPU.to_string(), UNKNOWN_GPU.to_string()),
        ]);
        assert_eq!(raw_accelerator_names(&nodes, &catalogue), expected);
        let memo = NodesMemo::default();
        assert_eq!(memo.raw_accelerator_names(&nodes, &catalogue), expected);
        // b relabelled: the memo converts it again.
        let relabelled = [node("b", 8, Some("NVIDIA-A100-SXM4-80GB"), true), nodes[1].clone()];
        assert_eq!(memo.raw_accelerator_names(&relabelled, &catalogue)["A100-80G"], "NVIDIA-A100-SXM4-80GB");
    }

    #[test]
    fn unlabelled_gpu_nodes_have_an_unknown_type() {
        let catalogue = Catalogue::built_in();
        assert_eq!(
            node_accelerator(&node("x", 4, None, true), &catalogue),
            Some((UNKNOWN_GPU.to_string(), UNKNOWN_GPU.to_string()))
        );
        assert_eq!(node_accelerator(&node("x", 0, Some("A100-80G"), true), &catalogue), None);
    }
}

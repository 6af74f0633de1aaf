//! The pool: member clusters, their nodes and capacity, and efficiency profiles.
//!
//! The pool is plain data. The service fills it from member watchers, the simulator from
//! a pool file; both then change it only through [`Pool::allocate`] and [`Pool::release`],
//! so that node accounting lives in one place.

use crate::accelerator::{AcceleratorSpec, Catalogue};
use crate::error::{Error, Result};
use crate::quantity::{parse_bytes, parse_cpu_millis};
use crate::resources::ReplicaRequest;
pub use crate::resources::{ClusterKind, NodeSlot};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Efficiency profile of a cluster's facility.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterEfficiency {
    /// Power usage effectiveness of the facility (>= 1).
    pub pue: f64,
    /// Price of one kWh at the facility, in the pool's currency.
    #[serde(rename = "energyPricePerKWh")]
    pub energy_price_per_kwh: f64,
    /// Grid carbon intensity in gCO2e per kWh, when known.
    #[serde(default, rename = "carbonGPerKWh", skip_serializing_if = "Option::is_none")]
    pub carbon_g_per_kwh: Option<f64>,
    /// Measured device power over what the catalogue predicts (1: as predicted); scales
    /// the device power of every job's energy estimate here.
    #[serde(default = "one")]
    pub power_scale: f64,
}

fn one() -> f64 {
    1.0
}

impl Default for ClusterEfficiency {
    fn default() -> Self {
        Self { pue: 1.5, energy_price_per_kwh: 0.8, carbon_g_per_kwh: None, power_scale: 1.0 }
    }
}

/// Resources of one node: what it offers or what is in use on it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeCapacity {
    pub cpu_millis: u64,
    pub memory_bytes: u64,
    /// Accelerator devices (of the node's one accelerator type).
    pub accelerators: u32,
    /// Other extended resources by name (e.g. `rdma/hca`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extended: BTreeMap<String, u64>,
}

impl NodeCapacity {
    /// `self - other`, saturating at zero.
    pub fn saturating_sub(&self, other: &NodeCapacity) -> NodeCapacity {
        NodeCapacity {
            cpu_millis: self.cpu_millis.saturating_sub(other.cpu_millis),
            memory_bytes: self.memory_bytes.saturating_sub(other.memory_bytes),
            accelerators: self.accelerators.saturating_sub(other.accelerators),
            extended: self
                .extended
                .iter()
                .map(|(k, v)| (k.clone(), v.saturating_sub(other.extended.get(k).copied().unwrap_or(0))))
                .collect(),
        }
    }

    /// How many replicas of `request` fit in this (free) capacity.
    pub fn replicas_fitting(&self, request: &ReplicaRequest) -> u32 {
        let mut n = u64::from(u32::MAX);
        let mut limit = |have: u64, need: u64| {
            if let Some(k) = have.checked_div(need) {
                n = n.min(k);
            }
        };
        limit(self.cpu_millis, request.cpu_millis);
        limit(self.memory_bytes, request.memory_bytes);
        limit(u64::from(self.accelerators), u64::from(request.accelerators));
        for (name, need) in &request.extended {
            limit(self.extended.get(name).copied().unwrap_or(0), *need);
        }
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    pub(crate) fn add_scaled(&mut self, request: &ReplicaRequest, replicas: u32) {
        let r = u64::from(replicas);
        self.cpu_millis += request.cpu_millis * r;
        self.memory_bytes += request.memory_bytes * r;
        self.accelerators += request.accelerators * replicas;
        for (name, need) in &request.extended {
            *self.extended.entry(name.clone()).or_default() += need * r;
        }
    }

    pub(crate) fn sub_scaled(&mut self, request: &ReplicaRequest, replicas: u32) {
        let r = u64::from(replicas);
        self.cpu_millis = self.cpu_millis.saturating_sub(request.cpu_millis * r);
        self.memory_bytes = self.memory_bytes.saturating_sub(request.memory_bytes * r);
        self.accelerators = self.accelerators.saturating_sub(request.accelerators * replicas);
        for (name, need) in &request.extended {
            if let Some(v) = self.extended.get_mut(name) {
                *v = v.saturating_sub(need * r);
            }
        }
    }
}

/// One node of a member cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Node {
    pub name: String,
    /// The node's accelerator type (catalogue name), or `None` for a CPU-only node.
    pub accelerator: Option<String>,
    pub allocatable: NodeCapacity,
    /// In use, by computenet's jobs and by anything else running on the member.
    pub allocated: NodeCapacity,
    /// Network topology domain (rack, switch, zone); empty when unknown.
    #[serde(default)]
    pub topology_domain: String,
    /// Not schedulable (cordoned, drained, not ready).
    #[serde(default)]
    pub unschedulable: bool,
}

impl Node {
    /// Capacity not yet allocated.
    pub fn free(&self) -> NodeCapacity {
        if self.unschedulable {
            return NodeCapacity::default();
        }
        self.allocatable.saturating_sub(&self.allocated)
    }
}

/// A member cluster of the pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cluster {
    pub name: String,
    pub kind: ClusterKind,
    pub site: String,
    /// The member answers and its capacity is fresh.
    pub ready: bool,
    /// Admins took it out of placement; running jobs stay.
    pub cordoned: bool,
    pub efficiency: ClusterEfficiency,
    /// Data sets hosted at this cluster.
    #[serde(default)]
    pub data_sets: Vec<String>,
    pub nodes: Vec<Node>,
    /// The tenants (hub namespaces) whose jobs this member runs; `None` runs everyone's.
    /// A Slurm member maps each tenant to its own Unix user: a tenant it has no user for
    /// cannot run there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenants: Option<Vec<String>>,
    /// The job kinds besides TrainingJob this member runs (its API serves them; a Slurm
    /// member runs none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workload_kinds: Vec<String>,
}

impl Cluster {
    /// Whether new work may be placed here at all.
    pub fn schedulable(&self) -> bool {
        self.ready && !self.cordoned
    }

    /// Whether jobs of `tenant` may run here.
    pub fn admits(&self, tenant: &str) -> bool {
        self.tenants.as_ref().is_none_or(|t| t.iter().any(|n| n == tenant))
    }

    /// Whether jobs that run as `kind` may run here (`None`: a TrainingJob, which every
    /// member runs).
    pub fn runs(&self, kind: Option<&str>) -> bool {
        kind.is_none_or(|k| self.workload_kinds.iter().any(|w| w == k))
    }

    /// Whether `job` may be placed here at all, whatever the capacity: the member is
    /// schedulable, and takes the job's tenant, cluster kind, site and workload kind.
    pub fn takes(&self, job: &crate::Job) -> bool {
        self.schedulable()
            && self.admits(&job.tenant)
            && self.runs(job.workload_kind.as_deref())
            && (job.cluster_kinds.is_empty() || job.cluster_kinds.contains(&self.kind))
            && (job.sites.is_empty() || job.sites.contains(&self.site))
    }
}

/// A data set that jobs read, with where it is held.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DataSet {
    /// Size in GB (10^9 bytes).
    pub size_gb: f64,
    /// Sites holding a copy.
    #[serde(default)]
    pub sites: Vec<String>,
}

/// The whole pool of member clusters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pool {
    pub clusters: Vec<Cluster>,
    #[serde(default)]
    pub catalogue: Catalogue,
    #[serde(default)]
    pub data_sets: BTreeMap<String, DataSet>,
    /// Bandwidth between sites in Gbit/s, for data-transfer estimates.
    #[serde(default = "default_wan_gbps")]
    pub wan_gbps: f64,
}

fn default_wan_gbps() -> f64 {
    10.0
}

impl Pool {
    /// Index of a cluster by name.
    pub fn cluster_index(&self, name: &str) -> Option<usize> {
        self.clusters.iter().position(|c| c.name == name)
    }

    /// Whether `cluster` holds data set `name` (at its site or on the cluster itself).
    pub fn holds_data_set(&self, cluster: &Cluster, name: &str) -> bool {
        cluster.data_sets.iter().any(|d| d == name)
            || self.data_sets.get(name).is_some_and(|d| d.sites.contains(&cluster.site))
    }

    /// Takes the resources of a gang placed on `slots` of `cluster`.
    ///
    /// Fails, changing nothing, when a slot names an unknown node or would over-commit it.
    pub fn allocate(&mut self, cluster: usize, slots: &[NodeSlot], request: &ReplicaRequest) -> Result<()> {
        let c = self
            .clusters
            .get_mut(cluster)
            .ok_or_else(|| Error::invalid("cluster", &cluster.to_string(), "no such cluster index"))?;
        // Sum per node first: a gang may name one node in several slots.
        let mut per_node: BTreeMap<u32, u32> = BTreeMap::new();
        for slot in slots {
            *per_node.entry(slot.node).or_default() += slot.replicas;
        }
        for (&index, &replicas) in &per_node {
            let node = c
                .nodes
                .get(index as usize)
                .ok_or_else(|| Error::invalid("node", &index.to_string(), "no such node index"))?;
            if node.free().replicas_fitting(request) < replicas {
                return Err(Error::invalid("placement", &node.name, "would over-commit the node"));
            }
        }
        for slot in slots {
            c.nodes[slot.node as usize].allocated.add_scaled(request, slot.replicas);
        }
        Ok(())
    }

    /// Records usage that already exists (a running gang observed on a member), without the
    /// over-commitment check of [`Pool::allocate`]: reality wins over the model.
    pub fn charge(&mut self, cluster: usize, slots: &[NodeSlot], request: &ReplicaRequest) {
        if let Some(c) = self.clusters.get_mut(cluster) {
            for slot in slots {
                if let Some(node) = c.nodes.get_mut(slot.node as usize) {
                    node.allocated.add_scaled(request, slot.replicas);
                }
            }
        }
    }

    /// Gives back the resources of a gang placed on `slots` of `cluster`.
    pub fn release(&mut self, cluster: usize, slots: &[NodeSlot], request: &ReplicaRequest) {
        if let Some(c) = self.clusters.get_mut(cluster) {
            for slot in slots {
                if let Some(node) = c.nodes.get_mut(slot.node as usize) {
                    node.allocated.sub_scaled(request, slot.replicas);
                }
            }
        }
    }

    /// Total and free accelerators per (cluster kind, accelerator type), for summaries.
    pub fn accelerator_totals(&self) -> BTreeMap<(ClusterKind, String), (u64, u64)> {
        let mut totals = BTreeMap::new();
        for c in &self.clusters {
            for n in &c.nodes {
                let name = n.accelerator.clone().unwrap_or_else(|| crate::accelerator::CPU_ONLY.to_string());
                let (total, free) = if n.accelerator.is_some() {
                    (u64::from(n.allocatable.accelerators), u64::from(n.free().accelerators))
                } else {
                    (n.allocatable.cpu_millis / 1000, n.free().cpu_millis / 1000)
                };
                let e = totals.entry((c.kind, name)).or_insert((0, 0));
                e.0 += total;
                e.1 += free;
            }
        }
        totals
    }
}

/// A pool as operators write it: clusters made of node groups, quantities as strings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PoolDescription {
    pub clusters: Vec<ClusterDescription>,
    /// Accelerator figures that override or extend the built-in catalogue.
    #[serde(default)]
    pub accelerators: BTreeMap<String, AcceleratorSpec>,
    #[serde(default)]
    pub data_sets: BTreeMap<String, DataSet>,
    #[serde(default = "default_wan_gbps")]
    pub wan_gbps: f64,
}

/// One member cluster in a [`PoolDescription`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterDescription {
    pub name: String,
    pub kind: ClusterKind,
    pub site: String,
    #[serde(default)]
    pub efficiency: ClusterEfficiency,
    #[serde(default)]
    pub data_sets: Vec<String>,
    #[serde(default)]
    pub cordoned: bool,
    pub node_groups: Vec<NodeGroup>,
}

/// `count` identical nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeGroup {
    pub count: u32,
    /// Node names are `<cluster>-<namePrefix>-<i>`; defaults to the accelerator type or "cpu".
    #[serde(default)]
    pub name_prefix: Option<String>,
    /// Accelerator type (catalogue name or alias); absent for CPU-only nodes.
    #[serde(default)]
    pub accelerator: Option<String>,
    #[serde(default)]
    pub accelerators_per_node: u32,
    /// CPU quantity per node, e.g. "64".
    pub cpu: String,
    /// Memory quantity per node, e.g. "512Gi".
    pub memory: String,
    /// Nodes per topology domain (rack); 0 puts all in one.
    #[serde(default)]
    pub nodes_per_domain: u32,
}

impl PoolDescription {
    /// Builds the pool, checking names and quantities.
    pub fn build(&self) -> Result<Pool> {
        let mut catalogue = Catalogue::built_in();
        for (name, spec) in &self.accelerators {
            catalogue.set(name, spec.clone());
        }
        let mut clusters = Vec::with_capacity(self.clusters.len());
        for cd in &self.clusters {
            if clusters.iter().any(|c: &Cluster| c.name == cd.name) {
                return Err(Error::invalid("cluster", &cd.name, "duplicate name"));
            }
            if cd.efficiency.pue < 1.0 || !cd.efficiency.pue.is_finite() {
                return Err(Error::invalid("cluster", &cd.name, "pue must be at least 1"));
            }
            if cd.efficiency.energy_price_per_kwh < 0.0 {
                return Err(Error::invalid("cluster", &cd.name, "energyPricePerKWh must not be negative"));
            }
            let mut nodes = Vec::new();
            for g in &cd.node_groups {
                let accelerator = match &g.accelerator {
                    Some(a) => Some(catalogue.canonical_name(a).ok_or_else(|| {
                        Error::invalid(
                            "cluster",
                            &cd.name,
                            format!("unknown accelerator type {a:?}; add it under accelerators"),
                        )
                    })?),
                    None => None,
                };
                if accelerator.is_some() != (g.accelerators_per_node > 0) {
                    return Err(Error::invalid(
                        "cluster",
                        &cd.name,
                        "a node group names an accelerator type exactly when acceleratorsPerNode > 0",
                    ));
                }
                let allocatable = NodeCapacity {
                    cpu_millis: parse_cpu_millis(&g.cpu)?,
                    memory_bytes: parse_bytes(&g.memory)?,
                    accelerators: g.accelerators_per_node,
                    extended: BTreeMap::new(),
                };
                let prefix = g
                    .name_prefix
                    .clone()
                    .unwrap_or_else(|| accelerator.as_deref().unwrap_or("cpu").to_ascii_lowercase());
                for i in 0..g.count {
                    let domain = i.checked_div(g.nodes_per_domain).unwrap_or(0);
                    nodes.push(Node {
                        name: format!("{}-{}-{}", cd.name, prefix, nodes.len()),
                        accelerator: accelerator.clone(),
                        allocatable: allocatable.clone(),
                        allocated: NodeCapacity::default(),
                        topology_domain: format!("{}-{}-rack{}", cd.name, prefix, domain),
                        unschedulable: false,
                    });
                }
            }
            clusters.push(Cluster {
                workload_kinds: Vec::new(),
                tenants: None,
                name: cd.name.clone(),
                kind: cd.kind,
                site: cd.site.clone(),
                ready: true,
                cordoned: cd.cordoned,
                efficiency: cd.efficiency.clone(),
                data_sets: cd.data_sets.clone(),
                nodes,
            });
        }
        Ok(Pool { clusters, catalogue, data_sets: self.data_sets.clone(), wan_gbps: self.wan_gbps })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpu_request(n: u32) -> ReplicaRequest {
        ReplicaRequest { cpu_millis: 1000, memory_bytes: 1 << 30, accelerators: n, extended: BTreeMap::new() }
    }

    fn one_node_pool() -> Pool {
        let desc = PoolDescription {
            clusters: vec![ClusterDescription {
                name: "ai".into(),
                kind: ClusterKind::AI,
                site: "west".into(),
                efficiency: ClusterEfficiency::default(),
                data_sets: vec![],
                cordoned: false,
                node_groups: vec![NodeGroup {
                    count: 1,
                    name_prefix: None,
                    accelerator: Some("a100-80g".into()),
                    accelerators_per_node: 8,
                    cpu: "64".into(),
                    memory: "512Gi".into(),
                    nodes_per_domain: 0,
                }],
            }],
            accelerators: BTreeMap::new(),
            data_sets: BTreeMap::new(),
            wan_gbps: 10.0,
        };
        desc.build().expect("valid pool")
    }

    #[test]
    fn allocate_and_release_round_trip() {
        let mut pool = one_node_pool();
        assert_eq!(pool.clusters[0].nodes[0].accelerator.as_deref(), Some("A100-80G"));
        let slots = [NodeSlot { node: 0, replicas: 2 }];
        pool.allocate(0, &slots, &gpu_request(4)).expect("fits");
        assert_eq!(pool.clusters[0].nodes[0].free().accelerators, 0);
        assert!(pool.allocate(0, &[NodeSlot { node: 0, replicas: 1 }], &gpu_request(1)).is_err());
        pool.release(0, &slots, &gpu_request(4));
        assert_eq!(pool.clusters[0].nodes[0].free().accelerators, 8);
    }

    #[test]
    fn split_slots_on_one_node_cannot_overcommit() {
        let mut pool = one_node_pool();
        let slots = [NodeSlot { node: 0, replicas: 1 }, NodeSlot { node: 0, replicas: 1 }];
        assert!(pool.allocate(0, &slots, &gpu_request(5)).is_err());
        assert_eq!(pool.clusters[0].nodes[0].free().accelerators, 8, "nothing changed");
    }

    #[test]
    fn bad_descriptions_are_rejected() {
        let mut desc: PoolDescription = serde_json::from_value(serde_json::json!({
            "clusters": [{"name": "x", "kind": "AI", "site": "s", "nodeGroups": [
                {"count": 1, "accelerator": "NoSuchGPU", "acceleratorsPerNode": 8, "cpu": "8", "memory": "1Gi"}]}]
        }))
        .expect("parses");
        assert!(desc.build().unwrap_err().to_string().contains("unknown accelerator"));
        desc.clusters[0].node_groups[0].accelerator = Some("T4".into());
        desc.clusters[0].node_groups[0].memory = "lots".into();
        assert!(desc.build().is_err());
    }
}

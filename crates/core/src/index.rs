//! Per-cluster node indexes for gang feasibility without scanning every node.
//!
//! Nodes of one accelerator type are bucketed by their free device count (CPU-only nodes
//! by free whole cores). A gang of N replicas x G devices looks only at buckets >= G, and
//! an upper bound over bucket sizes rejects most infeasible clusters in a few steps.

use crate::job::ReplicaRequest;
use crate::pool::{Cluster, NodeCapacity, NodeSlot};
use std::collections::BTreeSet;

/// Cap on CPU buckets: nodes with more free cores share the last bucket.
const CPU_BUCKETS: u32 = 512;

/// Nodes of one accelerator type (or CPU-only) in one cluster.
#[derive(Debug, Clone)]
pub struct TypeGroup {
    /// Catalogue name, or `None` for CPU-only nodes.
    pub accelerator: Option<String>,
    buckets: Vec<BTreeSet<u32>>,
}

impl TypeGroup {
    fn key(&self, free: &NodeCapacity) -> usize {
        let raw = if self.accelerator.is_some() { free.accelerators } else { (free.cpu_millis / 1000) as u32 };
        (raw as usize).min(self.buckets.len() - 1)
    }

    fn need_key(&self, request: &ReplicaRequest) -> usize {
        let raw = if self.accelerator.is_some() { request.accelerators } else { (request.cpu_millis / 1000) as u32 };
        (raw as usize).min(self.buckets.len() - 1)
    }

    /// Whether bucket sizes alone allow `replicas` replicas; if not, the upper bound they
    /// give. Walks from the fullest-free bucket down and stops as soon as it is enough, so
    /// the common case looks at one or two buckets.
    fn replica_bound(&self, request: &ReplicaRequest, replicas: u32) -> Result<(), u64> {
        let need = self.need_key(request);
        let per = if self.accelerator.is_some() { request.accelerators } else { (request.cpu_millis / 1000) as u32 };
        let top = self.buckets.len() - 1;
        let mut bound = 0u64;
        for key in (need..=top).rev() {
            let nodes = self.buckets[key].len() as u64;
            if nodes == 0 {
                continue;
            }
            // The top bucket may be capped (CPU), so count its nodes as unbounded.
            let per_node = if per == 0 || key == top { u64::MAX / 1024 } else { key as u64 / u64::from(per) };
            bound = bound.saturating_add(nodes.saturating_mul(per_node));
            if bound >= u64::from(replicas) {
                return Ok(());
            }
        }
        Err(bound)
    }
}

/// Free capacity of one cluster, indexed.
#[derive(Debug, Clone)]
pub struct ClusterIndex {
    free: Vec<NodeCapacity>,
    group_of: Vec<Option<u16>>,
    groups: Vec<TypeGroup>,
}

impl ClusterIndex {
    /// Indexes the free capacity of a cluster's schedulable nodes.
    pub fn new(cluster: &Cluster) -> Self {
        let mut groups: Vec<TypeGroup> = Vec::new();
        let mut group_of = Vec::with_capacity(cluster.nodes.len());
        let mut free = Vec::with_capacity(cluster.nodes.len());
        for node in &cluster.nodes {
            let g = match groups.iter().position(|g| g.accelerator == node.accelerator) {
                Some(g) => g,
                None => {
                    groups.push(TypeGroup { accelerator: node.accelerator.clone(), buckets: Vec::new() });
                    groups.len() - 1
                }
            };
            let size = if node.accelerator.is_some() {
                node.allocatable.accelerators + 1
            } else {
                (node.allocatable.cpu_millis / 1000).min(u64::from(CPU_BUCKETS)) as u32 + 1
            };
            let buckets = &mut groups[g].buckets;
            if buckets.len() < size as usize {
                buckets.resize(size as usize, BTreeSet::new());
            }
            group_of.push(u16::try_from(g).ok());
            free.push(node.free());
        }
        let mut index = ClusterIndex { free, group_of, groups };
        for i in 0..index.free.len() {
            if let Some(g) = index.group_of[i] {
                let group = &mut index.groups[g as usize];
                let key = group.key(&index.free[i]);
                group.buckets[key].insert(i as u32);
            }
        }
        index
    }

    /// The type groups of the cluster.
    pub fn groups(&self) -> &[TypeGroup] {
        &self.groups
    }

    /// Free capacity of every node.
    pub fn free(&self) -> &[NodeCapacity] {
        &self.free
    }

    /// Group index of each node.
    pub fn group_of(&self, node: u32) -> Option<usize> {
        self.group_of.get(node as usize).copied().flatten().map(usize::from)
    }

    /// Best-fit node slots for `replicas` x `request` in group `g`, or the most replicas
    /// that fit. With `limit`, each node also keeps within `limit[node]` (capacity left
    /// for a reservation's sake).
    pub fn find_slots(
        &self,
        g: usize,
        request: &ReplicaRequest,
        replicas: u32,
        limit: Option<&[NodeCapacity]>,
    ) -> Result<Vec<NodeSlot>, u32> {
        let mut slots = Vec::new();
        self.find_slots_into(g, request, replicas, limit, &mut slots).map(|()| slots)
    }

    /// [`Self::find_slots`] into a caller's buffer (cleared first), to spare allocations
    /// on the hot path.
    pub fn find_slots_into(
        &self,
        g: usize,
        request: &ReplicaRequest,
        replicas: u32,
        limit: Option<&[NodeCapacity]>,
        slots: &mut Vec<NodeSlot>,
    ) -> Result<(), u32> {
        slots.clear();
        let group = &self.groups[g];
        if let Err(bound) = group.replica_bound(request, replicas) {
            return Err(u32::try_from(bound).unwrap_or(u32::MAX));
        }
        let mut remaining = replicas;
        for bucket in &group.buckets[group.need_key(request)..] {
            for &node in bucket {
                let mut fit = self.free[node as usize].replicas_fitting(request);
                if let Some(limit) = limit {
                    fit = fit.min(limit[node as usize].replicas_fitting(request));
                }
                if fit == 0 {
                    continue;
                }
                let take = fit.min(remaining);
                slots.push(NodeSlot { node, replicas: take });
                remaining -= take;
                if remaining == 0 {
                    return Ok(());
                }
            }
        }
        Err(replicas - remaining)
    }

    /// Sets a node's free capacity (as observed anew); its bucket follows.
    pub fn set_free(&mut self, node: usize, free: NodeCapacity) {
        let Some(slot) = self.free.get_mut(node) else {
            return;
        };
        let Some(g) = self.group_of[node] else {
            *slot = free;
            return;
        };
        let group = &mut self.groups[g as usize];
        let old = group.key(slot);
        *slot = free;
        let new = group.key(slot);
        if new != old {
            group.buckets[old].remove(&(node as u32));
            group.buckets[new].insert(node as u32);
        }
    }

    /// Takes (or gives back) the capacity of `slots`.
    pub fn apply(&mut self, slots: &[NodeSlot], request: &ReplicaRequest, take: bool) {
        for slot in slots {
            let i = slot.node as usize;
            let Some(g) = self.group_of[i] else { continue };
            let group = &mut self.groups[g as usize];
            let old = group.key(&self.free[i]);
            apply_to(&mut self.free, std::slice::from_ref(slot), request, take);
            let new = group.key(&self.free[i]);
            if new != old {
                group.buckets[old].remove(&(i as u32));
                group.buckets[new].insert(i as u32);
            }
        }
    }
}

/// Best-fit slots over a plain capacity vector (used for projected capacity in the future,
/// where no index is kept): nodes with the least free devices first.
pub fn find_slots_in(
    free: &[NodeCapacity],
    nodes: impl Iterator<Item = u32>,
    request: &ReplicaRequest,
    replicas: u32,
) -> Option<Vec<NodeSlot>> {
    let mut candidates: Vec<(u32, u64, u32)> = nodes
        .filter_map(|n| {
            let fit = free[n as usize].replicas_fitting(request);
            let key = if request.accelerators > 0 {
                u64::from(free[n as usize].accelerators)
            } else {
                free[n as usize].cpu_millis
            };
            (fit > 0).then_some((n, key, fit))
        })
        .collect();
    if candidates.iter().map(|c| u64::from(c.2)).sum::<u64>() < u64::from(replicas) {
        return None;
    }
    candidates.sort_by_key(|c| (c.1, c.0));
    let mut slots = Vec::new();
    let mut remaining = replicas;
    for (node, _, fit) in candidates {
        let take = fit.min(remaining);
        slots.push(NodeSlot { node, replicas: take });
        remaining -= take;
        if remaining == 0 {
            break;
        }
    }
    Some(slots)
}

/// Subtracts (or adds) the capacity of `slots` in a plain capacity vector.
pub fn apply_to(free: &mut [NodeCapacity], slots: &[NodeSlot], request: &ReplicaRequest, take: bool) {
    for slot in slots {
        let f = &mut free[slot.node as usize];
        if take {
            f.sub_scaled(request, slot.replicas);
        } else {
            f.add_scaled(request, slot.replicas);
        }
    }
}

//! What the cycle knows of the pool when it starts: per-cluster node indexes, the quota
//! ledger and the running gangs' expected ends.
//!
//! [`Standing::build`] derives it from a [`Snapshot`], which costs a pass over every node
//! and every running job. [`Standing::refresh`] brings the standing a previous cycle left
//! up to date with the next snapshot instead, touching only what differs: nodes whose
//! free capacity changed, running jobs that started, ended or changed, and the ledger
//! when queues or cohorts changed. Either way the result is the same standing, so a cycle
//! decides the same from either (`tests/incremental_properties.rs` checks this on random
//! event sequences).

use crate::cycle::Snapshot;
use crate::index::ClusterIndex;
use crate::job::{ReplicaRequest, RunningJob};
use crate::pool::{NodeCapacity, NodeSlot, Pool};
use crate::queue::{gang_usage, Cohort, Queue, QuotaLedger};
use std::collections::HashMap;
use std::sync::Arc;

/// A gang expected to end at `end` (running, or admitted in this cycle).
#[derive(Debug, Clone)]
pub(crate) struct Release {
    /// The gang's job id, kept only by a tracking standing (to take it back by id).
    pub(crate) id: Option<Arc<str>>,
    pub(crate) end: u64,
    pub(crate) slots: Vec<NodeSlot>,
    pub(crate) request: ReplicaRequest,
}

/// A running gang as the standing counted it, to tell what changed in the next snapshot.
#[derive(Debug, Clone)]
struct Counted {
    queue: String,
    cluster: usize,
    accelerator: Option<String>,
    slots: Vec<NodeSlot>,
    per_replica: ReplicaRequest,
    end: u64,
    /// The refresh that last saw it.
    seen: u64,
}

impl Counted {
    fn of(r: &RunningJob, seen: u64) -> Self {
        Counted {
            queue: r.queue.clone(),
            cluster: r.cluster,
            accelerator: r.accelerator.clone(),
            slots: r.slots.clone(),
            per_replica: r.per_replica.clone(),
            end: r.estimated_end,
            seen,
        }
    }

    fn matches(&self, r: &RunningJob) -> bool {
        self.end == r.estimated_end
            && self.cluster == r.cluster
            && self.slots == r.slots
            && self.queue == r.queue
            && self.accelerator == r.accelerator
            && self.per_replica == r.per_replica
    }

    fn replicas(&self) -> u32 {
        self.slots.iter().map(|s| s.replicas).sum()
    }
}

/// What decides whether a cluster's index can be kept: its name, and each node's type and
/// allocatable capacity (free capacity is compared node by node on each refresh).
#[derive(Debug, Clone, PartialEq)]
struct ClusterShape {
    name: String,
    nodes: Vec<(Option<String>, NodeCapacity)>,
}

fn shapes(pool: &Pool) -> Vec<ClusterShape> {
    pool.clusters
        .iter()
        .map(|c| ClusterShape {
            name: c.name.clone(),
            nodes: c.nodes.iter().map(|n| (n.accelerator.clone(), n.allocatable.clone())).collect(),
        })
        .collect()
}

fn same_shapes(kept: &[ClusterShape], pool: &Pool) -> bool {
    kept.len() == pool.clusters.len()
        && kept.iter().zip(&pool.clusters).all(|(k, c)| {
            k.name == c.name
                && k.nodes.len() == c.nodes.len()
                && k.nodes.iter().zip(&c.nodes).all(|((t, a), n)| *t == n.accelerator && *a == n.allocatable)
        })
}

/// Per-cluster and per-queue state a cycle starts from.
#[derive(Debug, Clone)]
pub(crate) struct Standing {
    pub(crate) indexes: Vec<ClusterIndex>,
    /// Interned accelerator type per (cluster, group); `None` is CPU-only.
    pub(crate) group_types: Vec<Vec<Option<u16>>>,
    /// The first node of each (cluster, group), where the group's type name is read.
    pub(crate) group_first_node: Vec<Vec<usize>>,
    pub(crate) group_arcs: Vec<Vec<Option<Arc<str>>>>,
    pub(crate) cluster_names: Vec<Arc<str>>,
    pub(crate) type_names: Vec<String>,
    pub(crate) ledger: QuotaLedger,
    pub(crate) releases: Vec<Vec<Release>>,
    /// Kept only by a standing that is refreshed (an incremental scheduler's).
    tracking: Option<Tracking>,
    /// Whether releases keep their job ids (a refreshed standing takes gangs back by id).
    keeps_ids: bool,
}

/// What a refresh compares the next snapshot with.
#[derive(Debug, Clone)]
struct Tracking {
    shapes: Vec<ClusterShape>,
    queues: Vec<Queue>,
    cohorts: Vec<Cohort>,
    /// Running gangs by job id, the ones admitted by the last cycle included.
    running: HashMap<String, Counted>,
    refreshes: u64,
    /// Something was counted that a refresh cannot take back exactly (two gangs under one
    /// id): the next refresh builds anew.
    spoiled: bool,
}

impl Standing {
    /// The standing of `snap`. With `tracking`, it also keeps what [`Self::refresh`] needs.
    pub(crate) fn build(snap: &Snapshot<'_>, tracking: bool) -> Self {
        let indexes: Vec<ClusterIndex> = snap.pool.clusters.iter().map(ClusterIndex::new).collect();
        let mut type_names: Vec<String> = Vec::new();
        let group_types = indexes
            .iter()
            .map(|ix| {
                ix.groups()
                    .iter()
                    .map(|g| {
                        g.accelerator.as_ref().map(|name| match type_names.iter().position(|t| t == name) {
                            Some(i) => i as u16,
                            None => {
                                type_names.push(name.clone());
                                (type_names.len() - 1) as u16
                            }
                        })
                    })
                    .collect()
            })
            .collect();
        let group_first_node = indexes
            .iter()
            .map(|ix| {
                let mut first = vec![usize::MAX; ix.groups().len()];
                for n in (0..ix.free().len()).rev() {
                    if let Some(g) = ix.group_of(n as u32) {
                        first[g] = n;
                    }
                }
                first
            })
            .collect();
        let group_arcs = indexes
            .iter()
            .map(|ix| ix.groups().iter().map(|g| g.accelerator.as_deref().map(Arc::from)).collect())
            .collect();
        let cluster_names = snap.pool.clusters.iter().map(|c| Arc::from(c.name.as_str())).collect();
        let mut standing = Standing {
            indexes,
            group_types,
            group_first_node,
            group_arcs,
            cluster_names,
            type_names,
            ledger: QuotaLedger::new(snap.queues, snap.cohorts),
            releases: vec![Vec::new(); snap.pool.clusters.len()],
            tracking: None,
            keeps_ids: tracking,
        };
        for r in snap.running {
            standing.count(&r.id, &Counted::of(r, 0), true);
        }
        if tracking {
            let mut running = HashMap::with_capacity(snap.running.len());
            let mut spoiled = false;
            for r in snap.running {
                spoiled |= running.insert(r.id.clone(), Counted::of(r, 0)).is_some();
            }
            standing.tracking = Some(Tracking {
                shapes: shapes(snap.pool),
                queues: snap.queues.to_vec(),
                cohorts: snap.cohorts.to_vec(),
                running,
                refreshes: 0,
                spoiled,
            });
        }
        standing
    }

    /// Brings a tracking standing (one a cycle may have changed since) up to date with
    /// `snap`; builds anew when the pool's clusters or nodes changed shape, or when there
    /// is nothing to compare with. Returns whether it built anew.
    pub(crate) fn refresh(&mut self, snap: &Snapshot<'_>) -> bool {
        let rebuild = match &self.tracking {
            None => true,
            Some(t) => t.spoiled || !same_shapes(&t.shapes, snap.pool),
        };
        if rebuild {
            *self = Standing::build(snap, true);
            return true;
        }
        for (c, cluster) in snap.pool.clusters.iter().enumerate() {
            for (n, node) in cluster.nodes.iter().enumerate() {
                let free = node.free();
                if self.indexes[c].free()[n] != free {
                    self.indexes[c].set_free(n, free);
                }
            }
        }
        let Some(mut tracking) = self.tracking.take() else {
            return false;
        };
        tracking.refreshes += 1;
        let seen = tracking.refreshes;
        let config_changed = tracking.queues != snap.queues || tracking.cohorts != snap.cohorts;
        if config_changed {
            tracking.queues = snap.queues.to_vec();
            tracking.cohorts = snap.cohorts.to_vec();
        }
        let mut matched = 0usize;
        for r in snap.running {
            match tracking.running.get_mut(r.id.as_str()) {
                Some(counted) if counted.seen == seen => {
                    // One id twice in one snapshot: only a build counts that as the cycle does.
                    *self = Standing::build(snap, true);
                    return true;
                }
                Some(counted) if counted.matches(r) => {
                    counted.seen = seen;
                    matched += 1;
                }
                Some(counted) => {
                    let old = std::mem::replace(counted, Counted::of(r, seen));
                    self.count(&r.id, &old, false);
                    self.count(&r.id, &Counted::of(r, seen), true);
                    matched += 1;
                }
                None => {
                    let counted = Counted::of(r, seen);
                    self.count(&r.id, &counted, true);
                    tracking.running.insert(r.id.clone(), counted);
                    matched += 1;
                }
            }
        }
        if matched < tracking.running.len() {
            let mut ended = Vec::new();
            tracking.running.retain(|id, counted| {
                let keep = counted.seen == seen;
                if !keep {
                    ended.push((id.clone(), counted.clone()));
                }
                keep
            });
            for (id, counted) in ended {
                self.count(&id, &counted, false);
            }
        }
        if config_changed {
            // Quotas or the cohort tree changed: count every running gang again.
            self.ledger = QuotaLedger::new(snap.queues, snap.cohorts);
            for counted in tracking.running.values() {
                self.count_quota(counted, true);
            }
        }
        self.tracking = Some(tracking);
        false
    }

    /// Brings a tracking standing up to date from what the caller says changed (see
    /// [`Changes`]); builds anew when the pool changed shape or there is nothing to
    /// start from. Returns whether it built anew.
    pub(crate) fn refresh_with(&mut self, snap: &Snapshot<'_>, changes: &Changes<'_>) -> bool {
        let usable = |t: &Tracking| !t.spoiled && !changes.pool_shape && t.shapes.len() == snap.pool.clusters.len();
        let Some(mut tracking) = self.tracking.take().filter(usable) else {
            *self = Standing::build(snap, true);
            return true;
        };
        for id in &changes.ended {
            if let Some(counted) = tracking.running.remove(*id) {
                self.count(id, &counted, false);
                self.sync_nodes(snap.pool, counted.cluster, &counted.slots);
            }
        }
        for r in &changes.started {
            match tracking.running.get_mut(r.id.as_str()) {
                Some(counted) if counted.matches(r) => {}
                Some(counted) => {
                    let old = std::mem::replace(counted, Counted::of(r, tracking.refreshes));
                    self.count(&r.id, &old, false);
                    self.sync_nodes(snap.pool, old.cluster, &old.slots);
                    self.count(&r.id, &Counted::of(r, tracking.refreshes), true);
                }
                None => {
                    let counted = Counted::of(r, tracking.refreshes);
                    self.count(&r.id, &counted, true);
                    tracking.running.insert(r.id.clone(), counted);
                }
            }
            self.sync_nodes(snap.pool, r.cluster, &r.slots);
        }
        for &(c, n) in &changes.nodes {
            self.sync_nodes(snap.pool, c, &[NodeSlot { node: n as u32, replicas: 0 }]);
        }
        if changes.quotas {
            tracking.queues = snap.queues.to_vec();
            tracking.cohorts = snap.cohorts.to_vec();
            self.ledger = QuotaLedger::new(snap.queues, snap.cohorts);
            for counted in tracking.running.values() {
                self.count_quota(counted, true);
            }
        }
        self.tracking = Some(tracking);
        false
    }

    /// Takes the free capacity of some nodes of a cluster from the pool.
    fn sync_nodes(&mut self, pool: &Pool, cluster: usize, slots: &[NodeSlot]) {
        let (Some(index), Some(c)) = (self.indexes.get_mut(cluster), pool.clusters.get(cluster)) else {
            return;
        };
        for slot in slots {
            if let Some(node) = c.nodes.get(slot.node as usize) {
                let free = node.free();
                if index.free().get(slot.node as usize).is_some_and(|f| *f != free) {
                    index.set_free(slot.node as usize, free);
                }
            }
        }
    }

    /// Counts (or takes back) a running gang: its quota and its expected end.
    fn count(&mut self, id: &str, counted: &Counted, add: bool) {
        self.count_quota(counted, add);
        let id_kept = self.tracked_id(id);
        let Some(list) = self.releases.get_mut(counted.cluster) else {
            return;
        };
        if add {
            list.push(Release {
                id: id_kept,
                end: counted.end,
                slots: counted.slots.clone(),
                request: counted.per_replica.clone(),
            });
        } else if let Some(k) = list.iter().position(|r| r.id.as_deref() == Some(id)) {
            list.swap_remove(k);
        }
    }

    /// A job id as a [`Release`] keeps it: only a tracking standing needs it.
    pub(crate) fn tracked_id(&self, id: &str) -> Option<Arc<str>> {
        self.keeps_ids.then(|| Arc::from(id))
    }

    fn count_quota(&mut self, counted: &Counted, add: bool) {
        let Some(q) = self.ledger.queue_index(&counted.queue) else {
            return;
        };
        let accelerator = counted.accelerator.as_deref();
        let usage = gang_usage(&counted.per_replica, counted.replicas(), accelerator);
        if add {
            self.ledger.admit(q, &usage, accelerator);
        } else {
            self.ledger.release(q, &usage, accelerator);
        }
    }

    /// Notes a gang the cycle admitted (the cycle already took its capacity and quota), so
    /// that the next refresh finds it running or takes it back.
    pub(crate) fn admitted(&mut self, id: &str, queue: &str, placement: AdmittedGang<'_>) {
        let Some(tracking) = self.tracking.as_mut() else {
            return;
        };
        let counted = Counted {
            queue: queue.to_string(),
            cluster: placement.cluster,
            accelerator: placement.accelerator.map(str::to_string),
            slots: placement.slots.to_vec(),
            per_replica: placement.per_replica.clone(),
            end: placement.end,
            seen: tracking.refreshes,
        };
        tracking.spoiled |= tracking.running.insert(id.to_string(), counted).is_some();
    }
}

/// What changed since the last cycle, as a caller that knows it tells
/// [`crate::IncrementalScheduler::cycle_with`].
#[derive(Debug, Clone, Default)]
pub struct Changes<'a> {
    /// Running gangs that started or changed since the last cycle. The last cycle's
    /// admissions that started as admitted (same slots, expected to end when the cycle
    /// said) may be left out.
    pub started: Vec<&'a RunningJob>,
    /// Ids of gangs that ended, were stopped, or were admitted by the last cycle and did
    /// not start.
    pub ended: Vec<&'a str>,
    /// Nodes whose free capacity changed otherwise (usage outside the scheduler):
    /// (cluster, node) indexes in the pool.
    pub nodes: Vec<(usize, usize)>,
    /// Clusters or nodes were added, removed, renamed or resized: everything is built anew.
    pub pool_shape: bool,
    /// Queues or cohorts changed (quotas, weights, budgets, past shares).
    pub quotas: bool,
}

/// Where a gang was admitted, as [`Standing::admitted`] records it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AdmittedGang<'a> {
    pub(crate) cluster: usize,
    pub(crate) accelerator: Option<&'a str>,
    pub(crate) slots: &'a [NodeSlot],
    pub(crate) per_replica: &'a ReplicaRequest,
    pub(crate) end: u64,
}

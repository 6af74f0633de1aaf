//! Queues, quotas with borrowing and lending inside cohorts, and fair share.
//!
//! The model follows Kueue's ClusterQueue/cohort semantics: each quota has a nominal
//! amount guaranteed to its queue; the part of it the queue lends (all of it unless a
//! lending limit says less) goes into the cohort's shared pool, from which any member may
//! borrow up to its borrowing limit. Resources a queue names no quota for are not limited.

use crate::job::{ReplicaRequest, RunningJob};
use crate::usage::Budget;
use serde::{Deserialize, Serialize};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};

/// A quota-able resource.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ResourceName {
    /// CPU, in millicores.
    Cpu,
    /// Memory, in bytes.
    Memory,
    /// Accelerator devices (`nvidia.com/gpu` and the like), counted.
    Accelerators,
    /// Any other extended resource, counted.
    Extended(String),
}

/// One quota of a queue: a resource, optionally of one accelerator type (a flavour).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Quota {
    pub resource: ResourceName,
    /// Only this accelerator type counts against the quota; `None` counts every type.
    #[serde(default)]
    pub accelerator: Option<String>,
    pub nominal: u64,
    /// How much above nominal the queue may borrow from its cohort; `None` is unlimited.
    #[serde(default)]
    pub borrowing_limit: Option<u64>,
    /// How much of nominal other queues of the cohort may borrow; `None` is all of it.
    #[serde(default)]
    pub lending_limit: Option<u64>,
}

impl Quota {
    /// Whether usage of `resource` on `accelerator` counts against this quota.
    pub fn counts(&self, resource: &ResourceName, accelerator: Option<&str>) -> bool {
        self.resource == *resource
            && match (&self.accelerator, accelerator) {
                (None, _) => true,
                (Some(q), Some(a)) => q == a,
                (Some(_), None) => false,
            }
    }

    fn lendable(&self) -> u64 {
        self.lending_limit.map_or(self.nominal, |l| l.min(self.nominal))
    }
}

/// When a queue's jobs may preempt others.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PreemptionScope {
    #[default]
    Never,
    /// Only jobs of lower priority.
    LowerPriority,
    /// Any job (used for reclaiming lent quota).
    Any,
}

/// A queue's preemption policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PreemptionPolicy {
    /// Preempt jobs of the same queue.
    #[serde(default)]
    pub within_queue: PreemptionScope,
    /// Reclaim quota lent to other queues of the cohort by preempting their borrowing jobs.
    #[serde(default)]
    pub reclaim_within_cohort: PreemptionScope,
}

/// The priorities a queue lets its jobs use, both ends included: an admin's choice, so a
/// tenant's raw number counts only as far as its queue allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PriorityRange {
    pub min: i32,
    pub max: i32,
}

impl Default for PriorityRange {
    /// Any priority (the core's own inputs, simulations and tests); the hub's queues
    /// default to `0..=0` instead, in their own schema.
    fn default() -> Self {
        PriorityRange { min: i32::MIN, max: i32::MAX }
    }
}

impl PriorityRange {
    /// `priority` as the queue allows it: clamped into the range (an empty range, min
    /// above max, counts as its min).
    pub fn effective(&self, priority: i32) -> i32 {
        priority.min(self.max).max(self.min)
    }
}

/// What a queue does when its head job cannot be admitted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum QueueingStrategy {
    /// Nothing behind a blocked head is admitted.
    StrictFifo,
    /// Later jobs that fit are admitted (the head keeps its reservation).
    #[default]
    BestEffortFifo,
}

/// A queue jobs are submitted to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Queue {
    pub name: String,
    #[serde(default)]
    pub cohort: Option<String>,
    /// Fair-share weight (> 0); a queue with weight 2 gets twice the share.
    #[serde(default = "one")]
    pub weight: f64,
    #[serde(default)]
    pub quotas: Vec<Quota>,
    #[serde(default)]
    pub preemption: PreemptionPolicy,
    #[serde(default)]
    pub strategy: QueueingStrategy,
    /// Priorities its jobs may use; ordering and preemption use a job's priority only
    /// within it.
    #[serde(default)]
    pub priority_range: PriorityRange,
    /// Decayed past usage as a share of its quotas ([`crate::usage::past_share`]): added
    /// to the current dominant share for ordering. 0: plain DRF on current usage.
    #[serde(default)]
    pub past_share: f64,
    /// Why it admits nothing new now (its or an enclosing cohort's budget is spent, in
    /// words); running jobs are not touched.
    #[serde(default)]
    pub budget_exhausted: Option<String>,
}

fn one() -> f64 {
    1.0
}

impl Queue {
    /// A queue with no quotas (unlimited) and default policies.
    pub fn unlimited(name: &str) -> Self {
        Queue {
            name: name.to_string(),
            cohort: None,
            weight: 1.0,
            quotas: Vec::new(),
            preemption: PreemptionPolicy::default(),
            strategy: QueueingStrategy::default(),
            priority_range: PriorityRange::default(),
            past_share: 0.0,
            budget_exhausted: None,
        }
    }
}

/// The usage a gang adds, per resource, on one accelerator type.
pub fn gang_usage(request: &ReplicaRequest, replicas: u32, accelerator: Option<&str>) -> Vec<(ResourceName, u64)> {
    let r = u64::from(replicas);
    let mut usage = vec![(ResourceName::Cpu, request.cpu_millis * r), (ResourceName::Memory, request.memory_bytes * r)];
    if request.accelerators > 0 && accelerator.is_some() {
        usage.push((ResourceName::Accelerators, u64::from(request.accelerators) * r));
    }
    for (name, v) in &request.extended {
        usage.push((ResourceName::Extended(name.clone()), v * r));
    }
    usage
}

/// A cohort of the tree queues lend and borrow in (organisation -> department -> team).
///
/// Its quotas add their nominal to what its subtree holds, and their limits say how much
/// the subtree may borrow from, and lend to, the rest of its parent's subtree. A cohort a
/// queue (or another cohort) names but no `Cohort` describes is a root without quotas.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cohort {
    pub name: String,
    #[serde(default)]
    pub parent: Option<String>,
    /// The first quota of each (resource, accelerator) counts; later ones of the same key
    /// are ignored.
    #[serde(default)]
    pub quotas: Vec<Quota>,
    /// Carried for whoever enforces budgets (the hub view); the ledger does not read it.
    #[serde(default)]
    pub budget: Option<Budget>,
}

/// The deepest a cohort may sit (a root is at depth 1); a deeper one counts as a root.
pub const MAX_COHORT_DEPTH: usize = 16;

/// Why a cohort's parent is ignored (the cohort counts as a root).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CohortProblemKind {
    /// Following parents from it comes back to it; of a loop, the cohort with the
    /// smallest name is cut.
    Loop,
    /// It would sit deeper than [`MAX_COHORT_DEPTH`].
    TooDeep,
}

/// A cohort whose parent the tree ignores, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CohortProblem {
    pub cohort: String,
    pub kind: CohortProblemKind,
}

/// Every cohort named by a queue or a `Cohort`, with the parent the ledger uses: parents
/// that loop or go deeper than [`MAX_COHORT_DEPTH`] are cut, so the tree is a forest.
#[derive(Debug, Clone, Default)]
pub struct CohortTree {
    names: Vec<String>,
    by_name: BTreeMap<String, usize>,
    parent: Vec<Option<usize>>,
    /// Index of the `Cohort` describing each node (the first of a name).
    described: Vec<Option<usize>>,
    depth: Vec<usize>,
    problems: Vec<CohortProblem>,
}

impl CohortTree {
    /// Builds the tree; never fails (bad parents are cut and reported in `problems`).
    pub fn new(queues: &[Queue], cohorts: &[Cohort]) -> Self {
        let mut tree = CohortTree::default();
        for (i, c) in cohorts.iter().enumerate() {
            let n = tree.intern(&c.name);
            if tree.described[n].is_none() {
                tree.described[n] = Some(i);
            }
        }
        for c in cohorts {
            if let Some(parent) = &c.parent {
                tree.intern(parent);
            }
        }
        for q in queues {
            if let Some(cohort) = &q.cohort {
                tree.intern(cohort);
            }
        }
        for n in 0..tree.names.len() {
            tree.parent[n] = tree.described[n].and_then(|i| cohorts[i].parent.as_ref()).and_then(|p| tree.index(p));
        }
        tree.cut_loops();
        tree.cut_depth();
        tree.problems.sort_by(|a, b| a.cohort.cmp(&b.cohort));
        tree
    }

    fn intern(&mut self, name: &str) -> usize {
        if let Some(&n) = self.by_name.get(name) {
            return n;
        }
        let n = self.names.len();
        self.names.push(name.to_string());
        self.by_name.insert(name.to_string(), n);
        self.parent.push(None);
        self.described.push(None);
        self.depth.push(0);
        n
    }

    /// Every node has one parent at most, so each loop is found once, from wherever the
    /// walk enters it; cutting its smallest name makes the choice independent of order.
    fn cut_loops(&mut self) {
        const NEW: u8 = 0;
        const ON_PATH: u8 = 1;
        const DONE: u8 = 2;
        let mut state = vec![NEW; self.names.len()];
        for start in 0..self.names.len() {
            let mut path: Vec<usize> = Vec::new();
            let mut n = start;
            loop {
                match state[n] {
                    DONE => break,
                    ON_PATH => {
                        let from = path.iter().position(|&m| m == n).unwrap_or(0);
                        let cut = path[from..].iter().copied().min_by(|&a, &b| self.names[a].cmp(&self.names[b]));
                        if let Some(cut) = cut {
                            self.parent[cut] = None;
                            self.problems
                                .push(CohortProblem { cohort: self.names[cut].clone(), kind: CohortProblemKind::Loop });
                        }
                        break;
                    }
                    _ => {
                        state[n] = ON_PATH;
                        path.push(n);
                        match self.parent[n] {
                            Some(p) => n = p,
                            None => break,
                        }
                    }
                }
            }
            for m in path {
                state[m] = DONE;
            }
        }
    }

    /// Depths from the roots down (the forest has no loops now); a cohort that would sit
    /// below [`MAX_COHORT_DEPTH`] becomes a root.
    fn cut_depth(&mut self) {
        for start in 0..self.names.len() {
            let mut path: Vec<usize> = Vec::new();
            let mut n = start;
            while self.depth[n] == 0 {
                path.push(n);
                match self.parent[n] {
                    Some(p) => n = p,
                    None => break,
                }
            }
            let mut above = if self.depth[n] == 0 { 0 } else { self.depth[n] };
            for &m in path.iter().rev() {
                if self.depth[m] != 0 {
                    continue;
                }
                if self.parent[m].is_some() && above >= MAX_COHORT_DEPTH {
                    self.parent[m] = None;
                    self.problems
                        .push(CohortProblem { cohort: self.names[m].clone(), kind: CohortProblemKind::TooDeep });
                    above = 0;
                }
                if self.parent[m].is_none() {
                    above = 0;
                }
                self.depth[m] = above + 1;
                above += 1;
            }
        }
    }

    /// Index of a cohort by name.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// The parent the tree uses (`None` for roots, including cut ones).
    pub fn parent(&self, name: &str) -> Option<&str> {
        self.index(name).and_then(|n| self.parent[n]).map(|p| self.names[p].as_str())
    }

    /// The root above (or at) a cohort.
    pub fn root(&self, name: &str) -> Option<&str> {
        let mut n = self.index(name)?;
        while let Some(p) = self.parent[n] {
            n = p;
        }
        Some(self.names[n].as_str())
    }

    /// Cohorts whose parent is ignored, by name.
    pub fn problems(&self) -> &[CohortProblem] {
        &self.problems
    }
}

/// Why a quota check failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QuotaShortfall {
    pub resource: ResourceName,
    pub accelerator: Option<String>,
    /// Usage after admission.
    pub would_use: u64,
    /// What the queue may use (nominal + borrowable).
    pub limit: u64,
    /// A cohort's shared pool is exhausted, not the queue's own limit.
    pub cohort_exhausted: bool,
    /// The cohort (level of the tree) that has nothing left to lend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cohort: Option<String>,
}

/// A (resource, accelerator) a quota is kept for.
type QuotaKey = (ResourceName, Option<String>);

/// What a queue with a cohort but no borrowing limit may borrow (large, yet safe to add).
const UNBOUNDED: u64 = u64::MAX / 4;

/// Quota usage of all queues, and of every cohort of the tree, during one cycle.
///
/// Per quota key, a node (queue or cohort) holds a capacity C (its nominal plus its
/// subtree's), keeps `guaranteed = C - min(lendingLimit, C)` from its parent's pool, and
/// shows its parent V = max(what it reserves or uses, guaranteed). An admission must keep
/// V <= C + borrowingLimit at every node on the queue's path and V <= C at the root. With
/// one level this is Kueue's cohort pool: the sum of what queues use beyond their
/// unlent part stays within the sum of what they lend.
#[derive(Debug, Clone)]
pub struct QuotaLedger {
    queues: Vec<QueueUsage>,
    by_name: BTreeMap<String, usize>,
    cohorts: Vec<CohortNode>,
}

#[derive(Debug, Clone)]
struct QueueUsage {
    queue: Queue,
    used: Vec<u64>,
    /// The cohort node the queue is in.
    cohort: Option<usize>,
}

#[derive(Debug, Clone)]
struct CohortNode {
    name: String,
    parent: Option<usize>,
    /// Per quota key the node takes part in (it or its subtree has a quota for it).
    levels: BTreeMap<QuotaKey, Level>,
}

#[derive(Debug, Clone, Default)]
struct Level {
    /// C: own nominal plus the subtree's.
    capacity: u64,
    /// What the parent's pool may not use: C minus what is lent.
    guaranteed: u64,
    borrowing_limit: Option<u64>,
    lending_limit: Option<u64>,
    /// V: what the subtree reserves or uses, its children's guaranteed parts included.
    reserved: u64,
}

impl Level {
    /// The most V may be at this node (`None`: no bound).
    fn ceiling(&self, is_root: bool) -> Option<u64> {
        if is_root {
            Some(self.capacity)
        } else {
            self.borrowing_limit.map(|b| self.capacity.saturating_add(b))
        }
    }
}

fn shifted(value: u64, delta: i128) -> u64 {
    u64::try_from((i128::from(value) + delta).max(0)).unwrap_or(u64::MAX)
}

/// How a child's V going from `before` to `after` changes what its parent sees.
fn seen_delta(before: u64, after: u64, guaranteed: u64) -> i128 {
    i128::from(after.max(guaranteed)) - i128::from(before.max(guaranteed))
}

impl QuotaLedger {
    /// Builds the ledger from the queues and the cohort tree (no usage yet).
    pub fn new(queues: &[Queue], cohorts: &[Cohort]) -> Self {
        let tree = CohortTree::new(queues, cohorts);
        let mut nodes: Vec<CohortNode> = tree
            .names
            .iter()
            .zip(&tree.parent)
            .map(|(name, &parent)| CohortNode { name: name.clone(), parent, levels: BTreeMap::new() })
            .collect();
        let mut ledger = QuotaLedger { queues: Vec::new(), by_name: BTreeMap::new(), cohorts: Vec::new() };
        // Own quotas and direct queues first; every ancestor takes part in their keys.
        let join = |nodes: &mut [CohortNode], mut n: usize, key: &QuotaKey| {
            while let Some(p) = nodes[n].parent {
                nodes[p].levels.entry(key.clone()).or_default();
                n = p;
            }
        };
        for (n, described) in tree.described.iter().enumerate() {
            let Some(c) = described.map(|i| &cohorts[i]) else { continue };
            let mut seen = BTreeSet::new();
            for quota in &c.quotas {
                let key = (quota.resource.clone(), quota.accelerator.clone());
                if !seen.insert(key.clone()) {
                    continue;
                }
                // Entries made so far hold nothing yet (capacities flow up below).
                let level = nodes[n].levels.entry(key.clone()).or_default();
                level.capacity = quota.nominal;
                level.borrowing_limit = quota.borrowing_limit;
                level.lending_limit = quota.lending_limit;
                join(&mut nodes, n, &key);
            }
        }
        for q in queues {
            let cohort = q.cohort.as_deref().and_then(|c| tree.index(c));
            ledger.by_name.insert(q.name.clone(), ledger.queues.len());
            ledger.queues.push(QueueUsage { queue: q.clone(), used: vec![0; q.quotas.len()], cohort });
            let Some(n) = cohort else { continue };
            for quota in &q.quotas {
                let key = (quota.resource.clone(), quota.accelerator.clone());
                let level = nodes[n].levels.entry(key.clone()).or_default();
                level.capacity = level.capacity.saturating_add(quota.nominal);
                level.reserved = level.reserved.saturating_add(quota.nominal - quota.lendable());
                join(&mut nodes, n, &key);
            }
        }
        // Children before parents: capacities and the guaranteed parts flow up.
        let mut order: Vec<usize> = (0..nodes.len()).collect();
        order.sort_by_key(|&n| Reverse(tree.depth[n]));
        for n in order {
            let parent = nodes[n].parent;
            let mut up = Vec::new();
            for (key, level) in &mut nodes[n].levels {
                let lendable = level.lending_limit.map_or(level.capacity, |l| l.min(level.capacity));
                level.guaranteed = level.capacity - lendable;
                up.push((key.clone(), level.capacity, level.reserved.max(level.guaranteed)));
            }
            if let Some(p) = parent {
                for (key, capacity, seen) in up {
                    let level = nodes[p].levels.entry(key).or_default();
                    level.capacity = level.capacity.saturating_add(capacity);
                    level.reserved = level.reserved.saturating_add(seen);
                }
            }
        }
        ledger.cohorts = nodes;
        ledger
    }

    /// The ledger with the running jobs' usage charged to their queues (jobs of unknown
    /// queues are not counted).
    pub fn with_running(queues: &[Queue], cohorts: &[Cohort], running: &[RunningJob]) -> Self {
        let mut ledger = QuotaLedger::new(queues, cohorts);
        for r in running {
            if let Some(q) = ledger.queue_index(&r.queue) {
                let accelerator = r.accelerator.as_deref();
                ledger.admit(q, &gang_usage(&r.per_replica, r.replicas(), accelerator), accelerator);
            }
        }
        ledger
    }

    /// Index of a queue by name.
    pub fn queue_index(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// The queue at an index.
    pub fn queue(&self, index: usize) -> &Queue {
        &self.queues[index].queue
    }

    /// Number of queues.
    pub fn len(&self) -> usize {
        self.queues.len()
    }

    /// Whether there are no queues.
    pub fn is_empty(&self) -> bool {
        self.queues.is_empty()
    }

    /// Checks whether `usage` (on `accelerator`) can be added to queue `q`.
    pub fn check(
        &self,
        q: usize,
        usage: &[(ResourceName, u64)],
        accelerator: Option<&str>,
    ) -> Result<(), QuotaShortfall> {
        let entry = &self.queues[q];
        for (i, quota) in entry.queue.quotas.iter().enumerate() {
            let add: u64 = usage.iter().filter(|(r, _)| quota.counts(r, accelerator)).map(|(_, v)| *v).sum();
            if add == 0 {
                continue;
            }
            let would_use = entry.used[i] + add;
            let borrow = match &entry.cohort {
                None => 0,
                Some(_) => quota.borrowing_limit.unwrap_or(UNBOUNDED),
            };
            let limit = quota.nominal.saturating_add(borrow);
            let shortfall = |cohort: Option<&str>| QuotaShortfall {
                resource: quota.resource.clone(),
                accelerator: quota.accelerator.clone(),
                would_use,
                limit: limit.min(UNBOUNDED),
                cohort_exhausted: cohort.is_some(),
                cohort: cohort.map(str::to_string),
            };
            if would_use > limit {
                return Err(shortfall(None));
            }
            if entry.cohort.is_none() {
                continue;
            }
            let mut at = entry.cohort;
            let key = (quota.resource.clone(), quota.accelerator.clone());
            let guaranteed = quota.nominal - quota.lendable();
            let mut delta = seen_delta(entry.used[i], would_use, guaranteed);
            // Every level is checked, even where nothing changes: a pool already over its
            // capacity admits nothing more from below it.
            while let Some(n) = at {
                let node = &self.cohorts[n];
                let Some(level) = node.levels.get(&key) else { break };
                let after = shifted(level.reserved, delta);
                if level.ceiling(node.parent.is_none()).is_some_and(|ceiling| after > ceiling) {
                    return Err(shortfall(Some(&node.name)));
                }
                delta = seen_delta(level.reserved, after, level.guaranteed);
                at = node.parent;
            }
        }
        Ok(())
    }

    /// Adds (or with `add == false` removes) usage to queue `q` and along its cohort path.
    fn apply(&mut self, q: usize, usage: &[(ResourceName, u64)], accelerator: Option<&str>, add: bool) {
        let entry = &mut self.queues[q];
        for (i, quota) in entry.queue.quotas.iter().enumerate() {
            let change: u64 = usage.iter().filter(|(r, _)| quota.counts(r, accelerator)).map(|(_, v)| *v).sum();
            if change == 0 {
                continue;
            }
            let before = entry.used[i];
            let after = if add { before.saturating_add(change) } else { before.saturating_sub(change) };
            entry.used[i] = after;
            if entry.cohort.is_none() {
                continue;
            }
            let mut at = entry.cohort;
            let key = (quota.resource.clone(), quota.accelerator.clone());
            let mut delta = seen_delta(before, after, quota.nominal - quota.lendable());
            while let Some(n) = at {
                if delta == 0 {
                    break;
                }
                let node = &mut self.cohorts[n];
                let Some(level) = node.levels.get_mut(&key) else { break };
                let old = level.reserved;
                level.reserved = shifted(old, delta);
                delta = seen_delta(old, level.reserved, level.guaranteed);
                at = node.parent;
            }
        }
    }

    /// Whether queues `a` and `b` sit under the same root of the cohort tree.
    pub fn same_tree(&self, a: usize, b: usize) -> bool {
        match (self.root_of(a), self.root_of(b)) {
            (Some(x), Some(y)) => x == y,
            _ => false,
        }
    }

    fn root_of(&self, q: usize) -> Option<usize> {
        let mut n = self.queues[q].cohort?;
        while let Some(p) = self.cohorts[n].parent {
            n = p;
        }
        Some(n)
    }

    /// Per quota key of a cohort: (resource, accelerator, V, C), for reports.
    pub fn cohort_usage(&self, name: &str) -> Vec<(ResourceName, Option<String>, u64, u64)> {
        self.cohorts
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.levels.iter().map(|((r, a), l)| (r.clone(), a.clone(), l.reserved, l.capacity)).collect())
            .unwrap_or_default()
    }

    /// Whether adding `usage` keeps queue `q` within the nominal of every matching quota
    /// (a queue reclaiming what it lent must not itself be borrowing).
    pub fn within_nominal(&self, q: usize, usage: &[(ResourceName, u64)], accelerator: Option<&str>) -> bool {
        let entry = &self.queues[q];
        entry.queue.quotas.iter().zip(&entry.used).all(|(quota, used)| {
            let add: u64 = usage.iter().filter(|(r, _)| quota.counts(r, accelerator)).map(|(_, v)| *v).sum();
            used + add <= quota.nominal
        })
    }

    /// Records an admission.
    pub fn admit(&mut self, q: usize, usage: &[(ResourceName, u64)], accelerator: Option<&str>) {
        self.apply(q, usage, accelerator, true);
    }

    /// Records a release (a job ended or was preempted).
    pub fn release(&mut self, q: usize, usage: &[(ResourceName, u64)], accelerator: Option<&str>) {
        self.apply(q, usage, accelerator, false);
    }

    /// Weighted dominant resource share of a queue: max over its quotas of used/nominal,
    /// plus its decayed past share, divided by its weight. Queues without quotas have
    /// share 0.
    pub fn dominant_share(&self, q: usize) -> f64 {
        let entry = &self.queues[q];
        let share = entry
            .queue
            .quotas
            .iter()
            .zip(&entry.used)
            .map(|(quota, used)| *used as f64 / quota.nominal.max(1) as f64)
            .fold(0.0, f64::max);
        let past = if entry.queue.past_share.is_finite() { entry.queue.past_share.max(0.0) } else { 0.0 };
        (share + past) / entry.queue.weight.max(1e-9)
    }

    /// Whether queue `q` uses more than nominal of a quota matching `accelerator`'s devices.
    pub fn is_borrowing(&self, q: usize) -> bool {
        let entry = &self.queues[q];
        entry.queue.quotas.iter().zip(&entry.used).any(|(quota, used)| *used > quota.nominal)
    }

    /// (used, nominal) of the quotas of a queue, for reports.
    pub fn usage(&self, q: usize) -> Vec<(Quota, u64)> {
        let entry = &self.queues[q];
        entry.queue.quotas.iter().cloned().zip(entry.used.iter().copied()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpu_quota(nominal: u64, borrowing: Option<u64>, lending: Option<u64>) -> Quota {
        Quota {
            resource: ResourceName::Accelerators,
            accelerator: None,
            nominal,
            borrowing_limit: borrowing,
            lending_limit: lending,
        }
    }

    fn queue(name: &str, cohort: Option<&str>, quota: Quota) -> Queue {
        Queue { cohort: cohort.map(str::to_string), quotas: vec![quota], ..Queue::unlimited(name) }
    }

    fn gpus(n: u64) -> Vec<(ResourceName, u64)> {
        vec![(ResourceName::Accelerators, n)]
    }

    #[test]
    fn without_cohort_nominal_is_the_limit() {
        let mut l = QuotaLedger::new(&[queue("a", None, gpu_quota(8, Some(100), None))], &[]);
        assert!(l.check(0, &gpus(8), Some("T4")).is_ok());
        l.admit(0, &gpus(8), Some("T4"));
        let err = l.check(0, &gpus(1), Some("T4")).unwrap_err();
        assert_eq!((err.would_use, err.limit, err.cohort_exhausted), (9, 8, false));
    }

    #[test]
    fn borrowing_within_cohort_respects_limits() {
        let mut l = QuotaLedger::new(
            &[queue("a", Some("c"), gpu_quota(8, Some(4), None)), queue("b", Some("c"), gpu_quota(8, None, Some(2)))],
            &[],
        );
        // a may borrow 4 but b lends only 2: a's ceiling is 8 + 2.
        assert!(l.check(0, &gpus(10), Some("T4")).is_ok());
        assert!(l.check(0, &gpus(11), Some("T4")).unwrap_err().cohort_exhausted);
        l.admit(0, &gpus(10), Some("T4"));
        // b's own nominal is still guaranteed for its unlent part: 8 - 2 lent = 6 left.
        assert!(l.check(1, &gpus(6), Some("T4")).is_ok());
        assert!(l.check(1, &gpus(7), Some("T4")).is_err());
        l.release(0, &gpus(10), Some("T4"));
        assert!(l.check(1, &gpus(8), Some("T4")).is_ok());
        // b may borrow a's whole nominal (no lending limit) when a uses nothing.
        assert!(l.check(1, &gpus(16), Some("T4")).is_ok());
    }

    #[test]
    fn flavoured_quota_counts_only_its_type() {
        let mut q = queue("a", None, gpu_quota(4, None, None));
        q.quotas[0].accelerator = Some("H800".into());
        let l = QuotaLedger::new(&[q], &[]);
        assert!(l.check(0, &gpus(64), Some("T4")).is_ok());
        assert!(l.check(0, &gpus(5), Some("H800")).is_err());
    }

    #[test]
    fn dominant_share_is_weighted() {
        let mut l = QuotaLedger::new(&[queue("a", None, gpu_quota(10, None, None))], &[]);
        l.admit(0, &gpus(5), Some("T4"));
        assert!((l.dominant_share(0) - 0.5).abs() < 1e-12);
        let mut heavy = queue("b", None, gpu_quota(10, None, None));
        heavy.weight = 2.0;
        let mut l = QuotaLedger::new(&[heavy], &[]);
        l.admit(0, &gpus(5), Some("T4"));
        assert!((l.dominant_share(0) - 0.25).abs() < 1e-12);
    }

    fn cohort(name: &str, parent: Option<&str>, quotas: Vec<Quota>) -> Cohort {
        Cohort { name: name.into(), parent: parent.map(str::to_string), quotas, budget: None }
    }

    /// org -> dept-a (teams a1, a2), dept-b (teams b1, b2); each team 4 GPUs.
    fn three_levels(dept_a: Vec<Quota>, dept_b: Vec<Quota>) -> QuotaLedger {
        let teams = [("a1", "dept-a"), ("a2", "dept-a"), ("b1", "dept-b"), ("b2", "dept-b")];
        let queues: Vec<Queue> = teams.iter().map(|(t, d)| queue(t, Some(d), gpu_quota(4, None, None))).collect();
        let cohorts = [
            cohort("org", None, Vec::new()),
            cohort("dept-a", Some("org"), dept_a),
            cohort("dept-b", Some("org"), dept_b),
        ];
        QuotaLedger::new(&queues, &cohorts)
    }

    fn exhausted_at(l: &QuotaLedger, q: usize, n: u64) -> Option<String> {
        l.check(q, &gpus(n), Some("T4")).err().and_then(|e| e.cohort)
    }

    #[test]
    fn team_borrows_within_its_department_before_the_organisation() {
        let mut l = three_levels(Vec::new(), Vec::new());
        let (a1, b1) = (0, 2);
        // a1 takes a2's idle 4: the department's own pool, the organisation lends nothing.
        l.admit(a1, &gpus(8), Some("T4"));
        assert_eq!(l.cohort_usage("dept-a")[0].2, 8);
        assert_eq!(l.cohort_usage("org")[0].2, 8);
        assert!(l.check(b1, &gpus(8), Some("T4")).is_ok(), "dept-b still holds all of its own");
        // Beyond its department, a1 borrows dept-b's idle quota through the organisation.
        l.admit(a1, &gpus(2), Some("T4"));
        assert!(l.check(b1, &gpus(6), Some("T4")).is_ok());
        assert_eq!(exhausted_at(&l, b1, 7).as_deref(), Some("org"));
        l.release(a1, &gpus(10), Some("T4"));
        assert_eq!(l.cohort_usage("org")[0].2, 0);
        assert!(l.check(b1, &gpus(16), Some("T4")).is_ok());
    }

    #[test]
    fn department_nominal_adds_to_its_subtree() {
        let mut l = three_levels(vec![gpu_quota(4, None, None)], Vec::new());
        let (a1, a2, b1) = (0, 1, 2);
        assert_eq!(l.cohort_usage("dept-a")[0].3, 12);
        assert_eq!(l.cohort_usage("org")[0].3, 20);
        assert!(l.check(a1, &gpus(20), Some("T4")).is_ok());
        assert_eq!(exhausted_at(&l, a1, 21).as_deref(), Some("org"));
        l.admit(a1, &gpus(12), Some("T4"));
        l.admit(b1, &gpus(8), Some("T4"));
        assert_eq!(exhausted_at(&l, a2, 1).as_deref(), Some("org"));
    }

    #[test]
    fn department_lending_limit_keeps_the_rest_for_its_teams() {
        // dept-a lends at most 2 of its 8 to dept-b: 6 stay guaranteed to a1 and a2.
        let mut l = three_levels(vec![gpu_quota(0, None, Some(2))], Vec::new());
        let (a1, b1) = (0, 2);
        assert!(l.check(b1, &gpus(10), Some("T4")).is_ok());
        assert_eq!(exhausted_at(&l, b1, 11).as_deref(), Some("org"));
        l.admit(b1, &gpus(10), Some("T4"));
        assert!(l.check(a1, &gpus(6), Some("T4")).is_ok());
        assert_eq!(exhausted_at(&l, a1, 7).as_deref(), Some("org"));
        // dept-b sets no lending limit: dept-a's teams may take all of it.
        l.release(b1, &gpus(10), Some("T4"));
        assert!(l.check(a1, &gpus(16), Some("T4")).is_ok());
    }

    #[test]
    fn department_borrowing_limit_caps_what_it_takes_from_the_organisation() {
        let l = three_levels(vec![gpu_quota(0, Some(2), None)], Vec::new());
        let (a1, b1) = (0, 2);
        assert!(l.check(a1, &gpus(10), Some("T4")).is_ok());
        let err = l.check(a1, &gpus(11), Some("T4")).unwrap_err();
        assert!(err.cohort_exhausted);
        assert_eq!(err.cohort.as_deref(), Some("dept-a"));
        // dept-b has no borrowing limit.
        assert!(l.check(b1, &gpus(16), Some("T4")).is_ok());
        let message = crate::explain::RejectReason::QuotaExceeded { shortfall: err }.to_string();
        assert!(message.contains("(cohort dept-a has nothing left to lend)"), "{message}");
    }

    #[test]
    fn looping_parents_are_cut_and_reported() {
        let cohorts = [
            cohort("y", Some("x"), vec![gpu_quota(2, None, None)]),
            cohort("x", Some("y"), Vec::new()),
            cohort("s", Some("s"), Vec::new()),
        ];
        let queues = [queue("q", Some("y"), gpu_quota(4, None, None)), queue("r", Some("s"), gpu_quota(1, None, None))];
        let tree = CohortTree::new(&queues, &cohorts);
        let loops: Vec<&str> = tree.problems().iter().map(|p| p.cohort.as_str()).collect();
        assert_eq!(loops, ["s", "x"]);
        assert!(tree.problems().iter().all(|p| p.kind == CohortProblemKind::Loop));
        assert_eq!(tree.parent("x"), None);
        assert_eq!(tree.parent("y"), Some("x"));
        assert_eq!(tree.root("y"), Some("x"));
        let mut l = QuotaLedger::new(&queues, &cohorts);
        // q's tree: y (2 + q's 4) under the root x.
        assert!(l.check(0, &gpus(6), Some("T4")).is_ok());
        assert_eq!(exhausted_at(&l, 0, 7).as_deref(), Some("x"));
        l.admit(0, &gpus(6), Some("T4"));
        l.release(0, &gpus(6), Some("T4"));
        assert!(l.check(1, &gpus(1), Some("T4")).is_ok());
        assert!(!l.same_tree(0, 1));
    }

    #[test]
    fn chains_deeper_than_the_limit_are_cut_and_reported() {
        let cohorts: Vec<Cohort> = (0..20)
            .map(|i| {
                let parent = (i > 0).then(|| format!("c{}", i - 1));
                cohort(&format!("c{i}"), parent.as_deref(), vec![gpu_quota(1, None, None)])
            })
            .collect();
        let queues = [queue("deep", Some("c19"), gpu_quota(0, None, None))];
        let tree = CohortTree::new(&queues, &cohorts);
        assert_eq!(tree.problems(), [CohortProblem { cohort: "c16".into(), kind: CohortProblemKind::TooDeep }]);
        assert_eq!(tree.root("c19"), Some("c16"));
        assert_eq!(tree.root("c15"), Some("c0"));
        // c16..c19 hold 4 GPUs in all.
        let l = QuotaLedger::new(&queues, &cohorts);
        assert!(l.check(0, &gpus(4), Some("T4")).is_ok());
        assert_eq!(exhausted_at(&l, 0, 5).as_deref(), Some("c16"));
    }

    #[test]
    fn same_tree_spans_departments() {
        let l = three_levels(Vec::new(), Vec::new());
        let lone = QuotaLedger::new(&[queue("a", None, gpu_quota(1, None, None))], &[]);
        assert!(l.same_tree(0, 3));
        assert!(!lone.same_tree(0, 0), "a queue without a cohort reclaims from no one");
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn limit() -> impl Strategy<Value = Option<u64>> {
            prop::option::of(0u64..8)
        }

        fn quota() -> impl Strategy<Value = Quota> {
            (0u64..8, limit(), limit()).prop_map(|(n, b, l)| gpu_quota(n, b, l))
        }

        /// (cohorts, queues): parents are any cohort, loops included.
        fn forest() -> impl Strategy<Value = (Vec<Cohort>, Vec<Queue>)> {
            (1usize..7).prop_flat_map(|n| {
                let cohorts = prop::collection::vec((prop::option::of(0..n), prop::option::of(quota())), n);
                let queues = prop::collection::vec((prop::option::of(0..n + 1), quota()), 1..6);
                (cohorts, queues).prop_map(move |(cohorts, queues)| {
                    let cohorts = cohorts
                        .into_iter()
                        .enumerate()
                        .map(|(i, (parent, own))| Cohort {
                            name: format!("c{i}"),
                            parent: parent.map(|p| format!("c{p}")),
                            quotas: own.into_iter().collect(),
                            budget: None,
                        })
                        .collect();
                    // Cohort n is named by queues only: an implicit root.
                    let queues = queues
                        .into_iter()
                        .enumerate()
                        .map(|(i, (c, q))| Queue {
                            cohort: c.map(|c| format!("c{c}")),
                            quotas: vec![q],
                            ..Queue::unlimited(&format!("q{i}"))
                        })
                        .collect();
                    (cohorts, queues)
                })
            })
        }

        /// (admit?, queue, amount or which admission to release)
        fn ops() -> impl Strategy<Value = Vec<(bool, usize, u64)>> {
            prop::collection::vec((any::<bool>(), 0usize..6, 1u64..6), 0..40)
        }

        /// C and V of every cohort, from scratch, by the formula: C = own + children's C,
        /// V = sum over children of max(V, guaranteed).
        fn recompute(
            cohorts: &[Cohort],
            queues: &[Queue],
            used: &[u64],
        ) -> BTreeMap<String, (u64, u64, Option<u64>, bool)> {
            let tree = CohortTree::new(queues, cohorts);
            let own = |name: &str| cohorts.iter().find(|c| c.name == name).and_then(|c| c.quotas.first().cloned());
            let guaranteed = |c: u64, lending: Option<u64>| c - lending.map_or(c, |l| l.min(c));
            fn node(
                name: &str,
                tree: &CohortTree,
                own: &dyn Fn(&str) -> Option<Quota>,
                queues: &[Queue],
                used: &[u64],
                out: &mut BTreeMap<String, (u64, u64, Option<u64>, bool)>,
                guaranteed: &dyn Fn(u64, Option<u64>) -> u64,
            ) -> (u64, u64, u64) {
                let quota = own(name);
                let (mut c, mut v) = (quota.as_ref().map_or(0, |q| q.nominal), 0);
                for (q, u) in queues.iter().zip(used) {
                    if q.cohort.as_deref() == Some(name) {
                        let qq = &q.quotas[0];
                        c += qq.nominal;
                        v += (*u).max(guaranteed(qq.nominal, qq.lending_limit));
                    }
                }
                for child in tree.names.iter().filter(|n| tree.parent(n) == Some(name)) {
                    let (cc, cv, cg) = node(child, tree, own, queues, used, out, guaranteed);
                    c += cc;
                    v += cv.max(cg);
                }
                let is_root = tree.parent(name).is_none();
                out.insert(name.to_string(), (c, v, quota.as_ref().and_then(|q| q.borrowing_limit), is_root));
                (c, v, guaranteed(c, quota.and_then(|q| q.lending_limit)))
            }
            let mut out = BTreeMap::new();
            for root in tree.names.iter().filter(|n| tree.parent(n).is_none()) {
                node(root, &tree, &own, queues, used, &mut out, &guaranteed);
            }
            out
        }

        /// Today's single-level rules, written out plainly: each queue's quota limits it,
        /// and per cohort the sum of what queues use beyond their unlent part stays within
        /// the sum of what they lend.
        fn reference_check(queues: &[Queue], used: &[Vec<u64>], q: usize, add: u64) -> Result<(), (u64, u64, bool)> {
            for (i, quota) in queues[q].quotas.iter().enumerate() {
                let would_use = used[q][i] + add;
                let limit = match &queues[q].cohort {
                    None => quota.nominal,
                    Some(_) => quota.nominal.saturating_add(quota.borrowing_limit.unwrap_or(u64::MAX / 4)),
                };
                if would_use > limit {
                    return Err((would_use, limit.min(u64::MAX / 4), false));
                }
                let Some(cohort) = &queues[q].cohort else { continue };
                let (mut lent, mut borrowed) = (0, 0);
                for (other, u) in queues.iter().zip(used) {
                    for (j, oq) in other.quotas.iter().enumerate() {
                        if other.cohort.as_ref() != Some(cohort) || oq.accelerator != quota.accelerator {
                            continue;
                        }
                        let lendable = oq.lending_limit.map_or(oq.nominal, |l| l.min(oq.nominal));
                        let mine = std::ptr::eq(other, &queues[q]) && i == j;
                        let u = if mine { would_use } else { u[j] };
                        lent += lendable;
                        borrowed += u.saturating_sub(oq.nominal - lendable);
                    }
                }
                if borrowed > lent {
                    return Err((would_use, limit.min(u64::MAX / 4), true));
                }
            }
            Ok(())
        }

        proptest! {
            #[test]
            fn no_node_goes_over_its_ceiling((cohorts, queues) in forest(), ops in ops()) {
                let mut l = QuotaLedger::new(&queues, &cohorts);
                let mut used = vec![0u64; queues.len()];
                let mut admitted: Vec<(usize, u64)> = Vec::new();
                for (admit, q, amount) in ops {
                    if admit {
                        let q = q % queues.len();
                        if l.check(q, &gpus(amount), Some("T4")).is_ok() {
                            l.admit(q, &gpus(amount), Some("T4"));
                            used[q] += amount;
                            admitted.push((q, amount));
                        }
                    } else if !admitted.is_empty() {
                        let (q, amount) = admitted.remove(q % admitted.len());
                        l.release(q, &gpus(amount), Some("T4"));
                        used[q] -= amount;
                    }
                    for (q, u) in queues.iter().zip(&used) {
                        let quota = &q.quotas[0];
                        let borrow = if q.cohort.is_some() { quota.borrowing_limit.unwrap_or(u64::MAX / 4) } else { 0 };
                        prop_assert!(*u <= quota.nominal + borrow, "queue {} uses {u}", q.name);
                    }
                    for (name, (c, v, borrowing, is_root)) in recompute(&cohorts, &queues, &used) {
                        if is_root {
                            prop_assert!(v <= c, "root {name}: V {v} > C {c}");
                        } else if let Some(b) = borrowing {
                            prop_assert!(v <= c + b, "{name}: V {v} > C {c} + {b}");
                        }
                        // The ledger's running V and C are the formula's.
                        if let Some(&(_, _, lv, lc)) = l.cohort_usage(&name).first() {
                            prop_assert_eq!((lv, lc), (v, c), "cohort {}", name);
                        }
                    }
                }
            }

            #[test]
            fn without_cohort_objects_checks_are_todays(
                specs in prop::collection::vec(
                    (prop::option::of(0usize..2), prop::collection::vec((prop::option::of(Just("H800")), quota()), 1..3)),
                    1..6,
                ),
                ops in prop::collection::vec((any::<bool>(), 0usize..6, 1u64..8, any::<bool>()), 0..40),
            ) {
                let queues: Vec<Queue> = specs
                    .into_iter()
                    .enumerate()
                    .map(|(i, (cohort, quotas))| Queue {
                        cohort: cohort.map(|c| format!("c{c}")),
                        quotas: quotas
                            .into_iter()
                            .map(|(flavour, q)| Quota { accelerator: flavour.map(str::to_string), ..q })
                            .collect(),
                        ..Queue::unlimited(&format!("q{i}"))
                    })
                    .collect();
                let mut l = QuotaLedger::new(&queues, &[]);
                let mut used: Vec<Vec<u64>> = queues.iter().map(|q| vec![0; q.quotas.len()]).collect();
                let mut admitted: Vec<(usize, u64, &str)> = Vec::new();
                for (admit, q, amount, h800) in ops {
                    let accelerator = if h800 { "H800" } else { "T4" };
                    if admit {
                        let q = q % queues.len();
                        // Usage counts against every quota of the queue that matches it.
                        let matching: Vec<bool> = queues[q].quotas.iter().map(|quota| quota.counts(&ResourceName::Accelerators, Some(accelerator))).collect();
                        let mut only: Vec<Queue> = queues.clone();
                        only[q].quotas.retain(|quota| quota.counts(&ResourceName::Accelerators, Some(accelerator)));
                        let mut only_used = used.clone();
                        only_used[q] = used[q].iter().zip(&matching).filter(|(_, m)| **m).map(|(u, _)| *u).collect();
                        let expected = reference_check(&only, &only_used, q, amount);
                        let got = l
                            .check(q, &gpus(amount), Some(accelerator))
                            .map_err(|e| (e.would_use, e.limit, e.cohort_exhausted));
                        prop_assert_eq!(got, expected);
                        if got.is_ok() {
                            l.admit(q, &gpus(amount), Some(accelerator));
                            for (u, m) in used[q].iter_mut().zip(&matching) {
                                if *m {
                                    *u += amount;
                                }
                            }
                            admitted.push((q, amount, accelerator));
                        }
                    } else if !admitted.is_empty() {
                        let (q, amount, accelerator) = admitted.remove(q % admitted.len());
                        l.release(q, &gpus(amount), Some(accelerator));
                        for (u, quota) in used[q].iter_mut().zip(&queues[q].quotas) {
                            if quota.counts(&ResourceName::Accelerators, Some(accelerator)) {
                                *u -= amount;
                            }
                        }
                    }
                }
            }
        }
    }
}

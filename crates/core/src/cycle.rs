//! The scheduling cycle.
//!
//! One cycle looks at an immutable [`Snapshot`] and decides, for every pending job, to
//! admit it (with a cluster and node slots), reserve capacity for it, preempt others for
//! it, or keep it queued with a reason. Order: priority, then the queue's weighted
//! dominant-resource share (recomputed as the cycle admits), then submission time.
//!
//! Backfill is EASY: the first gang that cannot start gets a reservation at the earliest
//! time its gang fits on some cluster (from the expected ends of running jobs); later
//! jobs may use that cluster only if they end before the reservation starts or leave the
//! reserved capacity free at that time.

mod caches;

use crate::explain::{
    Action, Candidate, CycleOutcome, Decision, Explanation, Placement, QueuePosition, QueuedReason, RejectReason,
    Rejection,
};
use crate::index::{apply_to, find_slots_in};
use crate::job::{Job, ReplicaRequest, RunningJob};
use crate::pool::{ClusterKind, NodeCapacity, NodeSlot, Pool};
use crate::queue::{gang_usage, Cohort, PreemptionScope, Queue, QueueingStrategy};
use crate::score::{score_all, Metrics, Scale};
pub use crate::standing::Changes;
use crate::standing::{AdmittedGang, Release, Standing};
use crate::throughput::{Estimate, ThroughputModel};
use caches::{
    smallest_k, FitCache, QuotaVerdict, RecentRejections, Rejected, RuntimeCache, RuntimeValue, Scratch, SMALL_TOP_K,
};
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::sync::Arc;

/// How a feasible cluster is chosen among several.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum PlacementRule {
    /// By the job's objective over estimated completion, energy, cost and carbon.
    #[default]
    Scored,
    /// The first feasible cluster in pool order (heterogeneity-agnostic).
    FirstFit,
    /// The feasible cluster with the most free devices (heterogeneity-agnostic).
    LeastLoaded,
}

/// Knobs of the cycle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CycleConfig {
    /// Candidates kept in each explanation.
    pub explain_top_k: usize,
    /// Admit jobs behind a reserved gang when they do not delay it. Off: nothing is
    /// admitted after the first gang that cannot start (plain FIFO).
    pub backfill: bool,
    /// Honour queues' preemption policies.
    pub preemption: bool,
    /// Preemption searches per cycle (each scans the running jobs of eligible clusters).
    pub max_preemption_attempts: usize,
    pub placement: PlacementRule,
    /// Waiting-aware placement: a job that fits now only on slower types may wait for a
    /// type at least this many times faster (estimated runtime) when its objective scores
    /// that better. Values <= 1 turn it off.
    #[serde(default = "default_wait_speedup")]
    pub wait_speedup: f64,
}

/// (start, cluster, group, projected free capacity at start, the gang's slots then)
type Earliest = (u64, usize, usize, Vec<NodeCapacity>, Vec<NodeSlot>);

/// Smaller sizes an elastic gang that does not fit whole tries, largest first.
const ELASTIC_SIZES_TRIED: usize = 4;

/// Projections of future capacity per cycle for waiting-aware placement.
const MAX_WAIT_CHECKS: usize = 64;

fn default_wait_speedup() -> f64 {
    1.5
}

impl Default for CycleConfig {
    fn default() -> Self {
        Self {
            explain_top_k: 3,
            backfill: true,
            preemption: true,
            max_preemption_attempts: 64,
            placement: PlacementRule::Scored,
            wait_speedup: default_wait_speedup(),
        }
    }
}

/// What one cycle sees: borrowed, never changed.
#[derive(Debug, Clone, Copy)]
pub struct Snapshot<'a> {
    /// Current time, seconds on the caller's clock (the same clock as job times).
    pub now: u64,
    pub pool: &'a Pool,
    pub queues: &'a [Queue],
    /// The cohort tree's described cohorts; a cohort named but not described is a root
    /// without quotas of its own.
    pub cohorts: &'a [Cohort],
    pub pending: &'a [Job],
    pub running: &'a [RunningJob],
}

/// The scheduler: a throughput model and the cycle's configuration.
#[derive(Debug, Clone, Default)]
pub struct Scheduler {
    pub model: ThroughputModel,
    pub config: CycleConfig,
}

impl Scheduler {
    /// A scheduler with a model and the default configuration.
    pub fn new(model: ThroughputModel) -> Self {
        Self { model, config: CycleConfig::default() }
    }

    /// Runs one scheduling cycle over `snapshot`. Deterministic: the same snapshot gives
    /// the same outcome.
    pub fn cycle(&self, snapshot: &Snapshot<'_>) -> CycleOutcome {
        let mut standing = Standing::build(snapshot, false);
        CycleState::new(self, snapshot, &mut standing).run()
    }
}

/// A scheduler that keeps what one cycle knows of the pool for the next one.
///
/// Each cycle decides exactly what [`Scheduler::cycle`] would decide on the same snapshot,
/// but instead of indexing every node and counting every running gang again, it brings the
/// standing the previous cycle left up to date with the snapshot: only nodes whose free
/// capacity changed, gangs that started, ended or changed, and quotas when queues or
/// cohorts changed are touched. The gangs a cycle admits stay counted when the next
/// snapshot shows them running. Every `full_every` cycles it builds the standing anew
/// anyway, as a safety net.
#[derive(Debug, Clone)]
pub struct IncrementalScheduler {
    pub scheduler: Scheduler,
    /// Cycles between builds from scratch (0: every cycle).
    pub full_every: u32,
    standing: Option<Standing>,
    since_full: u32,
}

/// Default of [`IncrementalScheduler::full_every`]: at 0.5 to 1 s a cycle, every one to two minutes.
pub const FULL_EVERY: u32 = 120;

impl IncrementalScheduler {
    pub fn new(scheduler: Scheduler) -> Self {
        Self { scheduler, full_every: FULL_EVERY, standing: None, since_full: 0 }
    }

    /// Runs one cycle over `snapshot`; the same outcome as [`Scheduler::cycle`].
    pub fn cycle(&mut self, snapshot: &Snapshot<'_>) -> CycleOutcome {
        self.cycle_after(snapshot, |st| st.refresh(snapshot))
    }

    /// Runs one cycle over `snapshot`, told what changed since the last one instead of
    /// finding out: the standing is brought up to date in time proportional to the
    /// changes, not to the pool. The same outcome as [`Scheduler::cycle`] when `changes`
    /// lists everything that changed; what it misses stays wrong until the next build from
    /// scratch (every `full_every` cycles). Callers that cannot tell use [`Self::cycle`].
    pub fn cycle_with(&mut self, snapshot: &Snapshot<'_>, changes: &Changes<'_>) -> CycleOutcome {
        self.cycle_after(snapshot, |st| st.refresh_with(snapshot, changes))
    }

    /// The cycle over the kept standing once `refresh` brought it up to date (it says
    /// whether it built anew), or over a new one when none is kept or a build is due.
    fn cycle_after(&mut self, snapshot: &Snapshot<'_>, refresh: impl FnOnce(&mut Standing) -> bool) -> CycleOutcome {
        let standing = match self.standing.as_mut() {
            Some(st) if self.since_full < self.full_every => {
                self.since_full = if refresh(st) { 0 } else { self.since_full + 1 };
                st
            }
            _ => {
                self.since_full = 0;
                self.standing.insert(Standing::build(snapshot, true))
            }
        };
        CycleState::new(&self.scheduler, snapshot, standing).run()
    }

    /// Forgets the kept standing: the next cycle builds it from scratch.
    pub fn reset(&mut self) {
        self.standing = None;
    }
}

#[derive(Debug)]
struct Reservation {
    cluster: usize,
    start_at: u64,
    /// Capacity per node of the cluster at `start_at` that the reserved gang leaves.
    spare: Vec<NodeCapacity>,
}

/// Jobs of identical needs that found no room share one explanation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ShapeKey {
    replicas: u32,
    request: ReplicaRequest,
    types: Vec<String>,
    min_memory_gib: Option<u32>,
    kinds: Vec<ClusterKind>,
    sites: Vec<String>,
    /// Set only when some cluster runs mapped tenants alone (else every tenant fares alike).
    tenant: Option<String>,
}

/// A type group where the gang fits now: what scoring needs, not the whole estimate
/// (that is made again for the few candidates an explanation shows).
#[derive(Debug)]
struct Found {
    cluster: usize,
    group: usize,
    /// Nodes the gang takes there.
    nodes: u32,
    /// Ends after the reservation's start on the reserved cluster.
    long: bool,
    runtime_s: f64,
    metrics: Metrics,
}

impl Found {
    fn new(cluster: usize, group: usize, nodes: u32, long: bool, estimate: &Estimate) -> Self {
        Found { cluster, group, nodes, long, runtime_s: estimate.runtime_s, metrics: Metrics::of(estimate, 0.0) }
    }
}

#[derive(Debug)]
struct HeapEntry {
    priority: i32,
    share: f64,
    /// Rank by (submission time, id) among all pending jobs.
    rank: u32,
    job: usize,
    queue: usize,
}

type HeapKey = (i32, Reverse<u64>, Reverse<u32>, Reverse<usize>);

impl HeapEntry {
    fn key(&self) -> HeapKey {
        // Shares are >= 0, so their bit patterns order like the numbers.
        (self.priority, Reverse(self.share.to_bits()), Reverse(self.rank), Reverse(self.queue))
    }
}

/// Accelerator constraints whose allowed types a cycle keeps.
const ALLOWED_KEPT: usize = 32;

/// How many recent lists of rejected clusters a cycle compares a new list with.
const RECENT_REJECTIONS: usize = 8;

struct CycleState<'a, 's> {
    scheduler: &'a Scheduler,
    snap: &'a Snapshot<'a>,
    /// Indexes, ledger and expected ends: changed as the cycle admits.
    st: &'s mut Standing,
    /// Accelerator type names per (cluster, group), borrowed from the pool.
    group_names: Vec<Vec<Option<&'a str>>>,
    reservation: Option<Reservation>,
    preempted: Vec<bool>,
    preemption_attempts: usize,
    /// Projections made for waiting-aware placement in this cycle.
    wait_checks: usize,
    no_room: HashMap<ShapeKey, Arc<[Rejection]>>,
    /// The last few lists of rejected clusters, shared by the jobs whose lists are equal.
    recent_rejections: Vec<RecentRejections>,
    /// Where each gang shape fits, per cluster capacity version.
    fits: RefCell<FitCache>,
    scratch: Scratch,
    /// Each candidate's total score, for the job being admitted.
    totals: Vec<f64>,
    /// Allowed types (by interned id) per accelerator constraint seen this cycle.
    allowed: Vec<(crate::job::AcceleratorConstraint, Arc<[bool]>)>,
}

impl<'a, 's> CycleState<'a, 's> {
    fn new(scheduler: &'a Scheduler, snap: &'a Snapshot<'a>, st: &'s mut Standing) -> Self {
        let group_names = st
            .group_first_node
            .iter()
            .zip(&snap.pool.clusters)
            .map(|(first, cluster)| {
                first.iter().map(|&n| cluster.nodes.get(n).and_then(|node| node.accelerator.as_deref())).collect()
            })
            .collect();
        let groups: Vec<usize> = st.group_types.iter().map(Vec::len).collect();
        let fits = RefCell::new(FitCache::new(&groups));
        CycleState {
            scheduler,
            snap,
            st,
            group_names,
            reservation: None,
            preempted: vec![false; snap.running.len()],
            preemption_attempts: 0,
            wait_checks: 0,
            no_room: HashMap::new(),
            recent_rejections: Vec::with_capacity(RECENT_REJECTIONS),
            fits,
            scratch: Scratch::default(),
            totals: Vec::new(),
            allowed: Vec::new(),
        }
    }

    fn run(mut self) -> CycleOutcome {
        let jobs = self.snap.pending;
        // One decision per pending job: sized once, not grown by doubling.
        let mut outcome = CycleOutcome { decisions: Vec::with_capacity(jobs.len()), ..CycleOutcome::default() };
        let mut per_queue: Vec<Vec<usize>> = vec![Vec::new(); self.st.ledger.len()];
        // Job index of each decision, in order.
        let mut decided: Vec<usize> = Vec::with_capacity(jobs.len());
        for (i, job) in jobs.iter().enumerate() {
            match self.st.ledger.queue_index(&job.queue) {
                Some(q) => per_queue[q].push(i),
                None => {
                    outcome.decisions.push(queued(job, QueuedReason::UnknownQueue { queue: job.queue.clone() }));
                    decided.push(i);
                }
            }
        }
        // Priorities count only as far as each job's queue allows (admin-set ranges), in
        // the queue's order and across queues.
        let priority: Vec<i32> = jobs
            .iter()
            .map(|j| {
                self.st.ledger.queue_index(&j.queue).map_or(j.priority, |q| self.effective_priority(q, j.priority))
            })
            .collect();
        for list in &mut per_queue {
            list.sort_by(|a, b| {
                let (x, y) = (&jobs[*a], &jobs[*b]);
                priority[*b].cmp(&priority[*a]).then(x.submitted_at.cmp(&y.submitted_at)).then(x.id.cmp(&y.id))
            });
            list.reverse(); // pop from the back
        }
        let mut by_submission: Vec<usize> = (0..jobs.len()).collect();
        by_submission
            .sort_by(|a, b| jobs[*a].submitted_at.cmp(&jobs[*b].submitted_at).then(jobs[*a].id.cmp(&jobs[*b].id)));
        let mut rank = vec![0u32; jobs.len()];
        for (r, &j) in by_submission.iter().enumerate() {
            rank[j] = r as u32;
        }
        let mut heap = BinaryHeap::new();
        let push = |heap: &mut BinaryHeap<Ordered>, q: usize, list: &mut Vec<usize>, share: f64| {
            if let Some(j) = list.pop() {
                let entry = HeapEntry { priority: priority[j], share, rank: rank[j], job: j, queue: q };
                heap.push(Ordered { key: entry.key(), entry });
            }
        };
        for (q, list) in per_queue.iter_mut().enumerate() {
            push(&mut heap, q, list, self.st.ledger.dominant_share(q));
        }
        let mut strict_head: Vec<Option<String>> = vec![None; self.st.ledger.len()];
        while let Some(Ordered { entry, .. }) = heap.pop() {
            let q = entry.queue;
            let share = self.st.ledger.dominant_share(q);
            if share > entry.share {
                // The queue's share grew since this entry was pushed: requeue it fairly.
                let e = HeapEntry { share, ..entry };
                heap.push(Ordered { key: e.key(), entry: e });
                continue;
            }
            let job = &jobs[entry.job];
            let decision = match &strict_head[q] {
                Some(head) => queued(job, QueuedReason::BlockedByQueueHead { head: head.clone() }),
                None => self.decide(job, q),
            };
            let blocked = !matches!(decision.action, Action::Admit(_));
            if blocked && self.st.ledger.queue(q).strategy == QueueingStrategy::StrictFifo && strict_head[q].is_none() {
                strict_head[q] = Some(job.id.clone());
            }
            outcome.decisions.push(decision);
            decided.push(entry.job);
            push(&mut heap, q, &mut per_queue[q], self.st.ledger.dominant_share(q));
        }
        let mut next_position: BTreeMap<&str, u32> = BTreeMap::new();
        for (d, &j) in outcome.decisions.iter().zip(&decided) {
            if matches!(d.action, Action::Admit(_)) {
                continue;
            }
            let queue = jobs[j].queue.as_str();
            let p = next_position.entry(queue).or_insert(0);
            *p += 1;
            outcome.positions.insert(d.job.clone(), QueuePosition { queue: queue.to_string(), position: *p });
        }
        outcome
    }

    /// Decides one job.
    fn decide(&mut self, job: &Job, q: usize) -> Decision {
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.found.clear();
        scratch.rejected.clear();
        scratch.eligible.clear();
        scratch.over_quota.clear();
        scratch.checked.clear();
        let decision = self.decide_with(job, q, &mut scratch);
        self.scratch = scratch;
        decision
    }

    fn decide_with(&mut self, job: &Job, q: usize, scratch: &mut Scratch) -> Decision {
        if let Err(e) = job.validate() {
            return queued(job, QueuedReason::Invalid { message: e.to_string() });
        }
        if let Some(detail) = &self.st.ledger.queue(q).budget_exhausted {
            return queued(job, QueuedReason::BudgetExhausted { detail: detail.clone() });
        }
        if self.reservation.is_some() && !self.scheduler.config.backfill {
            return queued(job, QueuedReason::InsufficientCapacity);
        }
        let allowed = self.allowed_types(job);
        let allowed: &[bool] = &allowed;
        // Built only when a reservation is held (the only time it is looked up or kept).
        let shape = || ShapeKey {
            replicas: job.replicas,
            request: job.per_replica.clone(),
            types: job.accelerator.types.clone(),
            min_memory_gib: job.accelerator.min_memory_gib,
            kinds: job.cluster_kinds.clone(),
            sites: job.sites.clone(),
            tenant: self.snap.pool.clusters.iter().any(|c| c.tenants.is_some()).then(|| job.tenant.clone()),
        };
        let can_preempt = self.may_preempt(q);
        if self.reservation.is_some() && !can_preempt {
            if let Some(rejected) = self.no_room.get(&shape()) {
                let explanation =
                    Explanation { candidates: Vec::new(), feasible_clusters: 0, rejected: rejected.clone() };
                return Decision {
                    job: job.id.clone(),
                    action: Action::Queued(QueuedReason::InsufficientCapacity),
                    explanation,
                };
            }
        }

        // Kept across jobs: growing them push by push, or faulting in fresh ones for every
        // job, was a good part of a large cycle's time.
        let Scratch { found, rejected, eligible, over_quota, checked } = scratch;
        // The most replicas of the gang that fit in any one group now (for elastic gangs).
        let mut most_fitting = 0;
        let mut runtimes = RuntimeCache::default();
        for (c, cluster) in self.snap.pool.clusters.iter().enumerate() {
            if !cluster.ready {
                rejected.push((c, Rejected::NotReady));
                continue;
            }
            if cluster.cordoned {
                rejected.push((c, Rejected::Cordoned));
                continue;
            }
            if !job.cluster_kinds.is_empty() && !job.cluster_kinds.contains(&cluster.kind) {
                rejected.push((c, Rejected::KindNotAllowed));
                continue;
            }
            if !job.sites.is_empty() && !job.sites.contains(&cluster.site) {
                rejected.push((c, Rejected::SiteNotAllowed));
                continue;
            }
            if !cluster.admits(&job.tenant) {
                rejected.push((c, Rejected::TenantNotMapped));
                continue;
            }
            if !cluster.runs(job.workload_kind.as_deref()) {
                rejected.push((c, Rejected::KindNotRun));
                continue;
            }
            let mut best_fit = 0;
            let mut held = false;
            let mut any_group = false;
            let mut fitted = false;
            for g in 0..self.st.group_types[c].len() {
                let ok = match self.st.group_types[c][g] {
                    Some(t) => job.per_replica.accelerators > 0 && allowed[t as usize],
                    None => job.per_replica.accelerators == 0,
                };
                if !ok {
                    continue;
                }
                any_group = true;
                eligible.push((c, g));
                match self.fit_in_group(job, c, g, &mut runtimes) {
                    Ok(f) => {
                        fitted = true;
                        // Quota, per candidate accelerator type (flavoured quotas differ by type).
                        let verdict = self.quota_verdict(job, q, c, g, checked);
                        match checked[verdict].1 {
                            Ok(()) => found.push(f),
                            Err(_) => over_quota.push((c, Rejected::QuotaExceeded { verdict })),
                        }
                    }
                    Err(GroupMiss::Fits(n)) => {
                        best_fit = best_fit.max(n);
                        most_fitting = most_fitting.max(n);
                    }
                    Err(GroupMiss::Held) => held = true,
                }
            }
            if !any_group {
                rejected.push((c, Rejected::NoAllowedAccelerator));
            } else if !fitted {
                rejected.push((
                    c,
                    if held { Rejected::HeldForReservation } else { Rejected::InsufficientCapacity { fits: best_fit } },
                ));
            }
        }

        let within_quota: &[Found] = found;
        // A cluster is over quota only if none of its types is within it.
        over_quota.retain(|(c, _)| !within_quota.iter().any(|w: &Found| w.cluster == *c));
        over_quota.dedup_by_key(|(c, _)| *c);
        let quota_rejected = !over_quota.is_empty();
        rejected.append(over_quota);
        rejected.sort_by_key(|(c, _)| *c);
        let rejected = self.shared_rejections(rejected, job.workload_kind.as_deref(), checked);
        let eligible: &[(usize, usize)] = eligible;

        if !within_quota.is_empty() {
            if let Some(action) = self.try_wait_for_faster(job, q, within_quota, eligible, &mut runtimes) {
                return Decision {
                    job: job.id.clone(),
                    action,
                    explanation: Explanation { rejected, ..Explanation::default() },
                };
            }
            return self.admit(job, q, within_quota, rejected, &mut runtimes);
        }
        if eligible.is_empty() {
            return Decision {
                job: job.id.clone(),
                action: Action::Queued(QueuedReason::Unschedulable),
                explanation: Explanation { rejected, ..Explanation::default() },
            };
        }
        if quota_rejected {
            return Decision {
                job: job.id.clone(),
                action: Action::Queued(QueuedReason::QuotaExceeded),
                explanation: Explanation { rejected, ..Explanation::default() },
            };
        }
        // An elastic gang that does not fit whole starts smaller, down to its minimum
        // (the re-optimisation round grows it back when devices free up).
        // Only sizes that fit somewhere are tried (at most a few: a wide range costs no
        // more than a narrow one).
        if let Some(e) = job.elastic.filter(|e| e.min_replicas < job.replicas && most_fitting >= e.min_replicas) {
            let largest = most_fitting.min(job.replicas - 1);
            for size in (e.min_replicas.max(1)..=largest).rev().take(ELASTIC_SIZES_TRIED) {
                let mut smaller = job.clone();
                smaller.replicas = size;
                // The smaller gang's runtimes, not the whole one's.
                let mut smaller_runtimes = RuntimeCache::default();
                let found: Vec<Found> = eligible
                    .iter()
                    .filter_map(|&(c, g)| self.fit_in_group(&smaller, c, g, &mut smaller_runtimes).ok())
                    .filter(|f| {
                        let accelerator = self.accelerator_name(f.cluster, f.group);
                        self.st
                            .ledger
                            .check(q, &gang_usage(&smaller.per_replica, size, accelerator), accelerator)
                            .is_ok()
                    })
                    .collect();
                if !found.is_empty() {
                    return self.admit(&smaller, q, &found, rejected.clone(), &mut smaller_runtimes);
                }
            }
        }
        if can_preempt {
            if let Some(action) = self.try_preempt(job, q, eligible) {
                return Decision {
                    job: job.id.clone(),
                    action,
                    explanation: Explanation { rejected, ..Explanation::default() },
                };
            }
        }
        // Nothing fits now; if no eligible type is within quota either, quota is what the
        // job waits for (a reservation would not help it).
        // (Checked once per type: nothing was admitted since this job's verdicts.)
        let quota_allows = eligible.iter().any(|&(c, g)| {
            let verdict = self.quota_verdict(job, q, c, g, checked);
            checked[verdict].1.is_ok()
        });
        if !quota_allows {
            return Decision {
                job: job.id.clone(),
                action: Action::Queued(QueuedReason::QuotaExceeded),
                explanation: Explanation { rejected, ..Explanation::default() },
            };
        }
        if self.reservation.is_none() {
            let action = self.try_reserve(job, q, eligible);
            return Decision {
                job: job.id.clone(),
                action,
                explanation: Explanation { rejected, ..Explanation::default() },
            };
        }
        if !rejected.iter().any(|r| r.reason == RejectReason::HeldForReservation) {
            // Capacity only shrinks within a cycle: the same shape will not fit later either.
            let shape = shape();
            self.no_room.insert(shape, rejected.clone());
        }
        Decision {
            job: job.id.clone(),
            action: Action::Queued(QueuedReason::InsufficientCapacity),
            explanation: Explanation { rejected, ..Explanation::default() },
        }
    }

    /// The list of rejected clusters, as one the cycle already holds when an equal one was
    /// among the last few. Jobs of one shape in one queue are rejected alike; a list per job
    /// (a hundred clusters, each with its reason) was most of a large cycle's memory, and
    /// faulting that memory in was about a quarter of its time. `workload_kind` and
    /// `checked` are the job's, for the reasons that refer to them.
    fn shared_rejections(
        &mut self,
        rejected: &[(usize, Rejected)],
        workload_kind: Option<&str>,
        checked: &[QuotaVerdict],
    ) -> Arc<[Rejection]> {
        let names = &self.st.cluster_names;
        let same = |recent: &RecentRejections| {
            recent.made_from == rejected
                && recent
                    .made_from
                    .iter()
                    .zip(recent.list.iter())
                    .all(|((_, why), r)| why.same_payload(&r.reason, workload_kind, checked))
        };
        if let Some(recent) = self.recent_rejections.iter().find(|recent| same(recent)) {
            return recent.list.clone();
        }
        let list: Arc<[Rejection]> = rejected
            .iter()
            .map(|(c, why)| Rejection { cluster: names[*c].clone(), reason: why.reason(workload_kind, checked) })
            .collect();
        if self.recent_rejections.len() == RECENT_REJECTIONS {
            self.recent_rejections.remove(0);
        }
        self.recent_rejections.push(RecentRejections { made_from: rejected.to_vec(), list: list.clone() });
        list
    }

    /// Allowed accelerator types by interned id; worked out once per constraint in a cycle
    /// (jobs share a handful).
    fn allowed_types(&mut self, job: &Job) -> Arc<[bool]> {
        if let Some((_, allowed)) = self.allowed.iter().find(|(c, _)| *c == job.accelerator) {
            return allowed.clone();
        }
        let allowed: Arc<[bool]> = self.allowed_types_afresh(job).into();
        // Bounded: a cycle of many distinct constraints works the rest out per job.
        if self.allowed.len() < ALLOWED_KEPT {
            self.allowed.push((job.accelerator.clone(), allowed.clone()));
        }
        allowed
    }

    fn allowed_types_afresh(&self, job: &Job) -> Vec<bool> {
        let catalogue = &self.snap.pool.catalogue;
        let wanted: Vec<String> =
            job.accelerator.types.iter().map(|t| catalogue.canonical_name(t).unwrap_or_else(|| t.clone())).collect();
        self.st
            .type_names
            .iter()
            .map(|name| {
                let type_ok = wanted.is_empty() || wanted.iter().any(|w| w == name);
                let memory_ok = job
                    .accelerator
                    .min_memory_gib
                    .is_none_or(|min| catalogue.get(name).is_some_and(|s| s.memory_gib >= f64::from(min)));
                type_ok && memory_ok
            })
            .collect()
    }

    /// Where in `checked` queue `q`'s verdict is on whether it has quota for the gang on
    /// group `g` of cluster `c`; worked out once per accelerator type for a job.
    #[inline(always)]
    fn quota_verdict(&self, job: &Job, q: usize, c: usize, g: usize, checked: &mut Vec<QuotaVerdict>) -> usize {
        let type_id = self.st.group_types[c][g];
        match checked.iter().position(|(t, _)| *t == type_id) {
            Some(at) => at,
            None => {
                let accelerator = self.accelerator_name(c, g);
                let verdict =
                    self.st.ledger.check(q, &gang_usage(&job.per_replica, job.replicas, accelerator), accelerator);
                checked.push((type_id, verdict));
                checked.len() - 1
            }
        }
    }

    fn accelerator_name(&self, c: usize, g: usize) -> Option<&'a str> {
        self.group_names[c][g]
    }

    #[inline(always)]
    fn estimate(&self, job: &Job, c: usize, g: usize, nodes: u32, cache: &mut RuntimeCache) -> Estimate {
        let pool = self.snap.pool;
        let (runtime_s, source, power_w) = self.runtime(job, c, g, nodes, cache);
        self.scheduler.model.estimate_with_runtime(job, pool, &pool.clusters[c], power_w, runtime_s, source)
    }

    /// Runtime, its source and power of `job` on group `g` of cluster `c` over `nodes` nodes.
    #[inline(always)]
    fn runtime(&self, job: &Job, c: usize, g: usize, nodes: u32, cache: &mut RuntimeCache) -> RuntimeValue {
        let key = (self.st.group_types[c][g], nodes);
        if let Some(e) = cache.runtimes.iter().find(|e| e.0 == key) {
            return e.1;
        }
        let pool = self.snap.pool;
        let accelerator = self.accelerator_name(c, g);
        let (runtime_s, source) = self.scheduler.model.runtime_s(job, &pool.catalogue, accelerator, nodes);
        let value = (runtime_s, source, ThroughputModel::power_w(job, &pool.catalogue, accelerator));
        cache.runtimes.push((key, value));
        value
    }

    /// Looks for room for the whole gang in one type group of a cluster.
    #[inline(always)]
    fn fit_in_group(&self, job: &Job, c: usize, g: usize, cache: &mut RuntimeCache) -> Result<Found, GroupMiss> {
        let index = &self.st.indexes[c];
        let nodes = self.nodes_taken(job, c, g, cache).map_err(GroupMiss::Fits)?;
        let estimate = self.estimate(job, c, g, nodes, cache);
        let Some(reservation) = self.reservation.as_ref().filter(|r| r.cluster == c) else {
            return Ok(Found::new(c, g, nodes, false, &estimate));
        };
        let bound = job.max_runtime_s.map_or(estimate.transfer_s + estimate.runtime_s, |m| m as f64);
        if (self.snap.now as f64) + bound <= reservation.start_at as f64 {
            return Ok(Found::new(c, g, nodes, false, &estimate));
        }
        let mut slots = std::mem::take(&mut cache.slots);
        let limited = index.find_slots_into(g, &job.per_replica, job.replicas, Some(&reservation.spare), &mut slots);
        let nodes = slots.len() as u32;
        cache.slots = slots;
        limited.map_err(|_| GroupMiss::Held)?;
        let estimate = self.estimate(job, c, g, nodes, cache);
        Ok(Found::new(c, g, nodes, true, &estimate))
    }

    /// How many nodes the gang takes in group `g` of cluster `c` now, or the most replicas
    /// that fit there; from the fit cache when the cluster has not changed since.
    #[inline(always)]
    fn nodes_taken(&self, job: &Job, c: usize, g: usize, cache: &mut RuntimeCache) -> Result<u32, u32> {
        let shape = *cache.shape.get_or_insert_with(|| self.fits.borrow_mut().shape(&job.per_replica, job.replicas));
        if let Some(fit) = shape.and_then(|shape| self.fits.borrow().get(shape, c, g)) {
            return fit;
        }
        let mut slots = std::mem::take(&mut cache.slots);
        let fit = self.st.indexes[c]
            .find_slots_into(g, &job.per_replica, job.replicas, None, &mut slots)
            .map(|()| slots.len() as u32);
        cache.slots = slots;
        if let Some(shape) = shape {
            self.fits.borrow_mut().put(shape, c, g, fit);
        }
        fit
    }

    /// The winner's slots, found again the same way `fit_in_group` found them.
    fn slots_for(&self, job: &Job, f: &Found) -> Vec<NodeSlot> {
        let limit = if f.long { self.reservation.as_ref().map(|r| r.spare.as_slice()) } else { None };
        self.st.indexes[f.cluster].find_slots(f.group, &job.per_replica, job.replicas, limit).unwrap_or_default()
    }

    /// Admits `job` to the best of `found` (never empty); `cache` is `job`'s own (its
    /// entries are keyed by type and nodes, not by job).
    fn admit(
        &mut self,
        job: &Job,
        q: usize,
        found: &[Found],
        rejected: Arc<[Rejection]>,
        cache: &mut RuntimeCache,
    ) -> Decision {
        debug_assert!(!found.is_empty(), "admit needs a candidate");
        let pool = self.snap.pool;
        let scale = Scale::over(job.objective, found.iter().map(|f| &f.metrics));
        let mut order: Vec<usize> = Vec::new();
        let k = self.scheduler.config.explain_top_k.max(1).min(found.len());
        let by_place =
            |a: &usize, b: &usize| (found[*a].cluster, found[*a].group).cmp(&(found[*b].cluster, found[*b].group));
        match self.scheduler.config.placement {
            PlacementRule::Scored => {
                let mut totals = std::mem::take(&mut self.totals);
                totals.clear();
                totals.extend(found.iter().map(|f| scale.total(&f.metrics)));
                let cmp = |a: &usize, b: &usize| totals[*a].total_cmp(&totals[*b]).then(by_place(a, b));
                if k <= SMALL_TOP_K {
                    order = smallest_k(found.len(), k, cmp);
                } else {
                    order.extend(0..found.len());
                    if k < order.len() {
                        order.select_nth_unstable_by(k, cmp);
                    }
                    order[..k].sort_by(cmp);
                }
                self.totals = totals;
            }
            PlacementRule::FirstFit => {
                order.extend(0..found.len());
                order.sort_by(by_place);
            }
            PlacementRule::LeastLoaded => {
                let free_devices = |f: &Found| -> u64 {
                    let index = &self.st.indexes[f.cluster];
                    index
                        .free()
                        .iter()
                        .enumerate()
                        .filter(|(n, _)| index.group_of(*n as u32) == Some(f.group))
                        .map(|(_, cap)| {
                            if job.per_replica.accelerators > 0 {
                                u64::from(cap.accelerators)
                            } else {
                                cap.cpu_millis
                            }
                        })
                        .sum()
                };
                let free: Vec<u64> = found.iter().map(free_devices).collect();
                order.extend(0..found.len());
                order.sort_by(|a, b| free[*b].cmp(&free[*a]).then(by_place(a, b)));
            }
        }
        let candidates: Vec<Candidate> = order[..k]
            .iter()
            .map(|&i| {
                let f = &found[i];
                Candidate {
                    cluster: self.st.cluster_names[f.cluster].clone(),
                    accelerator: self.st.group_arcs[f.cluster][f.group].clone(),
                    estimate: self.estimate(job, f.cluster, f.group, f.nodes, cache),
                    score: scale.score(&f.metrics),
                }
            })
            .collect();
        // `found` is in cluster order: count the runs of one cluster.
        let feasible_clusters =
            found.iter().enumerate().filter(|(i, f)| *i == 0 || found[i - 1].cluster != f.cluster).count() as u32;
        let chosen = &found[order[0]];
        // The first candidate, whatever the placement rule.
        let estimate = candidates[0].estimate;
        let slots = self.slots_for(job, chosen);
        let accelerator = self.accelerator_name(chosen.cluster, chosen.group);
        self.st.indexes[chosen.cluster].apply(&slots, &job.per_replica, true);
        self.fits.get_mut().changed(chosen.cluster);
        self.st.ledger.admit(q, &gang_usage(&job.per_replica, job.replicas, accelerator), accelerator);
        // Estimates are bounded, but `now` comes from outside: never overflow.
        let end = self.snap.now.saturating_add((estimate.transfer_s + estimate.runtime_s).ceil() as u64);
        let id = self.st.tracked_id(&job.id);
        self.st.releases[chosen.cluster].push(Release {
            id,
            end,
            slots: slots.clone(),
            request: job.per_replica.clone(),
        });
        self.st.admitted(
            &job.id,
            &job.queue,
            AdmittedGang { cluster: chosen.cluster, accelerator, slots: &slots, per_replica: &job.per_replica, end },
        );
        if chosen.long {
            if let Some(r) = self.reservation.as_mut() {
                apply_to(&mut r.spare, &slots, &job.per_replica, true);
            }
        }
        let placement = Placement {
            cluster_index: chosen.cluster,
            cluster: pool.clusters[chosen.cluster].name.clone(),
            accelerator: accelerator.map(str::to_string),
            slots,
            estimate,
            backfilled: self.reservation.is_some(),
        };
        Decision {
            job: job.id.clone(),
            action: Action::Admit(placement),
            explanation: Explanation { candidates, feasible_clusters, rejected },
        }
    }

    fn nodes_of_group(&self, c: usize, g: usize) -> impl Iterator<Item = u32> + '_ {
        let index = &self.st.indexes[c];
        (0..index.free().len() as u32).filter(move |n| index.group_of(*n) == Some(g))
    }

    /// The earliest time (before `before`, when given) at which the gang fits in group `g`
    /// of cluster `c` as its running gangs end: (start, projected free capacity then, the
    /// gang's slots then).
    fn earliest_fit(
        &self,
        job: &Job,
        c: usize,
        g: usize,
        before: Option<u64>,
    ) -> Option<(u64, Vec<NodeCapacity>, Vec<NodeSlot>)> {
        if self.st.releases[c].is_empty() {
            return None;
        }
        let mut free = self.st.indexes[c].free().to_vec();
        let nodes: Vec<u32> = self.nodes_of_group(c, g).collect();
        let mut ends: Vec<&Release> = self.st.releases[c].iter().collect();
        ends.sort_by_key(|r| r.end);
        // Gangs ending at the same time free their capacity together, so the projection
        // does not depend on the order they were counted in.
        for same_end in ends.chunk_by(|a, b| a.end == b.end) {
            let end = same_end[0].end;
            if before.is_some_and(|b| end >= b) {
                return None;
            }
            for r in same_end {
                apply_to(&mut free, &r.slots, &r.request, false);
            }
            if let Some(slots) = find_slots_in(&free, nodes.iter().copied(), &job.per_replica, job.replicas) {
                return Some((end.max(self.snap.now), free, slots));
            }
        }
        None
    }

    /// EASY reservation for the first gang that cannot start: the earliest time its gang
    /// fits on an eligible cluster as running jobs end.
    fn try_reserve(&mut self, job: &Job, q: usize, eligible: &[(usize, usize)]) -> Action {
        let mut best: Option<Earliest> = None;
        for &(c, g) in eligible {
            let accelerator = self.accelerator_name(c, g);
            if self.st.ledger.check(q, &gang_usage(&job.per_replica, job.replicas, accelerator), accelerator).is_err() {
                continue;
            }
            if let Some((t, free, slots)) = self.earliest_fit(job, c, g, best.as_ref().map(|b| b.0)) {
                best = Some((t, c, g, free, slots));
            }
        }
        let Some((start_at, c, g, free, slots)) = best else {
            // Never fits on today's pool (counting foreign usage): not a capacity wait.
            return Action::Queued(QueuedReason::Unschedulable);
        };
        self.reserve(job, start_at, c, g, free, &slots)
    }

    fn reserve(
        &mut self,
        job: &Job,
        start_at: u64,
        c: usize,
        g: usize,
        mut free: Vec<NodeCapacity>,
        slots: &[NodeSlot],
    ) -> Action {
        apply_to(&mut free, slots, &job.per_replica, true);
        self.reservation = Some(Reservation { cluster: c, start_at, spare: free });
        Action::Reserve {
            cluster: self.snap.pool.clusters[c].name.clone(),
            accelerator: self.accelerator_name(c, g).map(str::to_string),
            start_at,
        }
    }

    /// Waiting-aware placement: a job that fits now only on slower accelerators may
    /// instead wait for a type at least [`CycleConfig::wait_speedup`] times faster that
    /// frees up soon, when the job's objective scores that wait-and-run better than
    /// starting now. The wait becomes the cycle's one reservation, so backfill keeps it;
    /// with a reservation already held, or with scored placement or backfill off, the job
    /// starts now.
    fn try_wait_for_faster(
        &mut self,
        job: &Job,
        q: usize,
        now_found: &[Found],
        eligible: &[(usize, usize)],
        cache: &mut RuntimeCache,
    ) -> Option<Action> {
        let config = &self.scheduler.config;
        if config.placement != PlacementRule::Scored
            || !config.backfill
            || self.reservation.is_some()
            || !(config.wait_speedup.is_finite() && config.wait_speedup > 1.0)
        {
            return None;
        }
        let speedup = config.wait_speedup;
        let fastest_now = now_found.iter().map(|f| f.runtime_s).fold(f64::INFINITY, f64::min);
        // Types much faster than the fastest start now (runtime estimated on one node).
        let mut seen: Vec<u16> = Vec::new();
        let mut faster: Vec<u16> = Vec::new();
        for &(c, g) in eligible {
            let Some(t) = self.st.group_types[c][g] else {
                continue;
            };
            if seen.contains(&t) {
                continue;
            }
            seen.push(t);
            if self.runtime(job, c, g, 1, cache).0 * speedup <= fastest_now {
                faster.push(t);
            }
        }
        if faster.is_empty() {
            return None;
        }
        // Groups of those types not usable now, within quota.
        // Both lists are in (cluster, group) order: walk them together.
        let mut later: Vec<(usize, usize)> = Vec::new();
        let mut k = 0;
        for &(c, g) in eligible {
            while k < now_found.len() && (now_found[k].cluster, now_found[k].group) < (c, g) {
                k += 1;
            }
            let usable_now = k < now_found.len() && (now_found[k].cluster, now_found[k].group) == (c, g);
            if usable_now || !self.st.group_types[c][g].is_some_and(|t| faster.contains(&t)) {
                continue;
            }
            let accelerator = self.accelerator_name(c, g);
            if self.st.ledger.check(q, &gang_usage(&job.per_replica, job.replicas, accelerator), accelerator).is_err() {
                continue;
            }
            later.push((c, g));
        }
        if later.is_empty() {
            return None;
        }
        let now = self.snap.now;
        let mut metrics: Vec<Metrics> = now_found.iter().map(|f| f.metrics).collect();
        let mut waits: Vec<Earliest> = Vec::new();
        for (c, g) in later {
            // Projections cost a pass over the cluster's running gangs: a few per cycle.
            if self.wait_checks >= MAX_WAIT_CHECKS {
                break;
            }
            self.wait_checks += 1;
            // Waiting only pays if the job can still end before it would end now.
            let horizon = now.saturating_add(fastest_now.ceil() as u64);
            let Some((t, free, slots)) = self.earliest_fit(job, c, g, Some(horizon)) else {
                continue;
            };
            let mut nodes: Vec<u32> = slots.iter().map(|s| s.node).collect();
            nodes.dedup();
            let estimate = self.estimate(job, c, g, nodes.len() as u32, cache);
            metrics.push(Metrics::of(&estimate, (t - now) as f64));
            waits.push((t, c, g, free, slots));
        }
        if waits.is_empty() {
            return None;
        }
        let scores = score_all(job.objective, &metrics);
        let best = (0..scores.len()).min_by(|a, b| scores[*a].total.total_cmp(&scores[*b].total).then(a.cmp(b)))?;
        if best < now_found.len() {
            return None;
        }
        let (t, c, g, free, slots) = waits.swap_remove(best - now_found.len());
        Some(self.reserve(job, t, c, g, free, &slots))
    }

    /// A priority as queue `q` allows it.
    fn effective_priority(&self, q: usize, priority: i32) -> i32 {
        self.st.ledger.queue(q).priority_range.effective(priority)
    }

    /// A running job's priority as its queue allows it (its raw one when its queue is
    /// gone: such a job is never a victim of another queue).
    fn running_priority(&self, r: &RunningJob) -> i32 {
        self.st.ledger.queue_index(&r.queue).map_or(r.priority, |q| self.effective_priority(q, r.priority))
    }

    fn may_preempt(&self, q: usize) -> bool {
        let p = self.st.ledger.queue(q).preemption;
        self.scheduler.config.preemption
            && self.preemption_attempts < self.scheduler.config.max_preemption_attempts
            && (p.within_queue != PreemptionScope::Never || p.reclaim_within_cohort != PreemptionScope::Never)
    }

    /// Finds the fewest, lowest-priority running jobs whose end lets the gang fit.
    ///
    /// Priorities are compared as each job's queue allows them. A job of another queue is
    /// a victim only as the queues' admins allow: the preempting queue's
    /// `reclaim_within_cohort`, both queues under one root of the cohort tree, and the
    /// victim's queue borrowing (using quota lent by others) while the preemptor stays
    /// within its own nominal.
    fn try_preempt(&mut self, job: &Job, q: usize, eligible: &[(usize, usize)]) -> Option<Action> {
        self.preemption_attempts += 1;
        let queue = self.st.ledger.queue(q).clone();
        let job_priority = self.effective_priority(q, job.priority);
        let victim_priority: Vec<i32> = self.snap.running.iter().map(|r| self.running_priority(r)).collect();
        let allows = |scope: PreemptionScope, victim_priority: i32| match scope {
            PreemptionScope::Never => false,
            PreemptionScope::LowerPriority => victim_priority < job_priority,
            PreemptionScope::Any => true,
        };
        let mut best: Option<(usize, i32, usize, Vec<usize>)> = None;
        for &(c, g) in eligible {
            let accelerator = self.accelerator_name(c, g);
            let usage = gang_usage(&job.per_replica, job.replicas, accelerator);
            let mut victims: Vec<usize> = (0..self.snap.running.len())
                .filter(|&i| !self.preempted[i] && self.snap.running[i].cluster == c)
                .filter(|&i| {
                    let r = &self.snap.running[i];
                    if r.queue == queue.name {
                        return allows(queue.preemption.within_queue, victim_priority[i]);
                    }
                    let Some(rq) = self.st.ledger.queue_index(&r.queue) else {
                        return false;
                    };
                    self.st.ledger.same_tree(q, rq)
                        && self.st.ledger.is_borrowing(rq)
                        && self.st.ledger.within_nominal(q, &usage, accelerator)
                        && allows(queue.preemption.reclaim_within_cohort, victim_priority[i])
                })
                .collect();
            // Lowest priority first; among equals, the one whose stop loses least: a
            // restartable job loses its restart cost, a rigid one its whole run so far.
            let now = self.snap.now;
            // A declared restart cost counts at most what the job has run: a large one
            // must not shield a job that just started.
            let lost = |r: &RunningJob| {
                let ran = now.saturating_sub(r.started_at);
                r.restart_cost_s.map_or(ran, |cost| cost.min(ran))
            };
            victims.sort_by(|a, b| {
                let (x, y) = (&self.snap.running[*a], &self.snap.running[*b]);
                victim_priority[*a]
                    .cmp(&victim_priority[*b])
                    .then(lost(x).cmp(&lost(y)))
                    .then(y.started_at.cmp(&x.started_at))
                    .then(x.id.cmp(&y.id))
            });
            let nodes: Vec<u32> = self.nodes_of_group(c, g).collect();
            let mut free = self.st.indexes[c].free().to_vec();
            let fits = |free: &[NodeCapacity]| {
                find_slots_in(free, nodes.iter().copied(), &job.per_replica, job.replicas).is_some()
            };
            let mut chosen = Vec::new();
            for &v in &victims {
                let r = &self.snap.running[v];
                apply_to(&mut free, &r.slots, &r.per_replica, false);
                chosen.push(v);
                if fits(&free) {
                    break;
                }
            }
            if chosen.is_empty() || !fits(&free) {
                continue;
            }
            // Drop victims that turn out not to be needed, latest added first.
            for k in (0..chosen.len()).rev() {
                let r = &self.snap.running[chosen[k]];
                apply_to(&mut free, &r.slots, &r.per_replica, true);
                if fits(&free) {
                    chosen.remove(k);
                } else {
                    apply_to(&mut free, &r.slots, &r.per_replica, false);
                }
            }
            // Quota after the victims of the same queue give theirs back.
            let mut ledger = self.st.ledger.clone();
            for &v in &chosen {
                let r = &self.snap.running[v];
                if let Some(rq) = ledger.queue_index(&r.queue) {
                    ledger.release(
                        rq,
                        &gang_usage(&r.per_replica, r.replicas(), r.accelerator.as_deref()),
                        r.accelerator.as_deref(),
                    );
                }
            }
            if ledger.check(q, &usage, accelerator).is_err() {
                continue;
            }
            let top = chosen.iter().map(|&v| victim_priority[v]).max().unwrap_or(i32::MIN);
            let better = best.as_ref().is_none_or(|b| (chosen.len(), top, c) < (b.0, b.1, b.2));
            if better {
                best = Some((chosen.len(), top, c, chosen));
            }
        }
        let (_, _, c, victims) = best?;
        for &v in &victims {
            self.preempted[v] = true;
        }
        Some(Action::Preempt {
            cluster: self.snap.pool.clusters[c].name.clone(),
            victims: victims.iter().map(|&v| self.snap.running[v].id.clone()).collect(),
        })
    }
}

#[derive(Debug)]
enum GroupMiss {
    /// At most this many replicas fit.
    Fits(u32),
    /// Fits now, but only by taking capacity reserved for the head job.
    Held,
}

#[derive(Debug)]
struct Ordered {
    key: HeapKey,
    entry: HeapEntry,
}

impl PartialEq for Ordered {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}
impl Eq for Ordered {}
impl PartialOrd for Ordered {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Ordered {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key.cmp(&other.key)
    }
}

fn queued(job: &Job, reason: QueuedReason) -> Decision {
    Decision { job: job.id.clone(), action: Action::Queued(reason), explanation: Explanation::default() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::{problem, ProblemSize};

    fn cycle(size: ProblemSize, seed: u64, scheduler: &Scheduler, cached: bool) -> CycleOutcome {
        let (pool, queues, jobs) = problem(size, seed);
        caches::NO_FIT_CACHE.with(|c| c.set(!cached));
        let out = scheduler.cycle(&Snapshot {
            now: 0,
            pool: &pool,
            queues: &queues,
            cohorts: &[],
            pending: &jobs,
            running: &[],
        });
        caches::NO_FIT_CACHE.with(|c| c.set(false));
        out
    }

    #[test]
    fn the_fit_cache_decides_as_fitting_every_job_afresh() {
        // Far more demand than capacity, so admissions fill clusters, a reservation is made
        // and later jobs backfill around it (the limited search the cache leaves alone).
        let sizes = [
            ProblemSize { clusters: 6, nodes: 60, pending_jobs: 600, queues: 5, cohorts: 2 },
            ProblemSize { clusters: 12, nodes: 240, pending_jobs: 1500, queues: 8, cohorts: 3 },
        ];
        let mut first_fit = Scheduler::default();
        first_fit.config.placement = PlacementRule::FirstFit;
        let mut no_backfill = Scheduler::default();
        no_backfill.config.backfill = false;
        for scheduler in [Scheduler::default(), first_fit, no_backfill] {
            for size in sizes {
                for seed in 0..6 {
                    let cached = cycle(size, seed, &scheduler, true);
                    let afresh = cycle(size, seed, &scheduler, false);
                    assert!(
                        cached.admissions().count() > 0 && cached.admissions().count() < size.pending_jobs as usize
                    );
                    assert_eq!(cached, afresh, "seed {seed}, {size:?}");
                }
            }
        }
    }
}

//! Queues, quotas with borrowing and lending inside cohorts, and fair share.
//!
//! The model follows Kueue's ClusterQueue/cohort semantics: each quota has a nominal
//! amount guaranteed to its queue; the part of it the queue lends (all of it unless a
//! lending limit says less) goes into the cohort's shared pool, from which any member may
//! borrow up to its borrowing limit. Resources a queue names no quota for are not limited.

use crate::job::ReplicaRequest;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

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
    /// The cohort's shared pool is exhausted, not the queue's own limit.
    pub cohort_exhausted: bool,
}

/// Quota usage of all queues during one cycle.
#[derive(Debug, Clone)]
pub struct QuotaLedger {
    queues: Vec<QueueUsage>,
    by_name: BTreeMap<String, usize>,
    /// Per cohort and quota key: (shared capacity, shared in use).
    cohort_pools: BTreeMap<(String, ResourceName, Option<String>), (u64, u64)>,
}

#[derive(Debug, Clone)]
struct QueueUsage {
    queue: Queue,
    used: Vec<u64>,
}

impl QuotaLedger {
    /// Builds the ledger from the queues and the usage of running jobs.
    pub fn new(queues: &[Queue]) -> Self {
        let mut ledger = QuotaLedger { queues: Vec::new(), by_name: BTreeMap::new(), cohort_pools: BTreeMap::new() };
        for q in queues {
            ledger.by_name.insert(q.name.clone(), ledger.queues.len());
            ledger.queues.push(QueueUsage { queue: q.clone(), used: vec![0; q.quotas.len()] });
            if let Some(cohort) = &q.cohort {
                for quota in &q.quotas {
                    let key = (cohort.clone(), quota.resource.clone(), quota.accelerator.clone());
                    ledger.cohort_pools.entry(key).or_default().0 += quota.lendable();
                }
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

    fn shared_part(quota: &Quota, used: u64) -> u64 {
        used.saturating_sub(quota.nominal - quota.lendable())
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
            let borrow = match &entry.queue.cohort {
                None => 0,
                Some(_) => quota.borrowing_limit.unwrap_or(u64::MAX / 4),
            };
            let limit = quota.nominal.saturating_add(borrow);
            let shortfall = |cohort_exhausted| QuotaShortfall {
                resource: quota.resource.clone(),
                accelerator: quota.accelerator.clone(),
                would_use,
                limit: limit.min(u64::MAX / 4),
                cohort_exhausted,
            };
            if would_use > limit {
                return Err(shortfall(false));
            }
            if let Some(cohort) = &entry.queue.cohort {
                let key = (cohort.clone(), quota.resource.clone(), quota.accelerator.clone());
                let (capacity, shared_used) = self.cohort_pools.get(&key).copied().unwrap_or_default();
                let extra = Self::shared_part(quota, would_use) - Self::shared_part(quota, entry.used[i]);
                if shared_used + extra > capacity {
                    return Err(shortfall(true));
                }
            }
        }
        Ok(())
    }

    /// Adds (or with `sign < 0` removes) usage to queue `q`.
    fn apply(&mut self, q: usize, usage: &[(ResourceName, u64)], accelerator: Option<&str>, add: bool) {
        let cohort = self.queues[q].queue.cohort.clone();
        for i in 0..self.queues[q].queue.quotas.len() {
            let quota = self.queues[q].queue.quotas[i].clone();
            let delta: u64 = usage.iter().filter(|(r, _)| quota.counts(r, accelerator)).map(|(_, v)| *v).sum();
            if delta == 0 {
                continue;
            }
            let before = self.queues[q].used[i];
            let after = if add { before + delta } else { before.saturating_sub(delta) };
            self.queues[q].used[i] = after;
            if let Some(cohort) = &cohort {
                let key = (cohort.clone(), quota.resource.clone(), quota.accelerator.clone());
                if let Some(pool) = self.cohort_pools.get_mut(&key) {
                    let (b, a) = (Self::shared_part(&quota, before), Self::shared_part(&quota, after));
                    pool.1 = (pool.1 + a).saturating_sub(b);
                }
            }
        }
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
        let mut l = QuotaLedger::new(&[queue("a", None, gpu_quota(8, Some(100), None))]);
        assert!(l.check(0, &gpus(8), Some("T4")).is_ok());
        l.admit(0, &gpus(8), Some("T4"));
        let err = l.check(0, &gpus(1), Some("T4")).unwrap_err();
        assert_eq!((err.would_use, err.limit, err.cohort_exhausted), (9, 8, false));
    }

    #[test]
    fn borrowing_within_cohort_respects_limits() {
        let mut l = QuotaLedger::new(&[
            queue("a", Some("c"), gpu_quota(8, Some(4), None)),
            queue("b", Some("c"), gpu_quota(8, None, Some(2))),
        ]);
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
        let l = QuotaLedger::new(&[q]);
        assert!(l.check(0, &gpus(64), Some("T4")).is_ok());
        assert!(l.check(0, &gpus(5), Some("H800")).is_err());
    }

    #[test]
    fn dominant_share_is_weighted() {
        let mut l = QuotaLedger::new(&[queue("a", None, gpu_quota(10, None, None))]);
        l.admit(0, &gpus(5), Some("T4"));
        assert!((l.dominant_share(0) - 0.5).abs() < 1e-12);
        let mut heavy = queue("b", None, gpu_quota(10, None, None));
        heavy.weight = 2.0;
        let mut l = QuotaLedger::new(&[heavy]);
        l.admit(0, &gpus(5), Some("T4"));
        assert!((l.dominant_share(0) - 0.25).abs() < 1e-12);
    }
}

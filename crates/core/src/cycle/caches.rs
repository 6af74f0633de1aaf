//! What one cycle keeps to decide its jobs with less work: where gang shapes fit, each
//! job's runtimes, the buffers a decision fills, and the pick of the best few candidates.
//! Only the cycle uses these; each is exact (the cycle decides as it would without it).

use super::Found;
use crate::explain::RejectReason;
use crate::job::ReplicaRequest;
use crate::pool::NodeSlot;
use crate::queue::QuotaShortfall;
use crate::throughput::EstimateSource;

#[cfg(test)]
thread_local! {
    /// Turns the fit cache off, to check it against fitting every job afresh.
    pub(super) static NO_FIT_CACHE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Up to this many best candidates are picked in one pass over them (see [`smallest_k`]).
pub(super) const SMALL_TOP_K: usize = 16;

/// The `k` smallest of `0..n` under the total order `cmp`, smallest first: one pass keeping
/// the best so far, cheaper than partitioning all of them when `k` is a handful (the
/// candidates an explanation shows).
pub(super) fn smallest_k(n: usize, k: usize, cmp: impl Fn(&usize, &usize) -> std::cmp::Ordering) -> Vec<usize> {
    let mut best: Vec<usize> = Vec::with_capacity(k + 1);
    for i in 0..n {
        if best.len() == k && best.last().is_some_and(|last| cmp(&i, last).is_ge()) {
            continue;
        }
        let at = best.partition_point(|b| cmp(b, &i).is_lt());
        best.insert(at, i);
        best.truncate(k);
    }
    best
}

/// Buffers one job's decision fills, kept across jobs: sized for every type group once
/// instead of allocated (and faulted in) for each of a large cycle's jobs.
#[derive(Debug, Default)]
pub(super) struct Scratch {
    pub(super) found: Vec<Found>,
    pub(super) rejected: Vec<(usize, RejectReason)>,
    pub(super) eligible: Vec<(usize, usize)>,
    /// Clusters where the gang fits but over the queue's quota.
    pub(super) over_quota: Vec<(usize, RejectReason)>,
    /// The queue's quota verdict per accelerator type checked for this job.
    pub(super) checked: Vec<(Option<u16>, Result<(), QuotaShortfall>)>,
}

/// What is computed once per job and reused across clusters: runtime, its source and
/// power per (accelerator type, nodes), a scratch buffer for node slots, and the job's
/// shape in the cycle's [`FitCache`].
#[derive(Debug, Default)]
pub(super) struct RuntimeCache {
    pub(super) runtimes: Vec<(RuntimeKey, RuntimeValue)>,
    pub(super) slots: Vec<NodeSlot>,
    /// `None` until looked up; then the shape's slot in the fit cache, if it has one.
    pub(super) shape: Option<Option<usize>>,
}

/// Where gangs of one shape fit, per (cluster, group), as found at the cluster's current
/// capacity: jobs of the same shape (most jobs share a few) reuse the answer until an
/// admission changes that cluster. Exact, not a heuristic: an index changes only through
/// [`FitCache::changed`]'s callers, and a cluster's answer is dropped with its version.
#[derive(Debug)]
pub(super) struct FitCache {
    /// Bumped whenever the cycle changes a cluster's index.
    versions: Vec<u32>,
    /// Group count per cluster, to size the tables.
    groups: Vec<usize>,
    shapes: Vec<CachedShape>,
}

#[derive(Debug)]
struct CachedShape {
    request: ReplicaRequest,
    replicas: u32,
    /// Per cluster, per group: what was found there.
    fits: Vec<Vec<Option<CachedFit>>>,
}

/// (the cluster's version then, nodes the gang takes or the most replicas that fit)
type CachedFit = (u32, Result<u32, u32>);

impl FitCache {
    /// Shapes kept at most; beyond that, jobs are fitted without the cache.
    const SHAPES: usize = 64;

    pub(super) fn new(groups: Vec<usize>) -> Self {
        FitCache { versions: vec![0; groups.len()], groups, shapes: Vec::new() }
    }

    /// The cache slot of a shape, made on first use.
    pub(super) fn shape(&mut self, request: &ReplicaRequest, replicas: u32) -> Option<usize> {
        #[cfg(test)]
        if NO_FIT_CACHE.with(std::cell::Cell::get) {
            return None;
        }
        if let Some(i) = self.shapes.iter().position(|s| s.replicas == replicas && s.request == *request) {
            return Some(i);
        }
        if self.shapes.len() >= Self::SHAPES {
            return None;
        }
        let fits = self.groups.iter().map(|&n| vec![None; n]).collect();
        self.shapes.push(CachedShape { request: request.clone(), replicas, fits });
        Some(self.shapes.len() - 1)
    }

    pub(super) fn get(&self, shape: usize, c: usize, g: usize) -> Option<Result<u32, u32>> {
        match self.shapes[shape].fits[c][g] {
            Some((version, fit)) if version == self.versions[c] => Some(fit),
            _ => None,
        }
    }

    pub(super) fn put(&mut self, shape: usize, c: usize, g: usize, fit: Result<u32, u32>) {
        self.shapes[shape].fits[c][g] = Some((self.versions[c], fit));
    }

    /// Cluster `c`'s index changed: what was found there is stale.
    pub(super) fn changed(&mut self, c: usize) {
        self.versions[c] = self.versions[c].wrapping_add(1);
    }
}

/// (interned accelerator type, nodes)
type RuntimeKey = (Option<u16>, u32);
/// (runtime in seconds, its source, power in watts)
pub(super) type RuntimeValue = (f64, EstimateSource, f64);

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn smallest_k_is_the_head_of_the_sorted_order(
            values in proptest::collection::vec(0u8..6, 0..40),
            k in 0usize..20,
        ) {
            // Ties (many, from few values) broken by index: a total order, as in `admit`.
            let cmp = |a: &usize, b: &usize| values[*a].cmp(&values[*b]).then(a.cmp(b));
            let mut sorted: Vec<usize> = (0..values.len()).collect();
            sorted.sort_by(cmp);
            sorted.truncate(k);
            proptest::prop_assert_eq!(smallest_k(values.len(), k, cmp), sorted);
        }
    }
}

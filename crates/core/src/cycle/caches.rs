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
    pub(super) rejected: Vec<(usize, Rejected)>,
    pub(super) eligible: Vec<(usize, usize)>,
    /// Clusters where the gang fits but over the queue's quota.
    pub(super) over_quota: Vec<(usize, Rejected)>,
    /// The queue's quota verdict per accelerator type checked for this job.
    pub(super) checked: Vec<QuotaVerdict>,
}

/// (interned accelerator type, the queue's quota verdict for the gang on it)
pub(super) type QuotaVerdict = (Option<u16>, Result<(), QuotaShortfall>);

/// Why a cluster was rejected, as a decision records it for each cluster: plain data, so
/// pushing, sorting and comparing a hundred of them per job costs little (the full
/// [`RejectReason`] is three times larger, and was copied for every cluster). The
/// reasons with a payload point at it: the job's workload kind, or a verdict in
/// [`Scratch::checked`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Rejected {
    NotReady,
    Cordoned,
    KindNotAllowed,
    SiteNotAllowed,
    TenantNotMapped,
    /// The job's workload kind is not run there.
    KindNotRun,
    NoAllowedAccelerator,
    InsufficientCapacity {
        fits: u32,
    },
    HeldForReservation,
    /// Over quota: the shortfall is that of `Scratch::checked[verdict]`.
    QuotaExceeded {
        verdict: usize,
    },
}

impl Rejected {
    /// The full reason, for `workload_kind` (the job's) and `checked` (its verdicts).
    pub(super) fn reason(self, workload_kind: Option<&str>, checked: &[QuotaVerdict]) -> RejectReason {
        match self {
            Rejected::NotReady => RejectReason::NotReady,
            Rejected::Cordoned => RejectReason::Cordoned,
            Rejected::KindNotAllowed => RejectReason::KindNotAllowed,
            Rejected::SiteNotAllowed => RejectReason::SiteNotAllowed,
            Rejected::TenantNotMapped => RejectReason::TenantNotMapped,
            Rejected::KindNotRun => RejectReason::KindNotRun { kind: workload_kind.unwrap_or_default().to_string() },
            Rejected::NoAllowedAccelerator => RejectReason::NoAllowedAccelerator,
            Rejected::InsufficientCapacity { fits } => RejectReason::InsufficientCapacity { fits },
            Rejected::HeldForReservation => RejectReason::HeldForReservation,
            Rejected::QuotaExceeded { verdict } => match &checked[verdict].1 {
                Err(shortfall) => RejectReason::QuotaExceeded { shortfall: shortfall.clone() },
                // Never recorded for a verdict within quota (only its `Err` arm pushes one);
                // were it, the reason would say capacity rather than stop the cycle.
                Ok(()) => RejectReason::InsufficientCapacity { fits: 0 },
            },
        }
    }

    /// Whether `reason`, made by [`Self::reason`] from an equal `Rejected` for another job,
    /// is what this job's would be: the reasons with a payload compare it.
    pub(super) fn same_payload(
        self,
        reason: &RejectReason,
        workload_kind: Option<&str>,
        checked: &[QuotaVerdict],
    ) -> bool {
        match (self, reason) {
            (Rejected::KindNotRun, RejectReason::KindNotRun { kind }) => *kind == workload_kind.unwrap_or_default(),
            (Rejected::QuotaExceeded { verdict }, RejectReason::QuotaExceeded { shortfall }) => {
                checked[verdict].1.as_ref().err() == Some(shortfall)
            }
            (Rejected::KindNotRun | Rejected::QuotaExceeded { .. }, _) => false,
            // All there is to these is in the `Rejected` itself.
            _ => true,
        }
    }
}

/// A list of rejected clusters a cycle made, with the `Rejected`s it was made from: the
/// next job's list is compared as plain data first.
#[derive(Debug)]
pub(super) struct RecentRejections {
    pub(super) made_from: Vec<(usize, Rejected)>,
    pub(super) list: std::sync::Arc<[crate::explain::Rejection]>,
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
    /// Where each cluster's groups start in a shape's table (one flat table per shape:
    /// looked up for every group of every job, one load instead of two).
    first_group: Vec<usize>,
    /// Groups in all.
    groups: usize,
    shapes: Vec<CachedShape>,
}

#[derive(Debug)]
struct CachedShape {
    request: ReplicaRequest,
    replicas: u32,
    /// Per group of the pool (see `first_group`): what was found there.
    fits: Vec<Option<CachedFit>>,
}

/// (the cluster's version then, nodes the gang takes or the most replicas that fit)
type CachedFit = (u32, Result<u32, u32>);

impl FitCache {
    /// Shapes kept at most; beyond that, jobs are fitted without the cache.
    const SHAPES: usize = 64;

    /// A cache for clusters with these numbers of groups.
    pub(super) fn new(groups: &[usize]) -> Self {
        let first_group: Vec<usize> =
            groups.iter().scan(0, |next, &n| Some(std::mem::replace(next, *next + n))).collect();
        FitCache { versions: vec![0; groups.len()], first_group, groups: groups.iter().sum(), shapes: Vec::new() }
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
        self.shapes.push(CachedShape { request: request.clone(), replicas, fits: vec![None; self.groups] });
        Some(self.shapes.len() - 1)
    }

    pub(super) fn get(&self, shape: usize, c: usize, g: usize) -> Option<Result<u32, u32>> {
        match self.shapes[shape].fits[self.first_group[c] + g] {
            Some((version, fit)) if version == self.versions[c] => Some(fit),
            _ => None,
        }
    }

    pub(super) fn put(&mut self, shape: usize, c: usize, g: usize, fit: Result<u32, u32>) {
        self.shapes[shape].fits[self.first_group[c] + g] = Some((self.versions[c], fit));
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

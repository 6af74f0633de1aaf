//! Decisions of a scheduling cycle and their explanations.

use crate::pool::NodeSlot;
use crate::queue::QuotaShortfall;
use crate::score::ScoreBreakdown;
use crate::throughput::Estimate;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Why a cluster was not a candidate for a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "reason")]
pub enum RejectReason {
    NotReady,
    Cordoned,
    KindNotAllowed,
    SiteNotAllowed,
    /// The member runs only mapped tenants' jobs and has no mapping for the job's.
    TenantNotMapped,
    /// The job runs as another kind of object (a JobSet, TrainJob or PyTorchJob) that the
    /// member does not run.
    KindNotRun {
        kind: String,
    },
    /// None of the cluster's accelerator types is allowed (type list or memory minimum).
    NoAllowedAccelerator,
    /// The gang does not fit now: at most `fits` of the replicas would.
    InsufficientCapacity {
        fits: u32,
    },
    /// Fits, but the capacity is held for the reserved head job beyond its start.
    HeldForReservation,
    /// Fits, but the queue's quota would be exceeded.
    QuotaExceeded {
        shortfall: QuotaShortfall,
    },
}

impl std::fmt::Display for RejectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RejectReason::NotReady => f.write_str("member not ready"),
            RejectReason::Cordoned => f.write_str("member cordoned"),
            RejectReason::KindNotAllowed => f.write_str("cluster kind not allowed by the job"),
            RejectReason::SiteNotAllowed => f.write_str("site not allowed by the job"),
            RejectReason::TenantNotMapped => f.write_str("the member has no user mapped for the job's namespace"),
            RejectReason::KindNotRun { kind } => {
                write!(f, "the member does not run {kind}s (Slurm members run only TrainingJobs)")
            }
            RejectReason::NoAllowedAccelerator => f.write_str("no allowed accelerator type"),
            RejectReason::InsufficientCapacity { fits } => {
                write!(f, "only {fits} replicas fit now")
            }
            RejectReason::HeldForReservation => f.write_str("capacity held for a reserved job"),
            RejectReason::QuotaExceeded { shortfall } => {
                write!(f, "quota: would use {} of {} {:?}", shortfall.would_use, shortfall.limit, shortfall.resource)?;
                match (&shortfall.cohort, shortfall.cohort_exhausted) {
                    (Some(cohort), _) => write!(f, " (cohort {cohort} has nothing left to lend)"),
                    (None, true) => f.write_str(" (cohort has nothing left to lend)"),
                    (None, false) => Ok(()),
                }
            }
        }
    }
}

/// A cluster that was not a candidate, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rejection {
    pub cluster: Arc<str>,
    #[serde(flatten)]
    pub reason: RejectReason,
}

/// A scored candidate placement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Candidate {
    pub cluster: Arc<str>,
    pub accelerator: Option<Arc<str>>,
    pub estimate: Estimate,
    pub score: ScoreBreakdown,
}

/// Why a decision was taken: the best candidates with their scores, and every other
/// cluster's reason. Shared between jobs of the same shape that failed alike.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Explanation {
    /// Best first, at most the configured number.
    pub candidates: Vec<Candidate>,
    /// How many clusters could take the job in all.
    pub feasible_clusters: u32,
    pub rejected: Arc<[Rejection]>,
}

/// A placement of a whole gang.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Placement {
    /// Index of the cluster in the pool.
    pub cluster_index: usize,
    pub cluster: String,
    pub accelerator: Option<String>,
    pub slots: Vec<NodeSlot>,
    pub estimate: Estimate,
    /// Admitted behind a reservation because it does not delay it.
    pub backfilled: bool,
}

/// Why a job stays queued.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "reason")]
pub enum QueuedReason {
    /// The job names a queue that does not exist.
    UnknownQueue { queue: String },
    /// The job is invalid.
    Invalid { message: String },
    /// No cluster has room now (see the explanation); another job holds the reservation.
    InsufficientCapacity,
    /// Fits somewhere, but not within its queue's quota.
    QuotaExceeded,
    /// No cluster could ever run it as asked (too big or no allowed type anywhere).
    Unschedulable,
    /// Its queue is StrictFIFO and a job ahead of it is blocked.
    BlockedByQueueHead { head: String },
    /// Waiting for preempted jobs to end.
    WaitingForPreemption,
    /// Its queue's (or an enclosing cohort's) budget for the period is spent.
    BudgetExhausted { detail: String },
}

impl std::fmt::Display for QueuedReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QueuedReason::UnknownQueue { queue } => write!(f, "queue {queue:?} does not exist"),
            QueuedReason::Invalid { message } => write!(f, "invalid: {message}"),
            QueuedReason::InsufficientCapacity => f.write_str("waiting for capacity"),
            QueuedReason::QuotaExceeded => f.write_str("waiting for quota"),
            QueuedReason::Unschedulable => f.write_str("no member cluster can ever run this job as specified"),
            QueuedReason::BlockedByQueueHead { head } => {
                write!(f, "StrictFIFO queue blocked behind {head}")
            }
            QueuedReason::WaitingForPreemption => f.write_str("waiting for preempted jobs to end"),
            QueuedReason::BudgetExhausted { detail } => write!(f, "budget exhausted: {detail}"),
        }
    }
}

/// What the cycle decided for one job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "action")]
pub enum Action {
    /// Run it now, here.
    Admit(Placement),
    /// The first blocked gang: capacity is reserved for it from `start_at` on `cluster`.
    Reserve { cluster: String, accelerator: Option<String>, start_at: u64 },
    /// Preempt `victims` on `cluster` to make room; the job is admitted once they end.
    Preempt { cluster: String, victims: Vec<String> },
    /// Stay queued.
    Queued(QueuedReason),
}

/// One decision with its explanation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    pub job: String,
    pub action: Action,
    pub explanation: Explanation,
}

/// A pending job's place in its queue after the cycle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueuePosition {
    pub queue: String,
    /// 1 is next.
    pub position: u32,
}

/// Everything one cycle decided.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CycleOutcome {
    /// One decision per pending job, in the order the cycle considered them.
    pub decisions: Vec<Decision>,
    /// Positions of jobs still pending, by job id.
    pub positions: BTreeMap<String, QueuePosition>,
}

impl CycleOutcome {
    /// The admissions of the cycle.
    pub fn admissions(&self) -> impl Iterator<Item = (&str, &Placement)> {
        self.decisions.iter().filter_map(|d| match &d.action {
            Action::Admit(p) => Some((d.job.as_str(), p)),
            _ => None,
        })
    }
}

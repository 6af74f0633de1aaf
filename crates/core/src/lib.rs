//! The scheduling core of computenet.
//!
//! Everything here is pure and deterministic: no IO, no clocks, no threads. The service
//! (`computenet serve`) and the simulator (`computenet simulate`) both build a
//! [`Snapshot`] of the pool, the queues and the jobs, and call [`Scheduler::cycle`]; the
//! decisions it returns are then carried out by whoever called it.
//!
//! Map of the crate:
//! - [`quantity`]: Kubernetes-style quantities ("500m", "64Gi").
//! - [`accelerator`]: accelerator types and the built-in catalogue of vendor figures.
//! - [`resources`]: value types shared by jobs and the pool (replica request, node slot,
//!   cluster kind).
//! - [`pool`]: member clusters, nodes and their capacity; allocating and releasing.
//! - [`job`]: training jobs (gangs), their constraints, work estimate and objective.
//! - [`queue`]: queues, quotas with borrowing and lending, cohorts, fair share.
//! - [`throughput`] and [`profiles`]: how fast a job runs where, and the parsers for
//!   measured throughput profiles; [`learn`]: rates learned from running jobs.
//! - [`index`]: per-cluster node indexes used for gang feasibility.
//! - [`score`]: turning estimates into a score by the job's objective.
//! - [`adapt`]: the re-optimisation round that moves and resizes running restartable jobs.
//! - [`usage`]: what attempts used (device-seconds, energy, cost, carbon, useful work),
//!   decayed past usage for fair share, budget periods.
//! - [`cycle`]: the scheduling cycle itself, from scratch or incremental (`standing`: what a
//!   cycle starts from, kept between cycles); [`explain`]: its decisions and explanations.
#![forbid(unsafe_code)]

pub mod accelerator;
pub mod adapt;
pub mod cycle;
pub mod error;
pub mod explain;
pub mod index;
pub mod job;
pub mod learn;
pub mod pool;
pub mod profiles;
pub mod quantity;
pub mod queue;
pub mod resources;
pub mod score;
mod standing;
pub mod synth;
pub mod throughput;
pub mod usage;

pub use accelerator::{AcceleratorSpec, Catalogue};
pub use adapt::{AdaptConfig, Adaptable, Adjustment, AdjustmentKind};
pub use cycle::{CycleConfig, IncrementalScheduler, Scheduler, Snapshot};
pub use error::{Error, Result};
pub use explain::{Action, CycleOutcome, Decision, Explanation, QueuedReason, RejectReason};
pub use job::{AcceleratorConstraint, ElasticRange, Job, Objective, ReplicaRequest, Restart, RunningJob, Work};
pub use pool::{Cluster, ClusterEfficiency, ClusterKind, Node, NodeCapacity, Pool};
pub use queue::{Cohort, PreemptionPolicy, Queue, QueueingStrategy, Quota, ResourceName};
pub use throughput::{Estimate, ThroughputModel};

//! The computenet service (`computenet serve`).
//!
//! - [`hub`]: caches of the hub's TrainingJobs, ComputeQueues, MemberClusters and Namespaces.
//! - [`member`]: connections to members (Kubernetes: caches of Nodes, Pods and Jobs; Slurm:
//!   a poller over slurmrestd) behind one type.
//! - [`snapshot`]: turns the caches into the core's [`computenet_core::Snapshot`] input.
//! - [`dispatch`]: the Indexed Job and headless Service a job becomes on a Kubernetes member.
//! - [`batch`]: the batch job a job becomes on a Slurm member.
//! - [`status`]: what is written back (server-side apply, one field manager).
//! - [`events`]: Events, recorded in the background, off the loop's path.
//! - [`controller`]: the loop: snapshot, cycle, decisions, mirror.
//! - [`work`]: the API calls that carry out decisions, per job, in the background.
//! - [`lease`]: leader election with a coordination.k8s.io Lease.
//! - [`observe`]: the pool as the dashboard and the metrics show it (pure).
//! - [`metrics`]: the Prometheus metrics served at `/metrics`.
//! - [`web`]: the HTTP server: metrics, probes, the JSON API and the dashboard.
#![forbid(unsafe_code)]

pub mod batch;
pub mod controller;
pub mod dispatch;
pub mod error;
pub mod events;
pub mod hub;
pub mod lease;
pub mod member;
pub mod metrics;
pub mod observe;
pub mod snapshot;
pub mod status;
pub mod web;
pub mod work;

pub use controller::{run, ServeConfig};
pub use error::{Error, Result};

/// Labels and annotations computenet puts on what it creates.
pub mod labels {
    /// On every object computenet creates on a member.
    pub const MANAGED: &str = "computenet.io/managed";
    /// The TrainingJob's UID.
    pub const JOB_UID: &str = "computenet.io/job-uid";
    /// The TrainingJob's namespace and name.
    pub const JOB_NAMESPACE: &str = "computenet.io/job-namespace";
    pub const JOB_NAME: &str = "computenet.io/job-name";
    /// The finalizer that lets computenet clean up remote objects.
    pub const FINALIZER: &str = "computenet.io/cleanup";
    /// Node label carrying the accelerator type.
    pub const GPU_PRODUCT: &str = "nvidia.com/gpu.product";
    /// Extended resource of accelerators.
    pub const GPU_RESOURCE: &str = "nvidia.com/gpu";
}

//! The computenet service (`computenet serve`).
//!
//! - [`hub`]: caches of the hub's TrainingJobs, ComputeQueues, MemberClusters and Namespaces.
//! - [`snapshot`]: turns the caches into the core's [`computenet_core::Snapshot`] input.
//! - [`status`]: what is written back (server-side apply, one field manager).
//! - [`events`]: Events, recorded in the background, off the loop's path.
//! - [`controller`]: the loop: snapshot, cycle, decisions, mirror.
//! - [`work`]: the API calls that carry out decisions, per job, in the background.
//! - [`lease`]: leader election with a coordination.k8s.io Lease.
//! - [`observe`]: the pool as the dashboard and the metrics show it (pure).
//! - [`metrics`]: the Prometheus metrics served at `/metrics`.
//! - [`web`]: the HTTP server: metrics, probes, the JSON API and the dashboard.
#![forbid(unsafe_code)]

pub mod controller;
pub mod error;
pub mod events;
pub mod hub;
pub mod lease;
pub mod metrics;
pub mod observe;
pub mod snapshot;
pub mod status;
pub mod web;
pub mod work;

pub use controller::{run, ServeConfig};
pub use error::{Error, Result};

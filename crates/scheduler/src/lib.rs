//! The computenet service (`computenet serve`), split by who owns which state (see
//! docs/design.md):
//!
//! - [`run`]: the leader lease, the hub's caches and the select loop, one pass a turn.
//! - [`service`]: one pass, its numbered steps over the pieces below.
//! - [`hub`]: caches of the hub's TrainingJobs, ComputeQueues, MemberClusters, Namespaces.
//! - [`overlay`]: the jobs as this process knows them (cache + own writes + work in flight).
//! - [`connections`]: member connections (in the background) and efficiency readers.
//! - [`snapshot`]: the core's input from the hub and the members (pure).
//! - [`schedule`]: the scheduling pass: cycle, then admissions, preemptions, positions.
//! - [`admission`]: the webhook that holds queued job objects suspended when created.
//!   [`webhook_cert`]: its certificate, made by the service when none is mounted.
//! - [`sources`]: JobSets, TrainJobs and PyTorchJobs queued by label, and their TrainingJobs.
//! - [`jobs`]: the per-job reconciler: cleanup, suspension, dispatch with backoff, mirror,
//!   member loss, orphans.
//! - [`transitions`]: a job's status transitions (pure).
//! - [`seal`]: the service's seal on its admissions, and its key.
//! - [`backoff`]: per-job exponential backoff (pure).
//! - [`reporters`]: member and queue status, the observation for metrics and dashboard.
//! - [`work`]: background API work, at most one piece per job; [`status`]: the writes.
//! - [`events`]: Events, recorded in the background.
//! - [`profiles`]: throughput profiles from files and a ConfigMap; [`progress`]: running
//!   jobs' progress from Prometheus, and the throughput learned from it.
//! - [`metering`]: ended attempts recorded once in the usage store (`ComputeUsage`); past
//!   shares and budgets for the cycle; the usage counters.
//! - [`lease`]: leader election with a coordination.k8s.io Lease.
//! - [`observe`], [`metrics`], [`web`]: what `/metrics`, `/api/pool` and the dashboard show;
//!   [`webauth`]: who may read `/api/pool` (TokenReview and SubjectAccessReview).
#![forbid(unsafe_code)]

pub mod admission;
pub mod backoff;
pub mod connections;
pub mod error;
pub mod events;
pub mod hub;
pub mod jobs;
pub mod lease;
pub mod looks;
pub mod metering;
pub mod metrics;
pub mod observe;
pub mod overlay;
pub mod profiles;
pub mod progress;
pub mod reporters;
pub mod run;
pub mod schedule;
pub mod seal;
pub mod service;
pub mod snapshot;
pub mod sources;
pub mod status;
pub mod transitions;
pub mod web;
pub mod webauth;
pub mod webhook_cert;
pub mod work;

pub use error::{Error, Result};
pub use run::{run, ServeConfig};

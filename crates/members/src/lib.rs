//! Member-cluster backends that are not Kubernetes.
//!
//! - [`slurm`]: supercomputing members reached through slurmrestd: capacity from nodes,
//!   batch jobs for admitted TrainingJobs, their state mirrored back, cancellation.
//! - [`prometheus`]: measured efficiency (accelerator power, utilisation, facility PUE)
//!   read from a member's Prometheus with PromQL.
//!
//! The pure parts (parsing `gres` strings, node states, job states, building the batch
//! script) live in [`slurm::convert`] and are unit-tested without a server; the client
//! and the background poller are thin wrappers over reqwest.
#![forbid(unsafe_code)]

pub mod error;
pub mod health;
pub mod prometheus;
pub mod slurm;

pub use error::{Error, Result};
pub use health::Health;

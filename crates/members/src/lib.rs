//! Member-cluster backends, behind one [`Member`] type.
//!
//! - [`member`]: a connected member of either kind: connecting (credentials from the hub's
//!   Secrets), readiness, a TrainingJob's state there, dispatch, cancel, nodes.
//! - [`kubernetes`]: general-purpose and AI members: Indexed Jobs and headless Services,
//!   caches of Nodes, Pods and Jobs kept current by watches.
//! - [`slurm`]: supercomputing members reached through slurmrestd: capacity from nodes,
//!   batch jobs for admitted TrainingJobs, their state mirrored back, cancellation.
//! - [`prometheus`]: measured efficiency (accelerator power, utilisation, facility PUE)
//!   read from a member's Prometheus with PromQL.
//! - [`credentials`]: which Secrets are read, where credentials may go, which kubeconfigs
//!   are used, and messages about Secrets that never carry their text.
//! - [`labels`]: the labels and names computenet puts on what it creates.
//! - [`attempt`]: what one attempt of a job runs as (size, number, environment, grace
//!   period); a new attempt starts only once what earlier ones left is stopped
//!   ([`Member::leftover`], [`Member::stop_earlier`]).
//!
//! The pure parts (the Job and Service a TrainingJob becomes, parsing `gres` strings, node
//! states, job states, building the batch script) are unit-tested without a server; the
//! clients, watches and pollers are thin wrappers over kube and reqwest.
#![forbid(unsafe_code)]

pub mod attempt;
pub mod body;
pub mod credentials;
pub mod error;
pub mod health;
pub mod kubernetes;
pub mod labels;
pub mod member;
pub mod prometheus;
pub mod slurm;

pub use error::{Error, Result};
pub use health::Health;
pub use member::{Leftover, Member, MemberNodes, Members, RemoteJob, RemoteStatus};

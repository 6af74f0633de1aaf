//! General-purpose and AI members: Kubernetes clusters.
//!
//! - [`job`]: what a TrainingJob becomes there (an Indexed Job, a headless Service for a
//!   gang), created and deleted idempotently.
//! - [`copies`]: a JobSet, TrainJob or PyTorchJob queued in the hub, copied there as it is.
//! - [`member`]: a connected member: caches of its Nodes, Pods and computenet's Jobs, kept
//!   current by watches, and a probe of its apiserver.
//! - [`nodes`]: its Nodes and Pods as the core's nodes.
//! - [`touched`]: which jobs the watches saw change since the last pass.
//! - [`watched`]: a member's Jobs and Pods as the watches decode them (the fields read).
//! - [`watch`]: a watch into a typed cache that leaves out (and records) objects it
//!   cannot decode, shared with the hub's caches.

pub mod copies;
pub mod job;
pub mod member;
pub mod nodes;
pub mod touched;
pub mod watch;
pub mod watched;

pub use member::KubernetesMember;
pub use touched::{Touched, Touches};
pub use watch::{cache, cache_dynamic, cache_reporting, cache_while, Touching, Undecodable, Undecodables};

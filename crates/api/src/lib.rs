//! The computenet API: group `computenet.io`, version `v1alpha1`.
//!
//! - [`TrainingJob`] (namespaced, `tj`): a gang of replicas to train, submitted to a queue.
//! - [`MemberCluster`] (cluster-scoped, `mcl`): a member of the pool and how to reach it.
//! - [`ComputeQueue`] (cluster-scoped, `cnq`): quotas, cohort, fair-share weight, budget and policies.
//! - [`ComputeCohort`] (cluster-scoped, `cnc`): a level of the cohort tree: parent, own quotas, budget.
//! - [`ComputeUsage`] (cluster-scoped, `cnu`): what one queue's attempts used on one day.
//!
//! The CRD YAML under `deploy/crds/` is generated from these types by `computenet crdgen`
//! and never edited by hand. [`convert`] turns the resources into the core's types;
//! [`view`] reads a whole hub (jobs, queues, members) as the core and every display see
//! it; [`conditions`] names every condition type, reason and Event reason computenet writes;
//! [`kinds`] reads the other job kinds computenet queues (JobSet, TrainJob, PyTorchJob).
#![forbid(unsafe_code)]

pub mod cohort;
pub mod compute_queue;
pub mod conditions;
pub mod convert;
pub mod crdgen;
pub mod error;
pub mod kinds;
pub mod member_cluster;
pub mod profiles;
pub mod quantity;
pub mod training_job;
pub mod usage;
pub mod view;

pub use cohort::{ComputeCohort, ComputeCohortSpec, ComputeCohortStatus};
pub use compute_queue::{ComputeQueue, ComputeQueueSpec, ComputeQueueStatus};
pub use error::{Error, Result};
pub use member_cluster::{MemberCluster, MemberClusterSpec, MemberClusterStatus};
pub use quantity::Quantity;
pub use training_job::{TrainingJob, TrainingJobPhase, TrainingJobSpec, TrainingJobStatus};
pub use usage::{ComputeUsage, ComputeUsageSpec};

/// The API group.
pub const GROUP: &str = "computenet.io";
/// The field manager used for every write computenet makes.
pub const FIELD_MANAGER: &str = "computenet-scheduler";

//! `ComputeQueue`: quotas, cohort, fair-share weight and policies.

use crate::quantity::Quantity;
use crate::training_job::{MAX_PRIORITY, MIN_PRIORITY};
use crate::usage::{BudgetSpec, BudgetStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::CustomResource;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A queue TrainingJobs are submitted to.
// kube's derive takes one `printcolumn` per column, by design: their repeated keys are no mistake.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "computenet.io",
    version = "v1alpha1",
    kind = "ComputeQueue",
    shortname = "cnq",
    category = "computenet",
    status = "ComputeQueueStatus",
    derive = "PartialEq",
    doc = "A queue of TrainingJobs with quotas per resource flavour, borrowing and lending within a cohort, a fair-share weight and preemption and queueing policies.",
    printcolumn(name = "Cohort", type_ = "string", json_path = ".spec.cohort"),
    printcolumn(name = "Pending", type_ = "integer", json_path = ".status.pending"),
    printcolumn(name = "Admitted", type_ = "integer", json_path = ".status.admitted"),
    printcolumn(name = "GPU Usage/Quota", type_ = "string", json_path = ".status.gpuUsage"),
    printcolumn(name = "Share", type_ = "number", json_path = ".status.share"),
    printcolumn(name = "Budget", type_ = "string", json_path = ".status.budgetUsage"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct ComputeQueueSpec {
    /// Namespaces whose jobs may use this queue; absent allows none, `{}` allows all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    /// Queues of one cohort lend each other unused quota.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub cohort: Option<String>,
    /// Fair-share weight.
    #[serde(default = "one")]
    #[schemars(range(min = 0.001, max = 1000.0))]
    pub weight: f64,
    /// Quotas; resources without one are not limited.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub quotas: Vec<QuotaSpec>,
    #[serde(default)]
    pub preemption: PreemptionSpec,
    #[serde(default)]
    pub queueing_strategy: QueueingStrategy,
    /// Priorities this queue's jobs may ask for (admin-set); a job outside it is not
    /// admitted. Absent allows only 0, so tenants get no priority an admin did not allow.
    #[serde(default)]
    pub priority_range: PriorityRange,
    /// A spending limit per period: when spent, new jobs wait with `BudgetExhausted`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<BudgetSpec>,
}

/// The priorities a queue allows, both ends included.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[x_kube(validation = Rule::new("self.min <= self.max").message("priorityRange.min must not exceed priorityRange.max"))]
pub struct PriorityRange {
    #[serde(default)]
    #[schemars(range(min = MIN_PRIORITY, max = MAX_PRIORITY))]
    pub min: i32,
    #[serde(default)]
    #[schemars(range(min = MIN_PRIORITY, max = MAX_PRIORITY))]
    pub max: i32,
}

impl PriorityRange {
    /// Whether `priority` is allowed.
    pub fn allows(&self, priority: i32) -> bool {
        (self.min..=self.max).contains(&priority)
    }
}

fn one() -> f64 {
    1.0
}

/// A quota on one resource, optionally of one accelerator type.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct QuotaSpec {
    /// `cpu`, `memory`, `nvidia.com/gpu` (any accelerator) or another extended resource.
    #[schemars(length(min = 1, max = 253))]
    pub resource: String,
    /// Only this accelerator type counts (a flavour); absent counts all types.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub accelerator: Option<String>,
    /// Guaranteed amount (a quantity: 64, "256", "1Ti").
    pub nominal: Quantity,
    /// How much more may be borrowed from the cohort; absent is unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub borrowing_limit: Option<Quantity>,
    /// How much of nominal others may borrow; absent is all of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lending_limit: Option<Quantity>,
}

/// Preemption policy.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PreemptionSpec {
    /// Preempt lower-priority jobs of this queue.
    #[serde(default)]
    pub within_queue: PreemptionScope,
    /// Reclaim lent quota by preempting borrowing jobs of the cohort.
    #[serde(default)]
    pub reclaim_within_cohort: PreemptionScope,
}

/// Which jobs may be preempted.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum PreemptionScope {
    #[default]
    Never,
    LowerPriority,
    Any,
}

/// What happens behind a blocked head job.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum QueueingStrategy {
    /// Nothing behind a blocked head is admitted.
    StrictFIFO,
    /// Jobs behind a blocked head are admitted when they fit and do not delay it.
    #[default]
    BestEffortFIFO,
}

/// Observed state of a queue.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComputeQueueStatus {
    #[serde(default)]
    pub pending: i32,
    #[serde(default)]
    pub admitted: i32,
    #[serde(default)]
    pub running: i32,
    /// "used/nominal" accelerators, for `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_usage: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub usage: Vec<QuotaUsage>,
    /// The share jobs are ordered by across queues: (current dominant share + past
    /// share) / weight; lower goes first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share: Option<f64>,
    /// Decayed past usage as a share of the quotas (0 without a half life).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub past_share: Option<f64>,
    /// The budget in the current period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<BudgetStatus>,
    /// "spent/limit unit" of the budget's first limit, for `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_usage: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// Usage of one quota.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct QuotaUsage {
    pub resource: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accelerator: Option<String>,
    pub used: String,
    pub nominal: String,
}

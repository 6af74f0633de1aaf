//! `ComputeCohort`: a level of the cohort tree (organisation -> department -> team).
//!
//! Queues name a cohort in `spec.cohort`; a cohort names its parent. Each level adds its
//! own nominal quota to what its subtree holds and limits what the subtree borrows from,
//! and lends to, the rest of its parent's subtree. A cohort a queue names but no
//! `ComputeCohort` describes is a root without quota of its own.

use crate::compute_queue::{QuotaSpec, QuotaUsage};
use crate::usage::BudgetSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A cohort of the tree queues borrow and lend in.
// kube's derive takes one `printcolumn` per column, by design: their repeated keys are no mistake.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "computenet.io",
    version = "v1alpha1",
    kind = "ComputeCohort",
    shortname = "cnc",
    category = "computenet",
    status = "ComputeCohortStatus",
    derive = "PartialEq",
    doc = "A cohort of the tree ComputeQueues borrow and lend in: its parent, its own quotas (added to its subtree's, with borrowing and lending limits towards its parent) and a budget.",
    printcolumn(name = "Parent", type_ = "string", json_path = ".spec.parent"),
    printcolumn(name = "GPU Usage/Quota", type_ = "string", json_path = ".status.gpuUsage"),
    printcolumn(name = "Budget", type_ = "string", json_path = ".status.budgetUsage"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct ComputeCohortSpec {
    /// The enclosing cohort; absent makes this a root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub parent: Option<String>,
    /// Nominal added to the subtree's; `borrowingLimit` and `lendingLimit` bound what the
    /// subtree borrows from, and lends to, the rest of the parent's subtree.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub quotas: Vec<QuotaSpec>,
    /// A spending limit per period for every queue under the cohort.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<BudgetSpec>,
}

/// Observed state of a cohort.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComputeCohortStatus {
    /// "reserved/capacity" accelerators of the subtree, for `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_usage: Option<String>,
    /// Per quota key of the subtree: what it reserves or uses (`used`, each child counted
    /// at least at its unlent part) and its capacity (`nominal`: own plus the subtree's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub usage: Vec<QuotaUsage>,
    /// The budget in the current period, spent by every queue under the cohort.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<crate::usage::BudgetStatus>,
    /// "spent/limit unit" of the budget's first limit, for `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_usage: Option<String>,
    /// `ParentIgnored` when the parent chain loops or is deeper than 16 levels.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

//! `MemberCluster`: one member of the pool and how to reach it.

use crate::training_job::ClusterKind;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A member cluster: a Kubernetes cluster (general-purpose or AI) or a Slurm cluster.
// kube's derive takes one `printcolumn` per column, by design: their repeated keys are no mistake.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "computenet.io",
    version = "v1alpha1",
    kind = "MemberCluster",
    shortname = "mcl",
    category = "computenet",
    status = "MemberClusterStatus",
    derive = "PartialEq",
    doc = "A member of the compute pool: a general-purpose or AI Kubernetes cluster, or a supercomputing (Slurm) cluster, with its efficiency profile.",
    printcolumn(name = "Kind", type_ = "string", json_path = ".spec.kind"),
    printcolumn(name = "Site", type_ = "string", json_path = ".spec.site"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "GPUs Free/Total", type_ = "string", json_path = ".status.gpus"),
    printcolumn(name = "CPUs Free/Total", type_ = "string", json_path = ".status.cpus"),
    printcolumn(name = "PUE", type_ = "number", json_path = ".spec.efficiency.pue"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("[has(self.kubernetes), has(self.slurm)].filter(x, x).size() == 1").message("give exactly one connection: kubernetes or slurm"))]
#[x_kube(validation = Rule::new("has(self.slurm) == (self.kind == 'HPC') || has(self.kubernetes)").message("a slurm member must be of kind HPC"))]
pub struct MemberClusterSpec {
    /// General (CPU), AI (GPU/NPU) or HPC (supercomputing).
    pub kind: ClusterKind,
    /// Site (data centre, city district); used for data locality and site constraints.
    #[schemars(length(min = 1, max = 63))]
    pub site: String,
    /// Connection to a Kubernetes member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<KubernetesConnection>,
    /// Connection to a Slurm member through slurmrestd.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slurm: Option<SlurmConnection>,
    /// Facility efficiency.
    #[serde(default)]
    pub efficiency: EfficiencyProfile,
    /// Data sets held at this member.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub data_sets: Vec<String>,
    /// Take the member out of placement; running jobs stay.
    #[serde(default)]
    pub cordoned: bool,
    /// Where measured power, utilisation and PUE come from; measured values replace the
    /// configured PUE and scale energy estimates in placement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PrometheusSource>,
}

/// A Prometheus server with the member's efficiency series, and the PromQL to read them.
/// In the queries, `$cluster` is replaced by the member's name and `$site` by its site.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusSource {
    /// Base URL, e.g. https://prometheus.monitoring:9090 (http:// only with insecureHTTP).
    #[schemars(length(min = 1, max = 512))]
    pub url: String,
    /// Allow a plain http:// URL (the member then carries a TransportSecure=False condition).
    #[serde(default, rename = "insecureHTTP", skip_serializing_if = "std::ops::Not::not")]
    pub insecure_http: bool,
    /// Secret key holding PEM certificates to trust, besides the system's, for the URL
    /// (a private CA). Read like every credential: from the service's namespace, from a
    /// Secret labelled computenet.io/credentials=true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_ref: Option<SecretKeyRef>,
    /// Total accelerator power of the member, in watts (default: DCGM's board power).
    #[serde(default = "default_power_query")]
    #[schemars(length(min = 1, max = 2048))]
    pub gpu_power_query: String,
    /// Mean accelerator utilisation, 0 to 1 (default: DCGM's GPU utilisation / 100).
    #[serde(default = "default_utilization_query")]
    #[schemars(length(min = 1, max = 2048))]
    pub gpu_utilization_query: String,
    /// The facility's PUE.
    #[serde(default = "default_pue_query")]
    #[schemars(length(min = 1, max = 2048))]
    pub pue_query: String,
    /// Seconds between reads.
    #[serde(default = "default_interval")]
    #[schemars(range(min = 1, max = 3600))]
    pub interval_seconds: i64,
}

fn default_power_query() -> String {
    r#"sum(DCGM_FI_DEV_POWER_USAGE{cluster="$cluster"})"#.to_string()
}

fn default_utilization_query() -> String {
    r#"avg(DCGM_FI_DEV_GPU_UTIL{cluster="$cluster"}) / 100"#.to_string()
}

fn default_pue_query() -> String {
    r#"facility_pue{site="$site"}"#.to_string()
}

fn default_interval() -> i64 {
    15
}

/// Where a Secret value lives. The service reads only Secrets in its own namespace
/// (`computenet serve --credentials-namespace`, by default the lease namespace) that carry
/// the label `computenet.io/credentials: "true"`; any other reference leaves the member
/// not connected (Ready=False, reason SecretNotAllowed).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct SecretKeyRef {
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    #[schemars(length(min = 1, max = 63))]
    pub namespace: String,
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// How to reach a Kubernetes member.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KubernetesConnection {
    /// Secret holding a kubeconfig for the member.
    pub kubeconfig_secret_ref: SecretKeyRef,
    /// Prefix of the member namespaces jobs are created in: each hub namespace gets its own,
    /// `<namespace>-<hub namespace>` (cut with a hash to 63 characters when longer), so
    /// tenants' pods never share a namespace.
    #[serde(default = "default_jobs_namespace")]
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub namespace: String,
    /// Pod Security level enforced on those namespaces (with warn and audit at the same
    /// level): `restricted` unless an admin relaxes it for this member.
    #[serde(default)]
    pub pod_security: PodSecurityLevel,
}

fn default_jobs_namespace() -> String {
    "computenet-jobs".to_string()
}

/// A Pod Security Standards level, as the `pod-security.kubernetes.io/enforce` label takes it.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PodSecurityLevel {
    /// Hardened pods: non-root, no privilege escalation, all capabilities dropped, seccomp.
    #[default]
    Restricted,
    /// Blocks known privilege escalations but allows root.
    Baseline,
    /// Unrestricted.
    Privileged,
}

impl PodSecurityLevel {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            PodSecurityLevel::Restricted => "restricted",
            PodSecurityLevel::Baseline => "baseline",
            PodSecurityLevel::Privileged => "privileged",
        }
    }
}

/// How to reach a Slurm member.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.tokenSecretRef) != has(self.jwtKeySecretRef)").message("give exactly one of tokenSecretRef and jwtKeySecretRef"))]
#[x_kube(validation = Rule::new("!has(self.tokenSecretRef) || !has(self.tenants) || (size(self.tenants) <= 1 && self.tenants.all(t, t.userName == self.userName))").message("a static token (tokenSecretRef) serves one user: give at most one tenant, with the connection's userName, or use jwtKeySecretRef"))]
pub struct SlurmConnection {
    /// slurmrestd base URL, e.g. https://slurm.example:6820 (http:// only with insecureHTTP).
    #[schemars(length(min = 1, max = 512))]
    pub endpoint: String,
    /// Allow a plain http:// endpoint: the token then crosses the network in clear text
    /// (the member carries a TransportSecure=False condition).
    #[serde(default, rename = "insecureHTTP", skip_serializing_if = "std::ops::Not::not")]
    pub insecure_http: bool,
    /// Secret key holding PEM certificates to trust, besides the system's, for the
    /// endpoint (a private CA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_ref: Option<SecretKeyRef>,
    /// REST API version in paths.
    #[serde(default = "default_slurm_api")]
    #[schemars(length(min = 1, max = 16))]
    pub api_version: String,
    /// The service's own Slurm user: it lists nodes and jobs as this user (which must see
    /// every tenant's jobs), and, while `tenants` is empty, every job runs as it (all
    /// namespaces then share one Slurm identity).
    #[schemars(length(min = 1, max = 64))]
    pub user_name: String,
    /// Secret with a JWT for the user (it serves that one user only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_secret_ref: Option<SecretKeyRef>,
    /// Secret with the HS256 key to sign short-lived tokens, one per Slurm user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt_key_secret_ref: Option<SecretKeyRef>,
    /// Partitions to use; empty uses all nodes and the cluster's default partition.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub partitions: Vec<String>,
    /// Working directory of batch jobs; must exist and be writable by the Slurm user on
    /// every node.
    #[serde(default = "default_working_directory")]
    #[schemars(length(min = 1, max = 1024))]
    pub working_directory: String,
    /// Output (stdout and stderr) path of batch jobs; Slurm's patterns work (`%j` job id,
    /// `%x` job name); a relative path is under the working directory.
    #[serde(default = "default_standard_output")]
    #[schemars(length(min = 1, max = 1024))]
    pub standard_output: String,
    /// Which Slurm user (and account, and directory) each hub namespace's jobs run as.
    /// When given, jobs of a namespace no entry names are not placed on this member.
    /// Empty: every job runs as `userName`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub tenants: Vec<SlurmTenant>,
}

/// The Slurm identity of some hub namespaces on a Slurm member.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SlurmTenant {
    /// Hub namespaces whose jobs run as this user; a namespace belongs to one tenant.
    #[schemars(length(min = 1, max = 64), inner(length(min = 1, max = 63)))]
    pub namespaces: Vec<String>,
    /// Slurm (Unix) user the jobs are submitted, run and cancelled as.
    #[schemars(length(min = 1, max = 64), regex(pattern = r"^[A-Za-z_][A-Za-z0-9_.-]*$"))]
    pub user_name: String,
    /// Slurm account the jobs are charged to; the user's default account when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub account: Option<String>,
    /// Working directory of the jobs (default `<workingDirectory>/<userName>`); must exist
    /// on every node, owned by the user and closed to others (mode 0700).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub working_directory: Option<String>,
}

impl SlurmConnection {
    /// The hub namespaces this member takes jobs from; `None` when it takes every
    /// namespace's (no tenants mapped).
    pub fn tenant_namespaces(&self) -> Option<Vec<String>> {
        (!self.tenants.is_empty()).then(|| self.tenants.iter().flat_map(|t| t.namespaces.iter().cloned()).collect())
    }
}

fn default_slurm_api() -> String {
    "v0.0.38".to_string()
}

fn default_working_directory() -> String {
    "/tmp".to_string()
}

fn default_standard_output() -> String {
    "computenet-%x-%j.out".to_string()
}

/// Facility efficiency, and accelerator figures that override the built-in catalogue.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EfficiencyProfile {
    /// Power usage effectiveness (>= 1).
    #[serde(default = "default_pue")]
    #[schemars(range(min = 1.0, max = 5.0))]
    pub pue: f64,
    /// Energy price per kWh.
    #[serde(default = "default_price", rename = "energyPricePerKWh")]
    #[schemars(range(min = 0.0, max = 1_000_000.0))]
    pub energy_price_per_kwh: f64,
    /// Grid carbon intensity, gCO2e per kWh.
    #[serde(default, rename = "carbonGPerKWh", skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 100_000.0))]
    pub carbon_g_per_kwh: Option<f64>,
    /// Per-accelerator figures (peak dense 16-bit TFLOPS, board power W, memory GiB).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(length(max = 64))]
    pub accelerators: BTreeMap<String, AcceleratorFigures>,
}

fn default_pue() -> f64 {
    1.5
}

fn default_price() -> f64 {
    0.8
}

impl Default for EfficiencyProfile {
    fn default() -> Self {
        Self {
            pue: default_pue(),
            energy_price_per_kwh: default_price(),
            carbon_g_per_kwh: None,
            accelerators: BTreeMap::new(),
        }
    }
}

/// Figures of one accelerator type.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AcceleratorFigures {
    #[schemars(range(min = 0.0, max = 1_000_000.0))]
    pub peak_tflops: f64,
    #[schemars(range(min = 0.0, max = 100_000.0))]
    pub board_power_w: f64,
    #[schemars(range(min = 0.0, max = 100_000.0))]
    pub memory_gi_b: f64,
}

/// Efficiency measured through `spec.prometheus`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MeasuredEfficiency {
    /// Total accelerator power, watts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_power_watts: Option<f64>,
    /// Mean accelerator utilisation, 0 to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_utilization: Option<f64>,
    /// Facility PUE (used instead of spec.efficiency.pue while fresh).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pue: Option<f64>,
    /// Useful TFLOPS per facility watt: peak TFLOPS x utilisation over power x PUE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tflops_per_watt: Option<f64>,
    /// Measured power over the model's prediction at this utilisation; scales the device
    /// power of energy estimates on this member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_scale: Option<f64>,
    /// When the values were read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sampled_at: Option<Time>,
    /// Why the last read failed, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Observed state of a member.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemberClusterStatus {
    /// "free/total" accelerators, for `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpus: Option<String>,
    /// "free/total" CPU cores, for `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<String>,
    /// Capacity per accelerator type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accelerators: Vec<AcceleratorCapacity>,
    /// Schedulable nodes grouped by accelerator type and by what they offer and have free:
    /// enough to tell away from the member whether a gang fits (`kubectl computenet
    /// dry-run`). At most 64 groups: when there would be more, CPU and memory are rounded
    /// down to coarser steps, so a fit read from here never claims more than the member has.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub free_nodes: Vec<FreeNodeGroup>,
    /// Schedulable nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes: Option<i32>,
    /// Efficiency measured through spec.prometheus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measured: Option<MeasuredEfficiency>,
    /// The last successful contact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_heartbeat: Option<Time>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// Capacity of one accelerator type on a member.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AcceleratorCapacity {
    pub accelerator: String,
    pub total: i64,
    pub free: i64,
    /// Most devices free on one node: the largest per-replica request that fits now.
    pub largest_free_slot: i64,
}

/// The most groups `status.freeNodes` holds.
pub const MAX_FREE_NODE_GROUPS: usize = 64;

/// `count` schedulable nodes of one accelerator type with the same allocatable and free
/// resources. Free is allocatable less everything running there, computenet's jobs and
/// others alike.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FreeNodeGroup {
    /// Accelerator type (catalogue name); absent for CPU-only nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accelerator: Option<String>,
    /// Nodes in the group.
    #[schemars(range(min = 0))]
    pub count: i64,
    /// Accelerator devices per node.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub accelerators: i64,
    /// Free accelerator devices per node.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub free_accelerators: i64,
    /// Allocatable CPU per node, millicores.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub cpu_millis: i64,
    /// Free CPU per node, millicores.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub free_cpu_millis: i64,
    /// Allocatable memory per node, bytes.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub memory_bytes: i64,
    /// Free memory per node, bytes.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub free_memory_bytes: i64,
}

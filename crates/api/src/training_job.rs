//! `TrainingJob`: what a researcher submits.

use crate::quantity::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A gang of replicas to train: admitted whole onto one member cluster, or not at all.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "computenet.io",
    version = "v1alpha1",
    kind = "TrainingJob",
    namespaced,
    shortname = "tj",
    category = "computenet",
    status = "TrainingJobStatus",
    derive = "PartialEq",
    doc = "A model-training job: a gang of replicas that computenet queues, places on the member cluster that fits and is the most efficient, dispatches and mirrors.",
    printcolumn(name = "Queue", type_ = "string", json_path = ".spec.queueName"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Position", type_ = "integer", json_path = ".status.queuePosition"),
    printcolumn(name = "Cluster", type_ = "string", json_path = ".status.placement.cluster"),
    printcolumn(name = "Accelerator", type_ = "string", json_path = ".status.placement.accelerator"),
    printcolumn(name = "Replicas", type_ = "integer", json_path = ".status.placement.replicas"),
    printcolumn(name = "GPUs", type_ = "integer", json_path = ".status.placement.gpus"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new(FROZEN_AFTER_ADMISSION).message("spec is frozen once the job is admitted; only spec.suspend and spec.onMemberLoss may change").reason(Reason::FieldValueForbidden)
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(REPLICAS_IN_ELASTIC_RANGE).message("spec.replicas must lie within spec.elastic.minReplicas..maxReplicas"))]
#[x_kube(validation = Rule::new("has(self.workload) != has(self.source)").message("spec.workload is required (only TrainingJobs computenet makes for other job kinds have spec.source instead)"))]
pub struct TrainingJobSpec {
    /// Name of the ComputeQueue to submit to; its namespaceSelector must match this job's namespace.
    #[schemars(length(min = 1, max = 253))]
    pub queue_name: String,
    /// Higher runs first; within one priority, queues share by weighted fair share.
    #[serde(default)]
    #[schemars(range(min = MIN_PRIORITY, max = MAX_PRIORITY))]
    pub priority: i32,
    /// Replicas of the gang (all or nothing), one pod or Slurm node each.
    #[schemars(range(min = 1, max = 4096))]
    pub replicas: i32,
    /// What each replica needs.
    pub resources: ReplicaResources,
    /// What each replica runs. Absent only on a TrainingJob computenet made for a
    /// `source` object, which runs as itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<Workload>,
    /// How much work the job is, for runtime, energy and cost estimates.
    #[serde(default)]
    pub work: WorkEstimate,
    /// Where the job may run and what the placement should optimise.
    #[serde(default)]
    pub placement: PlacementPreferences,
    /// Wall-clock limit in seconds; the job is stopped when it runs longer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = MAX_RUN_SECONDS))]
    pub max_run_seconds: Option<i64>,
    /// Stop the job (or keep it from starting); setting it back to false resumes it.
    #[serde(default)]
    pub suspend: bool,
    /// What to do when the job's member becomes unreachable while the job runs.
    #[serde(default)]
    pub on_member_loss: MemberLossPolicy,
    /// Set when the gang may run at any size from minReplicas to maxReplicas; the
    /// scheduler picks the size and may change it. Absent: exactly `replicas`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elastic: Option<ElasticSpec>,
    /// Whether the job checkpoints and can be stopped and resumed. Absent: not
    /// restartable (a stop loses all progress, so the job is never moved or resized).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<CheckpointSpec>,
    /// The object this TrainingJob queues: a JobSet, TrainJob or PyTorchJob that was
    /// labelled with `computenet.io/queue-name`. computenet makes such TrainingJobs itself
    /// (named after the object and owned by it) and dispatches the object, not a workload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceRef>,
}

/// An object of another job kind in the TrainingJob's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SourceRef {
    /// Its apiVersion (group/version).
    #[schemars(length(min = 1, max = 317))]
    pub api_version: String,
    #[schemars(length(min = 1, max = 63))]
    pub kind: String,
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Its UID: a new object of the same name is another job.
    #[schemars(length(min = 1, max = 128))]
    pub uid: String,
}

/// The sizes an elastic gang may run at. Each replica is given its gang's current size as
/// `WORLD_SIZE` and the range as `--nnodes=min:max` for torchrun, so that a resized job
/// resumes with the new size.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.minReplicas <= self.maxReplicas").message("elastic.minReplicas must be at most elastic.maxReplicas"))]
pub struct ElasticSpec {
    /// Fewest replicas the job can make progress with.
    #[schemars(range(min = 1, max = 4096))]
    pub min_replicas: i32,
    /// Most replicas the job can use.
    #[schemars(range(min = 1, max = 4096))]
    pub max_replicas: i32,
}

/// How the job checkpoints. A restartable job is stopped with SIGTERM and then given
/// `gracePeriodSeconds` to write a checkpoint before it is killed; it keeps its progress
/// and resumes from the checkpoint, on the same member or another one. That lets the
/// scheduler preempt it cheaply, move it to a better placement and resize it (when elastic).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckpointSpec {
    /// Whether the job resumes from its checkpoint when started again.
    #[serde(default)]
    pub restartable: bool,
    /// Seconds between SIGTERM and the kill.
    #[serde(default = "default_grace_period")]
    #[schemars(range(min = 0, max = MAX_GRACE_PERIOD_SECONDS))]
    pub grace_period_seconds: i64,
    /// What one restart loses, in seconds: stopping, starting and reloading, plus the work
    /// since the last checkpoint. A move must gain clearly more than this.
    #[serde(default = "default_restart_cost")]
    #[schemars(range(min = 0, max = MAX_RESTART_COST_SECONDS))]
    pub restart_cost_seconds: i64,
}

fn default_grace_period() -> i64 {
    30
}

fn default_restart_cost() -> i64 {
    60
}

impl Default for CheckpointSpec {
    fn default() -> Self {
        Self {
            restartable: false,
            grace_period_seconds: default_grace_period(),
            restart_cost_seconds: default_restart_cost(),
        }
    }
}

/// Lowest priority.
pub const MIN_PRIORITY: i32 = -1_000_000;
/// Highest priority.
pub const MAX_PRIORITY: i32 = 1_000_000_000;
/// Longest `maxRunSeconds`: ten years, the longest runtime estimate too.
pub const MAX_RUN_SECONDS: i64 = computenet_core::throughput::MAX_RUNTIME_S as i64;
/// Most training steps.
pub const MAX_STEPS: i64 = 1_000_000_000_000;
/// Largest global batch size.
pub const MAX_BATCH_SIZE: i32 = 10_000_000;
/// Most device-hours a job may declare (ten million: more than a year of 1000 devices).
pub const MAX_GPU_HOURS: f64 = 10_000_000.0;
/// Largest minimum device memory, GiB.
pub const MAX_MIN_MEMORY_GIB: i32 = 4096;
/// Longest `checkpoint.gracePeriodSeconds`: an hour.
pub const MAX_GRACE_PERIOD_SECONDS: i64 = 3600;
/// Largest `checkpoint.restartCostSeconds`: a day.
pub const MAX_RESTART_COST_SECONDS: i64 = 86_400;
/// What an environment variable name must look like (Kubernetes' C_IDENTIFIER).
pub const ENV_NAME_PATTERN: &str = "^[A-Za-z_][A-Za-z0-9_]*$";

/// CEL: after admission only `suspend` and `onMemberLoss` (what to do if the member is lost) may change. Optional fields are compared by presence too.
const FROZEN_AFTER_ADMISSION: &str = "!has(oldSelf.status) || !has(oldSelf.status.admitted) || !oldSelf.status.admitted || (self.spec.queueName == oldSelf.spec.queueName && self.spec.priority == oldSelf.spec.priority && self.spec.replicas == oldSelf.spec.replicas && self.spec.resources == oldSelf.spec.resources && has(self.spec.workload) == has(oldSelf.spec.workload) && (!has(self.spec.workload) || self.spec.workload == oldSelf.spec.workload) && has(self.spec.source) == has(oldSelf.spec.source) && (!has(self.spec.source) || self.spec.source == oldSelf.spec.source) && self.spec.work == oldSelf.spec.work && self.spec.placement == oldSelf.spec.placement && has(self.spec.maxRunSeconds) == has(oldSelf.spec.maxRunSeconds) && (!has(self.spec.maxRunSeconds) || self.spec.maxRunSeconds == oldSelf.spec.maxRunSeconds) && has(self.spec.elastic) == has(oldSelf.spec.elastic) && (!has(self.spec.elastic) || self.spec.elastic == oldSelf.spec.elastic) && has(self.spec.checkpoint) == has(oldSelf.spec.checkpoint) && (!has(self.spec.checkpoint) || self.spec.checkpoint == oldSelf.spec.checkpoint))";

/// CEL: an elastic job's first size is one of its allowed sizes.
const REPLICAS_IN_ELASTIC_RANGE: &str =
    "!has(self.elastic) || (self.elastic.minReplicas <= self.replicas && self.replicas <= self.elastic.maxReplicas)";

/// Per-replica resources.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaResources {
    /// CPU per replica: cores as an integer, or a quantity ("8", "500m").
    pub cpu: Quantity,
    /// Memory per replica: bytes as an integer, or a quantity ("64Gi").
    pub memory: Quantity,
    /// Accelerators per replica; absent for a CPU-only job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accelerators: Option<AcceleratorRequest>,
}

/// Accelerators per replica and which types are acceptable.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AcceleratorRequest {
    /// Devices per replica (all on the replica's node).
    #[schemars(range(min = 1, max = 64))]
    pub count: i32,
    /// Acceptable types by catalogue name (A100-80G, H800, Ascend910B, ...); empty accepts any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    #[x_kube(validation = Rule::new("self.all(t, size(t) <= 63)").message("accelerator type names are at most 63 characters"))]
    pub types: Vec<String>,
    /// Minimum device memory in GiB, as an alternative or addition to `types`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = MAX_MIN_MEMORY_GIB))]
    pub min_memory_gi_b: Option<i32>,
}

/// The container (Kubernetes) or batch script (Slurm) each replica runs.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Workload {
    /// Container image (Kubernetes members).
    #[schemars(length(min = 1, max = 512))]
    pub image: String,
    /// Command and arguments; on Slurm members the same command runs in the batch script.
    #[schemars(length(min = 1, max = 64))]
    #[x_kube(validation = Rule::new("self.all(c, size(c) <= 4096)").message("command entries are at most 4096 characters"))]
    pub command: Vec<String>,
    /// Extra environment variables (name, value).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub env: Vec<EnvVar>,
}

/// One environment variable.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct EnvVar {
    /// A C identifier (letters, digits, `_`; not starting with a digit), as Kubernetes requires.
    #[schemars(length(min = 1, max = 256), pattern(ENV_NAME_PATTERN))]
    pub name: String,
    #[serde(default)]
    #[schemars(length(max = 4096))]
    pub value: String,
}

/// A work estimate: a profiled model and steps, or device-hours on a reference type.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!(has(self.model) && has(self.gpuHours))").message("give either model and steps, or gpuHours, not both"))]
#[x_kube(validation = Rule::new("has(self.model) == has(self.steps)").message("model and steps go together"))]
pub struct WorkEstimate {
    /// A model with a measured throughput profile (e.g. bert, resnet50).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub model: Option<String>,
    /// Training steps at the global batch size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = MAX_STEPS))]
    pub steps: Option<i64>,
    /// Global batch size, when the profile depends on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = MAX_BATCH_SIZE))]
    pub batch_size: Option<i32>,
    /// Device-hours on the reference accelerator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = MAX_GPU_HOURS))]
    pub gpu_hours: Option<f64>,
    /// The reference accelerator of `gpuHours` (default V100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub reference_accelerator: Option<String>,
}

/// Member cluster kinds.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ClusterKind {
    General,
    AI,
    HPC,
}

/// What the placement optimises.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum Objective {
    Fastest,
    Cheapest,
    Greenest,
    #[default]
    Balanced,
}

/// Where a job may run.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlacementPreferences {
    /// Allowed member kinds; empty allows all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 3))]
    pub cluster_kinds: Vec<ClusterKind>,
    /// Allowed sites; empty allows all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub sites: Vec<String>,
    /// The data set the job reads; members holding it avoid a transfer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub data_set: Option<String>,
    #[serde(default)]
    pub objective: Objective,
}

/// What happens to a running job whose member is lost.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum MemberLossPolicy {
    /// Queue it again to run elsewhere (its progress on the lost member is lost).
    #[default]
    Requeue,
    /// Keep it bound to the member and wait for it to come back.
    Wait,
}

/// Lifecycle phases.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum TrainingJobPhase {
    /// Not queueable yet: see the conditions (unknown queue, namespace not allowed, invalid).
    Pending,
    /// Waiting in its queue.
    Queued,
    /// Placed; being dispatched to its member.
    Admitted,
    /// Created on its member, not yet running after 15 s there (a job that starts sooner
    /// goes from Admitted straight to Running).
    Dispatched,
    Running,
    Succeeded,
    Failed,
    /// Stopped to make room for another job; queued again.
    Preempted,
    Suspended,
}

impl TrainingJobPhase {
    /// Whether the job is over.
    pub fn is_finished(self) -> bool {
        matches!(self, TrainingJobPhase::Succeeded | TrainingJobPhase::Failed)
    }
}

/// Observed state of a TrainingJob.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrainingJobStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<TrainingJobPhase>,
    /// Place in its queue while queued (1 is next).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_position: Option<i32>,
    /// Set once the job is admitted; the spec is frozen from then on (except suspend and onMemberLoss).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admitted: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<PlacementStatus>,
    /// The service's seal over this admission (HMAC-SHA256 with its own key over the job's
    /// UID, attempt, queue, placement and decided spec): an admission without a valid one
    /// was not issued by the service and is reset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub admission_seal: Option<String>,
    /// The objects created on the member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<RemoteReference>,
    /// Why the job is where it is, or why it waits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explanation: Option<ExplanationStatus>,
    /// When the job was admitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When its objects were created on the member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dispatch_time: Option<Time>,
    /// When the job ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    /// Times the job was preempted or requeued after a member loss.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requeues: Option<i32>,
    /// Admissions so far (1 for the first; resumption and requeues admit again). Its
    /// objects on a member are keyed by it, so an earlier attempt's are never taken for
    /// the current one's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<i32>,
    /// Exit code of the job's command once it ended, when the member reports one (Slurm).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Dispatch failures in a row and when the next attempt is due (exponential backoff).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryStatus>,
    /// How much of the work is done, carried across restarts (restartable jobs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<ProgressStatus>,
    /// Earlier attempts, oldest first: where each ran and why it ended. Only the last 20
    /// are kept; the current attempt is in placement, startTime and attempt.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    pub attempts: Vec<AttemptStatus>,
    /// Attempts up to this number are recorded in the usage store (`ComputeUsage`).
    /// Written by the service's metering alone (its own field manager).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metered_through: Option<i32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// Attempts `status.attempts` keeps (the latest); the schema's maxItems.
pub const MAX_ATTEMPTS_KEPT: usize = 20;

/// Where a job's progress figure comes from.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ProgressSource {
    /// From elapsed time against the runtime estimate.
    #[default]
    Estimated,
    /// Reported by the job or its member.
    Measured,
}

/// The share of the job's work done. `Estimated`: the share done when the current attempt
/// started (written when an attempt ends); the running attempt's share is estimated from
/// its elapsed time against `placement.estimatedRuntimeSeconds`. `Measured`: reported, as is.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProgressStatus {
    /// Share of the work done, 0 to 1, over all attempts.
    #[schemars(range(min = 0.0, max = 1.0))]
    pub completed: f64,
    #[serde(default)]
    pub source: ProgressSource,
    /// When `completed` was last written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<Time>,
}

/// One ended attempt of a job.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttemptStatus {
    /// The attempt's number (`status.attempt` while it ran).
    pub attempt: i32,
    pub cluster: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accelerator: Option<String>,
    /// Replicas it ran with.
    pub replicas: i32,
    /// When it was admitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When it was stopped or ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<Time>,
    /// Why it ended: Moved, Resized, Preempted, MemberLost, Failed, Suspended, ...
    #[schemars(length(max = 128))]
    pub reason: String,
    /// Details for humans (e.g. the adjustment's reason).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub message: Option<String>,
    /// The job's progress (share of the work done, 0 to 1) when it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub completed: Option<f64>,
    /// The queue it was admitted from, and the CPU of its gang in millicores: what it is
    /// billed to and for (the spec may change once the attempt has ended).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub queue: Option<String>,
    /// Accelerators of the whole gang.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpus: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_millis: Option<i64>,
}

/// Where the job was placed and what that is expected to cost.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlacementStatus {
    pub cluster: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accelerator: Option<String>,
    /// Accelerators of the whole gang.
    pub gpus: i64,
    /// Replicas of the gang as placed: `spec.replicas`, unless an elastic job was given
    /// or resized to another size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Node names with the replicas each hosts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<NodeReplicas>,
    pub estimated_runtime_seconds: f64,
    pub estimated_energy_k_wh: f64,
    pub estimated_cost: f64,
    /// Admitted behind a reservation without delaying it.
    #[serde(default)]
    pub backfilled: bool,
    /// The queue it was admitted from (what its attempt is billed to).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub queue: Option<String>,
    /// CPU of the whole gang, in millicores, as admitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_millis: Option<i64>,
}

/// Failed attempts in a row and when the next one is due.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetryStatus {
    pub attempts: i32,
    pub next_attempt_time: Time,
}

/// Replicas on one node.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct NodeReplicas {
    pub node: String,
    pub replicas: i32,
}

/// The objects that run the job on its member.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RemoteReference {
    pub cluster: String,
    /// `Job` (Kubernetes members) or `SlurmJob`.
    pub kind: String,
    /// Namespace/name of the Job, or the Slurm job id.
    pub name: String,
}

/// A decision's explanation, as stored in the status.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExplanationStatus {
    /// One line for humans.
    pub summary: String,
    /// The best candidates with their score breakdown (lower total is better).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<CandidateStatus>,
    /// Every other member and why it was not a candidate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rejected: Vec<RejectedStatus>,
}

/// One scored candidate.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CandidateStatus {
    pub cluster: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accelerator: Option<String>,
    pub score: f64,
    pub time_score: f64,
    pub energy_score: f64,
    pub cost_score: f64,
    pub carbon_score: f64,
    pub runtime_seconds: f64,
    pub energy_k_wh: f64,
    /// Where the runtime estimate came from: `Learned` (measured while jobs of the same
    /// model ran on this type and size), `Profile` (a measured throughput profile of
    /// the job's model, `ScaledProfile` when scaled to this type or size) or `Fallback`
    /// (peak TFLOPS x utilisation, or the job's maximum runtime).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimate_source: Option<String>,
}

/// A member that was not a candidate.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct RejectedStatus {
    pub cluster: String,
    pub reason: String,
}

//! Other job kinds computenet queues: a researcher's own JobSet, Kubeflow Trainer TrainJob
//! or Training Operator PyTorchJob, created in the hub with the label [`QUEUE_LABEL`].
//!
//! For each such object the service makes a "shadow" TrainingJob (named [`shadow_name`],
//! spec from [`shadow_spec`]) that the core schedules; the object itself is copied
//! ([`JobKind::member_copy`]) onto the member the shadow is placed on. This module is the
//! pure part: it reads and writes `serde_json::Value` objects (as dynamic watches give
//! them) and does no IO.
//!
//! The objects are untrusted input: nothing here panics or overflows on any JSON, and the
//! sizes read are bounded ([`MAX_GANG_PODS`], [`MAX_GANG_GROUPS`]).
//!
//! What is read: each pod template's containers, init containers and overhead (requests,
//! else limits, of `cpu`, `memory` and `nvidia.com/gpu`) and its `nodeSelector`; the
//! counts and runtime each kind's module names; the label and annotations of
//! [`shadow_spec`]. CPU-only helper pods beside GPU pods are accounted on the GPU pods'
//! replicas.
//!
//! What [`JobKind::gang`] refuses, with an error naming the field's path:
//! - resources computenet does not account: an extended resource other than
//!   `nvidia.com/gpu` (a name with a `/`: `nvidia.com/mig-1g.5gb`, `amd.com/gpu`; standard
//!   resources such as `ephemeral-storage` and `hugepages-*` are fine), `resourceClaims`
//!   (DRA) and pod-level `resources`;
//! - what would leave the member's isolation: `nodeName`; `hostNetwork`, `hostPID` or
//!   `hostIPC` true; a `hostPath` volume; a privileged container or init container, or one
//!   adding capabilities;
//! - an elastic PyTorchJob (`spec.elasticPolicy`), and a TrainJob whose runtime is not in
//!   the hub.
//!
//! What a member copy changes on every pod template: computenet's labels; no
//! `priorityClassName`, `priority`, `preemptionPolicy`, `schedulerName`,
//! `serviceAccountName` or `serviceAccount`; `automountServiceAccountToken: false`; the GPU
//! product the scheduler chose; Pod Security `restricted` defaults where unset. And on the
//! object: no finish TTL (computenet deletes the copy once its status is mirrored), and a
//! PyTorchJob's `cleanPodPolicy: All`. No annotation sets a wall-clock limit: nothing
//! would enforce it on the copy.

mod jobset;
mod pytorchjob;
mod trainjob;

pub use jobset::{JobSet, JOBSET_NAME_LABEL};
pub use pytorchjob::{PyTorchJob, JOB_NAME_LABEL};
pub use trainjob::{TrainJob, ANCESTOR_LABEL, CLUSTER_TRAINING_RUNTIME, TRAINER_GROUP, TRAINING_RUNTIME};

use crate::error::Error;
use crate::quantity::Quantity;
use crate::training_job::{
    self, AcceleratorRequest, MemberLossPolicy, Objective, PlacementPreferences, ReplicaResources, SourceRef,
    TrainingJobSpec, WorkEstimate,
};
use computenet_core::quantity::{format_bytes, format_cpu_millis, parse_bytes, parse_count, parse_cpu_millis};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// The error of this module: the crate's one error type. Field errors name the field's
/// path in the object (`spec.replicatedJobs[1].template.spec.parallelism: must be ...`).
pub type KindError = Error;

/// The label that queues an object: its value is the ComputeQueue's name.
pub const QUEUE_LABEL: &str = "computenet.io/queue-name";

/// Annotation: the job's priority, an integer from
/// [`MIN_PRIORITY`](training_job::MIN_PRIORITY) to [`MAX_PRIORITY`](training_job::MAX_PRIORITY)
/// (TrainingJob `spec.priority`; default 0).
pub const PRIORITY_ANNOTATION: &str = "computenet.io/priority";
/// Annotation: acceptable accelerator types, a comma-separated list of catalogue names
/// (`A100-80G,H100`); TrainingJob `spec.resources.accelerators.types`. Without it, the
/// types come from the GPU pods' `nodeSelector` `nvidia.com/gpu.product`.
pub const ACCELERATOR_TYPES_ANNOTATION: &str = "computenet.io/accelerator-types";
/// Annotation: device-hours on the reference accelerator, a number from 0 to
/// [`MAX_GPU_HOURS`](training_job::MAX_GPU_HOURS) (`spec.work.gpuHours`).
pub const GPU_HOURS_ANNOTATION: &str = "computenet.io/gpu-hours";
/// Annotation: the reference accelerator of the gpu-hours (`spec.work.referenceAccelerator`, default V100).
pub const REFERENCE_ACCELERATOR_ANNOTATION: &str = "computenet.io/reference-accelerator";
/// Annotation: a model with a measured throughput profile (`spec.work.model`); goes
/// together with [`STEPS_ANNOTATION`], and not with [`GPU_HOURS_ANNOTATION`].
pub const MODEL_ANNOTATION: &str = "computenet.io/model";
/// Annotation: training steps at the global batch size, an integer from 1 to
/// [`MAX_STEPS`](training_job::MAX_STEPS) (`spec.work.steps`); goes together with [`MODEL_ANNOTATION`].
pub const STEPS_ANNOTATION: &str = "computenet.io/steps";
/// Annotation: the global batch size, an integer from 1 to
/// [`MAX_BATCH_SIZE`](training_job::MAX_BATCH_SIZE) (`spec.work.batchSize`).
pub const BATCH_SIZE_ANNOTATION: &str = "computenet.io/batch-size";
/// Annotation: what the placement optimises: `Fastest`, `Cheapest`, `Greenest` or
/// `Balanced` (the default; `spec.placement.objective`).
pub const OBJECTIVE_ANNOTATION: &str = "computenet.io/objective";
/// Annotation: allowed sites, a comma-separated list (`spec.placement.sites`; absent allows all).
pub const SITES_ANNOTATION: &str = "computenet.io/sites";
/// Annotation: the data set the job reads (`spec.placement.dataSet`).
pub const DATA_SET_ANNOTATION: &str = "computenet.io/data-set";
/// Annotation: what to do when the member running the job is lost: `Requeue` (the
/// default) or `Wait` (`spec.onMemberLoss`).
pub const ON_MEMBER_LOSS_ANNOTATION: &str = "computenet.io/on-member-loss";

/// The annotation `kubectl apply` keeps the last applied object in; not copied to members.
pub const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";
/// The extended resource of NVIDIA GPUs.
pub const GPU_RESOURCE: &str = "nvidia.com/gpu";
/// The node label naming a node's GPU product.
pub const GPU_PRODUCT_LABEL: &str = "nvidia.com/gpu.product";

/// Most pods of one object, over all its groups (the TrainingJob's replica limit).
pub const MAX_GANG_PODS: u64 = 4096;
/// Most pod groups of one object.
pub const MAX_GANG_GROUPS: usize = 64;
/// Longest object name (a DNS subdomain).
pub const MAX_NAME_LEN: usize = 253;

/// A kind's API group, version, kind and plural resource name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KindResource {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
}

impl KindResource {
    /// `group/version`.
    pub fn api_version(&self) -> String {
        format!("{}/{}", self.group, self.version)
    }
}

/// `count` pods of one shape that run together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodGroup {
    /// The replicated job or replica type the pods belong to.
    pub name: String,
    pub count: u32,
    /// The pod's effective CPU request (Kubernetes' rule: containers summed, init
    /// containers at their peak, plus overhead), millicores.
    pub cpu_millis: u64,
    /// The same for memory, bytes.
    pub memory_bytes: u64,
    /// The same for `nvidia.com/gpu`.
    pub gpus: u32,
    /// The pod template's `nodeSelector`.
    pub node_selector: BTreeMap<String, String>,
}

/// An object's state as its own controller reports it (read from `.status`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KindState {
    Pending,
    Running,
    Succeeded,
    Failed { reason: String, message: String },
}

/// What a member copy gets.
#[derive(Debug, Clone, Copy)]
pub struct CopyContext<'a> {
    /// The member namespace.
    pub namespace: &'a str,
    /// Added to the object and to every pod template it has.
    pub labels: &'a BTreeMap<String, String>,
    /// When set: `nodeSelector` `nvidia.com/gpu.product=<it>` on the pod templates that ask
    /// for `nvidia.com/gpu`, replacing the user's value (the pods run on the type the
    /// scheduler chose and accounted).
    pub gpu_product: Option<&'a str>,
}

/// Looks up a runtime: (kind, namespace, name) with kind `TrainingRuntime` (namespaced)
/// or `ClusterTrainingRuntime` (namespace `None`).
pub type RuntimeLookup<'a> = &'a dyn Fn(&str, Option<&str>, &str) -> Option<Value>;

/// One job kind computenet queues.
pub trait JobKind: Send + Sync + std::fmt::Debug {
    fn resource(&self) -> KindResource;

    /// JSON pointer of the boolean that holds the object ("/spec/suspend", "/spec/runPolicy/suspend").
    fn suspend_pointer(&self) -> &'static str;

    /// Whether the object is held (the suspend field is true).
    fn suspended(&self, obj: &Value) -> bool {
        obj.pointer(self.suspend_pointer()).and_then(Value::as_bool) == Some(true)
    }

    /// A JSON merge patch setting the suspend field.
    fn suspend_patch(&self, suspend: bool) -> Value {
        self.suspend_pointer()
            .split('/')
            .filter(|s| !s.is_empty())
            .rev()
            .fold(Value::Bool(suspend), |inner, key| Value::Object(Map::from_iter([(key.to_string(), inner)])))
    }

    /// The pods that must run together. `runtime(kind, namespace, name)` looks up a
    /// TrainingRuntime (namespaced) or ClusterTrainingRuntime (namespace `None`) (TrainJob only).
    fn gang(&self, obj: &Value, runtime: RuntimeLookup<'_>) -> Result<Vec<PodGroup>, KindError>;

    /// The object as created on a member: a new object with the same name in
    /// `cx.namespace`, unsuspended, with the labels and pod-template defaults of `cx`.
    fn member_copy(&self, obj: &Value, cx: &CopyContext<'_>) -> Value;

    /// Its state, from its status conditions.
    fn state(&self, obj: &Value) -> KindState;

    /// A pod label every pod of object `name` carries (for a NetworkPolicy selector).
    fn pod_label(&self, name: &str) -> (&'static str, String);
}

static KINDS: [&'static dyn JobKind; 3] = [&JobSet, &TrainJob, &PyTorchJob];

/// Every kind.
pub fn all() -> [&'static dyn JobKind; 3] {
    KINDS
}

/// The kind named `kind` ("JobSet", "TrainJob", "PyTorchJob").
pub fn by_kind(kind: &str) -> Option<&'static dyn JobKind> {
    KINDS.into_iter().find(|k| k.resource().kind == kind)
}

/// The kind of API group `group` named `kind`.
pub fn by_group_kind(group: &str, kind: &str) -> Option<&'static dyn JobKind> {
    KINDS.into_iter().find(|k| k.resource().group == group && k.resource().kind == kind)
}

/// The shadow TrainingJob's name for object `name` of `kind`: `<lowercase kind>-<name>`,
/// or, when that is longer than 253 characters, its first 236 characters and a hash of
/// the whole (so distinct long names stay distinct and a restart derives the same name).
pub fn shadow_name(kind: &str, name: &str) -> String {
    let whole = format!("{}-{name}", kind.to_ascii_lowercase());
    if whole.len() <= MAX_NAME_LEN {
        return whole;
    }
    let hash = format!("{:016x}", fnv1a(whole.as_bytes()));
    let kept: String = whole.chars().take(MAX_NAME_LEN - hash.len() - 1).collect();
    let kept = kept.trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
    format!("{kept}-{hash}")
}

/// FNV-1a, 64 bits: stable across builds and Rust versions.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

/// The shadow TrainingJob's spec, derived deterministically from the object and its gang
/// (`groups`, from [`JobKind::gang`]). `canonical_type` maps a `nvidia.com/gpu.product`
/// value to the catalogue's accelerator name.
///
/// When some groups ask for GPUs, the gang is those groups: `replicas` is their total pod
/// count and `resources` the largest CPU, memory and GPUs over them. The helper pods'
/// CPU and memory are accounted on the gang's replicas: the CPU-only groups (a launcher,
/// initializers) add their total CPU and their total memory, each divided by `replicas`
/// and rounded up, to every replica (saturating). Otherwise the gang is all groups.
/// Queue, priority, work estimate and placement come from the label [`QUEUE_LABEL`] and
/// the `computenet.io/*` annotations (constants above); `max_run_seconds` is always
/// `None`, as nothing would enforce a tenant's limit on the member copy.
pub fn shadow_spec(
    kind: &dyn JobKind,
    obj: &Value,
    groups: &[PodGroup],
    canonical_type: &dyn Fn(&str) -> String,
) -> Result<TrainingJobSpec, KindError> {
    let labels = string_map(obj.pointer("/metadata/labels"));
    let queue_name = labels.get(QUEUE_LABEL).cloned().unwrap_or_default();
    if queue_name.is_empty() || queue_name.len() > MAX_NAME_LEN {
        return Err(Error::field(
            &format!("metadata.labels[{QUEUE_LABEL}]"),
            "must name the ComputeQueue (1 to 253 characters)",
        ));
    }
    let name = required_text(obj, "/metadata/name", "metadata.name", MAX_NAME_LEN)?;
    let uid = required_text(obj, "/metadata/uid", "metadata.uid", 128)?;
    let annotations = string_map(obj.pointer("/metadata/annotations"));
    let ann = Annotations(&annotations);

    let live: Vec<&PodGroup> = groups.iter().filter(|g| g.count > 0).collect();
    let gpu: Vec<&PodGroup> = live.iter().copied().filter(|g| g.gpus > 0).collect();
    // CPU-only helpers beside a GPU gang: their totals, spread over its replicas below.
    let helpers: Vec<&PodGroup> =
        if gpu.is_empty() { Vec::new() } else { live.iter().copied().filter(|g| g.gpus == 0).collect() };
    let helper_total = |per_pod: fn(&PodGroup) -> u64| {
        helpers.iter().fold(0u64, |sum, g| sum.saturating_add(per_pod(g).saturating_mul(u64::from(g.count))))
    };
    let (helper_cpu, helper_memory) = (helper_total(|g| g.cpu_millis), helper_total(|g| g.memory_bytes));
    let gang = if gpu.is_empty() { live } else { gpu };
    if gang.is_empty() {
        return Err(Error::field("spec", "the object runs no pods"));
    }
    let replicas = gang.iter().fold(0u64, |n, g| n.saturating_add(u64::from(g.count)));
    if replicas > MAX_GANG_PODS {
        return Err(Error::field(
            "spec",
            format!("{replicas} pods run together; computenet places at most {MAX_GANG_PODS}"),
        ));
    }
    // replicas >= 1: the gang has a group of at least one pod.
    let cpu = gang.iter().map(|g| g.cpu_millis).max().unwrap_or(0).saturating_add(helper_cpu.div_ceil(replicas));
    let memory =
        gang.iter().map(|g| g.memory_bytes).max().unwrap_or(0).saturating_add(helper_memory.div_ceil(replicas));
    let gpus = gang.iter().map(|g| g.gpus).max().unwrap_or(0);

    let accelerators = if gpus == 0 {
        if ann.get(ACCELERATOR_TYPES_ANNOTATION).is_some() {
            return Err(ann_error(ACCELERATOR_TYPES_ANNOTATION, format!("the job's pods ask for no {GPU_RESOURCE}")));
        }
        None
    } else {
        if gpus > 64 {
            return Err(Error::field(
                "spec",
                format!("a pod asks for {gpus} {GPU_RESOURCE}; computenet places at most 64 per pod"),
            ));
        }
        let types = match ann.get(ACCELERATOR_TYPES_ANNOTATION) {
            Some(text) => {
                let types = comma_list(text);
                if types.is_empty() || types.len() > 16 || types.iter().any(|t| t.len() > 63) {
                    return Err(ann_error(
                        ACCELERATOR_TYPES_ANNOTATION,
                        "must be 1 to 16 comma-separated type names of at most 63 characters",
                    ));
                }
                types
            }
            None => {
                let types: BTreeSet<String> = gang
                    .iter()
                    .filter_map(|g| g.node_selector.get(GPU_PRODUCT_LABEL))
                    .map(|p| canonical_type(p))
                    .filter(|t| !t.is_empty())
                    .collect();
                if types.len() > 16 || types.iter().any(|t| t.len() > 63) {
                    return Err(Error::field(
                        &format!("nodeSelector[{GPU_PRODUCT_LABEL}]"),
                        "the GPU pods select more than 16 types or a type name longer than 63 characters",
                    ));
                }
                types.into_iter().collect()
            }
        };
        Some(AcceleratorRequest { count: gpus as i32, types, min_memory_gi_b: None })
    };

    let priority =
        ann.int(PRIORITY_ANNOTATION, i64::from(training_job::MIN_PRIORITY), i64::from(training_job::MAX_PRIORITY))?;
    let gpu_hours = match ann.get(GPU_HOURS_ANNOTATION) {
        None => None,
        Some(text) => Some(
            text.trim().parse::<f64>().ok().filter(|h| (0.0..=training_job::MAX_GPU_HOURS).contains(h)).ok_or_else(
                || {
                    ann_error(
                        GPU_HOURS_ANNOTATION,
                        format!("must be a number from 0 to {}", training_job::MAX_GPU_HOURS),
                    )
                },
            )?,
        ),
    };
    let reference_accelerator = ann.text(REFERENCE_ACCELERATOR_ANNOTATION, 63)?;
    let model = ann.text(MODEL_ANNOTATION, 128)?;
    let steps = ann.int(STEPS_ANNOTATION, 1, training_job::MAX_STEPS)?;
    let batch_size = ann.int(BATCH_SIZE_ANNOTATION, 1, i64::from(training_job::MAX_BATCH_SIZE))?;
    if model.is_some() != steps.is_some() {
        let missing = if model.is_some() { STEPS_ANNOTATION } else { MODEL_ANNOTATION };
        return Err(ann_error(missing, format!("{MODEL_ANNOTATION} and {STEPS_ANNOTATION} go together")));
    }
    if model.is_some() && gpu_hours.is_some() {
        return Err(ann_error(
            GPU_HOURS_ANNOTATION,
            format!("give either {MODEL_ANNOTATION} and {STEPS_ANNOTATION}, or gpu-hours, not both"),
        ));
    }
    let objective = match ann.get(OBJECTIVE_ANNOTATION).map(str::trim) {
        None => Objective::Balanced,
        Some("Fastest") => Objective::Fastest,
        Some("Cheapest") => Objective::Cheapest,
        Some("Greenest") => Objective::Greenest,
        Some("Balanced") => Objective::Balanced,
        Some(_) => return Err(ann_error(OBJECTIVE_ANNOTATION, "must be Fastest, Cheapest, Greenest or Balanced")),
    };
    let sites = match ann.get(SITES_ANNOTATION) {
        None => Vec::new(),
        Some(text) => {
            let sites = comma_list(text);
            if sites.len() > 32 || sites.iter().any(|s| s.len() > MAX_NAME_LEN) {
                return Err(ann_error(SITES_ANNOTATION, "must be at most 32 comma-separated site names"));
            }
            sites
        }
    };
    let data_set = ann.text(DATA_SET_ANNOTATION, MAX_NAME_LEN)?;
    let on_member_loss = match ann.get(ON_MEMBER_LOSS_ANNOTATION).map(str::trim) {
        None | Some("Requeue") => MemberLossPolicy::Requeue,
        Some("Wait") => MemberLossPolicy::Wait,
        Some(_) => return Err(ann_error(ON_MEMBER_LOSS_ANNOTATION, "must be Requeue or Wait")),
    };

    let api_version = kind.resource().api_version();
    let kind_name = kind.resource().kind.to_string();
    Ok(TrainingJobSpec {
        queue_name,
        priority: priority.map_or(0, |p| p as i32),
        replicas: replicas as i32,
        resources: ReplicaResources {
            cpu: Quantity::Text(format_cpu_millis(cpu)),
            memory: Quantity::Text(format_bytes(memory)),
            accelerators,
        },
        workload: None,
        work: WorkEstimate { model, steps, batch_size: batch_size.map(|b| b as i32), gpu_hours, reference_accelerator },
        placement: PlacementPreferences { cluster_kinds: Vec::new(), sites, data_set, objective },
        // No wall-clock limit: nothing enforces one on the member copy, and the scheduler
        // trusts maxRunSeconds for backfill.
        max_run_seconds: None,
        suspend: false,
        on_member_loss,
        elastic: None,
        checkpoint: None,
        source: Some(SourceRef { api_version, kind: kind_name, name, uid }),
    })
}

/// The object's annotations, read with errors that name the annotation.
struct Annotations<'a>(&'a BTreeMap<String, String>);

impl Annotations<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    fn int(&self, key: &str, min: i64, max: i64) -> Result<Option<i64>, KindError> {
        match self.get(key) {
            None => Ok(None),
            Some(text) => text
                .trim()
                .parse::<i64>()
                .ok()
                .filter(|v| (min..=max).contains(v))
                .map(Some)
                .ok_or_else(|| ann_error(key, format!("must be an integer from {min} to {max}"))),
        }
    }

    fn text(&self, key: &str, max_len: usize) -> Result<Option<String>, KindError> {
        match self.get(key).map(str::trim) {
            None => Ok(None),
            Some(text) if !text.is_empty() && text.len() <= max_len => Ok(Some(text.to_string())),
            Some(_) => Err(ann_error(key, format!("must be 1 to {max_len} characters"))),
        }
    }
}

fn ann_error(key: &str, why: impl Into<String>) -> KindError {
    Error::field(&format!("metadata.annotations[{key}]"), why)
}

/// The non-empty items of a comma-separated list, trimmed, first occurrence kept.
fn comma_list(text: &str) -> Vec<String> {
    let mut seen = BTreeSet::new();
    text.split(',').map(str::trim).filter(|s| !s.is_empty() && seen.insert(*s)).map(str::to_string).collect()
}

fn required_text(obj: &Value, pointer: &str, field: &str, max_len: usize) -> Result<String, KindError> {
    obj.pointer(pointer)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty() && s.len() <= max_len)
        .map(str::to_string)
        .ok_or_else(|| Error::field(field, format!("must be a string of 1 to {max_len} characters")))
}

// ---- helpers shared by the kinds ----

/// The string entries of a JSON object (others are left out).
pub(crate) fn string_map(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_object)
        .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect())
        .unwrap_or_default()
}

/// A count field: absent or null gives `default`; otherwise a non-negative integer that fits an `i32`.
pub(crate) fn count_or(v: Option<&Value>, default: u32, field: &str) -> Result<u32, KindError> {
    match v {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v
            .as_u64()
            .filter(|n| *n <= i32::MAX as u64)
            .map(|n| n as u32)
            .ok_or_else(|| Error::field(field, "must be a non-negative integer")),
    }
}

/// A quantity as JSON: a string or a number. Exponent forms ("1e3", "5E-1") are taken
/// too, as Kubernetes writes them back in that form.
pub(crate) fn quantity(
    v: &Value,
    field: &str,
    parse: fn(&str) -> computenet_core::Result<u64>,
) -> Result<u64, KindError> {
    let text = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return Err(Error::field(field, "must be a quantity such as \"8\", \"500m\" or \"64Gi\"")),
    };
    let plain = without_exponent(&text).ok_or_else(|| Error::field(field, format!("{text:?} is not a quantity")))?;
    parse(&plain).map_err(|e| Error::field(field, e.to_string()))
}

/// Rewrites a decimal-exponent number ("1.5e3") as plain digits ("1500"); other text is
/// returned as it is. `None` for an exponent form that is not a number or too large.
fn without_exponent(text: &str) -> Option<String> {
    let Some(at) = text.find(['e', 'E']) else { return Some(text.to_string()) };
    let (mantissa, exp) = (&text[..at], &text[at + 1..]);
    let exp: i32 = exp.parse().ok().filter(|e: &i32| e.abs() <= 30)?;
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int.is_empty() && frac.is_empty() || !int.chars().chain(frac.chars()).all(|c| c.is_ascii_digit()) {
        return None;
    }
    let digits = format!("{int}{frac}");
    let point = int.len() as i32 + exp;
    Some(if point <= 0 {
        format!("0.{}{digits}", "0".repeat(point.unsigned_abs() as usize))
    } else if point as usize >= digits.len() {
        format!("{digits}{}", "0".repeat(point as usize - digits.len()))
    } else {
        let (a, b) = digits.split_at(point as usize);
        format!("{a}.{b}")
    })
}

/// The resources one container, init container or overhead asks for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Shape {
    pub cpu_millis: u64,
    pub memory_bytes: u64,
    pub gpus: u64,
}

impl Shape {
    fn add(self, o: Shape) -> Shape {
        Shape {
            cpu_millis: self.cpu_millis.saturating_add(o.cpu_millis),
            memory_bytes: self.memory_bytes.saturating_add(o.memory_bytes),
            gpus: self.gpus.saturating_add(o.gpus),
        }
    }

    fn max(self, o: Shape) -> Shape {
        Shape {
            cpu_millis: self.cpu_millis.max(o.cpu_millis),
            memory_bytes: self.memory_bytes.max(o.memory_bytes),
            gpus: self.gpus.max(o.gpus),
        }
    }
}

/// A resource list (`{cpu: ..., memory: ...}`) read as a shape.
fn resource_list(list: Option<&Value>, field: &str) -> Result<Shape, KindError> {
    let Some(list) = list.filter(|v| !v.is_null()) else { return Ok(Shape::default()) };
    let list = list.as_object().ok_or_else(|| Error::field(field, "must be a map of resource names to quantities"))?;
    let get = |name: &str, parse| list.get(name).map(|v| quantity(v, &format!("{field}.{name}"), parse)).transpose();
    Ok(Shape {
        cpu_millis: get("cpu", parse_cpu_millis)?.unwrap_or(0),
        memory_bytes: get("memory", parse_bytes)?.unwrap_or(0),
        gpus: get(GPU_RESOURCE, parse_count)?.unwrap_or(0),
    })
}

/// Whether computenet accounts resource `name`: the standard resources (`cpu`, `memory`,
/// `ephemeral-storage`, `hugepages-*`: no domain prefix) and [`GPU_RESOURCE`]. Other
/// extended resources (`nvidia.com/mig-1g.5gb`, `amd.com/gpu`) are not.
fn accounted_resource(name: &str) -> bool {
    !name.contains('/') || name == GPU_RESOURCE
}

/// An error naming `field` when a resource list asks for a resource computenet does not account.
fn check_accounted(list: Option<&Value>, field: &str) -> Result<(), KindError> {
    match list.and_then(Value::as_object).and_then(|l| l.keys().find(|k| !accounted_resource(k))) {
        Some(name) => Err(Error::field(field, format!("{name} is not a resource computenet accounts"))),
        None => Ok(()),
    }
}

/// What a container's `resources` (requirements) ask for: each resource's request, or its
/// limit when the request is absent (Kubernetes defaults requests to limits). A resource
/// computenet does not account (an extended resource other than [`GPU_RESOURCE`]) is an
/// error naming `field`.
pub(crate) fn requirements(resources: Option<&Value>, field: &str) -> Result<Shape, KindError> {
    let Some(resources) = resources.filter(|v| !v.is_null()) else { return Ok(Shape::default()) };
    if !resources.is_object() {
        return Err(Error::field(field, "must be an object with requests and limits"));
    }
    let requests_field = format!("{field}.requests");
    let limits_field = format!("{field}.limits");
    let requests = resources.get("requests").filter(|v| !v.is_null());
    let limits = resources.get("limits").filter(|v| !v.is_null());
    let req = resource_list(requests, &requests_field)?;
    let lim = resource_list(limits, &limits_field)?;
    check_accounted(requests, field)?;
    check_accounted(limits, field)?;
    let has = |list: Option<&Value>, name: &str| list.and_then(|l| l.get(name)).is_some();
    let pick = |name: &str, r: u64, l: u64| if has(requests, name) { r } else { l };
    Ok(Shape {
        cpu_millis: pick("cpu", req.cpu_millis, lim.cpu_millis),
        memory_bytes: pick("memory", req.memory_bytes, lim.memory_bytes),
        gpus: pick(GPU_RESOURCE, req.gpus, lim.gpus),
    })
}

/// A container list of a pod spec (absent is empty).
fn containers<'v>(pod: &'v Value, key: &str, field: &str) -> Result<&'v [Value], KindError> {
    match pod.get(key) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(_) => Err(Error::field(&format!("{field}.{key}"), "must be a list of containers")),
    }
}

/// Replaces the resources of one container by name: the trainer node's `resourcesPerNode`.
pub(crate) struct ResourceOverride<'a> {
    pub container: &'a str,
    pub resources: &'a Value,
    pub field: &'a str,
}

/// An error naming the path when a pod spec (`field` is its path) could leave the
/// member's isolation: `nodeName` (bypasses the scheduler), `hostNetwork`, `hostPID` or
/// `hostIPC` not false, a `hostPath` volume, or a container or init container that is
/// `privileged` or adds capabilities. Not-objects are left to the callers' checks.
pub(crate) fn check_isolation(pod: &Value, field: &str) -> Result<(), KindError> {
    let Some(map) = pod.as_object() else { return Ok(()) };
    let set = |v: Option<&Value>| v.is_some_and(|v| !v.is_null());
    if set(map.get("nodeName")) {
        return Err(Error::field(
            &format!("{field}.nodeName"),
            "must not be set: the member's scheduler places the pods",
        ));
    }
    for key in ["hostNetwork", "hostPID", "hostIPC"] {
        if map.get(key).is_some_and(|v| !v.is_null() && v != &Value::Bool(false)) {
            return Err(Error::field(
                &format!("{field}.{key}"),
                "must be false or absent: pods do not share the node's namespaces",
            ));
        }
    }
    match map.get("volumes") {
        None | Some(Value::Null) => {}
        Some(Value::Array(volumes)) => {
            if let Some(i) = volumes.iter().position(|v| set(v.get("hostPath"))) {
                return Err(Error::field(
                    &format!("{field}.volumes[{i}].hostPath"),
                    "hostPath volumes are not allowed",
                ));
            }
        }
        Some(_) => return Err(Error::field(&format!("{field}.volumes"), "must be a list of volumes")),
    }
    for list in ["containers", "initContainers"] {
        for (i, c) in containers(pod, list, field)?.iter().enumerate() {
            let at = format!("{field}.{list}[{i}].securityContext");
            if c.pointer("/securityContext/privileged").is_some_and(|v| !v.is_null() && v != &Value::Bool(false)) {
                return Err(Error::field(&format!("{at}.privileged"), "privileged containers are not allowed"));
            }
            let added = c.pointer("/securityContext/capabilities/add");
            if added.is_some_and(|a| !a.is_null() && a.as_array().is_none_or(|a| !a.is_empty())) {
                return Err(Error::field(&format!("{at}.capabilities.add"), "adding capabilities is not allowed"));
            }
        }
    }
    Ok(())
}

/// A pod template's spec (`field` is its path) as a pod group of `count` pods.
///
/// Refused with an error naming the path: what [`check_isolation`] refuses, dynamic
/// resource claims (`resourceClaims`), pod-level `resources` and resources computenet does
/// not account (see [`requirements`]).
pub(crate) fn pod_group(
    name: &str,
    count: u32,
    pod: Option<&Value>,
    field: &str,
    override_: Option<&ResourceOverride<'_>>,
) -> Result<PodGroup, KindError> {
    let pod = pod.filter(|p| p.is_object()).ok_or_else(|| Error::field(field, "must be a pod spec (an object)"))?;
    check_isolation(pod, field)?;
    if pod.get("resourceClaims").is_some_and(|c| !c.is_null()) {
        return Err(Error::field(
            &format!("{field}.resourceClaims"),
            "dynamic resource claims (DRA) are not resources computenet accounts",
        ));
    }
    if pod.get("resources").is_some_and(|r| !r.is_null()) {
        return Err(Error::field(
            &format!("{field}.resources"),
            "pod-level resources are not modelled by computenet; give the containers' resources",
        ));
    }
    let resources_of = |c: &Value, path: &str| -> Result<Shape, KindError> {
        if !c.is_object() {
            return Err(Error::field(path, "must be a container (an object)"));
        }
        match override_ {
            Some(o) if c.get("name").and_then(Value::as_str) == Some(o.container) => {
                requirements(Some(o.resources), o.field)
            }
            _ => requirements(c.get("resources"), &format!("{path}.resources")),
        }
    };
    let mut sum = Shape::default();
    for (i, c) in containers(pod, "containers", field)?.iter().enumerate() {
        sum = sum.add(resources_of(c, &format!("{field}.containers[{i}]"))?);
    }
    // Kubernetes' effective request: sidecars (restartPolicy Always) run alongside
    // everything started after them; other init containers one at a time.
    let mut init_peak = Shape::default();
    let mut sidecars = Shape::default();
    for (i, c) in containers(pod, "initContainers", field)?.iter().enumerate() {
        let own = resources_of(c, &format!("{field}.initContainers[{i}]"))?;
        if c.get("restartPolicy").and_then(Value::as_str) == Some("Always") {
            sum = sum.add(own);
            sidecars = sidecars.add(own);
            init_peak = init_peak.max(sidecars);
        } else {
            init_peak = init_peak.max(own.add(sidecars));
        }
    }
    let overhead_field = format!("{field}.overhead");
    let overhead = resource_list(pod.get("overhead"), &overhead_field)?;
    check_accounted(pod.get("overhead"), &overhead_field)?;
    let shape = sum.max(init_peak).add(overhead);
    let node_selector = match pod.get("nodeSelector") {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| {
                v.as_str()
                    .map(|v| (k.clone(), v.to_string()))
                    .ok_or_else(|| Error::field(&format!("{field}.nodeSelector.{k}"), "must be a string"))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(Error::field(&format!("{field}.nodeSelector"), "must be a map of strings")),
    };
    Ok(PodGroup {
        name: name.to_string(),
        count,
        cpu_millis: shape.cpu_millis,
        memory_bytes: shape.memory_bytes,
        gpus: u32::try_from(shape.gpus).unwrap_or(u32::MAX),
        node_selector,
    })
}

/// Checks the bounds of a whole gang: at most [`MAX_GANG_GROUPS`] groups and
/// [`MAX_GANG_PODS`] pods. `field` names the list the groups come from.
pub(crate) fn check_gang(groups: &[PodGroup], field: &str) -> Result<(), KindError> {
    if groups.len() > MAX_GANG_GROUPS {
        return Err(Error::field(
            field,
            format!("{} pod groups; computenet takes at most {MAX_GANG_GROUPS}", groups.len()),
        ));
    }
    let pods = groups.iter().fold(0u64, |n, g| n.saturating_add(u64::from(g.count)));
    if pods > MAX_GANG_PODS {
        return Err(Error::field(field, format!("{pods} pods in all; computenet takes at most {MAX_GANG_PODS}")));
    }
    Ok(())
}

/// The metadata and spec every member copy starts from: same name, the member namespace,
/// the labels without [`QUEUE_LABEL`] and with `cx.labels`, the annotations without
/// [`LAST_APPLIED_ANNOTATION`], and the spec with the suspend field false. Nothing else of
/// the metadata (uid, resourceVersion, ownerReferences, managedFields...) and no status.
pub(crate) fn copy_base(kind: &dyn JobKind, obj: &Value, cx: &CopyContext<'_>) -> Value {
    let resource = kind.resource();
    let mut labels = string_map(obj.pointer("/metadata/labels"));
    labels.remove(QUEUE_LABEL);
    labels.extend(cx.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
    let mut annotations = string_map(obj.pointer("/metadata/annotations"));
    annotations.remove(LAST_APPLIED_ANNOTATION);
    let mut metadata = Map::new();
    metadata
        .insert("name".into(), obj.pointer("/metadata/name").filter(|n| n.is_string()).cloned().unwrap_or_default());
    metadata.insert("namespace".into(), Value::String(cx.namespace.to_string()));
    if !labels.is_empty() {
        metadata.insert("labels".into(), to_object(&labels));
    }
    if !annotations.is_empty() {
        metadata.insert("annotations".into(), to_object(&annotations));
    }
    let spec = obj.get("spec").filter(|s| s.is_object()).cloned().unwrap_or_else(|| Value::Object(Map::new()));
    let mut copy = Value::Object(Map::from_iter([
        ("apiVersion".to_string(), Value::String(resource.api_version())),
        ("kind".to_string(), Value::String(resource.kind.to_string())),
        ("metadata".to_string(), Value::Object(metadata)),
        ("spec".to_string(), spec),
    ]));
    set_pointer(&mut copy, kind.suspend_pointer(), Value::Bool(false));
    copy
}

fn to_object(m: &BTreeMap<String, String>) -> Value {
    Value::Object(m.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect())
}

/// The object at `key` of `v`, made an object first when it is absent or not one.
fn object_at<'v>(v: &'v mut Map<String, Value>, key: &str) -> &'v mut Map<String, Value> {
    let slot = v.entry(key.to_string()).or_insert_with(|| Value::Object(Map::new()));
    if !slot.is_object() {
        *slot = Value::Object(Map::new());
    }
    match slot {
        Value::Object(m) => m,
        _ => unreachable!("made an object above"),
    }
}

/// Sets the value at a JSON pointer of object keys, making objects on the way.
fn set_pointer(root: &mut Value, pointer: &str, value: Value) {
    let keys: Vec<&str> = pointer.split('/').filter(|k| !k.is_empty()).collect();
    let Some((last, parents)) = keys.split_last() else { return };
    let Value::Object(mut m) = std::mem::take(root) else { return };
    let mut at = &mut m;
    for key in parents {
        at = object_at(at, key);
    }
    at.insert(last.to_string(), value);
    *root = Value::Object(m);
}

/// Inserts `key: value` into object `m` unless the key is there already.
fn default_key(m: &mut Map<String, Value>, key: &str, value: Value) {
    m.entry(key.to_string()).or_insert(value);
}

/// Whether a container asks for GPUs (a request or limit of `nvidia.com/gpu` other than zero).
fn asks_for_gpu(c: &Value) -> bool {
    ["requests", "limits"].iter().any(|list| {
        c.pointer(&format!("/resources/{list}"))
            .and_then(|l| l.get(GPU_RESOURCE))
            .is_some_and(|q| !matches!(quantity(q, GPU_RESOURCE, parse_count), Ok(0)))
    })
}

/// The pod spec fields a member copy drops: they would choose the member's priority,
/// preemption, scheduler or service account, which are the member's to decide.
pub(crate) const DROPPED_POD_FIELDS: [&str; 6] =
    ["priorityClassName", "priority", "preemptionPolicy", "schedulerName", "serviceAccountName", "serviceAccount"];

/// Prepares one pod template (`{metadata, spec}`) of a member copy: adds `cx.labels`;
/// removes [`DROPPED_POD_FIELDS`]; sets `automountServiceAccountToken: false`; when
/// `cx.gpu_product` is set and the pods ask for `nvidia.com/gpu`, sets the `nodeSelector`
/// [`GPU_PRODUCT_LABEL`] to it (replacing the user's); and fills what Pod Security
/// `restricted` requires where the user set nothing (pod `runAsNonRoot: true` and
/// `seccompProfile: RuntimeDefault`; each container's `allowPrivilegeEscalation: false`
/// and `capabilities.drop: [ALL]`), keeping what the user set there.
pub(crate) fn prepare_pod_template(template: &mut Value, cx: &CopyContext<'_>) {
    let Value::Object(template) = template else { return };
    if !cx.labels.is_empty() {
        let labels = object_at(object_at(template, "metadata"), "labels");
        for (k, v) in cx.labels {
            labels.insert(k.clone(), Value::String(v.clone()));
        }
    }
    let spec = object_at(template, "spec");
    let lists = ["containers", "initContainers"];
    if let Some(product) = cx.gpu_product {
        let wants_gpu = lists.iter().filter_map(|l| spec.get(*l).and_then(Value::as_array)).flatten().any(asks_for_gpu);
        if wants_gpu {
            // The type the scheduler chose and accounted, whatever the user selected.
            object_at(spec, "nodeSelector").insert(GPU_PRODUCT_LABEL.to_string(), Value::String(product.to_string()));
        }
    }
    for key in DROPPED_POD_FIELDS {
        spec.remove(key);
    }
    spec.insert("automountServiceAccountToken".to_string(), Value::Bool(false));
    let security = object_at(spec, "securityContext");
    default_key(security, "runAsNonRoot", Value::Bool(true));
    default_key(security, "seccompProfile", serde_json::json!({"type": "RuntimeDefault"}));
    for list in lists {
        let Some(Value::Array(cs)) = spec.get_mut(list) else { continue };
        for c in cs.iter_mut().filter_map(Value::as_object_mut) {
            let security = object_at(c, "securityContext");
            default_key(security, "allowPrivilegeEscalation", Value::Bool(false));
            default_key(object_at(security, "capabilities"), "drop", serde_json::json!(["ALL"]));
        }
    }
}

/// The status condition of type `kind` when its status is "True": (reason, message).
pub(crate) fn true_condition(obj: &Value, kind: &str) -> Option<(String, String)> {
    obj.pointer("/status/conditions")?.as_array()?.iter().find_map(|c| {
        (c.get("type")?.as_str()? == kind && c.get("status")?.as_str()? == "True").then(|| {
            let text = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
            (text("reason"), text("message"))
        })
    })
}

/// Whether any entry of the status list at `pointer` has a positive number in one of `keys`.
pub(crate) fn any_positive(obj: &Value, pointer: &str, keys: &[&str]) -> bool {
    obj.pointer(pointer).and_then(Value::as_array).is_some_and(|a| {
        a.iter().any(|e| keys.iter().any(|k| e.get(*k).and_then(Value::as_i64).is_some_and(|n| n > 0)))
    })
}

#[cfg(test)]
pub(crate) mod test_support;

#[cfg(test)]
mod tests;

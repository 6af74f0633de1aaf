//! Training jobs: gangs of replicas, their constraints, work estimate and objective.

use crate::error::{Error, Result};
pub use crate::resources::ReplicaRequest;
use crate::resources::{ClusterKind, NodeSlot};
use serde::{Deserialize, Serialize};

/// Which accelerator types a job accepts.
#[derive(Debug, Clone, Default, PartialEq, Hash, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AcceleratorConstraint {
    /// Allowed types by catalogue name; empty allows any type.
    #[serde(default)]
    pub types: Vec<String>,
    /// Minimum device memory in GiB, when the job needs it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_memory_gib: Option<u32>,
}

/// How much work a job is, so its runtime can be estimated per accelerator type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Work {
    /// A profiled model trained for a number of steps at a global batch size.
    ModelSteps { model: String, steps: u64, batch_size: Option<u32> },
    /// Device-hours on a reference device type (e.g. 512 hours on a V100).
    DeviceHours { hours: f64, reference: String },
    /// No estimate given: the maximum runtime (or one hour) is assumed.
    Unknown,
}

/// What the job owner wants the placement to optimise.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Objective {
    /// Earliest completion.
    Fastest,
    /// Lowest energy cost.
    Cheapest,
    /// Lowest carbon (energy where carbon intensity is unknown).
    Greenest,
    /// A weighted mix of completion time, energy and cost.
    #[default]
    Balanced,
}

impl Objective {
    /// All objectives.
    pub const ALL: [Objective; 4] = [Objective::Fastest, Objective::Cheapest, Objective::Greenest, Objective::Balanced];
}

impl std::fmt::Display for Objective {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

/// An elastic gang: it may run at any replica count in `min_replicas..=max_replicas`
/// (torchrun `--nnodes=min:max`); the scheduler picks the size and may change it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ElasticRange {
    pub min_replicas: u32,
    pub max_replicas: u32,
}

impl ElasticRange {
    /// Whether `replicas` is an allowed size.
    pub fn contains(&self, replicas: u32) -> bool {
        (self.min_replicas..=self.max_replicas).contains(&replicas)
    }
}

/// A restartable job: it checkpoints, can be stopped (SIGTERM, then `grace_period_s`)
/// and resumes from its last checkpoint. A restart loses `restart_cost_s` of progress
/// (time to stop, start and reload, plus work since the last checkpoint).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Restart {
    pub grace_period_s: u64,
    pub restart_cost_s: u64,
}

/// A pending training job: a gang of `replicas` that runs whole on one cluster or not at all.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    /// Unique, stable identifier (the TrainingJob UID in the service).
    pub id: String,
    pub queue: String,
    #[serde(default)]
    pub priority: i32,
    /// Submission time, seconds on the caller's clock.
    pub submitted_at: u64,
    pub replicas: u32,
    pub per_replica: ReplicaRequest,
    #[serde(default)]
    pub accelerator: AcceleratorConstraint,
    /// Allowed cluster kinds; empty allows all.
    #[serde(default)]
    pub cluster_kinds: Vec<ClusterKind>,
    /// Allowed sites; empty allows all.
    #[serde(default)]
    pub sites: Vec<String>,
    #[serde(default)]
    pub data_set: Option<String>,
    pub work: Work,
    #[serde(default)]
    pub objective: Objective,
    #[serde(default)]
    pub max_runtime_s: Option<u64>,
    /// The tenant the job belongs to (its hub namespace): a member that maps tenants
    /// takes only theirs.
    #[serde(default)]
    pub tenant: String,
    /// Set when the gang may be resized; `replicas` is then its current or first size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elastic: Option<ElasticRange>,
    /// Set when the job may be stopped and resumed; None: rigid, a restart starts over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart: Option<Restart>,
    /// The kind of object the job runs as when it is not a TrainingJob (JobSet, TrainJob,
    /// PyTorchJob): only members that run that kind can take it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_kind: Option<String>,
}

impl Job {
    /// Checks what a schema cannot: a gang needs at least one replica that asks for something.
    pub fn validate(&self) -> Result<()> {
        if self.replicas == 0 {
            return Err(Error::invalid("job", &self.id, "replicas must be at least 1"));
        }
        let r = &self.per_replica;
        if r.cpu_millis == 0 && r.memory_bytes == 0 && r.accelerators == 0 && r.extended.values().all(|v| *v == 0) {
            return Err(Error::invalid("job", &self.id, "a replica must request some resource"));
        }
        match &self.work {
            Work::DeviceHours { hours, .. } if !(hours.is_finite() && *hours >= 0.0) => {
                Err(Error::invalid("job", &self.id, "work hours must be a non-negative number"))
            }
            Work::ModelSteps { steps: 0, .. } => Err(Error::invalid("job", &self.id, "work steps must be at least 1")),
            _ => match self.elastic {
                Some(e) if e.min_replicas == 0 || e.min_replicas > e.max_replicas => {
                    Err(Error::invalid("job", &self.id, "elastic replicas need 1 <= min <= max"))
                }
                Some(e) if !e.contains(self.replicas) => {
                    Err(Error::invalid("job", &self.id, "replicas must lie within the elastic range"))
                }
                _ => Ok(()),
            },
        }
    }

    /// Total accelerators of the gang.
    pub fn total_accelerators(&self) -> u64 {
        u64::from(self.replicas) * u64::from(self.per_replica.accelerators)
    }
}

/// A job already placed and running (or dispatched), as the cycle needs to see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunningJob {
    pub id: String,
    pub queue: String,
    pub priority: i32,
    /// Index of its cluster in the pool.
    pub cluster: usize,
    pub accelerator: Option<String>,
    pub slots: Vec<NodeSlot>,
    pub per_replica: ReplicaRequest,
    pub started_at: u64,
    /// When it is expected to end (start + estimate, or start + maximum runtime).
    pub estimated_end: u64,
    /// Set when the job is restartable: what stopping it now loses (it keeps the rest of
    /// its progress). None: a rigid job, whose whole run so far is lost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_cost_s: Option<u64>,
}

impl RunningJob {
    /// `job` started at `now` at `placement`, expected to end at `estimated_end`.
    pub fn started(job: &Job, placement: &crate::explain::Placement, now: u64, estimated_end: u64) -> Self {
        RunningJob {
            id: job.id.clone(),
            queue: job.queue.clone(),
            priority: job.priority,
            cluster: placement.cluster_index,
            accelerator: placement.accelerator.clone(),
            slots: placement.slots.clone(),
            per_replica: job.per_replica.clone(),
            started_at: now,
            estimated_end,
            restart_cost_s: job.restart.map(|r| r.restart_cost_s),
        }
    }

    /// Replicas of the gang.
    pub fn replicas(&self) -> u32 {
        self.slots.iter().map(|s| s.replicas).sum()
    }
}

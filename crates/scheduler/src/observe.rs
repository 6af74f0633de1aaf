//! What `/metrics`, `/api/pool` and the dashboard show: one plain-data observation of the
//! pool, built after each scheduling cycle by a pure function of the cycle's snapshot and
//! the hub's objects (no IO, so it is tested with hand-built inputs), and the usage panel's
//! ([`usage`]: metered usage today and this month, shares and budgets per queue).

use crate::snapshot::Built;
use computenet_api::usage::{totals, ComputeUsage, UsageAmounts, UsageSum};
use computenet_api::view;
use computenet_api::{ComputeQueue, MemberCluster, TrainingJob};
use computenet_core::accelerator::CPU_ONLY;
use computenet_core::usage::{civil, Amounts, BudgetPeriod};
use computenet_core::{Catalogue, Cluster};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// How many recent placements an observation keeps.
pub const RECENT_PLACEMENTS: usize = 20;

/// The whole pool at one moment.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolObservation {
    /// Seconds since the epoch when the observation was made (0: no cycle has run yet).
    pub generated_at: u64,
    /// Member clusters, by name.
    pub members: Vec<MemberObservation>,
    /// ComputeQueues, by name.
    pub queues: Vec<QueueObservation>,
    /// The most recent placements, newest first (at most [`RECENT_PLACEMENTS`]).
    pub placements: Vec<PlacementObservation>,
}

/// Capacity in one unit: all of it, what is in use, and what can take new work.
///
/// `total - allocated - free` is capacity on nodes that are not schedulable (cordoned,
/// drained or not ready).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Capacity {
    pub total: f64,
    pub allocated: f64,
    pub free: f64,
}

impl Capacity {
    fn add(&mut self, total: f64, allocated: f64, free: f64) {
        self.total += total;
        self.allocated += allocated;
        self.free += free;
    }
}

/// Accelerators of one type on a member.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AcceleratorObservation {
    /// Catalogue name of the type.
    pub accelerator: String,
    /// Devices.
    #[serde(flatten)]
    pub devices: Capacity,
}

/// Where an efficiency figure comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum EfficiencySource {
    /// Catalogue figures: peak TFLOPS over board power, divided by the PUE.
    Rated,
    /// Measured utilisation and power.
    Measured,
}

/// One member cluster.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberObservation {
    pub name: String,
    /// General, AI or HPC.
    pub kind: String,
    pub site: String,
    pub ready: bool,
    pub cordoned: bool,
    /// Nodes seen on the member.
    pub nodes: usize,
    /// Accelerators by type (catalogue name order).
    pub accelerators: Vec<AcceleratorObservation>,
    /// CPU cores.
    pub cpu_cores: Capacity,
    /// Power usage effectiveness of the facility (from the efficiency profile).
    pub pue: f64,
    /// Peak dense 16-bit TFLOPS of all accelerators (CPU cores on a CPU-only member).
    pub peak_tflops: f64,
    /// Measured IT power draw of the member's accelerators, in watts.
    pub power_watts: Option<f64>,
    /// Measured mean accelerator utilisation (0..1).
    pub gpu_utilization_ratio: Option<f64>,
    /// TFLOPS per facility watt; `None` for a member without nodes.
    pub tflops_per_watt: Option<f64>,
    pub efficiency_source: EfficiencySource,
    /// Seconds since the last successful contact recorded in the MemberCluster status.
    pub heartbeat_age_seconds: Option<f64>,
    /// Board power of all accelerators, for the rated figure (not serialised).
    #[serde(skip)]
    pub(crate) rated_power_watts: f64,
}

impl MemberObservation {
    /// Records measured power (watts of IT load) and utilisation (0..1), and recomputes
    /// the efficiency: with both, achieved TFLOPS (peak x utilisation) per facility watt
    /// (power x PUE); otherwise the rated figure.
    pub fn set_measured(&mut self, power_watts: Option<f64>, gpu_utilization_ratio: Option<f64>) {
        self.power_watts = power_watts;
        self.gpu_utilization_ratio = gpu_utilization_ratio;
        let pue = self.pue.max(1.0);
        match (power_watts, gpu_utilization_ratio) {
            (Some(w), Some(u)) if w > 0.0 => {
                self.tflops_per_watt =
                    Some(computenet_core::throughput::useful_tflops_per_watt(self.peak_tflops, u, w, pue));
                self.efficiency_source = EfficiencySource::Measured;
            }
            _ => {
                self.tflops_per_watt =
                    (self.rated_power_watts > 0.0).then(|| self.peak_tflops / (self.rated_power_watts * pue));
                self.efficiency_source = EfficiencySource::Rated;
            }
        }
    }

    /// All accelerators of the member, summed over types.
    pub fn accelerator_totals(&self) -> Capacity {
        let mut sum = Capacity::default();
        for a in &self.accelerators {
            sum.add(a.devices.total, a.devices.allocated, a.devices.free);
        }
        sum
    }
}

/// One ComputeQueue.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueObservation {
    pub name: String,
    pub cohort: Option<String>,
    /// Waiting jobs (not admitted, not finished).
    pub pending: u64,
    /// Jobs holding capacity (admitted, dispatched or running).
    pub admitted: u64,
    /// Admitted jobs whose replicas run (a subset of `admitted`).
    pub running: u64,
    /// Accelerators held by the admitted jobs.
    pub accelerators_used: u64,
    /// Nominal accelerator quota (all types, or the sum of per-type quotas); `None` is unlimited.
    pub accelerators_quota: Option<u64>,
    /// The first pending jobs by queue position.
    pub top_pending: Vec<PendingObservation>,
}

/// A pending job and its place in the queue.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingObservation {
    pub namespace: String,
    pub name: String,
    /// 1 is next.
    pub position: u32,
    /// Accelerators of the whole gang.
    pub accelerators: u64,
    /// Why it waits.
    pub reason: String,
}

/// Where a job was placed and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlacementObservation {
    pub namespace: String,
    pub name: String,
    pub queue: String,
    pub cluster: String,
    /// Accelerator type, `None` for CPU-only jobs.
    pub accelerator: Option<String>,
    pub accelerators: i64,
    /// Current phase of the job (Admitted, Dispatched, Running, Succeeded, ...).
    pub phase: String,
    /// Seconds since the epoch when the job was admitted.
    pub admitted_at: u64,
    pub backfilled: bool,
    pub estimated_runtime_seconds: f64,
    pub estimated_energy_kwh: f64,
    /// The explanation's summary: why this cluster.
    pub reason: String,
}

/// Last heartbeats (seconds since the epoch) recorded in the members' status, by name.
pub fn heartbeats<'a>(members: impl IntoIterator<Item = &'a MemberCluster>) -> BTreeMap<String, u64> {
    members
        .into_iter()
        .filter_map(|m| {
            let at = view::unix(m.status.as_ref()?.last_heartbeat.as_ref()?.0);
            Some((m.metadata.name.clone()?, at))
        })
        .collect()
}

fn member(c: &Cluster, catalogue: &Catalogue, heartbeat: Option<u64>, now: u64) -> MemberObservation {
    let mut by_type: BTreeMap<String, Capacity> = BTreeMap::new();
    let mut cpu = Capacity::default();
    for n in &c.nodes {
        let free = n.free();
        let allocated = n.allocated.cpu_millis.min(n.allocatable.cpu_millis);
        cpu.add(n.allocatable.cpu_millis as f64 / 1000.0, allocated as f64 / 1000.0, free.cpu_millis as f64 / 1000.0);
        if let Some(a) = &n.accelerator {
            by_type.entry(a.clone()).or_default().add(
                f64::from(n.allocatable.accelerators),
                f64::from(n.allocated.accelerators.min(n.allocatable.accelerators)),
                f64::from(free.accelerators),
            );
        }
    }
    // Rated efficiency: the accelerators weighted by count, or the CPU cores of a CPU-only member.
    let (mut peak, mut power) = (0.0, 0.0);
    if by_type.is_empty() {
        if let Some(s) = catalogue.get(CPU_ONLY) {
            peak = s.peak_tflops * cpu.total;
            power = s.board_power_w * cpu.total;
        }
    } else {
        for (name, devices) in &by_type {
            if let Some(s) = catalogue.get(name) {
                peak += s.peak_tflops * devices.total;
                power += s.board_power_w * devices.total;
            }
        }
    }
    let mut m = MemberObservation {
        name: c.name.clone(),
        kind: c.kind.to_string(),
        site: c.site.clone(),
        ready: c.ready,
        cordoned: c.cordoned,
        nodes: c.nodes.len(),
        accelerators: by_type
            .into_iter()
            .map(|(accelerator, devices)| AcceleratorObservation { accelerator, devices })
            .collect(),
        cpu_cores: cpu,
        pue: c.efficiency.pue,
        peak_tflops: peak,
        power_watts: None,
        gpu_utilization_ratio: None,
        tflops_per_watt: None,
        efficiency_source: EfficiencySource::Rated,
        heartbeat_age_seconds: heartbeat.map(|t| now.saturating_sub(t) as f64),
        rated_power_watts: power,
    };
    m.set_measured(None, None);
    m
}

fn queue(q: &ComputeQueue, built: &Built, jobs: &[Arc<TrainingJob>], top_n: usize) -> QueueObservation {
    let name = q.metadata.name.clone().unwrap_or_default();
    let core = built.queues.iter().find(|cq| cq.name == name);
    let usage = view::queue_usage(&name, core, jobs.iter().map(AsRef::as_ref));
    let mut top: Vec<PendingObservation> = jobs
        .iter()
        .filter(|j| j.spec.queue_name == name && !view::is_finished(j) && !view::is_admitted(j))
        .filter_map(|j| {
            let status = j.status.as_ref()?;
            Some(PendingObservation {
                namespace: j.metadata.namespace.clone().unwrap_or_default(),
                name: j.metadata.name.clone().unwrap_or_default(),
                position: u32::try_from(status.queue_position?).ok()?,
                accelerators: view::gang_accelerators(j),
                reason: status.explanation.as_ref().map(|e| e.summary.clone()).unwrap_or_default(),
            })
        })
        .collect();
    top.sort_by(|a, b| (a.position, &a.namespace, &a.name).cmp(&(b.position, &b.namespace, &b.name)));
    top.truncate(top_n);
    QueueObservation {
        cohort: q.spec.cohort.clone(),
        pending: usage.pending,
        admitted: usage.admitted,
        running: usage.running,
        accelerators_used: usage.accelerators_used,
        accelerators_quota: usage.accelerators_quota,
        top_pending: top,
        name,
    }
}

fn placement(tj: &TrainingJob) -> Option<PlacementObservation> {
    let status = tj.status.as_ref()?;
    let p = status.placement.as_ref()?;
    Some(PlacementObservation {
        namespace: tj.metadata.namespace.clone().unwrap_or_default(),
        name: tj.metadata.name.clone().unwrap_or_default(),
        queue: tj.spec.queue_name.clone(),
        cluster: p.cluster.clone(),
        accelerator: p.accelerator.clone(),
        accelerators: p.gpus,
        phase: status.phase.map(|p| format!("{p:?}")).unwrap_or_default(),
        admitted_at: view::unix(status.start_time.as_ref()?.0),
        backfilled: p.backfilled,
        estimated_runtime_seconds: p.estimated_runtime_seconds,
        estimated_energy_kwh: p.estimated_energy_k_wh,
        reason: status.explanation.as_ref().map(|e| e.summary.clone()).unwrap_or_default(),
    })
}

/// Observes the pool: members from the cycle's snapshot (`built.pool.clusters`, in
/// order), queues from the ComputeQueues and the jobs' status, the top `top_n` pending
/// jobs of each queue, and the latest placements. `heartbeats` holds each member's last
/// heartbeat in seconds since the epoch (see [`heartbeats`]).
pub fn observe(
    built: &Built,
    queues: &[Arc<ComputeQueue>],
    jobs: &[Arc<TrainingJob>],
    heartbeats: &BTreeMap<String, u64>,
    now_unix: u64,
    top_n: usize,
) -> PoolObservation {
    let mut members: Vec<MemberObservation> = built
        .pool
        .clusters
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut m = member(c, &built.pool.catalogue, heartbeats.get(&c.name).copied(), now_unix);
            if let Some(measured) = built.measured.get(i).and_then(Option::as_ref) {
                m.set_measured(measured.gpu_power_watts, measured.gpu_utilization);
            }
            m
        })
        .collect();
    members.sort_by(|a, b| a.name.cmp(&b.name));
    let mut queues: Vec<QueueObservation> = queues.iter().map(|q| queue(q, built, jobs, top_n)).collect();
    queues.sort_by(|a, b| a.name.cmp(&b.name));
    let mut placements: Vec<PlacementObservation> = jobs.iter().filter_map(|j| placement(j)).collect();
    placements.sort_by(|a, b| {
        b.admitted_at.cmp(&a.admitted_at).then_with(|| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)))
    });
    placements.truncate(RECENT_PLACEMENTS);
    PoolObservation { generated_at: now_unix, members, queues, placements }
}

/// Metered usage for the dashboard's usage panel: per queue, today and this month (UTC),
/// with its share and budget, and the pool's totals. Served in `/api/pool` as `usage`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageObservation {
    /// Seconds since the epoch when it was made (0: not yet).
    pub generated_at: u64,
    /// Start of the current UTC day, seconds since the epoch.
    pub day_start: u64,
    /// Start of the current UTC month, seconds since the epoch.
    pub month_start: u64,
    /// The ComputeQueues, and queues that are gone but have usage this month, by name.
    pub queues: Vec<QueueUsageObservation>,
    /// All queues today.
    pub today: UsageFigures,
    /// All queues this month.
    pub month: UsageFigures,
}

/// Usage over some time: ended attempts' rows whose hourly bucket starts in it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageFigures {
    pub gpu_hours: f64,
    #[serde(rename = "energyKWh")]
    pub energy_kwh: f64,
    pub cost: f64,
    /// Useful TFLOPS per facility watt achieved; `None` without energy.
    pub tflops_per_watt: Option<f64>,
}

impl From<&Amounts> for UsageFigures {
    fn from(a: &Amounts) -> Self {
        UsageFigures {
            gpu_hours: a.gpu_hours(),
            energy_kwh: a.energy_kwh,
            cost: a.cost,
            tflops_per_watt: (a.energy_kwh > 0.0).then(|| a.tflops_per_watt()),
        }
    }
}

/// One queue's usage, share and budget.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueUsageObservation {
    pub name: String,
    pub today: UsageFigures,
    pub month: UsageFigures,
    /// The share jobs are ordered by (status.share); `None` until the service writes it.
    pub share: Option<f64>,
    /// Decayed past usage as a share of the quotas (status.pastShare).
    pub past_share: Option<f64>,
    /// `None` without a budget.
    pub budget: Option<BudgetObservation>,
}

/// A queue's budget in its current period.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BudgetObservation {
    /// The current period, seconds since the epoch (from status.budget, else computed).
    pub period_start: u64,
    pub period_end: u64,
    /// Each limit the budget sets, in the order it is checked (GPU-hours, kWh, cost).
    pub limits: Vec<BudgetLimitObservation>,
    /// A limit is reached: the queue admits nothing new until `period_end`.
    pub exhausted: bool,
    pub message: Option<String>,
}

/// One limit of a budget and what the period spent of it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BudgetLimitObservation {
    /// "GPU-hours", "kWh" or "cost".
    pub unit: &'static str,
    /// Spent in the period (0 until the service writes status.budget).
    pub spent: f64,
    pub limit: f64,
}

fn budget(q: &ComputeQueue, now_unix: u64) -> Option<BudgetObservation> {
    let spec = q.spec.budget.as_ref()?.core();
    let status = q.status.as_ref().and_then(|s| s.budget.as_ref());
    let spent = Amounts::from(status.map_or_else(UsageAmounts::default, |b| b.spent));
    let limits = [
        (spec.gpu_hours, spent.gpu_hours(), "GPU-hours"),
        (spec.kilowatt_hours, spent.energy_kwh, "kWh"),
        (spec.cost, spent.cost, "cost"),
    ]
    .into_iter()
    .filter_map(|(limit, spent, unit)| Some(BudgetLimitObservation { unit, spent, limit: limit? }))
    .collect();
    let (period_start, period_end) = match status {
        Some(b) => (view::unix(b.period_start.0), view::unix(b.period_end.0)),
        None => spec.period.bounds(now_unix),
    };
    Some(BudgetObservation {
        period_start,
        period_end,
        limits,
        exhausted: status.is_some_and(|b| b.exhausted),
        message: status.and_then(|b| b.message.clone()),
    })
}

/// Sums per queue, and over all queues.
fn by_queue(sums: &BTreeMap<computenet_api::usage::UsageKey, UsageSum>) -> (BTreeMap<&str, Amounts>, Amounts) {
    let mut queues: BTreeMap<&str, Amounts> = BTreeMap::new();
    let mut all = Amounts::default();
    for (key, sum) in sums {
        let q = queues.entry(key.queue.as_str()).or_default();
        *q = q.plus(&sum.amounts);
        all = all.plus(&sum.amounts);
    }
    (queues, all)
}

/// The usage panel at `now_unix`: the usage store's rows of the current UTC day and month
/// (by bucket start, with [`totals`]), and each queue's share and budget from its status.
pub fn usage(usage: &[Arc<ComputeUsage>], queues: &[Arc<ComputeQueue>], now_unix: u64) -> UsageObservation {
    let (day_start, day_end) = BudgetPeriod::Day.bounds(now_unix);
    let (month_start, month_end) = BudgetPeriod::Month.bounds(now_unix);
    let seconds = |t: u64| i64::try_from(t).unwrap_or(i64::MAX);
    // An object's rows start before the end of its day: those of earlier days are skipped.
    let (y, m, d) = civil(month_start / 86_400);
    let first_day = format!("{y:04}-{m:02}-{d:02}");
    let this_month: Vec<&ComputeUsage> = usage
        .iter()
        .map(AsRef::as_ref)
        .filter(|o| !(o.spec.day.len() == first_day.len() && o.spec.day < first_day))
        .collect();
    let month_sums = totals(this_month.iter().copied(), seconds(month_start), seconds(month_end));
    let day_sums = totals(this_month.iter().copied(), seconds(day_start), seconds(day_end));
    let (month_by_queue, month_all) = by_queue(&month_sums);
    let (day_by_queue, day_all) = by_queue(&day_sums);
    let mut rows: BTreeMap<String, QueueUsageObservation> = BTreeMap::new();
    let empty = |name: &str| QueueUsageObservation {
        name: name.to_string(),
        today: UsageFigures::default(),
        month: UsageFigures::default(),
        share: None,
        past_share: None,
        budget: None,
    };
    for q in queues {
        let name = q.metadata.name.clone().unwrap_or_default();
        let status = q.status.as_ref();
        rows.insert(
            name.clone(),
            QueueUsageObservation {
                share: status.and_then(|s| s.share),
                past_share: status.and_then(|s| s.past_share),
                budget: budget(q, now_unix),
                ..empty(&name)
            },
        );
    }
    for (name, amounts) in &month_by_queue {
        rows.entry(name.to_string()).or_insert_with(|| empty(name)).month = UsageFigures::from(amounts);
    }
    for (name, amounts) in &day_by_queue {
        rows.entry(name.to_string()).or_insert_with(|| empty(name)).today = UsageFigures::from(amounts);
    }
    UsageObservation {
        generated_at: now_unix,
        day_start,
        month_start,
        queues: rows.into_values().collect(),
        today: UsageFigures::from(&day_all),
        month: UsageFigures::from(&month_all),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use computenet_api::compute_queue::ComputeQueueSpec;
    use computenet_api::training_job::{
        ExplanationStatus, PlacementStatus, TrainingJobPhase, TrainingJobSpec, TrainingJobStatus,
    };
    use computenet_core::{ClusterEfficiency, ClusterKind, Node, NodeCapacity, Pool, Queue, Quota, ResourceName};

    fn node(name: &str, accelerator: Option<&str>, gpus: (u32, u32), cpu: (u64, u64)) -> Node {
        Node {
            name: name.into(),
            accelerator: accelerator.map(str::to_string),
            allocatable: NodeCapacity {
                cpu_millis: cpu.0,
                memory_bytes: 1 << 36,
                accelerators: gpus.0,
                ..Default::default()
            },
            allocated: NodeCapacity { cpu_millis: cpu.1, memory_bytes: 0, accelerators: gpus.1, ..Default::default() },
            topology_domain: String::new(),
            unschedulable: false,
        }
    }

    fn cluster(name: &str, kind: ClusterKind, pue: f64, nodes: Vec<Node>) -> Cluster {
        Cluster {
            workload_kinds: Vec::new(),
            tenants: None,
            name: name.into(),
            kind,
            site: format!("site-{name}"),
            ready: true,
            cordoned: false,
            efficiency: ClusterEfficiency { pue, ..Default::default() },
            data_sets: Vec::new(),
            nodes,
        }
    }

    fn built(clusters: Vec<Cluster>, queues: Vec<Queue>) -> Built {
        Built {
            pool: Pool {
                clusters,
                catalogue: Catalogue::built_in(),
                data_sets: BTreeMap::new(),
                wan_gbps: view::WAN_GBPS,
            },
            queues,
            cohorts: Vec::new(),
            pending: Vec::new(),
            running: Vec::new(),
            problems: Vec::new(),
            measured: Vec::new(),
        }
    }

    fn compute_queue(name: &str, cohort: Option<&str>) -> Arc<ComputeQueue> {
        let spec: ComputeQueueSpec = serde_json::from_value(serde_json::json!({
            "cohort": cohort,
            "quotas": [{"resource": "nvidia.com/gpu", "nominal": 8}],
        }))
        .unwrap();
        let mut q = ComputeQueue::new(name, spec);
        q.metadata.name = Some(name.into());
        Arc::new(q)
    }

    fn job(name: &str, queue: &str, gpus: u32, status: TrainingJobStatus) -> Arc<TrainingJob> {
        let spec: TrainingJobSpec = serde_json::from_value(serde_json::json!({
            "queueName": queue,
            "replicas": 2,
            "resources": {"cpu": "1", "memory": "1Gi", "accelerators": {"count": gpus}},
            "workload": {"image": "busybox", "command": ["true"]},
        }))
        .unwrap();
        let mut tj = TrainingJob::new(name, spec);
        tj.metadata.namespace = Some("team-a".into());
        tj.status = Some(status);
        Arc::new(tj)
    }

    fn queued(position: i32, why: &str) -> TrainingJobStatus {
        TrainingJobStatus {
            phase: Some(TrainingJobPhase::Queued),
            queue_position: Some(position),
            admitted: Some(false),
            explanation: Some(ExplanationStatus { summary: why.into(), ..Default::default() }),
            ..Default::default()
        }
    }

    fn placed(cluster: &str, phase: TrainingJobPhase, gpus: i64, at: &str) -> TrainingJobStatus {
        TrainingJobStatus {
            phase: Some(phase),
            admitted: Some(!phase.is_finished()),
            placement: Some(PlacementStatus {
                cluster: cluster.into(),
                accelerator: Some("A100-80G".into()),
                gpus,
                estimated_runtime_seconds: 60.0,
                ..Default::default()
            }),
            explanation: Some(ExplanationStatus {
                summary: format!("admitted to {cluster} (A100-80G): best of 1 feasible member(s) by Balanced"),
                ..Default::default()
            }),
            start_time: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(at.parse().unwrap())),
            ..Default::default()
        }
    }

    fn sample() -> PoolObservation {
        let clusters = vec![
            cluster(
                "ai-1",
                ClusterKind::AI,
                1.25,
                vec![
                    node("g1", Some("A100-80G"), (8, 4), (64_000, 8_000)),
                    node("g2", Some("A100-80G"), (8, 0), (64_000, 0)),
                    node("t1", Some("T4"), (4, 0), (32_000, 0)),
                ],
            ),
            cluster("cpu-2", ClusterKind::General, 1.5, vec![node("c1", None, (0, 0), (16_000, 4_500))]),
        ];
        let queues = vec![Queue {
            quotas: vec![Quota {
                resource: ResourceName::Accelerators,
                accelerator: None,
                nominal: 8,
                borrowing_limit: None,
                lending_limit: None,
            }],
            cohort: Some("research".into()),
            ..Queue::unlimited("research")
        }];
        let jobs = vec![
            job("run", "research", 2, placed("ai-1", TrainingJobPhase::Running, 4, "2026-01-01T00:01:40Z")),
            job("new", "research", 1, placed("ai-1", TrainingJobPhase::Dispatched, 2, "2026-01-01T00:03:20Z")),
            job("done", "research", 1, placed("ai-1", TrainingJobPhase::Succeeded, 2, "2026-01-01T00:00:10Z")),
            job("third", "research", 4, queued(3, "waiting for capacity")),
            job("first", "research", 4, queued(1, "first in line: capacity reserved on ai-1")),
            job("second", "research", 4, queued(2, "waiting for capacity")),
            job("other", "elsewhere", 4, queued(1, "queue not found")),
        ];
        let heartbeats = BTreeMap::from([("ai-1".to_string(), 1_767_225_590)]);
        observe(
            &built(clusters, queues),
            &[compute_queue("research", Some("research"))],
            &jobs,
            &heartbeats,
            1_767_225_600, // 2026-01-01T00:00:00Z
            2,
        )
    }

    #[test]
    fn members_capacity_by_type() {
        let o = sample();
        assert_eq!(o.generated_at, 1_767_225_600);
        let names: Vec<&str> = o.members.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["ai-1", "cpu-2"]);
        let ai = &o.members[0];
        assert_eq!((ai.kind.as_str(), ai.site.as_str(), ai.ready, ai.nodes), ("AI", "site-ai-1", true, 3));
        let types: Vec<(&str, Capacity)> =
            ai.accelerators.iter().map(|a| (a.accelerator.as_str(), a.devices)).collect();
        assert_eq!(
            types,
            [
                ("A100-80G", Capacity { total: 16.0, allocated: 4.0, free: 12.0 }),
                ("T4", Capacity { total: 4.0, allocated: 0.0, free: 4.0 })
            ]
        );
        assert_eq!(ai.accelerator_totals(), Capacity { total: 20.0, allocated: 4.0, free: 16.0 });
        assert_eq!(ai.cpu_cores, Capacity { total: 160.0, allocated: 8.0, free: 152.0 });
        assert_eq!(ai.heartbeat_age_seconds, Some(10.0));
        let cpu = &o.members[1];
        assert!(cpu.accelerators.is_empty());
        assert_eq!(cpu.cpu_cores, Capacity { total: 16.0, allocated: 4.5, free: 11.5 });
        assert_eq!(cpu.heartbeat_age_seconds, None);
    }

    #[test]
    fn rated_efficiency_weights_accelerators_by_count_and_divides_by_pue() {
        let o = sample();
        let ai = &o.members[0];
        // 16 x A100 (312 TFLOPS, 400 W) + 4 x T4 (65 TFLOPS, 70 W), PUE 1.25.
        let expected = (16.0 * 312.0 + 4.0 * 65.0) / ((16.0 * 400.0 + 4.0 * 70.0) * 1.25);
        assert!((ai.tflops_per_watt.unwrap() - expected).abs() < 1e-12);
        assert_eq!(ai.peak_tflops, 16.0 * 312.0 + 4.0 * 65.0);
        assert_eq!(ai.efficiency_source, EfficiencySource::Rated);
        assert_eq!((ai.power_watts, ai.gpu_utilization_ratio), (None, None));
        // CPU-only: per-core figures (0.1 TFLOPS, 10 W), PUE 1.5.
        let cpu = &o.members[1];
        assert!((cpu.tflops_per_watt.unwrap() - 0.01 / 1.5).abs() < 1e-12);
    }

    #[test]
    fn measured_efficiency_replaces_the_rated_one() {
        let mut ai = sample().members.remove(0);
        ai.set_measured(Some(5000.0), Some(0.5));
        let expected = ai.peak_tflops * 0.5 / (5000.0 * 1.25);
        assert!((ai.tflops_per_watt.unwrap() - expected).abs() < 1e-12);
        assert_eq!(ai.efficiency_source, EfficiencySource::Measured);
        ai.set_measured(Some(5000.0), None);
        assert_eq!(ai.efficiency_source, EfficiencySource::Rated);
        assert_eq!(ai.power_watts, Some(5000.0));
    }

    #[test]
    fn empty_member_has_no_efficiency() {
        let o = observe(
            &built(vec![cluster("empty", ClusterKind::AI, 1.3, Vec::new())], Vec::new()),
            &[],
            &[],
            &BTreeMap::new(),
            0,
            10,
        );
        assert_eq!(o.members[0].tflops_per_watt, None);
        assert_eq!(o.members[0].cpu_cores, Capacity::default());
    }

    #[test]
    fn queues_count_jobs_usage_and_top_pending() {
        let o = sample();
        assert_eq!(o.queues.len(), 1);
        let q = &o.queues[0];
        assert_eq!(q.name, "research");
        assert_eq!(q.cohort.as_deref(), Some("research"));
        assert_eq!((q.pending, q.admitted, q.running), (3, 2, 1));
        assert_eq!((q.accelerators_used, q.accelerators_quota), (6, Some(8)));
        let top: Vec<(&str, u32, u64)> =
            q.top_pending.iter().map(|p| (p.name.as_str(), p.position, p.accelerators)).collect();
        assert_eq!(top, [("first", 1, 8), ("second", 2, 8)]);
        assert_eq!(q.top_pending[0].reason, "first in line: capacity reserved on ai-1");
        assert_eq!(q.top_pending[0].namespace, "team-a");
    }

    #[test]
    fn placements_newest_first_with_reasons() {
        let o = sample();
        let p: Vec<(&str, &str, u64)> =
            o.placements.iter().map(|p| (p.name.as_str(), p.phase.as_str(), p.admitted_at)).collect();
        assert_eq!(
            p,
            [
                ("new", "Dispatched", 1_767_225_800),
                ("run", "Running", 1_767_225_700),
                ("done", "Succeeded", 1_767_225_610)
            ]
        );
        assert!(o.placements[0].reason.starts_with("admitted to ai-1"));
        assert_eq!(o.placements[0].accelerator.as_deref(), Some("A100-80G"));
    }

    #[test]
    fn heartbeats_from_member_status() {
        let mut m = MemberCluster::new(
            "ai-1",
            serde_json::from_value(serde_json::json!({"kind": "AI", "site": "x", "kubernetes": {
                "kubeconfigSecretRef": {"name": "s", "namespace": "n", "key": "k"}}}))
            .unwrap(),
        );
        let silent = MemberCluster {
            metadata: kube::api::ObjectMeta { name: Some("b".into()), ..Default::default() },
            ..m.clone()
        };
        m.status = Some(computenet_api::MemberClusterStatus {
            last_heartbeat: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                "2026-01-01T00:00:00Z".parse().unwrap(),
            )),
            ..Default::default()
        });
        let h = heartbeats([&m, &silent]);
        assert_eq!(h, BTreeMap::from([("ai-1".to_string(), 1_767_225_600)]));
    }

    #[test]
    fn serialises_camel_case() {
        let v = serde_json::to_value(sample()).unwrap();
        assert_eq!(v["members"][0]["accelerators"][0]["total"], 16.0);
        assert_eq!(v["members"][0]["cpuCores"]["free"], 152.0);
        assert_eq!(v["members"][0]["efficiencySource"], "Rated");
        assert!(v["members"][0].get("ratedPowerWatts").is_none());
        assert_eq!(v["queues"][0]["topPending"][0]["position"], 1);
        assert_eq!(v["placements"][0]["admittedAt"], 1_767_225_800);
    }

    fn usage_object(queue: &str, day: &str, rows: &[(&str, u64, f64)]) -> Arc<ComputeUsage> {
        let rows: Vec<serde_json::Value> = rows
            .iter()
            .map(|(namespace, start, gpu_hours)| {
                serde_json::json!({
                    "start": start, "namespace": namespace, "member": "ai-1", "site": "west",
                    "accelerator": "A100-80G", "attempts": 1, "gpuSeconds": gpu_hours * 3600.0,
                    "energyKWh": gpu_hours * 0.5, "cost": gpu_hours * 0.25, "usefulTFLOP": gpu_hours * 360.0,
                })
            })
            .collect();
        let spec = serde_json::from_value(serde_json::json!({
            "queue": queue, "day": day, "bucketSeconds": 3600, "rows": rows,
        }))
        .unwrap();
        Arc::new(ComputeUsage::new(&format!("{queue}.{}", day.replace('-', "")), spec))
    }

    fn budgeted(name: &str, budget: serde_json::Value, status: serde_json::Value) -> Arc<ComputeQueue> {
        let spec: ComputeQueueSpec = serde_json::from_value(serde_json::json!({"budget": budget})).unwrap();
        let mut q = ComputeQueue::new(name, spec);
        q.status = serde_json::from_value(status).unwrap();
        Arc::new(q)
    }

    #[test]
    fn usage_today_and_this_month_per_queue_with_shares_and_budgets() {
        // 2026-11-15T10:00:00Z; the day started at 1_794_700_800, the month at 1_793_491_200.
        let (now, today, month): (u64, u64, u64) = (1_794_736_800, 1_794_700_800, 1_793_491_200);
        let store = vec![
            // Today's object holds an attempt that ran across midnight: a row of yesterday.
            usage_object("research", "2026-11-15", &[("team-a", today + 8 * 3600, 8.0), ("team-b", today - 3600, 2.0)]),
            usage_object("research", "2026-11-01", &[("team-a", month, 10.0)]),
            // Last month's: left out, its last hour included.
            usage_object("research", "2026-10-31", &[("team-a", month - 3600, 100.0)]),
            // A queue that is gone still counts in the totals.
            usage_object("retired", "2026-11-03", &[("team-c", month + 2 * 86_400, 1.0)]),
        ];
        let queues = vec![
            budgeted(
                "research",
                serde_json::json!({"period": "Month", "gpuHours": 100, "cost": 50}),
                serde_json::json!({"share": 0.4, "pastShare": 0.1, "budget": {
                    "periodStart": "2026-11-01T00:00:00Z", "periodEnd": "2026-12-01T00:00:00Z",
                    "spent": {"gpuSeconds": 72_000.0, "cost": 10.0}}}),
            ),
            budgeted(
                "capped",
                serde_json::json!({"period": "Day", "kilowattHours": 5}),
                serde_json::json!({"budget": {
                    "periodStart": "2026-11-15T00:00:00Z", "periodEnd": "2026-11-16T00:00:00Z",
                    "spent": {"energyKWh": 5.5}, "exhausted": true, "message": "5.500 of 5 kWh"}}),
            ),
            budgeted("fresh", serde_json::json!({"period": "Week", "cost": 10}), serde_json::Value::Null),
            compute_queue("plain", None),
        ];
        let o = usage(&store, &queues, now);
        assert_eq!((o.generated_at, o.day_start, o.month_start), (now, today, month));
        let names: Vec<&str> = o.queues.iter().map(|q| q.name.as_str()).collect();
        assert_eq!(names, ["capped", "fresh", "plain", "research", "retired"]);
        let research = &o.queues[3];
        assert_eq!((research.today.gpu_hours, research.month.gpu_hours), (8.0, 20.0));
        assert_eq!((research.month.energy_kwh, research.month.cost), (10.0, 5.0));
        // 360 TFLOP per GPU-hour over 0.5 kWh (1.8 MJ): 0.0002 TFLOPS/W.
        assert!((research.month.tflops_per_watt.unwrap() - 360.0 / 1.8e6).abs() < 1e-15);
        assert_eq!((research.share, research.past_share), (Some(0.4), Some(0.1)));
        let b = research.budget.as_ref().expect("a budget");
        let limits: Vec<(&str, f64, f64)> = b.limits.iter().map(|l| (l.unit, l.spent, l.limit)).collect();
        assert_eq!(limits, [("GPU-hours", 20.0, 100.0), ("cost", 10.0, 50.0)]);
        assert_eq!((b.period_start, b.period_end, b.exhausted), (month, 1_796_083_200, false));
        let capped = o.queues[0].budget.as_ref().expect("a budget");
        assert!(capped.exhausted);
        assert_eq!(capped.message.as_deref(), Some("5.500 of 5 kWh"));
        assert_eq!((capped.limits[0].unit, capped.limits[0].spent, capped.limits[0].limit), ("kWh", 5.5, 5.0));
        // No status yet: the period from the spec, nothing spent.
        let fresh = o.queues[1].budget.as_ref().expect("a budget");
        assert_eq!((fresh.period_start, fresh.period_end), (1_794_182_400, 1_794_787_200), "Monday to Monday");
        assert_eq!((fresh.limits[0].spent, fresh.exhausted), (0.0, false));
        let plain = &o.queues[2];
        assert_eq!((plain.budget.as_ref(), plain.share, plain.month), (None, None, UsageFigures::default()));
        assert_eq!(plain.month.tflops_per_watt, None);
        assert_eq!((o.queues[4].month.gpu_hours, o.queues[4].today.gpu_hours), (1.0, 0.0));
        assert_eq!((o.today.gpu_hours, o.month.gpu_hours, o.month.energy_kwh), (8.0, 21.0, 10.5));
        let v = serde_json::to_value(&o).unwrap();
        assert_eq!(v["queues"][3]["pastShare"], 0.1);
        assert_eq!(v["queues"][3]["month"]["energyKWh"], 10.0);
        assert_eq!(v["queues"][0]["budget"]["limits"][0]["unit"], "kWh");
        assert_eq!(v["month"]["gpuHours"], 21.0);
        assert!(usage(&[], &[], now).queues.is_empty());
    }
}

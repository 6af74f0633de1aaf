//! Step 1 of a pass: the core's input built from the hub's objects and the members'
//! nodes, through the one translation in [`computenet_api::view`] (pure).

use computenet_api::member_cluster::MeasuredEfficiency;
use computenet_api::view::{self, Problem};
use computenet_api::{convert, ComputeCohort, ComputeQueue, MemberCluster, TrainingJob};
use computenet_core::{Catalogue, Cluster, Cohort, Job, NodeCapacity, Pool, Queue, RunningJob};
use computenet_members::prometheus::Reading;
use computenet_members::MemberNodes;
use foldhash::HashMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use std::collections::BTreeMap;
use std::sync::Arc;

/// What a member looks like now.
#[derive(Debug)]
pub struct MemberView {
    pub member: Arc<MemberCluster>,
    pub ready: bool,
    pub nodes: MemberNodes,
    /// The latest fresh reading of its efficiency series, if it names a Prometheus.
    pub measured: Option<Reading>,
    /// The job kinds besides TrainingJob it runs.
    pub workload_kinds: Vec<String>,
}

/// The core's input plus what is needed to act on its decisions.
#[derive(Debug, Clone)]
pub struct Built {
    pub pool: Pool,
    pub queues: Vec<Queue>,
    /// The cohort tree's described levels (valid ComputeCohorts).
    pub cohorts: Vec<Cohort>,
    pub pending: Vec<Job>,
    pub running: Vec<RunningJob>,
    /// TrainingJobs (by UID) that cannot be queued, and why.
    pub problems: Vec<(String, Problem)>,
    /// What each cluster's measurements say (same order as `pool.clusters`).
    pub measured: Vec<Option<MeasuredEfficiency>>,
}

/// Each member's own names of its accelerator types, by catalogue name, by member: what
/// a dispatch asks the member for.
pub type RawAccelerators = BTreeMap<String, BTreeMap<String, String>>;

/// The members' own accelerator names (see [`RawAccelerators`]).
pub fn raw_accelerators(members: &[MemberView]) -> RawAccelerators {
    let catalogue = view::catalogue(members.iter().map(|m| m.member.as_ref()));
    members
        .iter()
        .map(|m| (m.member.metadata.name.clone().unwrap_or_default(), m.nodes.raw_accelerator_names(&catalogue)))
        .collect()
}

/// Upper bound on a measured PUE: beyond it a reading is wrong, not a facility.
const MAX_PUE: f64 = 5.0;

/// Upper bound on a member's measured accelerator power, watts (a 100 MW member is
/// beyond any facility: the reading is wrong).
const MAX_POWER_W: f64 = 1e8;

/// A reading with every value that is not a plausible measurement left out: NaN, infinite,
/// negative, PUE outside 1..=5, power above 100 MW. Utilisation is clamped to 0..=1 (an
/// exporter reporting 101 % is close enough to be used). What is left out is neither
/// shown in the status nor used in placement.
pub fn sane(reading: &Reading) -> Reading {
    let within = |v: Option<f64>, lo: f64, hi: f64| v.filter(|v| v.is_finite() && (lo..=hi).contains(v));
    Reading {
        gpu_power_w: within(reading.gpu_power_w, 0.0, MAX_POWER_W),
        gpu_utilization: reading.gpu_utilization.filter(|u| u.is_finite()).map(|u| u.clamp(0.0, 1.0)),
        pue: within(reading.pue, 1.0, MAX_PUE),
        at: reading.at,
        error: reading.error.clone(),
    }
}

/// What measurements make of a cluster: the status to show, and the cluster's efficiency
/// with the measured PUE and power scale in place of the configured figures.
fn measured(
    reading: &Reading,
    cluster: &Cluster,
    catalogue: &Catalogue,
) -> (MeasuredEfficiency, computenet_core::ClusterEfficiency) {
    let reading = &sane(reading);
    let mut efficiency = cluster.efficiency.clone();
    if let Some(pue) = reading.pue {
        efficiency.pue = pue;
    }
    let derived = match (reading.gpu_power_w, reading.gpu_utilization) {
        (Some(p), Some(u)) => {
            computenet_core::throughput::measured_efficiency(cluster, catalogue, p, u, efficiency.pue)
        }
        _ => None,
    };
    if let Some(d) = derived {
        efficiency.power_scale = d.power_scale;
    }
    let round = convert::round3;
    let status = MeasuredEfficiency {
        gpu_power_watts: reading.gpu_power_w.map(round),
        gpu_utilization: reading.gpu_utilization.map(round),
        pue: reading.pue.map(round),
        tflops_per_watt: derived.map(|d| (d.tflops_per_watt * 1e6).round() / 1e6),
        power_scale: derived.map(|d| round(d.power_scale)),
        sampled_at: reading.at.and_then(|t| k8s_openapi::jiff::Timestamp::try_from(t).ok()).map(Time),
        error: reading.error.clone(),
    };
    (status, efficiency)
}

/// One core cluster from a member's nodes, with its measured efficiency applied.
fn cluster(view: &MemberView, catalogue: &Catalogue) -> (Cluster, Option<MeasuredEfficiency>) {
    let spec = &view.member.spec;
    let mut cluster = Cluster {
        workload_kinds: view.workload_kinds.clone(),
        name: view.member.metadata.name.clone().unwrap_or_default(),
        kind: convert::cluster_kind(spec.kind),
        site: spec.site.clone(),
        ready: view.ready,
        cordoned: spec.cordoned,
        efficiency: convert::efficiency(&spec.efficiency).0,
        data_sets: spec.data_sets.clone(),
        nodes: view.nodes.core_nodes(catalogue),
        tenants: convert::tenants(spec),
    };
    let status = view.measured.as_ref().map(|reading| {
        let (status, efficiency) = measured(reading, &cluster, catalogue);
        cluster.efficiency = efficiency;
        status
    });
    (cluster, status)
}

/// Builds the core's input. Admitted jobs are charged to their nodes by placement; waiting
/// ones become pending jobs or problems.
pub fn build(
    now: u64,
    members: &[MemberView],
    queues: &[Arc<ComputeQueue>],
    cohorts: &[Arc<ComputeCohort>],
    jobs: &[Arc<TrainingJob>],
    namespace_labels: &BTreeMap<String, BTreeMap<String, String>>,
    figures: &mut RunningSpecs,
) -> Built {
    let catalogue = view::catalogue(members.iter().map(|m| m.member.as_ref()));
    let (clusters, measured): (Vec<Cluster>, Vec<_>) = members.iter().map(|m| cluster(m, &catalogue)).unzip();
    let view::HubQueues { core: core_queues, by_name: queue_specs, invalid } =
        view::queues(queues.iter().map(AsRef::as_ref));
    for (name, error) in invalid {
        tracing::warn!(queue = %name, %error, "ignoring invalid ComputeQueue");
    }
    let view::HubCohorts { core: core_cohorts, invalid } = view::cohorts(cohorts.iter().map(AsRef::as_ref));
    for (name, error) in invalid {
        tracing::warn!(cohort = %name, %error, "ignoring invalid ComputeCohort");
    }
    let mut built = Built {
        pool: Pool { clusters, catalogue, data_sets: BTreeMap::new(), wan_gbps: view::WAN_GBPS },
        queues: core_queues,
        cohorts: core_cohorts,
        pending: Vec::new(),
        running: Vec::new(),
        problems: Vec::new(),
        measured,
    };
    let mut sorted: Vec<&Arc<TrainingJob>> = jobs.iter().collect();
    sorted.sort_by(|a, b| view::uid(a).cmp(view::uid(b)));
    let no_labels = BTreeMap::new();
    let numbers = view::NodeNumbers::of(&built.pool);
    for tj in sorted {
        if view::is_finished(tj) {
            continue;
        }
        if view::is_admitted(tj) {
            if let Some(running) = view::running_job_with(tj, &numbers, now, || figures.of(tj)) {
                release_slurm_allocation(&mut built.pool, members, &running);
                built.pool.charge(running.cluster, &running.slots, &running.per_replica);
                built.running.push(running);
            }
            continue;
        }
        if !view::is_waiting(tj) {
            continue;
        }
        let labels = namespace_labels.get(tj.metadata.namespace.as_deref().unwrap_or_default()).unwrap_or(&no_labels);
        match view::pending_job(tj, &queue_specs, labels) {
            Ok(job) => built.pending.push(job),
            Err(problem) => built.problems.push((view::uid(tj).to_string(), problem)),
        }
    }
    figures.forget_unseen();
    built
}

/// Running jobs' figures ([`view::running_figures`]) by UID, kept between passes with the
/// spec generation they were converted from: a spec changes only with its generation, and
/// converting every running job's spec again in every pass was a sixth of an idle pass.
#[derive(Debug, Default)]
pub struct RunningSpecs {
    by_uid: HashMap<String, KeptFigures>,
    /// Bumped by every [`build`]: entries not seen in the last one are dropped.
    pass: u64,
}

#[derive(Debug)]
struct KeptFigures {
    generation: i64,
    figures: view::RunningFigures,
    seen: u64,
}

impl RunningSpecs {
    /// The job's figures: kept ones when converted at its current generation.
    fn of(&mut self, tj: &TrainingJob) -> view::RunningFigures {
        // Without a generation or a UID (never so for a stored object) nothing tells a
        // changed spec, or one job from another.
        let (Some(generation), false) = (tj.metadata.generation, view::uid(tj).is_empty()) else {
            return view::running_figures(&tj.spec);
        };
        let pass = self.pass;
        match self.by_uid.get_mut(view::uid(tj)) {
            Some(kept) if kept.generation == generation => {
                kept.seen = pass;
                kept.figures.clone()
            }
            _ => {
                let figures = view::running_figures(&tj.spec);
                let kept = KeptFigures { generation, figures: figures.clone(), seen: pass };
                self.by_uid.insert(view::uid(tj).to_string(), kept);
                figures
            }
        }
    }

    /// Drops the jobs the pass just built did not ask for (ended, deleted), and starts the next.
    fn forget_unseen(&mut self) {
        let pass = self.pass;
        self.by_uid.retain(|_, kept| kept.seen == pass);
        self.pass += 1;
    }
}

/// Slurm's node allocations already include a running batch job: take it out first, so
/// that charging by placement counts it once.
fn release_slurm_allocation(pool: &mut Pool, members: &[MemberView], running: &RunningJob) {
    let Some(MemberNodes::Slurm { held, .. }) = members.get(running.cluster).map(|m| &m.nodes) else { return };
    let Some(held_nodes) = held.get(&running.id) else { return };
    let one = NodeCapacity {
        cpu_millis: running.per_replica.cpu_millis,
        memory_bytes: running.per_replica.memory_bytes,
        accelerators: running.per_replica.accelerators,
        extended: BTreeMap::new(),
    };
    for node in &mut pool.clusters[running.cluster].nodes {
        if held_nodes.contains(&node.name) {
            node.allocated = node.allocated.saturating_sub(&one);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn training_job(uid: &str, generation: Option<i64>, gpus: i32) -> TrainingJob {
        let mut tj: TrainingJob = serde_json::from_value(serde_json::json!({
            "apiVersion": "computenet.io/v1alpha1", "kind": "TrainingJob",
            "metadata": {"name": uid, "namespace": "team-a", "uid": uid},
            "spec": {"queueName": "q", "replicas": 1,
                     "resources": {"cpu": "4", "memory": "16Gi", "accelerators": {"count": gpus}},
                     "workload": {"image": "x", "command": ["true"]}, "work": {"gpuHours": 1}}
        }))
        .unwrap();
        tj.metadata.generation = generation;
        tj
    }

    #[test]
    fn running_figures_are_kept_per_generation_and_forgotten_with_the_job() {
        let mut specs = RunningSpecs::default();
        let first = specs.of(&training_job("a", Some(1), 2));
        assert_eq!(first, view::running_figures(&training_job("a", Some(1), 2).spec));
        assert_eq!(first.per_replica.accelerators, 2);
        // The same generation is the same spec: the kept figures, not a new conversion
        // (this spec differs only to show which one is returned).
        assert_eq!(specs.of(&training_job("a", Some(1), 4)).per_replica.accelerators, 2);
        // A new generation, or none at all, converts again.
        assert_eq!(specs.of(&training_job("a", Some(2), 4)).per_replica.accelerators, 4);
        assert_eq!(specs.of(&training_job("b", None, 8)).per_replica.accelerators, 8);
        let mut no_uid = training_job("c", Some(1), 1);
        no_uid.metadata.uid = None;
        assert_eq!(specs.of(&no_uid).per_replica.accelerators, 1);
        no_uid.spec.resources.accelerators.as_mut().unwrap().count = 3;
        assert_eq!(specs.of(&no_uid).per_replica.accelerators, 3, "no UID: never kept");
        specs.forget_unseen();
        assert_eq!(specs.by_uid.len(), 1, "seen in the pass: kept; no generation or UID: never kept");
        specs.forget_unseen();
        assert!(specs.by_uid.is_empty(), "not asked for in a pass: forgotten");
    }

    #[test]
    fn implausible_measurements_are_left_out_or_clamped() {
        let r = |power: f64, util: f64, pue: f64| {
            sane(&Reading {
                gpu_power_w: Some(power),
                gpu_utilization: Some(util),
                pue: Some(pue),
                ..Reading::default()
            })
        };
        let ok = r(3200.0, 0.5, 1.3);
        assert_eq!((ok.gpu_power_w, ok.gpu_utilization, ok.pue), (Some(3200.0), Some(0.5), Some(1.3)));
        let bad = r(f64::INFINITY, f64::NAN, 40.0);
        assert_eq!((bad.gpu_power_w, bad.gpu_utilization, bad.pue), (None, None, None));
        let off = r(-1.0, 1.7, 0.5);
        assert_eq!((off.gpu_power_w, off.gpu_utilization, off.pue), (None, Some(1.0), None));
        assert_eq!(r(2e8, -0.5, f64::NAN).gpu_utilization, Some(0.0));
        assert_eq!(r(2e8, 0.0, 1.0).gpu_power_w, None);
    }
}

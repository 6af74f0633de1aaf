//! How fast a job runs on each accelerator type, and what follows: runtime, energy,
//! cost, carbon and data-transfer time at a given placement.

use crate::accelerator::{Catalogue, CPU_ONLY};
use crate::job::{Job, Work};
use crate::learn::LearnedProfiles;
use crate::pool::{Cluster, Pool};
use crate::profiles::ProfileSet;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Where a runtime estimate came from, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum EstimateSource {
    /// Measured on this very placement while jobs ran there (see [`crate::learn`]): `jobs`
    /// is how many jobs the readings came from.
    Learned { jobs: u32 },
    /// A measured profile of this model on this type and placement.
    Measured,
    /// A measured profile of this model, scaled (other device count or other type by TFLOPS).
    ScaledProfile,
    /// Device-hours on a reference type, scaled by peak TFLOPS x utilisation.
    PeakTflops,
    /// No usable information: the job's maximum runtime (or the default) is assumed.
    Unknown,
}

/// Estimated cost of running a job at one placement.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Estimate {
    pub runtime_s: f64,
    /// Time to move the job's data set to the cluster's site first.
    pub transfer_s: f64,
    /// Facility energy (device power x runtime x PUE).
    pub energy_kwh: f64,
    pub cost: f64,
    pub carbon_kg: Option<f64>,
    pub source: EstimateSource,
}

/// Kilograms in a gram (a multiplication, not a division, per estimate).
const KG_PER_G: f64 = 1e-3;

/// Carbon of `energy_kwh` at `g_per_kwh`. The one expression for it: a cluster that
/// states the default intensity and one that states none must tie exactly (ties go to
/// pool order).
pub fn carbon_kg(energy_kwh: f64, g_per_kwh: f64) -> f64 {
    finite(energy_kwh * g_per_kwh * KG_PER_G)
}

/// Kilowatt-hours in a watt-second.
const KWH_PER_WATT_SECOND: f64 = 1.0 / 3_600_000.0;

/// Longest runtime (and data-transfer time) an estimate gives: ten years. A job that
/// claims more work (`gpuHours: 1e300`) is estimated at this, so every estimate, the
/// energy and cost that follow, and `start + runtime` stay finite.
pub const MAX_RUNTIME_S: f64 = 10.0 * 365.0 * 86_400.0;

/// `seconds` as an estimate: within 0..=[`MAX_RUNTIME_S`]; NaN (no information) is the maximum.
pub fn bounded_seconds(seconds: f64) -> f64 {
    if seconds.is_nan() {
        MAX_RUNTIME_S
    } else {
        seconds.clamp(0.0, MAX_RUNTIME_S)
    }
}

/// A non-negative finite figure derived from bounded inputs (energy, cost, carbon): NaN
/// and negatives become 0, infinities the largest finite value.
fn finite(value: f64) -> f64 {
    if value.is_nan() {
        0.0
    } else {
        value.clamp(0.0, f64::MAX)
    }
}

/// The throughput model: measured profiles, with a peak-TFLOPS fallback.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThroughputModel {
    pub profiles: ProfileSet,
    /// Fraction of peak TFLOPS training achieves, by type; others use `default_utilisation`.
    #[serde(default)]
    pub utilisation: BTreeMap<String, f64>,
    pub default_utilisation: f64,
    /// Throughput kept per doubling of the node count (communication overhead).
    pub inter_node_efficiency: f64,
    /// Runtime assumed when nothing else is known and the job gives no maximum.
    pub default_runtime_s: f64,
    /// Multiplier on measured profiles (a simulator may slow them to match a peer's model).
    #[serde(default = "one")]
    pub measured_slowdown: f64,
    /// Rates learned from running jobs; preferred to `profiles` for the same placement.
    /// Runtime state of the service, not configuration: never serialised.
    #[serde(skip)]
    pub learned: LearnedProfiles,
}

fn one() -> f64 {
    1.0
}

impl Default for ThroughputModel {
    fn default() -> Self {
        Self {
            profiles: ProfileSet::default(),
            utilisation: BTreeMap::new(),
            default_utilisation: 0.4,
            inter_node_efficiency: 0.9,
            default_runtime_s: 3600.0,
            measured_slowdown: 1.0,
            learned: LearnedProfiles::default(),
        }
    }
}

impl ThroughputModel {
    /// A model with measured profiles.
    pub fn with_profiles(profiles: ProfileSet) -> Self {
        Self { profiles, ..Self::default() }
    }

    /// Effective TFLOPS of one device of `accelerator` (or one core for CPU-only).
    pub fn effective_tflops(&self, catalogue: &Catalogue, accelerator: &str) -> Option<f64> {
        let spec = catalogue.get(accelerator)?;
        let util = self.utilisation.get(accelerator).copied().unwrap_or(self.default_utilisation);
        Some(spec.peak_tflops * util).filter(|t| *t > 0.0)
    }

    /// Share of linear speed kept across `nodes` nodes.
    pub fn scaling_efficiency(&self, nodes: u32) -> f64 {
        if nodes <= 1 {
            1.0
        } else {
            self.inter_node_efficiency.powf(f64::from(nodes).log2())
        }
    }

    /// Devices a job uses: accelerators, or cores for a CPU-only job.
    fn devices(job: &Job) -> f64 {
        if job.per_replica.accelerators > 0 {
            job.total_accelerators() as f64
        } else {
            (f64::from(job.replicas) * job.per_replica.cpu_millis as f64 / 1000.0).max(1.0)
        }
    }

    /// Runtime in seconds of `job` on `accelerator` (None: CPU-only) over `nodes` nodes,
    /// within 0..=[`MAX_RUNTIME_S`].
    pub fn runtime_s(
        &self,
        job: &Job,
        catalogue: &Catalogue,
        accelerator: Option<&str>,
        nodes: u32,
    ) -> (f64, EstimateSource) {
        let (runtime_s, source) = self.unbounded_runtime_s(job, catalogue, accelerator, nodes);
        (bounded_seconds(runtime_s), source)
    }

    fn unbounded_runtime_s(
        &self,
        job: &Job,
        catalogue: &Catalogue,
        accelerator: Option<&str>,
        nodes: u32,
    ) -> (f64, EstimateSource) {
        let device = accelerator.unwrap_or(CPU_ONLY);
        let fallback = || {
            let t = job.max_runtime_s.map_or(self.default_runtime_s, |m| m as f64);
            (t, EstimateSource::Unknown)
        };
        let gpus = u32::try_from(job.total_accelerators()).unwrap_or(u32::MAX).max(1);
        match &job.work {
            Work::ModelSteps { model, steps, batch_size } => {
                let steps = *steps as f64;
                // What jobs measured here beats any profile: it is this cluster's hardware,
                // software and data. Not slowed down: it is what really happened.
                if let Some(l) = self.learned.rate(&job.tenant, model, device, gpus, nodes, *batch_size) {
                    return (steps / l.steps_per_s, EstimateSource::Learned { jobs: l.jobs });
                }
                if let Some((rate, exact)) = self.profiles.steps_per_s(model, device, gpus, nodes, *batch_size) {
                    let rate = rate * self.measured_slowdown * if exact { 1.0 } else { self.scaling_efficiency(nodes) };
                    let source = if exact { EstimateSource::Measured } else { EstimateSource::ScaledProfile };
                    return (steps / rate, source);
                }
                // Measured elsewhere: take the profiled type closest in TFLOPS, scale by TFLOPS.
                let Some(target) = self.effective_tflops(catalogue, device) else {
                    return fallback();
                };
                let nearest = self
                    .profiles
                    .accelerators_of(model)
                    .filter_map(|a| self.effective_tflops(catalogue, a).map(|t| (a, t)))
                    .min_by(|x, y| (x.1 / target).ln().abs().total_cmp(&(y.1 / target).ln().abs()).then(x.0.cmp(y.0)));
                match nearest
                    .and_then(|(a, t)| self.profiles.steps_per_s(model, a, gpus, nodes, *batch_size).map(|r| (r, t)))
                {
                    Some(((rate, _), t)) => {
                        let rate = rate * self.measured_slowdown * (target / t) * self.scaling_efficiency(nodes);
                        (steps / rate, EstimateSource::ScaledProfile)
                    }
                    None => fallback(),
                }
            }
            Work::DeviceHours { hours, reference } => {
                let (Some(reference), Some(target)) =
                    (self.effective_tflops(catalogue, reference), self.effective_tflops(catalogue, device))
                else {
                    return fallback();
                };
                let device_seconds = hours * 3600.0 * reference / target;
                (device_seconds / Self::devices(job) / self.scaling_efficiency(nodes), EstimateSource::PeakTflops)
            }
            Work::Unknown => fallback(),
        }
    }

    /// Full estimate of `job` on `cluster` with `accelerator` over `nodes` nodes.
    pub fn estimate(
        &self,
        job: &Job,
        pool: &Pool,
        cluster: &Cluster,
        accelerator: Option<&str>,
        nodes: u32,
    ) -> Estimate {
        let (runtime_s, source) = self.runtime_s(job, &pool.catalogue, accelerator, nodes);
        let power_w = Self::power_w(job, &pool.catalogue, accelerator);
        self.estimate_with_runtime(job, pool, cluster, power_w, runtime_s, source)
    }

    /// Power drawn by the job's devices on `accelerator` (None: CPU cores), in watts.
    pub fn power_w(job: &Job, catalogue: &Catalogue, accelerator: Option<&str>) -> f64 {
        catalogue.get(accelerator.unwrap_or(CPU_ONLY)).map_or(0.0, |s| s.board_power_w) * Self::devices(job)
    }

    /// Energy, cost, carbon and transfer for a known runtime and power draw.
    #[inline(always)]
    pub fn estimate_with_runtime(
        &self,
        job: &Job,
        pool: &Pool,
        cluster: &Cluster,
        power_w: f64,
        runtime_s: f64,
        source: EstimateSource,
    ) -> Estimate {
        let runtime_s = bounded_seconds(runtime_s);
        // Multiplications only: the cycle makes this estimate for every (job, type group)
        // pair, and two divisions in a row were most of its cost.
        let energy_kwh =
            finite(power_w * runtime_s * KWH_PER_WATT_SECOND * cluster.efficiency.power_scale * cluster.efficiency.pue);
        let transfer_s = match &job.data_set {
            Some(name) if !pool.holds_data_set(cluster, name) => {
                let gb = pool.data_sets.get(name).map_or(0.0, |d| d.size_gb);
                bounded_seconds(gb * 8.0 / pool.wan_gbps.max(1e-6))
            }
            _ => 0.0,
        };
        Estimate {
            runtime_s,
            transfer_s,
            energy_kwh,
            cost: finite(energy_kwh * cluster.efficiency.energy_price_per_kwh),
            carbon_kg: cluster.efficiency.carbon_g_per_kwh.map(|g| carbon_kg(energy_kwh, g)),
            source,
        }
    }
}
/// Device power at utilisation `u` in the linear model: idle draw is [`IDLE_POWER_SHARE`]
/// of board power, full load all of it.
pub const IDLE_POWER_SHARE: f64 = 0.3;

/// What measured power, utilisation and PUE say about a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MeasuredEfficiency {
    /// Useful TFLOPS per facility watt (算效): peak TFLOPS x utilisation over power x PUE.
    pub tflops_per_watt: f64,
    /// Measured power over the linear model's prediction at the measured utilisation.
    pub power_scale: f64,
}

/// Useful TFLOPS per facility watt (算效): peak TFLOPS x utilisation over power x PUE.
pub fn useful_tflops_per_watt(peak_tflops: f64, utilization: f64, power_w: f64, pue: f64) -> f64 {
    peak_tflops * utilization.clamp(0.0, 1.0) / (power_w * pue.max(1.0))
}

/// Efficiency of a cluster's accelerators from measurements: total accelerator power in
/// watts, mean utilisation in 0..=1 and the facility's PUE. `None` for a cluster without
/// accelerators or without a positive power reading.
pub fn measured_efficiency(
    cluster: &Cluster,
    catalogue: &Catalogue,
    power_w: f64,
    utilization: f64,
    pue: f64,
) -> Option<MeasuredEfficiency> {
    let u = utilization.clamp(0.0, 1.0);
    let (mut peak_tflops, mut board_w) = (0.0, 0.0);
    for n in &cluster.nodes {
        let Some(spec) = n.accelerator.as_deref().and_then(|a| catalogue.get(a)) else { continue };
        let devices = f64::from(n.allocatable.accelerators);
        peak_tflops += spec.peak_tflops * devices;
        board_w += spec.board_power_w * devices;
    }
    if board_w <= 0.0 || !power_w.is_finite() || power_w <= 0.0 {
        return None;
    }
    let predicted_w = board_w * (IDLE_POWER_SHARE + (1.0 - IDLE_POWER_SHARE) * u);
    Some(MeasuredEfficiency {
        tflops_per_watt: useful_tflops_per_watt(peak_tflops, u, power_w, pue),
        // Bounded: a broken exporter must not make a cluster look free or unusable.
        power_scale: (power_w / predicted_w).clamp(0.25, 4.0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{AcceleratorConstraint, Objective, ReplicaRequest};
    use crate::profiles::ProfilePoint;

    fn job(work: Work, replicas: u32, gpus: u32) -> Job {
        Job {
            workload_kind: None,
            tenant: String::new(),
            id: "j".into(),
            queue: "q".into(),
            priority: 0,
            submitted_at: 0,
            replicas,
            per_replica: ReplicaRequest {
                cpu_millis: 1000,
                memory_bytes: 0,
                accelerators: gpus,
                extended: BTreeMap::new(),
            },
            accelerator: AcceleratorConstraint::default(),
            cluster_kinds: vec![],
            sites: vec![],
            data_set: None,
            work,
            objective: Objective::Balanced,
            max_runtime_s: None,
            elastic: None,
            restart: None,
        }
    }

    #[test]
    fn device_hours_scale_by_peak_tflops() {
        let m = ThroughputModel::default();
        let c = Catalogue::built_in();
        let j = job(Work::DeviceHours { hours: 8.0, reference: "V100".into() }, 1, 8);
        let (v100, src) = m.runtime_s(&j, &c, Some("V100"), 1);
        assert_eq!(src, EstimateSource::PeakTflops);
        assert!((v100 - 3600.0).abs() < 1e-6, "8 device-hours on 8 devices = 1 h");
        let (a100, _) = m.runtime_s(&j, &c, Some("A100-80G"), 1);
        assert!((a100 - 3600.0 * 125.0 / 312.0).abs() < 1e-6);
        let (two_nodes, _) =
            m.runtime_s(&job(Work::DeviceHours { hours: 8.0, reference: "V100".into() }, 2, 4), &c, Some("V100"), 2);
        assert!((two_nodes - 3600.0 / 0.9).abs() < 1e-6, "one doubling of nodes keeps 90%");
    }

    #[test]
    fn measured_profile_wins_and_unprofiled_types_scale() {
        let mut p = ProfileSet::default();
        p.insert("bert", "V100", ProfilePoint { gpus: 1, nodes: Some(1), local_batch: None, steps_per_s: 2.0 });
        let m = ThroughputModel::with_profiles(p);
        let c = Catalogue::built_in();
        let j = job(Work::ModelSteps { model: "bert".into(), steps: 100, batch_size: None }, 1, 1);
        assert_eq!(m.runtime_s(&j, &c, Some("V100"), 1), (50.0, EstimateSource::Measured));
        let (t, src) = m.runtime_s(&j, &c, Some("H800"), 1);
        assert_eq!(src, EstimateSource::ScaledProfile);
        assert!((t - 50.0 * 125.0 / 989.0).abs() < 1e-6);
        let unknown = job(Work::ModelSteps { model: "llama".into(), steps: 1, batch_size: None }, 1, 1);
        assert_eq!(m.runtime_s(&unknown, &c, Some("V100"), 1), (3600.0, EstimateSource::Unknown));
    }

    #[test]
    fn a_learned_rate_beats_the_profile_of_its_placement_only() {
        use crate::learn::{LearnConfig, PlacementKey};
        let mut p = ProfileSet::default();
        p.insert("bert", "V100", ProfilePoint { gpus: 1, nodes: Some(1), local_batch: None, steps_per_s: 2.0 });
        let mut m = ThroughputModel::with_profiles(p);
        m.learned.config = LearnConfig { min_samples: 2, ..LearnConfig::default() };
        let c = Catalogue::built_in();
        let j = job(Work::ModelSteps { model: "bert".into(), steps: 100, batch_size: None }, 1, 1);
        let key = PlacementKey {
            tenant: String::new(),
            model: "bert".into(),
            accelerator: "V100".into(),
            gpus: 1,
            nodes: 1,
            batch_size: None,
        };
        m.learned.observe(&key, 4.0, true, 1);
        assert_eq!(m.runtime_s(&j, &c, Some("V100"), 1), (50.0, EstimateSource::Measured), "one reading: not yet");
        m.learned.observe(&key, 4.0, false, 2);
        assert_eq!(m.runtime_s(&j, &c, Some("V100"), 1), (25.0, EstimateSource::Learned { jobs: 1 }));
        assert_eq!(m.runtime_s(&j, &c, Some("V100"), 2).1, EstimateSource::ScaledProfile, "two nodes: not learned");
        let batched = job(Work::ModelSteps { model: "bert".into(), steps: 100, batch_size: Some(64) }, 1, 1);
        assert_eq!(m.runtime_s(&batched, &c, Some("V100"), 1).1, EstimateSource::Measured, "another batch size");
    }

    #[test]
    fn measurements_give_tflops_per_watt_and_a_power_scale() {
        use crate::pool::{Cluster, ClusterKind, Node, NodeCapacity};
        let catalogue = Catalogue::built_in();
        let node = |name: &str| Node {
            name: name.into(),
            accelerator: Some("H800".into()),
            allocatable: NodeCapacity { cpu_millis: 1000, memory_bytes: 1, accelerators: 8, extended: BTreeMap::new() },
            allocated: NodeCapacity::default(),
            topology_domain: String::new(),
            unschedulable: false,
        };
        let cluster = Cluster {
            workload_kinds: Vec::new(),
            tenants: None,
            name: "c".into(),
            kind: ClusterKind::AI,
            site: "s".into(),
            ready: true,
            cordoned: false,
            efficiency: Default::default(),
            data_sets: Vec::new(),
            nodes: vec![node("a"), node("b")],
        };
        let h800 = catalogue.get("H800").expect("H800");
        let board = 16.0 * h800.board_power_w;
        // Exactly the model's prediction at 50 % utilisation: scale 1.
        let predicted = board * (IDLE_POWER_SHARE + (1.0 - IDLE_POWER_SHARE) * 0.5);
        let m = measured_efficiency(&cluster, &catalogue, predicted, 0.5, 1.25).expect("measured");
        assert!((m.power_scale - 1.0).abs() < 1e-9);
        let expected = 16.0 * h800.peak_tflops * 0.5 / (predicted * 1.25);
        assert!((m.tflops_per_watt - expected).abs() < 1e-9);
        // Drawing twice the prediction doubles the scale and halves the efficiency.
        let hot = measured_efficiency(&cluster, &catalogue, 2.0 * predicted, 0.5, 1.25).expect("measured");
        assert!((hot.power_scale - 2.0).abs() < 1e-9 && (hot.tflops_per_watt * 2.0 - expected).abs() < 1e-9);
        // Nonsense readings are bounded or refused.
        assert_eq!(measured_efficiency(&cluster, &catalogue, 1e9, 0.5, 1.0).map(|m| m.power_scale), Some(4.0));
        assert_eq!(measured_efficiency(&cluster, &catalogue, 0.0, 0.5, 1.0), None);
        assert_eq!(measured_efficiency(&cluster, &catalogue, f64::NAN, 0.5, 1.0), None);
        let cpu_only = Cluster { nodes: Vec::new(), ..cluster.clone() };
        assert_eq!(measured_efficiency(&cpu_only, &catalogue, 100.0, 0.5, 1.0), None);
    }
}

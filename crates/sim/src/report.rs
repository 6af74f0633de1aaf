//! Summaries of a simulation: completion times, queueing, utilisation, energy.

use crate::engine::{JobRecord, SimulationResult};
use computenet_core::accelerator::CPU_ONLY;
use computenet_core::usage::{attempt_amounts, Amounts, AttemptShape};
use computenet_core::{ClusterKind, Pool, ThroughputModel};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The numbers of one simulation run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub policy: String,
    pub jobs: usize,
    pub completed: usize,
    pub avg_jct_s: f64,
    pub p50_jct_s: f64,
    pub p99_jct_s: f64,
    pub avg_queue_s: f64,
    pub p99_queue_s: f64,
    pub makespan_s: u64,
    /// Device-time used over device-time available until the makespan, per cluster kind.
    pub utilisation_by_kind: BTreeMap<String, f64>,
    /// The same per accelerator type (`CPU` for CPU cores).
    pub utilisation_by_accelerator: BTreeMap<String, f64>,
    pub energy_kwh: f64,
    pub cost: f64,
    pub preemptions: u32,
    /// Moves at the same size (adaptive runs).
    pub moves: u32,
    /// Resizes of elastic gangs (adaptive runs).
    pub resizes: u32,
    /// Seconds of restart cost paid, all jobs together.
    pub restart_s: u64,
    /// Jain's index over the jobs' share of time in the system spent running
    /// (run time / JCT): 1 when every job waited in the same proportion.
    pub jain_fairness: f64,
    pub cycles: u64,
    /// What each queue's attempts used ([`usage_by_queue`]).
    pub usage_by_queue: BTreeMap<String, QueueUsage>,
}

/// What one queue's attempts used over a simulation, by the service's accounting.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueUsage {
    /// Segments run (a job that moved or was preempted counts once per stretch).
    pub attempts: u64,
    pub gpu_hours: f64,
    pub energy_kwh: f64,
    pub cost: f64,
    pub carbon_kg: f64,
    /// Useful TFLOPS per facility watt (useful work over energy).
    pub tflops_per_watt: f64,
    /// The sums behind the figures above.
    pub amounts: Amounts,
}

impl QueueUsage {
    fn of(attempts: u64, amounts: Amounts) -> Self {
        QueueUsage {
            attempts,
            gpu_hours: amounts.gpu_hours(),
            energy_kwh: amounts.energy_kwh,
            cost: amounts.cost,
            carbon_kg: amounts.carbon_kg,
            tflops_per_watt: amounts.tflops_per_watt(),
            amounts,
        }
    }
}

/// Per queue, what its jobs' segments used: [`attempt_amounts`] of every segment (its
/// cluster's efficiency, estimated power, `model` and the pool's catalogue), a segment
/// still open at `end_time` counted until then.
pub fn usage_by_queue(
    jobs: &[JobRecord],
    pool: &Pool,
    model: &ThroughputModel,
    end_time: u64,
) -> BTreeMap<String, QueueUsage> {
    let efficiency: BTreeMap<&str, _> = pool.clusters.iter().map(|c| (c.name.as_str(), &c.efficiency)).collect();
    let default_efficiency = computenet_core::ClusterEfficiency::default();
    let mut sums: BTreeMap<String, (u64, Amounts)> = BTreeMap::new();
    for job in jobs {
        let entry = sums.entry(job.queue.clone()).or_default();
        for seg in &job.segments {
            let shape = AttemptShape {
                accelerator: seg.accelerator.as_deref(),
                // A CPU job's devices are its cores: its CPU is in `cpu_millis`.
                devices: if seg.accelerator.is_some() { seg.devices } else { 0 },
                cpu_millis: seg.cpu_millis,
                seconds: seg.end.unwrap_or(end_time).saturating_sub(seg.start) as f64,
            };
            let eff = efficiency.get(seg.cluster.as_str()).copied().unwrap_or(&default_efficiency);
            entry.0 += 1;
            entry.1 = entry.1.plus(&attempt_amounts(model, &pool.catalogue, eff, false, &shape));
        }
    }
    sums.into_iter().map(|(q, (n, a))| (q, QueueUsage::of(n, a))).collect()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

impl Summary {
    /// Summarises a result; `policy` names the run.
    pub fn of(policy: &str, result: &SimulationResult) -> Self {
        let done: Vec<_> = result.jobs.iter().filter(|j| j.finished_at.is_some()).collect();
        let mut jct: Vec<f64> = done.iter().filter_map(|j| Some((j.finished_at? - j.submitted_at) as f64)).collect();
        let mut queue: Vec<f64> = done.iter().filter_map(|j| Some((j.started_at? - j.submitted_at) as f64)).collect();
        jct.sort_by(f64::total_cmp);
        queue.sort_by(f64::total_cmp);
        let first = result.jobs.iter().map(|j| j.submitted_at).min().unwrap_or(0);
        let makespan = result.end_time.saturating_sub(first);

        // Utilisation by kind and type: device-seconds used / device-seconds offered.
        let cluster_kind: BTreeMap<&str, ClusterKind> =
            result.pool.clusters.iter().map(|c| (c.name.as_str(), c.kind)).collect();
        let mut offered: BTreeMap<ClusterKind, f64> = BTreeMap::new();
        let mut offered_type: BTreeMap<String, f64> = BTreeMap::new();
        for c in &result.pool.clusters {
            for n in &c.nodes {
                let (name, devices) = match &n.accelerator {
                    Some(a) => (a.clone(), u64::from(n.allocatable.accelerators)),
                    None => (CPU_ONLY.to_string(), n.allocatable.cpu_millis / 1000),
                };
                *offered.entry(c.kind).or_default() += devices as f64 * makespan as f64;
                *offered_type.entry(name).or_default() += devices as f64 * makespan as f64;
            }
        }
        let mut used: BTreeMap<ClusterKind, f64> = BTreeMap::new();
        let mut used_type: BTreeMap<String, f64> = BTreeMap::new();
        // Every stretch of every job counts (also those of preempted, moved and
        // unfinished jobs): devices held are devices used.
        for j in &result.jobs {
            for seg in &j.segments {
                let device_s =
                    seg.devices as f64 * (seg.end.unwrap_or(result.end_time).saturating_sub(seg.start)) as f64;
                if let Some(kind) = cluster_kind.get(seg.cluster.as_str()) {
                    *used.entry(*kind).or_default() += device_s;
                }
                let name = seg.accelerator.clone().unwrap_or_else(|| CPU_ONLY.to_string());
                *used_type.entry(name).or_default() += device_s;
            }
        }
        let utilisation_by_kind = offered
            .iter()
            .map(|(k, o)| (k.to_string(), if *o > 0.0 { used.get(k).copied().unwrap_or(0.0) / o } else { 0.0 }))
            .collect();
        let utilisation_by_accelerator = offered_type
            .iter()
            .map(|(k, o)| (k.clone(), if *o > 0.0 { used_type.get(k).copied().unwrap_or(0.0) / o } else { 0.0 }))
            .collect();
        let shares: Vec<f64> = done
            .iter()
            .filter_map(|j| {
                let f = j.finished_at?;
                let ran: u64 = j.segments.iter().map(|s| s.end.unwrap_or(f).saturating_sub(s.start)).sum();
                let jct = f.saturating_sub(j.submitted_at) as f64;
                Some(if jct > 0.0 { (ran as f64 / jct).min(1.0) } else { 1.0 })
            })
            .collect();
        let jain_fairness = jain(&shares);
        Summary {
            policy: policy.to_string(),
            jobs: result.jobs.len(),
            completed: done.len(),
            avg_jct_s: mean(&jct),
            p50_jct_s: percentile(&jct, 50.0),
            p99_jct_s: percentile(&jct, 99.0),
            avg_queue_s: mean(&queue),
            p99_queue_s: percentile(&queue, 99.0),
            makespan_s: makespan,
            utilisation_by_kind,
            utilisation_by_accelerator,
            energy_kwh: result.jobs.iter().map(|j| j.energy_kwh).sum(),
            cost: result.jobs.iter().map(|j| j.cost).sum(),
            preemptions: result.jobs.iter().map(|j| j.preemptions).sum(),
            moves: result.jobs.iter().map(|j| j.moves).sum(),
            resizes: result.jobs.iter().map(|j| j.resizes).sum(),
            restart_s: result.jobs.iter().map(|j| j.restart_s).sum(),
            jain_fairness,
            cycles: result.cycles,
            usage_by_queue: result.usage_by_queue.clone(),
        }
    }

    /// The mean of several runs of one policy (over workloads); counts are summed.
    pub fn mean(policy: &str, runs: &[Summary]) -> Summary {
        let n = runs.len().max(1) as f64;
        let avg = |f: &dyn Fn(&Summary) -> f64| runs.iter().map(f).sum::<f64>() / n;
        let avg_map = |f: &dyn Fn(&Summary) -> &BTreeMap<String, f64>| {
            let mut m: BTreeMap<String, f64> = BTreeMap::new();
            for r in runs {
                for (k, v) in f(r) {
                    *m.entry(k.clone()).or_default() += v / n;
                }
            }
            m
        };
        Summary {
            policy: policy.to_string(),
            jobs: runs.iter().map(|r| r.jobs).sum(),
            completed: runs.iter().map(|r| r.completed).sum(),
            avg_jct_s: avg(&|r| r.avg_jct_s),
            p50_jct_s: avg(&|r| r.p50_jct_s),
            p99_jct_s: avg(&|r| r.p99_jct_s),
            avg_queue_s: avg(&|r| r.avg_queue_s),
            p99_queue_s: avg(&|r| r.p99_queue_s),
            makespan_s: avg(&|r| r.makespan_s as f64).round() as u64,
            utilisation_by_kind: avg_map(&|r| &r.utilisation_by_kind),
            utilisation_by_accelerator: avg_map(&|r| &r.utilisation_by_accelerator),
            energy_kwh: avg(&|r| r.energy_kwh),
            cost: avg(&|r| r.cost),
            preemptions: runs.iter().map(|r| r.preemptions).sum(),
            moves: runs.iter().map(|r| r.moves).sum(),
            resizes: runs.iter().map(|r| r.resizes).sum(),
            restart_s: runs.iter().map(|r| r.restart_s).sum(),
            jain_fairness: avg(&|r| r.jain_fairness),
            cycles: runs.iter().map(|r| r.cycles).sum(),
            usage_by_queue: mean_usage(runs),
        }
    }
}

/// Per queue, the mean of several runs' usage (attempts summed, as the other counts).
fn mean_usage(runs: &[Summary]) -> BTreeMap<String, QueueUsage> {
    let n = runs.len().max(1) as f64;
    let mut sums: BTreeMap<String, (u64, Amounts)> = BTreeMap::new();
    for (q, u) in runs.iter().flat_map(|r| &r.usage_by_queue) {
        let entry = sums.entry(q.clone()).or_default();
        entry.0 += u.attempts;
        entry.1 = entry.1.plus(&u.amounts.scaled(1.0 / n));
    }
    sums.into_iter().map(|(q, (k, a))| (q, QueueUsage::of(k, a))).collect()
}

/// Per policy, each queue's usage as a text table.
pub fn usage_table(summaries: &[Summary]) -> String {
    let mut out = String::new();
    let width = summaries.iter().flat_map(|s| s.usage_by_queue.keys()).map(String::len).max().unwrap_or(5).max(5);
    for s in summaries {
        let _ = writeln!(
            out,
            "{:width$}  {:>8}  {:>10}  {:>10}  {:>10}  {:>10}  {:>9}   ({})",
            "queue", "attempts", "GPU-hours", "kWh", "cost", "kg CO2e", "TFLOPS/W", s.policy
        );
        for (q, u) in &s.usage_by_queue {
            let _ = writeln!(
                out,
                "{q:width$}  {:>8}  {:>10.1}  {:>10.1}  {:>10.1}  {:>10.1}  {:>9.4}",
                u.attempts, u.gpu_hours, u.energy_kwh, u.cost, u.carbon_kg, u.tflops_per_watt
            );
        }
    }
    out
}

/// Jain's fairness index of `x`: (sum x)^2 / (n sum x^2), 1 for an empty or all-zero set.
pub fn jain(x: &[f64]) -> f64 {
    let sum: f64 = x.iter().sum();
    let squares: f64 = x.iter().map(|v| v * v).sum();
    if x.is_empty() || squares == 0.0 {
        1.0
    } else {
        sum * sum / (x.len() as f64 * squares)
    }
}

/// Completion times of finished jobs in seconds, sorted (for CDF plots).
pub fn sorted_jcts(result: &SimulationResult) -> Vec<f64> {
    let mut v: Vec<f64> =
        result.jobs.iter().filter_map(|j| Some(j.finished_at?.saturating_sub(j.submitted_at) as f64)).collect();
    v.sort_by(f64::total_cmp);
    v
}

/// Busy share of each cluster's devices over time, averaged over `buckets` equal
/// intervals from the first submission to the end: (cluster, [(bucket start s, share)]).
pub fn utilisation_over_time(result: &SimulationResult, buckets: usize) -> Vec<(String, Vec<(f64, f64)>)> {
    let start = result.jobs.iter().map(|j| j.submitted_at).min().unwrap_or(0) as f64;
    let end = (result.end_time as f64).max(start + 1.0);
    let buckets = buckets.max(1);
    let width = (end - start) / buckets as f64;
    let mut out = Vec::new();
    for c in &result.pool.clusters {
        let capacity: u64 = c
            .nodes
            .iter()
            .map(|n| {
                if n.accelerator.is_some() {
                    u64::from(n.allocatable.accelerators)
                } else {
                    n.allocatable.cpu_millis / 1000
                }
            })
            .sum();
        let mut busy = vec![0.0f64; buckets];
        for seg in result.jobs.iter().flat_map(|j| &j.segments).filter(|s| s.cluster == c.name) {
            let (s, f) = (seg.start as f64, seg.end.unwrap_or(result.end_time) as f64);
            let first = (((s - start) / width).floor().max(0.0) as usize).min(buckets - 1);
            let last = (((f - start) / width).floor().max(0.0) as usize).min(buckets - 1);
            for (b, slot) in busy.iter_mut().enumerate().take(last + 1).skip(first) {
                let lo = start + b as f64 * width;
                let overlap = (f.min(lo + width) - s.max(lo)).max(0.0);
                *slot += overlap * seg.devices as f64;
            }
        }
        let series = busy
            .iter()
            .enumerate()
            .map(|(b, used)| {
                let share = if capacity == 0 { 0.0 } else { used / (width * capacity as f64) };
                (start + b as f64 * width, share)
            })
            .collect();
        out.push((c.name.clone(), series));
    }
    out
}

fn hours(s: f64) -> String {
    format!("{:.2} h", s / 3600.0)
}

/// Renders summaries side by side as a text table.
pub fn table(summaries: &[Summary]) -> String {
    let mut rows: Vec<(String, Vec<String>)> = vec![
        ("jobs".into(), summaries.iter().map(|s| s.jobs.to_string()).collect()),
        ("completed".into(), summaries.iter().map(|s| s.completed.to_string()).collect()),
        ("avg JCT".into(), summaries.iter().map(|s| hours(s.avg_jct_s)).collect()),
        ("p50 JCT".into(), summaries.iter().map(|s| hours(s.p50_jct_s)).collect()),
        ("p99 JCT".into(), summaries.iter().map(|s| hours(s.p99_jct_s)).collect()),
        ("avg queueing".into(), summaries.iter().map(|s| hours(s.avg_queue_s)).collect()),
        ("p99 queueing".into(), summaries.iter().map(|s| hours(s.p99_queue_s)).collect()),
        ("makespan".into(), summaries.iter().map(|s| hours(s.makespan_s as f64)).collect()),
    ];
    for kind in ClusterKind::ALL {
        let k = kind.to_string();
        if summaries.iter().any(|s| s.utilisation_by_kind.contains_key(&k)) {
            let unit = if kind == ClusterKind::General { format!("{CPU_ONLY} cores") } else { "devices".to_string() };
            rows.push((
                format!("utilisation {k} ({unit})"),
                summaries
                    .iter()
                    .map(|s| format!("{:.1} %", 100.0 * s.utilisation_by_kind.get(&k).copied().unwrap_or(0.0)))
                    .collect(),
            ));
        }
    }
    let types: std::collections::BTreeSet<&String> =
        summaries.iter().flat_map(|s| s.utilisation_by_accelerator.keys()).collect();
    for t in types {
        rows.push((
            format!("utilisation {t}"),
            summaries
                .iter()
                .map(|s| format!("{:.1} %", 100.0 * s.utilisation_by_accelerator.get(t).copied().unwrap_or(0.0)))
                .collect(),
        ));
    }
    rows.push(("energy".into(), summaries.iter().map(|s| format!("{:.1} kWh", s.energy_kwh)).collect()));
    rows.push(("energy cost".into(), summaries.iter().map(|s| format!("{:.1}", s.cost)).collect()));
    rows.push(("preemptions".into(), summaries.iter().map(|s| s.preemptions.to_string()).collect()));
    if summaries.iter().any(|s| s.moves + s.resizes > 0 || s.restart_s > 0) {
        rows.push(("moves".into(), summaries.iter().map(|s| s.moves.to_string()).collect()));
        rows.push(("resizes".into(), summaries.iter().map(|s| s.resizes.to_string()).collect()));
        rows.push(("restart time lost".into(), summaries.iter().map(|s| hours(s.restart_s as f64)).collect()));
    }
    rows.push(("Jain fairness".into(), summaries.iter().map(|s| format!("{:.3}", s.jain_fairness)).collect()));
    let label_w = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    let col_w: Vec<usize> = (0..summaries.len())
        .map(|i| rows.iter().map(|r| r.1[i].len()).chain([summaries[i].policy.len()]).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    let _ = write!(out, "{:label_w$}", "");
    for (s, w) in summaries.iter().zip(&col_w) {
        let _ = write!(out, "  {:>w$}", s.policy);
    }
    out.push('\n');
    for (label, cells) in rows {
        let _ = write!(out, "{label:label_w$}");
        for (c, w) in cells.iter().zip(&col_w) {
            let _ = write!(out, "  {c:>w$}");
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }

    /// Two jobs on a V100 cluster with PUE 1.5, price 2 per kWh and 400 g/kWh:
    /// - "g" (queue a): 2 V100 for 1 h, then moved, 2 V100 again, still running when the
    ///   simulation ends at 2 h;
    /// - "c" (queue b): CPU only, 8 cores (4 replicas x 2000m) for 2 h, held 8 "devices".
    ///
    /// V100 board power 300 W: g uses 2 x 300 W x 2 h = 1.2 kWh at the board, x 1.5 PUE =
    /// 1.8 kWh, 4 GPU-hours, cost 3.6, 0.72 kg; c uses 8 cores x the catalogue's CPU core
    /// power (10 W) x 2 h x 1.5 = 0.24 kWh.
    #[test]
    fn usage_by_queue_hand_checked() {
        use crate::engine::Segment;
        use computenet_core::synth::{cluster, pool};
        use computenet_core::{Catalogue, ClusterEfficiency};
        let mut gpu = cluster("gpu", ClusterKind::AI, "x", 1, Some("V100"), 8);
        let efficiency =
            ClusterEfficiency { pue: 1.5, energy_price_per_kwh: 2.0, carbon_g_per_kwh: Some(400.0), power_scale: 1.0 };
        gpu.efficiency = efficiency.clone();
        let mut cpu = cluster("cpu", ClusterKind::General, "x", 1, None, 0);
        cpu.efficiency = efficiency;
        let p = pool(vec![gpu, cpu]);
        let segment = |cluster: &str, accelerator: Option<&str>, devices, cpu_millis, start, end| Segment {
            cluster: cluster.into(),
            accelerator: accelerator.map(str::to_string),
            devices,
            cpu_millis,
            start,
            end,
        };
        let record = |id: &str, queue: &str, segments| JobRecord {
            id: id.into(),
            queue: queue.into(),
            submitted_at: 0,
            started_at: Some(0),
            finished_at: None,
            cluster: None,
            accelerator: None,
            devices: 0,
            energy_kwh: 0.0,
            cost: 0.0,
            preemptions: 0,
            moves: 1,
            resizes: 0,
            restart_s: 0,
            segments,
        };
        let jobs = vec![
            record(
                "g",
                "a",
                vec![
                    segment("gpu", Some("V100"), 2, 8_000, 0, Some(3_600)),
                    // Still open at the end (7200): counted until then.
                    segment("gpu", Some("V100"), 2, 8_000, 3_600, None),
                ],
            ),
            record("c", "b", vec![segment("cpu", None, 8, 8_000, 0, Some(7_200))]),
        ];
        let model = ThroughputModel::default();
        let usage = usage_by_queue(&jobs, &p, &model, 7_200);
        let catalogue = Catalogue::built_in();
        let v100 = catalogue.get("V100").expect("V100");
        assert_eq!(v100.board_power_w, 300.0);
        let a = &usage["a"];
        assert_eq!(a.attempts, 2);
        assert!((a.gpu_hours - 4.0).abs() < 1e-12);
        assert!((a.energy_kwh - 1.8).abs() < 1e-12, "{}", a.energy_kwh);
        assert!((a.cost - 3.6).abs() < 1e-12);
        assert!((a.carbon_kg - 0.72).abs() < 1e-12);
        let tflops = model.effective_tflops(&catalogue, "V100").expect("V100 TFLOPS");
        assert!((a.amounts.useful_tflop - tflops * 2.0 * 7_200.0).abs() < 1e-6);
        assert!((a.tflops_per_watt - tflops * 2.0 * 7_200.0 / (1.8 * 3.6e6)).abs() < 1e-12);
        let b = &usage["b"];
        assert_eq!(catalogue.get(CPU_ONLY).expect("CPU in the catalogue").board_power_w, 10.0);
        assert_eq!((b.attempts, b.gpu_hours), (1, 0.0));
        assert!((b.amounts.cpu_core_seconds - 8.0 * 7_200.0).abs() < 1e-9);
        assert!((b.energy_kwh - 0.24).abs() < 1e-12, "{}", b.energy_kwh);
    }

    #[test]
    fn jain_index_is_one_when_equal_and_one_over_n_when_one_has_all() {
        assert!((jain(&[0.5, 0.5, 0.5]) - 1.0).abs() < 1e-12);
        assert!((jain(&[1.0, 0.0, 0.0, 0.0]) - 0.25).abs() < 1e-12);
        assert_eq!(jain(&[]), 1.0);
    }
}

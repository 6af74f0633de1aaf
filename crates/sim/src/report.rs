//! Summaries of a simulation: completion times, queueing, utilisation, energy.

use crate::engine::SimulationResult;
use computenet_core::accelerator::CPU_ONLY;
use computenet_core::ClusterKind;
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
    pub energy_kwh: f64,
    pub cost: f64,
    pub preemptions: u32,
    pub cycles: u64,
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

        // Utilisation by kind: device-seconds used / device-seconds offered.
        let cluster_kind: BTreeMap<&str, ClusterKind> =
            result.pool.clusters.iter().map(|c| (c.name.as_str(), c.kind)).collect();
        let mut offered: BTreeMap<ClusterKind, f64> = BTreeMap::new();
        for c in &result.pool.clusters {
            let devices: u64 = c
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
            *offered.entry(c.kind).or_default() += devices as f64 * makespan as f64;
        }
        let mut used: BTreeMap<ClusterKind, f64> = BTreeMap::new();
        for j in &done {
            if let (Some(c), Some(s), Some(f)) = (&j.cluster, j.started_at, j.finished_at) {
                if let Some(kind) = cluster_kind.get(c.as_str()) {
                    *used.entry(*kind).or_default() += j.devices as f64 * (f - s) as f64;
                }
            }
        }
        let utilisation_by_kind = offered
            .iter()
            .map(|(k, o)| (k.to_string(), if *o > 0.0 { used.get(k).copied().unwrap_or(0.0) / o } else { 0.0 }))
            .collect();
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
            energy_kwh: result.jobs.iter().map(|j| j.energy_kwh).sum(),
            cost: result.jobs.iter().map(|j| j.cost).sum(),
            preemptions: result.jobs.iter().map(|j| j.preemptions).sum(),
            cycles: result.cycles,
        }
    }
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
    rows.push(("energy".into(), summaries.iter().map(|s| format!("{:.1} kWh", s.energy_kwh)).collect()));
    rows.push(("energy cost".into(), summaries.iter().map(|s| format!("{:.1}", s.cost)).collect()));
    rows.push(("preemptions".into(), summaries.iter().map(|s| s.preemptions.to_string()).collect()));
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
}

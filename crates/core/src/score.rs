//! Scoring candidate placements by the job's objective.
//!
//! Each metric is compared with the best candidate's (ratio >= 1, so units cancel) and
//! the ratios are weighted by the objective. Lower is better; 1.0 is "best on every
//! weighted metric".

use crate::job::Objective;
use crate::throughput::Estimate;
use serde::{Deserialize, Serialize};

/// Carbon intensity assumed where a cluster gives none (gCO2e/kWh, a grid average).
pub const DEFAULT_CARBON_G_PER_KWH: f64 = 550.0;

/// The raw metrics of one candidate that the score weighs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Metrics {
    /// Wait + data transfer + runtime, seconds from now.
    pub completion_s: f64,
    pub energy_kwh: f64,
    pub cost: f64,
    pub carbon_kg: f64,
}

impl Metrics {
    /// Metrics of an estimate that starts after `wait_s`.
    pub fn of(estimate: &Estimate, wait_s: f64) -> Self {
        Metrics {
            completion_s: wait_s + estimate.transfer_s + estimate.runtime_s,
            energy_kwh: estimate.energy_kwh,
            cost: estimate.cost,
            carbon_kg: estimate.carbon_kg.unwrap_or(estimate.energy_kwh * DEFAULT_CARBON_G_PER_KWH / 1000.0),
        }
    }
}

/// Weights of (completion time, energy, cost, carbon) per objective.
pub fn weights(objective: Objective) -> [f64; 4] {
    // Small weights on the other metrics break ties sensibly.
    match objective {
        Objective::Fastest => [1.0, 0.01, 0.01, 0.0],
        Objective::Cheapest => [0.05, 0.0, 1.0, 0.0],
        Objective::Greenest => [0.05, 0.0, 0.0, 1.0],
        Objective::Balanced => [0.5, 0.25, 0.25, 0.0],
    }
}

/// A candidate's score and its parts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScoreBreakdown {
    /// Weighted ratio to the best candidate, per metric.
    pub time: f64,
    pub energy: f64,
    pub cost: f64,
    pub carbon: f64,
    pub total: f64,
}

/// Scores all candidates for one objective.
pub fn score_all(objective: Objective, metrics: &[Metrics]) -> Vec<ScoreBreakdown> {
    const EPS: f64 = 1e-9;
    let best = |f: fn(&Metrics) -> f64| metrics.iter().map(f).fold(f64::INFINITY, f64::min).max(0.0);
    let bests = [best(|m| m.completion_s), best(|m| m.energy_kwh), best(|m| m.cost), best(|m| m.carbon_kg)];
    let w = weights(objective);
    metrics
        .iter()
        .map(|m| {
            let ratio = |v: f64, i: usize| w[i] * (v + EPS) / (bests[i] + EPS);
            let time = ratio(m.completion_s, 0);
            let energy = ratio(m.energy_kwh, 1);
            let cost = ratio(m.cost, 2);
            let carbon = ratio(m.carbon_kg, 3);
            ScoreBreakdown { time, energy, cost, carbon, total: time + energy + cost + carbon }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(completion_s: f64, energy_kwh: f64, cost: f64) -> Metrics {
        Metrics { completion_s, energy_kwh, cost, carbon_kg: energy_kwh * 0.5 }
    }

    fn best(objective: Objective, ms: &[Metrics]) -> usize {
        let s = score_all(objective, ms);
        (0..s.len()).min_by(|a, b| s[*a].total.total_cmp(&s[*b].total)).unwrap_or(0)
    }

    #[test]
    fn objectives_pick_their_metric() {
        let fast_but_costly = m(100.0, 50.0, 80.0);
        let slow_but_cheap = m(400.0, 20.0, 10.0);
        let ms = [fast_but_costly, slow_but_cheap];
        assert_eq!(best(Objective::Fastest, &ms), 0);
        assert_eq!(best(Objective::Cheapest, &ms), 1);
        assert_eq!(best(Objective::Greenest, &ms), 1);
    }

    #[test]
    fn best_on_everything_scores_sum_of_weights() {
        let s = score_all(Objective::Balanced, &[m(10.0, 1.0, 1.0), m(20.0, 2.0, 2.0)]);
        assert!((s[0].total - 1.0).abs() < 1e-6);
        assert!((s[1].total - 2.0).abs() < 1e-6);
    }
}

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
            carbon_kg: estimate
                .carbon_kg
                .unwrap_or_else(|| crate::throughput::carbon_kg(estimate.energy_kwh, DEFAULT_CARBON_G_PER_KWH)),
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

/// Keeps ratios finite when a best metric is zero.
const EPS: f64 = 1e-9;

/// What each metric's ratio to the best is multiplied by: the objective's weight over the
/// best candidate's value. Worked out once per job, so scoring a candidate takes no
/// division.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scale([f64; 4]);

impl Scale {
    /// The scale of `objective` over these candidates (the best of each metric among them).
    pub fn over<'m>(objective: Objective, metrics: impl IntoIterator<Item = &'m Metrics>) -> Self {
        let mut bests = [f64::INFINITY; 4];
        for m in metrics {
            bests[0] = bests[0].min(m.completion_s);
            bests[1] = bests[1].min(m.energy_kwh);
            bests[2] = bests[2].min(m.cost);
            bests[3] = bests[3].min(m.carbon_kg);
        }
        let w = weights(objective);
        Scale(std::array::from_fn(|i| w[i] / (bests[i].max(0.0) + EPS)))
    }

    /// One candidate's score.
    pub fn score(&self, m: &Metrics) -> ScoreBreakdown {
        let f = &self.0;
        let (time, energy, cost, carbon) = (
            (m.completion_s + EPS) * f[0],
            (m.energy_kwh + EPS) * f[1],
            (m.cost + EPS) * f[2],
            (m.carbon_kg + EPS) * f[3],
        );
        ScoreBreakdown { time, energy, cost, carbon, total: time + energy + cost + carbon }
    }

    /// One candidate's total score, the one [`Self::score`] gives (one expression, so the
    /// rank and the explanation cannot disagree; inlined, the parts are not kept).
    #[inline]
    pub fn total(&self, m: &Metrics) -> f64 {
        self.score(m).total
    }
}

/// Scores all candidates for one objective.
pub fn score_all(objective: Objective, metrics: &[Metrics]) -> Vec<ScoreBreakdown> {
    let scale = Scale::over(objective, metrics);
    metrics.iter().map(|m| scale.score(m)).collect()
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

    proptest::proptest! {
        /// The cycle ranks candidates by `total` and shows `score`: they agree to the bit,
        /// and each part is the objective's weight times the ratio to the best candidate.
        #[test]
        fn the_total_alone_is_the_total_of_the_parts(
            values in proptest::collection::vec((0.0f64..1e6, 0.0f64..1e3, 0.0f64..1e3, 0.0f64..1e3), 1..20),
            objective in 0usize..4,
        ) {
            let metrics: Vec<Metrics> = values
                .iter()
                .map(|&(completion_s, energy_kwh, cost, carbon_kg)| Metrics { completion_s, energy_kwh, cost, carbon_kg })
                .collect();
            let objective = Objective::ALL[objective];
            let scale = Scale::over(objective, &metrics);
            let w = weights(objective);
            let best = |f: fn(&Metrics) -> f64| metrics.iter().map(f).fold(f64::INFINITY, f64::min);
            let bests = [best(|m| m.completion_s), best(|m| m.energy_kwh), best(|m| m.cost), best(|m| m.carbon_kg)];
            for m in &metrics {
                let score = scale.score(m);
                proptest::prop_assert_eq!(scale.total(m).to_bits(), score.total.to_bits());
                // Each part is the weighted ratio to the best candidate's value.
                let parts = [score.time, score.energy, score.cost, score.carbon];
                let values = [m.completion_s, m.energy_kwh, m.cost, m.carbon_kg];
                for i in 0..4 {
                    let expected = w[i] * (values[i] + EPS) / (bests[i] + EPS);
                    proptest::prop_assert!((parts[i] - expected).abs() <= 1e-12 * expected.abs().max(1.0));
                }
            }
        }
    }

    proptest::proptest! {
        /// A cluster that states the default intensity and one that states none tie to the
        /// bit, so pool order (not rounding) decides between them.
        #[test]
        fn the_default_intensity_stated_or_not_gives_the_same_carbon(energy_kwh in 0.0f64..1e6) {
            let estimate = |carbon_kg| Estimate {
                runtime_s: 1.0,
                transfer_s: 0.0,
                energy_kwh,
                cost: 0.0,
                carbon_kg,
                source: crate::throughput::EstimateSource::PeakTflops,
            };
            let stated = crate::throughput::carbon_kg(energy_kwh, DEFAULT_CARBON_G_PER_KWH);
            proptest::prop_assert_eq!(
                Metrics::of(&estimate(Some(stated)), 0.0).carbon_kg.to_bits(),
                Metrics::of(&estimate(None), 0.0).carbon_kg.to_bits()
            );
        }
    }

    #[test]
    fn best_on_everything_scores_sum_of_weights() {
        let s = score_all(Objective::Balanced, &[m(10.0, 1.0, 1.0), m(20.0, 2.0, 2.0)]);
        assert!((s[0].total - 1.0).abs() < 1e-6);
        assert!((s[1].total - 2.0).abs() < 1e-6);
    }
}

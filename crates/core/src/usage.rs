//! What job attempts used, and what past usage weighs for fair share and budgets.
//!
//! Pure and shared: the service meters real attempts with it, the simulator simulated
//! ones, so both report the same figures for the same placements and times.
//!
//! - [`Amounts`]: device-seconds, energy (and how much of it was measured), cost, carbon
//!   and useful work of an attempt or of a sum of attempts.
//! - [`attempt_amounts`]: an attempt's amounts from its placement and wall time.
//! - [`buckets`]: an attempt's wall time cut into fixed time buckets (hourly rows).
//! - [`past_share`]: decayed past usage as a share of a queue's quota (fair share with
//!   memory); [`decay`]: the weight of usage some time ago.
//! - [`BudgetPeriod`] and [`Budget`]: the period a budget is counted over, and whether it
//!   is spent.

use crate::accelerator::{Catalogue, CPU_ONLY};
use crate::pool::ClusterEfficiency;
use crate::queue::{Quota, ResourceName};
use crate::throughput::ThroughputModel;
use serde::{Deserialize, Serialize};

/// What one or more attempts used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Amounts {
    /// Accelerator-seconds (devices x wall seconds).
    pub gpu_seconds: f64,
    /// CPU core-seconds requested (cores x wall seconds).
    pub cpu_core_seconds: f64,
    /// Facility energy (device power x PUE), in kWh.
    pub energy_kwh: f64,
    /// The part of `energy_kwh` apportioned from measured power (the member's Prometheus
    /// reading); the rest is estimated from the catalogue's board power.
    pub measured_energy_kwh: f64,
    /// Energy cost at the member's price, in the pool's currency.
    pub cost: f64,
    /// kg CO2e at the member's grid intensity (the default intensity when it gives none).
    pub carbon_kg: f64,
    /// Useful work, in tera-FLOP: device-seconds x the device's effective TFLOPS.
    pub useful_tflop: f64,
}

impl Amounts {
    /// Both added up.
    pub fn plus(&self, other: &Amounts) -> Amounts {
        Amounts {
            gpu_seconds: self.gpu_seconds + other.gpu_seconds,
            cpu_core_seconds: self.cpu_core_seconds + other.cpu_core_seconds,
            energy_kwh: self.energy_kwh + other.energy_kwh,
            measured_energy_kwh: self.measured_energy_kwh + other.measured_energy_kwh,
            cost: self.cost + other.cost,
            carbon_kg: self.carbon_kg + other.carbon_kg,
            useful_tflop: self.useful_tflop + other.useful_tflop,
        }
    }

    /// Every amount times `factor` (a share of an attempt's time).
    pub fn scaled(&self, factor: f64) -> Amounts {
        Amounts {
            gpu_seconds: self.gpu_seconds * factor,
            cpu_core_seconds: self.cpu_core_seconds * factor,
            energy_kwh: self.energy_kwh * factor,
            measured_energy_kwh: self.measured_energy_kwh * factor,
            cost: self.cost * factor,
            carbon_kg: self.carbon_kg * factor,
            useful_tflop: self.useful_tflop * factor,
        }
    }

    /// GPU-hours.
    pub fn gpu_hours(&self) -> f64 {
        self.gpu_seconds / 3600.0
    }

    /// Useful TFLOPS per facility watt achieved (算效): useful work over energy. 0 without
    /// energy.
    pub fn tflops_per_watt(&self) -> f64 {
        let joules = self.energy_kwh * 3.6e6;
        if joules > 0.0 {
            self.useful_tflop / joules
        } else {
            0.0
        }
    }
}

/// Grid intensity assumed where a member gives none, gCO2e per kWh (the same default the
/// placement score uses).
pub const DEFAULT_CARBON_G_PER_KWH: f64 = crate::score::DEFAULT_CARBON_G_PER_KWH;

/// Where an attempt ran and for how long: what [`attempt_amounts`] needs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AttemptShape<'a> {
    /// Accelerator type (None: CPU only).
    pub accelerator: Option<&'a str>,
    /// Accelerators of the whole gang.
    pub devices: u64,
    /// CPU of the whole gang, in millicores.
    pub cpu_millis: u64,
    /// Wall seconds from admission to end.
    pub seconds: f64,
}

/// What an attempt used, by the throughput model's device figures and the member's
/// efficiency. `measured`: the member's power scale comes from a measured power reading
/// (so the energy is apportioned from measured power, not estimated).
pub fn attempt_amounts(
    model: &ThroughputModel,
    catalogue: &Catalogue,
    efficiency: &ClusterEfficiency,
    measured: bool,
    shape: &AttemptShape<'_>,
) -> Amounts {
    let seconds = if shape.seconds.is_finite() { shape.seconds.max(0.0) } else { 0.0 };
    let cores = shape.cpu_millis as f64 / 1000.0;
    // Power follows the placement model: accelerators for a GPU job, cores for a CPU job.
    let (kind, units) = match shape.accelerator {
        Some(a) if shape.devices > 0 => (a, shape.devices as f64),
        _ => (CPU_ONLY, cores.max(1.0)),
    };
    let spec = catalogue.get(kind);
    let power_w = spec.map_or(0.0, |s| s.board_power_w) * units * efficiency.power_scale.max(0.0);
    let energy_kwh = finite(power_w * seconds / 3.6e6 * efficiency.pue.max(1.0));
    let tflops = model.effective_tflops(catalogue, kind).unwrap_or(0.0);
    let intensity = efficiency.carbon_g_per_kwh.unwrap_or(DEFAULT_CARBON_G_PER_KWH);
    Amounts {
        gpu_seconds: if shape.accelerator.is_some() { finite(shape.devices as f64 * seconds) } else { 0.0 },
        cpu_core_seconds: finite(cores * seconds),
        energy_kwh,
        measured_energy_kwh: if measured { energy_kwh } else { 0.0 },
        cost: finite(energy_kwh * efficiency.energy_price_per_kwh.max(0.0)),
        carbon_kg: finite(energy_kwh * intensity.max(0.0) / 1000.0),
        useful_tflop: finite(tflops * units * seconds),
    }
}

fn finite(v: f64) -> f64 {
    if v.is_finite() {
        v.max(0.0)
    } else {
        0.0
    }
}

/// `[start, end)` cut at multiples of `bucket_s`: (bucket start, seconds in it), in order.
/// Empty when `end <= start`; a `bucket_s` of 0 counts as 1.
pub fn buckets(start: u64, end: u64, bucket_s: u64) -> impl Iterator<Item = (u64, u64)> {
    let b = bucket_s.max(1);
    let mut at = start;
    std::iter::from_fn(move || {
        if at >= end {
            return None;
        }
        let bucket = at - at % b;
        let until = (bucket + b).min(end);
        let piece = (bucket, until - at);
        at = until;
        Some(piece)
    })
}

/// The weight of usage `age_s` seconds ago: halved every `half_life_s`; a half life of 0
/// forgets the past at once (weight 0 for any age > 0).
pub fn decay(age_s: f64, half_life_s: f64) -> f64 {
    if half_life_s <= 0.0 {
        return if age_s <= 0.0 { 1.0 } else { 0.0 };
    }
    (-(age_s.max(0.0)) / half_life_s * std::f64::consts::LN_2).exp()
}

/// Past usage of one resource (and accelerator type), already decayed to now: the sum
/// of amount x [`decay`] over the queue's usage rows.
#[derive(Debug, Clone, PartialEq)]
pub struct DecayedUsage {
    pub resource: ResourceName,
    /// The accelerator type the usage was on (None: CPU only).
    pub accelerator: Option<String>,
    /// In the quota's units times seconds: device-seconds, millicore-seconds.
    pub amount: f64,
}

/// A queue's past share: decayed past usage over what its quota could have used in the
/// same time, the largest over its quotas.
///
/// A queue that used its full nominal of a resource continuously for ever has decayed
/// usage `nominal x H / ln 2`; that is share 1. So `past_share` is on the same scale as
/// the current dominant share (used / nominal), and the ordering share is
/// `(current + past) / weight`. With a half life of 0 it is 0, and ordering is plain
/// weighted DRF on current usage.
pub fn past_share(quotas: &[Quota], past: &[DecayedUsage], half_life_s: f64) -> f64 {
    if half_life_s <= 0.0 {
        return 0.0;
    }
    let horizon = half_life_s / std::f64::consts::LN_2;
    quotas
        .iter()
        .filter(|q| q.nominal > 0)
        .map(|q| {
            let used: f64 =
                past.iter().filter(|u| q.counts(&u.resource, u.accelerator.as_deref())).map(|u| u.amount).sum();
            used / (q.nominal as f64 * horizon)
        })
        .fold(0.0, f64::max)
}

/// The quota resources an attempt's amounts count against, for [`DecayedUsage`]:
/// accelerators in device-seconds, CPU in millicore-seconds.
pub fn quota_amounts(amounts: &Amounts) -> [(ResourceName, f64); 2] {
    [(ResourceName::Accelerators, amounts.gpu_seconds), (ResourceName::Cpu, amounts.cpu_core_seconds * 1000.0)]
}

/// What a budget period is: calendar periods in UTC, or fixed windows of some seconds
/// counted from the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BudgetPeriod {
    Hour,
    Day,
    /// Monday to Monday.
    Week,
    Month,
    Seconds(u64),
}

impl BudgetPeriod {
    /// The period holding `now` (Unix seconds): `[start, end)`.
    pub fn bounds(&self, now: u64) -> (u64, u64) {
        const DAY: u64 = 86_400;
        match *self {
            BudgetPeriod::Hour => fixed(now, 3_600),
            BudgetPeriod::Day => fixed(now, DAY),
            // The epoch was a Thursday: weeks start 4 days after it.
            BudgetPeriod::Week => {
                let shifted = now + 3 * DAY;
                let start = shifted - shifted % (7 * DAY);
                (start.saturating_sub(3 * DAY), start + 4 * DAY)
            }
            BudgetPeriod::Month => {
                let (y, m, _) = civil(now / DAY);
                let start = days_from_civil(y, m, 1) * DAY;
                let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                (start, days_from_civil(ny, nm, 1) * DAY)
            }
            BudgetPeriod::Seconds(s) => fixed(now, s.max(1)),
        }
    }
}

fn fixed(now: u64, len: u64) -> (u64, u64) {
    let start = now - now % len;
    (start, start + len)
}

/// (year, month 1-12, day 1-31) of a day count since 1970-01-01 (proleptic Gregorian).
pub fn civil(days: u64) -> (i64, u32, u32) {
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Days since 1970-01-01 of a date (the inverse of [`civil`]); 0 before the epoch.
pub fn days_from_civil(year: i64, month: u32, day: u32) -> u64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    u64::try_from(era * 146_097 + doe - 719_468).unwrap_or(0)
}

/// A budget per period: any limit reached means spent.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Budget {
    pub period: BudgetPeriod,
    #[serde(default)]
    pub gpu_hours: Option<f64>,
    #[serde(default)]
    pub kilowatt_hours: Option<f64>,
    #[serde(default)]
    pub cost: Option<f64>,
}

impl Budget {
    /// Spent over limit, the largest over the limits (0 for a zero limit not yet used,
    /// 1 once it is used at all); None without limits.
    pub fn spent_ratio(&self, spent: &Amounts) -> Option<f64> {
        let limits =
            [(self.gpu_hours, spent.gpu_hours()), (self.kilowatt_hours, spent.energy_kwh), (self.cost, spent.cost)];
        limits
            .iter()
            .filter_map(|(limit, used)| {
                limit.map(|l| {
                    if l > 0.0 {
                        used / l
                    } else if *used > 0.0 {
                        1.0
                    } else {
                        0.0
                    }
                })
            })
            .reduce(f64::max)
    }

    /// Which limit `spent` reached, in words ("10.2 of 10 GPU-hours"); None while any
    /// is left of every limit.
    pub fn exhausted(&self, spent: &Amounts) -> Option<String> {
        let limits = [
            (self.gpu_hours, spent.gpu_hours(), "GPU-hours"),
            (self.kilowatt_hours, spent.energy_kwh, "kWh"),
            (self.cost, spent.cost, "in energy cost"),
        ];
        limits
            .iter()
            .find_map(|(limit, used, unit)| limit.filter(|l| used >= l).map(|l| format!("{used:.3} of {l} {unit}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpu_quota(nominal: u64) -> Quota {
        Quota {
            resource: ResourceName::Accelerators,
            accelerator: None,
            nominal,
            borrowing_limit: None,
            lending_limit: None,
        }
    }

    #[test]
    fn buckets_cut_at_boundaries_and_add_up() {
        let cut: Vec<_> = buckets(3_500, 7_300, 3_600).collect();
        assert_eq!(cut, vec![(0, 100), (3_600, 3_600), (7_200, 100)]);
        assert_eq!(buckets(10, 10, 60).count(), 0);
        assert_eq!(buckets(10, 5, 60).count(), 0);
        assert_eq!(buckets(0, 5, 0).map(|(_, s)| s).sum::<u64>(), 5);
    }

    #[test]
    fn amounts_follow_the_catalogue_and_the_member() {
        let catalogue = Catalogue::built_in();
        let model = ThroughputModel::default();
        let efficiency =
            ClusterEfficiency { pue: 1.5, energy_price_per_kwh: 1.0, carbon_g_per_kwh: Some(500.0), power_scale: 1.0 };
        let a100 = catalogue.get("A100").expect("A100 in the catalogue");
        let shape = AttemptShape { accelerator: Some("A100"), devices: 8, cpu_millis: 16_000, seconds: 3_600.0 };
        let got = attempt_amounts(&model, &catalogue, &efficiency, false, &shape);
        assert_eq!(got.gpu_seconds, 8.0 * 3_600.0);
        assert_eq!(got.cpu_core_seconds, 16.0 * 3_600.0);
        let kwh = a100.board_power_w * 8.0 / 1000.0 * 1.5;
        assert!((got.energy_kwh - kwh).abs() < 1e-9, "{} vs {kwh}", got.energy_kwh);
        assert_eq!(got.measured_energy_kwh, 0.0);
        assert!((got.cost - kwh).abs() < 1e-9);
        assert!((got.carbon_kg - kwh * 0.5).abs() < 1e-9);
        let useful = a100.peak_tflops * model.default_utilisation * 8.0 * 3_600.0;
        assert!((got.useful_tflop - useful).abs() < 1e-6);
        // A measured power scale is used and marked.
        let measured = ClusterEfficiency { power_scale: 1.2, ..efficiency };
        let m = attempt_amounts(&model, &catalogue, &measured, true, &shape);
        assert!((m.energy_kwh - kwh * 1.2).abs() < 1e-9);
        assert_eq!(m.measured_energy_kwh, m.energy_kwh);
        // Halving the time halves everything.
        let half = attempt_amounts(&model, &catalogue, &efficiency, false, &AttemptShape { seconds: 1_800.0, ..shape });
        assert!((half.scaled(2.0).energy_kwh - got.energy_kwh).abs() < 1e-9);
        // Hostile times give zeros, never NaN.
        let nan = attempt_amounts(&model, &catalogue, &efficiency, false, &AttemptShape { seconds: f64::NAN, ..shape });
        assert_eq!(nan, Amounts { ..Amounts::default() });
    }

    #[test]
    fn a_cpu_job_uses_core_power_and_no_gpu_seconds() {
        let catalogue = Catalogue::built_in();
        let shape = AttemptShape { accelerator: None, devices: 0, cpu_millis: 4_000, seconds: 100.0 };
        let got =
            attempt_amounts(&ThroughputModel::default(), &catalogue, &ClusterEfficiency::default(), false, &shape);
        assert_eq!(got.gpu_seconds, 0.0);
        assert_eq!(got.cpu_core_seconds, 400.0);
        assert!(got.energy_kwh > 0.0);
    }

    #[test]
    fn decay_halves_per_half_life_and_zero_forgets() {
        assert!((decay(3_600.0, 3_600.0) - 0.5).abs() < 1e-12);
        assert!((decay(7_200.0, 3_600.0) - 0.25).abs() < 1e-12);
        assert_eq!(decay(0.0, 3_600.0), 1.0);
        assert_eq!(decay(1.0, 0.0), 0.0);
    }

    #[test]
    fn full_use_for_ever_is_share_one_and_zero_half_life_is_none() {
        let h = 86_400.0;
        let nominal = 8;
        // Continuous use of the whole nominal: decayed usage nominal * H / ln 2.
        let past = vec![DecayedUsage {
            resource: ResourceName::Accelerators,
            accelerator: Some("A100".into()),
            amount: nominal as f64 * h / std::f64::consts::LN_2,
        }];
        assert!((past_share(&[gpu_quota(nominal)], &past, h) - 1.0).abs() < 1e-9);
        assert_eq!(past_share(&[gpu_quota(nominal)], &past, 0.0), 0.0);
        assert_eq!(past_share(&[], &past, h), 0.0);
    }

    #[test]
    fn periods_are_calendar_periods_in_utc() {
        // 2026-12-01T16:00:00Z, a Tuesday.
        let now = days_from_civil(2026, 12, 1) * 86_400 + 16 * 3_600;
        assert_eq!(civil(now / 86_400), (2026, 12, 1));
        assert_eq!(BudgetPeriod::Day.bounds(now), (now - 16 * 3_600, now + 8 * 3_600));
        let (ws, we) = BudgetPeriod::Week.bounds(now);
        assert_eq!(civil(ws / 86_400), (2026, 11, 30), "weeks start on Monday");
        assert_eq!(we - ws, 7 * 86_400);
        let (ms, me) = BudgetPeriod::Month.bounds(now);
        assert_eq!((civil(ms / 86_400), civil(me / 86_400)), ((2026, 12, 1), (2027, 1, 1)));
        let feb = days_from_civil(2028, 2, 10) * 86_400;
        let (fs, fe) = BudgetPeriod::Month.bounds(feb);
        assert_eq!((fe - fs) / 86_400, 29, "2028 is a leap year");
        assert_eq!(BudgetPeriod::Seconds(120).bounds(1_000), (960, 1_080));
        for d in [0, 59, 365, 10_957, 20_000, 50_000] {
            let (y, m, day) = civil(d);
            assert_eq!(days_from_civil(y, m, day), d);
        }
    }

    #[test]
    fn a_budget_is_spent_when_any_limit_is_reached() {
        let budget = Budget { period: BudgetPeriod::Day, gpu_hours: Some(10.0), kilowatt_hours: None, cost: Some(5.0) };
        let mut spent = Amounts { gpu_seconds: 9.0 * 3_600.0, cost: 1.0, ..Amounts::default() };
        assert_eq!(budget.exhausted(&spent), None);
        spent.gpu_seconds = 10.0 * 3_600.0;
        assert!(budget.exhausted(&spent).expect("spent").contains("of 10 GPU-hours"));
        let costly = Amounts { cost: 6.0, ..Amounts::default() };
        assert!(budget.exhausted(&costly).expect("spent").contains("energy cost"));
    }
}

//! Measured throughput profiles and their parsers.
//!
//! The parsers take text (the caller reads the files) so the core stays free of IO. Two
//! published formats are understood:
//! - Gavel's throughput matrix (`simulation_throughputs.json`): steps/s per job type and
//!   scale factor on V100, P100 and K80, consolidated on one server or spread across servers;
//! - Sia's step-time tables (`placements-<gpu>.csv`): step time per placement (GPUs per node
//!   as digits, e.g. `44` = two nodes of four) and local batch size, plus the
//!   `validation-<batch>.csv` tables of cumulative iterations per epoch.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One measurement: how many steps per second a model makes on a placement.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProfilePoint {
    /// Devices in all.
    pub gpus: u32,
    /// Nodes the devices were spread over, when the measurement says.
    pub nodes: Option<u32>,
    /// Per-device batch size of the measurement, when it says.
    pub local_batch: Option<u32>,
    pub steps_per_s: f64,
}

/// Measured profiles by model and accelerator type.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProfileSet {
    by_model: BTreeMap<String, BTreeMap<String, Vec<ProfilePoint>>>,
}

impl ProfileSet {
    /// Adds a measurement.
    pub fn insert(&mut self, model: &str, accelerator: &str, point: ProfilePoint) {
        self.by_model.entry(model.to_string()).or_default().entry(accelerator.to_string()).or_default().push(point);
    }

    /// Merges another set into this one.
    pub fn extend(&mut self, other: ProfileSet) {
        for (model, by_type) in other.by_model {
            for (accelerator, points) in by_type {
                self.by_model.entry(model.clone()).or_default().entry(accelerator).or_default().extend(points);
            }
        }
    }

    /// Multiplies every measured rate of `model` by `factor` (e.g. to slow measurements
    /// down the way a peer simulator does).
    pub fn scale_model(&mut self, model: &str, factor: f64) {
        if let Some(by_type) = self.by_model.get_mut(model) {
            for p in by_type.values_mut().flatten() {
                p.steps_per_s *= factor;
            }
        }
    }

    /// Whether the model has any measurement.
    pub fn has_model(&self, model: &str) -> bool {
        self.by_model.contains_key(model)
    }

    /// Models measured.
    pub fn models(&self) -> impl Iterator<Item = &str> {
        self.by_model.keys().map(String::as_str)
    }

    /// Accelerator types with measurements of `model`.
    pub fn accelerators_of(&self, model: &str) -> impl Iterator<Item = &str> {
        self.by_model.get(model).into_iter().flat_map(|m| m.keys().map(String::as_str))
    }

    /// Steps per second of `model` on `gpus` devices of `accelerator` over `nodes` nodes,
    /// at a global batch size when given. Exact placements are preferred; a different
    /// device count is scaled linearly (the caller applies its multi-node efficiency).
    /// Returns the rate and whether the placement was measured exactly.
    pub fn steps_per_s(
        &self,
        model: &str,
        accelerator: &str,
        gpus: u32,
        nodes: u32,
        global_batch: Option<u32>,
    ) -> Option<(f64, bool)> {
        let points = self.by_model.get(model)?.get(accelerator)?;
        let gpus = gpus.max(1);
        let same_gpus: Vec<&ProfilePoint> = points.iter().filter(|p| p.gpus == gpus).collect();
        let same_placement: Vec<&ProfilePoint> =
            same_gpus.iter().copied().filter(|p| p.nodes.is_none_or(|n| n == nodes)).collect();
        let (chosen, exact) = if !same_placement.is_empty() {
            (same_placement, true)
        } else if !same_gpus.is_empty() {
            (same_gpus, false)
        } else {
            // Nearest device count (ties to the smaller), then scale linearly.
            let nearest = points.iter().map(|p| p.gpus).min_by_key(|g| (g.abs_diff(gpus), *g))?;
            let near: Vec<&ProfilePoint> = points.iter().filter(|p| p.gpus == nearest).collect();
            let rate = rate_at_batch(&near, global_batch.map(|b| b / nearest.max(1)))?;
            return Some((rate * f64::from(gpus) / f64::from(nearest), false));
        };
        let local = global_batch.map(|b| (b / gpus).max(1));
        rate_at_batch(&chosen, local).map(|r| (r, exact))
    }
}

/// Rate at a local batch size: interpolated between measured batch sizes; past the
/// largest, by gradient accumulation (k steps of local/k).
fn rate_at_batch(points: &[&ProfilePoint], local: Option<u32>) -> Option<f64> {
    let mut with_batch: Vec<(u32, f64)> =
        points.iter().filter_map(|p| p.local_batch.map(|b| (b, p.steps_per_s))).collect();
    with_batch.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
    let Some(local) = local.filter(|_| !with_batch.is_empty()) else {
        // No batch information: the fastest measurement of the placement.
        return points.iter().map(|p| p.steps_per_s).fold(None, |m: Option<f64>, r| Some(m.map_or(r, |m| m.max(r))));
    };
    let max_batch = with_batch.last()?.0;
    let accumulation = local.div_ceil(max_batch.max(1)).max(1);
    let target = f64::from(local) / f64::from(accumulation);
    let step_time = |rate: f64| 1.0 / rate;
    let first = with_batch[0];
    let time = if target <= f64::from(first.0) {
        step_time(first.1)
    } else {
        let mut t = step_time(with_batch[with_batch.len() - 1].1);
        for w in with_batch.windows(2) {
            let (b0, r0) = w[0];
            let (b1, r1) = w[1];
            if target >= f64::from(b0) && target <= f64::from(b1) {
                let f = if b1 == b0 { 0.0 } else { (target - f64::from(b0)) / f64::from(b1 - b0) };
                t = step_time(r0) + f * (step_time(r1) - step_time(r0));
                break;
            }
        }
        t
    };
    Some(1.0 / (time * f64::from(accumulation)))
}

/// Gavel's GPU names to catalogue names.
fn gavel_accelerator(key: &str) -> Option<(&'static str, bool)> {
    let (name, consolidated) = match key.strip_suffix("_unconsolidated") {
        Some(base) => (base, false),
        None => (key, true),
    };
    let canonical = match name {
        "v100" => "V100",
        "p100" => "P100",
        "k80" => "K80",
        _ => return None,
    };
    Some((canonical, consolidated))
}

/// Parses Gavel's throughput matrix. Models are Gavel's job types, e.g.
/// `ResNet-50 (batch size 64)`; consolidated entries become one-node placements and
/// unconsolidated ones placements spread over one node per device.
pub fn parse_gavel_matrix(text: &str, source_name: &str) -> Result<ProfileSet> {
    let root: serde_json::Value =
        serde_json::from_str(text).map_err(|e| Error::parse(source_name, e.line(), format!("not JSON: {e}")))?;
    let root = root.as_object().ok_or_else(|| Error::parse(source_name, 1, "expected an object of GPU types"))?;
    let mut set = ProfileSet::default();
    for (gpu_key, jobs) in root {
        let Some((accelerator, consolidated)) = gavel_accelerator(gpu_key) else {
            continue;
        };
        let jobs = jobs
            .as_object()
            .ok_or_else(|| Error::parse(source_name, 1, format!("{gpu_key}: expected an object of job types")))?;
        for (job_key, colocations) in jobs {
            let (model, scale) = parse_gavel_job_key(job_key)
                .ok_or_else(|| Error::parse(source_name, 1, format!("{gpu_key}: bad job key {job_key:?}")))?;
            let Some(rate) = colocations.get("null").and_then(serde_json::Value::as_f64) else {
                return Err(Error::parse(
                    source_name,
                    1,
                    format!("{gpu_key}/{job_key}: no isolated (\"null\") throughput"),
                ));
            };
            if !(rate.is_finite() && rate > 0.0) {
                continue; // Gavel marks infeasible combinations with 0.
            }
            let nodes = if consolidated { 1 } else { scale };
            set.insert(
                &model,
                accelerator,
                ProfilePoint { gpus: scale, nodes: Some(nodes), local_batch: None, steps_per_s: rate },
            );
        }
    }
    Ok(set)
}

/// `('ResNet-50 (batch size 64)', 2)` -> ("ResNet-50 (batch size 64)", 2).
fn parse_gavel_job_key(key: &str) -> Option<(String, u32)> {
    let inner = key.trim().strip_prefix('(')?.strip_suffix(')')?;
    let (name, scale) = inner.rsplit_once(',')?;
    let name = name.trim().trim_matches('\'').trim_matches('"');
    Some((name.to_string(), scale.trim().parse().ok()?))
}

/// Reads a CSV header and returns the column index of each wanted name.
fn columns<const N: usize>(header: &str, wanted: [&str; N], source_name: &str) -> Result<[usize; N]> {
    let names: Vec<&str> = header.split(',').map(str::trim).collect();
    let mut out = [0; N];
    for (i, w) in wanted.iter().enumerate() {
        out[i] = names
            .iter()
            .position(|n| n == w)
            .ok_or_else(|| Error::parse(source_name, 1, format!("missing column {w:?} (header: {header})")))?;
    }
    Ok(out)
}

fn field<'a>(cells: &[&'a str], index: usize, source_name: &str, line: usize) -> Result<&'a str> {
    cells.get(index).map(|c| c.trim()).ok_or_else(|| {
        Error::parse(source_name, line, format!("expected at least {} columns, found {}", index + 1, cells.len()))
    })
}

/// Parses a Sia `placements-<gpu>.csv` table for `model` on `accelerator`.
pub fn parse_sia_placements(text: &str, source_name: &str, model: &str, accelerator: &str) -> Result<ProfileSet> {
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
    let (_, header) = lines.next().ok_or_else(|| Error::parse(source_name, 1, "empty file"))?;
    let [placement_col, batch_col, step_col] = columns(header, ["placement", "local_bsz", "step_time"], source_name)?;
    let mut set = ProfileSet::default();
    for (i, line) in lines {
        let n = i + 1;
        let cells: Vec<&str> = line.split(',').collect();
        let placement = field(&cells, placement_col, source_name, n)?;
        let digits: Option<Vec<u32>> = placement.chars().map(|c| c.to_digit(10).filter(|d| *d > 0)).collect();
        let digits = digits.filter(|d| !d.is_empty()).ok_or_else(|| {
            Error::parse(source_name, n, format!("placement {placement:?} is not a string of GPUs per node"))
        })?;
        let local: f64 = field(&cells, batch_col, source_name, n)?
            .parse()
            .map_err(|_| Error::parse(source_name, n, "local_bsz is not a number"))?;
        let step: f64 = field(&cells, step_col, source_name, n)?
            .parse()
            .map_err(|_| Error::parse(source_name, n, "step_time is not a number"))?;
        if !(step.is_finite() && step > 0.0 && local.is_finite() && local >= 1.0) {
            return Err(Error::parse(source_name, n, "step_time and local_bsz must be positive"));
        }
        set.insert(
            model,
            accelerator,
            ProfilePoint {
                gpus: digits.iter().sum(),
                nodes: Some(digits.len() as u32),
                local_batch: Some(local as u32),
                steps_per_s: 1.0 / step,
            },
        );
    }
    Ok(set)
}

/// Parses a Sia `validation-<batch>.csv` table: cumulative iterations at the end of each epoch.
pub fn parse_sia_validation(text: &str, source_name: &str) -> Result<Vec<u64>> {
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
    let (_, header) = lines.next().ok_or_else(|| Error::parse(source_name, 1, "empty file"))?;
    let [iteration_col] = columns(header, ["iteration"], source_name)?;
    let mut out = Vec::new();
    for (i, line) in lines {
        let cells: Vec<&str> = line.split(',').collect();
        let raw = field(&cells, iteration_col, source_name, i + 1)?;
        let v: f64 =
            raw.parse().map_err(|_| Error::parse(source_name, i + 1, format!("iteration {raw:?} is not a number")))?;
        if !(v.is_finite() && v >= 0.0) {
            return Err(Error::parse(source_name, i + 1, "iteration must be non-negative"));
        }
        out.push(v.round() as u64);
    }
    Ok(out)
}

/// Sia's GPU folder names to catalogue names (the three of Sia's published cluster).
pub fn sia_accelerator(gpu: &str) -> Option<&'static str> {
    match gpu {
        "aws" => Some("T4"),
        "rtx" => Some("RTX2080Ti"),
        "dgx-ext" => Some("A100-40G"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gavel_matrix_parses_consolidated_and_spread() {
        let text = r#"{"v100": {"('ResNet-50 (batch size 64)', 1)": {"null": 4.0, "('A', 1)": [1, 2]},
                                 "('ResNet-50 (batch size 64)', 4)": {"null": 14.0}},
                       "v100_unconsolidated": {"('ResNet-50 (batch size 64)', 4)": {"null": 10.0}},
                       "tpu": {"('X', 1)": {"null": 1.0}}}"#;
        let set = parse_gavel_matrix(text, "g.json").expect("parses");
        let m = "ResNet-50 (batch size 64)";
        assert_eq!(set.steps_per_s(m, "V100", 1, 1, None), Some((4.0, true)));
        assert_eq!(set.steps_per_s(m, "V100", 4, 1, None), Some((14.0, true)));
        assert_eq!(set.steps_per_s(m, "V100", 4, 4, None), Some((10.0, true)));
        assert_eq!(set.steps_per_s(m, "V100", 2, 1, None), Some((8.0, false)), "nearest count, scaled");
        assert_eq!(set.steps_per_s(m, "K80", 1, 1, None), None);
    }

    #[test]
    fn gavel_errors_name_the_source() {
        let err = parse_gavel_matrix("{\"v100\": {\"nonsense\": {}}}", "g.json").unwrap_err();
        assert!(err.to_string().starts_with("g.json:"), "{err}");
        assert!(parse_gavel_matrix("[", "g.json").is_err());
    }

    #[test]
    fn sia_placements_interpolate_and_accumulate() {
        let text = "local_bsz,step_time,sync_time,placement\n8,0.1,0.0,1\n16,0.2,0.0,1\n16,0.25,0.0,44\n";
        let set = parse_sia_placements(text, "p.csv", "bert", "T4").expect("parses");
        let rate = |g, n, b| set.steps_per_s("bert", "T4", g, n, Some(b)).map(|r| r.0);
        assert!((rate(1, 1, 8).unwrap() - 10.0).abs() < 1e-9);
        assert!((rate(1, 1, 12).unwrap() - 1.0 / 0.15).abs() < 1e-9, "interpolated");
        assert!((rate(1, 1, 32).unwrap() - 1.0 / 0.4).abs() < 1e-9, "two accumulation steps of 16");
        assert!((rate(8, 2, 128).unwrap() - 4.0).abs() < 1e-9, "placement 44 = 2 nodes x 4");
    }

    #[test]
    fn sia_malformed_rows_name_file_and_line() {
        let err =
            parse_sia_placements("placement,local_bsz,step_time\n1,8,0.1\n1,x,0.1\n", "p.csv", "m", "T4").unwrap_err();
        assert_eq!(err.to_string(), "p.csv:3: local_bsz is not a number");
        let err = parse_sia_placements("placement,step_time\n", "p.csv", "m", "T4").unwrap_err();
        assert!(err.to_string().contains("missing column \"local_bsz\""));
        let err = parse_sia_placements("placement,local_bsz,step_time\n0x,8,0.1\n", "p.csv", "m", "T4").unwrap_err();
        assert!(err.to_string().starts_with("p.csv:2:"));
        let err = parse_sia_validation("progress,iteration\n1,10\n2\n", "v.csv").unwrap_err();
        assert!(err.to_string().starts_with("v.csv:3:"), "{err}");
    }

    #[test]
    fn sia_validation_reads_cumulative_iterations() {
        let it = parse_sia_validation("progress,iteration,metric\n10.0,10,1\n20.0,20,2\n", "v.csv").expect("parses");
        assert_eq!(it, vec![10, 20]);
    }
}

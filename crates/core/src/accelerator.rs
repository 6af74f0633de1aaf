//! Accelerator types and the built-in catalogue of published vendor figures.
//!
//! Figures are per device: peak dense 16-bit tensor throughput (FP16/BF16 without
//! sparsity), board power and memory. They feed the throughput fallback (peak TFLOPS x
//! utilisation) and the energy model (board power x PUE). Operators override or extend
//! them per pool.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The name used for CPU-only capacity in the catalogue and in reports.
pub const CPU_ONLY: &str = "CPU";

/// Published figures for one accelerator type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AcceleratorSpec {
    /// Peak dense 16-bit TFLOPS per device (for [`CPU_ONLY`]: per core).
    pub peak_tflops: f64,
    /// Board power in watts per device (for [`CPU_ONLY`]: per core).
    pub board_power_w: f64,
    /// Device memory in GiB (0 for CPU-only).
    pub memory_gib: f64,
}

/// Accelerator catalogue: the built-in figures, optionally overridden by the pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Catalogue {
    specs: BTreeMap<String, AcceleratorSpec>,
}

const fn spec(peak_tflops: f64, board_power_w: f64, memory_gib: f64) -> AcceleratorSpec {
    AcceleratorSpec { peak_tflops, board_power_w, memory_gib }
}

/// Built-in figures from vendor data sheets (dense, no sparsity).
const BUILT_IN: &[(&str, AcceleratorSpec)] = &[
    ("A100-40G", spec(312.0, 400.0, 40.0)),   // A100 SXM4 40GB
    ("A100-80G", spec(312.0, 400.0, 80.0)),   // A100 SXM4 80GB
    ("A800", spec(312.0, 400.0, 80.0)),       // A800 SXM4 80GB (A100 with reduced NVLink)
    ("H100", spec(989.0, 700.0, 80.0)),       // H100 SXM5 80GB, dense BF16
    ("H800", spec(989.0, 700.0, 80.0)),       // H800 SXM5 80GB, dense BF16
    ("H20", spec(148.0, 400.0, 96.0)),        // H20 96GB
    ("V100", spec(125.0, 300.0, 16.0)),       // V100 SXM2 16GB tensor cores
    ("P100", spec(18.7, 250.0, 16.0)),        // P100 PCIe 16GB, FP16
    ("K80", spec(4.37, 150.0, 12.0)),         // one GK210 die of a K80 board (FP32; no fast FP16)
    ("T4", spec(65.0, 70.0, 16.0)),           // T4 16GB tensor cores
    ("RTX2080Ti", spec(53.8, 250.0, 11.0)),   // GeForce RTX 2080 Ti, FP16 with FP32 accumulate
    ("Ascend910B", spec(320.0, 400.0, 64.0)), // Ascend 910B, vendor-reported FP16
    (CPU_ONLY, spec(0.1, 10.0, 0.0)),         // per core: ~100 GFLOPS (AVX-512 FMA), ~10 W
];

/// Spellings seen in node labels and traces, mapped to catalogue names.
const ALIASES: &[(&str, &str)] = &[
    ("A100", "A100-80G"),
    ("A100-SXM4-40GB", "A100-40G"),
    ("A100-SXM4-80GB", "A100-80G"),
    ("NVIDIA-A100-SXM4-40GB", "A100-40G"),
    ("NVIDIA-A100-SXM4-80GB", "A100-80G"),
    ("A800-SXM4-80GB", "A800"),
    ("H100-SXM5-80GB", "H100"),
    ("H800-SXM5-80GB", "H800"),
    ("TESLA-V100", "V100"),
    ("V100M32", "V100"),
    ("V100M16", "V100"),
    ("TESLA-P100", "P100"),
    ("TESLA-K80", "K80"),
    ("TESLA-T4", "T4"),
    ("RTX-2080-TI", "RTX2080Ti"),
    ("RTX2080TI", "RTX2080Ti"),
    ("GEFORCE-RTX-2080-TI", "RTX2080Ti"),
    ("ASCEND-910B", "Ascend910B"),
    ("910B", "Ascend910B"),
];

impl Default for Catalogue {
    fn default() -> Self {
        Self::built_in()
    }
}

impl Catalogue {
    /// The built-in catalogue.
    pub fn built_in() -> Self {
        Self { specs: BUILT_IN.iter().map(|(n, s)| ((*n).to_string(), s.clone())).collect() }
    }

    /// Adds or replaces a type's figures.
    pub fn set(&mut self, name: &str, spec: AcceleratorSpec) {
        self.specs.insert(name.to_string(), spec);
    }

    /// Figures of a type, looked up by its canonical name or a known alias.
    pub fn get(&self, name: &str) -> Option<&AcceleratorSpec> {
        self.specs.get(name).or_else(|| self.specs.get(Self::canonical_builtin(name)?))
    }

    /// All types known, by name.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.specs.keys().map(String::as_str)
    }

    /// The canonical name for a spelling found in a label or trace, if it is known.
    pub fn canonical_name(&self, name: &str) -> Option<String> {
        if self.specs.contains_key(name) {
            return Some(name.to_string());
        }
        Self::canonical_builtin(name).map(str::to_string)
    }

    fn canonical_builtin(name: &str) -> Option<&'static str> {
        let normalised = name.trim().replace([' ', '_'], "-").to_ascii_uppercase();
        let normalised = normalised.trim_start_matches("NVIDIA-");
        BUILT_IN
            .iter()
            .map(|(n, _)| *n)
            .find(|n| n.to_ascii_uppercase() == normalised)
            .or_else(|| ALIASES.iter().find(|(a, _)| *a == normalised).map(|(_, n)| *n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_has_required_types() {
        let c = Catalogue::built_in();
        for name in [
            "A100-40G",
            "A100-80G",
            "A800",
            "H100",
            "H800",
            "H20",
            "V100",
            "P100",
            "K80",
            "T4",
            "RTX2080Ti",
            "Ascend910B",
            CPU_ONLY,
        ] {
            let s = c.get(name).unwrap_or_else(|| panic!("{name} missing"));
            assert!(s.peak_tflops > 0.0 && s.board_power_w > 0.0, "{name}");
        }
    }

    #[test]
    fn aliases_resolve() {
        let c = Catalogue::built_in();
        assert_eq!(c.canonical_name("NVIDIA-A100-SXM4-80GB").as_deref(), Some("A100-80G"));
        assert_eq!(c.canonical_name("Tesla-V100").as_deref(), Some("V100"));
        assert_eq!(c.canonical_name("h800").as_deref(), Some("H800"));
        assert_eq!(c.canonical_name("rtx_2080_ti").as_deref(), Some("RTX2080Ti"));
        assert_eq!(c.canonical_name("MI300X"), None);
    }

    #[test]
    fn overrides_replace_figures() {
        let mut c = Catalogue::built_in();
        c.set("H800", AcceleratorSpec { peak_tflops: 1.0, board_power_w: 2.0, memory_gib: 3.0 });
        assert_eq!(c.get("H800").map(|s| s.peak_tflops), Some(1.0));
        c.set("MI300X", AcceleratorSpec { peak_tflops: 1307.0, board_power_w: 750.0, memory_gib: 192.0 });
        assert!(c.get("MI300X").is_some());
    }
}

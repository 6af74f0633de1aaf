//! Throughput profiles from named documents, as an admin supplies them (the keys of the
//! `computenet-profiles` ConfigMap, or files): the service, the plugin's dry-run and
//! `computenet estimate` all read them here, so they estimate alike.
//!
//! A document's name says its format:
//! - `*.gavel.json` (or `simulation_throughputs.json`): Gavel's throughput matrix;
//! - `sia.<model>.placements-<gpu>.csv` (or `<model>/placements-<gpu>.csv`): one of Sia's
//!   step-time tables, `<gpu>` one of Sia's GPU folders (aws, rtx, dgx-ext);
//! - `*.yaml`, `*.yml`, `*.json`: computenet's own format, a list of measurements:
//!   ```yaml
//!   profiles:
//!   - model: bert
//!     accelerator: A100-80G
//!     points: [{gpus: 8, nodes: 1, stepsPerS: 4.0}]
//!   ```
//!
//! Other names are refused, so a typo is an error rather than a profile silently missing.

use computenet_core::profiles::{parse_gavel_matrix, parse_sia_placements, sia_accelerator, ProfilePoint, ProfileSet};
use serde::{Deserialize, Serialize};

/// One model on one accelerator type, in computenet's own format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProfileEntry {
    pub model: String,
    /// Catalogue name of the type (A100-80G, H800, ...).
    pub accelerator: String,
    pub points: Vec<ProfilePoint>,
}

/// A document of computenet's own format.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileDocument {
    #[serde(default)]
    pub profiles: Vec<ProfileEntry>,
}

/// Why a document was refused: its name and what is wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("profiles {name}: {message}")]
pub struct ProfileError {
    pub name: String,
    pub message: String,
}

fn refuse(name: &str, message: impl Into<String>) -> ProfileError {
    ProfileError { name: name.to_string(), message: message.into() }
}

/// A Sia table's model and catalogue type from its document name.
fn sia_table(name: &str) -> Option<(String, Option<&'static str>, String)> {
    let (model, file) = match name.strip_prefix("sia.") {
        Some(rest) => rest.split_once('.')?,
        None => name.rsplit_once('/').map(|(dir, file)| (dir.rsplit('/').next().unwrap_or(dir), file))?,
    };
    let gpu = file.strip_prefix("placements-")?.strip_suffix(".csv")?;
    Some((model.to_string(), sia_accelerator(gpu), gpu.to_string()))
}

/// Parses one document by its name.
pub fn parse(name: &str, text: &str) -> Result<ProfileSet, ProfileError> {
    let file = name.rsplit('/').next().unwrap_or(name);
    if file.ends_with(".gavel.json") || file == "simulation_throughputs.json" {
        return parse_gavel_matrix(text, name).map_err(|e| refuse(name, e.to_string()));
    }
    if let Some((model, accelerator, gpu)) = sia_table(name) {
        let accelerator = accelerator.ok_or_else(|| {
            refuse(
                name,
                format!("unknown Sia GPU folder {gpu:?} (known: aws = T4, rtx = RTX2080Ti, dgx-ext = A100-40G)"),
            )
        })?;
        return parse_sia_placements(text, name, &model, accelerator).map_err(|e| refuse(name, e.to_string()));
    }
    if [".yaml", ".yml", ".json"].iter().any(|ext| file.ends_with(ext)) {
        let doc: ProfileDocument = serde_yaml::from_str(text).map_err(|e| refuse(name, e.to_string()))?;
        let mut set = ProfileSet::default();
        for (i, entry) in doc.profiles.into_iter().enumerate() {
            if entry.model.is_empty() || entry.accelerator.is_empty() {
                return Err(refuse(name, format!("profiles[{i}]: model and accelerator must not be empty")));
            }
            for (j, p) in entry.points.into_iter().enumerate() {
                if !(p.steps_per_s.is_finite() && p.steps_per_s > 0.0) || p.gpus == 0 || p.nodes == Some(0) {
                    return Err(refuse(
                        name,
                        format!("profiles[{i}].points[{j}]: gpus, nodes and stepsPerS must be positive"),
                    ));
                }
                set.insert(&entry.model, &entry.accelerator, p);
            }
        }
        return Ok(set);
    }
    Err(refuse(
        name,
        "unknown format: name it *.gavel.json (Gavel's matrix), sia.<model>.placements-<gpu>.csv (a Sia table) or *.yaml (computenet's format)",
    ))
}

/// Whether a document name is of a known format (see the module's documentation).
pub fn is_profile_name(name: &str) -> bool {
    let file = name.rsplit('/').next().unwrap_or(name);
    file.ends_with(".gavel.json")
        || file == "simulation_throughputs.json"
        || sia_table(name).is_some_and(|(_, accelerator, _)| accelerator.is_some())
        || [".yaml", ".yml"].iter().any(|ext| file.ends_with(ext))
}

/// Reads profile documents from files and folders. A file is read whatever its name
/// (and refused later if its format is unknown); a folder is walked and only files of
/// known formats are taken (`*.json` only as Gavel's matrix), named by their path below it.
pub fn read_paths(paths: &[std::path::PathBuf]) -> Result<Vec<(String, String)>, ProfileError> {
    fn walk(
        root: &std::path::Path,
        dir: &std::path::Path,
        out: &mut Vec<(String, String)>,
    ) -> Result<(), ProfileError> {
        let io = |e: std::io::Error| refuse(&dir.display().to_string(), e.to_string());
        let mut entries: Vec<_> = std::fs::read_dir(dir).map_err(io)?.collect::<Result<_, _>>().map_err(io)?;
        entries.sort_by_key(|e| e.path());
        for entry in entries {
            let path = entry.path();
            if path.is_dir() {
                walk(root, &path, out)?;
                continue;
            }
            let name = path.strip_prefix(root).unwrap_or(&path).to_string_lossy().replace('\\', "/");
            if is_profile_name(&name) {
                let text = std::fs::read_to_string(&path).map_err(|e| refuse(&name, e.to_string()))?;
                out.push((name, text));
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    for path in paths {
        if path.is_dir() {
            walk(path, path, &mut out)?;
        } else {
            let name = path.to_string_lossy().to_string();
            let text = std::fs::read_to_string(path).map_err(|e| refuse(&name, e.to_string()))?;
            out.push((name, text));
        }
    }
    Ok(out)
}

/// Parses every document into one set; the first refusal is the error.
pub fn parse_all<'a>(documents: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<ProfileSet, ProfileError> {
    let mut set = ProfileSet::default();
    for (name, text) in documents {
        set.extend(parse(name, text)?);
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_format_parses_and_rejects_nonsense() {
        let set = parse(
            "lab.yaml",
            "profiles:\n- model: bert\n  accelerator: A100-80G\n  points: [{gpus: 8, nodes: 1, stepsPerS: 4.0}]\n",
        )
        .unwrap();
        assert_eq!(set.steps_per_s("bert", "A100-80G", 8, 1, None), Some((4.0, true)));
        let bad = parse(
            "lab.yaml",
            "profiles:\n- model: bert\n  accelerator: A100-80G\n  points: [{gpus: 8, stepsPerS: -1}]\n",
        );
        assert!(bad.unwrap_err().message.contains("stepsPerS must be positive"));
        let typo = parse("lab.yaml", "profile: []\n").unwrap_err();
        assert!(typo.message.contains("unknown field"), "{typo}");
    }

    #[test]
    fn sia_tables_are_recognised_by_name() {
        let table = "placement,local_bsz,step_time,sync_time\n4,32,0.5,0.1\n44,32,0.6,0.2\n";
        for name in ["sia.bert.placements-dgx-ext.csv", "traces/bert/placements-dgx-ext.csv"] {
            let set = parse(name, table).unwrap();
            assert_eq!(set.steps_per_s("bert", "A100-40G", 4, 1, Some(128)), Some((2.0, true)), "{name}");
        }
        let unknown = parse("sia.bert.placements-tpu.csv", table).unwrap_err();
        assert!(unknown.message.contains("unknown Sia GPU folder"));
    }

    #[test]
    fn gavel_matrices_parse_and_unknown_names_are_refused() {
        let gavel = r#"{"v100": {"('ResNet-50 (batch size 64)', 1)": {"null": 4.0}}}"#;
        let set = parse("matrix.gavel.json", gavel).unwrap();
        assert!(set.has_model("ResNet-50 (batch size 64)"));
        assert!(parse("notes.txt", "").unwrap_err().message.contains("unknown format"));
        let all = parse_all([("matrix.gavel.json", gavel), ("x.yaml", "profiles: []")]).unwrap();
        assert_eq!(all.models().count(), 1);
    }
}

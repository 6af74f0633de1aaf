//! What slurmrestd returns, as far as computenet reads it.
//!
//! Written against openapi/v0.0.38 (Slurm 22.05) and tolerant of the later shapes: every
//! field is optional, states may be a string or a list of flags, and numbers may be plain or
//! wrapped as `{"set": true, "number": N}` (v0.0.39 and later).

use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// A node of `GET /slurm/{version}/nodes`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct SlurmNode {
    #[serde(default)]
    pub name: String,
    /// Base state and flags, upper case (`IDLE`, `MIXED`, `DOWN`, `DRAIN`, `NOT_RESPONDING`...).
    #[serde(default, deserialize_with = "words")]
    pub state: Vec<String>,
    #[serde(default, deserialize_with = "words")]
    pub state_flags: Vec<String>,
    #[serde(default, deserialize_with = "number")]
    pub cpus: u64,
    #[serde(default, deserialize_with = "number")]
    pub alloc_cpus: u64,
    /// MiB.
    #[serde(default, deserialize_with = "number")]
    pub real_memory: u64,
    /// MiB.
    #[serde(default, deserialize_with = "number")]
    pub alloc_memory: u64,
    /// Configured generic resources, e.g. `gpu:a100:8`.
    #[serde(default, deserialize_with = "text")]
    pub gres: String,
    /// Generic resources in use, e.g. `gpu:a100:2(IDX:0-1)`.
    #[serde(default, deserialize_with = "text")]
    pub gres_used: String,
    #[serde(default, deserialize_with = "words_keep_case")]
    pub partitions: Vec<String>,
    /// Why the node is down or drained.
    #[serde(default, deserialize_with = "text")]
    pub reason: String,
}

/// A job of `GET /slurm/{version}/jobs` or `/job/{id}`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct SlurmJob {
    #[serde(default, deserialize_with = "number")]
    pub job_id: u64,
    #[serde(default, deserialize_with = "text")]
    pub name: String,
    #[serde(default, deserialize_with = "text")]
    pub comment: String,
    /// The Slurm user that owns the job.
    #[serde(default, deserialize_with = "text")]
    pub user_name: String,
    /// State words, upper case (`PENDING`, `RUNNING`, `COMPLETED`...).
    #[serde(default, deserialize_with = "words")]
    pub job_state: Vec<String>,
    #[serde(default, deserialize_with = "text")]
    pub state_reason: String,
    /// The batch script's wait status (v0.0.38), or its return code (later versions).
    #[serde(default, deserialize_with = "exit_code")]
    pub exit_code: Option<ExitCode>,
    /// Allocated nodes as a host list, e.g. `node[3-4]`.
    #[serde(default, deserialize_with = "text")]
    pub nodes: String,
    #[serde(default)]
    pub job_resources: Option<JobResources>,
    /// Seconds since the epoch.
    #[serde(default, deserialize_with = "number")]
    pub submit_time: u64,
}

/// How a job ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExitCode {
    /// The exit status of the batch script.
    pub status: i32,
    /// The signal that ended it, if any.
    pub signal: Option<i32>,
}

/// Resources allocated to a job.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct JobResources {
    #[serde(default)]
    pub allocated_nodes: Vec<AllocatedNode>,
}

/// One node of a job's allocation.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct AllocatedNode {
    #[serde(default, deserialize_with = "text")]
    pub nodename: String,
}

impl SlurmJob {
    /// Names of the allocated nodes (empty while pending); an error for a host list too
    /// large to expand.
    pub fn allocated_node_names(&self) -> Result<Vec<String>, super::convert::HostListTooLarge> {
        let from_resources: Vec<String> = self
            .job_resources
            .iter()
            .flat_map(|r| &r.allocated_nodes)
            .map(|n| n.nodename.clone())
            .filter(|n| !n.is_empty())
            .collect();
        if from_resources.is_empty() {
            super::convert::expand_hostlist(&self.nodes)
        } else {
            Ok(from_resources)
        }
    }
}

/// The `errors` array of any answer, as readable lines. Entries come as objects with
/// `error`, `error_number`/`error_code`/`errno`, `description` and `source` in any
/// combination, or as plain strings.
pub fn errors_of(body: &Value) -> Vec<String> {
    let Some(list) = body.get("errors").and_then(Value::as_array) else { return Vec::new() };
    list.iter()
        .filter_map(|e| match e {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Object(o) => {
                let text = |k: &str| o.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
                let code = ["error_number", "error_code", "errno"].iter().find_map(|k| o.get(*k)?.as_i64());
                let mut line = text("error").or(text("description")).unwrap_or("error").to_string();
                if let (Some(d), Some(e)) = (text("description"), text("error")) {
                    if d != e {
                        line = format!("{e} ({d})");
                    }
                }
                if let Some(c) = code.filter(|c| *c != 0) {
                    line = format!("{line} [{c}]");
                }
                if let Some(s) = text("source") {
                    line = format!("{line} in {s}");
                }
                Some(line)
            }
            Value::Null => None,
            other => Some(other.to_string()),
        })
        .collect()
}

/// The Slurm error number of an answer's first error, if any.
pub fn error_number(body: &Value) -> Option<i64> {
    body.get("errors")?
        .as_array()?
        .iter()
        .find_map(|e| ["error_number", "error_code", "errno"].iter().find_map(|k| e.get(*k)?.as_i64()))
}

fn number<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    Ok(number_of(&Value::deserialize(d)?).unwrap_or(0))
}

fn number_of(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64().or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64)),
        Value::String(s) => s.trim().parse().ok(),
        Value::Object(o) => {
            if o.get("set").and_then(Value::as_bool) == Some(false) || o.get("infinite") == Some(&Value::Bool(true)) {
                None
            } else {
                o.get("number").and_then(number_of)
            }
        }
        _ => None,
    }
}

fn text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => s,
        Value::Null => String::new(),
        other => other.to_string(),
    })
}

fn word_list(v: Value, upper: bool) -> Vec<String> {
    let split = |s: &str| -> Vec<String> {
        s.split(['+', ',', ' '])
            .filter(|w| !w.is_empty())
            .map(|w| if upper { w.to_ascii_uppercase() } else { w.to_string() })
            .collect()
    };
    match v {
        Value::String(s) => split(&s),
        Value::Array(items) => items.iter().filter_map(Value::as_str).flat_map(split).collect(),
        _ => Vec::new(),
    }
}

fn words<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(word_list(Value::deserialize(d)?, true))
}

fn words_keep_case<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(word_list(Value::deserialize(d)?, false))
}

fn exit_code<'de, D: Deserializer<'de>>(d: D) -> Result<Option<ExitCode>, D::Error> {
    Ok(match Value::deserialize(d)? {
        // v0.0.38: the raw wait status of the batch script.
        Value::Number(n) => n.as_i64().map(|raw| {
            let signal = (raw & 0x7f) as i32;
            ExitCode { status: ((raw >> 8) & 0xff) as i32, signal: (signal != 0).then_some(signal) }
        }),
        // Later versions: {"status": ["FAILED"], "return_code": {"number": 3}, "signal": {...}}.
        Value::Object(o) => {
            let status = o.get("return_code").and_then(number_of).unwrap_or(0) as i32;
            let signal = o
                .get("signal")
                .and_then(|s| s.get("id").or(Some(s)))
                .and_then(number_of)
                .map(|s| s as i32)
                .filter(|s| *s != 0);
            Some(ExitCode { status, signal })
        }
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_v0_0_38_node_parses() {
        let node: SlurmNode = serde_json::from_value(json!({
            "name": "node3", "state": "mixed", "state_flags": ["DRAIN"], "cpus": 32, "alloc_cpus": 2,
            "real_memory": 128000, "alloc_memory": 1024, "gres": "gpu:h800:8", "gres_used": "gpu:h800:4(IDX:0-3)",
            "partitions": ["debug"], "reason": "maintenance", "tres_used": null
        }))
        .expect("parses");
        assert_eq!(node.state, ["MIXED"]);
        assert_eq!(node.state_flags, ["DRAIN"]);
        assert_eq!((node.cpus, node.alloc_cpus, node.real_memory, node.alloc_memory), (32, 2, 128000, 1024));
        assert_eq!(node.partitions, ["debug"]);
    }

    #[test]
    fn later_shapes_parse_too() {
        let node: SlurmNode = serde_json::from_value(json!({
            "name": "n1", "state": ["IDLE", "DRAIN"], "cpus": {"set": true, "infinite": false, "number": 64},
            "real_memory": "1000", "gres": null
        }))
        .expect("parses");
        assert_eq!(node.state, ["IDLE", "DRAIN"]);
        assert_eq!((node.cpus, node.real_memory), (64, 1000));
        assert_eq!(node.gres, "");
        let job: SlurmJob = serde_json::from_value(json!({
            "job_id": {"set": true, "number": 7}, "job_state": ["FAILED"],
            "exit_code": {"status": ["NON_ZERO_EXIT"], "return_code": {"set": true, "number": 3}, "signal": {"id": {"set": false, "number": 0}}}
        }))
        .expect("parses");
        assert_eq!(job.job_id, 7);
        assert_eq!(job.exit_code, Some(ExitCode { status: 3, signal: None }));
    }

    #[test]
    fn wait_statuses_decode_to_exit_codes_and_signals() {
        let job: SlurmJob =
            serde_json::from_value(json!({"job_id": 1, "job_state": "FAILED", "exit_code": 768})).expect("parses");
        assert_eq!(job.exit_code, Some(ExitCode { status: 3, signal: None }));
        let job: SlurmJob = serde_json::from_value(json!({"exit_code": 9})).expect("parses");
        assert_eq!(job.exit_code, Some(ExitCode { status: 0, signal: Some(9) }));
    }

    #[test]
    fn allocated_nodes_come_from_the_resources_or_the_host_list() {
        let job: SlurmJob = serde_json::from_value(json!({
            "nodes": "node[3-4]",
            "job_resources": {"allocated_nodes": [{"nodename": "node3"}, {"nodename": "node4"}]}
        }))
        .expect("parses");
        assert_eq!(job.allocated_node_names().expect("small"), ["node3", "node4"]);
        let job: SlurmJob = serde_json::from_value(json!({"nodes": "gpu[01-02],cpu7"})).expect("parses");
        assert_eq!(job.allocated_node_names().expect("small"), ["gpu01", "gpu02", "cpu7"]);
    }

    #[test]
    fn every_shape_of_the_errors_array_reads() {
        let body = json!({"errors": [
            {"error": "Invalid job id specified", "error_number": 2017},
            {"error_code": 2014, "error": "Requested node configuration is not available"},
            {"description": "Unable to query", "error_number": 0, "error": "", "source": "slurm_load_jobs"},
            {"errno": 13, "error": "Permission denied", "description": "token expired"},
            "plain text",
            null
        ]});
        assert_eq!(
            errors_of(&body),
            [
                "Invalid job id specified [2017]",
                "Requested node configuration is not available [2014]",
                "Unable to query in slurm_load_jobs",
                "Permission denied (token expired) [13]",
                "plain text",
            ]
        );
        assert_eq!(error_number(&body), Some(2017));
        assert!(errors_of(&json!({"errors": []})).is_empty());
        assert!(errors_of(&json!({"meta": {}})).is_empty());
        assert!(errors_of(&json!({"errors": "not a list"})).is_empty());
    }
}

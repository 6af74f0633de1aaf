//! Pure translations between Slurm's view and computenet's: `gres` strings, node states,
//! host lists, job states, and the batch job an admitted TrainingJob becomes.

use super::api::{SlurmJob, SlurmNode};
use computenet_core::{Catalogue, Node, NodeCapacity};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// One entry of a `gres` string: `gpu:a100:8(S:0-1)` is kind `gpu`, type `a100`, count 8.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gres {
    pub kind: String,
    pub type_: Option<String>,
    pub count: u32,
}

/// Parses a `gres` or `gres_used` string (`gpu:8`, `gpu:a100:8(S:0-1)`,
/// `gpu:a100:2(IDX:0-1),gpu:v100:0(IDX:N/A)`); `(null)`, `N/A` and empty give nothing.
pub fn parse_gres(text: &str) -> Vec<Gres> {
    let mut out = Vec::new();
    // Split on commas outside parentheses (the index lists inside them contain commas).
    let mut depth = 0usize;
    let mut start = 0;
    let mut parts = Vec::new();
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    for part in parts {
        let part = part.split('(').next().unwrap_or("").trim();
        if part.is_empty() || part == "N/A" || part == "(null)" {
            continue;
        }
        let fields: Vec<&str> = part.split(':').collect();
        let (kind, type_, count) = match fields.as_slice() {
            [kind] => (*kind, None, Some(1)),
            [kind, last] => match last.parse::<u32>() {
                Ok(n) => (*kind, None, Some(n)),
                Err(_) => (*kind, Some(*last), Some(1)),
            },
            [kind, type_, count, ..] => (*kind, Some(*type_), count.parse::<u32>().ok()),
            [] => continue,
        };
        let Some(count) = count else { continue };
        out.push(Gres { kind: kind.to_string(), type_: type_.map(str::to_string), count });
    }
    out
}

/// GPUs in a `gres` string: (type of the first typed entry, total count, saturating).
pub fn gpus(text: &str) -> (Option<String>, u32) {
    let gpu: Vec<Gres> = parse_gres(text).into_iter().filter(|g| g.kind == "gpu").collect();
    (gpu.iter().find_map(|g| g.type_.clone()), gpu.iter().fold(0u32, |n, g| n.saturating_add(g.count)))
}

/// Most host names one host list may expand to (a large cluster has a few thousand nodes).
pub const MAX_HOSTS: usize = 100_000;
/// Most characters of all the names one host list may expand to.
pub const MAX_HOSTLIST_CHARS: usize = 4 << 20;

/// A host list too large to expand.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("host list {list:?} expands to more than {MAX_HOSTS} names or {MAX_HOSTLIST_CHARS} characters")]
pub struct HostListTooLarge {
    /// The start of the list.
    pub list: String,
}

/// Expands a Slurm host list: `node[1-3,5],gpu07` gives node1, node2, node3, node5, gpu07
/// (zero padding kept: `n[01-02]` gives n01, n02). The whole expansion is capped (names
/// and characters), not only each range; what cannot be read is kept as written.
pub fn expand_hostlist(list: &str) -> Result<Vec<String>, HostListTooLarge> {
    let too_large = || HostListTooLarge { list: list.chars().take(80).collect() };
    let mut out: Vec<String> = Vec::new();
    let mut chars = 0usize;
    let mut push = |out: &mut Vec<String>, name: String| {
        chars = chars.saturating_add(name.len());
        out.push(name);
        out.len() <= MAX_HOSTS && chars <= MAX_HOSTLIST_CHARS
    };
    let mut depth = 0usize;
    let mut start = 0;
    let mut items = Vec::new();
    for (i, c) in list.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                items.push(&list[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&list[start..]);
    for item in items.into_iter().map(str::trim).filter(|s| !s.is_empty() && *s != "(null)") {
        let (open, close) = match (item.find('['), item.rfind(']')) {
            (Some(open), Some(close)) if open < close => (open, close),
            _ => {
                if !push(&mut out, item.to_string()) {
                    return Err(too_large());
                }
                continue;
            }
        };
        let (prefix, ranges, suffix) = (&item[..open], &item[open + 1..close], &item[close + 1..]);
        for range in ranges.split(',') {
            let (lo, hi) = range.split_once('-').unwrap_or((range, range));
            // Zero padding wider than any real host name is not padding.
            let width = lo.len().min(20);
            match (lo.parse::<u64>(), hi.parse::<u64>()) {
                (Ok(a), Ok(b)) if a <= b => {
                    if usize::try_from(b - a).map_or(true, |n| n >= MAX_HOSTS) {
                        return Err(too_large());
                    }
                    for n in a..=b {
                        if !push(&mut out, format!("{prefix}{n:0width$}{suffix}")) {
                            return Err(too_large());
                        }
                    }
                }
                _ => {
                    if !push(&mut out, format!("{prefix}{range}{suffix}")) {
                        return Err(too_large());
                    }
                }
            }
        }
    }
    Ok(out)
}

/// Why a node takes no new work, or `None` when it is schedulable. Down, drained or
/// draining, not responding, failing, in maintenance, powered down or rebooting nodes are not.
pub fn unschedulable_reason(node: &SlurmNode) -> Option<String> {
    const BAD: [&str; 14] = [
        "DOWN",
        "DRAIN",
        "DRAINED",
        "DRAINING",
        "NOT_RESPONDING",
        "FAIL",
        "FAILING",
        "MAINTENANCE",
        "POWERED_DOWN",
        "POWERING_DOWN",
        "POWER_DOWN",
        "REBOOT_REQUESTED",
        "FUTURE",
        "UNKNOWN",
    ];
    let words: Vec<&String> = node.state.iter().chain(&node.state_flags).collect();
    let bad: Vec<&str> = words.iter().map(|w| w.as_str()).filter(|w| BAD.contains(w)).collect();
    if bad.is_empty() && !words.is_empty() {
        return None;
    }
    let mut why = if words.is_empty() { "no state".to_string() } else { bad.join("+") };
    if !node.reason.is_empty() {
        why = format!("{why}: {}", node.reason);
    }
    Some(why)
}

/// The nodes of the chosen partitions (all nodes when none are chosen).
pub fn in_partitions<'a>(nodes: &'a [SlurmNode], partitions: &'a [String]) -> impl Iterator<Item = &'a SlurmNode> {
    nodes.iter().filter(move |n| partitions.is_empty() || n.partitions.iter().any(|p| partitions.contains(p)))
}

/// A Slurm node as a core node, with its raw `gres` GPU type (the name to request it by).
/// The accelerator takes the catalogue's name for the type when it knows one.
pub fn core_node(node: &SlurmNode, catalogue: &Catalogue) -> (Node, Option<String>) {
    let (raw_type, gpu_total) = gpus(&node.gres);
    let (_, gpu_used) = gpus(&node.gres_used);
    let accelerator = (gpu_total > 0).then(|| {
        let raw = raw_type.clone().unwrap_or_else(|| "unknown-gpu".to_string());
        catalogue.canonical_name(&raw).unwrap_or(raw)
    });
    const MIB: u64 = 1 << 20;
    let core = Node {
        name: node.name.clone(),
        accelerator,
        allocatable: NodeCapacity {
            cpu_millis: node.cpus.saturating_mul(1000),
            memory_bytes: node.real_memory.saturating_mul(MIB),
            accelerators: gpu_total,
            extended: BTreeMap::new(),
        },
        allocated: NodeCapacity {
            cpu_millis: node.alloc_cpus.saturating_mul(1000),
            memory_bytes: node.alloc_memory.saturating_mul(MIB),
            accelerators: gpu_used.min(gpu_total),
            extended: BTreeMap::new(),
        },
        topology_domain: String::new(),
        unschedulable: unschedulable_reason(node).is_some(),
    };
    (core, raw_type.filter(|_| gpu_total > 0))
}

/// Where a Slurm job is, in computenet's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemotePhase {
    /// Submitted, waiting in Slurm's queue (or held, suspended, requeued).
    Pending,
    /// Holding its nodes.
    Running,
    Succeeded,
    Failed,
}

/// A Slurm job's state, mapped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteState {
    pub phase: RemotePhase,
    /// A CamelCase reason for a condition (`Completed`, `NonZeroExitCode`, `Timeout`...).
    pub reason: String,
    /// For people: Slurm's state, its reason and the exit code.
    pub message: String,
    pub exit_code: Option<i32>,
}

impl RemoteState {
    /// Whether the job holds resources on its nodes (so node allocations include it).
    pub fn holds_nodes(&self) -> bool {
        self.phase == RemotePhase::Running
    }
}

/// Maps a Slurm job state (`PENDING`, `RUNNING`, `COMPLETED`, `FAILED`, `CANCELLED`,
/// `TIMEOUT`, `NODE_FAIL`, `OUT_OF_MEMORY`, `PREEMPTED`, `BOOT_FAIL`, `DEADLINE`...) to a phase.
pub fn remote_state(job: &SlurmJob) -> RemoteState {
    let state = job.job_state.first().map(String::as_str).unwrap_or("UNKNOWN");
    let exit = job.exit_code;
    let (phase, reason) = match state {
        "PENDING" | "REQUEUED" | "REQUEUE_HOLD" | "REQUEUE_FED" | "RESV_DEL_HOLD" | "SUSPENDED" | "STOPPED" => {
            (RemotePhase::Pending, "SlurmPending")
        }
        "RUNNING" | "CONFIGURING" | "COMPLETING" | "STAGE_OUT" | "SIGNALING" | "RESIZING" | "UPDATE_DB" => {
            (RemotePhase::Running, "SlurmRunning")
        }
        "COMPLETED" => (RemotePhase::Succeeded, "Completed"),
        "FAILED" => (RemotePhase::Failed, "NonZeroExitCode"),
        "CANCELLED" => (RemotePhase::Failed, "Cancelled"),
        "TIMEOUT" => (RemotePhase::Failed, "Timeout"),
        "DEADLINE" => (RemotePhase::Failed, "DeadlineExceeded"),
        "NODE_FAIL" => (RemotePhase::Failed, "NodeFail"),
        "BOOT_FAIL" => (RemotePhase::Failed, "BootFail"),
        "OUT_OF_MEMORY" => (RemotePhase::Failed, "OutOfMemory"),
        "PREEMPTED" => (RemotePhase::Failed, "PreemptedBySlurm"),
        _ => (RemotePhase::Pending, "SlurmUnknownState"),
    };
    let mut message = format!("Slurm job {} {state}", job.job_id);
    if !job.state_reason.is_empty() && job.state_reason != "None" {
        message.push_str(&format!(" ({})", job.state_reason));
    }
    let finished = matches!(phase, RemotePhase::Succeeded | RemotePhase::Failed);
    if finished {
        if let Some(e) = exit {
            message.push_str(&format!(", exit code {}", e.status));
            if let Some(s) = e.signal {
                message.push_str(&format!(", signal {s}"));
            }
        }
    }
    RemoteState {
        phase,
        reason: reason.to_string(),
        message,
        exit_code: if finished { exit.map(|e| e.status) } else { None },
    }
}

/// What computenet writes into a batch job's comment: the hub that submitted it, the
/// TrainingJob's UID and attempt number, and its `namespace/name` (for people reading
/// `squeue`). Read back strictly, so a comment merely starting with `computenet uid=`
/// is never taken for one of a hub's jobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    pub hub: String,
    pub uid: String,
    pub attempt: u32,
    pub training_job: String,
}

impl Tag {
    /// The comment: `computenet hub=H uid=U attempt=N job=NS/NAME`.
    pub fn comment(&self) -> String {
        format!("computenet hub={} uid={} attempt={} job={}", self.hub, self.uid, self.attempt, self.training_job)
    }

    /// The attempt key: the UID and the attempt number.
    pub fn key(&self) -> String {
        attempt_key(&self.uid, self.attempt)
    }

    /// Reads a comment written by [`Tag::comment`]; `None` for anything else.
    pub fn parse(comment: &str) -> Option<Tag> {
        let mut words = comment.split(' ');
        if words.next()? != "computenet" {
            return None;
        }
        let hub = words.next()?.strip_prefix("hub=")?;
        let uid = words.next()?.strip_prefix("uid=")?;
        let attempt = words.next()?.strip_prefix("attempt=")?;
        let training_job = words.next()?.strip_prefix("job=")?;
        if words.next().is_some() || crate::labels::check_hub_id(hub).is_err() {
            return None;
        }
        let uid_ok = (1..=64).contains(&uid.len()) && uid.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        let digits = (1..=10).contains(&attempt.len()) && attempt.chars().all(|c| c.is_ascii_digit());
        let (ns, name) = training_job.split_once('/')?;
        let dns = |t: &str| {
            !t.is_empty()
                && t.len() <= 253
                && t.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-.".contains(c))
        };
        if !(uid_ok && digits && dns(ns) && dns(name)) {
            return None;
        }
        Some(Tag {
            hub: hub.to_string(),
            uid: uid.to_string(),
            attempt: attempt.parse().ok()?,
            training_job: training_job.to_string(),
        })
    }
}

/// The key of one attempt of a TrainingJob: its UID and its attempt number (status.attempt).
/// A job resumed or requeued and placed here again gets a new batch job instead of finding
/// the cancelled one.
pub fn attempt_key(uid: &str, attempt: u32) -> String {
    format!("{uid}.{attempt}")
}

/// The TrainingJob UID of an attempt key.
pub fn uid_of_key(key: &str) -> &str {
    key.rsplit_once('.').map_or(key, |(uid, _)| uid)
}

/// Largest answer read from slurmrestd or Prometheus; a bigger one is refused.
pub const MAX_BODY_BYTES: usize = 16 << 20;

/// An answer body as JSON. Some failures (auth, proxies) answer with plain text or
/// nothing: text becomes one entry of an `errors` array, nothing becomes null.
pub fn answer_json(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap_or_else(|_| {
        let text = String::from_utf8_lossy(body);
        let t = text.trim();
        if t.is_empty() {
            Value::Null
        } else {
            json!({"errors": [t.chars().take(300).collect::<String>()]})
        }
    })
}

fn decode<T: serde::de::DeserializeOwned>(what: &str, value: Value) -> crate::Result<T> {
    serde_json::from_value(value).map_err(|e| crate::Error::Decode { what: what.into(), why: e.to_string() })
}

/// The nodes of a `GET nodes` answer.
pub fn nodes_of(answer: Value) -> crate::Result<Vec<SlurmNode>> {
    #[derive(serde::Deserialize)]
    struct Nodes {
        #[serde(default)]
        nodes: Vec<SlurmNode>,
    }
    Ok(decode::<Nodes>("listing nodes", answer)?.nodes)
}

/// The jobs of a `GET jobs` answer.
pub fn jobs_of(answer: Value) -> crate::Result<Vec<SlurmJob>> {
    #[derive(serde::Deserialize)]
    struct Jobs {
        #[serde(default)]
        jobs: Vec<SlurmJob>,
    }
    Ok(decode::<Jobs>("listing jobs", answer)?.jobs)
}

/// The new job's id in a `POST job/submit` answer.
pub fn submitted_id(answer: &Value) -> crate::Result<u64> {
    answer
        .get("job_id")
        .and_then(Value::as_u64)
        .ok_or_else(|| crate::Error::Decode { what: "submitting a job".into(), why: "no job_id in the answer".into() })
}

/// The jobs of a raw `GET jobs` body (what a fuzzer feeds).
pub fn decode_jobs(body: &[u8]) -> crate::Result<Vec<SlurmJob>> {
    jobs_of(answer_json(body))
}

/// The nodes of a raw `GET nodes` body.
pub fn decode_nodes(body: &[u8]) -> crate::Result<Vec<SlurmNode>> {
    nodes_of(answer_json(body))
}

/// Port of the rendezvous, as on Kubernetes members.
pub const MASTER_PORT: u16 = 29500;

/// The batch job an admitted TrainingJob becomes on a Slurm member.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchJob {
    /// Job name: deterministic from the TrainingJob's UID, so a repeated dispatch finds it.
    pub name: String,
    /// Carries the TrainingJob's UID and namespace/name.
    pub comment: String,
    /// `namespace/name` of the TrainingJob.
    pub training_job: String,
    /// One task per node: nodes = tasks = replicas.
    pub replicas: u32,
    /// GPUs per replica (per node).
    pub gpus_per_replica: u32,
    /// The `gres` type to request (`a100`); `None` requests untyped GPUs.
    pub gpu_type: Option<String>,
    pub cpus_per_replica: u32,
    pub memory_mib_per_replica: u64,
    /// Time limit in minutes (rounded up from maxRunSeconds).
    pub time_limit_minutes: Option<u64>,
    /// Comma-separated partitions; `None` uses the default partition.
    pub partition: Option<String>,
    /// Slurm account to charge; the user's default when `None`.
    pub account: Option<String>,
    pub working_directory: String,
    /// Output path pattern (Slurm's `%j` and `%x` work).
    pub standard_output: String,
    pub command: Vec<String>,
    pub env: Vec<(String, String)>,
}

/// Quotes a word for bash.
pub fn shell_quote(word: &str) -> String {
    if !word.is_empty() && word.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c)) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

impl BatchJob {
    /// The batch script: one `srun` task per replica, each with RANK and LOCAL_RANK from
    /// Slurm, the first node of the allocation as MASTER_ADDR (the batch step runs there).
    pub fn script(&self) -> String {
        let command: Vec<String> = self.command.iter().map(|w| shell_quote(w)).collect();
        format!(
            "#!/bin/bash\n\
             # computenet: TrainingJob {job}\n\
             export MASTER_ADDR=\"$(hostname)\"\n\
             exec srun --kill-on-bad-exit=1 --ntasks={n} --ntasks-per-node=1 \\\n  \
             bash -c 'export RANK=$SLURM_PROCID LOCAL_RANK=$SLURM_LOCALID; exec \"$@\"' computenet-rank \\\n  \
             {command}\n",
            job = self.training_job,
            n = self.replicas,
            command = command.join(" "),
        )
    }

    /// The environment of the job: a base PATH, the distributed-training variables (RANK
    /// is per task, in the script) and the TrainingJob's own variables.
    pub fn environment(&self) -> BTreeMap<String, String> {
        let mut env = BTreeMap::from([
            ("PATH".to_string(), "/usr/local/bin:/usr/bin:/bin".to_string()),
            ("WORLD_SIZE".to_string(), self.replicas.to_string()),
            ("MASTER_PORT".to_string(), MASTER_PORT.to_string()),
            ("COMPUTENET_JOB".to_string(), self.training_job.clone()),
        ]);
        env.extend(self.env.iter().cloned());
        env
    }

    /// The body of `POST /slurm/{version}/job/submit`.
    pub fn submit_request(&self) -> Value {
        let mut job = json!({
            "name": self.name,
            "comment": self.comment,
            // slurmrestd wants the node count as a string.
            "nodes": self.replicas.to_string(),
            "tasks": self.replicas,
            "tasks_per_node": 1,
            "cpus_per_task": self.cpus_per_replica.max(1),
            "current_working_directory": self.working_directory,
            "standard_output": self.standard_output,
            "standard_error": self.standard_output,
            "environment": self.environment(),
            "requeue": false,
        });
        if self.memory_mib_per_replica > 0 {
            job["memory_per_node"] = json!(self.memory_mib_per_replica);
        }
        if self.gpus_per_replica > 0 {
            job["gres"] = json!(match &self.gpu_type {
                Some(t) => format!("gpu:{t}:{}", self.gpus_per_replica),
                None => format!("gpu:{}", self.gpus_per_replica),
            });
        }
        if let Some(m) = self.time_limit_minutes {
            job["time_limit"] = json!(m.max(1));
        }
        if let Some(p) = &self.partition {
            job["partition"] = json!(p);
        }
        if let Some(a) = &self.account {
            job["account"] = json!(a);
        }
        json!({"script": self.script(), "job": job})
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slurm::api::ExitCode;
    use serde_json::json;

    fn node(state: &str, flags: &[&str], gres: &str, used: &str) -> SlurmNode {
        serde_json::from_value(json!({
            "name": "node1", "state": state, "state_flags": flags, "cpus": 32, "alloc_cpus": 4,
            "real_memory": 1024, "alloc_memory": 512, "gres": gres, "gres_used": used, "partitions": ["debug"]
        }))
        .expect("node")
    }

    #[test]
    fn gres_strings_parse() {
        assert_eq!(gpus("gpu:a100:8"), (Some("a100".into()), 8));
        assert_eq!(gpus("gpu:8"), (None, 8));
        assert_eq!(gpus("gpu:a100:8(S:0-1)"), (Some("a100".into()), 8));
        assert_eq!(gpus("gpu:a100:2(IDX:0-1),gpu:a100:1(IDX:4)"), (Some("a100".into()), 3));
        assert_eq!(gpus("gpu:h800:4(IDX:0,2,4,6),mps:100"), (Some("h800".into()), 4));
        assert_eq!(gpus("gpu:a100:0(IDX:N/A)"), (Some("a100".into()), 0));
        assert_eq!(gpus("(null)"), (None, 0));
        assert_eq!(gpus(""), (None, 0));
        assert_eq!(gpus("N/A"), (None, 0));
        assert_eq!(gpus("mps:100"), (None, 0));
        assert_eq!(gpus("gpu"), (None, 1));
        assert_eq!(gpus("gpu:tesla"), (Some("tesla".into()), 1));
        assert_eq!(gpus("gpu:a100:x"), (None, 0), "an unreadable count counts nothing");
        assert_eq!(gpus("gpu:4294967295,gpu:2"), (None, u32::MAX), "sums saturate");
        for odd in ["(((", ")),:", "gpu:::::", ",,,", "gpu:a(b:c)d:3", "\u{1F600}:gpu:1(", "gpu:\u{e9}:1"] {
            let _ = parse_gres(odd);
        }
    }

    #[test]
    fn host_lists_expand() {
        let e = |l: &str| expand_hostlist(l).expect("small");
        assert_eq!(e("node[1-3,5]"), ["node1", "node2", "node3", "node5"]);
        assert_eq!(e("n[01-02],gpu7"), ["n01", "n02", "gpu7"]);
        assert_eq!(e("node3"), ["node3"]);
        assert!(e("").is_empty());
        assert!(e("(null)").is_empty());
        assert_eq!(e("rack[a-b]"), ["racka-b"], "unreadable ranges stay as written");
        assert_eq!(e("a]b[c"), ["a]b[c"], "brackets out of order are a name, not a panic");
    }

    #[test]
    fn host_lists_are_capped_in_total_not_only_per_range() {
        assert!(expand_hostlist("n[0-99999]").is_ok(), "one large range within the cap");
        assert!(expand_hostlist("n[0-100000]").is_err(), "one range over the cap");
        // Many ranges each under the old per-range cap, together far over it.
        let many = format!("n[{}]", ["0-99998"; 50].join(","));
        let err = expand_hostlist(&many).expect_err("too large in total");
        assert!(err.to_string().contains("expands to more than"), "{err}");
        let many_items = ["a[0-60000]"; 3].join(",");
        assert!(expand_hostlist(&many_items).is_err());
        // Padding as wide as the text itself is not copied into every name.
        let wide = format!("n[{}-{}]", "0".repeat(10_000), "9".repeat(3));
        let names = expand_hostlist(&wide).expect("capped width");
        assert!(names.iter().all(|n| n.len() <= 21), "{}", names[0]);
        assert!(expand_hostlist("n[18446744073709551614-18446744073709551615]").is_ok());
        assert!(expand_hostlist("n[0-18446744073709551615]").is_err());
    }

    #[test]
    fn drained_down_and_silent_nodes_take_no_work() {
        assert_eq!(unschedulable_reason(&node("idle", &[], "gpu:a100:8", "")), None);
        assert_eq!(unschedulable_reason(&node("mixed", &[], "gpu:a100:8", "")), None);
        assert_eq!(unschedulable_reason(&node("allocated", &[], "gpu:a100:8", "")), None);
        for (state, flags) in [
            ("idle", vec!["DRAIN"]),
            ("mixed", vec!["DRAIN"]),
            ("down", vec![]),
            ("idle", vec!["NOT_RESPONDING"]),
            ("idle+drain", vec![]),
            ("idle", vec!["MAINTENANCE"]),
            ("unknown", vec![]),
        ] {
            assert!(unschedulable_reason(&node(state, &flags, "gpu:a100:8", "")).is_some(), "{state} {flags:?}");
        }
        let mut drained = node("idle", &["DRAIN"], "gpu:a100:8", "");
        drained.reason = "bad fan".into();
        assert_eq!(unschedulable_reason(&drained).as_deref(), Some("DRAIN: bad fan"));
    }

    #[test]
    fn nodes_become_core_nodes_with_their_gpu_type() {
        let catalogue = Catalogue::built_in();
        let (n, raw) = core_node(&node("mixed", &[], "gpu:h800:8", "gpu:h800:3(IDX:0-2)"), &catalogue);
        assert_eq!(raw.as_deref(), Some("h800"));
        assert_eq!(n.accelerator.as_deref(), Some("H800"));
        assert_eq!((n.allocatable.accelerators, n.allocated.accelerators), (8, 3));
        assert_eq!((n.allocatable.cpu_millis, n.allocated.cpu_millis), (32_000, 4_000));
        assert_eq!((n.allocatable.memory_bytes, n.allocated.memory_bytes), (1024 << 20, 512 << 20));
        assert_eq!(n.free().accelerators, 5);
        let (drained, _) = core_node(&node("idle", &["DRAIN"], "gpu:h800:8", ""), &catalogue);
        assert_eq!(drained.free().accelerators, 0, "a drained node's GPUs leave the free capacity");
        let (cpu, raw) = core_node(&node("idle", &[], "(null)", ""), &catalogue);
        assert_eq!((cpu.accelerator, raw), (None, None));
        let (odd, _) = core_node(&node("idle", &[], "gpu:mi300x:8", ""), &catalogue);
        assert_eq!(odd.accelerator.as_deref(), Some("mi300x"), "unknown types keep Slurm's name");
    }

    #[test]
    fn partitions_filter_nodes() {
        let mut a = node("idle", &[], "", "");
        a.partitions = vec!["gpu".into()];
        let mut b = a.clone();
        b.partitions = vec!["cpu".into(), "debug".into()];
        let nodes = [a, b];
        assert_eq!(in_partitions(&nodes, &[]).count(), 2);
        assert_eq!(in_partitions(&nodes, &["debug".to_string()]).count(), 1);
    }

    fn job(state: &str, exit: Option<ExitCode>, reason: &str) -> SlurmJob {
        SlurmJob {
            job_id: 42,
            job_state: vec![state.to_string()],
            exit_code: exit,
            state_reason: reason.into(),
            ..SlurmJob::default()
        }
    }

    #[test]
    fn job_states_map_to_phases_with_reasons_and_exit_codes() {
        let ok = remote_state(&job("COMPLETED", Some(ExitCode::default()), "None"));
        assert_eq!((ok.phase, ok.reason.as_str(), ok.exit_code), (RemotePhase::Succeeded, "Completed", Some(0)));
        let failed = remote_state(&job("FAILED", Some(ExitCode { status: 3, signal: None }), "NonZeroExitCode"));
        assert_eq!((failed.phase, failed.exit_code), (RemotePhase::Failed, Some(3)));
        assert_eq!(failed.message, "Slurm job 42 FAILED (NonZeroExitCode), exit code 3");
        let pending = remote_state(&job("PENDING", None, "Resources"));
        assert_eq!((pending.phase, pending.exit_code), (RemotePhase::Pending, None));
        assert_eq!(pending.message, "Slurm job 42 PENDING (Resources)");
        for (state, phase, reason) in [
            ("RUNNING", RemotePhase::Running, "SlurmRunning"),
            ("COMPLETING", RemotePhase::Running, "SlurmRunning"),
            ("CANCELLED", RemotePhase::Failed, "Cancelled"),
            ("TIMEOUT", RemotePhase::Failed, "Timeout"),
            ("NODE_FAIL", RemotePhase::Failed, "NodeFail"),
            ("OUT_OF_MEMORY", RemotePhase::Failed, "OutOfMemory"),
            ("PREEMPTED", RemotePhase::Failed, "PreemptedBySlurm"),
            ("BOOT_FAIL", RemotePhase::Failed, "BootFail"),
            ("DEADLINE", RemotePhase::Failed, "DeadlineExceeded"),
            ("SUSPENDED", RemotePhase::Pending, "SlurmPending"),
            ("SOMETHING_NEW", RemotePhase::Pending, "SlurmUnknownState"),
        ] {
            let s = remote_state(&job(state, None, ""));
            assert_eq!((s.phase, s.reason.as_str()), (phase, reason), "{state}");
        }
        assert!(remote_state(&job("RUNNING", None, "")).holds_nodes());
        assert!(!remote_state(&job("PENDING", None, "")).holds_nodes());
        let killed = remote_state(&job("CANCELLED", Some(ExitCode { status: 0, signal: Some(15) }), ""));
        assert!(killed.message.ends_with("exit code 0, signal 15"), "{}", killed.message);
    }

    #[test]
    fn comments_read_back_strictly() {
        let tag = Tag { hub: "hub-a".into(), uid: "0a1b-2c".into(), attempt: 3, training_job: "team-a/bert".into() };
        assert_eq!(tag.comment(), "computenet hub=hub-a uid=0a1b-2c attempt=3 job=team-a/bert");
        assert_eq!(Tag::parse(&tag.comment()), Some(tag.clone()));
        assert_eq!(tag.key(), "0a1b-2c.3");
        assert_eq!(uid_of_key(&tag.key()), "0a1b-2c");
        for forged in [
            "computenet uid=0a1b-2c.3 job=team-a/bert",
            "computenet hub=hub-a uid=0a1b-2c attempt=3 job=team-a/bert extra",
            "computenet hub=hub-a uid=0a1b-2c attempt=+3 job=team-a/bert",
            "computenet hub=hub-a uid=0a1b-2c.3 attempt=3 job=team-a/bert",
            "computenet hub=hub a uid=0a1b-2c attempt=3 job=team-a/bert",
            "computenet  hub=hub-a uid=0a1b-2c attempt=3 job=team-a/bert",
            "computenet hub=hub-a uid=0a1b-2c attempt=3 job=team-a",
            "computenet hub=hub-a uid=0a1b-2c attempt=99999999999 job=team-a/bert",
            "xcomputenet hub=hub-a uid=0a1b-2c attempt=3 job=team-a/bert",
            "",
        ] {
            assert_eq!(Tag::parse(forged), None, "{forged:?}");
        }
    }

    #[test]
    fn answers_decode_or_fail_without_panicking() {
        let jobs = decode_jobs(br#"{"jobs": [{"job_id": 5, "comment": "x", "job_state": "RUNNING"}]}"#).expect("jobs");
        assert_eq!((jobs[0].job_id, jobs[0].job_state.as_slice()), (5, ["RUNNING".to_string()].as_slice()));
        assert!(decode_jobs(b"{}").expect("no jobs").is_empty());
        assert!(decode_jobs(br#"{"jobs": 5}"#).is_err());
        assert!(decode_jobs(b"not json").expect("text is an errors entry").is_empty());
        assert!(decode_nodes(&[0xff, 0xfe, b'[']).expect("garbage").is_empty());
        let deep = "[".repeat(10_000);
        assert!(decode_jobs(deep.as_bytes()).expect("too deep is text").is_empty());
        assert_eq!(submitted_id(&json!({"job_id": 9})).expect("id"), 9);
        assert!(submitted_id(&json!({"job_id": "x"})).is_err());
    }

    fn batch() -> BatchJob {
        BatchJob {
            name: "cn-0a1b2c".into(),
            comment: "computenet hub=h uid=0a1b-2c attempt=1 job=team-a/bert".into(),
            training_job: "team-a/bert".into(),
            replicas: 2,
            gpus_per_replica: 4,
            gpu_type: Some("h800".into()),
            cpus_per_replica: 8,
            memory_mib_per_replica: 65536,
            time_limit_minutes: Some(2),
            partition: Some("debug".into()),
            account: Some("physics".into()),
            working_directory: "/scratch".into(),
            standard_output: "/scratch/%x-%j.out".into(),
            command: vec!["python".into(), "train.py".into(), "--note".into(), "it's a test".into()],
            env: vec![("LR".into(), "0.1".into())],
        }
    }

    #[test]
    fn the_batch_job_asks_for_one_node_per_replica_with_its_gpus() {
        let body = batch().submit_request();
        let job = &body["job"];
        assert_eq!(job["nodes"], "2");
        assert_eq!((job["tasks"].as_u64(), job["tasks_per_node"].as_u64()), (Some(2), Some(1)));
        assert_eq!(job["gres"], "gpu:h800:4");
        assert_eq!(job["cpus_per_task"], 8);
        assert_eq!(job["memory_per_node"], 65536);
        assert_eq!(job["time_limit"], 2);
        assert_eq!(job["partition"], "debug");
        assert_eq!(job["account"], "physics");
        assert_eq!(job["current_working_directory"], "/scratch");
        assert_eq!(job["name"], "cn-0a1b2c");
        assert_eq!(job["comment"], "computenet hub=h uid=0a1b-2c attempt=1 job=team-a/bert");
        assert_eq!(job["environment"]["WORLD_SIZE"], "2");
        assert_eq!(job["environment"]["MASTER_PORT"], "29500");
        assert_eq!(job["environment"]["LR"], "0.1");
        assert!(job["environment"]["PATH"].as_str().is_some_and(|p| p.contains("/usr/bin")));
        let untyped = BatchJob { gpu_type: None, gpus_per_replica: 1, time_limit_minutes: None, ..batch() };
        let body = untyped.submit_request();
        assert_eq!(body["job"]["gres"], "gpu:1");
        assert!(body["job"].get("time_limit").is_none());
        let cpu_only = BatchJob { gpus_per_replica: 0, partition: None, account: None, ..batch() };
        let body = cpu_only.submit_request();
        assert!(body["job"].get("gres").is_none() && body["job"].get("partition").is_none());
        assert!(body["job"].get("account").is_none(), "the user's default account");
    }

    #[test]
    fn the_script_runs_the_command_once_per_replica_with_its_rank() {
        let script = batch().script();
        assert!(script.starts_with("#!/bin/bash\n"));
        assert!(script.contains("srun --kill-on-bad-exit=1 --ntasks=2 --ntasks-per-node=1"));
        assert!(script.contains("RANK=$SLURM_PROCID"));
        assert!(script.contains("MASTER_ADDR"));
        assert!(script.contains(r"python train.py --note 'it'\''s a test'"), "{script}");
    }

    #[test]
    fn quoting_survives_the_shell() {
        for word in ["plain", "with space", "it's", "$(rm -rf /)", "", "a\"b", "tab\there"] {
            let out = std::process::Command::new("bash")
                .arg("-c")
                .arg(format!("printf %s {}", shell_quote(word)))
                .output()
                .expect("bash runs");
            assert_eq!(String::from_utf8_lossy(&out.stdout), word);
        }
    }
}

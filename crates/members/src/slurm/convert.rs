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

/// GPUs in a `gres` string: (type of the first typed entry, total count).
pub fn gpus(text: &str) -> (Option<String>, u32) {
    let gpu: Vec<Gres> = parse_gres(text).into_iter().filter(|g| g.kind == "gpu").collect();
    (gpu.iter().find_map(|g| g.type_.clone()), gpu.iter().map(|g| g.count).sum())
}

/// Expands a Slurm host list: `node[1-3,5],gpu07` gives node1, node2, node3, node5, gpu07
/// (zero padding kept: `n[01-02]` gives n01, n02).
pub fn expand_hostlist(list: &str) -> Vec<String> {
    let mut out = Vec::new();
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
        let (Some(open), Some(close)) = (item.find('['), item.rfind(']')) else {
            out.push(item.to_string());
            continue;
        };
        let (prefix, ranges, suffix) = (&item[..open], &item[open + 1..close], &item[close + 1..]);
        for range in ranges.split(',') {
            let (lo, hi) = range.split_once('-').unwrap_or((range, range));
            let width = lo.len();
            match (lo.parse::<u64>(), hi.parse::<u64>()) {
                (Ok(a), Ok(b)) if a <= b && b - a < 100_000 => {
                    out.extend((a..=b).map(|n| format!("{prefix}{n:0width$}{suffix}")));
                }
                _ => out.push(format!("{prefix}{range}{suffix}")),
            }
        }
    }
    out
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
            cpu_millis: node.cpus * 1000,
            memory_bytes: node.real_memory * MIB,
            accelerators: gpu_total,
            extended: BTreeMap::new(),
        },
        allocated: NodeCapacity {
            cpu_millis: node.alloc_cpus * 1000,
            memory_bytes: node.alloc_memory * MIB,
            accelerators: gpu_used.min(gpu_total),
            extended: BTreeMap::new(),
        },
        labels: BTreeMap::from([("slurm.computenet.io/partitions".to_string(), node.partitions.join(","))]),
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
    }

    #[test]
    fn host_lists_expand() {
        assert_eq!(expand_hostlist("node[1-3,5]"), ["node1", "node2", "node3", "node5"]);
        assert_eq!(expand_hostlist("n[01-02],gpu7"), ["n01", "n02", "gpu7"]);
        assert_eq!(expand_hostlist("node3"), ["node3"]);
        assert!(expand_hostlist("").is_empty());
        assert!(expand_hostlist("(null)").is_empty());
        assert_eq!(expand_hostlist("rack[a-b]"), ["racka-b"], "unreadable ranges stay as written");
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

    fn batch() -> BatchJob {
        BatchJob {
            name: "cn-0a1b2c".into(),
            comment: "computenet uid=0a1b-2c".into(),
            training_job: "team-a/bert".into(),
            replicas: 2,
            gpus_per_replica: 4,
            gpu_type: Some("h800".into()),
            cpus_per_replica: 8,
            memory_mib_per_replica: 65536,
            time_limit_minutes: Some(2),
            partition: Some("debug".into()),
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
        assert_eq!(job["name"], "cn-0a1b2c");
        assert_eq!(job["comment"], "computenet uid=0a1b-2c");
        assert_eq!(job["environment"]["WORLD_SIZE"], "2");
        assert_eq!(job["environment"]["MASTER_PORT"], "29500");
        assert_eq!(job["environment"]["LR"], "0.1");
        assert!(job["environment"]["PATH"].as_str().is_some_and(|p| p.contains("/usr/bin")));
        let untyped = BatchJob { gpu_type: None, gpus_per_replica: 1, time_limit_minutes: None, ..batch() };
        let body = untyped.submit_request();
        assert_eq!(body["job"]["gres"], "gpu:1");
        assert!(body["job"].get("time_limit").is_none());
        let cpu_only = BatchJob { gpus_per_replica: 0, partition: None, ..batch() };
        let body = cpu_only.submit_request();
        assert!(body["job"].get("gres").is_none() && body["job"].get("partition").is_none());
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

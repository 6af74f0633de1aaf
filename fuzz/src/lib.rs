//! Fuzz target bodies, shared by the libFuzzer binaries (`fuzz_targets/*.rs`, nightly) and
//! the stable tests (`tests/`: the committed corpus replayed, proptest over arbitrary input).
//!
//! Each target takes raw bytes as they would arrive from outside (a quantity in a spec, an
//! object from the hub's apiserver, a slurmrestd reply, a host list, a `gres` string) and
//! runs the same parsing and conversion code the service runs on them. A target fails by
//! panicking: on a panic in the code under test (overflow, index, unwrap) or on an assert
//! below, each of which is a documented bound of that code.

use computenet_api::member_cluster::MAX_FREE_NODE_GROUPS;
use computenet_api::{convert, view, ComputeQueue, MemberCluster, TrainingJob};
use computenet_core::quantity::{format_bytes, format_cpu_millis, parse_bytes, parse_count, parse_cpu_millis};
use computenet_core::{Catalogue, Cluster, ClusterEfficiency, ClusterKind, NodeCapacity, Pool, ThroughputModel, Work};
use computenet_members::slurm::api::{self, SlurmJob, SlurmNode};
use computenet_members::slurm::convert as slurm;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// A fuzz target: bytes in, a panic on failure.
pub type Target = fn(&[u8]);

/// Every target by name (the names of `fuzz_targets/*.rs` and of `corpus/*`).
pub const TARGETS: [(&str, Target); 8] = [
    ("quantity", quantity),
    ("crd", crd),
    ("slurmrestd", slurmrestd),
    ("hostlist", hostlist),
    ("gres", gres),
    ("jobkinds", jobkinds),
    ("usage", usage),
    ("watch", watch),
];

/// Bytes as text the way the service gets it: HTTP bodies are decoded lossily, so invalid
/// UTF-8 reaches the parsers as replacement characters.
fn text(data: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(data)
}

/// Ten years: the bound on runtime estimates (`view::estimated_seconds`).
const TEN_YEARS_S: u64 = 10 * 365 * 86_400;

/// Quantity parsing (`computenet_core::quantity`): CPU in millicores, memory in bytes,
/// counts. Results are whole numbers or an error, never a panic; the three parsers agree
/// with each other (millicores round up to the same whole units as bytes), and what is
/// formatted parses back to the same value.
pub fn quantity(data: &[u8]) {
    let input = text(data);
    let millis = parse_cpu_millis(&input);
    let bytes = parse_bytes(&input);
    assert_eq!(bytes, parse_count(&input), "bytes and counts are parsed alike: {input:?}");
    match (&millis, &bytes) {
        (Ok(m), Ok(b)) => {
            assert_eq!(m.div_ceil(1000), *b, "{input:?}: {m} millicores round up to {b} units")
        }
        // Millicores overflow a thousand times sooner than whole units.
        (Err(_), Ok(b)) => assert!(*b > u64::MAX / 1000, "{input:?} parses as {b} units but not as millicores"),
        (Ok(m), Err(_)) => panic!("{input:?} parses as {m} millicores but not as whole units"),
        (Err(_), Err(_)) => {}
    }
    if let Ok(m) = millis {
        assert_eq!(parse_cpu_millis(&format_cpu_millis(m)), Ok(m), "{input:?}: millicores round trip");
    }
    if let Ok(b) = bytes {
        assert_eq!(parse_bytes(&format_bytes(b)), Ok(b), "{input:?}: bytes round trip");
    }
}

/// Objects from the hub's apiserver (`computenet_api::convert` and `view`): the input is
/// one JSON object or an array of them; each is decoded as a TrainingJob, ComputeQueue or
/// MemberCluster where it can be, and everything the service derives from them is derived:
/// the catalogue, the queues and their usage, the members as core clusters and back as
/// `status.freeNodes`, each job as the core's job, as a running gang, and its runtime
/// estimate on every accelerator type in view. Checked: no panic; job conversions give at
/// least one replica, finite non-negative device-hours and runtime estimates; running gangs
/// end within ten years of their start; a member's status gives at most
/// `MAX_NODES_PER_MEMBER` nodes,
/// none holding more than it has, and at most `MAX_FREE_NODE_GROUPS` groups back.
pub fn crd(data: &[u8]) {
    let Ok(value) = serde_json::from_slice::<Value>(data) else { return };
    let items = match value {
        Value::Array(items) => items,
        one => vec![one],
    };
    let (mut jobs, mut queues, mut members) = (Vec::new(), Vec::new(), Vec::new());
    for item in items {
        if let Ok(j) = serde_json::from_value::<TrainingJob>(item.clone()) {
            jobs.push(j);
        }
        if let Ok(q) = serde_json::from_value::<ComputeQueue>(item.clone()) {
            queues.push(q);
        }
        if let Ok(m) = serde_json::from_value::<MemberCluster>(item) {
            members.push(m);
        }
    }

    let catalogue = view::catalogue(&members);
    let mut clusters = Vec::new();
    for m in &members {
        let Some(cluster) = convert::cluster_from_status(m) else { continue };
        assert!(cluster.nodes.len() <= convert::MAX_NODES_PER_MEMBER, "{} nodes from one status", cluster.nodes.len());
        for n in &cluster.nodes {
            assert!(fits(&n.allocated, &n.allocatable), "node {} holds more than it has", n.name);
        }
        assert!(convert::free_node_groups(&cluster).len() <= MAX_FREE_NODE_GROUPS, "too many free node groups");
        clusters.push(cluster);
    }
    let pool = Pool { clusters, catalogue, data_sets: BTreeMap::new(), wan_gbps: view::WAN_GBPS };

    let hub_queues = view::queues(&queues);
    assert_eq!(hub_queues.core.len() + hub_queues.invalid.len(), queues.len(), "every queue valid or invalid");
    for q in &hub_queues.core {
        let usage = view::queue_usage(&q.name, Some(q), &jobs);
        assert!(usage.running <= usage.admitted, "running jobs are admitted ones");
        let _ = usage.gpu_usage();
    }

    let model = ThroughputModel::default();
    let labels = BTreeMap::new();
    let numbers = view::NodeNumbers::of(&pool);
    for tj in &jobs {
        let _ = view::pending_job(tj, &hub_queues.by_name, &labels);
        let _ = (view::gang_accelerators(tj), view::accelerators_held(tj), view::per_replica(tj));
        let _ = (view::is_waiting(tj), view::job_name(tj), view::placed_on(tj));
        if let Some(placement) = tj.status.as_ref().and_then(|s| s.placement.as_ref()) {
            assert!(view::estimated_seconds(placement.estimated_runtime_seconds) <= TEN_YEARS_S);
        }
        if let Some(running) = view::running_job(tj, &numbers, 1_700_000_000) {
            let runtime = running.estimated_end - running.started_at;
            assert!(runtime <= TEN_YEARS_S, "a running gang ends within ten years of its start, not {runtime} s");
        }
        let Ok(job) = convert::job(view::uid(tj), &tj.spec, view::created_at(tj)) else { continue };
        assert!(job.replicas >= 1, "a converted job has a replica");
        if let Work::DeviceHours { hours, .. } = &job.work {
            assert!(hours.is_finite() && *hours >= 0.0, "device-hours {hours}");
        }
        let mut types: Vec<Option<&str>> = vec![None];
        types.extend(job.accelerator.types.iter().map(|t| Some(t.as_str())));
        types.extend(pool.catalogue.names().map(Some));
        for accelerator in types {
            for nodes in [1, job.replicas] {
                let (runtime, _) = model.runtime_s(&job, &pool.catalogue, accelerator, nodes);
                assert!(
                    runtime.is_finite() && runtime >= 0.0,
                    "runtime estimate {runtime} s on {accelerator:?} over {nodes} nodes"
                );
            }
        }
    }
}

fn fits(used: &NodeCapacity, total: &NodeCapacity) -> bool {
    used.cpu_millis <= total.cpu_millis
        && used.memory_bytes <= total.memory_bytes
        && used.accelerators <= total.accelerators
}

/// A slurmrestd reply body, decoded as the client decodes replies of `GET nodes`,
/// `GET jobs` and `POST job/submit` (plain text becomes an `errors` entry, as in the
/// client), then converted as the member converts them. Checked: no panic; a node's GPUs
/// in use never exceed its GPUs, its schedulability follows its state, and a cluster of the
/// nodes fits in `status.freeNodes`; a job's exit code is reported only once it ended, and
/// its allocated nodes respect the host-list cap.
pub fn slurmrestd(data: &[u8]) {
    #[derive(Deserialize)]
    struct Nodes {
        #[serde(default)]
        nodes: Vec<SlurmNode>,
    }
    #[derive(Deserialize)]
    struct Jobs {
        #[serde(default)]
        jobs: Vec<SlurmJob>,
    }
    let body = text(data);
    let value: Value = serde_json::from_str(&body).unwrap_or_else(|_| {
        let t = body.trim();
        if t.is_empty() {
            Value::Null
        } else {
            serde_json::json!({"errors": [t.chars().take(300).collect::<String>()]})
        }
    });
    let errors = api::errors_of(&value);
    if api::error_number(&value).is_some() {
        assert!(!errors.is_empty(), "an error number comes with an error line");
    }
    let _ = value.get("job_id").and_then(Value::as_u64);

    if let Ok(Nodes { nodes }) = serde_json::from_value::<Nodes>(value.clone()) {
        let catalogue = Catalogue::built_in();
        let mut core_nodes = Vec::new();
        for n in &nodes {
            let (core, gpu_type) = slurm::core_node(n, &catalogue);
            assert!(core.allocated.accelerators <= core.allocatable.accelerators, "GPUs in use beyond the GPUs");
            assert_eq!(core.unschedulable, slurm::unschedulable_reason(n).is_some());
            assert_eq!(core.accelerator.is_some(), core.allocatable.accelerators > 0, "an accelerator type iff GPUs");
            assert!(gpu_type.is_none() || core.accelerator.is_some(), "a gres GPU type only with GPUs");
            let _ = core.free();
            core_nodes.push(core);
        }
        let partitions = vec!["gpu".to_string()];
        assert!(slurm::in_partitions(&nodes, &partitions).count() <= nodes.len());
        let cluster = Cluster {
            name: "slurm".to_string(),
            kind: ClusterKind::HPC,
            site: String::new(),
            ready: true,
            cordoned: false,
            efficiency: ClusterEfficiency::default(),
            data_sets: Vec::new(),
            workload_kinds: Vec::new(),
            nodes: core_nodes,
            tenants: None,
        };
        assert!(convert::free_node_groups(&cluster).len() <= MAX_FREE_NODE_GROUPS);
    }
    if let Ok(Jobs { jobs }) = serde_json::from_value::<Jobs>(value) {
        for j in &jobs {
            let state = slurm::remote_state(j);
            let finished = matches!(state.phase, slurm::RemotePhase::Succeeded | slurm::RemotePhase::Failed);
            assert!(finished || state.exit_code.is_none(), "exit code of an unfinished job");
            assert!(!state.message.is_empty() && !state.reason.is_empty());
            let listed = j.job_resources.as_ref().map_or(0, |r| r.allocated_nodes.len());
            // A host list too large to expand is an error, never a huge allocation.
            if let Ok(names) = j.allocated_node_names() {
                assert!(names.len() <= slurm::MAX_HOSTS.max(listed), "allocated nodes beyond the cap");
            }
        }
    }
}

/// Slurm host lists (`slurm::convert::expand_hostlist`): at most `MAX_HOSTS` names and
/// `MAX_HOSTLIST_CHARS` characters in total, whatever the ranges, or an error; a list
/// without brackets is its comma-separated names.
pub fn hostlist(data: &[u8]) {
    let list = text(data);
    let expanded = slurm::expand_hostlist(&list);
    if let Ok(hosts) = &expanded {
        assert!(hosts.len() <= slurm::MAX_HOSTS, "{} hosts beyond the cap", hosts.len());
        let chars: usize = hosts.iter().map(String::len).sum();
        assert!(chars <= slurm::MAX_HOSTLIST_CHARS, "{chars} characters beyond the cap");
    }
    if !list.contains(['[', ']']) {
        let plain: Vec<&str> = list.split(',').map(str::trim).filter(|s| !s.is_empty() && *s != "(null)").collect();
        let chars: usize = plain.iter().map(|s| s.len()).sum();
        match expanded {
            Ok(hosts) => assert_eq!(hosts, plain, "a list without ranges is its names"),
            Err(_) => assert!(
                plain.len() > slurm::MAX_HOSTS || chars > slurm::MAX_HOSTLIST_CHARS,
                "a list of {} names refused",
                plain.len()
            ),
        }
    }
}

/// `gres` strings (`slurm::convert::parse_gres`, `gpus`): entries never carry a separator
/// in their kind or type, and the GPU total is the (saturating) sum of the GPU entries.
pub fn gres(data: &[u8]) {
    let input = text(data);
    let entries = slurm::parse_gres(&input);
    for g in &entries {
        for field in std::iter::once(g.kind.as_str()).chain(g.type_.as_deref()) {
            assert!(!field.contains([',', '(', ':']), "{input:?} gives a field {field:?}");
        }
    }
    let (gpu_type, total) = slurm::gpus(&input);
    let gpu = entries.iter().filter(|g| g.kind == "gpu");
    assert_eq!(total, gpu.clone().fold(0u32, |a, g| a.saturating_add(g.count)), "{input:?}: GPU total");
    assert_eq!(gpu_type, gpu.clone().find_map(|g| g.type_.clone()), "{input:?}: GPU type");
}

/// A tenant's JobSet, TrainJob or PyTorchJob (and, for a TrainJob, its runtime: the second
/// element of a JSON array, else the object itself) through every kind: reading its gang
/// never panics; a TrainingJob spec made from it is one the core accepts, within the
/// schema's bounds; its member copy is unsuspended, carries computenet's labels, has no
/// status and keeps no service account; its state is read.
pub fn jobkinds(data: &[u8]) {
    use computenet_api::kinds::{self, CopyContext};
    let Ok(value) = serde_json::from_slice::<Value>(data) else { return };
    let (object, runtime) = match &value {
        Value::Array(items) if !items.is_empty() => (items[0].clone(), items.get(1).cloned()),
        other => (other.clone(), None),
    };
    let runtime = runtime.unwrap_or_else(|| object.clone());
    let lookup = |_: &str, _: Option<&str>, _: &str| Some(runtime.clone());
    let labels = BTreeMap::from([("computenet.io/job-uid".to_string(), "u-1".to_string())]);
    for kind in kinds::all() {
        let _ = kind.state(&object);
        let _ = kind.suspended(&object);
        let copy =
            kind.member_copy(&object, &CopyContext { namespace: "ns", labels: &labels, gpu_product: Some("H800") });
        assert!(copy.get("status").is_none(), "a copy carries no status");
        assert!(!kind.suspended(&copy), "a copy runs");
        assert_eq!(copy.pointer("/metadata/labels/computenet.io~1job-uid"), Some(&Value::from("u-1")), "labelled");
        assert_eq!(copy.pointer("/metadata/namespace"), Some(&Value::from("ns")));
        let Ok(groups) = kind.gang(&object, &lookup) else { continue };
        let pods: u64 = groups.iter().map(|g| u64::from(g.count)).sum();
        assert!(pods <= kinds::MAX_GANG_PODS, "{pods} pods");
        assert!(groups.len() <= kinds::MAX_GANG_GROUPS);
        if let Ok(spec) = kinds::shadow_spec(kind, &object, &groups, &|raw: &str| raw.to_string()) {
            assert!((1..=4096).contains(&spec.replicas), "replicas {}", spec.replicas);
            assert!(spec.source.is_some() && spec.workload.is_none(), "a source TrainingJob");
            assert!(spec.max_run_seconds.is_none(), "no limit is trusted");
            if let Some(a) = &spec.resources.accelerators {
                assert!((1..=64).contains(&a.count), "accelerators {}", a.count);
            }
            let job = convert::job("fuzz", &spec, 0).expect("the core takes every spec made from an object");
            assert_eq!(job.workload_kind.as_deref(), Some(kind.resource().kind));
        }
    }
}

/// The usage store's operations on a stored day object as the hub returns it (any JSON,
/// decoded like the service decodes it) and attempts made from numbers
/// (`{"stored": {...}, "attempts": [[start, end, gpuSeconds, namespace, uid, attempt], ...]}`):
/// recording never panics, adds every new attempt's GPU-seconds to the rows exactly once
/// (a second recording of the same attempts changes nothing), keeps the caps, and
/// compaction keeps the rows' sum.
pub fn usage(data: &[u8]) {
    use computenet_api::usage::{self, ComputeUsageSpec, EndedAttempt, UsageRecord};
    use computenet_core::usage::Amounts;
    let Ok(value) = serde_json::from_slice::<Value>(data) else { return };
    let stored = value.get("stored").and_then(|v| serde_json::from_value::<ComputeUsageSpec>(v.clone()).ok());
    let mut day = stored.unwrap_or_else(|| usage::empty_day("q", 20_000, 3_600));
    let number = |v: &Value, i: usize| v.get(i).and_then(Value::as_f64).unwrap_or(0.0);
    // Times of a record are not read by the store's operations: one template serves.
    let Ok(template) = serde_json::from_value::<UsageRecord>(serde_json::json!({
        "namespace": "ns", "job": "j", "uid": "u", "attempt": 1, "member": "m",
        "start": "1970-01-01T00:00:00Z", "end": "1970-01-01T00:00:00Z"
    })) else {
        panic!("the record template decodes")
    };
    let attempts: Vec<EndedAttempt> = value
        .get("attempts")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .take(2_000)
                .map(|a| {
                    let (start, end) = (number(a, 0).clamp(0.0, 4e9) as u64, number(a, 1).clamp(0.0, 4e9) as u64);
                    let gpu_seconds = number(a, 2).clamp(0.0, 1e12);
                    EndedAttempt {
                        queue: "q".into(),
                        start,
                        end,
                        amounts: Amounts { gpu_seconds, energy_kwh: gpu_seconds / 1e4, ..Amounts::default() },
                        record: UsageRecord {
                            namespace: format!("ns{}", number(a, 3) as u8 % 8),
                            uid: format!("u{}", number(a, 4) as u16),
                            attempt: number(a, 5) as i32,
                            accelerator: Some("H800".into()),
                            ..template.clone()
                        },
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let rows_sum = |d: &ComputeUsageSpec| d.rows.iter().map(|r| Amounts::from(r.amounts).gpu_seconds).sum::<f64>();
    let before = rows_sum(&day);
    let fresh: Vec<&EndedAttempt> = {
        let mut seen = std::collections::BTreeSet::new();
        attempts.iter().filter(|a| !usage::is_recorded(&day, &a.key()) && seen.insert(a.key())).collect()
    };
    let expected: f64 = fresh.iter().map(|a| a.amounts.gpu_seconds).sum();
    let added = usage::record(&mut day, &attempts);
    assert_eq!(added.len(), fresh.len(), "every new attempt is recorded once");
    let after = rows_sum(&day);
    assert!(
        (after - before - expected).abs() <= 1e-6 * after.max(1.0),
        "rows grew by {} not {expected}",
        after - before
    );
    assert!(day.records.len() <= usage::MAX_RECORDS.max(before as usize));
    assert!(day.recorded.len() <= usage::MAX_RECORDED_KEYS);
    if !day.compacted {
        let again = day.clone();
        assert!(usage::record(&mut day, &attempts).is_empty() || attempts.len() > usage::MAX_RECORDED_KEYS);
        if attempts.len() <= usage::MAX_RECORDED_KEYS {
            assert_eq!(day, again, "recording the same attempts twice changes nothing");
        }
    }
    let compacted = usage::compact(&day);
    assert!((rows_sum(&compacted) - rows_sum(&day)).abs() <= 1e-6 * rows_sum(&day).max(1.0));
    assert!(compacted.records.is_empty() && compacted.recorded.is_empty());
}

/// Objects as a watch receives them (`computenet_members::kubernetes::watch::Lenient`:
/// the hub's TrainingJobs, a member's Nodes, and its Pods and Jobs in both their full and
/// their watched types): decoded straight from their text, their `metadata.managedFields`
/// cut out first. Checked: an object that decodes whole decodes to the same value but for
/// its managedFields (nothing else is cut, whatever the text holds: the key in strings or
/// annotations, escapes, duplicate keys, deep nesting); one that does not is left out
/// with an error, never a panic.
pub fn watch(data: &[u8]) {
    let json = text(data);
    lenient_matches_whole::<TrainingJob>(&json);
    lenient_matches_whole::<k8s_openapi::api::core::v1::Pod>(&json);
    lenient_matches_whole::<k8s_openapi::api::core::v1::Node>(&json);
    lenient_matches_whole::<computenet_members::kubernetes::watched::WatchedPod>(&json);
    lenient_matches_whole::<computenet_members::kubernetes::watched::WatchedJob>(&json);
}

fn lenient_matches_whole<K>(json: &str)
where
    K: serde::de::DeserializeOwned + PartialEq + std::fmt::Debug + kube::Resource,
{
    use computenet_members::kubernetes::watch::Lenient;
    let whole = serde_json::from_str::<K>(json).ok().map(|mut k| {
        k.meta_mut().managed_fields = None;
        k
    });
    match (Lenient::<K>::from_json(json), whole) {
        (Lenient::Decoded(k), Some(w)) => assert_eq!(k, w, "the same object but for its managedFields"),
        // kube's store cannot hold an object without a name: left out.
        (Lenient::Undecodable(bad), Some(w)) if w.meta().name.is_none() => assert_eq!(bad.1, "metadata.name: missing"),
        (Lenient::Undecodable(bad), Some(_)) => panic!("decodes whole but not without its managedFields: {}", bad.1),
        (Lenient::Undecodable(bad), None) => assert!(!bad.1.is_empty(), "an error says why"),
        // Only managedFields that do not fit their type were in the way: they are not read.
        (Lenient::Decoded(k), None) => assert_eq!(k.meta().managed_fields, None),
    }
}

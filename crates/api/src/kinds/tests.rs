//! Tests of what the kinds share: lookup, names, quantities, pod shapes, shadow specs and
//! robustness on arbitrary JSON.

use super::test_support::*;
use super::*;
use proptest::prelude::*;
use serde_json::json;

#[test]
fn kinds_are_found_by_kind_and_group() {
    let names: Vec<&str> = all().iter().map(|k| k.resource().kind).collect();
    assert_eq!(names, ["JobSet", "TrainJob", "PyTorchJob"]);
    assert_eq!(by_kind("TrainJob").unwrap().resource().plural, "trainjobs");
    assert_eq!(by_group_kind("kubeflow.org", "PyTorchJob").unwrap().suspend_pointer(), "/spec/runPolicy/suspend");
    assert!(by_group_kind("trainer.kubeflow.org", "PyTorchJob").is_none());
    assert!(by_kind("TrainingJob").is_none());
    assert_eq!(by_kind("JobSet").unwrap().resource().api_version(), "jobset.x-k8s.io/v1alpha2");
}

#[test]
fn shadow_names_are_kind_and_name_cut_with_a_hash_when_long() {
    assert_eq!(shadow_name("JobSet", "pretrain"), "jobset-pretrain");
    assert_eq!(shadow_name("PyTorchJob", "a.b"), "pytorchjob-a.b");
    let a = shadow_name("TrainJob", &format!("{}a", "x".repeat(252)));
    let b = shadow_name("TrainJob", &format!("{}b", "x".repeat(252)));
    assert_ne!(a, b);
    for n in [&a, &b] {
        assert_eq!(n.len(), 253, "{n}");
        assert!(n.starts_with("trainjob-xxx"));
        assert!(n.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'), "{n}");
    }
    assert_eq!(a, shadow_name("TrainJob", &format!("{}a", "x".repeat(252))), "deterministic");
    // The cut never leaves a dot or dash before the hash.
    let dotted = shadow_name("JobSet", &format!("{}.{}", "y".repeat(228), "z".repeat(40)));
    assert!(!dotted.contains(".-") && dotted.len() <= 253, "{dotted}");
    // 253 exactly is kept as it is.
    let exact = "q".repeat(253 - "jobset-".len());
    assert_eq!(shadow_name("JobSet", &exact), format!("jobset-{exact}"));
}

#[test]
fn quantities_take_kubernetes_forms() {
    let cpu = |v: Value| quantity(&v, "f", parse_cpu_millis);
    let bytes = |v: Value| quantity(&v, "f", parse_bytes);
    assert_eq!(cpu(json!("500m")).unwrap(), 500);
    assert_eq!(cpu(json!("8")).unwrap(), 8000);
    assert_eq!(cpu(json!(8)).unwrap(), 8000);
    assert_eq!(cpu(json!("1.5")).unwrap(), 1500);
    assert_eq!(cpu(json!(1.5)).unwrap(), 1500);
    assert_eq!(cpu(json!("1e3")).unwrap(), 1_000_000);
    assert_eq!(cpu(json!("25e-2")).unwrap(), 250);
    assert_eq!(cpu(json!("1E-4")).unwrap(), 1, "rounded up, as Kubernetes does");
    assert_eq!(bytes(json!("64Gi")).unwrap(), 64 << 30);
    assert_eq!(bytes(json!("1.5e9")).unwrap(), 1_500_000_000);
    for bad in [json!("-1"), json!("8 cores"), json!("1e"), json!("e3"), json!("1e99"), json!(true), json!(-3)] {
        let e = cpu(bad.clone()).unwrap_err().to_string();
        assert!(e.starts_with("f: "), "{bad}: {e}");
    }
}

#[test]
fn pod_requests_follow_the_kubernetes_rule() {
    let pod = json!({
        "containers": [
            {"name": "a", "resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "4", "nvidia.com/gpu": 2}}},
            {"name": "b", "resources": {"limits": {"cpu": "2", "memory": "2Gi"}}}
        ],
        "initContainers": [
            {"name": "sidecar", "restartPolicy": "Always", "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}},
            {"name": "setup", "resources": {"requests": {"cpu": "3", "memory": "10Gi"}}}
        ],
        "overhead": {"cpu": "250m", "memory": "128Mi"}
    });
    let g = pod_group("g", 2, Some(&pod), "p", None).unwrap();
    // containers 1 + 2 (limit) + sidecar 1 = 4 CPUs; memory 1 + 2 + 1 = 4Gi, but the
    // setup container runs beside the sidecar: 10 + 1 = 11Gi; plus overhead.
    assert_eq!(g.cpu_millis, 4250);
    assert_eq!(g.memory_bytes, (11 << 30) + (128 << 20));
    assert_eq!(g.gpus, 2);

    let e = pod_group("g", 1, Some(&json!({"containers": [{"resources": {"limits": ["cpu"]}}]})), "p", None)
        .unwrap_err()
        .to_string();
    assert_eq!(e, "p.containers[0].resources.limits: must be a map of resource names to quantities");
    let e = pod_group("g", 1, Some(&json!({"nodeSelector": {"zone": 3}})), "p", None).unwrap_err().to_string();
    assert_eq!(e, "p.nodeSelector.zone: must be a string");
    let e = pod_group("g", 1, None, "p", None).unwrap_err().to_string();
    assert_eq!(e, "p: must be a pod spec (an object)");
}

#[test]
fn resources_computenet_does_not_account_are_refused() {
    let with = |resources: Value| json!({"containers": [{"name": "a", "resources": resources}]});
    for (resources, name) in [
        (json!({"limits": {"amd.com/gpu": 1}}), "amd.com/gpu"),
        (json!({"requests": {"cpu": "1", "nvidia.com/mig-1g.5gb": 1}}), "nvidia.com/mig-1g.5gb"),
        (json!({"limits": {"example.com/fpga": "0"}}), "example.com/fpga"),
    ] {
        let e = pod_group("g", 1, Some(&with(resources)), "p", None).unwrap_err().to_string();
        assert_eq!(e, format!("p.containers[0].resources: {name} is not a resource computenet accounts"));
    }
    // Standard resources and nvidia.com/gpu are fine.
    let fine = with(json!({
        "requests": {"cpu": "1", "memory": "1Gi", "ephemeral-storage": "10Gi", "hugepages-2Mi": "1Gi"},
        "limits": {"nvidia.com/gpu": 1, "hugepages-1Gi": "2Gi"}
    }));
    assert_eq!(pod_group("g", 1, Some(&fine), "p", None).unwrap().gpus, 1);

    let e = pod_group("g", 1, Some(&json!({"overhead": {"cpu": "1", "amd.com/gpu": 1}})), "p", None)
        .unwrap_err()
        .to_string();
    assert_eq!(e, "p.overhead: amd.com/gpu is not a resource computenet accounts");
    let claims = json!({"resourceClaims": [{"name": "gpu", "resourceClaimTemplateName": "a100"}], "containers": []});
    let e = pod_group("g", 1, Some(&claims), "p", None).unwrap_err().to_string();
    assert_eq!(e, "p.resourceClaims: dynamic resource claims (DRA) are not resources computenet accounts");
    let pod_level = json!({"resources": {"requests": {"cpu": "64"}}, "containers": [{"name": "a"}]});
    let e = pod_group("g", 1, Some(&pod_level), "p", None).unwrap_err().to_string();
    assert!(e.starts_with("p.resources: pod-level resources are not modelled"), "{e}");

    // The whole path, from the object.
    let mut obj = load("jobset.yaml");
    obj["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"] =
        json!({"amd.com/gpu": 1});
    let e = JobSet.gang(&obj, &no_runtime).unwrap_err().to_string();
    assert_eq!(
        e,
        "spec.replicatedJobs[0].template.spec.template.spec.containers[0].resources: amd.com/gpu is not a resource \
         computenet accounts"
    );
}

#[test]
fn pods_that_leave_the_member_isolation_are_refused() {
    let base = json!({"containers": [{"name": "a"}], "initContainers": [{"name": "i"}]});
    let cases: &[(&str, Value, &str)] = &[
        ("/nodeName", json!("gpu-node-7"), "p.nodeName: must not be set"),
        ("/hostNetwork", json!(true), "p.hostNetwork: must be false or absent"),
        ("/hostPID", json!(true), "p.hostPID: must be false or absent"),
        ("/hostIPC", json!(true), "p.hostIPC: must be false or absent"),
        ("/hostIPC", json!("true"), "p.hostIPC: must be false or absent"),
        (
            "/volumes",
            json!([{"name": "a", "emptyDir": {}}, {"name": "root", "hostPath": {"path": "/"}}]),
            "p.volumes[1].hostPath: hostPath volumes are not allowed",
        ),
        (
            "/containers/0/securityContext",
            json!({"privileged": true}),
            "p.containers[0].securityContext.privileged: privileged containers are not allowed",
        ),
        (
            "/initContainers/0/securityContext",
            json!({"privileged": true}),
            "p.initContainers[0].securityContext.privileged: privileged containers are not allowed",
        ),
        (
            "/containers/0/securityContext",
            json!({"capabilities": {"add": ["SYS_ADMIN"]}}),
            "p.containers[0].securityContext.capabilities.add: adding capabilities is not allowed",
        ),
        (
            "/initContainers/0/securityContext",
            json!({"capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]}}),
            "p.initContainers[0].securityContext.capabilities.add: adding capabilities is not allowed",
        ),
    ];
    for (pointer, value, expected) in cases {
        let mut pod = base.clone();
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        pod.pointer_mut(if parent.is_empty() { "" } else { parent }).unwrap()[key] = value.clone();
        let e = pod_group("g", 1, Some(&pod), "p", None).unwrap_err().to_string();
        assert!(e.starts_with(expected), "{pointer}: {e}");
    }
    // What stays inside is fine.
    let mut fine = base.clone();
    fine["hostNetwork"] = json!(false);
    fine["volumes"] = json!([{"name": "shm", "emptyDir": {"medium": "Memory"}}]);
    fine["containers"][0]["securityContext"] =
        json!({"privileged": false, "capabilities": {"add": [], "drop": ["ALL"]}});
    assert!(pod_group("g", 1, Some(&fine), "p", None).is_ok());

    // Every template of an object, even one of zero pods, with its path.
    let mut obj = load("jobset.yaml");
    obj["spec"]["replicatedJobs"][0]["replicas"] = json!(0);
    obj["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]["spec"]["hostPID"] = json!(true);
    let e = JobSet.gang(&obj, &no_runtime).unwrap_err().to_string();
    assert!(e.starts_with("spec.replicatedJobs[0].template.spec.template.spec.hostPID: "), "{e}");
    let mut obj = load("pytorchjob.yaml");
    obj["spec"]["pytorchReplicaSpecs"]["Worker"]["replicas"] = json!(0);
    obj["spec"]["pytorchReplicaSpecs"]["Worker"]["template"]["spec"]["nodeName"] = json!("n1");
    let e = PyTorchJob.gang(&obj, &no_runtime).unwrap_err().to_string();
    assert!(e.starts_with("spec.pytorchReplicaSpecs.Worker.template.spec.nodeName: "), "{e}");
}

fn jobset() -> (Value, Vec<PodGroup>) {
    let obj = load("jobset.yaml");
    let groups = JobSet.gang(&obj, &no_runtime).unwrap();
    (obj, groups)
}

fn shadow_with(annotations: &[(&str, &str)]) -> Result<TrainingJobSpec, KindError> {
    let (mut obj, groups) = jobset();
    for (k, v) in annotations {
        obj["metadata"]["annotations"][*k] = json!(v);
    }
    shadow_spec(&JobSet, &obj, &groups, &canonical)
}

#[test]
fn annotations_fill_the_shadow_spec() {
    let spec = shadow_with(&[
        (ACCELERATOR_TYPES_ANNOTATION, "H100, A100-80G,H100"),
        (SITES_ANNOTATION, "eu-1"),
        (DATA_SET_ANNOTATION, "imagenet"),
        (BATCH_SIZE_ANNOTATION, "1024"),
        (PRIORITY_ANNOTATION, "-5"),
    ])
    .unwrap();
    assert_eq!(spec.resources.accelerators.unwrap().types, ["H100", "A100-80G"]);
    assert_eq!(spec.placement.sites, ["eu-1"]);
    assert_eq!(spec.placement.data_set.as_deref(), Some("imagenet"));
    assert_eq!(spec.work.batch_size, Some(1024));
    assert_eq!(spec.priority, -5);
    assert!(spec.placement.cluster_kinds.is_empty() && spec.elastic.is_none() && spec.checkpoint.is_none());
    // Defaults when nothing is annotated.
    let (mut obj, groups) = jobset();
    obj["metadata"].as_object_mut().unwrap().remove("annotations");
    let spec = shadow_spec(&JobSet, &obj, &groups, &canonical).unwrap();
    assert_eq!(spec.priority, 0);
    assert_eq!(spec.placement.objective, crate::training_job::Objective::Balanced);
    assert_eq!(spec.on_member_loss, crate::training_job::MemberLossPolicy::Requeue);
    assert_eq!(spec.work, WorkEstimate::default());
}

#[test]
fn invalid_annotations_are_errors_naming_them() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[(PRIORITY_ANNOTATION, "high")],
            "metadata.annotations[computenet.io/priority]: must be an integer from -1000000 to 1000000000",
        ),
        (&[(PRIORITY_ANNOTATION, "1000000001")], "metadata.annotations[computenet.io/priority]: "),
        (&[(GPU_HOURS_ANNOTATION, "-1")], "metadata.annotations[computenet.io/gpu-hours]: must be a number from 0 to"),
        (&[(GPU_HOURS_ANNOTATION, "NaN")], "metadata.annotations[computenet.io/gpu-hours]: "),
        (
            &[(MODEL_ANNOTATION, "bert")],
            "metadata.annotations[computenet.io/steps]: computenet.io/model and computenet.io/steps go together",
        ),
        (&[(STEPS_ANNOTATION, "10")], "metadata.annotations[computenet.io/model]: "),
        (
            &[(STEPS_ANNOTATION, "0"), (MODEL_ANNOTATION, "bert")],
            "metadata.annotations[computenet.io/steps]: must be an integer from 1 to",
        ),
        (
            &[(MODEL_ANNOTATION, "bert"), (STEPS_ANNOTATION, "10"), (GPU_HOURS_ANNOTATION, "3")],
            "metadata.annotations[computenet.io/gpu-hours]: give either",
        ),
        (&[(BATCH_SIZE_ANNOTATION, "2.5")], "metadata.annotations[computenet.io/batch-size]: "),
        (
            &[(OBJECTIVE_ANNOTATION, "Quickest")],
            "metadata.annotations[computenet.io/objective]: must be Fastest, Cheapest, Greenest or Balanced",
        ),
        (
            &[(ON_MEMBER_LOSS_ANNOTATION, "Retry")],
            "metadata.annotations[computenet.io/on-member-loss]: must be Requeue or Wait",
        ),
        (
            &[(ACCELERATOR_TYPES_ANNOTATION, " , ")],
            "metadata.annotations[computenet.io/accelerator-types]: must be 1 to 16",
        ),
        (
            &[(REFERENCE_ACCELERATOR_ANNOTATION, "")],
            "metadata.annotations[computenet.io/reference-accelerator]: must be 1 to 63",
        ),
        (&[(DATA_SET_ANNOTATION, "")], "metadata.annotations[computenet.io/data-set]: "),
    ];
    for (annotations, expected) in cases {
        let e = shadow_with(annotations).unwrap_err().to_string();
        assert!(e.starts_with(expected), "{annotations:?}: {e}");
    }
    let sites = vec!["s"; 33].join(",");
    let many: Vec<String> = (0..33).map(|i| format!("s{i}")).collect();
    assert!(shadow_with(&[(SITES_ANNOTATION, &sites)]).is_ok(), "duplicates count once");
    let e = shadow_with(&[(SITES_ANNOTATION, &many.join(","))]).unwrap_err().to_string();
    assert!(e.starts_with("metadata.annotations[computenet.io/sites]: must be at most 32"), "{e}");
}

#[test]
fn queue_label_and_uid_are_required() {
    let (obj, groups) = jobset();
    let mut no_queue = obj.clone();
    no_queue["metadata"]["labels"].as_object_mut().unwrap().remove(QUEUE_LABEL);
    let e = shadow_spec(&JobSet, &no_queue, &groups, &canonical).unwrap_err().to_string();
    assert_eq!(e, "metadata.labels[computenet.io/queue-name]: must name the ComputeQueue (1 to 253 characters)");
    let mut long_queue = obj.clone();
    long_queue["metadata"]["labels"][QUEUE_LABEL] = json!("q".repeat(254));
    assert!(shadow_spec(&JobSet, &long_queue, &groups, &canonical).is_err());
    let mut no_uid = obj.clone();
    no_uid["metadata"].as_object_mut().unwrap().remove("uid");
    let e = shadow_spec(&JobSet, &no_uid, &groups, &canonical).unwrap_err().to_string();
    assert!(e.starts_with("metadata.uid: "), "{e}");
}

#[test]
fn shadow_of_a_cpu_only_gang_takes_every_group() {
    let (obj, _) = jobset();
    let group = |name: &str, count, cpu, memory| PodGroup {
        name: name.into(),
        count,
        cpu_millis: cpu,
        memory_bytes: memory,
        gpus: 0,
        node_selector: BTreeMap::new(),
    };
    let groups = [group("driver", 1, 4000, 1 << 30), group("executors", 6, 2000, 8 << 30), group("idle", 0, 64_000, 0)];
    let spec = shadow_spec(&JobSet, &obj, &groups, &canonical).unwrap();
    assert_eq!(spec.replicas, 7);
    assert_eq!((spec.resources.cpu.text().as_ref(), spec.resources.memory.text().as_ref()), ("4", "8Gi"));
    assert!(spec.resources.accelerators.is_none());
    let e = shadow_spec(&JobSet, &obj, &groups[2..], &canonical).unwrap_err().to_string();
    assert_eq!(e, "spec: the object runs no pods");
    let e = shadow_with(&[(ACCELERATOR_TYPES_ANNOTATION, "H100")]).map(|_| ());
    assert!(e.is_ok(), "GPU gang takes types");
    let mut annotated = obj.clone();
    annotated["metadata"]["annotations"][ACCELERATOR_TYPES_ANNOTATION] = json!("H100");
    let e = shadow_spec(&JobSet, &annotated, &groups, &canonical).unwrap_err().to_string();
    assert!(e.starts_with("metadata.annotations[computenet.io/accelerator-types]: the job's pods ask for no"), "{e}");
}

#[test]
fn shadow_checks_the_training_job_bounds() {
    let (obj, mut groups) = jobset();
    groups[1].gpus = 65;
    let e = shadow_spec(&JobSet, &obj, &groups, &canonical).unwrap_err().to_string();
    assert!(e.contains("at most 64 per pod"), "{e}");
    groups[1].gpus = 8;
    groups[1].count = 4097;
    let e = shadow_spec(&JobSet, &obj, &groups, &canonical).unwrap_err().to_string();
    assert!(e.contains("at most 4096"), "{e}");
    // The result passes what the core checks on a TrainingJob.
    let (obj, groups) = jobset();
    let spec = shadow_spec(&JobSet, &obj, &groups, &canonical).unwrap();
    let job = crate::convert::job("uid", &spec, 0).unwrap();
    // 24 CPUs per worker plus the launcher's 2 spread over the 4 workers.
    assert_eq!((job.replicas, job.per_replica.accelerators, job.per_replica.cpu_millis), (4, 8, 24_500));
}

#[test]
fn helper_pods_are_accounted_on_the_gpu_replicas() {
    let (obj, _) = jobset();
    let group = |name: &str, count, cpu, memory, gpus| PodGroup {
        name: name.into(),
        count,
        cpu_millis: cpu,
        memory_bytes: memory,
        gpus,
        node_selector: BTreeMap::new(),
    };
    // Four 8-GPU workers and 3000 CPU-only "launchers" of 64 CPUs and 1Gi each.
    let groups = [group("workers", 4, 16_000, 128 << 30, 8), group("launcher", 3000, 64_000, 1 << 30, 0)];
    let spec = shadow_spec(&JobSet, &obj, &groups, &canonical).unwrap();
    assert_eq!(spec.replicas, 4, "the gang is the GPU pods");
    assert_eq!(spec.resources.accelerators.as_ref().unwrap().count, 8);
    // 16 + 3000 * 64 / 4 CPUs; 128Gi + 3000Gi / 4.
    assert_eq!(spec.resources.cpu.text(), "48016");
    assert_eq!(spec.resources.memory.text(), "878Gi");
    // Rounded up: 1 helper of 1001m over 4 replicas adds 251m each.
    let groups = [group("workers", 4, 1000, 0, 1), group("helper", 1, 1001, 3, 0)];
    let spec = shadow_spec(&JobSet, &obj, &groups, &canonical).unwrap();
    assert_eq!((spec.resources.cpu.text().as_ref(), spec.resources.memory.text().as_ref()), ("1251m", "1"));
    // Saturating, never overflowing.
    let groups = [group("workers", 1, u64::MAX, u64::MAX, 1), group("helper", u32::MAX, u64::MAX, u64::MAX, 0)];
    let spec = shadow_spec(&JobSet, &obj, &groups, &canonical).unwrap();
    assert_eq!(spec.resources.cpu.text(), format_cpu_millis(u64::MAX));
}

#[test]
fn a_max_run_seconds_annotation_sets_no_limit() {
    let spec = shadow_with(&[("computenet.io/max-run-seconds", "60")]).unwrap();
    assert_eq!(spec.max_run_seconds, None);
    let spec = shadow_with(&[("computenet.io/max-run-seconds", "not a number")]).unwrap();
    assert_eq!(spec.max_run_seconds, None);
}

#[test]
fn shadow_spec_serialises_without_workload_and_with_source() {
    let (obj, groups) = jobset();
    let spec = shadow_spec(&JobSet, &obj, &groups, &canonical).unwrap();
    let v = serde_json::to_value(&spec).unwrap();
    assert!(v.get("workload").is_none());
    assert_eq!(v["source"]["kind"], "JobSet");
    assert_eq!(v["suspend"], false);
}

#[test]
fn suspended_reads_only_a_true_boolean() {
    for kind in all() {
        let mut obj = json!({});
        assert!(!kind.suspended(&obj));
        let patch = kind.suspend_patch(true);
        obj = patch.clone();
        assert!(kind.suspended(&obj), "{patch}");
        assert!(!kind.suspended(&kind.suspend_patch(false)));
        let mut text = patch;
        *text.pointer_mut(kind.suspend_pointer()).unwrap() = json!("true");
        assert!(!kind.suspended(&text));
    }
}

#[test]
fn member_copies_of_odd_objects_are_still_unsuspended_objects() {
    let labels = member_labels();
    for kind in all() {
        for obj in [json!(null), json!({"spec": 3}), json!({"metadata": {"name": 7, "labels": []}})] {
            let copy = kind.member_copy(&obj, &cx(&labels, None));
            assert!(copy.pointer(kind.suspend_pointer()) == Some(&json!(false)), "{copy}");
            assert_eq!(copy["metadata"]["namespace"], "cn-vision");
            assert_eq!(copy["kind"], kind.resource().kind);
        }
    }
}

/// JSON made of keys the kinds read, so that arbitrary values reach deep paths.
fn arbitrary_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        prop::sample::select(vec![
            "1",
            "8",
            "500m",
            "64Gi",
            "1e3",
            "1e-40",
            "9e30",
            "99999999999999999999",
            "-1",
            "",
            "True",
            "Always",
            "trainer",
            "node",
            "Master",
            "ClusterTrainingRuntime",
            "TrainingRuntime",
            "a,b",
            "x",
        ])
        .prop_map(|s| Value::String(s.to_string())),
    ];
    let keys = prop::sample::select(vec![
        "apiVersion",
        "kind",
        "metadata",
        "name",
        "namespace",
        "uid",
        "labels",
        "annotations",
        "spec",
        "status",
        "suspend",
        "managedBy",
        "replicatedJobs",
        "replicas",
        "template",
        "parallelism",
        "containers",
        "initContainers",
        "resources",
        "requests",
        "limits",
        "cpu",
        "memory",
        "nvidia.com/gpu",
        "overhead",
        "nodeSelector",
        "restartPolicy",
        "securityContext",
        "capabilities",
        "runPolicy",
        "pytorchReplicaSpecs",
        "Master",
        "Worker",
        "trainer",
        "numNodes",
        "resourcesPerNode",
        "runtimeRef",
        "mlPolicy",
        "conditions",
        "type",
        "status",
        "reason",
        "message",
        "jobsStatus",
        "replicatedJobsStatus",
        "active",
        "ready",
        "trainer.kubeflow.org/trainjob-ancestor-step",
        "computenet.io/queue-name",
        "computenet.io/priority",
        "nodeName",
        "hostNetwork",
        "hostPID",
        "volumes",
        "hostPath",
        "privileged",
        "add",
        "resourceClaims",
        "amd.com/gpu",
        "elasticPolicy",
        "ttlSecondsAfterFinished",
        "podSpecOverrides",
        "serviceAccountName",
        "priorityClassName",
    ]);
    leaf.prop_recursive(6, 96, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(keys.clone(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect())),
        ]
    })
}

/// The JSON pointers of every node below the root of `v`.
fn pointers(v: &Value) -> Vec<String> {
    fn walk(v: &Value, at: String, out: &mut Vec<String>) {
        let children: Vec<(String, &Value)> = match v {
            Value::Object(m) => m.iter().map(|(k, v)| (k.replace('~', "~0").replace('/', "~1"), v)).collect(),
            Value::Array(a) => a.iter().enumerate().map(|(i, v)| (i.to_string(), v)).collect(),
            _ => Vec::new(),
        };
        for (key, child) in children {
            let path = format!("{at}/{key}");
            out.push(path.clone());
            walk(child, path, out);
        }
    }
    let mut out = Vec::new();
    walk(v, String::new(), &mut out);
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn nothing_panics_on_arbitrary_json(obj in arbitrary_json(), rt in arbitrary_json()) {
        let labels = member_labels();
        for kind in all() {
            let found = |_: &str, _: Option<&str>, _: &str| Some(rt.clone());
            for lookup in [&found as &dyn Fn(&str, Option<&str>, &str) -> Option<Value>, &no_runtime] {
                if let Ok(groups) = kind.gang(&obj, lookup) {
                    let pods: u64 = groups.iter().map(|g| u64::from(g.count)).sum();
                    prop_assert!(pods <= MAX_GANG_PODS && groups.len() <= MAX_GANG_GROUPS);
                    if let Ok(spec) = shadow_spec(kind, &obj, &groups, &canonical) {
                        prop_assert!((1..=4096).contains(&spec.replicas));
                        prop_assert!(spec.resources.accelerators.as_ref().is_none_or(|a| (1..=64).contains(&a.count)));
                    }
                }
            }
            let copy = kind.member_copy(&obj, &cx(&labels, Some("NVIDIA-H100-80GB-HBM3")));
            prop_assert!(!kind.suspended(&copy));
            prop_assert!(copy.get("status").is_none());
            let _ = kind.state(&obj);
            let _ = kind.suspended(&obj);
        }
    }

    #[test]
    fn nothing_panics_on_fixtures_with_one_value_replaced(
        which in 0..4usize, at in any::<prop::sample::Index>(), value in arbitrary_json(),
    ) {
        let (kind, name): (&dyn JobKind, &str) =
            [(&JobSet as &dyn JobKind, "jobset.yaml"), (&TrainJob, "trainjob.yaml"), (&TrainJob, "trainjob-runtime.yaml"),
             (&PyTorchJob, "pytorchjob.yaml")][which];
        let mut obj = load(name);
        let mut rt = load("clustertrainingruntime.yaml");
        // Replace one node of the object, or of the runtime it uses.
        let target = if at.index(2) == 0 { &mut obj } else { &mut rt };
        let paths = pointers(target);
        *target.pointer_mut(&paths[at.index(paths.len())]).unwrap() = value;
        let found = |_: &str, _: Option<&str>, _: &str| Some(rt.clone());
        if let Ok(groups) = kind.gang(&obj, &found) {
            let _ = shadow_spec(kind, &obj, &groups, &canonical);
        }
        let labels = member_labels();
        let copy = kind.member_copy(&obj, &cx(&labels, Some("NVIDIA-H100-80GB-HBM3")));
        prop_assert!(!kind.suspended(&copy));
        let _ = kind.state(&obj);
    }

    #[test]
    fn shadow_spec_never_panics_on_arbitrary_groups(
        counts in prop::collection::vec((any::<u32>(), any::<u64>(), any::<u64>(), any::<u32>()), 0..8),
    ) {
        let (obj, _) = jobset();
        let groups: Vec<PodGroup> = counts
            .into_iter()
            .map(|(count, cpu_millis, memory_bytes, gpus)| PodGroup {
                name: "g".into(), count, cpu_millis, memory_bytes, gpus, node_selector: BTreeMap::new(),
            })
            .collect();
        if let Ok(spec) = shadow_spec(&JobSet, &obj, &groups, &canonical) {
            prop_assert!((1..=4096).contains(&spec.replicas));
        }
    }

    #[test]
    fn shadow_names_are_valid_and_bounded(kind in "[A-Za-z]{1,12}", name in "[a-z0-9]([a-z0-9.-]{0,300}[a-z0-9])?") {
        let n = shadow_name(&kind, &name);
        prop_assert!(n.len() <= MAX_NAME_LEN);
        prop_assert!(n.starts_with(&kind.to_ascii_lowercase()));
        prop_assert!(n.ends_with(|c: char| c.is_ascii_alphanumeric()));
    }
}

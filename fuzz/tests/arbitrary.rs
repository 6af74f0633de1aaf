//! Property tests over arbitrary and structured input, on stable: the same target bodies as
//! the fuzzer, fed by proptest. Structured strategies reach what random bytes rarely do
//! (well-formed JSON objects with extreme numbers, quantity and host-list grammars).

use computenet_fuzz::{crd, gres, hostlist, quantity, slurmrestd, watch, TARGETS};
use computenet_members::slurm::convert::{expand_hostlist, MAX_HOSTS};
use proptest::prelude::*;
use serde_json::{json, Value};

/// A JSON number at the edges: huge, negative, fractional, or a numeric string.
fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<u64>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("JSON has no NaN or infinity", |f| f.is_finite()).prop_map(Value::from),
        Just(json!(1e300)),
        Just(json!(-1e300)),
        "[0-9]{1,25}".prop_map(Value::from),
        Just(json!({"set": true, "infinite": false, "number": 4_294_967_295u64})),
        Just(json!({"set": false, "number": 0})),
        Just(Value::Null),
    ]
}

fn quantity_text() -> impl Strategy<Value = String> {
    "[ +-]?[0-9]{0,25}(\\.[0-9]{0,14})?(e[0-9]{1,3})?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?"
}

fn quantity_value() -> impl Strategy<Value = Value> {
    prop_oneof![quantity_text().prop_map(Value::from), number()]
}

fn training_job() -> impl Strategy<Value = Value> {
    (
        (number(), quantity_value(), quantity_value(), number(), number(), number()),
        (number(), number(), number(), number(), number(), any::<bool>()),
    )
        .prop_map(|((replicas, cpu, memory, count, min_mem, priority), (hours, steps, batch, runtime, gpus, admitted))| {
            let work = if admitted { json!({"gpuHours": hours}) } else { json!({"model": "bert", "steps": steps, "batchSize": batch}) };
            json!({
                "apiVersion": "computenet.io/v1alpha1", "kind": "TrainingJob",
                "metadata": {"name": "j", "namespace": "team-a", "uid": "u-1", "creationTimestamp": "2026-01-01T00:00:00Z"},
                "spec": {
                    "queueName": "research", "priority": priority, "replicas": replicas,
                    "resources": {"cpu": cpu, "memory": memory, "accelerators": {"count": count, "types": ["H800"], "minMemoryGiB": min_mem}},
                    "workload": {"image": "example/bert:1.0"},
                    "work": work, "maxRunSeconds": runtime
                },
                "status": {"phase": "Running", "admitted": admitted, "startTime": "2026-01-01T00:00:00Z",
                    "placement": {"cluster": "ai-1", "accelerator": "H800", "gpus": gpus, "nodes": [{"node": "ai-1/0-0", "replicas": replicas}],
                        "estimatedRuntimeSeconds": runtime, "estimatedEnergyKWh": 0.0, "estimatedCost": 0.0}}
            })
        })
}

fn compute_queue() -> impl Strategy<Value = Value> {
    proptest::collection::vec(
        (prop_oneof![Just("nvidia.com/gpu"), Just("cpu"), Just("memory"), Just("x/y")], quantity_value()),
        0..4,
    )
    .prop_map(|quotas| {
        let quotas: Vec<Value> =
            quotas.into_iter().map(|(r, n)| json!({"resource": r, "nominal": n, "accelerator": "H800"})).collect();
        json!({"apiVersion": "computenet.io/v1alpha1", "kind": "ComputeQueue", "metadata": {"name": "research"},
                "spec": {"namespaceSelector": {}, "quotas": quotas}})
    })
}

fn member_cluster() -> impl Strategy<Value = Value> {
    (proptest::collection::vec((number(), number(), number(), number()), 0..4), number(), number()).prop_map(
        |(groups, tflops, power)| {
            let groups: Vec<Value> = groups
                .into_iter()
                .map(|(c, a, f, m)| {
                    json!({"accelerator": "H800", "count": c, "accelerators": a, "freeAccelerators": f,
                    "cpuMillis": m, "freeCpuMillis": m, "memoryBytes": m, "freeMemoryBytes": 0})
                })
                .collect();
            json!({"apiVersion": "computenet.io/v1alpha1", "kind": "MemberCluster", "metadata": {"name": "ai-1"},
                "spec": {"kind": "AI", "site": "north", "efficiency": {"pue": 1.2,
                    "accelerators": {"H800": {"peakTflops": tflops, "boardPowerW": power, "memoryGiB": 80}}}},
                "status": {"freeNodes": groups, "conditions": []}})
        },
    )
}

fn slurm_node() -> impl Strategy<Value = Value> {
    (number(), number(), number(), number(), "[a-z0-9:(),=/ -]{0,30}", "[a-z0-9:(),=/ -]{0,30}").prop_map(
        |(cpus, alloc, mem, alloc_mem, gres, used)| {
            json!({"name": "n1", "state": ["IDLE", "DRAIN"], "cpus": cpus, "alloc_cpus": alloc, "real_memory": mem,
                "alloc_memory": alloc_mem, "gres": gres, "gres_used": used, "partitions": ["gpu"]})
        },
    )
}

fn slurm_job() -> impl Strategy<Value = Value> {
    (number(), number(), "[A-Z_]{0,12}", "[a-z0-9\\[\\],-]{0,24}").prop_map(|(id, exit, state, nodes)| {
        json!({"job_id": id, "job_state": [state], "exit_code": exit, "nodes": nodes, "submit_time": id})
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_pass_every_target(data in proptest::collection::vec(any::<u8>(), 0..256)) {
        for (_, target) in TARGETS {
            target(&data);
        }
    }

    #[test]
    fn quantity_grammar(q in quantity_text()) {
        quantity(q.as_bytes());
    }

    #[test]
    fn hub_objects_with_extreme_numbers(items in (training_job(), compute_queue(), member_cluster())) {
        let (j, q, m) = items;
        crd(&serde_json::to_vec(&json!([j, q, m])).unwrap());
    }

    #[test]
    fn watched_objects_with_managed_fields_of_any_shape(
        job in training_job(),
        fields in proptest::collection::vec(("[a-z:\\[\\]{}\"\\\\]{0,10}", number()), 0..4),
        shape in 0..4u8,
    ) {
        let mut job = job;
        let entries: Vec<Value> =
            fields.iter().map(|(k, v)| json!({"manager": k, "fieldsV1": {k: {"f:x": v}}})).collect();
        job["metadata"]["managedFields"] = match shape {
            0 => json!(entries),
            1 => Value::Null,
            2 => json!(fields.first().map(|f| f.0.clone())),
            _ => json!({"managedFields": entries}),
        };
        job["metadata"]["annotations"] = json!({"managedFields": fields.first().map(|f| f.0.clone()).unwrap_or_default()});
        watch(&serde_json::to_vec(&job).unwrap());
        watch(serde_json::to_string_pretty(&job).unwrap().as_bytes());
    }

    #[test]
    fn slurmrestd_replies_with_extreme_numbers(
        nodes in proptest::collection::vec(slurm_node(), 0..4),
        jobs in proptest::collection::vec(slurm_job(), 0..4),
        job_id in number(),
    ) {
        slurmrestd(&serde_json::to_vec(&json!({"nodes": nodes})).unwrap());
        slurmrestd(&serde_json::to_vec(&json!({"jobs": jobs})).unwrap());
        slurmrestd(&serde_json::to_vec(&json!({"job_id": job_id, "errors": []})).unwrap());
    }

    #[test]
    fn host_list_grammar(list in "([a-z]{0,3}(\\[[0-9]{1,3}(-[0-9]{1,6})?(,[0-9]{1,3}(-[0-9]{1,6})?){0,3}\\])?[a-z]{0,2},?){1,5}") {
        hostlist(list.as_bytes());
    }

    #[test]
    fn host_ranges_expand_in_order_with_their_padding(prefix in "[a-z]{1,4}", lo in 0u64..1000, len in 0u64..50, width in 1usize..5) {
        let hi = lo + len;
        let hosts = expand_hostlist(&format!("{prefix}[{lo:0width$}-{hi}]")).expect("a small list");
        let expected: Vec<String> = (lo..=hi).map(|n| format!("{prefix}{n:0width$}")).collect();
        prop_assert_eq!(hosts, expected);
    }

    #[test]
    fn gres_grammar(text in "((gpu|mps|shard)(:[a-z0-9]{1,5})?(:[0-9]{1,11})?(\\((S|IDX):[0-9N/A,-]{0,8}\\))?,?){0,4}") {
        gres(text.as_bytes());
    }
}

#[test]
fn host_lists_are_capped_in_total() {
    let list = ["n[0-99999]"; 5].join(",");
    assert!(expand_hostlist(&list).is_err(), "five full ranges are refused as a whole");
    let plain = vec!["n"; MAX_HOSTS + 10].join(",");
    assert!(expand_hostlist(&plain).is_err());
    let plain = vec!["n"; MAX_HOSTS].join(",");
    assert_eq!(expand_hostlist(&plain).expect("at the cap").len(), MAX_HOSTS);
}

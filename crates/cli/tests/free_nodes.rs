//! The node summary in MemberCluster status gives `dry-run` the same gang fits as the
//! member's nodes: exactly while the shapes fit in the summary, never more once it rounds.

use computenet_api::conditions::{reasons, types};
use computenet_api::convert::{cluster_from_status, free_node_groups};
use computenet_api::member_cluster::MAX_FREE_NODE_GROUPS;
use computenet_api::{MemberCluster, MemberClusterStatus};
use computenet_core::index::ClusterIndex;
use computenet_core::{Cluster, ClusterEfficiency, ClusterKind, Node, NodeCapacity, ReplicaRequest};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use proptest::prelude::*;
use std::collections::BTreeMap;

const TYPES: [&str; 3] = ["A100-80G", "H800", "V100"];
const GI: u64 = 1 << 30;

/// (type or CPU-only, devices, cores, GiB, used devices, used cores, used GiB, schedulable)
type NodeShape = (Option<usize>, u32, u64, u64, u32, u64, u64, bool);

fn node_shape(coarse: bool) -> impl Strategy<Value = NodeShape> {
    // Few distinct values keep the summary exact; many force rounding.
    let cores = if coarse { (1u64..256).boxed() } else { prop_oneof![Just(32u64), Just(64)].boxed() };
    let gib = if coarse { (1u64..2048).boxed() } else { prop_oneof![Just(256u64), Just(512)].boxed() };
    (
        prop::option::weighted(0.8, 0..TYPES.len()),
        prop_oneof![Just(4u32), Just(8)],
        cores,
        gib,
        0u32..=8,
        0u64..=256,
        0u64..=2048,
        prop::bool::weighted(0.95),
    )
}

fn cluster(shapes: &[NodeShape]) -> Cluster {
    let nodes = shapes
        .iter()
        .enumerate()
        .map(|(i, &(t, devices, cores, gib, used_devices, used_cores, used_gib, schedulable))| {
            let devices = if t.is_some() { devices } else { 0 };
            Node {
                name: format!("n{i}"),
                accelerator: t.map(|t| TYPES[t].to_string()),
                allocatable: NodeCapacity {
                    cpu_millis: cores * 1000,
                    memory_bytes: gib * GI,
                    accelerators: devices,
                    extended: BTreeMap::new(),
                },
                allocated: NodeCapacity {
                    cpu_millis: used_cores.min(cores) * 1000,
                    memory_bytes: used_gib.min(gib) * GI,
                    accelerators: used_devices.min(devices),
                    extended: BTreeMap::new(),
                },
                topology_domain: String::new(),
                unschedulable: !schedulable,
            }
        })
        .collect();
    Cluster {
        workload_kinds: Vec::new(),
        tenants: None,
        name: "m".into(),
        kind: ClusterKind::AI,
        site: "west".into(),
        ready: true,
        cordoned: false,
        efficiency: ClusterEfficiency::default(),
        data_sets: Vec::new(),
        nodes,
    }
}

fn member_of(c: &Cluster) -> MemberCluster {
    let mut m = MemberCluster::new(
        &c.name,
        serde_yaml::from_str(
            "kind: AI\nsite: west\nkubernetes: {kubeconfigSecretRef: {name: s, namespace: n, key: k}}",
        )
        .expect("spec"),
    );
    m.status = Some(MemberClusterStatus {
        free_nodes: free_node_groups(c),
        conditions: vec![Condition {
            type_: types::READY.into(),
            status: "True".into(),
            reason: reasons::REACHABLE.into(),
            message: String::new(),
            last_transition_time: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
            observed_generation: None,
        }],
        ..MemberClusterStatus::default()
    });
    m
}

/// Per accelerator type (None: CPU-only): the gang fits, or how many replicas do.
fn fit(c: &Cluster, t: Option<&str>, request: &ReplicaRequest, replicas: u32) -> Result<(), u32> {
    let index = ClusterIndex::new(c);
    match index.groups().iter().position(|g| g.accelerator.as_deref() == t) {
        Some(g) => index.find_slots(g, request, replicas, None).map(|_| ()),
        None => Err(0),
    }
}

fn requests() -> Vec<(Option<&'static str>, ReplicaRequest, u32)> {
    let mut out = Vec::new();
    for t in [Some("A100-80G"), Some("H800"), Some("V100"), None] {
        for (devices, cores, gib) in [(1u32, 1u64, 1u64), (4, 16, 128), (8, 32, 256), (2, 100, 900)] {
            let devices = if t.is_some() { devices } else { 0 };
            for replicas in [1, 3, 8, 40] {
                out.push((
                    t,
                    ReplicaRequest {
                        cpu_millis: cores * 1000,
                        memory_bytes: gib * GI,
                        accelerators: devices,
                        extended: BTreeMap::new(),
                    },
                    replicas,
                ));
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn few_shapes_round_trip_exactly(shapes in prop::collection::vec(node_shape(false), 1..60)) {
        let original = cluster(&shapes);
        let rebuilt = cluster_from_status(&member_of(&original)).expect("status");
        for (t, request, replicas) in requests() {
            // Whether it fits; the count in a miss is an index bound, which can differ.
            prop_assert_eq!(fit(&rebuilt, t, &request, replicas).is_ok(), fit(&original, t, &request, replicas).is_ok(), "{:?} x {:?} on {:?}", replicas, request, t);
        }
    }

    #[test]
    fn many_shapes_stay_bounded_and_never_fit_more(shapes in prop::collection::vec(node_shape(true), 1..400)) {
        let original = cluster(&shapes);
        let member = member_of(&original);
        let groups = &member.status.as_ref().expect("status").free_nodes;
        prop_assert!(groups.len() <= MAX_FREE_NODE_GROUPS);
        let rebuilt = cluster_from_status(&member).expect("status");
        for (t, request, replicas) in requests() {
            let (before, after) = (fit(&original, t, &request, replicas), fit(&rebuilt, t, &request, replicas));
            prop_assert!(before.is_ok() || after.is_err(), "{:?} x {:?} on {:?} fits only after the round trip", replicas, request, t);
        }
    }
}

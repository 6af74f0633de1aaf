//! The committed CRD YAML is exactly what the types generate, and the schema keeps the
//! validations the API promises.

use computenet_api::crdgen::{crd_files, crds};
use std::path::Path;

#[test]
fn committed_crds_match_the_types() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    for dir in ["deploy/crds", "charts/computenet/crds"] {
        for (name, yaml) in crd_files().expect("renders") {
            let path = root.join(dir).join(&name);
            let committed = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(committed == yaml, "{} is stale: run `cargo run -p computenet -- crdgen`", path.display());
        }
    }
}

fn schema_of(kind: &str) -> serde_json::Value {
    let crd = crds().into_iter().find(|c| c.spec.names.kind == kind).expect("crd");
    serde_json::to_value(&crd.spec.versions[0].schema).expect("json")["openAPIV3Schema"].clone()
}

#[test]
fn schema_keeps_its_validations() {
    let tj = schema_of("TrainingJob");
    let spec = &tj["properties"]["spec"];
    assert_eq!(spec["properties"]["replicas"]["minimum"].as_f64(), Some(1.0));
    let required: Vec<&str> =
        spec["required"].as_array().expect("required").iter().filter_map(|v| v.as_str()).collect();
    for field in ["queueName", "replicas", "resources"] {
        assert!(required.contains(&field), "{field} must be required");
    }
    // A workload, unless the TrainingJob queues another kind's object (spec.source).
    let spec_rules = serde_json::to_string(&spec["x-kubernetes-validations"]).expect("json");
    assert!(spec_rules.contains("has(self.workload) != has(self.source)"), "{spec_rules}");
    assert_eq!(
        spec["properties"]["placement"]["properties"]["objective"]["enum"],
        serde_json::json!(["Fastest", "Cheapest", "Greenest", "Balanced"])
    );
    let rules = serde_json::to_string(&tj["x-kubernetes-validations"]).expect("json");
    assert!(rules.contains("spec is frozen once the job is admitted"), "{rules}");
    for field in ["elastic", "checkpoint"] {
        assert!(rules.contains(&format!("self.spec.{field} == oldSelf.spec.{field}")), "{field} frozen too: {rules}");
    }
    let spec_rules = serde_json::to_string(&spec["x-kubernetes-validations"]).expect("json");
    assert!(spec_rules.contains("spec.replicas must lie within spec.elastic"), "{spec_rules}");
    let elastic = &spec["properties"]["elastic"];
    assert!(serde_json::to_string(&elastic["x-kubernetes-validations"]).expect("json").contains("at most"));
    assert_eq!(elastic["properties"]["maxReplicas"]["maximum"].as_f64(), Some(4096.0));
    let checkpoint = &spec["properties"]["checkpoint"]["properties"];
    assert_eq!(
        (
            &checkpoint["restartable"]["default"],
            &checkpoint["gracePeriodSeconds"]["default"],
            &checkpoint["restartCostSeconds"]["default"]
        ),
        (&serde_json::json!(false), &serde_json::json!(30), &serde_json::json!(60))
    );
    let status = &tj["properties"]["status"]["properties"];
    assert_eq!(status["attempts"]["maxItems"].as_u64(), Some(computenet_api::training_job::MAX_ATTEMPTS_KEPT as u64));
    assert_eq!(status["progress"]["properties"]["source"]["enum"], serde_json::json!(["Estimated", "Measured"]));
    let mcl = schema_of("MemberCluster");
    let rules = serde_json::to_string(&mcl["properties"]["spec"]["x-kubernetes-validations"]).expect("json");
    assert!(rules.contains("exactly one connection"), "{rules}");
    assert_eq!(mcl["properties"]["spec"]["properties"]["kind"]["enum"], serde_json::json!(["General", "AI", "HPC"]));
}

#[test]
fn names_scope_and_columns() {
    let all = crds();
    let by_kind = |k: &str| all.iter().find(|c| c.spec.names.kind == k).expect("crd");
    let tj = by_kind("TrainingJob");
    assert_eq!(tj.spec.scope, "Namespaced");
    assert_eq!(tj.spec.names.short_names.as_deref(), Some(&["tj".to_string()][..]));
    assert_eq!(tj.spec.names.categories.as_deref(), Some(&["computenet".to_string()][..]));
    let columns: Vec<String> =
        tj.spec.versions[0].additional_printer_columns.iter().flatten().map(|c| c.name.to_uppercase()).collect();
    assert_eq!(columns, ["QUEUE", "PHASE", "POSITION", "CLUSTER", "ACCELERATOR", "REPLICAS", "GPUS", "AGE"]);
    assert_eq!(by_kind("MemberCluster").spec.scope, "Cluster");
    assert_eq!(by_kind("MemberCluster").spec.names.short_names.as_deref(), Some(&["mcl".to_string()][..]));
    assert_eq!(by_kind("ComputeQueue").spec.scope, "Cluster");
    assert_eq!(by_kind("ComputeQueue").spec.names.short_names.as_deref(), Some(&["cnq".to_string()][..]));
    // Every CRD but the usage store has a status: a ComputeUsage is all record, written whole.
    assert!(
        all.iter().filter(|c| c.spec.names.kind != "ComputeUsage").all(|c| c.spec.versions[0]
            .subresources
            .as_ref()
            .and_then(|s| s.status.as_ref())
            .is_some()),
        "status subresource"
    );
    let cnu = by_kind("ComputeUsage");
    assert_eq!(cnu.spec.scope, "Cluster");
    assert_eq!(cnu.spec.names.short_names.as_deref(), Some(&["cnu".to_string()][..]));
    let columns: Vec<String> =
        cnu.spec.versions[0].additional_printer_columns.iter().flatten().map(|c| c.name.to_uppercase()).collect();
    assert_eq!(columns, ["QUEUE", "DAY", "GPU-HOURS", "KWH", "COST", "ATTEMPTS", "AGE"]);
}

#[test]
fn cohort_names_columns_and_limits() {
    let all = crds();
    let cnc = all.iter().find(|c| c.spec.names.kind == "ComputeCohort").expect("crd");
    assert_eq!(cnc.spec.scope, "Cluster");
    assert_eq!(cnc.spec.names.short_names.as_deref(), Some(&["cnc".to_string()][..]));
    assert_eq!(cnc.spec.names.categories.as_deref(), Some(&["computenet".to_string()][..]));
    let columns: Vec<String> =
        cnc.spec.versions[0].additional_printer_columns.iter().flatten().map(|c| c.name.to_uppercase()).collect();
    assert_eq!(columns, ["PARENT", "GPU USAGE/QUOTA", "BUDGET", "AGE"]);
    assert!(cnc.spec.versions[0].subresources.as_ref().and_then(|s| s.status.as_ref()).is_some(), "status subresource");
    let spec = &schema_of("ComputeCohort")["properties"]["spec"]["properties"];
    assert_eq!((spec["parent"]["minLength"].as_u64(), spec["parent"]["maxLength"].as_u64()), (Some(1), Some(63)));
    assert_eq!(spec["quotas"]["maxItems"].as_u64(), Some(32));
}

//! Fixtures and checks the kinds' tests share.

use super::CopyContext;
use serde_json::Value;
use std::collections::BTreeMap;

/// A fixture of `tests/fixtures/kinds/` as JSON.
pub fn load(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/kinds/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A runtime lookup that finds nothing.
pub fn no_runtime(_: &str, _: Option<&str>, _: &str) -> Option<Value> {
    None
}

/// Catalogue names of the products the fixtures use.
pub fn canonical(product: &str) -> String {
    match product {
        "NVIDIA-H100-80GB-HBM3" => "H100".into(),
        "NVIDIA-A100-SXM4-80GB" => "A100-80G".into(),
        other => other.into(),
    }
}

/// The labels a member copy gets in the tests.
pub fn member_labels() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("computenet.io/managed".to_string(), "true".to_string()),
        ("computenet.io/job-uid".to_string(), "shadow-uid".to_string()),
    ])
}

pub fn cx<'a>(labels: &'a BTreeMap<String, String>, gpu_product: Option<&'a str>) -> CopyContext<'a> {
    CopyContext { namespace: "cn-vision", labels, gpu_product }
}

/// What every member copy of a fixture must look like at the top: same name, member
/// namespace, computenet's labels instead of the queue label, no last-applied annotation,
/// no server-set metadata and no status.
pub fn assert_common_copy(copy: &Value, name: &str) {
    let meta = &copy["metadata"];
    assert_eq!(meta["name"], name);
    assert_eq!(meta["namespace"], "cn-vision");
    assert_eq!(meta["labels"]["computenet.io/managed"], "true");
    assert_eq!(meta["labels"]["team"], "vision", "the user's labels stay");
    assert!(meta["labels"].get(super::QUEUE_LABEL).is_none(), "{meta}");
    assert!(meta["annotations"].get(super::LAST_APPLIED_ANNOTATION).is_none(), "{meta}");
    assert_eq!(meta["annotations"]["computenet.io/priority"], "100");
    for server_set in ["uid", "resourceVersion", "generation", "creationTimestamp", "managedFields", "ownerReferences"]
    {
        assert!(meta.get(server_set).is_none(), "{server_set} copied: {meta}");
    }
    assert!(copy.get("status").is_none());
    let keys: Vec<&String> = copy.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 4, "{keys:?}");
}

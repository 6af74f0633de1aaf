//! STUB (replaced by the real module on merge).
#![allow(missing_docs, dead_code, unused_variables)]
use crate::training_job::TrainingJobSpec;
use serde_json::Value;
use std::collections::BTreeMap;

pub const QUEUE_LABEL: &str = "computenet.io/queue-name";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KindResource {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
}
impl KindResource {
    pub fn api_version(&self) -> String {
        format!("{}/{}", self.group, self.version)
    }
}
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodGroup {
    pub name: String,
    pub count: u32,
    pub cpu_millis: u64,
    pub memory_bytes: u64,
    pub gpus: u32,
    pub node_selector: BTreeMap<String, String>,
}
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KindState {
    Pending,
    Running,
    Succeeded,
    Failed { reason: String, message: String },
}
pub struct CopyContext<'a> {
    pub namespace: &'a str,
    pub labels: &'a BTreeMap<String, String>,
    pub gpu_product: Option<&'a str>,
}
#[derive(Debug, Clone)]
pub struct KindError(pub String);
impl std::fmt::Display for KindError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
pub trait JobKind: Send + Sync + std::fmt::Debug {
    fn resource(&self) -> KindResource;
    fn suspend_pointer(&self) -> &'static str;
    fn suspended(&self, obj: &Value) -> bool {
        obj.pointer(self.suspend_pointer()).and_then(Value::as_bool).unwrap_or(false)
    }
    fn suspend_patch(&self, suspend: bool) -> Value {
        serde_json::json!({})
    }
    fn gang(&self, obj: &Value, runtime: &dyn Fn(&str, Option<&str>, &str) -> Option<Value>) -> Result<Vec<PodGroup>, KindError>;
    fn member_copy(&self, obj: &Value, cx: &CopyContext<'_>) -> Value;
    fn state(&self, obj: &Value) -> KindState;
    fn pod_label(&self, name: &str) -> (&'static str, String);
}
pub fn all() -> [&'static dyn JobKind; 3] {
    todo!()
}
pub fn by_kind(kind: &str) -> Option<&'static dyn JobKind> {
    todo!()
}
pub fn by_group_kind(group: &str, kind: &str) -> Option<&'static dyn JobKind> {
    todo!()
}
pub fn shadow_name(kind: &str, name: &str) -> String {
    todo!()
}
pub fn shadow_spec(
    kind: &dyn JobKind,
    obj: &Value,
    groups: &[PodGroup],
    canonical_type: &dyn Fn(&str) -> String,
) -> Result<TrainingJobSpec, KindError> {
    todo!()
}

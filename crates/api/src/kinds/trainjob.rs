//! TrainJob of Kubeflow Trainer v2 (`trainer.kubeflow.org/v1alpha1`, checked against v2.0.0).
//!
//! Reads `spec.suspend`, `spec.runtimeRef.{name, kind, apiGroup}`, `spec.trainer.{numNodes,
//! resourcesPerNode}`, `status.conditions` and `status.jobsStatus[].active`; from the
//! referenced (Cluster)TrainingRuntime, which must be in the hub, `spec.mlPolicy.numNodes`
//! and the trainer step's replicated job in `spec.template.spec.replicatedJobs`.
//!
//! A TrainJob holds no pod template: Trainer builds a JobSet from the runtime. Trainer
//! v2.0.0 offers `spec.labels` / `spec.annotations` (put on the JobSet object only, not on
//! pods) and `spec.podSpecOverrides` (per replicated job of the runtime, named in
//! `targetJobs`: nodeSelector, tolerations, schedulingGates, volumes, serviceAccountName and
//! containers' env and volumeMounts; no pod labels, no securityContext). So a member copy
//! leaves the pods alone: no labels, GPU product selector or Pod Security defaults on them;
//! what the pods get comes from the member's runtime. The overrides are the tenant's part
//! of the pods: `gang` refuses a `hostPath` volume in them, and a member copy drops their
//! `serviceAccountName` and sets a GPU product they select to the chosen one.

use super::{
    check_gang, check_isolation, copy_base, count_or, pod_group, requirements, true_condition, CopyContext, JobKind,
    KindError, KindResource, KindState, PodGroup, ResourceOverride, RuntimeLookup, DROPPED_POD_FIELDS,
    GPU_PRODUCT_LABEL,
};
use crate::error::Error;
use serde_json::Value;

/// The TrainJob kind.
#[derive(Debug, Clone, Copy, Default)]
pub struct TrainJob;

/// The API group of Trainer and its runtimes.
pub const TRAINER_GROUP: &str = "trainer.kubeflow.org";
/// The namespaced runtime kind.
pub const TRAINING_RUNTIME: &str = "TrainingRuntime";
/// The cluster-scoped runtime kind (the default of `spec.runtimeRef.kind`).
pub const CLUSTER_TRAINING_RUNTIME: &str = "ClusterTrainingRuntime";
/// The label that marks a runtime's replicated jobs by step; the trainer step has the value `trainer`.
pub const ANCESTOR_LABEL: &str = "trainer.kubeflow.org/trainjob-ancestor-step";
/// The trainer step's container (and usual replicated job) name, which `resourcesPerNode` applies to.
pub const NODE: &str = "node";

impl JobKind for TrainJob {
    fn resource(&self) -> KindResource {
        KindResource { group: TRAINER_GROUP, version: "v1alpha1", kind: "TrainJob", plural: "trainjobs" }
    }

    fn suspend_pointer(&self) -> &'static str {
        "/spec/suspend"
    }

    /// The trainer step first, then the runtime's other replicated jobs (dataset and model
    /// initializers, an MPI launcher), read as a JobSet's: they run before or beside it,
    /// and are accounted as helper pods (see `shadow_spec`).
    ///
    /// Pods: `spec.trainer.numNodes`, else the runtime's `spec.mlPolicy.numNodes`, else 1
    /// when the runtime has an mlPolicy, else the step's `parallelism` (default 1), as
    /// Trainer counts them. Per pod: the trainer step's pod template with the `node`
    /// container's resources replaced by `spec.trainer.resourcesPerNode` (when it has
    /// requests or limits). The runtime (`spec.runtimeRef`, kind ClusterTrainingRuntime by
    /// default; a TrainingRuntime in the TrainJob's namespace) must be found, even when
    /// numNodes and resourcesPerNode are given: its pod template is what runs, and is
    /// checked like any pod template (see the [module documentation](super)); when it is not
    /// found, the error names the runtime.
    ///
    /// Not modelled: MPI runtimes with `runLauncherAsNode` (Trainer then runs numNodes - 1
    /// node pods beside the launcher) and torch elastic policies.
    fn gang(&self, obj: &Value, runtime: RuntimeLookup<'_>) -> Result<Vec<PodGroup>, KindError> {
        let num_nodes = match obj.pointer("/spec/trainer/numNodes") {
            None | Some(Value::Null) => None,
            Some(v) => Some(count_or(Some(v), 1, "spec.trainer.numNodes")?),
        };
        let per_node = obj
            .pointer("/spec/trainer/resourcesPerNode")
            .filter(|r| ["requests", "limits"].iter().any(|k| r.get(*k).is_some_and(|v| !v.is_null())));
        if let Some(resources) = per_node {
            // Read even when the runtime has no `node` container for it to replace.
            requirements(Some(resources), "spec.trainer.resourcesPerNode")?;
        }
        check_overrides(obj)?;
        let (kind, namespace, name) = runtime_ref(obj)?;
        // Always needed, even with numNodes and resourcesPerNode: the pods are the runtime's,
        // and the hub must see what they are before computenet accounts and copies them.
        let Some(rt) = runtime(kind, namespace, name) else {
            return Err(Error::RuntimeNotFound {
                kind: kind.to_string(),
                namespace: namespace.map(str::to_string),
                name: name.to_string(),
                needed: "the pods it runs (the runtime's trainer pod template is checked and accounted)".to_string(),
            });
        };
        let rt_name = format!("{kind} {name}");
        let jobs_field = format!("{rt_name}: spec.template.spec.replicatedJobs");
        let jobs = rt
            .pointer("/spec/template/spec/replicatedJobs")
            .and_then(Value::as_array)
            .ok_or_else(|| Error::field(&jobs_field, "must be a list of replicated jobs"))?;
        let is_step = |j: &&Value| {
            j.pointer("/template/metadata/labels").and_then(|l| l.get(ANCESTOR_LABEL)) == Some(&"trainer".into())
        };
        let named_node = |j: &&Value| j.get("name").and_then(Value::as_str) == Some(NODE);
        let (index, step) = jobs
            .iter()
            .enumerate()
            .find(|(_, j)| is_step(j))
            .or_else(|| jobs.iter().enumerate().find(|(_, j)| named_node(j)))
            .ok_or_else(|| {
                Error::field(
                    &jobs_field,
                    format!(
                        "has no trainer step (a replicated job labelled {ANCESTOR_LABEL}: trainer, or named {NODE})"
                    ),
                )
            })?;
        let step_field = format!("{jobs_field}[{index}]");
        let step_name = step.get("name").and_then(Value::as_str).unwrap_or(NODE);
        let count = match num_nodes {
            Some(n) => n,
            None => match rt.pointer("/spec/mlPolicy") {
                Some(policy) if policy.is_object() => {
                    count_or(policy.get("numNodes"), 1, &format!("{rt_name}: spec.mlPolicy.numNodes"))?
                }
                _ => count_or(
                    step.pointer("/template/spec/parallelism"),
                    1,
                    &format!("{step_field}.template.spec.parallelism"),
                )?,
            },
        };
        if count == 0 {
            return Ok(Vec::new());
        }
        let override_ = per_node.map(|resources| ResourceOverride {
            container: NODE,
            resources,
            field: "spec.trainer.resourcesPerNode",
        });
        let mut groups = vec![pod_group(
            step_name,
            count,
            step.pointer("/template/spec/template/spec"),
            &format!("{step_field}.template.spec.template.spec"),
            override_.as_ref(),
        )?];
        // The runtime's other steps (dataset and model initializers, a launcher) run too, and
        // a tenant may write its own TrainingRuntime: read as a JobSet's replicated jobs, they
        // are accounted beside the trainer's pods.
        let others: Vec<Value> = jobs.iter().enumerate().filter(|(i, _)| *i != index).map(|(_, j)| j.clone()).collect();
        let others = super::JobSet
            .gang(&serde_json::json!({"spec": {"replicatedJobs": others}}), runtime)
            .map_err(|e| Error::field(&format!("{rt_name}: its other steps"), e.to_string()))?;
        groups.extend(others);
        check_gang(&groups, "spec.trainer.numNodes")?;
        Ok(groups)
    }

    /// The copy without `spec.managedBy` (Trainer v2.0.0 ignores it, but the CRD allows
    /// only two values and a hub's choice means nothing on the member). The pods are left
    /// alone (see the module documentation) but for `spec.podSpecOverrides[]`: their
    /// `serviceAccountName` is dropped, and a `nodeSelector` [`GPU_PRODUCT_LABEL`] is set
    /// to `cx.gpu_product` when that is set.
    fn member_copy(&self, obj: &Value, cx: &CopyContext<'_>) -> Value {
        let mut copy = copy_base(self, obj, cx);
        if let Some(spec) = copy.get_mut("spec").and_then(Value::as_object_mut) {
            spec.remove("managedBy");
        }
        if let Some(Value::Array(overrides)) = copy.pointer_mut("/spec/podSpecOverrides") {
            for o in overrides.iter_mut().filter_map(Value::as_object_mut) {
                for key in DROPPED_POD_FIELDS {
                    o.remove(key);
                }
                if let (Some(product), Some(Value::Object(selector))) = (cx.gpu_product, o.get_mut("nodeSelector")) {
                    if selector.contains_key(GPU_PRODUCT_LABEL) {
                        selector.insert(GPU_PRODUCT_LABEL.to_string(), Value::String(product.to_string()));
                    }
                }
            }
        }
        copy
    }

    /// `Complete=True`: succeeded; `Failed=True`: failed; else running when a child Job is
    /// active (`status.jobsStatus[].active`).
    fn state(&self, obj: &Value) -> KindState {
        if true_condition(obj, "Complete").is_some() {
            return KindState::Succeeded;
        }
        if let Some((reason, message)) = true_condition(obj, "Failed") {
            return KindState::Failed { reason, message };
        }
        if super::any_positive(obj, "/status/jobsStatus", &["active"]) {
            return KindState::Running;
        }
        KindState::Pending
    }

    /// Trainer names the JobSet after the TrainJob, and the JobSet controller labels its pods.
    fn pod_label(&self, name: &str) -> (&'static str, String) {
        (super::jobset::JOBSET_NAME_LABEL, name.to_string())
    }
}

/// Refuses what [`check_isolation`] refuses (a `hostPath` volume) in `spec.podSpecOverrides[]`.
fn check_overrides(obj: &Value) -> Result<(), KindError> {
    match obj.pointer("/spec/podSpecOverrides") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Array(overrides)) => overrides
            .iter()
            .enumerate()
            .try_for_each(|(i, o)| check_isolation(o, &format!("spec.podSpecOverrides[{i}]"))),
        Some(_) => Err(Error::field("spec.podSpecOverrides", "must be a list of pod spec overrides")),
    }
}

/// The runtime a TrainJob refers to: (kind, namespace for a TrainingRuntime, name).
fn runtime_ref(obj: &Value) -> Result<(&str, Option<&str>, &str), KindError> {
    let name = obj
        .pointer("/spec/runtimeRef/name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| Error::field("spec.runtimeRef.name", "must name the training runtime"))?;
    let kind = match obj.pointer("/spec/runtimeRef/kind") {
        None | Some(Value::Null) => CLUSTER_TRAINING_RUNTIME,
        Some(Value::String(k)) if k == CLUSTER_TRAINING_RUNTIME || k == TRAINING_RUNTIME => k,
        Some(_) => {
            return Err(Error::field(
                "spec.runtimeRef.kind",
                format!("must be {CLUSTER_TRAINING_RUNTIME} or {TRAINING_RUNTIME}"),
            ))
        }
    };
    match obj.pointer("/spec/runtimeRef/apiGroup") {
        None | Some(Value::Null) => {}
        Some(Value::String(g)) if g == TRAINER_GROUP => {}
        Some(_) => return Err(Error::field("spec.runtimeRef.apiGroup", format!("must be {TRAINER_GROUP}"))),
    }
    let namespace = if kind == TRAINING_RUNTIME {
        Some(obj.pointer("/metadata/namespace").and_then(Value::as_str).ok_or_else(|| {
            Error::field("metadata.namespace", "a TrainingRuntime is looked up in the TrainJob's namespace")
        })?)
    } else {
        None
    };
    Ok((kind, namespace, name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::shadow_spec;
    use crate::kinds::test_support::*;
    use serde_json::json;
    use std::cell::RefCell;

    fn runtime() -> Value {
        load("clustertrainingruntime.yaml")
    }

    /// A lookup that finds the fixture runtime under its kind and name (and records the asks).
    fn hub<'a>(asked: &'a RefCell<Vec<String>>) -> impl Fn(&str, Option<&str>, &str) -> Option<Value> + 'a {
        move |kind, ns, name| {
            asked.borrow_mut().push(format!("{kind}/{}/{name}", ns.unwrap_or("-")));
            (kind == CLUSTER_TRAINING_RUNTIME && ns.is_none() && name == "torch-h100").then(runtime)
        }
    }

    #[test]
    fn num_nodes_and_resources_per_node_still_need_the_runtime() {
        let obj = load("trainjob.yaml");
        let e = TrainJob.gang(&obj, &no_runtime).unwrap_err();
        assert!(
            matches!(&e, Error::RuntimeNotFound { kind, name, namespace: None, .. }
            if kind == "ClusterTrainingRuntime" && name == "torch-h100"),
            "{e:?}"
        );
        let asked = RefCell::new(Vec::new());
        let groups = TrainJob.gang(&obj, &hub(&asked)).unwrap();
        // The trainer step, then the runtime's dataset initializer as a helper group.
        assert_eq!(groups.len(), 2);
        assert_eq!((groups[1].name.as_str(), groups[1].count, groups[1].gpus), ("dataset-initializer", 1, 0));
        assert_eq!((groups[1].cpu_millis, groups[1].memory_bytes), (4000, 8 << 30));
        let spec = shadow_spec(&TrainJob, &obj, &groups, &canonical).unwrap();
        assert_eq!(spec.replicas, 4);
        // 17 CPUs per node plus the initializer's 4 spread over the 4 replicas.
        assert_eq!(crate::convert::quantity_text(&spec.resources.cpu), "18");
        assert_eq!(spec.resources.accelerators.as_ref().unwrap().count, 8);
        assert_eq!(spec.resources.accelerators.as_ref().unwrap().types, vec!["H100".to_string()]);
        assert_eq!(spec.work.gpu_hours, Some(1200.5));
        assert_eq!(spec.work.reference_accelerator.as_deref(), Some("A100-80G"));
    }

    #[test]
    fn the_runtime_pods_and_resources_per_node_are_checked() {
        let obj = load("trainjob.yaml");
        let mut rt = runtime();
        rt["spec"]["template"]["spec"]["replicatedJobs"][1]["template"]["spec"]["template"]["spec"]["hostNetwork"] =
            true.into();
        let e = TrainJob.gang(&obj, &|_: &str, _: Option<&str>, _: &str| Some(rt.clone())).unwrap_err().to_string();
        assert!(
            e.starts_with(
                "ClusterTrainingRuntime torch-h100: spec.template.spec.replicatedJobs[1].template.spec.template.spec.\
                 hostNetwork: "
            ),
            "{e}"
        );
        let mut obj = load("trainjob.yaml");
        obj["spec"]["trainer"]["resourcesPerNode"]["limits"] = json!({"amd.com/gpu": 8});
        let asked = RefCell::new(Vec::new());
        let e = TrainJob.gang(&obj, &hub(&asked)).unwrap_err().to_string();
        assert_eq!(e, "spec.trainer.resourcesPerNode: amd.com/gpu is not a resource computenet accounts");
        // Also when the runtime has no node container for it to replace.
        let mut rt = runtime();
        rt["spec"]["template"]["spec"]["replicatedJobs"][1]["template"]["spec"]["template"]["spec"]["containers"][0]
            ["name"] = "trainer".into();
        let e = TrainJob.gang(&obj, &|_: &str, _: Option<&str>, _: &str| Some(rt.clone())).unwrap_err().to_string();
        assert_eq!(e, "spec.trainer.resourcesPerNode: amd.com/gpu is not a resource computenet accounts");
    }

    #[test]
    fn a_found_runtime_gives_the_pod_and_resources_per_node_replace_the_node_container() {
        let obj = load("trainjob.yaml");
        let asked = RefCell::new(Vec::new());
        let groups = TrainJob.gang(&obj, &hub(&asked)).unwrap();
        assert_eq!(asked.borrow().as_slice(), ["ClusterTrainingRuntime/-/torch-h100"]);
        let g = &groups[0];
        // numNodes 4 over the runtime's 2; the node container's 4 GPUs replaced by 8; the
        // runtime's log-shipper sidecar adds its 1 CPU and 1Gi.
        assert_eq!((g.name.as_str(), g.count, g.gpus), ("node", 4, 8));
        assert_eq!((g.cpu_millis, g.memory_bytes), (17_000, 129 << 30));
        assert_eq!(g.node_selector.get("nvidia.com/gpu.product").map(String::as_str), Some("NVIDIA-H100-80GB-HBM3"));
    }

    #[test]
    fn without_num_nodes_and_resources_the_runtime_decides() {
        let obj = load("trainjob-runtime.yaml");
        let asked = RefCell::new(Vec::new());
        let groups = TrainJob.gang(&obj, &hub(&asked)).unwrap();
        assert_eq!(groups.len(), 2, "the trainer step, then the dataset initializer: {groups:?}");
        assert_eq!(groups[1].name, "dataset-initializer");
        let g = &groups[0];
        assert_eq!((g.count, g.gpus, g.cpu_millis, g.memory_bytes), (2, 4, 9_000, 65 << 30));
        let spec = shadow_spec(&TrainJob, &obj, &groups, &canonical).unwrap();
        assert_eq!(spec.replicas, 2);
        assert_eq!(spec.resources.accelerators.unwrap().types, vec!["H100".to_string()]);
    }

    #[test]
    fn runtime_without_ml_policy_counts_the_step_parallelism() {
        let obj = load("trainjob-runtime.yaml");
        let mut rt = runtime();
        rt["spec"].as_object_mut().unwrap().remove("mlPolicy");
        rt["spec"]["template"]["spec"]["replicatedJobs"][1]["template"]["spec"]["parallelism"] = 3.into();
        let groups = TrainJob.gang(&obj, &|_: &str, _: Option<&str>, _: &str| Some(rt.clone())).unwrap();
        assert_eq!(groups[0].count, 3);
    }

    #[test]
    fn a_missing_runtime_that_is_needed_is_an_error_naming_it() {
        let obj = load("trainjob-runtime.yaml");
        let e = TrainJob.gang(&obj, &no_runtime).unwrap_err();
        assert!(
            matches!(&e, Error::RuntimeNotFound { kind, name, namespace: None, .. }
            if kind == "ClusterTrainingRuntime" && name == "torch-h100"),
            "{e:?}"
        );
        let text = e.to_string();
        assert!(
            text.starts_with("spec.runtimeRef: ClusterTrainingRuntime \"torch-h100\" not found in the hub"),
            "{text}"
        );
        assert!(text.ends_with("the TrainJob needs it for the pods it runs (the runtime's trainer pod template is checked and accounted)"), "{text}");
    }

    #[test]
    fn a_namespaced_runtime_is_looked_up_in_the_trainjob_namespace() {
        let mut obj = load("trainjob-runtime.yaml");
        obj["spec"]["runtimeRef"]["kind"] = "TrainingRuntime".into();
        let asked = RefCell::new(Vec::new());
        let e = TrainJob.gang(&obj, &hub(&asked)).unwrap_err().to_string();
        assert_eq!(asked.borrow().as_slice(), ["TrainingRuntime/vision/torch-h100"]);
        assert!(e.contains("TrainingRuntime \"torch-h100\" not found in the hub (namespace vision)"), "{e}");

        obj["spec"]["runtimeRef"]["kind"] = "Runtime".into();
        let e = TrainJob.gang(&obj, &no_runtime).unwrap_err().to_string();
        assert_eq!(e, "spec.runtimeRef.kind: must be ClusterTrainingRuntime or TrainingRuntime");
    }

    #[test]
    fn a_runtime_without_trainer_step_is_an_error() {
        let obj = load("trainjob-runtime.yaml");
        let mut rt = runtime();
        rt["spec"]["template"]["spec"]["replicatedJobs"] = json!([{"name": "other", "template": {}}]);
        let e = TrainJob.gang(&obj, &|_: &str, _: Option<&str>, _: &str| Some(rt.clone())).unwrap_err().to_string();
        assert!(
            e.starts_with("ClusterTrainingRuntime torch-h100: spec.template.spec.replicatedJobs: has no trainer step"),
            "{e}"
        );
    }

    #[test]
    fn member_copy_is_unsuspended_unmanaged_and_leaves_the_trainer_alone() {
        let obj = load("trainjob.yaml");
        assert!(TrainJob.suspended(&obj));
        let labels = member_labels();
        let copy = TrainJob.member_copy(&obj, &cx(&labels, Some("NVIDIA-A100-SXM4-80GB")));
        assert_common_copy(&copy, "sweep");
        assert_eq!(copy["spec"]["suspend"], false);
        assert!(copy["spec"].get("managedBy").is_none());
        assert_eq!(copy["spec"]["trainer"], obj["spec"]["trainer"]);
        assert_eq!(copy["spec"]["runtimeRef"], obj["spec"]["runtimeRef"]);
        assert!(copy["spec"].get("podSpecOverrides").is_none());
    }

    #[test]
    fn pod_spec_overrides_are_checked_and_restricted_in_the_copy() {
        let mut obj = load("trainjob.yaml");
        obj["spec"]["podSpecOverrides"] = json!([{
            "targetJobs": [{"name": "node"}],
            "serviceAccountName": "controller",
            "nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3", "zone": "a"},
            "volumes": [{"name": "cache", "emptyDir": {}}]
        }]);
        let asked = RefCell::new(Vec::new());
        assert!(TrainJob.gang(&obj, &hub(&asked)).is_ok());
        let labels = member_labels();
        let copy = TrainJob.member_copy(&obj, &cx(&labels, Some("NVIDIA-A100-SXM4-80GB")));
        let o = &copy["spec"]["podSpecOverrides"][0];
        assert!(o.get("serviceAccountName").is_none(), "{o}");
        assert_eq!(o["nodeSelector"], json!({"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB", "zone": "a"}));
        assert_eq!(o["targetJobs"], json!([{"name": "node"}]));

        obj["spec"]["podSpecOverrides"][0]["volumes"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "root", "hostPath": {"path": "/"}}));
        let e = TrainJob.gang(&obj, &hub(&asked)).unwrap_err().to_string();
        assert_eq!(e, "spec.podSpecOverrides[0].volumes[1].hostPath: hostPath volumes are not allowed");
        obj["spec"]["podSpecOverrides"] = json!({"node": {}});
        let e = TrainJob.gang(&obj, &hub(&asked)).unwrap_err().to_string();
        assert_eq!(e, "spec.podSpecOverrides: must be a list of pod spec overrides");
    }

    #[test]
    fn state_reads_complete_failed_and_active_jobs() {
        let mut obj = load("trainjob.yaml");
        assert_eq!(TrainJob.state(&obj), KindState::Pending);
        obj["status"] = json!({"jobsStatus": [{"name": "node", "active": 1, "ready": 0}]});
        assert_eq!(TrainJob.state(&obj), KindState::Running);
        obj["status"]["conditions"] =
            json!([{"type": "Failed", "status": "True", "reason": "JobsFailed", "message": "node-0 failed"}]);
        assert_eq!(
            TrainJob.state(&obj),
            KindState::Failed { reason: "JobsFailed".into(), message: "node-0 failed".into() }
        );
        obj["status"]["conditions"] = json!([{"type": "Complete", "status": "True"}]);
        assert_eq!(TrainJob.state(&obj), KindState::Succeeded);
        obj["status"]["jobsStatus"][0]["active"] = 0.into();
        obj["status"]["conditions"] = json!([{"type": "Suspended", "status": "True"}]);
        assert_eq!(TrainJob.state(&obj), KindState::Pending);
    }

    #[test]
    fn pod_label_is_the_jobset_name() {
        assert_eq!(TrainJob.pod_label("sweep"), ("jobset.sigs.k8s.io/jobset-name", "sweep".to_string()));
        assert_eq!(TrainJob.suspend_patch(false), json!({"spec": {"suspend": false}}));
    }
}

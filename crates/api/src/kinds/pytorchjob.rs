//! PyTorchJob of the Kubeflow Training Operator v1 (`kubeflow.org/v1`).
//!
//! Reads `spec.runPolicy.suspend`, `spec.pytorchReplicaSpecs.<type>.{replicas,
//! template.spec}` and `status.conditions`. A job with `spec.elasticPolicy` is refused;
//! `spec.runPolicy.schedulingPolicy.minAvailable` is not read: the gang is the replicas
//! as written. The kind has no `managedBy` (v1.8.1).

use super::RuntimeLookup;
use super::{
    check_gang, check_isolation, copy_base, count_or, pod_group, prepare_pod_template, true_condition, CopyContext,
    JobKind, KindError, KindResource, KindState, PodGroup,
};
use crate::error::Error;
use serde_json::Value;

/// The PyTorchJob kind.
#[derive(Debug, Clone, Copy, Default)]
pub struct PyTorchJob;

/// The pod label the Training Operator puts on every pod of a job.
pub const JOB_NAME_LABEL: &str = "training.kubeflow.org/job-name";

impl JobKind for PyTorchJob {
    fn resource(&self) -> KindResource {
        KindResource { group: "kubeflow.org", version: "v1", kind: "PyTorchJob", plural: "pytorchjobs" }
    }

    fn suspend_pointer(&self) -> &'static str {
        "/spec/runPolicy/suspend"
    }

    /// One group per replica type (`Master` first, then the others by name): `replicas`
    /// (default 1) pods of its template. Types of zero replicas are left out.
    ///
    /// An elastic job (`spec.elasticPolicy`) is refused: its pod count changes at run time.
    fn gang(&self, obj: &Value, _runtime: RuntimeLookup<'_>) -> Result<Vec<PodGroup>, KindError> {
        if obj.pointer("/spec/elasticPolicy").is_some_and(|p| !p.is_null()) {
            return Err(Error::field(
                "spec.elasticPolicy",
                "elastic PyTorchJobs are not supported; give fixed replicas without an elasticPolicy",
            ));
        }
        let specs = obj.pointer("/spec/pytorchReplicaSpecs").and_then(Value::as_object).ok_or_else(|| {
            Error::field("spec.pytorchReplicaSpecs", "must be a map of replica types (Master, Worker)")
        })?;
        if specs.len() > super::MAX_GANG_GROUPS {
            return Err(Error::field(
                "spec.pytorchReplicaSpecs",
                format!("{} replica types; computenet takes at most {}", specs.len(), super::MAX_GANG_GROUPS),
            ));
        }
        let mut types: Vec<(&String, &Value)> = specs.iter().collect();
        types.sort_by_key(|(name, _)| (name.as_str() != "Master", name.as_str()));
        let mut groups = Vec::new();
        for (name, spec) in types {
            let field = format!("spec.pytorchReplicaSpecs.{name}");
            let count = count_or(spec.get("replicas"), 1, &format!("{field}.replicas"))?;
            let pod_field = format!("{field}.template.spec");
            if let Some(pod) = spec.pointer("/template/spec") {
                check_isolation(pod, &pod_field)?;
            }
            if count == 0 {
                continue;
            }
            groups.push(pod_group(name, count, spec.pointer("/template/spec"), &pod_field, None)?);
            check_gang(&groups, "spec.pytorchReplicaSpecs")?;
        }
        Ok(groups)
    }

    /// The copy with every `spec.pytorchReplicaSpecs.<type>.template` prepared, and in
    /// `spec.runPolicy`: `cleanPodPolicy: All` (a finished job's remaining pods must not
    /// keep their GPUs), no `ttlSecondsAfterFinished` (computenet deletes the copy once its
    /// status is mirrored; a member-side deletion would make it run again) and no
    /// `schedulingPolicy` (its priority class and queue are the member's to decide).
    fn member_copy(&self, obj: &Value, cx: &CopyContext<'_>) -> Value {
        let mut copy = copy_base(self, obj, cx);
        if let Some(Value::Object(policy)) = copy.pointer_mut("/spec/runPolicy") {
            policy.insert("cleanPodPolicy".to_string(), Value::String("All".to_string()));
            policy.remove("ttlSecondsAfterFinished");
            policy.remove("schedulingPolicy");
        }
        if let Some(Value::Object(specs)) = copy.pointer_mut("/spec/pytorchReplicaSpecs") {
            for spec in specs.values_mut() {
                if let Some(template) = spec.get_mut("template") {
                    prepare_pod_template(template, cx);
                }
            }
        }
        copy
    }

    /// `Succeeded=True`, `Failed=True`, `Running=True` in that order; else pending.
    fn state(&self, obj: &Value) -> KindState {
        if true_condition(obj, "Succeeded").is_some() {
            return KindState::Succeeded;
        }
        if let Some((reason, message)) = true_condition(obj, "Failed") {
            return KindState::Failed { reason, message };
        }
        if true_condition(obj, "Running").is_some() {
            return KindState::Running;
        }
        KindState::Pending
    }

    fn pod_label(&self, name: &str) -> (&'static str, String) {
        (JOB_NAME_LABEL, name.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::shadow_spec;
    use crate::kinds::test_support::*;
    use serde_json::json;

    fn fixture() -> Value {
        load("pytorchjob.yaml")
    }

    #[test]
    fn gang_is_master_then_workers() {
        let groups = PyTorchJob.gang(&fixture(), &no_runtime).unwrap();
        let summary: Vec<(&str, u32, u32)> = groups.iter().map(|g| (g.name.as_str(), g.count, g.gpus)).collect();
        assert_eq!(summary, vec![("Master", 1, 8), ("Worker", 3, 8)]);
        assert_eq!((groups[1].cpu_millis, groups[1].memory_bytes), (32_000, 256 << 30));
    }

    #[test]
    fn shadow_has_four_replicas_and_the_annotated_work() {
        let obj = fixture();
        let groups = PyTorchJob.gang(&obj, &no_runtime).unwrap();
        let spec = shadow_spec(&PyTorchJob, &obj, &groups, &canonical).unwrap();
        assert_eq!(spec.replicas, 4);
        assert_eq!(spec.resources.accelerators.as_ref().map(|a| a.count), Some(8));
        // Only the master chose a product; the gang runs on one type, so that is the one.
        assert_eq!(spec.resources.accelerators.as_ref().unwrap().types, vec!["H100".to_string()]);
        assert_eq!(spec.work.model.as_deref(), Some("llama-7b"));
        assert_eq!(spec.work.steps, Some(20_000));
        assert_eq!(spec.placement.sites, vec!["north".to_string(), "south".to_string()]);
        assert_eq!(spec.placement.objective, crate::training_job::Objective::Greenest);
        assert_eq!(spec.on_member_loss, crate::training_job::MemberLossPolicy::Wait);
        assert_eq!(spec.max_run_seconds, None, "no wall-clock limit is taken from the object");
        assert_eq!(spec.source.unwrap().kind, "PyTorchJob");
    }

    #[test]
    fn replicas_default_to_one_and_zero_leaves_a_type_out() {
        let mut obj = fixture();
        obj["spec"]["pytorchReplicaSpecs"]["Worker"].as_object_mut().unwrap().remove("replicas");
        let groups = PyTorchJob.gang(&obj, &no_runtime).unwrap();
        assert_eq!(groups[1].count, 1);
        obj["spec"]["pytorchReplicaSpecs"]["Worker"]["replicas"] = 0.into();
        assert_eq!(PyTorchJob.gang(&obj, &no_runtime).unwrap().len(), 1);
        obj["spec"]["pytorchReplicaSpecs"]["Worker"]["replicas"] = (-2).into();
        let e = PyTorchJob.gang(&obj, &no_runtime).unwrap_err().to_string();
        assert_eq!(e, "spec.pytorchReplicaSpecs.Worker.replicas: must be a non-negative integer");
    }

    #[test]
    fn member_copy_unsuspends_run_policy_and_prepares_every_template() {
        let obj = fixture();
        assert!(PyTorchJob.suspended(&obj));
        let labels = member_labels();
        let copy = PyTorchJob.member_copy(&obj, &cx(&labels, Some("NVIDIA-A100-SXM4-80GB")));
        assert_common_copy(&copy, "finetune");
        assert_eq!(copy["spec"]["runPolicy"], json!({"suspend": false, "cleanPodPolicy": "All"}));
        assert!(!PyTorchJob.suspended(&copy));
        for t in ["Master", "Worker"] {
            let tpl = &copy["spec"]["pytorchReplicaSpecs"][t]["template"];
            assert_eq!(tpl["metadata"]["labels"]["computenet.io/job-uid"], "shadow-uid");
            assert_eq!(tpl["metadata"]["annotations"]["note"], "kept");
            assert_eq!(tpl["spec"]["securityContext"]["runAsNonRoot"], true);
            assert_eq!(tpl["spec"]["containers"][0]["securityContext"]["capabilities"]["drop"], json!(["ALL"]));
        }
        let master = &copy["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"];
        assert_eq!(
            master["nodeSelector"]["nvidia.com/gpu.product"], "NVIDIA-A100-SXM4-80GB",
            "the scheduler's choice replaces the user's"
        );
        let worker = &copy["spec"]["pytorchReplicaSpecs"]["Worker"]["template"]["spec"];
        assert_eq!(worker["nodeSelector"]["nvidia.com/gpu.product"], "NVIDIA-A100-SXM4-80GB");
        assert_eq!(worker["automountServiceAccountToken"], false, "set even where the user asked for a token");
        assert_eq!(worker["securityContext"]["runAsNonRoot"], true);
        assert_eq!(worker["securityContext"]["runAsUser"], 1000);
        assert_eq!(worker["containers"][0]["securityContext"]["allowPrivilegeEscalation"], false);
    }

    #[test]
    fn member_copy_without_a_run_policy_gets_one() {
        let mut obj = fixture();
        obj["spec"].as_object_mut().unwrap().remove("runPolicy");
        let labels = member_labels();
        let copy = PyTorchJob.member_copy(&obj, &cx(&labels, None));
        assert_eq!(copy["spec"]["runPolicy"], json!({"suspend": false, "cleanPodPolicy": "All"}));
        let worker = &copy["spec"]["pytorchReplicaSpecs"]["Worker"]["template"]["spec"];
        assert!(worker.get("nodeSelector").is_none(), "no product asked for");
    }

    #[test]
    fn member_copy_cleans_all_pods_and_drops_the_ttl_and_scheduling_policy() {
        let mut obj = fixture();
        obj["spec"]["runPolicy"]["ttlSecondsAfterFinished"] = 60.into();
        obj["spec"]["runPolicy"]["backoffLimit"] = 3.into();
        obj["spec"]["runPolicy"]["schedulingPolicy"] = json!({"priorityClass": "system-cluster-critical"});
        obj["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["priorityClassName"] = "high".into();
        let labels = member_labels();
        let copy = PyTorchJob.member_copy(&obj, &cx(&labels, None));
        assert_eq!(copy["spec"]["runPolicy"], json!({"suspend": false, "cleanPodPolicy": "All", "backoffLimit": 3}));
        let master = &copy["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"];
        assert!(master.get("priorityClassName").is_none(), "{master}");
    }

    #[test]
    fn elastic_jobs_are_refused() {
        let mut obj = fixture();
        obj["spec"]["elasticPolicy"] = json!({"minReplicas": 1, "maxReplicas": 64});
        let e = PyTorchJob.gang(&obj, &no_runtime).unwrap_err().to_string();
        assert!(e.starts_with("spec.elasticPolicy: elastic PyTorchJobs are not supported; "), "{e}");
        obj["spec"]["elasticPolicy"] = Value::Null;
        assert!(PyTorchJob.gang(&obj, &no_runtime).is_ok());
    }

    #[test]
    fn state_reads_the_operator_conditions() {
        let mut obj = fixture();
        assert_eq!(PyTorchJob.state(&obj), KindState::Pending);
        obj["status"] =
            json!({"conditions": [{"type": "Created", "status": "True"}, {"type": "Running", "status": "True"}]});
        assert_eq!(PyTorchJob.state(&obj), KindState::Running);
        obj["status"]["conditions"][1] =
            json!({"type": "Failed", "status": "True", "reason": "PyTorchJobFailed", "message": "worker 2 exited 1"});
        assert_eq!(
            PyTorchJob.state(&obj),
            KindState::Failed { reason: "PyTorchJobFailed".into(), message: "worker 2 exited 1".into() }
        );
        obj["status"]["conditions"][1] = json!({"type": "Succeeded", "status": "True"});
        assert_eq!(PyTorchJob.state(&obj), KindState::Succeeded);
        obj["status"]["conditions"][1] = json!({"type": "Running", "status": "False"});
        assert_eq!(PyTorchJob.state(&obj), KindState::Pending);
    }

    #[test]
    fn suspend_patch_and_pod_label() {
        assert_eq!(PyTorchJob.suspend_patch(true), json!({"spec": {"runPolicy": {"suspend": true}}}));
        assert_eq!(PyTorchJob.pod_label("finetune"), ("training.kubeflow.org/job-name", "finetune".to_string()));
    }
}

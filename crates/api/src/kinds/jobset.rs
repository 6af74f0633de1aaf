//! JobSet (`jobset.x-k8s.io/v1alpha2`).
//!
//! Reads `spec.suspend`, `spec.replicatedJobs[].{name, replicas, template.spec.{parallelism,
//! completions}, template.spec.template.spec}` and `status.{conditions,
//! replicatedJobsStatus[].{active, ready}}`.

use super::RuntimeLookup;
use super::{
    check_gang, check_isolation, copy_base, count_or, pod_group, prepare_pod_template, true_condition, CopyContext,
    JobKind, KindError, KindResource, KindState, PodGroup,
};
use crate::error::Error;
use serde_json::Value;

/// The JobSet kind.
#[derive(Debug, Clone, Copy, Default)]
pub struct JobSet;

/// The pod label the JobSet controller puts on every pod of a JobSet.
pub const JOBSET_NAME_LABEL: &str = "jobset.sigs.k8s.io/jobset-name";

impl JobKind for JobSet {
    fn resource(&self) -> KindResource {
        KindResource { group: "jobset.x-k8s.io", version: "v1alpha2", kind: "JobSet", plural: "jobsets" }
    }

    fn suspend_pointer(&self) -> &'static str {
        "/spec/suspend"
    }

    /// One group per replicated job: `replicas` (default 1) × the Job's `parallelism`
    /// (default 1, and at most its `completions` when set: a Job runs no more pods at once
    /// than it needs completions) pods of the Job's pod template. Replicated jobs of zero
    /// pods are left out.
    fn gang(&self, obj: &Value, _runtime: RuntimeLookup<'_>) -> Result<Vec<PodGroup>, KindError> {
        let jobs = obj
            .pointer("/spec/replicatedJobs")
            .and_then(Value::as_array)
            .ok_or_else(|| Error::field("spec.replicatedJobs", "must be a list of replicated jobs"))?;
        if jobs.len() > super::MAX_GANG_GROUPS {
            return Err(Error::field(
                "spec.replicatedJobs",
                format!("{} replicated jobs; computenet takes at most {}", jobs.len(), super::MAX_GANG_GROUPS),
            ));
        }
        let mut groups = Vec::new();
        for (i, job) in jobs.iter().enumerate() {
            let field = format!("spec.replicatedJobs[{i}]");
            let name = job
                .get("name")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
                .ok_or_else(|| Error::field(&format!("{field}.name"), "must be a non-empty string"))?;
            let replicas = count_or(job.get("replicas"), 1, &format!("{field}.replicas"))?;
            let parallelism =
                count_or(job.pointer("/template/spec/parallelism"), 1, &format!("{field}.template.spec.parallelism"))?;
            // A Job runs at most its remaining completions at once.
            let completions = match job.pointer("/template/spec/completions") {
                None | Some(Value::Null) => parallelism,
                v => count_or(v, 1, &format!("{field}.template.spec.completions"))?,
            };
            let count = replicas.saturating_mul(parallelism.min(completions));
            let pod_field = format!("{field}.template.spec.template.spec");
            if let Some(pod) = job.pointer("/template/spec/template/spec") {
                check_isolation(pod, &pod_field)?;
            }
            if count == 0 {
                continue;
            }
            groups.push(pod_group(name, count, job.pointer("/template/spec/template/spec"), &pod_field, None)?);
            check_gang(&groups, "spec.replicatedJobs")?;
        }
        Ok(groups)
    }

    /// The copy without `spec.managedBy` (the member's JobSet controller must run it) and
    /// without `spec.ttlSecondsAfterFinished` and the Jobs' `ttlSecondsAfterFinished`
    /// (computenet deletes the copy once its status is mirrored; a member-side deletion
    /// would make it run again), with every `spec.replicatedJobs[].template.spec.template`
    /// prepared.
    fn member_copy(&self, obj: &Value, cx: &CopyContext<'_>) -> Value {
        let mut copy = copy_base(self, obj, cx);
        if let Some(spec) = copy.get_mut("spec").and_then(Value::as_object_mut) {
            spec.remove("managedBy");
            spec.remove("ttlSecondsAfterFinished");
        }
        if let Some(Value::Array(jobs)) = copy.pointer_mut("/spec/replicatedJobs") {
            for job in jobs {
                if let Some(Value::Object(job_spec)) = job.pointer_mut("/template/spec") {
                    job_spec.remove("ttlSecondsAfterFinished");
                }
                if let Some(template) = job.pointer_mut("/template/spec/template") {
                    prepare_pod_template(template, cx);
                }
            }
        }
        copy
    }

    /// `Completed=True`: succeeded; `Failed=True`: failed; else running when a replicated
    /// job has active or ready Jobs.
    fn state(&self, obj: &Value) -> KindState {
        if true_condition(obj, "Completed").is_some() {
            return KindState::Succeeded;
        }
        if let Some((reason, message)) = true_condition(obj, "Failed") {
            return KindState::Failed { reason, message };
        }
        if super::any_positive(obj, "/status/replicatedJobsStatus", &["active", "ready"]) {
            return KindState::Running;
        }
        KindState::Pending
    }

    fn pod_label(&self, name: &str) -> (&'static str, String) {
        (JOBSET_NAME_LABEL, name.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::test_support::*;
    use crate::kinds::{shadow_spec, KindState};

    fn fixture() -> Value {
        load("jobset.yaml")
    }

    #[test]
    fn gang_is_one_cpu_launcher_and_four_gpu_workers() {
        let groups = JobSet.gang(&fixture(), &no_runtime).unwrap();
        assert_eq!(groups.len(), 2);
        let (launcher, workers) = (&groups[0], &groups[1]);
        assert_eq!((launcher.name.as_str(), launcher.count, launcher.gpus), ("launcher", 1, 0));
        assert_eq!((launcher.cpu_millis, launcher.memory_bytes), (2000, 4 << 30));
        assert_eq!((workers.name.as_str(), workers.count, workers.gpus), ("workers", 4, 8));
        // 16 CPUs from the trainer plus 500m from a limit-only sidecar container; the init
        // container's 24 CPUs are more than the sum, so they are the pod's request.
        assert_eq!(workers.cpu_millis, 24_000);
        assert_eq!(workers.memory_bytes, (128 << 30) + (1 << 30));
        assert_eq!(
            workers.node_selector.get("nvidia.com/gpu.product").map(String::as_str),
            Some("NVIDIA-H100-80GB-HBM3")
        );
    }

    #[test]
    fn shadow_places_the_gpu_workers_and_accounts_the_launcher_on_them() {
        let obj = fixture();
        let groups = JobSet.gang(&obj, &no_runtime).unwrap();
        let spec = shadow_spec(&JobSet, &obj, &groups, &canonical).unwrap();
        assert_eq!(spec.replicas, 4);
        assert_eq!(spec.queue_name, "research");
        let acc = spec.resources.accelerators.as_ref().unwrap();
        assert_eq!(acc.count, 8);
        assert_eq!(acc.types, vec!["H100".to_string()]);
        // 24 CPUs and 129Gi per worker, plus the launcher's 2 CPUs and 4Gi over 4 workers.
        assert_eq!(spec.resources.cpu.text(), "24500m");
        assert_eq!(spec.resources.memory.text(), "130Gi");
        let source = spec.source.unwrap();
        assert_eq!(
            (source.api_version.as_str(), source.kind.as_str(), source.name.as_str(), source.uid.as_str()),
            ("jobset.x-k8s.io/v1alpha2", "JobSet", "pretrain", "5d1c7e2a-0000-4000-8000-000000000001")
        );
        assert!(spec.workload.is_none() && !spec.suspend);
        assert_eq!(spec.priority, 100);
    }

    #[test]
    fn replicas_multiply_parallelism_and_bad_counts_name_the_field() {
        let mut obj = fixture();
        obj["spec"]["replicatedJobs"][1]["replicas"] = 3.into();
        let groups = JobSet.gang(&obj, &no_runtime).unwrap();
        assert_eq!(groups[1].count, 12);

        // Fewer completions than parallelism: only that many pods run at once.
        obj["spec"]["replicatedJobs"][1]["template"]["spec"]["completions"] = 2.into();
        assert_eq!(JobSet.gang(&obj, &no_runtime).unwrap()[1].count, 6);
        obj["spec"]["replicatedJobs"][1]["template"]["spec"]["completions"] = 40.into();
        assert_eq!(JobSet.gang(&obj, &no_runtime).unwrap()[1].count, 12);
        obj["spec"]["replicatedJobs"][1]["template"]["spec"].as_object_mut().unwrap().remove("completions");
        assert_eq!(JobSet.gang(&obj, &no_runtime).unwrap()[1].count, 12);

        obj["spec"]["replicatedJobs"][1]["template"]["spec"]["parallelism"] = "four".into();
        let e = JobSet.gang(&obj, &no_runtime).unwrap_err().to_string();
        assert_eq!(e, "spec.replicatedJobs[1].template.spec.parallelism: must be a non-negative integer");

        let mut obj = fixture();
        obj["spec"]["replicatedJobs"][1]["template"]["spec"]["parallelism"] = 4097.into();
        obj["spec"]["replicatedJobs"][1]["template"]["spec"]["completions"] = 4097.into();
        let e = JobSet.gang(&obj, &no_runtime).unwrap_err().to_string();
        assert!(e.starts_with("spec.replicatedJobs: 4098 pods in all"), "{e}");

        let mut obj = fixture();
        obj["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]["spec"]["containers"][0]["resources"]
            ["requests"]["memory"] = "lots".into();
        let e = JobSet.gang(&obj, &no_runtime).unwrap_err().to_string();
        assert!(
            e.starts_with(
                "spec.replicatedJobs[0].template.spec.template.spec.containers[0].resources.requests.memory: "
            ),
            "{e}"
        );
    }

    #[test]
    fn member_copy_is_unsuspended_unmanaged_labelled_and_restricted() {
        let obj = fixture();
        assert!(JobSet.suspended(&obj));
        let labels = member_labels();
        let copy = JobSet.member_copy(&obj, &cx(&labels, Some("NVIDIA-A100-SXM4-80GB")));
        assert!(!JobSet.suspended(&copy));
        assert_eq!(copy["spec"]["suspend"], false);
        assert!(copy["spec"].get("managedBy").is_none());
        assert_common_copy(&copy, "pretrain");
        assert_eq!(copy["spec"]["successPolicy"]["operator"], "All", "the rest of the spec is kept");

        let launcher = &copy["spec"]["replicatedJobs"][0]["template"]["spec"]["template"];
        let workers = &copy["spec"]["replicatedJobs"][1]["template"]["spec"]["template"];
        for t in [launcher, workers] {
            assert_eq!(t["metadata"]["labels"]["computenet.io/managed"], "true");
            assert_eq!(t["spec"]["automountServiceAccountToken"], false);
            assert_eq!(t["spec"]["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
            assert_eq!(t["spec"]["securityContext"]["runAsNonRoot"], true);
            assert_eq!(t["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"], false);
            assert_eq!(
                t["spec"]["containers"][0]["securityContext"]["capabilities"]["drop"],
                serde_json::json!(["ALL"])
            );
        }
        // The user's own settings stay.
        assert_eq!(workers["spec"]["securityContext"]["runAsUser"], 1000);
        assert_eq!(workers["metadata"]["labels"]["role"], "worker");
        assert_eq!(
            workers["spec"]["initContainers"][0]["securityContext"]["capabilities"]["drop"],
            serde_json::json!(["ALL"])
        );
        assert_eq!(workers["spec"]["initContainers"][0]["securityContext"]["allowPrivilegeEscalation"], false);
        assert_eq!(
            workers["spec"]["containers"][1]["securityContext"]["capabilities"]["drop"],
            serde_json::json!(["NET_RAW"])
        );
        assert_eq!(workers["spec"]["containers"][1]["securityContext"]["allowPrivilegeEscalation"], false);
        assert_eq!(workers["spec"]["initContainers"][0]["securityContext"]["readOnlyRootFilesystem"], true);
        // The workers run on the product the scheduler chose, whatever they selected; the
        // CPU-only launcher gets no GPU selector.
        assert_eq!(workers["spec"]["nodeSelector"]["nvidia.com/gpu.product"], "NVIDIA-A100-SXM4-80GB");
        assert!(launcher["spec"].get("nodeSelector").is_none());
        // Without a chosen product the user's selector stays.
        let copy = JobSet.member_copy(&obj, &cx(&labels, None));
        let workers = &copy["spec"]["replicatedJobs"][1]["template"]["spec"]["template"];
        assert_eq!(workers["spec"]["nodeSelector"]["nvidia.com/gpu.product"], "NVIDIA-H100-80GB-HBM3");
    }

    #[test]
    fn member_copy_drops_the_ttls_and_the_pods_priority_scheduler_and_service_account() {
        let mut obj = fixture();
        obj["spec"]["ttlSecondsAfterFinished"] = 0.into();
        obj["spec"]["replicatedJobs"][1]["template"]["spec"]["ttlSecondsAfterFinished"] = 5.into();
        let pod = &mut obj["spec"]["replicatedJobs"][1]["template"]["spec"]["template"]["spec"];
        for (key, value) in [
            ("priorityClassName", serde_json::json!("system-node-critical")),
            ("priority", 2_000_001_000.into()),
            ("preemptionPolicy", "PreemptLowerPriority".into()),
            ("schedulerName", "my-scheduler".into()),
            ("serviceAccountName", "controller".into()),
            ("serviceAccount", "controller".into()),
            ("automountServiceAccountToken", true.into()),
        ] {
            pod[key] = value;
        }
        let labels = member_labels();
        let copy = JobSet.member_copy(&obj, &cx(&labels, None));
        assert!(copy["spec"].get("ttlSecondsAfterFinished").is_none(), "{}", copy["spec"]);
        let workers = &copy["spec"]["replicatedJobs"][1]["template"]["spec"];
        assert!(workers.get("ttlSecondsAfterFinished").is_none(), "{workers}");
        assert_eq!(workers["parallelism"], 4, "the rest of the Job spec is kept");
        let pod = &workers["template"]["spec"];
        for key in crate::kinds::DROPPED_POD_FIELDS {
            assert!(pod.get(key).is_none(), "{key} kept: {pod}");
        }
        assert_eq!(pod["automountServiceAccountToken"], false);
    }

    #[test]
    fn member_copy_adds_the_gpu_product_where_none_is_chosen() {
        let mut obj = fixture();
        obj["spec"]["replicatedJobs"][1]["template"]["spec"]["template"]["spec"]
            .as_object_mut()
            .unwrap()
            .remove("nodeSelector");
        let labels = member_labels();
        let copy = JobSet.member_copy(&obj, &cx(&labels, Some("NVIDIA-A100-SXM4-80GB")));
        let workers = &copy["spec"]["replicatedJobs"][1]["template"]["spec"]["template"];
        assert_eq!(workers["spec"]["nodeSelector"]["nvidia.com/gpu.product"], "NVIDIA-A100-SXM4-80GB");
    }

    #[test]
    fn state_follows_conditions_and_job_counts() {
        let mut obj = fixture();
        assert_eq!(JobSet.state(&obj), KindState::Pending);
        obj["status"] = serde_json::json!({"replicatedJobsStatus": [{"name": "workers", "active": 0, "ready": 1}]});
        assert_eq!(JobSet.state(&obj), KindState::Running);
        obj["status"]["conditions"] = serde_json::json!([{"type": "Failed", "status": "True", "reason": "FailedJobs", "message": "job workers-0 failed"}]);
        assert_eq!(
            JobSet.state(&obj),
            KindState::Failed { reason: "FailedJobs".into(), message: "job workers-0 failed".into() }
        );
        obj["status"]["conditions"] = serde_json::json!([{"type": "Completed", "status": "True"}]);
        assert_eq!(JobSet.state(&obj), KindState::Succeeded);
        obj["status"]["conditions"] = serde_json::json!([{"type": "Completed", "status": "False"}]);
        assert_eq!(JobSet.state(&obj), KindState::Running);
    }

    #[test]
    fn suspend_patch_and_pod_label() {
        assert_eq!(JobSet.suspend_patch(false), serde_json::json!({"spec": {"suspend": false}}));
        assert_eq!(JobSet.pod_label("pretrain"), ("jobset.sigs.k8s.io/jobset-name", "pretrain".to_string()));
    }
}

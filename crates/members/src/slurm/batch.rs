//! What a TrainingJob becomes on a Slurm member: a batch job with one task per replica,
//! named from the TrainingJob's UID and tagged with its hub and attempt, so a repeated
//! dispatch finds the job it submitted before and an earlier attempt's job is never
//! taken for the current one's.

use super::convert::{attempt_key, Tag};
use super::tenancy::Identity;
use super::{BatchJob, SlurmPlacement};
use crate::labels::remote_name;
use computenet_api::TrainingJob;

/// The attempt number of a TrainingJob as its status stands (0 before its first admission).
pub fn attempt(tj: &TrainingJob) -> u32 {
    let stored = tj.status.as_ref().and_then(|s| s.attempt).unwrap_or(0);
    u32::try_from(stored).unwrap_or(0)
}

/// The attempt key of a TrainingJob as its status stands (UID and attempt number): derived
/// from stored status only, so a restarted leader computes the same one.
pub fn key(tj: &TrainingJob) -> String {
    attempt_key(tj.metadata.uid.as_deref().unwrap_or_default(), attempt(tj))
}

/// The tag of the current attempt, submitted by the hub `hub`.
pub fn tag(tj: &TrainingJob, hub: &str) -> Tag {
    Tag {
        hub: hub.to_string(),
        uid: tj.metadata.uid.clone().unwrap_or_default(),
        attempt: attempt(tj),
        training_job: format!(
            "{}/{}",
            tj.metadata.namespace.as_deref().unwrap_or_default(),
            tj.metadata.name.as_deref().unwrap_or_default()
        ),
    }
}

/// The batch job for `tj` from the hub `hub`, run as `identity` (its account, in its
/// working directory), asking for `gpu_type` (the member's `gres` type name) if given.
pub fn batch_job(
    tj: &TrainingJob,
    placement: &SlurmPlacement,
    identity: &Identity,
    gpu_type: Option<&str>,
    hub: &str,
) -> BatchJob {
    let spec = &tj.spec;
    let per_replica = computenet_api::convert::job("", spec, 0).map(|j| j.per_replica).unwrap_or_default();
    let tag = tag(tj, hub);
    BatchJob {
        name: remote_name(&tag.uid),
        comment: tag.comment(),
        training_job: tag.training_job,
        // The attempt's size: an elastic job may run at another than it asked for.
        replicas: u32::try_from(crate::attempt::replicas(tj)).unwrap_or(1).max(1),
        gpus_per_replica: per_replica.accelerators,
        gpu_type: gpu_type.map(str::to_string),
        // Slurm counts whole CPUs and MiB: round up so the job gets at least what it asked.
        cpus_per_replica: u32::try_from(per_replica.cpu_millis.div_ceil(1000)).unwrap_or(u32::MAX),
        memory_mib_per_replica: per_replica.memory_bytes.div_ceil(1 << 20),
        time_limit_minutes: spec.max_run_seconds.map(|s| u64::try_from(s).unwrap_or(0).div_ceil(60)),
        partition: (!placement.partitions.is_empty()).then(|| placement.partitions.join(",")),
        account: identity.account.clone(),
        working_directory: identity.working_directory.clone(),
        standard_output: placement.standard_output.clone(),
        // A TrainingJob without a workload (one for a `source` object) never comes here.
        command: spec.workload.as_ref().map(|w| w.command.clone()).unwrap_or_default(),
        env: crate::attempt::env(tj)
            .into_iter()
            .chain(spec.workload.iter().flat_map(|w| &w.env).map(|e| (e.name.clone(), e.value.clone())))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn training_job(attempt: Option<i32>) -> TrainingJob {
        let mut tj: TrainingJob = serde_yaml::from_str(
            r#"
apiVersion: computenet.io/v1alpha1
kind: TrainingJob
metadata: {name: bert-large, namespace: team-a, uid: 0a1b2c3d-4e5f-6789-abcd-ef0123456789}
spec:
  queueName: research
  replicas: 4
  resources: {cpu: "7500m", memory: 64Gi, accelerators: {count: 8, types: [H800]}}
  workload: {image: example/bert:1.0, command: ["torchrun", "train.py"], env: [{name: LR, value: "0.1"}]}
  maxRunSeconds: 3601
"#,
        )
        .expect("valid");
        tj.status = attempt.map(|a| computenet_api::TrainingJobStatus { attempt: Some(a), ..Default::default() });
        tj
    }

    #[test]
    fn the_batch_job_carries_the_gang_and_its_limits() {
        let placement =
            SlurmPlacement { partitions: vec!["gpu".into(), "debug".into()], standard_output: "%x-%j.out".into() };
        let alice = Identity {
            user: "alice".into(),
            account: Some("physics".into()),
            working_directory: "/scratch/alice".into(),
        };
        let b = batch_job(&training_job(Some(1)), &placement, &alice, Some("h800"), "hub-a");
        assert_eq!(b.working_directory, "/scratch/alice", "the tenant's directory");
        assert_eq!(b.account.as_deref(), Some("physics"));
        assert_eq!(b.standard_output, "%x-%j.out", "relative: in the tenant's directory");
        assert_eq!(b.name, "cn-0a1b2c3d4e5f6789abcd");
        assert_eq!(
            b.comment,
            "computenet hub=hub-a uid=0a1b2c3d-4e5f-6789-abcd-ef0123456789 attempt=1 job=team-a/bert-large"
        );
        assert_eq!(Tag::parse(&b.comment).map(|t| t.key()), Some(key(&training_job(Some(1)))));
        assert_eq!((b.replicas, b.gpus_per_replica, b.gpu_type.as_deref()), (4, 8, Some("h800")));
        assert_eq!((b.cpus_per_replica, b.memory_mib_per_replica), (8, 65536), "rounded up to whole CPUs");
        assert_eq!(b.time_limit_minutes, Some(61));
        assert_eq!(b.partition.as_deref(), Some("gpu,debug"));
        assert_eq!(b.command, ["torchrun", "train.py"]);
        assert_eq!(b.env, [("COMPUTENET_ATTEMPT".to_string(), "1".to_string()), ("LR".to_string(), "0.1".to_string())]);
    }

    #[test]
    fn each_admission_gets_a_new_attempt_key() {
        assert!(key(&training_job(None)).ends_with(".0"));
        assert!(key(&training_job(Some(2))).ends_with(".2"));
        assert_ne!(key(&training_job(Some(1))), key(&training_job(Some(2))), "resumed: admitted again");
        assert!(key(&training_job(Some(-4))).ends_with(".0"), "a negative number from a hostile status");
    }
}

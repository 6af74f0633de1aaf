//! What one attempt of a TrainingJob runs as on any member: its size (an elastic job may
//! run at another size than it asked for), its number, the environment that tells the
//! training code about both, and how long it has to checkpoint when stopped.

use computenet_api::TrainingJob;

/// The gang's size for this attempt: the placement's, else the spec's (at least 1).
pub fn replicas(tj: &TrainingJob) -> i32 {
    let placed = tj.status.as_ref().and_then(|s| s.placement.as_ref()).and_then(|p| p.replicas);
    placed.unwrap_or(tj.spec.replicas).max(1)
}

/// The attempt number as the status stands (0 before the first admission).
pub fn number(tj: &TrainingJob) -> u32 {
    let stored = tj.status.as_ref().and_then(|s| s.attempt).unwrap_or(0);
    u32::try_from(stored).unwrap_or(0)
}

/// Whether the job checkpoints and may be stopped and started again.
pub fn restartable(tj: &TrainingJob) -> bool {
    tj.spec.checkpoint.as_ref().is_some_and(|c| c.restartable)
}

/// Seconds a restartable job has between SIGTERM and the kill; `None` for a rigid job
/// (the member's default applies).
pub fn grace_period_s(tj: &TrainingJob) -> Option<u32> {
    let c = tj.spec.checkpoint.as_ref().filter(|c| c.restartable)?;
    Some(u32::try_from(c.grace_period_seconds).unwrap_or(0))
}

/// The environment of the attempt beside WORLD_SIZE: its number, and for an elastic job
/// the size range as torchrun reads it (`PET_NNODES` is `--nnodes`).
pub fn env(tj: &TrainingJob) -> Vec<(String, String)> {
    let mut env = vec![("COMPUTENET_ATTEMPT".to_string(), number(tj).to_string())];
    if let Some(e) = &tj.spec.elastic {
        env.push(("PET_NNODES".to_string(), format!("{}:{}", e.min_replicas, e.max_replicas)));
    }
    env
}

/// The attempt an object was made for, from its label (`None`: made before attempts
/// were labelled, taken for the current one).
pub fn of_labels(labels: Option<&std::collections::BTreeMap<String, String>>) -> Option<u32> {
    labels?.get(crate::labels::ATTEMPT)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(yaml_extra: &str, status: Option<serde_json::Value>) -> TrainingJob {
        let mut v: serde_json::Value = serde_yaml::from_str(&format!(
            r#"
apiVersion: computenet.io/v1alpha1
kind: TrainingJob
metadata: {{name: j, namespace: n, uid: u-1}}
spec:
  queueName: q
  replicas: 2
  resources: {{cpu: "1", memory: 1Gi}}
  workload: {{image: x, command: ["true"]}}
{yaml_extra}
"#
        ))
        .expect("yaml");
        if let Some(s) = status {
            v["status"] = s;
        }
        serde_json::from_value(v).expect("job")
    }

    #[test]
    fn the_size_is_the_placements_and_the_environment_names_attempt_and_range() {
        let rigid = job("", None);
        assert_eq!((replicas(&rigid), number(&rigid)), (2, 0));
        assert_eq!(env(&rigid), [("COMPUTENET_ATTEMPT".to_string(), "0".to_string())]);
        assert_eq!(grace_period_s(&rigid), None);
        let status = serde_json::json!({"attempt": 3, "placement": {"cluster": "ai-1", "gpus": 4, "replicas": 4, "estimatedRuntimeSeconds": 1.0, "estimatedEnergyKWh": 1.0, "estimatedCost": 1.0}});
        let elastic = job(
            "  elastic: {minReplicas: 2, maxReplicas: 4}\n  checkpoint: {restartable: true, gracePeriodSeconds: 45}",
            Some(status),
        );
        assert_eq!((replicas(&elastic), number(&elastic)), (4, 3));
        assert!(env(&elastic).contains(&("PET_NNODES".to_string(), "2:4".to_string())));
        assert!(env(&elastic).contains(&("COMPUTENET_ATTEMPT".to_string(), "3".to_string())));
        assert_eq!(grace_period_s(&elastic), Some(45));
        let not_restartable = job("  checkpoint: {restartable: false}", None);
        assert_eq!(grace_period_s(&not_restartable), None);
    }
}

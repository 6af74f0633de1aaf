//! Turning the resources into the core's types, with errors that name the field.

use crate::compute_queue::{self, ComputeQueueSpec, QuotaSpec};
use crate::error::{Error, Result};
use crate::member_cluster::EfficiencyProfile;
use crate::training_job::{self, TrainingJobSpec};
use computenet_core::accelerator::AcceleratorSpec;
use computenet_core::quantity::{parse_bytes, parse_count, parse_cpu_millis};
use computenet_core::queue::{PreemptionPolicy, PreemptionScope, QueueingStrategy, Quota, ResourceName};
use computenet_core::{
    AcceleratorConstraint, ClusterEfficiency, ClusterKind, Job, Objective, Queue, ReplicaRequest, Work,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::BTreeMap;

/// The text of an int-or-string quantity.
pub fn quantity_text(q: &IntOrString) -> String {
    match q {
        IntOrString::Int(i) => i.to_string(),
        IntOrString::String(s) => s.clone(),
    }
}

fn parse_with(field: &str, q: &IntOrString, parse: fn(&str) -> computenet_core::Result<u64>) -> Result<u64> {
    parse(&quantity_text(q)).map_err(|e| Error::field(field, e.to_string()))
}

/// The core's cluster kind.
pub fn cluster_kind(kind: training_job::ClusterKind) -> ClusterKind {
    match kind {
        training_job::ClusterKind::General => ClusterKind::General,
        training_job::ClusterKind::AI => ClusterKind::AI,
        training_job::ClusterKind::HPC => ClusterKind::HPC,
    }
}

/// A TrainingJob as the core sees it. `id` is its UID; `submitted_at` its creation time
/// in seconds.
pub fn job(id: &str, spec: &TrainingJobSpec, submitted_at: u64) -> Result<Job> {
    let replicas = u32::try_from(spec.replicas)
        .ok()
        .filter(|r| *r > 0)
        .ok_or_else(|| Error::field("spec.replicas", "must be at least 1"))?;
    let accelerators = match &spec.resources.accelerators {
        Some(a) => u32::try_from(a.count)
            .ok()
            .filter(|c| *c > 0)
            .ok_or_else(|| Error::field("spec.resources.accelerators.count", "must be at least 1"))?,
        None => 0,
    };
    let per_replica = ReplicaRequest {
        cpu_millis: parse_with("spec.resources.cpu", &spec.resources.cpu, parse_cpu_millis)?,
        memory_bytes: parse_with("spec.resources.memory", &spec.resources.memory, parse_bytes)?,
        accelerators,
        extended: BTreeMap::new(),
    };
    let accelerator = spec
        .resources
        .accelerators
        .as_ref()
        .map(|a| AcceleratorConstraint {
            types: a.types.clone(),
            min_memory_gib: a.min_memory_gi_b.and_then(|m| u32::try_from(m).ok()),
        })
        .unwrap_or_default();
    let w = &spec.work;
    let work = match (&w.model, w.steps, w.gpu_hours) {
        (Some(model), Some(steps), None) => Work::ModelSteps {
            model: model.clone(),
            steps: u64::try_from(steps).map_err(|_| Error::field("spec.work.steps", "must be positive"))?,
            batch_size: w.batch_size.and_then(|b| u32::try_from(b).ok()),
        },
        (None, None, Some(hours)) if hours.is_finite() && hours >= 0.0 => Work::DeviceHours {
            hours,
            reference: w.reference_accelerator.clone().unwrap_or_else(|| "V100".to_string()),
        },
        (None, None, None) => Work::Unknown,
        _ => return Err(Error::field("spec.work", "give model and steps, or gpuHours")),
    };
    let objective = match spec.placement.objective {
        training_job::Objective::Fastest => Objective::Fastest,
        training_job::Objective::Cheapest => Objective::Cheapest,
        training_job::Objective::Greenest => Objective::Greenest,
        training_job::Objective::Balanced => Objective::Balanced,
    };
    Ok(Job {
        id: id.to_string(),
        queue: spec.queue_name.clone(),
        priority: spec.priority,
        submitted_at,
        replicas,
        per_replica,
        accelerator,
        cluster_kinds: spec.placement.cluster_kinds.iter().copied().map(cluster_kind).collect(),
        sites: spec.placement.sites.clone(),
        data_set: spec.placement.data_set.clone(),
        work,
        objective,
        max_runtime_s: spec.max_run_seconds.and_then(|s| u64::try_from(s).ok()),
    })
}

fn resource_name(resource: &str) -> ResourceName {
    match resource {
        "cpu" => ResourceName::Cpu,
        "memory" => ResourceName::Memory,
        r if r.ends_with("/gpu") || r.ends_with("/npu") || r == "accelerators" => ResourceName::Accelerators,
        other => ResourceName::Extended(other.to_string()),
    }
}

fn quota(i: usize, q: &QuotaSpec) -> Result<Quota> {
    let resource = resource_name(&q.resource);
    let parse: fn(&str) -> computenet_core::Result<u64> = match resource {
        ResourceName::Cpu => parse_cpu_millis,
        ResourceName::Memory => parse_bytes,
        _ => parse_count,
    };
    let field = |f: &str| format!("spec.quotas[{i}].{f}");
    Ok(Quota {
        resource,
        accelerator: q.accelerator.clone(),
        nominal: parse_with(&field("nominal"), &q.nominal, parse)?,
        borrowing_limit: q
            .borrowing_limit
            .as_ref()
            .map(|v| parse_with(&field("borrowingLimit"), v, parse))
            .transpose()?,
        lending_limit: q.lending_limit.as_ref().map(|v| parse_with(&field("lendingLimit"), v, parse)).transpose()?,
    })
}

/// A ComputeQueue as the core sees it.
pub fn queue(name: &str, spec: &ComputeQueueSpec) -> Result<Queue> {
    let scope = |s: compute_queue::PreemptionScope| match s {
        compute_queue::PreemptionScope::Never => PreemptionScope::Never,
        compute_queue::PreemptionScope::LowerPriority => PreemptionScope::LowerPriority,
        compute_queue::PreemptionScope::Any => PreemptionScope::Any,
    };
    Ok(Queue {
        name: name.to_string(),
        cohort: spec.cohort.clone(),
        weight: spec.weight,
        quotas: spec.quotas.iter().enumerate().map(|(i, q)| quota(i, q)).collect::<Result<_>>()?,
        preemption: PreemptionPolicy {
            within_queue: scope(spec.preemption.within_queue),
            reclaim_within_cohort: scope(spec.preemption.reclaim_within_cohort),
        },
        strategy: match spec.queueing_strategy {
            compute_queue::QueueingStrategy::StrictFIFO => QueueingStrategy::StrictFifo,
            compute_queue::QueueingStrategy::BestEffortFIFO => QueueingStrategy::BestEffortFifo,
        },
    })
}

/// A member's efficiency profile, and its accelerator figure overrides.
pub fn efficiency(profile: &EfficiencyProfile) -> (ClusterEfficiency, Vec<(String, AcceleratorSpec)>) {
    (
        ClusterEfficiency {
            pue: profile.pue,
            energy_price_per_kwh: profile.energy_price_per_kwh,
            carbon_g_per_kwh: profile.carbon_g_per_kwh,
        },
        profile
            .accelerators
            .iter()
            .map(|(name, f)| {
                (
                    name.clone(),
                    AcceleratorSpec {
                        peak_tflops: f.peak_tflops,
                        board_power_w: f.board_power_w,
                        memory_gib: f.memory_gi_b,
                    },
                )
            })
            .collect(),
    )
}

/// Whether a label selector matches labels (Kubernetes semantics; `None` matches nothing).
pub fn selector_matches(selector: Option<&LabelSelector>, labels: &BTreeMap<String, String>) -> bool {
    let Some(selector) = selector else { return false };
    let labels_ok = selector.match_labels.iter().flatten().all(|(k, v)| labels.get(k) == Some(v));
    let expressions_ok = selector.match_expressions.iter().flatten().all(|e| {
        let value = labels.get(&e.key);
        let values = e.values.as_deref().unwrap_or_default();
        match e.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        }
    });
    labels_ok && expressions_ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn spec(yaml: &str) -> TrainingJobSpec {
        serde_yaml::from_str(yaml).expect("valid spec")
    }

    const BERT: &str = r#"
queueName: research
priority: 100
replicas: 4
resources: {cpu: "8", memory: 64Gi, accelerators: {count: 8, types: [A100-80G, H800]}}
workload: {image: example/bert:1.0, command: ["torchrun", "train.py"]}
work: {model: bert, steps: 100000}
placement: {clusterKinds: [AI, HPC], dataSet: city-corpus, objective: Balanced}
maxRunSeconds: 86400
"#;

    #[test]
    fn the_issue_example_converts() {
        let j = job("uid-1", &spec(BERT), 7).expect("converts");
        assert_eq!((j.replicas, j.per_replica.accelerators, j.per_replica.cpu_millis), (4, 8, 8000));
        assert_eq!(j.per_replica.memory_bytes, 64 << 30);
        assert_eq!(j.accelerator.types, vec!["A100-80G", "H800"]);
        assert_eq!(j.cluster_kinds, vec![ClusterKind::AI, ClusterKind::HPC]);
        assert_eq!(j.work, Work::ModelSteps { model: "bert".into(), steps: 100_000, batch_size: None });
        assert_eq!((j.submitted_at, j.max_runtime_s, j.priority), (7, Some(86400), 100));
    }

    #[test]
    fn bad_quantities_name_their_field() {
        let bad = BERT.replace("memory: 64Gi", "memory: lots");
        let err = job("u", &spec(&bad), 0).unwrap_err().to_string();
        assert!(err.starts_with("spec.resources.memory:"), "{err}");
    }

    #[test]
    fn queues_convert_with_quantities() {
        let q: ComputeQueueSpec = serde_yaml::from_str(
            "cohort: city\nweight: 2\nquotas: [{resource: nvidia.com/gpu, nominal: 64, borrowingLimit: 32}, {resource: cpu, nominal: \"500\"}]\npreemption: {withinQueue: LowerPriority}\nqueueingStrategy: StrictFIFO",
        )
        .expect("valid");
        let q = queue("research", &q).expect("converts");
        assert_eq!(q.quotas[0].resource, ResourceName::Accelerators);
        assert_eq!((q.quotas[0].nominal, q.quotas[0].borrowing_limit), (64, Some(32)));
        assert_eq!(q.quotas[1].nominal, 500_000, "cpu in millicores");
        assert_eq!(q.strategy, QueueingStrategy::StrictFifo);
        assert_eq!(q.preemption.within_queue, PreemptionScope::LowerPriority);
    }

    #[test]
    fn selectors_follow_kubernetes_semantics() {
        let labels: BTreeMap<String, String> = [("computenet.io/tenant".to_string(), "research".to_string())].into();
        let by_label = LabelSelector { match_labels: Some(labels.clone()), ..LabelSelector::default() };
        assert!(selector_matches(Some(&by_label), &labels));
        assert!(!selector_matches(Some(&by_label), &BTreeMap::new()));
        assert!(selector_matches(Some(&LabelSelector::default()), &BTreeMap::new()), "{{}} matches all");
        assert!(!selector_matches(None, &labels), "no selector matches nothing");
        let not_in = LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "computenet.io/tenant".into(),
                operator: "NotIn".into(),
                values: Some(vec!["research".into()]),
            }]),
            ..LabelSelector::default()
        };
        assert!(!selector_matches(Some(&not_in), &labels));
        assert!(selector_matches(Some(&not_in), &BTreeMap::new()));
    }
}

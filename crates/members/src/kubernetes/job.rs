//! What a TrainingJob becomes on a Kubernetes member: an Indexed batch Job (one pod per
//! replica) and, for a gang of more than one replica, a headless Service for rank
//! discovery (a single replica is its own master, on localhost). Names and labels derive
//! from the TrainingJob's UID, so a repeated dispatch finds the objects it made before.

use crate::error::{Error, Result};
use crate::labels;
use crate::labels::remote_name;
use computenet_api::TrainingJob;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::api::{DeleteParams, PostParams, PropagationPolicy};
use kube::{Api, Client};
use serde_json::json;
use std::collections::BTreeMap;

/// Port of the rendezvous (torch.distributed's default).
pub const MASTER_PORT: u16 = 29500;

/// Labels of every object made for `tj` by the hub `hub`. Names up to 253 characters are
/// cut to fit a label value (in full in [`object_annotations`]).
fn object_labels(tj: &TrainingJob, hub: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (labels::MANAGED.to_string(), "true".to_string()),
        (labels::HUB.to_string(), hub.to_string()),
        (labels::JOB_UID.to_string(), labels::label_value(tj.metadata.uid.as_deref().unwrap_or_default())),
        (labels::JOB_NAMESPACE.to_string(), labels::label_value(tj.metadata.namespace.as_deref().unwrap_or_default())),
        (labels::JOB_NAME.to_string(), labels::label_value(tj.metadata.name.as_deref().unwrap_or_default())),
    ])
}

/// The TrainingJob's namespace and name in full.
fn object_annotations(tj: &TrainingJob) -> BTreeMap<String, String> {
    BTreeMap::from([
        (labels::JOB_NAMESPACE.to_string(), tj.metadata.namespace.clone().unwrap_or_default()),
        (labels::JOB_NAME.to_string(), tj.metadata.name.clone().unwrap_or_default()),
    ])
}

/// Whether the job's replicas need a Service to find each other.
pub fn needs_service(tj: &TrainingJob) -> bool {
    tj.spec.replicas > 1
}

/// The headless Service giving each replica a stable DNS name.
pub fn headless_service(tj: &TrainingJob, namespace: &str, hub: &str) -> Result<Service, kube::Error> {
    let name = remote_name(tj.metadata.uid.as_deref().unwrap_or_default());
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "labels": object_labels(tj, hub),
                     "annotations": object_annotations(tj)},
        "spec": {
            "clusterIP": "None",
            "selector": {labels::JOB_UID: labels::label_value(tj.metadata.uid.as_deref().unwrap_or_default())},
            "ports": [{"name": "rendezvous", "port": MASTER_PORT}],
            "publishNotReadyAddresses": true
        }
    }))
    .map_err(kube::Error::SerdeError)
}

/// The Indexed Job: completions = parallelism = replicas, per-replica resources, a
/// nodeSelector for the chosen accelerator type, the distributed-training environment.
pub fn indexed_job(tj: &TrainingJob, namespace: &str, gpu_label: Option<&str>, hub: &str) -> Result<Job, kube::Error> {
    let uid = tj.metadata.uid.clone().unwrap_or_default();
    let name = remote_name(&uid);
    let spec = &tj.spec;
    let mut resources = json!({"cpu": computenet_api::convert::quantity_text(&spec.resources.cpu),
                               "memory": computenet_api::convert::quantity_text(&spec.resources.memory)});
    if let Some(a) = &spec.resources.accelerators {
        resources[labels::GPU_RESOURCE] = json!(a.count.to_string());
    }
    let mut env = vec![
        json!({"name": "WORLD_SIZE", "value": spec.replicas.to_string()}),
        json!({"name": "RANK", "valueFrom": {"fieldRef": {"fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}}}),
        json!({"name": "MASTER_ADDR", "value": master_addr(tj, &name, namespace)}),
        json!({"name": "MASTER_PORT", "value": MASTER_PORT.to_string()}),
        json!({"name": "COMPUTENET_JOB", "value": format!("{}/{}", tj.metadata.namespace.as_deref().unwrap_or_default(), tj.metadata.name.as_deref().unwrap_or_default())}),
    ];
    env.extend(spec.workload.env.iter().map(|e| json!({"name": e.name, "value": e.value})));
    // TrainingJob annotations under computenet.io/ travel to the pods (run hints, test knobs).
    let mut pod_annotations: BTreeMap<String, String> = tj
        .metadata
        .annotations
        .iter()
        .flatten()
        .filter(|(k, _)| k.starts_with("computenet.io/"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    pod_annotations.extend(object_annotations(tj));
    let mut pod_spec = json!({
        "restartPolicy": "Never",
        "containers": [{
            "name": "trainer",
            "image": spec.workload.image,
            "command": spec.workload.command,
            "env": env,
            "ports": [{"containerPort": MASTER_PORT, "name": "rendezvous"}],
            "resources": {"requests": resources, "limits": resources}
        }]
    });
    if needs_service(tj) {
        pod_spec["subdomain"] = json!(name);
    }
    if let Some(label) = gpu_label {
        pod_spec["nodeSelector"] = json!({labels::GPU_PRODUCT: label});
    }
    let mut job = json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": namespace, "labels": object_labels(tj, hub),
                     "annotations": object_annotations(tj)},
        "spec": {
            "completionMode": "Indexed",
            "completions": spec.replicas,
            "parallelism": spec.replicas,
            // A gang: one failed replica fails the job.
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": object_labels(tj, hub), "annotations": pod_annotations},
                "spec": pod_spec
            }
        }
    });
    if let Some(seconds) = spec.max_run_seconds {
        job["spec"]["activeDeadlineSeconds"] = json!(seconds);
    }
    serde_json::from_value(job).map_err(kube::Error::SerdeError)
}

/// Rank 0's address: its DNS name under the headless Service, or localhost when alone.
fn master_addr(tj: &TrainingJob, name: &str, namespace: &str) -> String {
    if needs_service(tj) {
        format!("{name}-0.{name}.{namespace}.svc")
    } else {
        "localhost".to_string()
    }
}

async fn create_if_absent<K>(api: &Api<K>, object: &K) -> Result<(), kube::Error>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    match api.create(&PostParams::default(), object).await {
        Ok(_) => Ok(()),
        // Already there from an earlier dispatch: that is the point of deterministic names.
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

/// Longest a single member call may take: a hung member must not stall the loop.
pub const MEMBER_CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

async fn bounded<T>(what: &str, f: impl std::future::Future<Output = Result<T, kube::Error>>) -> Result<T> {
    match tokio::time::timeout(MEMBER_CALL_TIMEOUT, f).await {
        Ok(result) => result.map_err(Error::kube(what)),
        Err(_) => Err(Error::Timeout { what: what.to_string(), seconds: MEMBER_CALL_TIMEOUT.as_secs() }),
    }
}

/// Creates the Job (and its Service) on the member unless they exist (see [`ensure_namespace`]).
/// The objects carry the hub's identity `hub`.
pub async fn dispatch(
    member: &Client,
    namespace: &str,
    tj: &TrainingJob,
    gpu_label: Option<&str>,
    hub: &str,
) -> Result<()> {
    bounded("dispatch", dispatch_unbounded(member, namespace, tj, gpu_label, hub)).await
}

async fn dispatch_unbounded(
    member: &Client,
    namespace: &str,
    tj: &TrainingJob,
    gpu_label: Option<&str>,
    hub: &str,
) -> Result<(), kube::Error> {
    if needs_service(tj) {
        let service = headless_service(tj, namespace, hub)?;
        create_if_absent(&Api::<Service>::namespaced(member.clone(), namespace), &service).await?;
    }
    let job = indexed_job(tj, namespace, gpu_label, hub)?;
    create_if_absent(&Api::<Job>::namespaced(member.clone(), namespace), &job).await
}

/// Creates the member namespace jobs go to, unless it exists.
pub async fn ensure_namespace(member: &Client, namespace: &str) -> Result<()> {
    let ns: Namespace =
        serde_json::from_value(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}))
            .map_err(|e| Error::Config(format!("namespace {namespace:?}: {e}")))?;
    bounded(&format!("creating namespace {namespace}"), create_if_absent(&Api::<Namespace>::all(member.clone()), &ns))
        .await
}

/// Deletes the Job (with its pods) and the Service; absent objects are fine.
pub async fn cancel(member: &Client, namespace: &str, uid: &str) -> Result<()> {
    bounded("cancel", cancel_unbounded(member, namespace, uid)).await
}

async fn cancel_unbounded(member: &Client, namespace: &str, uid: &str) -> Result<(), kube::Error> {
    let name = remote_name(uid);
    let dp = DeleteParams { propagation_policy: Some(PropagationPolicy::Background), ..DeleteParams::default() };
    for result in [
        Api::<Job>::namespaced(member.clone(), namespace).delete(&name, &dp).await.map(|_| ()),
        Api::<Service>::namespaced(member.clone(), namespace).delete(&name, &dp).await.map(|_| ()),
    ] {
        match result {
            Ok(()) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn training_job() -> TrainingJob {
        let mut tj: TrainingJob = serde_yaml::from_str(
            r#"
apiVersion: computenet.io/v1alpha1
kind: TrainingJob
metadata: {name: bert-large, namespace: team-a, uid: 0a1b2c3d-4e5f-6789-abcd-ef0123456789,
           annotations: {computenet.io/run-seconds: "5", other.io/x: "y"}}
spec:
  queueName: research
  replicas: 4
  resources: {cpu: "8", memory: 64Gi, accelerators: {count: 8, types: [H800]}}
  workload: {image: example/bert:1.0, command: ["torchrun", "train.py"], env: [{name: LR, value: "0.1"}]}
  maxRunSeconds: 86400
"#,
        )
        .expect("valid");
        tj.status = None;
        tj
    }

    #[test]
    fn the_job_is_an_indexed_gang_with_the_training_environment() {
        let job = indexed_job(&training_job(), "computenet-jobs", Some("NVIDIA-H800"), "hub-a").expect("builds");
        let v = serde_json::to_value(&job).expect("json");
        let spec = &v["spec"];
        assert_eq!(spec["completionMode"], "Indexed");
        assert_eq!((spec["completions"].as_i64(), spec["parallelism"].as_i64()), (Some(4), Some(4)));
        assert_eq!(spec["activeDeadlineSeconds"], 86400);
        let pod = &spec["template"]["spec"];
        assert_eq!(pod["nodeSelector"][labels::GPU_PRODUCT], "NVIDIA-H800");
        let c = &pod["containers"][0];
        assert_eq!(c["resources"]["requests"][labels::GPU_RESOURCE], "8");
        assert_eq!(c["resources"]["requests"]["memory"], "64Gi");
        let env: BTreeMap<String, serde_json::Value> = c["env"]
            .as_array()
            .expect("env")
            .iter()
            .map(|e| (e["name"].as_str().unwrap_or("").to_string(), e.clone()))
            .collect();
        assert_eq!(env["WORLD_SIZE"]["value"], "4");
        assert_eq!(
            env["MASTER_ADDR"]["value"],
            "cn-0a1b2c3d4e5f6789abcd-0.cn-0a1b2c3d4e5f6789abcd.computenet-jobs.svc"
        );
        assert!(env["RANK"]["valueFrom"]["fieldRef"]["fieldPath"]
            .as_str()
            .expect("path")
            .contains("job-completion-index"));
        assert_eq!(env["LR"]["value"], "0.1");
        let annotations = &spec["template"]["metadata"]["annotations"];
        assert_eq!(annotations["computenet.io/run-seconds"], "5");
        assert!(annotations.get("other.io/x").is_none(), "only computenet.io/ annotations travel");
        assert_eq!(v["metadata"]["labels"][labels::JOB_UID], "0a1b2c3d-4e5f-6789-abcd-ef0123456789");
        assert_eq!(v["metadata"]["labels"][labels::HUB], "hub-a");
        assert_eq!(spec["template"]["metadata"]["labels"][labels::HUB], "hub-a");
    }

    #[test]
    fn a_name_of_253_characters_fits_the_labels_and_stays_whole_in_annotations() {
        let mut tj = training_job();
        let name = "n".repeat(253);
        tj.metadata.name = Some(name.clone());
        let v = serde_json::to_value(indexed_job(&tj, "ns", None, "hub-a").expect("builds")).expect("json");
        let label = v["metadata"]["labels"][labels::JOB_NAME].as_str().expect("label");
        assert!(labels::is_label_value(label), "{label}");
        assert_eq!(v["metadata"]["annotations"][labels::JOB_NAME], name.as_str());
        assert_eq!(v["spec"]["template"]["metadata"]["annotations"][labels::JOB_NAME], name.as_str());
        let svc = serde_json::to_value(headless_service(&tj, "ns", "hub-a").expect("builds")).expect("json");
        assert!(labels::is_label_value(svc["metadata"]["labels"][labels::JOB_NAME].as_str().expect("label")));
    }

    #[test]
    fn a_single_replica_is_its_own_master_without_a_service() {
        let mut tj = training_job();
        tj.spec.replicas = 1;
        assert!(!needs_service(&tj));
        let v = serde_json::to_value(indexed_job(&tj, "ns", None, "hub-a").expect("builds")).expect("json");
        let pod = &v["spec"]["template"]["spec"];
        assert!(pod.get("subdomain").is_none(), "no Service to be a subdomain of");
        let env = pod["containers"][0]["env"].as_array().expect("env");
        let master = env.iter().find(|e| e["name"] == "MASTER_ADDR").expect("MASTER_ADDR");
        assert_eq!(master["value"], "localhost");
        assert!(needs_service(&training_job()), "a gang of 4 needs one");
    }

    #[test]
    fn the_service_is_headless_and_selects_the_gang() {
        let svc =
            serde_json::to_value(headless_service(&training_job(), "ns", "hub-a").expect("builds")).expect("json");
        assert_eq!(svc["spec"]["clusterIP"], "None");
        assert_eq!(svc["spec"]["selector"][labels::JOB_UID], "0a1b2c3d-4e5f-6789-abcd-ef0123456789");
    }
}

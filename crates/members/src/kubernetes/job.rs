//! What a TrainingJob becomes on a Kubernetes member: an Indexed batch Job (one pod per
//! replica) and, for a gang of more than one replica, a NetworkPolicy admitting only the
//! gang's own pods and a headless Service for rank discovery (a single replica is its own
//! master, on localhost, and the namespace's default-deny policy closes it to all). Names
//! and labels derive from the TrainingJob's UID, so a repeated dispatch finds the objects
//! it made before.
//!
//! Each hub namespace (tenant) has its own member namespace, labelled with a Pod Security
//! level; the pods are built to pass `restricted`: non-root, no privilege escalation, all
//! capabilities dropped, the runtime's seccomp profile, no service-account token.

use crate::attempt;
use crate::error::{Error, Result};
use crate::labels;
use crate::labels::remote_name;
use computenet_api::member_cluster::PodSecurityLevel;
use computenet_api::TrainingJob;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, PropagationPolicy};
use kube::{Api, Client};
use serde_json::json;
use std::collections::BTreeMap;

/// Port of the rendezvous (torch.distributed's default).
pub const MASTER_PORT: u16 = 29500;

/// The user and group tenant pods run as: `nobody`. There is no way yet for a job to ask
/// for another non-root user.
pub const POD_USER: i64 = 65534;

/// Name of the NetworkPolicy in every member namespace that denies ingress to pods no
/// other policy admits.
pub const DEFAULT_DENY: &str = "computenet-default-deny-ingress";

/// Pod Security admission's labels.
const POD_SECURITY: &str = "pod-security.kubernetes.io/";

/// Labels of every object made for `tj` by the hub `hub`. Names up to 253 characters are
/// cut to fit a label value (in full in [`object_annotations`]).
pub(crate) fn object_labels(tj: &TrainingJob, hub: &str) -> BTreeMap<String, String> {
    let mut l = shared_labels(tj, hub);
    l.insert(labels::ATTEMPT.to_string(), attempt::number(tj).to_string());
    l
}

/// The labels of objects every attempt shares (the Service and the NetworkPolicy, which
/// select the gang by UID whatever its attempt).
fn shared_labels(tj: &TrainingJob, hub: &str) -> BTreeMap<String, String> {
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

/// Whether the job is a gang of more than one replica, whose replicas need a Service to
/// find each other and a NetworkPolicy to admit each other. A single replica talks only
/// to itself, on localhost, which no policy closes: it keeps the namespace's default deny
/// and costs the member one write less.
pub fn is_gang(tj: &TrainingJob) -> bool {
    attempt::replicas(tj) > 1
}

/// The headless Service giving each replica a stable DNS name.
pub fn headless_service(tj: &TrainingJob, namespace: &str, hub: &str) -> Result<Service, kube::Error> {
    let name = remote_name(tj.metadata.uid.as_deref().unwrap_or_default());
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "labels": shared_labels(tj, hub),
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

/// The Indexed Job: completions = parallelism = the attempt's replicas, per-replica
/// resources, a nodeSelector for the chosen accelerator type, the distributed-training
/// environment (WORLD_SIZE is the attempt's size; an elastic job also gets its range as
/// `PET_NNODES`), and for a restartable job its grace period between SIGTERM and the kill.
pub fn indexed_job(tj: &TrainingJob, namespace: &str, gpu_label: Option<&str>, hub: &str) -> Result<Job, kube::Error> {
    let uid = tj.metadata.uid.clone().unwrap_or_default();
    let name = remote_name(&uid);
    let spec = &tj.spec;
    let mut resources = json!({"cpu": computenet_api::convert::quantity_text(&spec.resources.cpu),
                               "memory": computenet_api::convert::quantity_text(&spec.resources.memory)});
    if let Some(a) = &spec.resources.accelerators {
        resources[labels::GPU_RESOURCE] = json!(a.count.to_string());
    }
    let replicas = attempt::replicas(tj);
    let mut env = vec![
        json!({"name": "WORLD_SIZE", "value": replicas.to_string()}),
        json!({"name": "RANK", "valueFrom": {"fieldRef": {"fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}}}),
        json!({"name": "MASTER_ADDR", "value": master_addr(tj, &name, namespace)}),
        json!({"name": "MASTER_PORT", "value": MASTER_PORT.to_string()}),
        json!({"name": "COMPUTENET_JOB", "value": format!("{}/{}", tj.metadata.namespace.as_deref().unwrap_or_default(), tj.metadata.name.as_deref().unwrap_or_default())}),
    ];
    env.extend(attempt::env(tj).into_iter().map(|(name, value)| json!({"name": name, "value": value})));
    // Only a TrainingJob with a `source` has no workload, and that is dispatched as its source.
    let Some(workload) = spec.workload.as_ref() else {
        return Err(kube::Error::Service("the TrainingJob has no workload to run".into()));
    };
    env.extend(workload.env.iter().map(|e| json!({"name": e.name, "value": e.value})));
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
        // Tenant code gets no credentials of the member and no view of other Services.
        "automountServiceAccountToken": false,
        "enableServiceLinks": false,
        // What Pod Security `restricted` asks for.
        "securityContext": {
            "runAsNonRoot": true,
            "runAsUser": POD_USER,
            "runAsGroup": POD_USER,
            "seccompProfile": {"type": "RuntimeDefault"}
        },
        "containers": [{
            "name": "trainer",
            "image": workload.image,
            "command": workload.command,
            "env": env,
            "ports": [{"containerPort": MASTER_PORT, "name": "rendezvous"}],
            "resources": {"requests": resources, "limits": resources},
            "securityContext": {
                "allowPrivilegeEscalation": false,
                "capabilities": {"drop": ["ALL"]}
            }
        }]
    });
    if is_gang(tj) {
        pod_spec["subdomain"] = json!(name);
    }
    if let Some(grace) = attempt::grace_period_s(tj) {
        // Deleting the Job (a move, a resize, a preemption) gives each pod SIGTERM and
        // this long to write its checkpoint.
        pod_spec["terminationGracePeriodSeconds"] = json!(grace);
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
            "completions": replicas,
            "parallelism": replicas,
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
    if is_gang(tj) {
        format!("{name}-0.{name}.{namespace}.svc")
    } else {
        "localhost".to_string()
    }
}

/// The gang's NetworkPolicy: its pods accept connections only from pods of the same gang
/// (same namespace, same TrainingJob UID), on any port: after the rendezvous on
/// [`MASTER_PORT`], NCCL and Gloo connect the ranks on ports of their choosing.
pub fn gang_network_policy(tj: &TrainingJob, namespace: &str, hub: &str) -> Result<NetworkPolicy, kube::Error> {
    let uid = labels::label_value(tj.metadata.uid.as_deref().unwrap_or_default());
    gang_network_policy_selecting(tj, namespace, hub, labels::JOB_UID, &uid)
}

/// The gang's NetworkPolicy, the gang being the pods labelled `key: value`.
pub fn gang_network_policy_selecting(
    tj: &TrainingJob,
    namespace: &str,
    hub: &str,
    key: &str,
    value: &str,
) -> Result<NetworkPolicy, kube::Error> {
    let name = remote_name(tj.metadata.uid.as_deref().unwrap_or_default());
    let gang = json!({key: value});
    serde_json::from_value(json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": namespace, "labels": shared_labels(tj, hub),
                     "annotations": object_annotations(tj)},
        "spec": {
            "podSelector": {"matchLabels": gang},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"podSelector": {"matchLabels": gang}}]}]
        }
    }))
    .map_err(kube::Error::SerdeError)
}

/// The namespace's default: no ingress to any pod that no gang policy admits.
pub fn default_deny_policy(namespace: &str, hub: &str) -> Result<NetworkPolicy, kube::Error> {
    serde_json::from_value(json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": DEFAULT_DENY, "namespace": namespace,
                     "labels": {labels::MANAGED: "true", labels::HUB: hub}},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}
    }))
    .map_err(kube::Error::SerdeError)
}

/// The labels of the member namespace of hub namespace `tenant`: whose it is, and the Pod
/// Security level admission enforces there (warn and audit at the same level).
pub fn namespace_labels(hub: &str, tenant: &str, level: PodSecurityLevel) -> BTreeMap<String, String> {
    let mut l = BTreeMap::from([
        (labels::MANAGED.to_string(), "true".to_string()),
        (labels::HUB.to_string(), hub.to_string()),
        (labels::TENANT_NAMESPACE.to_string(), labels::label_value(tenant)),
        (format!("{POD_SECURITY}enforce-version"), "latest".to_string()),
    ]);
    for mode in ["enforce", "warn", "audit"] {
        l.insert(format!("{POD_SECURITY}{mode}"), level.as_str().to_string());
    }
    l
}

/// What to change on an existing member namespace with labels `existing` so it carries
/// `wanted` (from [`namespace_labels`]): nothing, labels to merge in, or a refusal when the
/// namespace belongs to another tenant (its tenant label differs). A namespace made by
/// another hub sharing the member keeps that hub's label: namespaces are per tenant, and
/// every object in them says which hub made it.
pub fn namespace_update(
    existing: &BTreeMap<String, String>,
    wanted: &BTreeMap<String, String>,
) -> Result<Option<BTreeMap<String, String>>, String> {
    if let (Some(have), Some(want)) = (existing.get(labels::TENANT_NAMESPACE), wanted.get(labels::TENANT_NAMESPACE)) {
        if have != want {
            return Err(format!("it holds the jobs of hub namespace {have:?}, not {want:?}"));
        }
    }
    let missing: BTreeMap<String, String> = wanted
        .iter()
        .filter(|(k, v)| existing.get(*k) != Some(*v) && !(k.as_str() == labels::HUB && existing.contains_key(*k)))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Ok((!missing.is_empty()).then_some(missing))
}

pub(crate) async fn create_if_absent<K: kube::Resource + Clone + serde::Serialize>(
    api: &Api<K>,
    object: &K,
) -> Result<(), kube::Error> {
    match create_unread(api, object).await {
        Ok(_) => Ok(()),
        // Already there from an earlier dispatch: that is the point of deterministic names.
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

/// Creates `object` as `api.create` does, but without decoding the object the member sends
/// back: nothing reads it, and decoding a Job whole cost more than building it.
async fn create_unread<K: kube::Resource + Clone + serde::Serialize>(
    api: &Api<K>,
    object: &K,
) -> Result<(), kube::Error> {
    let body = serde_json::to_vec(object).map_err(kube::Error::SerdeError)?;
    let mut request = kube::core::Request::new(api.resource_url())
        .create(&PostParams::default(), body)
        .map_err(kube::Error::BuildRequest)?;
    request.extensions_mut().insert("create");
    // Still read through, so that a reply that is not JSON is an error as before.
    api.clone().into_client().request::<serde::de::IgnoredAny>(request).await.map(|_| ())
}

/// Longest a single member call may take: a hung member must not stall the loop.
pub const MEMBER_CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

async fn bounded<T>(what: &str, f: impl std::future::Future<Output = Result<T, kube::Error>>) -> Result<T> {
    match tokio::time::timeout(MEMBER_CALL_TIMEOUT, f).await {
        Ok(result) => result.map_err(Error::kube(what)),
        Err(_) => Err(Error::Timeout { what: what.to_string(), seconds: MEMBER_CALL_TIMEOUT.as_secs() }),
    }
}

/// Creates the job's Job in the member namespace `namespace` unless it exists, and for a
/// gang first its NetworkPolicy and Service, so that no pod of the gang is ever open to
/// other pods (a single replica is closed by the namespace's default deny, see
/// [`ensure_namespace`]). The objects carry the hub's identity `hub`.
pub async fn dispatch(
    member: &Client,
    namespace: &str,
    tj: &TrainingJob,
    gpu_label: Option<&str>,
    hub: &str,
) -> Result<()> {
    bounded("dispatch", dispatch_unbounded(member, namespace, tj, gpu_label, hub)).await?.map_err(Error::Config)
}

/// The outer error is the member's; the inner one an earlier attempt's Job in the way.
async fn dispatch_unbounded(
    member: &Client,
    namespace: &str,
    tj: &TrainingJob,
    gpu_label: Option<&str>,
    hub: &str,
) -> Result<Result<(), String>, kube::Error> {
    if is_gang(tj) {
        let policy = gang_network_policy(tj, namespace, hub)?;
        create_if_absent(&Api::<NetworkPolicy>::namespaced(member.clone(), namespace), &policy).await?;
        let service = headless_service(tj, namespace, hub)?;
        create_if_absent(&Api::<Service>::namespaced(member.clone(), namespace), &service).await?;
    }
    let job = indexed_job(tj, namespace, gpu_label, hub)?;
    let jobs = Api::<Job>::namespaced(member.clone(), namespace);
    match create_unread(&jobs, &job).await {
        Ok(()) => Ok(Ok(())),
        // Found by name: ours from an earlier dispatch of this attempt, or an earlier
        // attempt's that is not gone yet, which must never be taken for this one.
        Err(kube::Error::Api(s)) if s.code == 409 => {
            let existing = jobs.get(&remote_name(tj.metadata.uid.as_deref().unwrap_or_default())).await?;
            Ok(match attempt::of_labels(existing.metadata.labels.as_ref()) {
                Some(a) if a != attempt::number(tj) => Err(format!(
                    "the Job of attempt {a} is still there: it is stopped before attempt {} starts",
                    attempt::number(tj)
                )),
                _ => Ok(()),
            })
        }
        Err(e) => Err(e),
    }
}

/// Creates the member namespace `namespace` of hub namespace `tenant` unless it exists,
/// with its labels ([`namespace_labels`]) and default-deny ingress policy; an existing one
/// gets labels it lacks (a changed Pod Security level), and one holding another tenant's
/// jobs is refused.
pub async fn ensure_namespace(
    member: &Client,
    namespace: &str,
    tenant: &str,
    hub: &str,
    level: PodSecurityLevel,
) -> Result<()> {
    let what = format!("preparing namespace {namespace}");
    match tokio::time::timeout(MEMBER_CALL_TIMEOUT, ensure_namespace_unbounded(member, namespace, tenant, hub, level))
        .await
    {
        Ok(Ok(Ok(()))) => Ok(()),
        Ok(Ok(Err(conflict))) => Err(Error::Config(format!("member namespace {namespace}: {conflict}"))),
        Ok(Err(e)) => Err(Error::kube(&what)(e)),
        Err(_) => Err(Error::Timeout { what, seconds: MEMBER_CALL_TIMEOUT.as_secs() }),
    }
}

/// The outer error is the member's, the inner one a namespace of another tenant.
async fn ensure_namespace_unbounded(
    member: &Client,
    namespace: &str,
    tenant: &str,
    hub: &str,
    level: PodSecurityLevel,
) -> Result<Result<(), String>, kube::Error> {
    let wanted = namespace_labels(hub, tenant, level);
    let ns: Namespace = serde_json::from_value(
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace, "labels": wanted}}),
    )
    .map_err(kube::Error::SerdeError)?;
    let api = Api::<Namespace>::all(member.clone());
    match api.create(&PostParams::default(), &ns).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {
            let existing = api.get(namespace).await?.metadata.labels.unwrap_or_default();
            match namespace_update(&existing, &wanted) {
                Err(conflict) => return Ok(Err(conflict)),
                Ok(None) => {}
                Ok(Some(missing)) => {
                    let patch = Patch::Merge(json!({"metadata": {"labels": missing}}));
                    api.patch(namespace, &PatchParams::default(), &patch).await?;
                }
            }
        }
        Err(e) => return Err(e),
    }
    let deny = default_deny_policy(namespace, hub)?;
    create_if_absent(&Api::<NetworkPolicy>::namespaced(member.clone(), namespace), &deny).await?;
    Ok(Ok(()))
}

/// Deletes the Job (with its pods), the Service and the NetworkPolicy; absent objects are fine.
pub async fn cancel(member: &Client, namespace: &str, uid: &str) -> Result<()> {
    bounded("cancel", cancel_unbounded(member, namespace, uid, None, None)).await
}

/// Stops a job gracefully: as [`cancel`], with `grace_s` seconds between SIGTERM and the
/// kill for its pods (they carry the same as terminationGracePeriodSeconds, which the
/// garbage collector's deletions use), and only the Job with UID `job_uid` when given (a
/// later attempt's Job of the same name is never deleted by a stale view).
pub async fn stop(
    member: &Client,
    namespace: &str,
    uid: &str,
    grace_s: Option<u32>,
    job_uid: Option<&str>,
) -> Result<()> {
    bounded("stop", cancel_unbounded(member, namespace, uid, grace_s, job_uid)).await
}

async fn cancel_unbounded(
    member: &Client,
    namespace: &str,
    uid: &str,
    grace_s: Option<u32>,
    job_uid: Option<&str>,
) -> Result<(), kube::Error> {
    let name = remote_name(uid);
    let dp = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        grace_period_seconds: grace_s,
        ..DeleteParams::default()
    };
    let job_dp = DeleteParams {
        preconditions: job_uid.map(|u| kube::api::Preconditions { uid: Some(u.to_string()), resource_version: None }),
        ..dp.clone()
    };
    // Pods still terminating after their policy is gone stay closed: the namespace's
    // default-deny policy selects them too.
    for result in [
        Api::<Job>::namespaced(member.clone(), namespace).delete(&name, &job_dp).await.map(|_| ()),
        Api::<Service>::namespaced(member.clone(), namespace).delete(&name, &dp).await.map(|_| ()),
        Api::<NetworkPolicy>::namespaced(member.clone(), namespace).delete(&name, &dp).await.map(|_| ()),
    ] {
        match result {
            Ok(()) => {}
            // Gone, or (a precondition that failed) another attempt's Job now.
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
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
    fn an_attempt_runs_at_its_placed_size_with_its_number_range_and_grace_period() {
        let mut tj = training_job();
        tj.spec.elastic = Some(computenet_api::training_job::ElasticSpec { min_replicas: 2, max_replicas: 4 });
        tj.spec.checkpoint = Some(computenet_api::training_job::CheckpointSpec {
            restartable: true,
            grace_period_seconds: 45,
            ..Default::default()
        });
        tj.status = Some(computenet_api::TrainingJobStatus {
            attempt: Some(3),
            placement: Some(computenet_api::training_job::PlacementStatus { replicas: Some(2), ..Default::default() }),
            ..Default::default()
        });
        let v = serde_json::to_value(indexed_job(&tj, "ns", None, "hub-a").expect("builds")).expect("json");
        assert_eq!((v["spec"]["completions"].as_i64(), v["spec"]["parallelism"].as_i64()), (Some(2), Some(2)));
        assert_eq!(v["metadata"]["labels"][labels::ATTEMPT], "3");
        assert_eq!(v["spec"]["template"]["metadata"]["labels"][labels::ATTEMPT], "3");
        let pod = &v["spec"]["template"]["spec"];
        assert_eq!(pod["terminationGracePeriodSeconds"], 45);
        let env: BTreeMap<String, String> = pod["containers"][0]["env"]
            .as_array()
            .expect("env")
            .iter()
            .filter_map(|e| Some((e["name"].as_str()?.to_string(), e["value"].as_str()?.to_string())))
            .collect();
        assert_eq!((env["WORLD_SIZE"].as_str(), env["PET_NNODES"].as_str()), ("2", "2:4"));
        assert_eq!(env["COMPUTENET_ATTEMPT"], "3");
        // Objects every attempt shares select the gang by UID, with no attempt label.
        let svc = serde_json::to_value(headless_service(&tj, "ns", "hub-a").expect("builds")).expect("json");
        assert!(svc["metadata"]["labels"].get(labels::ATTEMPT).is_none());
        let rigid =
            serde_json::to_value(indexed_job(&training_job(), "ns", None, "hub-a").expect("builds")).expect("json");
        assert!(rigid["spec"]["template"]["spec"].get("terminationGracePeriodSeconds").is_none(), "the default");
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
    fn a_single_replica_is_its_own_master_without_a_service_or_policy() {
        let mut tj = training_job();
        tj.spec.replicas = 1;
        assert!(!is_gang(&tj));
        let v = serde_json::to_value(indexed_job(&tj, "ns", None, "hub-a").expect("builds")).expect("json");
        let pod = &v["spec"]["template"]["spec"];
        assert!(pod.get("subdomain").is_none(), "no Service to be a subdomain of");
        let env = pod["containers"][0]["env"].as_array().expect("env");
        let master = env.iter().find(|e| e["name"] == "MASTER_ADDR").expect("MASTER_ADDR");
        assert_eq!(master["value"], "localhost");
        assert!(is_gang(&training_job()), "a gang of 4 needs one");
    }

    #[test]
    fn pods_pass_pod_security_restricted_and_get_no_token() {
        let v = serde_json::to_value(indexed_job(&training_job(), "ns", None, "hub-a").expect("builds")).expect("json");
        let pod = &v["spec"]["template"]["spec"];
        assert_eq!(pod["automountServiceAccountToken"], false);
        assert_eq!(pod["enableServiceLinks"], false);
        let sc = &pod["securityContext"];
        assert_eq!(sc["runAsNonRoot"], true);
        assert_eq!((sc["runAsUser"].as_i64(), sc["runAsGroup"].as_i64()), (Some(POD_USER), Some(POD_USER)));
        assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");
        let c = &pod["containers"][0]["securityContext"];
        assert_eq!(c["allowPrivilegeEscalation"], false);
        assert_eq!(c["capabilities"]["drop"], json!(["ALL"]));
        assert!(c.get("privileged").is_none() && pod.get("hostNetwork").is_none());
    }

    #[test]
    fn the_gang_policy_admits_only_the_gangs_own_pods() {
        let np =
            serde_json::to_value(gang_network_policy(&training_job(), "ns", "hub-a").expect("builds")).expect("json");
        let gang = json!({labels::JOB_UID: "0a1b2c3d-4e5f-6789-abcd-ef0123456789"});
        assert_eq!(np["metadata"]["name"], "cn-0a1b2c3d4e5f6789abcd");
        assert_eq!(np["metadata"]["labels"][labels::HUB], "hub-a");
        assert_eq!(np["spec"]["podSelector"]["matchLabels"], gang);
        assert_eq!(np["spec"]["policyTypes"], json!(["Ingress"]));
        let ingress = np["spec"]["ingress"].as_array().expect("ingress");
        assert_eq!(ingress.len(), 1);
        // No namespaceSelector: peers in this namespace only; the gang's pods, nobody else's.
        assert_eq!(ingress[0]["from"], json!([{"podSelector": {"matchLabels": gang}}]));
        let deny = serde_json::to_value(default_deny_policy("ns", "hub-a").expect("builds")).expect("json");
        assert_eq!(deny["spec"], json!({"podSelector": {}, "policyTypes": ["Ingress"]}));
    }

    #[test]
    fn member_namespaces_carry_the_tenant_and_the_pod_security_level() {
        let l = namespace_labels("hub-a", "team-a", PodSecurityLevel::Restricted);
        for mode in ["enforce", "warn", "audit"] {
            assert_eq!(l[&format!("pod-security.kubernetes.io/{mode}")], "restricted");
        }
        assert_eq!(l["pod-security.kubernetes.io/enforce-version"], "latest");
        assert_eq!((l[labels::HUB].as_str(), l[labels::TENANT_NAMESPACE].as_str()), ("hub-a", "team-a"));
        let baseline = namespace_labels("hub-a", "team-a", PodSecurityLevel::Baseline);
        assert_eq!(baseline["pod-security.kubernetes.io/enforce"], "baseline");
        let long = namespace_labels("hub-a", &"t".repeat(100), PodSecurityLevel::Restricted);
        assert!(labels::is_label_value(&long[labels::TENANT_NAMESPACE]));
    }

    #[test]
    fn an_existing_namespace_gets_missing_labels_unless_another_tenant_owns_it() {
        let wanted = namespace_labels("hub-a", "team-a", PodSecurityLevel::Restricted);
        assert_eq!(namespace_update(&wanted, &wanted), Ok(None), "already right");
        // Made by hand before: it gets every label.
        assert_eq!(namespace_update(&BTreeMap::new(), &wanted), Ok(Some(wanted.clone())));
        // The admin relaxed the member: the new level is merged in.
        let baseline = namespace_labels("hub-a", "team-a", PodSecurityLevel::Baseline);
        let patch = namespace_update(&wanted, &baseline).expect("same tenant").expect("a change");
        assert_eq!(patch.len(), 3, "{patch:?}");
        assert!(patch.values().all(|v| v == "baseline"));
        // Another hub sharing the member made it: its hub label stays.
        let other_hub = namespace_labels("hub-b", "team-a", PodSecurityLevel::Restricted);
        assert_eq!(namespace_update(&other_hub, &wanted), Ok(None));
        // Another tenant's namespace is never used.
        let team_b = namespace_labels("hub-a", "team-b", PodSecurityLevel::Restricted);
        assert!(namespace_update(&team_b, &wanted).expect_err("refused").contains("team-b"));
    }

    #[test]
    fn the_service_is_headless_and_selects_the_gang() {
        let svc =
            serde_json::to_value(headless_service(&training_job(), "ns", "hub-a").expect("builds")).expect("json");
        assert_eq!(svc["spec"]["clusterIP"], "None");
        assert_eq!(svc["spec"]["selector"][labels::JOB_UID], "0a1b2c3d-4e5f-6789-abcd-ef0123456789");
    }
}

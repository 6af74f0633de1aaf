//! Researchers' own job objects (a JobSet, TrainJob or PyTorchJob queued in the hub with
//! the label `computenet.io/queue-name`) on a Kubernetes member: which of those kinds the
//! member serves, the copy of the hub object computenet creates there (unsuspended,
//! labelled with the hub's identity and the TrainingJob that queued it), and its removal.
//!
//! What a copy looks like is decided by the kind ([`computenet_api::kinds`], pure); this
//! module only talks to the member. The copy keeps the object's name (pods and launchers
//! find each other by it), in the tenant's member namespace like every computenet job.

use super::job::{self, gang_network_policy_selecting};
use crate::attempt;
use crate::error::{Error, Result};
use crate::labels;
use computenet_api::kinds::{self, CopyContext, JobKind};
use computenet_api::TrainingJob;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{ApiResource, DeleteParams, DynamicObject, ListParams, PostParams, PropagationPolicy};
use kube::{Api, Client};
use std::collections::BTreeMap;

/// The kind's API resource, for dynamic clients and watches.
pub fn api_resource(kind: &dyn JobKind) -> ApiResource {
    let r = kind.resource();
    ApiResource {
        group: r.group.to_string(),
        version: r.version.to_string(),
        api_version: r.api_version(),
        kind: r.kind.to_string(),
        plural: r.plural.to_string(),
    }
}

/// The job kinds `client`'s apiserver serves (its CRDs are installed): one list of at most
/// one object per kind. A kind whose list fails otherwise than "not found" is left out too
/// (with a warning): it is asked again when the member reconnects.
pub async fn served_kinds(client: &Client, member: &str) -> Vec<&'static dyn JobKind> {
    let mut served = Vec::new();
    let one = ListParams::default().limit(1);
    for kind in kinds::all() {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &api_resource(kind));
        let listed = tokio::time::timeout(job::MEMBER_CALL_TIMEOUT, api.list_metadata(&one));
        match listed.await {
            Ok(Ok(_)) => served.push(kind),
            Ok(Err(kube::Error::Api(s))) if s.code == 404 => {}
            Ok(Err(e)) => {
                tracing::warn!(member, kind = kind.resource().kind, error = %e, "cannot list the kind: not used")
            }
            Err(_) => tracing::warn!(member, kind = kind.resource().kind, "listing the kind timed out: not used"),
        }
    }
    served
}

/// The labels of the copy made for `tj` (and of its pod templates, where the kind has them).
pub fn copy_labels(tj: &TrainingJob, hub: &str) -> BTreeMap<String, String> {
    job::object_labels(tj, hub)
}

/// Creates `tj`'s NetworkPolicy, then the copy of `source` (the hub object of `kind` the
/// TrainingJob queues) in `namespace`, unless they exist. A copy of that name made for
/// another TrainingJob (an earlier object of the same name, not gone yet) is an error
/// to retry later; a copy of an earlier attempt of this one is too.
pub async fn dispatch(
    member: &Client,
    namespace: &str,
    tj: &TrainingJob,
    kind: &dyn JobKind,
    source: &serde_json::Value,
    gpu_label: Option<&str>,
    hub: &str,
) -> Result<()> {
    let work = create(member, namespace, tj, kind, source, gpu_label, hub);
    match tokio::time::timeout(job::MEMBER_CALL_TIMEOUT, work).await {
        Ok(Ok(Ok(()))) => Ok(()),
        Ok(Ok(Err(in_the_way))) => Err(Error::Config(in_the_way)),
        Ok(Err(e)) => Err(Error::kube("dispatch")(e)),
        Err(_) => Err(Error::Timeout { what: "dispatch".into(), seconds: job::MEMBER_CALL_TIMEOUT.as_secs() }),
    }
}

/// [`dispatch`] without its time bound: the outer error is the member's, the inner one a
/// copy in the way.
async fn create(
    member: &Client,
    namespace: &str,
    tj: &TrainingJob,
    kind: &dyn JobKind,
    source: &serde_json::Value,
    gpu_label: Option<&str>,
    hub: &str,
) -> std::result::Result<std::result::Result<(), String>, kube::Error> {
    let name = source.pointer("/metadata/name").and_then(|n| n.as_str()).unwrap_or_default().to_string();
    // The kind's own pod label selects the gang: a kind whose pod templates computenet
    // cannot label (TrainJob) is still covered.
    let (key, value) = kind.pod_label(&name);
    let policy = gang_network_policy_selecting(tj, namespace, hub, key, &value)?;
    job::create_if_absent(&Api::<NetworkPolicy>::namespaced(member.clone(), namespace), &policy).await?;
    let labels = copy_labels(tj, hub);
    let copy = kind.member_copy(source, &CopyContext { namespace, labels: &labels, gpu_product: gpu_label });
    let object: DynamicObject = serde_json::from_value(copy).map_err(kube::Error::SerdeError)?;
    let api: Api<DynamicObject> = Api::namespaced_with(member.clone(), namespace, &api_resource(kind));
    match api.create(&PostParams::default(), &object).await {
        Ok(_) => Ok(Ok(())),
        Err(kube::Error::Api(s)) if s.code == 409 => {
            let existing = api.get(&name).await?;
            let l = existing.metadata.labels.unwrap_or_default();
            let uid = labels::label_value(tj.metadata.uid.as_deref().unwrap_or_default());
            let what = kind.resource().kind;
            if l.get(labels::JOB_UID) != Some(&uid) {
                return Ok(Err(format!(
                    "a {what} named {name} that another job made is still in {namespace}: waiting for it to go"
                )));
            }
            Ok(match attempt::of_labels(Some(&l)) {
                Some(a) if a != attempt::number(tj) => Err(format!(
                    "the {what} of attempt {a} is still there: it is stopped before attempt {} starts",
                    attempt::number(tj)
                )),
                _ => Ok(()),
            })
        }
        Err(e) => Err(e),
    }
}

/// Deletes the copy named `name` (with what its controller made: background propagation),
/// only the one with UID `object_uid` when given, then `tj`'s NetworkPolicy unless
/// `keep_policy`. Absent objects are fine. `grace_s` is passed to the deletion.
pub async fn delete(
    member: &Client,
    namespace: &str,
    kind: &dyn JobKind,
    name: &str,
    object_uid: Option<&str>,
    grace_s: Option<u32>,
) -> Result<()> {
    let dp = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        grace_period_seconds: grace_s,
        preconditions: object_uid
            .map(|u| kube::api::Preconditions { uid: Some(u.to_string()), resource_version: None }),
        ..DeleteParams::default()
    };
    let api: Api<DynamicObject> = Api::namespaced_with(member.clone(), namespace, &api_resource(kind));
    match tokio::time::timeout(job::MEMBER_CALL_TIMEOUT, api.delete(name, &dp)).await {
        Ok(Ok(_)) => Ok(()),
        // Gone, or (a failed precondition) another object of that name now.
        Ok(Err(kube::Error::Api(s))) if s.code == 404 || s.code == 409 => Ok(()),
        Ok(Err(e)) => Err(Error::kube("deleting the copy")(e)),
        Err(_) => Err(Error::Timeout { what: "deleting the copy".into(), seconds: job::MEMBER_CALL_TIMEOUT.as_secs() }),
    }
}

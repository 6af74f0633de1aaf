//! Status writes: server-side apply of the status subresource with computenet's field
//! manager, so a write states the whole status computenet owns and nothing else.
//!
//! Every write to a TrainingJob first checks the leader's fence ([`lease::check_write`]),
//! so a deposed leader stops writing before a standby can take over; an admission also
//! carries the resourceVersion its decision was made on ([`admit`]).

use crate::error::{Error, Result};
use crate::lease;
use computenet_api::training_job::TrainingJobStatus;
use computenet_api::{ComputeCohort, ComputeQueue, MemberCluster, TrainingJob, FIELD_MANAGER};
use computenet_members::labels::FINALIZER;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde::Serialize;
use serde_json::json;

fn params() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER).force()
}

async fn apply_status<K, S>(api: Api<K>, name: &str, api_version: &str, kind: &str, status: &S) -> Result<K>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    S: Serialize,
{
    let patch = json!({"apiVersion": api_version, "kind": kind, "status": status});
    Ok(api.patch_status(name, &params(), &Patch::Apply(&patch)).await?)
}

/// As `api.patch_status` (`on_status`) or `api.patch`, but the stored object the hub sends back is
/// decoded as the watch decodes it, without its managedFields: nothing reads them, and on
/// a TrainingJob written by several managers they are most of the reply.
async fn patch_read<P: Serialize + std::fmt::Debug>(
    api: &Api<TrainingJob>,
    name: &str,
    params: &PatchParams,
    patch: &Patch<P>,
    on_status: bool,
) -> std::result::Result<TrainingJob, kube::Error> {
    use computenet_members::kubernetes::watch::Lenient;
    let request = kube::core::Request::new(api.resource_url());
    let mut request = if on_status {
        request.patch_subresource("status", name, params, patch)
    } else {
        request.patch(name, params, patch)
    }
    .map_err(kube::Error::BuildRequest)?;
    request.extensions_mut().insert(if on_status { "patch_status" } else { "patch" });
    match api.clone().into_client().request::<Lenient<TrainingJob>>(request).await? {
        Lenient::Decoded(tj) => Ok(tj),
        Lenient::Undecodable(bad) => Err(kube::Error::SerdeError(serde::de::Error::custom(bad.1))),
    }
}

/// `status` without the fields another of computenet's field managers owns: metering's
/// `meteredThrough` (a status built from a cached copy must never take it over, or a stale
/// copy would move it back).
pub fn owned(status: &TrainingJobStatus) -> TrainingJobStatus {
    TrainingJobStatus { metered_through: None, ..status.clone() }
}

/// Writes a TrainingJob's status; returns the object as stored.
pub async fn training_job(client: &Client, tj: &TrainingJob, status: &TrainingJobStatus) -> Result<TrainingJob> {
    lease::check_write()?;
    let from = tj.status.as_ref().and_then(|s| s.phase);
    tracing::debug!(job = ?tj.metadata.name, ?from, to = ?status.phase, dispatched = status.remote.is_some(), "status write");
    let api = Api::<TrainingJob>::namespaced(client.clone(), tj.metadata.namespace.as_deref().unwrap_or_default());
    let patch = json!({"apiVersion": "computenet.io/v1alpha1", "kind": "TrainingJob", "status": owned(status)});
    let name = tj.metadata.name.as_deref().unwrap_or_default();
    Ok(patch_read(&api, name, &params(), &Patch::Apply(&patch), true).await?)
}

/// Removes the admission fields from a job's status whoever wrote them (a JSON merge patch
/// with nulls: a server-side apply would leave fields another manager owns), so an
/// admission the service did not issue leaves no placement behind.
pub async fn clear_admission(client: &Client, tj: &TrainingJob) -> Result<TrainingJob> {
    lease::check_write()?;
    let api = Api::<TrainingJob>::namespaced(client.clone(), tj.metadata.namespace.as_deref().unwrap_or_default());
    let patch = json!({
        "metadata": {"uid": tj.metadata.uid},
        "status": {"admitted": false, "placement": null, "remote": null, "admissionSeal": null,
                   "startTime": null, "dispatchTime": null, "retry": null},
    });
    let params = PatchParams { field_manager: Some(FIELD_MANAGER.to_string()), ..Default::default() };
    let name = tj.metadata.name.as_deref().unwrap_or_default();
    Ok(patch_read(&api, name, &params, &Patch::Merge(&patch), true).await?)
}

/// Writes an admission, guarded by `decided_on`'s resourceVersion: the apiserver refuses
/// it (409, [`is_conflict`]) when the job changed in any way since the decision was
/// made, so a spec patched in between, or a newer leader's decision, is never
/// overwritten by a stale view. Bounded by the leader's write timeout.
pub async fn admit(client: &Client, decided_on: &TrainingJob, status: &TrainingJobStatus) -> Result<TrainingJob> {
    lease::check_write()?;
    let api =
        Api::<TrainingJob>::namespaced(client.clone(), decided_on.metadata.namespace.as_deref().unwrap_or_default());
    let name = decided_on.metadata.name.as_deref().unwrap_or_default();
    let patch = admission_patch(decided_on, status);
    let (params, patch) = (params(), Patch::Apply(&patch));
    match tokio::time::timeout(lease::write_timeout(), patch_read(&api, name, &params, &patch, true)).await {
        Ok(stored) => Ok(stored?),
        Err(_) => Err(Error::Timeout(format!("writing the admission of {name}"))),
    }
}

/// The apply patch of an admission (pure): the status, with the resourceVersion (and the
/// UID, against a recreated object of the same name) the decision was made on as its
/// precondition.
pub fn admission_patch(decided_on: &TrainingJob, status: &TrainingJobStatus) -> serde_json::Value {
    json!({
        "apiVersion": "computenet.io/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {
            "name": decided_on.metadata.name,
            "uid": decided_on.metadata.uid,
            "resourceVersion": decided_on.metadata.resource_version,
        },
        "status": owned(status),
    })
}

/// Whether `now` is the object a decision was made on in all a decision reads (pure):
/// the same object, spec generation and status; only metadata such as our own finalizer
/// may differ.
pub fn same_decision_basis(now: &TrainingJob, decided_on: &TrainingJob) -> bool {
    now.metadata.uid == decided_on.metadata.uid
        && now.metadata.generation == decided_on.metadata.generation
        && now.status == decided_on.status
}

/// Whether a write was refused because the object changed since it was read.
pub fn is_conflict(e: &Error) -> bool {
    matches!(e, Error::Kube(kube::Error::Api(s)) if s.code == 409)
}

/// Writes a MemberCluster's status.
pub async fn member_cluster(client: &Client, name: &str, status: &computenet_api::MemberClusterStatus) -> Result<()> {
    apply_status(Api::<MemberCluster>::all(client.clone()), name, "computenet.io/v1alpha1", "MemberCluster", status)
        .await
        .map(|_| ())
}

/// Writes a ComputeQueue's status.
pub async fn compute_queue(client: &Client, name: &str, status: &computenet_api::ComputeQueueStatus) -> Result<()> {
    apply_status(Api::<ComputeQueue>::all(client.clone()), name, "computenet.io/v1alpha1", "ComputeQueue", status)
        .await
        .map(|_| ())
}

/// Writes a ComputeCohort's status.
pub async fn compute_cohort(client: &Client, name: &str, status: &computenet_api::ComputeCohortStatus) -> Result<()> {
    apply_status(Api::<ComputeCohort>::all(client.clone()), name, "computenet.io/v1alpha1", "ComputeCohort", status)
        .await
        .map(|_| ())
}

/// Adds computenet's finalizer by server-side apply: computenet owns its entry of the
/// list and nothing else, so it needs no read-modify-write and cannot clobber another
/// controller's finalizer, and it can go concurrently with a status write. The UID makes
/// it fail rather than touch a recreated object of the same name. Returns the object as stored.
pub async fn add_finalizer(client: &Client, tj: &TrainingJob) -> Result<TrainingJob> {
    lease::check_write()?;
    let api = Api::<TrainingJob>::namespaced(client.clone(), tj.metadata.namespace.as_deref().unwrap_or_default());
    let name = tj.metadata.name.as_deref().unwrap_or_default();
    let patch = json!({
        "apiVersion": "computenet.io/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": name, "uid": tj.metadata.uid, "finalizers": [FINALIZER]},
    });
    Ok(patch_read(&api, name, &params(), &Patch::Apply(&patch), false).await?)
}

/// Removes computenet's finalizer (JSON merge patch of the whole list, guarded by the
/// resourceVersion: a concurrent change makes it fail and the next cycle retries).
pub async fn remove_finalizer(client: &Client, tj: &TrainingJob) -> Result<()> {
    let api = Api::<TrainingJob>::namespaced(client.clone(), tj.metadata.namespace.as_deref().unwrap_or_default());
    let mut finalizers: Vec<String> = tj.metadata.finalizers.clone().unwrap_or_default();
    finalizers.retain(|f| f != FINALIZER);
    let patch = json!({"metadata": {"finalizers": finalizers, "resourceVersion": tj.metadata.resource_version}});
    api.patch(tj.metadata.name.as_deref().unwrap_or_default(), &PatchParams::default(), &Patch::Merge(&patch)).await?;
    Ok(())
}

/// Whether the job carries computenet's finalizer.
pub fn has_finalizer(tj: &TrainingJob) -> bool {
    tj.metadata.finalizers.iter().flatten().any(|f| f == FINALIZER)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_admission_is_guarded_by_the_version_it_was_decided_on() {
        let mut tj: TrainingJob = serde_json::from_value(json!({
            "apiVersion": "computenet.io/v1alpha1", "kind": "TrainingJob",
            "metadata": {"name": "j", "namespace": "n", "uid": "u-1", "resourceVersion": "42", "generation": 3},
            "spec": {"queueName": "q", "replicas": 1, "resources": {"cpu": "1", "memory": "1Gi"},
                     "workload": {"image": "x", "command": ["true"]}}
        }))
        .unwrap();
        tj.status = None;
        let status = TrainingJobStatus { admitted: Some(true), ..Default::default() };
        let patch = admission_patch(&tj, &status);
        assert_eq!(patch["metadata"]["resourceVersion"], "42");
        assert_eq!(patch["metadata"]["uid"], "u-1");
        assert_eq!(patch["status"]["admitted"], true);
        assert!(patch.get("spec").is_none(), "an admission never touches the spec");
        // Our own finalizer write keeps the basis; a spec or status change does not.
        let mut with_finalizer = tj.clone();
        with_finalizer.metadata.resource_version = Some("43".into());
        with_finalizer.metadata.finalizers = Some(vec![FINALIZER.into()]);
        assert!(same_decision_basis(&with_finalizer, &tj));
        let mut patched = with_finalizer.clone();
        patched.metadata.generation = Some(4);
        assert!(!same_decision_basis(&patched, &tj));
        let mut admitted_elsewhere = with_finalizer;
        admitted_elsewhere.status = Some(status);
        assert!(!same_decision_basis(&admitted_elsewhere, &tj));
    }
}

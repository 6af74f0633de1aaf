//! Status writes: server-side apply of the status subresource with computenet's field
//! manager, so a write states the whole status computenet owns and nothing else.

use crate::error::Result;
use computenet_api::training_job::TrainingJobStatus;
use computenet_api::{ComputeQueue, MemberCluster, TrainingJob, FIELD_MANAGER};
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

/// Writes a TrainingJob's status; returns the object as stored.
pub async fn training_job(client: &Client, tj: &TrainingJob, status: &TrainingJobStatus) -> Result<TrainingJob> {
    let api = Api::<TrainingJob>::namespaced(client.clone(), tj.metadata.namespace.as_deref().unwrap_or_default());
    apply_status(api, tj.metadata.name.as_deref().unwrap_or_default(), "computenet.io/v1alpha1", "TrainingJob", status)
        .await
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

/// Adds computenet's finalizer by server-side apply: computenet owns its entry of the
/// list and nothing else, so it needs no read-modify-write and cannot clobber another
/// controller's finalizer, and it can go concurrently with a status write. The UID makes
/// it fail rather than touch a recreated object of the same name. Returns the object as stored.
pub async fn add_finalizer(client: &Client, tj: &TrainingJob) -> Result<TrainingJob> {
    let api = Api::<TrainingJob>::namespaced(client.clone(), tj.metadata.namespace.as_deref().unwrap_or_default());
    let name = tj.metadata.name.as_deref().unwrap_or_default();
    let patch = json!({
        "apiVersion": "computenet.io/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": name, "uid": tj.metadata.uid, "finalizers": [FINALIZER]},
    });
    Ok(api.patch(name, &params(), &Patch::Apply(&patch)).await?)
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

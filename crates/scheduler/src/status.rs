//! Status writes: server-side apply of the status subresource with computenet's field
//! manager, so a write states the whole status computenet owns and nothing else.

use crate::error::Result;
use computenet_api::training_job::TrainingJobStatus;
use computenet_api::{ComputeQueue, MemberCluster, TrainingJob, FIELD_MANAGER};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde::Serialize;
use serde_json::json;

/// A condition, keeping the transition time when its status did not change.
pub fn condition(
    previous: &[Condition],
    type_: &str,
    status: bool,
    reason: &str,
    message: &str,
    generation: Option<i64>,
) -> Condition {
    let status = if status { "True" } else { "False" }.to_string();
    let last_transition_time = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map_or_else(|| Time(Timestamp::now()), |c| c.last_transition_time.clone());
    Condition {
        type_: type_.to_string(),
        status,
        reason: reason.to_string(),
        message: message.to_string(),
        last_transition_time,
        observed_generation: generation,
    }
}

/// Whether two condition lists say the same (ignoring transition times).
pub fn same_conditions(a: &[Condition], b: &[Condition]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.type_ == y.type_ && x.status == y.status && x.reason == y.reason && x.message == y.message)
}

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

/// Adds or removes computenet's finalizer (JSON merge patch of the whole list).
pub async fn set_finalizer(client: &Client, tj: &TrainingJob, present: bool) -> Result<()> {
    let api = Api::<TrainingJob>::namespaced(client.clone(), tj.metadata.namespace.as_deref().unwrap_or_default());
    let mut finalizers: Vec<String> = tj.metadata.finalizers.clone().unwrap_or_default();
    finalizers.retain(|f| f != crate::labels::FINALIZER);
    if present {
        finalizers.push(crate::labels::FINALIZER.to_string());
    }
    // The resourceVersion makes this a compare-and-swap: a concurrent change retries next loop.
    let patch = json!({"metadata": {"finalizers": finalizers, "resourceVersion": tj.metadata.resource_version}});
    api.patch(tj.metadata.name.as_deref().unwrap_or_default(), &PatchParams::default(), &Patch::Merge(&patch)).await?;
    Ok(())
}

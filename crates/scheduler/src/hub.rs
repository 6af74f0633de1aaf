//! Caches of the hub's objects, kept current by watches.

use computenet_api::{ComputeQueue, MemberCluster, TrainingJob};
use computenet_members::kubernetes::cache;
use k8s_openapi::api::core::v1::Namespace;
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use kube::{Api, Client};
use std::sync::Arc;
use tokio::sync::Notify;

/// The hub's caches.
// kube::Client has no Debug implementation.
#[allow(missing_debug_implementations)]
#[derive(Clone)]
pub struct Hub {
    pub client: Client,
    pub jobs: Store<TrainingJob>,
    pub queues: Store<ComputeQueue>,
    pub members: Store<MemberCluster>,
    pub namespaces: Store<Namespace>,
}

impl Hub {
    /// Starts the watches and waits until every cache has its first list.
    pub async fn start(client: Client, changed: Arc<Notify>) -> Self {
        let config = watcher::Config::default;
        let hub = Hub {
            jobs: cache(Api::all(client.clone()), config(), changed.clone()),
            queues: cache(Api::all(client.clone()), config(), changed.clone()),
            members: cache(Api::all(client.clone()), config(), changed.clone()),
            namespaces: cache(Api::all(client.clone()), config(), changed),
            client,
        };
        let _ = hub.jobs.wait_until_ready().await;
        let _ = hub.queues.wait_until_ready().await;
        let _ = hub.members.wait_until_ready().await;
        let _ = hub.namespaces.wait_until_ready().await;
        hub
    }
}

/// This hub's identity on members: `given`, or the UID of `namespace` (the service's own,
/// read with `list`, which it may do already: no extra permission). Checked to fit a label
/// value and a Slurm comment word.
pub async fn hub_id(client: &Client, given: Option<&str>, namespace: &str) -> crate::Result<String> {
    let config = |why: String| crate::Error::Member(computenet_members::Error::Config(why));
    let id = match given {
        Some(id) => id.trim().to_string(),
        None => {
            let params = kube::api::ListParams::default().fields(&format!("metadata.name={namespace}"));
            let list = Api::<Namespace>::all(client.clone()).list(&params).await.map_err(|e| {
                config(format!("reading namespace {namespace} for its UID, the default hub id (or pass --hub-id): {e}"))
            })?;
            list.items.into_iter().next().and_then(|n| n.metadata.uid).ok_or_else(|| {
                config(format!("namespace {namespace} not found: its UID is the default hub id (or pass --hub-id)"))
            })?
        }
    };
    computenet_members::labels::check_hub_id(&id).map_err(|e| config(format!("--hub-id: {e}")))?;
    tracing::info!(hub_id = %id, "hub identity on members");
    Ok(id)
}

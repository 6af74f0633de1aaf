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

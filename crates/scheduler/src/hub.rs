//! Caches of the hub's objects, kept current by watches.

use computenet_api::{ComputeQueue, MemberCluster, TrainingJob};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Arc;
use tokio::sync::Notify;

/// Starts a watch of `api` into a cache; every change wakes `changed`.
pub fn cache<K>(api: Api<K>, config: watcher::Config, changed: Arc<Notify>) -> Store<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone,
{
    let (reader, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher(api, config).default_backoff()).touched_objects();
    tokio::spawn(async move {
        futures::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            if let Err(e) = event {
                // The watcher retries with backoff; one bad event does not stop it.
                tracing::warn!(error = %e, "watch error");
            }
            changed.notify_one();
        }
    });
    reader
}

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

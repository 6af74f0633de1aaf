//! General-purpose and AI members: Kubernetes clusters.
//!
//! - [`job`]: what a TrainingJob becomes there (an Indexed Job, a headless Service for a
//!   gang), created and deleted idempotently.
//! - [`member`]: a connected member: caches of its Nodes, Pods and computenet's Jobs, kept
//!   current by watches, and a probe of its apiserver.
//! - [`cache`]: a watch into a cache, shared with the hub's caches.

pub mod job;
pub mod member;

pub use member::KubernetesMember;

use futures::StreamExt;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Resource};
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

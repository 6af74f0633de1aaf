//! General-purpose and AI members: Kubernetes clusters.
//!
//! - [`job`]: what a TrainingJob becomes there (an Indexed Job, a headless Service for a
//!   gang), created and deleted idempotently.
//! - [`member`]: a connected member: caches of its Nodes, Pods and computenet's Jobs, kept
//!   current by watches, and a probe of its apiserver.
//! - [`nodes`]: its Nodes and Pods as the core's nodes.
//! - [`cache`]: a watch into a cache, shared with the hub's caches.

pub mod job;
pub mod member;
pub mod nodes;

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

/// Starts a watch of `api` into a cache; every change wakes `changed`. It runs as long as
/// the process.
pub fn cache<K>(api: Api<K>, config: watcher::Config, changed: Arc<Notify>) -> Store<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone,
{
    cache_while(api, config, changed, None)
}

/// Like [`cache`], but the watch ends once every sender of `alive` is dropped (a member
/// that was removed or reconnected).
pub fn cache_while<K>(
    api: Api<K>,
    config: watcher::Config,
    changed: Arc<Notify>,
    alive: Option<tokio::sync::watch::Receiver<()>>,
) -> Store<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone,
{
    let (reader, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher(api, config).default_backoff()).touched_objects();
    tokio::spawn(async move {
        futures::pin_mut!(stream);
        let mut alive = alive;
        loop {
            let ended = async {
                match alive.as_mut() {
                    // Err: every sender is gone.
                    Some(rx) => while rx.changed().await.is_ok() {},
                    None => futures::future::pending::<()>().await,
                }
            };
            let event = tokio::select! {
                event = stream.next() => event,
                () = ended => break,
            };
            let Some(event) = event else { break };
            if let Err(e) = event {
                // The watcher retries with backoff; one bad event does not stop it.
                tracing::warn!(error = %e, "watch error");
            }
            changed.notify_one();
        }
    });
    reader
}

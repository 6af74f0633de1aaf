//! Caches of the hub's objects, kept current by watches.
//!
//! The watches of TrainingJobs, ComputeQueues, MemberClusters, ComputeUsages and ComputeCohorts survive objects they
//! cannot decode ([`computenet_members::kubernetes::watch`]): such an object is left out
//! of its cache, logged once per resourceVersion, counted in
//! `computenet_invalid_objects{kind}` and given a Warning Event `InvalidObject` that names
//! the field. Everything else reads the typed caches as if the object did not exist.

use crate::error::{Error, Result};
use crate::events::EventSink;
use computenet_api::conditions::EventReason;
use computenet_api::{ComputeCohort, ComputeQueue, ComputeUsage, MemberCluster, TrainingJob};
use computenet_members::kubernetes::{cache, cache_reporting, Touched, Touching, Undecodable, Undecodables};
use k8s_openapi::api::core::v1::Namespace;
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use kube::{Api, Client};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// The kinds whose undecodable objects are counted (zero included).
pub const WATCHED_KINDS: [&str; 5] = ["TrainingJob", "ComputeQueue", "MemberCluster", "ComputeUsage", "ComputeCohort"];

/// The hub's caches.
// kube::Client has no Debug implementation.
#[allow(missing_debug_implementations)]
#[derive(Clone)]
pub struct Hub {
    pub client: Client,
    pub jobs: Store<TrainingJob>,
    /// The TrainingJobs the watch saw change since the last pass, by UID.
    pub touched_jobs: Touched,
    pub queues: Store<ComputeQueue>,
    pub members: Store<MemberCluster>,
    /// The usage store: one object per queue and day (`crate::metering`).
    pub usage: Store<ComputeUsage>,
    /// The cohort tree's levels (`ComputeCohort`).
    pub cohorts: Store<ComputeCohort>,
    pub namespaces: Store<Namespace>,
    /// Objects left out of the caches because they do not decode.
    pub undecodables: Undecodables,
    /// JobSets, TrainJobs and PyTorchJobs queued by label, and their TrainingJobs.
    pub sources: crate::sources::Sources,
}

/// The Event note about an object that does not decode.
pub fn invalid_note(u: &Undecodable) -> String {
    format!(
        "computenet ignores this {} until it is fixed: it does not match the schema the scheduler reads ({})",
        u.object.kind.as_deref().unwrap_or("object"),
        u.error
    )
}

impl Hub {
    /// Starts the watches and waits until every cache has its first list, at most
    /// `timeout`: the error means the hub cannot be read, and this replica cannot
    /// schedule. Undecodable objects do not keep a cache from being ready.
    pub async fn start(client: Client, changed: Arc<Notify>, events: EventSink, timeout: Duration) -> Result<Self> {
        let undecodables = Undecodables::reporting(move |u| {
            // Without a namespace/name/uid the Event could not be tied to the object.
            if u.object.name.is_some() && u.object.uid.is_some() {
                events.publish_about(u.object.clone(), EventReason::InvalidObject, invalid_note(u));
            }
        });
        let config = watcher::Config::default;
        let touched_jobs = Touched::default();
        let touching = Touching { touched: touched_jobs.clone(), key: |tj: &TrainingJob| tj.metadata.uid.as_deref() };
        let c = || changed.clone();
        let u = || undecodables.clone();
        let jobs = cache_reporting(Api::all(client.clone()), config(), c(), None, u(), Some(touching));
        let queues = cache_reporting(Api::all(client.clone()), config(), c(), None, u(), None);
        let members = cache_reporting(Api::all(client.clone()), config(), c(), None, u(), None);
        let usage = cache_reporting(Api::all(client.clone()), config(), c(), None, u(), None);
        let cohorts = cache_reporting(Api::all(client.clone()), config(), c(), None, u(), None);
        let namespaces = cache(Api::all(client.clone()), config(), changed.clone());
        let sources = crate::sources::Sources::start(client.clone(), changed).await;
        let hub =
            Hub { jobs, touched_jobs, queues, members, usage, cohorts, namespaces, undecodables, sources, client };
        let listed = async {
            let _ = hub.jobs.wait_until_ready().await;
            let _ = hub.queues.wait_until_ready().await;
            let _ = hub.members.wait_until_ready().await;
            let _ = hub.usage.wait_until_ready().await;
            let _ = hub.cohorts.wait_until_ready().await;
            let _ = hub.namespaces.wait_until_ready().await;
            hub.sources.listed().await;
        };
        tokio::time::timeout(timeout, listed).await.map_err(|_| Error::CachesNotReady(timeout))?;
        Ok(hub)
    }

    /// Undecodable objects per watched kind, zero included.
    pub fn invalid_counts(&self) -> BTreeMap<String, usize> {
        let mut counts: BTreeMap<String, usize> = WATCHED_KINDS.iter().map(|k| (k.to_string(), 0)).collect();
        counts.extend(self.undecodables.counts());
        counts
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

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ObjectReference;

    #[test]
    fn the_note_names_the_kind_and_the_field() {
        let u = Undecodable {
            object: ObjectReference { kind: Some("TrainingJob".into()), ..Default::default() },
            error: "spec.replicas: invalid type: string \"four\", expected i32".into(),
        };
        let note = invalid_note(&u);
        assert!(
            note.contains("this TrainingJob")
                && note.ends_with("(spec.replicas: invalid type: string \"four\", expected i32)")
        );
    }
}

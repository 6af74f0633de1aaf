//! A connected Kubernetes member: caches of its Nodes, Pods and computenet's Jobs, and a
//! probe of its apiserver on its own schedule.

use super::{cache_while, job};
use crate::error::{Error, Result};
use crate::health::Health;
use crate::labels;
use crate::labels::remote_name;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, Client, Config};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::Notify;

/// How often members are probed.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(2);

/// One connected Kubernetes member.
// kube::Client has no Debug implementation.
#[allow(missing_debug_implementations)]
#[derive(Clone)]
pub struct KubernetesMember {
    pub name: String,
    pub client: Client,
    /// Namespace on the member where jobs are created.
    pub namespace: String,
    /// The hub's identity: on every object it creates, and the only objects it watches.
    pub hub: String,
    pub nodes: Store<Node>,
    pub pods: Store<Pod>,
    pub jobs: Store<Job>,
    health: Arc<Mutex<Health>>,
    /// The watches run while a clone of this member exists.
    _alive: Arc<tokio::sync::watch::Sender<()>>,
}

impl KubernetesMember {
    /// Connects with `config` (from a checked kubeconfig), makes sure `namespace` exists there and starts
    /// the watches (of the Jobs of the hub `hub` only) and the probe; every change wakes `changed`.
    pub async fn connect(
        name: &str,
        mut config: Config,
        namespace: &str,
        hub: &str,
        changed: Arc<Notify>,
    ) -> Result<Self> {
        config.connect_timeout = Some(Duration::from_secs(3));
        config.read_timeout = Some(Duration::from_secs(30));
        // The error could speak of the client key: only its kind is kept.
        let client = Client::try_from(config).map_err(|_| {
            Error::Config("the kubeconfig's client certificate, key or CA is not usable for TLS".into())
        })?;
        job::ensure_namespace(&client, namespace).await?;
        // Another hub's Jobs are never seen here, so never taken for orphans.
        let managed = watcher::Config::default().labels(&format!("{}=true,{}={hub}", labels::MANAGED, labels::HUB));
        let (alive_tx, alive) = tokio::sync::watch::channel(());
        let member = KubernetesMember {
            name: name.to_string(),
            namespace: namespace.to_string(),
            hub: hub.to_string(),
            nodes: cache_while(
                Api::all(client.clone()),
                watcher::Config::default(),
                changed.clone(),
                Some(alive.clone()),
            ),
            pods: cache_while(
                Api::all(client.clone()),
                watcher::Config::default(),
                changed.clone(),
                Some(alive.clone()),
            ),
            jobs: cache_while(Api::namespaced(client.clone(), namespace), managed, changed, Some(alive)),
            health: Arc::new(Mutex::new(Health::default())),
            client,
            _alive: Arc::new(alive_tx),
        };
        // Probe on its own schedule, so that a long scheduling tick never makes a healthy
        // member look unreachable. The task ends when the member is dropped.
        let weak = Arc::downgrade(&member.health);
        let client = member.client.clone();
        tokio::spawn(async move {
            while let Some(health) = weak.upgrade() {
                probe(&client, &health).await;
                drop(health);
                tokio::time::sleep(PROBE_INTERVAL).await;
            }
        });
        Ok(member)
    }

    /// What the probe found.
    pub fn health(&self) -> MutexGuard<'_, Health> {
        self.health.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The Job of the TrainingJob with this UID, as last read.
    pub fn job(&self, uid: &str) -> Option<Arc<Job>> {
        // Remote names derive from the UID: a lookup, not a scan (this runs per job per cycle).
        let key = ObjectRef::new(&remote_name(uid)).within(&self.namespace);
        self.jobs.get(&key).filter(|j| job_uid(j) == Some(uid))
    }
}

/// The TrainingJob UID a member Job carries.
pub fn job_uid(job: &Job) -> Option<&str> {
    job.metadata.labels.as_ref()?.get(labels::JOB_UID).map(String::as_str)
}

async fn probe(client: &Client, health: &Mutex<Health>) {
    let result = tokio::time::timeout(Duration::from_secs(3), client.apiserver_version()).await;
    let mut h = health.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    match result {
        Ok(Ok(_)) => h.ok(),
        // Refused credentials (a revoked or expired token) are told apart: the service
        // re-reads the member's Secret instead of judging the member lost.
        Ok(Err(kube::Error::Api(s))) if s.code == 401 => h.failed_because(
            computenet_api::conditions::reasons::AUTHENTICATION_FAILED,
            format!("HTTP 401: {}", s.message),
        ),
        Ok(Err(e)) => h.failed(e.to_string()),
        Err(_) => h.failed("no answer within 3 s"),
    }
}

//! Connections to Kubernetes members and caches of their Nodes, Pods and computenet Jobs.

use crate::error::{Error, Result};
use crate::hub::cache;
use crate::labels;
use computenet_api::MemberCluster;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Node, Pod, Secret};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use kube::{Api, Client, Config};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, Notify};

/// One connected Kubernetes member.
// kube::Client has no Debug implementation.
#[allow(missing_debug_implementations)]
#[derive(Clone)]
pub struct KubernetesMember {
    pub name: String,
    pub client: Client,
    /// Namespace on the member where jobs are created.
    pub namespace: String,
    pub nodes: Store<Node>,
    pub pods: Store<Pod>,
    pub jobs: Store<Job>,
    health: Arc<Mutex<Health>>,
}

/// Reachability of a member.
#[derive(Debug, Clone)]
pub struct Health {
    pub last_ok: Option<Instant>,
    pub last_error: Option<String>,
    pub since: Instant,
}

impl KubernetesMember {
    /// Whether the member answered within `timeout` (a member never reached counts from
    /// when the connection was made).
    pub async fn reachable(&self, timeout: Duration) -> (bool, Option<String>) {
        let h = self.health.lock().await;
        let last = h.last_ok.unwrap_or(h.since);
        (last.elapsed() <= timeout, h.last_error.clone())
    }

    /// Whether the caches have seen the member at least once.
    pub async fn ever_reached(&self) -> bool {
        self.health.lock().await.last_ok.is_some()
    }
}

/// Reads the member's kubeconfig Secret from the hub and connects.
pub async fn connect(hub: &Client, member: &MemberCluster, changed: Arc<Notify>) -> Result<KubernetesMember> {
    let name = member.metadata.name.clone().unwrap_or_default();
    let fail = |why: String| Error::Member { member: name.clone(), why };
    let conn = member.spec.kubernetes.as_ref().ok_or_else(|| fail("not a Kubernetes member".into()))?;
    let secret_ref = &conn.kubeconfig_secret_ref;
    let secret = Api::<Secret>::namespaced(hub.clone(), &secret_ref.namespace)
        .get(&secret_ref.name)
        .await
        .map_err(|e| fail(format!("reading Secret {}/{}: {e}", secret_ref.namespace, secret_ref.name)))?;
    let bytes = secret.data.as_ref().and_then(|d| d.get(&secret_ref.key)).ok_or_else(|| {
        fail(format!("Secret {}/{} has no key {:?}", secret_ref.namespace, secret_ref.name, secret_ref.key))
    })?;
    let text = std::str::from_utf8(&bytes.0).map_err(|_| fail("kubeconfig is not UTF-8".into()))?;
    let kubeconfig = Kubeconfig::from_yaml(text).map_err(|e| fail(format!("kubeconfig: {e}")))?;
    let mut config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|e| fail(format!("kubeconfig: {e}")))?;
    config.connect_timeout = Some(Duration::from_secs(3));
    config.read_timeout = Some(Duration::from_secs(30));
    let client = Client::try_from(config).map_err(|e| fail(format!("client: {e}")))?;
    let managed = watcher::Config::default().labels(&format!("{}=true", labels::MANAGED));
    crate::dispatch::ensure_namespace(&client, &conn.namespace)
        .await
        .map_err(|e| fail(format!("namespace {}: {e}", conn.namespace)))?;
    let member = KubernetesMember {
        name: name.clone(),
        namespace: conn.namespace.clone(),
        nodes: cache(Api::all(client.clone()), watcher::Config::default(), changed.clone()),
        pods: cache(Api::all(client.clone()), watcher::Config::default(), changed.clone()),
        jobs: cache(Api::namespaced(client.clone(), &conn.namespace), managed, changed),
        health: Arc::new(Mutex::new(Health { last_ok: None, last_error: None, since: Instant::now() })),
        client,
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

/// How often members are probed.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(2);

async fn probe(client: &Client, health: &Mutex<Health>) {
    let result = tokio::time::timeout(Duration::from_secs(3), client.apiserver_version()).await;
    let mut h = health.lock().await;
    match result {
        Ok(Ok(_)) => {
            h.last_ok = Some(Instant::now());
            h.last_error = None;
        }
        Ok(Err(e)) => h.last_error = Some(e.to_string()),
        Err(_) => h.last_error = Some("no answer within 3 s".to_string()),
    }
}

/// All connected members, by name.
pub type Members = BTreeMap<String, KubernetesMember>;

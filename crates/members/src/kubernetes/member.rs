//! A connected Kubernetes member: caches of its Nodes, Pods and computenet's Jobs, and a
//! probe of its apiserver on its own schedule.

use super::nodes::Placed;
use super::watched::{WatchedJob, WatchedPod};
use super::{cache_reporting, cache_while, job, Touched, Touches, Touching, Undecodables};
use crate::error::{Error, Result};
use crate::health::Health;
use crate::labels;
use crate::labels::remote_name;
use computenet_api::kinds::JobKind;
use computenet_api::member_cluster::PodSecurityLevel;
use k8s_openapi::api::core::v1::Node;
use kube::api::DynamicObject;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, Client, Config};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// How often members are probed.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(2);

/// How long a member namespace made ready (labels, default-deny policy) counts as ready
/// before a dispatch there makes it ready again: a single replica has no policy of its
/// own, so a default deny deleted on the member must come back, and a label removed too.
pub const NAMESPACE_RECHECK: Duration = Duration::from_secs(60);

/// Whether a namespace last made ready at `ready_at` (never: `None`) is made ready again
/// before a dispatch at `now` (pure).
pub fn namespace_due(ready_at: Option<Instant>, now: Instant) -> bool {
    ready_at.is_none_or(|at| now.saturating_duration_since(at) >= NAMESPACE_RECHECK)
}

/// One connected Kubernetes member.
// kube::Client has no Debug implementation.
#[allow(missing_debug_implementations)]
#[derive(Clone)]
pub struct KubernetesMember {
    pub name: String,
    pub client: Client,
    /// Prefix of the member namespaces jobs are created in, one per hub namespace
    /// ([`labels::member_namespace`]); before those, every job went to the namespace of
    /// this very name, and jobs still there are found there.
    pub namespace_prefix: String,
    /// Pod Security level of those namespaces.
    pub pod_security: PodSecurityLevel,
    /// The hub's identity: on every object it creates, and the only objects it watches.
    pub hub: String,
    pub nodes: Store<Node>,
    pub pods: Store<WatchedPod>,
    /// The last conversion of `nodes` and `pods` to core nodes.
    pub nodes_memo: super::nodes::NodesMemo,
    pub jobs: Store<WatchedJob>,
    /// The job kinds besides TrainingJob this member serves (found when connecting), each
    /// with a cache of the copies computenet made of them here.
    pub copies: Vec<(&'static dyn JobKind, Store<DynamicObject>)>,
    /// The hub jobs whose Job or copy here changed since the service last looked.
    touched: Touched,
    health: Arc<Mutex<Health>>,
    /// Member namespaces made ready (labels, default policy) by this connection, and when.
    ready_namespaces: Arc<Mutex<BTreeMap<String, Instant>>>,
    /// The watches run while a clone of this member exists.
    _alive: Arc<tokio::sync::watch::Sender<()>>,
}

impl KubernetesMember {
    /// Connects with `config` (from a checked kubeconfig) and starts the watches (of the
    /// Jobs of the hub `hub` only, in every namespace) and the probe; every change wakes
    /// `changed`. Member namespaces, named from `namespace_prefix`, are made as jobs go there.
    pub async fn connect(
        name: &str,
        mut config: Config,
        namespace_prefix: &str,
        pod_security: PodSecurityLevel,
        hub: &str,
        changed: Arc<Notify>,
    ) -> Result<Self> {
        config.connect_timeout = Some(Duration::from_secs(3));
        config.read_timeout = Some(Duration::from_secs(30));
        // The error could speak of the client key: only its kind is kept.
        let client = Client::try_from(config).map_err(|_| {
            Error::Config("the kubeconfig's client certificate, key or CA is not usable for TLS".into())
        })?;
        // A first answer before the watches start, as before namespaces were per tenant: a
        // member that refuses the credentials or is not there fails to connect.
        match tokio::time::timeout(Duration::from_secs(5), client.apiserver_version()).await {
            Ok(result) => result.map(|_| ()).map_err(Error::kube("reading the member's version"))?,
            Err(_) => return Err(Error::Timeout { what: "reading the member's version".into(), seconds: 5 }),
        }
        // Another hub's Jobs are never seen here, so never taken for orphans. The watch spans
        // all namespaces: each tenant's jobs are in its own.
        let managed = watcher::Config::default().labels(&format!("{}=true,{}={hub}", labels::MANAGED, labels::HUB));
        let (alive_tx, alive) = tokio::sync::watch::channel(());
        let touched = Touched::default();
        let copies = super::copies::served_kinds(&client, name)
            .await
            .into_iter()
            .map(|kind| {
                let resource = super::copies::api_resource(kind);
                let store = super::cache_dynamic(
                    client.clone(),
                    &resource,
                    managed.clone(),
                    changed.clone(),
                    Some(alive.clone()),
                    Some(Touching { touched: touched.clone(), key: job_uid }),
                );
                (kind, store)
            })
            .collect();
        let member = KubernetesMember {
            name: name.to_string(),
            namespace_prefix: namespace_prefix.to_string(),
            pod_security,
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
            nodes_memo: super::nodes::NodesMemo::default(),
            jobs: cache_reporting(
                Api::all(client.clone()),
                managed,
                changed,
                Some(alive),
                Undecodables::default(),
                Some(Touching { touched: touched.clone(), key: job_uid }),
            ),
            touched,
            copies,
            health: Arc::new(Mutex::new(Health::default())),
            ready_namespaces: Arc::default(),
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

    /// The member namespace of the jobs of hub namespace `tenant`.
    pub fn namespace_for(&self, tenant: &str) -> String {
        labels::member_namespace(&self.namespace_prefix, tenant)
    }

    /// The Job of the TrainingJob with this UID from hub namespace `tenant`, as last read:
    /// in the tenant's member namespace, or in the one shared namespace jobs went to before.
    pub fn job(&self, tenant: &str, uid: &str) -> Option<Arc<WatchedJob>> {
        // Remote names derive from the UID: lookups, not a scan (this runs per job per cycle).
        let name = remote_name(uid);
        let at = |ns: &str| self.jobs.get(&ObjectRef::new(&name).within(ns));
        at(&self.namespace_for(tenant))
            .or_else(|| at(&self.namespace_prefix))
            .filter(|j| job_uid(j.as_ref()) == Some(uid))
    }

    /// The Job of the TrainingJob's attempt `attempt`: as [`Self::job`], unless it is
    /// labelled with another attempt (an earlier attempt's Job, not gone yet).
    pub fn job_of_attempt(&self, tenant: &str, uid: &str, attempt: u32) -> Option<Arc<WatchedJob>> {
        self.job(tenant, uid)
            .filter(|j| crate::attempt::of_labels(j.metadata.labels.as_ref()).is_none_or(|a| a == attempt))
    }

    /// The hub jobs whose Job or copy here changed since the last call.
    pub fn take_touched(&self) -> Touches {
        self.touched.take()
    }

    /// Whether the watches of Jobs and Pods have listed once: before that, no Job or pod
    /// seen means nothing.
    pub fn caches_ready(&self) -> bool {
        use futures::FutureExt;
        let ready = |r: Option<Result<(), _>>| r.is_some_and(|r: Result<(), _>| r.is_ok());
        ready(self.jobs.wait_until_ready().now_or_never())
            && ready(self.pods.wait_until_ready().now_or_never())
            && self.copies.iter().all(|(_, store)| ready(store.wait_until_ready().now_or_never()))
    }

    /// The job kinds besides TrainingJob this member runs.
    pub fn workload_kinds(&self) -> Vec<String> {
        self.copies.iter().map(|(kind, _)| kind.resource().kind.to_string()).collect()
    }

    /// The kind `kind` and the cache of its copies, when the member serves it.
    fn copies_of(&self, kind: &str) -> Option<(&'static dyn JobKind, &Store<DynamicObject>)> {
        self.copies.iter().find(|(k, _)| k.resource().kind == kind).map(|(k, s)| (*k, s))
    }

    /// The copy of the object `source` of kind `kind` made for the TrainingJob with this
    /// UID from hub namespace `tenant`, as last read (any attempt).
    pub fn copy(&self, tenant: &str, uid: &str, kind: &str, source: &str) -> Option<Arc<DynamicObject>> {
        let (kind, store) = self.copies_of(kind)?;
        let uid = labels::label_value(uid);
        let key = ObjectRef::new_with(source, super::copies::api_resource(kind)).within(&self.namespace_for(tenant));
        store.get(&key).filter(|c| c.metadata.labels.as_ref().and_then(|l| l.get(labels::JOB_UID)) == Some(&uid))
    }

    /// What this hub charges here by placement (see [`Placed`]), of the TrainingJobs
    /// admitted to this member.
    pub fn placed(&self, admitted_here: &[&computenet_api::TrainingJob]) -> Placed {
        let mut placed = Placed::default();
        let mut uids = BTreeSet::new();
        // Each admitted job's namespace as `namespace_of` finds it, but from one read of the
        // Jobs (by namespace and name) and each tenant's namespace worked out once: a cache
        // lookup per job builds and hashes its key, and with thousands of running jobs that
        // was most of a pass.
        let cached = self.jobs.state();
        let by_name = jobs_by_name(&cached);
        let mut tenant_namespaces: foldhash::HashMap<&str, String> = foldhash::HashMap::default();
        for tj in admitted_here.iter().filter(|tj| !computenet_api::view::is_finished(tj)) {
            let uid = computenet_api::view::uid(tj);
            let tenant = tj.metadata.namespace.as_deref().unwrap_or_default();
            let tenant_namespace: &str = tenant_namespaces.entry(tenant).or_insert_with(|| self.namespace_for(tenant));
            let uid_label = labels::label_value(uid);
            placed.job(job_namespace(&by_name, &cached, tenant_namespace, &self.namespace_prefix, uid), &uid_label);
            uids.insert(uid_label);
        }
        for (kind, store) in &self.copies {
            for copy in store.state() {
                let Some(l) = copy.metadata.labels.as_ref() else { continue };
                let label = |key: &str| l.get(key).map(String::as_str).unwrap_or_default();
                if label(labels::MANAGED) == "true"
                    && label(labels::HUB) == self.hub
                    && uids.contains(label(labels::JOB_UID))
                {
                    let (key, value) = kind.pod_label(copy.metadata.name.as_deref().unwrap_or_default());
                    placed.copy_pods(copy.metadata.namespace.as_deref().unwrap_or_default(), key, &value);
                }
            }
        }
        placed
    }

    /// What is left here of the TrainingJob's attempts other than `attempt`: a Job
    /// (whose stop is due unless it is being deleted; with its UID) or pods (stopping).
    pub fn leftover(&self, tenant: &str, uid: &str, attempt: u32) -> Option<(String, bool, Option<String>)> {
        let other = |labels: Option<&std::collections::BTreeMap<String, String>>| {
            crate::attempt::of_labels(labels).is_some_and(|a| a != attempt)
        };
        let value = labels::label_value(uid);
        for (kind, store) in &self.copies {
            let earlier = store.state().into_iter().find(|c| {
                let l = c.metadata.labels.as_ref();
                l.and_then(|l| l.get(labels::JOB_UID)) == Some(&value) && other(l)
            });
            if let Some(c) = earlier {
                let what = format!(
                    "{} {} of an earlier attempt",
                    kind.resource().kind,
                    c.metadata.name.as_deref().unwrap_or_default()
                );
                return Some((what, c.metadata.deletion_timestamp.is_none(), c.metadata.uid.clone()));
            }
        }
        if let Some(j) = self.job(tenant, uid).filter(|j| other(j.metadata.labels.as_ref())) {
            let what = format!("Job {} of an earlier attempt", remote_name(uid));
            return Some((what, j.metadata.deletion_timestamp.is_none(), j.metadata.uid.clone()));
        }
        let pods = self
            .pods
            .state()
            .iter()
            .filter(|p| {
                let l = p.metadata.labels.as_ref();
                l.and_then(|l| l.get(labels::JOB_UID)) == Some(&value)
                    && l.and_then(|l| l.get(labels::HUB)) == Some(&self.hub)
                    && other(l)
            })
            .count();
        (pods > 0).then(|| (format!("{pods} pod(s) of an earlier attempt"), false, None))
    }

    /// Stops the objects of the TrainingJob with this UID gracefully: pods get `grace_s`
    /// between SIGTERM and the kill; only the Job with UID `job_uid` is deleted, if given.
    pub async fn stop(&self, tenant: &str, uid: &str, grace_s: Option<u32>, job_uid: Option<&str>) -> Result<()> {
        job::stop(&self.client, &self.namespace_of(tenant, uid), uid, grace_s, job_uid).await
    }

    /// Where the TrainingJob's objects are: the namespace of its Job as last read, else
    /// the tenant's member namespace.
    pub fn namespace_of(&self, tenant: &str, uid: &str) -> String {
        self.job(tenant, uid).and_then(|j| j.metadata.namespace.clone()).unwrap_or_else(|| self.namespace_for(tenant))
    }

    /// Makes the tenant's member namespace ready (see [`NAMESPACE_RECHECK`]), then creates the
    /// TrainingJob's objects there unless they exist.
    pub async fn dispatch(&self, tj: &computenet_api::TrainingJob, gpu_label: Option<&str>) -> Result<()> {
        let namespace = self.ready_namespace(tj).await?;
        let result = job::dispatch(&self.client, &namespace, tj, gpu_label, &self.hub).await;
        self.dispatched(&namespace, result)
    }

    /// As [`Self::dispatch`] for a TrainingJob that queues `source`, an object of another
    /// job kind in the hub: creates its copy.
    pub async fn dispatch_copy(
        &self,
        tj: &computenet_api::TrainingJob,
        kind: &str,
        source: &serde_json::Value,
        gpu_label: Option<&str>,
    ) -> Result<()> {
        let Some((kind, _)) = self.copies_of(kind) else {
            return Err(crate::Error::Config(format!("this member does not serve {kind}s (its CRD is not installed)")));
        };
        let namespace = self.ready_namespace(tj).await?;
        let result = super::copies::dispatch(&self.client, &namespace, tj, kind, source, gpu_label, &self.hub).await;
        self.dispatched(&namespace, result)
    }

    /// Deletes the copy of `source` (of kind `kind`) made for the TrainingJob with this
    /// UID, only the one with UID `object_uid` when given, and the TrainingJob's other objects.
    pub async fn delete_copy(
        &self,
        tenant: &str,
        uid: &str,
        kind: &str,
        source: &str,
        object_uid: Option<&str>,
        grace_s: Option<u32>,
    ) -> Result<()> {
        let namespace = self.namespace_for(tenant);
        if let Some((kind, _)) = self.copies_of(kind) {
            super::copies::delete(&self.client, &namespace, kind, source, object_uid, grace_s).await?;
        }
        job::cancel(&self.client, &namespace, uid).await
    }

    /// The TrainingJob's member namespace, made ready (labels, default policy) when it was
    /// not within [`NAMESPACE_RECHECK`].
    async fn ready_namespace(&self, tj: &computenet_api::TrainingJob) -> Result<String> {
        let tenant = tj.metadata.namespace.as_deref().unwrap_or_default();
        let uid = tj.metadata.uid.as_deref().unwrap_or_default();
        let namespace = self.namespace_of(tenant, uid);
        let ready_at = self.ready_namespaces().get(&namespace).copied();
        if namespace_due(ready_at, Instant::now()) {
            job::ensure_namespace(&self.client, &namespace, tenant, &self.hub, self.pod_security).await?;
            self.ready_namespaces().insert(namespace.clone(), Instant::now());
        }
        Ok(namespace)
    }

    fn dispatched(&self, namespace: &str, result: Result<()>) -> Result<()> {
        if result.is_err() {
            // It may have been deleted since: check it again next time.
            self.ready_namespaces().remove(namespace);
        }
        result
    }

    /// Deletes the objects of the TrainingJob with this UID from hub namespace `tenant`.
    pub async fn cancel(&self, tenant: &str, uid: &str) -> Result<()> {
        job::cancel(&self.client, &self.namespace_of(tenant, uid), uid).await
    }

    fn ready_namespaces(&self) -> MutexGuard<'_, BTreeMap<String, Instant>> {
        self.ready_namespaces.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Where each of a member's Jobs is in `jobs`, by (namespace, name) as its watch cache keys
/// them.
type JobsByName<'a> = foldhash::HashMap<(Option<&'a str>, &'a str), usize>;

fn jobs_by_name(jobs: &[Arc<WatchedJob>]) -> JobsByName<'_> {
    jobs.iter()
        .enumerate()
        .map(|(i, j)| ((j.metadata.namespace.as_deref(), j.metadata.name.as_deref().unwrap_or_default()), i))
        .collect()
}

/// The namespace of the Job of the TrainingJob with this UID among `jobs`, as
/// [`KubernetesMember::namespace_of`] finds it: looked for by its name in the tenant's
/// member namespace, then in the shared one (`prefix`), each time also among Jobs without
/// a namespace (kube's store looks there when a namespaced lookup finds nothing); it must
/// carry the UID; else the tenant's namespace.
fn job_namespace<'a>(
    by_name: &JobsByName<'_>,
    jobs: &'a [Arc<WatchedJob>],
    tenant_namespace: &'a str,
    prefix: &str,
    uid: &str,
) -> &'a str {
    let name = remote_name(uid);
    let at = |namespace: &str| {
        let found = by_name.get(&(Some(namespace), name.as_str())).or_else(|| by_name.get(&(None, name.as_str())));
        found.map(|&i| jobs[i].as_ref())
    };
    at(tenant_namespace)
        .or_else(|| at(prefix))
        .filter(|j| job_uid(*j) == Some(uid))
        .and_then(|j| j.metadata.namespace.as_deref())
        .unwrap_or(tenant_namespace)
}

/// The TrainingJob UID a Job (or copy) computenet made here is labelled with.
pub fn job_uid<K: kube::Resource>(object: &K) -> Option<&str> {
    object.meta().labels.as_ref()?.get(labels::JOB_UID).map(String::as_str)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_namespace_is_made_ready_again_a_while_after_it_was() {
        let now = Instant::now();
        assert!(namespace_due(None, now), "never made ready");
        assert!(!namespace_due(Some(now), now));
        assert!(!namespace_due(Some(now), now + NAMESPACE_RECHECK - Duration::from_millis(1)));
        assert!(namespace_due(Some(now), now + NAMESPACE_RECHECK), "a deleted default deny comes back");
        // A clock read out of order counts as no time passed.
        assert!(!namespace_due(Some(now + Duration::from_secs(5)), now));
    }

    fn watched_job(namespace: &str, name: &str, uid: Option<&str>) -> WatchedJob {
        let mut job = WatchedJob::default();
        job.metadata.namespace = (!namespace.is_empty()).then(|| namespace.into());
        job.metadata.name = Some(name.into());
        job.metadata.labels = uid.map(|u| [(labels::JOB_UID.to_string(), u.to_string())].into());
        job
    }

    #[test]
    fn a_jobs_namespace_is_where_its_own_job_is_found_by_name_tenant_first() {
        let (tenant, shared) = ("cn-jobs-team-a", "cn-jobs");
        let uid = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
        let name = remote_name(uid);
        let find = |jobs: &[WatchedJob]| {
            let jobs: Vec<Arc<WatchedJob>> = jobs.iter().cloned().map(Arc::new).collect();
            job_namespace(&jobs_by_name(&jobs), &jobs, tenant, shared, uid).to_string()
        };
        assert_eq!(find(&[]), tenant, "no Job yet: the tenant's namespace");
        assert_eq!(find(&[watched_job(shared, &name, Some(uid))]), shared, "a Job from before namespaces per tenant");
        let both = [watched_job(shared, &name, Some(uid)), watched_job(tenant, &name, Some(uid))];
        assert_eq!(find(&both), tenant, "the tenant's namespace first");
        // A Job of that name in the tenant's namespace that is another job's hides the shared
        // one, as a lookup by name does; one that carries no UID is nobody's.
        let other = [watched_job(tenant, &name, Some("another")), watched_job(shared, &name, Some(uid))];
        assert_eq!(find(&other), tenant);
        assert_eq!(find(&[watched_job(shared, &name, None)]), tenant);
        assert_eq!(find(&[watched_job(shared, "cn-someoneelse", Some(uid))]), tenant, "found by name only");
        // A Job without a namespace (never so from an API server) is found where the cache
        // finds it: after a miss in the tenant's namespace, before the shared one; its
        // namespace is then the tenant's.
        let nowhere = [watched_job("", &name, Some("another")), watched_job(shared, &name, Some(uid))];
        assert_eq!(find(&nowhere), tenant, "the namespaceless Job is another job's: it hides the shared one");
        assert_eq!(find(&[watched_job("", &name, Some(uid)), watched_job(shared, &name, Some(uid))]), tenant);
    }
}

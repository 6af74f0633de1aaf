//! Connections to members: Kubernetes members (caches of their Nodes, Pods and computenet
//! Jobs) and Slurm members (a poller over slurmrestd, from the members crate), behind one
//! [`Member`] type the loop works with.

use crate::error::{Error, Result};
use crate::hub::cache;
use crate::labels;
use crate::snapshot::MemberNodes;
use computenet_api::training_job::TrainingJobPhase;
use computenet_api::{MemberCluster, TrainingJob};
use computenet_members::slurm::member as slurm_member;
use computenet_members::slurm::{convert, Credentials, RemotePhase, SlurmClient, SlurmMember, SlurmPlacement};
use computenet_members::Health;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Node, Pod, Secret};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, Client, Config};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

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

impl KubernetesMember {
    fn health(&self) -> std::sync::MutexGuard<'_, Health> {
        self.health.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Reads the member's kubeconfig Secret from the hub and connects.
pub async fn connect(hub: &Client, member: &MemberCluster, changed: Arc<Notify>) -> Result<KubernetesMember> {
    let name = member.metadata.name.clone().unwrap_or_default();
    let fail = |why: String| Error::Member { member: name.clone(), why };
    let conn = member.spec.kubernetes.as_ref().ok_or_else(|| fail("not a Kubernetes member".into()))?;
    let bytes = secret_value(hub, &conn.kubeconfig_secret_ref).await.map_err(fail)?;
    let text = std::str::from_utf8(&bytes).map_err(|_| fail("kubeconfig is not UTF-8".into()))?;
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
        health: Arc::new(Mutex::new(Health::default())),
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
    let mut h = health.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    match result {
        Ok(Ok(_)) => h.ok(),
        Ok(Err(e)) => h.failed(e.to_string()),
        Err(_) => h.failed("no answer within 3 s"),
    }
}

/// Reads one key of a Secret in the hub.
async fn secret_value(hub: &Client, r: &computenet_api::member_cluster::SecretKeyRef) -> Result<Vec<u8>, String> {
    let secret = Api::<Secret>::namespaced(hub.clone(), &r.namespace)
        .get(&r.name)
        .await
        .map_err(|e| format!("reading Secret {}/{}: {e}", r.namespace, r.name))?;
    secret
        .data
        .and_then(|mut d| d.remove(&r.key))
        .map(|b| b.0)
        .ok_or_else(|| format!("Secret {}/{} has no key {:?}", r.namespace, r.name, r.key))
}

/// Reads the Slurm member's token or key Secret from the hub and starts polling it.
pub async fn connect_slurm(hub: &Client, member: &MemberCluster, changed: Arc<Notify>) -> Result<SlurmMember> {
    let name = member.metadata.name.clone().unwrap_or_default();
    let fail = |why: String| Error::Member { member: name.clone(), why };
    let conn = member.spec.slurm.as_ref().ok_or_else(|| fail("not a Slurm member".into()))?;
    let credentials = match (&conn.token_secret_ref, &conn.jwt_key_secret_ref) {
        (Some(r), _) => {
            let token = secret_value(hub, r).await.map_err(fail)?;
            let token = String::from_utf8(token).map_err(|_| fail("the Slurm token is not UTF-8".into()))?;
            let token = token.trim().to_string();
            if token.is_empty() {
                return Err(fail(format!(
                    "the Slurm token in Secret {}/{} (key {:?}) is empty",
                    r.namespace, r.name, r.key
                )));
            }
            Credentials::Token(token)
        }
        (None, Some(r)) => Credentials::JwtKey(secret_value(hub, r).await.map_err(fail)?),
        (None, None) => return Err(fail("spec.slurm needs tokenSecretRef or jwtKeySecretRef".into())),
    };
    let client = SlurmClient::new(&conn.endpoint, &conn.api_version, &conn.user_name, credentials)
        .map_err(|e| fail(e.to_string()))?;
    let placement = SlurmPlacement {
        partitions: conn.partitions.clone(),
        working_directory: conn.working_directory.clone(),
        standard_output: conn.standard_output.clone(),
    };
    Ok(SlurmMember::start(&name, client, placement, changed))
}

/// A connected member of either kind.
#[allow(missing_debug_implementations)]
#[derive(Clone)]
pub enum Member {
    Kubernetes(KubernetesMember),
    Slurm(SlurmMember),
}

impl Member {
    /// Connects to the member the spec describes.
    pub async fn connect(hub: &Client, spec: &MemberCluster, changed: Arc<Notify>) -> Result<Self> {
        if spec.spec.slurm.is_some() {
            connect_slurm(hub, spec, changed).await.map(Member::Slurm)
        } else {
            connect(hub, spec, changed).await.map(Member::Kubernetes)
        }
    }

    /// Whether the member answered within `timeout` (a member never reached counts from
    /// when the connection was made), and the last error.
    pub fn reachable(&self, timeout: Duration) -> (bool, Option<String>) {
        match self {
            Member::Kubernetes(k) => k.health().reachable(timeout),
            Member::Slurm(s) => s.reachable(timeout),
        }
    }

    /// The reason for a NotReady condition.
    pub fn unready_reason(&self) -> &'static str {
        match self {
            Member::Kubernetes(_) => "Unreachable",
            Member::Slurm(s) => s.failure_reason().unwrap_or("Unreachable"),
        }
    }

    /// Whether the member has answered at least once (its caches are worth reading).
    pub fn ever_reached(&self) -> bool {
        match self {
            Member::Kubernetes(k) => k.health().ever_reached(),
            Member::Slurm(s) => s.ever_reached(),
        }
    }
}

/// A TrainingJob's objects on its member, as last read.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteStatus {
    /// Dispatched (waiting there), Running, Succeeded or Failed.
    pub phase: TrainingJobPhase,
    /// Condition reason and message for a failure.
    pub failure: Option<(String, String)>,
    pub exit_code: Option<i32>,
    /// Nodes the member actually runs the job on, where it decides them itself (Slurm).
    pub nodes: Option<Vec<String>>,
}

/// One of computenet's jobs found on a member (for orphan cleanup).
#[derive(Debug, Clone)]
pub struct RemoteJob {
    pub uid: String,
    /// Identifies the attempt on the member (the UID on Kubernetes, UID and requeue count on Slurm).
    pub key: String,
    /// Seconds since it was created; `None` when unknown.
    pub age_s: Option<i64>,
    pub finished: bool,
}

/// What an Indexed Job's status says.
fn kubernetes_status(job: &Job) -> RemoteStatus {
    let status = job.status.clone().unwrap_or_default();
    let done = |phase, failure| RemoteStatus { phase, failure, exit_code: None, nodes: None };
    for c in status.conditions.iter().flatten() {
        if c.status == "True" && (c.type_ == "Complete" || c.type_ == "SuccessCriteriaMet") {
            return done(TrainingJobPhase::Succeeded, None);
        }
        if c.status == "True" && (c.type_ == "Failed" || c.type_ == "FailureTarget") {
            let reason = c.reason.clone().unwrap_or_else(|| "Failed".into());
            return done(TrainingJobPhase::Failed, Some((reason, c.message.clone().unwrap_or_default())));
        }
    }
    if status.active.unwrap_or(0) > 0 || status.ready.unwrap_or(0) > 0 {
        done(TrainingJobPhase::Running, None)
    } else {
        done(TrainingJobPhase::Dispatched, None)
    }
}

/// What a batch job's state says.
fn slurm_status(job: &computenet_members::slurm::SlurmJob) -> RemoteStatus {
    let state = convert::remote_state(job);
    let phase = match state.phase {
        RemotePhase::Pending => TrainingJobPhase::Dispatched,
        RemotePhase::Running => TrainingJobPhase::Running,
        RemotePhase::Succeeded => TrainingJobPhase::Succeeded,
        RemotePhase::Failed => TrainingJobPhase::Failed,
    };
    let nodes = job.allocated_node_names();
    RemoteStatus {
        phase,
        failure: (phase == TrainingJobPhase::Failed).then(|| (state.reason.clone(), state.message.clone())),
        exit_code: state.exit_code,
        nodes: (!nodes.is_empty()).then_some(nodes),
    }
}

fn uid(tj: &TrainingJob) -> String {
    tj.metadata.uid.clone().unwrap_or_default()
}

impl Member {
    /// The TrainingJob's objects on this member; `None` when there are none (not dispatched yet).
    pub fn remote_status(&self, tj: &TrainingJob) -> Option<RemoteStatus> {
        match self {
            Member::Kubernetes(k) => {
                // Remote names derive from the UID: a lookup, not a scan (this runs per job per cycle).
                let id = uid(tj);
                let key = ObjectRef::new(&crate::dispatch::remote_name(&id)).within(&k.namespace);
                k.jobs
                    .get(&key)
                    .filter(|j| j.metadata.labels.as_ref().and_then(|l| l.get(labels::JOB_UID)) == Some(&id))
                    .map(|j| kubernetes_status(&j))
            }
            Member::Slurm(s) => {
                let key = crate::batch::key(tj);
                match s.job(&key) {
                    Some(job) => Some(slurm_status(&job)),
                    // Submitted by this process, not polled yet.
                    None if s.has_job(&key) => Some(RemoteStatus {
                        phase: TrainingJobPhase::Dispatched,
                        failure: None,
                        exit_code: None,
                        nodes: None,
                    }),
                    None => None,
                }
            }
        }
    }

    /// Creates the TrainingJob's objects unless they exist; returns the kind and name of
    /// what runs it there. `accelerator` is the member's raw name of the chosen type.
    pub async fn dispatch(&self, tj: &TrainingJob, accelerator: Option<&str>) -> Result<(String, String)> {
        match self {
            Member::Kubernetes(k) => {
                crate::dispatch::dispatch(&k.client, &k.namespace, tj, accelerator).await?;
                Ok(("Job".into(), crate::dispatch::remote_name(&uid(tj))))
            }
            Member::Slurm(s) => {
                let batch = crate::batch::batch_job(tj, &s.placement, accelerator);
                let id = s
                    .dispatch(&crate::batch::key(tj), &batch)
                    .await
                    .map_err(|e| Error::Member { member: s.name.clone(), why: e.to_string() })?;
                Ok(("SlurmJob".into(), id.to_string()))
            }
        }
    }

    /// Stops and removes the TrainingJob's objects on this member (absent ones are fine).
    pub async fn cancel(&self, tj: &TrainingJob) -> Result<()> {
        match self {
            Member::Kubernetes(k) => crate::dispatch::cancel(&k.client, &k.namespace, &uid(tj)).await,
            Member::Slurm(s) => s
                .cancel(&crate::batch::key(tj))
                .await
                .map_err(|e| Error::Member { member: s.name.clone(), why: e.to_string() }),
        }
    }

    /// computenet's jobs on this member, as last read.
    pub fn remote_jobs(&self) -> Vec<RemoteJob> {
        match self {
            Member::Kubernetes(k) => k
                .jobs
                .state()
                .iter()
                .filter_map(|job| {
                    let uid = job.metadata.labels.as_ref()?.get(labels::JOB_UID)?.clone();
                    let age_s = job
                        .metadata
                        .creation_timestamp
                        .as_ref()
                        .map(|t| k8s_openapi::jiff::Timestamp::now().as_second() - t.0.as_second());
                    let finished =
                        matches!(kubernetes_status(job).phase, TrainingJobPhase::Succeeded | TrainingJobPhase::Failed);
                    Some(RemoteJob { key: uid.clone(), uid, age_s, finished })
                })
                .collect(),
            Member::Slurm(s) => s
                .job_keys()
                .into_iter()
                .filter_map(|key| {
                    let job = s.job(&key)?;
                    let finished =
                        matches!(slurm_status(&job).phase, TrainingJobPhase::Succeeded | TrainingJobPhase::Failed);
                    let age_s = (job.submit_time > 0)
                        .then(|| k8s_openapi::jiff::Timestamp::now().as_second() - job.submit_time as i64);
                    Some(RemoteJob { uid: slurm_member::uid_of_key(&key).to_string(), key, age_s, finished })
                })
                .collect(),
        }
    }

    /// Removes a remote job found by [`Member::remote_jobs`].
    pub async fn cancel_remote(&self, job: &RemoteJob) -> Result<()> {
        match self {
            Member::Kubernetes(k) => crate::dispatch::cancel(&k.client, &k.namespace, &job.uid).await,
            Member::Slurm(s) => {
                s.cancel(&job.key).await.map_err(|e| Error::Member { member: s.name.clone(), why: e.to_string() })
            }
        }
    }

    /// The member's nodes, for the snapshot. `running` lists the TrainingJob UIDs this
    /// member runs, with their attempt keys.
    pub fn nodes(&self, admitted_here: &[&TrainingJob]) -> MemberNodes {
        match self {
            Member::Kubernetes(k) => MemberNodes::Kubernetes { nodes: k.nodes.state(), pods: k.pods.state() },
            Member::Slurm(s) => {
                let held = admitted_here
                    .iter()
                    .filter_map(|tj| {
                        let job = s.job(&crate::batch::key(tj))?;
                        convert::remote_state(&job).holds_nodes().then(|| (uid(tj), job.allocated_node_names()))
                    })
                    .collect();
                MemberNodes::Slurm { nodes: s.nodes(), held }
            }
        }
    }
}

/// All connected members, by name.
pub type Members = BTreeMap<String, Member>;

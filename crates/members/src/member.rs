//! One type for a connected member of either kind, as the scheduling loop sees it:
//! connecting from a MemberCluster (credentials read from the hub's Secrets), readiness,
//! the state of a TrainingJob's objects there, dispatch, cancel, and the member's nodes.

use crate::credentials::{self, SecretPolicy};
use crate::error::{Error, Result};
use crate::kubernetes::watched::{WatchedJob, WatchedPod};
use crate::kubernetes::{self, KubernetesMember};
use crate::labels::remote_name;
use crate::slurm::member::Owner;
use crate::slurm::tenancy::{Identity, Tenancy};
use crate::slurm::{self, convert, Credentials, RemotePhase, SlurmClient, SlurmMember, SlurmNode, SlurmPlacement};
use computenet_api::conditions::reasons;
use computenet_api::member_cluster::SecretKeyRef;
use computenet_api::training_job::TrainingJobPhase;
use computenet_api::view::uid;
use computenet_api::{MemberCluster, TrainingJob};
use computenet_core::{Catalogue, Node as CoreNode};
use k8s_openapi::api::core::v1::Node;
use kube::Client;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// The Secret keys a MemberCluster's connection reads its credentials from.
pub fn credential_refs(member: &MemberCluster) -> Vec<&SecretKeyRef> {
    credentials::secret_refs(&member.spec)
}

/// A digest of the member's credentials as the hub's Secrets hold them now: a rotated
/// token, key, CA or kubeconfig changes it (the service then reconnects). Only compared
/// within one process, never stored.
pub async fn credentials_fingerprint(hub: &Client, policy: &SecretPolicy, member: &MemberCluster) -> Result<u64> {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for r in credential_refs(member) {
        (&r.namespace, &r.name, &r.key).hash(&mut hasher);
        policy.secret_value(hub, r).await?.hash(&mut hasher);
    }
    Ok(hasher.finish())
}

/// Reads the member's kubeconfig Secret from the hub, checks it and connects.
async fn connect_kubernetes(
    hub: &Client,
    policy: &SecretPolicy,
    member: &MemberCluster,
    hub_id: &str,
    changed: Arc<Notify>,
) -> Result<KubernetesMember> {
    let conn = member.spec.kubernetes.as_ref().ok_or_else(|| Error::Config("not a Kubernetes member".into()))?;
    let r = &conn.kubeconfig_secret_ref;
    let kubeconfig = credentials::parse_kubeconfig(r, &policy.secret_value(hub, r).await?)?;
    let config = credentials::kube_config(r, kubeconfig).await?;
    let name = member.metadata.name.as_deref().unwrap_or_default();
    KubernetesMember::connect(name, config, &conn.namespace, conn.pod_security, hub_id, changed).await
}

/// Reads the Slurm member's token or key Secret (and CA) from the hub and starts polling it.
async fn connect_slurm(
    hub: &Client,
    policy: &SecretPolicy,
    member: &MemberCluster,
    hub_id: &str,
    changed: Arc<Notify>,
) -> Result<SlurmMember> {
    let conn = member.spec.slurm.as_ref().ok_or_else(|| Error::Config("not a Slurm member".into()))?;
    let transport =
        credentials::check_endpoint("the slurmrestd endpoint", "spec.slurm", &conn.endpoint, conn.insecure_http)?;
    let credentials = match (&conn.token_secret_ref, &conn.jwt_key_secret_ref) {
        (Some(r), _) => {
            let token = policy.secret_value(hub, r).await?;
            let token = String::from_utf8(token)
                .map_err(|_| Error::Config(format!("{}: the Slurm token is not UTF-8", credentials::describe(r))))?;
            let token = token.trim().to_string();
            if token.is_empty() {
                return Err(Error::Config(format!(
                    "the Slurm token in Secret {}/{} (key {:?}) is empty",
                    r.namespace, r.name, r.key
                )));
            }
            // Checked here, so that the HTTP library's error never has to speak of it.
            if reqwest::header::HeaderValue::from_str(&token).is_err() {
                return Err(Error::Config(format!(
                    "{}: the Slurm token has characters an HTTP header cannot carry",
                    credentials::describe(r)
                )));
            }
            Credentials::Token(token)
        }
        (None, Some(r)) => Credentials::JwtKey(policy.secret_value(hub, r).await?),
        (None, None) => return Err(Error::Config("spec.slurm needs tokenSecretRef or jwtKeySecretRef".into())),
    };
    let ca = match &conn.ca_secret_ref {
        Some(r) => Some((r, policy.secret_value(hub, r).await?)),
        None => None,
    };
    let http = credentials::http_client(
        transport,
        ca.as_ref().map(|(r, pem)| (*r, pem.as_slice())),
        slurm::client::CONNECT_TIMEOUT,
        slurm::client::CALL_TIMEOUT,
    )?;
    if transport == credentials::Transport::InsecureAllowed {
        tracing::warn!(
            member = member.metadata.name.as_deref().unwrap_or_default(),
            endpoint = %conn.endpoint,
            "insecureHTTP: the Slurm token is sent over plain http"
        );
    }
    let tenancy = Tenancy::new(conn)?;
    let client = SlurmClient::new(&conn.endpoint, &conn.api_version, &conn.user_name, credentials)?.with_http(http);
    let placement =
        SlurmPlacement { partitions: conn.partitions.clone(), standard_output: conn.standard_output.clone() };
    let owner = Owner { hub: hub_id.to_string(), tenancy };
    Ok(SlurmMember::start(member.metadata.name.as_deref().unwrap_or_default(), client, placement, owner, changed))
}

/// A connected member of either kind.
#[allow(missing_debug_implementations)]
#[derive(Clone)]
pub enum Member {
    Kubernetes(KubernetesMember),
    Slurm(SlurmMember),
}

/// All connected members, by name.
pub type Members = BTreeMap<String, Member>;

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

impl RemoteStatus {
    fn finished(&self) -> bool {
        matches!(self.phase, TrainingJobPhase::Succeeded | TrainingJobPhase::Failed)
    }
}

/// What is left on a member of a TrainingJob's attempts other than its current one: a new
/// attempt starts only once nothing is left ("old pods stopped before new ones start").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leftover {
    /// What, for logs and the job's condition.
    pub what: String,
    /// Whether a stop call is due now (something not yet told to stop, or past its grace
    /// period); otherwise it is stopping and the new attempt waits.
    pub stop_due: bool,
    /// The Kubernetes Job's own UID (a delete precondition: never the new attempt's Job).
    pub job_uid: Option<String>,
}

/// One of this hub's jobs found on a member (for orphan cleanup).
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteJob {
    pub uid: String,
    /// Identifies the attempt on the member (the UID on Kubernetes, UID and attempt number on Slurm).
    pub key: String,
    /// The Slurm batch job id (an attempt may, after a lost answer, have two).
    pub id: Option<u64>,
    /// The member namespace it is in (Kubernetes).
    pub namespace: Option<String>,
    /// Seconds since it was created; `None` when unknown.
    pub age_s: Option<i64>,
    pub finished: bool,
    /// The hub namespace its Slurm comment names (Slurm only): a TrainingJob of another
    /// namespace does not account for it.
    pub hub_namespace: Option<String>,
    /// The Slurm user that owns it (Slurm only): what it is cancelled as.
    pub user: Option<String>,
    /// A copy of another job kind's object (Kubernetes): its kind, name and own UID.
    pub copy: Option<(String, String, Option<String>)>,
}

/// A member's nodes as its backend reports them.
#[derive(Debug, Default)]
pub enum MemberNodes {
    /// Not connected: no nodes.
    #[default]
    None,
    /// Nodes, and the pods whose requests use them: all but those charged by a placement
    /// instead (`kubernetes::nodes::Placed`).
    Kubernetes { nodes: Vec<Arc<Node>>, pods: Vec<Arc<WatchedPod>>, memo: kubernetes::nodes::NodesMemo },
    /// Slurm nodes (their allocations include every running job, computenet's too), and
    /// the nodes each of computenet's running batch jobs holds, by TrainingJob UID.
    Slurm { nodes: Vec<SlurmNode>, held: BTreeMap<String, Vec<String>> },
}

impl MemberNodes {
    /// The nodes as the core's nodes, sorted by name. Kubernetes nodes are charged with the
    /// pods not charged by a placement; Slurm nodes with everything Slurm allocated, computenet's
    /// own batch jobs included (see `held`).
    pub fn core_nodes(&self, catalogue: &Catalogue) -> Vec<CoreNode> {
        match self {
            MemberNodes::None => Vec::new(),
            MemberNodes::Kubernetes { nodes, pods, memo } => memo.core_nodes(nodes, pods, catalogue),
            MemberNodes::Slurm { nodes, .. } => {
                let mut core: Vec<CoreNode> = nodes.iter().map(|n| convert::core_node(n, catalogue).0).collect();
                core.sort_by(|a, b| a.name.cmp(&b.name));
                core
            }
        }
    }

    /// The member's own names of its accelerator types, by catalogue name: the
    /// `nvidia.com/gpu.product` label value (Kubernetes) or the `gres` type (Slurm), to ask
    /// for a type by when dispatching. Of two Kubernetes nodes of one type labelled
    /// differently, the later by name gives it.
    pub fn raw_accelerator_names(&self, catalogue: &Catalogue) -> BTreeMap<String, String> {
        match self {
            MemberNodes::None => BTreeMap::new(),
            MemberNodes::Kubernetes { nodes, memo, .. } => memo.raw_accelerator_names(nodes, catalogue),
            MemberNodes::Slurm { nodes, .. } => nodes
                .iter()
                .filter_map(|n| match convert::core_node(n, catalogue) {
                    (CoreNode { accelerator: Some(a), .. }, Some(raw)) => Some((a, raw)),
                    _ => None,
                })
                .collect(),
        }
    }
}

/// What an Indexed Job's status says.
fn kubernetes_status(job: &WatchedJob) -> RemoteStatus {
    let done = |phase, failure| RemoteStatus { phase, failure, exit_code: None, nodes: None };
    let Some(status) = job.status.as_ref() else { return done(TrainingJobPhase::Dispatched, None) };
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

/// What a copy of another job kind's object says (its kind's controller's conditions).
fn copy_status(kind: &str, copy: &kube::api::DynamicObject) -> RemoteStatus {
    use computenet_api::kinds::KindState;
    let state = match (computenet_api::kinds::by_kind(kind), serde_json::to_value(copy)) {
        (Some(kind), Ok(object)) => kind.state(&object),
        _ => KindState::Pending,
    };
    let (phase, failure) = match state {
        KindState::Pending => (TrainingJobPhase::Dispatched, None),
        KindState::Running => (TrainingJobPhase::Running, None),
        KindState::Succeeded => (TrainingJobPhase::Succeeded, None),
        KindState::Failed { reason, message } => (TrainingJobPhase::Failed, Some((reason, message))),
    };
    RemoteStatus { phase, failure, exit_code: None, nodes: None }
}

/// What a batch job's state says.
fn slurm_status(job: &slurm::SlurmJob) -> RemoteStatus {
    let state = convert::remote_state(job);
    let phase = match state.phase {
        RemotePhase::Pending => TrainingJobPhase::Dispatched,
        RemotePhase::Running => TrainingJobPhase::Running,
        RemotePhase::Succeeded => TrainingJobPhase::Succeeded,
        RemotePhase::Failed => TrainingJobPhase::Failed,
    };
    // A host list too large to expand names no nodes (the job still mirrors).
    let nodes = job.allocated_node_names().unwrap_or_default();
    RemoteStatus {
        phase,
        failure: (phase == TrainingJobPhase::Failed).then(|| (state.reason.clone(), state.message.clone())),
        exit_code: state.exit_code,
        nodes: (!nodes.is_empty()).then_some(nodes),
    }
}

/// The batch job id the TrainingJob's status records for its current attempt.
fn recorded_batch_job(tj: &TrainingJob) -> Option<u64> {
    let remote = tj.status.as_ref()?.remote.as_ref()?;
    (remote.kind == "SlurmJob").then(|| remote.name.parse().ok())?
}

/// Who the TrainingJob's batch jobs run as on `member`; `None` when its namespace has no
/// Slurm user there.
fn identity<'a>(member: &'a SlurmMember, tj: &TrainingJob) -> Option<&'a Identity> {
    member.owner.tenancy.identity(tj.metadata.namespace.as_deref().unwrap_or_default())
}

/// A restartable job's grace period (zero for others: they are cancelled at once).
fn grace(tj: &TrainingJob) -> Duration {
    Duration::from_secs(u64::from(crate::attempt::grace_period_s(tj).unwrap_or(0)))
}

/// The TrainingJob's hub namespace: its tenant.
fn tenant(tj: &TrainingJob) -> &str {
    tj.metadata.namespace.as_deref().unwrap_or_default()
}

fn seconds_since(epoch_s: i64) -> i64 {
    k8s_openapi::jiff::Timestamp::now().as_second() - epoch_s
}

impl Member {
    /// Connects to the member the spec describes, reading its credentials from the hub.
    /// `hub_id` marks everything this hub creates there; only what it marks is its own.
    /// Secrets are read as `policy` allows; the connection is checked first
    /// ([`credentials::check_spec`]), so a refused one reads and sends nothing.
    pub async fn connect(
        hub: &Client,
        policy: &SecretPolicy,
        spec: &MemberCluster,
        hub_id: &str,
        changed: Arc<Notify>,
    ) -> Result<Self> {
        let connected = match credentials::check_spec(&spec.spec, policy) {
            Err(e) => Err(e),
            Ok(_) if spec.spec.slurm.is_some() => {
                connect_slurm(hub, policy, spec, hub_id, changed).await.map(Member::Slurm)
            }
            Ok(_) => connect_kubernetes(hub, policy, spec, hub_id, changed).await.map(Member::Kubernetes),
        };
        connected.map_err(|e| e.on(spec.metadata.name.as_deref().unwrap_or_default()))
    }

    /// The job kinds besides TrainingJob the member runs (none on Slurm).
    pub fn workload_kinds(&self) -> Vec<String> {
        match self {
            Member::Kubernetes(k) => k.workload_kinds(),
            Member::Slurm(_) => Vec::new(),
        }
    }

    /// The MemberCluster's name.
    pub fn name(&self) -> &str {
        match self {
            Member::Kubernetes(k) => &k.name,
            Member::Slurm(s) => &s.name,
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
            Member::Kubernetes(k) => k.health().last_reason().unwrap_or(reasons::UNREACHABLE),
            Member::Slurm(s) => s.failure_reason().unwrap_or(reasons::UNREACHABLE),
        }
    }

    /// Whether the member's last answer refused computenet's credentials (HTTP 401 from a
    /// Kubernetes apiserver, 401/403 from slurmrestd): it is alive but needs new ones.
    pub fn credentials_rejected(&self) -> bool {
        let reason = match self {
            Member::Kubernetes(k) => k.health().last_reason(),
            Member::Slurm(s) => s.failure_reason(),
        };
        reason == Some(reasons::AUTHENTICATION_FAILED)
    }

    /// The hub jobs whose objects here changed since the last call. A Slurm member's jobs
    /// are polled, not watched: none (its jobs are looked at every pass).
    pub fn take_touched(&self) -> crate::kubernetes::Touches {
        match self {
            Member::Kubernetes(k) => k.take_touched(),
            Member::Slurm(_) => crate::kubernetes::Touches::default(),
        }
    }

    /// Whether the member has answered at least once (its caches are worth reading).
    pub fn ever_reached(&self) -> bool {
        match self {
            Member::Kubernetes(k) => k.health().ever_reached(),
            Member::Slurm(s) => s.ever_reached(),
        }
    }

    /// The TrainingJob's objects on this member; `None` when there are none (not dispatched yet).
    pub fn remote_status(&self, tj: &TrainingJob) -> Option<RemoteStatus> {
        match self {
            Member::Kubernetes(k) => match &tj.spec.source {
                Some(src) => k
                    .copy(tenant(tj), uid(tj), &src.kind, &src.name)
                    .filter(|c| {
                        crate::attempt::of_labels(c.metadata.labels.as_ref())
                            .is_none_or(|a| a == crate::attempt::number(tj))
                    })
                    .map(|c| copy_status(&src.kind, &c)),
                None => {
                    k.job_of_attempt(tenant(tj), uid(tj), crate::attempt::number(tj)).map(|j| kubernetes_status(&j))
                }
            },
            Member::Slurm(s) => {
                let key = slurm::batch::key(tj);
                let user = &identity(s, tj)?.user;
                match s.job(&key, recorded_batch_job(tj), user) {
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
    /// what runs it there. `accelerator` is the member's raw name of the chosen type;
    /// `source` the hub object a TrainingJob with `spec.source` queues (it is copied).
    pub async fn dispatch(
        &self,
        tj: &TrainingJob,
        accelerator: Option<&str>,
        source: Option<&serde_json::Value>,
    ) -> Result<(String, String)> {
        let dispatched = match (self, &tj.spec.source) {
            (Member::Kubernetes(k), Some(src)) => match source {
                Some(object) => k
                    .dispatch_copy(tj, &src.kind, object, accelerator)
                    .await
                    .map(|()| (src.kind.clone(), src.name.clone())),
                None => Err(Error::Config(format!("{} {} is not in the hub any more", src.kind, src.name))),
            },
            (Member::Slurm(_), Some(src)) => {
                Err(Error::Config(format!("a {} cannot run on a Slurm member: they run only TrainingJobs", src.kind)))
            }
            (Member::Kubernetes(k), None) => {
                k.dispatch(tj, accelerator).await.map(|()| ("Job".to_string(), remote_name(uid(tj))))
            }
            (Member::Slurm(s), None) => match identity(s, tj) {
                Some(who) => {
                    let batch = slurm::batch::batch_job(tj, &s.placement, who, accelerator, &s.owner.hub);
                    let key = slurm::batch::key(tj);
                    s.dispatch(&key, &batch, &who.user).await.map(|id| ("SlurmJob".to_string(), id.to_string()))
                }
                None => Err(Error::Config(format!(
                    "namespace {:?} has no Slurm user on this member (spec.slurm.tenants)",
                    tj.metadata.namespace.as_deref().unwrap_or_default()
                ))),
            },
        };
        dispatched.map_err(|e| e.on(self.name()))
    }

    /// Stops and removes the TrainingJob's objects on this member (absent ones are fine).
    pub async fn cancel(&self, tj: &TrainingJob) -> Result<()> {
        let cancelled = match self {
            Member::Kubernetes(k) => match &tj.spec.source {
                Some(src) => k.delete_copy(tenant(tj), uid(tj), &src.kind, &src.name, None, None).await,
                None => k.cancel(tenant(tj), uid(tj)).await,
            },
            Member::Slurm(s) => match identity(s, tj) {
                Some(who) => s.cancel(&slurm::batch::key(tj), &who.user).await,
                // No user mapped: none of its batch jobs is recognised as ours to cancel.
                None => {
                    tracing::warn!(member = %s.name, job = %uid(tj), "no Slurm user mapped for the job's namespace: nothing cancelled");
                    Ok(())
                }
            },
        };
        cancelled.map_err(|e| e.on(self.name()))
    }

    /// Whether what the member's caches say can be trusted: they have listed once.
    pub fn caches_ready(&self) -> bool {
        match self {
            Member::Kubernetes(k) => k.caches_ready(),
            Member::Slurm(s) => s.ever_reached(),
        }
    }

    /// What is left here of the TrainingJob's attempts other than its current one.
    pub fn leftover(&self, tj: &TrainingJob) -> Option<Leftover> {
        match self {
            Member::Kubernetes(k) => k
                .leftover(tenant(tj), uid(tj), crate::attempt::number(tj))
                .map(|(what, stop_due, job_uid)| Leftover { what, stop_due, job_uid }),
            Member::Slurm(s) => {
                let user = &identity(s, tj)?.user;
                let (what, stop_due) = s.leftover(uid(tj), &slurm::batch::key(tj), user, grace(tj))?;
                Some(Leftover { what, stop_due, job_uid: None })
            }
        }
    }

    /// Stops what `leftover` found of the TrainingJob's earlier attempts, gracefully.
    pub async fn stop_earlier(&self, tj: &TrainingJob, leftover: &Leftover) -> Result<()> {
        let stopped = match self {
            Member::Kubernetes(k) => match (&leftover.job_uid, &tj.spec.source) {
                (Some(object_uid), Some(src)) => {
                    let grace = crate::attempt::grace_period_s(tj);
                    k.delete_copy(tenant(tj), uid(tj), &src.kind, &src.name, Some(object_uid), grace).await
                }
                (Some(job_uid), None) => {
                    k.stop(tenant(tj), uid(tj), crate::attempt::grace_period_s(tj), Some(job_uid)).await
                }
                (None, _) => Ok(()),
            },
            Member::Slurm(s) => match identity(s, tj) {
                Some(who) => {
                    let current = slurm::batch::key(tj);
                    s.stop(uid(tj), &who.user, |k| k != current, grace(tj)).await
                }
                None => Ok(()),
            },
        };
        stopped.map_err(|e| e.on(self.name()))
    }

    /// Stops the TrainingJob's current attempt: a restartable job gracefully (SIGTERM,
    /// then its grace period; on Slurm the batch job is cancelled by a later stop or by
    /// orphan cleanup once the grace period has passed), any other as [`Member::cancel`].
    pub async fn stop(&self, tj: &TrainingJob) -> Result<()> {
        if !crate::attempt::restartable(tj) {
            return self.cancel(tj).await;
        }
        let stopped = match self {
            Member::Kubernetes(k) => k.stop(tenant(tj), uid(tj), crate::attempt::grace_period_s(tj), None).await,
            Member::Slurm(s) => match identity(s, tj) {
                Some(who) => {
                    let current = slurm::batch::key(tj);
                    s.stop(uid(tj), &who.user, |k| k == current, grace(tj)).await
                }
                None => Ok(()),
            },
        };
        stopped.map_err(|e| e.on(self.name()))
    }

    /// computenet's jobs on this member, as last read.
    pub fn remote_jobs(&self) -> Vec<RemoteJob> {
        match self {
            Member::Kubernetes(k) => k
                .copies
                .iter()
                .flat_map(|(kind, store)| store.state().into_iter().map(move |c| (*kind, c)))
                .filter_map(|(kind, copy)| {
                    let uid = copy.metadata.labels.as_ref()?.get(crate::labels::JOB_UID)?.clone();
                    let age_s = copy.metadata.creation_timestamp.as_ref().map(|t| seconds_since(t.0.as_second()));
                    let name = copy.metadata.name.clone().unwrap_or_default();
                    Some(RemoteJob {
                        key: uid.clone(),
                        uid,
                        id: None,
                        namespace: copy.metadata.namespace.clone(),
                        age_s,
                        finished: copy_status(kind.resource().kind, &copy).finished(),
                        hub_namespace: None,
                        user: None,
                        copy: Some((kind.resource().kind.to_string(), name, copy.metadata.uid.clone())),
                    })
                })
                .chain(k.jobs.state().iter().filter_map(|job| {
                    let uid = kubernetes::member::job_uid(job.as_ref())?.to_string();
                    let age_s = job.metadata.creation_timestamp.as_ref().map(|t| seconds_since(t.0.as_second()));
                    let finished = kubernetes_status(job).finished();
                    let namespace = job.metadata.namespace.clone();
                    Some(RemoteJob {
                        key: uid.clone(),
                        uid,
                        id: None,
                        namespace,
                        age_s,
                        finished,
                        hub_namespace: None,
                        user: None,
                        copy: None,
                    })
                }))
                .collect(),
            Member::Slurm(s) => s
                .all_jobs()
                .into_iter()
                .map(|(key, job)| {
                    let finished = slurm_status(&job).finished();
                    let age_s =
                        (job.submit_time > 0).then(|| seconds_since(i64::try_from(job.submit_time).unwrap_or(0)));
                    let uid = convert::uid_of_key(&key).to_string();
                    let tag = convert::Tag::parse(&job.comment);
                    let hub_namespace = tag.and_then(|t| Some(t.training_job.split_once('/')?.0.to_string()));
                    let user = Some(job.user_name.clone()).filter(|u| !u.is_empty());
                    RemoteJob {
                        uid,
                        key,
                        id: Some(job.job_id),
                        namespace: None,
                        age_s,
                        finished,
                        hub_namespace,
                        user,
                        copy: None,
                    }
                })
                .collect(),
        }
    }

    /// Removes a remote job found by [`Member::remote_jobs`].
    pub async fn cancel_remote(&self, job: &RemoteJob) -> Result<()> {
        let cancelled = match self {
            Member::Kubernetes(k) => match (&job.namespace, &job.copy) {
                (Some(namespace), Some((kind, name, copy_uid))) => match computenet_api::kinds::by_kind(kind) {
                    Some(kind) => {
                        // Only the copy seen: never a newer one of the same name.
                        kubernetes::copies::delete(&k.client, namespace, kind, name, copy_uid.as_deref(), None).await?;
                        kubernetes::job::cancel(&k.client, namespace, &job.uid).await
                    }
                    None => Ok(()),
                },
                (Some(namespace), None) => kubernetes::job::cancel(&k.client, namespace, &job.uid).await,
                (None, _) => Err(Error::Config(format!("remote job {} has no namespace", job.uid))),
            },
            Member::Slurm(s) => {
                // Listed jobs are owned by a user of ours (see `Owner::key_of`): cancel as it.
                let user = job.user.as_deref().unwrap_or(s.owner.tenancy.service_user());
                match job.id {
                    Some(id) => s.cancel_one(id, user).await,
                    None => s.cancel(&job.key, user).await,
                }
            }
        };
        cancelled.map_err(|e| e.on(self.name()))
    }

    /// The member's nodes, for the snapshot. `admitted_here` lists the TrainingJobs
    /// admitted to this member (a Slurm member reports the nodes their batch jobs hold).
    pub fn nodes(&self, admitted_here: &[&TrainingJob]) -> MemberNodes {
        match self {
            Member::Kubernetes(k) => {
                let placed = k.placed(admitted_here);
                let pods = k
                    .pods
                    .state()
                    .into_iter()
                    .filter(|p| !kubernetes::nodes::charged_by_placement(p, &k.hub, &placed))
                    .collect();
                MemberNodes::Kubernetes { nodes: k.nodes.state(), pods, memo: k.nodes_memo.clone() }
            }
            Member::Slurm(s) => {
                let held = admitted_here
                    .iter()
                    .filter_map(|tj| {
                        let user = &identity(s, tj)?.user;
                        let job = s.job(&slurm::batch::key(tj), recorded_batch_job(tj), user)?;
                        let nodes = job.allocated_node_names().ok()?;
                        convert::remote_state(&job).holds_nodes().then(|| (uid(tj).to_string(), nodes))
                    })
                    .collect();
                MemberNodes::Slurm { nodes: s.nodes(), held }
            }
        }
    }
}

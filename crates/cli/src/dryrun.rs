//! `kubectl computenet dry-run -f job.yaml`: where a job would go now, by the scheduler's
//! own cycle on a pool rebuilt from the hub, without creating it.
//!
//! The pool is rebuilt from each member's `status.freeNodes` (free capacity per node group,
//! which already counts what runs there). Admitted jobs are matched to those node groups so
//! that the cycle knows when their capacity comes back (for a reservation's start) and what
//! they hold of their queue's quota; the hub's other pending jobs are queued with it, so the
//! answer reflects queue order. The job goes last among jobs of its priority, as if it was
//! submitted now.
//!
//! Hub objects are read through [`computenet_api::view`], as the service reads them, and
//! runtimes come from the same measured throughput profiles: the files given with
//! `--profiles` and the hub's profiles ConfigMap ([`Profiles`]).

use crate::explain::{candidates_table, gang, rejected_table};
use crate::table::{self, number};
use anyhow::{bail, Context};
use computenet_api::convert::round3 as round;
use computenet_api::training_job::{CandidateStatus, RejectedStatus};
use computenet_api::view::{self, Problem};
use computenet_api::{convert, profiles, ComputeCohort, ComputeQueue, MemberCluster, TrainingJob, TrainingJobPhase};
use computenet_core::explain::Explanation;
use computenet_core::pool::NodeSlot;
use computenet_core::profiles::ProfileSet;
use computenet_core::{
    Action, Cluster, ClusterEfficiency, CycleConfig, Decision, Job, Node, NodeCapacity, Pool, ReplicaRequest,
    RunningJob, Scheduler, Snapshot, ThroughputModel,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
use k8s_openapi::jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The id of the dry-run job in the cycle (never a UID).
const DRY_RUN_ID: &str = "dry-run:";

/// Heartbeats older than this are called out.
const STALE_AFTER_S: i64 = 60;

/// The manifest, checked: a TrainingJob of computenet.io/v1alpha1.
pub fn parse_manifest(text: &str, source: &str) -> anyhow::Result<TrainingJob> {
    let mut docs = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(text) {
        let value = serde_yaml::Value::deserialize(doc).with_context(|| format!("{source}: not valid YAML"))?;
        if !value.is_null() {
            docs.push(value);
        }
    }
    let value = match docs.len() {
        0 => bail!("{source}: empty; give a TrainingJob manifest"),
        1 => docs.remove(0),
        n => bail!("{source}: {n} documents; give exactly one TrainingJob"),
    };
    let field = |name: &str| value.get(name).and_then(|v| v.as_str()).map(str::to_string);
    let (kind, api_version) = (field("kind"), field("apiVersion"));
    if kind.as_deref() != Some("TrainingJob") || api_version.as_deref() != Some("computenet.io/v1alpha1") {
        bail!(
            "{source}: a {} of {} is not a TrainingJob of computenet.io/v1alpha1",
            kind.as_deref().unwrap_or("manifest without kind"),
            api_version.as_deref().unwrap_or("no apiVersion")
        );
    }
    let job: TrainingJob =
        serde_yaml::from_value(value).map_err(|e| anyhow::anyhow!("{source}: invalid TrainingJob: {e}"))?;
    if job.metadata.name.is_none() && job.metadata.generate_name.is_none() {
        bail!("{source}: metadata.name is missing");
    }
    Ok(job)
}

/// The measured throughput profiles the dry-run estimates with, as the service has them:
/// profile files first, then the hub's profiles ConfigMap.
#[derive(Debug, Clone, Default)]
pub struct Profiles {
    pub set: ProfileSet,
    /// What the report should say about them: a ConfigMap missing, unreadable or refused.
    pub notes: Vec<String>,
}

/// What reading the hub's profiles ConfigMap gave.
#[derive(Debug, Clone)]
pub enum ConfigMapRead {
    /// Not asked for (`--profiles-configmap ''`).
    Disabled,
    /// It does not exist.
    Missing,
    /// Its data: a document per key.
    Found(BTreeMap<String, String>),
    /// Could not be read (not allowed, or the request failed): why.
    Failed(String),
}

impl Profiles {
    /// The profiles of files and folders given with `--profiles` (see
    /// [`computenet_api::profiles`] for the formats); an error names the document refused.
    pub fn from_paths(paths: &[PathBuf]) -> anyhow::Result<Profiles> {
        let documents = profiles::read_paths(paths)?;
        let set = profiles::parse_all(documents.iter().map(|(n, t)| (n.as_str(), t.as_str())))?;
        Ok(Profiles { set, notes: Vec::new() })
    }

    /// Adds the profiles of the ConfigMap `namespace/name` (each key a document). One that
    /// is missing or cannot be read adds none; one with a document that does not parse is
    /// ignored whole, as the service refuses it. Each of these is noted.
    pub fn add_config_map(&mut self, namespace: &str, name: &str, read: ConfigMapRead) {
        let fallback = if self.set.models().next().is_some() {
            "only the --profiles files' measured profiles are used"
        } else {
            "no measured profiles are used (runtimes from peak TFLOPS)"
        };
        match read {
            ConfigMapRead::Disabled => {}
            ConfigMapRead::Missing => {
                self.notes.push(format!("no profiles ConfigMap {namespace}/{name} on the hub: {fallback}"))
            }
            ConfigMapRead::Failed(why) => self.notes.push(format!(
                "could not read the profiles ConfigMap {namespace}/{name} ({why}): {fallback}, the scheduler's may differ"
            )),
            ConfigMapRead::Found(data) => {
                match profiles::parse_all(data.iter().map(|(k, v)| (k.as_str(), v.as_str()))) {
                    Ok(set) => self.set.extend(set),
                    Err(e) => self.notes.push(format!(
                        "the profiles ConfigMap {namespace}/{name} is ignored, {e}: {fallback} (the scheduler keeps the profiles it had before)"
                    )),
                }
            }
        }
    }
}

/// What the hub shows, and the job to try.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    /// The job, its namespace set.
    pub job: &'a TrainingJob,
    pub members: &'a [MemberCluster],
    pub queues: &'a [ComputeQueue],
    /// The cohort tree's levels.
    pub cohorts: &'a [ComputeCohort],
    /// All TrainingJobs of the hub.
    pub jobs: &'a [TrainingJob],
    /// Labels of the job's namespace: `None` when it does not exist, `Some(None)` when they
    /// could not be read.
    pub namespace_labels: Option<Option<&'a BTreeMap<String, String>>>,
    /// Measured throughput profiles.
    pub profiles: &'a Profiles,
    /// Seconds since the epoch.
    pub now: u64,
}

/// What the dry-run found.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DryRunReport {
    /// namespace/name.
    pub job: String,
    pub queue: String,
    pub gang: String,
    /// Admit, Reserve, Preempt, Queued or Pending (not queueable).
    pub decision: String,
    /// The decision in one line.
    pub summary: String,
    pub cluster: Option<String>,
    pub accelerator: Option<String>,
    /// Nodes the gang would use.
    pub nodes: Option<usize>,
    pub backfilled: bool,
    /// Jobs (namespace/name) to preempt.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub victims: Vec<String>,
    /// Why it would wait.
    pub reason: Option<String>,
    /// Queue position it would get.
    pub queue_position: Option<u32>,
    /// RFC 3339.
    pub estimated_start: Option<String>,
    pub start_in_seconds: Option<u64>,
    /// RFC 3339.
    pub estimated_finish: Option<String>,
    /// Data transfer and run.
    pub runtime_seconds: Option<f64>,
    pub energy_k_wh: Option<f64>,
    pub cost: Option<f64>,
    pub carbon_kg: Option<f64>,
    /// The best candidates with their score breakdown; lower is better.
    pub candidates: Vec<CandidateStatus>,
    /// Every other member and why it was not a candidate.
    pub rejected: Vec<RejectedStatus>,
    /// Other jobs of the hub in the cycle: running and pending.
    pub running_jobs: usize,
    pub pending_jobs: usize,
    /// Where this answer may differ from the scheduler's.
    pub notes: Vec<String>,
}

fn job_name(job: &TrainingJob) -> String {
    format!(
        "{}/{}",
        job.metadata.namespace.as_deref().unwrap_or_default(),
        job.metadata.name.as_deref().or(job.metadata.generate_name.as_deref()).unwrap_or_default()
    )
}

fn not_ready_placeholder(member: &MemberCluster) -> Cluster {
    Cluster {
        workload_kinds: Vec::new(),
        tenants: convert::tenants(&member.spec),
        name: member.metadata.name.clone().unwrap_or_default(),
        kind: convert::cluster_kind(member.spec.kind),
        site: member.spec.site.clone(),
        ready: false,
        cordoned: member.spec.cordoned,
        efficiency: ClusterEfficiency::default(),
        data_sets: member.spec.data_sets.clone(),
        nodes: Vec::new(),
    }
}

/// The pool as the members' status shows it, in member-name order (as the scheduler orders it).
pub fn pool_from_status(members: &[MemberCluster], now: u64, notes: &mut Vec<String>) -> Pool {
    let mut sorted: Vec<&MemberCluster> = members.iter().collect();
    sorted.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let mut clusters = Vec::new();
    for m in sorted {
        let name = m.metadata.name.clone().unwrap_or_default();
        match convert::cluster_from_status(m) {
            Some(c) => {
                let status = m.status.as_ref();
                if c.ready && c.nodes.is_empty() && status.and_then(|s| s.nodes).unwrap_or(0) > 0 {
                    notes.push(format!(
                        "member {name} reports no node groups (status.freeNodes): its scheduler predates them, so nothing fits there here"
                    ));
                }
                let age = status
                    .and_then(|s| s.last_heartbeat.as_ref())
                    .map(|t| table::seconds_since(t, i64::try_from(now).unwrap_or(i64::MAX)));
                if c.ready && age.is_some_and(|a| a > STALE_AFTER_S) {
                    notes.push(format!(
                        "member {name}'s status is {} old: is `computenet serve` running?",
                        table::age(age.unwrap_or(0))
                    ));
                }
                clusters.push(c);
            }
            None => {
                notes.push(format!("member {name} has no status yet: counted as not ready"));
                clusters.push(not_ready_placeholder(m));
            }
        }
    }
    Pool { clusters, catalogue: view::catalogue(members), data_sets: BTreeMap::new(), wan_gbps: view::WAN_GBPS }
}

/// Puts up to `left` replicas on `nodes` of `accelerator`, first node first: into capacity
/// already allocated and not yet matched (`charge` false), or into free capacity, which they
/// then take (`charge` true). Returns the replicas that found no room.
fn place(
    nodes: &mut [Node],
    matched: &mut [NodeCapacity],
    request: &ReplicaRequest,
    accelerator: Option<&str>,
    mut left: u32,
    slots: &mut BTreeMap<u32, u32>,
    charge: bool,
) -> u32 {
    for (i, node) in nodes.iter_mut().enumerate() {
        if left == 0 {
            break;
        }
        if node.accelerator.as_deref() != accelerator {
            continue;
        }
        let room = if charge { node.free() } else { node.allocated.saturating_sub(&matched[i]) };
        let k = room.replicas_fitting(request).min(left);
        if k == 0 {
            continue;
        }
        if charge {
            node.allocated = add(&node.allocated, request, k);
        }
        matched[i] = add(&matched[i], request, k);
        *slots.entry(i as u32).or_default() += k;
        left -= k;
    }
    left
}

/// Admitted jobs as running gangs on the rebuilt pool.
///
/// Each is the service's running job ([`view::running_job`]: its queue, priority, request,
/// start and expected end) with its own slots, since the rebuilt pool has node groups with
/// synthetic names rather than the nodes its placement names.
/// The status counts a job in its members' allocated capacity once the scheduler has seen it
/// running there, which is the case when it started before the member's last heartbeat.
/// Such a job's replicas are matched to synthetic nodes of its accelerator type whose
/// allocated capacity can hold them (the cycle then gives that capacity back when the job
/// is expected to end). A job admitted after the heartbeat is not counted yet: its replicas
/// are charged to free capacity instead, as are those of a counted job that find no
/// allocated capacity to match. Jobs on members not in the pool are left out, as the
/// scheduler leaves them out.
pub fn running_jobs(pool: &mut Pool, members: &[MemberCluster], jobs: &[TrainingJob], now: u64) -> Vec<RunningJob> {
    let heartbeat: BTreeMap<String, u64> = members
        .iter()
        .filter_map(|m| {
            let t = m.status.as_ref()?.last_heartbeat.as_ref()?;
            Some((m.metadata.name.clone()?, view::unix(t.0)))
        })
        .collect();
    let mut admitted: Vec<&TrainingJob> =
        jobs.iter().filter(|j| view::is_admitted(j) && !view::is_finished(j)).collect();
    let started = |j: &TrainingJob| j.status.as_ref().and_then(|s| s.start_time.as_ref()).map(|t| view::unix(t.0));
    admitted.sort_by_key(|j| (started(j), view::uid(j).to_string()));
    let mut matched: Vec<Vec<NodeCapacity>> =
        pool.clusters.iter().map(|c| vec![NodeCapacity::default(); c.nodes.len()]).collect();
    let mut out = Vec::new();
    let numbers = view::NodeNumbers::of(pool);
    for tj in admitted {
        let Some(placement) = tj.status.as_ref().and_then(|s| s.placement.as_ref()) else {
            continue;
        };
        let Some(mut running) = view::running_job(tj, &numbers, now) else {
            continue;
        };
        let c = running.cluster;
        let counted = match (started(tj), heartbeat.get(&placement.cluster)) {
            (Some(s), Some(h)) => s < *h,
            _ => true,
        };
        let mut wanted: Vec<u32> = placement.nodes.iter().map(|n| n.replicas.max(0) as u32).collect();
        if wanted.is_empty() {
            wanted.push(u32::try_from(view::current_replicas(tj)).unwrap_or(0));
        }
        let cluster = &mut pool.clusters[c];
        let accelerator = placement.accelerator.as_deref();
        let request = &running.per_replica;
        let mut slots: BTreeMap<u32, u32> = BTreeMap::new();
        for mut left in wanted {
            if counted {
                left = place(&mut cluster.nodes, &mut matched[c], request, accelerator, left, &mut slots, false);
            }
            place(&mut cluster.nodes, &mut matched[c], request, accelerator, left, &mut slots, true);
        }
        running.slots = slots.into_iter().map(|(node, replicas)| NodeSlot { node, replicas }).collect();
        out.push(running);
    }
    out
}

fn add(cap: &NodeCapacity, request: &ReplicaRequest, replicas: u32) -> NodeCapacity {
    let r = u64::from(replicas);
    NodeCapacity {
        cpu_millis: cap.cpu_millis + request.cpu_millis * r,
        memory_bytes: cap.memory_bytes + request.memory_bytes * r,
        accelerators: cap.accelerators + request.accelerators * replicas,
        extended: cap.extended.clone(),
    }
}

/// The queues with every namespace admitted, for jobs whose namespace the scheduler has
/// already checked (or that the plugin cannot check).
fn open_to_all_namespaces(queues: &BTreeMap<String, &ComputeQueue>) -> Vec<ComputeQueue> {
    queues
        .iter()
        .map(|(name, q)| {
            let mut open = (*q).clone();
            open.metadata.name = Some(name.clone());
            open.spec.namespace_selector = Some(LabelSelector::default());
            open
        })
        .collect()
}

/// Queues by name, as [`view::pending_job`] takes them.
fn by_name(queues: &[ComputeQueue]) -> BTreeMap<String, &ComputeQueue> {
    queues.iter().map(|q| (q.metadata.name.clone().unwrap_or_default(), q)).collect()
}

/// The hub's other pending jobs, as the scheduler would queue them ([`view::pending_job`]
/// with `open`, the valid queues open to all namespaces). Their namespaces are not read: the
/// jobs the scheduler refused are Pending and left out, the others are taken as it took them.
fn pending_jobs(jobs: &[TrainingJob], open: &BTreeMap<String, &ComputeQueue>, skip: &str) -> Vec<Job> {
    let no_labels = BTreeMap::new();
    jobs.iter()
        .filter(|j| view::is_waiting(j))
        .filter(|j| job_name(j) != skip)
        // Jobs the scheduler refused (unknown queue, namespace not allowed, invalid) are Pending.
        .filter(|j| view::phase(j) != Some(TrainingJobPhase::Pending))
        .filter_map(|j| view::pending_job(j, open, &no_labels).ok())
        .collect()
}

fn explanation_rows(e: &Explanation) -> (Vec<CandidateStatus>, Vec<RejectedStatus>) {
    let status = convert::explanation_status(e, String::new());
    (status.candidates, status.rejected)
}

/// Nodes a gang takes on `cluster` with `accelerator`, packing replicas onto the largest nodes.
fn nodes_for(job: &Job, cluster: &Cluster, accelerator: Option<&str>) -> u32 {
    let per_node = cluster
        .nodes
        .iter()
        .filter(|n| n.accelerator.as_deref() == accelerator)
        .map(|n| n.allocatable.replicas_fitting(&job.per_replica))
        .max()
        .unwrap_or(1)
        .max(1);
    job.replicas.div_ceil(per_node)
}

fn empty_report(job: &TrainingJob) -> DryRunReport {
    DryRunReport {
        job: job_name(job),
        queue: job.spec.queue_name.clone(),
        gang: gang(&job.spec),
        decision: String::new(),
        summary: String::new(),
        cluster: None,
        accelerator: None,
        nodes: None,
        backfilled: false,
        victims: Vec::new(),
        reason: None,
        queue_position: None,
        estimated_start: None,
        start_in_seconds: None,
        estimated_finish: None,
        runtime_seconds: None,
        energy_k_wh: None,
        cost: None,
        carbon_kg: None,
        candidates: Vec::new(),
        rejected: Vec::new(),
        running_jobs: 0,
        pending_jobs: 0,
        notes: Vec::new(),
    }
}

impl DryRunReport {
    fn set_times(&mut self, now: u64, start: u64, estimate: &computenet_core::Estimate) {
        let run = estimate.transfer_s + estimate.runtime_s;
        self.estimated_start = Some(table::timestamp(start.max(now)));
        self.start_in_seconds = Some(start.saturating_sub(now));
        self.estimated_finish = Some(table::timestamp(start.max(now) + run.ceil() as u64));
        self.runtime_seconds = Some(round(run));
        self.energy_k_wh = Some(round(estimate.energy_kwh));
        self.cost = Some(round(estimate.cost));
        self.carbon_kg = estimate.carbon_kg.map(round);
    }
}

/// Runs the dry-run.
pub fn run(input: &Input<'_>) -> anyhow::Result<DryRunReport> {
    let name = job_name(input.job);
    let mut report = empty_report(input.job);
    report.notes.extend(input.profiles.notes.iter().cloned());
    let view::HubQueues { core: queues, by_name: valid, invalid } = view::queues(input.queues);
    for (qname, e) in invalid {
        report.notes.push(format!("ComputeQueue {qname} is invalid and left out: {e}"));
    }
    let view::HubCohorts { core: cohorts, invalid } = view::cohorts(input.cohorts);
    for (cname, e) in invalid {
        report.notes.push(format!("ComputeCohort {cname} is invalid and left out: {e}"));
    }
    // The job as the scheduler would see it, submitted now.
    let mut tj = input.job.clone();
    tj.metadata.uid = Some(format!("{DRY_RUN_ID}{name}"));
    tj.metadata.creation_timestamp =
        Some(Time(Timestamp::from_second(i64::try_from(input.now).unwrap_or(0)).unwrap_or(Timestamp::UNIX_EPOCH)));
    let namespace = tj.metadata.namespace.clone().unwrap_or_default();
    let no_labels = BTreeMap::new();
    let open_queues = open_to_all_namespaces(&valid);
    let open = by_name(&open_queues);
    // As the service queues it; `Err(None)`: its namespace does not exist.
    let queued = match input.namespace_labels {
        Some(Some(labels)) => view::pending_job(&tj, &valid, labels).map_err(Some),
        // The queue and the spec are checked all the same.
        None => view::pending_job(&tj, &open, &no_labels).map_err(Some).and(Err(None)),
        Some(None) => {
            report
                .notes
                .push(format!("could not read namespace {namespace:?}: the queue's namespaceSelector was not checked"));
            view::pending_job(&tj, &open, &no_labels).map_err(Some)
        }
    };
    let job = match queued {
        Ok(job) => job,
        Err(Some(Problem::Invalid(why))) => bail!("the job is invalid: {why}"),
        // Not queueable at all: the scheduler would leave it Pending with a condition.
        Err(problem) => {
            // With the Queued condition's reason, when the scheduler would write one.
            let (reason, why) = match problem {
                Some(p) => {
                    let (reason, why) = p.reason_and_message();
                    (format!(" ({reason})"), why)
                }
                None => (String::new(), format!("namespace {namespace:?} does not exist")),
            };
            report.decision = "Pending".into();
            report.summary = format!("would stay Pending{reason}: {why}");
            report.reason = Some(why);
            return Ok(report);
        }
    };
    if tj.spec.suspend {
        report.notes.push("spec.suspend is set: the job would not start until resumed; shown as if it were not".into());
    }

    let mut pool = pool_from_status(input.members, input.now, &mut report.notes);
    let running = running_jobs(&mut pool, input.members, input.jobs, input.now);
    let mut pending = pending_jobs(input.jobs, &open, &name);
    let others = pending.len();
    pending.push(job.clone());
    let scheduler =
        Scheduler { model: ThroughputModel::with_profiles(input.profiles.set.clone()), config: CycleConfig::default() };
    let outcome = scheduler.cycle(&Snapshot {
        now: input.now,
        pool: &pool,
        queues: &queues,
        cohorts: &cohorts,
        pending: &pending,
        running: &running,
    });
    report.running_jobs = running.len();
    report.pending_jobs = others;
    let decision =
        outcome.decisions.iter().find(|d| d.job == job.id).context("the cycle decided nothing for the job")?;
    report.queue_position = outcome.positions.get(&job.id).map(|p| p.position);
    describe(&mut report, decision, &job, &pool, &scheduler, input);
    if matches!(decision.action, Action::Queued(computenet_core::QueuedReason::InsufficientCapacity)) {
        // Another job ahead of it holds the cycle's one reservation.
        let reserved = outcome.decisions.iter().find_map(|d| match &d.action {
            Action::Reserve { cluster, start_at, .. } => Some((d.job.as_str(), cluster, *start_at)),
            _ => None,
        });
        // The cycle checks only the first blocked gang against the whole pool; alone, this
        // one is that gang, which tells whether it could ever run.
        let alone = scheduler.cycle(&Snapshot {
            now: input.now,
            pool: &pool,
            queues: &queues,
            cohorts: &cohorts,
            pending: std::slice::from_ref(&job),
            running: &running,
        });
        let never = alone
            .decisions
            .first()
            .filter(|d| matches!(d.action, Action::Queued(computenet_core::QueuedReason::Unschedulable)));
        if let Some(d) = never {
            let reason = computenet_core::QueuedReason::Unschedulable.to_string();
            report.summary = format!("would wait: {reason}");
            report.reason = Some(reason);
            report.rejected = explanation_rows(&d.explanation).1;
            report
                .notes
                .push("the scheduler shows it as waiting for capacity while another job holds the reservation".into());
        } else if let Some((uid, cluster, start_at)) = reserved {
            let ahead = input
                .jobs
                .iter()
                .find(|j| j.metadata.uid.as_deref() == Some(uid))
                .map_or_else(|| uid.to_string(), job_name);
            report.reason = Some(format!(
                "waiting for capacity behind {ahead}, which holds the reservation on {cluster} from {}",
                table::timestamp(start_at)
            ));
            report.summary = format!("would wait: {}", report.reason.as_deref().unwrap_or_default());
        }
    }
    if others > 0 {
        report.notes.push(format!(
            "queued behind the hub's {others} other pending job(s) as if submitted now; {} running job(s) counted",
            running.len()
        ));
    }
    Ok(report)
}

fn describe(
    report: &mut DryRunReport,
    decision: &Decision,
    job: &Job,
    pool: &Pool,
    scheduler: &Scheduler,
    input: &Input<'_>,
) {
    let (candidates, rejected) = explanation_rows(&decision.explanation);
    report.candidates = candidates;
    report.rejected = rejected;
    let now = input.now;
    let estimate_on = |cluster: &str, accelerator: Option<&str>| {
        let c = pool.cluster_index(cluster).map(|i| &pool.clusters[i])?;
        let nodes = nodes_for(job, c, accelerator);
        Some((nodes, scheduler.model.estimate(job, pool, c, accelerator, nodes)))
    };
    match &decision.action {
        Action::Admit(p) => {
            let mut nodes: Vec<u32> = p.slots.iter().map(|s| s.node).collect();
            nodes.sort_unstable();
            nodes.dedup();
            report.decision = "Admit".into();
            report.cluster = Some(p.cluster.clone());
            report.accelerator = p.accelerator.clone();
            report.nodes = Some(nodes.len());
            report.backfilled = p.backfilled;
            report.summary = format!(
                "would be admitted to {} ({}) on {} node(s){}: best of {} feasible member(s) by {}",
                p.cluster,
                p.accelerator.as_deref().unwrap_or("CPU"),
                nodes.len(),
                if p.backfilled { ", backfilled behind a reservation" } else { "" },
                decision.explanation.feasible_clusters,
                job.objective
            );
            report.set_times(now, now, &p.estimate);
        }
        Action::Reserve { cluster, accelerator, start_at } => {
            report.decision = "Reserve".into();
            report.cluster = Some(cluster.clone());
            report.accelerator = accelerator.clone();
            report.reason = Some("no member has room for the whole gang now".into());
            report.summary = format!(
                "would wait, first in line: capacity reserved on {cluster} ({}) from {}",
                accelerator.as_deref().unwrap_or("CPU"),
                table::timestamp(*start_at)
            );
            if let Some((nodes, e)) = estimate_on(cluster, accelerator.as_deref()) {
                report.nodes = Some(nodes as usize);
                report.set_times(now, *start_at, &e);
            }
        }
        Action::Preempt { cluster, victims } => {
            let names: Vec<String> = victims
                .iter()
                .map(|uid| {
                    input
                        .jobs
                        .iter()
                        .find(|j| j.metadata.uid.as_deref() == Some(uid.as_str()))
                        .map_or_else(|| uid.clone(), job_name)
                })
                .collect();
            report.decision = "Preempt".into();
            report.cluster = Some(cluster.clone());
            report.summary = format!("would preempt {} job(s) on {cluster} and start once they stop", names.len());
            report.victims = names;
            // The cycle does not say which type; take the first the job allows there.
            let allowed = |t: &str| {
                job.accelerator.types.is_empty()
                    || job.accelerator.types.iter().any(|a| pool.catalogue.canonical_name(a).as_deref() == Some(t))
            };
            let accelerator = pool
                .cluster_index(cluster)
                .and_then(|i| pool.clusters[i].nodes.iter().find_map(|n| n.accelerator.clone().filter(|t| allowed(t))))
                .filter(|_| job.per_replica.accelerators > 0);
            report.accelerator = accelerator.clone();
            if let Some((nodes, e)) = estimate_on(cluster, accelerator.as_deref()) {
                report.nodes = Some(nodes as usize);
                report.set_times(now, now, &e);
            }
        }
        Action::Queued(reason) => {
            report.decision = "Queued".into();
            report.reason = Some(reason.to_string());
            report.summary = format!("would wait: {reason}");
        }
    }
}

fn line(out: &mut String, name: &str, value: impl AsRef<str>) {
    out.push_str(&format!("{:<18}{}\n", format!("{name}:"), value.as_ref()));
}

/// The report as text and tables.
pub fn table(report: &DryRunReport) -> String {
    let mut out = String::new();
    line(&mut out, "Job", format!("{} (dry run: not created)", report.job));
    line(&mut out, "Queue", &report.queue);
    line(&mut out, "Gang", &report.gang);
    line(&mut out, "Decision", &report.summary);
    if let Some(p) = report.queue_position {
        line(&mut out, "Queue position", p.to_string());
    }
    if !report.victims.is_empty() {
        line(&mut out, "Would preempt", report.victims.join(", "));
    }
    if let Some(start) = &report.estimated_start {
        let when = match report.start_in_seconds {
            Some(0) | None => format!("{start} (now)"),
            Some(s) => format!("{start} (in {})", table::duration(s as f64)),
        };
        line(&mut out, "Estimated start", when);
    } else if report.decision != "Admit" {
        line(&mut out, "Estimated start", "unknown");
    }
    if let (Some(finish), Some(run)) = (&report.estimated_finish, report.runtime_seconds) {
        line(&mut out, "Estimated finish", format!("{finish} (runs {})", table::duration(run)));
    }
    if let Some(e) = report.energy_k_wh {
        line(&mut out, "Energy", format!("{} kWh", number(e, 2)));
    }
    if let Some(c) = report.cost {
        line(&mut out, "Cost", number(c, 2));
    }
    if let Some(c) = report.carbon_kg {
        line(&mut out, "Carbon", format!("{} kg CO2e", number(c, 2)));
    }
    if !report.candidates.is_empty() {
        out.push_str("\nCandidates (scores: lower is better):\n");
        out.push_str(&candidates_table(&report.candidates));
    }
    if !report.rejected.is_empty() {
        out.push_str("\nRejected members:\n");
        out.push_str(&rejected_table(&report.rejected));
    }
    if !report.notes.is_empty() {
        out.push_str("\nNotes:\n");
        for n in &report.notes {
            out.push_str(&format!("- {n}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{self, NOW};

    const QUEUE: &str = "namespaceSelector: {}\ncohort: city\nquotas: [{resource: nvidia.com/gpu, nominal: 256}]";

    fn manifest(replicas: i32, gpus: i64, extra: &str) -> String {
        format!(
            "apiVersion: computenet.io/v1alpha1\nkind: TrainingJob\nmetadata: {{name: try, namespace: team-a}}\nspec:\n  queueName: research\n  replicas: {replicas}\n  resources: {{cpu: \"4\", memory: 16Gi, accelerators: {{count: {gpus}}}}}\n  workload: {{image: example/train:1, command: [python]}}\n  work: {{gpuHours: 8}}\n{extra}"
        )
    }

    fn members() -> Vec<MemberCluster> {
        let mut east = fixtures::member("ai-east", "AI", "east", &[("H800", 32, 32, 8)], (128, 128), true);
        east.spec.efficiency.pue = 1.4;
        east.spec.efficiency.energy_price_per_kwh = 0.9;
        vec![
            fixtures::member("ai-west", "AI", "west", &[("A100-80G", 8, 32, 8)], (128, 128), true),
            east,
            fixtures::member("general", "General", "west", &[], (64, 128), true),
        ]
    }

    fn labels() -> BTreeMap<String, String> {
        BTreeMap::new()
    }

    fn dry_run(job: &TrainingJob, members: &[MemberCluster], jobs: &[TrainingJob]) -> DryRunReport {
        dry_run_with(job, members, jobs, &Profiles::default())
    }

    fn dry_run_with(
        job: &TrainingJob,
        members: &[MemberCluster],
        jobs: &[TrainingJob],
        profiles: &Profiles,
    ) -> DryRunReport {
        let queues = [fixtures::queue("research", QUEUE)];
        let labels = labels();
        let namespace_labels = Some(Some(&labels));
        run(&Input { job, members, queues: &queues, cohorts: &[], jobs, namespace_labels, profiles, now: NOW as u64 })
            .expect("runs")
    }

    #[test]
    fn cohorts_of_the_hub_lend_their_quota() {
        // The queue holds no GPUs of its own; its cohort "city" (under "org") holds 16.
        let job = parse_manifest(&manifest(2, 8, ""), "job.yaml").expect("valid");
        let queues = [fixtures::queue(
            "research",
            "namespaceSelector: {}\ncohort: city\nquotas: [{resource: nvidia.com/gpu, nominal: 0}]",
        )];
        let city: computenet_api::ComputeCohortSpec =
            serde_yaml::from_str("parent: org\nquotas: [{resource: nvidia.com/gpu, nominal: 16}]").expect("valid");
        let cohorts = [ComputeCohort::new("city", city)];
        let (ms, labels) = (members(), labels());
        let input = Input {
            job: &job,
            members: &ms,
            queues: &queues,
            cohorts: &cohorts,
            jobs: &[],
            namespace_labels: Some(Some(&labels)),
            profiles: &Profiles::default(),
            now: NOW as u64,
        };
        assert_eq!(run(&input).expect("runs").decision, "Admit");
        // Without the ComputeCohort, "city" is a root with nothing to lend.
        let report = run(&Input { cohorts: &[], ..input }).expect("runs");
        assert_ne!(report.decision, "Admit");
        assert!(format!("{report:?}").contains("cohort city has nothing left to lend"), "{report:?}");
    }

    #[test]
    fn manifests_are_checked_first() {
        assert!(parse_manifest(&manifest(1, 1, ""), "job.yaml").is_ok());
        let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n";
        assert_eq!(
            parse_manifest(pod, "pod.yaml").unwrap_err().to_string(),
            "pod.yaml: a Pod of v1 is not a TrainingJob of computenet.io/v1alpha1"
        );
        let two = format!("{}---\n{}", manifest(1, 1, ""), manifest(1, 1, ""));
        assert!(parse_manifest(&two, "x").unwrap_err().to_string().contains("2 documents"));
        assert!(parse_manifest("", "x").unwrap_err().to_string().contains("empty"));
        let bad = manifest(1, 1, "").replace("replicas: 1", "replicas: many");
        assert!(parse_manifest(&bad, "x").unwrap_err().to_string().starts_with("x: invalid TrainingJob"));
    }

    #[test]
    fn a_job_that_fits_is_admitted_with_times_energy_and_cost() {
        let job = parse_manifest(&manifest(2, 8, ""), "job.yaml").expect("valid");
        let report = dry_run(&job, &members(), &[]);
        assert_eq!(report.decision, "Admit", "{report:?}");
        assert_eq!(report.cluster.as_deref(), Some("ai-east"), "only ai-east has two free 8-GPU nodes");
        assert_eq!((report.accelerator.as_deref(), report.nodes), (Some("H800"), Some(2)));
        assert_eq!(report.start_in_seconds, Some(0));
        assert_eq!(report.estimated_start.as_deref(), Some(fixtures::rfc3339(NOW).as_str()));
        // 8 V100-hours on 16 H800s at 40 % of peak: 8 x 3600 x 125 / 989 / 16 s, over two nodes (90 %).
        let runtime = 8.0 * 3600.0 * 125.0 / 989.0 / 16.0 / 0.9;
        assert!((report.runtime_seconds.expect("runtime") - runtime).abs() < 0.01, "{report:?}");
        let energy = 16.0 * 700.0 * runtime / 3600.0 / 1000.0 * 1.4;
        assert!((report.energy_k_wh.expect("energy") - energy).abs() < 0.01);
        assert!((report.cost.expect("cost") - energy * 0.9).abs() < 0.01);
        assert_eq!(report.candidates[0].cluster, "ai-east");
        let why: Vec<(&str, &str)> = report.rejected.iter().map(|r| (r.cluster.as_str(), r.reason.as_str())).collect();
        assert_eq!(why, vec![("ai-west", "only 1 replicas fit now"), ("general", "no allowed accelerator type")]);
        let text = table(&report);
        assert!(text.contains("Decision:         would be admitted to ai-east (H800) on 2 node(s)"), "{text}");
        assert!(text.contains("(now)"), "{text}");
    }

    #[test]
    fn a_job_too_big_for_the_pool_says_why() {
        let job = parse_manifest(&manifest(9, 8, ""), "job.yaml").expect("valid");
        let report = dry_run(&job, &members(), &[]);
        assert_eq!(report.decision, "Queued");
        assert_eq!(report.reason.as_deref(), Some("no member cluster can ever run this job as specified"));
        assert!(
            report.rejected.iter().any(|r| r.cluster == "ai-east" && r.reason == "only 4 replicas fit now"),
            "{report:?}"
        );
        assert!(table(&report).contains("Estimated start:  unknown"));
    }

    #[test]
    fn a_job_waiting_for_running_ones_gets_a_reservation_when_they_end() {
        // ai-east: 2 of its 4 H800 nodes are taken by a running 2 x 8 job expected to end in an hour.
        let mut ms = members();
        ms[1] = fixtures::member("ai-east", "AI", "east", &[("H800", 16, 32, 8)], (128, 128), true);
        let busy = fixtures::running(
            fixtures::job("team-b", "busy", "research", 2, 8, NOW - 700),
            "ai-east",
            "H800",
            &[("gpu-1", 1), ("gpu-2", 1)],
            NOW - 600,
        );
        let mut job = parse_manifest(&manifest(4, 8, ""), "job.yaml").expect("valid");
        job.spec.resources.accelerators.as_mut().expect("gpus").types = vec!["H800".into()];
        let report = dry_run(&job, &ms, std::slice::from_ref(&busy));
        assert_eq!(report.decision, "Reserve", "{report:?}");
        assert_eq!(report.cluster.as_deref(), Some("ai-east"));
        // It started 600 s ago with an estimate of 3600 s.
        assert_eq!(report.start_in_seconds, Some(3000));
        assert_eq!(report.running_jobs, 1);
        let text = table(&report);
        assert!(text.contains("(in 50m)"), "{text}");
    }

    #[test]
    fn pending_jobs_of_the_hub_go_first() {
        // ai-east has 4 free H800 nodes: the job ahead takes them, ours is reserved after it.
        let first = fixtures::queued(fixtures::job("team-b", "first", "research", 4, 8, NOW - 100), 1, "waiting");
        let job = parse_manifest(&manifest(4, 8, ""), "job.yaml").expect("valid");
        let report = dry_run(&job, &members(), std::slice::from_ref(&first));
        assert_eq!(report.pending_jobs, 1);
        assert_eq!((report.decision.as_str(), report.cluster.as_deref()), ("Reserve", Some("ai-east")), "{report:?}");
        assert_eq!(report.queue_position, Some(1), "the job ahead is admitted");
        assert!(report.start_in_seconds.expect("start") > 0);
        assert!(report.notes.iter().any(|n| n.contains("behind the hub's 1 other pending job")), "{:?}", report.notes);
        // With a second job ahead, that one holds the reservation and ours says so.
        let second = fixtures::queued(fixtures::job("team-b", "second", "research", 4, 8, NOW - 50), 2, "waiting");
        let report = dry_run(&job, &members(), &[first, second]);
        assert_eq!((report.decision.as_str(), report.queue_position), ("Queued", Some(2)), "{report:?}");
        let reason = report.reason.as_deref().expect("reason");
        assert!(
            reason.starts_with("waiting for capacity behind team-b/second, which holds the reservation on ai-east"),
            "{reason}"
        );
        let alone = dry_run(&job, &members(), &[]);
        assert_eq!(alone.decision, "Admit");
        // A job that can never fit says so, even behind a reservation.
        let huge = parse_manifest(&manifest(9, 8, ""), "job.yaml").expect("valid");
        let report = dry_run(&huge, &members(), &[first_again(), second_again()]);
        assert_eq!(
            report.reason.as_deref(),
            Some("no member cluster can ever run this job as specified"),
            "{report:?}"
        );
    }

    fn first_again() -> TrainingJob {
        fixtures::queued(fixtures::job("team-b", "first", "research", 4, 8, NOW - 100), 1, "waiting")
    }

    fn second_again() -> TrainingJob {
        fixtures::queued(fixtures::job("team-b", "second", "research", 4, 8, NOW - 50), 2, "waiting")
    }

    #[test]
    fn namespace_and_queue_problems_leave_it_pending() {
        let job = parse_manifest(&manifest(1, 1, ""), "job.yaml").expect("valid");
        let queues = [fixtures::queue("research", "namespaceSelector: {matchLabels: {tenant: research}}")];
        let ms = members();
        let other: BTreeMap<String, String> = [("tenant".to_string(), "other".to_string())].into();
        let input = Input {
            job: &job,
            members: &ms,
            queues: &queues,
            cohorts: &[],
            jobs: &[],
            namespace_labels: Some(Some(&other)),
            profiles: &Profiles::default(),
            now: NOW as u64,
        };
        let report = run(&input).expect("runs");
        assert_eq!(report.decision, "Pending");
        assert!(report.summary.contains("does not admit jobs from namespace \"team-a\""), "{}", report.summary);
        assert!(report.summary.starts_with("would stay Pending (NamespaceNotAllowed): "), "{}", report.summary);
        let report = run(&Input { namespace_labels: None, ..input }).expect("runs");
        assert!(report.summary.contains("namespace \"team-a\" does not exist"));
        let mut unknown = job.clone();
        unknown.spec.queue_name = "nope".into();
        let report = run(&Input { job: &unknown, ..input }).expect("runs");
        assert_eq!(report.reason.as_deref(), Some("ComputeQueue \"nope\" does not exist"));
    }

    #[test]
    fn invalid_quantities_are_an_error_naming_the_field() {
        let job =
            parse_manifest(&manifest(1, 1, "").replace("memory: 16Gi", "memory: lots"), "job.yaml").expect("parses");
        let queues = [fixtures::queue("research", QUEUE)];
        let labels = labels();
        let ms = members();
        let input = Input {
            job: &job,
            members: &ms,
            queues: &queues,
            cohorts: &[],
            jobs: &[],
            namespace_labels: Some(Some(&labels)),
            profiles: &Profiles::default(),
            now: NOW as u64,
        };
        let err = format!("{:#}", run(&input).unwrap_err());
        assert!(err.starts_with("the job is invalid: spec.resources.memory: "), "{err}");
    }

    #[test]
    fn running_jobs_are_matched_to_allocated_node_groups_or_charged_when_newer_than_the_status() {
        let ms = vec![fixtures::member("ai-east", "AI", "east", &[("H800", 16, 32, 8)], (128, 128), true)];
        let mut notes = Vec::new();
        let seen = fixtures::running(
            fixtures::job("a", "seen", "research", 2, 8, NOW - 700),
            "ai-east",
            "H800",
            &[("x", 1), ("y", 1)],
            NOW - 600,
        );
        let fresh = fixtures::running(
            fixtures::job("a", "fresh", "research", 1, 8, NOW - 2),
            "ai-east",
            "H800",
            &[("z", 1)],
            NOW - 1,
        );
        let mut pool = pool_from_status(&ms, NOW as u64, &mut notes);
        let free_before: u32 = pool.clusters[0].nodes.iter().map(|n| n.free().accelerators).sum();
        let running = running_jobs(&mut pool, &ms, &[seen, fresh], NOW as u64);
        let free_after: u32 = pool.clusters[0].nodes.iter().map(|n| n.free().accelerators).sum();
        assert_eq!(free_before, 16);
        assert_eq!(free_after, 8, "the job newer than the heartbeat is charged, the older one was counted already");
        assert_eq!(running.len(), 2);
        for r in &running {
            assert_eq!(r.replicas(), if r.id.ends_with("seen") { 2 } else { 1 });
            for s in &r.slots {
                assert!(pool.clusters[0].nodes[s.node as usize].allocated.accelerators >= 8 * s.replicas);
            }
        }
        assert!(notes.is_empty(), "{notes:?}");
    }

    #[test]
    fn elastic_restartable_jobs_dry_run_and_a_resized_one_holds_its_current_size() {
        let extra = "  elastic: {minReplicas: 1, maxReplicas: 4}\n  checkpoint: {restartable: true}\n";
        let job = parse_manifest(&manifest(2, 8, extra), "job.yaml").expect("valid");
        assert_eq!(job.spec.checkpoint.map(|c| (c.restartable, c.restart_cost_seconds)), Some((true, 60)));
        assert_eq!(dry_run(&job, &members(), &[]).decision, "Admit");
        // A job grown from 1 to 2 replicas whose nodes are not recorded holds 2 nodes' worth.
        let ms = vec![fixtures::member("ai-east", "AI", "east", &[("H800", 32, 32, 8)], (128, 128), true)];
        let mut grown =
            fixtures::running(fixtures::job("a", "grown", "research", 1, 8, NOW - 2), "ai-east", "H800", &[], NOW - 1);
        grown.status.as_mut().unwrap().placement.as_mut().unwrap().replicas = Some(2);
        let mut pool = pool_from_status(&ms, NOW as u64, &mut Vec::new());
        let running = running_jobs(&mut pool, &ms, &[grown], NOW as u64);
        assert_eq!(running.iter().map(RunningJob::replicas).collect::<Vec<_>>(), [2]);
    }

    /// A bert profile of 16 H800s over two nodes: 10 steps/s.
    const BERT_ON_H800: &str =
        "profiles:\n- model: bert\n  accelerator: H800\n  points: [{gpus: 16, nodes: 2, stepsPerS: 10.0}]\n";

    fn config_map(data: &[(&str, &str)]) -> ConfigMapRead {
        ConfigMapRead::Found(data.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    #[test]
    fn measured_profiles_give_the_runtime_and_say_so() {
        let bert = manifest(2, 8, "").replace("work: {gpuHours: 8}", "work: {model: bert, steps: 72000}");
        let job = parse_manifest(&bert, "job.yaml").expect("valid");
        let without = dry_run(&job, &members(), &[]);
        let mut profiles = Profiles::default();
        profiles.add_config_map("computenet-system", "computenet-profiles", config_map(&[("lab.yaml", BERT_ON_H800)]));
        assert!(profiles.notes.is_empty(), "{:?}", profiles.notes);
        let with = dry_run_with(&job, &members(), &[], &profiles);
        for r in [&without, &with] {
            assert_eq!((r.decision.as_str(), r.cluster.as_deref(), r.nodes), ("Admit", Some("ai-east"), Some(2)));
        }
        // 72000 steps at 10 steps/s, measured on exactly this placement.
        assert!((with.runtime_seconds.expect("runtime") - 7200.0).abs() < 0.01, "{with:?}");
        assert_eq!(with.candidates[0].estimate_source.as_deref(), Some("Profile"));
        // Without a profile of bert, the model's fallback: the default runtime.
        assert!((without.runtime_seconds.expect("runtime") - 3600.0).abs() < 0.01, "{without:?}");
        assert_eq!(without.candidates[0].estimate_source.as_deref(), Some("Fallback"));
        let text = table(&with);
        let row = text.lines().find(|l| l.starts_with("1 ")).expect("candidate row");
        assert!(row.contains("ai-east") && row.contains("2h") && row.contains("Profile"), "{text}");
        assert!(text.contains("ESTIMATE FROM"), "{text}");
    }

    #[test]
    fn profile_files_are_read_and_a_bad_one_is_an_error() {
        let dir = std::env::temp_dir().join(format!("kubectl-computenet-profiles-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("lab")).expect("temp dir");
        std::fs::write(dir.join("lab").join("bert.yaml"), BERT_ON_H800).expect("writes");
        std::fs::write(dir.join("lab").join("notes.txt"), "not a profile").expect("writes");
        let profiles = Profiles::from_paths(&[dir.join("lab")]).expect("a folder of profiles");
        assert!(profiles.set.has_model("bert"));
        std::fs::write(dir.join("typo.yaml"), "profile: []\n").expect("writes");
        let err = Profiles::from_paths(&[dir.join("typo.yaml")]).unwrap_err().to_string();
        assert!(err.contains("typo.yaml") && err.contains("unknown field"), "{err}");
        assert!(Profiles::from_paths(&[dir.join("absent.yaml")]).is_err());
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_missing_unreadable_or_refused_config_map_is_a_note_not_an_error() {
        let (ns, name) = ("computenet-system", "computenet-profiles");
        let mut profiles = Profiles::default();
        profiles.add_config_map(ns, name, ConfigMapRead::Disabled);
        assert!(profiles.notes.is_empty());
        profiles.add_config_map(ns, name, ConfigMapRead::Missing);
        assert!(profiles.notes[0].starts_with("no profiles ConfigMap computenet-system/computenet-profiles"));
        profiles.add_config_map(ns, name, ConfigMapRead::Failed("not allowed: forbidden".into()));
        assert!(profiles.notes[1].contains("not allowed: forbidden"), "{:?}", profiles.notes);
        // One bad key refuses the whole ConfigMap, as the service does.
        let bad = config_map(&[("lab.yaml", BERT_ON_H800), ("notes.txt", "x")]);
        profiles.add_config_map(ns, name, bad);
        assert!(
            profiles.notes[2].contains("notes.txt") && profiles.notes[2].contains("ignored"),
            "{:?}",
            profiles.notes
        );
        assert!(!profiles.set.has_model("bert"));
        // The notes reach the report.
        let job = parse_manifest(&manifest(1, 1, ""), "job.yaml").expect("valid");
        let report = dry_run_with(&job, &members(), &[], &profiles);
        assert_eq!(report.notes[..3], profiles.notes[..], "{:?}", report.notes);
        assert!(table(&report).contains("- no profiles ConfigMap computenet-system/computenet-profiles"));
    }

    #[test]
    fn other_jobs_are_queued_as_the_scheduler_took_them() {
        // The queue admits only tenant=research; the plugin reads no other namespace.
        let queues = [fixtures::queue("research", "namespaceSelector: {matchLabels: {tenant: research}}")];
        let accepted = fixtures::queued(fixtures::job("team-b", "accepted", "research", 4, 8, NOW - 100), 1, "waiting");
        let mut refused = fixtures::queued(fixtures::job("team-c", "refused", "research", 4, 8, NOW - 200), 1, "no");
        refused.status.as_mut().expect("status").phase = Some(TrainingJobPhase::Pending);
        let job = parse_manifest(&manifest(4, 8, ""), "job.yaml").expect("valid");
        let ms = members();
        let jobs = [accepted, refused];
        let input = Input {
            job: &job,
            members: &ms,
            queues: &queues,
            cohorts: &[],
            jobs: &jobs,
            namespace_labels: Some(None),
            profiles: &Profiles::default(),
            now: NOW as u64,
        };
        let report = run(&input).expect("runs");
        assert_eq!(report.pending_jobs, 1, "the job the scheduler left Pending is left out");
        assert_eq!(report.decision, "Reserve", "behind the accepted one: {report:?}");
        assert!(report.notes.iter().any(|n| n.contains("namespaceSelector was not checked")), "{:?}", report.notes);
    }
}

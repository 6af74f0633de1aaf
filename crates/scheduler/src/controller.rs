//! The scheduling loop of `computenet serve`.
//!
//! Each tick: connect to new members and probe them; handle finalizers, deletions and
//! suspension; mirror dispatched jobs from their members (and requeue what a lost member
//! held); build a snapshot and run the core's cycle; write the decisions (status first,
//! then dispatch, so a crash between the two never runs a job twice); write member and
//! queue status. All state lives in the hub and the members, so a restart picks up
//! where the last process stopped.

use crate::error::{Error, Result};
use crate::events::EventSink;
use crate::hub::Hub;
use crate::lease::{self, LeaseConfig};
use crate::metrics::Metrics;
use crate::observe;
use crate::snapshot::{self, Built, MemberView};
use crate::status;
use crate::work::{self, resource_version, Dispatched, InFlight, Note, Target};
use computenet_api::convert::round3 as round;
use computenet_api::training_job::{
    ExplanationStatus, MemberLossPolicy, NodeReplicas, PlacementStatus, TrainingJobPhase, TrainingJobStatus,
};
use computenet_api::{ComputeQueue, ComputeQueueStatus, MemberCluster, MemberClusterStatus, TrainingJob};
use computenet_core::explain::Placement;
use computenet_core::{Action, CycleOutcome, Decision, Scheduler, Snapshot};
use computenet_members::prometheus::{self, EfficiencyPoller, EfficiencyQueries, Reading};
use computenet_members::{Member, MemberNodes, Members, RemoteStatus};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::events::EventType;
use kube::{Api, Client};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// How `computenet serve` runs.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Longest wait between two cycles (changes trigger one sooner).
    pub interval: Duration,
    /// A member unreachable this long is NotReady and loses its not-yet-running jobs.
    pub member_timeout: Duration,
    /// Leader election; `None` runs without it (one replica only).
    pub lease: Option<LeaseConfig>,
    /// Concurrent writes to the hub and members.
    pub concurrency: usize,
    /// Metrics, probes and the dashboard's data; `None` records nothing.
    pub web: Option<crate::web::WebState>,
}

const CRDS: [&str; 3] = ["trainingjobs.computenet.io", "memberclusters.computenet.io", "computequeues.computenet.io"];

/// Fails with a clear message when the CRDs are not installed.
pub async fn check_crds(client: &Client) -> Result<()> {
    let api = Api::<CustomResourceDefinition>::all(client.clone());
    let mut missing = Vec::new();
    for name in CRDS {
        if api.get_opt(name).await?.is_none() {
            missing.push(name);
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Error::MissingCrds(missing.join(", ")))
    }
}

/// Runs until `shutdown` completes or the leader lease is lost.
pub async fn run(client: Client, config: ServeConfig, shutdown: impl Future<Output = ()>) -> Result<()> {
    check_crds(&client).await?;
    let mut lease_task = match &config.lease {
        Some(l) => {
            tracing::info!(lease = %l.name, identity = %l.identity, "waiting for the leader lease");
            // A standby replica is ready: it serves probes and metrics while it waits.
            config.web.iter().for_each(|w| w.set_ready(true));
            lease::acquire(&client, l).await?;
            config.web.iter().for_each(|w| w.set_ready(false));
            tracing::info!("leading");
            tokio::spawn(lease::keep(client.clone(), l.clone()))
        }
        None => tokio::spawn(futures::future::pending::<Result<()>>()),
    };
    let changed = Arc::new(Notify::new());
    let hub = Hub::start(client.clone(), changed.clone()).await;
    tracing::info!("caches ready; scheduling");
    // Events are best effort: a few at a time, so they never crowd out the writes that
    // schedule and dispatch.
    let events = EventSink::start(client.clone(), (config.concurrency / 8).max(1));
    let mut state = Loop {
        hub,
        config: config.clone(),
        members: Members::new(),
        changed: changed.clone(),
        events,
        work: InFlight::new(config.concurrency, changed.clone()),
        dispatched: HashMap::new(),
        overrides: HashMap::new(),
        heartbeats: HashMap::new(),
        queue_writes: HashMap::new(),
        position_writes: HashMap::new(),
        connect_errors: HashMap::new(),
        efficiency: HashMap::new(),
    };
    tokio::pin!(shutdown);
    let mut last_cycle = Instant::now();
    loop {
        tokio::select! {
            _ = &mut shutdown => { tracing::info!("shutting down"); return Ok(()); }
            r = &mut lease_task => {
                return Err(match r { Ok(Err(e)) => e, _ => Error::LostLease("lease task ended".into()) });
            }
            _ = changed.notified() => {}
            _ = tokio::time::sleep(config.interval) => {}
        }
        // Let a burst of watch events (and landed work) settle into one cycle: a cycle
        // reads every job, so cycles back to back would cost CPU that the API calls need.
        tokio::time::sleep(MIN_CYCLE_SPACING.saturating_sub(last_cycle.elapsed()).max(Duration::from_millis(50))).await;
        let started = Instant::now();
        last_cycle = started;
        state.tick().await;
        tracing::debug!(elapsed_ms = started.elapsed().as_millis() as u64, in_flight = state.work.count(), "tick");
        if let Some(web) = &config.web {
            web.metrics().cycle_duration(started.elapsed().as_secs_f64());
            web.set_ready(true);
        }
    }
}

/// Least time from the start of one cycle to the start of the next.
const MIN_CYCLE_SPACING: Duration = Duration::from_millis(200);

/// A status to write, with the Event to record once it is written.
type StatusWrite = (Arc<TrainingJob>, TrainingJobStatus, Option<Note>);

/// How long a queued job's new position may wait before it is written, when nothing else
/// about the job changed: positions shift with every admission, and rewriting every
/// pending job each cycle would load the hub for little use.
const POSITION_REFRESH: Duration = Duration::from_secs(5);

/// A job created on its member but not started there is shown as Dispatched after this
/// long; one that starts sooner goes from Admitted straight to Running, one status write
/// fewer. (Its dispatchTime is when its objects were created, either way.)
const DISPATCHED_GRACE: Duration = Duration::from_secs(2);

/// Least time between two writes of a member's or a queue's status when only its numbers
/// changed (a changed condition is written at once).
const STATUS_REFRESH: Duration = Duration::from_secs(1);

struct Loop {
    hub: Hub,
    config: ServeConfig,
    members: Members,
    changed: Arc<Notify>,
    events: EventSink,
    /// Work in flight, per job.
    work: InFlight,
    /// Objects as last written, until the watch cache catches up with them (so a job
    /// admitted in one tick is never seen as pending in the next).
    overrides: HashMap<String, Arc<TrainingJob>>,
    /// Dispatches made by this process and not yet recorded in the job's status.
    dispatched: HashMap<String, Dispatched>,
    /// When each member's status was last written.
    heartbeats: HashMap<String, Instant>,
    /// When each queue's status was last written.
    queue_writes: HashMap<String, Instant>,
    /// When each queued job's position was last written.
    position_writes: HashMap<String, Instant>,
    /// Why a member could not be connected, by name.
    connect_errors: HashMap<String, String>,
    /// Readers of members' efficiency series, by member name.
    efficiency: HashMap<String, EfficiencyPoller>,
}

fn uid(tj: &TrainingJob) -> String {
    tj.metadata.uid.clone().unwrap_or_default()
}

/// The member a job is placed on, if any.
fn placed_on(tj: &TrainingJob) -> Option<&String> {
    Some(&tj.status.as_ref()?.placement.as_ref()?.cluster)
}

fn phase(tj: &TrainingJob) -> Option<TrainingJobPhase> {
    tj.status.as_ref().and_then(|s| s.phase)
}

impl Loop {
    /// The current TrainingJobs: the watch cache, with newer own writes on top, and jobs
    /// with work in flight as that work will leave them.
    fn training_jobs(&mut self) -> Vec<Arc<TrainingJob>> {
        let mut jobs = self.hub.jobs.state();
        let mut seen = std::collections::HashSet::new();
        for tj in &mut jobs {
            let id = uid(tj);
            if let Some(mine) = self.overrides.get(&id) {
                if resource_version(mine) > resource_version(tj) {
                    *tj = mine.clone();
                } else {
                    self.overrides.remove(&id);
                }
            }
            if let Some(expected) = self.work.expected(&id) {
                *tj = expected.clone();
            }
            if tj.status.as_ref().is_some_and(|s| s.remote.is_some()) {
                self.dispatched.remove(&id);
            }
            seen.insert(id);
        }
        self.overrides.retain(|id, _| seen.contains(id));
        self.dispatched.retain(|id, _| seen.contains(id));
        self.position_writes.retain(|id, _| seen.contains(id));
        jobs
    }

    fn metrics(&self) -> Option<&Metrics> {
        self.config.web.as_ref().map(|w| w.metrics())
    }

    /// Whether the job has work in flight (and so must be left alone this cycle).
    fn busy(&self, tj: &TrainingJob) -> bool {
        self.work.contains(&uid(tj))
    }

    /// Takes in the work that landed: stored objects, Events, metrics.
    fn absorb(&mut self) {
        for landed in self.work.landed() {
            let about = landed.stored.clone().unwrap_or_else(|| landed.job.clone());
            if let Some(d) = landed.dispatched {
                self.dispatched.insert(landed.uid.clone(), d);
            }
            if let Some(stored) = landed.stored {
                self.overrides.insert(landed.uid, stored);
            }
            for (kind, reason, note) in landed.notes {
                // Notes come back only from writes that were stored: a preemption whose
                // stop failed (and is retried) is counted once, when it lands.
                if reason == "Preempted" {
                    if let Some(m) = self.metrics() {
                        m.preempted(&about.spec.queue_name);
                    }
                }
                self.events.publish(&about, kind, &reason, note);
            }
            if let Some(m) = self.metrics() {
                if let Some((queue, cluster)) = &landed.admitted {
                    m.admitted(queue, cluster);
                }
                if let Some(cluster) = &landed.dispatch_failed {
                    m.dispatch_error(cluster);
                }
            }
        }
    }

    /// Starts a status write in the background.
    fn write(&mut self, tj: &Arc<TrainingJob>, status: TrainingJobStatus, note: Option<Note>) {
        let expected = work::with_status(tj, &status);
        let client = self.hub.client.clone();
        self.work.start(expected, work::write_status(client, tj.clone(), status, note));
    }

    /// Where an admitted job goes, when its member is connected. The nodeSelector
    /// (Kubernetes) or gres request (Slurm) needs the member's raw name of the chosen type,
    /// read from its nodes once per cycle (`raw_names` caches them by member).
    fn target(
        &self,
        placement: &PlacementStatus,
        raw_names: &mut HashMap<String, BTreeMap<String, String>>,
    ) -> Option<Target> {
        let member = self.members.get(&placement.cluster)?.clone();
        let names = raw_names.entry(placement.cluster.clone()).or_insert_with(|| {
            let catalogue = snapshot::catalogue(&self.hub.members.state());
            snapshot::raw_accelerator_names(&member.nodes(&[]), &catalogue)
        });
        let raw_accelerator = placement.accelerator.as_ref().and_then(|a| names.get(a)).cloned();
        Some(Target { member, placement: placement.clone(), raw_accelerator })
    }

    /// Starts the dispatch of an admitted job (idempotent: existing objects are found).
    fn dispatch_again(
        &mut self,
        tj: &Arc<TrainingJob>,
        placement: &PlacementStatus,
        raw_names: &mut HashMap<String, BTreeMap<String, String>>,
    ) {
        let target = self.target(placement, raw_names);
        let work = work::admit_and_dispatch(self.hub.client.clone(), tj.clone(), None, target);
        self.work.start(tj.clone(), work);
    }

    async fn tick(&mut self) {
        self.absorb();
        self.sync_members().await;
        let jobs = self.training_jobs();
        self.deletions_and_suspension(&jobs);
        let jobs = self.training_jobs();
        let mirrored = self.mirror(&jobs);
        let jobs = self.training_jobs();
        let views = self.member_views(&jobs);
        let namespaces: BTreeMap<String, BTreeMap<String, String>> = self
            .hub
            .namespaces
            .state()
            .iter()
            .map(|n| (n.metadata.name.clone().unwrap_or_default(), n.metadata.labels.clone().unwrap_or_default()))
            .collect();
        let queues = self.hub.queues.state();
        let now = u64::try_from(Timestamp::now().as_second()).unwrap_or(0);
        let built = snapshot::build(now, &views, &queues, &jobs, &namespaces);
        let scheduler = Scheduler::default();
        let outcome = scheduler.cycle(&Snapshot {
            now,
            pool: &built.pool,
            queues: &built.queues,
            pending: &built.pending,
            running: &built.running,
        });
        self.apply(&jobs, &built, &outcome);
        // After the admissions: work starts first come first served, and admissions matter most.
        for (tj, status, note) in mirrored {
            self.write(&tj, status, note);
        }
        self.write_member_status(&built, &views).await;
        let jobs = self.training_jobs();
        self.write_queue_status(&queues, &jobs, &built).await;
        self.clean_orphans(&jobs).await;
        if let Some(web) = &self.config.web {
            let heartbeats = observe::heartbeats(views.iter().map(|v| v.member.as_ref()));
            web.publish(observe::observe(&built, &queues, &jobs, &heartbeats, now, web.top_n()));
        }
    }

    /// Connects to new members (each then probes or polls itself in the background).
    async fn sync_members(&mut self) {
        let specs = self.hub.members.state();
        self.sync_efficiency(&specs);
        let names: Vec<String> = specs.iter().filter_map(|m| m.metadata.name.clone()).collect();
        self.members.retain(|name, _| names.contains(name));
        for m in &specs {
            let name = m.metadata.name.clone().unwrap_or_default();
            if self.members.contains_key(&name) {
                continue;
            }
            match Member::connect(&self.hub.client, m, self.changed.clone()).await {
                Ok(conn) => {
                    tracing::info!(member = %name, "connected");
                    self.connect_errors.remove(&name);
                    self.members.insert(name, conn);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "member connection");
                    self.connect_errors.insert(name, e.to_string());
                }
            }
        }
    }

    fn member_views(&self, jobs: &[Arc<TrainingJob>]) -> Vec<MemberView> {
        let mut specs: Vec<Arc<MemberCluster>> = self.hub.members.state();
        specs.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        let mut views = Vec::new();
        for m in specs {
            let name = m.metadata.name.clone().unwrap_or_default();
            let measured = self.fresh_reading(&name);
            let Some(conn) = self.members.get(&name) else {
                views.push(MemberView { member: m, ready: false, nodes: MemberNodes::None, measured });
                continue;
            };
            let (reachable, _) = conn.reachable(self.config.member_timeout);
            let ready = reachable && conn.ever_reached();
            let admitted_here: Vec<&TrainingJob> = jobs
                .iter()
                .filter(|j| snapshot::is_admitted(j) && placed_on(j) == Some(&name))
                .map(|j| j.as_ref())
                .collect();
            views.push(MemberView { member: m, ready, nodes: conn.nodes(&admitted_here), measured });
        }
        views
    }

    /// A member's efficiency reading, unless it is older than three read intervals.
    fn fresh_reading(&self, name: &str) -> Option<Reading> {
        let poller = self.efficiency.get(name)?;
        let reading = poller.reading();
        let age = reading.at?.elapsed().unwrap_or_default();
        (age <= poller.queries.interval * 3 + Duration::from_secs(5)).then_some(reading)
    }

    /// Starts, restarts or stops efficiency readers as members name a Prometheus or not.
    fn sync_efficiency(&mut self, specs: &[Arc<MemberCluster>]) {
        let mut wanted = HashMap::new();
        for m in specs {
            let (Some(name), Some(p)) = (m.metadata.name.clone(), m.spec.prometheus.as_ref()) else { continue };
            let q = |query: &str| prometheus::expand(query, &name, &m.spec.site);
            let queries = EfficiencyQueries {
                url: p.url.clone(),
                gpu_power: q(&p.gpu_power_query),
                gpu_utilization: q(&p.gpu_utilization_query),
                pue: q(&p.pue_query),
                interval: Duration::from_secs(u64::try_from(p.interval_seconds).unwrap_or(15).max(1)),
            };
            wanted.insert(name, queries);
        }
        self.efficiency.retain(|name, poller| wanted.get(name) == Some(&poller.queries));
        for (name, queries) in wanted {
            if self.efficiency.contains_key(&name) {
                continue;
            }
            match EfficiencyPoller::start(queries, self.changed.clone()) {
                Ok(poller) => {
                    self.efficiency.insert(name, poller);
                }
                Err(e) => tracing::warn!(member = %name, error = %e, "efficiency reader"),
            }
        }
    }

    fn member_of(&self, tj: &TrainingJob) -> Option<&Member> {
        self.members.get(placed_on(tj)?)
    }

    /// Remote cleanup on deletion; suspension and resumption.
    fn deletions_and_suspension(&mut self, jobs: &[Arc<TrainingJob>]) {
        for tj in jobs {
            if self.busy(tj) {
                continue;
            }
            if tj.metadata.deletion_timestamp.is_some() {
                if status::has_finalizer(tj) {
                    let (client, member) = (self.hub.client.clone(), self.member_of(tj).cloned());
                    self.work.start(tj.clone(), work::clean_up(client, tj.clone(), member));
                }
                continue;
            }
            let current = tj.status.clone().unwrap_or_default();
            if tj.spec.suspend && current.phase != Some(TrainingJobPhase::Suspended) && !snapshot::is_finished(tj) {
                let status = TrainingJobStatus {
                    phase: Some(TrainingJobPhase::Suspended),
                    admitted: Some(false),
                    conditions: vec![status::condition(
                        &current.conditions,
                        "Admitted",
                        false,
                        "Suspended",
                        "spec.suspend is true",
                        tj.metadata.generation,
                    )],
                    requeues: current.requeues,
                    ..TrainingJobStatus::default()
                };
                let member = if snapshot::is_admitted(tj) { self.member_of(tj).cloned() } else { None };
                let note =
                    (EventType::Normal, "Suspended".into(), "stopped; resumes when spec.suspend is false".into());
                let work = work::stop_then_write(self.hub.client.clone(), tj.clone(), member, status.clone(), note);
                self.work.start(work::with_status(tj, &status), work);
            } else if !tj.spec.suspend && current.phase == Some(TrainingJobPhase::Suspended) {
                let status = TrainingJobStatus {
                    phase: Some(TrainingJobPhase::Queued),
                    admitted: Some(false),
                    requeues: current.requeues,
                    ..TrainingJobStatus::default()
                };
                self.write(tj, status, None);
            }
        }
    }

    /// Starts dispatch of admitted jobs that have no remote objects yet and requeues what
    /// a lost member held; returns the status writes that mirror the members' state.
    fn mirror(&mut self, jobs: &[Arc<TrainingJob>]) -> Vec<StatusWrite> {
        let mut mirrored = Vec::new();
        let mut raw_names = HashMap::new();
        for tj in jobs {
            if !snapshot::is_admitted(tj)
                || snapshot::is_finished(tj)
                || tj.metadata.deletion_timestamp.is_some()
                || tj.spec.suspend
                || self.busy(tj)
            {
                continue;
            }
            let current = tj.status.clone().unwrap_or_default();
            let Some(placement) = current.placement.clone() else { continue };
            let Some(m) = self.members.get(&placement.cluster).cloned() else { continue };
            let (reachable, error) = m.reachable(self.config.member_timeout);
            let started = matches!(current.phase, Some(TrainingJobPhase::Running));
            if !reachable {
                if !started || tj.spec.on_member_loss == MemberLossPolicy::Requeue {
                    let why = format!(
                        "member {} unreachable for over {:?}: {}",
                        placement.cluster,
                        self.config.member_timeout,
                        error.unwrap_or_default()
                    );
                    let status = requeued_status(tj, &current, "MemberLost", &why);
                    self.write(tj, status, Some((EventType::Warning, "MemberLost".into(), why)));
                }
                continue;
            }
            if !m.ever_reached() {
                // Its caches are empty: "no remote objects" would mean nothing yet.
                continue;
            }
            let remote = m.remote_status(tj);
            let remote = match (remote, &m, &current.remote) {
                (Some(r), _, _) => r,
                // A batch job this attempt submitted that Slurm no longer lists (it forgets
                // finished jobs after MinJobAge): submitting again could run it twice.
                (None, Member::Slurm(_), Some(r)) => RemoteStatus {
                    phase: TrainingJobPhase::Failed,
                    failure: Some((
                        "RemoteJobLost".into(),
                        format!("Slurm no longer knows batch job {}; its outcome is unknown", r.name),
                    )),
                    exit_code: None,
                    nodes: None,
                },
                (None, _, _) => {
                    // Admitted but not dispatched (a crash or a failed call in between): again.
                    self.dispatch_again(tj, &placement, &mut raw_names);
                    continue;
                }
            };
            let RemoteStatus { phase: new_phase, failure, exit_code, nodes } = remote;
            // A dispatch not in the status yet is recorded with this write. Without a record
            // of it (this process did not make it: a restart in between) the dispatch runs
            // again, finds the objects, and so learns what to record.
            let record = match (&current.remote, self.dispatched.get(&uid(tj))) {
                (Some(_), _) => None,
                (None, Some(d)) => Some(d.clone()),
                (None, None) => {
                    self.dispatch_again(tj, &placement, &mut raw_names);
                    continue;
                }
            };
            if new_phase == TrainingJobPhase::Dispatched
                && record.as_ref().is_some_and(|d| d.at.elapsed() < DISPATCHED_GRACE)
            {
                continue;
            }
            let recording = record.is_some();
            let mut status = TrainingJobStatus { phase: Some(new_phase), ..current.clone() };
            if let Some(d) = record {
                status.remote = Some(d.remote);
                status.dispatch_time = Some(d.time);
            }
            // Where the member picks the nodes itself (Slurm), record the real ones
            // so the snapshot charges the job where it runs.
            let mut moved = false;
            if let (Some(nodes), Some(p)) = (nodes, status.placement.as_mut()) {
                let real: Vec<NodeReplicas> =
                    nodes.into_iter().map(|node| NodeReplicas { node, replicas: 1 }).collect();
                if p.nodes != real {
                    p.nodes = real;
                    moved = true;
                }
            }
            if current.phase == Some(new_phase) && !recording {
                if moved {
                    mirrored.push((tj.clone(), status, None));
                }
                continue;
            }
            status.exit_code = exit_code;
            let generation = tj.metadata.generation;
            match new_phase {
                TrainingJobPhase::Running => {
                    status.conditions = status::upsert(
                        &current.conditions,
                        status::condition(
                            &current.conditions,
                            "Running",
                            true,
                            if matches!(m, Member::Slurm(_)) { "BatchJobRunning" } else { "PodsRunning" },
                            "all replicas started on the member",
                            generation,
                        ),
                    );
                }
                TrainingJobPhase::Succeeded => {
                    status.completion_time = Some(status::now_rfc3339());
                    status.conditions = status::upsert(
                        &current.conditions,
                        status::condition(
                            &current.conditions,
                            "Finished",
                            true,
                            "Succeeded",
                            "all replicas completed",
                            generation,
                        ),
                    );
                }
                TrainingJobPhase::Failed => {
                    let (reason, message) = failure.unwrap_or_else(|| ("Failed".into(), String::new()));
                    status.completion_time = Some(status::now_rfc3339());
                    status.conditions = status::upsert(
                        &current.conditions,
                        status::condition(&current.conditions, "Finished", false, &reason, &message, generation),
                    );
                }
                _ => {}
            }
            let kind = if new_phase == TrainingJobPhase::Failed { EventType::Warning } else { EventType::Normal };
            // The Dispatched Event went out when the objects were created.
            let event = (new_phase != TrainingJobPhase::Dispatched)
                .then(|| (kind, format!("{new_phase:?}"), format!("on member {}", placement.cluster)));
            mirrored.push((tj.clone(), status, event));
        }
        mirrored
    }

    /// Starts the cycle's decisions: admissions (each then dispatched), queue positions
    /// and reasons, preemptions.
    fn apply(&mut self, jobs: &[Arc<TrainingJob>], built: &Built, outcome: &CycleOutcome) {
        let by_uid: HashMap<String, Arc<TrainingJob>> = jobs.iter().map(|j| (uid(j), j.clone())).collect();
        for (id, problem) in &built.problems {
            let Some(tj) = by_uid.get(id) else { continue };
            if self.busy(tj) {
                continue;
            }
            let current = tj.status.clone().unwrap_or_default();
            let (reason, message) = problem.reason_and_message();
            let conditions = status::upsert(
                &current.conditions,
                status::condition(&current.conditions, "Queued", false, reason, &message, tj.metadata.generation),
            );
            if current.phase != Some(TrainingJobPhase::Pending)
                || !status::same_conditions(&conditions, &current.conditions)
            {
                let status = TrainingJobStatus {
                    phase: Some(TrainingJobPhase::Pending),
                    conditions,
                    requeues: current.requeues,
                    ..TrainingJobStatus::default()
                };
                self.write(tj, status, None);
            }
        }
        let mut raw_names = HashMap::new();
        for decision in &outcome.decisions {
            let Some(tj) = by_uid.get(&decision.job) else { continue };
            // Its last write has not landed: decide again next cycle, on what it left.
            if self.busy(tj) {
                continue;
            }
            let current = tj.status.clone().unwrap_or_default();
            match &decision.action {
                Action::Admit(p) => {
                    let status = admitted_status(tj, &current, p, decision, built);
                    let Some(placement) = status.placement.clone() else { continue };
                    let note = format!("placed on {} ({})", p.cluster, p.accelerator.as_deref().unwrap_or("CPU"));
                    let target = self.target(&placement, &mut raw_names);
                    let expected = work::with_status(tj, &status);
                    let admission = (status, (EventType::Normal, "Admitted".to_string(), note));
                    let work = work::admit_and_dispatch(self.hub.client.clone(), tj.clone(), Some(admission), target);
                    self.work.start(expected, work);
                }
                Action::Preempt { victims, cluster } => {
                    for v in victims {
                        let Some(victim) = by_uid.get(v) else { continue };
                        if self.busy(victim) {
                            continue;
                        }
                        let why = format!(
                            "preempted on {cluster} for {}/{}",
                            tj.metadata.namespace.as_deref().unwrap_or_default(),
                            tj.metadata.name.as_deref().unwrap_or_default()
                        );
                        let vs = victim.status.clone().unwrap_or_default();
                        let status = requeued_status(victim, &vs, "Preempted", &why);
                        let note = (EventType::Warning, "Preempted".to_string(), why);
                        let member = self.member_of(victim).cloned();
                        let work = work::stop_then_write(
                            self.hub.client.clone(),
                            victim.clone(),
                            member,
                            status.clone(),
                            note,
                        );
                        self.work.start(work::with_status(victim, &status), work);
                    }
                    self.write_queued(tj, &current, queued_status(tj, &current, decision, outcome));
                }
                _ => self.write_queued(tj, &current, queued_status(tj, &current, decision, outcome)),
            }
        }
    }

    /// Writes a queued job's status when users would see a difference; a new position
    /// alone waits [`POSITION_REFRESH`] after the last one written.
    fn write_queued(&mut self, tj: &Arc<TrainingJob>, current: &TrainingJobStatus, status: TrainingJobStatus) {
        if !differs(current, &status) {
            return;
        }
        let only_position =
            !differs(current, &TrainingJobStatus { queue_position: current.queue_position, ..status.clone() });
        let id = uid(tj);
        if only_position && self.position_writes.get(&id).is_some_and(|t| t.elapsed() < POSITION_REFRESH) {
            return;
        }
        self.position_writes.insert(id, Instant::now());
        self.write(tj, status, None);
    }

    async fn write_member_status(&mut self, built: &Built, views: &[MemberView]) {
        for (i, view) in views.iter().enumerate() {
            let name = view.member.metadata.name.clone().unwrap_or_default();
            let cluster = &built.pool.clusters[i];
            let mut by_type: BTreeMap<String, (i64, i64, i64)> = BTreeMap::new();
            let (mut cpu_total, mut cpu_free, mut schedulable) = (0u64, 0u64, 0);
            for n in &cluster.nodes {
                let free = n.free();
                if !n.unschedulable {
                    schedulable += 1;
                }
                cpu_total += n.allocatable.cpu_millis / 1000;
                cpu_free += free.cpu_millis / 1000;
                if let Some(a) = &n.accelerator {
                    let e = by_type.entry(a.clone()).or_default();
                    e.0 += i64::from(n.allocatable.accelerators);
                    e.1 += i64::from(free.accelerators);
                    e.2 = e.2.max(i64::from(free.accelerators));
                }
            }
            let gpus_total: i64 = by_type.values().map(|v| v.0).sum();
            let gpus_free: i64 = by_type.values().map(|v| v.1).sum();
            let conn = self.members.get(&name);
            let (ready, reason, message) = match (conn, view.ready) {
                (None, _) => (
                    false,
                    "NotConnected",
                    self.connect_errors
                        .get(&name)
                        .cloned()
                        .unwrap_or_else(|| "not connected yet (see the scheduler log)".to_string()),
                ),
                (Some(_), true) => (true, "Reachable", format!("{} schedulable nodes", schedulable)),
                (Some(c), false) => {
                    let why =
                        c.reachable(self.config.member_timeout).1.unwrap_or_else(|| "no successful contact yet".into());
                    (false, c.unready_reason(), why)
                }
            };
            let previous = view.member.status.clone().unwrap_or_default();
            let status = MemberClusterStatus {
                gpus: Some(format!("{gpus_free}/{gpus_total}")),
                cpus: Some(format!("{cpu_free}/{cpu_total}")),
                accelerators: by_type
                    .into_iter()
                    .map(|(accelerator, (total, free, largest))| computenet_api::member_cluster::AcceleratorCapacity {
                        accelerator,
                        total,
                        free,
                        largest_free_slot: largest,
                    })
                    .collect(),
                free_nodes: computenet_api::convert::free_node_groups(cluster),
                nodes: Some(schedulable),
                measured: built.measured[i].clone(),
                last_heartbeat: if ready { Some(status::now_rfc3339()) } else { previous.last_heartbeat.clone() },
                conditions: vec![status::condition(
                    &previous.conditions,
                    "Ready",
                    ready,
                    reason,
                    &message,
                    view.member.metadata.generation,
                )],
            };
            let same_conditions = status::same_conditions(&status.conditions, &previous.conditions);
            let same_numbers = MemberClusterStatus {
                last_heartbeat: previous.last_heartbeat.clone(),
                conditions: Vec::new(),
                ..status.clone()
            } == MemberClusterStatus { conditions: Vec::new(), ..previous.clone() };
            let since = self.heartbeats.get(&name).map(Instant::elapsed);
            let refresh_due = since.is_none_or(|t| t >= STATUS_REFRESH);
            let beat_due = since.is_none_or(|t| t >= Duration::from_secs(10));
            if !same_conditions || (!same_numbers && refresh_due) || (ready && beat_due) {
                match status::member_cluster(&self.hub.client, &name, &status).await {
                    Ok(()) => {
                        self.heartbeats.insert(name, Instant::now());
                    }
                    Err(e) => tracing::warn!(member = %name, error = %e, "member status write failed"),
                }
            }
        }
    }

    async fn write_queue_status(&mut self, queues: &[Arc<ComputeQueue>], jobs: &[Arc<TrainingJob>], built: &Built) {
        for q in queues {
            let name = q.metadata.name.clone().unwrap_or_default();
            let mine: Vec<&Arc<TrainingJob>> =
                jobs.iter().filter(|j| j.spec.queue_name == name && !snapshot::is_finished(j)).collect();
            let admitted = mine.iter().filter(|j| snapshot::is_admitted(j)).count() as i32;
            let running = mine.iter().filter(|j| phase(j) == Some(TrainingJobPhase::Running)).count() as i32;
            let pending = mine.len() as i32 - admitted;
            let used: i64 = mine
                .iter()
                .filter(|j| snapshot::is_admitted(j))
                .filter_map(|j| j.status.as_ref()?.placement.as_ref().map(|p| p.gpus))
                .sum();
            let nominal = built
                .queues
                .iter()
                .find(|cq| cq.name == name)
                .and_then(|cq| {
                    cq.quotas
                        .iter()
                        .find(|x| x.resource == computenet_core::ResourceName::Accelerators && x.accelerator.is_none())
                })
                .map(|x| x.nominal.to_string())
                .unwrap_or_else(|| "-".into());
            let status = ComputeQueueStatus {
                pending,
                admitted,
                running,
                gpu_usage: Some(format!("{used}/{nominal}")),
                usage: Vec::new(),
                conditions: Vec::new(),
            };
            let due = self.queue_writes.get(&name).is_none_or(|t| t.elapsed() >= STATUS_REFRESH);
            if q.status.as_ref() != Some(&status) && due {
                match status::compute_queue(&self.hub.client, &name, &status).await {
                    Ok(()) => {
                        self.queue_writes.insert(name, Instant::now());
                    }
                    Err(e) => tracing::warn!(queue = %name, error = %e, "queue status write failed"),
                }
            }
        }
    }

    /// Deletes remote Jobs whose TrainingJob is gone or no longer admitted to that member
    /// (left behind by a member loss or a crash), once they are old enough that the hub's
    /// cache cannot simply be lagging.
    async fn clean_orphans(&self, jobs: &[Arc<TrainingJob>]) {
        let admitted_to: HashMap<String, String> = jobs
            .iter()
            .filter(|j| snapshot::is_admitted(j) || j.metadata.deletion_timestamp.is_some())
            .filter_map(|j| Some((uid(j), j.status.as_ref()?.placement.as_ref()?.cluster.clone())))
            .collect();
        let known: std::collections::HashSet<String> = jobs.iter().map(|j| uid(j)).collect();
        let finished: std::collections::HashSet<String> =
            jobs.iter().filter(|j| snapshot::is_finished(j)).map(|j| uid(j)).collect();
        let attempt: HashMap<String, String> =
            jobs.iter().map(|j| (uid(j), computenet_members::slurm::batch::key(j))).collect();
        for (name, m) in &self.members {
            if !m.reachable(self.config.member_timeout).0 || !m.ever_reached() {
                continue;
            }
            let slurm = matches!(m, Member::Slurm(_));
            for job in m.remote_jobs() {
                // A finished batch job holds nothing, and Slurm forgets it by itself.
                if slurm && job.finished {
                    continue;
                }
                let finished_here = finished.contains(&job.uid);
                let earlier_attempt = slurm && attempt.get(&job.uid).is_some_and(|k| *k != job.key);
                let orphan = !known.contains(&job.uid)
                    || (!finished_here && admitted_to.get(&job.uid) != Some(name))
                    || earlier_attempt;
                if orphan && job.age_s.unwrap_or(i64::MAX) > 30 {
                    tracing::info!(member = %name, job = %job.key, "deleting orphaned remote job");
                    let _ = m.cancel_remote(&job).await;
                }
            }
        }
    }
}

fn explanation(decision: &Decision, summary: String) -> ExplanationStatus {
    computenet_api::convert::explanation_status(&decision.explanation, summary)
}

fn admitted_status(
    tj: &TrainingJob,
    current: &TrainingJobStatus,
    p: &Placement,
    decision: &Decision,
    built: &Built,
) -> TrainingJobStatus {
    let nodes = &built.pool.clusters[p.cluster_index].nodes;
    let gpus = i64::from(tj.spec.replicas) * i64::from(tj.spec.resources.accelerators.as_ref().map_or(0, |a| a.count));
    let summary = format!(
        "admitted to {} ({}){}: best of {} feasible member(s) by {:?}",
        p.cluster,
        p.accelerator.as_deref().unwrap_or("CPU"),
        if p.backfilled { ", backfilled" } else { "" },
        decision.explanation.feasible_clusters,
        tj.spec.placement.objective
    );
    TrainingJobStatus {
        phase: Some(TrainingJobPhase::Admitted),
        queue_position: None,
        admitted: Some(true),
        placement: Some(PlacementStatus {
            cluster: p.cluster.clone(),
            accelerator: p.accelerator.clone(),
            gpus,
            nodes: p
                .slots
                .iter()
                .map(|s| NodeReplicas { node: nodes[s.node as usize].name.clone(), replicas: s.replicas as i32 })
                .collect(),
            estimated_runtime_seconds: round(p.estimate.runtime_s + p.estimate.transfer_s),
            estimated_energy_k_wh: round(p.estimate.energy_kwh),
            estimated_cost: round(p.estimate.cost),
            backfilled: p.backfilled,
        }),
        remote: None,
        explanation: Some(explanation(decision, summary)),
        start_time: Some(status::now_rfc3339()),
        dispatch_time: None,
        completion_time: None,
        exit_code: None,
        requeues: current.requeues,
        conditions: status::upsert(
            &current.conditions,
            status::condition(
                &current.conditions,
                "Admitted",
                true,
                "Admitted",
                &format!("placed on {}", p.cluster),
                tj.metadata.generation,
            ),
        ),
    }
}

/// Back in the queue after a member loss or a preemption, one more requeue counted.
fn requeued_status(tj: &TrainingJob, current: &TrainingJobStatus, reason: &str, message: &str) -> TrainingJobStatus {
    TrainingJobStatus {
        phase: Some(if reason == "Preempted" { TrainingJobPhase::Preempted } else { TrainingJobPhase::Queued }),
        admitted: Some(false),
        requeues: Some(current.requeues.unwrap_or(0) + 1),
        conditions: status::upsert(
            &current.conditions,
            status::condition(&current.conditions, "Admitted", false, reason, message, tj.metadata.generation),
        ),
        ..TrainingJobStatus::default()
    }
}

fn queued_status(
    tj: &TrainingJob,
    current: &TrainingJobStatus,
    decision: &Decision,
    outcome: &CycleOutcome,
) -> TrainingJobStatus {
    let (reason, summary) = match &decision.action {
        Action::Reserve { cluster, start_at, .. } => (
            "Reserved",
            format!(
                "first in line: capacity reserved on {cluster} from {}",
                Timestamp::from_second(*start_at as i64).map_or_else(|_| start_at.to_string(), |t| t.to_string())
            ),
        ),
        Action::Preempt { cluster, victims } => {
            ("Preempting", format!("preempting {} job(s) on {cluster} to make room", victims.len()))
        }
        Action::Queued(r) => (queued_reason(r), r.to_string()),
        Action::Admit(_) => ("Admitted", String::new()),
    };
    let position = outcome.positions.get(&decision.job).map(|p| p.position as i32);
    TrainingJobStatus {
        phase: Some(if current.phase == Some(TrainingJobPhase::Preempted) && reason != "Reserved" {
            TrainingJobPhase::Preempted
        } else {
            TrainingJobPhase::Queued
        }),
        queue_position: position,
        admitted: Some(false),
        explanation: Some(explanation(decision, summary.clone())),
        requeues: current.requeues,
        conditions: status::upsert(
            &current.conditions,
            status::condition(&current.conditions, "Admitted", false, reason, &summary, tj.metadata.generation),
        ),
        ..TrainingJobStatus::default()
    }
}

fn queued_reason(r: &computenet_core::QueuedReason) -> &'static str {
    use computenet_core::QueuedReason as Q;
    match r {
        Q::UnknownQueue { .. } => "QueueNotFound",
        Q::Invalid { .. } => "InvalidSpec",
        Q::InsufficientCapacity => "InsufficientCapacity",
        Q::QuotaExceeded => "QuotaExceeded",
        Q::Unschedulable => "Unschedulable",
        Q::BlockedByQueueHead { .. } => "BlockedByQueueHead",
        Q::WaitingForPreemption => "WaitingForPreemption",
    }
}

/// Whether a queued status differs from the stored one in what users see.
fn differs(current: &TrainingJobStatus, new: &TrainingJobStatus) -> bool {
    current.phase != new.phase
        || current.queue_position != new.queue_position
        || current.admitted != new.admitted
        || current.explanation.as_ref().map(|e| &e.summary) != new.explanation.as_ref().map(|e| &e.summary)
        || !status::same_conditions(&current.conditions, &new.conditions)
}

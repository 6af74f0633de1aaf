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
use crate::labels;
use crate::lease::{self, LeaseConfig};
use crate::member::{Member, Members, RemoteStatus};
use crate::metrics::Metrics;
use crate::observe;
use crate::snapshot::{self, Built, MemberNodes, MemberView};
use crate::status;
use computenet_api::convert::round3 as round;
use computenet_api::training_job::{
    ExplanationStatus, MemberLossPolicy, NodeReplicas, PlacementStatus, RemoteReference, TrainingJobPhase,
    TrainingJobStatus,
};
use computenet_api::{ComputeQueue, ComputeQueueStatus, MemberCluster, MemberClusterStatus, TrainingJob};
use computenet_core::explain::Placement;
use computenet_core::{Action, CycleOutcome, Decision, Scheduler, Snapshot};
use computenet_members::prometheus::{self, EfficiencyPoller, EfficiencyQueries, Reading};
use futures::stream::{self, StreamExt};
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
    let events = EventSink::start(client.clone(), config.concurrency);
    let mut state = Loop {
        hub,
        config: config.clone(),
        members: Members::new(),
        changed: changed.clone(),
        events,
        overrides: HashMap::new(),
        heartbeats: HashMap::new(),
        connect_errors: HashMap::new(),
        efficiency: HashMap::new(),
    };
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => { tracing::info!("shutting down"); return Ok(()); }
            r = &mut lease_task => {
                return Err(match r { Ok(Err(e)) => e, _ => Error::LostLease("lease task ended".into()) });
            }
            _ = changed.notified() => {}
            _ = tokio::time::sleep(config.interval) => {}
        }
        // Let a burst of watch events settle into one cycle.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let started = Instant::now();
        state.tick().await;
        tracing::debug!(elapsed_ms = started.elapsed().as_millis() as u64, "tick");
        if let Some(web) = &config.web {
            web.metrics().cycle_duration(started.elapsed().as_secs_f64());
            web.set_ready(true);
        }
    }
}

/// A status to write, with the Event (type, reason, note) to record once it is written.
type StatusWrite = (Arc<TrainingJob>, TrainingJobStatus, Option<(EventType, String, String)>);

/// A dispatch attempt: the job, where it was placed, and the kind and name of what runs it.
type DispatchOutcome = (Arc<TrainingJob>, PlacementStatus, Result<(String, String)>);

struct Loop {
    hub: Hub,
    config: ServeConfig,
    members: Members,
    changed: Arc<Notify>,
    events: EventSink,
    /// Objects as last written, until the watch cache catches up with them (so a job
    /// admitted in one tick is never seen as pending in the next).
    overrides: HashMap<String, Arc<TrainingJob>>,
    /// When each member's status was last written.
    heartbeats: HashMap<String, Instant>,
    /// Why a member could not be connected, by name.
    connect_errors: HashMap<String, String>,
    /// Readers of members' efficiency series, by member name.
    efficiency: HashMap<String, EfficiencyPoller>,
}

fn resource_version(tj: &TrainingJob) -> u64 {
    tj.metadata.resource_version.as_deref().and_then(|v| v.parse().ok()).unwrap_or(0)
}

fn uid(tj: &TrainingJob) -> String {
    tj.metadata.uid.clone().unwrap_or_default()
}

fn now_rfc3339() -> String {
    Timestamp::now().to_string()
}

/// The member a job is placed on, if any.
fn placed_on(tj: &TrainingJob) -> Option<&String> {
    Some(&tj.status.as_ref()?.placement.as_ref()?.cluster)
}

fn phase(tj: &TrainingJob) -> Option<TrainingJobPhase> {
    tj.status.as_ref().and_then(|s| s.phase)
}

impl Loop {
    /// The current TrainingJobs: the watch cache, with newer own writes on top.
    fn training_jobs(&mut self) -> Vec<Arc<TrainingJob>> {
        let mut jobs = self.hub.jobs.state();
        let mut seen = std::collections::HashSet::new();
        for tj in &mut jobs {
            let id = uid(tj);
            seen.insert(id.clone());
            if let Some(mine) = self.overrides.get(&id) {
                if resource_version(mine) > resource_version(tj) {
                    *tj = mine.clone();
                } else {
                    self.overrides.remove(&id);
                }
            }
        }
        self.overrides.retain(|id, _| seen.contains(id));
        jobs
    }

    fn metrics(&self) -> Option<&Metrics> {
        self.config.web.as_ref().map(|w| w.metrics())
    }

    fn publish(&self, tj: &TrainingJob, type_: EventType, reason: &str, note: String) {
        self.events.publish(tj, type_, reason, note);
    }

    async fn write(&mut self, tj: &TrainingJob, status: TrainingJobStatus) -> bool {
        match status::training_job(&self.hub.client, tj, &status).await {
            Ok(stored) => {
                self.overrides.insert(uid(tj), Arc::new(stored));
                true
            }
            Err(e) => {
                tracing::warn!(job = ?tj.metadata.name, error = %e, "status write failed");
                false
            }
        }
    }

    /// Writes many statuses concurrently, then queues their Events.
    async fn write_many(&mut self, writes: Vec<StatusWrite>) {
        let client = self.hub.client.clone();
        let concurrency = self.config.concurrency.max(1);
        let results: Vec<_> = stream::iter(writes)
            .map(|(tj, status, event)| {
                let client = client.clone();
                async move {
                    let r = status::training_job(&client, &tj, &status).await;
                    (tj, event, r)
                }
            })
            .buffer_unordered(concurrency)
            .collect()
            .await;
        let mut events = Vec::new();
        for (tj, event, result) in results {
            match result {
                Ok(stored) => {
                    let stored = Arc::new(stored);
                    self.overrides.insert(uid(&tj), stored.clone());
                    if let Some(e) = event {
                        events.push((stored, e));
                    }
                }
                Err(e) => tracing::warn!(job = ?tj.metadata.name, error = %e, "status write failed"),
            }
        }
        for (tj, (kind, reason, note)) in events {
            self.publish(&tj, kind, &reason, note);
        }
    }

    async fn tick(&mut self) {
        self.sync_members().await;
        let jobs = self.training_jobs();
        self.finalizers_and_suspension(&jobs).await;
        let jobs = self.training_jobs();
        self.mirror(&jobs).await;
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
        self.apply(&jobs, &built, &outcome).await;
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

    /// Finalizers on, remote cleanup on deletion, suspension.
    async fn finalizers_and_suspension(&mut self, jobs: &[Arc<TrainingJob>]) {
        let mut need_finalizer = Vec::new();
        for tj in jobs {
            let has_finalizer = tj.metadata.finalizers.iter().flatten().any(|f| f == labels::FINALIZER);
            if tj.metadata.deletion_timestamp.is_some() {
                if has_finalizer {
                    if let Some(m) = self.member_of(tj).cloned() {
                        if let Err(e) = m.cancel(tj).await {
                            tracing::warn!(job = ?tj.metadata.name, error = %e, "cleanup on the member failed; retrying");
                            continue;
                        }
                    }
                    if let Err(e) = status::set_finalizer(&self.hub.client, tj, false).await {
                        tracing::debug!(error = %e, "removing finalizer");
                    }
                }
                continue;
            }
            if !has_finalizer && !snapshot::is_finished(tj) {
                need_finalizer.push(tj.clone());
            }
            let current = tj.status.clone().unwrap_or_default();
            if tj.spec.suspend && current.phase != Some(TrainingJobPhase::Suspended) && !snapshot::is_finished(tj) {
                if snapshot::is_admitted(tj) {
                    if let Some(m) = self.member_of(tj).cloned() {
                        if m.cancel(tj).await.is_err() {
                            continue;
                        }
                    }
                }
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
                if self.write(tj, status).await {
                    self.publish(
                        tj,
                        EventType::Normal,
                        "Suspended",
                        "stopped; resumes when spec.suspend is false".into(),
                    );
                }
            } else if !tj.spec.suspend && current.phase == Some(TrainingJobPhase::Suspended) {
                let status = TrainingJobStatus {
                    phase: Some(TrainingJobPhase::Queued),
                    admitted: Some(false),
                    requeues: current.requeues,
                    ..TrainingJobStatus::default()
                };
                self.write(tj, status).await;
            }
        }
        // New jobs get the finalizer before anything is created for them (concurrently:
        // a burst of submissions must not wait on one patch at a time).
        let client = self.hub.client.clone();
        stream::iter(need_finalizer)
            .for_each_concurrent(self.config.concurrency.max(1), |tj| {
                let client = client.clone();
                async move {
                    if let Err(e) = status::set_finalizer(&client, &tj, true).await {
                        tracing::debug!(error = %e, "adding finalizer");
                    }
                }
            })
            .await;
    }

    /// Dispatches admitted jobs that have no remote objects yet, mirrors the state of
    /// those that do, and requeues what a lost member held.
    async fn mirror(&mut self, jobs: &[Arc<TrainingJob>]) {
        let mut to_dispatch = Vec::new();
        let mut mirrored = Vec::new();
        for tj in jobs {
            if !snapshot::is_admitted(tj)
                || snapshot::is_finished(tj)
                || tj.metadata.deletion_timestamp.is_some()
                || tj.spec.suspend
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
                    self.requeue(tj, &current, "MemberLost", &why).await;
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
                    to_dispatch.push((tj.clone(), m, placement));
                    continue;
                }
            };
            let RemoteStatus { phase: new_phase, failure, exit_code, nodes } = remote;
            let mut status = TrainingJobStatus { phase: Some(new_phase), ..current.clone() };
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
            if current.phase == Some(new_phase) {
                if moved {
                    mirrored.push((tj.clone(), status, None));
                }
                continue;
            }
            status.exit_code = exit_code;
            let generation = tj.metadata.generation;
            match new_phase {
                TrainingJobPhase::Running => {
                    status.conditions = upsert(
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
                    status.completion_time = Some(now_rfc3339());
                    status.conditions = upsert(
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
                    status.completion_time = Some(now_rfc3339());
                    status.conditions = upsert(
                        &current.conditions,
                        status::condition(&current.conditions, "Finished", false, &reason, &message, generation),
                    );
                }
                _ => {}
            }
            let kind = if new_phase == TrainingJobPhase::Failed { EventType::Warning } else { EventType::Normal };
            let event = (kind, format!("{new_phase:?}"), format!("on member {}", placement.cluster));
            mirrored.push((tj.clone(), status, Some(event)));
        }
        self.write_many(mirrored).await;
        // The nodeSelector (Kubernetes) or gres request (Slurm) needs the member's raw name
        // of the chosen type: read each member's nodes once, with the snapshot's catalogue.
        let catalogue = snapshot::catalogue(&self.hub.members.state());
        let mut raw_names: HashMap<String, BTreeMap<String, String>> = HashMap::new();
        for (_, m, placement) in &to_dispatch {
            raw_names
                .entry(placement.cluster.clone())
                .or_insert_with(|| snapshot::raw_accelerator_names(&m.nodes(&[]), &catalogue));
        }
        let concurrency = self.config.concurrency.max(1);
        let raw_names = &raw_names;
        let results: Vec<DispatchOutcome> = stream::iter(to_dispatch)
            .map(|(tj, m, placement)| async move {
                let raw = placement.accelerator.as_ref().and_then(|a| raw_names.get(&placement.cluster)?.get(a));
                let result = m.dispatch(&tj, raw.map(String::as_str)).await;
                (tj, placement, result)
            })
            .buffer_unordered(concurrency)
            .collect()
            .await;
        let mut writes = Vec::new();
        for (tj, placement, result) in results {
            let current = tj.status.clone().unwrap_or_default();
            match result {
                Ok((kind, name)) => {
                    let remote =
                        RemoteReference { cluster: placement.cluster.clone(), kind: kind.clone(), name: name.clone() };
                    if current.remote.as_ref() != Some(&remote) || current.phase == Some(TrainingJobPhase::Admitted) {
                        let status = TrainingJobStatus {
                            phase: Some(TrainingJobPhase::Dispatched),
                            remote: Some(remote),
                            dispatch_time: current.dispatch_time.clone().or_else(|| Some(now_rfc3339())),
                            ..current
                        };
                        let note = format!("created {kind} {name} on {}", placement.cluster);
                        writes.push((tj, status, Some((EventType::Normal, "Dispatched".to_string(), note))));
                    }
                }
                Err(e) => {
                    tracing::warn!(job = ?tj.metadata.name, error = %e, "dispatch failed; retrying next cycle");
                    if let Some(m) = self.metrics() {
                        m.dispatch_error(&placement.cluster);
                    }
                    let failed = status::condition(
                        &current.conditions,
                        "Dispatched",
                        false,
                        "DispatchFailed",
                        &e.to_string(),
                        tj.metadata.generation,
                    );
                    let conditions = upsert(&current.conditions, failed);
                    if !status::same_conditions(&conditions, &current.conditions) {
                        writes.push((tj, TrainingJobStatus { conditions, ..current }, None));
                    }
                }
            }
        }
        self.write_many(writes).await;
    }

    async fn requeue(&mut self, tj: &TrainingJob, current: &TrainingJobStatus, reason: &str, message: &str) {
        let status = TrainingJobStatus {
            phase: Some(if reason == "Preempted" { TrainingJobPhase::Preempted } else { TrainingJobPhase::Queued }),
            admitted: Some(false),
            requeues: Some(current.requeues.unwrap_or(0) + 1),
            conditions: upsert(
                &current.conditions,
                status::condition(&current.conditions, "Admitted", false, reason, message, tj.metadata.generation),
            ),
            ..TrainingJobStatus::default()
        };
        if self.write(tj, status).await {
            self.publish(tj, EventType::Warning, reason, message.to_string());
        }
    }

    /// Writes the cycle's decisions: admissions (then dispatch), queue positions and reasons, preemptions.
    async fn apply(&mut self, jobs: &[Arc<TrainingJob>], built: &Built, outcome: &CycleOutcome) {
        let by_uid: HashMap<String, Arc<TrainingJob>> = jobs.iter().map(|j| (uid(j), j.clone())).collect();
        for (id, problem) in &built.problems {
            let Some(tj) = by_uid.get(id) else { continue };
            let current = tj.status.clone().unwrap_or_default();
            let (reason, message) = problem.reason_and_message();
            let conditions = upsert(
                &current.conditions,
                status::condition(&current.conditions, "Queued", false, reason, &message, tj.metadata.generation),
            );
            if current.phase != Some(TrainingJobPhase::Pending)
                || !status::same_conditions(&conditions, &current.conditions)
            {
                self.write(
                    tj,
                    TrainingJobStatus {
                        phase: Some(TrainingJobPhase::Pending),
                        conditions,
                        requeues: current.requeues,
                        ..TrainingJobStatus::default()
                    },
                )
                .await;
            }
        }
        let mut writes = Vec::new();
        for decision in &outcome.decisions {
            let Some(tj) = by_uid.get(&decision.job) else { continue };
            let current = tj.status.clone().unwrap_or_default();
            match &decision.action {
                Action::Admit(p) => writes.push((tj.clone(), admitted_status(tj, &current, p, decision, built), true)),
                Action::Preempt { victims, cluster } => {
                    for v in victims {
                        if let Some(victim) = by_uid.get(v) {
                            if let Some(m) = self.member_of(victim).cloned() {
                                if m.cancel(victim).await.is_err() {
                                    continue;
                                }
                            }
                            let vs = victim.status.clone().unwrap_or_default();
                            let why = format!(
                                "preempted on {cluster} for {}/{}",
                                tj.metadata.namespace.as_deref().unwrap_or_default(),
                                tj.metadata.name.as_deref().unwrap_or_default()
                            );
                            self.requeue(victim, &vs, "Preempted", &why).await;
                            if let Some(m) = self.metrics() {
                                m.preempted(&victim.spec.queue_name);
                            }
                        }
                    }
                    let status = queued_status(tj, &current, decision, outcome);
                    if differs(&current, &status) {
                        writes.push((tj.clone(), status, false));
                    }
                }
                _ => {
                    let status = queued_status(tj, &current, decision, outcome);
                    if differs(&current, &status) {
                        writes.push((tj.clone(), status, false));
                    }
                }
            }
        }
        let writes = writes
            .into_iter()
            .map(|(tj, status, admitted)| {
                let event = admitted.then(|| {
                    let p = status.placement.as_ref();
                    let note = p.map_or_else(String::new, |p| {
                        format!("placed on {} ({})", p.cluster, p.accelerator.as_deref().unwrap_or("CPU"))
                    });
                    (EventType::Normal, "Admitted".to_string(), note)
                });
                (tj, status, event)
            })
            .collect();
        self.write_many(writes).await;
        let newly_admitted: Vec<Arc<TrainingJob>> = outcome
            .admissions()
            .filter_map(|(id, _)| self.overrides.get(id).filter(|tj| snapshot::is_admitted(tj)).cloned())
            .collect();
        for tj in &newly_admitted {
            let cluster = tj.status.as_ref().and_then(|s| s.placement.as_ref()).map_or("", |p| p.cluster.as_str());
            if let Some(m) = self.metrics() {
                m.admitted(&tj.spec.queue_name, cluster);
            }
        }
        // Dispatch right away rather than waiting for the next tick.
        if !newly_admitted.is_empty() {
            self.mirror(&newly_admitted).await;
        }
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
                last_heartbeat: if ready { Some(now_rfc3339()) } else { previous.last_heartbeat.clone() },
                conditions: vec![status::condition(
                    &previous.conditions,
                    "Ready",
                    ready,
                    reason,
                    &message,
                    view.member.metadata.generation,
                )],
            };
            let unchanged = MemberClusterStatus {
                last_heartbeat: previous.last_heartbeat.clone(),
                conditions: Vec::new(),
                ..status.clone()
            } == MemberClusterStatus { conditions: Vec::new(), ..previous.clone() }
                && status::same_conditions(&status.conditions, &previous.conditions);
            let beat_due = self.heartbeats.get(&name).is_none_or(|t| t.elapsed() >= Duration::from_secs(10));
            if !unchanged || (ready && beat_due) {
                match status::member_cluster(&self.hub.client, &name, &status).await {
                    Ok(()) => {
                        self.heartbeats.insert(name, Instant::now());
                    }
                    Err(e) => tracing::warn!(member = %name, error = %e, "member status write failed"),
                }
            }
        }
    }

    async fn write_queue_status(&self, queues: &[Arc<ComputeQueue>], jobs: &[Arc<TrainingJob>], built: &Built) {
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
            if q.status.as_ref() != Some(&status) {
                if let Err(e) = status::compute_queue(&self.hub.client, &name, &status).await {
                    tracing::warn!(queue = %name, error = %e, "queue status write failed");
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
        let attempt: HashMap<String, String> = jobs.iter().map(|j| (uid(j), crate::batch::key(j))).collect();
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
                let finished_here = jobs.iter().any(|j| uid(j) == job.uid && snapshot::is_finished(j));
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

fn upsert(
    conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
    new: k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition,
) -> Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    let mut out: Vec<_> = conditions.iter().filter(|c| c.type_ != new.type_).cloned().collect();
    out.push(new);
    out.sort_by(|a, b| a.type_.cmp(&b.type_));
    out
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
        start_time: Some(now_rfc3339()),
        dispatch_time: None,
        completion_time: None,
        exit_code: None,
        requeues: current.requeues,
        conditions: upsert(
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
        conditions: upsert(
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

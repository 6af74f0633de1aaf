//! The per-job reconciler: everything that happens to one admitted, suspended or deleted
//! TrainingJob outside the scheduling pass: its finalizer and cleanup, suspension and
//! resumption, dispatch to its member (with per-job exponential backoff), the mirror of
//! its state there, requeueing after a member loss, and orphan cleanup on members.
//!
//! [`next_step`] decides from the job and what its member reports (pure, unit-tested);
//! [`Reconciler`] carries the step out as background work.

use crate::backoff::{epoch_ms, Backoff, BackoffPolicy};
use crate::looks::{Looks, MemberLook};
use crate::overlay::Overlay;
use crate::seal::AdmissionKey;
use crate::snapshot::RawAccelerators;
use crate::transitions::{self, DispatchRecord, MemberKind, Requeue, Transition};
use crate::work::{self, Landed, Target};
use computenet_api::conditions::reasons;
use computenet_api::training_job::{MemberLossPolicy, TrainingJobPhase};
use computenet_api::view;
use computenet_api::TrainingJob;
use computenet_members::kubernetes::Touches;
use computenet_members::{Leftover, Member, Members, RemoteJob, RemoteStatus};
use foldhash::{HashMap, HashSet};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the job's member says, as far as the job is concerned.
#[derive(Debug, Clone, PartialEq)]
pub enum MemberState {
    /// No connection to its member (unknown member, or connecting).
    NotConnected,
    /// Unreachable for longer than the member timeout, with the last error.
    Lost(String),
    /// Answering, but refusing computenet's credentials for longer than the member
    /// timeout (its Secret is re-read meanwhile), with the last error.
    CredentialsRejected(String),
    /// Connected but never answered yet: its caches say nothing.
    NotReachedYet,
    /// Answering; `remote` is the job's objects there (None: none yet).
    Reachable { kind: MemberKind, remote: Option<RemoteStatus> },
}

/// What is left on members of a job's earlier attempts, for the dispatch of its current
/// one: a new attempt starts only once the old one is gone, so nothing runs twice.
#[derive(Debug, Clone, PartialEq)]
pub enum Earlier {
    /// Nothing is left (or the job has no earlier attempt).
    Gone,
    /// Something is left on `member`: to stop now (`leftover.stop_due`), or stopping.
    Left { member: String, leftover: Leftover },
    /// The member the last attempt ran on cannot be read (not connected yet, or its
    /// caches not listed): whether it left anything is unknown, so the new attempt waits.
    Unknown { member: String },
}

/// What to do for one job now.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Nothing to do (not ours to act on, or waiting).
    Wait,
    /// Deleted: remove its objects on its member, then the finalizer when `release` (its
    /// last attempt is recorded in the usage store, or the metering grace passed).
    CleanUp { release: bool },
    /// Suspended: stop it on its member when `stop`, then write the transition.
    Suspend { stop: bool, transition: Transition },
    /// Resumed: back to its queue.
    Resume(Transition),
    /// Its member is lost: back to its queue.
    Requeue(Transition),
    /// Create its objects on its member (idempotent: existing ones are found).
    Dispatch,
    /// An earlier attempt is still on `member`: stop it (gracefully) first; the dispatch
    /// follows in a later pass, once it is gone.
    StopEarlier { member: String, leftover: Leftover },
    /// Dispatch failed before and the next attempt is not due yet.
    BackingOff,
    /// Write what its member reports.
    Mirror(Transition),
}

/// A newly created Kubernetes Job is shown as Dispatched only after this long: one that
/// starts sooner goes from Admitted straight to Running, one status write fewer. Long
/// enough for pods on a busy member (in a 2,000-job burst on the 2-core test bed, pods
/// took up to 34 s to run: at 15 s half the jobs paid the extra write, at 2 s four in
/// five); the Dispatched Event names the member's object at once. Its objects are created
/// by name, so a restart in between only finds them again.
pub const DISPATCHED_GRACE: Duration = Duration::from_secs(60);

/// The same for a Slurm batch job: a submission is not idempotent, so its id is recorded
/// sooner (a restart in between finds it by the key in its comment).
pub const SLURM_DISPATCHED_GRACE: Duration = Duration::from_secs(15);

/// How long a dispatch may go unrecorded on a member of this kind ([`DISPATCHED_GRACE`]).
pub fn dispatched_grace(member: &MemberState) -> Duration {
    match member {
        MemberState::Reachable { kind, .. } => grace_on(*kind),
        _ => DISPATCHED_GRACE,
    }
}

/// [`DISPATCHED_GRACE`] or [`SLURM_DISPATCHED_GRACE`], by the member's kind.
fn grace_on(kind: MemberKind) -> Duration {
    match kind {
        MemberKind::Slurm => SLURM_DISPATCHED_GRACE,
        MemberKind::Kubernetes => DISPATCHED_GRACE,
    }
}

/// Which kind of member this is.
fn kind_of(member: &Member) -> MemberKind {
    match member {
        Member::Kubernetes(_) => MemberKind::Kubernetes,
        Member::Slurm(_) => MemberKind::Slurm,
    }
}

/// Decides the next step for a job that has no work in flight. `record` is a dispatch this
/// process made that the status does not show yet, with whether it is younger than its
/// member's [`dispatched_grace`]; `backoff_due` whether a failed dispatch may be tried again now;
/// `earlier` what is left of its earlier attempts (a dispatch waits for it to be gone).
pub fn next_step(
    tj: &TrainingJob,
    member: &MemberState,
    record: Option<(&DispatchRecord, bool)>,
    backoff_due: bool,
    earlier: &Earlier,
    now: Timestamp,
) -> Step {
    // Borrowed, not cloned: this runs for every job every pass.
    let none = computenet_api::training_job::TrainingJobStatus::default();
    let current = tj.status.as_ref().unwrap_or(&none);
    if tj.metadata.deletion_timestamp.is_some() {
        return if crate::status::has_finalizer(tj) {
            Step::CleanUp { release: crate::metering::deletion_settled(tj, now) }
        } else {
            Step::Wait
        };
    }
    if view::is_finished(tj) {
        return Step::Wait;
    }
    if tj.spec.suspend {
        if current.phase == Some(TrainingJobPhase::Suspended) {
            return Step::Wait;
        }
        let stop = view::is_admitted(tj);
        return Step::Suspend { stop, transition: transitions::suspended(tj, current, now) };
    }
    if current.phase == Some(TrainingJobPhase::Suspended) {
        return Step::Resume(Transition { status: transitions::resumed(current), event: None });
    }
    if !view::is_admitted(tj) || current.placement.is_none() {
        return Step::Wait;
    }
    let cluster = current.placement.as_ref().map(|p| p.cluster.clone()).unwrap_or_default();
    let (kind, remote) = match member {
        MemberState::NotConnected | MemberState::NotReachedYet => return Step::Wait,
        // Alive but refusing us: whatever was created there still runs, and a requeue
        // could run it twice (its objects cannot even be removed without credentials).
        MemberState::CredentialsRejected(_) if current.remote.is_some() || record.is_some() => return Step::Wait,
        MemberState::Lost(error) | MemberState::CredentialsRejected(error) => {
            let started = current.phase == Some(TrainingJobPhase::Running);
            if started && tj.spec.on_member_loss == MemberLossPolicy::Wait {
                return Step::Wait;
            }
            let why = format!("member {cluster} unreachable: {error}");
            return Step::Requeue(transitions::requeued(tj, current, Requeue::MemberLost, &why, now));
        }
        MemberState::Reachable { kind, remote } => (*kind, remote.clone()),
    };
    let remote = match (remote, kind, &current.remote) {
        (Some(r), _, _) => r,
        // A batch job this attempt submitted that Slurm no longer lists (it forgets
        // finished jobs after MinJobAge): submitting again could run it twice.
        (None, MemberKind::Slurm, Some(r)) => RemoteStatus {
            phase: TrainingJobPhase::Failed,
            failure: Some((
                reasons::REMOTE_JOB_LOST.into(),
                format!("Slurm no longer knows batch job {}; its outcome is unknown", r.name),
            )),
            exit_code: None,
            nodes: None,
        },
        // Dispatched by this process moments ago to this member, whose cache does not show
        // the objects yet: dispatching again would only find them (a busy member's watch
        // lags by seconds).
        (None, _, _) if record.is_some_and(|(d, fresh)| fresh && d.remote.cluster == cluster) => return Step::Wait,
        // Admitted but not dispatched (a failed call, a crash in between, or a new attempt
        // after a move): an earlier attempt's objects are stopped first and waited for.
        (None, _, _) => {
            return match earlier {
                Earlier::Left { member, leftover } if leftover.stop_due => {
                    Step::StopEarlier { member: member.clone(), leftover: leftover.clone() }
                }
                Earlier::Left { .. } | Earlier::Unknown { .. } => Step::Wait,
                Earlier::Gone if backoff_due => Step::Dispatch,
                Earlier::Gone => Step::BackingOff,
            }
        }
    };
    // A dispatch the status does not record: with this process's record it is written
    // with this state; without one (a restart in between) the dispatch runs again, finds
    // the objects, and so learns what to record.
    let record = match (&current.remote, record) {
        (Some(_), _) => None,
        (None, Some((d, fresh))) => {
            if remote.phase == TrainingJobPhase::Dispatched && fresh {
                return Step::Wait;
            }
            Some(d)
        }
        (None, None) => return Step::Dispatch,
    };
    match transitions::mirrored(tj, current, remote, kind, record, now) {
        Some(t) => Step::Mirror(t),
        None => Step::Wait,
    }
}

/// Whether a job of this hub found on a member is an orphan to delete: its TrainingJob is
/// gone, no longer admitted to this member (unless it finished here), or (Slurm) an
/// earlier attempt of it. Recent objects are kept: the hub's cache may lag behind them.
/// Only this hub's objects are ever judged (the members list nothing else).
pub fn is_orphan(job: &RemoteJob, member: &str, slurm: bool, hub: &HubIndex) -> bool {
    // A finished batch job holds nothing, and Slurm forgets it by itself.
    if slurm && job.finished {
        return false;
    }
    if job.age_s.is_some_and(|age| age <= ORPHAN_MIN_AGE_S) {
        return false;
    }
    // A restartable job's stopped attempt has its grace period to checkpoint and exit.
    if hub.stopping.contains(&job.uid) {
        return false;
    }
    let known = hub.attempt.contains_key(&job.uid);
    let finished_here = hub.finished.contains(&job.uid);
    let earlier_attempt = slurm && hub.attempt.get(&job.uid).is_some_and(|k| *k != job.key);
    !known || (!finished_here && hub.admitted_to.get(&job.uid).map(String::as_str) != Some(member)) || earlier_attempt
}

/// What orphan cleanup does with one job found on a member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// No TrainingJob accounts for it: delete it.
    Orphan,
    /// A second unfinished batch job of the current attempt (a submit whose answer was
    /// lost, then made again): cancel it, keeping the batch job `kept`.
    Duplicate { kept: u64 },
}

/// The jobs of one member that cleanup removes, with why. Of two or more unfinished batch
/// jobs of one attempt, the one its status records is kept (else the first submitted,
/// which a dispatch also finds first), so an attempt never keeps two.
pub fn judge(jobs: &[RemoteJob], member: &str, slurm: bool, hub: &HubIndex) -> Vec<(RemoteJob, Verdict)> {
    let mut out = Vec::new();
    let mut current: HashMap<&str, Vec<&RemoteJob>> = HashMap::default();
    for job in jobs.iter().filter(|j| !claims_another_namespace(j, hub)) {
        if is_orphan(job, member, slurm, hub) {
            out.push((job.clone(), Verdict::Orphan));
        } else if slurm && !job.finished && job.id.is_some() {
            current.entry(job.key.as_str()).or_default().push(job);
        }
    }
    for group in current.values().filter(|g| g.len() > 1) {
        let ids: Vec<u64> = group.iter().filter_map(|j| j.id).collect();
        let recorded = group.first().and_then(|j| hub.recorded.get(&j.uid)).copied().filter(|id| ids.contains(id));
        let Some(kept) = recorded.or_else(|| ids.iter().min().copied()) else { continue };
        for job in group.iter().filter(|j| j.id != Some(kept)) {
            out.push(((*job).clone(), Verdict::Duplicate { kept }));
        }
    }
    out
}

/// Whether a batch job's comment names a TrainingJob's UID but another namespace than the
/// TrainingJob's own: a comment written by someone else (its user is the other
/// namespace's), not the TrainingJob's job, neither kept nor cancelled as its.
pub fn claims_another_namespace(job: &RemoteJob, hub: &HubIndex) -> bool {
    match (&job.hub_namespace, hub.namespace.get(&job.uid)) {
        (Some(claimed), Some(real)) => claimed != real,
        _ => false,
    }
}

/// Whether an admitted job waiting for its dispatch may have earlier attempts left on
/// members (pure): it ran before (an attempt recorded, or not its first admission).
pub fn may_have_earlier(tj: &TrainingJob) -> bool {
    let Some(s) = tj.status.as_ref() else { return false };
    s.remote.is_none() && s.admitted == Some(true) && (!s.attempts.is_empty() || s.attempt.unwrap_or(0) > 1)
}

/// Seconds a member object must exist before it can be judged an orphan.
pub const ORPHAN_MIN_AGE_S: i64 = 30;

/// What orphan cleanup needs to know of the hub's jobs, by UID.
#[derive(Debug, Default)]
pub struct HubIndex {
    /// Admitted (or being deleted) jobs and the member they are placed on.
    pub admitted_to: HashMap<String, String>,
    pub finished: HashSet<String>,
    /// Every job's current Slurm attempt key.
    pub attempt: HashMap<String, String>,
    /// The Slurm batch job id a job's status records for its current attempt.
    pub recorded: HashMap<String, u64>,
    /// Every job's namespace.
    pub namespace: HashMap<String, String>,
    /// Jobs whose last attempt ended less than its grace period (and
    /// [`ORPHAN_MIN_AGE_S`]) ago: what it left is stopping, not orphaned.
    pub stopping: HashSet<String>,
}

impl HubIndex {
    /// The index of `jobs` at `now` (seconds since the epoch).
    pub fn new(jobs: &[Arc<TrainingJob>], now: u64) -> Self {
        let mut index = HubIndex::default();
        for j in jobs {
            let uid = view::uid(j).to_string();
            let ended = j.status.as_ref().and_then(|s| s.attempts.last()).and_then(|a| a.end_time.as_ref());
            if let (Some(end), Some(grace)) = (ended, computenet_members::attempt::grace_period_s(j)) {
                let until = view::unix(end.0).saturating_add(u64::from(grace)).saturating_add(ORPHAN_MIN_AGE_S as u64);
                if now < until {
                    index.stopping.insert(uid.clone());
                }
            }
            if view::is_admitted(j) || j.metadata.deletion_timestamp.is_some() {
                if let Some(cluster) = view::placed_on(j) {
                    index.admitted_to.insert(uid.clone(), cluster.to_string());
                }
            }
            if view::is_finished(j) {
                index.finished.insert(uid.clone());
            }
            let remote = j.status.as_ref().and_then(|s| s.remote.as_ref()).filter(|r| r.kind == "SlurmJob");
            if let Some(id) = remote.and_then(|r| r.name.parse().ok()) {
                index.recorded.insert(uid.clone(), id);
            }
            index.namespace.insert(uid.clone(), j.metadata.namespace.clone().unwrap_or_default());
            index.attempt.insert(uid, computenet_members::slurm::batch::key(j));
        }
        index
    }
}

/// The reconciler's own state: dispatches not recorded yet, and backoffs.
#[allow(missing_debug_implementations)] // kube::Client has no Debug implementation.
pub struct Reconciler {
    client: Client,
    member_timeout: Duration,
    policy: BackoffPolicy,
    /// Dispatches made by this process and not yet recorded in the job's status.
    dispatched: HashMap<String, (DispatchRecord, Instant)>,
    /// Failed dispatches in a row, by UID (restored from status.retry after a restart).
    backoffs: HashMap<String, Backoff>,
    /// The service's seal key, checked before every dispatch.
    key: Arc<AdmissionKey>,
    /// The hub's other job kinds and the accelerator catalogue, for source TrainingJobs.
    sources: Option<(crate::sources::Sources, computenet_core::accelerator::Catalogue)>,
    /// When members were last swept for orphans.
    swept: Option<Instant>,
    /// Which jobs the next reconcile looks at.
    looks: Looks,
}

/// Whether a job nothing touched since the last pass must still be looked at: its next
/// step may change with time alone (a backoff running out, a dispatch record outgrowing
/// its grace, a deletion's release), or it reads what no touch reports (earlier attempts
/// on other members, a Slurm member's polled jobs).
pub fn changes_untouched(tj: &TrainingJob, record_expired: Option<bool>, backing_off: bool, on_slurm: bool) -> bool {
    let retrying = tj.status.as_ref().is_some_and(|s| s.retry.is_some());
    backing_off
        || retrying
        || record_expired == Some(true)
        || on_slurm
        || may_have_earlier(tj)
        || tj.metadata.deletion_timestamp.is_some()
}

/// Members are swept for orphans this often, not every pass: the sweep reads every job
/// and every member object, and nothing is an orphan before [`ORPHAN_MIN_AGE_S`] anyway.
pub const ORPHAN_SWEEP_EVERY: Duration = Duration::from_secs(5);

/// A job's backoff: this process's, or what its status recorded.
fn backoff_of(known: Option<&Backoff>, tj: &TrainingJob) -> Backoff {
    known.copied().unwrap_or_else(|| {
        let retry = tj.status.as_ref().and_then(|s| s.retry.as_ref());
        retry.map_or_else(Backoff::default, |r| Backoff {
            failures: u32::try_from(r.attempts).unwrap_or(0),
            next_attempt_ms: epoch_ms(r.next_attempt_time.0),
        })
    })
}

impl Reconciler {
    /// The hub's other job kinds, and the catalogue their accelerator names are read with
    /// (set each pass).
    pub fn set_sources(&mut self, sources: Option<(crate::sources::Sources, computenet_core::accelerator::Catalogue)>) {
        self.sources = sources;
    }

    pub fn new(client: Client, member_timeout: Duration, policy: BackoffPolicy, key: Arc<AdmissionKey>) -> Self {
        Reconciler {
            client,
            member_timeout,
            policy,
            dispatched: HashMap::default(),
            backoffs: HashMap::default(),
            key,
            sources: None,
            swept: None,
            looks: Looks::default(),
        }
    }

    /// Takes in what a piece of work reports about dispatch.
    pub fn absorb(&mut self, landed: &Landed) {
        self.looks.landed(&landed.uid);
        if let Some(d) = &landed.dispatched {
            self.dispatched.insert(landed.uid.clone(), (d.clone(), Instant::now()));
            self.backoffs.remove(&landed.uid);
        }
        if let Some(f) = &landed.dispatch_failed {
            self.backoffs.insert(landed.uid.clone(), f.backoff);
        }
    }

    /// Forgets jobs that are gone and dispatches the status now records.
    pub fn prune(&mut self, jobs: &[Arc<TrainingJob>]) {
        // Most passes have nothing to forget: no need to index every job.
        if self.dispatched.is_empty() && self.backoffs.is_empty() {
            return;
        }
        let live: HashSet<&str> = jobs.iter().map(|j| view::uid(j)).collect();
        let recorded: HashSet<&str> = jobs
            .iter()
            .filter(|j| j.status.as_ref().is_some_and(|s| s.remote.is_some()))
            .map(|j| view::uid(j))
            .collect();
        self.dispatched.retain(|id, _| live.contains(id.as_str()) && !recorded.contains(id.as_str()));
        self.backoffs.retain(|id, _| live.contains(id.as_str()));
    }

    /// [`changes_untouched`], from this process's records.
    fn changes_untouched(&self, tj: &TrainingJob, members: &Members) -> bool {
        let uid = view::uid(tj);
        let kind = |cluster: &str| members.get(cluster).map(kind_of);
        let grace = |cluster: &str| kind(cluster).map_or(DISPATCHED_GRACE, grace_on);
        let record_expired = self.dispatched.get(uid).map(|(d, at)| at.elapsed() >= grace(&d.remote.cluster));
        let on_slurm = view::placed_on(tj).and_then(kind) == Some(MemberKind::Slurm);
        changes_untouched(tj, record_expired, self.backoffs.contains_key(uid), on_slurm)
    }

    /// A job's failed dispatches in a row and when the next is due.
    pub fn backoff(&self, tj: &TrainingJob) -> Backoff {
        backoff_of(self.backoffs.get(view::uid(tj)), tj)
    }

    /// What the job's member says of it.
    pub fn member_state(&self, tj: &TrainingJob, members: &Members) -> MemberState {
        let Some(m) = view::placed_on(tj).and_then(|c| members.get(c)) else { return MemberState::NotConnected };
        let (reachable, error) = m.reachable(self.member_timeout);
        if !reachable {
            let error = format!("for over {:?}: {}", self.member_timeout, error.unwrap_or_else(|| "no answer".into()));
            return if m.credentials_rejected() {
                MemberState::CredentialsRejected(error)
            } else {
                MemberState::Lost(error)
            };
        }
        if !m.ever_reached() {
            return MemberState::NotReachedYet;
        }
        MemberState::Reachable { kind: kind_of(m), remote: m.remote_status(tj) }
    }

    /// What to look at this pass ([`Looks`]): `touched` is what the hub's watch touched.
    fn touches(&mut self, mut touched: Touches, members: &Members, known: &BTreeSet<String>) -> Touches {
        members.values().for_each(|m| touched.merge(m.take_touched()));
        let seen = members.iter().map(|(name, m)| MemberLook::of(name, m, self.member_timeout)).collect();
        self.looks.next(touched, (seen, known.clone()), Instant::now())
    }

    /// Reconciles the jobs without work in flight that a change touched (or every one, see
    /// [`Self::touches`]); returns the mirror writes, for the caller to start after the
    /// pass's admissions (which matter more).
    #[allow(clippy::too_many_arguments)]
    pub fn reconcile(
        &mut self,
        overlay: &mut Overlay,
        jobs: &[Arc<TrainingJob>],
        touched: Touches,
        members: &Members,
        known: &BTreeSet<String>,
        raw_accelerators: &RawAccelerators,
        now: Timestamp,
    ) -> Vec<(Arc<TrainingJob>, Transition)> {
        let touched = self.touches(touched, members, known);
        let mut mirrors = Vec::new();
        for tj in jobs {
            let uid = view::uid(tj);
            if overlay.busy(uid) {
                continue;
            }
            if !touched.contains(uid) && !self.changes_untouched(tj, members) {
                continue;
            }
            let state = self.member_state(tj, members);
            let record = self.dispatched.get(uid).map(|(d, at)| (d, at.elapsed() < dispatched_grace(&state)));
            let backoff_due = self.backoff(tj).due(epoch_ms(now));
            let member = view::placed_on(tj).and_then(|c| members.get(c)).cloned();
            let earlier = if may_have_earlier(tj) { self.earlier(tj, members, known) } else { Earlier::Gone };
            match next_step(tj, &state, record, backoff_due, &earlier, now) {
                Step::Wait | Step::BackingOff => {}
                Step::CleanUp { release } => {
                    overlay.start(tj.clone(), work::clean_up(self.client.clone(), tj.clone(), member, release));
                }
                Step::Suspend { stop, transition } => {
                    let member = if stop { member } else { None };
                    let expected = work::with_status(tj, &transition.status);
                    overlay.start(expected, work::stop_then_write(self.client.clone(), tj.clone(), member, transition));
                }
                // Back to the queue at once, so the scheduling step sees it as it will be.
                Step::Resume(t) | Step::Requeue(t) => {
                    let expected = work::with_status(tj, &t.status);
                    overlay.start(expected, work::write_status(self.client.clone(), tj.clone(), t));
                }
                Step::Mirror(t) => mirrors.push((tj.clone(), t)),
                Step::StopEarlier { member, leftover } => {
                    if let Some(m) = members.get(&member).cloned() {
                        tracing::info!(job = %view::job_name(tj), %member, what = %leftover.what, "stopping an earlier attempt before the new one starts");
                        overlay.start(tj.clone(), work::stop_earlier(tj.clone(), m, leftover));
                    }
                }
                Step::Dispatch => {
                    let target = self.target(tj, members, raw_accelerators);
                    overlay.start(tj.clone(), work::admit_and_dispatch(self.client.clone(), tj.clone(), None, target));
                }
            }
        }
        mirrors
    }

    /// What is left of the job's earlier attempts: on every connected member its attempts
    /// ran on (and its current one), as their caches show. The member of its last attempt
    /// must be readable; one lost past the member timeout counts as gone (as for a running
    /// job on a lost member; unless the job asked to wait), and what it left there is
    /// removed as orphans when it comes back.
    pub fn earlier(&self, tj: &TrainingJob, members: &Members, known: &BTreeSet<String>) -> Earlier {
        let status = view::status(tj);
        let last = status.attempts.last().map(|a| a.cluster.clone());
        let mut candidates: BTreeSet<String> = status.attempts.iter().map(|a| a.cluster.clone()).collect();
        candidates.extend(view::placed_on(tj).map(str::to_string));
        let mut found = Earlier::Gone;
        for c in candidates {
            let is_last = last.as_deref() == Some(c.as_str());
            let unknown = || Earlier::Unknown { member: c.clone() };
            let Some(m) = members.get(&c) else {
                if is_last && known.contains(&c) {
                    found = unknown();
                }
                continue;
            };
            if !m.reachable(self.member_timeout).0 {
                if is_last && tj.spec.on_member_loss == MemberLossPolicy::Wait {
                    found = unknown();
                }
                continue;
            }
            if !m.ever_reached() || !m.caches_ready() {
                if is_last {
                    found = unknown();
                }
                continue;
            }
            if let Some(leftover) = m.leftover(tj) {
                let stop = leftover.stop_due;
                found = Earlier::Left { member: c.clone(), leftover };
                if stop {
                    return found;
                }
            }
        }
        found
    }

    /// Where an admitted job is dispatched, when its member is connected.
    pub fn target(&self, tj: &TrainingJob, members: &Members, raw_accelerators: &RawAccelerators) -> Option<Target> {
        let placement = tj.status.as_ref()?.placement.clone()?;
        let member = members.get(&placement.cluster)?.clone();
        let raw_accelerator = placement.accelerator.as_ref().map(|a| {
            raw_accelerators.get(&placement.cluster).and_then(|m| m.get(a)).cloned().unwrap_or_else(|| a.clone())
        });
        Some(Target {
            member,
            placement,
            raw_accelerator,
            backoff: self.backoff(tj),
            policy: self.policy,
            key: self.key.clone(),
            source: self.sources.as_ref().and_then(|(s, catalogue)| s.target_source(tj, catalogue)),
        })
    }

    /// Deletes member objects that no TrainingJob accounts for (left by a member loss, a
    /// crash or a deletion the hub finished without us); at most every
    /// [`ORPHAN_SWEEP_EVERY`].
    pub async fn clean_orphans(&mut self, jobs: &[Arc<TrainingJob>], members: &Members, now: Timestamp) {
        if self.swept.is_some_and(|at| at.elapsed() < ORPHAN_SWEEP_EVERY) {
            return;
        }
        self.swept = Some(Instant::now());
        let index = HubIndex::new(jobs, view::unix(now));
        for (name, m) in members {
            if !m.reachable(self.member_timeout).0 || !m.ever_reached() {
                continue;
            }
            let slurm = matches!(m, Member::Slurm(_));
            for (job, verdict) in judge(&m.remote_jobs(), name, slurm, &index) {
                match verdict {
                    Verdict::Orphan => tracing::info!(member = %name, job = %job.key, "deleting orphaned remote job"),
                    Verdict::Duplicate { kept } => tracing::warn!(
                        member = %name, attempt = %job.key, kept, cancelled = ?job.id,
                        "two batch jobs for one attempt: cancelling the second"
                    ),
                }
                if let Err(e) = m.cancel_remote(&job).await {
                    tracing::debug!(member = %name, job = %job.key, error = %e, "cleanup on the member; retrying");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use computenet_api::conditions::{types, EventReason};
    use computenet_api::training_job::{PlacementStatus, RemoteReference, TrainingJobSpec, TrainingJobStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    fn job(status: Option<TrainingJobStatus>) -> TrainingJob {
        let spec: TrainingJobSpec = serde_json::from_value(serde_json::json!({
            "queueName": "q", "replicas": 2,
            "resources": {"cpu": "4", "memory": "16Gi", "accelerators": {"count": 8}},
            "workload": {"image": "x", "command": ["true"]}
        }))
        .unwrap();
        let mut tj = TrainingJob::new("j", spec);
        tj.metadata.uid = Some("uid-1".into());
        tj.metadata.namespace = Some("team-a".into());
        tj.metadata.generation = Some(1);
        tj.metadata.finalizers = Some(vec![computenet_members::labels::FINALIZER.into()]);
        tj.status = status;
        tj
    }

    fn admitted(phase: TrainingJobPhase, remote: bool) -> TrainingJob {
        job(Some(TrainingJobStatus {
            phase: Some(phase),
            admitted: Some(true),
            placement: Some(PlacementStatus { cluster: "ai-1".into(), gpus: 16, ..Default::default() }),
            remote: remote.then(|| RemoteReference { cluster: "ai-1".into(), kind: "Job".into(), name: "cn-x".into() }),
            start_time: Some(Time(t(100))),
            ..Default::default()
        }))
    }

    fn reachable(phase: Option<TrainingJobPhase>) -> MemberState {
        MemberState::Reachable {
            kind: MemberKind::Kubernetes,
            remote: phase.map(|phase| RemoteStatus { phase, failure: None, exit_code: None, nodes: None }),
        }
    }

    #[test]
    fn only_time_or_unwatched_state_changes_an_untouched_job() {
        let running = admitted(TrainingJobPhase::Running, true);
        assert!(!changes_untouched(&running, None, false, false), "a running job waits for a touch");
        assert!(!changes_untouched(&running, Some(false), false, false), "a fresh dispatch record too");
        assert!(changes_untouched(&running, Some(true), false, false), "a record past its grace is written");
        assert!(changes_untouched(&running, None, true, false), "a backoff runs out with time");
        assert!(changes_untouched(&running, None, false, true), "a Slurm member's jobs are polled, not watched");
        let mut retrying = admitted(TrainingJobPhase::Admitted, false);
        retrying.status.as_mut().unwrap().retry =
            Some(computenet_api::training_job::RetryStatus { attempts: 2, next_attempt_time: Time(t(300)) });
        assert!(changes_untouched(&retrying, None, false, false), "a backoff restored from the status");
        let mut deleting = admitted(TrainingJobPhase::Running, true);
        deleting.metadata.deletion_timestamp = Some(Time(t(200)));
        assert!(changes_untouched(&deleting, None, false, false), "a deletion's release comes with time");
        let mut moved = admitted(TrainingJobPhase::Admitted, false);
        moved.status.as_mut().unwrap().attempt = Some(2);
        assert!(changes_untouched(&moved, None, false, false), "an earlier attempt elsewhere is not watched here");
    }

    fn record() -> DispatchRecord {
        DispatchRecord {
            remote: RemoteReference { cluster: "ai-1".into(), kind: "Job".into(), name: "cn-x".into() },
            time: t(150),
        }
    }

    #[test]
    fn a_dispatch_goes_unrecorded_longer_on_kubernetes_than_on_slurm() {
        let on = |kind| MemberState::Reachable { kind, remote: None };
        assert_eq!(dispatched_grace(&on(MemberKind::Kubernetes)), DISPATCHED_GRACE);
        assert_eq!(dispatched_grace(&on(MemberKind::Slurm)), SLURM_DISPATCHED_GRACE);
        assert!(SLURM_DISPATCHED_GRACE < DISPATCHED_GRACE, "a Slurm submission is recorded sooner");
        assert_eq!(dispatched_grace(&MemberState::NotConnected), DISPATCHED_GRACE);
    }

    #[test]
    fn an_admitted_job_without_objects_is_dispatched_unless_backing_off() {
        let tj = admitted(TrainingJobPhase::Admitted, false);
        assert_eq!(next_step(&tj, &reachable(None), None, true, &Earlier::Gone, t(200)), Step::Dispatch);
        assert_eq!(next_step(&tj, &reachable(None), None, false, &Earlier::Gone, t(200)), Step::BackingOff);
        // Not while the member is connecting or never answered.
        assert_eq!(next_step(&tj, &MemberState::NotConnected, None, true, &Earlier::Gone, t(200)), Step::Wait);
        assert_eq!(next_step(&tj, &MemberState::NotReachedYet, None, true, &Earlier::Gone, t(200)), Step::Wait);
    }

    #[test]
    fn a_new_attempt_starts_only_once_the_earlier_one_is_gone() {
        let tj = admitted(TrainingJobPhase::Admitted, false);
        let leftover = |stop_due| Leftover { what: "Job cn-x of an earlier attempt".into(), stop_due, job_uid: None };
        let left = |stop_due| Earlier::Left { member: "ai-3".into(), leftover: leftover(stop_due) };
        assert_eq!(
            next_step(&tj, &reachable(None), None, true, &left(true), t(200)),
            Step::StopEarlier { member: "ai-3".into(), leftover: leftover(true) },
            "still running: stop it first"
        );
        assert_eq!(next_step(&tj, &reachable(None), None, true, &left(false), t(200)), Step::Wait, "stopping: wait");
        let unknown = Earlier::Unknown { member: "ai-3".into() };
        assert_eq!(next_step(&tj, &reachable(None), None, true, &unknown, t(200)), Step::Wait, "cannot tell: wait");
        assert_eq!(next_step(&tj, &reachable(None), None, true, &Earlier::Gone, t(200)), Step::Dispatch);
        assert_eq!(next_step(&tj, &reachable(None), None, false, &Earlier::Gone, t(200)), Step::BackingOff);
        // The current attempt's own objects are mirrored whatever is left elsewhere.
        let running = admitted(TrainingJobPhase::Running, true);
        assert_eq!(
            next_step(&running, &reachable(Some(TrainingJobPhase::Running)), None, true, &left(true), t(200)),
            Step::Wait
        );
    }

    #[test]
    fn only_a_job_that_ran_before_is_checked_for_earlier_attempts() {
        let mut tj = admitted(TrainingJobPhase::Admitted, false);
        assert!(!may_have_earlier(&tj), "a first admission");
        tj.status.as_mut().unwrap().attempt = Some(2);
        assert!(may_have_earlier(&tj), "a second attempt");
        tj.status.as_mut().unwrap().remote = Some(RemoteReference::default());
        assert!(!may_have_earlier(&tj), "dispatched already");
    }

    #[test]
    fn a_stopping_attempt_is_no_orphan_during_its_grace_period() {
        let mut tj = admitted(TrainingJobPhase::Preempted, false);
        tj.spec.checkpoint = Some(computenet_api::training_job::CheckpointSpec {
            restartable: true,
            grace_period_seconds: 60,
            ..Default::default()
        });
        let s = tj.status.as_mut().unwrap();
        s.admitted = Some(false);
        s.attempts = vec![computenet_api::training_job::AttemptStatus {
            attempt: 1,
            cluster: "ai-1".into(),
            end_time: Some(Time(t(1_000))),
            reason: "Preempted".into(),
            ..Default::default()
        }];
        let jobs = [Arc::new(tj)];
        let old = remote("uid-1", "uid-1", 600, false);
        assert!(!is_orphan(&old, "ai-1", false, &HubIndex::new(&jobs, 1_000 + 60 + 29)), "within grace + 30 s");
        assert!(is_orphan(&old, "ai-1", false, &HubIndex::new(&jobs, 1_000 + 60 + 31)), "past it: cleaned up");
    }

    #[test]
    fn the_first_state_after_dispatch_is_written_with_the_dispatch() {
        let tj = admitted(TrainingJobPhase::Admitted, false);
        let r = record();
        // Just created and not started: wait for Running instead of writing Dispatched.
        assert_eq!(
            next_step(
                &tj,
                &reachable(Some(TrainingJobPhase::Dispatched)),
                Some((&r, true)),
                true,
                &Earlier::Gone,
                t(200)
            ),
            Step::Wait
        );
        let Step::Mirror(m) =
            next_step(&tj, &reachable(Some(TrainingJobPhase::Running)), Some((&r, true)), true, &Earlier::Gone, t(200))
        else {
            panic!("expected a mirror write")
        };
        assert_eq!(m.status.phase, Some(TrainingJobPhase::Running));
        assert_eq!(m.status.remote, Some(r.remote.clone()));
        assert_eq!(m.status.dispatch_time, Some(Time(t(150))));
        assert!(computenet_api::conditions::is_true(&m.status.conditions, types::RUNNING));
        assert!(computenet_api::conditions::is_true(&m.status.conditions, types::DISPATCHED));
        assert_eq!(m.event, None, "no Event for Running: the Dispatched one named the member");
        // Objects found but no record (a restart between dispatch and its record): dispatch
        // again, which finds them and learns what to record.
        assert_eq!(
            next_step(&tj, &reachable(Some(TrainingJobPhase::Running)), None, true, &Earlier::Gone, t(200)),
            Step::Dispatch
        );
        // Just dispatched but not in the member's cache yet: wait for it, not dispatch again;
        // still not there once the record is stale (deleted on the member?): dispatch again.
        assert_eq!(next_step(&tj, &reachable(None), Some((&r, true)), true, &Earlier::Gone, t(200)), Step::Wait);
        assert_eq!(next_step(&tj, &reachable(None), Some((&r, false)), true, &Earlier::Gone, t(200)), Step::Dispatch);
    }

    #[test]
    fn mirror_transitions_to_the_end_and_nothing_when_unchanged() {
        let running = admitted(TrainingJobPhase::Running, true);
        assert_eq!(
            next_step(&running, &reachable(Some(TrainingJobPhase::Running)), None, true, &Earlier::Gone, t(300)),
            Step::Wait
        );
        let Step::Mirror(done) =
            next_step(&running, &reachable(Some(TrainingJobPhase::Succeeded)), None, true, &Earlier::Gone, t(300))
        else {
            panic!("expected a mirror write")
        };
        assert_eq!(done.status.phase, Some(TrainingJobPhase::Succeeded));
        assert_eq!(done.status.completion_time, Some(Time(t(300))));
        let failed = MemberState::Reachable {
            kind: MemberKind::Slurm,
            remote: Some(RemoteStatus {
                phase: TrainingJobPhase::Failed,
                failure: Some(("NonZeroExitCode".into(), "exit 3".into())),
                exit_code: Some(3),
                nodes: Some(vec!["n1".into(), "n2".into()]),
            }),
        };
        let Step::Mirror(f) = next_step(&running, &failed, None, true, &Earlier::Gone, t(300)) else {
            panic!("expected a mirror write")
        };
        assert_eq!((f.status.phase, f.status.exit_code), (Some(TrainingJobPhase::Failed), Some(3)));
        let finished = computenet_api::conditions::find(&f.status.conditions, types::FINISHED).unwrap();
        assert_eq!((finished.status.as_str(), finished.reason.as_str()), ("False", "NonZeroExitCode"));
        assert_eq!(f.status.placement.unwrap().nodes.len(), 2, "Slurm's own nodes are recorded");
        // A finished job is left alone.
        let done_job = job(Some(done.status));
        assert_eq!(next_step(&done_job, &reachable(None), None, true, &Earlier::Gone, t(400)), Step::Wait);
    }

    #[test]
    fn what_a_hostile_member_reports_is_bounded_before_it_reaches_the_status() {
        let running = admitted(TrainingJobPhase::Running, true);
        let replicas = usize::try_from(running.spec.replicas).unwrap();
        let hostile = MemberState::Reachable {
            kind: MemberKind::Slurm,
            remote: Some(RemoteStatus {
                phase: TrainingJobPhase::Failed,
                failure: Some(("not a reason: <script>".repeat(100), "x".repeat(4 << 20))),
                exit_code: Some(1),
                nodes: Some((0..100_000).map(|i| format!("n{i}{}", "y".repeat(300))).collect()),
            }),
        };
        let Step::Mirror(f) = next_step(&running, &hostile, None, true, &Earlier::Gone, t(300)) else {
            panic!("expected a mirror write")
        };
        let finished = computenet_api::conditions::find(&f.status.conditions, types::FINISHED).unwrap();
        assert!(finished.reason.chars().all(|c| c.is_ascii_alphanumeric() || "_,:".contains(c)));
        assert!(finished.reason.len() <= computenet_api::conditions::MAX_REASON_CHARS);
        assert!(finished.message.len() <= computenet_api::conditions::MAX_MESSAGE_BYTES);
        let nodes = f.status.placement.unwrap().nodes;
        assert_eq!(nodes.len(), replicas, "one node per replica at most");
        assert!(nodes.iter().all(|n| n.node.len() <= 253));
    }

    #[test]
    fn a_slurm_job_that_slurm_forgot_fails_instead_of_running_twice() {
        let tj = admitted(TrainingJobPhase::Running, true);
        let forgot = MemberState::Reachable { kind: MemberKind::Slurm, remote: None };
        let Step::Mirror(m) = next_step(&tj, &forgot, None, true, &Earlier::Gone, t(300)) else {
            panic!("expected a mirror write")
        };
        assert_eq!(m.status.phase, Some(TrainingJobPhase::Failed));
        let finished = computenet_api::conditions::find(&m.status.conditions, types::FINISHED).unwrap();
        assert_eq!(finished.reason, reasons::REMOTE_JOB_LOST);
    }

    #[test]
    fn member_loss_requeues_unless_a_running_job_waits() {
        let lost = MemberState::Lost("for over 30s: connection refused".into());
        let admitted_only = admitted(TrainingJobPhase::Admitted, false);
        let Step::Requeue(r) = next_step(&admitted_only, &lost, None, true, &Earlier::Gone, t(300)) else {
            panic!("expected a requeue")
        };
        assert_eq!(
            (r.status.phase, r.status.admitted, r.status.requeues),
            (Some(TrainingJobPhase::Queued), Some(false), Some(1))
        );
        assert_eq!(r.event.as_ref().map(|e| e.0), Some(EventReason::MemberLost));
        let mut waiting = admitted(TrainingJobPhase::Running, true);
        waiting.spec.on_member_loss = MemberLossPolicy::Wait;
        assert_eq!(next_step(&waiting, &lost, None, true, &Earlier::Gone, t(300)), Step::Wait);
        let requeue_running = admitted(TrainingJobPhase::Running, true);
        assert!(matches!(next_step(&requeue_running, &lost, None, true, &Earlier::Gone, t(300)), Step::Requeue(_)));
    }

    #[test]
    fn a_refused_dispatch_ends_the_job_and_frees_what_it_held() {
        let tj = admitted(TrainingJobPhase::Admitted, false);
        assert_eq!(view::accelerators_held(&tj), 16);
        let long = format!("member ai-1: dispatch: denied request: {}", "x".repeat(5000));
        let rejected = transitions::dispatch_rejected(&tj, &view::status(&tj), &long, t(200));
        assert_eq!((rejected.status.phase, rejected.status.admitted), (Some(TrainingJobPhase::Failed), Some(false)));
        for type_ in [types::DISPATCHED, types::FINISHED] {
            let c = computenet_api::conditions::find(&rejected.status.conditions, type_).unwrap();
            assert_eq!((c.status.as_str(), c.reason.as_str()), ("False", reasons::DISPATCH_REJECTED));
            assert!(c.message.starts_with("member ai-1: dispatch: denied request") && c.message.len() <= 1024);
        }
        assert_eq!(rejected.event.as_ref().map(|e| e.0), Some(EventReason::DispatchRejected));
        let failed = job(Some(rejected.status));
        assert!(view::is_finished(&failed) && view::accelerators_held(&failed) == 0, "capacity and quota are free");
        assert_eq!(
            next_step(&failed, &reachable(None), None, true, &Earlier::Gone, t(201)),
            Step::Wait,
            "never dispatched again"
        );
    }

    #[test]
    fn a_member_refusing_the_credentials_keeps_its_dispatched_jobs() {
        let refused = MemberState::CredentialsRejected("for over 30s: HTTP 401: Unauthorized".into());
        let running = admitted(TrainingJobPhase::Running, true);
        assert_eq!(
            next_step(&running, &refused, None, true, &Earlier::Gone, t(300)),
            Step::Wait,
            "recorded on the member"
        );
        let unrecorded = admitted(TrainingJobPhase::Admitted, false);
        let r = record();
        assert_eq!(
            next_step(&unrecorded, &refused, Some((&r, false)), true, &Earlier::Gone, t(300)),
            Step::Wait,
            "dispatched here"
        );
        // Nothing was created for it: back to its queue as for a lost member.
        let Step::Requeue(q) = next_step(&unrecorded, &refused, None, true, &Earlier::Gone, t(300)) else {
            panic!("expected a requeue")
        };
        assert_eq!(q.event.map(|e| e.0), Some(EventReason::MemberLost));
    }

    #[test]
    fn suspend_stops_admitted_jobs_and_resume_queues_them() {
        let mut tj = admitted(TrainingJobPhase::Running, true);
        tj.spec.suspend = true;
        let Step::Suspend { stop, transition } =
            next_step(&tj, &reachable(Some(TrainingJobPhase::Running)), None, true, &Earlier::Gone, t(300))
        else {
            panic!("expected a suspension")
        };
        assert!(stop, "an admitted job is stopped on its member");
        assert_eq!(
            (transition.status.phase, transition.status.admitted),
            (Some(TrainingJobPhase::Suspended), Some(false))
        );
        let mut queued = job(None);
        queued.spec.suspend = true;
        assert!(matches!(
            next_step(&queued, &MemberState::NotConnected, None, true, &Earlier::Gone, t(300)),
            Step::Suspend { stop: false, .. }
        ));
        // Already suspended: nothing; suspend cleared: resumed.
        let mut suspended = job(Some(transition.status));
        suspended.spec.suspend = true;
        assert_eq!(next_step(&suspended, &MemberState::NotConnected, None, true, &Earlier::Gone, t(301)), Step::Wait);
        suspended.spec.suspend = false;
        let Step::Resume(r) = next_step(&suspended, &MemberState::NotConnected, None, true, &Earlier::Gone, t(302))
        else {
            panic!("expected a resumption")
        };
        assert_eq!((r.status.phase, r.status.admitted), (Some(TrainingJobPhase::Queued), Some(false)));
    }

    #[test]
    fn deleted_jobs_are_cleaned_up_while_they_hold_the_finalizer() {
        let mut tj = admitted(TrainingJobPhase::Running, true);
        tj.metadata.deletion_timestamp = Some(Time(t(500)));
        let step = |tj: &TrainingJob, at| {
            next_step(tj, &reachable(Some(TrainingJobPhase::Running)), None, true, &Earlier::Gone, t(at))
        };
        // Its running attempt is not in the usage store yet: the finalizer waits for it, at
        // most the metering grace.
        tj.status.as_mut().expect("status").attempt = Some(1);
        assert_eq!(step(&tj, 501), Step::CleanUp { release: false });
        assert_eq!(step(&tj, 500 + crate::metering::DELETION_GRACE.as_secs() as i64), Step::CleanUp { release: true });
        tj.status.as_mut().expect("status").metered_through = Some(1);
        assert_eq!(step(&tj, 501), Step::CleanUp { release: true });
        tj.metadata.finalizers = None;
        assert_eq!(
            next_step(&tj, &reachable(Some(TrainingJobPhase::Running)), None, true, &Earlier::Gone, t(501)),
            Step::Wait
        );
    }

    #[test]
    fn backoff_is_restored_from_status_after_a_restart() {
        let mut tj = admitted(TrainingJobPhase::Admitted, false);
        if let Some(s) = tj.status.as_mut() {
            s.retry =
                Some(computenet_api::training_job::RetryStatus { attempts: 4, next_attempt_time: Time(t(1_000)) });
        }
        let b = backoff_of(None, &tj);
        assert_eq!(b.failures, 4);
        assert!(!b.due(999_999) && b.due(1_000_000));
        let mine = Backoff { failures: 1, next_attempt_ms: 5 };
        assert_eq!(backoff_of(Some(&mine), &tj), mine, "this process's own record wins");
    }

    fn remote(uid: &str, key: &str, age: i64, finished: bool) -> RemoteJob {
        RemoteJob {
            copy: None,
            uid: uid.into(),
            key: key.into(),
            id: None,
            age_s: Some(age),
            finished,
            namespace: None,
            hub_namespace: None,
            user: None,
        }
    }

    fn batch(uid: &str, key: &str, id: u64, finished: bool) -> RemoteJob {
        RemoteJob { id: Some(id), ..remote(uid, key, 5, finished) }
    }

    #[test]
    fn an_attempt_never_keeps_two_batch_jobs() {
        let mut tj = admitted(TrainingJobPhase::Running, true);
        if let Some(s) = tj.status.as_mut() {
            s.attempt = Some(2);
        }
        let key = computenet_members::slurm::batch::key(&tj);
        let index = HubIndex::new(&[Arc::new(tj.clone())], 0);
        let two = [batch("uid-1", &key, 12, false), batch("uid-1", &key, 11, false)];
        assert_eq!(
            judge(&two, "ai-1", true, &index),
            [(two[0].clone(), Verdict::Duplicate { kept: 11 })],
            "the first submitted is kept while the status records none"
        );
        if let Some(s) = tj.status.as_mut() {
            s.remote = Some(computenet_api::training_job::RemoteReference {
                cluster: "ai-1".into(),
                kind: "SlurmJob".into(),
                name: "12".into(),
            });
        }
        let index = HubIndex::new(&[Arc::new(tj)], 0);
        assert_eq!(
            judge(&two, "ai-1", true, &index),
            [(two[1].clone(), Verdict::Duplicate { kept: 12 })],
            "the one the status records is kept"
        );
        let one_done = [batch("uid-1", &key, 12, false), batch("uid-1", &key, 11, true)];
        assert!(judge(&one_done, "ai-1", true, &index).is_empty(), "a finished one holds nothing");
        let earlier =
            [batch("uid-1", &key, 12, false), RemoteJob { age_s: Some(60), ..batch("uid-1", "uid-1.1", 3, false) }];
        assert_eq!(judge(&earlier, "ai-1", true, &index), [(earlier[1].clone(), Verdict::Orphan)]);
    }

    #[test]
    fn a_batch_job_claiming_a_job_of_another_namespace_is_left_alone() {
        let tj = admitted(TrainingJobPhase::Running, true);
        let key = computenet_members::slurm::batch::key(&tj);
        let index = HubIndex::new(&[Arc::new(tj)], 0);
        let real = RemoteJob { hub_namespace: Some("team-a".into()), ..batch("uid-1", &key, 11, false) };
        // Another tenant's user wrote a comment naming uid-1 under its own namespace.
        let forged = RemoteJob {
            hub_namespace: Some("team-b".into()),
            user: Some("bob".into()),
            ..batch("uid-1", &key, 12, false)
        };
        assert!(claims_another_namespace(&forged, &index) && !claims_another_namespace(&real, &index));
        assert!(
            judge(&[real.clone(), forged.clone()], "ai-1", true, &index).is_empty(),
            "neither a duplicate nor an orphan"
        );
        let old_forged = RemoteJob { age_s: Some(600), key: "uid-1.0".into(), ..forged };
        assert!(judge(&[old_forged], "ai-1", true, &index).is_empty(), "not cancelled as an earlier attempt either");
        let gone = RemoteJob {
            hub_namespace: Some("team-b".into()),
            age_s: Some(600),
            ..batch("uid-gone", "uid-gone.1", 13, false)
        };
        assert_eq!(
            judge(std::slice::from_ref(&gone), "ai-1", true, &index),
            [(gone, Verdict::Orphan)],
            "its own namespace's orphan"
        );
    }

    #[test]
    fn orphans_are_old_objects_no_job_accounts_for() {
        let here = Arc::new(admitted(TrainingJobPhase::Running, true));
        let key = computenet_members::slurm::batch::key(&here);
        let index = HubIndex::new(&[here], 0);
        assert!(!is_orphan(&remote("uid-1", "uid-1", 60, false), "ai-1", false, &index), "its job is admitted here");
        assert!(is_orphan(&remote("uid-1", "uid-1", 60, false), "ai-3", false, &index), "admitted elsewhere");
        assert!(is_orphan(&remote("uid-gone", "uid-gone", 60, false), "ai-1", false, &index), "no such job");
        assert!(!is_orphan(&remote("uid-gone", "uid-gone", 10, false), "ai-1", false, &index), "too recent to judge");
        assert!(!is_orphan(&remote("uid-1", &key, 60, false), "ai-1", true, &index), "current Slurm attempt");
        assert!(is_orphan(&remote("uid-1", "uid-1/0-old", 60, false), "ai-1", true, &index), "an earlier attempt");
        assert!(
            !is_orphan(&remote("uid-gone", "x", 60, true), "ai-1", true, &index),
            "finished batch jobs hold nothing"
        );
    }
}

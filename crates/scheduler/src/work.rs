//! Work in flight: the API calls that carry out a decision for one job run in the
//! background, so a burst of submissions, a slow member or a slow write never holds up the
//! next pass, and each job goes on as soon as its own calls return.
//!
//! At most one piece of work per job is in flight ([`InFlight`]). The order inside one
//! piece of work keeps restarts safe: a job's admission is written before anything is
//! created for it on a member, so a crash in between never runs it twice.

use crate::backoff::{epoch_ms, Backoff, BackoffPolicy};
use crate::lease::{self, Fence};
use crate::seal::{self, AdmissionKey};
use crate::sources::SourceCheck;
use crate::status;
use crate::transitions::{self, DispatchRecord, Transition};
use computenet_api::conditions::EventReason;
use computenet_api::training_job::{PlacementStatus, RemoteReference, TrainingJobStatus};
use computenet_api::TrainingJob;
use computenet_members::error::Retry;
use computenet_members::Member;
use foldhash::HashMap;
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Notify, Semaphore};

/// A dispatch that failed, for the backoff and the metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct DispatchFailure {
    pub cluster: String,
    /// Failures in a row, this one included, and when the next attempt is due.
    pub backoff: Backoff,
    /// Whether retrying can help (the metric's class; a credentials refusal has the
    /// member's Secret re-read).
    pub retry: Retry,
}

/// What a piece of work did, reported back to the loop.
#[derive(Debug)]
pub struct Landed {
    pub uid: String,
    /// The job as handed to the work.
    pub job: Arc<TrainingJob>,
    /// The job as stored by the work's last successful write, if any.
    pub stored: Option<Arc<TrainingJob>>,
    /// Events to record (only for writes that were stored).
    pub events: Vec<(EventReason, String)>,
    /// The admission was written: (queue, member), for the metrics.
    pub admitted: Option<(String, String)>,
    pub dispatch_failed: Option<DispatchFailure>,
    /// The job's objects were created on its member (recorded in the status by the next
    /// mirror, together with the phase the member reports).
    pub dispatched: Option<DispatchRecord>,
    /// The admission was refused because the job changed since the decision.
    pub admission_conflict: bool,
}

impl Landed {
    fn new(job: Arc<TrainingJob>) -> Self {
        Landed {
            uid: job.metadata.uid.clone().unwrap_or_default(),
            job,
            stored: None,
            events: Vec::new(),
            admitted: None,
            dispatch_failed: None,
            dispatched: None,
            admission_conflict: false,
        }
    }

    /// The newest known state of the job.
    fn latest(&self) -> Arc<TrainingJob> {
        self.stored.clone().unwrap_or_else(|| self.job.clone())
    }

    /// Writes the job's status and keeps what was stored; false (logged) when it failed.
    async fn write(&mut self, client: &Client, tj: &TrainingJob, status: &TrainingJobStatus) -> bool {
        match status::training_job(client, tj, status).await {
            Ok(stored) => {
                self.store(stored);
                true
            }
            // A deposed leader's writes are refused by design: not worth a warning each.
            Err(e @ crate::Error::Fenced) => {
                tracing::debug!(job = ?tj.metadata.name, error = %e, "status write left to the next leader");
                false
            }
            Err(e) => {
                tracing::warn!(job = ?tj.metadata.name, error = %e, "status write failed");
                false
            }
        }
    }

    fn store(&mut self, stored: TrainingJob) {
        let newer = self.stored.as_ref().is_none_or(|s| resource_version(&stored) > resource_version(s));
        if newer {
            self.stored = Some(Arc::new(stored));
        }
    }
}

/// The object's resourceVersion as a number (0 when absent or not numeric).
pub fn resource_version(tj: &TrainingJob) -> u64 {
    tj.metadata.resource_version.as_deref().and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// The jobs with work in flight, and the work's results as they land.
#[derive(Debug)]
pub struct InFlight {
    expected: HashMap<String, Arc<TrainingJob>>,
    permits: Arc<Semaphore>,
    tx: mpsc::UnboundedSender<Landed>,
    rx: mpsc::UnboundedReceiver<Landed>,
    changed: Arc<Notify>,
    fence: Fence,
}

impl InFlight {
    /// At most `concurrency` pieces of work run at once (the rest wait, first come first
    /// served); each one that lands notifies `changed`. All of it runs under `fence`.
    pub fn new(concurrency: usize, changed: Arc<Notify>, fence: Fence) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let permits = Arc::new(Semaphore::new(concurrency.max(1)));
        InFlight { expected: HashMap::default(), permits, tx, rx, changed, fence }
    }

    /// The job as its work in flight will leave it.
    pub fn expected(&self, uid: &str) -> Option<&Arc<TrainingJob>> {
        self.expected.get(uid)
    }

    pub fn contains(&self, uid: &str) -> bool {
        self.expected.contains_key(uid)
    }

    /// How many jobs have work in flight.
    pub fn count(&self) -> usize {
        self.expected.len()
    }

    /// Starts `work` for a job, which is seen as `expected` until it lands. Returns false
    /// (and drops the work) when the job has work in flight already. The work runs under
    /// the leader's fence: its writes check it, and it is cancelled when the fence passes
    /// (the lease is lost or released); cancelled work never lands, and the process stops.
    pub fn start(&mut self, expected: Arc<TrainingJob>, work: impl Future<Output = Landed> + Send + 'static) -> bool {
        let uid = expected.metadata.uid.clone().unwrap_or_default();
        if self.expected.contains_key(&uid) {
            return false;
        }
        self.expected.insert(uid, expected);
        let (permits, tx, changed) = (self.permits.clone(), self.tx.clone(), self.changed.clone());
        let guarded = self.fence.clone().guard(async move {
            // The semaphore is never closed; without a permit the work still runs.
            let _permit = permits.acquire_owned().await.ok();
            work.await
        });
        tokio::spawn(async move {
            if let Some(landed) = guarded.await {
                let _ = tx.send(landed);
                changed.notify_one();
            }
        });
        true
    }

    /// The work that has landed since the last call; those jobs are free again.
    pub fn landed(&mut self) -> Vec<Landed> {
        let mut out = Vec::new();
        while let Ok(landed) = self.rx.try_recv() {
            self.expected.remove(&landed.uid);
            out.push(landed);
        }
        out
    }
}

/// The job with a new status, as a write will leave it.
pub fn with_status(tj: &TrainingJob, status: &TrainingJobStatus) -> Arc<TrainingJob> {
    let mut expected = tj.clone();
    expected.status = Some(status.clone());
    Arc::new(expected)
}

/// Writes a status; its Event is recorded once it is stored.
pub async fn write_status(client: Client, tj: Arc<TrainingJob>, transition: Transition) -> Landed {
    let mut landed = Landed::new(tj.clone());
    if landed.write(&client, &tj, &transition.status).await {
        landed.events.extend(transition.event);
    }
    landed
}

/// Resets an admission the service did not issue: its admission fields are removed, then
/// the reset status is written; the Warning Event is recorded once it is stored.
pub async fn reset_admission(client: Client, tj: Arc<TrainingJob>, transition: Transition) -> Landed {
    let mut landed = Landed::new(tj.clone());
    match status::clear_admission(&client, &tj).await {
        Ok(stored) => landed.store(stored),
        Err(e) => {
            tracing::warn!(job = ?tj.metadata.name, error = %e, "resetting an unissued admission failed; retrying");
            return landed;
        }
    }
    if landed.write(&client, &tj, &transition.status).await {
        landed.events.extend(transition.event);
    }
    landed
}

/// Where an admitted job goes: its member, its placement, the member's own name for the
/// chosen accelerator type (a node label value on Kubernetes, a gres type on Slurm), and
/// the job's backoff (dispatches of it that failed in a row before this one).
#[derive(Clone)]
#[allow(missing_debug_implementations)] // Member holds clients without Debug.
pub struct Target {
    pub member: Member,
    pub placement: PlacementStatus,
    pub raw_accelerator: Option<String>,
    pub backoff: Backoff,
    pub policy: BackoffPolicy,
    /// The service's seal key: nothing is dispatched without its seal.
    pub key: Arc<AdmissionKey>,
    /// For a TrainingJob with `spec.source`: the hub object to copy, or why it may not be.
    pub source: Option<crate::sources::SourceCheck>,
}

/// Admits the job (when `admission` is given) and dispatches it to `target` (when the
/// member is connected). The admission and the finalizer are written first, side by side;
/// only once both are stored is anything created on the member. The admission is guarded
/// by the resourceVersion the decision was made on ([`status::admit`]): when the job
/// changed in between it is refused, nothing is dispatched, and the next pass decides
/// again from the fresh object. What is dispatched is the stored admitted object, whose
/// generation is the decided one.
pub async fn admit_and_dispatch(
    client: Client,
    tj: Arc<TrainingJob>,
    admission: Option<Transition>,
    target: Option<Target>,
) -> Landed {
    let mut landed = Landed::new(tj.clone());
    let needs_finalizer = !status::has_finalizer(&tj);
    let finalizer = async {
        if needs_finalizer {
            Some(status::add_finalizer(&client, &tj).await)
        } else {
            None
        }
    };
    let admit = async {
        match &admission {
            Some(t) => {
                if let Some(delay) = test_admit_delay() {
                    tracing::info!(job = ?tj.metadata.name, generation = ?tj.metadata.generation, "test-only admission delay");
                    tokio::time::sleep(delay).await;
                }
                Some(status::admit(&client, &tj, &t.status).await)
            }
            None => None,
        }
    };
    let (finalizer, mut admit) = futures::join!(finalizer, admit);
    // Our own finalizer write moves the resourceVersion the admission is guarded by: when
    // the object it stored is still the decided one (spec and status), admit on that.
    if let (Some(Err(e)), Some(Ok(with_finalizer)), Some(t)) = (&admit, &finalizer, &admission) {
        if status::is_conflict(e) && status::same_decision_basis(with_finalizer, &tj) {
            admit = Some(status::admit(&client, with_finalizer, &t.status).await);
        }
    }
    let admitting = admission.is_some();
    match admit {
        Some(Ok(stored)) => {
            landed.store(stored);
            if let Some(t) = admission {
                landed.events.extend(t.event);
                let cluster = t.status.placement.map(|p| p.cluster).unwrap_or_default();
                landed.admitted = Some((tj.spec.queue_name.clone(), cluster));
            }
        }
        Some(Err(e)) if status::is_conflict(&e) => {
            tracing::debug!(job = ?tj.metadata.name, "admission refused: the job changed since the decision; deciding again");
            landed.admission_conflict = true;
            return landed;
        }
        Some(Err(e @ crate::Error::Fenced)) => {
            tracing::debug!(job = ?tj.metadata.name, error = %e, "admission left to the next leader");
            return landed;
        }
        Some(Err(e)) => {
            tracing::warn!(job = ?tj.metadata.name, error = %e, "admission write failed");
            return landed;
        }
        None => {}
    }
    match finalizer {
        Some(Ok(stored)) => landed.store(stored),
        Some(Err(e)) => {
            // Without the finalizer a deletion could leave the remote job behind: retry next pass.
            tracing::warn!(job = ?tj.metadata.name, error = %e, "adding the finalizer failed; dispatch waits");
            return landed;
        }
        None => {}
    }
    // Only the decided spec is dispatched (the precondition makes this hold; it is
    // checked here so a change to it can never dispatch an undecided spec).
    if admitting && landed.latest().metadata.generation != tj.metadata.generation {
        return landed;
    }
    if let Some(target) = target {
        // Boxed: creating the member's objects made this future 20 KiB instead of 10, and
        // every admission spawns one; in a 2,000-job burst, faulting in fresh memory for
        // them was 5 to 8 % of the service's CPU (`perf`). Only those that get here need it.
        Box::pin(dispatch(&client, target, &mut landed)).await;
    }
    landed
}

/// A test-only pause between a decision and its admission write, from
/// COMPUTENET_TEST_ADMIT_DELAY_MS (unset in production): the fault suite uses it to patch a
/// spec inside that window deterministically.
fn test_admit_delay() -> Option<Duration> {
    static DELAY: std::sync::OnceLock<Option<Duration>> = std::sync::OnceLock::new();
    *DELAY.get_or_init(|| {
        std::env::var("COMPUTENET_TEST_ADMIT_DELAY_MS")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|ms| *ms > 0)
            .map(Duration::from_millis)
    })
}

/// Creates the job's objects on its member. Nothing is written on success: the next
/// mirror records the dispatch with the first state the member reports, one status write
/// instead of two. A failure is written with when the next attempt is due.
async fn dispatch(client: &Client, target: Target, landed: &mut Landed) {
    let tj = landed.latest();
    let current = tj.status.clone().unwrap_or_default();
    let cluster = target.placement.cluster.clone();
    // Only an admission this service sealed is dispatched (the pass resets others).
    if !seal::verify(&target.key, &tj) {
        tracing::warn!(job = ?tj.metadata.name, "not dispatched: its admission carries no seal of this service");
        return;
    }
    // A deposed leader creates nothing: the next leader dispatches (by the same names).
    if let Err(e) = lease::check_write() {
        tracing::debug!(job = ?tj.metadata.name, error = %e, "dispatch left to the next leader");
        return;
    }
    let source = match &target.source {
        Some(SourceCheck::NotYet) => return,
        Some(SourceCheck::Refused(why)) => {
            tracing::warn!(job = ?tj.metadata.name, %why, "not dispatched: its source object does not match");
            let t = transitions::dispatch_rejected(&tj, &current, why, Timestamp::now());
            if landed.write(client, &tj, &t.status).await {
                landed.events.extend(t.event);
            }
            return;
        }
        Some(SourceCheck::Ready(object)) => Some(object),
        None => None,
    };
    match target.member.dispatch(&tj, target.raw_accelerator.as_deref(), source).await {
        Ok((kind, name)) => {
            if current.remote.is_none() {
                dispatched_event(&mut landed.events, format!("created {kind} {name} on {cluster}"));
            }
            landed.dispatched = Some(DispatchRecord {
                remote: RemoteReference { cluster, kind, name },
                time: current.dispatch_time.map_or_else(Timestamp::now, |t| t.0),
            });
        }
        Err(e) => {
            let now = Timestamp::now();
            let retry = e.retry();
            match after_failure(retry, target.backoff, &target.policy, epoch_ms(now)) {
                AfterFailure::Reject => {
                    tracing::warn!(job = ?tj.metadata.name, error = %e, "dispatch rejected by the member; the job fails");
                    // A gang's Service may exist without its Job: remove what was made.
                    if let Err(c) = target.member.cancel(&tj).await {
                        tracing::debug!(job = ?tj.metadata.name, error = %c, "removing a rejected job's objects");
                    }
                    let t = transitions::dispatch_rejected(&tj, &current, &e.to_string(), now);
                    if landed.write(client, &tj, &t.status).await {
                        landed.events.extend(t.event);
                    }
                    landed.dispatch_failed = Some(DispatchFailure { cluster, backoff: target.backoff, retry });
                }
                AfterFailure::BackOff(backoff) => {
                    let attempts = backoff.failures;
                    tracing::warn!(job = ?tj.metadata.name, error = %e, attempts, next = %backoff.next_attempt(), "dispatch failed");
                    let status = transitions::dispatch_failed(
                        &tj,
                        &current,
                        &computenet_api::conditions::cut(&e.to_string(), computenet_api::conditions::MAX_MESSAGE_BYTES),
                        attempts,
                        backoff.next_attempt(),
                        now,
                    );
                    if landed.write(client, &tj, &status).await && attempts == 1 {
                        landed.events.push((EventReason::DispatchFailed, e.to_string()));
                    }
                    landed.dispatch_failed = Some(DispatchFailure { cluster, backoff, retry });
                }
            }
        }
    }
}

/// Adds the `Dispatched` Event to a landing's Events. When the landing admitted the job
/// too, its `Admitted` Event is folded into this one ("placed on ...; created ..."): one
/// hub write fewer per job. An admission whose dispatch fails or waits keeps its own.
fn dispatched_event(events: &mut Vec<(EventReason, String)>, created: String) {
    match events.iter().position(|(reason, _)| *reason == EventReason::Admitted) {
        Some(i) => {
            let (_, placed) = events.remove(i);
            events.push((EventReason::Dispatched, format!("{placed}; {created}")));
        }
        None => events.push((EventReason::Dispatched, created)),
    }
}

/// What follows a failed dispatch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// The member refused the job for good: it fails, releasing what it holds.
    Reject,
    /// Try again once the backoff allows (credentials are re-read meanwhile when the
    /// member refused them).
    BackOff(Backoff),
}

/// Decides what follows a failed dispatch from the class of its error (pure).
pub fn after_failure(retry: Retry, backoff: Backoff, policy: &BackoffPolicy, now_ms: u64) -> AfterFailure {
    match retry {
        Retry::Never => AfterFailure::Reject,
        Retry::Later | Retry::WithNewCredentials => AfterFailure::BackOff(backoff.failed(policy, now_ms)),
    }
}

/// Stops the job on its member (when it has one), then writes its new status: suspension
/// and preemption. A restartable job is stopped gracefully (SIGTERM and its grace period
/// to checkpoint), any other cancelled. When stopping fails nothing is written and the
/// next pass tries again.
pub async fn stop_then_write(
    client: Client,
    tj: Arc<TrainingJob>,
    member: Option<Member>,
    transition: Transition,
) -> Landed {
    if lease::check_write().is_err() {
        return Landed::new(tj);
    }
    if let Some(m) = member {
        if let Err(e) = m.stop(&tj).await {
            tracing::warn!(job = ?tj.metadata.name, error = %e, "stopping the job on its member failed; retrying");
            return Landed::new(tj);
        }
    }
    write_status(client, tj, transition).await
}

/// Stops what an earlier attempt of the job left on `member` (gracefully: see
/// [`Member::stop_earlier`]). Nothing is written: the next pass looks again, and
/// dispatches the new attempt once nothing is left.
pub async fn stop_earlier(tj: Arc<TrainingJob>, member: Member, leftover: computenet_members::Leftover) -> Landed {
    if lease::check_write().is_err() {
        return Landed::new(tj);
    }
    if let Err(e) = member.stop_earlier(&tj, &leftover).await {
        tracing::warn!(job = ?tj.metadata.name, error = %e, "stopping an earlier attempt failed; retrying");
    }
    Landed::new(tj)
}

/// Writes an adjustment of a running job (a move or a resize: its attempt ended, the new
/// one admitted), guarded like an admission by the resourceVersion it was decided on: a
/// job that changed since (409) is left as it is and looked at again next round. Nothing
/// is stopped or created here: the dispatch of the new attempt stops the old one first.
pub async fn adjust(client: Client, tj: Arc<TrainingJob>, transition: Transition) -> Landed {
    let mut landed = Landed::new(tj.clone());
    match status::admit(&client, &tj, &transition.status).await {
        Ok(stored) => {
            landed.store(stored);
            landed.events.extend(transition.event);
        }
        Err(e) if status::is_conflict(&e) => {
            tracing::debug!(job = ?tj.metadata.name, "adjustment refused: the job changed since the round; next round");
        }
        Err(e) => tracing::warn!(job = ?tj.metadata.name, error = %e, "adjustment write failed"),
    }
    landed
}

/// A deleted job: removes its objects on its member, then computenet's finalizer.
pub async fn clean_up(client: Client, tj: Arc<TrainingJob>, member: Option<Member>, release: bool) -> Landed {
    if lease::check_write().is_err() {
        return Landed::new(tj);
    }
    if let Some(m) = member {
        if let Err(e) = m.cancel(&tj).await {
            tracing::warn!(job = ?tj.metadata.name, error = %e, "cleanup on the member failed; retrying");
            return Landed::new(tj);
        }
    }
    // The finalizer stays until metering recorded the last attempt (see crate::metering).
    if !release {
        return Landed::new(tj);
    }
    if let Err(e) = status::remove_finalizer(&client, &tj).await {
        tracing::debug!(job = ?tj.metadata.name, error = %e, "removing the finalizer; retrying");
    }
    Landed::new(tj)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_job_fails_at_once_and_other_failures_back_off() {
        let policy = BackoffPolicy::default();
        let before = Backoff { failures: 2, next_attempt_ms: 0 };
        assert_eq!(after_failure(Retry::Never, before, &policy, 10_000), AfterFailure::Reject);
        let later = after_failure(Retry::Later, before, &policy, 10_000);
        assert_eq!(later, AfterFailure::BackOff(Backoff { failures: 3, next_attempt_ms: 14_000 }));
        assert_eq!(after_failure(Retry::WithNewCredentials, before, &policy, 10_000), later);
    }

    #[test]
    fn an_admission_dispatched_at_once_records_one_event() {
        let mut events = vec![
            (EventReason::Adjusted, "moved".to_string()),
            (EventReason::Admitted, "placed on ai-1 (A100-80G)".to_string()),
        ];
        dispatched_event(&mut events, "created Job j on ai-1".into());
        assert_eq!(
            events,
            vec![
                (EventReason::Adjusted, "moved".to_string()),
                (EventReason::Dispatched, "placed on ai-1 (A100-80G); created Job j on ai-1".to_string()),
            ]
        );
        // A dispatch after an earlier admission (it failed or waited then) has its own.
        let mut later = Vec::new();
        dispatched_event(&mut later, "created Job j on ai-1".into());
        assert_eq!(later, vec![(EventReason::Dispatched, "created Job j on ai-1".to_string())]);
    }
}

//! A connected Slurm member: a background poller keeps its nodes and computenet's jobs
//! fresh (slurmrestd has no watch), and dispatch and cancel go through the client.

use super::api::{SlurmJob, SlurmNode};
use super::client::{submit_in_doubt, SlurmClient};
use super::convert::{self, BatchJob, Tag};
use super::tenancy::{self, Tenancy};
use crate::error::{Error, Result};
use crate::health::Health;
use crate::labels::remote_name;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// How often the nodes and jobs are read.
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// Where batch jobs run and write, and which nodes are used.
#[derive(Debug, Clone, PartialEq)]
pub struct SlurmPlacement {
    /// Partitions to use; empty uses every node and the default partition.
    pub partitions: Vec<String>,
    /// Output path pattern; relative paths are under the working directory.
    pub standard_output: String,
}

/// How long after a submit whose answer was lost its batch job may still appear (the
/// request may have been held up on its way to slurmctld): until then it is only looked
/// up, never submitted again.
pub const IN_DOUBT_GRACE: Duration = Duration::from_secs(30);

/// What the poller last read, and this process's submits.
#[derive(Debug, Default)]
struct State {
    nodes: Vec<SlurmNode>,
    /// This hub's jobs, by attempt key, lowest job id first.
    jobs: BTreeMap<String, Vec<SlurmJob>>,
    health: Health,
    /// Jobs submitted by this process that the poller has not seen yet, by attempt key.
    submitted: HashMap<String, u64>,
    /// Submits that were sent but whose answer never came (a timeout, a broken
    /// connection), by attempt key, with when that was known: the batch job may exist.
    in_doubt: HashMap<String, Instant>,
    /// Running batch jobs sent SIGTERM by this process (a graceful stop), by job id, with
    /// when: after the grace period they are cancelled outright.
    signalled: HashMap<u64, Instant>,
}

/// What a graceful stop does to one batch job (pure).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopAction {
    /// Pending: nothing runs yet, cancel it.
    Cancel,
    /// Running and not signalled yet: SIGTERM, so it can checkpoint.
    Terminate,
    /// Signalled less than the grace period ago: let it finish.
    Wait,
    /// Signalled longer ago than the grace period and still there: cancel it.
    Kill,
}

/// What a graceful stop does to a batch job in `phase`, signalled `since` ago (if it was).
pub fn stop_action(phase: convert::RemotePhase, since: Option<Duration>, grace: Duration) -> StopAction {
    match (phase, since) {
        (convert::RemotePhase::Pending, _) => StopAction::Cancel,
        (_, None) => StopAction::Terminate,
        (_, Some(d)) if d >= grace => StopAction::Kill,
        _ => StopAction::Wait,
    }
}

/// Whose batch jobs a member reads as its own: those its hub submitted, each as the user
/// of the namespace its comment names.
#[derive(Debug, Clone, PartialEq)]
pub struct Owner {
    /// The hub's identity, in every comment it writes.
    pub hub: String,
    /// The Slurm users jobs are submitted as, by hub namespace.
    pub tenancy: Tenancy,
}

impl Owner {
    /// The attempt key of `job` when this hub may have submitted it: the comment parses
    /// strictly and names this hub, the job's name is the one derived from the UID, and
    /// the job belongs to the Slurm user of the namespace the comment names. Anything else
    /// (another hub's job, a comment written by another user) is not ours: never mirrored,
    /// never cancelled. A comment is only a claim: which TrainingJob a batch job is for is
    /// decided by the id its status records and the user ([`tenancy::pick`]).
    pub fn key_of(&self, job: &SlurmJob) -> Option<String> {
        let tag = Tag::parse(&job.comment)?;
        let (namespace, _) = tag.training_job.split_once('/')?;
        let expected = self.tenancy.identity(namespace)?;
        let user_ok = tenancy::owned_by(job, &expected.user, self.tenancy.is_shared());
        (tag.hub == self.hub && job.name == remote_name(&tag.uid) && user_ok).then(|| tag.key())
    }

    /// `jobs` that are this hub's, by attempt key, lowest job id first.
    pub fn mine(&self, jobs: Vec<SlurmJob>) -> BTreeMap<String, Vec<SlurmJob>> {
        let mut mine: BTreeMap<String, Vec<SlurmJob>> = BTreeMap::new();
        for j in jobs {
            if let Some(key) = self.key_of(&j) {
                mine.entry(key).or_default().push(j);
            }
        }
        for list in mine.values_mut() {
            list.sort_by_key(|j| j.job_id);
        }
        mine
    }
}

/// What a dispatch does first, from what is known of the attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Before {
    /// Its batch job is known: nothing to submit.
    Known(u64),
    /// An earlier submit's answer was lost this long ago: look the job up first.
    LookUp(Duration),
    /// Nothing is known of it: submit.
    Submit,
}

/// One connected Slurm member.
#[derive(Debug, Clone)]
pub struct SlurmMember {
    pub name: String,
    pub placement: SlurmPlacement,
    pub owner: Owner,
    client: Arc<SlurmClient>,
    state: Arc<Mutex<State>>,
}

impl SlurmMember {
    /// Starts polling; `changed` is notified when nodes or jobs change. Only the batch
    /// jobs of `owner` are read as computenet's.
    pub fn start(
        name: &str,
        client: SlurmClient,
        placement: SlurmPlacement,
        owner: Owner,
        changed: Arc<Notify>,
    ) -> Self {
        let member = Self {
            name: name.to_string(),
            placement,
            owner,
            client: Arc::new(client),
            state: Arc::new(Mutex::new(State::default())),
        };
        // The task ends when the member is dropped.
        let weak = Arc::downgrade(&member.state);
        let client = member.client.clone();
        let name = member.name.clone();
        let owner = member.owner.clone();
        tokio::spawn(async move {
            let mut last = None;
            loop {
                let read = tokio::join!(client.nodes(), client.jobs());
                let Some(state) = weak.upgrade() else { break };
                let fingerprint = Self::record(&state, &name, &owner, read);
                if fingerprint.is_some() && fingerprint != last {
                    last = fingerprint;
                    changed.notify_one();
                }
                drop(state);
                tokio::time::sleep(POLL_INTERVAL).await;
            }
        });
        member
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Stores a poll's result; returns a fingerprint of what scheduling depends on.
    fn record(
        state: &Mutex<State>,
        name: &str,
        owner: &Owner,
        read: (Result<Vec<SlurmNode>>, Result<Vec<SlurmJob>>),
    ) -> Option<String> {
        let mut s = lock(state);
        match read {
            (Ok(nodes), Ok(jobs)) => {
                let mine = owner.mine(jobs);
                s.submitted.retain(|key, id| !mine.get(key).is_some_and(|l| l.iter().any(|j| j.job_id == *id)));
                // A lost answer's job has shown up: no longer in doubt.
                s.in_doubt.retain(|key, _| !mine.contains_key(key));
                s.signalled.retain(|id, _| mine.values().flatten().any(|j| j.job_id == *id));
                let fingerprint = format!(
                    "{:?}{:?}",
                    nodes
                        .iter()
                        .map(|n| (&n.name, &n.state, &n.state_flags, n.alloc_cpus, &n.gres_used))
                        .collect::<Vec<_>>(),
                    mine.values().flatten().map(|j| (j.job_id, &j.job_state)).collect::<Vec<_>>()
                );
                s.nodes = nodes;
                s.jobs = mine;
                s.health.ok();
                Some(fingerprint)
            }
            (Err(e), _) | (_, Err(e)) => {
                tracing::debug!(member = name, error = %e, "Slurm poll failed");
                let mut why = e.to_string();
                if matches!(e, Error::Server { status: 500, .. }) && why.contains("Unspecified error") {
                    // slurmrestd 22.05 answers a token slurmctld rejects this way.
                    why.push_str(" (slurmrestd also answers so when slurmctld rejects the token: check the user name and the token or key Secret)");
                }
                s.health.failed_because(e.reason(), why);
                None
            }
        }
    }

    /// Whether the member answered within `timeout`, and the last error.
    pub fn reachable(&self, timeout: Duration) -> (bool, Option<String>) {
        self.lock().health.reachable(timeout)
    }

    /// The reason of the last failed poll (`Timeout`, `Unreachable`, `AuthenticationFailed`,
    /// `ServerError`...), if the last poll failed.
    pub fn failure_reason(&self) -> Option<&'static str> {
        self.lock().health.last_reason()
    }

    /// Whether the member answered at least once.
    pub fn ever_reached(&self) -> bool {
        self.lock().health.ever_reached()
    }

    /// The nodes of the member's partitions, as last read.
    pub fn nodes(&self) -> Vec<SlurmNode> {
        let s = self.lock();
        convert::in_partitions(&s.nodes, &self.placement.partitions).cloned().collect()
    }

    /// The batch job of an attempt owned by `user`, as last read: the one with id
    /// `recorded` (what the TrainingJob's status records) and only it when one is recorded
    /// (see [`tenancy::pick`]).
    pub fn job(&self, key: &str, recorded: Option<u64>, user: &str) -> Option<SlurmJob> {
        let s = self.lock();
        let list = s.jobs.get(key)?;
        tenancy::pick(list, recorded, s.submitted.get(key).copied(), user, self.owner.tenancy.is_shared()).cloned()
    }

    /// Whether this process submitted a batch job for the attempt that is not listed yet.
    pub fn has_job(&self, key: &str) -> bool {
        self.lock().submitted.contains_key(key)
    }

    /// Every batch job of this hub on the member, as last read, with its attempt key.
    pub fn all_jobs(&self) -> Vec<(String, SlurmJob)> {
        let s = self.lock();
        s.jobs.iter().flat_map(|(k, l)| l.iter().map(move |j| (k.clone(), j.clone()))).collect()
    }

    /// What a dispatch of the attempt, as `user`, does first.
    fn before(&self, key: &str, user: &str) -> Before {
        let s = self.lock();
        let shared = self.owner.tenancy.is_shared();
        let listed = s.jobs.get(key).and_then(|l| tenancy::pick(l, None, None, user, shared)).map(|j| j.job_id);
        if let Some(id) = listed.or_else(|| s.submitted.get(key).copied()) {
            return Before::Known(id);
        }
        match s.in_doubt.get(key) {
            Some(since) => Before::LookUp(since.elapsed()),
            None => Before::Submit,
        }
    }

    /// Submits the attempt's batch job unless it has one. Idempotent: the poller's list
    /// (read before any dispatch) and this process's submits are checked first, and a
    /// submit whose answer was lost is looked up by its attempt key before anything is
    /// submitted again, for [`IN_DOUBT_GRACE`]. So an attempt has one batch job. Only
    /// jobs of `user`, the one it is submitted as, are taken for the attempt's.
    pub async fn dispatch(&self, key: &str, job: &BatchJob, user: &str) -> Result<u64> {
        match self.before(key, user) {
            Before::Known(id) => return Ok(id),
            Before::LookUp(since) => {
                let found = self.owner.mine(self.client.jobs().await?).remove(key);
                let shared = self.owner.tenancy.is_shared();
                let found = found.as_deref().and_then(|l| tenancy::pick(l, None, None, user, shared));
                if let Some(id) = found.map(|j| j.job_id) {
                    let mut s = self.lock();
                    s.in_doubt.remove(key);
                    s.submitted.insert(key.to_string(), id);
                    tracing::info!(member = %self.name, key, job_id = id, "found the batch job of a submit whose answer was lost");
                    return Ok(id);
                }
                if since < IN_DOUBT_GRACE {
                    return Err(Error::Transport {
                        what: "submitting a job".into(),
                        why: format!(
                            "the answer to the last submit of attempt {key} was lost {}s ago and its batch job is not \
                             listed yet; looking again before submitting anew (after {}s)",
                            since.as_secs(),
                            IN_DOUBT_GRACE.as_secs()
                        ),
                    });
                }
                tracing::warn!(member = %self.name, key, "a submit whose answer was lost made no batch job; submitting again");
            }
            Before::Submit => {}
        }
        // Recorded before sending: whatever happens to the answer, the next dispatch looks first.
        self.lock().in_doubt.insert(key.to_string(), Instant::now());
        let submitted = self.client.submit_as(user, &job.submit_request()).await;
        let mut s = self.lock();
        match submitted {
            Ok(id) => {
                s.in_doubt.remove(key);
                s.submitted.insert(key.to_string(), id);
                Ok(id)
            }
            Err(e) => {
                if submit_in_doubt(&e) {
                    // The grace counts from when the answer was given up on.
                    s.in_doubt.insert(key.to_string(), Instant::now());
                } else {
                    s.in_doubt.remove(key);
                }
                Err(e)
            }
        }
    }

    /// Cancels every unfinished batch job of the attempt owned by `user`, as that user.
    pub async fn cancel(&self, key: &str, user: &str) -> Result<()> {
        let shared = self.owner.tenancy.is_shared();
        let ids: Vec<u64> = {
            let s = self.lock();
            let seen = s.jobs.get(key).into_iter().flatten().filter(|j| tenancy::owned_by(j, user, shared));
            let unfinished = seen.filter(|j| {
                !matches!(
                    convert::remote_state(j).phase,
                    convert::RemotePhase::Succeeded | convert::RemotePhase::Failed
                )
            });
            unfinished.map(|j| j.job_id).chain(s.submitted.get(key).copied()).collect()
        };
        for id in ids {
            self.client.cancel_as(user, id).await?;
        }
        let mut s = self.lock();
        s.submitted.remove(key);
        s.in_doubt.remove(key);
        Ok(())
    }

    /// The unfinished batch jobs of TrainingJob `uid` owned by `user` under any attempt key
    /// `other` accepts, each with what a graceful stop does to it now.
    fn unfinished(
        &self,
        uid: &str,
        user: &str,
        other: impl Fn(&str) -> bool,
        grace: Duration,
    ) -> Vec<(u64, StopAction)> {
        let s = self.lock();
        let shared = self.owner.tenancy.is_shared();
        s.jobs
            .iter()
            .filter(|(key, _)| convert::uid_of_key(key) == uid && other(key))
            .flat_map(|(_, list)| list.iter())
            .filter(|j| tenancy::owned_by(j, user, shared))
            .filter_map(|j| {
                let phase = convert::remote_state(j).phase;
                if matches!(phase, convert::RemotePhase::Succeeded | convert::RemotePhase::Failed) {
                    return None;
                }
                Some((j.job_id, stop_action(phase, s.signalled.get(&j.job_id).map(Instant::elapsed), grace)))
            })
            .collect()
    }

    /// What is left of TrainingJob `uid`'s attempts other than `current` (owned by
    /// `user`): a description, and whether a stop call is due (something to signal or to
    /// cancel now), or `None` when nothing is left.
    pub fn leftover(&self, uid: &str, current: &str, user: &str, grace: Duration) -> Option<(String, bool)> {
        let jobs = self.unfinished(uid, user, |k| k != current, grace);
        if jobs.is_empty() {
            return None;
        }
        let ids: Vec<String> = jobs.iter().map(|(id, _)| id.to_string()).collect();
        let due = jobs.iter().any(|(_, a)| *a != StopAction::Wait);
        Some((format!("batch job(s) {} of an earlier attempt", ids.join(", ")), due))
    }

    /// Stops gracefully the unfinished batch jobs of TrainingJob `uid` (owned by `user`)
    /// whose attempt key `which` accepts: pending ones are cancelled, running ones get
    /// SIGTERM, and those signalled more than `grace` ago are cancelled.
    pub async fn stop(&self, uid: &str, user: &str, which: impl Fn(&str) -> bool, grace: Duration) -> Result<()> {
        for (id, action) in self.unfinished(uid, user, which, grace) {
            match action {
                StopAction::Wait => {}
                StopAction::Cancel | StopAction::Kill => self.client.cancel_as(user, id).await?,
                StopAction::Terminate => {
                    self.client.terminate_as(user, id).await?;
                    self.lock().signalled.insert(id, Instant::now());
                }
            }
        }
        Ok(())
    }

    /// Cancels one batch job (a second one of an attempt, an orphan) as its owner `user`.
    pub async fn cancel_one(&self, job_id: u64, user: &str) -> Result<()> {
        self.client.cancel_as(user, job_id).await
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // A panic while holding the lock leaves plain data behind: keep using it.
    state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner() -> Owner {
        Owner { hub: "hub-a".into(), tenancy: Tenancy::shared("computenet", "/tmp") }
    }

    fn job(id: u64, uid: &str, attempt: u32, hub: &str, state: &str) -> SlurmJob {
        let tag = Tag { hub: hub.into(), uid: uid.into(), attempt, training_job: "ns/a".into() };
        SlurmJob {
            job_id: id,
            name: remote_name(uid),
            comment: tag.comment(),
            user_name: "computenet".into(),
            job_state: vec![state.into()],
            ..SlurmJob::default()
        }
    }

    #[test]
    fn a_graceful_stop_signals_first_and_cancels_after_the_grace_period() {
        use convert::RemotePhase::{Pending, Running};
        let grace = Duration::from_secs(30);
        assert_eq!(stop_action(Pending, None, grace), StopAction::Cancel, "nothing runs yet");
        assert_eq!(stop_action(Running, None, grace), StopAction::Terminate);
        assert_eq!(stop_action(Running, Some(Duration::from_secs(10)), grace), StopAction::Wait);
        assert_eq!(stop_action(Running, Some(Duration::from_secs(30)), grace), StopAction::Kill);
    }

    #[test]
    fn what_earlier_attempts_left_is_found_by_uid_and_user() {
        let mut state = State::default();
        state.jobs.insert("u-1.1".into(), vec![job(4, "u-1", 1, "hub-a", "RUNNING")]);
        state.jobs.insert("u-1.2".into(), vec![job(5, "u-1", 2, "hub-a", "PENDING")]);
        state.jobs.insert("u-2.1".into(), vec![job(6, "u-2", 1, "hub-a", "RUNNING")]);
        state.jobs.insert("u-1.0".into(), vec![job(3, "u-1", 0, "hub-a", "COMPLETED")]);
        let m = member(state);
        let grace = Duration::from_secs(30);
        let (what, due) = m.leftover("u-1", "u-1.2", "computenet", grace).expect("attempt 1 runs");
        assert!(what.contains('4') && !what.contains('5') && !what.contains('3'), "{what}");
        assert!(due, "not signalled yet");
        m.lock().signalled.insert(4, Instant::now());
        assert_eq!(m.leftover("u-1", "u-1.2", "computenet", grace).map(|l| l.1), Some(false), "signalled: waits");
        assert_eq!(m.leftover("u-1", "u-1.2", "mallory", grace), None, "another user's jobs are not its");
        assert_eq!(m.leftover("u-2", "u-2.1", "computenet", grace), None, "only the current attempt");
    }

    #[test]
    fn only_this_hubs_jobs_are_its_own() {
        let o = owner();
        assert_eq!(o.key_of(&job(1, "u-1", 2, "hub-a", "PENDING")).as_deref(), Some("u-1.2"));
        assert_eq!(o.key_of(&job(1, "u-1", 2, "hub-b", "PENDING")), None, "another hub's");
        let renamed = SlurmJob { name: "cn-other".into(), ..job(1, "u-1", 2, "hub-a", "PENDING") };
        assert_eq!(o.key_of(&renamed), None, "the name does not follow from the UID");
        let stranger = SlurmJob { user_name: "mallory".into(), ..job(1, "u-1", 2, "hub-a", "PENDING") };
        assert_eq!(o.key_of(&stranger), None, "submitted by another Slurm user");
        let legacy =
            SlurmJob { comment: "computenet uid=u-1.2 job=ns/a".into(), ..job(1, "u-1", 2, "hub-a", "PENDING") };
        assert_eq!(o.key_of(&legacy), None);
        let mine = o.mine(vec![job(9, "u-1", 1, "hub-a", "RUNNING"), job(3, "u-1", 1, "hub-a", "PENDING")]);
        assert_eq!(mine["u-1.1"].iter().map(|j| j.job_id).collect::<Vec<_>>(), [3, 9], "lowest id first");
    }

    #[test]
    fn with_tenants_a_job_is_ours_only_as_the_user_of_the_namespace_its_comment_names() {
        use computenet_api::member_cluster::{SecretKeyRef, SlurmConnection, SlurmTenant};
        let key = SecretKeyRef { name: "k".into(), namespace: "computenet-system".into(), key: "k".into() };
        let tenant = |ns: &str, user: &str| SlurmTenant {
            namespaces: vec![ns.into()],
            user_name: user.into(),
            account: None,
            working_directory: None,
        };
        let conn = SlurmConnection {
            endpoint: "https://s".into(),
            api_version: "v0.0.38".into(),
            user_name: "computenet".into(),
            token_secret_ref: None,
            jwt_key_secret_ref: Some(key),
            partitions: vec![],
            working_directory: "/scratch".into(),
            standard_output: "o".into(),
            tenants: vec![tenant("ns", "alice"), tenant("team-b", "bob")],
            insecure_http: false,
            ca_secret_ref: None,
        };
        let o = Owner { hub: "hub-a".into(), tenancy: Tenancy::new(&conn).expect("valid") };
        let as_user = |user: &str| SlurmJob { user_name: user.into(), ..job(1, "u-1", 2, "hub-a", "COMPLETED") };
        assert_eq!(o.key_of(&as_user("alice")).as_deref(), Some("u-1.2"), "ns/a is alice's");
        assert_eq!(o.key_of(&as_user("bob")), None, "bob's job claiming ns/a: a forgery");
        assert_eq!(o.key_of(&as_user("computenet")), None, "the service user runs no tenant's jobs");
        assert_eq!(o.key_of(&as_user("")), None, "no user: not trusted with tenants");
        let unmapped = SlurmJob {
            comment: Tag { hub: "hub-a".into(), uid: "u-1".into(), attempt: 2, training_job: "other/a".into() }
                .comment(),
            ..as_user("alice")
        };
        assert_eq!(o.key_of(&unmapped), None, "a namespace with no user here");
    }

    #[test]
    fn polls_keep_this_hubs_jobs_and_clear_what_they_see() {
        let state = Mutex::new(State::default());
        lock(&state).submitted.insert("u-1.1".into(), 7);
        lock(&state).in_doubt.insert("u-2.1".into(), Instant::now());
        lock(&state).in_doubt.insert("u-3.1".into(), Instant::now());
        let read = (
            Ok(vec![SlurmNode { name: "n1".into(), ..SlurmNode::default() }]),
            Ok(vec![
                job(7, "u-1", 1, "hub-a", "RUNNING"),
                job(8, "u-2", 1, "hub-a", "PENDING"),
                job(9, "u-4", 1, "hub-b", "RUNNING"),
                SlurmJob { job_id: 10, comment: "other".into(), ..SlurmJob::default() },
            ]),
        );
        let f1 = SlurmMember::record(&state, "m", &owner(), read);
        assert!(f1.is_some());
        {
            let s = lock(&state);
            assert_eq!(s.jobs.keys().collect::<Vec<_>>(), ["u-1.1", "u-2.1"]);
            assert!(s.submitted.is_empty(), "seen by the poller: no longer only ours to remember");
            assert_eq!(s.in_doubt.keys().collect::<Vec<_>>(), ["u-3.1"], "a lost answer's job showed up");
            assert!(s.health.ever_reached());
        }
        let failed = SlurmMember::record(
            &state,
            "m",
            &owner(),
            (Err(Error::Timeout { what: "listing nodes".into(), seconds: 5 }), Ok(Vec::new())),
        );
        assert!(failed.is_none());
        assert!(lock(&state).health.reachable(Duration::from_secs(60)).1.is_some_and(|e| e.contains("no answer")));
        assert_eq!(lock(&state).jobs.len(), 2, "a failed poll keeps the last good view");
    }

    fn member(state: State) -> SlurmMember {
        let token = super::super::Credentials::Token("t".into());
        let client = SlurmClient::new("http://127.0.0.1:9", "v0.0.38", "computenet", token).expect("client");
        SlurmMember {
            name: "slurm-1".into(),
            placement: SlurmPlacement { partitions: vec![], standard_output: "o".into() },
            owner: owner(),
            client: Arc::new(client),
            state: Arc::new(Mutex::new(state)),
        }
    }

    #[test]
    fn a_lost_answer_is_looked_up_before_anything_is_submitted_again() {
        let mut state = State::default();
        state
            .jobs
            .insert("u-1.1".into(), vec![job(4, "u-1", 1, "hub-a", "RUNNING"), job(5, "u-1", 1, "hub-a", "PENDING")]);
        state.submitted.insert("u-2.1".into(), 6);
        state.in_doubt.insert("u-3.1".into(), Instant::now());
        let m = member(state);
        assert_eq!(m.before("u-1.1", "computenet"), Before::Known(4), "listed: the first one");
        assert_eq!(m.before("u-2.1", "computenet"), Before::Known(6), "submitted by this process, not listed yet");
        assert!(matches!(m.before("u-3.1", "computenet"), Before::LookUp(d) if d < IN_DOUBT_GRACE));
        assert_eq!(m.before("u-4.1", "computenet"), Before::Submit);
        assert_eq!(m.before("u-1.1", "mallory"), Before::Submit, "another user's jobs are not this attempt's");
        assert_eq!(m.job("u-1.1", Some(5), "computenet").map(|j| j.job_id), Some(5), "the one the status records");
        assert_eq!(m.job("u-1.1", Some(77), "computenet"), None, "the recorded one is gone: no stand-in");
        assert_eq!(m.job("u-1.1", None, "computenet").map(|j| j.job_id), Some(4), "none recorded: the first");
    }

    #[tokio::test]
    async fn a_submit_in_doubt_is_not_sent_again_while_its_job_may_still_appear() {
        let mut state = State::default();
        state.in_doubt.insert("u-3.1".into(), Instant::now());
        let m = member(state);
        let batch = BatchJob {
            name: "cn-u3".into(),
            comment: String::new(),
            training_job: "ns/a".into(),
            replicas: 1,
            gpus_per_replica: 0,
            gpu_type: None,
            cpus_per_replica: 1,
            memory_mib_per_replica: 1,
            time_limit_minutes: None,
            partition: None,
            working_directory: "/tmp".into(),
            account: None,
            standard_output: "o".into(),
            command: vec!["true".into()],
            env: vec![],
        };
        // Nothing listens on port 9: the lookup fails, so nothing is submitted.
        let e = m.dispatch("u-3.1", &batch, "computenet").await.expect_err("the lookup cannot be made");
        assert!(e.to_string().contains("listing jobs"), "{e}");
        assert!(m.lock().in_doubt.contains_key("u-3.1"), "still in doubt");
        // Nothing known: the submit is tried, and a refused connection surely made nothing.
        let e = m.dispatch("u-4.1", &batch, "computenet").await.expect_err("no server");
        assert!(e.to_string().contains("submitting a job"), "{e}");
        assert!(!m.lock().in_doubt.contains_key("u-4.1"), "a connection never made leaves no doubt");
    }
}

//! A connected Slurm member: a background poller keeps its nodes and computenet's jobs
//! fresh (slurmrestd has no watch), and dispatch and cancel go through the client.

use super::api::{SlurmJob, SlurmNode};
use super::client::SlurmClient;
use super::convert::{self, BatchJob};
use crate::error::{Error, Result};
use crate::health::Health;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::Notify;

/// How often the nodes and jobs are read.
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// Where batch jobs run and write, and which nodes are used.
#[derive(Debug, Clone, PartialEq)]
pub struct SlurmPlacement {
    /// Partitions to use; empty uses every node and the default partition.
    pub partitions: Vec<String>,
    /// Working directory of batch jobs (writable by the Slurm user).
    pub working_directory: String,
    /// Output path pattern; relative paths are under the working directory.
    pub standard_output: String,
}

/// What the poller last read.
#[derive(Debug, Default)]
struct State {
    nodes: Vec<SlurmNode>,
    /// computenet's jobs (those whose comment carries a TrainingJob UID), by attempt key.
    jobs: BTreeMap<String, Vec<SlurmJob>>,
    health: Health,
    /// Jobs submitted by this process that the poller has not seen yet, by attempt key.
    submitted: HashMap<String, u64>,
}

/// One connected Slurm member.
#[derive(Debug, Clone)]
pub struct SlurmMember {
    pub name: String,
    pub placement: SlurmPlacement,
    client: Arc<SlurmClient>,
    state: Arc<Mutex<State>>,
}

/// The key of one attempt of a TrainingJob: its UID and how often it was requeued. A job
/// requeued and placed here again gets a new batch job instead of finding the cancelled one.
pub fn attempt_key(uid: &str, attempt: i32) -> String {
    format!("{uid}.{attempt}")
}

/// The TrainingJob UID of an attempt key.
pub fn uid_of_key(key: &str) -> &str {
    key.rsplit_once('.').map_or(key, |(uid, _)| uid)
}

/// The comment computenet puts on its batch jobs.
pub fn comment(key: &str, training_job: &str) -> String {
    format!("computenet uid={key} job={training_job}")
}

/// The attempt key in a batch job's comment, if computenet made it.
pub fn key_of(job: &SlurmJob) -> Option<&str> {
    job.comment.strip_prefix("computenet uid=")?.split_whitespace().next()
}

impl SlurmMember {
    /// Starts polling; `changed` is notified when nodes or jobs change.
    pub fn start(name: &str, client: SlurmClient, placement: SlurmPlacement, changed: Arc<Notify>) -> Self {
        let member = Self {
            name: name.to_string(),
            placement,
            client: Arc::new(client),
            state: Arc::new(Mutex::new(State::default())),
        };
        // The task ends when the member is dropped.
        let weak = Arc::downgrade(&member.state);
        let client = member.client.clone();
        let name = member.name.clone();
        tokio::spawn(async move {
            let mut last = None;
            loop {
                let read = tokio::join!(client.nodes(), client.jobs());
                let Some(state) = weak.upgrade() else { break };
                let fingerprint = Self::record(&state, &name, read);
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
        read: (Result<Vec<SlurmNode>>, Result<Vec<SlurmJob>>),
    ) -> Option<String> {
        let mut s = lock(state);
        match read {
            (Ok(nodes), Ok(jobs)) => {
                let mut mine: BTreeMap<String, Vec<SlurmJob>> = BTreeMap::new();
                for j in jobs {
                    if let Some(key) = key_of(&j) {
                        mine.entry(key.to_string()).or_default().push(j);
                    }
                }
                for list in mine.values_mut() {
                    list.sort_by_key(|j| j.job_id);
                }
                s.submitted.retain(|key, id| !mine.get(key).is_some_and(|l| l.iter().any(|j| j.job_id == *id)));
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

    /// The newest batch job of a TrainingJob, as last read.
    pub fn job(&self, key: &str) -> Option<SlurmJob> {
        self.lock().jobs.get(key).and_then(|l| l.last().cloned())
    }

    /// Whether a batch job for the TrainingJob exists (seen, or submitted by this process).
    pub fn has_job(&self, key: &str) -> bool {
        let s = self.lock();
        s.jobs.contains_key(key) || s.submitted.contains_key(key)
    }

    /// Attempt keys of every batch job computenet has on the member, as last read.
    pub fn job_keys(&self) -> Vec<String> {
        self.lock().jobs.keys().cloned().collect()
    }

    /// Submits the batch job unless one exists for this UID (idempotent across restarts:
    /// the poller's list is read before any dispatch, and jobs carry the UID).
    pub async fn dispatch(&self, key: &str, job: &BatchJob) -> Result<u64> {
        if let Some(id) = {
            let s = self.lock();
            s.jobs.get(key).and_then(|l| l.last()).map(|j| j.job_id).or_else(|| s.submitted.get(key).copied())
        } {
            return Ok(id);
        }
        let id = self.client.submit(&job.submit_request()).await?;
        self.lock().submitted.insert(key.to_string(), id);
        Ok(id)
    }

    /// Cancels every unfinished batch job of the TrainingJob.
    pub async fn cancel(&self, key: &str) -> Result<()> {
        let ids: Vec<u64> = {
            let s = self.lock();
            let seen = s.jobs.get(key).into_iter().flatten();
            let unfinished = seen.filter(|j| {
                !matches!(
                    convert::remote_state(j).phase,
                    convert::RemotePhase::Succeeded | convert::RemotePhase::Failed
                )
            });
            unfinished.map(|j| j.job_id).chain(s.submitted.get(key).copied()).collect()
        };
        for id in ids {
            self.client.cancel(id).await?;
        }
        self.lock().submitted.remove(key);
        Ok(())
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // A panic while holding the lock leaves plain data behind: keep using it.
    state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: u64, comment: &str, state: &str) -> SlurmJob {
        SlurmJob { job_id: id, comment: comment.into(), job_state: vec![state.into()], ..SlurmJob::default() }
    }

    #[test]
    fn comments_carry_the_uid() {
        assert_eq!(attempt_key("0a-1b", 2), "0a-1b.2");
        assert_eq!(uid_of_key("0a-1b.2"), "0a-1b");
        assert_eq!(comment("u-1", "ns/a"), "computenet uid=u-1 job=ns/a");
        assert_eq!(key_of(&job(1, "computenet uid=u-1 job=ns/a", "PENDING")), Some("u-1"));
        assert_eq!(key_of(&job(1, "someone else's job", "PENDING")), None);
    }

    #[test]
    fn polls_keep_computenets_jobs_and_health() {
        let state = Mutex::new(State::default());
        lock(&state).submitted.insert("u-1".into(), 7);
        let read = (
            Ok(vec![SlurmNode { name: "n1".into(), ..SlurmNode::default() }]),
            Ok(vec![job(7, "computenet uid=u-1 job=ns/a", "RUNNING"), job(8, "other", "RUNNING")]),
        );
        let f1 = SlurmMember::record(&state, "m", read);
        assert!(f1.is_some());
        {
            let s = lock(&state);
            assert_eq!(s.jobs.keys().collect::<Vec<_>>(), ["u-1"]);
            assert!(s.submitted.is_empty(), "seen by the poller: no longer only ours to remember");
            assert!(s.health.ever_reached());
        }
        let failed = SlurmMember::record(
            &state,
            "m",
            (Err(Error::Timeout { what: "listing nodes".into(), seconds: 5 }), Ok(Vec::new())),
        );
        assert!(failed.is_none());
        assert!(lock(&state).health.reachable(Duration::from_secs(60)).1.is_some_and(|e| e.contains("no answer")));
        assert_eq!(lock(&state).jobs.len(), 1, "a failed poll keeps the last good view");
    }
}

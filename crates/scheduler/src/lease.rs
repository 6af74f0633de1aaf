//! Leader election with a coordination.k8s.io Lease: only the holder schedules, so two
//! replicas can run safely.
//!
//! Expiry is judged the way client-go's leader election judges it: by how long THIS
//! process has seen the lease unchanged (holder, renewTime, resourceVersion) on its own
//! monotonic clock, for the duration the lease itself states. The holder's renewTime is
//! never compared with the local wall clock, so a skewed clock cannot take a live lease.
//!
//! The leader knows a local [`Fence`]: a monotonic deadline until which its lease surely
//! holds (the start of its last successful renewal plus the lease duration, less a safety
//! margin; a standby waits at least the lease duration after it last saw that renewal).
//! Work checks the fence before every write that counts and is cancelled when it passes.
//! Every call of the election has a timeout shorter than the renewal period.

use crate::error::{Error, Result};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::{Api, Client};
use serde_json::json;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// The lease this process holds or wants.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    pub identity: String,
    pub duration: Duration,
}

impl LeaseConfig {
    /// Time between two renewals (and between two looks of a standby).
    pub fn retry_period(&self) -> Duration {
        (self.duration / 5).max(Duration::from_millis(200))
    }

    /// Longest wait for one API call of the election: a third of the duration, so a hung
    /// call cannot outlast the lease, while a slow apiserver under load (hundreds of
    /// writes queued) still answers in time.
    pub fn call_timeout(&self) -> Duration {
        (self.duration / 3).max(Duration::from_millis(500))
    }

    /// How long before the lease would expire the leader stops its writes: room for the
    /// standby's polling granularity and for clock rate differences.
    pub fn safety_margin(&self) -> Duration {
        (self.duration / 10).max(Duration::from_millis(100))
    }

    /// Longest single write (admission, dispatch) the leader starts: a write starts only
    /// while the fence is good for at least this long.
    pub fn write_timeout(&self) -> Duration {
        (self.duration / 3).clamp(Duration::from_millis(500), Duration::from_secs(10))
    }
}

/// What a standby needs of a lease to judge it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Empty when nobody holds it (released).
    pub holder: String,
    /// renewTime as written, compared only for change, never against a clock.
    pub renew_time: Option<String>,
    pub resource_version: Option<String>,
    /// leaseDurationSeconds of the lease itself (the holder's promise).
    pub duration: Duration,
}

impl Record {
    /// The record of a lease; `default` when it states no usable duration.
    pub fn of(lease: &Lease, default: Duration) -> Self {
        let spec = lease.spec.clone().unwrap_or_default();
        let duration = spec
            .lease_duration_seconds
            .filter(|s| *s > 0)
            // A day at most: a hostile value must not park the standby forever.
            .map_or(default, |s| Duration::from_secs(u64::try_from(s.min(86_400)).unwrap_or(15)));
        Record {
            holder: spec.holder_identity.unwrap_or_default(),
            renew_time: spec.renew_time.map(|t| t.0.to_string()),
            resource_version: lease.metadata.resource_version.clone(),
            duration,
        }
    }
}

/// A record and the monotonic instant this process first saw it as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    pub record: Record,
    pub since: Instant,
}

/// Folds a new look at the lease into what was observed: the clock restarts whenever
/// the record changed.
pub fn observe(previous: Option<Observation>, record: Record, now: Instant) -> Observation {
    match previous {
        Some(p) if p.record == record => p,
        _ => Observation { record, since: now },
    }
}

/// What a candidate does about the lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Free, released, expired or already ours: take it (with the resourceVersion seen).
    Take,
    /// Someone else holds it; it expires for us at this instant unless it changes.
    Wait(Instant),
}

/// Judges a lease from what this process observed (pure): free or ours is taken at once;
/// someone else's only once it was seen unchanged for its own duration.
pub fn judge(observed: &Observation, now: Instant, me: &str) -> Decision {
    let r = &observed.record;
    if r.holder.is_empty() || r.holder == me {
        return Decision::Take;
    }
    let expires = observed.since + r.duration;
    if now >= expires {
        Decision::Take
    } else {
        Decision::Wait(expires)
    }
}

/// The instant until which a lease renewed by a call started at `renew_started` surely
/// holds (pure): a standby can only take it a full duration after it saw the renewal,
/// which it cannot see before the call started.
pub fn valid_until(renew_started: Instant, duration: Duration, margin: Duration) -> Instant {
    renew_started + duration.saturating_sub(margin)
}

/// Whether renewals have failed for so long that the leader must give up (pure).
pub fn must_give_up(last_renewed: Instant, now: Instant, config: &LeaseConfig) -> bool {
    now.saturating_duration_since(last_renewed) + config.call_timeout()
        >= config.duration.saturating_sub(config.safety_margin())
}

/// The leader's local deadline, shared by the lease keeper (which extends it) and the
/// work (which checks it before each write and stops when it passes).
#[derive(Debug, Clone)]
pub struct Fence {
    until: Arc<watch::Sender<Option<Instant>>>,
    write_timeout: Duration,
}

tokio::task_local! {
    /// The fence of the work running in this task (set by the work's spawner).
    static CURRENT: Fence;
}

impl Fence {
    /// A fence good until `until` (`None`: never valid).
    pub fn new(until: Option<Instant>, write_timeout: Duration) -> Self {
        Fence { until: Arc::new(watch::Sender::new(until)), write_timeout }
    }

    /// A fence that never passes: a single replica run without leader election.
    pub fn unbounded() -> Self {
        Fence::new(Some(Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600)), Duration::from_secs(10))
    }

    /// Until when the lease surely holds (`None`: lost or released).
    pub fn valid_until(&self) -> Option<Instant> {
        *self.until.borrow()
    }

    /// Longest single write started under this fence.
    pub fn write_timeout(&self) -> Duration {
        self.write_timeout
    }

    /// Whether a write of `need` can start now and finish before the deadline.
    pub fn allows(&self, need: Duration) -> bool {
        self.valid_until().is_some_and(|u| Instant::now() + need <= u)
    }

    /// Moves the deadline (only ever later while held).
    pub fn extend(&self, until: Instant) {
        self.until.send_modify(|u| {
            if u.is_none_or(|old| old < until) {
                *u = Some(until);
            }
        });
    }

    /// Ends it at once: the lease is lost or released.
    pub fn revoke(&self) {
        self.until.send_replace(None);
    }

    /// Completes when the deadline passes or the fence is revoked.
    pub async fn expired(&self) {
        let mut rx = self.until.subscribe();
        loop {
            let Some(until) = *rx.borrow_and_update() else { return };
            if Instant::now() >= until {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep_until(until) => {}
                changed = rx.changed() => if changed.is_err() { return },
            }
        }
    }

    /// Runs `work` with this fence as the task's current fence, and cancels it (drops it,
    /// with whatever call it awaits) when the fence passes: `None` then.
    pub async fn guard<T>(self, work: impl Future<Output = T>) -> Option<T> {
        let fence = self.clone();
        CURRENT
            .scope(self, async move {
                tokio::select! {
                    biased;
                    _ = fence.expired() => None,
                    out = work => Some(out),
                }
            })
            .await
    }
}

/// Fails unless the current task's fence leaves room for one more write: call before
/// every write that a deposed leader must not make. Outside guarded work (tests, tools)
/// there is no lease and so nothing to check.
pub fn check_write() -> Result<()> {
    let ok = CURRENT.try_with(|f| f.allows(f.write_timeout)).unwrap_or(true);
    if ok {
        Ok(())
    } else {
        Err(Error::Fenced)
    }
}

/// The current task's write timeout (10 s outside guarded work).
pub fn write_timeout() -> Duration {
    CURRENT.try_with(|f| f.write_timeout).unwrap_or(Duration::from_secs(10))
}

fn lease_object(
    config: &LeaseConfig,
    holder: Option<&str>,
    resource_version: Option<String>,
    transitions: i32,
    acquire_time: Option<Timestamp>,
    duration_s: u64,
) -> Result<Lease> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": config.name, "namespace": config.namespace, "resourceVersion": resource_version},
        "spec": {
            "holderIdentity": holder,
            "leaseDurationSeconds": duration_s,
            "acquireTime": acquire_time.map(MicroTime),
            "renewTime": MicroTime(Timestamp::now()),
            "leaseTransitions": transitions
        }
    }))
    .map_err(kube::Error::SerdeError)?)
}

/// Runs one API call of the election with the call timeout.
async fn call<T>(config: &LeaseConfig, what: &str, f: impl Future<Output = kube::Result<T>>) -> Result<T> {
    match tokio::time::timeout(config.call_timeout(), f).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(Error::Timeout(format!("{what} lease {}/{}", config.namespace, config.name))),
    }
}

fn api(client: &Client, config: &LeaseConfig) -> Api<Lease> {
    Api::<Lease>::namespaced(client.clone(), &config.namespace)
}

/// Writes the lease as held by this process, guarded by the resourceVersion `current` was
/// read at. Ok(false) when someone else wrote it in between.
async fn write_held(client: &Client, config: &LeaseConfig, current: &Lease) -> Result<bool> {
    let spec = current.spec.clone().unwrap_or_default();
    let holder = spec.holder_identity.clone().unwrap_or_default();
    let mine = holder == config.identity;
    let transitions = spec.lease_transitions.unwrap_or(0).saturating_add(i32::from(!mine));
    let acquired = if mine { spec.acquire_time.map_or_else(Timestamp::now, |t| t.0) } else { Timestamp::now() };
    let lease = lease_object(
        config,
        Some(&config.identity),
        current.metadata.resource_version.clone(),
        transitions,
        Some(acquired),
        config.duration.as_secs().max(1),
    )?;
    match call(config, "writing", api(client, config).replace(&config.name, &PostParams::default(), &lease)).await {
        Ok(_) => Ok(true),
        Err(Error::Kube(kube::Error::Api(s))) if s.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

/// Waits until this process holds the lease; returns the fence of its leadership.
pub async fn acquire(client: &Client, config: &LeaseConfig) -> Result<Fence> {
    let mut observed: Option<Observation> = None;
    loop {
        let started = Instant::now();
        match try_take(client, config, &mut observed, started).await {
            Ok(true) => {
                let until = valid_until(started, config.duration, config.safety_margin());
                return Ok(Fence::new(Some(until), config.write_timeout()));
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "leader election"),
        }
        tokio::time::sleep(next_look(observed.as_ref(), Instant::now(), config)).await;
    }
}

/// How long a candidate waits before its next look at the lease (pure): the retry
/// period, or less when the lease it watches expires sooner, so a dead leader's lease is
/// taken when it expires rather than up to a retry period later.
pub fn next_look(observed: Option<&Observation>, now: Instant, config: &LeaseConfig) -> Duration {
    let retry = config.retry_period();
    match observed.map(|o| judge(o, now, &config.identity)) {
        Some(Decision::Wait(expires)) => retry.min(expires.saturating_duration_since(now)),
        _ => retry,
    }
}

/// One look at the lease: takes it when it is free, expired by this process's own
/// observation, or already ours. Returns whether this process holds it now.
async fn try_take(
    client: &Client,
    config: &LeaseConfig,
    observed: &mut Option<Observation>,
    now: Instant,
) -> Result<bool> {
    let current = call(config, "reading", api(client, config).get_opt(&config.name)).await?;
    let Some(current) = current else {
        let lease = lease_object(
            config,
            Some(&config.identity),
            None,
            0,
            Some(Timestamp::now()),
            config.duration.as_secs().max(1),
        )?;
        return match call(config, "creating", api(client, config).create(&PostParams::default(), &lease)).await {
            Ok(_) => Ok(true),
            Err(Error::Kube(kube::Error::Api(s))) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        };
    };
    let seen = observe(observed.take(), Record::of(&current, config.duration), now);
    let decision = judge(&seen, now, &config.identity);
    if let Decision::Wait(expires) = decision {
        tracing::debug!(holder = %seen.record.holder, in_ms = expires.saturating_duration_since(now).as_millis() as u64, "lease held");
    }
    *observed = Some(seen);
    match decision {
        Decision::Wait(_) => Ok(false),
        Decision::Take => write_held(client, config, &current).await,
    }
}

/// One renewal by the holder. Ok(false) when someone else holds the lease now.
async fn renew(client: &Client, config: &LeaseConfig) -> Result<bool> {
    let current = call(config, "reading", api(client, config).get_opt(&config.name)).await?;
    let Some(current) = current else { return Ok(false) };
    let holder = current.spec.as_ref().and_then(|s| s.holder_identity.as_deref()).unwrap_or_default();
    if holder != config.identity {
        return Ok(false);
    }
    if write_held(client, config, &current).await? {
        Ok(true)
    } else {
        // Written by someone between our read and write: judged on the next try.
        Err(Error::Timeout("lease changed during renewal".into()))
    }
}

/// Keeps renewing and extends `fence` after each renewal; revokes it and returns an error
/// when the lease is lost or cannot be renewed in time (the caller must stop scheduling).
pub async fn keep(client: Client, config: LeaseConfig, fence: Fence) -> Result<()> {
    let mut last_renewed = Instant::now();
    loop {
        tokio::time::sleep(config.retry_period()).await;
        let started = Instant::now();
        match renew(&client, &config).await {
            Ok(true) => {
                last_renewed = started;
                fence.extend(valid_until(started, config.duration, config.safety_margin()));
            }
            Ok(false) => {
                fence.revoke();
                return Err(Error::LostLease(format!("{} (held by someone else now)", config.name)));
            }
            Err(e) => {
                tracing::warn!(error = %e, "renewing the lease");
                if must_give_up(last_renewed, Instant::now(), &config) {
                    fence.revoke();
                    return Err(Error::LostLease(format!("{} (not renewed in time: {e})", config.name)));
                }
            }
        }
    }
}

/// Gives the lease up (holder cleared), so a standby takes over at once instead of
/// waiting for it to expire. Best effort: a failure only means the standby waits.
pub async fn release(client: &Client, config: &LeaseConfig) {
    let result = async {
        let Some(current) = call(config, "reading", api(client, config).get_opt(&config.name)).await? else {
            return Ok(false);
        };
        let spec = current.spec.clone().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(config.identity.as_str()) {
            return Ok(false);
        }
        let lease = lease_object(
            config,
            None,
            current.metadata.resource_version.clone(),
            spec.lease_transitions.unwrap_or(0),
            None,
            1,
        )?;
        call(config, "releasing", api(client, config).replace(&config.name, &PostParams::default(), &lease)).await?;
        Ok::<_, Error>(true)
    }
    .await;
    match result {
        Ok(true) => tracing::info!(lease = %config.name, "released the leader lease"),
        Ok(false) => {}
        Err(e) => tracing::warn!(error = %e, "releasing the leader lease; a standby takes over when it expires"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(holder: &str, renew: &str, rv: &str, secs: u64) -> Record {
        Record {
            holder: holder.into(),
            renew_time: Some(renew.into()),
            resource_version: Some(rv.into()),
            duration: Duration::from_secs(secs),
        }
    }

    fn lease(holder: Option<&str>, renew: &str, duration: Option<i32>) -> Lease {
        serde_json::from_value(json!({
            "metadata": {"name": "l", "resourceVersion": "7"},
            "spec": {"holderIdentity": holder, "renewTime": renew, "leaseDurationSeconds": duration}
        }))
        .unwrap()
    }

    #[test]
    fn a_lease_seen_renewed_is_never_taken_whatever_its_renew_time_says() {
        let t0 = Instant::now();
        // The holder's renewTime is an hour "behind" this standby's wall clock (a skewed
        // clock): only the local observation counts, and it keeps changing.
        let mut seen = observe(None, record("a", "2020-01-01T00:00:00Z", "1", 10), t0);
        for i in 1..100u64 {
            let now = t0 + Duration::from_secs(i * 2);
            let r = record("a", &format!("2020-01-01T00:00:{:02}Z", i % 60), &i.to_string(), 10);
            seen = observe(Some(seen), r, now);
            assert!(matches!(judge(&seen, now, "b"), Decision::Wait(_)), "taken at {i}");
        }
        // Its renewTime far in the future (a clock ahead) does not keep it alive either.
        let later = record("a", "2999-01-01T00:00:00Z", "500", 10);
        let seen = observe(None, later, t0);
        assert_eq!(judge(&seen, t0 + Duration::from_secs(9), "b"), Decision::Wait(t0 + Duration::from_secs(10)));
        assert_eq!(judge(&seen, t0 + Duration::from_secs(10), "b"), Decision::Take);
    }

    #[test]
    fn an_unchanged_lease_expires_after_its_own_duration_on_the_local_clock() {
        let t0 = Instant::now();
        let r = record("a", "2026-01-01T00:00:00Z", "1", 40);
        let first = observe(None, r.clone(), t0);
        // The same record seen again later keeps the first instant.
        let again = observe(Some(first.clone()), r, t0 + Duration::from_secs(30));
        assert_eq!(again.since, t0);
        // The lease's 40 s apply, not this process's own configured duration.
        assert!(matches!(judge(&again, t0 + Duration::from_secs(39), "b"), Decision::Wait(_)));
        assert_eq!(judge(&again, t0 + Duration::from_secs(40), "b"), Decision::Take);
        // A new resourceVersion alone restarts the clock.
        let moved = observe(Some(again), record("a", "2026-01-01T00:00:00Z", "2", 40), t0 + Duration::from_secs(41));
        assert_eq!(moved.since, t0 + Duration::from_secs(41));
        assert!(matches!(judge(&moved, t0 + Duration::from_secs(41), "b"), Decision::Wait(_)));
    }

    #[test]
    fn a_standby_looks_again_when_the_lease_it_watches_expires() {
        let config = LeaseConfig {
            namespace: "n".into(),
            name: "l".into(),
            identity: "b".into(),
            duration: Duration::from_secs(10),
        };
        let t0 = Instant::now();
        let seen = observe(None, record("a", "2026-01-01T00:00:00Z", "1", 10), t0);
        assert_eq!(next_look(Some(&seen), t0, &config), Duration::from_secs(2), "the retry period");
        let near = t0 + Duration::from_millis(9_300);
        assert_eq!(next_look(Some(&seen), near, &config), Duration::from_millis(700), "at the expiry");
        assert_eq!(next_look(None, t0, &config), Duration::from_secs(2));
    }

    #[test]
    fn a_released_or_own_lease_is_taken_at_once() {
        let t0 = Instant::now();
        assert_eq!(judge(&observe(None, record("", "x", "1", 15), t0), t0, "b"), Decision::Take);
        assert_eq!(judge(&observe(None, record("b", "x", "1", 15), t0), t0, "b"), Decision::Take);
    }

    #[test]
    fn records_take_the_duration_from_the_lease_with_bounds() {
        let d = Duration::from_secs(15);
        assert_eq!(
            Record::of(&lease(Some("a"), "2026-01-01T00:00:00Z", Some(40)), d).duration,
            Duration::from_secs(40)
        );
        assert_eq!(Record::of(&lease(Some("a"), "2026-01-01T00:00:00Z", None), d).duration, d);
        assert_eq!(Record::of(&lease(Some("a"), "2026-01-01T00:00:00Z", Some(-5)), d).duration, d);
        assert_eq!(
            Record::of(&lease(Some("a"), "2026-01-01T00:00:00Z", Some(i32::MAX)), d).duration,
            Duration::from_secs(86_400)
        );
        let r = Record::of(&lease(None, "2026-01-01T00:00:00Z", Some(1)), d);
        assert_eq!((r.holder.as_str(), r.resource_version.as_deref()), ("", Some("7")));
    }

    #[test]
    fn the_fence_ends_before_a_standby_can_take_over() {
        let config = LeaseConfig {
            namespace: "n".into(),
            name: "l".into(),
            identity: "a".into(),
            duration: Duration::from_secs(15),
        };
        let started = Instant::now();
        let until = valid_until(started, config.duration, config.safety_margin());
        // A standby that saw the renewal no earlier than it started takes over no sooner
        // than a full duration later.
        let seen = observe(None, record("a", "t", "9", 15), started);
        let Decision::Wait(takeover) = judge(&seen, started, "b") else { panic!("held") };
        assert!(until + config.safety_margin() <= takeover);
        // A write fits between two renewals, and a renewal call ends before the lease can.
        assert!(config.retry_period() + config.write_timeout() < config.duration - config.safety_margin());
        assert!(config.retry_period() + config.call_timeout() < config.duration - config.safety_margin());
        assert!(!must_give_up(started, started + config.retry_period() * 2, &config));
        assert!(must_give_up(started, started + config.duration, &config));
    }

    #[tokio::test(start_paused = true)]
    async fn guarded_work_checks_the_fence_and_is_cancelled_when_it_passes() {
        let fence = Fence::new(Some(Instant::now() + Duration::from_secs(10)), Duration::from_secs(3));
        assert!(check_write().is_ok(), "no fence outside guarded work");
        let allowed = fence.clone().guard(async { check_write().is_ok() }).await;
        assert_eq!(allowed, Some(true));
        // Seven seconds in, a 3 s write no longer fits before the deadline.
        let late = fence.clone().guard(async {
            tokio::time::sleep(Duration::from_secs(8)).await;
            check_write().is_ok()
        });
        assert_eq!(late.await, Some(false));
        // Work still running when the deadline passes is dropped.
        let cut = fence.clone().guard(async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            "finished"
        });
        assert_eq!(cut.await, None);
        // Revoking ends it at once, however far the deadline was.
        let far = Fence::new(Some(Instant::now() + Duration::from_secs(3600)), Duration::from_secs(1));
        let revoker = far.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            revoker.revoke();
        });
        let stopped = far.clone().guard(tokio::time::sleep(Duration::from_secs(60))).await;
        assert_eq!(stopped, None);
        assert!(!far.allows(Duration::ZERO));
    }
}

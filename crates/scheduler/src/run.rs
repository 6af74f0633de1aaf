//! `computenet serve`'s loop: the leader lease, the hub's caches, and a select over
//! shutdown, lease loss (a failed renewal or the fence's deadline passing), changes and
//! the interval, each turn running one [`Service::pass`]. The lease's [`Fence`] guards
//! all work: when it passes, work in flight is cancelled and the process exits; on
//! shutdown the lease is released.

use crate::backoff::BackoffPolicy;
use crate::connections::Connections;
use crate::error::{Error, Result};
use crate::events::EventSink;
use crate::hub::Hub;
use crate::jobs::Reconciler;
use crate::lease::{self, Fence, LeaseConfig};
use crate::overlay::Overlay;
use crate::profiles::ProfileSource;
use crate::reporters::Reporters;
use crate::schedule::Scheduling;
use crate::service::Service;
use crate::work::InFlight;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{Api, Client};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// How `computenet serve` runs.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Longest wait between two passes (changes trigger one sooner).
    pub interval: Duration,
    /// Least time from the start of one pass to the start of the next, however many
    /// changes wait ([`DEFAULT_MIN_PASS_SPACING`]; at most 2 s is kept).
    pub min_pass_spacing: Duration,
    /// A member unreachable this long is NotReady and loses its not-yet-running jobs.
    pub member_timeout: Duration,
    /// Leader election; `None` runs without it (one replica only).
    pub lease: Option<LeaseConfig>,
    /// Concurrent writes to the hub and members.
    pub concurrency: usize,
    /// Metrics, probes and the dashboard's data; `None` records nothing.
    pub web: Option<crate::web::WebState>,
    /// Where throughput profiles come from, and the cycle's settings.
    pub profiles: ProfileSource,
    /// Delays between dispatch attempts of a job whose dispatch failed.
    pub backoff: BackoffPolicy,
    /// This hub's identity: a label on every object it creates on Kubernetes members and
    /// a word in its Slurm batch jobs' comments; orphans are judged among its own only.
    pub hub_id: String,
    /// How often the Secrets MemberClusters reference are re-read (changes reconnect).
    pub secret_check_interval: Duration,
    /// The only namespace member credentials are read from (Secrets there labelled
    /// `computenet.io/credentials: "true"`).
    pub credentials_namespace: String,
    /// The Secret (namespace, name) holding the key admissions are sealed with; created
    /// when absent.
    pub admission_key_secret: (String, String),
    /// Reading running jobs' progress from Prometheus; `None` reads none.
    pub progress: Option<crate::progress::ProgressConfig>,
    /// The re-optimisation round: how often, and its knobs.
    pub adapt: crate::schedule::AdaptPolicy,
    /// Metering: the usage store, fair share with memory, budgets.
    pub metering: crate::metering::MeteringConfig,
}

const CRDS: [&str; 5] = [
    "trainingjobs.computenet.io",
    "memberclusters.computenet.io",
    "computequeues.computenet.io",
    "computeusages.computenet.io",
    "computecohorts.computenet.io",
];

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

/// Longest wait for the hub's caches' first lists: a replica that cannot read the hub
/// cannot schedule, and says so ([`Error::CachesNotReady`]) instead of holding on.
const CACHES_TIMEOUT: Duration = Duration::from_secs(60);

/// The default least time from the start of one pass to the start of the next. A pass
/// reads every job, so each costs about the same however few changes it takes in: in a
/// 2,000-job burst, at 200 ms the passes were a quarter to a third of the service's CPU,
/// and 1 s instead of 500 ms took 130 passes down to about 80 and the service's CPU per
/// job by about a tenth. A change waits at most this long for the next pass (when the last one
/// was cheap): small beside what placing and starting a training job takes (Volcano's
/// scheduling period is 1 s by default too).
pub const DEFAULT_MIN_PASS_SPACING: Duration = Duration::from_millis(1000);

/// Passes are also spaced by their cost: the next starts no sooner than this many times
/// the last one's computing time after it started, so that with many jobs (a pass reads
/// them all) passes compute at most about a tenth of the time, whatever a burst of
/// changes asks. Fewer passes in a burst each take in more work: in a 2,000-job burst,
/// ten times instead of five cut the service's CPU per job by about a fifth (6.7 to
/// 5.2 ms) without slowing dispatch.
const PASS_COST_FACTOR: u32 = 10;

/// ... but never more than this apart while changes wait: what a change starts waits at
/// most this long.
const MAX_PASS_SPACING: Duration = Duration::from_secs(2);

/// How long after the start of a pass that computed for `computing` (its time waiting on
/// writes left out) the next one may start, at least `least` (itself capped at
/// [`MAX_PASS_SPACING`]).
fn pass_spacing(computing: Duration, least: Duration) -> Duration {
    (computing * PASS_COST_FACTOR).clamp(least.min(MAX_PASS_SPACING), MAX_PASS_SPACING)
}

/// Runs until `shutdown` completes or the leader lease is lost. On the way out all work
/// in flight is cancelled and the lease released, so a standby takes over at once.
pub async fn run(client: Client, config: ServeConfig, shutdown: impl Future<Output = ()>) -> Result<()> {
    check_crds(&client).await?;
    tokio::pin!(shutdown);
    let (fence, mut lease_task) = match &config.lease {
        Some(l) => {
            tracing::info!(lease = %l.name, identity = %l.identity, "waiting for the leader lease");
            // A standby replica is ready: it serves probes and metrics while it waits.
            config.web.iter().for_each(|w| w.set_ready(true));
            let fence = tokio::select! {
                _ = &mut shutdown => { tracing::info!("shutting down"); return Ok(()); }
                fence = lease::acquire(&client, l) => fence?,
            };
            config.web.iter().for_each(|w| w.set_ready(false));
            tracing::info!("leading");
            (fence.clone(), tokio::spawn(lease::keep(client.clone(), l.clone(), fence)))
        }
        None => (Fence::unbounded(), tokio::spawn(futures::future::pending::<Result<()>>())),
    };
    let result = lead(&client, &config, &fence, &mut lease_task, &mut shutdown).await;
    // Whatever ended it: no write of this process may count from here on.
    fence.revoke();
    lease_task.abort();
    if let Some(l) = &config.lease {
        lease::release(&client, l).await;
    }
    result
}

/// The leader's part: the caches, then one pass a turn until shutdown or lease loss.
async fn lead(
    client: &Client,
    config: &ServeConfig,
    fence: &Fence,
    lease_task: &mut JoinHandle<Result<()>>,
    shutdown: &mut Pin<&mut impl Future<Output = ()>>,
) -> Result<()> {
    let lost = |r: std::result::Result<Result<()>, tokio::task::JoinError>| match r {
        Ok(Err(e)) => e,
        _ => Error::LostLease("lease task ended".into()),
    };
    let changed = Arc::new(Notify::new());
    // Events are best effort: a few at a time, so they never crowd out the writes
    // that schedule and dispatch.
    let events = EventSink::start(client.clone(), (config.concurrency / 8).max(1));
    // A leader that cannot get its caches cannot schedule: Hub::start gives up after
    // CACHES_TIMEOUT and the caller releases the lease so another replica can try,
    // instead of holding it idle forever.
    let hub = tokio::select! {
        _ = &mut *shutdown => { tracing::info!("shutting down"); return Ok(()); }
        r = &mut *lease_task => return Err(lost(r)),
        hub = Hub::start(client.clone(), changed.clone(), events.clone(), CACHES_TIMEOUT) => hub?,
    };
    // Read (or made) as the leader, under its fence: the key every admission is sealed with.
    let (key_namespace, key_name) = &config.admission_key_secret;
    let key = tokio::select! {
        _ = &mut *shutdown => { tracing::info!("shutting down"); return Ok(()); }
        r = &mut *lease_task => return Err(lost(r)),
        key = crate::seal::load_or_create(client, key_namespace, key_name) => Arc::new(key?),
    };
    let mut profiles = config.profiles.start(client.clone(), changed.clone());
    tracing::info!("caches ready; scheduling");
    let mut service = Service {
        connections: Connections::new(
            client.clone(),
            config.hub_id.clone(),
            changed.clone(),
            config.secret_check_interval,
            computenet_members::credentials::SecretPolicy::new(config.credentials_namespace.clone()),
        ),
        overlay: Overlay::new(InFlight::new(config.concurrency, changed.clone(), fence.clone())),
        reconciler: Reconciler::new(client.clone(), config.member_timeout, config.backoff, key.clone()),
        scheduling: Scheduling::new(client.clone(), profiles.scheduler(), key.clone(), config.adapt.clone()),
        key,
        verified: crate::seal::Verified::default(),
        progress: config.progress.clone().map(|p| {
            let policy = computenet_members::credentials::SecretPolicy::new(config.credentials_namespace.clone());
            crate::progress::Progress::start(p, client.clone(), policy)
        }),
        reporters: Reporters::new(client.clone(), config.member_timeout),
        metering: crate::metering::Metering::new(client.clone(), config.metering.clone()),
        running_specs: crate::snapshot::RunningSpecs::default(),
        steps: crate::service::StepTimes::default(),
        events,
        member_timeout: config.member_timeout,
        web: config.web.clone(),
        hub,
    };
    let mut last_pass = Instant::now();
    let mut spacing = pass_spacing(Duration::ZERO, config.min_pass_spacing);
    loop {
        tokio::select! {
            biased;
            _ = fence.expired() => return Err(Error::LostLease("its deadline passed without a renewal".into())),
            _ = &mut *shutdown => { tracing::info!("shutting down"); return Ok(()); }
            r = &mut *lease_task => return Err(lost(r)),
            _ = changed.notified() => {}
            _ = tokio::time::sleep(config.interval) => {}
        }
        tokio::time::sleep(spacing.saturating_sub(last_pass.elapsed()).max(Duration::from_millis(50))).await;
        let started = Instant::now();
        last_pass = started;
        if let Some(scheduler) = profiles.updated() {
            service.set_scheduler(scheduler);
        }
        // A pass stops where it is when the lease goes (its work is cancelled with it).
        let computing = tokio::select! {
            biased;
            _ = fence.expired() => return Err(Error::LostLease("its deadline passed during a pass".into())),
            computing = service.pass() => computing,
        };
        spacing = pass_spacing(computing, config.min_pass_spacing);
        tracing::debug!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            computing_ms = computing.as_millis() as u64,
            in_flight = service.in_flight(),
            steps = %service.steps,
            "pass"
        );
        if let Some(web) = &config.web {
            web.metrics().cycle_duration(started.elapsed().as_secs_f64());
            web.metrics().invalid_objects(&service.hub.invalid_counts());
            web.set_ready(true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_are_spaced_by_their_cost_within_bounds() {
        let least = DEFAULT_MIN_PASS_SPACING;
        assert_eq!(pass_spacing(Duration::from_millis(5), least), least, "cheap passes: the least spacing");
        assert_eq!(pass_spacing(Duration::from_millis(100), least), Duration::from_secs(1));
        assert_eq!(pass_spacing(Duration::from_secs(3), least), MAX_PASS_SPACING, "a change never waits longer");
        let short = Duration::from_millis(50);
        assert_eq!(pass_spacing(Duration::from_millis(1), short), short, "a shorter least spacing is kept");
        assert_eq!(pass_spacing(Duration::from_millis(1), Duration::from_secs(60)), MAX_PASS_SPACING, "capped");
    }
}

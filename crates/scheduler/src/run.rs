//! `computenet serve`'s loop: the leader lease, the hub's caches, and a select over
//! shutdown, lease loss, changes and the interval, each turn running one
//! [`Service::pass`].

use crate::backoff::BackoffPolicy;
use crate::connections::Connections;
use crate::error::{Error, Result};
use crate::events::EventSink;
use crate::hub::Hub;
use crate::jobs::Reconciler;
use crate::lease::{self, LeaseConfig};
use crate::overlay::Overlay;
use crate::profiles::ProfileSource;
use crate::reporters::Reporters;
use crate::schedule::Scheduling;
use crate::service::Service;
use crate::work::InFlight;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{Api, Client};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// How `computenet serve` runs.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Longest wait between two passes (changes trigger one sooner).
    pub interval: Duration,
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

/// Longest wait for the hub's caches' first lists: a replica that cannot read the hub
/// cannot schedule, and says so ([`Error::CachesNotReady`]) instead of holding on.
const CACHES_TIMEOUT: Duration = Duration::from_secs(60);

/// Least time from the start of one pass to the start of the next: a pass reads every
/// job, so passes back to back would cost CPU that the API calls need.
const MIN_PASS_SPACING: Duration = Duration::from_millis(200);

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
    // Events are best effort: a few at a time, so they never crowd out the writes
    // that schedule and dispatch.
    let events = EventSink::start(client.clone(), (config.concurrency / 8).max(1));
    let hub = Hub::start(client.clone(), changed.clone(), events.clone(), CACHES_TIMEOUT).await?;
    let mut profiles = config.profiles.start(client.clone(), changed.clone());
    tracing::info!("caches ready; scheduling");
    let mut service = Service {
        connections: Connections::new(client.clone(), config.hub_id.clone(), changed.clone(), config.secret_check_interval),
        overlay: Overlay::new(InFlight::new(config.concurrency, changed.clone())),
        reconciler: Reconciler::new(client.clone(), config.member_timeout, config.backoff),
        scheduling: Scheduling::new(client.clone(), profiles.scheduler()),
        reporters: Reporters::new(client.clone(), config.member_timeout),
        events,
        member_timeout: config.member_timeout,
        web: config.web.clone(),
        hub,
    };
    tokio::pin!(shutdown);
    let mut last_pass = Instant::now();
    loop {
        tokio::select! {
            _ = &mut shutdown => { tracing::info!("shutting down"); return Ok(()); }
            r = &mut lease_task => {
                return Err(match r { Ok(Err(e)) => e, _ => Error::LostLease("lease task ended".into()) });
            }
            _ = changed.notified() => {}
            _ = tokio::time::sleep(config.interval) => {}
        }
        tokio::time::sleep(MIN_PASS_SPACING.saturating_sub(last_pass.elapsed()).max(Duration::from_millis(50))).await;
        let started = Instant::now();
        last_pass = started;
        if let Some(scheduler) = profiles.updated() {
            service.set_scheduler(scheduler);
        }
        service.pass().await;
        tracing::debug!(elapsed_ms = started.elapsed().as_millis() as u64, in_flight = service.in_flight(), "pass");
        if let Some(web) = &config.web {
            web.metrics().cycle_duration(started.elapsed().as_secs_f64());
            web.metrics().invalid_objects(&service.hub.invalid_counts());
            web.set_ready(true);
        }
    }
}

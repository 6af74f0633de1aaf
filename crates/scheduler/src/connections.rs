//! Connections to the members: connecting in the background (a slow or unreachable
//! member never holds up a pass), reconnecting when a MemberCluster's spec or the content
//! of the Secrets it references changes, reading each member's efficiency series, and the
//! members as a pass sees them.
//!
//! Secrets are re-read with `get` (the only verb the service's Role grants on them, and
//! it can be limited to named Secrets; a watch would need `list` and `watch` on every
//! Secret of the namespace): every `secret_check_interval`, and within a few seconds of a
//! member refusing the credentials (HTTP 401). A changed Secret reconnects the member;
//! the old connection keeps serving until the new one is made, so a rotation never
//! makes the member look lost.
//!
//! Before anything is read or sent, a MemberCluster's connection is checked
//! ([`credentials::check_spec`]): Secrets only in the service's namespace (and, once read,
//! only those labelled `computenet.io/credentials: "true"`), endpoints https unless
//! `insecureHTTP` allows http. A refused member stays not connected with the refusal's
//! reason on its Ready condition.

use crate::snapshot::MemberView;
use computenet_api::view;
use computenet_api::{MemberCluster, MemberClusterSpec, TrainingJob};
use computenet_members::credentials::{self, SecretPolicy};
use computenet_members::member::credentials_fingerprint;
use computenet_members::prometheus::{self, EfficiencyPoller, EfficiencyQueries, Reading};
use computenet_members::{Member, MemberNodes, Members};
use kube::Client;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Notify};

/// How long one connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Least time between two attempts to connect the same member.
const RECONNECT_INTERVAL: Duration = Duration::from_secs(5);
/// Least time between two reads of a member's Secrets while it refuses the credentials.
const CREDENTIALS_RECHECK: Duration = Duration::from_secs(3);
/// How often the referenced Secrets are re-read by default.
pub const DEFAULT_SECRET_CHECK_INTERVAL: Duration = Duration::from_secs(30);

/// Why a member is not connected: the Ready reason for a refusal (none for other
/// failures), and the message.
pub type ConnectError = (Option<&'static str>, String);
/// A finished connection: the member's name, the spec and the credentials' fingerprint
/// it was made from, and the member.
type Connected = (String, MemberClusterSpec, Result<(Member, u64), ConnectError>);
/// A finished read of a member's Secrets: the name, the spec, the fingerprint.
type Checked = (String, MemberClusterSpec, Result<u64, String>);

/// Whether a connected member's Secrets are due to be read again (pure): every
/// `interval`, or after [`CREDENTIALS_RECHECK`] once the member refused the credentials.
pub fn credentials_check_due(since_last: Option<Duration>, rejected: bool, interval: Duration) -> bool {
    match since_last {
        None => true,
        Some(elapsed) => elapsed >= interval || (rejected && elapsed >= CREDENTIALS_RECHECK),
    }
}

/// The connected members and what is known of the others.
#[allow(missing_debug_implementations)] // Member holds clients without Debug.
pub struct Connections {
    hub: Client,
    /// This hub's identity, on everything it creates on members.
    hub_id: String,
    changed: Arc<Notify>,
    members: Members,
    /// The spec each connection was made from (a changed spec reconnects).
    specs: HashMap<String, MemberClusterSpec>,
    /// Why a member could not be connected, by name.
    errors: HashMap<String, ConnectError>,
    /// Where Secrets may be read from.
    policy: SecretPolicy,
    /// Connections under way.
    connecting: std::collections::HashSet<String>,
    /// When each member's last connection attempt started.
    attempted: HashMap<String, std::time::Instant>,
    tx: mpsc::UnboundedSender<Connected>,
    rx: mpsc::UnboundedReceiver<Connected>,
    /// The credentials' fingerprint each connection was made from.
    fingerprints: HashMap<String, u64>,
    /// Members whose Secrets changed since they connected: reconnect.
    stale: std::collections::HashSet<String>,
    /// When each member's Secrets were last read for a check, and checks under way.
    checked: HashMap<String, std::time::Instant>,
    checking: std::collections::HashSet<String>,
    /// Members whose Secrets to read at the next chance (a dispatch got HTTP 401).
    recheck: std::collections::HashSet<String>,
    secret_check_interval: Duration,
    check_tx: mpsc::UnboundedSender<Checked>,
    check_rx: mpsc::UnboundedReceiver<Checked>,
    /// Readers of members' efficiency series, by member name.
    efficiency: HashMap<String, EfficiencyPoller>,
}

impl Connections {
    /// Connections whose Secrets are read as `policy` allows and re-read every
    /// `secret_check_interval`.
    pub fn new(
        hub: Client,
        hub_id: String,
        changed: Arc<Notify>,
        secret_check_interval: Duration,
        policy: SecretPolicy,
    ) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let (check_tx, check_rx) = mpsc::unbounded_channel();
        Connections {
            fingerprints: HashMap::new(),
            stale: Default::default(),
            checked: HashMap::new(),
            checking: Default::default(),
            recheck: Default::default(),
            secret_check_interval: secret_check_interval.max(Duration::from_secs(1)),
            check_tx,
            check_rx,
            hub,
            hub_id,
            changed,
            policy,
            members: Members::new(),
            specs: HashMap::new(),
            errors: HashMap::new(),
            connecting: Default::default(),
            attempted: HashMap::new(),
            tx,
            rx,
            efficiency: HashMap::new(),
        }
    }

    /// The connected members.
    pub fn members(&self) -> &Members {
        &self.members
    }

    /// Why a member is not connected, if it is not: the reason of a refusal, and the message.
    pub fn error(&self, name: &str) -> Option<(Option<&'static str>, &str)> {
        self.errors.get(name).map(|(reason, message)| (*reason, message.as_str()))
    }

    /// Has the member's Secrets read soon (its credentials were refused).
    pub fn recheck_credentials(&mut self, name: &str) {
        self.recheck.insert(name.to_string());
    }

    /// Takes in finished connections and Secret reads, and starts those the specs need:
    /// new members, changed specs, changed Secrets, and failed ones again (at most every
    /// few seconds). Removed members are dropped.
    pub fn sync(&mut self, specs: &[Arc<MemberCluster>]) {
        while let Ok((name, spec, result)) = self.rx.try_recv() {
            self.connecting.remove(&name);
            match result {
                Ok((member, fingerprint)) => {
                    tracing::info!(member = %name, "connected");
                    self.errors.remove(&name);
                    self.stale.remove(&name);
                    self.members.insert(name.clone(), member);
                    self.fingerprints.insert(name.clone(), fingerprint);
                    self.checked.insert(name.clone(), std::time::Instant::now());
                    self.specs.insert(name, spec);
                }
                Err((reason, e)) => {
                    // A refusal stays until the MemberCluster or the Secret changes: said once.
                    if self.errors.get(&name) != Some(&(reason, e.clone())) {
                        tracing::warn!(member = %name, error = %e, "member connection");
                    }
                    self.errors.insert(name, (reason, e));
                }
            }
        }
        while let Ok((name, spec, result)) = self.check_rx.try_recv() {
            self.checking.remove(&name);
            match result {
                // Read for the connection still in use: a different digest means new credentials.
                Ok(f) if self.specs.get(&name) == Some(&spec) && self.fingerprints.get(&name) != Some(&f) => {
                    tracing::info!(member = %name, "the member's Secret changed; reconnecting");
                    self.stale.insert(name);
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(member = %name, error = %e, "reading the member's Secret"),
            }
        }
        let wanted: HashMap<&str, &Arc<MemberCluster>> =
            specs.iter().filter_map(|m| Some((m.metadata.name.as_deref()?, m))).collect();
        let keep = |name: &String| wanted.contains_key(name.as_str());
        self.members.retain(|name, _| keep(name));
        self.specs.retain(|name, _| keep(name));
        self.errors.retain(|name, _| keep(name));
        self.attempted.retain(|name, _| keep(name));
        self.fingerprints.retain(|name, _| keep(name));
        self.stale.retain(keep);
        self.checked.retain(|name, _| keep(name));
        self.recheck.retain(keep);
        for (name, m) in &wanted {
            let current = self.specs.get(*name) == Some(&m.spec)
                && self.members.contains_key(*name)
                && !self.stale.contains(*name);
            let recent = self.attempted.get(*name).is_some_and(|t| t.elapsed() < RECONNECT_INTERVAL);
            if current {
                self.check_credentials(name, m);
                continue;
            }
            if recent || self.connecting.contains(*name) {
                continue;
            }
            self.connecting.insert(name.to_string());
            self.attempted.insert(name.to_string(), std::time::Instant::now());
            let (hub, changed, tx, spec) = (self.hub.clone(), self.changed.clone(), self.tx.clone(), (*m).clone());
            let hub_id = self.hub_id.clone();
            let policy = self.policy.clone();
            let name = name.to_string();
            tokio::spawn(async move {
                // The fingerprint is read before connecting: a Secret changed in between is
                // seen by the next check, never missed. The spec is checked before either,
                // so a refused connection reads no Secret.
                let connect = async {
                    credentials::check_spec(&spec.spec, &policy).map_err(|e| e.on(&name))?;
                    let fingerprint = credentials_fingerprint(&hub, &policy, &spec).await.map_err(|e| e.on(&name))?;
                    Member::connect(&hub, &policy, &spec, &hub_id, changed.clone()).await.map(|m| (m, fingerprint))
                };
                let result = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
                    Ok(r) => r.map_err(|e| (e.refusal(), e.to_string())),
                    Err(_) => Err((None, format!("member {name}: connecting took longer than {CONNECT_TIMEOUT:?}"))),
                };
                let _ = tx.send((name, spec.spec.clone(), result));
                changed.notify_one();
            });
        }
        self.sync_efficiency(specs);
    }

    /// Starts a read of a connected member's Secrets when one is due.
    fn check_credentials(&mut self, name: &str, m: &Arc<MemberCluster>) {
        if self.checking.contains(name) {
            return;
        }
        let rejected = self.recheck.contains(name) || self.members.get(name).is_some_and(Member::credentials_rejected);
        let since = self.checked.get(name).map(std::time::Instant::elapsed);
        if !credentials_check_due(since, rejected, self.secret_check_interval) {
            return;
        }
        self.recheck.remove(name);
        self.checking.insert(name.to_string());
        self.checked.insert(name.to_string(), std::time::Instant::now());
        let (hub, changed, tx, spec) = (self.hub.clone(), self.changed.clone(), self.check_tx.clone(), m.clone());
        let policy = self.policy.clone();
        let name = name.to_string();
        tokio::spawn(async move {
            let read = tokio::time::timeout(CONNECT_TIMEOUT, credentials_fingerprint(&hub, &policy, &spec)).await;
            let result = match read {
                Ok(r) => r.map_err(|e| e.to_string()),
                Err(_) => Err(format!("no answer within {CONNECT_TIMEOUT:?}")),
            };
            let _ = tx.send((name, spec.spec.clone(), result));
            changed.notify_one();
        });
    }

    /// Starts, restarts or stops efficiency readers as members name a Prometheus or not.
    fn sync_efficiency(&mut self, specs: &[Arc<MemberCluster>]) {
        let mut wanted = HashMap::new();
        for m in specs {
            let (Some(name), Some(p)) = (m.metadata.name.clone(), m.spec.prometheus.as_ref()) else { continue };
            // A refused connection (a Secret elsewhere, plain http) reads no series either.
            if credentials::check_spec(&m.spec, &self.policy).is_err() {
                continue;
            }
            let q = |query: &str| prometheus::expand(query, &name, &m.spec.site);
            let queries = EfficiencyQueries {
                url: p.url.clone(),
                insecure_http: p.insecure_http,
                ca_secret_ref: p.ca_secret_ref.clone(),
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
            match EfficiencyPoller::start(queries, self.hub.clone(), self.policy.clone(), self.changed.clone()) {
                Ok(poller) => {
                    self.efficiency.insert(name, poller);
                }
                Err(e) => tracing::warn!(member = %name, error = %e, "efficiency reader"),
            }
        }
    }

    /// A member's efficiency reading, unless it is older than three read intervals.
    fn fresh_reading(&self, name: &str) -> Option<Reading> {
        let poller = self.efficiency.get(name)?;
        let reading = poller.reading();
        let age = reading.at?.elapsed().unwrap_or_default();
        (age <= poller.queries.interval * 3 + Duration::from_secs(5)).then_some(reading)
    }

    /// Every MemberCluster as this pass sees it, by name.
    pub fn views(
        &self,
        specs: &[Arc<MemberCluster>],
        jobs: &[Arc<TrainingJob>],
        member_timeout: Duration,
    ) -> Vec<MemberView> {
        let mut specs: Vec<Arc<MemberCluster>> = specs.to_vec();
        specs.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        specs
            .into_iter()
            .map(|m| {
                let name = m.metadata.name.clone().unwrap_or_default();
                let measured = self.fresh_reading(&name);
                let Some(conn) = self.members.get(&name) else {
                    return MemberView {
                        member: m,
                        ready: false,
                        nodes: MemberNodes::None,
                        measured,
                        workload_kinds: Vec::new(),
                    };
                };
                let ready = conn.reachable(member_timeout).0 && conn.ever_reached();
                let admitted_here: Vec<&TrainingJob> = jobs
                    .iter()
                    .filter(|j| view::is_admitted(j) && view::placed_on(j) == Some(name.as_str()))
                    .map(|j| j.as_ref())
                    .collect();
                MemberView {
                    member: m,
                    ready,
                    nodes: conn.nodes(&admitted_here),
                    measured,
                    workload_kinds: conn.workload_kinds(),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_read_every_interval_and_soon_after_a_refusal() {
        let interval = Duration::from_secs(30);
        assert!(credentials_check_due(None, false, interval), "never read since connecting");
        assert!(!credentials_check_due(Some(Duration::from_secs(10)), false, interval));
        assert!(credentials_check_due(Some(Duration::from_secs(30)), false, interval));
        assert!(credentials_check_due(Some(Duration::from_secs(3)), true, interval), "refused: re-read soon");
        assert!(!credentials_check_due(Some(Duration::from_secs(1)), true, interval), "but not on every pass");
    }
}

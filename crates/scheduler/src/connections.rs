//! Connections to the members: connecting in the background (a slow or unreachable
//! member never holds up a pass), reconnecting when a MemberCluster's spec changes,
//! reading each member's efficiency series, and the members as a pass sees them.

use crate::snapshot::MemberView;
use computenet_api::view;
use computenet_api::{MemberCluster, MemberClusterSpec, TrainingJob};
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

type Connected = (String, MemberClusterSpec, Result<Member, String>);

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
    errors: HashMap<String, String>,
    /// Connections under way.
    connecting: std::collections::HashSet<String>,
    /// When each member's last connection attempt started.
    attempted: HashMap<String, std::time::Instant>,
    tx: mpsc::UnboundedSender<Connected>,
    rx: mpsc::UnboundedReceiver<Connected>,
    /// Readers of members' efficiency series, by member name.
    efficiency: HashMap<String, EfficiencyPoller>,
}

impl Connections {
    pub fn new(hub: Client, hub_id: String, changed: Arc<Notify>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Connections {
            hub,
            hub_id,
            changed,
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

    /// Why a member is not connected, if it is not.
    pub fn error(&self, name: &str) -> Option<&str> {
        self.errors.get(name).map(String::as_str)
    }

    /// Takes in finished connections and starts those the specs need: new members,
    /// changed specs, and failed ones again (at most every few seconds). Removed members
    /// are dropped.
    pub fn sync(&mut self, specs: &[Arc<MemberCluster>]) {
        while let Ok((name, spec, result)) = self.rx.try_recv() {
            self.connecting.remove(&name);
            match result {
                Ok(member) => {
                    tracing::info!(member = %name, "connected");
                    self.errors.remove(&name);
                    self.members.insert(name.clone(), member);
                    self.specs.insert(name, spec);
                }
                Err(e) => {
                    tracing::warn!(member = %name, error = %e, "member connection");
                    self.errors.insert(name, e);
                }
            }
        }
        let wanted: HashMap<&str, &Arc<MemberCluster>> =
            specs.iter().filter_map(|m| Some((m.metadata.name.as_deref()?, m))).collect();
        self.members.retain(|name, _| wanted.contains_key(name.as_str()));
        self.specs.retain(|name, _| wanted.contains_key(name.as_str()));
        self.errors.retain(|name, _| wanted.contains_key(name.as_str()));
        self.attempted.retain(|name, _| wanted.contains_key(name.as_str()));
        for (name, m) in &wanted {
            let current = self.specs.get(*name) == Some(&m.spec) && self.members.contains_key(*name);
            let recent = self.attempted.get(*name).is_some_and(|t| t.elapsed() < RECONNECT_INTERVAL);
            if current || recent || self.connecting.contains(*name) {
                continue;
            }
            self.connecting.insert(name.to_string());
            self.attempted.insert(name.to_string(), std::time::Instant::now());
            let (hub, changed, tx, spec) = (self.hub.clone(), self.changed.clone(), self.tx.clone(), (*m).clone());
            let hub_id = self.hub_id.clone();
            let name = name.to_string();
            tokio::spawn(async move {
                let result =
                    match tokio::time::timeout(CONNECT_TIMEOUT, Member::connect(&hub, &spec, &hub_id, changed.clone()))
                        .await
                    {
                        Ok(r) => r.map_err(|e| e.to_string()),
                        Err(_) => Err(format!("member {name}: connecting took longer than {CONNECT_TIMEOUT:?}")),
                    };
                let _ = tx.send((name, spec.spec.clone(), result));
                changed.notify_one();
            });
        }
        self.sync_efficiency(specs);
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
                    return MemberView { member: m, ready: false, nodes: MemberNodes::None, measured };
                };
                let ready = conn.reachable(member_timeout).0 && conn.ever_reached();
                let admitted_here: Vec<&TrainingJob> = jobs
                    .iter()
                    .filter(|j| view::is_admitted(j) && view::placed_on(j) == Some(name.as_str()))
                    .map(|j| j.as_ref())
                    .collect();
                MemberView { member: m, ready, nodes: conn.nodes(&admitted_here), measured }
            })
            .collect()
    }
}

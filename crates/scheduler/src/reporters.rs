//! Reporters: after each pass, what the pool looks like goes out: MemberCluster status
//! (capacity, readiness, measured efficiency), ComputeQueue status (the shared
//! [`view::queue_usage`], so `kubectl get cnq`, the dashboard and the plugin agree), and
//! the observations behind `/metrics`, `/api/pool` and the dashboard.

use crate::connections::Connections;
use crate::metering::{Metering, QueueStanding};
use crate::observe;
use crate::snapshot::{Built, MemberView};
use crate::status;
use crate::web::WebState;
use computenet_api::compute_queue::QuotaUsage;
use computenet_api::conditions::{self, reasons, types};
use computenet_api::member_cluster::AcceleratorCapacity;
use computenet_api::usage::{BudgetSpec, BudgetStatus, ComputeUsage};
use computenet_api::view::{self, QueueUsage};
use computenet_api::{
    convert, ComputeCohort, ComputeCohortStatus, ComputeQueue, ComputeQueueStatus, MemberClusterSpec,
    MemberClusterStatus, TrainingJob,
};
use computenet_core::queue::{CohortProblemKind, CohortTree, QuotaLedger, MAX_COHORT_DEPTH};
use computenet_core::{Cluster, ResourceName};
use computenet_members::credentials;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Least time between two writes of a member's or a queue's status when only its numbers
/// changed (a changed condition is written at once): in a burst the numbers change with
/// every admission, and at 1 s these writes were 0.05 hub writes per job of a 2,000-job
/// burst.
const STATUS_REFRESH: Duration = Duration::from_secs(5);
/// Queues' job counts are taken at most this often (a count reads every job).
const COUNT_EVERY: Duration = Duration::from_secs(1);
/// A ready member's heartbeat is written at least this often.
const HEARTBEAT: Duration = Duration::from_secs(10);
/// Least time between two usage observations (they sum the month's usage rows; usage
/// changes when attempts end, shares and budgets with the queues' status).
const USAGE_REFRESH: Duration = Duration::from_secs(10);

/// Whether a member is ready, and why not.
#[derive(Debug, Clone, PartialEq)]
pub struct Readiness {
    pub ready: bool,
    pub reason: &'static str,
    pub message: String,
}

/// A member's status from its cluster in the snapshot (pure).
pub fn member_status(
    cluster: &Cluster,
    readiness: &Readiness,
    measured: Option<computenet_api::member_cluster::MeasuredEfficiency>,
    previous: &MemberClusterStatus,
    generation: Option<i64>,
    now: Timestamp,
) -> MemberClusterStatus {
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
    let message = if readiness.ready { format!("{schedulable} schedulable nodes") } else { readiness.message.clone() };
    MemberClusterStatus {
        gpus: Some(format!("{gpus_free}/{gpus_total}")),
        cpus: Some(format!("{cpu_free}/{cpu_total}")),
        accelerators: by_type
            .into_iter()
            .map(|(accelerator, (total, free, largest))| AcceleratorCapacity {
                accelerator,
                total,
                free,
                largest_free_slot: largest,
            })
            .collect(),
        free_nodes: computenet_api::convert::free_node_groups(cluster),
        nodes: Some(schedulable),
        measured,
        last_heartbeat: if readiness.ready { Some(Time(now)) } else { previous.last_heartbeat.clone() },
        conditions: vec![conditions::condition(
            &previous.conditions,
            types::READY,
            readiness.ready,
            readiness.reason,
            &message,
            generation,
            now,
        )],
    }
}

/// The TransportSecure condition of a member that names an HTTP endpoint (pure): false,
/// as a warning, while `insecureHTTP` allows a plain http:// one; `None` for a member
/// without one (a Kubernetes member's kubeconfig must name an https server).
pub fn transport_secure(spec: &MemberClusterSpec) -> Option<(bool, &'static str, String)> {
    let slurm = spec.slurm.iter().map(|s| ("slurmrestd endpoint", s.endpoint.as_str(), s.insecure_http));
    let prometheus = spec.prometheus.iter().map(|p| ("Prometheus URL", p.url.as_str(), p.insecure_http));
    let endpoints: Vec<_> = slurm.chain(prometheus).collect();
    if endpoints.is_empty() {
        return None;
    }
    let insecure: Vec<String> = endpoints
        .iter()
        .filter_map(|(what, url, allowed)| match credentials::check_endpoint(what, "", url, *allowed) {
            Ok(credentials::Transport::Tls) => None,
            Ok(credentials::Transport::InsecureAllowed) => {
                Some(format!("the {what} {url} is plain http (allowed by insecureHTTP: credentials and answers cross the network unencrypted)"))
            }
            // The Ready condition says why it is refused.
            Err(_) => Some(format!("the {what} {url} is not https (refused: see Ready)")),
        })
        .collect();
    Some(if insecure.is_empty() {
        (true, reasons::TLS, "every endpoint is https".to_string())
    } else {
        (false, reasons::INSECURE_HTTP, insecure.join("; "))
    })
}

/// A queue's status from its usage, its ordering share and its standing (pure).
pub fn queue_status(
    usage: &QueueUsage,
    share: Option<f64>,
    standing: Option<&QueueStanding>,
    budget: Option<&BudgetSpec>,
) -> ComputeQueueStatus {
    let count = |n: u64| i32::try_from(n).unwrap_or(i32::MAX);
    let round = |v: f64| (v * 1e4).round() / 1e4;
    let budget_status = standing.and_then(|s| s.budget.clone());
    ComputeQueueStatus {
        pending: count(usage.pending),
        admitted: count(usage.admitted),
        running: count(usage.running),
        gpu_usage: Some(usage.gpu_usage()),
        usage: Vec::new(),
        share: share.filter(|s| s.is_finite()).map(round),
        past_share: standing.map(|s| round(s.past_share)),
        budget_usage: budget.zip(budget_status.as_ref()).map(|(b, s)| budget_words(b, s)),
        budget: budget_status,
        conditions: Vec::new(),
    }
}

/// Why a cohort's place in the tree is not what its spec says, if it is not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CohortPlace {
    /// The tree uses its parent (or it names none).
    InTree,
    /// Its spec does not convert (the tree sees a root without quota), and why.
    Invalid(String),
    /// Its parent is ignored: the chain loops or goes too deep.
    Cut(CohortProblemKind),
}

fn amount_text(resource: &ResourceName, amount: u64) -> String {
    match resource {
        ResourceName::Cpu if amount % 1000 != 0 => format!("{amount}m"),
        ResourceName::Cpu => (amount / 1000).to_string(),
        _ => amount.to_string(),
    }
}

fn resource_text(resource: &ResourceName) -> String {
    match resource {
        ResourceName::Cpu => "cpu".into(),
        ResourceName::Memory => "memory".into(),
        ResourceName::Accelerators => "accelerators".into(),
        ResourceName::Extended(name) => name.clone(),
    }
}

/// A cohort's status (pure): per quota key of its subtree, (resource, accelerator, what it
/// reserves or uses, its capacity), and whether the tree uses its parent.
pub fn cohort_status(
    usage: &[(ResourceName, Option<String>, u64, u64)],
    place: &CohortPlace,
    previous: &[Condition],
    generation: Option<i64>,
    now: Timestamp,
) -> ComputeCohortStatus {
    let gpus: Vec<&(ResourceName, Option<String>, u64, u64)> =
        usage.iter().filter(|u| u.0 == ResourceName::Accelerators).collect();
    // The all-types quota when there is one, else the sum of the per-type ones.
    let gpu_usage = match gpus.iter().find(|u| u.1.is_none()) {
        Some(all) => Some((all.2, all.3)),
        None if gpus.is_empty() => None,
        None => Some(gpus.iter().fold((0u64, 0u64), |(v, c), u| (v.saturating_add(u.2), c.saturating_add(u.3)))),
    };
    let (accepted, reason, message) = match place {
        CohortPlace::InTree => (true, reasons::IN_TREE, String::new()),
        CohortPlace::Invalid(why) => (
            false,
            reasons::INVALID_SPEC,
            format!("the spec is invalid ({why}): queues under it see a root without quota"),
        ),
        CohortPlace::Cut(CohortProblemKind::Loop) => {
            (false, reasons::PARENT_LOOP, "its parent chain comes back to it: it counts as a root".to_string())
        }
        CohortPlace::Cut(CohortProblemKind::TooDeep) => (
            false,
            reasons::TREE_TOO_DEEP,
            format!("it would sit deeper than {MAX_COHORT_DEPTH} levels: it counts as a root"),
        ),
    };
    ComputeCohortStatus {
        // Set by the caller from metering's standings.
        budget: None,
        budget_usage: None,
        gpu_usage: gpu_usage.map(|(v, c)| format!("{v}/{c}")),
        usage: usage
            .iter()
            .map(|(resource, accelerator, v, c)| QuotaUsage {
                resource: resource_text(resource),
                accelerator: accelerator.clone(),
                used: amount_text(resource, *v),
                nominal: amount_text(resource, *c),
            })
            .collect(),
        conditions: vec![conditions::condition(
            previous,
            types::PARENT_ACCEPTED,
            accepted,
            reason,
            &message,
            generation,
            now,
        )],
    }
}

/// "spent/limit unit" of a budget's first limit, for `kubectl get cnq`.
pub fn budget_words(budget: &BudgetSpec, status: &BudgetStatus) -> String {
    let spent = computenet_core::usage::Amounts::from(status.spent);
    let words = if let Some(limit) = budget.gpu_hours {
        format!("{:.2}/{limit} GPU-h", spent.gpu_hours())
    } else if let Some(limit) = budget.kilowatt_hours {
        format!("{:.2}/{limit} kWh", spent.energy_kwh)
    } else {
        format!("{:.2}/{} cost", spent.cost, budget.cost.unwrap_or(0.0))
    };
    if status.exhausted {
        format!("{words} (exhausted)")
    } else {
        words
    }
}

/// What the reporters remember between passes: when they last wrote each object.
#[allow(missing_debug_implementations)] // kube::Client has no Debug implementation.
pub struct Reporters {
    client: Client,
    member_timeout: Duration,
    member_writes: HashMap<String, Instant>,
    queue_writes: HashMap<String, Instant>,
    cohort_writes: HashMap<String, Instant>,
    /// When the usage observation was last published.
    usage_observed: Option<Instant>,
    /// When the queues' job counts were last taken.
    queues_counted: Option<Instant>,
    /// When the pool's observation was last published.
    observed: Option<Instant>,
}

impl Reporters {
    pub fn new(client: Client, member_timeout: Duration) -> Self {
        Reporters {
            client,
            member_timeout,
            member_writes: HashMap::new(),
            queue_writes: HashMap::new(),
            cohort_writes: HashMap::new(),
            usage_observed: None,
            queues_counted: None,
            observed: None,
        }
    }

    fn readiness(&self, connections: &Connections, name: &str, ready: bool) -> Readiness {
        match connections.members().get(name) {
            None => {
                let (refusal, message) = connections.error(name).unwrap_or((None, "not connected yet"));
                Readiness {
                    ready: false,
                    reason: refusal.unwrap_or(reasons::NOT_CONNECTED),
                    message: message.to_string(),
                }
            }
            Some(_) if ready => Readiness { ready: true, reason: reasons::REACHABLE, message: String::new() },
            Some(c) => Readiness {
                ready: false,
                reason: c.unready_reason(),
                message: c.reachable(self.member_timeout).1.unwrap_or_else(|| "no successful contact yet".into()),
            },
        }
    }

    /// Writes each member's status when its conditions changed, its numbers changed (at
    /// most every [`STATUS_REFRESH`]), or a heartbeat is due.
    pub async fn members(&mut self, built: &Built, views: &[MemberView], connections: &Connections) {
        let now = Timestamp::now();
        for (i, v) in views.iter().enumerate() {
            let name = v.member.metadata.name.clone().unwrap_or_default();
            let readiness = self.readiness(connections, &name, v.ready);
            let previous = v.member.status.clone().unwrap_or_default();
            let mut status = member_status(
                &built.pool.clusters[i],
                &readiness,
                built.measured[i].clone(),
                &previous,
                v.member.metadata.generation,
                now,
            );
            if let Some((secure, reason, message)) = transport_secure(&v.member.spec) {
                let c = conditions::condition(
                    &previous.conditions,
                    types::TRANSPORT_SECURE,
                    secure,
                    reason,
                    &message,
                    v.member.metadata.generation,
                    now,
                );
                status.conditions = conditions::upsert(&status.conditions, c);
            }
            let same_conditions = conditions::same(&status.conditions, &previous.conditions);
            let strip = |s: &MemberClusterStatus| MemberClusterStatus {
                last_heartbeat: None,
                conditions: Vec::new(),
                ..s.clone()
            };
            let same_numbers = strip(&status) == strip(&previous);
            let since = self.member_writes.get(&name).map(Instant::elapsed);
            let refresh_due = since.is_none_or(|t| t >= STATUS_REFRESH);
            let beat_due = since.is_none_or(|t| t >= HEARTBEAT);
            if !same_conditions || (!same_numbers && refresh_due) || (readiness.ready && beat_due) {
                match status::member_cluster(&self.client, &name, &status).await {
                    Ok(()) => {
                        self.member_writes.insert(name, Instant::now());
                    }
                    Err(e) => tracing::warn!(member = %name, error = %e, "member status write failed"),
                }
            }
        }
        let live: std::collections::HashSet<String> =
            views.iter().filter_map(|v| v.member.metadata.name.clone()).collect();
        self.member_writes.retain(|n, _| live.contains(n));
    }

    /// Writes each queue's counts and usage when they changed (counted at most every
    /// [`COUNT_EVERY`], written at most every [`STATUS_REFRESH`]).
    pub async fn queues(
        &mut self,
        queues: &[Arc<ComputeQueue>],
        jobs: &[Arc<TrainingJob>],
        built: &Built,
        metering: &Metering,
    ) {
        // Counting reads every job: at most every COUNT_EVERY, and only queues due a write.
        if self.queues_counted.is_some_and(|t| t.elapsed() < COUNT_EVERY) {
            return;
        }
        self.queues_counted = Some(Instant::now());
        for q in queues {
            let name = q.metadata.name.clone().unwrap_or_default();
            if self.queue_writes.get(&name).is_some_and(|t| t.elapsed() < STATUS_REFRESH) {
                continue;
            }
            let core = built.queues.iter().find(|c| c.name == name);
            let status = queue_status(
                &view::queue_usage(&name, core, jobs.iter().map(AsRef::as_ref)),
                metering.share(&name),
                metering.standing(&name),
                q.spec.budget.as_ref(),
            );
            if q.status.as_ref() != Some(&status) {
                match status::compute_queue(&self.client, &name, &status).await {
                    Ok(()) => {
                        self.queue_writes.insert(name, Instant::now());
                    }
                    Err(e) => tracing::warn!(queue = %name, error = %e, "queue status write failed"),
                }
            }
        }
    }

    /// Writes each cohort's usage and place in the tree when they changed (at most every
    /// [`STATUS_REFRESH`], at once when a condition changed).
    pub async fn cohorts(&mut self, cohorts: &[Arc<ComputeCohort>], built: &Built, metering: &Metering) {
        if cohorts.is_empty() {
            return;
        }
        let now = Timestamp::now();
        let ledger = QuotaLedger::with_running(&built.queues, &built.cohorts, &built.running);
        let tree = CohortTree::new(&built.queues, &built.cohorts);
        for c in cohorts {
            let name = c.metadata.name.clone().unwrap_or_default();
            let place = match convert::cohort(&name, &c.spec) {
                Err(e) => CohortPlace::Invalid(e.to_string()),
                Ok(_) => tree
                    .problems()
                    .iter()
                    .find(|p| p.cohort == name)
                    .map_or(CohortPlace::InTree, |p| CohortPlace::Cut(p.kind)),
            };
            let previous = c.status.clone().unwrap_or_default();
            let mut status =
                cohort_status(&ledger.cohort_usage(&name), &place, &previous.conditions, c.metadata.generation, now);
            status.budget = metering.cohort_budget(&name).map(|(b, _)| b.clone());
            status.budget_usage = c.spec.budget.as_ref().zip(status.budget.as_ref()).map(|(b, s)| budget_words(b, s));
            let same_conditions = conditions::same(&status.conditions, &previous.conditions);
            let strip = |s: &ComputeCohortStatus| ComputeCohortStatus { conditions: Vec::new(), ..s.clone() };
            let due = self.cohort_writes.get(&name).is_none_or(|t| t.elapsed() >= STATUS_REFRESH);
            if !same_conditions || (strip(&status) != strip(&previous) && due) {
                match status::compute_cohort(&self.client, &name, &status).await {
                    Ok(()) => {
                        self.cohort_writes.insert(name, Instant::now());
                    }
                    Err(e) => tracing::warn!(cohort = %name, error = %e, "cohort status write failed"),
                }
            }
        }
        let live: std::collections::HashSet<String> = cohorts.iter().filter_map(|c| c.metadata.name.clone()).collect();
        self.cohort_writes.retain(|n, _| live.contains(n));
    }

    /// Publishes the pool's observation to the metrics and the dashboard, at most every
    /// [`COUNT_EVERY`].
    pub fn observation(
        &mut self,
        web: &WebState,
        built: &Built,
        views: &[MemberView],
        queues: &[Arc<ComputeQueue>],
        jobs: &[Arc<TrainingJob>],
        now: Timestamp,
    ) {
        // It reads every job: at most every COUNT_EVERY.
        if self.observed.is_some_and(|t| t.elapsed() < COUNT_EVERY) {
            return;
        }
        self.observed = Some(Instant::now());
        let heartbeats = observe::heartbeats(views.iter().map(|v| v.member.as_ref()));
        web.publish(observe::observe(built, queues, jobs, &heartbeats, view::unix(now), web.top_n()));
    }

    /// Publishes the usage panel's observation from the usage store and the queues' status,
    /// at most every [`USAGE_REFRESH`].
    pub fn usage(&mut self, web: &WebState, usage: &[Arc<ComputeUsage>], queues: &[Arc<ComputeQueue>], now: Timestamp) {
        if self.usage_observed.is_some_and(|t| t.elapsed() < USAGE_REFRESH) {
            return;
        }
        web.publish_usage(observe::usage(usage, queues, view::unix(now)));
        self.usage_observed = Some(Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use computenet_core::{ClusterEfficiency, ClusterKind, Node, NodeCapacity};

    #[test]
    fn plain_http_allowed_by_insecure_http_is_a_warning_condition() {
        let spec = |slurm: serde_json::Value| -> MemberClusterSpec {
            serde_json::from_value(serde_json::json!({"kind": "HPC", "site": "n", "slurm": slurm})).expect("spec")
        };
        let token = serde_json::json!({"name": "t", "namespace": "computenet-system", "key": "token"});
        let https = spec(serde_json::json!({"endpoint": "https://s:6820", "userName": "u", "tokenSecretRef": token}));
        assert_eq!(transport_secure(&https).map(|t| (t.0, t.1)), Some((true, "TLS")));
        let http = spec(
            serde_json::json!({"endpoint": "http://s:6820", "insecureHTTP": true, "userName": "u", "tokenSecretRef": token}),
        );
        let (secure, reason, message) = transport_secure(&http).expect("a condition");
        assert_eq!((secure, reason), (false, "InsecureHTTP"));
        assert!(message.contains("slurmrestd endpoint http://s:6820 is plain http (allowed"), "{message}");
        let refused = spec(serde_json::json!({"endpoint": "http://s:6820", "userName": "u", "tokenSecretRef": token}));
        assert_eq!(transport_secure(&refused).map(|t| (t.0, t.1)), Some((false, "InsecureHTTP")));
        let kubernetes: MemberClusterSpec = serde_json::from_value(serde_json::json!({"kind": "AI", "site": "w",
            "kubernetes": {"kubeconfigSecretRef": {"name": "k", "namespace": "computenet-system", "key": "kubeconfig"}}}))
        .expect("spec");
        assert_eq!(transport_secure(&kubernetes), None);
    }

    fn node(name: &str, gpus: (u32, u32), unschedulable: bool) -> Node {
        Node {
            name: name.into(),
            accelerator: Some("A100-80G".into()),
            allocatable: NodeCapacity {
                cpu_millis: 64_000,
                memory_bytes: 1 << 39,
                accelerators: gpus.0,
                extended: BTreeMap::new(),
            },
            allocated: NodeCapacity {
                cpu_millis: 8_000,
                memory_bytes: 0,
                accelerators: gpus.1,
                extended: BTreeMap::new(),
            },
            topology_domain: String::new(),
            unschedulable,
        }
    }

    #[test]
    fn member_status_counts_free_capacity_and_keeps_the_heartbeat_while_not_ready() {
        let cluster = Cluster {
            workload_kinds: Vec::new(),
            tenants: None,
            name: "ai-1".into(),
            kind: ClusterKind::AI,
            site: "s".into(),
            ready: true,
            cordoned: false,
            efficiency: ClusterEfficiency::default(),
            data_sets: Vec::new(),
            nodes: vec![node("a", (8, 2), false), node("b", (8, 0), false), node("c", (8, 0), true)],
        };
        let t0 = Timestamp::from_second(1_000).unwrap();
        let ready = Readiness { ready: true, reason: reasons::REACHABLE, message: String::new() };
        let s = member_status(&cluster, &ready, None, &MemberClusterStatus::default(), Some(1), t0);
        // The unschedulable node counts in the totals, with nothing free.
        assert_eq!((s.gpus.as_deref(), s.cpus.as_deref(), s.nodes), (Some("14/24"), Some("112/192"), Some(2)));
        assert_eq!(s.accelerators[0].largest_free_slot, 8);
        assert_eq!(s.last_heartbeat, Some(Time(t0)));
        assert_eq!(s.conditions[0].message, "2 schedulable nodes");
        let lost = Readiness { ready: false, reason: "Unreachable", message: "connection refused".into() };
        let t1 = Timestamp::from_second(2_000).unwrap();
        let s2 = member_status(&cluster, &lost, None, &s, Some(1), t1);
        assert_eq!(s2.last_heartbeat, Some(Time(t0)), "the last contact stays");
        assert_eq!((s2.conditions[0].status.as_str(), s2.conditions[0].reason.as_str()), ("False", "Unreachable"));
        assert_eq!(s2.conditions[0].last_transition_time, Time(t1));
    }

    #[test]
    fn queue_status_shows_the_shared_usage() {
        let usage =
            QueueUsage { pending: 3, admitted: 2, running: 1, accelerators_used: 12, accelerators_quota: Some(16) };
        let s = queue_status(&usage, None, None, None);
        assert_eq!((s.pending, s.admitted, s.running, s.gpu_usage.as_deref()), (3, 2, 1, Some("12/16")));
        assert_eq!((s.share, s.past_share, s.budget, s.budget_usage), (None, None, None, None));
    }

    #[test]
    fn queue_status_shows_share_past_share_and_the_budget() {
        let budget: BudgetSpec =
            serde_json::from_value(serde_json::json!({"period": "Day", "gpuHours": 10.0})).unwrap();
        let spent = computenet_core::usage::Amounts { gpu_seconds: 12.5 * 3_600.0, ..Default::default() };
        let status = BudgetStatus {
            period_start: Time(Timestamp::from_second(0).unwrap()),
            period_end: Time(Timestamp::from_second(86_400).unwrap()),
            spent: spent.into(),
            exhausted: true,
            message: Some("12.5 of 10 GPU-hours".into()),
        };
        let standing = QueueStanding {
            past_share: 0.123_456,
            budget: Some(status),
            budget_ratio: Some(1.25),
            held_by_cohort: None,
        };
        let s = queue_status(&QueueUsage::default(), Some(0.5), Some(&standing), Some(&budget));
        assert_eq!((s.share, s.past_share), (Some(0.5), Some(0.1235)));
        assert_eq!(s.budget_usage.as_deref(), Some("12.50/10 GPU-h (exhausted)"));
        assert!(s.budget.is_some_and(|b| b.exhausted));
    }

    #[test]
    fn cohort_status_shows_usage_and_a_cut_parent() {
        let now = Timestamp::from_second(1_000).expect("time");
        let usage = [
            (ResourceName::Accelerators, Some("H800".to_string()), 6, 8),
            (ResourceName::Accelerators, Some("A100".to_string()), 1, 4),
            (ResourceName::Cpu, None, 1_500, 64_000),
        ];
        let s = cohort_status(&usage, &CohortPlace::InTree, &[], Some(2), now);
        assert_eq!(s.gpu_usage.as_deref(), Some("7/12"));
        assert_eq!(
            (s.usage[2].resource.as_str(), s.usage[2].used.as_str(), s.usage[2].nominal.as_str()),
            ("cpu", "1500m", "64")
        );
        assert_eq!((s.conditions[0].status.as_str(), s.conditions[0].reason.as_str()), ("True", "InTree"));
        let looped = cohort_status(&usage, &CohortPlace::Cut(CohortProblemKind::Loop), &s.conditions, Some(2), now);
        assert_eq!(
            (looped.conditions[0].status.as_str(), looped.conditions[0].reason.as_str()),
            ("False", "ParentLoop")
        );
        let deep = cohort_status(&[], &CohortPlace::Cut(CohortProblemKind::TooDeep), &[], None, now);
        assert_eq!(deep.gpu_usage, None);
        assert!(deep.conditions[0].message.contains("deeper than 16 levels"), "{}", deep.conditions[0].message);
    }
}

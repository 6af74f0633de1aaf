//! Metering: every ended job attempt is recorded once in the usage store
//! (`ComputeUsage`, one object per queue and UTC day), and the store feeds fair share
//! with memory, budgets, the usage counters and `kubectl computenet usage`.
//!
//! Exactly once, across crashes and leader changes: an attempt's key (`<uid>/<attempt>`)
//! is written into its day object together with its usage (one replace under the
//! object's resourceVersion), and only then is the job's `status.meteredThrough` moved
//! past it (server-side apply with this module's own field manager). A leader that dies
//! in between leaves the key in the object: the next one finds it and only moves the
//! watermark. An object keeps its latest [`usage::MAX_RECORDED_KEYS`] keys and one write adds at
//! most [`MAX_RECORDS_PER_WRITE`], so a key stays until well after its watermark moved.
//!
//! A deleted job keeps its finalizer until its last attempt is recorded (at most
//! [`DELETION_GRACE`]). A job that leaves the hub before (its finalizer removed by hand,
//! or after the grace) is recorded from what this process last saw of it, ended when it
//! was found gone; only a restart in between loses that record.
//!
//! Pure parts, unit-tested: [`ended`] (a job's unrecorded attempts with their usage),
//! [`plan`] (which objects to write and which jobs to mark), [`fair_share`] (past shares
//! and budgets per queue), [`housekeeping`] (compaction and retention). The rest is IO.

use crate::error::{Error, Result};
use crate::lease;
use crate::snapshot::Built;
use computenet_api::usage::{
    self, AttemptSpan, BudgetStatus, EndedAttempt, EnergySource, UsageRecord, MAX_RECORDS_PER_WRITE,
};
use computenet_api::{view, ComputeQueue, ComputeUsage, TrainingJob};
use computenet_core::usage::{attempt_amounts, decay, past_share, quota_amounts, Amounts, AttemptShape, DecayedUsage};
use computenet_core::{ClusterEfficiency, Queue, RunningJob, ThroughputModel};
use futures::FutureExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// The field manager of `status.meteredThrough`.
pub const FIELD_MANAGER: &str = "computenet-metering";

/// How long a deleted job waits for its last attempt to be recorded before its finalizer
/// goes anyway (the record is then lost, and counted).
pub const DELETION_GRACE: Duration = Duration::from_secs(120);

/// Least time between two readings of the whole store for past shares and budgets.
const STANDINGS_REFRESH: Duration = Duration::from_secs(2);

/// How often compaction and retention run.
const HOUSEKEEPING_INTERVAL: Duration = Duration::from_secs(600);

/// Objects compacted or deleted per housekeeping round.
const HOUSEKEEPING_BATCH: usize = 50;

/// Past usage older than this many half lives weighs under 1e-6 and is not read.
const HALF_LIVES_READ: f64 = 20.0;

/// Metering's settings (flags of `computenet serve`).
#[derive(Debug, Clone, PartialEq)]
pub struct MeteringConfig {
    /// Length of a usage row's time bucket, seconds (`--usage-bucket-s`).
    pub bucket_s: u64,
    /// Least time between two writes of the store (`--usage-flush-interval-s`).
    pub flush_interval: Duration,
    /// Half life of past usage in fair share, seconds (`--fair-share-half-life-h`); 0: plain DRF.
    pub half_life_s: f64,
    /// Days a day object keeps hourly rows, records and keys (`--usage-raw-retention-days`).
    pub raw_retention_days: u64,
    /// Days a day object is kept at all (`--usage-retention-days`).
    pub retention_days: u64,
}

impl Default for MeteringConfig {
    fn default() -> Self {
        MeteringConfig {
            bucket_s: 3_600,
            flush_interval: Duration::from_secs(10),
            half_life_s: 0.0,
            raw_retention_days: 7,
            retention_days: 400,
        }
    }
}

/// The recorded attempts' usage of a member: what [`ended`] prices an attempt with.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberPricing {
    pub site: String,
    pub efficiency: ClusterEfficiency,
    /// The power scale comes from a measured power reading.
    pub measured: bool,
}

/// Each member's pricing, from the pool as built (measured efficiency applied).
pub fn pricing(built: &Built) -> BTreeMap<String, MemberPricing> {
    built
        .pool
        .clusters
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let measured = built.measured.get(i).and_then(Option::as_ref).is_some_and(|m| m.power_scale.is_some());
            (c.name.clone(), MemberPricing { site: c.site.clone(), efficiency: c.efficiency.clone(), measured })
        })
        .collect()
}

/// An attempt's shape as admitted (its status); the spec only for attempts recorded
/// before the status kept it (the spec is frozen while a job is admitted, but may change
/// once an attempt has ended).
fn shape<'a>(tj: &TrainingJob, span: &'a AttemptSpan, seconds: f64) -> AttemptShape<'a> {
    let per_replica = view::per_replica(tj);
    let replicas = u64::try_from(span.replicas.max(0)).unwrap_or(0);
    AttemptShape {
        accelerator: span.accelerator.as_deref(),
        devices: span.gpus.unwrap_or_else(|| u64::from(per_replica.accelerators).saturating_mul(replicas)),
        cpu_millis: span.cpu_millis.unwrap_or_else(|| per_replica.cpu_millis.saturating_mul(replicas)),
        seconds,
    }
}

/// `tj`'s ended attempts not yet recorded, with what each used (pure). A member no longer
/// in the pool is priced at the default efficiency, estimated.
pub fn ended(
    tj: &TrainingJob,
    model: &ThroughputModel,
    built: &Built,
    pricing: &BTreeMap<String, MemberPricing>,
) -> Vec<EndedAttempt> {
    let unknown = MemberPricing { site: String::new(), efficiency: ClusterEfficiency::default(), measured: false };
    usage::unmetered_attempts(tj)
        .into_iter()
        .map(|span| {
            let price = pricing.get(&span.cluster).unwrap_or(&unknown);
            let seconds = span.end.saturating_sub(span.start) as f64;
            let shape = shape(tj, &span, seconds);
            let amounts = attempt_amounts(model, &built.pool.catalogue, &price.efficiency, price.measured, &shape);
            let time = |s: u64| {
                Time(k8s_openapi::jiff::Timestamp::from_second(i64::try_from(s).unwrap_or(0)).unwrap_or_default())
            };
            EndedAttempt {
                queue: span.queue.clone().unwrap_or_else(|| tj.spec.queue_name.clone()),
                start: span.start,
                end: span.end,
                amounts,
                record: UsageRecord {
                    namespace: tj.metadata.namespace.clone().unwrap_or_default(),
                    job: tj.metadata.name.clone().unwrap_or_default(),
                    uid: view::uid(tj).to_string(),
                    attempt: span.attempt,
                    member: span.cluster.clone(),
                    site: price.site.clone(),
                    accelerator: span.accelerator.clone(),
                    gpus: i64::try_from(shape.devices).unwrap_or(i64::MAX),
                    replicas: span.replicas,
                    start: time(span.start),
                    end: time(span.end),
                    reason: span.reason.clone(),
                    energy_source: if price.measured { EnergySource::Measured } else { EnergySource::Estimated },
                    amounts: amounts.into(),
                },
            }
        })
        .collect()
}

/// A job whose watermark may move: namespace, name, UID and the attempt number.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Mark {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub through: i32,
}

/// What one flush does.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Attempts to add, by object name (queue, day, attempts).
    pub writes: BTreeMap<String, (String, u64, Vec<EndedAttempt>)>,
    /// Jobs whose attempts are all in the store already: move their watermark now.
    pub marks: Vec<Mark>,
    /// Jobs to mark once `writes` are stored.
    pub marks_after_write: Vec<Mark>,
}

/// Which attempts to write and which watermarks to move (pure). `store` is the store as
/// cached (a stale copy only makes a write find its keys already there).
pub fn plan(jobs: &[(Arc<TrainingJob>, Vec<EndedAttempt>)], store: &BTreeMap<String, Arc<ComputeUsage>>) -> Plan {
    let mut plan = Plan::default();
    for (tj, attempts) in jobs {
        let Some(last) = attempts.iter().map(|a| a.record.attempt).max() else { continue };
        let mark = Mark {
            namespace: tj.metadata.namespace.clone().unwrap_or_default(),
            name: tj.metadata.name.clone().unwrap_or_default(),
            uid: view::uid(tj).to_string(),
            through: last,
        };
        let mut complete = true;
        let mut missing = Vec::new();
        for a in attempts {
            let day = usage::day_of(a.end);
            let name = usage::object_name(&a.queue, day);
            // A compacted day keeps no keys, so nothing added to it could be told from a
            // repeat: an attempt recorded that late (past the raw retention) is dropped.
            if store.get(&name).is_some_and(|o| o.spec.compacted || usage::is_recorded(&o.spec, &a.key())) {
                continue;
            }
            let entry = plan.writes.entry(name.clone()).or_insert_with(|| (a.queue.clone(), day, Vec::new()));
            if entry.2.len() >= MAX_RECORDS_PER_WRITE {
                complete = false;
                continue;
            }
            missing.push(name);
            entry.2.push(a.clone());
        }
        if !complete {
            // Part of it waits for the next flush: the watermark waits with it.
            continue;
        }
        if missing.is_empty() {
            plan.marks.push(mark);
        } else {
            plan.marks_after_write.push(mark);
        }
    }
    plan.writes.retain(|_, (_, _, a)| !a.is_empty());
    plan
}

/// Whether a deleted job may lose its finalizer: its attempts are all recorded, or it
/// waited [`DELETION_GRACE`] for that (pure).
pub fn deletion_settled(tj: &TrainingJob, now: k8s_openapi::jiff::Timestamp) -> bool {
    let waited = tj
        .metadata
        .deletion_timestamp
        .as_ref()
        .map_or(0, |t| now.as_second().saturating_sub(t.0.as_second()).max(0) as u64);
    usage::unmetered_attempts(tj).is_empty() || waited >= DELETION_GRACE.as_secs()
}

/// A queue's standing for fair share and its budget.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct QueueStanding {
    /// Decayed past usage as a share of its quotas.
    pub past_share: f64,
    /// The budget that binds it (its own, else the first exhausted enclosing cohort's),
    /// with its state this period.
    pub budget: Option<BudgetStatus>,
    /// Spent over limit of that budget (the largest over its limits).
    pub budget_ratio: Option<f64>,
    /// Its own budget is not spent but an enclosing cohort's is: why it waits.
    pub held_by_cohort: Option<String>,
}

/// Every queue's standing, and every cohort budget's state (with its spent ratio).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Standings {
    pub queues: BTreeMap<String, QueueStanding>,
    pub cohorts: BTreeMap<String, (BudgetStatus, Option<f64>)>,
}

/// The usage rows of the store, by queue: (bucket start, bucket length, row).
type RowsByQueue<'a> = BTreeMap<&'a str, Vec<(i64, i64, &'a usage::UsageRow)>>;

fn rows_by_queue<'a>(store: impl IntoIterator<Item = &'a ComputeUsage>, since_day: u64) -> RowsByQueue<'a> {
    let mut rows: RowsByQueue<'a> = BTreeMap::new();
    for o in store {
        if usage::parse_day(&o.spec.day).is_none_or(|d| d < since_day) {
            continue;
        }
        let list = rows.entry(o.spec.queue.as_str()).or_default();
        list.extend(o.spec.rows.iter().map(|r| (r.start, o.spec.bucket_seconds.max(1), r)));
    }
    rows
}

/// A running attempt's usage from its start to `until` (and from `since`), priced at its
/// member (pure).
fn running_amounts(
    r: &RunningJob,
    built: &Built,
    model: &ThroughputModel,
    pricing: &BTreeMap<String, MemberPricing>,
    since: u64,
    until: u64,
) -> Amounts {
    let Some(cluster) = built.pool.clusters.get(r.cluster) else { return Amounts::default() };
    let Some(price) = pricing.get(&cluster.name) else { return Amounts::default() };
    let replicas = u64::from(r.replicas());
    let shape = AttemptShape {
        accelerator: r.accelerator.as_deref(),
        devices: u64::from(r.per_replica.accelerators).saturating_mul(replicas),
        cpu_millis: r.per_replica.cpu_millis.saturating_mul(replicas),
        seconds: until.saturating_sub(since.max(r.started_at)) as f64,
    };
    attempt_amounts(model, &built.pool.catalogue, &price.efficiency, price.measured, &shape)
}

/// A budget's state at `now`, spending `queues`' rows in its period and their running
/// attempts' time in it so far (pure).
#[allow(clippy::too_many_arguments)]
fn budget_state(
    budget: &computenet_core::usage::Budget,
    queues: &BTreeSet<&str>,
    rows: &RowsByQueue<'_>,
    running: &[&RunningJob],
    built: &Built,
    model: &ThroughputModel,
    pricing: &BTreeMap<String, MemberPricing>,
    now: u64,
) -> (BudgetStatus, Option<f64>) {
    let (start, end) = budget.period.bounds(now);
    let mut spent = queues
        .iter()
        .flat_map(|q| rows.get(q).map_or(&[][..], |v| &v[..]))
        .filter(|(s, _, _)| *s >= start as i64 && *s < end as i64)
        .fold(Amounts::default(), |sum, (_, _, row)| sum.plus(&Amounts::from(row.amounts)));
    for r in running.iter().filter(|r| queues.contains(r.queue.as_str())) {
        spent = spent.plus(&running_amounts(r, built, model, pricing, start, now));
    }
    let message = budget.exhausted(&spent);
    let time =
        |s: u64| Time(k8s_openapi::jiff::Timestamp::from_second(i64::try_from(s).unwrap_or(0)).unwrap_or_default());
    let status = BudgetStatus {
        period_start: time(start),
        period_end: time(end),
        spent: round_amounts(spent).into(),
        exhausted: message.is_some(),
        message: message.map(|m| format!("{m} spent this period; new jobs wait until {}", time(end).0)),
    };
    (status, budget.spent_ratio(&spent))
}

/// Jobs (by UID) whose current attempt is recorded already or ends with their deletion
/// (a deleted job whose finalizer waits): their time must not count again as running.
pub fn recorded_or_deleted(jobs: &[Arc<TrainingJob>]) -> BTreeSet<String> {
    jobs.iter()
        .filter(|j| {
            let s = j.status.as_ref();
            let current = s.and_then(|s| s.attempt).unwrap_or(1);
            j.metadata.deletion_timestamp.is_some() || s.and_then(|s| s.metered_through).is_some_and(|m| m >= current)
        })
        .map(|j| view::uid(j).to_string())
        .collect()
}

/// Each queue's enclosing cohorts, nearest first (the tree as the ledger cuts it).
fn ancestors(built: &Built) -> BTreeMap<String, Vec<String>> {
    let tree = computenet_core::queue::CohortTree::new(&built.queues, &built.cohorts);
    built
        .queues
        .iter()
        .map(|q| {
            let mut chain = Vec::new();
            let mut at = q.cohort.clone();
            while let Some(c) = at.filter(|c| !chain.contains(c)) {
                at = tree.parent(&c).map(str::to_string);
                chain.push(c);
            }
            (q.name.clone(), chain)
        })
        .collect()
}

/// Past shares and budgets (pure): every queue's decayed past usage from the store's rows
/// and the running attempts' time so far; every queue's and cohort's budget spending in
/// its current period the same way (a cohort's over every queue under it). A queue is held
/// by its own budget, else by the nearest enclosing cohort whose budget is spent.
pub fn fair_share(
    specs: &[Arc<ComputeQueue>],
    store: &[Arc<ComputeUsage>],
    built: &Built,
    recorded: &BTreeSet<String>,
    model: &ThroughputModel,
    config: &MeteringConfig,
    now: u64,
) -> Standings {
    let pricing = pricing(built);
    let running: Vec<&RunningJob> = built.running.iter().filter(|r| !recorded.contains(&r.id)).collect();
    let h = config.half_life_s;
    let queue_budgets: BTreeMap<&str, computenet_core::usage::Budget> =
        specs.iter().filter_map(|q| Some((q.metadata.name.as_deref()?, q.spec.budget.as_ref()?.core()))).collect();
    let cohort_budgets: BTreeMap<&str, computenet_core::usage::Budget> =
        built.cohorts.iter().filter_map(|c| Some((c.name.as_str(), c.budget?))).collect();
    let oldest_budget_day = queue_budgets
        .values()
        .chain(cohort_budgets.values())
        .map(|b| usage::day_of(b.period.bounds(now).0))
        .min()
        .unwrap_or(u64::MAX);
    let fair_share_day = if h > 0.0 {
        usage::day_of(now.saturating_sub((h * HALF_LIVES_READ).min(now as f64) as u64))
    } else {
        u64::MAX
    };
    let rows = rows_by_queue(store.iter().map(AsRef::as_ref), oldest_budget_day.min(fair_share_day));
    let ancestors = ancestors(built);
    let mut cohorts = BTreeMap::new();
    for (name, budget) in &cohort_budgets {
        let under: BTreeSet<&str> =
            ancestors.iter().filter(|(_, chain)| chain.iter().any(|c| c == name)).map(|(q, _)| q.as_str()).collect();
        cohorts.insert(name.to_string(), budget_state(budget, &under, &rows, &running, built, model, &pricing, now));
    }
    let mut queues = BTreeMap::new();
    for q in &built.queues {
        let mut past: BTreeMap<(computenet_core::ResourceName, Option<String>), f64> = BTreeMap::new();
        let mut add = |accelerator: &Option<String>, amounts: &Amounts, weight: f64| {
            for (resource, amount) in quota_amounts(amounts) {
                *past.entry((resource, accelerator.clone())).or_default() += amount * weight;
            }
        };
        if h > 0.0 {
            for (start, len, row) in rows.get(q.name.as_str()).map_or(&[][..], |v| &v[..]) {
                let middle = *start as f64 + *len as f64 / 2.0;
                add(&row.accelerator, &Amounts::from(row.amounts), decay(now as f64 - middle, h));
            }
            for r in running.iter().filter(|r| r.queue == q.name) {
                let amounts = running_amounts(r, built, model, &pricing, 0, now);
                let middle = (r.started_at as f64 + now as f64) / 2.0;
                add(&r.accelerator, &amounts, decay(now as f64 - middle, h));
            }
        }
        let decayed: Vec<DecayedUsage> = past
            .into_iter()
            .map(|((resource, accelerator), amount)| DecayedUsage { resource, accelerator, amount })
            .collect();
        let own = queue_budgets.get(q.name.as_str()).map(|b| {
            let only: BTreeSet<&str> = [q.name.as_str()].into_iter().collect();
            budget_state(b, &only, &rows, &running, built, model, &pricing, now)
        });
        let held_by_cohort = ancestors.get(&q.name).into_iter().flatten().find_map(|c| {
            let (status, _) = cohorts.get(c)?;
            status.exhausted.then(|| format!("cohort {c}: {}", status.message.clone().unwrap_or_default()))
        });
        let (budget, budget_ratio) = own.map_or((None, None), |(s, r)| (Some(s), r));
        queues.insert(
            q.name.clone(),
            QueueStanding { past_share: past_share(&q.quotas, &decayed, h), budget, budget_ratio, held_by_cohort },
        );
    }
    Standings { queues, cohorts }
}

/// Each queue's ordering share as the cycle starts from it: (current dominant share of
/// its running jobs + past share) / weight (pure).
pub fn ordering_shares(built: &Built) -> BTreeMap<String, f64> {
    let mut ledger = computenet_core::queue::QuotaLedger::new(&built.queues, &built.cohorts);
    for r in &built.running {
        if let Some(q) = ledger.queue_index(&r.queue) {
            let usage = computenet_core::queue::gang_usage(&r.per_replica, r.replicas(), r.accelerator.as_deref());
            ledger.admit(q, &usage, r.accelerator.as_deref());
        }
    }
    (0..ledger.len()).map(|q| (ledger.queue(q).name.clone(), ledger.dominant_share(q))).collect()
}

/// Amounts rounded to 6 decimals, so a status written from them does not change with
/// every pass's floating-point noise.
fn round_amounts(a: Amounts) -> Amounts {
    let r = |v: f64| (v * 1e6).round() / 1e6;
    Amounts {
        gpu_seconds: r(a.gpu_seconds),
        cpu_core_seconds: r(a.cpu_core_seconds),
        energy_kwh: r(a.energy_kwh),
        measured_energy_kwh: r(a.measured_energy_kwh),
        cost: r(a.cost),
        carbon_kg: r(a.carbon_kg),
        useful_tflop: r(a.useful_tflop),
    }
}

/// Applies the standings to the core's queues: past shares order them, an exhausted
/// budget (its own, or an enclosing cohort's) holds their new jobs.
pub fn apply(queues: &mut [Queue], standings: &Standings) {
    for q in queues {
        if let Some(s) = standings.queues.get(&q.name) {
            q.past_share = s.past_share;
            q.budget_exhausted = s
                .budget
                .as_ref()
                .filter(|b| b.exhausted)
                .and_then(|b| b.message.clone())
                .or_else(|| s.held_by_cohort.clone());
        }
    }
}

/// What housekeeping does to one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Housekeeping {
    /// Past the raw retention: daily rows, no records, no keys.
    Compact(String),
    /// Past the retention.
    Delete(String),
}

/// Compactions and deletions due (pure), at most [`HOUSEKEEPING_BATCH`], oldest first.
pub fn housekeeping(store: &[Arc<ComputeUsage>], config: &MeteringConfig, now: u64) -> Vec<Housekeeping> {
    let today = usage::day_of(now);
    let mut due: Vec<(u64, Housekeeping)> = store
        .iter()
        .filter_map(|o| {
            let day = usage::parse_day(&o.spec.day)?;
            let name = o.metadata.name.clone()?;
            let age = today.saturating_sub(day);
            if age > config.retention_days {
                Some((day, Housekeeping::Delete(name)))
            } else if age > config.raw_retention_days && !o.spec.compacted {
                Some((day, Housekeeping::Compact(name)))
            } else {
                None
            }
        })
        .collect();
    due.sort_by_key(|d| d.0);
    due.into_iter().take(HOUSEKEEPING_BATCH).map(|(_, h)| h).collect()
}

/// What a flush did.
#[derive(Debug, Default)]
pub struct Flushed {
    /// Attempts recorded.
    pub recorded: u64,
    /// Watermarks moved.
    pub marked: u64,
    pub errors: Vec<String>,
}

/// Metering's state between passes (leader only).
#[allow(missing_debug_implementations)] // kube::Client has no Debug implementation.
pub struct Metering {
    client: Client,
    pub config: MeteringConfig,
    last_flush: Option<Instant>,
    last_housekeeping: Option<Instant>,
    flushing: Option<JoinHandle<Flushed>>,
    housekeeping: Option<JoinHandle<()>>,
    /// The latest standings, for the queue and cohort reporters.
    standings: Standings,
    /// The latest ordering shares ([`ordering_shares`]).
    shares: BTreeMap<String, f64>,
    last_standings: Option<Instant>,
    /// The counters' totals ([`counter_totals`]) and when they were summed.
    counters: (BTreeMap<[String; 4], Amounts>, Option<Instant>),
    /// Attempts recorded, and jobs whose usage was given up (more vanished jobs waiting
    /// than [`MAX_GONE`]), since start.
    pub recorded_total: u64,
    pub lost_total: u64,
    /// Jobs with an admitted or unrecorded attempt at the last pass, by UID.
    last_seen: BTreeMap<String, Arc<TrainingJob>>,
    /// Jobs gone from the hub before their attempts were recorded, as last seen (ended
    /// at the time they were found gone), by UID.
    gone: BTreeMap<String, Arc<TrainingJob>>,
}

/// Vanished jobs kept waiting for their record.
const MAX_GONE: usize = 10_000;

/// Jobs of `last_seen` no longer in `jobs` that still have attempts to record (pure): as
/// last seen, deleted at `now` if they were not being deleted already. A job left out of
/// the cache because it no longer decodes (`undecodable`, by UID) has not vanished.
pub fn vanished(
    last_seen: &BTreeMap<String, Arc<TrainingJob>>,
    jobs: &[Arc<TrainingJob>],
    undecodable: &BTreeSet<String>,
    now: k8s_openapi::jiff::Timestamp,
) -> Vec<Arc<TrainingJob>> {
    let present: BTreeSet<&str> = jobs.iter().map(|j| view::uid(j)).collect();
    last_seen
        .iter()
        .filter(|(uid, _)| !present.contains(uid.as_str()) && !undecodable.contains(*uid))
        .filter_map(|(_, tj)| {
            let mut tj = (**tj).clone();
            tj.metadata.deletion_timestamp.get_or_insert(Time(now));
            (!usage::unmetered_attempts(&tj).is_empty()).then(|| Arc::new(tj))
        })
        .collect()
}

impl Metering {
    pub fn new(client: Client, config: MeteringConfig) -> Self {
        Metering {
            client,
            config,
            last_flush: None,
            last_housekeeping: None,
            flushing: None,
            housekeeping: None,
            standings: Standings::default(),
            shares: BTreeMap::new(),
            last_standings: None,
            counters: (BTreeMap::new(), None),
            recorded_total: 0,
            lost_total: 0,
            last_seen: BTreeMap::new(),
            gone: BTreeMap::new(),
        }
    }

    /// Step 4: past shares and budgets onto the snapshot's queues.
    pub fn standings(
        &mut self,
        built: &mut Built,
        jobs: &[Arc<TrainingJob>],
        specs: &[Arc<ComputeQueue>],
        store: &[Arc<ComputeUsage>],
        model: &ThroughputModel,
        now: u64,
    ) {
        // Every row of the store is read: at most every STANDINGS_REFRESH, else the last.
        if self.last_standings.is_none_or(|t| t.elapsed() >= STANDINGS_REFRESH) {
            self.standings = fair_share(specs, store, built, &recorded_or_deleted(jobs), model, &self.config, now);
            self.last_standings = Some(Instant::now());
        }
        apply(&mut built.queues, &self.standings);
        self.shares = ordering_shares(built);
    }

    /// The usage counters' totals, summed over the whole store at most every
    /// [`STANDINGS_REFRESH`] x 5.
    pub fn counters(&mut self, store: &[Arc<ComputeUsage>]) -> &BTreeMap<[String; 4], Amounts> {
        if self.counters.1.is_none_or(|t| t.elapsed() >= STANDINGS_REFRESH * 5) {
            self.counters = (counter_totals(store), Some(Instant::now()));
        }
        &self.counters.0
    }

    /// A queue's latest ordering share.
    pub fn share(&self, queue: &str) -> Option<f64> {
        self.shares.get(queue).copied()
    }

    /// A queue's budget: spent over limit.
    pub fn budget_ratio(&self, queue: &str) -> Option<f64> {
        self.standings.queues.get(queue).and_then(|s| s.budget_ratio)
    }

    /// The latest standings.
    pub fn standings_now(&self) -> &Standings {
        &self.standings
    }

    /// The latest standing of a queue.
    pub fn standing(&self, queue: &str) -> Option<&QueueStanding> {
        self.standings.queues.get(queue)
    }

    /// The latest state of a cohort's budget.
    pub fn cohort_budget(&self, cohort: &str) -> Option<&(BudgetStatus, Option<f64>)> {
        self.standings.cohorts.get(cohort)
    }

    /// Step 6: record ended attempts (a flush at most every `flush_interval`, one at a
    /// time, in the background) and run housekeeping.
    pub fn pass(
        &mut self,
        jobs: &[Arc<TrainingJob>],
        undecodable: &BTreeSet<String>,
        store: &[Arc<ComputeUsage>],
        built: &Built,
        model: &ThroughputModel,
        now: k8s_openapi::jiff::Timestamp,
    ) {
        if self.flushing.as_ref().is_some_and(JoinHandle::is_finished) {
            // Finished: taking its result does not wait.
            if let Some(flushed) = self.flushing.take().and_then(|h| h.now_or_never()).and_then(|r| r.ok()) {
                self.recorded_total += flushed.recorded;
                tracing::debug!(recorded = flushed.recorded, marked = flushed.marked, "usage store flushed");
                for e in &flushed.errors {
                    tracing::warn!(error = %e, "usage store write failed; retried at the next flush");
                }
            }
        }
        // Jobs gone from the hub with attempts not recorded (a finalizer removed by hand, or
        // the grace passed): recorded from what this process last saw of them.
        for tj in vanished(&self.last_seen, jobs, undecodable, now) {
            if self.gone.len() >= MAX_GONE {
                self.lost_total += 1;
                tracing::warn!(job = %view::job_name(&tj), "too many vanished jobs waiting to be recorded; usage given up");
                continue;
            }
            self.gone.insert(view::uid(&tj).to_string(), tj);
        }
        let mut seen: BTreeMap<String, Arc<TrainingJob>> = jobs
            .iter()
            .filter(|j| view::is_admitted(j) || !usage::unmetered_attempts(j).is_empty())
            .map(|j| (view::uid(j).to_string(), j.clone()))
            .collect();
        // Undecodable now: remembered as they were until they decode again or are deleted.
        seen.extend(
            self.last_seen.iter().filter(|(uid, _)| undecodable.contains(*uid)).map(|(u, j)| (u.clone(), j.clone())),
        );
        self.last_seen = seen;
        let due = self.last_flush.is_none_or(|t| t.elapsed() >= self.config.flush_interval);
        if self.flushing.is_none() && due {
            let pricing = pricing(built);
            let ended: Vec<(Arc<TrainingJob>, Vec<EndedAttempt>)> = jobs
                .iter()
                .chain(self.gone.values())
                .map(|tj| (tj.clone(), ended(tj, model, built, &pricing)))
                .filter(|(_, a)| !a.is_empty())
                .collect();
            if !ended.is_empty() {
                let by_name: BTreeMap<String, Arc<ComputeUsage>> =
                    store.iter().filter_map(|o| Some((o.metadata.name.clone()?, o.clone()))).collect();
                let plan = plan(&ended, &by_name);
                // A vanished job whose attempts the store shows is done with.
                for mark in &plan.marks {
                    self.gone.remove(&mark.uid);
                }
                self.last_flush = Some(Instant::now());
                self.flushing = Some(tokio::spawn(flush(self.client.clone(), plan, self.config.bucket_s)));
            }
        }
        let housekeeping_due = self.last_housekeeping.is_none_or(|t| t.elapsed() >= HOUSEKEEPING_INTERVAL);
        if housekeeping_due && self.housekeeping.as_ref().is_none_or(JoinHandle::is_finished) {
            self.last_housekeeping = Some(Instant::now());
            let work = housekeeping(store, &self.config, view::unix(now));
            if !work.is_empty() {
                self.housekeeping = Some(tokio::spawn(keep_house(self.client.clone(), work)));
            }
        }
    }
}

/// Writes one flush: each object read fresh, the attempts added ([`usage::record`]:
/// keys already there are skipped), replaced under its resourceVersion (a conflict is
/// read again, three times); then the watermarks.
async fn flush(client: Client, plan: Plan, bucket_s: u64) -> Flushed {
    let mut flushed = Flushed::default();
    let api: Api<ComputeUsage> = Api::all(client.clone());
    let mut failed: BTreeSet<String> = BTreeSet::new();
    for (name, (queue, day, attempts)) in &plan.writes {
        match write_day(&api, name, queue, *day, attempts, bucket_s).await {
            Ok(added) => flushed.recorded += added as u64,
            Err(e) => {
                flushed.errors.push(format!("{name}: {e}"));
                failed.insert(name.clone());
            }
        }
    }
    // A job is marked only when every object its attempts went to was written.
    let failed_jobs: BTreeSet<&str> = plan
        .writes
        .iter()
        .filter(|(name, _)| failed.contains(*name))
        .flat_map(|(_, (_, _, attempts))| attempts.iter().map(|a| a.record.uid.as_str()))
        .collect();
    let marks =
        plan.marks.iter().chain(plan.marks_after_write.iter().filter(|m| !failed_jobs.contains(m.uid.as_str())));
    for mark in marks {
        match write_mark(&client, mark).await {
            Ok(()) => flushed.marked += 1,
            Err(e) => flushed.errors.push(format!("marking {}/{}: {e}", mark.namespace, mark.name)),
        }
    }
    flushed
}

async fn write_day(
    api: &Api<ComputeUsage>,
    name: &str,
    queue: &str,
    day: u64,
    attempts: &[EndedAttempt],
    bucket_s: u64,
) -> Result<usize> {
    for _ in 0..3 {
        lease::check_write()?;
        let current = api.get_opt(name).await?;
        let mut spec = current.as_ref().map_or_else(|| usage::empty_day(queue, day, bucket_s), |o| o.spec.clone());
        let added = usage::record(&mut spec, attempts).len();
        if added == 0 {
            return Ok(0);
        }
        let result = match current {
            Some(mut object) => {
                object.spec = spec;
                api.replace(name, &PostParams::default(), &object).await
            }
            None => api.create(&PostParams::default(), &ComputeUsage::new(name, spec)).await,
        };
        match result {
            Ok(_) => return Ok(added),
            // Changed or created meanwhile: read it again.
            Err(kube::Error::Api(e)) if e.code == 409 => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::Timeout(format!("writing usage {name}: it kept changing")))
}

async fn write_mark(client: &Client, mark: &Mark) -> Result<()> {
    lease::check_write()?;
    let api: Api<TrainingJob> = Api::namespaced(client.clone(), &mark.namespace);
    let patch = json!({
        "apiVersion": "computenet.io/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": mark.name, "uid": mark.uid},
        "status": {"meteredThrough": mark.through},
    });
    let params = PatchParams::apply(FIELD_MANAGER).force();
    match api.patch_status(&mark.name, &params, &Patch::Apply(&patch)).await {
        Ok(_) => Ok(()),
        // Gone (its finalizer was removed meanwhile): nothing left to mark.
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn keep_house(client: Client, work: Vec<Housekeeping>) {
    let api: Api<ComputeUsage> = Api::all(client);
    for item in work {
        if lease::check_write().is_err() {
            return;
        }
        let result = match &item {
            Housekeeping::Delete(name) => api.delete(name, &Default::default()).await.map(|_| ()),
            Housekeeping::Compact(name) => match api.get_opt(name).await {
                Ok(Some(mut object)) => {
                    object.spec = usage::compact(&object.spec);
                    api.replace(name, &PostParams::default(), &object).await.map(|_| ())
                }
                Ok(None) => Ok(()),
                Err(e) => Err(e),
            },
        };
        if let Err(e) = result {
            tracing::warn!(?item, error = %e, "usage store housekeeping failed; retried later");
        }
    }
}

/// Recorded usage in the store, all time, per (namespace, queue, member, accelerator):
/// the counters' values.
pub fn counter_totals(store: &[Arc<ComputeUsage>]) -> BTreeMap<[String; 4], Amounts> {
    let mut totals = BTreeMap::new();
    for (key, sum) in usage::totals(store.iter().map(AsRef::as_ref), i64::MIN, i64::MAX) {
        let labels = [
            key.namespace,
            key.queue,
            key.member,
            key.accelerator.unwrap_or_else(|| computenet_core::accelerator::CPU_ONLY.to_string()),
        ];
        let entry: &mut Amounts = totals.entry(labels).or_default();
        *entry = entry.plus(&sum.amounts);
    }
    totals
}

#[cfg(test)]
mod tests {
    use super::*;
    use computenet_api::training_job::{AttemptStatus, PlacementStatus, TrainingJobPhase, TrainingJobStatus};
    use computenet_core::synth::{cluster, pool};
    use computenet_core::{ClusterKind, ReplicaRequest};

    fn time(s: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(s).expect("time"))
    }

    fn built() -> Built {
        Built {
            pool: pool(vec![cluster("ai-1", ClusterKind::AI, "east", 2, Some("A100"), 8)]),
            queues: vec![
                computenet_api::convert::queue("heavy", &queue_spec(None)).expect("queue"),
                computenet_api::convert::queue("fresh", &queue_spec(None)).expect("queue"),
            ],
            cohorts: Vec::new(),
            pending: Vec::new(),
            running: Vec::new(),
            problems: Vec::new(),
            measured: vec![None],
        }
    }

    fn queue_spec(budget: Option<serde_json::Value>) -> computenet_api::ComputeQueueSpec {
        serde_json::from_value(serde_json::json!({
            "namespaceSelector": {}, "cohort": "org",
            "quotas": [{"resource": "nvidia.com/gpu", "nominal": 8}],
            "budget": budget,
        }))
        .expect("queue spec")
    }

    fn queue(name: &str, budget: Option<serde_json::Value>) -> Arc<ComputeQueue> {
        Arc::new(ComputeQueue::new(name, queue_spec(budget)))
    }

    fn job(uid: &str, status: TrainingJobStatus) -> Arc<TrainingJob> {
        let mut tj = TrainingJob::new(
            uid,
            serde_json::from_value(serde_json::json!({
                "queueName": "heavy", "replicas": 1,
                "resources": {"cpu": "4", "memory": "16Gi", "accelerators": {"count": 8}},
                "workload": {"image": "x", "command": ["true"]}
            }))
            .expect("spec"),
        );
        tj.metadata.namespace = Some("team".into());
        tj.metadata.uid = Some(uid.into());
        tj.status = Some(status);
        Arc::new(tj)
    }

    fn finished(attempts: Vec<AttemptStatus>, current: i32, start: i64, end: i64) -> TrainingJobStatus {
        TrainingJobStatus {
            phase: Some(TrainingJobPhase::Succeeded),
            admitted: Some(true),
            attempt: Some(current),
            start_time: Some(time(start)),
            completion_time: Some(time(end)),
            placement: Some(PlacementStatus {
                cluster: "ai-1".into(),
                accelerator: Some("A100".into()),
                gpus: 8,
                ..Default::default()
            }),
            attempts,
            ..TrainingJobStatus::default()
        }
    }

    fn preempted(n: i32, start: i64, end: i64) -> AttemptStatus {
        AttemptStatus {
            attempt: n,
            cluster: "ai-1".into(),
            accelerator: Some("A100".into()),
            replicas: 1,
            start_time: Some(time(start)),
            end_time: Some(time(end)),
            reason: "Preempted".into(),
            ..AttemptStatus::default()
        }
    }

    #[test]
    fn ended_attempts_are_priced_at_their_member() {
        let b = built();
        let tj = job("u1", finished(vec![preempted(1, 0, 3_600)], 2, 4_000, 4_000 + 1_800));
        let ended = ended(&tj, &ThroughputModel::default(), &b, &pricing(&b));
        assert_eq!(ended.len(), 2);
        assert_eq!((ended[0].record.attempt, ended[0].amounts.gpu_seconds), (1, 8.0 * 3_600.0));
        assert_eq!((ended[1].record.attempt, ended[1].amounts.gpu_seconds), (2, 8.0 * 1_800.0));
        assert_eq!((ended[1].record.site.as_str(), ended[1].record.reason.as_str()), ("east", "Succeeded"));
        assert_eq!(ended[1].record.energy_source, EnergySource::Estimated);
        assert!(ended[1].amounts.energy_kwh > 0.0 && ended[1].amounts.cost > 0.0);
    }

    #[test]
    fn an_ended_attempt_is_billed_as_admitted_not_by_the_spec_changed_since() {
        let b = built();
        let mut attempt = preempted(1, 0, 3_600);
        (attempt.queue, attempt.gpus, attempt.cpu_millis) = (Some("heavy".into()), Some(8), Some(4_000));
        let mut status = finished(vec![attempt], 2, 4_000, 4_100);
        status.phase = Some(TrainingJobPhase::Suspended);
        (status.completion_time, status.admitted) = (None, Some(false));
        let mut tj = (*job("u1", status)).clone();
        // Suspended, the spec is no longer frozen: the tenant points it at another queue
        // and one GPU.
        tj.spec.queue_name = "victim".into();
        tj.spec.resources.accelerators.as_mut().expect("accelerators").count = 1;
        let ended = ended(&tj, &ThroughputModel::default(), &b, &pricing(&b));
        assert_eq!(ended.len(), 1);
        assert_eq!((ended[0].queue.as_str(), ended[0].record.gpus), ("heavy", 8));
        assert_eq!(ended[0].amounts.gpu_seconds, 8.0 * 3_600.0);
        assert_eq!(ended[0].amounts.cpu_core_seconds, 4.0 * 3_600.0);
    }

    #[test]
    fn the_plan_writes_what_is_missing_and_marks_after() {
        let b = built();
        let model = ThroughputModel::default();
        // Attempt 1 ended on day 0, attempt 2 on day 1.
        let tj = job("u1", finished(vec![preempted(1, 0, 3_600)], 2, 86_000, 86_400 + 100));
        let ended = vec![(tj.clone(), ended(&tj, &model, &b, &pricing(&b)))];
        let p = plan(&ended, &BTreeMap::new());
        assert_eq!(p.writes.keys().cloned().collect::<Vec<_>>(), ["heavy.19700101", "heavy.19700102"]);
        assert!(p.marks.is_empty());
        assert_eq!(p.marks_after_write.iter().map(|m| m.through).collect::<Vec<_>>(), [2]);
        // Both already in the store (a crash after the write, before the mark): mark only.
        let mut store = BTreeMap::new();
        for (name, (queue, day, attempts)) in &p.writes {
            let mut spec = usage::empty_day(queue, *day, 3_600);
            usage::record(&mut spec, attempts);
            store.insert(name.clone(), Arc::new(ComputeUsage::new(name, spec)));
        }
        let again = plan(&ended, &store);
        assert!(again.writes.is_empty());
        assert_eq!(again.marks.len(), 1);
        // A day compacted meanwhile takes nothing more: its attempts are only marked.
        let mut compacted = store.clone();
        for o in compacted.values_mut() {
            let mut c = (**o).clone();
            c.spec = usage::compact(&c.spec);
            *o = Arc::new(c);
        }
        let late = plan(&ended, &compacted);
        assert!(late.writes.is_empty() && late.marks.len() == 1);
        // One of them missing: only it is written.
        store.remove("heavy.19700102");
        let part = plan(&ended, &store);
        assert_eq!(part.writes.keys().cloned().collect::<Vec<_>>(), ["heavy.19700102"]);
        assert_eq!(part.marks_after_write.len(), 1);
    }

    #[test]
    fn a_deleted_job_waits_for_its_record_at_most_the_grace() {
        let mut status = finished(Vec::new(), 1, 0, 0);
        status.phase = Some(TrainingJobPhase::Running);
        status.completion_time = None;
        let mut tj = (*job("u1", status)).clone();
        tj.metadata.deletion_timestamp = Some(time(1_000));
        let at = |s| k8s_openapi::jiff::Timestamp::from_second(s).expect("time");
        assert!(!deletion_settled(&tj, at(1_001)));
        assert!(deletion_settled(&tj, at(1_000 + DELETION_GRACE.as_secs() as i64)));
        tj.status.as_mut().expect("status").metered_through = Some(1);
        assert!(deletion_settled(&tj, at(1_001)));
    }

    fn store_with(queue: &str, start: u64, end: u64, gpus: u64) -> Arc<ComputeUsage> {
        let b = built();
        let amounts = attempt_amounts(
            &ThroughputModel::default(),
            &b.pool.catalogue,
            &ClusterEfficiency::default(),
            false,
            &AttemptShape { accelerator: Some("A100"), devices: gpus, cpu_millis: 0, seconds: (end - start) as f64 },
        );
        let day = usage::day_of(end);
        let mut spec = usage::empty_day(queue, day, 3_600);
        let mut a = ended(
            &job("x", finished(Vec::new(), 1, start as i64, end as i64)),
            &ThroughputModel::default(),
            &b,
            &pricing(&b),
        );
        a[0].queue = queue.into();
        a[0].amounts = amounts;
        usage::record(&mut spec, &a);
        Arc::new(ComputeUsage::new(&usage::object_name(queue, day), spec))
    }

    #[test]
    fn past_usage_raises_the_share_and_yields() {
        let b = built();
        let now = 10 * 86_400;
        let config = MeteringConfig { half_life_s: 86_400.0, ..MeteringConfig::default() };
        let store = vec![store_with("heavy", now - 86_400, now - 3_600, 8)];
        let specs = vec![queue("heavy", None), queue("fresh", None)];
        let s = fair_share(&specs, &store, &b, &BTreeSet::new(), &ThroughputModel::default(), &config, now);
        assert!(s.queues["heavy"].past_share > 0.1, "{:?}", s.queues["heavy"]);
        assert_eq!(s.queues["fresh"].past_share, 0.0);
        let plain = MeteringConfig { half_life_s: 0.0, ..config };
        let s0 = fair_share(&specs, &store, &b, &BTreeSet::new(), &ThroughputModel::default(), &plain, now);
        assert_eq!(s0.queues["heavy"].past_share, 0.0, "no half life: plain DRF");
        let mut queues = b.queues.clone();
        apply(&mut queues, &s);
        assert!(queues[0].past_share > queues[1].past_share);
    }

    #[test]
    fn a_budget_counts_its_period_and_running_attempts() {
        let mut b = built();
        let now = 10 * 86_400 + 7_200;
        // 2 GPU-hours a day: 8 GPUs for 10 min yesterday (outside), and 8 GPUs for 10 min today.
        let store = vec![
            store_with("heavy", 10 * 86_400 - 1_200, 10 * 86_400 - 600, 8),
            store_with("heavy", 10 * 86_400, 10 * 86_400 + 600, 8),
        ];
        let budget = serde_json::json!({"period": "Day", "gpuHours": 2.0});
        let specs = vec![queue("heavy", Some(budget)), queue("fresh", None)];
        let model = ThroughputModel::default();
        let config = MeteringConfig::default();
        let s = fair_share(&specs, &store, &b, &BTreeSet::new(), &model, &config, now);
        let status = s.queues["heavy"].budget.clone().expect("a budget");
        assert!((Amounts::from(status.spent).gpu_hours() - 8.0 / 6.0).abs() < 1e-6, "{status:?}");
        assert!(!status.exhausted);
        assert!(s.queues["fresh"].budget.is_none());
        assert_eq!(status.period_start, time(10 * 86_400));
        // A running attempt of 8 GPUs since an hour ago adds 8 GPU-hours: exhausted.
        b.running.push(RunningJob {
            id: "r".into(),
            queue: "heavy".into(),
            priority: 0,
            cluster: 0,
            accelerator: Some("A100".into()),
            slots: vec![computenet_core::pool::NodeSlot { node: 0, replicas: 1 }],
            per_replica: ReplicaRequest { accelerators: 8, ..ReplicaRequest::default() },
            started_at: now - 3_600,
            estimated_end: now + 3_600,
            restart_cost_s: None,
        });
        let s = fair_share(&specs, &store, &b, &BTreeSet::new(), &model, &config, now);
        let status = s.queues["heavy"].budget.clone().expect("a budget");
        assert!(status.exhausted, "{status:?}");
        // The same job being deleted (its attempt recorded, or ending with the deletion)
        // does not count again as running.
        let recorded: BTreeSet<String> = ["r".to_string()].into_iter().collect();
        let without = fair_share(&specs, &store, &b, &recorded, &model, &config, now);
        assert!(!without.queues["heavy"].budget.clone().expect("a budget").exhausted);
        assert!(status.message.as_deref().is_some_and(|m| m.contains("GPU-hours")), "{status:?}");
        let mut queues = b.queues.clone();
        apply(&mut queues, &s);
        assert!(queues[0].budget_exhausted.is_some() && queues[1].budget_exhausted.is_none());
        assert!(s.queues["heavy"].budget_ratio.is_some_and(|r| r > 1.0));
        // Next period: spending starts over (the running attempt counts from the period's start).
        let tomorrow = 11 * 86_400 + 60;
        b.running[0].started_at = tomorrow - 600;
        let s = fair_share(&specs, &store, &b, &BTreeSet::new(), &model, &config, tomorrow);
        assert!(!s.queues["heavy"].budget.clone().expect("a budget").exhausted);
    }

    #[test]
    fn a_job_gone_before_its_record_is_recorded_from_memory() {
        let mut status = finished(Vec::new(), 1, 100, 0);
        status.phase = Some(TrainingJobPhase::Running);
        status.completion_time = None;
        let running = job("u1", status);
        let done_and_marked =
            job("u2", TrainingJobStatus { metered_through: Some(1), ..finished(Vec::new(), 1, 0, 50) });
        let seen: BTreeMap<String, Arc<TrainingJob>> =
            [("u1".to_string(), running.clone()), ("u2".to_string(), done_and_marked)].into_iter().collect();
        let now = k8s_openapi::jiff::Timestamp::from_second(500).expect("time");
        // Both still there: nothing vanished.
        let all = vec![running.clone(), seen["u2"].clone()];
        assert!(vanished(&seen, &all, &BTreeSet::new(), now).is_empty());
        // Both gone: the running one ends now; the recorded one needs nothing.
        let gone = vanished(&seen, &[], &BTreeSet::new(), now);
        assert_eq!(gone.len(), 1);
        let spans = usage::unmetered_attempts(&gone[0]);
        assert_eq!(
            spans.iter().map(|s| (s.start, s.end, s.reason.as_str())).collect::<Vec<_>>(),
            [(100, 500, "Deleted")]
        );
        // Left out of the cache because it no longer decodes: not gone.
        let undecodable: BTreeSet<String> = ["u1".to_string()].into_iter().collect();
        assert!(vanished(&seen, &[], &undecodable, now).is_empty());
    }

    #[test]
    fn a_cohort_budget_holds_every_queue_under_it() {
        let mut b = built();
        let now = 10 * 86_400 + 7_200;
        let budget = computenet_core::usage::Budget {
            period: computenet_core::usage::BudgetPeriod::Day,
            gpu_hours: Some(1.0),
            kilowatt_hours: None,
            cost: None,
        };
        // org (budget 1 GPU-hour a day) above dept, above both queues' cohort.
        b.queues.iter_mut().for_each(|q| q.cohort = Some("dept".into()));
        b.cohorts = vec![
            computenet_core::queue::Cohort {
                name: "org".into(),
                parent: None,
                quotas: Vec::new(),
                budget: Some(budget),
            },
            computenet_core::queue::Cohort {
                name: "dept".into(),
                parent: Some("org".into()),
                quotas: Vec::new(),
                budget: None,
            },
        ];
        let specs = vec![queue("heavy", None), queue("fresh", None)];
        let (model, config) = (ThroughputModel::default(), MeteringConfig::default());
        // Heavy used 8 GPUs for 5 min today: 0.67 GPU-hours, under the cohort's budget.
        let store = vec![store_with("heavy", 10 * 86_400, 10 * 86_400 + 300, 8)];
        let s = fair_share(&specs, &store, &b, &BTreeSet::new(), &model, &config, now);
        assert!(!s.cohorts["org"].0.exhausted);
        assert!(s.queues.values().all(|q| q.held_by_cohort.is_none()));
        // And 5 min more: 1.33 GPU-hours: both queues under org wait, fresh too.
        let store = vec![store_with("heavy", 10 * 86_400, 10 * 86_400 + 600, 8)];
        let s = fair_share(&specs, &store, &b, &BTreeSet::new(), &model, &config, now);
        assert!(s.cohorts["org"].0.exhausted);
        assert!(s.cohorts["org"].1.is_some_and(|r| r > 1.0));
        let mut queues = b.queues.clone();
        apply(&mut queues, &s);
        for q in &queues {
            let why = q.budget_exhausted.as_deref().unwrap_or_default();
            assert!(why.starts_with("cohort org: ") && why.contains("GPU-hours"), "{}: {why}", q.name);
        }
        // A queue outside the tree is not held.
        let mut outside = b.clone();
        outside.queues[1].cohort = None;
        let s = fair_share(&specs, &store, &outside, &BTreeSet::new(), &model, &config, now);
        assert!(s.queues["fresh"].held_by_cohort.is_none() && s.queues["heavy"].held_by_cohort.is_some());
    }

    #[test]
    fn housekeeping_compacts_then_deletes_oldest_first() {
        let config = MeteringConfig::default();
        let now = 500 * 86_400;
        let object = |day: u64, compacted: bool| {
            let mut spec = usage::empty_day("q", day, 3_600);
            spec.compacted = compacted;
            Arc::new(ComputeUsage::new(&usage::object_name("q", day), spec))
        };
        let store = vec![object(499, false), object(490, false), object(480, true), object(50, true)];
        let work = housekeeping(&store, &config, now);
        assert_eq!(
            work,
            vec![
                Housekeeping::Delete(usage::object_name("q", 50)),
                Housekeeping::Compact(usage::object_name("q", 490))
            ]
        );
    }

    #[test]
    fn counters_sum_every_day_by_their_labels() {
        let store = vec![store_with("heavy", 0, 3_600, 8), store_with("heavy", 86_400, 86_400 + 3_600, 8)];
        let totals = counter_totals(&store);
        let key = ["team".to_string(), "heavy".to_string(), "ai-1".to_string(), "A100".to_string()];
        assert_eq!(totals.len(), 1);
        assert!((totals[&key].gpu_seconds - 2.0 * 8.0 * 3_600.0).abs() < 1e-6);
    }
}

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
//! [`DELETION_GRACE`], then the record is given up and counted as lost).
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
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use futures::FutureExt;
use tokio::task::JoinHandle;

/// The field manager of `status.meteredThrough`.
pub const FIELD_MANAGER: &str = "computenet-metering";

/// How long a deleted job waits for its last attempt to be recorded before its finalizer
/// goes anyway (the record is then lost, and counted).
pub const DELETION_GRACE: Duration = Duration::from_secs(120);

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

/// An attempt's shape from the job's spec: devices and CPU of the whole gang.
fn shape<'a>(tj: &TrainingJob, span: &'a AttemptSpan, seconds: f64) -> AttemptShape<'a> {
    let per_replica = view::per_replica(tj);
    let replicas = u64::try_from(span.replicas.max(0)).unwrap_or(0);
    AttemptShape {
        accelerator: span.accelerator.as_deref(),
        devices: u64::from(per_replica.accelerators).saturating_mul(replicas),
        cpu_millis: per_replica.cpu_millis.saturating_mul(replicas),
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
            let amounts =
                attempt_amounts(model, &built.pool.catalogue, &price.efficiency, price.measured, &shape);
            let time = |s: u64| {
                Time(k8s_openapi::jiff::Timestamp::from_second(i64::try_from(s).unwrap_or(0)).unwrap_or_default())
            };
            EndedAttempt {
                queue: tj.spec.queue_name.clone(),
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
            if store.get(&name).is_some_and(|o| usage::is_recorded(&o.spec, &a.key())) {
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

/// Past shares and budgets of every queue (pure): decayed past usage from the store's
/// rows and the running attempts' time so far; each budget's spending in its current
/// period the same way. A queue under budget-less cohorts is bound by its own budget only.
pub fn fair_share(
    queues: &[Queue],
    specs: &[Arc<ComputeQueue>],
    store: &[Arc<ComputeUsage>],
    built: &Built,
    model: &ThroughputModel,
    config: &MeteringConfig,
    now: u64,
) -> BTreeMap<String, QueueStanding> {
    let pricing = pricing(built);
    let h = config.half_life_s;
    let oldest_budget_day = specs
        .iter()
        .filter_map(|q| q.spec.budget.as_ref())
        .map(|b| usage::day_of(b.core().period.bounds(now).0))
        .min()
        .unwrap_or(u64::MAX);
    let fair_share_day =
        if h > 0.0 { usage::day_of(now.saturating_sub((h * HALF_LIVES_READ).min(now as f64) as u64)) } else { u64::MAX };
    let rows = rows_by_queue(store.iter().map(AsRef::as_ref), oldest_budget_day.min(fair_share_day));
    let mut standings = BTreeMap::new();
    for q in queues {
        let mut past: BTreeMap<(computenet_core::ResourceName, Option<String>), f64> = BTreeMap::new();
        let mut add = |accelerator: &Option<String>, amounts: &Amounts, weight: f64| {
            for (resource, amount) in quota_amounts(amounts) {
                *past.entry((resource, accelerator.clone())).or_default() += amount * weight;
            }
        };
        let queue_rows = rows.get(q.name.as_str()).map_or(&[][..], |v| &v[..]);
        if h > 0.0 {
            for (start, len, row) in queue_rows {
                let middle = *start as f64 + *len as f64 / 2.0;
                add(&row.accelerator, &Amounts::from(row.amounts), decay(now as f64 - middle, h));
            }
            for r in built.running.iter().filter(|r| r.queue == q.name) {
                let amounts = running_amounts(r, built, model, &pricing, 0, now);
                let middle = (r.started_at as f64 + now as f64) / 2.0;
                add(&r.accelerator, &amounts, decay(now as f64 - middle, h));
            }
        }
        let decayed: Vec<DecayedUsage> = past
            .into_iter()
            .map(|((resource, accelerator), amount)| DecayedUsage { resource, accelerator, amount })
            .collect();
        let mut budget_ratio = None;
        let budget = specs
            .iter()
            .find(|s| s.metadata.name.as_deref() == Some(q.name.as_str()))
            .and_then(|s| s.spec.budget.as_ref())
            .map(|spec| {
                let budget = spec.core();
                let (start, end) = budget.period.bounds(now);
                let mut spent = queue_rows
                    .iter()
                    .filter(|(s, _, _)| *s >= start as i64 && *s < end as i64)
                    .fold(Amounts::default(), |sum, (_, _, row)| sum.plus(&Amounts::from(row.amounts)));
                for r in built.running.iter().filter(|r| r.queue == q.name) {
                    spent = spent.plus(&running_amounts(r, built, model, &pricing, start, now));
                }
                let message = budget.exhausted(&spent);
                budget_ratio = budget.spent_ratio(&spent);
                let time = |s: u64| {
                    Time(
                        k8s_openapi::jiff::Timestamp::from_second(i64::try_from(s).unwrap_or(0)).unwrap_or_default(),
                    )
                };
                BudgetStatus {
                    period_start: time(start),
                    period_end: time(end),
                    spent: round_amounts(spent).into(),
                    exhausted: message.is_some(),
                    message: message.map(|m| format!("{m} spent this period; new jobs wait until {}", time(end).0)),
                }
            });
        let past_share = past_share(&q.quotas, &decayed, h);
        standings.insert(q.name.clone(), QueueStanding { past_share, budget, budget_ratio });
    }
    standings
}

/// Each queue's ordering share as the cycle starts from it: (current dominant share of
/// its running jobs + past share) / weight (pure).
pub fn ordering_shares(built: &Built) -> BTreeMap<String, f64> {
    let mut ledger = computenet_core::queue::QuotaLedger::new(&built.queues);
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
/// budget holds their new jobs.
pub fn apply(queues: &mut [Queue], standings: &BTreeMap<String, QueueStanding>) {
    for q in queues {
        if let Some(s) = standings.get(&q.name) {
            q.past_share = s.past_share;
            q.budget_exhausted = s.budget.as_ref().filter(|b| b.exhausted).and_then(|b| b.message.clone());
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
    due.sort_by(|a, b| a.0.cmp(&b.0));
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
    /// The latest standings, for the queue reporter.
    standings: BTreeMap<String, QueueStanding>,
    /// The latest ordering shares ([`ordering_shares`]).
    shares: BTreeMap<String, f64>,
    /// Attempts recorded and records given up (deleted jobs past the grace), since start.
    pub recorded_total: u64,
    pub lost_total: u64,
    /// Deleted jobs already counted as lost (by UID).
    lost: BTreeSet<String>,
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
            standings: BTreeMap::new(),
            shares: BTreeMap::new(),
            recorded_total: 0,
            lost_total: 0,
            lost: BTreeSet::new(),
        }
    }

    /// Step 4: past shares and budgets onto the snapshot's queues.
    pub fn standings(
        &mut self,
        built: &mut Built,
        specs: &[Arc<ComputeQueue>],
        store: &[Arc<ComputeUsage>],
        model: &ThroughputModel,
        now: u64,
    ) {
        self.standings = fair_share(&built.queues, specs, store, built, model, &self.config, now);
        apply(&mut built.queues, &self.standings);
        self.shares = ordering_shares(built);
    }

    /// A queue's latest ordering share.
    pub fn share(&self, queue: &str) -> Option<f64> {
        self.shares.get(queue).copied()
    }

    /// A queue's budget: spent over limit.
    pub fn budget_ratio(&self, queue: &str) -> Option<f64> {
        self.standings.get(queue).and_then(|s| s.budget_ratio)
    }

    /// The latest standings, by queue.
    pub fn standings_now(&self) -> &BTreeMap<String, QueueStanding> {
        &self.standings
    }

    /// The latest standing of a queue.
    pub fn standing(&self, queue: &str) -> Option<&QueueStanding> {
        self.standings.get(queue)
    }

    /// Step 6: record ended attempts (a flush at most every `flush_interval`, one at a
    /// time, in the background) and run housekeeping.
    pub fn pass(
        &mut self,
        jobs: &[Arc<TrainingJob>],
        store: &[Arc<ComputeUsage>],
        built: &Built,
        model: &ThroughputModel,
        now: k8s_openapi::jiff::Timestamp,
    ) {
        if self.flushing.as_ref().is_some_and(JoinHandle::is_finished) {
            // Finished: taking its result does not wait.
            if let Some(flushed) = self.flushing.take().and_then(|h| h.now_or_never()).and_then(|r| r.ok()) {
                self.recorded_total += flushed.recorded;
                for e in &flushed.errors {
                    tracing::warn!(error = %e, "usage store write failed; retried at the next flush");
                }
            }
        }
        for tj in jobs.iter().filter(|j| j.metadata.deletion_timestamp.is_some()) {
            if deletion_settled(tj, now)
                && !usage::unmetered_attempts(tj).is_empty()
                && self.lost.insert(view::uid(tj).to_string())
            {
                self.lost_total += 1;
                tracing::warn!(job = %view::job_name(tj), "usage of a deleted job was not recorded in time; given up");
            }
        }
        let due = self.last_flush.is_none_or(|t| t.elapsed() >= self.config.flush_interval);
        if self.flushing.is_none() && due {
            let pricing = pricing(built);
            let ended: Vec<(Arc<TrainingJob>, Vec<EndedAttempt>)> = jobs
                .iter()
                .map(|tj| (tj.clone(), ended(tj, model, built, &pricing)))
                .filter(|(_, a)| !a.is_empty())
                .collect();
            if !ended.is_empty() {
                let by_name: BTreeMap<String, Arc<ComputeUsage>> =
                    store.iter().filter_map(|o| Some((o.metadata.name.clone()?, o.clone()))).collect();
                let plan = plan(&ended, &by_name);
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
    let marks = plan.marks.iter().chain(plan.marks_after_write.iter().filter(|m| !failed_jobs.contains(m.uid.as_str())));
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
        let mut spec =
            current.as_ref().map_or_else(|| usage::empty_day(queue, day, bucket_s), |o| o.spec.clone());
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
mod tests {}

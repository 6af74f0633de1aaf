//! Metering: `ComputeUsage`, the durable record of what job attempts used, and budgets.
//!
//! One `ComputeUsage` per queue and UTC day (named `<queue>.<yyyymmdd>`) holds the
//! attempts of that queue that ended that day:
//! - `rows`: amounts per time bucket (hourly), namespace, member and accelerator type.
//!   Attempts are cut at bucket boundaries, so an attempt that ran across midnight has
//!   rows before the object's day. Rows are what totals, budgets and fair share read.
//! - `records`: one per attempt, at most [`MAX_RECORDS`] (later ones are counted in
//!   `recordsDropped`, their amounts still in `rows`).
//! - `recorded`: keys of the latest attempts recorded (at most [`MAX_RECORDED_KEYS`]), so
//!   an attempt recorded just before a crash is not recorded twice.
//!
//! After the raw retention the object is compacted (daily rows, no records, no keys);
//! after the retention it is deleted. The service alone writes these; everyone with
//! `get` on them can read usage.

use crate::training_job::MAX_ATTEMPTS_KEPT;
use computenet_core::usage::{Amounts, Budget, BudgetPeriod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Attempt records one `ComputeUsage` keeps.
pub const MAX_RECORDS: usize = 500;
/// Keys of recorded attempts one `ComputeUsage` keeps (at least twice the records one
/// write adds, [`MAX_RECORDS_PER_WRITE`]).
pub const MAX_RECORDED_KEYS: usize = 2_048;
/// Attempts one write adds to one `ComputeUsage`.
pub const MAX_RECORDS_PER_WRITE: usize = 512;
/// Rows one `ComputeUsage` holds; more (an absurd number of namespaces x members x types
/// in one day) fold into one row per day with namespace and member `(other)`. With the
/// records and keys this keeps an object near 1 MB, under etcd's 1.5 MiB (the schema
/// allows 4,000 rows: the daily `(other)` rows of long attempts come on top).
pub const MAX_ROWS: usize = 3_000;

const _: () = assert!(MAX_RECORDED_KEYS >= 2 * MAX_RECORDS_PER_WRITE);
const _: () = assert!(MAX_ATTEMPTS_KEPT > 0);

/// What a queue's attempts that ended on one UTC day used.
// kube's derive takes one `printcolumn` per column, by design: their repeated keys are no mistake.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "computenet.io",
    version = "v1alpha1",
    kind = "ComputeUsage",
    shortname = "cnu",
    category = "computenet",
    derive = "PartialEq",
    doc = "Usage of one queue's job attempts that ended on one UTC day: hourly rows per namespace, member and accelerator type, and the attempts themselves. Written by the computenet service only.",
    printcolumn(name = "Queue", type_ = "string", json_path = ".spec.queue"),
    printcolumn(name = "Day", type_ = "string", json_path = ".spec.day"),
    printcolumn(name = "GPU-Hours", type_ = "number", json_path = ".spec.total.gpuHours"),
    printcolumn(name = "kWh", type_ = "number", json_path = ".spec.total.energyKWh"),
    printcolumn(name = "Cost", type_ = "number", json_path = ".spec.total.cost"),
    printcolumn(name = "Attempts", type_ = "integer", json_path = ".spec.total.attempts"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct ComputeUsageSpec {
    #[schemars(length(min = 1, max = 253))]
    pub queue: String,
    /// The UTC day the attempts ended on, `YYYY-MM-DD`.
    #[schemars(length(min = 10, max = 10))]
    pub day: String,
    /// Length of a row's time bucket in seconds (3600; 86400 once compacted).
    #[schemars(range(min = 1, max = 86_400))]
    pub bucket_seconds: i64,
    /// Sum of `rows`.
    #[serde(default)]
    pub total: UsageTotal,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 4_000))]
    pub rows: Vec<UsageRow>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 500))]
    pub records: Vec<UsageRecord>,
    /// Attempts recorded in `rows` but left out of `records` (over the cap, or compacted).
    #[serde(default)]
    pub records_dropped: i64,
    /// Keys (`<uid>/<attempt>`) of the latest attempts recorded here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 2_048))]
    pub recorded: Vec<String>,
    /// Records and keys are gone, rows are daily.
    #[serde(default)]
    pub compacted: bool,
}

/// Amounts as stored: the core's [`Amounts`] with the units in the names.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageAmounts {
    #[serde(default)]
    pub gpu_seconds: f64,
    #[serde(default)]
    pub cpu_core_seconds: f64,
    #[serde(default, rename = "energyKWh")]
    pub energy_kwh: f64,
    #[serde(default, rename = "measuredEnergyKWh")]
    pub measured_energy_kwh: f64,
    #[serde(default)]
    pub cost: f64,
    #[serde(default, rename = "carbonKg")]
    pub carbon_kg: f64,
    /// Useful work in tera-FLOP (device-seconds x effective TFLOPS).
    #[serde(default, rename = "usefulTFLOP")]
    pub useful_tflop: f64,
}

impl From<Amounts> for UsageAmounts {
    fn from(a: Amounts) -> Self {
        UsageAmounts {
            gpu_seconds: a.gpu_seconds,
            cpu_core_seconds: a.cpu_core_seconds,
            energy_kwh: a.energy_kwh,
            measured_energy_kwh: a.measured_energy_kwh,
            cost: a.cost,
            carbon_kg: a.carbon_kg,
            useful_tflop: a.useful_tflop,
        }
    }
}

impl From<UsageAmounts> for Amounts {
    fn from(a: UsageAmounts) -> Self {
        // Stored figures are read back as non-negative finite numbers whatever was written.
        let f = |v: f64| if v.is_finite() { v.max(0.0) } else { 0.0 };
        Amounts {
            gpu_seconds: f(a.gpu_seconds),
            cpu_core_seconds: f(a.cpu_core_seconds),
            energy_kwh: f(a.energy_kwh),
            measured_energy_kwh: f(a.measured_energy_kwh),
            cost: f(a.cost),
            carbon_kg: f(a.carbon_kg),
            useful_tflop: f(a.useful_tflop),
        }
    }
}

/// Totals of one `ComputeUsage` (for `kubectl get cnu`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageTotal {
    #[serde(default)]
    pub attempts: i64,
    #[serde(default)]
    pub gpu_hours: f64,
    #[serde(default, rename = "energyKWh")]
    pub energy_kwh: f64,
    #[serde(default)]
    pub cost: f64,
}

/// Usage in one time bucket by one namespace on one member and accelerator type.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageRow {
    /// Start of the bucket, Unix seconds.
    pub start: i64,
    #[schemars(length(max = 253))]
    pub namespace: String,
    #[schemars(length(max = 253))]
    pub member: String,
    #[serde(default)]
    #[schemars(length(max = 253))]
    pub site: String,
    /// Accelerator type; absent for CPU-only attempts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    pub accelerator: Option<String>,
    /// Attempts with time in this bucket.
    #[serde(default)]
    pub attempts: i64,
    #[serde(flatten)]
    pub amounts: UsageAmounts,
}

/// Where an attempt's energy figure comes from.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum EnergySource {
    /// Apportioned from the member's measured accelerator power (Prometheus).
    Measured,
    /// The catalogue's board power times the member's PUE.
    #[default]
    Estimated,
}

/// One attempt of one job.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageRecord {
    #[schemars(length(max = 253))]
    pub namespace: String,
    #[schemars(length(max = 253))]
    pub job: String,
    #[schemars(length(max = 64))]
    pub uid: String,
    pub attempt: i32,
    #[schemars(length(max = 253))]
    pub member: String,
    #[serde(default)]
    #[schemars(length(max = 253))]
    pub site: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    pub accelerator: Option<String>,
    /// Accelerators of the whole gang.
    #[serde(default)]
    pub gpus: i64,
    #[serde(default)]
    pub replicas: i32,
    /// Admission of the attempt.
    pub start: Time,
    /// Its end (finished, failed, stopped, moved, preempted, lost or deleted).
    pub end: Time,
    /// Why it ended.
    #[serde(default)]
    #[schemars(length(max = 128))]
    pub reason: String,
    #[serde(default)]
    pub energy_source: EnergySource,
    #[serde(flatten)]
    pub amounts: UsageAmounts,
}

/// A budget's period: calendar periods in UTC.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum BudgetPeriodName {
    Hour,
    Day,
    /// Monday 00:00 UTC to Monday.
    Week,
    #[default]
    Month,
}

/// A spending limit per period. When any limit is reached, the queue (or every queue
/// under the cohort) admits nothing new with the reason `BudgetExhausted` until the next
/// period; running jobs go on.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[x_kube(validation = Rule::new("has(self.gpuHours) || has(self.kilowattHours) || has(self.cost)").message("a budget needs gpuHours, kilowattHours or cost"))]
#[serde(rename_all = "camelCase")]
pub struct BudgetSpec {
    #[serde(default)]
    pub period: BudgetPeriodName,
    /// Fixed windows of this many seconds counted from the Unix epoch, instead of `period`.
    /// Usage is counted in the window its row's time bucket starts in (the service's
    /// `--usage-bucket-s`, an hour by default), so make it a multiple of the bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 60, max = 31_622_400))]
    pub period_seconds: Option<i64>,
    /// Accelerator-hours per period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1.0e12))]
    pub gpu_hours: Option<f64>,
    /// Facility energy per period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1.0e12))]
    pub kilowatt_hours: Option<f64>,
    /// Energy cost per period, in the members' currency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1.0e15))]
    pub cost: Option<f64>,
}

impl BudgetSpec {
    /// The budget as the core counts it.
    pub fn core(&self) -> Budget {
        let period = match (self.period_seconds, self.period) {
            (Some(s), _) => BudgetPeriod::Seconds(u64::try_from(s).unwrap_or(60).max(60)),
            (None, BudgetPeriodName::Hour) => BudgetPeriod::Hour,
            (None, BudgetPeriodName::Day) => BudgetPeriod::Day,
            (None, BudgetPeriodName::Week) => BudgetPeriod::Week,
            (None, BudgetPeriodName::Month) => BudgetPeriod::Month,
        };
        let limit = |v: Option<f64>| v.filter(|v| v.is_finite()).map(|v| v.max(0.0));
        Budget {
            period,
            gpu_hours: limit(self.gpu_hours),
            kilowatt_hours: limit(self.kilowatt_hours),
            cost: limit(self.cost),
        }
    }
}

/// A budget's state in the current period.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BudgetStatus {
    pub period_start: Time,
    pub period_end: Time,
    /// Spent in the period: ended attempts' recorded usage and running attempts' so far.
    pub spent: UsageAmounts,
    /// A limit is reached: nothing new is admitted until `periodEnd`.
    #[serde(default)]
    pub exhausted: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// What usage is summed by: every label of a row and its queue.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UsageKey {
    pub queue: String,
    pub namespace: String,
    pub member: String,
    pub site: String,
    /// None: CPU only.
    pub accelerator: Option<String>,
}

/// A sum of rows.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct UsageSum {
    /// Attempt-buckets summed (an attempt counts once per bucket it had time in).
    pub attempts: i64,
    pub amounts: Amounts,
}

/// Usage of the rows whose bucket starts in `[since, until)` (Unix seconds), summed per
/// queue, namespace, member, site and accelerator. Rows are hourly (daily once
/// compacted), so the window is as fine as the buckets it covers.
pub fn totals<'a>(
    objects: impl IntoIterator<Item = &'a ComputeUsage>,
    since: i64,
    until: i64,
) -> std::collections::BTreeMap<UsageKey, UsageSum> {
    let mut sums = std::collections::BTreeMap::<UsageKey, UsageSum>::new();
    for o in objects {
        for r in o.spec.rows.iter().filter(|r| r.start >= since && r.start < until) {
            let key = UsageKey {
                queue: o.spec.queue.clone(),
                namespace: r.namespace.clone(),
                member: r.member.clone(),
                site: r.site.clone(),
                accelerator: r.accelerator.clone(),
            };
            let sum = sums.entry(key).or_default();
            sum.attempts = sum.attempts.saturating_add(r.attempts.max(0));
            sum.amounts = sum.amounts.plus(&Amounts::from(r.amounts));
        }
    }
    sums
}

/// Days since 1970-01-01 of a Unix time.
pub fn day_of(unix_s: u64) -> u64 {
    unix_s / 86_400
}

/// `YYYY-MM-DD` of a day count.
pub fn day_string(day: u64) -> String {
    let (y, m, d) = computenet_core::usage::civil(day);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The day count of a `YYYY-MM-DD` string (None when it is not one).
pub fn parse_day(text: &str) -> Option<u64> {
    let mut parts = text.splitn(3, '-');
    let y: i64 = parts.next()?.parse().ok()?;
    let m: u32 = parts.next()?.parse().ok()?;
    let d: u32 = parts.next()?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || !(1970..=9999).contains(&y) {
        return None;
    }
    let day = computenet_core::usage::days_from_civil(y, m, d);
    (day_string(day) == text).then_some(day)
}

/// The name of the object holding `queue`'s attempts that ended on `day`:
/// `<queue>.<yyyymmdd>` (the date part has a fixed length, so two queues never share one).
pub fn object_name(queue: &str, day: u64) -> String {
    format!("{queue}.{}", day_string(day).replace('-', ""))
}

/// An empty day of a queue.
pub fn empty_day(queue: &str, day: u64, bucket_seconds: u64) -> ComputeUsageSpec {
    ComputeUsageSpec {
        queue: queue.to_string(),
        day: day_string(day),
        bucket_seconds: i64::try_from(bucket_seconds.clamp(1, 86_400)).unwrap_or(3_600),
        total: UsageTotal::default(),
        rows: Vec::new(),
        records: Vec::new(),
        records_dropped: 0,
        recorded: Vec::new(),
        compacted: false,
    }
}

/// An ended attempt, ready to be recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct EndedAttempt {
    pub queue: String,
    /// Unix seconds of admission and end.
    pub start: u64,
    pub end: u64,
    /// What the whole attempt used.
    pub amounts: Amounts,
    pub record: UsageRecord,
}

impl EndedAttempt {
    /// The key that makes recording idempotent: `<uid>/<attempt>`.
    pub fn key(&self) -> String {
        attempt_key(&self.record.uid, self.record.attempt)
    }
}

/// `<uid>/<attempt>`.
pub fn attempt_key(uid: &str, attempt: i32) -> String {
    format!("{uid}/{attempt}")
}

/// Whether the attempt with `key` is already recorded in `day`.
pub fn is_recorded(day: &ComputeUsageSpec, key: &str) -> bool {
    day.recorded.iter().any(|k| k == key)
}

/// Namespace (and member) of the daily row that takes what no longer fits in [`MAX_ROWS`].
pub const OTHER_NAMESPACE: &str = "(other)";

/// Pieces one attempt is cut into at most: a month of hourly buckets. A longer attempt
/// (or shorter buckets) is cut at multiples of the bucket instead.
pub const MAX_PIECES: u64 = 744;

/// Adds `attempts` to `day` (those whose key it already has are skipped): rows cut at the
/// day's bucket boundaries in proportion to time, a record each while there is room
/// ([`MAX_RECORDS`]), and the key (the oldest keys go first beyond
/// [`MAX_RECORDED_KEYS`]). Returns the keys added. Pure and deterministic.
pub fn record(day: &mut ComputeUsageSpec, attempts: &[EndedAttempt]) -> Vec<String> {
    let bucket = u64::try_from(day.bucket_seconds).unwrap_or(3_600).clamp(1, 86_400);
    let mut index: std::collections::HashMap<(i64, String, String, Option<String>), usize> = day
        .rows
        .iter()
        .enumerate()
        .map(|(i, r)| ((r.start, r.namespace.clone(), r.member.clone(), r.accelerator.clone()), i))
        .collect();
    let mut added = Vec::new();
    let mut known: std::collections::HashSet<String> = day.recorded.iter().cloned().collect();
    for a in attempts {
        let key = a.key();
        if !known.insert(key.clone()) {
            continue;
        }
        let seconds = a.end.saturating_sub(a.start);
        // A long attempt in short buckets is cut into at most MAX_PIECES pieces (each a
        // whole number of buckets), so one record costs bounded time and rows.
        let piece = bucket.saturating_mul(seconds.div_ceil(bucket.saturating_mul(MAX_PIECES)).max(1));
        let pieces: Vec<(u64, u64)> = if seconds == 0 {
            vec![(a.end - a.end % bucket, 0)]
        } else {
            computenet_core::usage::buckets(a.start, a.end, piece).collect()
        };
        for (start, s) in pieces {
            let share = if seconds == 0 { 1.0 } else { s as f64 / seconds as f64 };
            let amounts = a.amounts.scaled(share);
            let mut start = i64::try_from(start).unwrap_or(i64::MAX);
            let (mut namespace, mut member, mut accelerator) =
                (a.record.namespace.clone(), a.record.member.clone(), a.record.accelerator.clone());
            if !index.contains_key(&(start, namespace.clone(), member.clone(), accelerator.clone()))
                && day.rows.len() >= MAX_ROWS
            {
                // Over the cap: one row per day takes the rest.
                start = start.div_euclid(86_400).saturating_mul(86_400);
                (namespace, member, accelerator) = (OTHER_NAMESPACE.to_string(), OTHER_NAMESPACE.to_string(), None);
            }
            let k = (start, namespace.clone(), member.clone(), accelerator.clone());
            let i = *index.entry(k).or_insert_with(|| {
                day.rows.push(UsageRow {
                    start,
                    namespace,
                    site: if member == OTHER_NAMESPACE { String::new() } else { a.record.site.clone() },
                    member,
                    accelerator,
                    attempts: 0,
                    amounts: UsageAmounts::default(),
                });
                day.rows.len() - 1
            });
            let row = &mut day.rows[i];
            row.attempts = row.attempts.saturating_add(1);
            row.amounts = Amounts::from(row.amounts).plus(&amounts).into();
        }
        if day.records.len() < MAX_RECORDS && !day.compacted {
            day.records.push(a.record.clone());
        } else {
            day.records_dropped = day.records_dropped.saturating_add(1);
        }
        if !day.compacted {
            day.recorded.push(key.clone());
        }
        added.push(key);
    }
    let excess = day.recorded.len().saturating_sub(MAX_RECORDED_KEYS);
    day.recorded.drain(..excess);
    day.rows.sort_by(|a, b| {
        (a.start, &a.namespace, &a.member, &a.accelerator).cmp(&(b.start, &b.namespace, &b.member, &b.accelerator))
    });
    day.total = total(day, attempts_recorded(day));
    added
}

/// Attempts recorded in a day: its records and those it dropped.
fn attempts_recorded(day: &ComputeUsageSpec) -> i64 {
    i64::try_from(day.records.len()).unwrap_or(i64::MAX).saturating_add(day.records_dropped)
}

fn total(day: &ComputeUsageSpec, attempts: i64) -> UsageTotal {
    let sum = day.rows.iter().fold(Amounts::default(), |s, r| s.plus(&Amounts::from(r.amounts)));
    let round = |v: f64| (v * 1e6).round() / 1e6;
    UsageTotal { attempts, gpu_hours: round(sum.gpu_hours()), energy_kwh: round(sum.energy_kwh), cost: round(sum.cost) }
}

/// `day` compacted: daily rows (one per namespace, member and type), no records (counted in
/// `recordsDropped`), no keys. What is kept after the raw retention.
pub fn compact(day: &ComputeUsageSpec) -> ComputeUsageSpec {
    let attempts = attempts_recorded(day);
    let mut rows: std::collections::BTreeMap<(i64, String, String, Option<String>), UsageRow> =
        std::collections::BTreeMap::new();
    for r in &day.rows {
        // Stored starts are read as they are: any i64, even the extremes, must not overflow.
        let start = r.start.div_euclid(86_400).saturating_mul(86_400);
        let k = (start, r.namespace.clone(), r.member.clone(), r.accelerator.clone());
        let row = rows.entry(k).or_insert_with(|| UsageRow {
            start,
            attempts: 0,
            amounts: UsageAmounts::default(),
            ..r.clone()
        });
        // An attempt with time in several hours of one day counts once per hour here too:
        // `attempts` of a row is attempt-buckets, as before compaction.
        row.attempts = row.attempts.saturating_add(r.attempts);
        row.amounts = Amounts::from(row.amounts).plus(&Amounts::from(r.amounts)).into();
    }
    let mut out = ComputeUsageSpec {
        bucket_seconds: 86_400,
        rows: rows.into_values().collect(),
        records: Vec::new(),
        records_dropped: attempts,
        recorded: Vec::new(),
        compacted: true,
        ..day.clone()
    };
    out.total = total(&out, attempts);
    out
}

/// An attempt of a job that has ended (or, for a running one, its time so far).
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptSpan {
    pub attempt: i32,
    pub cluster: String,
    pub accelerator: Option<String>,
    pub replicas: i32,
    /// Unix seconds of admission.
    pub start: u64,
    /// Unix seconds of the end.
    pub end: u64,
    pub reason: String,
    /// As admitted (status, written by the service only), never the live spec: the queue
    /// it is billed to, the gang's accelerators and CPU (millicores). None only for
    /// attempts recorded before these were kept.
    pub queue: Option<String>,
    pub gpus: Option<u64>,
    pub cpu_millis: Option<u64>,
}

/// The ended attempts of `tj` not yet recorded (numbers above `status.meteredThrough`),
/// oldest first: its earlier attempts (`status.attempts`), and the current one once the
/// job finished (at `completionTime`) or, admitted, is being deleted (at its deletion).
/// Attempts without a start were never admitted and used nothing.
pub fn unmetered_attempts(tj: &crate::TrainingJob) -> Vec<AttemptSpan> {
    use crate::training_job::TrainingJobPhase;
    let Some(status) = tj.status.as_ref() else { return Vec::new() };
    let through = status.metered_through.unwrap_or(0);
    let unix = |t: &Time| u64::try_from(t.0.as_second()).unwrap_or(0);
    let mut spans: Vec<AttemptSpan> = status
        .attempts
        .iter()
        .filter(|a| a.attempt > through)
        .filter_map(|a| {
            Some(AttemptSpan {
                attempt: a.attempt,
                cluster: a.cluster.clone(),
                accelerator: a.accelerator.clone(),
                replicas: a.replicas,
                start: unix(a.start_time.as_ref()?),
                end: unix(a.end_time.as_ref()?),
                reason: a.reason.clone(),
                queue: a.queue.clone(),
                gpus: a.gpus.and_then(|g| u64::try_from(g).ok()),
                cpu_millis: a.cpu_millis.and_then(|c| u64::try_from(c).ok()),
            })
        })
        .collect();
    let finished = matches!(status.phase, Some(TrainingJobPhase::Succeeded | TrainingJobPhase::Failed));
    let ended_at = match (&status.completion_time, &tj.metadata.deletion_timestamp) {
        (Some(done), _) if finished => Some((unix(done), status.phase.map(|p| format!("{p:?}")))),
        (_, Some(deleted)) if status.admitted == Some(true) && !finished => {
            Some((unix(deleted), Some("Deleted".to_string())))
        }
        _ => None,
    };
    // Admissions always number their attempt; one without a number is the first.
    let number = status.attempt.unwrap_or(1);
    if let (Some((end, reason)), Some(placement), Some(start)) = (ended_at, &status.placement, &status.start_time) {
        if number > through && !spans.iter().any(|s| s.attempt == number) {
            spans.push(AttemptSpan {
                attempt: number,
                cluster: placement.cluster.clone(),
                accelerator: placement.accelerator.clone(),
                replicas: placement.replicas.unwrap_or(tj.spec.replicas),
                start: unix(start),
                end: end.max(unix(start)),
                reason: reason.unwrap_or_default(),
                queue: placement.queue.clone(),
                gpus: u64::try_from(placement.gpus).ok(),
                cpu_millis: placement.cpu_millis.and_then(|c| u64::try_from(c).ok()),
            });
        }
    }
    spans.sort_by_key(|s| s.attempt);
    spans
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::training_job::{AttemptStatus, PlacementStatus, TrainingJobPhase, TrainingJobStatus};
    use crate::TrainingJob;

    fn time(s: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(s).expect("time"))
    }

    fn attempt(uid: &str, n: i32, namespace: &str, start: u64, end: u64, gpu_seconds: f64) -> EndedAttempt {
        EndedAttempt {
            queue: "q".into(),
            start,
            end,
            amounts: Amounts { gpu_seconds, energy_kwh: gpu_seconds / 1000.0, ..Amounts::default() },
            record: UsageRecord {
                namespace: namespace.into(),
                job: "j".into(),
                uid: uid.into(),
                attempt: n,
                member: "ai-1".into(),
                site: "s".into(),
                accelerator: Some("A100".into()),
                gpus: 8,
                replicas: 1,
                start: time(start as i64),
                end: time(end as i64),
                reason: "Succeeded".into(),
                energy_source: EnergySource::Estimated,
                amounts: UsageAmounts::default(),
            },
        }
    }

    fn gpu_seconds(day: &ComputeUsageSpec) -> f64 {
        day.rows.iter().map(|r| r.amounts.gpu_seconds).sum()
    }

    #[test]
    fn names_and_days_round_trip() {
        let day = computenet_core::usage::days_from_civil(2026, 12, 1);
        assert_eq!(day_string(day), "2026-12-01");
        assert_eq!(parse_day("2026-12-01"), Some(day));
        assert_eq!(object_name("team-a", day), "team-a.20261201");
        for bad in ["2026-13-01", "2026-02-30", "x", "2026-1-1", ""] {
            assert_eq!(parse_day(bad), None, "{bad}");
        }
    }

    #[test]
    fn an_attempt_is_cut_at_bucket_boundaries_in_proportion_and_recorded_once() {
        let mut day = empty_day("q", 0, 3_600);
        // 1.5 h from 00:30: half an hour, then a whole hour.
        let a = attempt("u1", 1, "ns", 1_800, 7_200, 5_400.0);
        assert_eq!(record(&mut day, std::slice::from_ref(&a)), vec!["u1/1".to_string()]);
        let starts: Vec<(i64, f64)> = day.rows.iter().map(|r| (r.start, r.amounts.gpu_seconds)).collect();
        assert_eq!(starts, vec![(0, 1_800.0), (3_600, 3_600.0)]);
        assert_eq!((day.total.attempts, day.records.len()), (1, 1));
        assert!((day.total.gpu_hours - 1.5).abs() < 1e-9);
        // The same attempt again (a flush retried after a crash) changes nothing.
        let before = day.clone();
        assert!(record(&mut day, &[a.clone(), a]).is_empty());
        assert_eq!(day, before);
    }

    #[test]
    fn records_and_keys_are_capped_but_rows_keep_every_attempt() {
        let mut day = empty_day("q", 0, 3_600);
        let n = MAX_RECORDS + 10;
        for chunk in (0..n).collect::<Vec<_>>().chunks(MAX_RECORDS_PER_WRITE) {
            let attempts: Vec<_> = chunk.iter().map(|i| attempt(&format!("u{i}"), 1, "ns", 0, 100, 100.0)).collect();
            record(&mut day, &attempts);
        }
        assert_eq!(day.records.len(), MAX_RECORDS);
        assert_eq!(day.records_dropped, 10);
        assert_eq!(day.total.attempts, n as i64);
        assert!((gpu_seconds(&day) - 100.0 * n as f64).abs() < 1e-6);
        assert_eq!(day.rows.len(), 1, "one namespace, member and type in one hour: one row");
        // Keys: the latest kept.
        let mut many = empty_day("q", 0, 3_600);
        let total = MAX_RECORDED_KEYS + 5;
        for chunk in (0..total).collect::<Vec<_>>().chunks(MAX_RECORDS_PER_WRITE) {
            let attempts: Vec<_> = chunk.iter().map(|i| attempt(&format!("k{i}"), 1, "ns", 0, 10, 1.0)).collect();
            record(&mut many, &attempts);
        }
        assert_eq!(many.recorded.len(), MAX_RECORDED_KEYS);
        assert!(is_recorded(&many, &format!("k{}/1", total - 1)));
        assert!(!is_recorded(&many, "k0/1"));
    }

    #[test]
    fn rows_beyond_the_cap_fold_into_other() {
        let mut day = empty_day("q", 0, 3_600);
        day.rows = (0..MAX_ROWS)
            .map(|i| UsageRow { start: 0, namespace: format!("n{i}"), member: "m".into(), ..UsageRow::default() })
            .collect();
        record(&mut day, &[attempt("u", 1, "fresh", 0, 10, 10.0), attempt("v", 1, "fresh2", 0, 10, 5.0)]);
        let other: Vec<_> = day.rows.iter().filter(|r| r.namespace == OTHER_NAMESPACE).collect();
        assert_eq!(other.len(), 1);
        assert!((other[0].amounts.gpu_seconds - 15.0).abs() < 1e-9);
        // A week-long attempt beyond the cap adds at most one row per day it touched.
        let before = day.rows.len();
        record(&mut day, &[attempt("w", 1, "week", 0, 7 * 86_400, 100.0)]);
        assert!(day.rows.len() - before <= 7, "{} rows added", day.rows.len() - before);
    }

    #[test]
    fn a_long_attempt_in_short_buckets_is_cut_into_bounded_pieces() {
        let mut day = empty_day("q", 0, 1);
        let a = attempt("y", 1, "x", 5, 4_000_000_000, 1e9);
        record(&mut day, &[a]);
        assert!(day.rows.len() as u64 <= MAX_PIECES + 1, "{} rows", day.rows.len());
        assert!((gpu_seconds(&day) - 1e9).abs() < 1e-3 * 1e9);
        assert!(day.rows.len() as u64 >= MAX_PIECES / 2, "still cut in time: {} rows", day.rows.len());
        // Short attempts keep their buckets.
        let mut hourly = empty_day("q", 0, 3_600);
        record(&mut hourly, &[attempt("z", 1, "x", 0, 10 * 3_600, 10.0)]);
        assert_eq!(hourly.rows.len(), 10);
    }

    #[test]
    fn compaction_keeps_the_totals_in_daily_rows() {
        let mut day = empty_day("q", 1, 3_600);
        record(
            &mut day,
            &[
                attempt("a", 1, "x", 86_400, 86_400 + 7_200, 7_200.0),
                attempt("b", 1, "x", 86_400 + 3_600, 86_400 + 3_700, 100.0),
                attempt("c", 1, "y", 86_400, 86_400 + 60, 60.0),
            ],
        );
        let compacted = compact(&day);
        assert!(compacted.compacted && compacted.records.is_empty() && compacted.recorded.is_empty());
        assert_eq!(compacted.bucket_seconds, 86_400);
        assert_eq!(compacted.rows.len(), 2, "one row per namespace");
        assert!(compacted.rows.iter().all(|r| r.start == 86_400));
        assert!((gpu_seconds(&compacted) - gpu_seconds(&day)).abs() < 1e-9);
        assert_eq!((compacted.total.attempts, compacted.records_dropped), (3, 3));
        assert_eq!(compacted.total.gpu_hours, day.total.gpu_hours);
        // A late attempt still lands in a compacted day's rows.
        let mut late = compacted.clone();
        record(&mut late, &[attempt("d", 1, "x", 86_400, 86_400 + 10, 10.0)]);
        assert_eq!(late.total.attempts, 4);
        assert!(late.records.is_empty());
    }

    #[test]
    fn totals_sum_rows_in_the_window() {
        let mut day = empty_day("q", 0, 3_600);
        record(&mut day, &[attempt("a", 1, "x", 0, 7_200, 7_200.0)]);
        let object = ComputeUsage::new("q.19700101", day);
        let all = totals([&object], i64::MIN, i64::MAX);
        assert_eq!(all.len(), 1);
        let sum = all.values().next().expect("one");
        assert_eq!((sum.attempts, sum.amounts.gpu_seconds), (2, 7_200.0));
        let first_hour = totals([&object], 0, 3_600);
        assert_eq!(first_hour.values().next().expect("one").amounts.gpu_seconds, 3_600.0);
        assert!(totals([&object], 7_200, 10_000).is_empty());
    }

    fn job(status: TrainingJobStatus) -> TrainingJob {
        let mut tj = TrainingJob::new(
            "j",
            serde_json::from_value(serde_json::json!({
                "queueName": "q", "replicas": 2,
                "resources": {"cpu": "4", "memory": "16Gi", "accelerators": {"count": 4}},
                "workload": {"image": "x", "command": ["true"]}
            }))
            .expect("spec"),
        );
        tj.metadata.uid = Some("uid-1".into());
        tj.status = Some(status);
        tj
    }

    fn ended_attempt(n: i32, start: i64, end: i64) -> AttemptStatus {
        AttemptStatus {
            attempt: n,
            cluster: "ai-1".into(),
            accelerator: Some("A100".into()),
            replicas: 2,
            start_time: Some(time(start)),
            end_time: Some(time(end)),
            reason: "Preempted".into(),
            ..AttemptStatus::default()
        }
    }

    #[test]
    fn unmetered_attempts_are_the_ended_ones_above_the_watermark() {
        let placement =
            PlacementStatus { cluster: "ai-2".into(), accelerator: Some("H800".into()), ..Default::default() };
        let running = TrainingJobStatus {
            phase: Some(TrainingJobPhase::Running),
            admitted: Some(true),
            attempt: Some(3),
            start_time: Some(time(500)),
            placement: Some(placement),
            attempts: vec![ended_attempt(1, 0, 100), ended_attempt(2, 200, 400)],
            ..TrainingJobStatus::default()
        };
        let spans = unmetered_attempts(&job(running.clone()));
        assert_eq!(spans.iter().map(|s| (s.attempt, s.start, s.end)).collect::<Vec<_>>(), [(1, 0, 100), (2, 200, 400)]);
        let marked = TrainingJobStatus { metered_through: Some(1), ..running.clone() };
        assert_eq!(unmetered_attempts(&job(marked)).len(), 1);
        // Finished: the current attempt ends at completion, with the phase as its reason.
        let done = TrainingJobStatus {
            phase: Some(TrainingJobPhase::Succeeded),
            completion_time: Some(time(900)),
            metered_through: Some(2),
            ..running.clone()
        };
        let spans = unmetered_attempts(&job(done));
        assert_eq!(spans.len(), 1);
        assert_eq!(
            (spans[0].attempt, spans[0].start, spans[0].end, spans[0].cluster.as_str(), spans[0].reason.as_str()),
            (3, 500, 900, "ai-2", "Succeeded")
        );
        assert_eq!(spans[0].replicas, 2, "the spec's replicas when the placement names none");
        // Deleted while running: it ends at the deletion.
        let mut deleted = job(TrainingJobStatus { metered_through: Some(2), ..running });
        deleted.metadata.deletion_timestamp = Some(time(700));
        assert_eq!(unmetered_attempts(&deleted).iter().map(|s| (s.attempt, s.end)).collect::<Vec<_>>(), [(3, 700)]);
        // Never admitted: nothing.
        assert!(unmetered_attempts(&job(TrainingJobStatus::default())).is_empty());
    }
}

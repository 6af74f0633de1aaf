//! Prometheus metrics of `computenet serve`, served at `/metrics`.
//!
//! Gauges are set from each cycle's [`PoolObservation`]; label sets that disappear (a
//! member removed, a job leaving the top N of its queue) are removed. Counters and the
//! cycle histogram are recorded by the controller as things happen.
//!
//! No series names a job unless the admin asks for it (`--metrics-job-labels`): `/metrics`
//! is scraped without authentication, and job names are tenants' data.

use crate::observe::PoolObservation;
use computenet_core::usage::Amounts;
use prometheus::{CounterVec, Encoder, GaugeVec, Histogram, HistogramOpts, IntCounterVec, Opts, Registry, TextEncoder};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

/// Content type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The `class` label values of `computenet_dispatch_errors_total`.
const DISPATCH_ERROR_CLASSES: [&str; 2] = ["permanent", "transient"];

/// Labels of the usage counters.
const USAGE_LABELS: [&str; 4] = ["namespace", "queue", "member", "accelerator"];

/// Buckets of the scheduling-cycle histogram, in seconds.
const CYCLE_BUCKETS: [f64; 15] =
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// A gauge family set as a whole: what is not set in an update is removed.
#[derive(Debug)]
struct Gauges {
    vec: GaugeVec,
    present: Mutex<BTreeSet<Vec<String>>>,
}

impl Gauges {
    fn new(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> prometheus::Result<Self> {
        let vec = GaugeVec::new(Opts::new(name, help), labels)?;
        registry.register(Box::new(vec.clone()))?;
        Ok(Self { vec, present: Mutex::new(BTreeSet::new()) })
    }

    /// Sets these label sets to these values and removes the others.
    fn replace(&self, values: Vec<(Vec<String>, f64)>) {
        let mut present = self.present.lock().unwrap_or_else(|e| e.into_inner());
        let mut now = BTreeSet::new();
        for (labels, value) in values {
            self.vec.with_label_values(&labels).set(value);
            now.insert(labels);
        }
        for stale in present.difference(&now) {
            let _ = self.vec.remove_label_values(stale);
        }
        *present = now;
    }
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> prometheus::Result<IntCounterVec> {
    let vec = IntCounterVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(vec.clone()))?;
    Ok(vec)
}

fn float_counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> prometheus::Result<CounterVec> {
    let vec = CounterVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(vec.clone()))?;
    Ok(vec)
}

/// The usage counters: recorded usage in the store, all time, per namespace, queue, member
/// and accelerator (see [`Metrics::usage`]).
#[derive(Debug)]
struct UsageCounters {
    gpu_seconds: CounterVec,
    energy_kwh: CounterVec,
    cost: CounterVec,
    carbon_kg: CounterVec,
    /// What each label set was last set to: the counters only go up by the difference.
    last: Mutex<BTreeMap<[String; 4], Amounts>>,
}

fn labels<const N: usize>(values: [&str; N]) -> Vec<String> {
    values.iter().map(|v| v.to_string()).collect()
}

/// The metrics registry of one scheduler process.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    cluster_accelerators: Gauges,
    cluster_cpu_cores: Gauges,
    cluster_ready: Gauges,
    cluster_heartbeat_age: Gauges,
    cluster_pue: Gauges,
    cluster_power: Gauges,
    cluster_utilization: Gauges,
    cluster_efficiency: Gauges,
    queue_jobs: Gauges,
    queue_used: Gauges,
    queue_quota: Gauges,
    /// Only with job labels enabled: its series name jobs.
    pending_position: Option<Gauges>,
    admissions: IntCounterVec,
    preemptions: IntCounterVec,
    dispatch_errors: IntCounterVec,
    admission_conflicts: IntCounterVec,
    invalid_objects: Gauges,
    learned_rate: Gauges,
    learned_jobs: Gauges,
    progress_jobs: Gauges,
    cycle: Histogram,
    usage: UsageCounters,
    queue_share: Gauges,
    queue_past_share: Gauges,
    queue_budget_ratio: Gauges,
    queue_budget_exhausted: Gauges,
    usage_records: Gauges,
    /// One update at a time, so label-set bookkeeping stays consistent.
    updating: Mutex<()>,
}

impl Metrics {
    /// A registry with every computenet metric family (an error only if a definition is
    /// invalid or registered twice); `job_labels` adds the one whose series name jobs.
    pub fn new(job_labels: bool) -> prometheus::Result<Self> {
        let r = Registry::new();
        let cycle = Histogram::with_opts(
            HistogramOpts::new(
                "computenet_scheduling_cycle_duration_seconds",
                "Duration of one scheduling cycle (snapshot, decisions, writes, dispatch), in seconds.",
            )
            .buckets(CYCLE_BUCKETS.to_vec()),
        )?;
        r.register(Box::new(cycle.clone()))?;
        Ok(Self {
            cluster_accelerators: Gauges::new(
                &r,
                "computenet_cluster_accelerators",
                "Accelerator devices of a member cluster by type; state is total, allocated or free (total minus allocated and free is on unschedulable nodes).",
                &["cluster", "kind", "accelerator", "state"],
            )?,
            cluster_cpu_cores: Gauges::new(
                &r,
                "computenet_cluster_cpu_cores",
                "CPU cores of a member cluster; state is total, allocated or free.",
                &["cluster", "kind", "state"],
            )?,
            cluster_ready: Gauges::new(
                &r,
                "computenet_cluster_ready",
                "Whether the member cluster is reachable and its capacity fresh (1) or not (0).",
                &["cluster", "kind"],
            )?,
            cluster_heartbeat_age: Gauges::new(
                &r,
                "computenet_cluster_heartbeat_age_seconds",
                "Seconds since the last successful contact with the member cluster recorded in its status.",
                &["cluster"],
            )?,
            cluster_pue: Gauges::new(
                &r,
                "computenet_cluster_pue",
                "Power usage effectiveness of the member cluster's facility.",
                &["cluster"],
            )?,
            cluster_power: Gauges::new(
                &r,
                "computenet_cluster_power_watts",
                "Measured power draw of the member cluster's accelerators, in watts.",
                &["cluster"],
            )?,
            cluster_utilization: Gauges::new(
                &r,
                "computenet_cluster_gpu_utilization_ratio",
                "Measured mean accelerator utilisation of the member cluster (0 to 1).",
                &["cluster"],
            )?,
            cluster_efficiency: Gauges::new(
                &r,
                "computenet_cluster_efficiency_tflops_per_watt",
                "Computing efficiency of the member cluster in TFLOPS per facility watt: measured when power and utilisation are known, else rated (peak TFLOPS over board power, divided by PUE).",
                &["cluster"],
            )?,
            queue_jobs: Gauges::new(
                &r,
                "computenet_queue_jobs",
                "Jobs of a ComputeQueue; state is pending, admitted (holding capacity, running included) or running.",
                &["queue", "state"],
            )?,
            queue_used: Gauges::new(
                &r,
                "computenet_queue_accelerators_used",
                "Accelerators held by the admitted jobs of a ComputeQueue.",
                &["queue"],
            )?,
            queue_quota: Gauges::new(
                &r,
                "computenet_queue_accelerators_quota",
                "Nominal accelerator quota of a ComputeQueue (absent when unlimited).",
                &["queue"],
            )?,
            pending_position: job_labels
                .then(|| {
                    Gauges::new(
                        &r,
                        "computenet_pending_job_position",
                        "Position of a pending job in its queue (1 is next); only the first N jobs of each queue.",
                        &["queue", "namespace", "job"],
                    )
                })
                .transpose()?,
            admissions: counter(
                &r,
                "computenet_admissions_total",
                "Jobs admitted, by queue and member cluster.",
                &["queue", "cluster"],
            )?,
            preemptions: counter(&r, "computenet_preemptions_total", "Jobs preempted, by their queue.", &["queue"])?,
            dispatch_errors: counter(
                &r,
                "computenet_dispatch_errors_total",
                "Failed attempts to create a job's objects on a member cluster; class is permanent (the member refused the job, which failed) or transient (backed off and retried).",
                &["cluster", "class"],
            )?,
            admission_conflicts: counter(
                &r,
                "computenet_admission_conflicts_total",
                "Admissions not written because the job changed between the decision and the write (it is decided again), by queue.",
                &["queue"],
            )?,
            invalid_objects: Gauges::new(
                &r,
                "computenet_invalid_objects",
                "Hub objects left out of the caches because they do not decode (each has a Warning Event InvalidObject), by kind.",
                &["kind"],
            )?,
            learned_rate: Gauges::new(
                &r,
                "computenet_learned_steps_per_second",
                "Training steps per second learned from running jobs' progress (a moving average), by placement; only placements with enough readings to be used in estimates. batch_size is empty when the jobs give none.",
                &["namespace", "model", "accelerator", "gpus", "nodes", "batch_size"],
            )?,
            learned_jobs: Gauges::new(
                &r,
                "computenet_learned_jobs",
                "Jobs whose progress readings a learned rate (computenet_learned_steps_per_second) comes from.",
                &["namespace", "model", "accelerator", "gpus", "nodes", "batch_size"],
            )?,
            progress_jobs: Gauges::new(
                &r,
                "computenet_progress_jobs",
                "Running jobs whose progress is read from Prometheus (--progress-query) and tracked.",
                &[],
            )?,
            usage: UsageCounters {
                gpu_seconds: float_counter(
                    &r,
                    "computenet_usage_gpu_seconds_total",
                    "Accelerator-seconds of ended job attempts recorded in the usage store (ComputeUsage), all time.",
                    &USAGE_LABELS,
                )?,
                energy_kwh: float_counter(
                    &r,
                    "computenet_usage_energy_kwh_total",
                    "Facility energy (kWh, measured where the member's Prometheus gives power, else estimated) of ended job attempts recorded in the usage store.",
                    &USAGE_LABELS,
                )?,
                cost: float_counter(
                    &r,
                    "computenet_usage_cost_total",
                    "Energy cost (at the member's price) of ended job attempts recorded in the usage store.",
                    &USAGE_LABELS,
                )?,
                carbon_kg: float_counter(
                    &r,
                    "computenet_usage_carbon_kg_total",
                    "kg CO2e of ended job attempts recorded in the usage store.",
                    &USAGE_LABELS,
                )?,
                last: Mutex::new(BTreeMap::new()),
            },
            queue_share: Gauges::new(
                &r,
                "computenet_queue_share",
                "A queue's ordering share: (current dominant share + past share) / weight; lower goes first.",
                &["queue"],
            )?,
            queue_past_share: Gauges::new(
                &r,
                "computenet_queue_past_share",
                "A queue's decayed past usage as a share of its quotas (0 without a half life).",
                &["queue"],
            )?,
            queue_budget_ratio: Gauges::new(
                &r,
                "computenet_queue_budget_spent_ratio",
                "Spent over the limit of the queue's budget in the current period (the largest over its limits).",
                &["queue"],
            )?,
            queue_budget_exhausted: Gauges::new(
                &r,
                "computenet_queue_budget_exhausted",
                "1 while the queue's budget is spent (new jobs wait with BudgetExhausted), else 0.",
                &["queue"],
            )?,
            usage_records: Gauges::new(
                &r,
                "computenet_usage_attempts",
                "Attempts this process recorded in the usage store (state=recorded) or gave up (state=lost: a deleted job's last attempt not recorded within the grace), since it started.",
                &["state"],
            )?,
            cycle,
            registry: r,
            updating: Mutex::new(()),
        })
    }

    /// The registry, to add process or library metrics to.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Sets the gauges from an observation and removes the label sets it no longer has.
    pub fn update(&self, o: &PoolObservation) {
        let _one = self.updating.lock().unwrap_or_else(|e| e.into_inner());
        let (mut accelerators, mut cpu, mut ready, mut age, mut pue, mut power, mut util, mut efficiency) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for m in &o.members {
            let (c, k) = (m.name.as_str(), m.kind.as_str());
            for a in &m.accelerators {
                let t = a.accelerator.as_str();
                accelerators.push((labels([c, k, t, "total"]), a.devices.total));
                accelerators.push((labels([c, k, t, "allocated"]), a.devices.allocated));
                accelerators.push((labels([c, k, t, "free"]), a.devices.free));
            }
            cpu.push((labels([c, k, "total"]), m.cpu_cores.total));
            cpu.push((labels([c, k, "allocated"]), m.cpu_cores.allocated));
            cpu.push((labels([c, k, "free"]), m.cpu_cores.free));
            ready.push((labels([c, k]), if m.ready { 1.0 } else { 0.0 }));
            pue.push((labels([c]), m.pue));
            let optional = [
                (&mut age, m.heartbeat_age_seconds),
                (&mut power, m.power_watts),
                (&mut util, m.gpu_utilization_ratio),
                (&mut efficiency, m.tflops_per_watt),
            ];
            for (family, value) in optional {
                if let Some(v) = value {
                    family.push((labels([c]), v));
                }
            }
        }
        self.cluster_accelerators.replace(accelerators);
        self.cluster_cpu_cores.replace(cpu);
        self.cluster_ready.replace(ready);
        self.cluster_heartbeat_age.replace(age);
        self.cluster_pue.replace(pue);
        self.cluster_power.replace(power);
        self.cluster_utilization.replace(util);
        self.cluster_efficiency.replace(efficiency);

        let (mut jobs, mut used, mut quota, mut positions) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for q in &o.queues {
            let n = q.name.as_str();
            jobs.push((labels([n, "pending"]), q.pending as f64));
            jobs.push((labels([n, "admitted"]), q.admitted as f64));
            jobs.push((labels([n, "running"]), q.running as f64));
            used.push((labels([n]), q.accelerators_used as f64));
            if let Some(x) = q.accelerators_quota {
                quota.push((labels([n]), x as f64));
            }
            for p in &q.top_pending {
                positions.push((labels([n, &p.namespace, &p.name]), f64::from(p.position)));
            }
        }
        // Counters start at 0 for every member and queue, so rate() works from the first scrape.
        for q in &o.queues {
            self.preemptions.with_label_values(&[q.name.as_str()]);
            for m in &o.members {
                self.admissions.with_label_values(&[q.name.as_str(), m.name.as_str()]);
            }
        }
        for m in &o.members {
            for class in DISPATCH_ERROR_CLASSES {
                self.dispatch_errors.with_label_values(&[m.name.as_str(), class]);
            }
        }
        self.queue_jobs.replace(jobs);
        self.queue_used.replace(used);
        self.queue_quota.replace(quota);
        if let Some(gauges) = &self.pending_position {
            gauges.replace(positions);
        }
    }

    /// A job was admitted from `queue` to `cluster`.
    pub fn admitted(&self, queue: &str, cluster: &str) {
        self.admissions.with_label_values(&[queue, cluster]).inc();
    }

    /// A job of `queue` was preempted.
    pub fn preempted(&self, queue: &str) {
        self.preemptions.with_label_values(&[queue]).inc();
    }

    /// Creating a job's objects on `cluster` failed; `class` is `permanent` or `transient`.
    pub fn dispatch_error(&self, cluster: &str, class: &str) {
        self.dispatch_errors.with_label_values(&[cluster, class]).inc();
    }

    /// An admission of a job of `queue` was refused: the job changed since the decision.
    pub fn admission_conflict(&self, queue: &str) {
        self.admission_conflicts.with_label_values(&[queue]).inc();
    }

    /// Undecodable hub objects by kind (see [`crate::hub`]).
    pub fn invalid_objects(&self, counts: &std::collections::BTreeMap<String, usize>) {
        self.invalid_objects.replace(counts.iter().map(|(kind, n)| (labels([kind.as_str()]), *n as f64)).collect());
    }

    /// What was learned from running jobs (see [`crate::progress`]), and how many jobs are tracked.
    pub fn learned(&self, learned: &computenet_core::learn::LearnedProfiles, tracked_jobs: usize) {
        let _one = self.updating.lock().unwrap_or_else(|e| e.into_inner());
        let (mut rates, mut jobs) = (Vec::new(), Vec::new());
        for (k, r) in learned.entries() {
            if learned.rate(&k.tenant, &k.model, &k.accelerator, k.gpus, k.nodes, k.batch_size).is_none() {
                continue;
            }
            let (gpus, nodes, batch) =
                (k.gpus.to_string(), k.nodes.to_string(), k.batch_size.map(|b| b.to_string()).unwrap_or_default());
            let l = labels([k.tenant.as_str(), k.model.as_str(), k.accelerator.as_str(), &gpus, &nodes, &batch]);
            rates.push((l.clone(), r.steps_per_s));
            jobs.push((l, f64::from(r.jobs)));
        }
        self.learned_rate.replace(rates);
        self.learned_jobs.replace(jobs);
        self.progress_jobs.replace(vec![(Vec::new(), tracked_jobs as f64)]);
    }

    /// The usage counters from the store's totals (`totals`: all time, by namespace, queue,
    /// member and accelerator), and the queues' standings. A counter goes up by what its
    /// total grew since the last update; a total that shrank (days deleted after the
    /// retention) leaves it as it is, and a restart starts it at the store's total.
    pub fn usage(&self, totals: &BTreeMap<[String; 4], Amounts>, metering: &crate::metering::Metering) {
        let _one = self.updating.lock().unwrap_or_else(|e| e.into_inner());
        let u = &self.usage;
        let mut last = u.last.lock().unwrap_or_else(|e| e.into_inner());
        for (key, now) in totals {
            let before = last.get(key).copied().unwrap_or_default();
            let labels: Vec<&str> = key.iter().map(String::as_str).collect();
            let grow = |c: &CounterVec, now: f64, before: f64| {
                if now > before {
                    c.with_label_values(&labels).inc_by(now - before);
                }
            };
            grow(&u.gpu_seconds, now.gpu_seconds, before.gpu_seconds);
            grow(&u.energy_kwh, now.energy_kwh, before.energy_kwh);
            grow(&u.cost, now.cost, before.cost);
            grow(&u.carbon_kg, now.carbon_kg, before.carbon_kg);
            let kept = last.entry(key.clone()).or_default();
            *kept = Amounts {
                gpu_seconds: kept.gpu_seconds.max(now.gpu_seconds),
                energy_kwh: kept.energy_kwh.max(now.energy_kwh),
                cost: kept.cost.max(now.cost),
                carbon_kg: kept.carbon_kg.max(now.carbon_kg),
                ..*kept
            };
        }
        let (mut share, mut past, mut ratio, mut exhausted) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (queue, standing) in &metering.standings_now().queues {
            let l = labels([queue.as_str()]);
            past.push((l.clone(), standing.past_share));
            if let Some(b) = &standing.budget {
                exhausted.push((l.clone(), if b.exhausted { 1.0 } else { 0.0 }));
                if let Some(r) = metering.budget_ratio(queue) {
                    ratio.push((l.clone(), r));
                }
            }
            if let Some(s) = metering.share(queue) {
                share.push((l, s));
            }
        }
        self.queue_share.replace(share);
        self.queue_past_share.replace(past);
        self.queue_budget_ratio.replace(ratio);
        self.queue_budget_exhausted.replace(exhausted);
        self.usage_records.replace(vec![
            (labels(["recorded"]), metering.recorded_total as f64),
            (labels(["lost"]), metering.lost_total as f64),
        ]);
    }

    /// One scheduling cycle took `seconds`.
    pub fn cycle_duration(&self, seconds: f64) {
        self.cycle.observe(seconds);
    }

    /// Everything in the text exposition format (version 0.0.4).
    pub fn encode(&self) -> String {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "encoding metrics");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::{
        AcceleratorObservation, Capacity, EfficiencySource, MemberObservation, PendingObservation, QueueObservation,
    };

    fn member(name: &str, kind: &str, gpus: Option<(&str, Capacity)>) -> MemberObservation {
        MemberObservation {
            name: name.into(),
            kind: kind.into(),
            site: "qingdao".into(),
            ready: true,
            cordoned: false,
            nodes: 2,
            accelerators: gpus
                .map(|(t, devices)| AcceleratorObservation { accelerator: t.into(), devices })
                .into_iter()
                .collect(),
            cpu_cores: Capacity { total: 64.0, allocated: 6.5, free: 57.5 },
            pue: 1.25,
            peak_tflops: 0.0,
            power_watts: None,
            gpu_utilization_ratio: None,
            tflops_per_watt: Some(0.5),
            efficiency_source: EfficiencySource::Rated,
            heartbeat_age_seconds: Some(3.0),
            rated_power_watts: 0.0,
        }
    }

    fn pending(name: &str, position: u32) -> PendingObservation {
        PendingObservation {
            namespace: "team-a".into(),
            name: name.into(),
            position,
            accelerators: 8,
            reason: String::new(),
        }
    }

    fn observation(top: Vec<PendingObservation>) -> PoolObservation {
        PoolObservation {
            generated_at: 1,
            members: vec![
                member("ai-1", "AI", Some(("A100-80G", Capacity { total: 16.0, allocated: 4.0, free: 12.0 }))),
                member("general-2", "General", None),
            ],
            queues: vec![QueueObservation {
                name: "research".into(),
                cohort: None,
                pending: 3,
                admitted: 2,
                running: 1,
                accelerators_used: 6,
                accelerators_quota: Some(8),
                top_pending: top,
            }],
            placements: Vec::new(),
        }
    }

    #[test]
    fn encodes_gauges_after_update() {
        let m = Metrics::new(true).expect("metrics");
        m.update(&observation(vec![pending("first", 1), pending("second", 2)]));
        let text = m.encode();
        for line in [
            r#"computenet_cluster_accelerators{accelerator="A100-80G",cluster="ai-1",kind="AI",state="total"} 16"#,
            r#"computenet_cluster_accelerators{accelerator="A100-80G",cluster="ai-1",kind="AI",state="allocated"} 4"#,
            r#"computenet_cluster_accelerators{accelerator="A100-80G",cluster="ai-1",kind="AI",state="free"} 12"#,
            r#"computenet_cluster_cpu_cores{cluster="general-2",kind="General",state="free"} 57.5"#,
            r#"computenet_cluster_ready{cluster="ai-1",kind="AI"} 1"#,
            r#"computenet_cluster_heartbeat_age_seconds{cluster="ai-1"} 3"#,
            r#"computenet_cluster_pue{cluster="general-2"} 1.25"#,
            r#"computenet_cluster_efficiency_tflops_per_watt{cluster="ai-1"} 0.5"#,
            r#"computenet_queue_jobs{queue="research",state="pending"} 3"#,
            r#"computenet_queue_jobs{queue="research",state="admitted"} 2"#,
            r#"computenet_queue_jobs{queue="research",state="running"} 1"#,
            r#"computenet_queue_accelerators_used{queue="research"} 6"#,
            r#"computenet_queue_accelerators_quota{queue="research"} 8"#,
            r#"computenet_pending_job_position{job="second",namespace="team-a",queue="research"} 2"#,
            r#"computenet_admissions_total{cluster="general-2",queue="research"} 0"#,
            r#"computenet_preemptions_total{queue="research"} 0"#,
            r#"computenet_dispatch_errors_total{class="permanent",cluster="ai-1"} 0"#,
            r#"computenet_dispatch_errors_total{class="transient",cluster="ai-1"} 0"#,
            "# TYPE computenet_scheduling_cycle_duration_seconds histogram",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        // Not measured yet: no series at all.
        assert!(!text.contains("computenet_cluster_power_watts{"));
        assert!(!text.contains("computenet_cluster_gpu_utilization_ratio{"));
    }

    #[test]
    fn measured_values_are_exported_when_present() {
        let m = Metrics::new(true).expect("metrics");
        let mut o = observation(Vec::new());
        o.members[0].power_watts = Some(2500.0);
        o.members[0].gpu_utilization_ratio = Some(0.75);
        m.update(&o);
        let text = m.encode();
        assert!(text.contains(r#"computenet_cluster_power_watts{cluster="ai-1"} 2500"#));
        assert!(text.contains(r#"computenet_cluster_gpu_utilization_ratio{cluster="ai-1"} 0.75"#));
        assert!(!text.contains(r#"computenet_cluster_power_watts{cluster="general-2"}"#));
    }

    #[test]
    fn stale_series_are_removed() {
        let m = Metrics::new(true).expect("metrics");
        m.update(&observation(vec![pending("first", 1), pending("second", 2)]));
        // "first" was admitted, "second" moved up; ai-1 left the pool.
        let mut o = observation(vec![pending("second", 1)]);
        o.members.remove(0);
        m.update(&o);
        let text = m.encode();
        assert!(!text.contains(r#"job="first""#), "{text}");
        assert!(text.contains(r#"computenet_pending_job_position{job="second",namespace="team-a",queue="research"} 1"#));
        assert!(
            !text.lines().any(|l| l.starts_with("computenet_cluster_") && l.contains(r#"cluster="ai-1""#)),
            "{text}"
        );
        assert!(text.contains(r#"computenet_cluster_ready{cluster="general-2",kind="General"} 1"#));
        // Queue gone: all its gauges go (counters stay, as counters do).
        m.update(&PoolObservation::default());
        assert!(!m.encode().lines().any(|l| l.starts_with("computenet_queue_") && l.contains("research")));
        assert!(!m.encode().contains("computenet_pending_job_position{"));
    }

    #[test]
    fn counters_and_histogram() {
        let m = Metrics::new(true).expect("metrics");
        m.admitted("research", "ai-1");
        m.admitted("research", "ai-1");
        m.preempted("batch");
        m.dispatch_error("ai-1", "transient");
        m.admission_conflict("research");
        m.cycle_duration(0.03);
        m.cycle_duration(0.2);
        m.invalid_objects(&[("TrainingJob".to_string(), 2), ("ComputeQueue".to_string(), 0)].into());
        let text = m.encode();
        for line in [
            r#"computenet_admissions_total{cluster="ai-1",queue="research"} 2"#,
            r#"computenet_preemptions_total{queue="batch"} 1"#,
            r#"computenet_dispatch_errors_total{class="transient",cluster="ai-1"} 1"#,
            r#"computenet_admission_conflicts_total{queue="research"} 1"#,
            r#"computenet_scheduling_cycle_duration_seconds_bucket{le="0.05"} 1"#,
            r#"computenet_scheduling_cycle_duration_seconds_bucket{le="0.25"} 2"#,
            "computenet_scheduling_cycle_duration_seconds_count 2",
            r#"computenet_invalid_objects{kind="TrainingJob"} 2"#,
            r#"computenet_invalid_objects{kind="ComputeQueue"} 0"#,
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }

    #[test]
    fn learned_rates_once_trusted() {
        use computenet_core::learn::{LearnConfig, LearnedProfiles, PlacementKey};
        let m = Metrics::new(false).expect("metrics");
        let mut learned = LearnedProfiles::new(LearnConfig { min_samples: 2, ..LearnConfig::default() });
        let key = |gpus, batch_size| PlacementKey {
            tenant: "t".into(),
            model: "bert".into(),
            accelerator: "A100-80G".into(),
            gpus,
            nodes: 1,
            batch_size,
        };
        learned.observe(&key(8, None), 2.5, true, 1);
        learned.observe(&key(8, None), 2.5, true, 2);
        learned.observe(&key(4, Some(64)), 1.0, true, 3);
        m.learned(&learned, 3);
        let text = m.encode();
        for line in [
            r#"computenet_learned_steps_per_second{accelerator="A100-80G",batch_size="",gpus="8",model="bert",namespace="t",nodes="1"} 2.5"#,
            r#"computenet_learned_jobs{accelerator="A100-80G",batch_size="",gpus="8",model="bert",namespace="t",nodes="1"} 2"#,
            "computenet_progress_jobs 3",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        assert!(!text.contains(r#"gpus="4""#), "one reading is not used yet: {text}");
    }

    #[test]
    fn no_job_names_unless_enabled() {
        let m = Metrics::new(false).expect("metrics");
        let mut o = observation(vec![pending("secret-project-x", 1)]);
        o.queues[0].top_pending[0].namespace = "tenant-b".into();
        m.update(&o);
        m.admitted("research", "ai-1");
        let text = m.encode();
        assert!(!text.contains("secret-project-x"), "{text}");
        assert!(!text.contains("tenant-b"), "{text}");
        assert!(!text.contains("computenet_pending_job_position"), "{text}");
        // The aggregates are still there.
        assert!(text.contains(r#"computenet_queue_jobs{queue="research",state="pending"} 3"#), "{text}");
        assert!(text.contains(r#"computenet_admissions_total{cluster="ai-1",queue="research"} 1"#), "{text}");
    }
}

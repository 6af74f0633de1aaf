//! `kubectl computenet queue [NAME]`: queues, their usage against quota and their pending jobs in order.

use crate::table::{self, or_dash, Table};
use anyhow::bail;
use computenet_api::compute_queue::QueueingStrategy;
use computenet_api::view::{self, QueueUsage};
use computenet_api::{convert, ComputeQueue, TrainingJob};
use computenet_core::quantity::{format_bytes, format_cpu_millis};
use computenet_core::queue::gang_usage;
use computenet_core::{Queue, ResourceName};
use serde::Serialize;

/// The queue report.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueReport {
    pub queues: Vec<QueueRow>,
}

/// One queue.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueRow {
    pub name: String,
    pub cohort: Option<String>,
    pub weight: f64,
    pub strategy: String,
    /// Jobs not admitted yet (queued, pending, preempted or suspended). This count, the
    /// admitted and running ones and the accelerators come from [`view::queue_usage`], as
    /// `kubectl get cnq` and the dashboard show them.
    pub pending: u64,
    /// Jobs holding capacity (admitted, dispatched or running).
    pub admitted: u64,
    /// Admitted jobs whose replicas run.
    pub running: u64,
    /// Accelerators held by admitted jobs.
    pub gpus_used: u64,
    /// Nominal accelerator quota: the all-types quota, else the sum of per-type quotas;
    /// none when the queue sets none (unlimited) or is invalid.
    pub gpus_quota: Option<u64>,
    pub quotas: Vec<QuotaRow>,
    /// Not admitted jobs, next first.
    pub pending_jobs: Vec<PendingJob>,
}

/// One quota and its use by the queue's admitted jobs.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QuotaRow {
    pub resource: String,
    /// Only this accelerator type counts.
    pub accelerator: Option<String>,
    pub used: String,
    pub nominal: String,
    /// Used as a percentage of nominal.
    pub used_percent: Option<f64>,
    pub borrowing_limit: Option<String>,
    pub lending_limit: Option<String>,
}

/// A job waiting in the queue.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingJob {
    /// Queue position the scheduler gave it (1 is next).
    pub position: Option<i32>,
    pub namespace: String,
    pub name: String,
    pub priority: i32,
    pub phase: String,
    pub replicas: i32,
    pub gpus_per_replica: i64,
    pub age_seconds: Option<i64>,
    /// Why it waits.
    pub reason: String,
}

impl QueueRow {
    /// The headline numbers, as [`view::queue_usage`] gave them.
    pub fn usage(&self) -> QueueUsage {
        QueueUsage {
            pending: self.pending,
            admitted: self.admitted,
            running: self.running,
            accelerators_used: self.gpus_used,
            accelerators_quota: self.gpus_quota,
        }
    }
}

/// Why a job waits, in one line: its explanation, else the message of a false condition.
pub fn wait_reason(job: &TrainingJob) -> String {
    let Some(status) = &job.status else {
        return "not seen by the scheduler yet".to_string();
    };
    if job.spec.suspend {
        return "suspended (spec.suspend)".to_string();
    }
    if let Some(e) = status.explanation.as_ref().filter(|e| !e.summary.is_empty()) {
        return e.summary.clone();
    }
    status
        .conditions
        .iter()
        .find(|c| c.status == "False" && !c.message.is_empty())
        .map_or_else(|| "-".to_string(), |c| format!("{}: {}", c.reason, c.message))
}

fn format_amount(resource: &ResourceName, v: u64) -> String {
    match resource {
        ResourceName::Cpu => format_cpu_millis(v),
        ResourceName::Memory => format_bytes(v),
        _ => v.to_string(),
    }
}

/// Each quota of `queue` (`core` its translation, `None` when invalid) and its use by the
/// queue's admitted jobs.
fn quotas(queue: &ComputeQueue, core: Option<&Queue>, admitted: &[&TrainingJob]) -> Vec<QuotaRow> {
    queue
        .spec
        .quotas
        .iter()
        .enumerate()
        .map(|(i, q)| {
            let text = |v: &Option<computenet_api::Quantity>| v.as_ref().map(convert::quantity_text);
            let (used, nominal, percent) = match core.and_then(|c| c.quotas.get(i)) {
                Some(cq) => {
                    let used: u64 = admitted
                        .iter()
                        .filter_map(|j| {
                            let placement = j.status.as_ref()?.placement.as_ref()?;
                            let accelerator = placement.accelerator.as_deref();
                            if cq.accelerator.as_deref().is_some_and(|a| Some(a) != accelerator) {
                                return None;
                            }
                            let replicas: u32 = placement.nodes.iter().map(|n| n.replicas.max(0) as u32).sum();
                            let replicas = if replicas == 0 {
                                u32::try_from(view::current_replicas(j)).unwrap_or(0)
                            } else {
                                replicas
                            };
                            gang_usage(&view::per_replica(j), replicas, accelerator)
                                .into_iter()
                                .find(|(r, _)| *r == cq.resource)
                                .map(|(_, v)| v)
                        })
                        .sum();
                    let percent = (cq.nominal > 0).then(|| 100.0 * used as f64 / cq.nominal as f64);
                    (format_amount(&cq.resource, used), format_amount(&cq.resource, cq.nominal), percent)
                }
                None => ("?".to_string(), convert::quantity_text(&q.nominal), None),
            };
            QuotaRow {
                resource: q.resource.clone(),
                accelerator: q.accelerator.clone(),
                used,
                nominal,
                used_percent: percent,
                borrowing_limit: text(&q.borrowing_limit),
                lending_limit: text(&q.lending_limit),
            }
        })
        .collect()
}

/// The report over `queues` (only `only` when given) and the hub's TrainingJobs; `now` is
/// seconds since the epoch, for ages.
pub fn build(
    queues: &[ComputeQueue],
    jobs: &[TrainingJob],
    only: Option<&str>,
    now: i64,
) -> anyhow::Result<QueueReport> {
    let mut selected: Vec<&ComputeQueue> =
        queues.iter().filter(|q| only.is_none_or(|n| q.metadata.name.as_deref() == Some(n))).collect();
    if let (Some(name), true) = (only, selected.is_empty()) {
        bail!("computequeue {name:?} not found");
    }
    selected.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let mut rows = Vec::new();
    for q in selected {
        let name = q.metadata.name.clone().unwrap_or_default();
        let core = convert::queue(&name, &q.spec).ok();
        let usage = view::queue_usage(&name, core.as_ref(), jobs);
        let mine: Vec<&TrainingJob> =
            jobs.iter().filter(|j| j.spec.queue_name == name && !view::is_finished(j)).collect();
        let admitted: Vec<&TrainingJob> = mine.iter().copied().filter(|j| view::is_admitted(j)).collect();
        let mut pending: Vec<&TrainingJob> = mine.iter().copied().filter(|j| !view::is_admitted(j)).collect();
        pending.sort_by(|a, b| {
            let pos = |j: &TrainingJob| j.status.as_ref().and_then(|s| s.queue_position);
            let key = |j: &TrainingJob| {
                (pos(j).is_none(), pos(j), -j.spec.priority, view::created_at(j), j.metadata.name.clone())
            };
            key(a).cmp(&key(b))
        });
        rows.push(QueueRow {
            cohort: q.spec.cohort.clone(),
            weight: q.spec.weight,
            strategy: match q.spec.queueing_strategy {
                QueueingStrategy::StrictFIFO => "StrictFIFO",
                QueueingStrategy::BestEffortFIFO => "BestEffortFIFO",
            }
            .to_string(),
            pending: usage.pending,
            admitted: usage.admitted,
            running: usage.running,
            gpus_used: usage.accelerators_used,
            gpus_quota: usage.accelerators_quota,
            quotas: quotas(q, core.as_ref(), &admitted),
            pending_jobs: pending
                .iter()
                .map(|j| PendingJob {
                    position: j.status.as_ref().and_then(|s| s.queue_position),
                    namespace: j.metadata.namespace.clone().unwrap_or_default(),
                    name: j.metadata.name.clone().unwrap_or_default(),
                    priority: j.spec.priority,
                    phase: view::phase(j).map_or_else(|| "-".to_string(), |p| format!("{p:?}")),
                    replicas: j.spec.replicas,
                    gpus_per_replica: j.spec.resources.accelerators.as_ref().map_or(0, |a| i64::from(a.count)),
                    age_seconds: j.metadata.creation_timestamp.as_ref().map(|t| table::seconds_since(t, now)),
                    reason: wait_reason(j),
                })
                .collect(),
            name,
        });
    }
    Ok(QueueReport { queues: rows })
}

/// The report as tables: the queues, then per queue its quotas and pending jobs.
pub fn table(report: &QueueReport) -> String {
    if report.queues.is_empty() {
        return "No ComputeQueues on the hub.\n".to_string();
    }
    let mut t =
        Table::new(&["QUEUE", "COHORT", "WEIGHT", "STRATEGY", "PENDING", "ADMITTED", "RUNNING", "GPUS USED/QUOTA"]);
    for q in &report.queues {
        t.row(vec![
            q.name.clone(),
            or_dash(q.cohort.as_deref()),
            table::number(q.weight, 3),
            q.strategy.clone(),
            q.pending.to_string(),
            q.admitted.to_string(),
            q.running.to_string(),
            q.usage().gpu_usage(),
        ]);
    }
    let mut out = t.render();
    for q in &report.queues {
        if !q.quotas.is_empty() {
            let mut t =
                Table::new(&["RESOURCE", "FLAVOUR", "USED", "NOMINAL", "USE", "BORROWING LIMIT", "LENDING LIMIT"]);
            for quota in &q.quotas {
                t.row(vec![
                    quota.resource.clone(),
                    or_dash(quota.accelerator.as_deref()),
                    quota.used.clone(),
                    quota.nominal.clone(),
                    or_dash(quota.used_percent.map(|p| format!("{}%", table::number(p, 0)))),
                    or_dash(quota.borrowing_limit.as_deref()),
                    or_dash(quota.lending_limit.as_deref()),
                ]);
            }
            out.push_str(&format!("\nQuotas of {}:\n{}", q.name, t.render()));
        }
        if q.pending_jobs.is_empty() {
            out.push_str(&format!("\nNo pending jobs in {}.\n", q.name));
            continue;
        }
        let mut t = Table::new(&["POSITION", "JOB", "PRIORITY", "PHASE", "GANG", "AGE", "WHY IT WAITS"]);
        for j in &q.pending_jobs {
            let gang = if j.gpus_per_replica > 0 {
                format!("{} x {} GPU", j.replicas, j.gpus_per_replica)
            } else {
                format!("{} x CPU", j.replicas)
            };
            t.row(vec![
                or_dash(j.position),
                format!("{}/{}", j.namespace, j.name),
                j.priority.to_string(),
                j.phase.clone(),
                gang,
                or_dash(j.age_seconds.map(table::age)),
                j.reason.clone(),
            ]);
        }
        out.push_str(&format!("\nPending in {}, next first:\n{}", q.name, t.render()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{self, NOW};

    fn hub() -> (Vec<ComputeQueue>, Vec<TrainingJob>) {
        let queues = vec![
            fixtures::queue(
                "research",
                "cohort: city\nquotas: [{resource: nvidia.com/gpu, nominal: 64, borrowingLimit: 32}, {resource: nvidia.com/gpu, accelerator: H800, nominal: 16}, {resource: cpu, nominal: \"100\"}]",
            ),
            fixtures::queue("batch", "queueingStrategy: StrictFIFO\nweight: 2"),
        ];
        let jobs = vec![
            fixtures::running(
                fixtures::job("a", "big", "research", 2, 8, NOW - 900),
                "ai-west",
                "H800",
                &[("n1", 1), ("n2", 1)],
                NOW - 800,
            ),
            fixtures::running(
                fixtures::job("a", "small", "research", 1, 4, NOW - 700),
                "ai-west",
                "A100-80G",
                &[("n3", 1)],
                NOW - 600,
            ),
            fixtures::queued(fixtures::job("a", "second", "research", 4, 8, NOW - 300), 2, "waiting for capacity"),
            fixtures::queued(
                fixtures::job("b", "first", "research", 4, 8, NOW - 400),
                1,
                "first in line: capacity reserved on ai-west from 2023-11-14T22:30:00Z",
            ),
            fixtures::job("a", "fresh", "research", 1, 1, NOW - 2),
            fixtures::job("a", "other", "batch", 1, 0, NOW - 10),
        ];
        (queues, jobs)
    }

    #[test]
    fn counts_usage_against_quota_and_orders_pending_jobs() {
        let (queues, jobs) = hub();
        let report = build(&queues, &jobs, None, NOW).expect("builds");
        assert_eq!(report.queues.iter().map(|q| q.name.as_str()).collect::<Vec<_>>(), ["batch", "research"]);
        let r = &report.queues[1];
        assert_eq!((r.pending, r.admitted, r.running, r.gpus_used), (3, 2, 2, 20));
        // The headline is `kubectl get cnq`'s: the all-types quota counts, not the H800 one.
        let core = convert::queue("research", &queues[0].spec).expect("valid");
        assert_eq!(r.usage(), view::queue_usage("research", Some(&core), &jobs));
        assert_eq!((r.gpus_quota, r.usage().gpu_usage().as_str()), (Some(64), "20/64"));
        let quotas: Vec<String> = r
            .quotas
            .iter()
            .map(|q| format!("{} {:?} {}/{} {:?}", q.resource, q.accelerator, q.used, q.nominal, q.used_percent))
            .collect();
        assert_eq!(
            quotas,
            [
                "nvidia.com/gpu None 20/64 Some(31.25)",
                "nvidia.com/gpu Some(\"H800\") 16/16 Some(100.0)",
                "cpu None 12/100 Some(12.0)",
            ]
        );
        assert_eq!(r.quotas[0].borrowing_limit.as_deref(), Some("32"));
        let order: Vec<&str> = r.pending_jobs.iter().map(|j| j.name.as_str()).collect();
        assert_eq!(order, ["first", "second", "fresh"], "by position, unseen jobs last");
        assert_eq!(r.pending_jobs[2].reason, "not seen by the scheduler yet");
        assert_eq!(r.pending_jobs[0].age_seconds, Some(400));
    }

    #[test]
    fn one_queue_by_name_or_a_clear_error() {
        let (queues, jobs) = hub();
        let report = build(&queues, &jobs, Some("batch"), NOW).expect("exists");
        assert_eq!(report.queues.len(), 1);
        assert_eq!((report.queues[0].strategy.as_str(), report.queues[0].weight), ("StrictFIFO", 2.0));
        let err = build(&queues, &jobs, Some("nope"), NOW).unwrap_err().to_string();
        assert_eq!(err, "computequeue \"nope\" not found");
    }

    #[test]
    fn the_table_lists_pending_jobs_next_first_with_the_reason() {
        let (queues, jobs) = hub();
        let text = table(&build(&queues, &jobs, Some("research"), NOW).expect("builds"));
        let pending: Vec<&str> = text.lines().skip_while(|l| !l.starts_with("Pending in research")).skip(2).collect();
        assert!(
            pending[0].starts_with("1 ") && pending[0].contains("b/first") && pending[0].contains("4 x 8 GPU"),
            "{text}"
        );
        assert!(pending[0].contains("capacity reserved on ai-west"), "{text}");
        assert!(
            pending[1].starts_with("2 ")
                && pending[1].contains("a/second")
                && pending[1].contains("waiting for capacity")
        );
        assert!(pending[2].starts_with("- ") && pending[2].contains("a/fresh"));
        assert!(text.contains("Quotas of research:"), "{text}");
        let headline = text.lines().find(|l| l.starts_with("research ")).expect("queue row");
        assert!(headline.contains("city") && headline.ends_with("20/64"), "{headline}");
        let batch = table(&build(&queues, &jobs, Some("batch"), NOW).expect("builds"));
        let row = batch.lines().find(|l| l.starts_with("batch ")).expect("queue row");
        assert!(row.ends_with("0/-"), "no quota is unlimited: {row}");
        let gpu = text.lines().find(|l| l.starts_with("nvidia.com/gpu ")).expect("quota row");
        assert!(gpu.contains("20") && gpu.contains("64") && gpu.contains("31%"), "{gpu}");
    }
}

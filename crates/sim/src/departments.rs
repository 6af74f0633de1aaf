//! The two-department scenario for fair share with memory: two queues with equal weight
//! and equal GPU quotas in one cohort (borrowing allowed) submit the same jobs, one of
//! them only from some day on; and what each department asked for and received over time.

use crate::engine::SimulationResult;
use computenet_core::job::Work;
use computenet_core::queue::{Queue, Quota, ResourceName};
use computenet_core::Job;
use serde::Serialize;
use std::collections::HashMap;

/// The departments' queue names.
pub const DEPARTMENTS: [&str; 2] = ["dept-a", "dept-b"];

/// The two departments' jobs: every job in `dept-a`, and a copy of it (id suffixed
/// `/b`) in `dept-b` when submitted at or after `b_from_s`. Both ask for the same work
/// at the same times once dept-b has started; before, dept-a is alone.
pub fn mirror(jobs: &[Job], b_from_s: u64) -> Vec<Job> {
    let mut out = Vec::with_capacity(jobs.len() * 2);
    for j in jobs {
        out.push(Job { queue: DEPARTMENTS[0].to_string(), ..j.clone() });
        if j.submitted_at >= b_from_s {
            out.push(Job { id: format!("{}/b", j.id), queue: DEPARTMENTS[1].to_string(), ..j.clone() });
        }
    }
    out
}

/// The two queues: weight 1, a GPU quota of half of `gpus` each (rounded up), one
/// cohort, unlimited borrowing and lending, no preemption.
pub fn queues(gpus: u64) -> Vec<Queue> {
    DEPARTMENTS
        .iter()
        .map(|name| Queue {
            cohort: Some("org".to_string()),
            quotas: vec![Quota {
                resource: ResourceName::Accelerators,
                accelerator: None,
                nominal: gpus.div_ceil(2),
                borrowing_limit: None,
                lending_limit: None,
            }],
            ..Queue::unlimited(name)
        })
        .collect()
}

/// One department over a period `[from, until)` (totals), and per bucket (a day) from 0.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DepartmentFigures {
    pub queue: String,
    /// GPU jobs submitted in the period.
    pub gpu_jobs: usize,
    /// Device-hours (at the reference type) of the GPU jobs submitted in the period.
    pub demand_gpu_hours: f64,
    /// GPU-hours its jobs held in the period (any job, also ones submitted earlier).
    pub received_gpu_hours: f64,
    /// Mean wait from submission to first start of its GPU jobs submitted in the period,
    /// in hours (a job that never started waits until the simulation's end).
    pub mean_queue_h: f64,
    /// Per bucket: GPU-hours asked (jobs submitted in it).
    pub demand_per_bucket: Vec<f64>,
    /// Per bucket: GPU-hours held.
    pub received_per_bucket: Vec<f64>,
    /// Per bucket: mean queueing delay (hours) of the GPU jobs submitted in it (0 when none).
    pub queue_h_per_bucket: Vec<f64>,
}

fn gpu_demand_hours(job: &Job) -> f64 {
    match &job.work {
        Work::DeviceHours { hours, .. } if job.per_replica.accelerators > 0 => *hours,
        _ => 0.0,
    }
}

/// Figures of every department: totals over `[from_s, horizon_s)`, buckets of `bucket_s`
/// seconds over `[0, horizon_s)`.
pub fn figures(
    jobs: &[Job],
    result: &SimulationResult,
    from_s: u64,
    horizon_s: u64,
    bucket_s: u64,
) -> Vec<DepartmentFigures> {
    let bucket_s = bucket_s.max(1);
    let buckets = horizon_s.div_ceil(bucket_s) as usize;
    let by_id: HashMap<&str, &Job> = jobs.iter().map(|j| (j.id.as_str(), j)).collect();
    let mut out = Vec::new();
    for name in DEPARTMENTS {
        let mut f = DepartmentFigures {
            queue: name.to_string(),
            demand_per_bucket: vec![0.0; buckets],
            received_per_bucket: vec![0.0; buckets],
            queue_h_per_bucket: vec![0.0; buckets],
            ..DepartmentFigures::default()
        };
        let mut waits = vec![(0.0, 0usize); buckets];
        for record in result.jobs.iter().filter(|r| r.queue == name) {
            for seg in record.segments.iter().filter(|s| s.accelerator.is_some()) {
                let (start, end) = (seg.start.min(horizon_s), seg.end.unwrap_or(result.end_time).min(horizon_s));
                let in_period = end.saturating_sub(start.max(from_s));
                f.received_gpu_hours += seg.devices as f64 * in_period as f64 / 3600.0;
                for (bucket, seconds) in computenet_core::usage::buckets(start, end, bucket_s) {
                    let hours = seg.devices as f64 * seconds as f64 / 3600.0;
                    if let Some(slot) = f.received_per_bucket.get_mut((bucket / bucket_s) as usize) {
                        *slot += hours;
                    }
                }
            }
            let Some(job) = by_id.get(record.id.as_str()) else {
                continue;
            };
            let demand = gpu_demand_hours(job);
            if demand <= 0.0 || record.submitted_at >= horizon_s {
                continue;
            }
            let b = (record.submitted_at / bucket_s) as usize;
            let wait_h =
                record.started_at.unwrap_or(result.end_time).saturating_sub(record.submitted_at) as f64 / 3600.0;
            if record.submitted_at >= from_s {
                f.gpu_jobs += 1;
                f.demand_gpu_hours += demand;
                f.mean_queue_h += wait_h;
            }
            f.demand_per_bucket[b] += demand;
            waits[b].0 += wait_h;
            waits[b].1 += 1;
        }
        if f.gpu_jobs > 0 {
            f.mean_queue_h /= f.gpu_jobs as f64;
        }
        for (slot, (sum, n)) in f.queue_h_per_bucket.iter_mut().zip(waits) {
            *slot = if n > 0 { sum / n as f64 } else { 0.0 };
        }
        out.push(f);
    }
    out
}

/// Per bucket end, a department's cumulative GPU-hours received over its cumulative
/// demand (0 before it asked for anything).
pub fn cumulative_ratio(f: &DepartmentFigures) -> Vec<f64> {
    let (mut asked, mut got) = (0.0, 0.0);
    f.demand_per_bucket
        .iter()
        .zip(&f.received_per_bucket)
        .map(|(d, r)| {
            asked += d;
            got += r;
            if asked > 0.0 {
                got / asked
            } else {
                0.0
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use computenet_core::synth::{cluster, job, pool};
    use computenet_core::{ClusterKind, Scheduler};

    #[test]
    fn dept_b_mirrors_dept_a_from_its_start() {
        let jobs: Vec<Job> = (0..10)
            .map(|i| {
                let mut j = job(&format!("pod-{i}"), "q", 1, 1, 1.0);
                j.submitted_at = i * 100;
                j
            })
            .collect();
        let both = mirror(&jobs, 500);
        let b: Vec<&Job> = both.iter().filter(|j| j.queue == "dept-b").collect();
        assert_eq!(both.len(), 15);
        assert_eq!(b.len(), 5);
        assert!(b.iter().all(|j| j.submitted_at >= 500 && j.id.ends_with("/b")));
    }

    /// Two 1-GPU jobs of 2 V100-hours, one per department, on one GPU: a runs [0, 2 h),
    /// b waits 2 h and runs [2 h, 4 h). Over 3 hours in 1-hour buckets.
    #[test]
    fn figures_hand_checked() {
        let mut jobs = vec![job("x", "dept-a", 1, 1, 2.0), job("y", "dept-b", 1, 1, 2.0)];
        jobs[1].submitted_at = 1;
        let result = crate::Simulation {
            pool: pool(vec![cluster("c", ClusterKind::AI, "s", 1, Some("V100"), 1)]),
            queues: queues(1),
            scheduler: Scheduler::default(),
            jobs: jobs.clone(),
        }
        .run()
        .expect("runs");
        let f = figures(&jobs, &result, 0, 3 * 3_600, 3_600);
        assert_eq!(f[0].received_per_bucket, vec![1.0, 1.0, 0.0]);
        assert_eq!((f[0].demand_gpu_hours, f[0].mean_queue_h), (2.0, 0.0));
        assert_eq!(f[1].received_per_bucket, vec![0.0, 0.0, 1.0]);
        assert!((f[1].mean_queue_h - 7_199.0 / 3_600.0).abs() < 1e-12);
        assert_eq!(cumulative_ratio(&f[1]), vec![0.0, 0.0, 0.5]);
        // From 1 h on: a held the GPU 1 h of it, b 1 h; b's job (submitted at 1 s) is out.
        let late = figures(&jobs, &result, 3_600, 3 * 3_600, 3_600);
        assert_eq!((late[0].received_gpu_hours, late[1].received_gpu_hours), (1.0, 1.0));
        assert_eq!((late[1].gpu_jobs, late[1].demand_gpu_hours), (0, 0.0));
    }
}

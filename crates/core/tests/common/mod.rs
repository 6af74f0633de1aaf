//! Random pools, queues and jobs shared by the property tests, and the checks they share.
#![allow(dead_code)]

use computenet_core::queue::{gang_usage, PreemptionPolicy, PreemptionScope, QueueingStrategy, Quota, ResourceName};
use computenet_core::synth::{cluster, job, pool};
use computenet_core::{ClusterKind, CycleOutcome, Job, Objective, Pool, Queue, RunningJob};
use proptest::prelude::*;
use std::collections::BTreeMap;

pub const TYPES: [&str; 3] = ["H800", "A100-80G", "T4"];

pub fn arb_pool() -> impl Strategy<Value = Pool> {
    prop::collection::vec((0usize..4, 1u32..6, prop::bool::ANY, prop::bool::ANY), 1..5).prop_map(|specs| {
        pool(
            specs
                .into_iter()
                .enumerate()
                .map(|(i, (t, nodes, four, ready))| {
                    let mut c = if t == 3 {
                        cluster(&format!("c{i}"), ClusterKind::General, "s", nodes, None, 0)
                    } else {
                        cluster(&format!("c{i}"), ClusterKind::AI, "s", nodes, Some(TYPES[t]), if four { 4 } else { 8 })
                    };
                    c.ready = ready || i == 0;
                    c.efficiency.energy_price_per_kwh = 0.2 + i as f64 * 0.3;
                    c
                })
                .collect(),
        )
    })
}

pub fn arb_queues() -> impl Strategy<Value = Vec<Queue>> {
    prop::collection::vec(
        (0u64..40, prop::option::of(0u64..16), prop::option::of(0u64..16), prop::bool::ANY, 0usize..3, prop::bool::ANY),
        3,
    )
    .prop_map(|specs| {
        specs
            .into_iter()
            .enumerate()
            .map(|(i, (nominal, borrowing, lending, cohort, preempt, strict))| Queue {
                cohort: cohort.then(|| "city".to_string()),
                quotas: vec![Quota {
                    resource: ResourceName::Accelerators,
                    accelerator: None,
                    nominal,
                    borrowing_limit: borrowing,
                    lending_limit: lending,
                }],
                preemption: PreemptionPolicy {
                    within_queue: [
                        PreemptionScope::Never,
                        PreemptionScope::LowerPriority,
                        PreemptionScope::LowerPriority,
                    ][preempt],
                    reclaim_within_cohort: [
                        PreemptionScope::Never,
                        PreemptionScope::LowerPriority,
                        PreemptionScope::Any,
                    ][preempt],
                },
                strategy: if strict { QueueingStrategy::StrictFifo } else { QueueingStrategy::BestEffortFifo },
                ..Queue::unlimited(&format!("q{i}"))
            })
            .collect()
    })
}

pub fn arb_jobs(prefix: &'static str, max: usize) -> impl Strategy<Value = Vec<Job>> {
    prop::collection::vec(
        (
            1u32..5,
            prop::sample::select(vec![0u32, 1, 2, 4, 8]),
            0.01f64..40.0,
            0i32..3,
            0usize..3,
            0usize..5,
            0usize..4,
            prop::option::of(60u64..20_000),
        ),
        0..max,
    )
    .prop_map(move |specs| {
        specs
            .into_iter()
            .enumerate()
            .map(|(i, (replicas, gpus, hours, priority, queue, types, objective, max_runtime))| {
                let mut j = job(&format!("{prefix}{i}"), &format!("q{queue}"), replicas, gpus, hours);
                j.priority = priority;
                j.submitted_at = i as u64;
                j.objective = Objective::ALL[objective];
                if types < 3 {
                    j.accelerator.types = vec![TYPES[types].to_string()];
                }
                j.max_runtime_s = max_runtime;
                j
            })
            .collect()
    })
}

/// Carries out a cycle's admissions as the service would: allocate in the pool (which
/// refuses over-commitment) and record running jobs.
pub fn apply(
    pool: &mut Pool,
    now: u64,
    jobs: &[Job],
    out: &CycleOutcome,
    running: &mut Vec<RunningJob>,
) -> Result<(), String> {
    for (id, p) in out.admissions() {
        let j = jobs.iter().find(|j| j.id == id).ok_or("admitted job not pending")?;
        pool.allocate(p.cluster_index, &p.slots, &j.per_replica).map_err(|e| format!("{id}: {e}"))?;
        let est_end = now + (p.estimate.transfer_s + p.estimate.runtime_s).ceil() as u64;
        running.push(RunningJob::started(j, p, now, j.max_runtime_s.map_or(est_end, |m| est_end.min(now + m))));
    }
    Ok(())
}

/// Quota usage from scratch, independent of the ledger.
pub fn check_quotas(queues: &[Queue], running: &[RunningJob]) -> Result<(), String> {
    let mut used: BTreeMap<&str, u64> = BTreeMap::new();
    for r in running {
        let u: u64 = gang_usage(&r.per_replica, r.replicas(), r.accelerator.as_deref())
            .iter()
            .filter(|(res, _)| *res == ResourceName::Accelerators)
            .map(|(_, v)| v)
            .sum();
        *used.entry(r.queue.as_str()).or_default() += u;
    }
    let mut shared_capacity = 0;
    let mut shared_used = 0;
    for q in queues {
        let quota = &q.quotas[0];
        let u = used.get(q.name.as_str()).copied().unwrap_or(0);
        let limit = if q.cohort.is_some() {
            quota.nominal + quota.borrowing_limit.unwrap_or(u64::MAX / 4)
        } else {
            quota.nominal
        };
        if u > limit {
            return Err(format!("{} uses {u} > limit {limit}", q.name));
        }
        if q.cohort.is_some() {
            let lendable = quota.lending_limit.map_or(quota.nominal, |l| l.min(quota.nominal));
            shared_capacity += lendable;
            shared_used += u.saturating_sub(quota.nominal - lendable);
        }
    }
    if shared_used > shared_capacity {
        return Err(format!("cohort uses {shared_used} of shared {shared_capacity}"));
    }
    Ok(())
}

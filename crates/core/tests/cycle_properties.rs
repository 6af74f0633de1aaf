//! Properties of the scheduling cycle over random pools, queues and jobs.

use computenet_core::index::{apply_to, find_slots_in};
use computenet_core::pool::NodeSlot;
use computenet_core::queue::{gang_usage, PreemptionPolicy, PreemptionScope, QueueingStrategy, Quota, ResourceName};
use computenet_core::synth::{cluster, job, pool};
use computenet_core::{
    Action, ClusterKind, CycleOutcome, Job, Objective, Pool, Queue, RunningJob, Scheduler, Snapshot,
};
use proptest::prelude::*;
use std::collections::BTreeMap;

const TYPES: [&str; 3] = ["H800", "A100-80G", "T4"];

fn arb_pool() -> impl Strategy<Value = Pool> {
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

fn arb_queues() -> impl Strategy<Value = Vec<Queue>> {
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

fn arb_jobs(prefix: &'static str, max: usize) -> impl Strategy<Value = Vec<Job>> {
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
fn apply(
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
        running.push(RunningJob {
            id: id.to_string(),
            queue: j.queue.clone(),
            priority: j.priority,
            cluster: p.cluster_index,
            accelerator: p.accelerator.clone(),
            slots: p.slots.clone(),
            per_replica: j.per_replica.clone(),
            started_at: now,
            estimated_end: j.max_runtime_s.map_or(est_end, |m| est_end.min(now + m)),
            restart_cost_s: None,
        });
    }
    Ok(())
}

/// Quota usage from scratch, independent of the ledger.
fn check_quotas(queues: &[Queue], running: &[RunningJob]) -> Result<(), String> {
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

/// The reserved head must fit at its start time given everything that is still running then.
fn check_reservation(pool: &Pool, jobs: &[Job], out: &CycleOutcome, running: &[RunningJob]) -> Result<(), String> {
    for d in &out.decisions {
        let Action::Reserve { cluster, accelerator, start_at } = &d.action else {
            continue;
        };
        let c = pool.cluster_index(cluster).ok_or("reserved cluster unknown")?;
        let head = jobs.iter().find(|j| j.id == d.job).ok_or("reserved job unknown")?;
        let mut free: Vec<_> = pool.clusters[c].nodes.iter().map(|n| n.free()).collect();
        for r in running.iter().filter(|r| r.cluster == c && r.estimated_end <= *start_at) {
            apply_to(&mut free, &r.slots, &r.per_replica, false);
        }
        let nodes = (0..free.len() as u32).filter(|&n| pool.clusters[c].nodes[n as usize].accelerator == *accelerator);
        if find_slots_in(&free, nodes, &head.per_replica, head.replicas).is_none() {
            return Err(format!("reserved job {} no longer fits on {cluster} at {start_at}", head.id));
        }
    }
    Ok(())
}

fn check_gangs(pool: &Pool, jobs: &[Job], out: &CycleOutcome) -> Result<(), String> {
    for (id, p) in out.admissions() {
        let j = jobs.iter().find(|j| j.id == id).ok_or("unknown")?;
        let replicas: u32 = p.slots.iter().map(|s| s.replicas).sum();
        if replicas != j.replicas {
            return Err(format!("{id}: {replicas} of {} replicas placed", j.replicas));
        }
        let cluster = &pool.clusters[p.cluster_index];
        for NodeSlot { node, .. } in &p.slots {
            let n = cluster.nodes.get(*node as usize).ok_or("slot on unknown node")?;
            if n.accelerator != p.accelerator {
                return Err(format!("{id}: node {} is not {:?}", n.name, p.accelerator));
            }
        }
        if !cluster.ready || cluster.cordoned {
            return Err(format!("{id} placed on unschedulable {}", cluster.name));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn cycles_keep_every_invariant(mut pool in arb_pool(), queues in arb_queues(), first in arb_jobs("a", 25), second in arb_jobs("b", 25)) {
        let scheduler = Scheduler::default();
        let mut running = Vec::new();
        let out1 = scheduler.cycle(&Snapshot { now: 0, pool: &pool, queues: &queues, pending: &first, running: &running });
        check_gangs(&pool, &first, &out1).map_err(TestCaseError::fail)?;
        apply(&mut pool, 0, &first, &out1, &mut running).map_err(TestCaseError::fail)?;
        check_reservation(&pool, &first, &out1, &running).map_err(TestCaseError::fail)?;
        check_quotas(&queues, &running).map_err(TestCaseError::fail)?;

        let now = 100;
        let out2 = scheduler.cycle(&Snapshot { now, pool: &pool, queues: &queues, pending: &second, running: &running });
        check_gangs(&pool, &second, &out2).map_err(TestCaseError::fail)?;
        apply(&mut pool, now, &second, &out2, &mut running).map_err(TestCaseError::fail)?;
        check_reservation(&pool, &second, &out2, &running).map_err(TestCaseError::fail)?;
        check_quotas(&queues, &running).map_err(TestCaseError::fail)?;
        prop_assert_eq!(out2.decisions.len(), second.len(), "one decision per pending job");
    }

    #[test]
    fn same_input_same_output(pool in arb_pool(), queues in arb_queues(), jobs in arb_jobs("j", 30), rotate in 0usize..30) {
        let scheduler = Scheduler::default();
        let snap = Snapshot { now: 0, pool: &pool, queues: &queues, pending: &jobs, running: &[] };
        let a = scheduler.cycle(&snap);
        prop_assert_eq!(&a, &scheduler.cycle(&snap));
        // The order jobs arrive in the snapshot does not matter either.
        let mut shuffled = jobs.clone();
        if !shuffled.is_empty() {
            let k = rotate % shuffled.len();
            shuffled.rotate_left(k);
            shuffled.reverse();
        }
        let b = scheduler.cycle(&Snapshot { pending: &shuffled, ..snap });
        prop_assert_eq!(a, b);
    }
}

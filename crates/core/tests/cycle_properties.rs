//! Properties of the scheduling cycle over random pools, queues and jobs.

mod common;

use common::{apply, arb_jobs, arb_pool, arb_queues, check_quotas};
use computenet_core::index::{apply_to, find_slots_in};
use computenet_core::pool::NodeSlot;
use computenet_core::{Action, CycleOutcome, Job, Pool, RunningJob, Scheduler, Snapshot};
use proptest::prelude::*;

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
        let out1 = scheduler.cycle(&Snapshot { now: 0, pool: &pool, queues: &queues, cohorts: &[], pending: &first, running: &running });
        check_gangs(&pool, &first, &out1).map_err(TestCaseError::fail)?;
        apply(&mut pool, 0, &first, &out1, &mut running).map_err(TestCaseError::fail)?;
        check_reservation(&pool, &first, &out1, &running).map_err(TestCaseError::fail)?;
        check_quotas(&queues, &running).map_err(TestCaseError::fail)?;

        let now = 100;
        let out2 = scheduler.cycle(&Snapshot { now, pool: &pool, queues: &queues, cohorts: &[], pending: &second, running: &running });
        check_gangs(&pool, &second, &out2).map_err(TestCaseError::fail)?;
        apply(&mut pool, now, &second, &out2, &mut running).map_err(TestCaseError::fail)?;
        check_reservation(&pool, &second, &out2, &running).map_err(TestCaseError::fail)?;
        check_quotas(&queues, &running).map_err(TestCaseError::fail)?;
        prop_assert_eq!(out2.decisions.len(), second.len(), "one decision per pending job");
    }

    #[test]
    fn same_input_same_output(pool in arb_pool(), queues in arb_queues(), jobs in arb_jobs("j", 30), rotate in 0usize..30) {
        let scheduler = Scheduler::default();
        let snap = Snapshot { now: 0, pool: &pool, queues: &queues, cohorts: &[], pending: &jobs, running: &[] };
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

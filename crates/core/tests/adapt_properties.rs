//! Properties of the re-optimisation round over random pools, queues and running jobs.

mod common;

use common::{apply, arb_jobs, arb_pool, arb_queues, check_quotas};
use computenet_core::adapt::remaining_work;
use computenet_core::{
    AdaptConfig, Adaptable, AdjustmentKind, ElasticRange, Job, Pool, Restart, RunningJob, Scheduler, Snapshot,
};
use proptest::prelude::*;
use std::collections::HashMap;

/// Makes jobs restartable (and some elastic) by the flags given.
fn adaptive(mut jobs: Vec<Job>, flags: &[(bool, bool, u64)]) -> Vec<Job> {
    for (j, &(restartable, elastic, cost)) in jobs.iter_mut().zip(flags.iter().cycle()) {
        if restartable {
            j.restart = Some(Restart { grace_period_s: 30, restart_cost_s: cost });
            if elastic {
                j.elastic = Some(ElasticRange { min_replicas: 1, max_replicas: j.replicas * 2 });
            }
        }
    }
    jobs
}

/// The running restartable jobs as the round sees them, half their work done.
fn adaptables(jobs: &[Job], running: &[RunningJob], moved: &HashMap<String, u32>) -> Vec<Adaptable> {
    running
        .iter()
        .enumerate()
        .filter_map(|(k, r)| {
            let mut job = jobs.iter().find(|j| j.id == r.id)?.clone();
            job.restart?;
            job.work = remaining_work(&job.work, 0.5);
            Some(Adaptable { running: k, job, recent_moves: moved.get(&r.id).copied().unwrap_or(0) })
        })
        .collect()
}

/// Ends every third running job, as if it finished, so there is room to move into.
fn finish_some(pool: &mut Pool, running: &mut Vec<RunningJob>) {
    let mut k = 0;
    running.retain(|r| {
        k += 1;
        let keep = k % 3 != 0;
        if !keep {
            pool.release(r.cluster, &r.slots, &r.per_replica);
        }
        keep
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// One round: deterministic; only restartable jobs; sizes within their range; every
    /// move or growth gains more than its margin; carried out, it never over-commits a
    /// node or a quota; and a second round at once moves no job back where it came from.
    #[test]
    fn rounds_keep_capacity_and_quotas_and_do_not_thrash(
        mut pool in arb_pool(),
        queues in arb_queues(),
        jobs in arb_jobs("a", 25),
        later in arb_jobs("b", 8),
        flags in prop::collection::vec((prop::bool::ANY, prop::bool::ANY, 0u64..600), 1..8),
    ) {
        let jobs = adaptive(jobs, &flags);
        let scheduler = Scheduler::default();
        let config = AdaptConfig { max_moves_per_hour: 10, ..AdaptConfig::default() };
        let mut running = Vec::new();
        let out = scheduler.cycle(&Snapshot { now: 0, pool: &pool, queues: &queues, cohorts: &[], pending: &jobs, running: &running });
        apply(&mut pool, 0, &jobs, &out, &mut running).map_err(TestCaseError::fail)?;
        finish_some(&mut pool, &mut running);

        let now = 600;
        let moved = HashMap::new();
        let adaptable = adaptables(&jobs, &running, &moved);
        let snap = Snapshot { now, pool: &pool, queues: &queues, cohorts: &[], pending: &later, running: &running };
        let adjustments = scheduler.adapt(&snap, &adaptable, &config);
        prop_assert_eq!(&adjustments, &scheduler.adapt(&snap, &adaptable, &config), "deterministic");

        let mut left: HashMap<String, (usize, Option<String>, u32)> = HashMap::new();
        let mut seen = std::collections::HashSet::new();
        // Stop first, then start: one round's adjustments may trade places.
        let mut starts = Vec::new();
        let before = running.clone();
        for adj in &adjustments {
            prop_assert!(seen.insert(adj.job.clone()), "{} adjusted twice in one round", adj.job);
            let a = adaptable.iter().find(|a| a.job.id == adj.job).ok_or_else(|| TestCaseError::fail("adjusted job not adaptable"))?;
            let restart = a.job.restart.ok_or_else(|| TestCaseError::fail("adjusted a rigid job"))?;
            match a.job.elastic {
                Some(e) => prop_assert!(e.contains(adj.replicas), "size {} outside {:?}", adj.replicas, e),
                None => prop_assert_eq!(adj.replicas, before[a.running].replicas()),
            }
            prop_assert_eq!(adj.placement.slots.iter().map(|s| s.replicas).sum::<u32>(), adj.replicas);
            if adj.kind != AdjustmentKind::Shrink {
                prop_assert!(
                    adj.remaining_s - adj.adjusted_s > config.gain_factor * restart.restart_cost_s as f64,
                    "{} gains {} s for a restart of {} s", adj.job, adj.remaining_s - adj.adjusted_s, restart.restart_cost_s
                );
            }
            let pos = running.iter().position(|r| r.id == adj.job).ok_or_else(|| TestCaseError::fail("not running"))?;
            let r = running.remove(pos);
            pool.release(r.cluster, &r.slots, &r.per_replica);
            left.insert(r.id.clone(), (r.cluster, r.accelerator.clone(), r.replicas()));
            starts.push((r, adj));
        }
        for (mut r, adj) in starts {
            pool.allocate(adj.placement.cluster_index, &adj.placement.slots, &r.per_replica)
                .map_err(|e| TestCaseError::fail(format!("{}: over-committed: {e}", adj.job)))?;
            r.cluster = adj.placement.cluster_index;
            r.accelerator = adj.placement.accelerator.clone();
            r.slots = adj.placement.slots.clone();
            r.started_at = now;
            r.estimated_end = now + adj.adjusted_s.ceil() as u64;
            running.push(r);
        }
        check_quotas(&queues, &running).map_err(TestCaseError::fail)?;

        // The same moment again: nothing goes back to where it just left.
        let moved: HashMap<String, u32> = adjustments.iter().map(|a| (a.job.clone(), 1)).collect();
        let adaptable = adaptables(&jobs, &running, &moved);
        let again = scheduler.adapt(
            &Snapshot { now, pool: &pool, queues: &queues, cohorts: &[], pending: &later, running: &running },
            &adaptable,
            &config,
        );
        for adj in &again {
            if let Some(from) = left.get(&adj.job) {
                prop_assert!(
                    (adj.placement.cluster_index, adj.placement.accelerator.clone(), adj.replicas) != *from,
                    "{} went back to {:?}", adj.job, from
                );
            }
        }
    }

    /// Rigid jobs and jobs at their move limit never move.
    #[test]
    fn rigid_jobs_and_jobs_at_their_limit_stay(
        mut pool in arb_pool(),
        queues in arb_queues(),
        jobs in arb_jobs("a", 25),
        restartable in prop::bool::ANY,
    ) {
        let jobs = adaptive(jobs, &[(restartable, true, 30)]);
        let scheduler = Scheduler::default();
        let mut running = Vec::new();
        let out = scheduler.cycle(&Snapshot { now: 0, pool: &pool, queues: &queues, cohorts: &[], pending: &jobs, running: &running });
        apply(&mut pool, 0, &jobs, &out, &mut running).map_err(TestCaseError::fail)?;
        finish_some(&mut pool, &mut running);
        let config = AdaptConfig::default();
        let at_limit: HashMap<String, u32> = running.iter().map(|r| (r.id.clone(), config.max_moves_per_hour)).collect();
        let adaptable = adaptables(&jobs, &running, &at_limit);
        let adjustments = scheduler.adapt(
            &Snapshot { now: 600, pool: &pool, queues: &queues, cohorts: &[], pending: &[], running: &running },
            &adaptable,
            &config,
        );
        prop_assert!(adjustments.is_empty(), "{:?}", adjustments.iter().map(|a| &a.job).collect::<Vec<_>>());
    }
}

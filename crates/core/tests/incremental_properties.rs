//! The incremental scheduler decides what a cycle from scratch decides, over random
//! sequences of events: arrivals, admissions carried out or not, preemptions, finishes,
//! capacity taken by others, nodes changed, quotas changed, time passing.

mod common;

use common::{apply, arb_jobs, arb_pool, arb_queues};
use computenet_core::cycle::Changes;
use computenet_core::pool::NodeSlot;
use computenet_core::queue::ResourceName;
use computenet_core::{
    Action, CycleOutcome, IncrementalScheduler, Job, Pool, Queue, ReplicaRequest, RunningJob, Scheduler, Snapshot,
};
use proptest::prelude::*;

/// One event between two cycles.
#[derive(Debug, Clone)]
enum Event {
    /// New jobs arrive.
    Arrive(Vec<Job>),
    /// Running gangs end: every `nth` of them, from `from`.
    Finish { nth: usize, from: usize },
    /// Something outside the scheduler takes (or gives back) a device on a node.
    Foreign { cluster: usize, node: usize, take: bool },
    /// A node's allocatable devices change (the cluster is indexed anew).
    Resize { cluster: usize, node: usize, devices: u32 },
    /// A cluster goes down or comes back.
    Ready { cluster: usize },
    /// A queue's nominal quota changes.
    Quota { queue: usize, nominal: u64 },
    /// Time passes.
    Wait(u64),
}

fn arb_event(step: usize) -> impl Strategy<Value = Event> {
    prop_oneof![
        3 => arb_jobs("x", 8).prop_map(move |jobs| Event::Arrive(
            jobs.into_iter()
                .map(|mut j| {
                    j.id = format!("s{step}-{}", j.id);
                    j.submitted_at += 100 * step as u64;
                    j
                })
                .collect()
        )),
        2 => (1usize..4, 0usize..4).prop_map(|(nth, from)| Event::Finish { nth, from }),
        1 => (0usize..5, 0usize..6, prop::bool::ANY).prop_map(|(cluster, node, take)| Event::Foreign { cluster, node, take }),
        1 => (0usize..5, 0usize..6, prop::sample::select(vec![4u32, 8, 16])).prop_map(|(cluster, node, devices)| Event::Resize { cluster, node, devices }),
        1 => (0usize..5).prop_map(|cluster| Event::Ready { cluster }),
        1 => (0usize..3, 0u64..40).prop_map(|(queue, nominal)| Event::Quota { queue, nominal }),
        1 => (1u64..5_000).prop_map(Event::Wait),
    ]
}

/// Eight events, each with the bits saying which of the cycle's admissions before it the
/// service carries out.
fn arb_events() -> impl Strategy<Value = Vec<(Event, u8)>> {
    (0..8usize).map(|step| (arb_event(step), any::<u8>())).collect::<Vec<_>>()
}

/// The world the two schedulers see: what the service would keep.
struct World {
    pool: Pool,
    queues: Vec<Queue>,
    pending: Vec<Job>,
    running: Vec<RunningJob>,
    /// Foreign usage placed per (cluster, node).
    foreign: Vec<(usize, usize)>,
    now: u64,
    /// What changed since the last cycle, as the service would know it.
    changed: Changed,
}

#[derive(Debug, Default)]
struct Changed {
    started: Vec<String>,
    ended: Vec<String>,
    nodes: Vec<(usize, usize)>,
    pool_shape: bool,
    quotas: bool,
}

fn one_device() -> ReplicaRequest {
    ReplicaRequest { accelerators: 1, ..ReplicaRequest::default() }
}

impl World {
    fn release(&mut self, r: &RunningJob) {
        self.pool.release(r.cluster, &r.slots, &r.per_replica);
        self.changed.ended.push(r.id.clone());
    }

    fn happen(&mut self, event: &Event) {
        match event {
            Event::Arrive(jobs) => self.pending.extend(jobs.iter().cloned()),
            Event::Finish { nth, from } => {
                let (ended, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.running)
                    .into_iter()
                    .enumerate()
                    .partition(|(i, _)| *i >= *from && (*i - from) % nth == 0);
                self.running = kept.into_iter().map(|(_, r)| r).collect();
                for (_, r) in ended {
                    self.release(&r);
                }
            }
            Event::Foreign { cluster, node, take } => {
                let Some(c) = self.pool.clusters.get(*cluster) else { return };
                if *node >= c.nodes.len() {
                    return;
                }
                let slot = [NodeSlot { node: *node as u32, replicas: 1 }];
                if *take {
                    if self.pool.allocate(*cluster, &slot, &one_device()).is_ok() {
                        self.foreign.push((*cluster, *node));
                    }
                } else if let Some(k) = self.foreign.iter().position(|f| *f == (*cluster, *node)) {
                    self.foreign.swap_remove(k);
                    self.pool.release(*cluster, &slot, &one_device());
                }
                self.changed.nodes.push((*cluster, *node));
            }
            Event::Resize { cluster, node, devices } => {
                let Some(n) = self.pool.clusters.get_mut(*cluster).and_then(|c| c.nodes.get_mut(*node)) else { return };
                if n.accelerator.is_some() && n.allocated.accelerators <= *devices {
                    n.allocatable.accelerators = *devices;
                    self.changed.pool_shape = true;
                }
            }
            Event::Ready { cluster } => {
                if let Some(c) = self.pool.clusters.get_mut(*cluster) {
                    c.ready = !c.ready;
                }
            }
            Event::Quota { queue, nominal } => {
                if let Some(q) = self.queues.get_mut(*queue) {
                    if let Some(quota) = q.quotas.iter_mut().find(|q| q.resource == ResourceName::Accelerators) {
                        quota.nominal = *nominal;
                        self.changed.quotas = true;
                    }
                }
            }
            Event::Wait(s) => self.now += s,
        }
    }
}

/// How the incremental scheduler learns what changed.
#[derive(Debug, Clone, Copy)]
enum Told {
    /// It compares each snapshot with what it kept.
    Nothing,
    /// The caller lists the changes.
    Changes,
}

fn run_sequence(
    pool: Pool,
    queues: Vec<Queue>,
    first: Vec<Job>,
    events: &[(Event, u8)],
    full_every: u32,
    told: Told,
) -> Result<(), TestCaseError> {
    let full = Scheduler::default();
    let mut incremental = IncrementalScheduler::new(Scheduler::default());
    incremental.full_every = full_every;
    let mut world = World {
        pool,
        queues,
        pending: first,
        running: Vec::new(),
        foreign: Vec::new(),
        now: 0,
        changed: Changed::default(),
    };
    for (step, (event, carried)) in events.iter().enumerate() {
        let snap = Snapshot {
            now: world.now,
            pool: &world.pool,
            queues: &world.queues,
            cohorts: &[],
            pending: &world.pending,
            running: &world.running,
        };
        let expected = full.cycle(&snap);
        let got = match told {
            Told::Nothing => incremental.cycle(&snap),
            Told::Changes => {
                let c = &world.changed;
                let changes = Changes {
                    started: world.running.iter().filter(|r| c.started.contains(&r.id)).collect(),
                    ended: c.ended.iter().map(String::as_str).collect(),
                    nodes: c.nodes.clone(),
                    pool_shape: c.pool_shape,
                    quotas: c.quotas,
                };
                incremental.cycle_with(&snap, &changes)
            }
        };
        prop_assert_eq!(&got, &expected, "step {} (before {:?})", step, event);
        world.changed = Changed::default();

        // The service carries out the admissions, except some (a dispatch that failed: the
        // bits of `carried` say which), and stops the victims of preemptions.
        let mut k = 0;
        let (kept, dropped): (Vec<_>, Vec<_>) =
            expected.decisions.iter().filter(|d| matches!(d.action, Action::Admit(_))).cloned().partition(|_| {
                k += 1;
                *carried & (1 << (k % 8)) != 0 || *carried == 0
            });
        world.changed.ended.extend(dropped.into_iter().map(|d| d.job));
        let carried_out = CycleOutcome { decisions: kept, ..Default::default() };
        let mut running = std::mem::take(&mut world.running);
        apply(&mut world.pool, world.now, &world.pending, &carried_out, &mut running).map_err(TestCaseError::fail)?;
        world.running = running;
        let started: std::collections::HashSet<&str> = carried_out.admissions().map(|(id, _)| id).collect();
        world.changed.started.extend(started.iter().map(|s| s.to_string()));
        world.pending.retain(|j| !started.contains(j.id.as_str()));
        let victims: Vec<String> = expected
            .decisions
            .iter()
            .filter_map(|d| match &d.action {
                Action::Preempt { victims, .. } => Some(victims.clone()),
                _ => None,
            })
            .flatten()
            .collect();
        let (stopped, left): (Vec<_>, Vec<_>) =
            std::mem::take(&mut world.running).into_iter().partition(|r| victims.contains(&r.id));
        world.running = left;
        for r in stopped {
            world.release(&r);
        }
        world.now += 10;
        world.happen(event);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn incremental_and_full_cycles_decide_the_same(
        pool in arb_pool(),
        queues in arb_queues(),
        first in arb_jobs("j", 20),
        events in arb_events(),
        full_every in prop::sample::select(vec![0u32, 3, 1_000]),
    ) {
        run_sequence(pool, queues, first, &events, full_every, Told::Nothing)?;
    }

    #[test]
    fn told_the_changes_it_decides_the_same(
        pool in arb_pool(),
        queues in arb_queues(),
        first in arb_jobs("j", 20),
        events in arb_events(),
    ) {
        run_sequence(pool, queues, first, &events, 1_000, Told::Changes)?;
    }
}

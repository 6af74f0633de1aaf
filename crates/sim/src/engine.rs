//! The discrete-event loop: arrivals and completions in simulated time, with a
//! scheduling cycle of the core after each batch of events.
//!
//! Speed: events at the same second are handled as one batch, and a cycle runs only when
//! something changed (a job entered the window, or one ended). The cycle sees a window of
//! [`RunOptions::window`] pending jobs shared out over the queues (at least 16 per queue),
//! each queue's in queue order (priority, then submission); the rest wait in a backlog and
//! move up as the window empties. With one
//! queue and no priorities this changes nothing for FIFO without backfill, and limits how
//! far backfill looks ahead (as batch schedulers limit their backfill depth).

use crate::error::{Error, Result};
use computenet_core::{Action, Job, Pool, Queue, RunningJob, Scheduler, Snapshot};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// What happened to one job.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRecord {
    pub id: String,
    pub queue: String,
    pub submitted_at: u64,
    pub started_at: Option<u64>,
    pub finished_at: Option<u64>,
    pub cluster: Option<String>,
    pub accelerator: Option<String>,
    /// Devices held while running (accelerators, or cores for CPU-only jobs).
    pub devices: u64,
    pub energy_kwh: f64,
    pub cost: f64,
    pub preemptions: u32,
}

/// The outcome of a simulation.
#[derive(Debug, Clone)]
pub struct SimulationResult {
    pub jobs: Vec<JobRecord>,
    /// Time of the last completion (or the last event when some jobs never ran).
    pub end_time: u64,
    pub cycles: u64,
    /// The pool as simulated (for capacity figures in reports).
    pub pool: Pool,
}

/// A simulation: a pool, queues, a scheduler and the jobs to replay.
#[derive(Debug)]
pub struct Simulation {
    pub pool: Pool,
    pub queues: Vec<Queue>,
    pub scheduler: Scheduler,
    pub jobs: Vec<Job>,
}

/// How a simulation runs.
pub struct RunOptions<'a> {
    /// Pending jobs one cycle sees, shared out over the queues, at least 16 each (0: all).
    pub window: usize,
    /// Called after each batch of events with (jobs finished or given up, all jobs).
    pub progress: Option<&'a mut dyn FnMut(u64, u64)>,
}

impl Default for RunOptions<'_> {
    fn default() -> Self {
        RunOptions { window: 256, progress: None }
    }
}

impl std::fmt::Debug for RunOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions").field("window", &self.window).finish_non_exhaustive()
    }
}

/// Queue order of a pending job: higher priority first, then submission, then arrival index.
type BacklogKey = (Reverse<i32>, u64, usize);

impl Simulation {
    /// Runs to the end: until every job finished or nothing can change any more.
    pub fn run(self) -> Result<SimulationResult> {
        self.run_with(RunOptions::default())
    }

    /// [`Simulation::run`] with options.
    pub fn run_with(self, mut options: RunOptions<'_>) -> Result<SimulationResult> {
        let Simulation { mut pool, queues, scheduler, jobs } = self;
        let mut jobs: Vec<Job> = jobs;
        jobs.sort_by(|a, b| a.submitted_at.cmp(&b.submitted_at).then(a.id.cmp(&b.id)));
        let total = jobs.len() as u64;
        let mut index_of: HashMap<String, usize> = HashMap::with_capacity(jobs.len());
        let mut records: Vec<JobRecord> = Vec::with_capacity(jobs.len());
        for (i, j) in jobs.iter().enumerate() {
            if index_of.insert(j.id.clone(), i).is_some() {
                return Err(Error::Invalid(format!("job id {:?} appears twice in the workload", j.id)));
            }
            records.push(JobRecord {
                id: j.id.clone(),
                queue: j.queue.clone(),
                submitted_at: j.submitted_at,
                started_at: None,
                finished_at: None,
                cluster: None,
                accelerator: None,
                devices: 0,
                energy_kwh: 0.0,
                cost: 0.0,
                preemptions: 0,
            });
        }
        // Queue of each job by position in `queues` (unknown queues share one slot past the end).
        let queue_pos: HashMap<&str, usize> = queues.iter().enumerate().map(|(i, q)| (q.name.as_str(), i)).collect();
        let slot_of = |job: &Job| queue_pos.get(job.queue.as_str()).copied().unwrap_or(queues.len());
        // The window is shared out over the queues (at least 16 each).
        let window = if options.window == 0 { usize::MAX } else { (options.window / queues.len().max(1)).max(16) };

        let mut next_arrival = 0usize;
        let mut backlog: Vec<BTreeMap<BacklogKey, usize>> = vec![BTreeMap::new(); queues.len() + 1];
        let mut in_window: Vec<usize> = vec![0; queues.len() + 1];
        // The window: the jobs the cycle sees, and their indexes.
        let mut pending: Vec<Job> = Vec::new();
        let mut pending_index: Vec<usize> = Vec::new();
        let mut running: Vec<RunningJob> = Vec::new();
        let mut running_index: Vec<usize> = Vec::new();
        // (end time, job index) of running jobs.
        let mut ends: BTreeSet<(u64, usize)> = BTreeSet::new();
        let mut now = 0;
        let mut cycles = 0;
        let mut done = 0u64;
        let key = |j: &Job, i: usize| (Reverse(j.priority), j.submitted_at, i);
        loop {
            let arrival_at = jobs.get(next_arrival).map(|j| j.submitted_at);
            let next_end = ends.first().map(|(t, _)| *t);
            now = match (arrival_at, next_end) {
                (None, None) => break,
                (Some(a), None) => a,
                (None, Some(e)) => e,
                (Some(a), Some(e)) => a.min(e),
            }
            .max(now);
            let mut changed = false;
            while let Some(&(t, i)) = ends.first() {
                if t > now {
                    break;
                }
                ends.pop_first();
                if let Some(pos) = running_index.iter().position(|&r| r == i) {
                    running_index.swap_remove(pos);
                    let r = running.swap_remove(pos);
                    pool.release(r.cluster, &r.slots, &r.per_replica);
                    records[i].finished_at = Some(t);
                    done += 1;
                    changed = true;
                }
            }
            while jobs.get(next_arrival).is_some_and(|j| j.submitted_at <= now) {
                let j = &jobs[next_arrival];
                backlog[slot_of(j)].insert(key(j, next_arrival), next_arrival);
                next_arrival += 1;
            }
            loop {
                // Fill the window from the backlogs.
                for q in 0..backlog.len() {
                    while in_window[q] < window {
                        let Some((_, i)) = backlog[q].pop_first() else {
                            break;
                        };
                        pending.push(jobs[i].clone());
                        pending_index.push(i);
                        in_window[q] += 1;
                        changed = true;
                    }
                }
                if pending.is_empty() || !changed {
                    break;
                }
                changed = false;
                let outcome = scheduler.cycle(&Snapshot {
                    now,
                    pool: &pool,
                    queues: &queues,
                    pending: &pending,
                    running: &running,
                });
                cycles += 1;
                let mut started: Vec<bool> = vec![false; pending.len()];
                let position: HashMap<&str, usize> =
                    pending.iter().enumerate().map(|(p, j)| (j.id.as_str(), p)).collect();
                let mut requeue: Vec<usize> = Vec::new();
                for decision in outcome.decisions {
                    match decision.action {
                        Action::Admit(p) => {
                            let Some(&w) = position.get(decision.job.as_str()) else {
                                continue;
                            };
                            let job = &pending[w];
                            let i = pending_index[w];
                            pool.allocate(p.cluster_index, &p.slots, &job.per_replica)?;
                            let run_s = (p.estimate.transfer_s + p.estimate.runtime_s).ceil().max(1.0) as u64;
                            let run_s = job.max_runtime_s.map_or(run_s, |m| run_s.min(m.max(1)));
                            let end = now + run_s;
                            running.push(RunningJob {
                                id: job.id.clone(),
                                queue: job.queue.clone(),
                                priority: job.priority,
                                cluster: p.cluster_index,
                                accelerator: p.accelerator.clone(),
                                slots: p.slots.clone(),
                                per_replica: job.per_replica.clone(),
                                started_at: now,
                                estimated_end: end,
                                restart_cost_s: None,
                            });
                            running_index.push(i);
                            ends.insert((end, i));
                            let rec = &mut records[i];
                            rec.started_at = Some(now);
                            rec.cluster = Some(p.cluster);
                            rec.accelerator = p.accelerator;
                            rec.devices = if job.per_replica.accelerators > 0 {
                                job.total_accelerators()
                            } else {
                                u64::from(job.replicas) * job.per_replica.cpu_millis / 1000
                            };
                            rec.energy_kwh += p.estimate.energy_kwh;
                            rec.cost += p.estimate.cost;
                            started[w] = true;
                            changed = true;
                        }
                        Action::Preempt { victims, .. } => {
                            for v in victims {
                                let Some(&i) = index_of.get(&v) else {
                                    continue;
                                };
                                let Some(pos) = running_index.iter().position(|&r| r == i) else {
                                    continue;
                                };
                                running_index.swap_remove(pos);
                                let r = running.swap_remove(pos);
                                pool.release(r.cluster, &r.slots, &r.per_replica);
                                ends.remove(&(r.estimated_end, i));
                                // Work is lost; the energy already spent stays counted.
                                let rec = &mut records[i];
                                rec.preemptions += 1;
                                rec.started_at = None;
                                rec.cluster = None;
                                requeue.push(i);
                                changed = true;
                            }
                        }
                        Action::Reserve { .. } | Action::Queued(_) => {}
                    }
                }
                drop(position);
                if started.iter().any(|s| *s) {
                    let mut keep = started.iter().map(|s| !s);
                    pending.retain(|_| keep.next().unwrap_or(true));
                    let mut keep = started.iter().map(|s| !s);
                    pending_index.retain(|_| keep.next().unwrap_or(true));
                    in_window.iter_mut().for_each(|n| *n = 0);
                    for &i in &pending_index {
                        in_window[slot_of(&jobs[i])] += 1;
                    }
                }
                for i in requeue {
                    backlog[slot_of(&jobs[i])].insert(key(&jobs[i], i), i);
                }
            }
            if let Some(progress) = options.progress.as_mut() {
                progress(done, total);
            }
            if ends.is_empty() && next_arrival >= jobs.len() {
                // Nothing runs and nothing arrives: whatever is pending can never start.
                break;
            }
        }
        Ok(SimulationResult { jobs: records, end_time: now, cycles, pool })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use computenet_core::synth::{cluster, job, pool};
    use computenet_core::ClusterKind;

    /// Three one-GPU V100 jobs of 1, 1 and 2 device-hours on one 2-GPU node:
    /// a and b start at 0; a ends at 3600; c (arrives at 60) starts at 3600 and ends at 10800.
    #[test]
    fn hand_checked_completion_times() {
        let mut a = job("a", "q", 1, 1, 1.0);
        a.submitted_at = 0;
        let mut b = job("b", "q", 1, 1, 1.5);
        b.submitted_at = 0;
        let mut c = job("c", "q", 1, 1, 2.0);
        c.submitted_at = 60;
        let result = Simulation {
            pool: pool(vec![cluster("ai", ClusterKind::AI, "x", 1, Some("V100"), 2)]),
            queues: vec![Queue::unlimited("q")],
            scheduler: Scheduler::default(),
            jobs: vec![c, b, a],
        }
        .run()
        .expect("runs");
        let times: Vec<(&str, Option<u64>, Option<u64>)> =
            result.jobs.iter().map(|r| (r.id.as_str(), r.started_at, r.finished_at)).collect();
        assert_eq!(times, vec![("a", Some(0), Some(3600)), ("b", Some(0), Some(5400)), ("c", Some(3600), Some(10800))]);
        assert_eq!(result.end_time, 10800);
    }

    /// The same three jobs seen through a window of one pending job: FIFO without backfill
    /// gives the same times, since nothing passes the blocked head anyway.
    #[test]
    fn a_window_of_one_keeps_fifo_times() {
        let mut jobs = Vec::new();
        for (id, hours, at) in [("a", 1.0, 0), ("b", 1.5, 0), ("c", 2.0, 60)] {
            let mut j = job(id, "q", 1, 1, hours);
            j.submitted_at = at;
            jobs.push(j);
        }
        let scheduler = crate::Policy::Fifo.scheduler(computenet_core::ThroughputModel::default());
        let result = Simulation {
            pool: pool(vec![cluster("ai", ClusterKind::AI, "x", 1, Some("V100"), 2)]),
            queues: vec![Queue::unlimited("q")],
            scheduler,
            jobs,
        }
        .run_with(RunOptions { window: 1, progress: None })
        .expect("runs");
        let ends: Vec<Option<u64>> = result.jobs.iter().map(|r| r.finished_at).collect();
        assert_eq!(ends, vec![Some(3600), Some(5400), Some(10800)]);
    }

    /// Waiting-aware placement in time: 8 V100-hours on 8 devices take 3600 x 125/312 =
    /// 1442.3 s on an A100 node (1443 s, whole seconds rounded up) and 3600 x 125/65 =
    /// 6923.1 s (6924 s) on a T4 node. "first" holds the A100 node until 1443; "second"
    /// (Fastest, arrives at 0 too) waits for it instead of starting on the free T4 node:
    /// it runs from 1443 to 2886.
    #[test]
    fn a_job_waits_for_the_faster_type_and_ends_earlier() {
        let mut first = job("first", "q", 1, 8, 8.0);
        first.objective = computenet_core::Objective::Fastest;
        let mut second = first.clone();
        second.id = "second".into();
        let p = pool(vec![
            cluster("fast", ClusterKind::AI, "x", 1, Some("A100-80G"), 8),
            cluster("slow", ClusterKind::AI, "x", 1, Some("T4"), 8),
        ]);
        let run = |policy: crate::Policy| {
            Simulation {
                pool: p.clone(),
                queues: vec![Queue::unlimited("q")],
                scheduler: policy.scheduler(computenet_core::ThroughputModel::default()),
                jobs: vec![first.clone(), second.clone()],
            }
            .run()
            .expect("runs")
        };
        let r = run(crate::Policy::Computenet);
        let times: Vec<String> = r
            .jobs
            .iter()
            .map(|j| format!("{} {:?}-{:?} {:?}", j.id, j.started_at, j.finished_at, j.cluster.as_deref()))
            .collect();
        assert_eq!(
            times,
            vec!["first Some(0)-Some(1443) Some(\"fast\")", "second Some(1443)-Some(2886) Some(\"fast\")"]
        );
        // FIFO first fit puts the second job on the T4 node at once: it ends much later.
        let r = run(crate::Policy::Fifo);
        assert_eq!(r.jobs[1].cluster.as_deref(), Some("slow"));
        assert_eq!(r.jobs[1].finished_at, Some(6924));
    }

    #[test]
    fn jobs_that_can_never_run_end_the_simulation_unfinished() {
        let result = Simulation {
            pool: pool(vec![cluster("ai", ClusterKind::AI, "x", 1, Some("V100"), 2)]),
            queues: vec![Queue::unlimited("q")],
            scheduler: Scheduler::default(),
            jobs: vec![job("huge", "q", 1, 8, 1.0)],
        }
        .run()
        .expect("runs");
        assert_eq!(result.jobs[0].started_at, None);
    }

    #[test]
    fn duplicate_ids_are_an_error() {
        let sim = Simulation {
            pool: pool(vec![]),
            queues: vec![],
            scheduler: Scheduler::default(),
            jobs: vec![job("x", "q", 1, 1, 1.0), job("x", "q", 1, 1, 1.0)],
        };
        assert!(sim.run().unwrap_err().to_string().contains("twice"));
    }
}

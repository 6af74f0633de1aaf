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
use crate::fairshare::FairShareMemory;
use crate::report::{usage_by_queue, QueueUsage};
use computenet_core::adapt::remaining_work;
use computenet_core::explain::Placement;
use computenet_core::usage::{attempt_amounts, quota_amounts, AttemptShape};
use computenet_core::{
    Action, AdaptConfig, Adaptable, AdjustmentKind, Job, Pool, Queue, RunningJob, Scheduler, Snapshot,
};
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
    /// Moves to another place at the same size (adaptive runs).
    pub moves: u32,
    /// Changes of size (adaptive runs).
    pub resizes: u32,
    /// Seconds of restart cost paid for moves, resizes and restartable preemptions.
    pub restart_s: u64,
    /// Where and on how many devices it ran, attempt by attempt.
    pub segments: Vec<Segment>,
}

/// One stretch of a job's run at one placement.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub cluster: String,
    pub accelerator: Option<String>,
    pub devices: u64,
    /// CPU of the whole gang, in millicores.
    pub cpu_millis: u64,
    pub start: u64,
    /// None while it runs (or when the simulation ended first).
    pub end: Option<u64>,
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
    /// What each queue's attempts used, by the service's accounting
    /// ([`crate::report::usage_by_queue`]).
    pub usage_by_queue: std::collections::BTreeMap<String, QueueUsage>,
}

/// A simulation: a pool, queues, a scheduler and the jobs to replay.
#[derive(Debug)]
pub struct Simulation {
    pub pool: Pool,
    pub queues: Vec<Queue>,
    pub scheduler: Scheduler,
    pub jobs: Vec<Job>,
}

/// The re-optimisation round of an adaptive run: its knobs and how often it runs.
#[derive(Debug, Clone)]
pub struct Adaptation {
    pub config: AdaptConfig,
    /// Seconds between rounds.
    pub interval_s: u64,
}

/// How a simulation runs.
pub struct RunOptions<'a> {
    /// Pending jobs one cycle sees, shared out over the queues, at least 16 each (0: all).
    pub window: usize,
    /// Called after each batch of events with (jobs finished or given up, all jobs).
    pub progress: Option<&'a mut dyn FnMut(u64, u64)>,
    /// Run the re-optimisation round over restartable jobs (None: jobs never move).
    pub adaptation: Option<Adaptation>,
    /// Fair share with memory: before each cycle every queue's `past_share` is set from
    /// its usage decayed with this half life, in seconds (0: off, plain DRF on current
    /// usage).
    pub fair_share_half_life_s: f64,
}

impl Default for RunOptions<'_> {
    fn default() -> Self {
        RunOptions { window: 256, progress: None, adaptation: None, fair_share_half_life_s: 0.0 }
    }
}

impl std::fmt::Debug for RunOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("window", &self.window)
            .field("fair_share_half_life_s", &self.fair_share_half_life_s)
            .finish_non_exhaustive()
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
        let Simulation { pool, queues, scheduler, jobs } = self;
        let mut jobs: Vec<Job> = jobs;
        jobs.sort_by(|a, b| a.submitted_at.cmp(&b.submitted_at).then(a.id.cmp(&b.id)));
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
                moves: 0,
                resizes: 0,
                restart_s: 0,
                segments: Vec::new(),
            });
        }
        let adaptation = options.adaptation.take();
        let queue_pos: HashMap<&str, usize> = queues.iter().enumerate().map(|(i, q)| (q.name.as_str(), i)).collect();
        let queue_of = jobs.iter().map(|j| queue_pos.get(j.queue.as_str()).copied().unwrap_or(queues.len())).collect();
        let half_life = options.fair_share_half_life_s;
        let memory = (half_life.is_finite() && half_life > 0.0).then(|| FairShareMemory::new(queues.len(), half_life));
        let state = State {
            pool,
            queues: &queues,
            live_queues: queues.clone(),
            memory,
            queue_of,
            scheduler: &scheduler,
            jobs: &jobs,
            index_of,
            records,
            left: vec![1.0; jobs.len()],
            next_delay: vec![0; jobs.len()],
            attempts: vec![None; jobs.len()],
            move_times: vec![Vec::new(); jobs.len()],
            running: Vec::new(),
            running_index: Vec::new(),
            ends: BTreeSet::new(),
        };
        state.run(options, adaptation.as_ref())
    }
}

/// The current attempt of a running job.
#[derive(Debug, Clone, Copy)]
struct Attempt {
    start: u64,
    /// Restart cost paid at its start (no progress meanwhile).
    delay: u64,
    /// Seconds its remaining work takes at this placement (after the delay), data
    /// transfer included.
    run_s: f64,
    /// Of `run_s`, the data transfer first (no training progress).
    transfer_s: f64,
    energy_kwh: f64,
    cost: f64,
}

/// Everything the loop changes.
struct State<'a> {
    pool: Pool,
    queues: &'a [Queue],
    /// The queues as the cycle sees them (their past shares set when fair share has memory).
    live_queues: Vec<Queue>,
    /// Decayed past usage per queue (None: fair share without memory).
    memory: Option<FairShareMemory>,
    /// Position of each job's queue in `queues` (`queues.len()`: unknown queue).
    queue_of: Vec<usize>,
    scheduler: &'a Scheduler,
    jobs: &'a [Job],
    index_of: HashMap<String, usize>,
    records: Vec<JobRecord>,
    /// Share of each job's work left when its current attempt started.
    left: Vec<f64>,
    /// Restart cost to pay at the next start (a restartable job that was stopped).
    next_delay: Vec<u64>,
    attempts: Vec<Option<Attempt>>,
    /// When each job was moved or resized.
    move_times: Vec<Vec<u64>>,
    running: Vec<RunningJob>,
    running_index: Vec<usize>,
    /// (end time, job index) of running jobs.
    ends: BTreeSet<(u64, usize)>,
}

impl State<'_> {
    fn run(mut self, mut options: RunOptions<'_>, adaptation: Option<&Adaptation>) -> Result<SimulationResult> {
        let jobs = self.jobs;
        let queues = self.queues;
        let total = jobs.len() as u64;
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
        let mut now = 0;
        let mut cycles = 0;
        let mut done = 0u64;
        let mut next_round = adaptation.map(|a| a.interval_s.max(1));
        let key = |j: &Job, i: usize| (Reverse(j.priority), j.submitted_at, i);
        loop {
            let arrival_at = jobs.get(next_arrival).map(|j| j.submitted_at);
            let next_end = self.ends.first().map(|(t, _)| *t);
            // Rounds only matter while something runs.
            let round_at = next_round.filter(|_| !self.running.is_empty());
            let Some(next) = [arrival_at, next_end, round_at].into_iter().flatten().min() else {
                break;
            };
            now = next.max(now);
            let mut changed = false;
            while let Some(&(t, i)) = self.ends.first() {
                if t > now {
                    break;
                }
                self.ends.pop_first();
                if let Some(pos) = self.running_index.iter().position(|&r| r == i) {
                    self.running_index.swap_remove(pos);
                    let r = self.running.swap_remove(pos);
                    self.pool.release(r.cluster, &r.slots, &r.per_replica);
                    self.close_segment(i, t);
                    self.records[i].finished_at = Some(t);
                    self.attempts[i] = None;
                    done += 1;
                    changed = true;
                }
            }
            while jobs.get(next_arrival).is_some_and(|j| j.submitted_at <= now) {
                let j = &jobs[next_arrival];
                backlog[slot_of(j)].insert(key(j, next_arrival), next_arrival);
                next_arrival += 1;
            }
            let mut round_due = false;
            if let (Some(a), Some(at)) = (adaptation, next_round) {
                if now >= at {
                    round_due = true;
                    next_round = Some(now + a.interval_s.max(1));
                }
            }
            loop {
                // Fill the window from the backlogs.
                for q in 0..backlog.len() {
                    while in_window[q] < window {
                        let Some((_, i)) = backlog[q].pop_first() else {
                            break;
                        };
                        let mut job = jobs[i].clone();
                        job.work = remaining_work(&job.work, self.left[i]);
                        pending.push(job);
                        pending_index.push(i);
                        in_window[q] += 1;
                        changed = true;
                    }
                }
                let run_cycle = changed && !pending.is_empty();
                if !run_cycle && !round_due {
                    break;
                }
                changed = false;
                let mut started: Vec<bool> = vec![false; pending.len()];
                let mut requeue: Vec<usize> = Vec::new();
                if run_cycle {
                    if let Some(memory) = self.memory.as_mut() {
                        memory.set_past_shares(&mut self.live_queues, now);
                    }
                    let outcome = self.scheduler.cycle(&Snapshot {
                        now,
                        pool: &self.pool,
                        queues: &self.live_queues,
                        cohorts: &[],
                        pending: &pending,
                        running: &self.running,
                    });
                    cycles += 1;
                    let position: HashMap<&str, usize> =
                        pending.iter().enumerate().map(|(p, j)| (j.id.as_str(), p)).collect();
                    for decision in outcome.decisions {
                        match decision.action {
                            Action::Admit(p) => {
                                let Some(&w) = position.get(decision.job.as_str()) else {
                                    continue;
                                };
                                self.start(pending_index[w], &pending[w], p, now)?;
                                started[w] = true;
                                changed = true;
                            }
                            Action::Preempt { victims, .. } => {
                                for v in victims {
                                    if let Some(i) = self.stop(&v, now) {
                                        requeue.push(i);
                                        changed = true;
                                    }
                                }
                            }
                            Action::Reserve { .. } | Action::Queued(_) => {}
                        }
                    }
                }
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
                // The round, once the cycle has admitted what it could.
                if round_due && !changed {
                    round_due = false;
                    if let Some(a) = adaptation {
                        changed = self.round(&pending, &a.config, now)?;
                    }
                }
            }
            if let Some(progress) = options.progress.as_mut() {
                progress(done, total);
            }
            if self.ends.is_empty() && next_arrival >= jobs.len() {
                // Nothing runs and nothing arrives: whatever is pending can never start.
                break;
            }
        }
        let usage = usage_by_queue(&self.records, &self.pool, &self.scheduler.model, now);
        Ok(SimulationResult { jobs: self.records, end_time: now, cycles, pool: self.pool, usage_by_queue: usage })
    }

    /// Starts job `i` (`job`: as the cycle saw it, with its remaining work) at `p`.
    fn start(&mut self, i: usize, job: &Job, p: Placement, now: u64) -> Result<()> {
        self.pool.allocate(p.cluster_index, &p.slots, &job.per_replica)?;
        let delay = std::mem::take(&mut self.next_delay[i]);
        let run_s = (p.estimate.transfer_s + p.estimate.runtime_s).ceil().max(1.0);
        let run_s = job.max_runtime_s.map_or(run_s, |m| run_s.min(m.max(1) as f64));
        let end = now + delay + run_s as u64;
        self.running.push(RunningJob::started(job, &p, now, end));
        self.running_index.push(i);
        self.ends.insert((end, i));
        self.attempts[i] = Some(Attempt {
            start: now,
            delay,
            run_s,
            transfer_s: p.estimate.transfer_s.min(run_s),
            energy_kwh: p.estimate.energy_kwh,
            cost: p.estimate.cost,
        });
        let replicas: u32 = p.slots.iter().map(|s| s.replicas).sum();
        let cpu_millis = u64::from(replicas) * job.per_replica.cpu_millis;
        if let Some(memory) = self.memory.as_mut() {
            // Per second of the segment, by the same accounting as the report.
            let shape = AttemptShape {
                accelerator: p.accelerator.as_deref(),
                devices: if p.accelerator.is_some() { devices(job, replicas) } else { 0 },
                cpu_millis,
                seconds: 1.0,
            };
            let efficiency = self.pool.clusters.get(p.cluster_index).map(|c| c.efficiency.clone()).unwrap_or_default();
            let per_second = attempt_amounts(&self.scheduler.model, &self.pool.catalogue, &efficiency, false, &shape);
            memory.begin(i, self.queue_of[i], p.accelerator.as_deref(), &quota_amounts(&per_second), now);
        }
        let rec = &mut self.records[i];
        rec.started_at.get_or_insert(now);
        rec.cluster = Some(p.cluster.clone());
        rec.accelerator = p.accelerator.clone();
        rec.devices = devices(job, replicas);
        rec.energy_kwh += p.estimate.energy_kwh;
        rec.cost += p.estimate.cost;
        rec.segments.push(Segment {
            cluster: p.cluster,
            accelerator: p.accelerator,
            devices: rec.devices,
            cpu_millis,
            start: now,
            end: None,
        });
        Ok(())
    }

    /// Share of job `i`'s whole work left at `now` (its current attempt's progress counted).
    fn left_at(&self, i: usize, now: u64) -> f64 {
        let Some(a) = self.attempts[i] else {
            return self.left[i];
        };
        // Progress only while training: not during the restart delay or the data transfer.
        let worked = (now.saturating_sub(a.start + a.delay) as f64 - a.transfer_s).max(0.0);
        let training_s = a.run_s - a.transfer_s;
        let share_done = if training_s > 0.0 { (worked / training_s).min(1.0) } else { 1.0 };
        self.left[i] * (1.0 - share_done)
    }

    /// Ends job `i`'s current attempt at `now`: its progress is kept when restartable
    /// (`keep`), and the energy of the part not run is given back. Returns its running entry.
    fn end_attempt(&mut self, i: usize, now: u64, keep: bool) -> Option<RunningJob> {
        let pos = self.running_index.iter().position(|&r| r == i)?;
        self.running_index.swap_remove(pos);
        let r = self.running.swap_remove(pos);
        self.pool.release(r.cluster, &r.slots, &r.per_replica);
        self.ends.remove(&(r.estimated_end, i));
        let left = self.left_at(i, now);
        if let Some(a) = self.attempts[i].take() {
            let span = a.delay as f64 + a.run_s;
            let unspent = if span > 0.0 { 1.0 - (now.saturating_sub(a.start) as f64 / span).min(1.0) } else { 0.0 };
            self.records[i].energy_kwh -= a.energy_kwh * unspent;
            self.records[i].cost -= a.cost * unspent;
        }
        self.left[i] = if keep { left } else { 1.0 };
        self.close_segment(i, now);
        Some(r)
    }

    /// Preempts a victim by id: a restartable one keeps its progress and pays its restart
    /// cost when it starts again; a rigid one starts over. Returns its index.
    fn stop(&mut self, id: &str, now: u64) -> Option<usize> {
        let i = *self.index_of.get(id)?;
        let restart = self.jobs[i].restart;
        self.end_attempt(i, now, restart.is_some())?;
        let rec = &mut self.records[i];
        rec.preemptions += 1;
        if let Some(r) = restart {
            self.next_delay[i] = r.restart_cost_s;
            rec.restart_s += r.restart_cost_s;
        } else {
            rec.started_at = None;
            rec.cluster = None;
        }
        Some(i)
    }

    /// One re-optimisation round; carries its adjustments out. Whether anything changed.
    fn round(&mut self, pending: &[Job], config: &AdaptConfig, now: u64) -> Result<bool> {
        let mut adaptable = Vec::new();
        for (k, &i) in self.running_index.iter().enumerate() {
            let job = &self.jobs[i];
            if job.restart.is_none() {
                continue;
            }
            let mut job = job.clone();
            job.work = remaining_work(&job.work, self.left_at(i, now));
            let recent = self.move_times[i].iter().filter(|t| **t + 3600 > now).count() as u32;
            adaptable.push(Adaptable { running: k, job, recent_moves: recent });
        }
        if adaptable.is_empty() {
            return Ok(false);
        }
        let snapshot = Snapshot {
            now,
            pool: &self.pool,
            queues: &self.live_queues,
            cohorts: &[],
            pending,
            running: &self.running,
        };
        let adjustments = self.scheduler.adapt(&snapshot, &adaptable, config);
        let changed = !adjustments.is_empty();
        // Stop every adjusted job first (their devices may be each other's targets).
        let mut starts = Vec::new();
        for adj in adjustments {
            let Some(&i) = self.index_of.get(&adj.job) else {
                continue;
            };
            let left = self.left_at(i, now);
            if self.end_attempt(i, now, true).is_none() {
                continue;
            }
            let cost = self.jobs[i].restart.map_or(0, |r| r.restart_cost_s);
            self.next_delay[i] = cost;
            self.move_times[i].push(now);
            let rec = &mut self.records[i];
            rec.restart_s += cost;
            match adj.kind {
                AdjustmentKind::Migrate => rec.moves += 1,
                AdjustmentKind::Grow | AdjustmentKind::Shrink => rec.resizes += 1,
            }
            let mut job = self.jobs[i].clone();
            job.work = remaining_work(&job.work, left);
            job.replicas = adj.replicas;
            starts.push((i, job, adj.placement));
        }
        for (i, job, placement) in starts {
            self.start(i, &job, placement, now)?;
        }
        Ok(changed)
    }

    fn close_segment(&mut self, i: usize, now: u64) {
        if let Some(s) = self.records[i].segments.last_mut().filter(|s| s.end.is_none()) {
            s.end = Some(now);
            if let Some(memory) = self.memory.as_mut() {
                memory.end(i, now);
            }
        }
    }
}

/// Devices a gang of `replicas` holds (accelerators, or cores for CPU-only jobs).
fn devices(job: &Job, replicas: u32) -> u64 {
    if job.per_replica.accelerators > 0 {
        u64::from(replicas) * u64::from(job.per_replica.accelerators)
    } else {
        u64::from(replicas) * job.per_replica.cpu_millis / 1000
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
        .run_with(RunOptions { window: 1, ..RunOptions::default() })
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

    /// Adaptive runs account work exactly: a job that moved (T4 to A100 as the A100s free
    /// up) does, over its stretches, its whole work and no more (each stretch's training
    /// time over the work's runtime on that type sums to one), and pays its restart cost
    /// once per move, during which it makes no progress.
    #[test]
    fn moved_jobs_do_their_work_exactly_and_pay_their_restarts() {
        let p = pool(vec![
            cluster("fast", ClusterKind::AI, "x", 1, Some("A100-80G"), 8),
            cluster("slow", ClusterKind::AI, "x", 2, Some("T4"), 8),
        ]);
        let mut jobs = Vec::new();
        for (i, hours) in [40.0, 64.0, 64.0, 30.0].into_iter().enumerate() {
            let mut j = job(&format!("j{i}"), "q", 1, 8, hours);
            j.submitted_at = i as u64 * 60;
            jobs.push(j);
        }
        crate::policy::make_restartable(&mut jobs, 1.0, 300, 0.0);
        let model = computenet_core::ThroughputModel::default();
        let runtime = |j: &Job, accelerator: &str| model.runtime_s(j, &p.catalogue, Some(accelerator), 1).0;
        let by_id: HashMap<String, Job> = jobs.iter().map(|j| (j.id.clone(), j.clone())).collect();
        let result = Simulation {
            pool: p.clone(),
            queues: vec![Queue::unlimited("q")],
            scheduler: crate::Policy::ComputenetAdaptive.scheduler(model.clone()),
            jobs,
        }
        .run_with(RunOptions {
            window: 256,
            progress: None,
            adaptation: Some(Adaptation { config: AdaptConfig::default(), interval_s: 300 }),
            fair_share_half_life_s: 0.0,
        })
        .expect("runs");
        assert!(result.jobs.iter().any(|r| r.moves > 0), "something moved: {:?}", result.jobs);
        for r in &result.jobs {
            let j = &by_id[&r.id];
            let mut done = 0.0;
            for (k, seg) in r.segments.iter().enumerate() {
                let delay = if k == 0 { 0.0 } else { 300.0 };
                let trained = (seg.end.expect("finished") - seg.start) as f64 - delay;
                done += trained / runtime(j, seg.accelerator.as_deref().expect("a GPU"));
            }
            assert!((done - 1.0).abs() < 0.01, "{} did {done} of its work", r.id);
            assert_eq!(r.restart_s, 300 * u64::from(r.moves + r.resizes + r.preemptions), "{}", r.id);
            assert_eq!(r.segments.len() as u32, 1 + r.moves + r.resizes + r.preemptions, "{}", r.id);
        }
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

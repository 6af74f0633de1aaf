//! The discrete-event loop: arrivals and completions in simulated time, with a
//! scheduling cycle of the core after each batch of events.

use crate::error::{Error, Result};
use computenet_core::{Action, Job, Pool, Queue, RunningJob, Scheduler, Snapshot};
use std::collections::{BTreeMap, BTreeSet};

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

impl Simulation {
    /// Runs to the end: until every job finished or nothing can change any more.
    pub fn run(mut self) -> Result<SimulationResult> {
        let mut arrivals: Vec<Job> = std::mem::take(&mut self.jobs);
        arrivals.sort_by(|a, b| a.submitted_at.cmp(&b.submitted_at).then(a.id.cmp(&b.id)));
        let mut records: BTreeMap<String, JobRecord> = BTreeMap::new();
        for j in &arrivals {
            let previous = records.insert(
                j.id.clone(),
                JobRecord {
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
                },
            );
            if previous.is_some() {
                return Err(Error::Invalid(format!("job id {:?} appears twice in the workload", j.id)));
            }
        }
        let mut arrivals = arrivals.into_iter().peekable();
        let mut pending: Vec<Job> = Vec::new();
        let mut running: Vec<RunningJob> = Vec::new();
        let mut by_id: BTreeMap<String, Job> = BTreeMap::new();
        // (end time, job id) of running jobs.
        let mut ends: BTreeSet<(u64, String)> = BTreeSet::new();
        let mut now = 0;
        let mut cycles = 0;
        loop {
            let next_arrival = arrivals.peek().map(|j| j.submitted_at);
            let next_end = ends.first().map(|(t, _)| *t);
            now = match (next_arrival, next_end) {
                (None, None) => break,
                (Some(a), None) => a,
                (None, Some(e)) => e,
                (Some(a), Some(e)) => a.min(e),
            }
            .max(now);
            while let Some((t, id)) = ends.first().cloned() {
                if t > now {
                    break;
                }
                ends.pop_first();
                if let Some(pos) = running.iter().position(|r| r.id == id) {
                    let r = running.swap_remove(pos);
                    self.pool.release(r.cluster, &r.slots, &r.per_replica);
                    if let Some(rec) = records.get_mut(&id) {
                        rec.finished_at = Some(t);
                    }
                }
            }
            while arrivals.peek().is_some_and(|j| j.submitted_at <= now) {
                if let Some(j) = arrivals.next() {
                    by_id.insert(j.id.clone(), j.clone());
                    pending.push(j);
                }
            }
            if pending.is_empty() {
                continue;
            }
            let outcome = self.scheduler.cycle(&Snapshot {
                now,
                pool: &self.pool,
                queues: &self.queues,
                pending: &pending,
                running: &running,
            });
            cycles += 1;
            let mut started: BTreeSet<String> = BTreeSet::new();
            for decision in outcome.decisions {
                match decision.action {
                    Action::Admit(p) => {
                        let job = &by_id[&decision.job];
                        self.pool.allocate(p.cluster_index, &p.slots, &job.per_replica)?;
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
                        });
                        ends.insert((end, job.id.clone()));
                        if let Some(rec) = records.get_mut(&job.id) {
                            rec.started_at = Some(now);
                            rec.cluster = Some(p.cluster.clone());
                            rec.accelerator = p.accelerator.clone();
                            rec.devices = if job.per_replica.accelerators > 0 {
                                job.total_accelerators()
                            } else {
                                u64::from(job.replicas) * job.per_replica.cpu_millis / 1000
                            };
                            rec.energy_kwh += p.estimate.energy_kwh;
                            rec.cost += p.estimate.cost;
                        }
                        started.insert(job.id.clone());
                    }
                    Action::Preempt { victims, .. } => {
                        for v in victims {
                            let Some(pos) = running.iter().position(|r| r.id == v) else {
                                continue;
                            };
                            let r = running.swap_remove(pos);
                            self.pool.release(r.cluster, &r.slots, &r.per_replica);
                            ends.remove(&(r.estimated_end, r.id.clone()));
                            if let Some(rec) = records.get_mut(&v) {
                                // Work is lost; the energy already spent stays counted.
                                rec.preemptions += 1;
                                rec.started_at = None;
                                rec.cluster = None;
                            }
                            pending.push(by_id[&v].clone());
                        }
                    }
                    Action::Reserve { .. } | Action::Queued(_) => {}
                }
            }
            pending.retain(|j| !started.contains(&j.id));
            if ends.is_empty() && arrivals.peek().is_none() {
                // Nothing runs and nothing arrives: whatever is pending can never start.
                break;
            }
        }
        Ok(SimulationResult { jobs: records.into_values().collect(), end_time: now, cycles, pool: self.pool })
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

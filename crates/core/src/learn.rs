//! Throughput learned from running jobs.
//!
//! The service reads each running job's progress (training steps per second) from a
//! metric; this module turns those readings into two things, purely:
//! - the job's own estimate: steps done so far and the time its remaining steps take at
//!   its measured rate ([`Learner::remaining_s`]);
//! - a learned profile of the placement it runs on (model, accelerator type, devices,
//!   nodes, global batch size): an exponential moving average over every job that ran
//!   there, trusted once it has [`LearnConfig::min_samples`] readings. The throughput
//!   model prefers it to a static profile of the same placement
//!   ([`crate::throughput::EstimateSource::Learned`]).
//!
//! Readings are untrusted (whatever a training script exports): NaN, infinite, zero,
//! negative and absurd rates (above [`MAX_STEPS_PER_S`]) are dropped and change nothing.
//! Memory is bounded: at most [`LearnConfig::max_entries`] learned placements (the one
//! updated longest ago makes room) and [`LearnConfig::max_jobs`] tracked jobs.

use std::collections::BTreeMap;

/// Highest rate taken as a measurement, in steps per second. The fastest real training
/// loops make a few thousand small steps a second; far beyond is a wrong series (a
/// counter read as a rate, a unit mistake), not a job.
pub const MAX_STEPS_PER_S: f64 = 1e5;

/// `steps_per_s` when it is a plausible reading: finite, above zero (a stalled or not yet
/// started job says nothing about the placement) and at most [`MAX_STEPS_PER_S`].
pub fn sane_rate(steps_per_s: f64) -> Option<f64> {
    (steps_per_s.is_finite() && steps_per_s > 0.0 && steps_per_s <= MAX_STEPS_PER_S).then_some(steps_per_s)
}

/// How readings are averaged and how much is kept.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LearnConfig {
    /// Weight of a new reading in the moving average (0 < w <= 1).
    pub weight: f64,
    /// Readings before an average is used (a job's first readings include its start-up).
    pub min_samples: u32,
    /// Learned placements kept at most.
    pub max_entries: usize,
    /// Running jobs tracked at most (beyond, new jobs are not tracked until some end).
    pub max_jobs: usize,
}

impl Default for LearnConfig {
    fn default() -> Self {
        Self { weight: 0.2, min_samples: 3, max_entries: 4096, max_jobs: 100_000 }
    }
}

impl LearnConfig {
    fn weight(&self) -> f64 {
        if self.weight.is_finite() {
            self.weight.clamp(f64::MIN_POSITIVE, 1.0)
        } else {
            1.0
        }
    }
}

/// A placement a rate is learned for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PlacementKey {
    /// The tenant (hub namespace) whose job it was: what one tenant's jobs report is used
    /// for that tenant's jobs only, so that no tenant can steer others' placements.
    pub tenant: String,
    pub model: String,
    /// Catalogue name; [`crate::accelerator::CPU_ONLY`] for CPU-only jobs.
    pub accelerator: String,
    /// Devices in all.
    pub gpus: u32,
    pub nodes: u32,
    /// Global batch size, when the job gives one (a step of another batch is another step).
    pub batch_size: Option<u32>,
}

/// What is learned of one placement.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LearnedRate {
    /// Moving average of the readings.
    pub steps_per_s: f64,
    /// Readings taken in.
    pub samples: u32,
    /// Distinct jobs (attempts) the readings came from.
    pub jobs: u32,
    /// When the last reading was taken (unix seconds).
    pub updated_at: u64,
}

type Size = (u32, u32, Option<u32>);

/// Learned rates by model, accelerator type and size.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LearnedProfiles {
    pub config: LearnConfig,
    /// By (tenant, model), then accelerator type, then size.
    by_model: BTreeMap<(String, String), BTreeMap<String, BTreeMap<Size, LearnedRate>>>,
    len: usize,
}

impl LearnedProfiles {
    pub fn new(config: LearnConfig) -> Self {
        Self { config, ..Self::default() }
    }

    /// Learned placements held.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Takes in one reading of a job at `key`; `new_job` when it is the first reading of
    /// this job (attempt) there. Returns whether it was used (a reading that is not
    /// [`sane_rate`] changes nothing).
    pub fn observe(&mut self, key: &PlacementKey, steps_per_s: f64, new_job: bool, now: u64) -> bool {
        let Some(rate) = sane_rate(steps_per_s) else { return false };
        if self.get(key).is_none() {
            if self.config.max_entries == 0 {
                return false;
            }
            while self.len >= self.config.max_entries {
                self.evict_oldest();
            }
            self.len += 1;
        }
        let weight = self.config.weight();
        let entry = self
            .by_model
            .entry((key.tenant.clone(), key.model.clone()))
            .or_default()
            .entry(key.accelerator.clone())
            .or_default()
            .entry((key.gpus, key.nodes, key.batch_size))
            .or_insert(LearnedRate { steps_per_s: rate, samples: 0, jobs: 0, updated_at: now });
        if entry.samples > 0 {
            entry.steps_per_s += weight * (rate - entry.steps_per_s);
        }
        entry.samples = entry.samples.saturating_add(1);
        entry.jobs = entry.jobs.saturating_add(u32::from(new_job || entry.jobs == 0));
        entry.updated_at = entry.updated_at.max(now);
        true
    }

    fn get(&self, key: &PlacementKey) -> Option<&LearnedRate> {
        self.by_model.get(&(key.tenant.clone(), key.model.clone()))?.get(&key.accelerator)?.get(&(
            key.gpus,
            key.nodes,
            key.batch_size,
        ))
    }

    /// The learned rate of a placement for `tenant`'s jobs, once it has enough readings.
    pub fn rate(
        &self,
        tenant: &str,
        model: &str,
        accelerator: &str,
        gpus: u32,
        nodes: u32,
        batch_size: Option<u32>,
    ) -> Option<LearnedRate> {
        let r = self
            .by_model
            .get(&(tenant.to_string(), model.to_string()))?
            .get(accelerator)?
            .get(&(gpus, nodes, batch_size))?;
        (r.samples >= self.config.min_samples.max(1)).then_some(*r)
    }

    /// Every learned placement, trusted or not yet.
    pub fn entries(&self) -> impl Iterator<Item = (PlacementKey, LearnedRate)> + '_ {
        self.by_model.iter().flat_map(|((tenant, model), by_type)| {
            by_type.iter().flat_map(move |(accelerator, sizes)| {
                sizes.iter().map(move |(&(gpus, nodes, batch_size), r)| {
                    (
                        PlacementKey {
                            tenant: tenant.clone(),
                            model: model.clone(),
                            accelerator: accelerator.clone(),
                            gpus,
                            nodes,
                            batch_size,
                        },
                        *r,
                    )
                })
            })
        })
    }

    /// Drops the placement updated longest ago (ties: the first by key).
    fn evict_oldest(&mut self) {
        let Some((oldest, _)) = self.entries().min_by_key(|(k, r)| (r.updated_at, k.clone())) else {
            self.len = 0;
            return;
        };
        let model_key = (oldest.tenant.clone(), oldest.model.clone());
        if let Some(by_type) = self.by_model.get_mut(&model_key) {
            if let Some(sizes) = by_type.get_mut(&oldest.accelerator) {
                sizes.remove(&(oldest.gpus, oldest.nodes, oldest.batch_size));
                if sizes.is_empty() {
                    by_type.remove(&oldest.accelerator);
                }
            }
            if by_type.is_empty() {
                self.by_model.remove(&model_key);
            }
        }
        self.len -= 1;
    }
}

/// One reading of a running job's progress.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// The job's id (its TrainingJob UID).
    pub job: String,
    /// When the job's current attempt started (unix seconds): a new start is a new attempt.
    pub started_at: u64,
    /// Steps the job trains in all.
    pub steps: u64,
    pub key: PlacementKey,
    pub steps_per_s: f64,
    /// When the reading was taken (unix seconds).
    pub at: u64,
}

/// What is known of one running job's progress.
#[derive(Debug, Clone, PartialEq)]
pub struct JobProgress {
    pub key: PlacementKey,
    pub started_at: u64,
    pub steps: u64,
    /// Steps done, integrated from the readings (before the first: the first reading's
    /// rate since the attempt started).
    pub steps_done: f64,
    /// Moving average of the job's own readings.
    pub steps_per_s: f64,
    pub samples: u32,
    pub last_at: u64,
}

impl JobProgress {
    /// Share of the work done, 0..=1.
    pub fn fraction_done(&self) -> f64 {
        if self.steps == 0 {
            1.0
        } else {
            (self.steps_done / self.steps as f64).clamp(0.0, 1.0)
        }
    }

    /// Steps left.
    pub fn remaining_steps(&self) -> f64 {
        (self.steps as f64 - self.steps_done).max(0.0)
    }
}

/// Running jobs' progress and the learned profiles they feed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Learner {
    pub profiles: LearnedProfiles,
    jobs: BTreeMap<String, JobProgress>,
}

impl Learner {
    pub fn new(config: LearnConfig) -> Self {
        Self { profiles: LearnedProfiles::new(config), jobs: BTreeMap::new() }
    }

    /// Takes in a reading; returns whether it was used. Garbage rates, readings older than
    /// the job's last one and jobs beyond [`LearnConfig::max_jobs`] change nothing.
    pub fn observe(&mut self, o: &Observation) -> bool {
        let Some(rate) = sane_rate(o.steps_per_s) else { return false };
        let config = self.profiles.config;
        let same_attempt = |p: &JobProgress| p.started_at == o.started_at && p.key == o.key && p.steps == o.steps;
        let new_job = match self.jobs.get(&o.job) {
            Some(p) if same_attempt(p) && o.at <= p.last_at => return false,
            Some(p) => !same_attempt(p),
            None if self.jobs.len() >= config.max_jobs => return false,
            None => true,
        };
        if new_job {
            // Assumed to have run at this rate since it started: a restarted service (or a
            // job that ran long before its first reading) does not count from zero.
            let elapsed = o.at.saturating_sub(o.started_at) as f64;
            self.jobs.insert(
                o.job.clone(),
                JobProgress {
                    key: o.key.clone(),
                    started_at: o.started_at,
                    steps: o.steps,
                    steps_done: (rate * elapsed).min(o.steps as f64),
                    steps_per_s: rate,
                    samples: 1,
                    last_at: o.at,
                },
            );
        } else if let Some(p) = self.jobs.get_mut(&o.job) {
            let dt = o.at.saturating_sub(p.last_at) as f64;
            p.steps_done = (p.steps_done + rate * dt).min(p.steps as f64);
            p.steps_per_s += config.weight() * (rate - p.steps_per_s);
            p.samples = p.samples.saturating_add(1);
            p.last_at = o.at;
        }
        self.profiles.observe(&o.key, rate, new_job, o.at);
        true
    }

    /// Forgets jobs for which `running` is false (ended, or no longer placed).
    pub fn retain(&mut self, running: impl Fn(&str) -> bool) {
        self.jobs.retain(|id, _| running(id));
    }

    /// A job's progress, when tracked.
    pub fn job(&self, id: &str) -> Option<&JobProgress> {
        self.jobs.get(id)
    }

    /// Jobs tracked.
    pub fn jobs(&self) -> usize {
        self.jobs.len()
    }

    /// Seconds a job's remaining steps take at its measured rate, once it has
    /// [`LearnConfig::min_samples`] readings; within 0..=[`crate::throughput::MAX_RUNTIME_S`].
    pub fn remaining_s(&self, id: &str) -> Option<f64> {
        let p = self.jobs.get(id)?;
        (p.samples >= self.profiles.config.min_samples.max(1))
            .then(|| crate::throughput::bounded_seconds(p.remaining_steps() / p.steps_per_s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(gpus: u32) -> PlacementKey {
        PlacementKey {
            tenant: "t".into(),
            model: "bert".into(),
            accelerator: "A100-80G".into(),
            gpus,
            nodes: 1,
            batch_size: None,
        }
    }

    fn obs(job: &str, rate: f64, at: u64) -> Observation {
        Observation { job: job.into(), started_at: 0, steps: 1000, key: key(8), steps_per_s: rate, at }
    }

    #[test]
    fn trusted_after_min_samples_and_averaged() {
        let mut p = LearnedProfiles::new(LearnConfig { weight: 0.5, min_samples: 2, ..LearnConfig::default() });
        assert!(p.observe(&key(8), 4.0, true, 10));
        assert_eq!(p.rate("t", "bert", "A100-80G", 8, 1, None), None, "one reading is not enough");
        assert!(p.observe(&key(8), 2.0, false, 20));
        let r = p.rate("t", "bert", "A100-80G", 8, 1, None).expect("trusted");
        assert_eq!((r.steps_per_s, r.samples, r.jobs, r.updated_at), (3.0, 2, 1, 20));
        assert!(p.observe(&key(8), 3.0, true, 30));
        assert_eq!(p.rate("t", "bert", "A100-80G", 8, 1, None).map(|r| r.jobs), Some(2));
        assert_eq!(p.rate("t", "bert", "A100-80G", 4, 1, None), None, "another size is another placement");
    }

    #[test]
    fn garbage_is_dropped() {
        let mut p = LearnedProfiles::new(LearnConfig { min_samples: 1, ..LearnConfig::default() });
        p.observe(&key(8), 2.0, true, 1);
        let before = p.clone();
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -1.0, 0.0, -0.0, MAX_STEPS_PER_S * 2.0] {
            assert!(!p.observe(&key(8), bad, false, 2), "{bad}");
            assert!(!p.observe(&key(4), bad, true, 2), "{bad}");
        }
        assert_eq!(p, before);
    }

    #[test]
    fn the_cap_evicts_the_stalest() {
        let mut p = LearnedProfiles::new(LearnConfig { max_entries: 2, ..LearnConfig::default() });
        p.observe(&key(1), 1.0, true, 5);
        p.observe(&key(2), 1.0, true, 1);
        p.observe(&key(4), 1.0, true, 9);
        assert_eq!(p.len(), 2);
        let sizes: Vec<u32> = p.entries().map(|(k, _)| k.gpus).collect();
        assert_eq!(sizes, vec![1, 4], "the entry updated at 1 made room");
    }

    #[test]
    fn a_job_integrates_its_progress() {
        let mut l = Learner::new(LearnConfig { min_samples: 2, ..LearnConfig::default() });
        assert!(l.observe(&obs("a", 2.0, 100)));
        assert_eq!(l.job("a").map(|p| p.steps_done), Some(200.0), "2 steps/s since it started at 0");
        assert_eq!(l.remaining_s("a"), None, "one reading");
        assert!(l.observe(&obs("a", 2.0, 150)));
        assert_eq!(l.job("a").map(|p| p.steps_done), Some(300.0));
        assert_eq!(l.remaining_s("a"), Some(350.0), "700 steps at 2/s");
        assert!(!l.observe(&obs("a", 2.0, 150)), "the same reading again");
        assert!(!l.observe(&obs("a", f64::NAN, 200)));
        // A new attempt (started again) starts over and counts as another job.
        let again = Observation { started_at: 190, ..obs("a", 1.0, 200) };
        assert!(l.observe(&again));
        assert_eq!(l.job("a").map(|p| (p.steps_done, p.samples)), Some((10.0, 1)));
        assert_eq!(l.profiles.rate("t", "bert", "A100-80G", 8, 1, None).map(|r| r.jobs), Some(2));
        // Done caps at the work; the estimate never goes below zero.
        assert!(l.observe(&Observation { at: 10_000, ..again.clone() }));
        assert_eq!(l.remaining_s("a"), Some(0.0));
        l.retain(|id| id != "a");
        assert_eq!((l.jobs(), l.remaining_s("a")), (0, None));
    }

    #[test]
    fn jobs_beyond_the_cap_are_not_tracked() {
        let mut l = Learner::new(LearnConfig { max_jobs: 1, ..LearnConfig::default() });
        assert!(l.observe(&obs("a", 1.0, 1)));
        assert!(!l.observe(&obs("b", 1.0, 1)));
        assert_eq!(l.jobs(), 1);
    }
}

//! Workloads: the jobs a simulation replays.

use computenet_core::job::{AcceleratorConstraint, ReplicaRequest};
use computenet_core::profiles::ProfileSet;
use computenet_core::{Job, Objective, Work};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;

/// Parameters of a workload following Gavel's published job distribution.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratedWorkload {
    pub jobs: u32,
    /// Mean arrivals per hour (Poisson).
    pub rate_per_hour: f64,
    pub seed: u64,
    /// Queues the jobs are spread over, uniformly.
    pub queues: Vec<String>,
    /// Share of CPU-only jobs (data preparation, evaluation), 0 for Gavel's pure mix.
    pub cpu_job_share: f64,
    /// Draw each job's objective uniformly instead of using Balanced.
    pub mixed_objectives: bool,
}

/// Gavel's job families (model and batch size), drawn uniformly.
pub const JOB_TYPES: [&str; 6] = ["ResNet-50", "ResNet-18", "Transformer", "LM", "Recommendation", "CycleGAN"];

impl GeneratedWorkload {
    /// Generates the jobs. Durations are on the reference V100: 60·10^U(1.5,3) s with
    /// probability 0.8, else 60·10^U(3,4) s; 1/2/4/8 devices with probabilities
    /// 0.70/0.10/0.15/0.05 (8-device jobs as gangs of 8-device replicas on one node).
    pub fn generate(&self) -> Vec<Job> {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let mut t = 0.0_f64;
        let mut jobs = Vec::with_capacity(self.jobs as usize);
        for i in 0..self.jobs {
            if i > 0 {
                let u: f64 = rng.gen_range(f64::EPSILON..1.0);
                t += -u.ln() * 3600.0 / self.rate_per_hour.max(1e-9);
            }
            let job_type = JOB_TYPES[rng.gen_range(0..JOB_TYPES.len())];
            let duration_s = if rng.gen_bool(0.8) {
                60.0 * 10f64.powf(rng.gen_range(1.5..3.0))
            } else {
                60.0 * 10f64.powf(rng.gen_range(3.0..4.0))
            };
            let p: f64 = rng.gen();
            let gpus = if p < 0.70 {
                1
            } else if p < 0.80 {
                2
            } else if p < 0.95 {
                4
            } else {
                8
            };
            let queue = self.queues[rng.gen_range(0..self.queues.len().max(1))].clone();
            let objective =
                if self.mixed_objectives { Objective::ALL[rng.gen_range(0..4)] } else { Objective::Balanced };
            let cpu_job = rng.gen_bool(self.cpu_job_share.clamp(0.0, 1.0));
            // A GPU job is one replica of `gpus` devices; a CPU job a gang of `gpus`
            // replicas of 8 cores doing the same work in core-hours (x 8).
            let (id, replicas, per_replica, hours, reference) = if cpu_job {
                let per_replica = ReplicaRequest {
                    cpu_millis: 8000,
                    memory_bytes: 32 << 30,
                    accelerators: 0,
                    extended: BTreeMap::new(),
                };
                (format!("cpu-{i:05}"), gpus, per_replica, duration_s * f64::from(gpus) * 8.0 / 3600.0, "CPU")
            } else {
                let per_replica = ReplicaRequest {
                    cpu_millis: 4000 * u64::from(gpus),
                    memory_bytes: (32u64 << 30) * u64::from(gpus),
                    accelerators: gpus,
                    extended: BTreeMap::new(),
                };
                (
                    format!("{}-{i:05}", job_type.to_ascii_lowercase()),
                    1,
                    per_replica,
                    duration_s * f64::from(gpus) / 3600.0,
                    "V100",
                )
            };
            jobs.push(Job {
                workload_kind: None,
                tenant: String::new(),
                id,
                queue,
                priority: 0,
                submitted_at: t.round() as u64,
                replicas,
                per_replica,
                accelerator: AcceleratorConstraint::default(),
                cluster_kinds: Vec::new(),
                sites: Vec::new(),
                data_set: None,
                work: Work::DeviceHours { hours, reference: reference.to_string() },
                objective,
                max_runtime_s: None,
                elastic: None,
                restart: None,
            });
        }
        jobs
    }
}

impl GeneratedWorkload {
    /// [`GeneratedWorkload::generate`] with Gavel's job types: each GPU job becomes a job
    /// type of the matrix drawn uniformly (seeded) among those measured on a V100 at its
    /// device count, training for the steps its V100 duration takes at the measured rate.
    /// Jobs whose device count has no V100 measurement keep their device-hours.
    pub fn generate_with_profiles(&self, profiles: &ProfileSet) -> Vec<Job> {
        let mut jobs = self.generate();
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ 0x6761_7665_6c00);
        let mut by_scale: BTreeMap<u32, Vec<(String, f64)>> = BTreeMap::new();
        for model in profiles.models() {
            for gpus in [1u32, 2, 4, 8] {
                if let Some((rate, true)) = profiles.steps_per_s(model, "V100", gpus, 1, None) {
                    by_scale.entry(gpus).or_default().push((model.to_string(), rate));
                }
            }
        }
        for job in &mut jobs {
            let gpus = job.per_replica.accelerators;
            let Work::DeviceHours { hours, .. } = &job.work else {
                continue;
            };
            let Some(types) = by_scale.get(&gpus).filter(|t| gpus > 0 && !t.is_empty()) else {
                continue;
            };
            let (model, rate) = &types[rng.gen_range(0..types.len())];
            let duration_s = hours * 3600.0 / f64::from(gpus);
            job.work = Work::ModelSteps {
                model: model.clone(),
                steps: (duration_s * rate).round().max(1.0) as u64,
                batch_size: None,
            };
        }
        jobs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generator_follows_the_published_mix() {
        let jobs = GeneratedWorkload {
            jobs: 4000,
            rate_per_hour: 60.0,
            seed: 3,
            queues: vec!["q".into()],
            cpu_job_share: 0.0,
            mixed_objectives: false,
        }
        .generate();
        let share = |g| jobs.iter().filter(|j| j.per_replica.accelerators == g).count() as f64 / jobs.len() as f64;
        assert!((share(1) - 0.70).abs() < 0.03, "{}", share(1));
        assert!((share(4) - 0.15).abs() < 0.03, "{}", share(4));
        // Mean inter-arrival of a 60/h Poisson process is 60 s.
        let span = jobs.last().map_or(0, |j| j.submitted_at) as f64;
        assert!((span / 3999.0 - 60.0).abs() < 5.0, "{}", span / 3999.0);
        let again = GeneratedWorkload {
            jobs: 4000,
            rate_per_hour: 60.0,
            seed: 3,
            queues: vec!["q".into()],
            cpu_job_share: 0.0,
            mixed_objectives: false,
        }
        .generate();
        assert_eq!(jobs, again, "seeded");
    }

    #[test]
    fn gavel_types_replace_device_hours_where_measured() {
        use computenet_core::profiles::ProfilePoint;
        let mut p = ProfileSet::default();
        p.insert(
            "A (batch size 1)",
            "V100",
            ProfilePoint { gpus: 1, nodes: Some(1), local_batch: None, steps_per_s: 2.0 },
        );
        let w = GeneratedWorkload {
            jobs: 200,
            rate_per_hour: 60.0,
            seed: 1,
            queues: vec!["q".into()],
            cpu_job_share: 0.0,
            mixed_objectives: false,
        };
        let plain = w.generate();
        let jobs = w.generate_with_profiles(&p);
        for (a, b) in plain.iter().zip(&jobs) {
            match (&a.work, &b.work) {
                (Work::DeviceHours { hours, .. }, Work::ModelSteps { steps, .. }) => {
                    assert_eq!(a.per_replica.accelerators, 1);
                    assert_eq!(*steps, (hours * 3600.0 * 2.0).round() as u64);
                }
                (x, y) => {
                    assert_ne!(a.per_replica.accelerators, 1, "1-GPU jobs are converted");
                    assert_eq!(x, y);
                }
            }
        }
    }
}

//! Synthetic pools, queues and jobs: small builders for tests and seeded generators for
//! benchmarks and property tests. Deterministic (a splitmix64 generator, no IO).

use crate::accelerator::Catalogue;
use crate::job::{AcceleratorConstraint, Job, Objective, ReplicaRequest, Work};
use crate::pool::{Cluster, ClusterEfficiency, ClusterKind, Node, NodeCapacity, Pool};
use crate::queue::{Queue, Quota, ResourceName};
use std::collections::BTreeMap;

/// A tiny deterministic random source (splitmix64).
#[derive(Debug, Clone)]
pub struct SplitMix(u64);

impl SplitMix {
    pub fn new(seed: u64) -> Self {
        SplitMix(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A cluster of `nodes` identical nodes with `per_node` devices of `accelerator`
/// (CPU-only when `None`), 64 cores and 512 GiB each.
pub fn cluster(
    name: &str,
    kind: ClusterKind,
    site: &str,
    nodes: u32,
    accelerator: Option<&str>,
    per_node: u32,
) -> Cluster {
    Cluster {
        workload_kinds: Vec::new(),
        tenants: None,
        name: name.to_string(),
        kind,
        site: site.to_string(),
        ready: true,
        cordoned: false,
        efficiency: ClusterEfficiency::default(),
        data_sets: Vec::new(),
        nodes: (0..nodes)
            .map(|i| Node {
                name: format!("{name}-n{i}"),
                accelerator: accelerator.map(str::to_string),
                allocatable: NodeCapacity {
                    cpu_millis: 64_000,
                    memory_bytes: 512 << 30,
                    accelerators: if accelerator.is_some() { per_node } else { 0 },
                    extended: BTreeMap::new(),
                },
                allocated: NodeCapacity::default(),
                topology_domain: String::new(),
                unschedulable: false,
            })
            .collect(),
    }
}

/// A pool of the given clusters with the built-in catalogue.
pub fn pool(clusters: Vec<Cluster>) -> Pool {
    Pool { clusters, catalogue: Catalogue::built_in(), data_sets: BTreeMap::new(), wan_gbps: 10.0 }
}

/// A gang of `replicas` x `gpus` devices (4 cores, 32 GiB each) worth `hours`
/// device-hours on a V100; CPU-only when `gpus` is 0.
pub fn job(id: &str, queue: &str, replicas: u32, gpus: u32, hours: f64) -> Job {
    Job {
        workload_kind: None,
        tenant: String::new(),
        id: id.to_string(),
        queue: queue.to_string(),
        priority: 0,
        submitted_at: 0,
        replicas,
        per_replica: ReplicaRequest {
            cpu_millis: 4000,
            memory_bytes: 32 << 30,
            accelerators: gpus,
            extended: BTreeMap::new(),
        },
        accelerator: AcceleratorConstraint::default(),
        cluster_kinds: Vec::new(),
        sites: Vec::new(),
        data_set: None,
        work: Work::DeviceHours { hours, reference: "V100".to_string() },
        objective: Objective::Balanced,
        max_runtime_s: None,
        elastic: None,
        restart: None,
    }
}

/// Sizes of a synthetic scheduling problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProblemSize {
    pub clusters: u32,
    pub nodes: u32,
    pub pending_jobs: u32,
    pub queues: u32,
    pub cohorts: u32,
}

impl ProblemSize {
    /// 10 clusters, 1,000 nodes, 1,000 pending jobs.
    pub const S: ProblemSize = ProblemSize { clusters: 10, nodes: 1_000, pending_jobs: 1_000, queues: 10, cohorts: 2 };
    /// 50 clusters, 10,000 nodes, 10,000 pending jobs.
    pub const M: ProblemSize =
        ProblemSize { clusters: 50, nodes: 10_000, pending_jobs: 10_000, queues: 50, cohorts: 5 };
    /// 100 clusters, 50,000 nodes of 4 types, 100,000 pending jobs in 200 queues and 20 cohorts.
    pub const L: ProblemSize =
        ProblemSize { clusters: 100, nodes: 50_000, pending_jobs: 100_000, queues: 200, cohorts: 20 };
}

const BENCH_TYPES: [&str; 4] = ["A100-80G", "H800", "V100", "Ascend910B"];

/// A seeded problem: a pool of 8-device nodes of four types (two per AI/HPC cluster,
/// every fifth cluster CPU-only), queues with GPU quotas in cohorts, and Gavel-like gangs.
pub fn problem(size: ProblemSize, seed: u64) -> (Pool, Vec<Queue>, Vec<Job>) {
    let mut rng = SplitMix::new(seed);
    let per_cluster = size.nodes / size.clusters.max(1);
    let mut clusters = Vec::new();
    for c in 0..size.clusters {
        let name = format!("c{c:03}");
        let site = format!("site{}", c % 7);
        let mut cl = if c % 5 == 4 {
            cluster(&name, ClusterKind::General, &site, per_cluster, None, 0)
        } else {
            let kind = if c % 5 == 3 { ClusterKind::HPC } else { ClusterKind::AI };
            let mut cl = cluster(&name, kind, &site, per_cluster, Some(BENCH_TYPES[(c % 4) as usize]), 8);
            let second = BENCH_TYPES[((c + 1) % 4) as usize];
            for n in cl.nodes.iter_mut().skip(per_cluster as usize / 2) {
                n.accelerator = Some(second.to_string());
            }
            cl
        };
        cl.efficiency = ClusterEfficiency {
            pue: 1.1 + 0.05 * f64::from(c % 8),
            energy_price_per_kwh: 0.4 + 0.1 * f64::from(c % 6),
            carbon_g_per_kwh: Some(300.0 + 40.0 * f64::from(c % 9)),
            ..ClusterEfficiency::default()
        };
        clusters.push(cl);
    }
    let total_gpus: u64 = clusters.iter().flat_map(|c| &c.nodes).map(|n| u64::from(n.allocatable.accelerators)).sum();
    let queues: Vec<Queue> = (0..size.queues)
        .map(|q| Queue {
            cohort: Some(format!("cohort{}", q % size.cohorts.max(1))),
            weight: 1.0 + f64::from(q % 3),
            quotas: vec![Quota {
                resource: ResourceName::Accelerators,
                accelerator: None,
                nominal: total_gpus / u64::from(size.queues.max(1)),
                borrowing_limit: None,
                lending_limit: None,
            }],
            ..Queue::unlimited(&format!("q{q:03}"))
        })
        .collect();
    let jobs = (0..size.pending_jobs)
        .map(|i| {
            let r = rng.unit();
            let (replicas, gpus) = if r < 0.70 {
                (1, 1)
            } else if r < 0.80 {
                (1, 2)
            } else if r < 0.95 {
                (1, 4)
            } else {
                (1 + rng.below(4) as u32, 8)
            };
            let cpu_job = rng.below(20) == 0;
            let mut j = job(
                &format!("j{i:06}"),
                &format!("q{:03}", rng.below(u64::from(size.queues))),
                if cpu_job { 1 + rng.below(4) as u32 } else { replicas },
                if cpu_job { 0 } else { gpus },
                1.0 + rng.unit() * 100.0,
            );
            j.priority = (rng.below(3) * 10) as i32;
            j.submitted_at = u64::from(i);
            j.objective = crate::job::Objective::ALL[rng.below(4) as usize];
            if rng.below(4) == 0 {
                j.accelerator.types = vec![BENCH_TYPES[rng.below(4) as usize].to_string()];
            }
            j
        })
        .collect();
    (pool(clusters), queues, jobs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Scheduler, Snapshot};

    #[test]
    fn small_problem_is_mostly_admitted() {
        let (pool, queues, jobs) =
            problem(ProblemSize { clusters: 5, nodes: 100, pending_jobs: 200, queues: 4, cohorts: 2 }, 1);
        let out = Scheduler::default().cycle(&Snapshot {
            now: 0,
            pool: &pool,
            queues: &queues,
            cohorts: &[],
            pending: &jobs,
            running: &[],
        });
        assert_eq!(out.decisions.len(), 200);
        assert!(out.admissions().count() > 150, "capacity is plentiful: {}", out.admissions().count());
    }
}

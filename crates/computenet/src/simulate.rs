//! `computenet simulate`: the seed pool and a generated workload unless told otherwise.

use anyhow::{bail, Context};
use computenet_core::pool::PoolDescription;
use computenet_core::{Queue, ThroughputModel};
use computenet_sim::report::{table, Summary};
use computenet_sim::workload::GeneratedWorkload;
use computenet_sim::{Policy, Simulation};
use std::path::PathBuf;

/// The pool derived from the seed document (illustrative sizes).
const SEED_POOL: &str = include_str!("../../../seeds/pools/city.yaml");

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Pool description (YAML); default: the seed-derived city pool.
    #[arg(long)]
    pool: Option<PathBuf>,
    /// Jobs to generate (Gavel's published job mix, Poisson arrivals).
    #[arg(long, default_value_t = 1500)]
    jobs: u32,
    /// Mean arrivals per hour.
    #[arg(long, default_value_t = 300.0)]
    rate: f64,
    /// Share of CPU-only jobs.
    #[arg(long, default_value_t = 0.1)]
    cpu_share: f64,
    /// Give jobs random objectives (Fastest, Cheapest, Greenest, Balanced) instead of Balanced.
    #[arg(long)]
    mixed_objectives: bool,
    /// Random seed of the workload.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Policy to run (repeatable): fifo, least-loaded, agnostic, computenet. Default: all.
    #[arg(long = "policy")]
    policies: Vec<String>,
    /// Also write the summaries as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let (pool_text, pool_name) = match &args.pool {
        Some(path) => (
            std::fs::read_to_string(path).with_context(|| format!("reading pool file {}", path.display()))?,
            path.display().to_string(),
        ),
        None => (SEED_POOL.to_string(), "seed city pool (illustrative)".to_string()),
    };
    let description: PoolDescription =
        serde_yaml::from_str(&pool_text).with_context(|| format!("parsing pool {pool_name}"))?;
    let pool = description.build().with_context(|| format!("checking pool {pool_name}"))?;
    let policies: Vec<Policy> = if args.policies.is_empty() {
        Policy::ALL.to_vec()
    } else {
        args.policies
            .iter()
            .map(|n| {
                Policy::from_name(n)
                    .with_context(|| format!("unknown policy {n:?} (fifo, least-loaded, agnostic, computenet)"))
            })
            .collect::<anyhow::Result<_>>()?
    };
    if args.rate.is_nan() || args.rate <= 0.0 {
        bail!("--rate must be positive");
    }
    let queues = vec![Queue::unlimited("research"), Queue::unlimited("industry")];
    let workload = GeneratedWorkload {
        jobs: args.jobs,
        rate_per_hour: args.rate,
        seed: args.seed,
        queues: queues.iter().map(|q| q.name.clone()).collect(),
        cpu_job_share: args.cpu_share,
        mixed_objectives: args.mixed_objectives,
    };
    let jobs = workload.generate();
    let gpus: u64 = pool.clusters.iter().flat_map(|c| &c.nodes).map(|n| u64::from(n.allocatable.accelerators)).sum();
    println!(
        "pool: {pool_name}: {} clusters, {} nodes, {gpus} accelerators",
        pool.clusters.len(),
        pool.clusters.iter().map(|c| c.nodes.len()).sum::<usize>()
    );
    println!(
        "workload: {} jobs generated with Gavel's job mix (seed {}, {:.0} jobs/h, {:.0} % CPU-only, {} objectives)\n",
        jobs.len(),
        args.seed,
        args.rate,
        args.cpu_share * 100.0,
        if args.mixed_objectives { "mixed" } else { "Balanced" }
    );
    let mut summaries = Vec::new();
    for policy in policies {
        let result = Simulation {
            pool: pool.clone(),
            queues: queues.clone(),
            scheduler: policy.scheduler(ThroughputModel::default()),
            jobs: jobs.clone(),
        }
        .run()
        .with_context(|| format!("simulating {}", policy.name()))?;
        summaries.push(Summary::of(policy.name(), &result));
    }
    print!("{}", table(&summaries));
    if let Some(path) = &args.json {
        let json = serde_json::json!({ "pool": pool_name, "policies": summaries });
        std::fs::write(path, serde_json::to_string_pretty(&json)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

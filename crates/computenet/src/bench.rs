//! `computenet bench`: one full cycle on a synthetic pool, with peak memory.

use anyhow::bail;
use computenet_core::synth::{problem, ProblemSize};
use computenet_core::{Scheduler, Snapshot};
use std::time::Instant;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Problem size: S, M or L.
    #[arg(long, default_value = "L")]
    size: String,
    /// Cycles to time (the best and the mean are printed).
    #[arg(long, default_value_t = 3)]
    repeat: u32,
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Instead of one cycle: replay this Philly-format trace, `.csv` or `.csv.gz` (e.g.
    /// data/sia/traces/philly.csv.gz), through the simulator and time it.
    #[arg(long)]
    replay: Option<std::path::PathBuf>,
    /// Pool of the replay (default: the 2,000-GPU benchmark pool).
    #[arg(long)]
    pool: Option<std::path::PathBuf>,
    /// Policy of the replay.
    #[arg(long, default_value = "computenet")]
    policy: String,
}

/// The 2,000-GPU pool of the replay benchmark.
const BENCH_POOL: &str = include_str!("../../../seeds/pools/bench-2000.yaml");

fn replay(args: &Args, trace: &std::path::Path) -> anyhow::Result<()> {
    use anyhow::Context;
    use computenet_core::pool::PoolDescription;
    use computenet_core::{Queue, ThroughputModel};
    use computenet_sim::{traces, Policy, Simulation, Summary};
    let pool_text = match &args.pool {
        Some(p) => std::fs::read_to_string(p).with_context(|| format!("reading pool file {}", p.display()))?,
        None => BENCH_POOL.to_string(),
    };
    let pool = serde_yaml::from_str::<PoolDescription>(&pool_text).context("parsing pool")?.build()?;
    let policy = Policy::from_name(&args.policy)
        .with_context(|| format!("unknown policy {:?} ({})", args.policy, Policy::names()))?;
    let started = Instant::now();
    let rows = traces::parse_philly(&traces::read(trace)?, &trace.display().to_string())?;
    let queues = traces::philly_queues(&rows).iter().map(|q| Queue::unlimited(q)).collect();
    let mut jobs = traces::philly_jobs(&rows, "V100");
    policy.prepare(&mut jobs);
    let loaded = started.elapsed().as_secs_f64();
    let gpus: u64 = pool.clusters.iter().flat_map(|c| &c.nodes).map(|n| u64::from(n.allocatable.accelerators)).sum();
    let n = jobs.len();
    let t = Instant::now();
    let result = Simulation { pool, queues, scheduler: policy.scheduler(ThroughputModel::default()), jobs }.run()?;
    let simulated = t.elapsed().as_secs_f64();
    let s = Summary::of(policy.name(), &result);
    println!("replay of {} ({n} jobs) on {gpus} GPUs, policy {}", trace.display(), policy.name());
    println!(
        "loading: {loaded:.2} s; simulation: {simulated:.2} s ({} cycles); total {:.2} s",
        s.cycles,
        loaded + simulated
    );
    println!("completed {} of {}; avg JCT {:.2} h", s.completed, s.jobs, s.avg_jct_s / 3600.0);
    match peak_rss_kib() {
        Some(kib) => println!("peak resident memory: {:.1} MiB", kib as f64 / 1024.0),
        None => println!("peak resident memory: unknown (no /proc)"),
    }
    Ok(())
}

/// Peak resident memory of this process in KiB, from /proc (Linux only).
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if let Some(trace) = args.replay.clone() {
        return replay(&args, &trace);
    }
    let size = match args.size.to_ascii_uppercase().as_str() {
        "S" => ProblemSize::S,
        "M" => ProblemSize::M,
        "L" => ProblemSize::L,
        other => bail!("unknown size {other:?}: use S, M or L"),
    };
    let started = Instant::now();
    let (pool, queues, jobs) = problem(size, args.seed);
    println!(
        "size {}: {} clusters, {} nodes, {} pending jobs, {} queues (generated in {:.2} s)",
        args.size,
        pool.clusters.len(),
        pool.clusters.iter().map(|c| c.nodes.len()).sum::<usize>(),
        jobs.len(),
        queues.len(),
        started.elapsed().as_secs_f64()
    );
    let scheduler = Scheduler::default();
    let mut times = Vec::new();
    let mut admitted = 0;
    for _ in 0..args.repeat.max(1) {
        let t = Instant::now();
        let out = scheduler.cycle(&Snapshot { now: 0, pool: &pool, queues: &queues, pending: &jobs, running: &[] });
        times.push(t.elapsed().as_secs_f64());
        admitted = out.admissions().count();
    }
    let best = times.iter().copied().fold(f64::INFINITY, f64::min);
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    println!("cycle: best {best:.3} s, mean {mean:.3} s over {} runs", times.len());
    println!("admitted {admitted} of {} jobs: {:.0} admissions/s (best run)", jobs.len(), admitted as f64 / best);
    match peak_rss_kib() {
        Some(kib) => println!("peak resident memory: {:.1} MiB", kib as f64 / 1024.0),
        None => println!("peak resident memory: unknown (no /proc)"),
    }
    Ok(())
}

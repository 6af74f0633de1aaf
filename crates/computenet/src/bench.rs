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
    /// Instead of one cycle: time the re-optimisation round over the problem with this
    /// many of its jobs running (half of them restartable, a quarter elastic) and the rest
    /// waiting.
    #[arg(long)]
    round_running: Option<usize>,
}

/// Times the re-optimisation round: the problem's first admissions run (every second job
/// restartable with a 120 s restart cost, every fourth elastic from 1 to twice its size,
/// all half done); one in ten of them has just ended, so that `running` still run and
/// there is room to move into; the rest of the jobs wait.
fn round(args: &Args, size: ProblemSize, running: usize) -> anyhow::Result<()> {
    use computenet_core::adapt::remaining_work;
    use computenet_core::{AdaptConfig, Adaptable, ElasticRange, Restart, RunningJob};
    let started = Instant::now();
    let (mut pool, queues, mut jobs) = problem(size, args.seed);
    for (i, j) in jobs.iter_mut().enumerate() {
        if i % 2 == 0 {
            j.restart = Some(Restart { grace_period_s: 30, restart_cost_s: 120 });
            if i % 4 == 0 {
                j.elastic = Some(ElasticRange { min_replicas: 1, max_replicas: j.replicas * 2 });
            }
        }
    }
    let scheduler = Scheduler::default();
    let out =
        scheduler.cycle(&Snapshot { now: 0, pool: &pool, queues: &queues, cohorts: &[], pending: &jobs, running: &[] });
    let by_id: std::collections::HashMap<&str, &computenet_core::Job> =
        jobs.iter().map(|j| (j.id.as_str(), j)).collect();
    let mut placed: Vec<RunningJob> = Vec::new();
    let admitted_count = running + running / 9;
    for (id, p) in out.admissions().take(admitted_count) {
        let j = by_id[id];
        pool.allocate(p.cluster_index, &p.slots, &j.per_replica)?;
        placed.push(RunningJob::started(j, p, 0, p.estimate.runtime_s.ceil() as u64));
    }
    // A tenth end: room to move and grow into.
    let mut k = 0;
    placed.retain(|r| {
        k += 1;
        let keep = k % 10 != 0;
        if !keep {
            pool.release(r.cluster, &r.slots, &r.per_replica);
        }
        keep
    });
    let running_ids: std::collections::HashSet<&str> = placed.iter().map(|r| r.id.as_str()).collect();
    let admitted: std::collections::HashSet<&str> = out.admissions().take(admitted_count).map(|(id, _)| id).collect();
    let waiting: Vec<computenet_core::Job> =
        jobs.iter().filter(|j| !admitted.contains(j.id.as_str())).cloned().collect();
    let adaptable: Vec<Adaptable> = placed
        .iter()
        .enumerate()
        .filter_map(|(k, r)| {
            let mut job = by_id[r.id.as_str()].clone();
            job.restart?;
            job.work = remaining_work(&job.work, 0.5);
            Some(Adaptable { running: k, job, recent_moves: 0 })
        })
        .collect();
    println!(
        "size {}: {} clusters, {} nodes; {} running ({} restartable, {} elastic), {} waiting (set up in {:.2} s)",
        args.size,
        pool.clusters.len(),
        pool.clusters.iter().map(|c| c.nodes.len()).sum::<usize>(),
        running_ids.len(),
        adaptable.len(),
        adaptable.iter().filter(|a| a.job.elastic.is_some()).count(),
        waiting.len(),
        started.elapsed().as_secs_f64()
    );
    let config = AdaptConfig::default();
    let snapshot =
        Snapshot { now: 600, pool: &pool, queues: &queues, cohorts: &[], pending: &waiting, running: &placed };
    let mut times = Vec::new();
    let mut adjustments = 0;
    for _ in 0..args.repeat.max(1) {
        let t = Instant::now();
        adjustments = scheduler.adapt(&snapshot, &adaptable, &config).len();
        times.push(t.elapsed().as_secs_f64());
    }
    let best = times.iter().copied().fold(f64::INFINITY, f64::min);
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    println!("round: best {best:.3} s, mean {mean:.3} s over {} runs; {adjustments} adjustments", times.len());
    match peak_rss_kib() {
        Some(kib) => println!("peak resident memory: {:.1} MiB", kib as f64 / 1024.0),
        None => println!("peak resident memory: unknown (no /proc)"),
    }
    Ok(())
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
    if let Some(running) = args.round_running {
        return round(&args, size, running);
    }
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
        let out = scheduler.cycle(&Snapshot {
            now: 0,
            pool: &pool,
            queues: &queues,
            cohorts: &[],
            pending: &jobs,
            running: &[],
        });
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

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
}

/// Peak resident memory of this process in KiB, from /proc (Linux only).
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

pub fn run(args: Args) -> anyhow::Result<()> {
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

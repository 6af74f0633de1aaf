//! `computenet`: one binary, one subcommand per job. Wiring only; the logic lives in the
//! library crates.
#![forbid(unsafe_code)]

mod bench;
mod crdgen;
mod estimate;
mod serve;
mod simulate;

use clap::{Parser, Subcommand};

/// mimalloc, not the system allocator: the service allocates and frees many small objects
/// per watch event and per pass, and with glibc's allocator that was about a seventh of its
/// CPU in a 2,000-job burst; the core's cycle allocates per job too.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// computenet schedules training jobs across general-purpose, AI and supercomputing
/// clusters as one pool.
#[derive(Debug, Parser)]
#[command(name = "computenet", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Replay a workload over a simulated pool and compare placement policies.
    Simulate(simulate::Args),
    /// Time one full scheduling cycle on a synthetic pool (sizes S, M, L).
    Bench(bench::Args),
    /// Write the CustomResourceDefinitions generated from the API types.
    Crdgen(crdgen::Args),
    /// Run the scheduler against a hub cluster.
    Serve(Box<serve::Args>),
    /// Estimate one job's runtime, energy and cost on one accelerator type with the
    /// simulator's throughput model and the given profiles.
    Estimate(estimate::Args),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Simulate(args) => simulate::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Crdgen(args) => crdgen::run(args),
        Command::Serve(args) => serve::run(*args),
        Command::Estimate(args) => estimate::run(args),
    }
}

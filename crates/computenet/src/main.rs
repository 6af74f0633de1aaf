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

/// The environment variable mimalloc reads how long freed memory stays with the process
/// from, in milliseconds, before it goes back to the OS.
pub const PURGE_DELAY_VAR: &str = "MIMALLOC_PURGE_DELAY";

/// That delay unless the variable is set. With mimalloc's default (1 s) memory a cycle
/// freed often went back to the OS while the next cycle ran, which then faulted it in
/// again (zeroing pages was about a fifth of a full cycle at size L). Kept 10 s, the next
/// cycle reuses it: at L, 5 cycles took about 470 page faults instead of 4,400 to 9,300,
/// and the mean of 5 was 0.92 s instead of 0.99 s (medians of 17 and 12 runs on 2 noisy
/// cores), for a peak of 204 MiB instead of 172. A process at rest still gives it back.
const PURGE_DELAY_MS: &str = "10000";

/// mimalloc reads its options once, before `main` runs: to apply [`PURGE_DELAY_MS`], the
/// process executes itself again (same PID, arguments and environment) with the variable
/// set. When that cannot be done it goes on with the allocator's defaults.
#[cfg(unix)]
fn exec_with_allocator_settings() {
    use std::os::unix::process::CommandExt;
    if std::env::var_os(PURGE_DELAY_VAR).is_some() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else { return };
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_else(|| exe.clone().into_os_string());
    let err = std::process::Command::new(&exe).arg0(arg0).args(args).env(PURGE_DELAY_VAR, PURGE_DELAY_MS).exec();
    eprintln!(
        "computenet: not re-executed with {PURGE_DELAY_VAR}={PURGE_DELAY_MS} ({err}); the allocator's defaults apply"
    );
}

#[cfg(not(unix))]
fn exec_with_allocator_settings() {}

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

impl Command {
    /// Whether the subcommand runs scheduling cycles, where [`PURGE_DELAY_MS`] pays. The
    /// others (and `--help`, `--version`, a bad argument) are not executed twice for it.
    fn runs_cycles(&self) -> bool {
        match self {
            Command::Simulate(_) | Command::Bench(_) | Command::Serve(_) => true,
            Command::Crdgen(_) | Command::Estimate(_) => false,
        }
    }
}

fn main() -> anyhow::Result<()> {
    let command = Cli::parse().command;
    if command.runs_cycles() {
        exec_with_allocator_settings();
    }
    match command {
        Command::Simulate(args) => simulate::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Crdgen(args) => crdgen::run(args),
        Command::Serve(args) => serve::run(*args),
        Command::Estimate(args) => estimate::run(args),
    }
}

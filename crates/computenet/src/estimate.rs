//! `computenet estimate`: one job's runtime, energy and cost on one accelerator type, by
//! the same throughput model the simulator and the service use; and the profile and
//! cycle flags `serve` shares.

use anyhow::Context;
use computenet_api::{convert, profiles, TrainingJob};
use computenet_core::profiles::ProfileSet;
use computenet_core::{CycleConfig, ThroughputModel};
use std::path::PathBuf;

/// Throughput profiles and cycle settings.
#[derive(Debug, Clone, clap::Args)]
pub struct ProfileArgs {
    /// Throughput profile files or folders (repeatable): Gavel's matrix (*.gavel.json or
    /// simulation_throughputs.json), Sia tables (<model>/placements-<gpu>.csv) or
    /// computenet's own format (*.yaml). Folders are searched for files of these formats.
    #[arg(long = "profiles", value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Waiting-aware placement: a job may wait for a type at least this many times faster
    /// (<= 1 turns it off).
    #[arg(long, default_value_t = CycleConfig::default().wait_speedup, value_name = "X")]
    pub wait_speedup: f64,
    /// Candidates kept in each explanation.
    #[arg(long, default_value_t = CycleConfig::default().explain_top_k, value_name = "N")]
    pub explain_top_k: usize,
    /// Admit nothing behind a blocked gang (plain FIFO instead of EASY backfill).
    #[arg(long)]
    pub no_backfill: bool,
    /// Ignore the queues' preemption policies.
    #[arg(long)]
    pub no_preemption: bool,
}

impl ProfileArgs {
    /// The profiles of the given files.
    pub fn profiles(&self) -> anyhow::Result<ProfileSet> {
        let documents = profiles::read_paths(&self.paths)?;
        Ok(profiles::parse_all(documents.iter().map(|(n, t)| (n.as_str(), t.as_str())))?)
    }

    /// The cycle's settings.
    pub fn cycle(&self) -> CycleConfig {
        CycleConfig {
            wait_speedup: self.wait_speedup,
            explain_top_k: self.explain_top_k.max(1),
            backfill: !self.no_backfill,
            preemption: !self.no_preemption,
            ..CycleConfig::default()
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The TrainingJob manifest (YAML); `-` reads standard input.
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    file: PathBuf,
    /// Accelerator type by catalogue name (A100-80G, H800, ...); omit for a CPU-only job.
    #[arg(long)]
    accelerator: Option<String>,
    /// Nodes the gang spans; default: one per replica.
    #[arg(long)]
    nodes: Option<u32>,
    #[command(flatten)]
    profiles: ProfileArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let text = if args.file.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).context("reading standard input")?
    } else {
        std::fs::read_to_string(&args.file).with_context(|| format!("reading {}", args.file.display()))?
    };
    let tj: TrainingJob =
        serde_yaml::from_str(&text).with_context(|| format!("{}: not a TrainingJob", args.file.display()))?;
    let job = convert::job("estimate", &tj.spec, 0).with_context(|| format!("{}", args.file.display()))?;
    let model = ThroughputModel::with_profiles(args.profiles.profiles()?);
    let catalogue = computenet_core::Catalogue::built_in();
    if let Some(a) = &args.accelerator {
        anyhow::ensure!(catalogue.get(a).is_some(), "unknown accelerator type {a:?}");
    }
    let nodes = args.nodes.unwrap_or(job.replicas).max(1);
    let (runtime_s, source) = model.runtime_s(&job, &catalogue, args.accelerator.as_deref(), nodes);
    let power_w = ThroughputModel::power_w(&job, &catalogue, args.accelerator.as_deref());
    let source = convert::estimate_source(source);
    let runtime = convert::round3(runtime_s);
    if args.json {
        let out = serde_json::json!({
            "accelerator": args.accelerator, "nodes": nodes, "runtimeSeconds": runtime,
            "estimateSource": source, "devicePowerWatts": convert::round3(power_w),
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!("accelerator      {}", args.accelerator.as_deref().unwrap_or("CPU"));
        println!("nodes            {nodes}");
        println!("runtime seconds  {runtime}");
        println!("estimate source  {source}");
        println!("device power W   {}", convert::round3(power_w));
    }
    Ok(())
}

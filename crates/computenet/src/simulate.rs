//! `computenet simulate`: replay a workload over a simulated pool, once per policy.

use anyhow::{bail, Context};
use computenet_core::pool::PoolDescription;
use computenet_core::{AdaptConfig, Job, Pool, Queue, ThroughputModel};
use computenet_sim::engine::Adaptation;
use computenet_sim::policy::make_restartable;
use computenet_sim::report::{table, Summary};
use computenet_sim::traces;
use computenet_sim::workload::GeneratedWorkload;
use computenet_sim::{plots, Policy, RunOptions, Simulation, SimulationResult};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

/// The pool derived from the seed document (illustrative sizes).
const SEED_POOL: &str = include_str!("../../../seeds/pools/city.yaml");

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Sia workloads: name,time,application,num_replicas,batch_size.
    Sia,
    /// The Philly-derived trace: timestamp,duration,num_gpus,gpu_time,cluster.
    Philly,
    /// Alibaba GPU 2023 pods (openb_pod_list_*.csv).
    #[value(name = "alibaba2023")]
    Alibaba2023,
    /// Gavel's published job distribution with Poisson arrivals.
    Generated,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Pool description (YAML); default: the seed-derived city pool.
    #[arg(long)]
    pool: Option<PathBuf>,
    /// Workload file or folder of workload files, `.csv` or `.csv.gz` (default per format
    /// under the repository's data/ folder).
    #[arg(long)]
    workload: Option<PathBuf>,
    /// Workload format; default: from the workload file's header, or `generated`.
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// Throughput profiles: a folder holding `gavel/simulation_throughputs.json` and/or
    /// `sia/traces/` (default: the repository's data/ folder), or a Sia `traces` folder
    /// itself.
    #[arg(long)]
    profiles: Option<PathBuf>,
    /// Policy to run (repeatable): fifo, least-loaded, agnostic, computenet,
    /// computenet-adaptive, computenet-{fastest,cheapest,greenest,balanced}. Default: all
    /// but computenet-balanced.
    #[arg(long = "policy")]
    policies: Vec<String>,
    /// Random seed (generated workloads).
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Write the summaries as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write SVG plots to this folder: a JCT CDF per workload, and the utilisation over
    /// time per cluster for each policy on the first workload.
    #[arg(long)]
    plots: Option<PathBuf>,
    /// Generated workloads: jobs to generate.
    #[arg(long, default_value_t = 1500)]
    jobs: u32,
    /// Generated workloads: mean arrivals per hour.
    #[arg(long, default_value_t = 300.0)]
    rate: f64,
    /// Generated workloads: share of CPU-only jobs.
    #[arg(long, default_value_t = 0.1)]
    cpu_share: f64,
    /// Generated workloads: random objectives instead of Balanced.
    #[arg(long)]
    mixed_objectives: bool,
    /// Philly and Alibaba traces: the device type their measured durations refer to.
    #[arg(long, default_value = "V100")]
    reference: String,
    /// computenet policies: wait for an accelerator type at least this many times faster
    /// when the objective scores it better (<= 1: never wait).
    #[arg(long, default_value_t = 1.5)]
    wait_speedup: f64,
    /// Pending jobs one scheduling cycle sees, shared out over the queues, at least 16
    /// per queue (0: all).
    #[arg(long, default_value_t = 256)]
    window: usize,
    /// computenet-adaptive: share of jobs that are restartable (checkpoint and resume),
    /// picked by a hash of the job id; the rest are rigid.
    #[arg(long, default_value_t = 1.0, value_parser = share)]
    restartable_share: f64,
    /// computenet-adaptive: share of the restartable jobs that are also elastic, from one
    /// replica up to their size (0: rigid sizes, jobs only move).
    #[arg(long, default_value_t = 1.0, value_parser = share)]
    elastic_share: f64,
    /// computenet-adaptive: seconds between re-optimisation rounds.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    adapt_interval_s: u64,
    /// computenet-adaptive: restart cost of jobs whose model has none of Sia's figures
    /// (cifar10 50 s, deepspeech2 25 s, bert 120 s, yolov3 80 s, imagenet 250 s).
    #[arg(long, default_value_t = 60)]
    restart_cost_s: u64,
    /// computenet-adaptive: a move must save more than this many times its restart cost.
    #[arg(long, default_value_t = AdaptConfig::default().gain_factor)]
    adapt_gain_factor: f64,
}

fn share(text: &str) -> Result<f64, String> {
    let v: f64 = text.parse().map_err(|_| format!("{text:?} is not a number"))?;
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{v} is not a share between 0 and 1"))
    }
}

/// One workload to replay.
struct Workload {
    name: String,
    jobs: Vec<Job>,
    queues: Vec<Queue>,
}

/// The repository's `data/` folder: the first one found from the working directory
/// upwards (so that a checkout works from any of its folders), else the one of the checkout
/// this binary was built from.
pub fn data_root() -> PathBuf {
    if let Ok(cwd) = std::env::current_dir() {
        for dir in cwd.ancestors() {
            let data = dir.join("data");
            if data.join("sia").is_dir() || (dir.join("Cargo.toml").is_file() && dir.join("crates/sim").is_dir()) {
                return data;
            }
        }
    }
    // crates/computenet -> the workspace root.
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.ancestors().nth(2).unwrap_or(manifest).join("data")
}

/// Fails when a default or given input is missing, saying how to pass it (`flag`).
fn must_exist(path: &Path, what: &str, flag: &str) -> anyhow::Result<()> {
    if !path.exists() {
        bail!(
            "{what} {} not found (the defaults are read from the repository's data/ folder, looked up from \
             the working directory upwards; see data/README.md, or pass the path with {flag})",
            path.display()
        );
    }
    Ok(())
}

fn sniff(path: &Path) -> anyhow::Result<Format> {
    let file = traces::workload_files(path)?.into_iter().next().context("no workload file")?;
    let text = traces::read(&file)?;
    let header = text.lines().next().unwrap_or("");
    Ok(if header.contains("application") && header.contains("num_replicas") {
        Format::Sia
    } else if header.starts_with("timestamp") && header.contains("num_gpus") {
        Format::Philly
    } else if header.contains("cpu_milli") && header.contains("num_gpu") {
        Format::Alibaba2023
    } else {
        bail!("{}: cannot tell the workload format from its header; pass --format", file.display())
    })
}

/// The workload's name: its file name without `.csv` or `.csv.gz`.
fn file_stem(path: &Path) -> String {
    match traces::csv_stem(path) {
        Some(stem) => stem.to_string(),
        None => path.file_stem().map_or_else(|| path.display().to_string(), |s| s.to_string_lossy().into_owned()),
    }
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
        Policy::DEFAULT_SET.to_vec()
    } else {
        args.policies
            .iter()
            .map(|n| Policy::from_name(n).with_context(|| format!("unknown policy {n:?} ({})", Policy::names())))
            .collect::<anyhow::Result<_>>()?
    };
    if args.rate.is_nan() || args.rate <= 0.0 {
        bail!("--rate must be positive");
    }
    let data = data_root();
    let format = match (args.format, &args.workload) {
        (Some(f), _) => f,
        (None, Some(path)) => sniff(path)?,
        (None, None) => Format::Generated,
    };
    let profiles_dir = args.profiles.clone().unwrap_or_else(|| data.clone());
    let (model, workloads, description_line) = load(&args, format, &pool, &data, &profiles_dir)?;

    let gpus: u64 = pool.clusters.iter().flat_map(|c| &c.nodes).map(|n| u64::from(n.allocatable.accelerators)).sum();
    println!(
        "pool: {pool_name}: {} clusters, {} nodes, {gpus} accelerators",
        pool.clusters.len(),
        pool.clusters.iter().map(|c| c.nodes.len()).sum::<usize>()
    );
    println!("workload: {description_line}\n");

    let total_jobs: u64 = workloads.iter().map(|w| w.jobs.len() as u64).sum::<u64>() * policies.len() as u64;
    let bar = if std::io::stderr().is_terminal() && total_jobs >= 5_000 {
        let bar = indicatif::ProgressBar::new(total_jobs);
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {pos}/{len} jobs {msg}")
        {
            bar.set_style(style);
        }
        Some(bar)
    } else {
        None
    };
    let mut base = 0u64;
    let mut per_workload: Vec<(String, usize, Vec<Summary>)> = Vec::new();
    let mut first_results: Vec<(Policy, SimulationResult)> = Vec::new();
    if let Some(dir) = &args.plots {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    for (wi, w) in workloads.iter().enumerate() {
        let mut summaries = Vec::new();
        let mut results: Vec<(Policy, SimulationResult)> = Vec::new();
        for &policy in &policies {
            if let Some(bar) = &bar {
                bar.set_message(format!("{} / {}", w.name, policy.name()));
            }
            let mut jobs = w.jobs.clone();
            policy.prepare(&mut jobs);
            let adaptation = policy.adapts().then(|| {
                make_restartable(&mut jobs, args.restartable_share, args.restart_cost_s, args.elastic_share);
                Adaptation {
                    config: AdaptConfig { gain_factor: args.adapt_gain_factor, ..AdaptConfig::default() },
                    interval_s: args.adapt_interval_s,
                }
            });
            let mut progress = |done: u64, _total: u64| {
                if let Some(bar) = &bar {
                    bar.set_position(base + done);
                }
            };
            let mut scheduler = policy.scheduler(model.clone());
            scheduler.config.wait_speedup = args.wait_speedup;
            let result = Simulation { pool: pool.clone(), queues: w.queues.clone(), scheduler, jobs }
                .run_with(RunOptions { window: args.window, progress: Some(&mut progress), adaptation })
                .with_context(|| format!("simulating {} on {}", policy.name(), w.name))?;
            base += w.jobs.len() as u64;
            summaries.push(Summary::of(policy.name(), &result));
            if args.plots.is_some() {
                results.push((policy, result));
            }
        }
        if let Some(dir) = &args.plots {
            let runs: Vec<(&str, &SimulationResult)> = results.iter().map(|(p, r)| (p.name(), r)).collect();
            let path = dir.join(format!("jct-cdf-{}.svg", w.name));
            plots::jct_cdf(&path, &format!("JCT CDF: {}", w.name), &runs)?;
            if wi == 0 {
                first_results = results;
            }
        }
        per_workload.push((w.name.clone(), w.jobs.len(), summaries));
    }
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    if let Some(dir) = &args.plots {
        let name = &workloads[0].name;
        for (policy, result) in &first_results {
            let path = dir.join(format!("utilisation-{name}-{}.svg", policy.name()));
            plots::utilisation(&path, &format!("utilisation per cluster: {name}, {}", policy.name()), result)?;
        }
    }

    let means: Vec<Summary> = if per_workload.len() == 1 {
        per_workload[0].2.clone()
    } else {
        (0..policies.len())
            .map(|p| {
                let runs: Vec<Summary> = per_workload.iter().map(|w| w.2[p].clone()).collect();
                Summary::mean(policies[p].name(), &runs)
            })
            .collect()
    };
    if per_workload.len() > 1 {
        println!("avg JCT (h) per workload:");
        let mut header = format!("{:24}", "workload");
        for p in &policies {
            header.push_str(&format!("  {:>19}", p.name()));
        }
        println!("{header}");
        for (name, _, s) in &per_workload {
            let mut line = format!("{name:24}");
            for x in s {
                line.push_str(&format!("  {:>19.2}", x.avg_jct_s / 3600.0));
            }
            println!("{line}");
        }
        println!("\nmean over {} workloads (counts summed):", per_workload.len());
    }
    print!("{}", table(&means));
    if let Some(path) = &args.json {
        let json = serde_json::json!({
            "pool": pool_name,
            "format": format!("{format:?}").to_ascii_lowercase(),
            "workloads": per_workload.iter().map(|(name, jobs, s)| serde_json::json!({
                "name": name, "jobs": jobs, "policies": s,
            })).collect::<Vec<_>>(),
            "policies": means,
        });
        std::fs::write(path, serde_json::to_string_pretty(&json)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// The throughput model, the workloads and a one-line description of them.
fn load(
    args: &Args,
    format: Format,
    pool: &Pool,
    data: &Path,
    profiles_dir: &Path,
) -> anyhow::Result<(ThroughputModel, Vec<Workload>, String)> {
    let workload_path = |default: PathBuf| -> anyhow::Result<PathBuf> {
        let path = args.workload.clone().unwrap_or(default);
        must_exist(&path, "workload", "--workload")?;
        Ok(path)
    };
    Ok(match format {
        Format::Generated => {
            let queues = vec![Queue::unlimited("research"), Queue::unlimited("industry")];
            let generator = GeneratedWorkload {
                jobs: args.jobs,
                rate_per_hour: args.rate,
                seed: args.seed,
                queues: queues.iter().map(|q| q.name.clone()).collect(),
                cpu_job_share: args.cpu_share,
                mixed_objectives: args.mixed_objectives,
            };
            // Gavel's matrix only when asked for: the default run needs no reference data.
            let (model, jobs, types) = match &args.profiles {
                Some(dir) => {
                    let path = dir.join("gavel/simulation_throughputs.json");
                    must_exist(&path, "Gavel throughput matrix", "--profiles")?;
                    let profiles = traces::load_gavel_matrix(&path)?;
                    let jobs = generator.generate_with_profiles(&profiles);
                    (ThroughputModel::with_profiles(profiles), jobs, "Gavel's job types and throughput matrix")
                }
                None => (ThroughputModel::default(), generator.generate(), "Gavel's job mix"),
            };
            let line = format!(
                "{} jobs generated with {types} (seed {}, {:.0} jobs/h, {:.0} % CPU-only, {} objectives)",
                jobs.len(),
                args.seed,
                args.rate,
                args.cpu_share * 100.0,
                if args.mixed_objectives { "mixed" } else { "Balanced" }
            );
            (model, vec![Workload { name: format!("generated-{}", args.seed), jobs, queues }], line)
        }
        Format::Sia => {
            let path = workload_path(data.join("sia/workloads/philly"))?;
            let traces_dir = if profiles_dir.join("sia/traces").is_dir() {
                profiles_dir.join("sia/traces")
            } else {
                profiles_dir.to_path_buf()
            };
            must_exist(&traces_dir, "Sia profiles folder", "--profiles")?;
            let models = traces::load_sia_models(&traces_dir)?;
            let mut workloads = Vec::new();
            for file in traces::workload_files(&path)? {
                let source = file.display().to_string();
                let rows = traces::parse_sia_workload(&traces::read(&file)?, &source)?;
                let jobs = traces::sia_jobs(&rows, &models, &source, "default")?;
                workloads.push(Workload { name: file_stem(&file), jobs, queues: vec![Queue::unlimited("default")] });
            }
            let line = format!(
                "{} Sia workload(s) from {} ({} jobs; step times from {})",
                workloads.len(),
                path.display(),
                workloads.iter().map(|w| w.jobs.len()).sum::<usize>(),
                traces_dir.display()
            );
            (ThroughputModel::with_profiles(models.profiles), workloads, line)
        }
        Format::Philly => {
            let path = workload_path(data.join("sia/traces/philly.csv.gz"))?;
            let mut workloads = Vec::new();
            for file in traces::workload_files(&path)? {
                let rows = traces::parse_philly(&traces::read(&file)?, &file.display().to_string())?;
                let queues = traces::philly_queues(&rows).iter().map(|q| Queue::unlimited(q)).collect();
                workloads.push(Workload {
                    name: file_stem(&file),
                    jobs: traces::philly_jobs(&rows, &args.reference),
                    queues,
                });
            }
            let line = format!(
                "Philly-derived trace {} ({} jobs; durations as runtimes on {}; one queue per virtual cluster)",
                path.display(),
                workloads.iter().map(|w| w.jobs.len()).sum::<usize>(),
                args.reference
            );
            (ThroughputModel::default(), workloads, line)
        }
        Format::Alibaba2023 => {
            let path = workload_path(data.join("alibaba-gpu-2023/openb_pod_list_default.csv"))?;
            let mut workloads = Vec::new();
            let mut skipped = 0;
            for file in traces::workload_files(&path)? {
                let pods = traces::parse_alibaba_pods(&traces::read(&file)?, &file.display().to_string())?;
                let (jobs, s) = traces::alibaba_jobs(&pods, &pool.catalogue, &args.reference);
                skipped += s;
                workloads.push(Workload { name: file_stem(&file), jobs, queues: vec![Queue::unlimited("default")] });
            }
            let line = format!(
                "Alibaba GPU 2023 pods {} ({} jobs, {skipped} never-scheduled pods left out; runtimes on {})",
                path.display(),
                workloads.iter().map(|w| w.jobs.len()).sum::<usize>(),
                args.reference
            );
            (ThroughputModel::default(), workloads, line)
        }
    })
}

//! `computenet simulate`: replay a workload over a simulated pool, once per policy.

use anyhow::{bail, Context};
use computenet_core::pool::PoolDescription;
use computenet_core::{AdaptConfig, Job, Pool, Queue, ThroughputModel};
use computenet_sim::departments::{self, DepartmentFigures};
use computenet_sim::engine::Adaptation;
use computenet_sim::policy::make_restartable;
use computenet_sim::report::{table, usage_table, Summary};
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
    /// Fair share with memory: the half life, in hours, of the decayed past usage added to
    /// each queue's current share when queues are ordered (0: plain DRF on current usage).
    /// Repeatable: every policy runs once per value.
    #[arg(long = "fair-share-half-life-h", default_values_t = [0.0], value_parser = non_negative)]
    fair_share_half_life_h: Vec<f64>,
    /// Keep only the jobs submitted in the days from --from-day on (submission times then
    /// count from --from-day).
    #[arg(long, value_parser = non_negative)]
    days: Option<f64>,
    /// Start of the --days window, in days from the workload's first submission.
    #[arg(long, default_value_t = 0.0, value_parser = non_negative)]
    from_day: f64,
    /// Two departments submitting the same jobs: queue dept-a gets the workload's jobs,
    /// dept-b a copy of each from --dept-b-from-day on; two queues with weight 1 and a
    /// quota of half the pool's accelerators each in one cohort (borrowing allowed, no
    /// preemption). Prints what each asked for and received (over --days when given)
    /// and, with --plots, plots the gap between them.
    #[arg(long)]
    departments: bool,
    /// With --departments: dept-b submits only from this day on (days counted like
    /// --days); until then dept-a has the pool to itself.
    #[arg(long, default_value_t = 0.0, value_parser = non_negative)]
    dept_b_from_day: f64,
}

fn non_negative(text: &str) -> Result<f64, String> {
    let v: f64 = text.parse().map_err(|_| format!("{text:?} is not a number"))?;
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err(format!("{v} must be a finite number, at least 0"))
    }
}

/// A run's name: the policy, and the fair-share half life when it has one.
fn run_name(policy: Policy, half_life_h: f64) -> String {
    if half_life_h > 0.0 {
        format!("{} fs{half_life_h}h", policy.name())
    } else {
        policy.name().to_string()
    }
}

/// Keeps the jobs submitted in `[from_s, from_s + length_s)`, their times counted from `from_s`.
fn time_window(jobs: &mut Vec<Job>, from_s: u64, length_s: u64) {
    jobs.retain(|j| j.submitted_at >= from_s && j.submitted_at - from_s < length_s);
    for j in jobs.iter_mut() {
        j.submitted_at -= from_s;
    }
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
    let (model, mut workloads, mut description_line) = load(&args, format, &pool, &data, &profiles_dir)?;

    let gpus: u64 = pool.clusters.iter().flat_map(|c| &c.nodes).map(|n| u64::from(n.allocatable.accelerators)).sum();
    let horizon_s = args.days.map(|d| (d * 86_400.0) as u64);
    if let Some(length_s) = horizon_s {
        let from_s = (args.from_day * 86_400.0) as u64;
        for w in &mut workloads {
            // Relative to the workload's first submission.
            let first = w.jobs.iter().map(|j| j.submitted_at).min().unwrap_or(0);
            time_window(&mut w.jobs, first + from_s, length_s);
        }
        description_line.push_str(&format!(
            "; kept the jobs submitted in days [{}, {}) ({} jobs)",
            args.from_day,
            args.from_day + length_s as f64 / 86_400.0,
            workloads.iter().map(|w| w.jobs.len()).sum::<usize>()
        ));
    }
    if args.departments {
        let b_from_s = (args.dept_b_from_day * 86_400.0) as u64;
        for w in &mut workloads {
            w.jobs = departments::mirror(&w.jobs, b_from_s);
            w.queues = departments::queues(gpus);
        }
        description_line.push_str(&format!(
            "; departments: dept-a submits every job, dept-b a copy of each from day {} on ({} jobs in all), \
             quota {} GPUs each",
            args.dept_b_from_day,
            workloads.iter().map(|w| w.jobs.len()).sum::<usize>(),
            gpus.div_ceil(2)
        ));
    }
    let half_lives = &args.fair_share_half_life_h;
    println!(
        "pool: {pool_name}: {} clusters, {} nodes, {gpus} accelerators",
        pool.clusters.len(),
        pool.clusters.iter().map(|c| c.nodes.len()).sum::<usize>()
    );
    println!("workload: {description_line}\n");

    let total_jobs: u64 =
        workloads.iter().map(|w| w.jobs.len() as u64).sum::<u64>() * (policies.len() * half_lives.len()) as u64;
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
    let mut first_results: Vec<(String, SimulationResult)> = Vec::new();
    let mut department_runs: Vec<DepartmentRun> = Vec::new();
    let run_names: Vec<String> =
        policies.iter().flat_map(|&p| half_lives.iter().map(move |&h| run_name(p, h))).collect();
    if let Some(dir) = &args.plots {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    for (wi, w) in workloads.iter().enumerate() {
        let mut summaries = Vec::new();
        let mut results: Vec<(String, SimulationResult)> = Vec::new();
        for (&policy, &half_life_h) in policies.iter().flat_map(|p| half_lives.iter().map(move |h| (p, h))) {
            let name = run_name(policy, half_life_h);
            if let Some(bar) = &bar {
                bar.set_message(format!("{} / {name}", w.name));
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
            let options = RunOptions {
                window: args.window,
                progress: Some(&mut progress),
                adaptation,
                fair_share_half_life_s: half_life_h * 3_600.0,
            };
            let result = Simulation { pool: pool.clone(), queues: w.queues.clone(), scheduler, jobs }
                .run_with(options)
                .with_context(|| format!("simulating {name} on {}", w.name))?;
            base += w.jobs.len() as u64;
            summaries.push(Summary::of(&name, &result));
            if args.departments && wi == 0 {
                let horizon = horizon_s.unwrap_or_else(|| w.jobs.iter().map(|j| j.submitted_at + 1).max().unwrap_or(1));
                let b_from_s = (args.dept_b_from_day * 86_400.0) as u64;
                department_runs.push(DepartmentRun {
                    run: name.clone(),
                    whole: departments::figures(&w.jobs, &result, 0, horizon, 86_400),
                    both: departments::figures(&w.jobs, &result, b_from_s, horizon, 86_400),
                });
            }
            if args.plots.is_some() {
                results.push((name, result));
            }
        }
        if let Some(dir) = &args.plots {
            let runs: Vec<(&str, &SimulationResult)> = results.iter().map(|(p, r)| (p.as_str(), r)).collect();
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
        for (run, result) in &first_results {
            let file = run.replace(' ', "-");
            let path = dir.join(format!("utilisation-{name}-{file}.svg"));
            plots::utilisation(&path, &format!("utilisation per cluster: {name}, {run}"), result)?;
        }
        if !department_runs.is_empty() {
            department_plots(dir, name, &department_runs)?;
        }
    }

    let means: Vec<Summary> = if per_workload.len() == 1 {
        per_workload[0].2.clone()
    } else {
        (0..run_names.len())
            .map(|p| {
                let runs: Vec<Summary> = per_workload.iter().map(|w| w.2[p].clone()).collect();
                Summary::mean(&run_names[p], &runs)
            })
            .collect()
    };
    if per_workload.len() > 1 {
        println!("avg JCT (h) per workload:");
        let mut header = format!("{:24}", "workload");
        for p in &run_names {
            header.push_str(&format!("  {p:>19}"));
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
    println!("\nusage per queue (the service's accounting; estimated power):");
    print!("{}", usage_table(&means));
    if !department_runs.is_empty() {
        println!(
            "\ndepartments (first workload{}):",
            horizon_s.map_or(String::new(), |h| format!(", over {} days", h / 86_400))
        );
        print!("{}", department_table(&department_runs, args.dept_b_from_day));
    }
    if let Some(path) = &args.json {
        let json = serde_json::json!({
            "pool": pool_name,
            "format": format!("{format:?}").to_ascii_lowercase(),
            "workloads": per_workload.iter().map(|(name, jobs, s)| serde_json::json!({
                "name": name, "jobs": jobs, "policies": s,
            })).collect::<Vec<_>>(),
            "policies": means,
            "departments": department_runs.iter().map(|d| serde_json::json!({
                "run": d.run, "whole": d.whole, "fromDeptBStart": d.both,
            })).collect::<Vec<_>>(),
        });
        std::fs::write(path, serde_json::to_string_pretty(&json)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// One run's department figures: over the whole horizon, and from dept-b's start on.
struct DepartmentRun {
    run: String,
    whole: Vec<DepartmentFigures>,
    both: Vec<DepartmentFigures>,
}

/// Per run: GPU-hours each department received over the horizon and dept-a's lead; from
/// dept-b's start on (both submit the same jobs), what each received, dept-a's share and
/// the mean queueing delay of their GPU jobs.
fn department_table(runs: &[DepartmentRun], b_from_day: f64) -> String {
    let mut out = format!(
        "{:24}  {:>19}  {:>8}  {:>19}  {:>7}  {:>17}  {:>9}\n",
        "run",
        "all: recv A / B",
        "A lead",
        format!("day {b_from_day}+: recv A / B"),
        "A share",
        "mean queue A / B",
        "queue A-B"
    );
    for d in runs {
        let [a, b] = [&d.whole[0], &d.whole[1]];
        let [x, y] = [&d.both[0], &d.both[1]];
        let total = x.received_gpu_hours + y.received_gpu_hours;
        out.push_str(&format!(
            "{:24}  {:>8.0} / {:>8.0}  {:>+8.0}  {:>8.0} / {:>8.0}  {:>7.3}  {:>7.2} / {:>7.2}  {:>+9.2}\n",
            d.run,
            a.received_gpu_hours,
            b.received_gpu_hours,
            a.received_gpu_hours - b.received_gpu_hours,
            x.received_gpu_hours,
            y.received_gpu_hours,
            if total > 0.0 { x.received_gpu_hours / total } else { 0.0 },
            x.mean_queue_h,
            y.mean_queue_h,
            x.mean_queue_h - y.mean_queue_h
        ));
    }
    out
}

/// The gap between the departments over time, one line per run: dept-a's cumulative lead
/// in GPU-hours received, dept-a's share of the GPU-hours received each day, and the mean
/// queueing delay of the GPU jobs submitted each day (dept-a minus dept-b).
fn department_plots(dir: &Path, workload: &str, runs: &[DepartmentRun]) -> anyhow::Result<()> {
    let day = |d: usize| d as f64 + 1.0;
    let lead: Vec<(String, Vec<(f64, f64)>)> = runs
        .iter()
        .map(|d| {
            let mut sum = 0.0;
            let days = d.whole[0].received_per_bucket.iter().zip(&d.whole[1].received_per_bucket).enumerate();
            let points = days
                .map(|(k, (a, b))| {
                    sum += a - b;
                    (day(k), sum)
                })
                .collect();
            (d.run.clone(), points)
        })
        .collect();
    plots::lines(
        &dir.join("lead.svg"),
        &format!("GPU-hours received, dept-a minus dept-b, cumulative: {workload}"),
        "end of simulated day",
        "GPU-hours",
        &lead,
    )?;
    let share_a: Vec<(String, Vec<(f64, f64)>)> = runs
        .iter()
        .map(|d| {
            let days = d.whole[0].received_per_bucket.iter().zip(&d.whole[1].received_per_bucket).enumerate();
            let share = days.map(|(k, (a, b))| (day(k), if a + b > 0.0 { a / (a + b) } else { 0.5 })).collect();
            (d.run.clone(), share)
        })
        .collect();
    plots::lines(
        &dir.join("share-a.svg"),
        &format!("dept-a's share of the GPU-hours received each day: {workload}"),
        "end of simulated day",
        "dept-a share",
        &share_a,
    )?;
    let queue_gap: Vec<(String, Vec<(f64, f64)>)> = runs
        .iter()
        .map(|d| {
            let days = d.whole[0].queue_h_per_bucket.iter().zip(&d.whole[1].queue_h_per_bucket).enumerate();
            (d.run.clone(), days.map(|(k, (a, b))| (day(k), a - b)).collect())
        })
        .collect();
    plots::lines(
        &dir.join("queue-gap.svg"),
        &format!("mean queueing delay by submission day, dept-a minus dept-b: {workload}"),
        "end of simulated day",
        "hours",
        &queue_gap,
    )?;
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

//! `computenet bench`: one full cycle on a synthetic pool, with peak memory.

use anyhow::bail;
use computenet_core::synth::{problem, ProblemSize, SplitMix};
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
    /// Instead of one cycle: the cost of fair share with memory. Times the cycle with every
    /// queue's past share set (varied, non-zero) against the same cycle with none, and the
    /// past shares themselves from a year of usage rows per queue (hourly for the last 7
    /// days, daily for the 358 before).
    #[arg(long)]
    fair_share: bool,
    /// Instead of one cycle: a simulated year of attempts at this many jobs a day pushed
    /// through the usage store's record and compact (20 queues, 50 namespaces, 10
    /// members, 4 accelerator types); prints the serialized sizes of the ComputeUsages.
    #[arg(long)]
    store_jobs_per_day: Option<u64>,
    /// Instead of one cycle from nothing: the steady state. A first full cycle runs and
    /// its admissions start; then this many new jobs arrive and the next cycle is timed
    /// (repeat the flag for several arrival counts, e.g. `--arrivals 1 --arrivals 1000`).
    #[arg(long)]
    arrivals: Vec<usize>,
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
    print_memory();
    Ok(())
}

/// Times the cycle in the steady state: the problem's first full cycle runs and its
/// admissions start (each expected to end when the cycle estimated); the jobs left waiting
/// stay, `k` new jobs (drawn like the problem's, submitted later) arrive, and the next
/// cycle is timed, for each `k` of `--arrivals`: from scratch, and incremental (from the
/// standing the first cycle left), which must decide the same.
fn after_arrivals(args: &Args, size: ProblemSize) -> anyhow::Result<()> {
    use computenet_core::cycle::Changes;
    use computenet_core::{IncrementalScheduler, RunningJob};
    let started = Instant::now();
    let (mut pool, queues, jobs) = problem(size, args.seed);
    let scheduler = Scheduler::default();
    // The incremental scheduler runs the first cycle too, so that it keeps its standing.
    let mut incremental = IncrementalScheduler::new(scheduler.clone());
    incremental.full_every = u32::MAX;
    let first = incremental.cycle(&Snapshot {
        now: 0,
        pool: &pool,
        queues: &queues,
        cohorts: &[],
        pending: &jobs,
        running: &[],
    });
    let by_id: std::collections::HashMap<&str, &computenet_core::Job> =
        jobs.iter().map(|j| (j.id.as_str(), j)).collect();
    let mut running: Vec<RunningJob> = Vec::new();
    for (id, p) in first.admissions() {
        let j = by_id[id];
        pool.allocate(p.cluster_index, &p.slots, &j.per_replica)?;
        let end = (p.estimate.transfer_s + p.estimate.runtime_s).ceil() as u64;
        running.push(RunningJob::started(j, p, 0, end));
    }
    let admitted: std::collections::HashSet<&str> = first.admissions().map(|(id, _)| id).collect();
    let waiting: Vec<computenet_core::Job> =
        jobs.iter().filter(|j| !admitted.contains(j.id.as_str())).cloned().collect();
    println!(
        "size {}: {} clusters, {} nodes, {} queues; after the first cycle {} running, {} waiting (set up in {:.2} s)",
        args.size,
        pool.clusters.len(),
        pool.clusters.iter().map(|c| c.nodes.len()).sum::<usize>(),
        queues.len(),
        running.len(),
        waiting.len(),
        started.elapsed().as_secs_f64()
    );
    for &k in &args.arrivals {
        let new_jobs = problem(ProblemSize { pending_jobs: k as u32, ..size }, args.seed.wrapping_add(1)).2;
        let mut pending = waiting.clone();
        pending.extend(new_jobs.into_iter().enumerate().map(|(i, mut j)| {
            j.id = format!("arrival{i:06}");
            j.submitted_at = 1_000_000 + i as u64;
            j
        }));
        let snapshot =
            Snapshot { now: 60, pool: &pool, queues: &queues, cohorts: &[], pending: &pending, running: &running };
        let (mut full_times, mut compared_times, mut told_times) = (Vec::new(), Vec::new(), Vec::new());
        let mut full_out = None;
        for _ in 0..args.repeat.max(1) {
            let t = Instant::now();
            full_out = Some(scheduler.cycle(&snapshot));
            full_times.push(t.elapsed().as_secs_f64());
            // Each run starts from the standing the first cycle left (cloned untimed):
            // once comparing the snapshot with it, once told that nothing changed but
            // the arrivals (every admission of the first cycle started as admitted).
            for (times, told) in [(&mut compared_times, false), (&mut told_times, true)] {
                let mut kept = incremental.clone();
                let t = Instant::now();
                let out = if told { kept.cycle_with(&snapshot, &Changes::default()) } else { kept.cycle(&snapshot) };
                times.push(t.elapsed().as_secs_f64());
                if Some(&out) != full_out.as_ref() {
                    bail!("after {k} arrivals the incremental cycle decided differently from the full one");
                }
            }
        }
        let admissions = full_out.map_or(0, |o| o.admissions().count());
        for (what, times) in [
            ("full", &full_times),
            ("incremental (snapshot compared)", &compared_times),
            ("incremental (told the changes)", &told_times),
        ] {
            let best = times.iter().copied().fold(f64::INFINITY, f64::min);
            let mean = times.iter().sum::<f64>() / times.len() as f64;
            println!(
                "after {k} arrivals: {what} cycle best {:.1} ms, mean {:.1} ms over {} runs ({admissions} admitted, \
                 the same decisions)",
                best * 1e3,
                mean * 1e3,
                times.len()
            );
        }
    }
    print_memory();
    Ok(())
}

/// Usage rows of one queue over a year, newest first: (age in seconds at the row's
/// middle, accelerator type, device-seconds). 24 hourly rows a day for the last 7 days,
/// then one daily row a day for the 358 days before; amounts and types drawn from `rng`.
fn year_of_rows(rng: &mut SplitMix, nominal: u64) -> Vec<(f64, &'static str, f64)> {
    const TYPES: [&str; 4] = ["A100-80G", "H800", "V100", "Ascend910B"];
    let mut rows = Vec::with_capacity(7 * 24 + 358);
    for hour in 0..7 * 24 {
        let amount = rng.unit() * nominal as f64 * 3_600.0;
        rows.push((hour as f64 * 3_600.0 + 1_800.0, TYPES[rng.below(4) as usize], amount));
    }
    for day in 7..365 {
        let amount = rng.unit() * nominal as f64 * 86_400.0;
        rows.push((day as f64 * 86_400.0 + 43_200.0, TYPES[rng.below(4) as usize], amount));
    }
    rows
}

/// Every queue's past share from its rows: decayed sums per accelerator type, then
/// [`past_share`] over its quotas.
fn past_shares(queues: &[computenet_core::Queue], rows: &[Vec<(f64, &str, f64)>], half_life_s: f64) -> Vec<f64> {
    use computenet_core::queue::ResourceName;
    use computenet_core::usage::{decay, past_share, DecayedUsage};
    queues
        .iter()
        .zip(rows)
        .map(|(q, rows)| {
            let mut past: Vec<DecayedUsage> = Vec::new();
            for &(age, accelerator, amount) in rows {
                let weighted = amount * decay(age, half_life_s);
                match past.iter_mut().find(|u| u.accelerator.as_deref() == Some(accelerator)) {
                    Some(u) => u.amount += weighted,
                    None => past.push(DecayedUsage {
                        resource: ResourceName::Accelerators,
                        accelerator: Some(accelerator.to_string()),
                        amount: weighted,
                    }),
                }
            }
            past_share(&q.quotas, &past, half_life_s)
        })
        .collect()
}

/// Times fair share with memory at a problem size: the cycle with and without past
/// shares, and computing the past shares from a year of rows.
fn fair_share(args: &Args, size: ProblemSize) -> anyhow::Result<()> {
    let (pool, queues, jobs) = problem(size, args.seed);
    let mut rng = SplitMix::new(args.seed ^ 0x5eed);
    let rows: Vec<Vec<(f64, &str, f64)>> =
        queues.iter().map(|q| year_of_rows(&mut rng, q.quotas.first().map_or(1, |x| x.nominal))).collect();
    let half_life_s = 7.0 * 86_400.0;
    let row_count: usize = rows.iter().map(Vec::len).sum();
    let mut share_times = Vec::new();
    let mut shares = Vec::new();
    for _ in 0..args.repeat.max(1) {
        let t = Instant::now();
        shares = past_shares(&queues, &rows, half_life_s);
        share_times.push(t.elapsed().as_secs_f64());
    }
    let mut with_past = queues.clone();
    for (q, s) in with_past.iter_mut().zip(&shares) {
        q.past_share = *s;
    }
    let (lo, hi) = shares.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), s| (lo.min(*s), hi.max(*s)));
    println!(
        "size {}: {} queues, {} pending jobs; {row_count} usage rows (per queue: 168 hourly, 358 daily); \
         past shares {lo:.3}-{hi:.3} at a 7-day half life",
        args.size,
        queues.len(),
        jobs.len()
    );
    let scheduler = Scheduler::default();
    let time_cycle = |queues: &[computenet_core::Queue]| {
        let t = Instant::now();
        let out =
            scheduler.cycle(&Snapshot { now: 0, pool: &pool, queues, cohorts: &[], pending: &jobs, running: &[] });
        (t.elapsed().as_secs_f64(), out.admissions().count())
    };
    // Alternate the two, so that the machine's other load falls on both alike.
    let (mut plain, mut memory) = (Vec::new(), Vec::new());
    let (mut admitted_plain, mut admitted_memory) = (0, 0);
    for _ in 0..args.repeat.max(1) {
        let (t, n) = time_cycle(&queues);
        plain.push(t);
        admitted_plain = n;
        let (t, n) = time_cycle(&with_past);
        memory.push(t);
        admitted_memory = n;
    }
    let best = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    println!(
        "past shares from rows: best {:.4} s, mean {:.4} s over {} runs",
        best(&share_times),
        mean(&share_times),
        share_times.len()
    );
    println!("cycle, past_share 0: best {:.3} s, mean {:.3} s ({admitted_plain} admitted)", best(&plain), mean(&plain));
    println!(
        "cycle, past shares set: best {:.3} s, mean {:.3} s ({admitted_memory} admitted)",
        best(&memory),
        mean(&memory)
    );
    println!(
        "(past shares + cycle with them) / cycle without: {:.3} (best runs), {:.3} (means)",
        (best(&share_times) + best(&memory)) / best(&plain),
        (mean(&share_times) + mean(&memory)) / mean(&plain)
    );
    Ok(())
}

/// The shape of the simulated usage store year.
const STORE_QUEUES: u64 = 20;
const STORE_NAMESPACES: u64 = 50;
const STORE_MEMBERS: u64 = 10;
const STORE_TYPES: [&str; 4] = ["A100-80G", "H800", "V100", "Ascend910B"];
/// Days kept raw (hourly rows, records); older days are compacted.
const STORE_RAW_DAYS: u64 = 7;

/// One day's ended attempts of every queue: jobs submitted uniformly over the day, one
/// attempt each and a second one for one in ten (a retry after a failure or a move);
/// each attempt ends in the day, lasts log-uniformly 1 min to 24 h, on 1, 2, 4 or 8
/// GPUs (70/10/15/5 %); namespace n belongs to queue n mod 20, member m has accelerator
/// type m mod 4 and site m mod 3.
fn store_day(
    rng: &mut SplitMix,
    day: u64,
    jobs: u64,
    model: &computenet_core::ThroughputModel,
    catalogue: &computenet_core::Catalogue,
) -> Vec<Vec<computenet_api::usage::EndedAttempt>> {
    use computenet_api::usage::{EndedAttempt, EnergySource, UsageRecord};
    use computenet_core::usage::{attempt_amounts, AttemptShape};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    let efficiency = computenet_core::ClusterEfficiency::default();
    let time =
        |s: u64| Time(k8s_openapi::jiff::Timestamp::from_second(i64::try_from(s).unwrap_or(0)).unwrap_or_default());
    let mut per_queue: Vec<Vec<EndedAttempt>> = vec![Vec::new(); STORE_QUEUES as usize];
    let day_start = 1_767_225_600 + day * 86_400; // 2026-01-01T00:00:00Z
    for j in 0..jobs {
        let namespace = rng.below(STORE_NAMESPACES);
        let queue = namespace % STORE_QUEUES;
        let member = rng.below(STORE_MEMBERS);
        let accelerator = STORE_TYPES[(member % 4) as usize];
        let r = rng.unit();
        let gpus = if r < 0.70 {
            1
        } else if r < 0.80 {
            2
        } else if r < 0.95 {
            4
        } else {
            8
        };
        let uid = format!("{:08x}-{:04x}-{:04x}-{:012x}", rng.next_u64() as u32, j % 65_536, day, rng.next_u64() >> 16);
        let attempts = if rng.below(10) == 0 { 2 } else { 1 };
        for attempt in 1..=attempts {
            let seconds = (60.0 * (rng.unit() * 1_440f64.ln()).exp()) as u64;
            let end = day_start + rng.below(86_400);
            let start = end.saturating_sub(seconds);
            let shape = AttemptShape {
                accelerator: Some(accelerator),
                devices: gpus,
                cpu_millis: gpus * 8_000,
                seconds: seconds as f64,
            };
            let amounts = attempt_amounts(model, catalogue, &efficiency, false, &shape);
            per_queue[queue as usize].push(EndedAttempt {
                queue: format!("queue-{queue:02}"),
                start,
                end,
                amounts,
                record: UsageRecord {
                    namespace: format!("team-{namespace:02}"),
                    job: format!("train-{day:03}-{j:06}"),
                    uid: uid.clone(),
                    attempt,
                    member: format!("member-{member:02}"),
                    site: format!("site-{}", member % 3),
                    accelerator: Some(accelerator.to_string()),
                    gpus: gpus as i64,
                    replicas: 1,
                    start: time(start),
                    end: time(end),
                    reason: if attempt < attempts { "Failed".into() } else { "Succeeded".into() },
                    energy_source: EnergySource::Estimated,
                    amounts: amounts.into(),
                },
            });
        }
    }
    for attempts in &mut per_queue {
        attempts.sort_by_key(|a| a.end);
    }
    per_queue
}

/// A year of a queue's days through `record` (in writes of at most
/// `MAX_RECORDS_PER_WRITE` attempts, in order of their ends) and `compact` (days older
/// than `STORE_RAW_DAYS` at the year's end); the serialized JSON sizes of the objects.
fn store_year(jobs_per_day: u64, seed: u64) -> anyhow::Result<()> {
    use computenet_api::usage::{compact, empty_day, object_name, record, ComputeUsage, MAX_RECORDS_PER_WRITE};
    let started = Instant::now();
    let model = computenet_core::ThroughputModel::default();
    let catalogue = computenet_core::Catalogue::built_in();
    let mut rng = SplitMix::new(seed);
    let days = 365u64;
    let first_day = 1_767_225_600 / 86_400;
    let (mut total, mut objects, mut attempts) = (0u64, 0u64, 0u64);
    let (mut raw_max, mut compacted_max, mut raw_sum, mut raw_count) = (0usize, 0usize, 0u64, 0u64);
    let (mut rows_max, mut records_max) = (0usize, 0usize);
    let mut record_s = 0.0;
    for day in 0..days {
        for (q, ended) in store_day(&mut rng, day, jobs_per_day, &model, &catalogue).into_iter().enumerate() {
            let queue = format!("queue-{q:02}");
            let mut spec = empty_day(&queue, first_day + day, 3_600);
            let t = Instant::now();
            for chunk in ended.chunks(MAX_RECORDS_PER_WRITE) {
                record(&mut spec, chunk);
            }
            record_s += t.elapsed().as_secs_f64();
            attempts += ended.len() as u64;
            rows_max = rows_max.max(spec.rows.len());
            records_max = records_max.max(spec.records.len());
            let name = object_name(&queue, first_day + day);
            let raw = serde_json::to_vec(&ComputeUsage::new(&name, spec.clone()))?.len();
            raw_max = raw_max.max(raw);
            raw_sum += raw as u64;
            raw_count += 1;
            let kept = if day + STORE_RAW_DAYS < days {
                let small = serde_json::to_vec(&ComputeUsage::new(&name, compact(&spec)))?.len();
                compacted_max = compacted_max.max(small);
                small
            } else {
                raw
            };
            total += kept as u64;
            objects += 1;
        }
    }
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    println!(
        "usage store, a simulated year: {jobs_per_day} jobs/day ({attempts} attempts, 1.1 per job), {STORE_QUEUES} \
         queues, {STORE_NAMESPACES} namespaces, {STORE_MEMBERS} members, {} accelerator types",
        STORE_TYPES.len()
    );
    println!(
        "objects kept: {objects} ({STORE_QUEUES} queues x {days} days; the last {STORE_RAW_DAYS} days raw, the rest \
         compacted)"
    );
    println!("serialized JSON kept for the year: {total} bytes ({:.1} MiB)", mib(total));
    println!(
        "per object: raw day max {raw_max} bytes (mean {:.0}; at most {rows_max} rows, {records_max} records), \
         compacted day max {compacted_max} bytes",
        raw_sum as f64 / raw_count.max(1) as f64
    );
    println!("record: {record_s:.1} s in all; total run {:.1} s", started.elapsed().as_secs_f64());
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
    print_memory();
    Ok(())
}

/// Peak resident memory of this process in KiB, from /proc (Linux only).
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Peak memory, and the allocator setting the timings depend on besides the code (see
/// `PURGE_DELAY_MS` in main.rs).
fn print_memory() {
    match peak_rss_kib() {
        Some(kib) => println!("peak resident memory: {:.1} MiB", kib as f64 / 1024.0),
        None => println!("peak resident memory: unknown (no /proc)"),
    }
    match std::env::var(crate::PURGE_DELAY_VAR) {
        Ok(ms) => println!("allocator: mimalloc, freed memory kept {ms} ms ({})", crate::PURGE_DELAY_VAR),
        Err(_) => println!("allocator: mimalloc, its default purge delay"),
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if let Some(trace) = args.replay.clone() {
        return replay(&args, &trace);
    }
    if let Some(jobs_per_day) = args.store_jobs_per_day {
        return store_year(jobs_per_day, args.seed);
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
    if args.fair_share {
        return fair_share(&args, size);
    }
    if !args.arrivals.is_empty() {
        return after_arrivals(&args, size);
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
    print_memory();
    Ok(())
}

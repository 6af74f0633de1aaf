//! Loaders of published workload traces and throughput profiles.
//!
//! The parsing functions take text and a source name (the file), so that every error says
//! `file:line: why`; the `load_*` functions read files and folders and call them. The
//! core's profile parsers ([`computenet_core::profiles`]) are reused for Gavel's matrix
//! and Sia's tables.
//!
//! Formats:
//! - Sia workloads: `name,time,application,num_replicas,batch_size`;
//! - the Philly-derived trace: `timestamp,duration,num_gpus,gpu_time,cluster`;
//! - Alibaba GPU 2023 pods: `name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,
//!   pod_phase,creation_time,deletion_time,scheduled_time`.
//!
//! Any of these files may be gzip-compressed (`.csv.gz`, `.json.gz`): [`read`] decompresses.

use crate::error::{Error, Result};
use computenet_core::job::{AcceleratorConstraint, ReplicaRequest};
use computenet_core::profiles::{
    parse_gavel_matrix, parse_sia_placements, parse_sia_validation, sia_accelerator, ProfileSet,
};
use computenet_core::{Catalogue, Job, Objective, Work};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Reads a whole file, naming it on failure; a `.gz` file is decompressed, so that large
/// traces can be kept compressed.
pub fn read(path: &Path) -> Result<String> {
    let io = |source| Error::Io { path: path.to_path_buf(), source };
    if !is_gzip(path) {
        return std::fs::read_to_string(path).map_err(io);
    }
    let file = std::fs::File::open(path).map_err(io)?;
    let mut text = String::new();
    // Multi-member, as `cat a.gz b.gz` and some compressors write.
    flate2::read::MultiGzDecoder::new(std::io::BufReader::new(file)).read_to_string(&mut text).map_err(io)?;
    Ok(text)
}

fn is_gzip(path: &Path) -> bool {
    path.extension().is_some_and(|x| x == "gz")
}

/// The file name without `.csv` or `.csv.gz`, if it is a CSV file.
pub fn csv_stem(path: &Path) -> Option<&str> {
    let name = path.file_name()?.to_str()?;
    name.strip_suffix(".csv.gz").or_else(|| name.strip_suffix(".csv"))
}

/// `dir/stem.csv`, or `dir/stem.csv.gz` when only that exists.
fn csv_in(dir: &Path, stem: &str) -> PathBuf {
    let plain = dir.join(format!("{stem}.csv"));
    let compressed = dir.join(format!("{stem}.csv.gz"));
    if !plain.is_file() && compressed.is_file() {
        compressed
    } else {
        plain
    }
}

/// A CSV file without quoting: the header's columns and the data rows with line numbers.
struct Table<'a> {
    source: &'a str,
    columns: Vec<&'a str>,
    rows: Vec<(usize, Vec<&'a str>)>,
}

impl<'a> Table<'a> {
    fn parse(text: &'a str, source: &'a str, wanted: &[&str]) -> Result<Self> {
        let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
        let (_, header) = lines.next().ok_or_else(|| Error::parse(source, 1, "empty file (expected a header)"))?;
        let columns: Vec<&str> = header.split(',').map(str::trim).collect();
        for w in wanted {
            if !columns.contains(w) {
                return Err(Error::parse(source, 1, format!("missing column {w:?} (header: {})", header.trim())));
            }
        }
        let mut rows = Vec::new();
        for (i, line) in lines {
            let cells: Vec<&str> = line.split(',').map(str::trim).collect();
            if cells.len() != columns.len() {
                return Err(Error::parse(
                    source,
                    i + 1,
                    format!("expected {} columns, found {}", columns.len(), cells.len()),
                ));
            }
            rows.push((i + 1, cells));
        }
        Ok(Table { source, columns, rows })
    }

    fn cell<'r>(&self, row: &'r (usize, Vec<&'a str>), name: &str) -> &'a str {
        // Columns were checked in `parse`, and every row has all of them.
        self.columns.iter().position(|c| *c == name).and_then(|i| row.1.get(i).copied()).unwrap_or("")
    }

    fn number<T: std::str::FromStr>(&self, row: &(usize, Vec<&'a str>), name: &str) -> Result<T> {
        let raw = self.cell(row, name);
        raw.parse().map_err(|_| Error::parse(self.source, row.0, format!("{name} {raw:?} is not a valid number")))
    }

    /// A number that may be written with a fraction ("401.0") but must be a whole, non-negative count.
    fn whole(&self, row: &(usize, Vec<&'a str>), name: &str) -> Result<u64> {
        let v: f64 = self.number(row, name)?;
        if !(v.is_finite() && v >= 0.0) {
            return Err(Error::parse(self.source, row.0, format!("{name} must be a non-negative number")));
        }
        Ok(v.round() as u64)
    }
}

// ---------------------------------------------------------------------------------------
// Sia

/// One job of a Sia workload file.
#[derive(Debug, Clone, PartialEq)]
pub struct SiaJobRow {
    pub line: usize,
    pub name: String,
    /// Submission offset in seconds.
    pub time_s: u64,
    /// The model folder under `traces/`.
    pub application: String,
    /// GPUs of the rigid gang.
    pub replicas: u32,
    /// Global batch size.
    pub batch_size: u32,
}

/// Parses a Sia workload (`name,time,application,num_replicas,batch_size`).
pub fn parse_sia_workload(text: &str, source: &str) -> Result<Vec<SiaJobRow>> {
    let t = Table::parse(text, source, &["name", "time", "application", "num_replicas", "batch_size"])?;
    let mut out = Vec::with_capacity(t.rows.len());
    for row in &t.rows {
        let name = t.cell(row, "name");
        if name.is_empty() {
            return Err(Error::parse(source, row.0, "empty job name"));
        }
        let replicas: u32 = t.number(row, "num_replicas")?;
        let batch_size: u32 = t.number(row, "batch_size")?;
        if replicas == 0 || batch_size == 0 {
            return Err(Error::parse(source, row.0, "num_replicas and batch_size must be at least 1"));
        }
        out.push(SiaJobRow {
            line: row.0,
            name: name.to_string(),
            time_s: t.whole(row, "time")?,
            application: t.cell(row, "application").to_string(),
            replicas,
            batch_size,
        });
    }
    Ok(out)
}

/// Epochs each Sia model trains (Sia's `applications.py`).
pub const SIA_EPOCHS: [(&str, u32); 7] =
    [("cifar10", 100), ("imagenet", 90), ("deepspeech2", 80), ("yolov3", 50), ("bert", 2), ("ncf", 10), ("gpt_pmp", 2)];

/// Sia's simulator slows measured throughput by this factor (cifar10 1.8, others 1.2).
pub fn sia_slowdown(model: &str) -> f64 {
    if model == "cifar10" {
        1.8
    } else {
        1.2
    }
}

/// Sia's measured models: step times (already slowed as Sia's simulator does) and the
/// iterations each model needs, by global batch size.
#[derive(Debug, Clone, Default)]
pub struct SiaModels {
    pub profiles: ProfileSet,
    /// (global batch size, iterations for the model's epochs), sorted by batch size.
    pub iterations: BTreeMap<String, Vec<(u32, u64)>>,
}

impl SiaModels {
    /// Iterations `model` needs at global batch size `batch`: interpolated linearly between
    /// profiled batch sizes, the nearest profiled size outside their range.
    pub fn iterations(&self, model: &str, batch: u32) -> Option<u64> {
        let table = self.iterations.get(model)?;
        let (first, last) = (table.first()?, table.last()?);
        if batch <= first.0 {
            return Some(first.1);
        }
        if batch >= last.0 {
            return Some(last.1);
        }
        table.windows(2).find(|w| batch >= w[0].0 && batch <= w[1].0).map(|w| {
            let f = f64::from(batch - w[0].0) / f64::from((w[1].0 - w[0].0).max(1));
            (w[0].1 as f64 + f * (w[1].1 as f64 - w[0].1 as f64)).round() as u64
        })
    }
}

/// Iterations after `epochs` from a validation table (cumulative per epoch); past its end,
/// extrapolated at the table's mean iterations per epoch.
pub fn iterations_for_epochs(table: &[u64], epochs: u32) -> Option<u64> {
    let last = *table.last()?;
    let e = epochs.max(1) as usize;
    Some(match table.get(e - 1) {
        Some(v) => *v,
        None => (last as f64 * e as f64 / table.len() as f64).round() as u64,
    })
}

/// Loads Sia's tables from its `traces` folder: for each model of [`SIA_EPOCHS`] present,
/// `placements-{aws,rtx,dgx-ext}.csv` and every `validation-<batch>.csv`.
pub fn load_sia_models(dir: &Path) -> Result<SiaModels> {
    if !dir.is_dir() {
        return Err(Error::Invalid(format!("Sia traces folder {} not found", dir.display())));
    }
    let mut out = SiaModels::default();
    for (model, epochs) in SIA_EPOCHS {
        let mdir = dir.join(model);
        if !mdir.is_dir() {
            continue;
        }
        for gpu in ["aws", "rtx", "dgx-ext"] {
            let path = csv_in(&mdir, &format!("placements-{gpu}"));
            if !path.is_file() {
                continue;
            }
            let accelerator = sia_accelerator(gpu).unwrap_or(gpu);
            let mut set = parse_sia_placements(&read(&path)?, &path.display().to_string(), model, accelerator)?;
            set.scale_model(model, 1.0 / sia_slowdown(model));
            out.profiles.extend(set);
        }
        let mut table = Vec::new();
        let entries = std::fs::read_dir(&mdir).map_err(|source| Error::Io { path: mdir.clone(), source })?;
        let mut files: Vec<PathBuf> = Vec::new();
        for e in entries {
            let e = e.map_err(|source| Error::Io { path: mdir.clone(), source })?;
            files.push(e.path());
        }
        files.sort();
        for path in files {
            let Some(batch) =
                csv_stem(&path).and_then(|n| n.strip_prefix("validation-")).and_then(|b| b.parse::<u32>().ok())
            else {
                continue;
            };
            let source = path.display().to_string();
            let cumulative = parse_sia_validation(&read(&path)?, &source)?;
            let iterations = iterations_for_epochs(&cumulative, epochs)
                .ok_or_else(|| Error::parse(&source, 2, "no epochs in the validation table"))?;
            table.push((batch, iterations));
        }
        table.sort();
        if !table.is_empty() {
            out.iterations.insert(model.to_string(), table);
        }
    }
    if out.iterations.is_empty() {
        return Err(Error::Invalid(format!("no Sia model tables found under {}", dir.display())));
    }
    Ok(out)
}

/// The jobs of a Sia workload: rigid gangs of one-GPU replicas training the model for its
/// epochs at the job's batch size.
pub fn sia_jobs(rows: &[SiaJobRow], models: &SiaModels, source: &str, queue: &str) -> Result<Vec<Job>> {
    rows.iter()
        .map(|r| {
            let steps = models.iterations(&r.application, r.batch_size).ok_or_else(|| {
                Error::parse(source, r.line, format!("no validation table for application {:?}", r.application))
            })?;
            if !models.profiles.has_model(&r.application) {
                return Err(Error::parse(source, r.line, format!("no step-time profile for {:?}", r.application)));
            }
            Ok(Job {
                workload_kind: None,
                tenant: String::new(),
                id: r.name.clone(),
                queue: queue.to_string(),
                priority: 0,
                submitted_at: r.time_s,
                replicas: r.replicas,
                per_replica: ReplicaRequest {
                    cpu_millis: 1000,
                    memory_bytes: 4 << 30,
                    accelerators: 1,
                    extended: BTreeMap::new(),
                },
                accelerator: AcceleratorConstraint::default(),
                cluster_kinds: Vec::new(),
                sites: Vec::new(),
                data_set: None,
                work: Work::ModelSteps {
                    model: r.application.clone(),
                    steps: steps.max(1),
                    batch_size: Some(r.batch_size),
                },
                objective: Objective::Balanced,
                max_runtime_s: None,
                elastic: None,
                restart: None,
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Philly

/// One job of the Philly-derived trace.
#[derive(Debug, Clone, PartialEq)]
pub struct PhillyRow {
    pub line: usize,
    /// Submission time, seconds since 1970 (the trace's clock, no time zone).
    pub submitted_s: i64,
    pub duration_s: f64,
    pub gpus: u32,
    /// The virtual cluster (tenant) of the job.
    pub cluster: String,
}

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DD HH:MM:SS` to seconds since 1970.
pub fn parse_timestamp(s: &str) -> Option<i64> {
    let (date, time) = s.trim().split_once([' ', 'T'])?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, mo, da) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.split(':').map(|p| p.parse::<i64>().ok());
    let (h, mi, se) = (t.next()??, t.next()??, t.next().unwrap_or(Some(0))?);
    let valid = (1..=12).contains(&mo) && (1..=31).contains(&da) && h < 24 && mi < 60 && se < 61 && h >= 0;
    valid.then(|| days_from_civil(y, mo, da) * 86_400 + h * 3600 + mi * 60 + se)
}

/// Parses the Philly-derived trace (`timestamp,duration,num_gpus,gpu_time,cluster`).
pub fn parse_philly(text: &str, source: &str) -> Result<Vec<PhillyRow>> {
    let t = Table::parse(text, source, &["timestamp", "duration", "num_gpus", "cluster"])?;
    let mut out = Vec::with_capacity(t.rows.len());
    for row in &t.rows {
        let raw = t.cell(row, "timestamp");
        let submitted_s = parse_timestamp(raw)
            .ok_or_else(|| Error::parse(source, row.0, format!("timestamp {raw:?} is not YYYY-MM-DD HH:MM:SS")))?;
        let duration_s: f64 = t.number(row, "duration")?;
        if !(duration_s.is_finite() && duration_s >= 0.0) {
            return Err(Error::parse(source, row.0, "duration must be a non-negative number of seconds"));
        }
        let gpus: u32 = t.number(row, "num_gpus")?;
        if gpus == 0 {
            return Err(Error::parse(source, row.0, "num_gpus must be at least 1"));
        }
        out.push(PhillyRow { line: row.0, submitted_s, duration_s, gpus, cluster: t.cell(row, "cluster").to_string() });
    }
    Ok(out)
}

/// GPUs per node-local replica for a gang of `gpus`: whole gangs up to 8, else replicas
/// of 8 (or 4 when 8 does not divide the count).
pub fn gang_shape(gpus: u32) -> (u32, u32) {
    if gpus <= 8 {
        (1, gpus)
    } else if gpus % 8 == 0 {
        (gpus / 8, 8)
    } else if gpus % 4 == 0 {
        (gpus / 4, 4)
    } else {
        (gpus, 1)
    }
}

/// The jobs of the Philly trace: submission times relative to the first job, each
/// virtual cluster a queue (see [`philly_queues`]), and the measured duration as the
/// runtime on `reference` (device-hours = duration x GPUs).
pub fn philly_jobs(rows: &[PhillyRow], reference: &str) -> Vec<Job> {
    let first = rows.iter().map(|r| r.submitted_s).min().unwrap_or(0);
    rows.iter()
        .map(|r| {
            let (replicas, per) = gang_shape(r.gpus);
            Job {
                workload_kind: None,
                tenant: String::new(),
                id: format!("philly-{:05}", r.line - 1),
                queue: format!("vc-{}", r.cluster),
                priority: 0,
                submitted_at: (r.submitted_s - first).max(0) as u64,
                replicas,
                per_replica: ReplicaRequest {
                    cpu_millis: 4000 * u64::from(per),
                    memory_bytes: (16u64 << 30) * u64::from(per),
                    accelerators: per,
                    extended: BTreeMap::new(),
                },
                accelerator: AcceleratorConstraint::default(),
                cluster_kinds: Vec::new(),
                sites: Vec::new(),
                data_set: None,
                work: Work::DeviceHours {
                    hours: r.duration_s * f64::from(r.gpus) / 3600.0,
                    reference: reference.to_string(),
                },
                objective: Objective::Balanced,
                max_runtime_s: None,
                elastic: None,
                restart: None,
            }
        })
        .collect()
}

/// The queues of a Philly replay: one per virtual cluster, sorted.
pub fn philly_queues(rows: &[PhillyRow]) -> Vec<String> {
    let mut q: Vec<String> = rows.iter().map(|r| format!("vc-{}", r.cluster)).collect();
    q.sort();
    q.dedup();
    q
}

// ---------------------------------------------------------------------------------------
// Alibaba GPU 2023

/// One pod of the Alibaba GPU 2023 trace.
#[derive(Debug, Clone, PartialEq)]
pub struct AlibabaPod {
    pub line: usize,
    pub name: String,
    pub cpu_milli: u64,
    pub memory_mib: u64,
    pub num_gpu: u32,
    /// Share of one GPU for GPU-sharing pods (1000 = a whole GPU).
    pub gpu_milli: u32,
    /// Allowed GPU types as written (`V100M16|V100M32`); empty allows any.
    pub gpu_spec: Vec<String>,
    pub creation_s: u64,
    pub deletion_s: u64,
    /// When it was scheduled; `None` for pods that never ran.
    pub scheduled_s: Option<u64>,
}

/// Parses `openb_pod_list_*.csv`.
pub fn parse_alibaba_pods(text: &str, source: &str) -> Result<Vec<AlibabaPod>> {
    let t = Table::parse(
        text,
        source,
        &[
            "name",
            "cpu_milli",
            "memory_mib",
            "num_gpu",
            "gpu_milli",
            "gpu_spec",
            "creation_time",
            "deletion_time",
            "scheduled_time",
        ],
    )?;
    let mut out = Vec::with_capacity(t.rows.len());
    for row in &t.rows {
        let scheduled = t.cell(row, "scheduled_time");
        let scheduled_s = if scheduled.is_empty() { None } else { Some(t.whole(row, "scheduled_time")?) };
        let pod = AlibabaPod {
            line: row.0,
            name: t.cell(row, "name").to_string(),
            cpu_milli: t.number(row, "cpu_milli")?,
            memory_mib: t.number(row, "memory_mib")?,
            num_gpu: t.number(row, "num_gpu")?,
            gpu_milli: t.number(row, "gpu_milli")?,
            gpu_spec: t.cell(row, "gpu_spec").split('|').filter(|s| !s.is_empty()).map(str::to_string).collect(),
            creation_s: t.whole(row, "creation_time")?,
            deletion_s: t.whole(row, "deletion_time")?,
            scheduled_s,
        };
        if pod.name.is_empty() {
            return Err(Error::parse(source, row.0, "empty pod name"));
        }
        if pod.scheduled_s.is_some_and(|s| s > pod.deletion_s) {
            return Err(Error::parse(source, row.0, "scheduled_time is after deletion_time"));
        }
        if pod.cpu_milli == 0 && pod.num_gpu == 0 {
            return Err(Error::parse(source, row.0, "a pod must request CPU or GPUs"));
        }
        out.push(pod);
    }
    Ok(out)
}

/// The jobs of the Alibaba trace. Pods that never ran are left out (their count is
/// returned). A GPU-sharing pod (gpu_milli < 1000) takes one whole GPU: the core
/// allocates whole devices. GPU type constraints keep the types the catalogue knows (the
/// undisclosed G1-G3 codes are dropped; a constraint with no known type is dropped).
/// Runtime: the observed run (deletion - scheduled) on `reference`.
pub fn alibaba_jobs(pods: &[AlibabaPod], catalogue: &Catalogue, reference: &str) -> (Vec<Job>, usize) {
    let first = pods.iter().map(|p| p.creation_s).min().unwrap_or(0);
    let mut skipped = 0;
    let mut jobs = Vec::with_capacity(pods.len());
    for p in pods {
        let Some(scheduled) = p.scheduled_s else {
            skipped += 1;
            continue;
        };
        let run_s = p.deletion_s.saturating_sub(scheduled) as f64;
        let types: Vec<String> = p.gpu_spec.iter().filter_map(|s| catalogue.canonical_name(s)).collect();
        let cores = (p.cpu_milli as f64 / 1000.0).max(1.0);
        let work = if p.num_gpu > 0 {
            Work::DeviceHours { hours: run_s * f64::from(p.num_gpu) / 3600.0, reference: reference.to_string() }
        } else {
            Work::DeviceHours {
                hours: run_s * cores / 3600.0,
                reference: computenet_core::accelerator::CPU_ONLY.into(),
            }
        };
        jobs.push(Job {
            workload_kind: None,
            tenant: String::new(),
            id: p.name.clone(),
            queue: "default".to_string(),
            priority: 0,
            submitted_at: p.creation_s - first,
            replicas: 1,
            per_replica: ReplicaRequest {
                cpu_millis: p.cpu_milli,
                memory_bytes: p.memory_mib << 20,
                accelerators: p.num_gpu,
                extended: BTreeMap::new(),
            },
            accelerator: AcceleratorConstraint { types, min_memory_gib: None },
            cluster_kinds: Vec::new(),
            sites: Vec::new(),
            data_set: None,
            work,
            objective: Objective::Balanced,
            max_runtime_s: None,
            elastic: None,
            restart: None,
        });
    }
    (jobs, skipped)
}

// ---------------------------------------------------------------------------------------
// Gavel

/// Loads Gavel's throughput matrix.
pub fn load_gavel_matrix(path: &Path) -> Result<ProfileSet> {
    Ok(parse_gavel_matrix(&read(path)?, &path.display().to_string())?)
}

// ---------------------------------------------------------------------------------------
// Folders of workloads

/// The `.csv` and `.csv.gz` files of a folder, in natural order (`workload-2` before
/// `workload-10`); a file is itself.
pub fn workload_files(path: &Path) -> Result<Vec<PathBuf>> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    if !path.is_dir() {
        return Err(Error::Invalid(format!("workload {} not found", path.display())));
    }
    let entries = std::fs::read_dir(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
    let mut files = Vec::new();
    for e in entries {
        let p = e.map_err(|source| Error::Io { path: path.to_path_buf(), source })?.path();
        if p.is_file() && csv_stem(&p).is_some() {
            files.push(p);
        }
    }
    files.sort_by_key(|p| natural_key(&p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()));
    if files.is_empty() {
        return Err(Error::Invalid(format!("no .csv or .csv.gz workload files in {}", path.display())));
    }
    Ok(files)
}

fn natural_key(name: &str) -> (String, u64, String) {
    let digits_at = name.find(|c: char| c.is_ascii_digit()).unwrap_or(name.len());
    let rest = &name[digits_at..];
    let end = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
    (name[..digits_at].to_string(), rest[..end].parse().unwrap_or(0), rest[end..].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sia_workload_parses_and_names_bad_rows() {
        let text =
            "name,time,application,num_replicas,batch_size\ncifar10-0,107,cifar10,6,2048\nbert-1,401.0,bert,4,12\n";
        let rows = parse_sia_workload(text, "w.csv").expect("parses");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].time_s, 401);
        assert_eq!((rows[0].replicas, rows[0].batch_size, rows[0].line), (6, 2048, 2));
        let bad = "name,time,application,num_replicas,batch_size\ncifar10-0,107,cifar10,6,2048\nx,1,cifar10,six,2048\n";
        assert_eq!(
            parse_sia_workload(bad, "w.csv").unwrap_err().to_string(),
            "w.csv:3: num_replicas \"six\" is not a valid number"
        );
        let short = "name,time,application,num_replicas,batch_size\nx,1,cifar10,6\n";
        assert_eq!(parse_sia_workload(short, "s.csv").unwrap_err().to_string(), "s.csv:2: expected 5 columns, found 4");
        let header = "name,time,app\nx,1,y\n";
        assert!(parse_sia_workload(header, "h.csv").unwrap_err().to_string().starts_with("h.csv:1: missing column"));
        let zero = "name,time,application,num_replicas,batch_size\nx,1,cifar10,0,64\n";
        assert!(parse_sia_workload(zero, "z.csv").unwrap_err().to_string().starts_with("z.csv:2:"));
    }

    #[test]
    fn philly_parses_timestamps_and_names_bad_rows() {
        assert_eq!(parse_timestamp("1970-01-02 00:00:01"), Some(86_401));
        assert_eq!(parse_timestamp("2017-10-09 07:01:55"), Some(1_507_532_515));
        assert_eq!(parse_timestamp("2017-13-09 07:01:55"), None);
        let text = "timestamp,duration,num_gpus,gpu_time,cluster\n2017-10-09 07:01:55,66.0,1,66.0,11cb48\n\
                    2017-10-09 07:00:55,10.0,16,160.0,6214e9\n";
        let rows = parse_philly(text, "p.csv").expect("parses");
        let jobs = philly_jobs(&rows, "V100");
        assert_eq!(jobs[0].submitted_at, 60, "relative to the earliest submission");
        assert_eq!(jobs[1].submitted_at, 0);
        assert_eq!((jobs[1].replicas, jobs[1].per_replica.accelerators), (2, 8));
        assert_eq!(jobs[0].queue, "vc-11cb48");
        assert_eq!(philly_queues(&rows), vec!["vc-11cb48".to_string(), "vc-6214e9".to_string()]);
        let bad =
            "timestamp,duration,num_gpus,gpu_time,cluster\n2017-10-09 07:01:55,66.0,1,66.0,a\nyesterday,1,1,1,a\n";
        assert_eq!(
            parse_philly(bad, "p.csv").unwrap_err().to_string(),
            "p.csv:3: timestamp \"yesterday\" is not YYYY-MM-DD HH:MM:SS"
        );
        let neg = "timestamp,duration,num_gpus,gpu_time,cluster\n2017-10-09 07:01:55,-5,1,66.0,a\n";
        assert!(parse_philly(neg, "n.csv").unwrap_err().to_string().starts_with("n.csv:2: duration"));
        assert_eq!(gang_shape(12), (3, 4));
        assert_eq!(gang_shape(128), (16, 8));
    }

    #[test]
    fn alibaba_pods_parse_and_convert() {
        let text = "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time\n\
                    p0,12000,16384,1,460,,LS,Running,100,1100,100\n\
                    p1,4000,1024,2,1000,V100M16|V100M32|G2,BE,Succeeded,200,400,300\n\
                    p2,4000,1024,1,1000,,BE,Pending,300,400,\n\
                    p3,8000,1024,0,0,,BE,Succeeded,400,4000,400\n";
        let pods = parse_alibaba_pods(text, "a.csv").expect("parses");
        assert_eq!(pods[2].scheduled_s, None);
        let (jobs, skipped) = alibaba_jobs(&pods, &Catalogue::built_in(), "V100");
        assert_eq!((jobs.len(), skipped), (3, 1));
        assert_eq!(jobs[1].accelerator.types, vec!["V100".to_string(), "V100".to_string()]);
        assert_eq!(jobs[1].submitted_at, 100);
        assert_eq!(jobs[0].per_replica.accelerators, 1, "a shared GPU takes a whole device");
        match &jobs[1].work {
            Work::DeviceHours { hours, .. } => assert!((hours - 100.0 * 2.0 / 3600.0).abs() < 1e-9),
            w => panic!("unexpected work {w:?}"),
        }
        assert_eq!(jobs[2].per_replica.accelerators, 0);
        let bad = "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time\n\
                   p0,12000,16384,1,460,,LS,Running,100,1100,100\np1,x,1,1,1,,LS,Running,1,2,1\n";
        assert_eq!(
            parse_alibaba_pods(bad, "a.csv").unwrap_err().to_string(),
            "a.csv:3: cpu_milli \"x\" is not a valid number"
        );
        let late = "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time\n\
                    p0,12000,16384,1,460,,LS,Running,100,50,90\n";
        assert!(parse_alibaba_pods(late, "l.csv").unwrap_err().to_string().starts_with("l.csv:2: scheduled_time"));
    }

    #[test]
    fn sia_iterations_interpolate_between_batch_sizes() {
        let mut m = SiaModels::default();
        m.iterations.insert("cifar10".into(), vec![(128, 39_000), (256, 19_600)]);
        assert_eq!(m.iterations("cifar10", 128), Some(39_000));
        assert_eq!(m.iterations("cifar10", 192), Some(29_300));
        assert_eq!(m.iterations("cifar10", 64), Some(39_000), "clamped below");
        assert_eq!(m.iterations("cifar10", 4096), Some(19_600), "clamped above");
        assert_eq!(m.iterations("bert", 12), None);
        assert_eq!(iterations_for_epochs(&[10, 20, 30], 2), Some(20));
        assert_eq!(iterations_for_epochs(&[10, 20, 30], 6), Some(60));
        let rows = vec![SiaJobRow {
            line: 7,
            name: "x".into(),
            time_s: 0,
            application: "bert".into(),
            replicas: 1,
            batch_size: 12,
        }];
        let err = sia_jobs(&rows, &m, "w.csv", "q").unwrap_err().to_string();
        assert!(err.starts_with("w.csv:7: no validation table"), "{err}");
    }

    #[test]
    fn gzip_files_read_like_plain_ones() {
        use std::io::Write;
        let dir = std::env::temp_dir().join(format!("computenet-traces-gz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let text = "timestamp,duration,num_gpus,gpu_time,cluster\n2017-10-09 07:00:00,60,1,60,a\n";
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(text.as_bytes()).expect("compress");
        let gz_path = dir.join("workload-2.csv.gz");
        std::fs::write(&gz_path, gz.finish().expect("compress")).expect("write");
        std::fs::write(dir.join("workload-10.csv"), text).expect("write");
        std::fs::write(dir.join("notes.txt"), "not a workload").expect("write");
        assert_eq!(read(&gz_path).expect("reads"), text);
        let files = workload_files(&dir).expect("folder");
        let names: Vec<_> = files.iter().filter_map(|f| csv_stem(f)).collect();
        assert_eq!(names, vec!["workload-2", "workload-10"]);

        // A corrupt archive is an error naming the file, not a panic.
        let bad = dir.join("bad.csv.gz");
        std::fs::write(&bad, b"not gzip").expect("write");
        let err = read(&bad).unwrap_err().to_string();
        assert!(err.contains("bad.csv.gz"), "{err}");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn folders_sort_naturally() {
        let mut names = vec!["workload-10.csv", "workload-2.csv", "workload-1.csv"];
        names.sort_by_key(|n| natural_key(n));
        assert_eq!(names, vec!["workload-1.csv", "workload-2.csv", "workload-10.csv"]);
    }
}

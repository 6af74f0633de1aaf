//! The command line.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// kubectl computenet: the compute pool, its queues and jobs, as the computenet scheduler sees them.
#[derive(Debug, Parser)]
#[command(
    name = "kubectl-computenet",
    bin_name = "kubectl computenet",
    version,
    about = "The computenet compute pool, its queues and jobs, as the scheduler sees them",
    long_about = "The computenet compute pool, its queues and jobs, as the scheduler sees them.\n\n\
        Reads MemberCluster, ComputeQueue and TrainingJob objects and their status (and, for \
        `usage`, ComputeUsage objects) from the hub cluster with the usual kubeconfig \
        ($KUBECONFIG, ~/.kube/config, or --kubeconfig and --context). Needs only read access to \
        them; it never contacts member clusters and never changes anything.",
    after_help = "Installed on the PATH as kubectl-computenet, it runs as `kubectl computenet ...`."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options of every subcommand.
#[derive(Debug, Args)]
pub struct Global {
    /// Kubeconfig of the hub [default: $KUBECONFIG, else ~/.kube/config]
    #[arg(long, global = true, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context to use [default: the current context]
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,
    /// Namespace of the job for `explain` and `dry-run` [default: the context's namespace, else
    /// "default"]; for `usage`, only this namespace's usage [default: all namespaces]
    #[arg(short = 'n', long, global = true, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// Output format
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = Output::Table, value_name = "FORMAT")]
    pub output: Output,
}

/// How reports are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Aligned columns for people
    Table,
    /// The report as JSON
    Json,
    /// The report as YAML
    Yaml,
    /// Comma-separated values with a header line (`usage` only)
    Csv,
}

/// What `usage` sums by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum GroupBy {
    Namespace,
    Queue,
    Member,
    Site,
    /// Accelerator type ("CPU" for CPU-only attempts)
    Accelerator,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Capacity and efficiency of the pool: totals by cluster kind and accelerator, then one row per member
    #[command(long_about = "Capacity and efficiency of the pool.\n\n\
        First the totals by cluster kind and accelerator type (CPU cores for CPU capacity): TOTAL \
        counts every member, FREE only Ready members that are not cordoned, i.e. what a new job \
        could use now. Then one row per member: readiness, schedulable nodes, free/total \
        accelerators per type and CPU cores, peak TFLOPS of its accelerators (of its cores for a \
        CPU-only member), TFLOPS per kW of facility power (board power x PUE), PUE, energy price \
        and the age of the scheduler's last heartbeat. Figures come from MemberCluster status, \
        written by `computenet serve`.")]
    Pool,
    /// Queues: pending, admitted and running jobs, usage against quota, and the pending jobs in order
    #[command(long_about = "Queues: per ComputeQueue the pending, admitted and running jobs, the usage of each \
        quota by admitted jobs against its nominal amount (with borrowing and lending limits), and the \
        pending jobs in the order the scheduler will consider them (queue position, then priority and \
        submission time) with the reason each one waits.")]
    Queue {
        /// Only this ComputeQueue
        name: Option<String>,
    },
    /// Why a job is where it is, or why it waits
    #[command(long_about = "Why a TrainingJob is where it is, or why it waits: its phase and queue position, \
        its placement (member, accelerator, nodes, estimated runtime, energy and cost), the scheduler's \
        explanation (the best candidates with their score breakdown, lower is better, and why every \
        other member was rejected) and its conditions. The namespace comes from -n, else the \
        kubeconfig context.")]
    Explain {
        /// Name of the TrainingJob, or KIND/NAME of a JobSet, TrainJob or PyTorchJob queued
        /// by label (jobset/NAME, trainjob/NAME, pytorchjob/NAME): the TrainingJob that queues it
        job: String,
    },
    /// Where a TrainingJob would go now, when it would start and end, its energy and cost, without creating it
    #[command(
        name = "dry-run",
        long_about = "Where a TrainingJob would go now, without creating it.\n\n\
            Runs the scheduler's own scheduling cycle on a copy of the pool rebuilt from the members' \
            status (free capacity per node group, which already counts the jobs running there), with \
            the hub's queues, quotas and running jobs, and with the job queued behind the hub's other \
            pending jobs as if submitted now, so the answer reflects queue order. Prints the decision \
            (admitted to a member and accelerator, a reservation, preemption, or queued with the \
            reason), the estimated start (now, or the reservation's time) and finish, energy and \
            cost, the best candidates with their scores and why other members were rejected.\n\n\
            Runtimes come from the measured throughput profiles the scheduler uses: those of the \
            hub's ConfigMap (--profiles-configmap in --profiles-namespace), plus any given with \
            --profiles; each candidate says where its runtime estimate came from (Profile, \
            ScaledProfile or Fallback). A ConfigMap that is missing, cannot be read or does not \
            parse is noted in the report and left out.\n\n\
            It can differ from what `computenet serve` later does: the status may be a few seconds \
            old, running jobs are matched to node groups rather than to their nodes, and jobs \
            submitted or ending meanwhile change the picture.",
        after_help = "Example:\n  kubectl computenet dry-run -f job.yaml -n team-a\n  cat job.yaml | kubectl computenet dry-run -f -\n  kubectl computenet dry-run -f job.yaml --profiles lab.yaml --profiles-configmap ''"
    )]
    DryRun {
        /// TrainingJob manifest (YAML or JSON); `-` reads standard input
        #[arg(short = 'f', long = "filename", value_name = "FILE")]
        file: PathBuf,
        /// Throughput profile files or folders (repeatable), added to the ConfigMap's: Gavel's
        /// matrix (*.gavel.json), Sia tables (sia.<model>.placements-<gpu>.csv or
        /// <model>/placements-<gpu>.csv) or computenet's own format (*.yaml)
        #[arg(long = "profiles", value_name = "PATH")]
        profiles: Vec<PathBuf>,
        /// The hub's ConfigMap of throughput profiles, as `computenet serve` reads it; '' reads none
        #[arg(long, value_name = "NAME", default_value = "computenet-profiles")]
        profiles_configmap: String,
        /// Namespace of the profiles ConfigMap
        #[arg(long, value_name = "NAMESPACE", default_value = "computenet-system")]
        profiles_namespace: String,
    },
    /// Metered usage (GPU-hours, energy, cost, CO2e, efficiency) by queue, namespace, member, site or accelerator
    #[command(
        long_about = "Metered usage of job attempts, summed by queue (default), namespace, member, site or \
            accelerator type, or by several of them (--by queue,namespace), over a time window, with a \
            TOTAL row.\n\n\
            Reads the hub's ComputeUsage objects (`kubectl get cnu`), one per queue and UTC day, which \
            the computenet service writes. Reading them needs get and list on computeusages, which the \
            ClusterRole computenet-usage-reader grants (usage names every tenant's namespaces, so \
            `view` does not include it).\n\n\
            The objects hold hourly buckets (daily buckets for days older than the service's raw \
            retention): a bucket counts when its start is in [--since, --until), so the window is \
            rounded to bucket starts (to the hour, or to the day for compacted days). An attempt is \
            recorded when it ends: attempts still running are not counted yet, and their time \
            appears, in the buckets it fell in, once they end.\n\n\
            --since and --until take an RFC 3339 time (2026-11-01T08:00:00Z, or with an offset), a \
            UTC date (2026-11-01, its midnight), a duration before now (30m, 24h, 7d, 2w, 90s) or \
            `now`. The default window is the current UTC month so far.\n\n\
            Columns: ATTEMPTS counts an attempt once per bucket it had time in; GPU-HOURS are \
            accelerator-hours; CPU-CORE-HOURS the requested cores times hours; ENERGY(kWh) the \
            facility energy (device power times PUE); MEASURED(%) the part of that energy \
            apportioned from measured power rather than estimated from the catalogue; COST the \
            energy cost at the members' prices; CO2e(kg) at the members' grid intensity; TFLOPS/W \
            the useful TFLOPS per facility watt achieved (useful work over energy). -o csv prints a \
            header line, one line per group and the TOTAL line (TOTAL in the first column), with \
            plain numbers (no units or separators, 12 significant digits) and the measured energy \
            and useful TFLOP to recompute the ratios over any lines; -o json and -o yaml an object with \
            since, until, by, groups and total.",
        after_help = "Examples:\n  kubectl computenet usage\n  kubectl computenet usage --by queue,namespace --since 7d\n  kubectl computenet usage --by member --since 2026-11-01 --until 2026-12-01 -o csv\n  kubectl computenet usage --queue research -n team-a --since 24h -o json"
    )]
    Usage {
        /// What to sum by: one or more of namespace, queue, member, site, accelerator, comma-separated
        #[arg(long, value_enum, value_delimiter = ',', default_value = "queue", value_name = "KEYS")]
        by: Vec<GroupBy>,
        /// Start of the window: RFC 3339, a UTC date, or a duration before now (7d) [default: start of the current UTC month]
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// End of the window (excluded): RFC 3339, a UTC date, or a duration before now [default: now]
        #[arg(long, value_name = "TIME")]
        until: Option<String>,
        /// Only this ComputeQueue's usage
        #[arg(long, value_name = "NAME")]
        queue: Option<String>,
        /// Only usage on this member cluster
        #[arg(long, value_name = "NAME")]
        member: Option<String>,
    },
}

//! `computenet serve`: the scheduler service in the hub cluster.

use anyhow::Context;
use computenet_core::learn::LearnConfig;
use computenet_core::AdaptConfig;
use computenet_scheduler::admission::Certificate;
use computenet_scheduler::backoff::BackoffPolicy;
use computenet_scheduler::lease::LeaseConfig;
use computenet_scheduler::profiles::ProfileSource;
use computenet_scheduler::progress::ProgressConfig;
use computenet_scheduler::schedule::AdaptPolicy;
use computenet_scheduler::web::{self, WebAccess, WebConfig, WebState};
use computenet_scheduler::webauth::{Authenticator, CachePolicy, KubeReviewer};
use computenet_scheduler::ServeConfig;
use kube::config::{KubeConfigOptions, Kubeconfig};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Kubeconfig of the hub; default: $KUBECONFIG, ~/.kube/config, or in-cluster.
    #[arg(long, env = "COMPUTENET_KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// Longest time between scheduling cycles, in milliseconds (changes trigger one sooner).
    #[arg(long, default_value_t = 1000)]
    interval_ms: u64,
    /// Least time from the start of one scheduling cycle to the start of the next, in
    /// milliseconds (50 to 2000), however many changes wait; it outweighs --interval-ms.
    /// Lower answers a single change sooner; higher costs less CPU per job in a burst.
    #[arg(long, env = "COMPUTENET_MIN_INTERVAL_MS",
          default_value_t = computenet_scheduler::run::DEFAULT_MIN_PASS_SPACING.as_millis() as u64,
          value_parser = clap::value_parser!(u64).range(50..=2000))]
    min_interval_ms: u64,
    /// Threads for the service's network I/O (watches, writes, the webhook, metrics), 0 to
    /// 64; 0 is one per CPU (or TOKIO_WORKER_THREADS). Scheduling cycles run on a thread of
    /// their own besides these.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(0..=64))]
    io_threads: u16,
    /// Seconds a member may be unreachable before it is NotReady and its not-yet-running jobs move.
    #[arg(long, default_value_t = 30)]
    member_timeout_s: u64,
    /// Run without leader election (only safe with a single replica).
    #[arg(long)]
    no_leader_election: bool,
    /// Namespace of the leader Lease.
    #[arg(long, default_value = "computenet-system")]
    lease_namespace: String,
    #[arg(long, default_value = "computenet-scheduler")]
    lease_name: String,
    /// Seconds a leader holds the lease without renewing it (at least 3). The leader renews
    /// every fifth of it, each call with a timeout, and stops every write (in-flight work is
    /// cancelled and the process exits) before it could run out; a standby takes over once
    /// it has seen the lease unchanged this long on its own clock, whatever the wall clocks
    /// say. SIGTERM releases the lease, so a standby takes over at once. A leader whose hub
    /// caches are not ready within twice this long releases it too, and exits.
    #[arg(long, default_value_t = 15)]
    lease_duration_s: u64,
    /// This replica's identity in the lease; default: host name and process id.
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Concurrent writes to the hub and the members.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Address of the HTTP server (/metrics, /healthz, /readyz, /api/pool and the dashboard
    /// at /); `:PORT` listens on all interfaces, '' disables it.
    #[arg(long, default_value = "0.0.0.0:8080", value_name = "ADDR")]
    listen: String,
    /// Serve no HTTP at all (same as --listen '').
    #[arg(long)]
    no_http: bool,
    /// Serve the mutating admission webhook (HTTPS, POST /mutate) on ADDR: it stores
    /// JobSets, TrainJobs and PyTorchJobs created with the label computenet.io/queue-name
    /// suspended. '' serves none (objects that get past are suspended by the scheduler).
    #[arg(long, default_value = "", value_name = "ADDR")]
    webhook_listen: String,
    /// Folder with the webhook's certificate and key, tls.crt and tls.key (PEM), e.g. a
    /// mounted cert-manager Secret. Without it the service makes its own (see
    /// --webhook-cert-secret).
    #[arg(long, value_name = "DIR")]
    webhook_cert_dir: Option<std::path::PathBuf>,
    /// Secret in the lease namespace where the service keeps the webhook certificate it
    /// makes (a CA and a serving certificate for --webhook-hosts), shared by all replicas.
    #[arg(long, default_value = "computenet-webhook-cert", value_name = "NAME")]
    webhook_cert_secret: String,
    /// Host names (or IP addresses) the apiserver calls the webhook by, comma-separated:
    /// the Service's <name>.<namespace>.svc in a cluster.
    #[arg(long, value_delimiter = ',', value_name = "HOSTS")]
    webhook_hosts: Vec<String>,
    /// MutatingWebhookConfiguration whose caBundle the service sets to its certificate's CA.
    #[arg(long, default_value = "computenet", value_name = "NAME")]
    webhook_configuration: String,
    /// Who may read /api/pool, the data behind the dashboard (every tenant's jobs).
    /// kubernetes: a request needs `Authorization: Bearer <token>` whose user the hub
    /// authenticates (TokenReview) and allows to `get` the non-resource URL
    /// /computenet/api/pool (SubjectAccessReview; the chart's ClusterRole
    /// computenet-dashboard-viewer grants it); verdicts are cached for 30 s (refusals 10 s). The dashboard page takes the
    /// token as #token=... in its URL or in a form. none: no check, only allowed with a
    /// loopback --listen (reach it with `kubectl port-forward`). /healthz, /readyz and
    /// /metrics are always open.
    #[arg(long, value_enum, default_value_t = WebAuth::Kubernetes, value_name = "MODE")]
    web_auth: WebAuth,
    /// Let /metrics name jobs: adds computenet_pending_job_position{queue,namespace,job}.
    /// Off by default, because /metrics is open to whoever reaches the port.
    #[arg(long)]
    metrics_job_labels: bool,
    /// Pending jobs per queue shown with their position (dashboard, and metrics with
    /// --metrics-job-labels).
    #[arg(long, default_value_t = 10, value_name = "N")]
    top_pending: usize,
    #[command(flatten)]
    profiles: crate::estimate::ProfileArgs,
    /// ConfigMap of throughput profiles, watched while running (each key a document:
    /// *.gavel.json, sia.<model>.placements-<gpu>.csv or *.yaml); '' disables it.
    #[arg(long, default_value = "computenet-profiles", value_name = "NAME")]
    profiles_configmap: String,
    /// Namespace of the profiles ConfigMap; default: the lease namespace.
    #[arg(long, value_name = "NAMESPACE")]
    profiles_namespace: Option<String>,
    /// First delay before retrying a job whose dispatch failed, in milliseconds; it
    /// doubles with each failure in a row.
    #[arg(long, default_value_t = 1000, value_name = "MS")]
    dispatch_backoff_ms: u64,
    /// Longest delay between dispatch attempts of one job, in seconds.
    #[arg(long, default_value_t = 300, value_name = "S")]
    dispatch_backoff_max_s: u64,
    /// This hub's identity on members: a label (computenet.io/hub) on every object it
    /// creates on Kubernetes members and a word in its Slurm batch jobs' comments. Only
    /// objects carrying it are this hub's (found again, or cleaned up as orphans), so
    /// several hubs can share a member. Up to 63 letters, digits, '-', '_' or '.'.
    /// Default: the UID of the lease namespace (stable while the hub's namespace exists,
    /// different for every hub cluster); set it when two hubs share one namespace, and
    /// keep it when moving a hub, or its jobs on members are no longer recognised.
    #[arg(long, env = "COMPUTENET_HUB_ID", value_name = "ID")]
    hub_id: Option<String>,
    /// How often the Secrets that MemberClusters reference (kubeconfigs, Slurm tokens and
    /// keys) are re-read, in seconds: changed content reconnects the member without a
    /// restart. A member refusing the credentials (HTTP 401) has them re-read within a few
    /// seconds regardless.
    #[arg(long, default_value_t = 30, value_name = "S")]
    secret_check_interval_s: u64,
    /// The only namespace member credentials are read from: a MemberCluster's Secret
    /// references must name it, and the Secrets must carry the label
    /// computenet.io/credentials=true; otherwise the member is not connected (Ready=False,
    /// reason SecretNotAllowed). Default: the lease namespace.
    #[arg(long, value_name = "NAMESPACE")]
    credentials_namespace: Option<String>,
    /// Secret in the lease namespace holding the key the service seals its admissions with
    /// (created with 32 random bytes when absent). A TrainingJob whose admission carries no
    /// valid seal of this key is never dispatched: it is reset and decided again. Replicas
    /// of one hub share it; deleting it re-decides every admitted, not yet dispatched job.
    #[arg(long, default_value = "computenet-admission-key", value_name = "NAME")]
    admission_key_secret: String,
    #[command(flatten)]
    progress: ProgressArgs,
    /// Seconds between re-optimisation rounds: after a pass's admissions, running jobs
    /// whose spec.checkpoint.restartable is true may be moved to a faster (or, for
    /// Cheapest/Greenest jobs, more efficient) member or accelerator, and elastic ones
    /// (spec.elastic) grown into idle devices or shrunk back to their asked size for a
    /// pending job. A moved job is stopped gracefully (SIGTERM, its gracePeriodSeconds)
    /// before its new attempt starts, and keeps its progress. 0 turns adaptation off.
    #[arg(long, default_value_t = 300, value_name = "S")]
    adapt_interval_s: u64,
    /// A move or growth must save more than this many times the job's
    /// restartCostSeconds over its remaining work.
    #[arg(long, default_value_t = 2.0, value_name = "X")]
    adapt_gain_factor: f64,
    /// Most moves and resizes of one job in any hour.
    #[arg(long, default_value_t = 2, value_name = "N")]
    adapt_max_moves_per_hour: u32,
    #[command(flatten)]
    metering: MeteringArgs,
}

/// Metering: every ended attempt recorded once in the usage store (ComputeUsage objects,
/// one per queue and UTC day), fair share with memory and budgets.
#[derive(Debug, clap::Args)]
struct MeteringArgs {
    /// Half life of past usage in fair share, hours: a queue's ordering share is
    /// (current dominant share + decayed past usage over its quota) / weight, and past
    /// usage counts half after this long. 0: plain weighted DRF on current usage.
    #[arg(long, default_value_t = 168.0, value_name = "H")]
    fair_share_half_life_h: f64,
    /// Length of a usage row's time bucket, seconds (the finest window usage reports and
    /// budgets see). A divisor of 3600, at least 60.
    #[arg(long, default_value_t = 3600, value_name = "S")]
    usage_bucket_s: u64,
    /// Least seconds between two writes of the usage store (records wait this long at most).
    #[arg(long, default_value_t = 10, value_name = "S")]
    usage_flush_interval_s: u64,
    /// Days a day's usage keeps hourly rows and per-attempt records; older days keep daily
    /// rows only.
    #[arg(long, default_value_t = 7, value_name = "DAYS")]
    usage_raw_retention_days: u64,
    /// Days a day's usage is kept at all.
    #[arg(long, default_value_t = 400, value_name = "DAYS")]
    usage_retention_days: u64,
}

/// Reading running jobs' progress (steps per second) from Prometheus, to learn throughput.
#[derive(Debug, clap::Args)]
struct ProgressArgs {
    /// PromQL answering a running job's training steps per second, run against the
    /// Prometheus of the member the job runs on (its spec.prometheus); '' (the default)
    /// reads none. Only jobs with work.model and work.steps are read. Naming the job
    /// ($uid: the TrainingJob UID, also the label computenet.io/job-uid on its pods;
    /// $namespace, $name; $remote: its Job or Slurm batch job name, cn-...) runs one query
    /// per job, e.g. 'rate(training_steps_total{job_uid="$uid"}[2m])'; otherwise one query
    /// per member ($cluster, $site) answering a series per job labelled with
    /// --progress-uid-label, e.g. 'sum by (job_uid) (rate(training_steps_total{cluster="$cluster"}[2m]))'.
    #[arg(long, default_value = "", value_name = "PROMQL")]
    progress_query: String,
    /// The label holding the job's UID in a per-member --progress-query's answer.
    #[arg(long, default_value = "job_uid", value_name = "LABEL")]
    progress_uid_label: String,
    /// How often progress is read, in seconds.
    #[arg(long, default_value_t = 30, value_name = "S")]
    progress_interval_s: u64,
    /// Readings of a placement (or a job) before its learned rate is used in estimates.
    #[arg(long, default_value_t = 3, value_name = "N")]
    progress_min_samples: u32,
    /// Weight of a new reading in the moving averages (0 to 1).
    #[arg(long, default_value_t = 0.2, value_name = "W")]
    progress_weight: f64,
}

impl ProgressArgs {
    fn config(&self) -> anyhow::Result<Option<ProgressConfig>> {
        let query = self.progress_query.trim();
        if query.is_empty() {
            return Ok(None);
        }
        if !(self.progress_weight > 0.0 && self.progress_weight <= 1.0) {
            anyhow::bail!("--progress-weight {}: expected a number above 0 and at most 1", self.progress_weight);
        }
        Ok(Some(ProgressConfig {
            query: query.to_string(),
            uid_label: self.progress_uid_label.trim().to_string(),
            interval: Duration::from_secs(self.progress_interval_s.max(1)),
            learn: LearnConfig {
                weight: self.progress_weight,
                min_samples: self.progress_min_samples.max(1),
                ..LearnConfig::default()
            },
        }))
    }
}

/// How /api/pool is protected (see `--web-auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum WebAuth {
    Kubernetes,
    None,
}

/// Refuses an unauthenticated /api/pool on an address other machines can reach.
fn check_web_auth(auth: WebAuth, addr: SocketAddr) -> anyhow::Result<()> {
    if auth == WebAuth::None && !addr.ip().is_loopback() {
        anyhow::bail!(
            "--web-auth none serves every tenant's jobs without authentication, so it needs a loopback \
             --listen (e.g. 127.0.0.1:{}), not {addr}; use --web-auth kubernetes to serve other hosts",
            addr.port()
        );
    }
    Ok(())
}

/// The HTTP address, or `None` when disabled.
fn listen_addr(args: &Args) -> anyhow::Result<Option<SocketAddr>> {
    let listen = args.listen.trim();
    if args.no_http || listen.is_empty() {
        return Ok(None);
    }
    socket_addr("--listen", listen, "0.0.0.0:8080").map(Some)
}

/// A flag's address: HOST:PORT, or :PORT for all interfaces.
fn socket_addr(flag: &str, text: &str, example: &str) -> anyhow::Result<SocketAddr> {
    let full = if text.starts_with(':') { format!("0.0.0.0{text}") } else { text.to_string() };
    full.parse().with_context(|| format!("{flag} {text:?}: expected HOST:PORT, e.g. {example}"))
}

/// Metering's settings from the flags.
fn metering_config(args: &MeteringArgs) -> anyhow::Result<computenet_scheduler::metering::MeteringConfig> {
    let h = args.fair_share_half_life_h;
    if !(h.is_finite() && (0.0..=87_600.0).contains(&h)) {
        anyhow::bail!("--fair-share-half-life-h must be between 0 and 87600 hours, not {h}");
    }
    if !(60..=3_600).contains(&args.usage_bucket_s) || 3_600 % args.usage_bucket_s != 0 {
        anyhow::bail!("--usage-bucket-s must divide 3600 and be at least 60, not {}", args.usage_bucket_s);
    }
    if args.usage_raw_retention_days == 0 {
        anyhow::bail!("--usage-raw-retention-days must be at least 1: a day still being written must keep its keys");
    }
    if args.usage_raw_retention_days > args.usage_retention_days {
        anyhow::bail!(
            "--usage-raw-retention-days ({}) must not exceed --usage-retention-days ({})",
            args.usage_raw_retention_days,
            args.usage_retention_days
        );
    }
    Ok(computenet_scheduler::metering::MeteringConfig {
        bucket_s: args.usage_bucket_s,
        flush_interval: Duration::from_secs(args.usage_flush_interval_s),
        half_life_s: h * 3_600.0,
        raw_retention_days: args.usage_raw_retention_days,
        retention_days: args.usage_retention_days,
    })
}

/// The re-optimisation round from the flags.
fn adapt_policy(args: &Args) -> anyhow::Result<AdaptPolicy> {
    if !(args.adapt_gain_factor.is_finite() && args.adapt_gain_factor >= 0.0) {
        anyhow::bail!("--adapt-gain-factor must be a number of at least 0, not {}", args.adapt_gain_factor);
    }
    Ok(AdaptPolicy {
        interval: (args.adapt_interval_s > 0).then(|| Duration::from_secs(args.adapt_interval_s)),
        config: AdaptConfig {
            gain_factor: args.adapt_gain_factor,
            max_moves_per_hour: args.adapt_max_moves_per_hour,
            ..AdaptConfig::default()
        },
    })
}

async fn client(args: &Args) -> anyhow::Result<kube::Client> {
    let config = match &args.kubeconfig {
        Some(path) => {
            let kubeconfig =
                Kubeconfig::read_from(path).with_context(|| format!("reading kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?
        }
        None => kube::Config::infer()
            .await
            .context("no kubeconfig found and not running in a cluster (use --kubeconfig)")?,
    };
    Ok(kube::Client::try_from(config)?)
}

/// The runtime the service runs on: its cycles on the calling thread (`block_on`), its I/O
/// on `threads` workers (0: one per CPU). One is the default: the I/O mostly waits, and
/// with a worker per CPU beside the cycles' thread the process switched threads far more
/// often (in a 2,000-job burst on 2 CPUs, 88,000 context switches in 90 s against 51,000
/// with one worker).
fn io_runtime(threads: u16) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if threads > 0 {
        builder.worker_threads(usize::from(threads));
    }
    builder.enable_all().build()
}

pub fn run(args: Args) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,kube=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = io_runtime(args.io_threads)?;
    let listen = listen_addr(&args)?;
    let progress = args.progress.config()?;
    if let Some(addr) = listen {
        check_web_auth(args.web_auth, addr)?;
    }
    runtime.block_on(async move {
        let client = client(&args).await?;
        // Probes and metrics come first, so a replica waiting for the lease answers them too.
        let http = match listen {
            Some(addr) => {
                let access = match args.web_auth {
                    WebAuth::None => WebAccess::Open,
                    WebAuth::Kubernetes => WebAccess::Kubernetes(Arc::new(Authenticator::new(
                        Box::new(KubeReviewer::new(client.clone())),
                        CachePolicy::default(),
                    ))),
                };
                let config = WebConfig { top_n: args.top_pending, job_labels: args.metrics_job_labels, access };
                web::try_start(addr, WebState::new(config)?).await
            }
            None => None,
        };
        let web = http.as_ref().map(|s| s.state().clone());
        let webhook = args.webhook_listen.trim();
        if !webhook.is_empty() {
            let addr = socket_addr("--webhook-listen", webhook, ":9443")?;
            let certificate = match &args.webhook_cert_dir {
                Some(dir) => Certificate::Files(dir.clone()),
                None if args.webhook_hosts.is_empty() => anyhow::bail!(
                    "--webhook-listen needs --webhook-cert-dir, or --webhook-hosts for a certificate the service makes"
                ),
                None => Certificate::Managed {
                    namespace: args.lease_namespace.clone(),
                    secret: args.webhook_cert_secret.clone(),
                    hosts: args.webhook_hosts.iter().map(|h| h.trim().to_string()).filter(|h| !h.is_empty()).collect(),
                    configuration: args.webhook_configuration.clone(),
                },
            };
            computenet_scheduler::admission::start(&client, addr, &certificate).await?;
        }
        let identity = args.identity.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
            format!("{}-{}", host.trim(), std::process::id())
        });
        // Missing CRDs are the likelier mistake, and their message says what to do.
        computenet_scheduler::run::check_crds(&client).await?;
        let hub_id = computenet_scheduler::hub::hub_id(&client, args.hub_id.as_deref(), &args.lease_namespace).await?;
        let namespace = args.profiles_namespace.clone().unwrap_or_else(|| args.lease_namespace.clone());
        let configmap = args.profiles_configmap.trim();
        let profiles = ProfileSource {
            files: args.profiles.profiles()?,
            config_map: (!configmap.is_empty()).then(|| (namespace, configmap.to_string())),
            cycle: args.profiles.cycle(),
        };
        let config = ServeConfig {
            interval: Duration::from_millis(args.interval_ms.max(10)),
            min_pass_spacing: Duration::from_millis(args.min_interval_ms),
            member_timeout: Duration::from_secs(args.member_timeout_s.max(1)),
            lease: (!args.no_leader_election).then(|| LeaseConfig {
                namespace: args.lease_namespace.clone(),
                name: args.lease_name.clone(),
                identity,
                duration: Duration::from_secs(args.lease_duration_s.max(3)),
            }),
            concurrency: args.concurrency,
            web,
            profiles,
            backoff: BackoffPolicy {
                base: Duration::from_millis(args.dispatch_backoff_ms.max(1)),
                cap: Duration::from_secs(args.dispatch_backoff_max_s.max(1)),
            },
            hub_id,
            secret_check_interval: Duration::from_secs(args.secret_check_interval_s.max(1)),
            credentials_namespace: args.credentials_namespace.clone().unwrap_or_else(|| args.lease_namespace.clone()),
            admission_key_secret: (args.lease_namespace.clone(), args.admission_key_secret.clone()),
            progress,
            adapt: adapt_policy(&args)?,
            metering: metering_config(&args.metering)?,
        };
        // Stop on Ctrl-C or SIGTERM (what Kubernetes sends before killing a pod).
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("installing the SIGTERM handler")?;
        let shutdown = async move {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        };
        let result = computenet_scheduler::run(client, config, shutdown).await;
        // Stop the HTTP server with the controllers, letting requests in flight finish.
        if let Some(server) = http {
            server.stop(Duration::from_secs(5)).await;
        }
        result.map_err(anyhow::Error::from)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn unauthenticated_web_only_on_loopback() {
        assert!(check_web_auth(WebAuth::None, addr("127.0.0.1:8080")).is_ok());
        assert!(check_web_auth(WebAuth::None, addr("[::1]:8080")).is_ok());
        for remote in ["0.0.0.0:8080", "10.1.2.3:8080", "[::]:8080"] {
            let error = check_web_auth(WebAuth::None, addr(remote)).unwrap_err().to_string();
            assert!(error.contains("--web-auth none") && error.contains("--listen"), "{error}");
        }
        assert!(check_web_auth(WebAuth::Kubernetes, addr("0.0.0.0:8080")).is_ok());
    }

    #[test]
    fn kubernetes_authentication_and_no_job_labels_by_default() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: Args,
        }
        let cli = <Cli as clap::Parser>::try_parse_from(["serve"]).unwrap();
        assert_eq!(cli.args.web_auth, WebAuth::Kubernetes);
        assert!(!cli.args.metrics_job_labels);
        let cli = <Cli as clap::Parser>::try_parse_from(["serve", "--web-auth", "none"]).unwrap();
        assert_eq!(cli.args.web_auth, WebAuth::None);
        assert!(<Cli as clap::Parser>::try_parse_from(["serve", "--web-auth", "basic"]).is_err());
    }

    #[test]
    fn cycles_at_least_a_second_apart_and_one_io_thread_by_default() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: Args,
        }
        let parse = |a: &[&str]| <Cli as clap::Parser>::try_parse_from(a).unwrap().args;
        let default = parse(&["serve"]);
        assert_eq!((default.min_interval_ms, default.io_threads), (1000, 1));
        let tuned = parse(&["serve", "--min-interval-ms", "100", "--io-threads", "0"]);
        assert_eq!((tuned.min_interval_ms, tuned.io_threads), (100, 0));
        let runtime = io_runtime(2).unwrap();
        assert_eq!(runtime.metrics().num_workers(), 2);
        assert!(io_runtime(0).unwrap().metrics().num_workers() >= 1, "0: one per CPU");
        for bad in
            [["--io-threads", "-1"], ["--io-threads", "65"], ["--min-interval-ms", "10"], ["--min-interval-ms", "2001"]]
        {
            let argv = ["serve"].into_iter().chain(bad);
            assert!(<Cli as clap::Parser>::try_parse_from(argv).is_err(), "{bad:?} is refused");
        }
    }

    #[test]
    fn progress_is_read_only_when_a_query_is_given() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: Args,
        }
        let parse = |extra: &[&str]| {
            let argv = ["serve"].iter().chain(extra).copied();
            <Cli as clap::Parser>::try_parse_from(argv).unwrap().args.progress.config()
        };
        assert_eq!(parse(&[]).unwrap(), None);
        let c = parse(&["--progress-query", r#"rate(steps{job_uid="$uid"}[2m])"#, "--progress-interval-s", "10"])
            .unwrap()
            .expect("configured");
        assert!(c.per_job());
        assert_eq!((c.interval, c.uid_label.as_str(), c.learn.min_samples), (Duration::from_secs(10), "job_uid", 3));
        assert!(parse(&["--progress-query", "x", "--progress-weight", "0"]).is_err());
        assert!(parse(&["--progress-query", "x", "--progress-weight", "NaN"]).is_err());
    }

    #[test]
    fn adaptation_runs_every_five_minutes_by_default_and_zero_turns_it_off() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: Args,
        }
        let parse = |a: &[&str]| <Cli as clap::Parser>::try_parse_from(a).unwrap().args;
        let default = adapt_policy(&parse(&["serve"])).unwrap();
        assert_eq!(default.interval, Some(Duration::from_secs(300)));
        assert_eq!(default.config, AdaptConfig::default());
        let tuned = adapt_policy(&parse(&[
            "serve",
            "--adapt-interval-s",
            "5",
            "--adapt-gain-factor",
            "1.5",
            "--adapt-max-moves-per-hour",
            "6",
        ]))
        .unwrap();
        assert_eq!(
            (tuned.interval, tuned.config.gain_factor, tuned.config.max_moves_per_hour),
            (Some(Duration::from_secs(5)), 1.5, 6)
        );
        assert_eq!(adapt_policy(&parse(&["serve", "--adapt-interval-s", "0"])).unwrap().interval, None);
        assert!(adapt_policy(&parse(&["serve", "--adapt-gain-factor", "NaN"])).is_err());
    }
}

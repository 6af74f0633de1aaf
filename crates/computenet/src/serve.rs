//! `computenet serve`: the scheduler service in the hub cluster.

use anyhow::Context;
use computenet_scheduler::lease::LeaseConfig;
use computenet_scheduler::ServeConfig;
use kube::config::{KubeConfigOptions, Kubeconfig};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Kubeconfig of the hub; default: $KUBECONFIG, ~/.kube/config, or in-cluster.
    #[arg(long, env = "COMPUTENET_KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// Longest time between scheduling cycles, in milliseconds (changes trigger one sooner).
    #[arg(long, default_value_t = 1000)]
    interval_ms: u64,
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
    /// Seconds a leader holds the lease without renewing it.
    #[arg(long, default_value_t = 15)]
    lease_duration_s: u64,
    /// This replica's identity in the lease; default: host name and process id.
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Concurrent writes to the hub and the members.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
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

pub fn run(args: Args) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,kube=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let client = client(&args).await?;
        let identity = args.identity.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
            format!("{}-{}", host.trim(), std::process::id())
        });
        let config = ServeConfig {
            interval: Duration::from_millis(args.interval_ms.max(10)),
            member_timeout: Duration::from_secs(args.member_timeout_s.max(1)),
            lease: (!args.no_leader_election).then(|| LeaseConfig {
                namespace: args.lease_namespace.clone(),
                name: args.lease_name.clone(),
                identity,
                duration: Duration::from_secs(args.lease_duration_s.max(3)),
            }),
            concurrency: args.concurrency,
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
        computenet_scheduler::run(client, config, shutdown).await.map_err(anyhow::Error::from)
    })
}

//! `computenet-submit`: the load generator and observer of the benchmarks in `tests/e2e/`.
//!
//! `create` makes N objects from a one-object YAML template with a bounded number of requests
//! in flight (no client-side rate limit), recording when each create returned. `observe`
//! watches one kind on one or more clusters and records when each object first matches a
//! condition (e.g. a Job on a worker with `spec.suspend` false). Both write tab-separated
//! records timed with this host's clock, so that latencies have sub-second resolution
//! (an object's `creationTimestamp` has one-second resolution).

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use futures::{StreamExt, TryStreamExt};
use kube::api::{Api, DynamicObject, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::GroupVersionKind;
use kube::discovery::{pinned_kind, ApiResource, Scope};
use kube::runtime::watcher;
use kube::runtime::WatchStreamExt;
use kube::Client;
use serde_json::Value;
use tokio::sync::Mutex;

#[derive(Debug, Parser)]
#[command(name = "computenet-submit", version, about = "Benchmark load generator and observer")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create COUNT objects from a one-object YAML template. Object i is named
    /// `<template's metadata.name><i, 5 digits>`; creates that fail with a retryable error
    /// (429, 5xx, connection) are retried up to 5 times.
    Create(CreateArgs),
    /// Watch a kind on one or more clusters and record when each object first matches.
    Observe(ObserveArgs),
}

#[derive(Debug, Args)]
struct CreateArgs {
    /// The template: one object (YAML), with apiVersion, kind, metadata.name (the name prefix)
    /// and metadata.namespace when namespaced.
    template: PathBuf,
    /// Number of objects.
    #[arg(long, short = 'n', default_value_t = 2000)]
    count: usize,
    /// First index (names run from START to START+COUNT-1).
    #[arg(long, default_value_t = 0)]
    start: usize,
    /// Create requests in flight at once.
    #[arg(long, short = 'c', default_value_t = 32)]
    concurrency: usize,
    /// Kubeconfig of the cluster (default: KUBECONFIG, then ~/.kube/config, then in-cluster).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Write one line per object: name, create sent, create returned (Unix seconds).
    #[arg(long)]
    record: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct ObserveArgs {
    /// A cluster to watch: NAME=KUBECONFIG (repeat for several).
    #[arg(long = "cluster", required = true, value_parser = parse_cluster)]
    clusters: Vec<(String, PathBuf)>,
    /// apiVersion of the kind, e.g. batch/v1.
    #[arg(long)]
    api_version: String,
    /// The kind, e.g. Job.
    #[arg(long)]
    kind: String,
    /// Namespace to watch (default: all namespaces).
    #[arg(long)]
    namespace: Option<String>,
    /// Condition PATH=VALUE: the field at the dotted PATH equals VALUE (read as JSON when it
    /// parses, e.g. false or 3, else as a string).
    #[arg(long, value_parser = parse_equals, conflicts_with = "present")]
    equals: Option<(String, Value)>,
    /// Condition PATH: the field at the dotted PATH is set (not null).
    #[arg(long)]
    present: Option<String>,
    /// Only objects whose name (or key, with --key-label) starts with this.
    #[arg(long, default_value = "")]
    prefix: String,
    /// Key objects by the value of this label instead of their name (e.g. a member object
    /// labelled with the name of the hub object it was made for); objects without it are skipped.
    #[arg(long)]
    key_label: Option<String>,
    /// Stop once this many objects matched (over all clusters; an object counts once).
    #[arg(long)]
    until: usize,
    /// Stop after this many seconds even if fewer matched (exit status 0; the summary says).
    /// SIGINT stops it the same way.
    #[arg(long, default_value_t = 3600)]
    timeout: u64,
    /// Created (empty) once every watch has listed its cluster: start submitting after it.
    #[arg(long)]
    ready_file: Option<PathBuf>,
    /// Write one line per matched object: name (or key), cluster, time it was first seen matching
    /// (Unix seconds).
    #[arg(long)]
    record: Option<PathBuf>,
}

fn parse_cluster(s: &str) -> Result<(String, PathBuf), String> {
    let (name, path) = s.split_once('=').ok_or("expected NAME=KUBECONFIG")?;
    Ok((name.to_string(), PathBuf::from(path)))
}

fn parse_equals(s: &str) -> Result<(String, Value), String> {
    let (path, value) = s.split_once('=').ok_or("expected PATH=VALUE")?;
    let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_string()));
    Ok((path.to_string(), value))
}

fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or_default()
}

async fn client(kubeconfig: Option<&Path>) -> Result<Client> {
    let config = match kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path).with_context(|| format!("reading kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?
        }
        None => kube::Config::infer().await?,
    };
    Ok(Client::try_from(config)?)
}

fn gvk(api_version: &str, kind: &str) -> GroupVersionKind {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    GroupVersionKind::gvk(group, version, kind)
}

/// The API of a kind, found by discovery (so CRDs work as well as built-in kinds).
async fn api_for(
    client: &Client,
    api_version: &str,
    kind: &str,
    namespace: Option<&str>,
) -> Result<Api<DynamicObject>> {
    let (resource, caps): (ApiResource, _) = pinned_kind(client, &gvk(api_version, kind))
        .await
        .with_context(|| format!("discovering {api_version} {kind}"))?;
    Ok(match (caps.scope, namespace) {
        (Scope::Namespaced, Some(ns)) => Api::namespaced_with(client.clone(), ns, &resource),
        (Scope::Namespaced, None) => Api::all_with(client.clone(), &resource),
        (Scope::Cluster, _) => Api::all_with(client.clone(), &resource),
    })
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn retryable(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(status) => status.code == 429 || status.code >= 500,
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

async fn create(args: CreateArgs) -> Result<()> {
    let text =
        std::fs::read_to_string(&args.template).with_context(|| format!("reading {}", args.template.display()))?;
    let template: DynamicObject = serde_yaml::from_str(&text).context("parsing the template")?;
    let types = template.types.clone().context("the template has no apiVersion/kind")?;
    let prefix = template.metadata.name.clone().context("the template has no metadata.name")?;
    let client = client(args.kubeconfig.as_deref()).await?;
    let api = api_for(&client, &types.api_version, &types.kind, template.metadata.namespace.as_deref()).await?;
    let template = Arc::new(template);
    let params = PostParams::default();
    let started = Instant::now();
    let t0 = unix_now();
    let results: Vec<(String, f64, f64, Option<String>)> = futures::stream::iter(args.start..args.start + args.count)
        .map(|i| {
            let (api, template, params) = (api.clone(), template.clone(), params.clone());
            let name = format!("{prefix}{i:05}");
            async move {
                let mut object = (*template).clone();
                object.metadata.name = Some(name.clone());
                let sent = unix_now();
                let mut error = None;
                for attempt in 0..6u32 {
                    match api.create(&params, &object).await {
                        Ok(_) => {
                            error = None;
                            break;
                        }
                        Err(e) if retryable(&e) && attempt < 5 => {
                            error = Some(e.to_string());
                            tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                        }
                        Err(e) => {
                            error = Some(e.to_string());
                            break;
                        }
                    }
                }
                (name, sent, unix_now(), error)
            }
        })
        .buffer_unordered(args.concurrency.max(1))
        .collect()
        .await;
    let elapsed = started.elapsed().as_secs_f64();
    let failed: Vec<_> = results.iter().filter_map(|r| r.3.as_ref().map(|e| (&r.0, e))).collect();
    if let Some(path) = &args.record {
        let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
        for (name, sent, done, error) in &results {
            if error.is_none() {
                writeln!(out, "{name}\t{sent:.6}\t{done:.6}")?;
            }
        }
        out.flush()?;
    }
    let mut latency: Vec<f64> = results.iter().filter(|r| r.3.is_none()).map(|r| r.2 - r.1).collect();
    latency.sort_by(f64::total_cmp);
    let ok = results.len() - failed.len();
    println!(
        "created {ok} of {} {} in {elapsed:.2} s ({:.1}/s, {} in flight; started at {t0:.3}); create call p50 {:.3} s, p99 {:.3} s",
        args.count,
        types.kind,
        ok as f64 / elapsed.max(1e-9),
        args.concurrency.max(1),
        percentile(&latency, 50.0),
        percentile(&latency, 99.0),
    );
    if let Some((name, error)) = failed.first() {
        bail!("{} creates failed; first: {name}: {error}", failed.len());
    }
    Ok(())
}

fn field<'a>(object: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(object, |v, key| v.get(key)).filter(|v| !v.is_null())
}

async fn observe(args: ObserveArgs) -> Result<()> {
    let condition: Arc<dyn Fn(&Value) -> bool + Send + Sync> = match (&args.equals, &args.present) {
        (Some((path, value)), None) => {
            let (path, value) = (path.clone(), value.clone());
            Arc::new(move |o| field(o, &path) == Some(&value))
        }
        (None, Some(path)) => {
            let path = path.clone();
            Arc::new(move |o| field(o, &path).is_some())
        }
        _ => bail!("give one condition: --equals PATH=VALUE or --present PATH"),
    };
    // name -> (cluster, first seen matching)
    let seen: Arc<Mutex<HashMap<String, (String, f64)>>> = Arc::default();
    let done = Arc::new(tokio::sync::Notify::new());
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<String>(args.clusters.len());
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (cluster, kubeconfig) in &args.clusters {
        let client = client(Some(kubeconfig)).await?;
        let api = api_for(&client, &args.api_version, &args.kind, args.namespace.as_deref()).await?;
        let (cluster, seen, done, ready_tx, condition) =
            (cluster.clone(), seen.clone(), done.clone(), ready_tx.clone(), condition.clone());
        let (prefix, until, key_label) = (args.prefix.clone(), args.until, args.key_label.clone());
        tasks.push(tokio::spawn(async move {
            let stream = watcher(api, watcher::Config::default()).default_backoff();
            futures::pin_mut!(stream);
            while let Some(event) = stream.try_next().await? {
                let object = match event {
                    watcher::Event::InitDone => {
                        let _ = ready_tx.send(cluster.clone()).await;
                        continue;
                    }
                    watcher::Event::Apply(o) | watcher::Event::InitApply(o) => o,
                    watcher::Event::Init | watcher::Event::Delete(_) => continue,
                };
                let now = unix_now();
                let name = match &key_label {
                    Some(label) => {
                        object.metadata.labels.as_ref().and_then(|l| l.get(label)).cloned().unwrap_or_default()
                    }
                    None => object.metadata.name.clone().unwrap_or_default(),
                };
                if name.is_empty() || !name.starts_with(&prefix) {
                    continue;
                }
                let value = serde_json::to_value(&object)?;
                if condition(&value) {
                    let mut seen = seen.lock().await;
                    seen.entry(name).or_insert((cluster.clone(), now));
                    if seen.len() >= until {
                        done.notify_one();
                    }
                }
            }
            anyhow::Ok(())
        }));
    }
    drop(ready_tx);
    let mut listed = 0;
    while listed < args.clusters.len() {
        match tokio::time::timeout(Duration::from_secs(120), ready_rx.recv()).await {
            Ok(Some(_)) => listed += 1,
            _ => bail!("the watches did not list their clusters within 120 s"),
        }
    }
    if let Some(path) = &args.ready_file {
        std::fs::File::create(path)?;
    }
    eprintln!("observe: watching {} cluster(s)", args.clusters.len());
    // Stops when all matched, at the timeout, or on SIGINT (then, as at the timeout, it
    // reports and records what it saw).
    let finished = tokio::select! {
        _ = done.notified() => true,
        _ = tokio::time::sleep(Duration::from_secs(args.timeout)) => false,
        _ = tokio::signal::ctrl_c() => false,
    };
    for task in &tasks {
        task.abort();
    }
    let seen = seen.lock().await;
    let mut by_cluster = BTreeMap::<&str, usize>::new();
    for (cluster, _) in seen.values() {
        *by_cluster.entry(cluster).or_default() += 1;
    }
    if let Some(path) = &args.record {
        let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
        let mut rows: Vec<_> = seen.iter().collect();
        rows.sort_by(|a, b| a.1 .1.total_cmp(&b.1 .1));
        for (name, (cluster, t)) in rows {
            writeln!(out, "{name}\t{cluster}\t{t:.6}")?;
        }
        out.flush()?;
    }
    let clusters: Vec<String> = by_cluster.iter().map(|(c, n)| format!("{c}: {n}")).collect();
    println!(
        "observed {} of {} {} after {:.1} s{} ({})",
        seen.len(),
        args.until,
        args.kind,
        started.elapsed().as_secs_f64(),
        if finished { "" } else { " (timeout)" },
        clusters.join(", ")
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Create(args) => create(args).await,
        Command::Observe(args) => observe(args).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_conditions() {
        let o = serde_json::json!({"spec": {"suspend": false}, "status": {"dispatchTime": null}});
        assert_eq!(field(&o, "spec.suspend"), Some(&Value::Bool(false)));
        assert_eq!(field(&o, "status.dispatchTime"), None);
        assert_eq!(field(&o, "status.missing.deeper"), None);
        assert_eq!(parse_equals("spec.suspend=false").unwrap().1, Value::Bool(false));
        assert_eq!(parse_equals("a=b c").unwrap().1, Value::String("b c".into()));
        assert_eq!(gvk("batch/v1", "Job").group, "batch");
        assert_eq!(gvk("v1", "Pod").group, "");
    }

    #[test]
    fn percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v, 100.0), 100.0);
        assert!(percentile(&[], 50.0).is_nan());
    }
}

//! `kubectl-computenet`: the kubectl plugin of computenet.
//!
//! Thin on purpose: [`hub`] reads the hub, the report modules ([`pool`], [`queue`],
//! [`explain`], [`dryrun`], [`usage`]) are pure functions from the objects read to a report,
//! printed as a table ([`table`]) or as JSON or YAML (and `usage` as CSV).
#![forbid(unsafe_code)]

mod args;
mod dryrun;
mod explain;
#[cfg(test)]
mod fixtures;
mod hub;
mod pool;
mod queue;
mod table;
mod usage;

use anyhow::Context;
use args::{Cli, Command, Output};
use clap::Parser;
use serde::Serialize;
use std::io::Read;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}

fn render<T: Serialize>(output: Output, report: &T, table: impl FnOnce(&T) -> String) -> anyhow::Result<String> {
    Ok(match output {
        Output::Table => table(report),
        Output::Json => serde_json::to_string_pretty(report)? + "\n",
        Output::Yaml => serde_yaml::to_string(report)?,
        Output::Csv => anyhow::bail!("-o csv is for `usage` only: use -o table, json or yaml"),
    })
}

fn now() -> i64 {
    k8s_openapi::jiff::Timestamp::now().as_second()
}

async fn run(cli: Cli) -> anyhow::Result<String> {
    let output = cli.global.output;
    if output == Output::Csv && !matches!(cli.command, Command::Usage { .. }) {
        anyhow::bail!("-o csv is for `usage` only: use -o table, json or yaml");
    }
    match cli.command {
        Command::Pool => {
            let hub = hub::Hub::connect(&cli.global).await?;
            let members = hub.members().await?;
            render(output, &pool::build(&members, now()), pool::table)
        }
        Command::Queue { name } => {
            let hub = hub::Hub::connect(&cli.global).await?;
            let queues = hub.queues().await?;
            let jobs = hub.jobs().await?;
            render(output, &queue::build(&queues, &jobs, name.as_deref(), now())?, queue::table)
        }
        Command::Explain { job } => {
            let hub = hub::Hub::connect(&cli.global).await?;
            let namespace = hub.namespace.clone();
            let job = training_job_name(&job)?;
            let tj = hub
                .job(&namespace, &job)
                .await?
                .with_context(|| format!("trainingjob {job:?} not found in namespace {namespace:?}"))?;
            let now = now();
            render(output, &explain::build(&tj, now), |r| explain::table(r, now))
        }
        Command::DryRun { file, profiles, profiles_configmap, profiles_namespace } => {
            // The manifest and the profile files are checked before the hub is contacted.
            let (text, source) = if file.as_os_str() == "-" {
                let mut text = String::new();
                std::io::stdin().read_to_string(&mut text).context("reading standard input")?;
                (text, "standard input".to_string())
            } else {
                let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
                (text, file.display().to_string())
            };
            let mut job = dryrun::parse_manifest(&text, &source)?;
            let mut profiles = dryrun::Profiles::from_paths(&profiles)?;
            let hub = hub::Hub::connect(&cli.global).await?;
            let namespace = match (&job.metadata.namespace, &cli.global.namespace) {
                (Some(own), Some(flag)) if own != flag => anyhow::bail!(
                    "the namespace of {source} ({own:?}) does not match the namespace given with -n ({flag:?})"
                ),
                (Some(own), _) => own.clone(),
                (None, _) => hub.namespace.clone(),
            };
            job.metadata.namespace = Some(namespace.clone());
            let members = hub.members().await?;
            let queues = hub.queues().await?;
            let cohorts = hub.cohorts().await?;
            let jobs = hub.jobs().await?;
            let labels = hub.namespace_labels(&namespace).await;
            let config_map = if profiles_configmap.is_empty() {
                dryrun::ConfigMapRead::Disabled
            } else {
                match hub.config_map(&profiles_namespace, &profiles_configmap).await {
                    Ok(Some(cm)) => dryrun::ConfigMapRead::Found(cm.data.unwrap_or_default()),
                    Ok(None) => dryrun::ConfigMapRead::Missing,
                    Err(why) => dryrun::ConfigMapRead::Failed(why),
                }
            };
            profiles.add_config_map(&profiles_namespace, &profiles_configmap, config_map);
            let input = dryrun::Input {
                job: &job,
                members: &members,
                queues: &queues,
                cohorts: &cohorts,
                jobs: &jobs,
                namespace_labels: labels.as_ref().map(|l| l.as_ref()),
                profiles: &profiles,
                now: u64::try_from(now()).unwrap_or(0),
            };
            render(output, &dryrun::run(&input)?, dryrun::table)
        }
        Command::Usage { by, since, until, queue, member } => {
            // The window is checked before the hub is contacted.
            let now = now();
            let (since, until) = usage::window(since.as_deref(), until.as_deref(), now)?;
            let filters = usage::Filters { queue, namespace: cli.global.namespace.clone(), member };
            let hub = hub::Hub::connect(&cli.global).await?;
            let objects = hub.usages().await?;
            let report = usage::build(&objects, &by, &filters, since, until);
            match output {
                Output::Csv => Ok(usage::csv(&report)),
                _ => render(output, &report, usage::table),
            }
        }
    }
}

/// The TrainingJob named by `job`: itself, or for KIND/NAME of another job kind the
/// TrainingJob computenet made to queue that object.
fn training_job_name(job: &str) -> anyhow::Result<String> {
    let Some((kind, name)) = job.split_once('/') else { return Ok(job.to_string()) };
    let kind = computenet_api::kinds::all()
        .into_iter()
        .map(|k| k.resource().kind)
        .find(|k| k.eq_ignore_ascii_case(kind) || k.eq_ignore_ascii_case(kind.trim_end_matches('s')))
        .with_context(|| {
            format!("{kind:?} is not a job kind computenet queues: use jobset/, trainjob/ or pytorchjob/")
        })?;
    Ok(computenet_api::kinds::shadow_name(kind, name))
}

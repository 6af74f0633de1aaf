//! `computenet crdgen`: writes (or checks) the generated CRD YAML.

use anyhow::{bail, Context};
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Folders to write the CRDs into (repeatable).
    #[arg(long = "out", default_values = ["deploy/crds", "charts/computenet/crds"])]
    out: Vec<PathBuf>,
    /// Do not write: fail if the files differ from what the types generate.
    #[arg(long)]
    check: bool,
    /// Print the CRDs to stdout instead of writing files.
    #[arg(long, conflicts_with = "check")]
    stdout: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let files = computenet_api::crdgen::crd_files()?;
    if args.stdout {
        for (_, yaml) in &files {
            println!("---\n{yaml}");
        }
        return Ok(());
    }
    let mut stale = Vec::new();
    for dir in &args.out {
        for (name, yaml) in &files {
            let path = dir.join(name);
            if args.check {
                let current = std::fs::read_to_string(&path).unwrap_or_default();
                if current != *yaml {
                    stale.push(path.display().to_string());
                }
            } else {
                std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
                std::fs::write(&path, yaml).with_context(|| format!("writing {}", path.display()))?;
                println!("wrote {}", path.display());
            }
        }
    }
    if !stale.is_empty() {
        bail!("generated CRDs differ from the committed ones (run `computenet crdgen`): {}", stale.join(", "));
    }
    Ok(())
}

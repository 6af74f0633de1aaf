//! The committed corpus as a regression suite on stable: every file under `corpus/` (any
//! target's) and `regressions/` goes through every target, so inputs that once crashed a
//! target, and the seeds, are checked even where nightly and libFuzzer are missing.

use std::path::{Path, PathBuf};

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files(&path, out);
        } else if path.file_name().is_some_and(|n| n != ".gitkeep" && n != "README.md") {
            out.push(path);
        }
    }
}

#[test]
fn every_corpus_file_passes_every_target() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut inputs = Vec::new();
    files(&root.join("corpus"), &mut inputs);
    files(&root.join("regressions"), &mut inputs);
    inputs.sort();
    for target in computenet_fuzz::TARGETS.map(|(name, _)| name) {
        let own = inputs.iter().filter(|p| p.starts_with(root.join("corpus").join(target))).count();
        assert!(own > 0, "target {target} has no corpus under corpus/{target}");
    }
    let mut failed = Vec::new();
    for path in &inputs {
        let data = std::fs::read(path).expect("corpus file reads");
        for (name, target) in computenet_fuzz::TARGETS {
            if std::panic::catch_unwind(|| target(&data)).is_err() {
                failed.push(format!("{name} on {}", path.display()));
            }
        }
    }
    println!("{} corpus files through {} targets", inputs.len(), computenet_fuzz::TARGETS.len());
    assert!(
        failed.is_empty(),
        "targets failed (reproduce with `cargo fuzz run <target> <file>`):\n{}",
        failed.join("\n")
    );
}

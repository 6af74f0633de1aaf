//! `kubectl-computenet` as a user runs it, without a hub: help, bad arguments, bad
//! manifests and an unreachable hub.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn plugin(args: &[&str], stdin: Option<&str>) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kubectl-computenet"))
        .args(args)
        // No ambient kubeconfig: every test says which one it means.
        .env("KUBECONFIG", scratch("absent").join("kubeconfig"))
        .env("HOME", scratch("home"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary runs");
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(stdin.unwrap_or_default().as_bytes()).expect("writes stdin");
    drop(input);
    let out = child.wait_with_output().expect("binary ends");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kubectl-computenet-test-{}", std::process::id())).join(name);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// A kubeconfig for a hub nobody listens on, in a file of its own: tests run in parallel,
/// and rewriting one shared file let another test's plugin read it half written.
fn unreachable_kubeconfig() -> PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = scratch(&format!("unreachable-{n}")).join("kubeconfig");
    std::fs::write(
        &path,
        "apiVersion: v1\nkind: Config\nclusters: [{name: hub, cluster: {server: \"https://127.0.0.1:9\"}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: hub, context: {cluster: hub, user: u, namespace: team-a}}]\ncurrent-context: hub\n",
    )
    .expect("writes kubeconfig");
    path
}

const JOB: &str = "apiVersion: computenet.io/v1alpha1\nkind: TrainingJob\nmetadata: {name: try}\nspec:\n  queueName: research\n  replicas: 1\n  resources: {cpu: \"4\", memory: 16Gi, accelerators: {count: 1}}\n  workload: {image: example/train:1, command: [python]}\n";

fn one_line_error(run: &Run) -> &str {
    assert_eq!(run.code, 1, "stdout: {} stderr: {}", run.stdout, run.stderr);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert!(run.stderr.starts_with("error: "), "{}", run.stderr);
    run.stderr.trim_end()
}

#[test]
fn help_lists_the_subcommands_and_common_options() {
    let run = plugin(&["--help"], None);
    assert_eq!(run.code, 0, "{}", run.stderr);
    for word in [
        "pool",
        "queue",
        "explain",
        "dry-run",
        "usage",
        "--kubeconfig",
        "--context",
        "--namespace",
        "--output",
        "kubectl computenet",
    ] {
        assert!(run.stdout.contains(word), "{word} missing from:\n{}", run.stdout);
    }
}

#[test]
fn each_subcommand_has_help() {
    for (sub, words) in [
        ("pool", &["totals by cluster kind", "TFLOPS per kW"][..]),
        ("queue", &["[NAME]", "usage of each quota"][..]),
        ("explain", &["<JOB>", "rejected"][..]),
        (
            "dry-run",
            &[
                "--filename <FILE>",
                "without creating it",
                "queue order",
                "--profiles <PATH>",
                "--profiles-configmap <NAME>",
                "[default: computenet-profiles]",
                "--profiles-namespace <NAMESPACE>",
                "[default: computenet-system]",
            ][..],
        ),
        (
            "usage",
            &[
                "--by <KEYS>",
                "namespace, queue, member, site, accelerator",
                "[default: queue]",
                "--since <TIME>",
                "--until <TIME>",
                "--queue <NAME>",
                "--member <NAME>",
                "hourly buckets",
                "rounded to bucket starts",
                "counted yet",
                "computenet-usage-reader",
                "TFLOPS/W",
            ][..],
        ),
    ] {
        let run = plugin(&[sub, "--help"], None);
        assert_eq!(run.code, 0, "{sub}: {}", run.stderr);
        for w in words {
            assert!(run.stdout.contains(w), "{sub} --help lacks {w:?}:\n{}", run.stdout);
        }
        assert!(run.stdout.contains("-o, --output <FORMAT>"), "{sub}: global options in its help");
    }
}

#[test]
fn bad_arguments_are_refused_with_usage() {
    for args in [
        &["frobnicate"][..],
        &["pool", "-o", "xml"][..],
        &["explain"][..],
        &["dry-run"][..],
        &["usage", "--by", "colour"][..],
        &["usage", "--by", "queue,"][..],
        &[][..],
    ] {
        let run = plugin(args, None);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains("Usage:") || run.stderr.contains("--help"), "{args:?}: {}", run.stderr);
    }
}

#[test]
fn dry_run_checks_the_manifest_before_the_hub() {
    let pod = scratch("manifests").join("pod.yaml");
    std::fs::write(&pod, "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n").expect("writes");
    let run = plugin(&["dry-run", "-f", pod.to_str().expect("utf8")], None);
    assert!(
        one_line_error(&run).ends_with("a Pod of v1 is not a TrainingJob of computenet.io/v1alpha1"),
        "{}",
        run.stderr
    );
    let run = plugin(&["dry-run", "-f", "/nonexistent/job.yaml"], None);
    assert!(one_line_error(&run).starts_with("error: reading /nonexistent/job.yaml"), "{}", run.stderr);
    let run = plugin(
        &["dry-run", "-f", "-"],
        Some("kind: TrainingJob\napiVersion: computenet.io/v1alpha1\nmetadata: {name: x}\nspec: {replicas: 1}\n"),
    );
    assert!(one_line_error(&run).starts_with("error: standard input: invalid TrainingJob"), "{}", run.stderr);
}

#[test]
fn dry_run_checks_profile_files_before_the_hub() {
    let dir = scratch("profiles");
    let profiles = dir.join("lab.yaml");
    let job = dir.join("job.yaml");
    std::fs::write(&job, JOB).expect("writes");
    let kubeconfig = unreachable_kubeconfig();
    let (job, kubeconfig) = (job.to_str().expect("utf8"), kubeconfig.to_str().expect("utf8"));
    let dry_run =
        |profiles: &str| plugin(&["dry-run", "-f", job, "--kubeconfig", kubeconfig, "--profiles", profiles], None);
    std::fs::write(&profiles, "profile: []\n").expect("writes");
    let run = dry_run(profiles.to_str().expect("utf8"));
    let error = one_line_error(&run);
    assert!(error.contains("lab.yaml") && error.contains("unknown field"), "{error}");
    let run = dry_run("/nonexistent/profiles");
    assert!(one_line_error(&run).contains("/nonexistent/profiles"), "{}", run.stderr);
    // Good profiles get as far as the hub.
    std::fs::write(&profiles, "profiles: []\n").expect("writes");
    let run = dry_run(profiles.to_str().expect("utf8"));
    assert!(one_line_error(&run).starts_with("error: cannot reach the hub"), "{}", run.stderr);
}

#[test]
fn an_unreachable_hub_is_one_line_and_exit_code_1() {
    let kubeconfig = unreachable_kubeconfig();
    let path = kubeconfig.to_str().expect("utf8");
    for args in [&["pool"][..], &["queue"][..], &["explain", "job"][..]] {
        let mut all = vec!["--kubeconfig", path];
        all.extend_from_slice(args);
        let run = plugin(&all, None);
        assert!(
            one_line_error(&run).starts_with("error: cannot reach the hub at https://127.0.0.1:9"),
            "{args:?}: {}",
            run.stderr
        );
    }
    let run = plugin(&["dry-run", "-f", "-", "--kubeconfig", path], Some(JOB));
    assert!(one_line_error(&run).starts_with("error: cannot reach the hub"), "{}", run.stderr);
}

#[test]
fn usage_checks_its_window_before_the_hub() {
    let run = plugin(&["usage", "--since", "soon"], None);
    assert!(one_line_error(&run).starts_with("error: --since: \"soon\" is not a time: use RFC 3339"), "{}", run.stderr);
    let run = plugin(&["usage", "--until", "2026-02-30"], None);
    assert_eq!(one_line_error(&run), "error: --until: \"2026-02-30\" is not a valid date");
    let run = plugin(&["usage", "--since", "2026-11-02", "--until", "2026-11-01"], None);
    assert_eq!(
        one_line_error(&run),
        "error: --since (2026-11-02T00:00:00Z) is not before --until (2026-11-01T00:00:00Z): the window is empty"
    );
    // A good window gets as far as the hub, with every output and several keys.
    let kubeconfig = unreachable_kubeconfig();
    let path = kubeconfig.to_str().expect("utf8");
    for output in ["table", "csv", "json", "yaml"] {
        let run =
            plugin(&["usage", "--kubeconfig", path, "--by", "queue,namespace", "--since", "7d", "-o", output], None);
        assert!(one_line_error(&run).starts_with("error: cannot reach the hub"), "{output}: {}", run.stderr);
    }
}

#[test]
fn csv_is_for_usage_only() {
    let kubeconfig = unreachable_kubeconfig();
    for args in [&["pool"][..], &["queue"][..], &["explain", "job"][..], &["dry-run", "-f", "-"][..]] {
        let mut all = vec!["--kubeconfig", kubeconfig.to_str().expect("utf8"), "-o", "csv"];
        all.extend_from_slice(args);
        // Refused before anything is read: no standard input to write (the plugin may be gone).
        let run = plugin(&all, None);
        assert_eq!(one_line_error(&run), "error: -o csv is for `usage` only: use -o table, json or yaml", "{args:?}");
    }
}

#[test]
fn a_missing_kubeconfig_or_context_is_named() {
    let run = plugin(&["pool", "--kubeconfig", "/nonexistent/kubeconfig"], None);
    assert!(one_line_error(&run).contains("/nonexistent/kubeconfig"), "{}", run.stderr);
    let kubeconfig = unreachable_kubeconfig();
    let run = plugin(&["pool", "--kubeconfig", kubeconfig.to_str().expect("utf8"), "--context", "nope"], None);
    assert!(one_line_error(&run).contains("nope"), "{}", run.stderr);
    let run = plugin(&["pool"], None);
    assert!(one_line_error(&run).contains("kubeconfig"), "{}", run.stderr);
}

//! The `computenet` binary as a user runs it.

use std::process::Command;

fn computenet(args: &[&str]) -> (bool, String, String) {
    computenet_in(std::path::Path::new(env!("CARGO_MANIFEST_DIR")), args)
}

/// Runs the binary with `dir` as its working directory.
fn computenet_in(dir: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_computenet")).current_dir(dir).args(args).output().expect("binary runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn simulate_on_the_embedded_default_prints_a_table_per_policy() {
    let (ok, stdout, stderr) = computenet(&["simulate", "--jobs", "200"]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("seed city pool"), "{stdout}");
    let header = stdout.lines().find(|l| l.contains("computenet")).expect("policy header");
    let policies = [
        "fifo",
        "least-loaded",
        "agnostic",
        "computenet",
        "computenet-adaptive",
        "computenet-fastest",
        "computenet-cheapest",
        "computenet-greenest",
    ];
    assert_eq!(header.split_whitespace().collect::<Vec<_>>(), policies.to_vec(), "all policies by default");
    let completed = stdout.lines().find(|l| l.starts_with("completed")).expect("completed row");
    assert_eq!(
        completed.split_whitespace().skip(1).collect::<Vec<_>>(),
        vec!["200"; 8],
        "all jobs finish: {completed}"
    );
    for row in ["avg JCT", "p99 JCT", "avg queueing", "utilisation AI", "energy"] {
        assert!(stdout.lines().any(|l| l.starts_with(row)), "missing {row}: {stdout}");
    }
}

#[test]
fn simulate_writes_json_with_the_same_numbers() {
    let dir = std::env::temp_dir().join(format!("computenet-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("out.json");
    let (ok, _, stderr) =
        computenet(&["simulate", "--jobs", "100", "--policy", "computenet", "--json", path.to_str().expect("utf8")]);
    assert!(ok, "{stderr}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("written")).expect("json");
    let p = &json["policies"][0];
    assert_eq!(p["policy"], "computenet");
    assert_eq!(p["completed"], 100);
    assert!(p["avg_jct_s"].as_f64().expect("number") > 0.0);
    assert!(p["energy_kwh"].as_f64().expect("number") > 0.0);
}

#[test]
fn bad_input_gets_a_clear_error() {
    let (ok, _, stderr) = computenet(&["simulate", "--policy", "magic"]);
    assert!(!ok);
    assert!(stderr.contains("unknown policy \"magic\""), "{stderr}");
    let (ok, _, stderr) = computenet(&["simulate", "--pool", "/nonexistent/pool.yaml"]);
    assert!(!ok);
    assert!(stderr.contains("reading pool file /nonexistent/pool.yaml"), "{stderr}");
    let dir = std::env::temp_dir().join(format!("computenet-cli-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let pool = dir.join("pool.yaml");
    std::fs::write(&pool, "clusters:\n  - name: x\n    kind: Quantum\n    site: s\n    nodeGroups: []\n")
        .expect("write");
    let (ok, _, stderr) = computenet(&["simulate", "--pool", pool.to_str().expect("utf8")]);
    assert!(!ok);
    assert!(stderr.contains("parsing pool") && stderr.contains("Quantum"), "{stderr}");
}

#[test]
fn bench_reports_time_and_memory() {
    let (ok, stdout, stderr) = computenet(&["bench", "--size", "S", "--repeat", "1"]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("admissions/s") && stdout.contains("peak resident memory"), "{stdout}");
}

/// The binary runs with mimalloc keeping freed memory 10 s (it executes itself again with
/// MIMALLOC_PURGE_DELAY set), unless the variable is set already.
#[test]
fn the_allocator_keeps_freed_memory_unless_told_otherwise() {
    let bench = |delay: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_computenet"));
        cmd.args(["bench", "--size", "S", "--repeat", "1"]).env_remove("MIMALLOC_PURGE_DELAY");
        if let Some(d) = delay {
            cmd.env("MIMALLOC_PURGE_DELAY", d);
        }
        let out = cmd.output().expect("binary runs");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let default = bench(None);
    assert!(default.contains("freed memory kept 10000 ms (MIMALLOC_PURGE_DELAY)"), "{default}");
    let told = bench(Some("250"));
    assert!(told.contains("freed memory kept 250 ms"), "{told}");
}

/// The repository's reference data (see data/README.md).
fn data() -> std::path::PathBuf {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data");
    assert!(dir.join("README.md").is_file(), "reference data missing: expected {}", dir.display());
    dir
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("computenet-cli-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

#[test]
fn simulate_sia_workload_writes_json_and_plots() {
    let workload = data().join("sia/workloads/philly/workload-1.csv");
    let pool = concat!(env!("CARGO_MANIFEST_DIR"), "/../../seeds/pools/sia-64.yaml");
    let dir = temp_dir("sia");
    let json_path = dir.join("out.json");
    let plots = dir.join("plots");
    let (ok, stdout, stderr) = computenet(&[
        "simulate",
        "--format",
        "sia",
        "--pool",
        pool,
        "--workload",
        workload.to_str().expect("utf8"),
        "--policy",
        "fifo",
        "--policy",
        "computenet",
        "--json",
        json_path.to_str().expect("utf8"),
        "--plots",
        plots.to_str().expect("utf8"),
    ]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("64 accelerators"), "{stdout}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json_path).expect("written")).expect("json");
    assert_eq!(json["workloads"][0]["name"], "workload-1");
    assert_eq!(json["workloads"][0]["jobs"], 160);
    let policies = json["policies"].as_array().expect("policies");
    assert_eq!(policies.len(), 2);
    for p in policies {
        assert_eq!(p["completed"], 160, "{p}");
        for key in ["avg_jct_s", "p99_jct_s", "avg_queue_s", "makespan_s", "energy_kwh", "jain_fairness"] {
            assert!(p[key].as_f64().expect(key) > 0.0, "{key}: {p}");
        }
        assert!(p["utilisation_by_accelerator"]["A100-40G"].as_f64().expect("A100 share") > 0.0);
    }
    for file in ["jct-cdf-workload-1.svg", "utilisation-workload-1-fifo.svg", "utilisation-workload-1-computenet.svg"] {
        let svg = std::fs::read_to_string(plots.join(file)).expect(file);
        assert!(svg.contains("<svg") && svg.contains("<text"), "{file} is an SVG with text");
    }
    let cdf = std::fs::read_to_string(plots.join("jct-cdf-workload-1.svg")).expect("cdf");
    assert!(cdf.contains("\nfifo\n") && cdf.contains("\ncomputenet\n"), "one line per policy in the legend");
    let util = std::fs::read_to_string(plots.join("utilisation-workload-1-fifo.svg")).expect("util");
    assert!(util.contains("\nsia-t4\n") && util.contains("\nsia-a100\n"), "one line per cluster");
}

#[test]
fn default_profiles_are_found_from_outside_the_repository() {
    // No data/ above the temporary folder: the default is the data/ of the checkout the
    // binary was built from.
    let dir = temp_dir("outside");
    let workload = data().join("sia/workloads/philly/workload-1.csv");
    let (ok, stdout, stderr) = computenet_in(
        &dir,
        &["simulate", "--format", "sia", "--workload", workload.to_str().expect("utf8"), "--policy", "fifo"],
    );
    assert!(ok, "{stderr}");
    assert!(stdout.contains("160 jobs; step times from") && stdout.contains("data/sia/traces"), "{stdout}");
    let (ok, _, stderr) = computenet_in(
        &dir,
        &["simulate", "--format", "sia", "--profiles", "/nonexistent/profiles", "--policy", "fifo"],
    );
    assert!(!ok);
    assert!(
        stderr.contains("Sia profiles folder /nonexistent/profiles not found") && stderr.contains("--profiles"),
        "{stderr}"
    );
}

#[test]
fn malformed_and_missing_workloads_are_named() {
    let dir = temp_dir("malformed");
    let bad = dir.join("bad.csv");
    std::fs::write(
        &bad,
        "name,time,application,num_replicas,batch_size\ncifar10-0,1,cifar10,4,128\nx,2,cifar10,four,128\n",
    )
    .expect("write");
    let (ok, _, stderr) =
        computenet(&["simulate", "--format", "sia", "--workload", bad.to_str().expect("utf8"), "--policy", "fifo"]);
    assert!(!ok);
    let expected = format!("{}:3: num_replicas \"four\" is not a valid number", bad.display());
    assert!(stderr.contains(&expected), "{stderr}");
    let (ok, _, stderr) =
        computenet(&["simulate", "--format", "philly", "--workload", "/nonexistent/philly.csv", "--policy", "fifo"]);
    assert!(!ok);
    assert!(stderr.contains("workload /nonexistent/philly.csv not found"), "{stderr}");
}

#[test]
fn bench_replays_a_philly_trace() {
    let dir = temp_dir("replay");
    let trace = dir.join("philly.csv");
    std::fs::write(
        &trace,
        "timestamp,duration,num_gpus,gpu_time,cluster\n2017-10-09 07:00:00,3600,8,28800,a\n2017-10-09 07:00:10,60,1,60,b\n",
    )
    .expect("write");
    let (ok, stdout, stderr) = computenet(&["bench", "--replay", trace.to_str().expect("utf8"), "--policy", "fifo"]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("(2 jobs) on 2000 GPUs") && stdout.contains("completed 2 of 2"), "{stdout}");
    assert!(stdout.contains("peak resident memory"), "{stdout}");
}

#[test]
fn simulate_reads_a_compressed_trace() {
    use std::io::Write;
    let dir = temp_dir("gz");
    let trace = dir.join("small.csv.gz");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(
        b"timestamp,duration,num_gpus,gpu_time,cluster\n2017-10-09 07:00:00,3600,8,28800,a\n2017-10-09 07:00:10,60,1,60,b\n",
    )
    .expect("compress");
    std::fs::write(&trace, gz.finish().expect("compress")).expect("write");
    let json_path = dir.join("out.json");
    let (ok, stdout, stderr) = computenet(&[
        "simulate",
        "--workload",
        trace.to_str().expect("utf8"),
        "--policy",
        "fifo",
        "--json",
        json_path.to_str().expect("utf8"),
    ]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("Philly-derived trace"), "format told from the decompressed header: {stdout}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json_path).expect("written")).expect("json");
    assert_eq!(json["workloads"][0]["name"], "small", "named without .csv.gz");
    assert_eq!(json["workloads"][0]["jobs"], 2);
}

//! The `computenet` binary as a user runs it.

use std::process::Command;

fn computenet(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_computenet")).args(args).output().expect("binary runs");
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
    for policy in ["fifo", "least-loaded", "agnostic", "computenet"] {
        assert!(header.contains(policy), "{header}");
    }
    let completed = stdout.lines().find(|l| l.starts_with("completed")).expect("completed row");
    assert_eq!(
        completed.split_whitespace().skip(1).collect::<Vec<_>>(),
        vec!["200"; 4],
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

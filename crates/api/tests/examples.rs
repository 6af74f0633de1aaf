//! The sample TrainingJobs decode and convert to the core's jobs (the CRD's own checks run
//! in tests/e2e/helm.sh, on a real apiserver).

use computenet_api::{convert, TrainingJob};
use std::path::Path;

#[test]
fn sample_jobs_convert() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut seen = 0;
    for dir in ["deploy/examples", "seeds/jobs"] {
        for entry in std::fs::read_dir(root.join(dir)).expect("dir") {
            let path = entry.expect("entry").path();
            let text = std::fs::read_to_string(&path).expect("read");
            if !text.contains("kind: TrainingJob") {
                continue;
            }
            let tj: TrainingJob = serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let job = convert::job("u", &tj.spec, 0).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            job.validate().unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            seen += 1;
        }
    }
    assert!(seen >= 5, "{seen} samples");
    let elastic: TrainingJob = serde_yaml::from_str(
        &std::fs::read_to_string(root.join("deploy/examples/trainingjob-elastic.yaml")).expect("read"),
    )
    .expect("decodes");
    let job = convert::job("u", &elastic.spec, 0).expect("converts");
    assert_eq!(job.elastic.map(|e| (e.min_replicas, e.max_replicas)), Some((2, 8)));
    assert_eq!(job.restart.map(|r| (r.grace_period_s, r.restart_cost_s)), Some((60, 300)));
}

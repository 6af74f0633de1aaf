//! Loaders on the real reference data in the repository's data/ folder.

use computenet_core::{Catalogue, Work};
use computenet_sim::traces;
use std::path::PathBuf;

fn data() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data");
    assert!(dir.join("README.md").is_file(), "reference data missing: expected {}", dir.display());
    dir
}

#[test]
fn sia_tables_give_sia_job_lengths() {
    let models = traces::load_sia_models(&data().join("sia/traces")).expect("Sia tables load");
    for model in ["cifar10", "imagenet", "deepspeech2", "yolov3", "bert"] {
        assert!(models.profiles.has_model(model), "{model} profiled");
        assert!(models.iterations(model, 64).is_some(), "{model} iterations");
    }
    // cifar10 at batch 128: 100 epochs of 391 iterations (cumulative 39,1xx at epoch 100).
    let it = models.iterations("cifar10", 128).expect("cifar10");
    assert!((38_000..40_000).contains(&it), "{it}");
    // Step time of cifar10, 1 T4, local batch 128, slowed by 1.8 as Sia's simulator does.
    let (rate, exact) = models.profiles.steps_per_s("cifar10", "T4", 1, 1, Some(128)).expect("measured");
    assert!(exact);
    assert!(rate > 1.0 && rate < 20.0, "{rate}");
    // A100s are faster than T4s for imagenet on one node of 8.
    let a100 = models.profiles.steps_per_s("imagenet", "A100-40G", 8, 1, Some(1600)).expect("a100").0;
    let t4 = models.profiles.steps_per_s("imagenet", "T4", 4, 1, Some(800)).expect("t4").0;
    assert!(a100 > t4, "{a100} vs {t4}");
}

#[test]
fn every_sia_workload_loads() {
    let models = traces::load_sia_models(&data().join("sia/traces")).expect("Sia tables load");
    for dir in ["sia/workloads/philly", "sia/workloads/scale/rate_10", "sia/workloads/scale/rate_50"] {
        let files = traces::workload_files(&data().join(dir)).expect("folder");
        assert!(files.len() >= 8, "{dir}");
        for f in files {
            let source = f.display().to_string();
            let rows = traces::parse_sia_workload(&traces::read(&f).expect("reads"), &source).expect("parses");
            let jobs = traces::sia_jobs(&rows, &models, &source, "q").expect("converts");
            assert!(!jobs.is_empty());
            assert!(jobs.iter().all(|j| matches!(j.work, Work::ModelSteps { steps, .. } if steps > 0)));
        }
    }
}

#[test]
fn philly_trace_loads_in_full() {
    let path = data().join("sia/traces/philly.csv.gz");
    let rows = traces::parse_philly(&traces::read(&path).expect("reads"), &path.display().to_string()).expect("parses");
    assert_eq!(rows.len(), 82_247, "82,248 lines with the header");
    let jobs = traces::philly_jobs(&rows, "V100");
    assert_eq!(jobs.iter().map(|j| j.total_accelerators()).max(), Some(128));
    assert_eq!(jobs.iter().map(|j| j.submitted_at).min(), Some(0));
    assert_eq!(traces::philly_queues(&rows).len(), 15);
}

#[test]
fn alibaba_pods_load() {
    let path = data().join("alibaba-gpu-2023/openb_pod_list_default.csv");
    let pods =
        traces::parse_alibaba_pods(&traces::read(&path).expect("reads"), &path.display().to_string()).expect("parses");
    assert_eq!(pods.len(), 8_152);
    let (jobs, skipped) = traces::alibaba_jobs(&pods, &Catalogue::built_in(), "V100");
    assert_eq!(skipped, 897, "pending pods never ran");
    assert_eq!(jobs.len(), 8_152 - 897);
}

#[test]
fn gavel_matrix_loads() {
    let set = traces::load_gavel_matrix(&data().join("gavel/simulation_throughputs.json")).expect("loads");
    let (v100, _) = set.steps_per_s("ResNet-50 (batch size 64)", "V100", 1, 1, None).expect("measured");
    let (k80, _) = set.steps_per_s("ResNet-50 (batch size 64)", "K80", 1, 1, None).expect("measured");
    assert!(v100 > 2.0 * k80, "{v100} vs {k80}");
}

#[test]
fn a_missing_file_is_named() {
    let err = traces::read(&data().join("no/such/file.csv")).unwrap_err().to_string();
    assert!(err.contains("no/such/file.csv"), "{err}");
}

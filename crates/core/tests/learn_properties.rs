//! Properties of throughput learned from running jobs.

use computenet_core::learn::{sane_rate, LearnConfig, LearnedProfiles, Learner, Observation, PlacementKey};
use computenet_core::throughput::EstimateSource;
use computenet_core::{Catalogue, Job, ThroughputModel, Work};
use proptest::prelude::*;

fn key(model: usize, gpus: u32) -> PlacementKey {
    PlacementKey {
        tenant: "t".into(),
        model: format!("m{model}"),
        accelerator: "A100-80G".into(),
        gpus,
        nodes: 1,
        batch_size: None,
    }
}

/// Readings a broken exporter could send.
fn garbage() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(0.0),
        Just(-0.0),
        -1e300f64..0.0,
        1e5f64 * 1.000_001..f64::MAX,
    ]
}

proptest! {
    /// A placement's learned rate tends to what its jobs keep measuring, whatever it held.
    #[test]
    fn the_learned_rate_converges(earlier in prop::collection::vec(0.001f64..1e4, 1..20), target in 0.001f64..1e4,
                                  weight in 0.05f64..1.0) {
        let mut p = LearnedProfiles::new(LearnConfig { weight, min_samples: 1, ..LearnConfig::default() });
        for (t, r) in earlier.iter().enumerate() {
            p.observe(&key(0, 8), *r, t == 0, t as u64);
        }
        let mut last_error = f64::INFINITY;
        for t in 0..400u64 {
            p.observe(&key(0, 8), target, false, 100 + t);
            let error = (p.rate("t", "m0", "A100-80G", 8, 1, None).unwrap().steps_per_s - target).abs();
            prop_assert!(error <= last_error * (1.0 + 1e-12) + 1e-12, "never moves away");
            last_error = error;
        }
        // (1 - w)^400 of the first distance: below a millionth of the values involved.
        let scale = earlier.iter().fold(target, |m, r| m.max(*r));
        prop_assert!(last_error <= scale * 1e-6, "{} from {}", last_error, target);
    }

    /// Garbage readings change neither the learned profiles nor any estimate.
    #[test]
    fn garbage_never_changes_an_estimate(good in prop::collection::vec((0usize..3, 0.01f64..100.0), 0..30),
                                         bad in prop::collection::vec((0usize..3, garbage()), 1..30)) {
        let mut learner = Learner::new(LearnConfig { min_samples: 2, ..LearnConfig::default() });
        let observation = |model: usize, rate: f64, at: u64| Observation {
            job: format!("j{model}"), started_at: 0, steps: 10_000, key: key(model, 8), steps_per_s: rate, at,
        };
        for (t, (m, r)) in good.iter().enumerate() {
            learner.observe(&observation(*m, *r, t as u64 + 1));
        }
        let before = learner.clone();
        let catalogue = Catalogue::built_in();
        let estimates = |l: &Learner| {
            let model = ThroughputModel { learned: l.profiles.clone(), ..ThroughputModel::default() };
            (0..3)
                .map(|m| {
                    let mut job = computenet_core::synth::job(&format!("x{m}"), "q", 1, 8, 1.0);
                    job.work = Work::ModelSteps { model: format!("m{m}"), steps: 5000, batch_size: None };
                    let job: Job = job;
                    (model.runtime_s(&job, &catalogue, Some("A100-80G"), 1), l.remaining_s(&format!("j{m}")))
                })
                .collect::<Vec<_>>()
        };
        let expected = estimates(&before);
        for (t, (m, r)) in bad.iter().enumerate() {
            prop_assert!(sane_rate(*r).is_none());
            prop_assert!(!learner.observe(&observation(*m, *r, 1000 + t as u64)));
        }
        prop_assert_eq!(&learner, &before);
        prop_assert_eq!(estimates(&learner), expected);
    }

    /// However many placements are measured, at most `max_entries` are kept, and the
    /// newest reading is always among them.
    #[test]
    fn the_cap_holds(readings in prop::collection::vec((0usize..20, 1u32..9, 0.01f64..100.0), 1..200),
                     cap in 1usize..10) {
        let mut p = LearnedProfiles::new(LearnConfig { max_entries: cap, min_samples: 1, ..LearnConfig::default() });
        for (t, (m, g, r)) in readings.iter().enumerate() {
            prop_assert!(p.observe(&key(*m, *g), *r, true, t as u64));
            prop_assert!(p.len() <= cap);
            prop_assert_eq!(p.entries().count(), p.len());
            let model = format!("m{m}");
            prop_assert!(p.rate("t", &model, "A100-80G", *g, 1, None).is_some());
        }
    }
}

#[test]
fn the_estimate_says_it_was_learned() {
    let mut model = ThroughputModel::default();
    for (job, at) in [(true, 1), (false, 2), (true, 3)] {
        model.learned.observe(&key(0, 8), 2.0, job, at);
    }
    let mut job = computenet_core::synth::job("x", "q", 1, 8, 1.0);
    job.work = Work::ModelSteps { model: "m0".into(), steps: 100, batch_size: None };
    job.tenant = "t".into();
    let (runtime, source) = model.runtime_s(&job, &Catalogue::built_in(), Some("A100-80G"), 1);
    assert_eq!((runtime, source), (50.0, EstimateSource::Learned { jobs: 2 }));
    // Another tenant's job of the same model is estimated without what "t" reported.
    job.tenant = "other".into();
    let (_, source) = model.runtime_s(&job, &Catalogue::built_in(), Some("A100-80G"), 1);
    assert_ne!(source, EstimateSource::Learned { jobs: 2 });
}

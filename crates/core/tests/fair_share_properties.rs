//! Fair share with memory: decayed past usage orders queues (properties).

use computenet_core::synth::{cluster, job, pool};
use computenet_core::usage::{decay, past_share, DecayedUsage};
use computenet_core::{Action, ClusterKind, Queue, Quota, ResourceName, Scheduler, Snapshot};
use proptest::prelude::*;

fn gpu_queue(name: &str, nominal: u64, weight: f64) -> Queue {
    Queue {
        cohort: Some("org".into()),
        weight,
        quotas: vec![Quota {
            resource: ResourceName::Accelerators,
            accelerator: None,
            nominal,
            borrowing_limit: None,
            lending_limit: None,
        }],
        ..Queue::unlimited(name)
    }
}

/// Device-seconds used `age_s` ago, decayed to now.
fn used(amount: f64, age_s: f64, half_life_s: f64) -> Vec<DecayedUsage> {
    vec![DecayedUsage {
        resource: ResourceName::Accelerators,
        accelerator: Some("V100".into()),
        amount: amount * decay(age_s, half_life_s),
    }]
}

/// Which queue's job the cycle admits when only one of two equal jobs fits.
fn first_admitted(queues: &[Queue]) -> String {
    let pool = pool(vec![cluster("c", ClusterKind::AI, "s", 1, Some("V100"), 8)]);
    let jobs = vec![job("a-job", &queues[0].name, 1, 8, 1.0), job("b-job", &queues[1].name, 1, 8, 1.0)];
    let out = Scheduler::default().cycle(&Snapshot {
        now: 0,
        pool: &pool,
        queues,
        cohorts: &[],
        pending: &jobs,
        running: &[],
    });
    out.decisions.iter().find(|d| matches!(d.action, Action::Admit(_))).map(|d| d.job.clone()).unwrap_or_default()
}

proptest! {
    /// Of two queues with the same quota and weight that used the same amount, the one
    /// that used it more recently has the larger past share and yields.
    #[test]
    fn more_recent_use_ranks_lower(
        amount in 1.0f64..1e7,
        older in 3_600.0f64..3e7,
        gap in 60.0f64..3e6,
        half_life_h in 1.0f64..2_000.0,
    ) {
        let h = half_life_h * 3_600.0;
        let recent_age = older;
        let old_age = older + gap;
        let mut recent = gpu_queue("a", 8, 1.0);
        let mut old = gpu_queue("b", 8, 1.0);
        recent.past_share = past_share(&recent.quotas, &used(amount, recent_age, h), h);
        old.past_share = past_share(&old.quotas, &used(amount, old_age, h), h);
        prop_assert!(recent.past_share >= old.past_share);
        if recent.past_share > old.past_share {
            prop_assert_eq!(first_admitted(&[recent, old]), "b-job");
        }
    }

    /// More past use ranks lower at the same age.
    #[test]
    fn more_use_ranks_lower(little in 1.0f64..1e6, extra in 1.0f64..1e6, age in 0.0f64..1e7) {
        let h = 7.0 * 86_400.0;
        let mut heavy = gpu_queue("a", 8, 1.0);
        let mut light = gpu_queue("b", 8, 1.0);
        heavy.past_share = past_share(&heavy.quotas, &used(little + extra, age, h), h);
        light.past_share = past_share(&light.quotas, &used(little, age, h), h);
        prop_assert!(heavy.past_share > light.past_share);
        prop_assert_eq!(first_admitted(&[heavy, light]), "b-job");
    }

    /// With a half life of 0 past usage counts for nothing: the cycle decides exactly as
    /// plain weighted DRF on current usage (no past share at all).
    #[test]
    fn zero_half_life_is_todays_drf(
        amounts in proptest::collection::vec((0.0f64..1e8, 0.0f64..1e8), 2),
        weights in proptest::collection::vec(0.1f64..10.0, 2),
    ) {
        let mut with_past = vec![gpu_queue("a", 8, weights[0]), gpu_queue("b", 8, weights[1])];
        let plain = with_past.clone();
        for (q, (amount, age)) in with_past.iter_mut().zip(&amounts) {
            q.past_share = past_share(&q.quotas, &used(*amount, *age, 0.0), 0.0);
            prop_assert_eq!(q.past_share, 0.0);
        }
        let pool = pool(vec![cluster("c", ClusterKind::AI, "s", 2, Some("V100"), 8)]);
        let jobs: Vec<_> = (0..6).map(|i| job(&format!("j{i}"), if i % 2 == 0 { "a" } else { "b" }, 1, 4, 1.0)).collect();
        let snapshot = |queues: &[Queue]| {
            Scheduler::default().cycle(&Snapshot { now: 0, pool: &pool, queues, cohorts: &[], pending: &jobs, running: &[] })
        };
        prop_assert_eq!(snapshot(&with_past), snapshot(&plain));
    }
}

#[test]
fn a_heavy_past_user_yields_to_a_fresh_queue() {
    let h = 7.0 * 86_400.0;
    let mut heavy = gpu_queue("a", 8, 1.0);
    heavy.past_share = past_share(&heavy.quotas, &used(8.0 * 86_400.0, 86_400.0, h), h);
    let fresh = gpu_queue("b", 8, 1.0);
    assert!(heavy.past_share > 0.05, "a day of the whole quota a day ago: {}", heavy.past_share);
    assert_eq!(first_admitted(&[heavy.clone(), fresh.clone()]), "b-job");
    // Without memory the tie goes to the earlier submission (the first queue's job here).
    assert_eq!(first_admitted(&[Queue { past_share: 0.0, ..heavy }, fresh]), "a-job");
}

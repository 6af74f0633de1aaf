//! The placement policies a simulation compares, all built on the same core cycle.

use computenet_core::cycle::PlacementRule;
use computenet_core::{CycleConfig, ElasticRange, Job, Objective, Restart, Scheduler, ThroughputModel, Work};

/// A named policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Policy {
    /// First fit in pool order, arrival order, no backfill: heterogeneity-agnostic FIFO.
    Fifo,
    /// The cluster with the most free devices, arrival order, no backfill.
    LeastLoaded,
    /// computenet's queueing (fair share, reservation, backfill) with type-blind first fit.
    Agnostic,
    /// computenet: queueing plus efficiency-aware placement by each job's own objective.
    Computenet,
    /// computenet with every job's objective set to this one.
    ComputenetWith(Objective),
    /// computenet plus the re-optimisation round: restartable jobs move to faster
    /// places, elastic gangs grow into idle devices and give them back.
    ComputenetAdaptive,
}

impl Policy {
    /// The four kinds of policy (computenet by the jobs' own objectives).
    pub const ALL: [Policy; 4] = [Policy::Fifo, Policy::LeastLoaded, Policy::Agnostic, Policy::Computenet];

    /// What `--policy` runs by default: the four, plus computenet with each objective
    /// other than Balanced (the jobs' default) forced on every job.
    pub const DEFAULT_SET: [Policy; 8] = [
        Policy::Fifo,
        Policy::LeastLoaded,
        Policy::Agnostic,
        Policy::Computenet,
        Policy::ComputenetAdaptive,
        Policy::ComputenetWith(Objective::Fastest),
        Policy::ComputenetWith(Objective::Cheapest),
        Policy::ComputenetWith(Objective::Greenest),
    ];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Policy::Fifo => "fifo",
            Policy::LeastLoaded => "least-loaded",
            Policy::Agnostic => "agnostic",
            Policy::Computenet => "computenet",
            Policy::ComputenetWith(Objective::Fastest) => "computenet-fastest",
            Policy::ComputenetWith(Objective::Cheapest) => "computenet-cheapest",
            Policy::ComputenetWith(Objective::Greenest) => "computenet-greenest",
            Policy::ComputenetWith(Objective::Balanced) => "computenet-balanced",
            Policy::ComputenetAdaptive => "computenet-adaptive",
        }
    }

    /// Parses a command-line name.
    pub fn from_name(name: &str) -> Option<Policy> {
        Policy::DEFAULT_SET.into_iter().chain([Policy::ComputenetWith(Objective::Balanced)]).find(|p| p.name() == name)
    }

    /// All names, for messages.
    pub fn names() -> String {
        let mut v: Vec<&str> = Policy::DEFAULT_SET.iter().map(|p| p.name()).collect();
        v.push(Policy::ComputenetWith(Objective::Balanced).name());
        v.join(", ")
    }

    /// Sets the jobs' objective when the policy forces one.
    pub fn prepare(self, jobs: &mut [Job]) {
        if let Policy::ComputenetWith(objective) = self {
            for j in jobs {
                j.objective = objective;
            }
        }
    }

    /// Whether the policy runs the re-optimisation round.
    pub fn adapts(self) -> bool {
        self == Policy::ComputenetAdaptive
    }

    /// The scheduler that implements the policy.
    pub fn scheduler(self, model: ThroughputModel) -> Scheduler {
        let (placement, backfill) = match self {
            Policy::Fifo => (PlacementRule::FirstFit, false),
            Policy::LeastLoaded => (PlacementRule::LeastLoaded, false),
            Policy::Agnostic => (PlacementRule::FirstFit, true),
            Policy::Computenet | Policy::ComputenetWith(_) | Policy::ComputenetAdaptive => {
                (PlacementRule::Scored, true)
            }
        };
        Scheduler { model, config: CycleConfig { placement, backfill, ..CycleConfig::default() } }
    }
}

/// Restart cost Sia's simulator charges per model (seconds), else `default_s`.
pub fn restart_cost_s(job: &Job, default_s: u64) -> u64 {
    match &job.work {
        Work::ModelSteps { model, .. } => match model.as_str() {
            "cifar10" => 50,
            "deepspeech2" => 25,
            "bert" => 120,
            "yolov3" => 80,
            "imagenet" => 250,
            _ => default_s,
        },
        _ => default_s,
    }
}

/// Makes a deterministic `share` of the jobs restartable (chosen by a hash of their id,
/// so that the jobs picked at one share are picked at any higher one), with their restart
/// cost; of those, `elastic_share` also become elastic from one replica up to their size
/// (they start smaller when the whole gang does not fit, and grow back). The rest stay rigid.
pub fn make_restartable(jobs: &mut [Job], share: f64, default_cost_s: u64, elastic_share: f64) {
    for j in jobs {
        if pick(&j.id) < share {
            j.restart = Some(Restart { grace_period_s: 30, restart_cost_s: restart_cost_s(j, default_cost_s) });
            if pick(&format!("{}#elastic", j.id)) < elastic_share {
                j.elastic = Some(ElasticRange { min_replicas: 1, max_replicas: j.replicas.max(1) });
            }
        }
    }
}

/// A stable number in [0, 1) from a job id (FNV-1a, then splitmix64's finaliser: short
/// ids differ only in their last bytes, which FNV alone leaves in the low bits).
fn pick(id: &str) -> f64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d049bb133111eb);
    h ^= h >> 31;
    (h >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for p in Policy::DEFAULT_SET {
            assert_eq!(Policy::from_name(p.name()), Some(p));
        }
        assert_eq!(Policy::from_name("computenet-balanced"), Some(Policy::ComputenetWith(Objective::Balanced)));
        assert_eq!(Policy::from_name("random"), None);
        assert_eq!(Policy::from_name("computenet-adaptive"), Some(Policy::ComputenetAdaptive));
    }

    #[test]
    fn restartable_share_picks_about_that_share_and_keeps_earlier_picks() {
        let jobs: Vec<Job> = (0..2000).map(|i| computenet_core::synth::job(&format!("j{i}"), "q", 1, 1, 1.0)).collect();
        let mut half = jobs.clone();
        make_restartable(&mut half, 0.5, 60, 0.0);
        let n = half.iter().filter(|j| j.restart.is_some()).count();
        assert!((900..1100).contains(&n), "{n} of 2000 restartable at share 0.5");
        let mut all = jobs.clone();
        make_restartable(&mut all, 1.0, 60, 1.0);
        assert!(all.iter().all(|j| j.restart == Some(Restart { grace_period_s: 30, restart_cost_s: 60 })));
        assert!(all.iter().all(|j| j.elastic == Some(ElasticRange { min_replicas: 1, max_replicas: 1 })));
        assert!(half.iter().all(|j| j.elastic.is_none()));
        let mut none = jobs;
        make_restartable(&mut none, 0.0, 60, 1.0);
        assert!(none.iter().all(|j| j.restart.is_none()));
        // A job picked at 0.5 is picked at any higher share.
        let mut more = all.clone();
        more.iter_mut().for_each(|j| j.restart = None);
        make_restartable(&mut more, 0.7, 60, 0.0);
        assert!(half.iter().zip(&more).all(|(h, m)| h.restart.is_none() || m.restart.is_some()));
    }
}

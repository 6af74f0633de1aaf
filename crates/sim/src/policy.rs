//! The placement policies a simulation compares, all built on the same core cycle.

use computenet_core::cycle::PlacementRule;
use computenet_core::{CycleConfig, Job, Objective, Scheduler, ThroughputModel};

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
}

impl Policy {
    /// The four kinds of policy (computenet by the jobs' own objectives).
    pub const ALL: [Policy; 4] = [Policy::Fifo, Policy::LeastLoaded, Policy::Agnostic, Policy::Computenet];

    /// What `--policy` runs by default: the four, plus computenet with each objective
    /// other than Balanced (the jobs' default) forced on every job.
    pub const DEFAULT_SET: [Policy; 7] = [
        Policy::Fifo,
        Policy::LeastLoaded,
        Policy::Agnostic,
        Policy::Computenet,
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

    /// The scheduler that implements the policy.
    pub fn scheduler(self, model: ThroughputModel) -> Scheduler {
        let (placement, backfill) = match self {
            Policy::Fifo => (PlacementRule::FirstFit, false),
            Policy::LeastLoaded => (PlacementRule::LeastLoaded, false),
            Policy::Agnostic => (PlacementRule::FirstFit, true),
            Policy::Computenet | Policy::ComputenetWith(_) => (PlacementRule::Scored, true),
        };
        Scheduler { model, config: CycleConfig { placement, backfill, ..CycleConfig::default() } }
    }
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
    }
}

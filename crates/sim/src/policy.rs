//! The placement policies a simulation compares, all built on the same core cycle.

use computenet_core::cycle::PlacementRule;
use computenet_core::{CycleConfig, Scheduler, ThroughputModel};

/// A named policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Policy {
    /// First fit in pool order, arrival order, no backfill: heterogeneity-agnostic FIFO.
    Fifo,
    /// The cluster with the most free devices, arrival order, no backfill.
    LeastLoaded,
    /// computenet's queueing (fair share, reservation, backfill) with type-blind first fit.
    Agnostic,
    /// computenet: queueing plus efficiency-aware placement by each job's objective.
    Computenet,
}

impl Policy {
    pub const ALL: [Policy; 4] = [Policy::Fifo, Policy::LeastLoaded, Policy::Agnostic, Policy::Computenet];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Policy::Fifo => "fifo",
            Policy::LeastLoaded => "least-loaded",
            Policy::Agnostic => "agnostic",
            Policy::Computenet => "computenet",
        }
    }

    /// Parses a command-line name.
    pub fn from_name(name: &str) -> Option<Policy> {
        Policy::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The scheduler that implements the policy.
    pub fn scheduler(self, model: ThroughputModel) -> Scheduler {
        let (placement, backfill) = match self {
            Policy::Fifo => (PlacementRule::FirstFit, false),
            Policy::LeastLoaded => (PlacementRule::LeastLoaded, false),
            Policy::Agnostic => (PlacementRule::FirstFit, true),
            Policy::Computenet => (PlacementRule::Scored, true),
        };
        Scheduler { model, config: CycleConfig { placement, backfill, ..CycleConfig::default() } }
    }
}

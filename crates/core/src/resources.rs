//! Value types shared by jobs and the pool: what a replica asks for, where replicas go,
//! and the kinds of member cluster. They live here, below both, so that neither module
//! needs the other.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What a member cluster is for (通算, 智算, 超算).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ClusterKind {
    /// General-purpose CPU Kubernetes cluster.
    General,
    /// AI (GPU/NPU) Kubernetes cluster.
    AI,
    /// Supercomputing (Slurm) cluster.
    HPC,
}

impl ClusterKind {
    /// All kinds, in display order.
    pub const ALL: [ClusterKind; 3] = [ClusterKind::General, ClusterKind::AI, ClusterKind::HPC];
}

impl std::fmt::Display for ClusterKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ClusterKind::General => "General",
            ClusterKind::AI => "AI",
            ClusterKind::HPC => "HPC",
        })
    }
}

/// What one replica of a gang needs on its node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaRequest {
    pub cpu_millis: u64,
    pub memory_bytes: u64,
    /// Accelerator devices per replica (0 for a CPU-only job).
    pub accelerators: u32,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extended: BTreeMap<String, u64>,
}

/// A node and how many replicas of a gang it hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeSlot {
    /// Index of the node in its cluster's `nodes`.
    pub node: u32,
    pub replicas: u32,
}

//! The trace-driven simulator of computenet.
//!
//! It replays a workload over a simulated pool in simulated time, calling the same
//! [`computenet_core::Scheduler`] as the service at every event, and reports job
//! completion times, queueing, utilisation and energy.
#![forbid(unsafe_code)]

pub mod departments;
pub mod engine;
pub mod error;
pub mod fairshare;
pub mod plots;
pub mod policy;
pub mod report;
pub mod traces;
pub mod workload;

pub use engine::{RunOptions, Simulation, SimulationResult};
pub use error::{Error, Result};
pub use policy::Policy;
pub use report::Summary;

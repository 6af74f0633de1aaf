//! The one error type of the simulator.

/// Errors of workload loading and simulation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Core(#[from] computenet_core::Error),
    #[error("{0}")]
    Invalid(String),
}

/// Result with the simulator's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

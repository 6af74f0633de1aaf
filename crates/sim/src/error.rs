//! The one error type of the simulator.

use std::path::PathBuf;

/// Errors of workload loading and simulation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Core(#[from] computenet_core::Error),
    #[error("{0}")]
    Invalid(String),
    /// A malformed row or file: `file:line: why`.
    #[error("{source_name}:{line}: {why}")]
    Parse { source_name: String, line: usize, why: String },
    /// A file or folder could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Writing a plot failed.
    #[error("plot {}: {why}", path.display())]
    Plot { path: PathBuf, why: String },
}

impl Error {
    pub(crate) fn parse(source_name: &str, line: usize, why: impl Into<String>) -> Self {
        Error::Parse { source_name: source_name.to_string(), line, why: why.into() }
    }
}

/// Result with the simulator's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

//! The one error type of the core.

/// Errors the core reports. The core never panics on input: parsers and validators
/// return these instead.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Error {
    /// A quantity such as "8", "500m" or "64Gi" could not be parsed.
    #[error("invalid quantity {input:?}: {why}")]
    Quantity { input: String, why: &'static str },
    /// A profile or trace file had a malformed row.
    #[error("{source_name}:{line}: {why}")]
    Parse { source_name: String, line: usize, why: String },
    /// A job, queue or pool description is inconsistent.
    #[error("invalid {what} {name:?}: {why}")]
    Invalid { what: &'static str, name: String, why: String },
}

/// Result with the core's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn parse(source_name: &str, line: usize, why: impl Into<String>) -> Self {
        Error::Parse { source_name: source_name.to_string(), line, why: why.into() }
    }

    pub(crate) fn invalid(what: &'static str, name: &str, why: impl Into<String>) -> Self {
        Error::Invalid { what, name: name.to_string(), why: why.into() }
    }
}

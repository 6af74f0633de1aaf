//! The one error type of the members crate.

/// Errors of a member backend.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server did not answer in time.
    #[error("{what}: no answer within {seconds} s")]
    Timeout { what: String, seconds: u64 },
    /// The server could not be reached or the connection broke.
    #[error("{what}: {why}")]
    Transport { what: String, why: String },
    /// The server refused the credentials.
    #[error("{what}: authentication refused (HTTP {status}){}", detail(.errors))]
    Auth { what: String, status: u16, errors: Vec<String> },
    /// The server answered with an error.
    #[error("{what}: HTTP {status}{}", detail(.errors))]
    Server { what: String, status: u16, errors: Vec<String> },
    /// The answer was not what the API describes.
    #[error("{what}: unexpected answer: {why}")]
    Decode { what: String, why: String },
    /// A setting or credential is unusable.
    #[error("{0}")]
    Config(String),
}

fn detail(errors: &[String]) -> String {
    if errors.is_empty() {
        String::new()
    } else {
        format!(": {}", errors.join("; "))
    }
}

/// Result with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

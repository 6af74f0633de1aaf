//! The one error type of the members crate.

use computenet_api::conditions::reasons;

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
    /// A Kubernetes API call (to a member, or to the hub for its Secrets) failed.
    #[error("{what}: {source}")]
    Kube {
        what: String,
        #[source]
        source: kube::Error,
    },
    /// Any of the above, on the named member.
    #[error("member {member}: {source}")]
    Member {
        member: String,
        #[source]
        source: Box<Error>,
    },
}

impl Error {
    /// The error, said of `member`.
    pub fn on(self, member: &str) -> Error {
        Error::Member { member: member.to_string(), source: Box::new(self) }
    }

    /// A Kubernetes API failure while doing `what`.
    pub fn kube(what: &str) -> impl FnOnce(kube::Error) -> Error + '_ {
        move |source| Error::Kube { what: what.to_string(), source }
    }

    /// A CamelCase reason for a member's Ready condition.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Timeout { .. } => reasons::TIMEOUT,
            Error::Transport { .. } => reasons::UNREACHABLE,
            Error::Auth { .. } => reasons::AUTHENTICATION_FAILED,
            Error::Server { .. } => reasons::SERVER_ERROR,
            Error::Decode { .. } => reasons::UNEXPECTED_ANSWER,
            Error::Config(_) => reasons::INVALID_CONFIG,
            Error::Kube { .. } => reasons::UNREACHABLE,
            Error::Member { source, .. } => source.reason(),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_failure_has_a_condition_reason_and_a_readable_message() {
        let auth = Error::Auth { what: "listing nodes".into(), status: 401, errors: vec![] };
        assert_eq!(
            (auth.reason(), auth.to_string().as_str()),
            ("AuthenticationFailed", "listing nodes: authentication refused (HTTP 401)")
        );
        let server =
            Error::Server { what: "submitting a job".into(), status: 500, errors: vec!["a [2014]".into(), "b".into()] };
        assert_eq!(
            (server.reason(), server.to_string().as_str()),
            ("ServerError", "submitting a job: HTTP 500: a [2014]; b")
        );
        assert_eq!(Error::Timeout { what: "x".into(), seconds: 5 }.reason(), "Timeout");
        assert_eq!(Error::Transport { what: "x".into(), why: "refused".into() }.reason(), "Unreachable");
    }
}

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
    /// The service refuses to connect as the MemberCluster says (a Secret it may not
    /// read, a plain http:// endpoint, a kubeconfig that runs commands or reads files);
    /// `reason` is the Ready condition's reason.
    #[error("{message}")]
    Refused { reason: &'static str, message: String },
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
            Error::Refused { reason, .. } => reason,
            Error::Kube { .. } => reasons::UNREACHABLE,
            Error::Member { source, .. } => source.reason(),
        }
    }

    /// The Ready reason of a refusal to connect ([`Error::Refused`]), through the member wrapper.
    pub fn refusal(&self) -> Option<&'static str> {
        match self {
            Error::Refused { reason, .. } => Some(reason),
            Error::Member { source, .. } => source.refusal(),
            _ => None,
        }
    }

    /// Whether trying the same call again can succeed (see [`Retry`]); pure, from the
    /// error alone.
    pub fn retry(&self) -> Retry {
        match self {
            Error::Timeout { .. }
            | Error::Transport { .. }
            | Error::Decode { .. }
            | Error::Config(_)
            | Error::Refused { .. } => Retry::Later,
            Error::Auth { .. } => Retry::WithNewCredentials,
            Error::Server { status, errors, .. } => slurm_retry(*status, errors),
            Error::Kube { source: kube::Error::Api(status), .. } => {
                kubernetes_retry(status.code, &status.reason, &status.message)
            }
            Error::Kube { .. } => Retry::Later,
            Error::Member { source, .. } => source.retry(),
        }
    }
}

/// What a failed call says about trying it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// The member refused the request itself (an invalid object, an admission policy, a
    /// partition or account that does not exist): the same request fails again, so the
    /// job ends instead of holding its capacity.
    Never,
    /// Timeouts, broken connections, 5xx, 429, conflicts, exhausted member quotas, missing
    /// permissions: something that can change without the job changing. Back off.
    Later,
    /// The member refused the credentials (401): re-read them from the hub, reconnect,
    /// then try again.
    WithNewCredentials,
}

impl Retry {
    /// The label of `computenet_dispatch_errors_total`'s `class`.
    pub fn class(self) -> &'static str {
        match self {
            Retry::Never => "permanent",
            Retry::Later | Retry::WithNewCredentials => "transient",
        }
    }
}

/// Whether a Kubernetes apiserver's refusal of a create is for good.
///
/// - 400 BadRequest, 413 (object too large) and 422 Invalid: the object itself is wrong.
/// - 403 is for good only when an admission policy or webhook denied the object
///   (`ValidatingAdmissionPolicy ... denied request`, `admission webhook ... denied the
///   request`) or a LimitRange bound does (`maximum ... per ...`). Other 403s can change
///   without the job changing and back off: RBAC (`cannot create resource`: the member's
///   credentials lack a permission an operator can grant), an exhausted ResourceQuota
///   (`exceeded quota`: frees up as jobs end) and a terminating namespace.
/// - 401 needs new credentials; everything else (404, 409, 429, 5xx) backs off.
pub fn kubernetes_retry(code: u16, reason: &str, message: &str) -> Retry {
    let m = message.to_ascii_lowercase();
    match code {
        400 | 413 | 422 => Retry::Never,
        401 => Retry::WithNewCredentials,
        // A policy's own message may say anything ("cannot use GPUs"): the denial decides.
        403 if m.contains("denied request") || m.contains("denied the request") => Retry::Never,
        403 if m.contains("exceeded quota") || m.contains("cannot ") || m.contains("being terminated") => Retry::Later,
        403 if (m.contains("maximum") || m.contains("minimum")) && m.contains(" per ") => Retry::Never,
        // A 5xx or 429 is the member's trouble, whatever its reason says.
        400..=428 | 430..=499 if reason == "Invalid" || reason == "BadRequest" => Retry::Never,
        _ => Retry::Later,
    }
}

/// What slurmctld says (in slurmrestd's `errors`) when it refuses a batch job for a
/// reason retrying cannot change: the texts of the `ESLURM_*` errors about what the job
/// asks for (gres, time limit, node count, memory, features, licences). Errors about the
/// member's own setup (partition, account, QOS, wckey: they come from the MemberCluster
/// and the Slurm user, not from the job, so failing the job would fail every job placed
/// there) and about the moment (busy, accounting limits on running jobs, slurmctld down)
/// are not here: they back off.
const SLURM_REJECTIONS: &[&str] = &[
    "invalid generic resource",
    "invalid gres",
    "requested time limit",
    "time limit specification required",
    "invalid feature",
    "invalid node name",
    "invalid licen",
    "node count specification invalid",
    "requested node configuration is not available",
    "more processors requested than permitted",
    "memory specification can not be satisfied",
    "invalid task memory",
];

/// Whether slurmrestd's refusal of a submit is for good: a 400 or 422 (it could not read
/// the request), or an error whose text is one of [`SLURM_REJECTIONS`] (slurmrestd
/// answers most slurmctld refusals with a 500 and the error in `errors`).
pub fn slurm_retry(status: u16, errors: &[String]) -> Retry {
    let rejected = errors.iter().any(|e| {
        let e = e.to_ascii_lowercase();
        SLURM_REJECTIONS.iter().any(|r| e.contains(r))
    });
    match status {
        401 | 403 => Retry::WithNewCredentials,
        400 | 422 => Retry::Never,
        _ if rejected => Retry::Never,
        _ => Retry::Later,
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

    #[test]
    fn kubernetes_refusals_of_the_object_are_permanent_and_the_rest_back_off() {
        use Retry::*;
        let cases = [
            (422, "Invalid", "Job.batch \"x\" is invalid: metadata.labels: Invalid value: must be no more than 63 characters", Never),
            (400, "BadRequest", "the body of the request was in an unknown format", Never),
            (413, "RequestEntityTooLarge", "request is too large", Never),
            (403, "Forbidden", "jobs.batch \"cn-1\" is forbidden: ValidatingAdmissionPolicy 'no-gpu' with binding 'b' denied request: no GPUs here", Never),
            (403, "Forbidden", "admission webhook \"policy.example.com\" denied the request: image not allowed", Never),
            (403, "Forbidden", "pods \"p\" is forbidden: maximum cpu usage per Container is 2, but limit is 4", Never),
            (403, "Forbidden", "jobs.batch \"cn-1\" is forbidden: exceeded quota: q, requested: count/jobs.batch=1, used: count/jobs.batch=0, limited: count/jobs.batch=0", Later),
            (403, "Forbidden", "jobs.batch is forbidden: User \"u\" cannot create resource \"jobs\" in API group \"batch\" in the namespace \"n\"", Later),
            (403, "Forbidden", "unable to create new content in namespace n because it is being terminated", Later),
            (403, "Forbidden", "jobs.batch \"cn-1\" is forbidden: ValidatingAdmissionPolicy 'p' with binding 'b' denied request: jobs cannot use GPUs here", Never),
            (403, "Forbidden", "something else", Later),
            (401, "Unauthorized", "Unauthorized", WithNewCredentials),
            (404, "NotFound", "namespaces \"computenet-jobs\" not found", Later),
            (409, "Conflict", "the object has been modified", Later),
            (429, "TooManyRequests", "too many requests", Later),
            (500, "InternalError", "etcdserver: request timed out", Later),
            (503, "ServiceUnavailable", "", Later),
            (500, "Invalid", "a hostile member's 500 says Invalid", Later),
            (429, "BadRequest", "", Later),
            (405, "Invalid", "", Never),
        ];
        for (code, reason, message, want) in cases {
            assert_eq!(kubernetes_retry(code, reason, message), want, "{code} {message}");
        }
    }

    #[test]
    fn slurm_refusals_of_the_request_are_permanent_and_the_rest_back_off() {
        let e = |s: &str| vec![s.to_string()];
        // The member's own setup is wrong, not the job: every job would fail there.
        assert_eq!(slurm_retry(500, &e("Invalid partition name specified [2000]")), Retry::Later);
        assert_eq!(
            slurm_retry(500, &e("Invalid account or account/partition combination specified [2045]")),
            Retry::Later
        );
        assert_eq!(slurm_retry(500, &e("Invalid qos specification [2066]")), Retry::Later);
        assert_eq!(slurm_retry(500, &e("User's group not permitted to use this partition [2047]")), Retry::Later);
        assert_eq!(
            slurm_retry(500, &e("Requested time limit is invalid (missing or exceeds some limit) [2051]")),
            Retry::Never
        );
        assert_eq!(slurm_retry(500, &e("Invalid generic resource (gres) specification [2072]")), Retry::Never);
        assert_eq!(slurm_retry(500, &e("Requested node configuration is not available [2014]")), Retry::Never);
        assert_eq!(slurm_retry(422, &[]), Retry::Never, "slurmrestd could not read the request");
        assert_eq!(slurm_retry(500, &e("Unable to contact slurm controller (connect failure) [1007]")), Retry::Later);
        assert_eq!(
            slurm_retry(
                500,
                &e("Job violates accounting/QOS policy (job submit limit, user's size and/or time limits) [2050]")
            ),
            Retry::Later
        );
        assert_eq!(slurm_retry(503, &[]), Retry::Later);
        assert_eq!(slurm_retry(401, &[]), Retry::WithNewCredentials);
    }

    #[test]
    fn the_class_follows_the_error_through_the_member_wrapper() {
        let server = Error::Server {
            what: "submitting a job".into(),
            status: 500,
            errors: vec!["Invalid generic resource (gres) specification".into()],
        };
        assert_eq!(server.on("slurm-1").retry(), Retry::Never);
        assert_eq!(Retry::Never.class(), "permanent");
        let timeout = Error::Timeout { what: "dispatch".into(), seconds: 5 }.on("ai-1");
        assert_eq!((timeout.retry(), timeout.retry().class()), (Retry::Later, "transient"));
        let auth = Error::Auth { what: "x".into(), status: 401, errors: vec![] }.on("slurm-1");
        assert_eq!((auth.retry(), auth.retry().class()), (Retry::WithNewCredentials, "transient"));
        let api = kube::Error::Api(Box::new(kube::core::Status {
            code: 422,
            reason: "Invalid".into(),
            message: "bad".into(),
            ..Default::default()
        }));
        assert_eq!(Error::Kube { what: "dispatch".into(), source: api }.on("ai-1").retry(), Retry::Never);
    }
}

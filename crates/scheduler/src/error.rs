//! The one error type of the service crate.

/// Errors of the service.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    Api(#[from] computenet_api::Error),
    #[error("the computenet CRDs are not installed in the hub (missing: {0}); install them with `kubectl apply -f deploy/crds/` or the Helm chart")]
    MissingCrds(String),
    #[error("kubeconfig: {0}")]
    Kubeconfig(String),
    #[error(transparent)]
    Member(#[from] computenet_members::Error),
    #[error("lost the leader lease {0}")]
    LostLease(String),
    #[error("the leader lease is not surely held long enough for this write; it is left to the next leader")]
    Fenced,
    #[error("timed out {0}")]
    Timeout(String),
    #[error("the hub's caches were not ready within {0:?}; released the leader lease so another replica can try")]
    CachesNotReady(std::time::Duration),
    #[error("admission seal key: {0}")]
    AdmissionKey(String),
    #[error("admission webhook: {0}")]
    Webhook(String),
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// Result with the service's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

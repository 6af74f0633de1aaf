//! The one error type of the API crate.

/// Errors turning resources into the core's types.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A field holds a value the core cannot use; `field` is its path in the resource.
    #[error("{field}: {why}")]
    InvalidField { field: String, why: String },
    /// The (Cluster)TrainingRuntime a TrainJob refers to is not in the hub: its pods are
    /// the runtime's, so the hub must read them before accounting and copying the TrainJob.
    #[error("spec.runtimeRef: {kind} {name:?} not found in the hub{}; the TrainJob needs it for {needed}", namespace.as_ref().map(|n| format!(" (namespace {n})")).unwrap_or_default())]
    RuntimeNotFound { kind: String, namespace: Option<String>, name: String, needed: String },
    #[error(transparent)]
    Core(#[from] computenet_core::Error),
    #[error("rendering CRD YAML: {0}")]
    Yaml(#[from] serde_yaml::Error),
}

/// Result with the API crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn field(field: &str, why: impl Into<String>) -> Self {
        Error::InvalidField { field: field.to_string(), why: why.into() }
    }
}

//! Labels, annotations and resource names computenet uses on the objects it creates and
//! the nodes it reads.

/// On every object computenet creates on a member.
pub const MANAGED: &str = "computenet.io/managed";
/// The TrainingJob's UID.
pub const JOB_UID: &str = "computenet.io/job-uid";
/// The TrainingJob's namespace and name.
pub const JOB_NAMESPACE: &str = "computenet.io/job-namespace";
pub const JOB_NAME: &str = "computenet.io/job-name";
/// The finalizer that lets computenet clean up remote objects.
pub const FINALIZER: &str = "computenet.io/cleanup";
/// Node label carrying the accelerator type.
pub const GPU_PRODUCT: &str = "nvidia.com/gpu.product";
/// Extended resource of accelerators.
pub const GPU_RESOURCE: &str = "nvidia.com/gpu";

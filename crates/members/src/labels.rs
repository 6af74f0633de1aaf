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

/// The member-side name of a TrainingJob: short, DNS-safe, unique by UID.
pub fn remote_name(uid: &str) -> String {
    let short: String =
        uid.chars().filter(|c| c.is_ascii_alphanumeric()).take(20).collect::<String>().to_ascii_lowercase();
    format!("cn-{short}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_deterministic_and_dns_safe() {
        let n = remote_name("0a1b2c3d-4e5f-6789-abcd-ef0123456789");
        assert_eq!(n, "cn-0a1b2c3d4e5f6789abcd");
        assert!(n.len() <= 63 && n.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
    }
}

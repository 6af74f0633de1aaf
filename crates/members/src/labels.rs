//! Labels, annotations and resource names computenet uses on the objects it creates and
//! the nodes it reads.

/// On every object computenet creates on a member.
pub const MANAGED: &str = "computenet.io/managed";
/// The hub that created the object: orphan cleanup only ever judges its own hub's objects,
/// so two hubs can share a member.
pub const HUB: &str = "computenet.io/hub";
/// The TrainingJob's UID.
pub const JOB_UID: &str = "computenet.io/job-uid";
/// The TrainingJob's namespace and name: in full as annotations, and as labels (for
/// selecting by hand) when they fit a label value, cut with a hash suffix when not.
pub const JOB_NAMESPACE: &str = "computenet.io/job-namespace";
pub const JOB_NAME: &str = "computenet.io/job-name";
/// The TrainingJob's attempt (`status.attempt`) an object was made for: a job stopped
/// and started again keeps its object names, and a new attempt must not take the
/// objects of an earlier one for its own (nor start before they are gone).
pub const ATTEMPT: &str = "computenet.io/attempt";
/// The finalizer that lets computenet clean up remote objects.
pub const FINALIZER: &str = "computenet.io/cleanup";
/// Node label carrying the accelerator type.
pub const GPU_PRODUCT: &str = "nvidia.com/gpu.product";
/// Extended resource of accelerators.
pub const GPU_RESOURCE: &str = "nvidia.com/gpu";

/// Longest label value Kubernetes accepts.
pub const MAX_LABEL_VALUE: usize = 63;

/// The member-side name of a TrainingJob: short, DNS-safe, unique by UID.
pub fn remote_name(uid: &str) -> String {
    let mut name = String::with_capacity(23);
    name.push_str("cn-");
    name.extend(uid.chars().filter(char::is_ascii_alphanumeric).take(20).map(|c| c.to_ascii_lowercase()));
    name
}

/// Whether `text` is a valid label value: at most 63 characters of `[A-Za-z0-9._-]`,
/// starting and ending with a letter or digit (or empty).
pub fn is_label_value(text: &str) -> bool {
    let edge = |c: Option<char>| c.is_none_or(|c| c.is_ascii_alphanumeric());
    text.len() <= MAX_LABEL_VALUE
        && text.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && edge(text.chars().next())
        && edge(text.chars().last())
}

/// `text` as a label value: itself when valid, otherwise its valid characters cut short
/// and a hash of the whole text, so different long names stay different.
pub fn label_value(text: &str) -> String {
    if is_label_value(text) {
        return text.to_string();
    }
    let kept: String = text.chars().filter(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c)).take(46).collect();
    let kept = kept.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    let hash = format!("{:016x}", fnv1a(text.as_bytes()));
    if kept.is_empty() {
        hash
    } else {
        format!("{kept}-{hash}")
    }
}

/// On a member namespace: the hub namespace (tenant) whose jobs run there, as a label value.
pub const TENANT_NAMESPACE: &str = "computenet.io/tenant-namespace";

/// Whether `text` is a DNS label (RFC 1123), as namespace names must be: at most 63
/// characters of lower-case letters, digits and '-', starting and ending with a letter or digit.
pub fn is_dns_label(text: &str) -> bool {
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    text.len() <= MAX_LABEL_VALUE
        && text.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && edge(text.chars().next())
        && edge(text.chars().last())
}

/// The member namespace for the jobs of hub namespace `tenant`: `<prefix>-<tenant>` when
/// that is a valid namespace name, otherwise its valid characters cut short and a hash of
/// the whole, so every tenant gets its own namespace however long the names.
pub fn member_namespace(prefix: &str, tenant: &str) -> String {
    let whole = format!("{prefix}-{tenant}");
    if is_dns_label(&whole) {
        return whole;
    }
    let kept: String = whole
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' })
        .take(MAX_LABEL_VALUE - 17)
        .collect();
    let kept = kept.trim_matches('-');
    let hash = format!("{:016x}", fnv1a(whole.as_bytes()));
    if kept.is_empty() {
        format!("cn-{hash}")
    } else {
        format!("{kept}-{hash}")
    }
}

/// FNV-1a, 64 bits: stable across builds and Rust versions (unlike the std hasher), so a
/// restarted service derives the same label values.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

/// Checks a hub identity: it goes into a label value and a Slurm comment word.
pub fn check_hub_id(id: &str) -> Result<(), String> {
    if id.is_empty() || !is_label_value(id) {
        return Err(format!(
            "hub id {id:?} must be 1 to {MAX_LABEL_VALUE} characters of letters, digits, '-', '_' or '.', \
             starting and ending with a letter or digit"
        ));
    }
    Ok(())
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

    #[test]
    fn long_names_become_valid_distinct_label_values() {
        assert_eq!(label_value("bert-large"), "bert-large");
        let long_a = format!("{}a", "x".repeat(252));
        let long_b = format!("{}b", "x".repeat(252));
        for v in [label_value(&long_a), label_value(&long_b), label_value("a.b-"), label_value("--"), label_value("")] {
            assert!(is_label_value(&v), "{v:?}");
        }
        assert_ne!(label_value(&long_a), label_value(&long_b));
        assert_eq!(label_value(&long_a), label_value(&long_a), "deterministic");
        assert!(!is_label_value(&"y".repeat(64)) && !is_label_value("-a") && !is_label_value("a b"));
    }

    #[test]
    fn each_tenant_gets_its_own_valid_member_namespace() {
        assert_eq!(member_namespace("computenet-jobs", "team-a"), "computenet-jobs-team-a");
        let long_a = member_namespace("computenet-jobs", &format!("{}a", "t".repeat(62)));
        let long_b = member_namespace("computenet-jobs", &format!("{}b", "t".repeat(62)));
        for ns in [&long_a, &long_b, &member_namespace("Jobs_", "x"), &member_namespace("-", "-")] {
            assert!(is_dns_label(ns), "{ns:?}");
        }
        assert_ne!(long_a, long_b);
        assert!(long_a.starts_with("computenet-jobs-ttt"), "{long_a}");
        assert_eq!(long_a, member_namespace("computenet-jobs", &format!("{}a", "t".repeat(62))), "deterministic");
        assert_ne!(member_namespace("computenet-jobs", "team-a"), member_namespace("computenet-jobs", "team-b"));
        assert!(!is_dns_label("A") && !is_dns_label("a.b") && !is_dns_label("") && !is_dns_label("a-"));
    }

    #[test]
    fn hub_ids_must_fit_a_label_and_a_word() {
        assert!(check_hub_id("0a1b2c3d-4e5f-6789-abcd-ef0123456789").is_ok());
        assert!(check_hub_id("hub-a").is_ok());
        for bad in ["", "a b", "hub=x", &"h".repeat(64), "-x"] {
            assert!(check_hub_id(bad).is_err(), "{bad:?}");
        }
    }
}

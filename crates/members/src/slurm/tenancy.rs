//! Who a job runs as on a Slurm member: each hub namespace's Slurm user, account and
//! working directory (`spec.slurm.tenants`), or the connection's one user when no tenants
//! are mapped. And which batch jobs are a TrainingJob's: the one whose id its status
//! records, owned by the user it was submitted as, never one merely carrying its comment.
//! Pure: decided here, carried out by the member.

use super::api::SlurmJob;
use crate::error::{Error, Result};
use computenet_api::member_cluster::SlurmConnection;
use std::collections::{BTreeMap, BTreeSet};

/// What a job is submitted, run and cancelled as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The Slurm (Unix) user.
    pub user: String,
    /// The Slurm account; the user's default when `None`.
    pub account: Option<String>,
    /// Where the batch job runs and, for a relative output path, writes.
    pub working_directory: String,
}

/// The identities of one Slurm member, by hub namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenancy {
    /// The connection's own identity: every job's when no tenants are mapped.
    shared: Identity,
    /// By hub namespace; empty: every namespace runs as `shared`.
    tenants: BTreeMap<String, Identity>,
}

/// A user name usable as a path component and as `X-SLURM-USER-NAME`.
fn check_user(user: &str) -> Result<()> {
    let ok = !user.is_empty()
        && user.len() <= 64
        && !user.starts_with(['-', '.'])
        && user.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::Config(format!("Slurm user name {user:?} is not a plain user name")))
    }
}

/// `dir/user`, with one slash between.
fn under(dir: &str, user: &str) -> String {
    format!("{}/{user}", dir.trim_end_matches('/'))
}

impl Tenancy {
    /// Reads `spec.slurm`: every namespace in at most one tenant, plain user names, and a
    /// static token (`tokenSecretRef`) used for its own user only (the schema says so too).
    pub fn new(conn: &SlurmConnection) -> Result<Self> {
        check_user(&conn.user_name)?;
        let shared =
            Identity { user: conn.user_name.clone(), account: None, working_directory: conn.working_directory.clone() };
        let mut tenants = BTreeMap::new();
        for t in &conn.tenants {
            check_user(&t.user_name)?;
            if conn.token_secret_ref.is_some() && (conn.tenants.len() > 1 || t.user_name != conn.user_name) {
                return Err(Error::Config(
                    "a static Slurm token serves one user: with tokenSecretRef, map at most one tenant, to userName"
                        .into(),
                ));
            }
            let identity = Identity {
                user: t.user_name.clone(),
                account: t.account.clone(),
                working_directory: t
                    .working_directory
                    .clone()
                    .unwrap_or_else(|| under(&conn.working_directory, &t.user_name)),
            };
            for ns in &t.namespaces {
                if tenants.insert(ns.clone(), identity.clone()).is_some() {
                    return Err(Error::Config(format!("namespace {ns:?} is mapped to more than one Slurm tenant")));
                }
            }
        }
        Ok(Tenancy { shared, tenants })
    }

    /// Every namespace as the one user (no tenants mapped).
    pub fn shared(user: &str, working_directory: &str) -> Self {
        let shared = Identity { user: user.into(), account: None, working_directory: working_directory.into() };
        Tenancy { shared, tenants: BTreeMap::new() }
    }

    /// The identity jobs of hub namespace `namespace` run as; `None` when tenants are
    /// mapped and this namespace is not one of them (its jobs do not run here).
    pub fn identity(&self, namespace: &str) -> Option<&Identity> {
        if self.tenants.is_empty() {
            Some(&self.shared)
        } else {
            self.tenants.get(namespace)
        }
    }

    /// Whether every namespace shares the connection's one identity (no tenants mapped).
    pub fn is_shared(&self) -> bool {
        self.tenants.is_empty()
    }

    /// The connection's own user: the one nodes and jobs are listed as.
    pub fn service_user(&self) -> &str {
        &self.shared.user
    }

    /// Every user jobs are submitted as.
    pub fn users(&self) -> BTreeSet<&str> {
        if self.tenants.is_empty() {
            BTreeSet::from([self.shared.user.as_str()])
        } else {
            self.tenants.values().map(|i| i.user.as_str()).collect()
        }
    }
}

/// Whether a batch job listed with `job.user_name` is owned by `expected`. A listing with
/// no user at all (an old or odd slurmrestd) is trusted only while one identity is shared
/// by everyone anyway.
pub fn owned_by(job: &SlurmJob, expected: &str, shared: bool) -> bool {
    job.user_name == expected || (shared && job.user_name.is_empty())
}

/// The batch job of an attempt among `listed` (its comment's, lowest id first), as the
/// TrainingJob's status and this process know it: the one with the recorded id when one
/// is recorded, else the one this process submitted, else (a lost submit answer, a
/// restart before the id was recorded) the first whose comment names the attempt. Always
/// only jobs owned by `user`: another user's job with a forged comment is never taken.
pub fn pick<'a>(
    listed: &'a [SlurmJob],
    recorded: Option<u64>,
    submitted: Option<u64>,
    user: &str,
    shared: bool,
) -> Option<&'a SlurmJob> {
    let mut owned = listed.iter().filter(|j| owned_by(j, user, shared));
    match recorded.or(submitted) {
        Some(id) => owned.find(|j| j.job_id == id),
        None => owned.next(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use computenet_api::member_cluster::{SecretKeyRef, SlurmTenant};

    fn conn(tenants: Vec<SlurmTenant>, static_token: bool) -> SlurmConnection {
        let key = SecretKeyRef { name: "s".into(), namespace: "computenet-system".into(), key: "k".into() };
        SlurmConnection {
            endpoint: "https://slurm:6820".into(),
            api_version: "v0.0.38".into(),
            user_name: "computenet".into(),
            token_secret_ref: static_token.then(|| key.clone()),
            jwt_key_secret_ref: (!static_token).then_some(key),
            partitions: vec![],
            working_directory: "/scratch/".into(),
            standard_output: "o".into(),
            tenants,
            insecure_http: false,
            ca_secret_ref: None,
        }
    }

    fn tenant(namespaces: &[&str], user: &str) -> SlurmTenant {
        SlurmTenant {
            namespaces: namespaces.iter().map(|s| s.to_string()).collect(),
            user_name: user.into(),
            account: None,
            working_directory: None,
        }
    }

    #[test]
    fn each_namespace_runs_as_its_tenant_in_its_own_directory() {
        let mut b = tenant(&["team-b"], "bob");
        b.account = Some("physics".into());
        b.working_directory = Some("/data/bob".into());
        let t = Tenancy::new(&conn(vec![tenant(&["team-a", "team-a2"], "alice"), b], false)).expect("valid");
        let a = t.identity("team-a").expect("mapped");
        assert_eq!((a.user.as_str(), a.account.as_deref()), ("alice", None));
        assert_eq!(a.working_directory, "/scratch/alice", "default: the user's directory under workingDirectory");
        assert_eq!(t.identity("team-a2"), Some(a));
        let b = t.identity("team-b").expect("mapped");
        assert_eq!(
            (b.user.as_str(), b.account.as_deref(), b.working_directory.as_str()),
            ("bob", Some("physics"), "/data/bob")
        );
        assert_eq!(t.identity("team-c"), None, "unmapped: not run here");
        assert_eq!(t.users().into_iter().collect::<Vec<_>>(), ["alice", "bob"]);
        assert_eq!(t.service_user(), "computenet");
    }

    #[test]
    fn without_tenants_everyone_shares_the_connection_user() {
        let t = Tenancy::new(&conn(vec![], true)).expect("valid");
        let i = t.identity("anyone").expect("shared");
        assert_eq!((i.user.as_str(), i.working_directory.as_str()), ("computenet", "/scratch/"));
        assert_eq!(t, Tenancy::shared("computenet", "/scratch/"));
    }

    #[test]
    fn bad_mappings_are_refused() {
        let dup = conn(vec![tenant(&["team-a"], "alice"), tenant(&["team-a"], "bob")], false);
        assert!(Tenancy::new(&dup).expect_err("twice").to_string().contains("more than one"));
        let static_two = conn(vec![tenant(&["a"], "computenet"), tenant(&["b"], "computenet")], true);
        assert!(Tenancy::new(&static_two).expect_err("one user").to_string().contains("static"));
        let static_other = conn(vec![tenant(&["a"], "alice")], true);
        assert!(Tenancy::new(&static_other).is_err(), "a static token is the connection user's");
        assert!(Tenancy::new(&conn(vec![tenant(&["a"], "computenet")], true)).is_ok());
        for bad in ["../root", "a/b", "", "-x", ".."] {
            assert!(Tenancy::new(&conn(vec![tenant(&["a"], bad)], false)).is_err(), "{bad:?}");
        }
    }

    fn job(id: u64, user: &str) -> SlurmJob {
        SlurmJob { job_id: id, user_name: user.into(), ..SlurmJob::default() }
    }

    #[test]
    fn the_recorded_id_and_the_user_decide_never_the_comment_alone() {
        let listed = [job(3, "bob"), job(5, "alice"), job(7, "alice")];
        let id = |j: Option<&SlurmJob>| j.map(|j| j.job_id);
        assert_eq!(id(pick(&listed, Some(7), None, "alice", false)), Some(7), "the recorded one");
        assert_eq!(id(pick(&listed, Some(3), None, "alice", false)), None, "recorded id, but another user's job");
        assert_eq!(id(pick(&listed, Some(9), None, "alice", false)), None, "the recorded job is gone: no stand-in");
        assert_eq!(id(pick(&listed, None, Some(5), "alice", false)), Some(5), "submitted by this process");
        assert_eq!(id(pick(&listed, None, None, "alice", false)), Some(5), "in doubt: the first of the user's");
        assert_eq!(id(pick(&listed, None, None, "carol", false)), None, "no job of the expected user");
        assert_eq!(id(pick(&[job(4, "")], None, None, "alice", false)), None, "no user: not trusted per tenant");
        assert_eq!(id(pick(&[job(4, "")], None, None, "alice", true)), Some(4), "shared identity: as before");
    }
}

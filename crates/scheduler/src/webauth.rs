//! Who may read the dashboard's data: a bearer token checked against the hub the way
//! kube-rbac-proxy does it. A TokenReview says who the token belongs to, then a
//! SubjectAccessReview says whether that user may `get` a non-resource URL
//! ([`POOL_RBAC_URL`] for `/api/pool`), which admins grant with a ClusterRole such as the
//! chart's `computenet-dashboard-viewer`. Verdicts are cached briefly, keyed by a SHA-256 of the
//! token (the token itself is never stored, logged or echoed).

use futures::future::BoxFuture;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{NonResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec};
use kube::api::PostParams;
use kube::Api;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The non-resource URL a user needs `get` on to read `/api/pool`. Not the request path
/// itself, as kube-rbac-proxy would use: Kubernetes' built-in ClusterRole
/// `system:discovery` grants every authenticated user `get` on `/api/*`, so any valid
/// token would pass.
pub const POOL_RBAC_URL: &str = "/computenet/api/pool";

/// What the hub says about one token and one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The token is valid and its user may `get` the path.
    Allowed { user: String },
    /// The token is valid but its user may not `get` the path (HTTP 403).
    Forbidden { user: String },
    /// No valid token (HTTP 401).
    Unauthenticated,
}

/// Asks the hub about a token; a trait so the HTTP side is tested without a hub.
pub trait Reviewer: Send + Sync + std::fmt::Debug {
    /// The verdict for `token` reading `path`, or an error when the hub could not answer.
    fn review<'a>(&'a self, token: &'a str, path: &'a str) -> BoxFuture<'a, crate::Result<Verdict>>;
}

/// TokenReview then SubjectAccessReview against the hub's API server.
#[derive(Clone)]
pub struct KubeReviewer {
    client: kube::Client,
}

impl std::fmt::Debug for KubeReviewer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KubeReviewer")
    }
}

impl KubeReviewer {
    /// Needs `create` on `tokenreviews` (authentication.k8s.io) and `subjectaccessreviews`
    /// (authorization.k8s.io).
    pub fn new(client: kube::Client) -> Self {
        Self { client }
    }
}

impl Reviewer for KubeReviewer {
    fn review<'a>(&'a self, token: &'a str, path: &'a str) -> BoxFuture<'a, crate::Result<Verdict>> {
        Box::pin(async move {
            let review = TokenReview {
                spec: TokenReviewSpec { token: Some(token.to_string()), audiences: None },
                ..TokenReview::default()
            };
            let reviewed = Api::<TokenReview>::all(self.client.clone()).create(&PostParams::default(), &review).await?;
            let status = reviewed.status.unwrap_or_default();
            let user = match status.user {
                Some(user) if status.authenticated == Some(true) => user,
                _ => return Ok(Verdict::Unauthenticated),
            };
            let name = user.username.clone().unwrap_or_default();
            let access = SubjectAccessReview {
                spec: SubjectAccessReviewSpec {
                    user: user.username,
                    uid: user.uid,
                    groups: user.groups,
                    extra: user.extra,
                    non_resource_attributes: Some(NonResourceAttributes {
                        path: Some(path.to_string()),
                        verb: Some("get".to_string()),
                    }),
                    resource_attributes: None,
                },
                ..SubjectAccessReview::default()
            };
            let decided =
                Api::<SubjectAccessReview>::all(self.client.clone()).create(&PostParams::default(), &access).await?;
            Ok(match decided.status {
                Some(s) if s.allowed && s.denied != Some(true) => Verdict::Allowed { user: name },
                _ => Verdict::Forbidden { user: name },
            })
        })
    }
}

/// How long verdicts are kept and how many.
#[derive(Debug, Clone, Copy)]
pub struct CachePolicy {
    /// For [`Verdict::Allowed`]: a revoked grant or token still works this long.
    pub allowed_ttl: Duration,
    /// For refusals: a new grant takes effect within this long.
    pub refused_ttl: Duration,
    /// At most this many (token, path) verdicts.
    pub capacity: usize,
}

impl Default for CachePolicy {
    fn default() -> Self {
        Self { allowed_ttl: Duration::from_secs(30), refused_ttl: Duration::from_secs(10), capacity: 1024 }
    }
}

type CacheKey = ([u8; 32], String);

/// Verdicts by token digest and path, each until its expiry.
#[derive(Debug, Default)]
struct Cache {
    entries: HashMap<CacheKey, (Instant, Verdict)>,
}

impl Cache {
    fn get(&mut self, key: &CacheKey, now: Instant) -> Option<Verdict> {
        match self.entries.get(key) {
            Some((expires, verdict)) if *expires > now => Some(verdict.clone()),
            Some(_) => {
                self.entries.remove(key);
                None
            }
            None => None,
        }
    }

    /// Keeps `verdict`; when full, drops the expired entries, and everything if that is
    /// not enough (a flood of random tokens must not grow memory).
    fn put(&mut self, key: CacheKey, verdict: Verdict, now: Instant, policy: &CachePolicy) {
        if self.entries.len() >= policy.capacity && !self.entries.contains_key(&key) {
            self.entries.retain(|_, (expires, _)| *expires > now);
            if self.entries.len() >= policy.capacity {
                self.entries.clear();
            }
        }
        let ttl = if matches!(verdict, Verdict::Allowed { .. }) { policy.allowed_ttl } else { policy.refused_ttl };
        if policy.capacity > 0 {
            self.entries.insert(key, (now + ttl, verdict));
        }
    }
}

fn digest(token: &str) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Longest token accepted; service-account and OIDC tokens are a few KiB at most.
const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// The token of an `Authorization: Bearer <token>` header value, if it is one.
pub fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    let token = token.trim();
    let plausible = !token.is_empty() && token.len() <= MAX_TOKEN_BYTES && !token.contains(char::is_whitespace);
    (scheme.eq_ignore_ascii_case("bearer") && plausible).then_some(token)
}

/// Checks requests' bearer tokens with a [`Reviewer`], caching the verdicts.
#[derive(Debug)]
pub struct Authenticator {
    reviewer: Box<dyn Reviewer>,
    policy: CachePolicy,
    cache: Mutex<Cache>,
}

impl Authenticator {
    pub fn new(reviewer: Box<dyn Reviewer>, policy: CachePolicy) -> Self {
        Self { reviewer, policy, cache: Mutex::default() }
    }

    /// The verdict for a request to `path` with this `Authorization` header (if any);
    /// an error when the hub could not be asked (not cached).
    pub async fn check(&self, authorization: Option<&str>, path: &str) -> crate::Result<Verdict> {
        let Some(token) = authorization.and_then(bearer_token) else {
            return Ok(Verdict::Unauthenticated);
        };
        let key = (digest(token), path.to_string());
        if let Some(verdict) = self.cache.lock().unwrap_or_else(|e| e.into_inner()).get(&key, Instant::now()) {
            return Ok(verdict);
        }
        let verdict = self.reviewer.review(token, path).await?;
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).put(key, verdict.clone(), Instant::now(), &self.policy);
        Ok(verdict)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// Tokens "admin" (may read anything), "viewer" (only the pool), "outsider" (valid,
    /// no grant), "down" (the hub fails); everything else is invalid. Counts the reviews.
    #[derive(Debug, Default)]
    pub(crate) struct FakeReviewer {
        pub(crate) calls: Arc<AtomicUsize>,
    }

    impl Reviewer for FakeReviewer {
        fn review<'a>(&'a self, token: &'a str, path: &'a str) -> BoxFuture<'a, crate::Result<Verdict>> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                Ok(match (token, path) {
                    ("admin", _) | ("viewer", POOL_RBAC_URL) => Verdict::Allowed { user: token.into() },
                    ("viewer" | "outsider", _) => Verdict::Forbidden { user: token.into() },
                    ("down", _) => return Err(crate::Error::Timeout("asking the hub".into())),
                    _ => Verdict::Unauthenticated,
                })
            })
        }
    }

    #[test]
    fn bearer_tokens_are_parsed_strictly() {
        assert_eq!(bearer_token("Bearer abc.def"), Some("abc.def"));
        assert_eq!(bearer_token("bearer  abc "), Some("abc"));
        assert_eq!(bearer_token("Basic YWxhZGRpbjpvcGVuc2VzYW1l"), None);
        assert_eq!(bearer_token("Bearer"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("Bearer a b"), None);
        assert_eq!(bearer_token(&format!("Bearer {}", "x".repeat(MAX_TOKEN_BYTES + 1))), None);
    }

    #[tokio::test]
    async fn verdicts_by_token_and_path() {
        let auth = Authenticator::new(Box::<FakeReviewer>::default(), CachePolicy::default());
        assert_eq!(auth.check(None, POOL_RBAC_URL).await.unwrap(), Verdict::Unauthenticated);
        assert_eq!(auth.check(Some("Bearer nope"), POOL_RBAC_URL).await.unwrap(), Verdict::Unauthenticated);
        assert_eq!(
            auth.check(Some("Bearer viewer"), POOL_RBAC_URL).await.unwrap(),
            Verdict::Allowed { user: "viewer".into() }
        );
        assert_eq!(
            auth.check(Some("Bearer viewer"), "/other").await.unwrap(),
            Verdict::Forbidden { user: "viewer".into() }
        );
        assert!(auth.check(Some("Bearer down"), POOL_RBAC_URL).await.is_err());
    }

    #[tokio::test]
    async fn verdicts_are_cached_per_token_and_path_but_errors_are_not() {
        let reviewer = FakeReviewer::default();
        let calls = reviewer.calls.clone();
        let auth = Authenticator::new(Box::new(reviewer), CachePolicy::default());
        for _ in 0..3 {
            auth.check(Some("Bearer viewer"), POOL_RBAC_URL).await.unwrap();
            auth.check(Some("Bearer nope"), POOL_RBAC_URL).await.unwrap();
        }
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        auth.check(Some("Bearer viewer"), "/other").await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        for _ in 0..2 {
            assert!(auth.check(Some("Bearer down"), POOL_RBAC_URL).await.is_err());
        }
        assert_eq!(calls.load(Ordering::SeqCst), 5);
    }

    #[test]
    fn cache_entries_expire_and_the_cache_stays_bounded() {
        let policy =
            CachePolicy { allowed_ttl: Duration::from_secs(30), refused_ttl: Duration::from_secs(10), capacity: 3 };
        let mut cache = Cache::default();
        let t0 = Instant::now();
        let key = |s: &str| (digest(s), POOL_RBAC_URL.to_string());
        cache.put(key("a"), Verdict::Allowed { user: "a".into() }, t0, &policy);
        cache.put(key("b"), Verdict::Unauthenticated, t0, &policy);
        // A refusal expires sooner than an allowance.
        let t15 = t0 + Duration::from_secs(15);
        assert_eq!(cache.get(&key("a"), t15), Some(Verdict::Allowed { user: "a".into() }));
        assert_eq!(cache.get(&key("b"), t15), None);
        assert_eq!(cache.get(&key("a"), t0 + Duration::from_secs(31)), None);
        // Never more than the capacity, however many tokens arrive.
        for i in 0..100 {
            cache.put(key(&format!("t{i}")), Verdict::Unauthenticated, t0, &policy);
            assert!(cache.entries.len() <= 3);
        }
        // The key is a digest: the token is not kept.
        assert!(cache.entries.keys().all(|(d, _)| d.len() == 32));
    }
}

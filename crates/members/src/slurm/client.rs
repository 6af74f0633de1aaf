//! A small slurmrestd client: nodes, jobs, submit, cancel. The API version is a parameter,
//! so a newer server's paths (`/slurm/v0.0.40/...`) work with the same calls.

use super::api::{self, SlurmJob, SlurmNode};
use super::convert;
use crate::credentials;
use crate::error::{Error, Result};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How the client proves who it is.
#[derive(Clone)]
pub enum Credentials {
    /// A token issued by `scontrol token` (sent as is).
    Token(String),
    /// The cluster's HS256 JWT key: the client signs its own short-lived tokens.
    JwtKey(Vec<u8>),
}

impl std::fmt::Debug for Credentials {
    // Never print secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Token(_) => f.write_str("Token(..)"),
            Credentials::JwtKey(_) => f.write_str("JwtKey(..)"),
        }
    }
}

/// Lifetime of a self-signed token; it is renewed when less than a third is left.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(600);

/// Longest a single call may take.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest the TCP (and TLS) connection may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// A slurmrestd endpoint with its user and credentials.
#[derive(Debug)]
pub struct SlurmClient {
    http: reqwest::Client,
    endpoint: String,
    api_version: String,
    user: String,
    credentials: Credentials,
    /// The current self-signed token of each user and its expiry (seconds since the epoch).
    signed: Mutex<HashMap<String, (String, u64)>>,
}

#[derive(serde::Serialize)]
struct Claims<'a> {
    exp: u64,
    iat: u64,
    sun: &'a str,
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl SlurmClient {
    /// A client for `endpoint` (e.g. `https://slurm-head:6820`) and `api_version` (e.g.
    /// `v0.0.38`). Its HTTP client follows no redirects; [`SlurmClient::with_http`] gives
    /// it one with the connection's TLS settings.
    pub fn new(endpoint: &str, api_version: &str, user: &str, credentials: Credentials) -> Result<Self> {
        let scheme = endpoint.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
        if !matches!(scheme.as_deref(), Some("http" | "https")) {
            return Err(Error::Config(format!("Slurm endpoint {endpoint:?} must start with https:// or http://")));
        }
        if user.is_empty() {
            return Err(Error::Config("Slurm user name is empty".into()));
        }
        let http =
            credentials::http_client(credentials::Transport::InsecureAllowed, None, CONNECT_TIMEOUT, CALL_TIMEOUT)?;
        Ok(Self {
            http,
            endpoint: endpoint.trim_end_matches('/').to_string(),
            api_version: api_version.to_string(),
            user: user.to_string(),
            credentials,
            signed: Mutex::new(HashMap::new()),
        })
    }

    /// The same client, calling through `http` (see [`credentials::http_client`]).
    pub fn with_http(self, http: reqwest::Client) -> Self {
        Self { http, ..self }
    }

    /// The token to send now as the connection's user.
    pub fn token(&self) -> Result<String> {
        self.token_for(&self.user)
    }

    /// The token to send now as `user`: the static one (for its own user only), or one
    /// signed for `user` (claim `sun`), kept per user and renewed before expiry.
    pub fn token_for(&self, user: &str) -> Result<String> {
        match &self.credentials {
            Credentials::Token(t) if user == self.user => Ok(t.clone()),
            Credentials::Token(_) => Err(Error::Config(format!(
                "a static Slurm token serves only user {:?}, not {user:?}: use jwtKeySecretRef for several users",
                self.user
            ))),
            Credentials::JwtKey(key) => {
                let mut signed = self.signed.lock().map_err(|_| Error::Config("token cache poisoned".into()))?;
                let now = now();
                if let Some((token, exp)) = signed.get(user) {
                    if *exp > now + TOKEN_LIFETIME.as_secs() / 3 {
                        return Ok(token.clone());
                    }
                }
                let exp = now + TOKEN_LIFETIME.as_secs();
                let token = jsonwebtoken::encode(
                    &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
                    &Claims { exp, iat: now, sun: user },
                    &jsonwebtoken::EncodingKey::from_secret(key),
                )
                .map_err(|e| Error::Config(format!("signing a Slurm token: {e}")))?;
                signed.insert(user.to_string(), (token.clone(), exp));
                Ok(token)
            }
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/slurm/{}/{}", self.endpoint, self.api_version, path)
    }

    /// One call; non-2xx answers and answers with a non-empty `errors` array are errors.
    async fn call(&self, what: &str, method: reqwest::Method, path: &str, body: Option<&Value>) -> Result<Value> {
        self.call_as(&self.user, what, method, path, body).await
    }

    /// One call as `user` (its name and token in the headers).
    async fn call_as(
        &self,
        user: &str,
        what: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value> {
        let (value, status) = self.call_raw(user, what, method, path, body).await?;
        let errors = api::errors_of(&value);
        match status {
            401 | 403 => Err(Error::Auth { what: what.into(), status, errors }),
            200..=299 if errors.is_empty() => Ok(value),
            _ => Err(Error::Server { what: what.into(), status, errors }),
        }
    }

    async fn call_raw(
        &self,
        user: &str,
        what: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(Value, u16)> {
        let mut request = self
            .http
            .request(method, self.url(path))
            .header("X-SLURM-USER-NAME", user)
            .header("X-SLURM-USER-TOKEN", self.token_for(user)?);
        if let Some(b) = body {
            request = request.json(b);
        }
        let response = request.send().await.map_err(|e| transport(what, &e))?;
        let status = response.status().as_u16();
        if response.status().is_redirection() {
            return Err(credentials::redirect_refused(what, status));
        }
        let body = crate::body::read_capped(response, convert::MAX_BODY_BYTES, what, CALL_TIMEOUT.as_secs()).await?;
        let value = convert::answer_json(&body);
        Ok((value, status))
    }

    /// `GET ping`: whether slurmctld answers through slurmrestd.
    pub async fn ping(&self) -> Result<()> {
        self.call("ping", reqwest::Method::GET, "ping", None).await.map(|_| ())
    }

    /// `GET nodes`.
    pub async fn nodes(&self) -> Result<Vec<SlurmNode>> {
        convert::nodes_of(self.call("listing nodes", reqwest::Method::GET, "nodes", None).await?)
    }

    /// `GET jobs`: the jobs slurmctld still knows (finished ones for `MinJobAge`).
    pub async fn jobs(&self) -> Result<Vec<SlurmJob>> {
        convert::jobs_of(self.call("listing jobs", reqwest::Method::GET, "jobs", None).await?)
    }

    /// `POST job/submit`: the new job's id. See [`submit_in_doubt`] for what a failure says
    /// about whether the job exists.
    pub async fn submit(&self, request: &Value) -> Result<u64> {
        self.submit_as(&self.user, request).await
    }

    /// `POST job/submit` as `user`: the job is that user's, runs as it, and only it (or a
    /// Slurm operator) can cancel it.
    pub async fn submit_as(&self, user: &str, request: &Value) -> Result<u64> {
        let answer = self.call_as(user, "submitting a job", reqwest::Method::POST, "job/submit", Some(request)).await?;
        convert::submitted_id(&answer)
    }

    /// `DELETE job/{id}`; a job Slurm no longer knows, or one that already ended, is fine.
    pub async fn cancel(&self, job_id: u64) -> Result<()> {
        self.cancel_as(&self.user, job_id).await
    }

    /// `DELETE job/{id}` as `user` (the job's owner).
    pub async fn cancel_as(&self, user: &str, job_id: u64) -> Result<()> {
        self.kill_as(user, job_id, None).await
    }

    /// `DELETE job/{id}?signal=SIGTERM` as `user`: every step of the job gets SIGTERM (its
    /// tasks may checkpoint and exit); unlike a cancel, Slurm does not end the job itself.
    pub async fn terminate_as(&self, user: &str, job_id: u64) -> Result<()> {
        self.kill_as(user, job_id, Some("SIGTERM")).await
    }

    async fn kill_as(&self, user: &str, job_id: u64, signal: Option<&str>) -> Result<()> {
        let (what, path) = match signal {
            Some(s) => (format!("signalling job {job_id} with {s}"), format!("job/{job_id}?signal={s}")),
            None => (format!("cancelling job {job_id}"), format!("job/{job_id}")),
        };
        let (value, status) = self.call_raw(user, &what, reqwest::Method::DELETE, &path, None).await?;
        let errors = api::errors_of(&value);
        // 2017: invalid job id; 2021: job already completing or completed.
        let gone = matches!(api::error_number(&value), Some(2017 | 2021));
        match status {
            401 | 403 => Err(Error::Auth { what, status, errors }),
            200..=299 => Ok(()),
            _ if gone => Ok(()),
            _ => Err(Error::Server { what, status, errors }),
        }
    }
}

/// Whether a failed submit may still have made a batch job: the request may have reached
/// slurmctld unless the connection was never made, or Slurm itself answered with a refusal
/// (a 4xx status, or an answer carrying a Slurm error number).
pub fn submit_in_doubt(e: &Error) -> bool {
    match e {
        Error::Member { source, .. } => submit_in_doubt(source),
        Error::Auth { .. } | Error::Config(_) | Error::Refused { .. } => false,
        // reqwest's chain of causes names a connection that was never made.
        Error::Transport { why, .. } => !(why.contains("(Connect)") || why.contains("tcp connect error")),
        Error::Server { status, errors, .. } => {
            !((400..500).contains(status) || errors.iter().any(|e| e.ends_with(']') && e.contains(" [")))
        }
        Error::Timeout { .. } | Error::Decode { .. } | Error::Kube { .. } => true,
    }
}

fn transport(what: &str, e: &reqwest::Error) -> Error {
    if e.is_timeout() {
        Error::Timeout { what: what.into(), seconds: CALL_TIMEOUT.as_secs() }
    } else {
        // reqwest's top-level message hides the cause (connection refused, DNS...).
        let mut why = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            why = format!("{why}: {s}");
            source = s.source();
        }
        Error::Transport { what: what.into(), why }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_tokens_carry_the_user_and_are_reused_until_near_expiry() {
        let c = SlurmClient::new("http://localhost:6820", "v0.0.38", "nobody", Credentials::JwtKey(b"k".to_vec()))
            .expect("client");
        let t1 = c.token().expect("token");
        let t2 = c.token().expect("token");
        assert_eq!(t1, t2, "reused while fresh");
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
        validation.required_spec_claims = ["exp".to_string()].into();
        #[derive(serde::Deserialize)]
        struct Read {
            sun: String,
            exp: u64,
            iat: u64,
        }
        let read = jsonwebtoken::decode::<Read>(&t1, &jsonwebtoken::DecodingKey::from_secret(b"k"), &validation)
            .expect("valid HS256 token");
        assert_eq!(read.claims.sun, "nobody");
        assert_eq!(read.claims.exp - read.claims.iat, TOKEN_LIFETIME.as_secs());
        // Near expiry: renewed.
        c.signed.lock().expect("lock").insert("nobody".into(), ("old".into(), now() + 10));
        assert_ne!(c.token().expect("token"), "old");
        // Each user gets its own token, kept for it.
        let alice = c.token_for("alice").expect("token");
        let read = jsonwebtoken::decode::<Read>(&alice, &jsonwebtoken::DecodingKey::from_secret(b"k"), &validation)
            .expect("valid HS256 token");
        assert_eq!(read.claims.sun, "alice");
        assert_eq!(c.token_for("alice").expect("token"), alice, "reused while fresh");
        assert_ne!(c.token_for("bob").expect("token"), alice);
    }

    #[test]
    fn a_static_token_serves_its_own_user_only() {
        let c = SlurmClient::new("http://h:6820", "v0.0.38", "svc", Credentials::Token("t".into())).expect("client");
        assert_eq!(c.token_for("svc").expect("its own"), "t");
        let e = c.token_for("alice").expect_err("another user");
        assert!(e.to_string().contains("only user \"svc\""), "{e}");
    }

    #[test]
    fn bad_settings_are_refused_with_a_reason() {
        let e = SlurmClient::new("slurm:6820", "v0.0.38", "u", Credentials::Token("t".into())).expect_err("no scheme");
        assert!(e.to_string().contains("https://"));
        let e = SlurmClient::new("http://x", "v0.0.38", "", Credentials::Token("t".into())).expect_err("no user");
        assert!(e.to_string().contains("user"));
        assert_eq!(format!("{:?}", Credentials::Token("secret".into())), "Token(..)");
    }

    #[test]
    fn a_submit_is_in_doubt_unless_it_surely_made_nothing() {
        let t = |why: &str| Error::Transport { what: "submitting a job".into(), why: why.into() };
        assert!(submit_in_doubt(&Error::Timeout { what: "submitting a job".into(), seconds: 5 }));
        assert!(submit_in_doubt(&t("error sending request: connection reset by peer")));
        assert!(!submit_in_doubt(&t(
            "error sending request: client error (Connect): tcp connect error: Connection refused"
        )));
        assert!(submit_in_doubt(&Error::Decode { what: "s".into(), why: "no job_id in the answer".into() }));
        let server = |status, errors: &[&str]| Error::Server {
            what: "s".into(),
            status,
            errors: errors.iter().map(|e| e.to_string()).collect(),
        };
        assert!(submit_in_doubt(&server(502, &["Bad Gateway"])), "a proxy's error says nothing of Slurm");
        assert!(!submit_in_doubt(&server(500, &["Requested node configuration is not available [2014]"])));
        assert!(!submit_in_doubt(&server(400, &[])));
        assert!(!submit_in_doubt(&Error::Auth { what: "s".into(), status: 401, errors: vec![] }));
        assert!(submit_in_doubt(&Error::Timeout { what: "s".into(), seconds: 5 }.on("slurm-1")));
    }

    /// A listener that answers every request with `answer`, and sends each request's
    /// head (up to the blank line) down the channel.
    async fn listener(answer: String) -> (u16, tokio::sync::mpsc::UnboundedReceiver<String>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let socket = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = socket.local_addr().expect("address").port();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = socket.accept().await {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = tx.send(String::from_utf8_lossy(&head).to_string());
                let _ = conn.write_all(answer.as_bytes()).await;
                let _ = conn.shutdown().await;
            }
        });
        (port, rx)
    }

    #[tokio::test]
    async fn a_redirect_is_not_followed_and_the_token_goes_nowhere_else() {
        let ok =
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}";
        let (target, mut elsewhere) = listener(ok.to_string()).await;
        let redirect = format!(
            "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:{target}/slurm/v0.0.38/ping\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        let (port, mut asked) = listener(redirect).await;
        let c =
            SlurmClient::new(&format!("http://127.0.0.1:{port}"), "v0.0.38", "u", Credentials::Token("tok-7".into()))
                .expect("client");
        let e = c.ping().await.expect_err("a redirect is an error");
        assert!(e.to_string().contains("HTTP 302") && e.to_string().contains("redirect"), "{e}");
        let first = asked.recv().await.expect("the configured address was asked");
        assert!(first.to_ascii_lowercase().contains("x-slurm-user-token: tok-7"), "{first}");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(elsewhere.try_recv().is_err(), "the redirect's target got a request");
        // The same through a client built for the connection.
        let http =
            credentials::http_client(credentials::Transport::InsecureAllowed, None, CONNECT_TIMEOUT, CALL_TIMEOUT)
                .expect("http client");
        let c = c.with_http(http);
        assert!(c.nodes().await.is_err());
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(elsewhere.try_recv().is_err(), "the redirect's target got a request");
    }

    #[tokio::test]
    async fn an_https_only_client_sends_nothing_over_http() {
        let (port, mut asked) = listener("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}".into()).await;
        let http = credentials::http_client(credentials::Transport::Tls, None, CONNECT_TIMEOUT, CALL_TIMEOUT)
            .expect("http client");
        let c = SlurmClient::new(&format!("http://127.0.0.1:{port}"), "v0.0.38", "u", Credentials::Token("t".into()))
            .expect("client")
            .with_http(http);
        assert!(c.ping().await.is_err());
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(asked.try_recv().is_err(), "an https-only client made a plain http request");
    }

    #[test]
    fn paths_follow_the_api_version() {
        let c = SlurmClient::new("http://h:6820/", "v0.0.40", "u", Credentials::Token("t".into())).expect("client");
        assert_eq!(c.url("nodes"), "http://h:6820/slurm/v0.0.40/nodes");
    }
}

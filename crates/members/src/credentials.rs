//! Credential hygiene: which Secrets the service reads, where it sends credentials, which
//! kubeconfigs it uses, and how it speaks of a Secret it cannot use.
//!
//! - Secrets are read only by explicit reference, only in the service's own namespace,
//!   and only when labelled `computenet.io/credentials: "true"`: a MemberCluster cannot
//!   make the service read (and send away) any other Secret it can reach.
//! - Credentials go only to https:// endpoints unless the connection says
//!   `insecureHTTP: true`, never follow a redirect, and may trust a private CA from a Secret.
//! - Kubeconfigs that would run a command (`exec`, `auth-provider`) or read a file on the
//!   service's machine (`tokenFile`, `client-certificate`, `client-key`,
//!   `certificate-authority`) are refused before any client is built.
//! - A Secret that cannot be parsed is named (namespace, name, key) with the kind of
//!   problem; its text, and parsers' messages that may quote it, never go anywhere.

use crate::error::{Error, Result};
use computenet_api::conditions::reasons;
use computenet_api::member_cluster::SecretKeyRef;
use computenet_api::MemberClusterSpec;
use k8s_openapi::api::core::v1::Secret;
use kube::config::{KubeConfigOptions, Kubeconfig, KubeconfigError};
use kube::{Api, Client};
use std::collections::BTreeMap;
use std::time::Duration;

/// The label that marks a Secret as credentials computenet may read.
pub const CREDENTIALS_LABEL: &str = "computenet.io/credentials";

/// Where the service may read credentials from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretPolicy {
    /// The service's own namespace; the only one Secrets are read from.
    pub namespace: String,
}

/// How a Secret key is named in messages: never with its content.
pub fn describe(r: &SecretKeyRef) -> String {
    format!("Secret {}/{} (key {:?})", r.namespace, r.name, r.key)
}

impl SecretPolicy {
    pub fn new(namespace: impl Into<String>) -> Self {
        SecretPolicy { namespace: namespace.into() }
    }

    /// Whether a reference may be read at all (pure): only in the service's namespace.
    pub fn check_ref(&self, r: &SecretKeyRef) -> Result<()> {
        if r.namespace == self.namespace {
            return Ok(());
        }
        Err(Error::Refused {
            reason: reasons::SECRET_NOT_ALLOWED,
            message: format!(
                "{} is not in namespace {}, the only one the service reads credentials from: \
                 put the Secret there and label it {CREDENTIALS_LABEL}=true",
                describe(r),
                self.namespace
            ),
        })
    }

    /// Whether a Secret read for `r` is marked for computenet (pure).
    pub fn check_marked(&self, r: &SecretKeyRef, labels: Option<&BTreeMap<String, String>>) -> Result<()> {
        if labels.and_then(|l| l.get(CREDENTIALS_LABEL)).map(String::as_str) == Some("true") {
            return Ok(());
        }
        Err(Error::Refused {
            reason: reasons::SECRET_NOT_ALLOWED,
            message: format!(
                "{} is not marked for computenet: label it {CREDENTIALS_LABEL}=true \
                 (kubectl label secret -n {} {} {CREDENTIALS_LABEL}=true)",
                describe(r),
                r.namespace,
                r.name
            ),
        })
    }

    /// Reads one key of a Secret in the hub, if the policy allows it.
    pub async fn secret_value(&self, hub: &Client, r: &SecretKeyRef) -> Result<Vec<u8>> {
        self.check_ref(r)?;
        let secret = Api::<Secret>::namespaced(hub.clone(), &r.namespace)
            .get(&r.name)
            .await
            .map_err(Error::kube(&format!("reading Secret {}/{}", r.namespace, r.name)))?;
        self.check_marked(r, secret.metadata.labels.as_ref())?;
        secret
            .data
            .and_then(|mut d| d.remove(&r.key))
            .map(|b| b.0)
            .ok_or_else(|| Error::Config(format!("Secret {}/{} has no key {:?}", r.namespace, r.name, r.key)))
    }
}

/// Every Secret key a MemberCluster names.
pub fn secret_refs(spec: &MemberClusterSpec) -> Vec<&SecretKeyRef> {
    let kubernetes = spec.kubernetes.iter().map(|k| &k.kubeconfig_secret_ref);
    let slurm = spec
        .slurm
        .iter()
        .flat_map(|s| s.token_secret_ref.iter().chain(s.jwt_key_secret_ref.iter()).chain(s.ca_secret_ref.iter()));
    let prometheus = spec.prometheus.iter().flat_map(|p| p.ca_secret_ref.iter());
    kubernetes.chain(slurm).chain(prometheus).collect()
}

/// How an endpoint is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// https://: credentials travel under TLS.
    Tls,
    /// http://, allowed by `insecureHTTP: true`.
    InsecureAllowed,
}

/// Whether credentials may be sent to `url` (pure). `what` names the endpoint in messages,
/// `field` is where `insecureHTTP` goes in the MemberCluster.
pub fn check_endpoint(what: &str, field: &str, url: &str, insecure_http: bool) -> Result<Transport> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|_| Error::Config(format!("{what} {url:?} is not a URL (e.g. https://host:port)")))?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        // The URL is not repeated: it carries a user name or password.
        return Err(Error::Config(format!("{what}: the URL must not carry a user name or password")));
    }
    match parsed.scheme() {
        "https" => Ok(Transport::Tls),
        "http" if insecure_http => Ok(Transport::InsecureAllowed),
        "http" => Err(Error::Refused {
            reason: reasons::INSECURE_ENDPOINT,
            message: format!(
                "{what} {url} is plain http: credentials would cross the network unencrypted. Use https:// \
                 (caSecretRef trusts a private CA), or set {field}.insecureHTTP: true to allow it"
            ),
        }),
        other => Err(Error::Config(format!("{what} {url:?}: scheme {other:?} is not https or http"))),
    }
}

/// Checks a MemberCluster's connection before anything is read or sent (pure): every Secret
/// reference in the service's namespace, every endpoint https or explicitly allowed http.
/// Returns the allowed plain http endpoints, for the TransportSecure condition.
pub fn check_spec(spec: &MemberClusterSpec, policy: &SecretPolicy) -> Result<Vec<String>> {
    for r in secret_refs(spec) {
        policy.check_ref(r)?;
    }
    let mut insecure = Vec::new();
    if let Some(s) = &spec.slurm {
        if check_endpoint("the slurmrestd endpoint", "spec.slurm", &s.endpoint, s.insecure_http)?
            == Transport::InsecureAllowed
        {
            insecure.push(format!("slurmrestd endpoint {}", s.endpoint));
        }
    }
    if let Some(p) = &spec.prometheus {
        if check_endpoint("the Prometheus URL", "spec.prometheus", &p.url, p.insecure_http)?
            == Transport::InsecureAllowed
        {
            insecure.push(format!("Prometheus URL {}", p.url));
        }
    }
    Ok(insecure)
}

/// An HTTP client for credentialed calls: never follows redirects (a 3xx comes back as
/// the answer, see [`redirect_refused`]), https only unless `transport` allows http, and
/// trusting the PEM certificates in `ca` (read from `ca_ref`) besides the built-in roots.
pub fn http_client(
    transport: Transport,
    ca: Option<(&SecretKeyRef, &[u8])>,
    connect_timeout: Duration,
    timeout: Duration,
) -> Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .https_only(transport == Transport::Tls);
    if let Some((r, pem)) = ca {
        for cert in ca_certificates(r, pem)? {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder.build().map_err(|_| Error::Config("could not build the HTTP client (TLS setup)".into()))
}

/// The certificates of a PEM bundle read from `r`; the parser's message is not kept.
pub fn ca_certificates(r: &SecretKeyRef, pem: &[u8]) -> Result<Vec<reqwest::Certificate>> {
    let bad = || Error::Config(format!("{}: not a PEM certificate bundle (-----BEGIN CERTIFICATE-----)", describe(r)));
    let text = std::str::from_utf8(pem).map_err(|_| bad())?;
    if !text.contains("-----BEGIN CERTIFICATE-----") {
        return Err(bad());
    }
    let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|_| bad())?;
    if certs.is_empty() {
        return Err(bad());
    }
    Ok(certs)
}

/// The error for a 3xx answer to a credentialed call: it is not followed, so the
/// credentials never reach another address.
pub fn redirect_refused(what: &str, status: u16) -> Error {
    Error::Server {
        what: what.into(),
        status,
        errors: vec!["a redirect, not followed (credentials are only sent to the configured address): \
             configure the final URL instead"
            .into()],
    }
}

/// The first field of a kubeconfig the service refuses to use (pure): those that run a
/// command or read a file on the service's machine, and a plain http server. Named by
/// its path (`users[0].user.exec`), never by its value.
pub fn kubeconfig_refusal(kubeconfig: &Kubeconfig) -> Option<String> {
    for (i, user) in kubeconfig.auth_infos.iter().enumerate() {
        let Some(a) = &user.auth_info else { continue };
        let fields = [
            ("exec", a.exec.is_some()),
            ("auth-provider", a.auth_provider.is_some()),
            ("tokenFile", a.token_file.is_some()),
            ("client-certificate", a.client_certificate.is_some()),
            ("client-key", a.client_key.is_some()),
        ];
        if let Some((field, _)) = fields.iter().find(|(_, set)| *set) {
            return Some(format!("users[{i}].user.{field}"));
        }
    }
    for (i, cluster) in kubeconfig.clusters.iter().enumerate() {
        let Some(c) = &cluster.cluster else { continue };
        if c.certificate_authority.is_some() {
            return Some(format!("clusters[{i}].cluster.certificate-authority"));
        }
        if c.server.as_deref().is_some_and(|s| s.trim_start().to_ascii_lowercase().starts_with("http://")) {
            return Some(format!("clusters[{i}].cluster.server (plain http)"));
        }
    }
    None
}

/// Reads a kubeconfig from the bytes of `r` and checks it (pure): the errors name the
/// Secret and the kind of problem, with a line and column at most.
pub fn parse_kubeconfig(r: &SecretKeyRef, bytes: &[u8]) -> Result<Kubeconfig> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| Error::Config(format!("{}: the kubeconfig is not UTF-8 text", describe(r))))?;
    let kubeconfig = Kubeconfig::from_yaml(text).map_err(|_| {
        // YAML parsers quote the input in their messages: only the position is kept.
        let problem = match serde_yaml::from_str::<serde_yaml::Value>(text) {
            Err(e) => match e.location() {
                Some(l) => format!("is not valid YAML (line {}, column {})", l.line(), l.column()),
                None => "is not valid YAML".to_string(),
            },
            Ok(_) => "is YAML but not a kubeconfig (a field has the wrong type or is missing)".to_string(),
        };
        Error::Config(format!("{}: the kubeconfig {problem}", describe(r)))
    })?;
    if let Some(field) = kubeconfig_refusal(&kubeconfig) {
        return Err(Error::Refused {
            reason: reasons::KUBECONFIG_NOT_ALLOWED,
            message: format!(
                "{}: the kubeconfig uses {field}, which the service refuses (it would run a command, \
                 read a file on the service's machine or send credentials unencrypted); use token or \
                 client-certificate-data/client-key-data, certificate-authority-data and an https server",
                describe(r)
            ),
        });
    }
    Ok(kubeconfig)
}

/// What is wrong with a kubeconfig kube could not make a configuration of, in words that
/// cannot carry its content.
fn kubeconfig_problem(e: &KubeconfigError) -> &'static str {
    match e {
        KubeconfigError::CurrentContextNotSet => "names no current context",
        KubeconfigError::LoadContext(_) => "names a current context it does not define",
        KubeconfigError::LoadClusterOfContext(_) => "names a cluster in its context that it does not define",
        KubeconfigError::MissingClusterUrl => "gives its cluster no server",
        KubeconfigError::ParseClusterUrl(_) => "has a cluster server that is not a URL",
        KubeconfigError::ParseProxyUrl(_) => "has a proxy-url that is not a URL",
        KubeconfigError::LoadCertificateAuthority(_) => "has a certificate-authority-data that is not base64",
        KubeconfigError::LoadClientCertificate(_) => "has a client-certificate-data that is not base64",
        KubeconfigError::LoadClientKey(_) => "has a client-key-data that is not base64",
        KubeconfigError::ParseCertificates(_) => "has a certificate-authority-data that is not PEM certificates",
        _ => "cannot be made into a client configuration",
    }
}

/// A client configuration from a checked kubeconfig read from `r`.
pub async fn kube_config(r: &SecretKeyRef, kubeconfig: Kubeconfig) -> Result<kube::Config> {
    kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|e| Error::Config(format!("{}: the kubeconfig {}", describe(r), kubeconfig_problem(&e))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use computenet_api::member_cluster::{PrometheusSource, SlurmConnection};

    fn key(namespace: &str) -> SecretKeyRef {
        SecretKeyRef { name: "ai-1-kubeconfig".into(), namespace: namespace.into(), key: "kubeconfig".into() }
    }

    /// A marker planted in Secret content: no message may contain it.
    const MARKER: &str = "PLANTED-MARKER-3f9c";

    #[test]
    fn secrets_are_read_only_in_the_service_namespace_and_with_the_label() {
        let policy = SecretPolicy::new("computenet-system");
        assert!(policy.check_ref(&key("computenet-system")).is_ok());
        let e = policy.check_ref(&key("kube-system")).expect_err("another namespace");
        assert_eq!(e.reason(), "SecretNotAllowed");
        assert_eq!(e.refusal(), Some("SecretNotAllowed"));
        assert!(e.to_string().contains("kube-system/ai-1-kubeconfig"), "{e}");
        let r = key("computenet-system");
        let marked: BTreeMap<String, String> = [(CREDENTIALS_LABEL.to_string(), "true".to_string())].into();
        assert!(policy.check_marked(&r, Some(&marked)).is_ok());
        for labels in [None, Some(BTreeMap::new()), Some([(CREDENTIALS_LABEL.to_string(), "yes".to_string())].into())] {
            let e = policy.check_marked(&r, labels.as_ref()).expect_err("not marked");
            assert_eq!(e.reason(), "SecretNotAllowed");
            assert!(e.to_string().contains("computenet.io/credentials=true"), "{e}");
        }
    }

    #[test]
    fn https_is_required_unless_http_is_allowed() {
        let check = |url: &str, allow| check_endpoint("the slurmrestd endpoint", "spec.slurm", url, allow);
        assert_eq!(check("https://slurm:6820", false).expect("https"), Transport::Tls);
        assert_eq!(check("HTTPS://slurm:6820", false).expect("any case"), Transport::Tls);
        assert_eq!(check("http://slurm:6820", true).expect("allowed"), Transport::InsecureAllowed);
        for url in ["http://slurm:6820", "HTTP://slurm:6820"] {
            let e = check(url, false).expect_err("plain http");
            assert_eq!(e.reason(), "InsecureEndpoint");
            assert!(e.to_string().contains("spec.slurm.insecureHTTP: true"), "{e}");
        }
        assert_eq!(check("slurm:6820", true).expect_err("no scheme").reason(), "InvalidConfig");
        assert_eq!(check("ftp://slurm", true).expect_err("other scheme").reason(), "InvalidConfig");
        let e = check("https://user:hunter2@slurm:6820", false).expect_err("credentials in the URL");
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }

    fn slurm_spec(endpoint: &str, insecure_http: bool, namespace: &str) -> MemberClusterSpec {
        let slurm: SlurmConnection = serde_json::from_value(serde_json::json!({
            "endpoint": endpoint, "insecureHTTP": insecure_http, "userName": "u",
            "tokenSecretRef": {"name": "slurm-token", "namespace": namespace, "key": "token"},
        }))
        .expect("slurm connection");
        serde_json::from_value(serde_json::json!({"kind": "HPC", "site": "north", "slurm": slurm}))
            .expect("member spec")
    }

    #[test]
    fn a_member_is_checked_before_anything_is_read_or_sent() {
        let policy = SecretPolicy::new("computenet-system");
        assert_eq!(
            check_spec(&slurm_spec("https://s:6820", false, "computenet-system"), &policy).expect("ok"),
            [""; 0]
        );
        let allowed = check_spec(&slurm_spec("http://s:6820", true, "computenet-system"), &policy).expect("allowed");
        assert_eq!(allowed, ["slurmrestd endpoint http://s:6820"]);
        let e = check_spec(&slurm_spec("http://s:6820", false, "computenet-system"), &policy).expect_err("http");
        assert_eq!(e.refusal(), Some("InsecureEndpoint"));
        let e = check_spec(&slurm_spec("https://s:6820", false, "default"), &policy).expect_err("namespace");
        assert_eq!(e.refusal(), Some("SecretNotAllowed"));
        let mut spec = slurm_spec("https://s:6820", false, "computenet-system");
        spec.prometheus = Some(
            serde_json::from_value::<PrometheusSource>(serde_json::json!({
                "url": "http://prom:9090",
                "caSecretRef": {"name": "ca", "namespace": "computenet-system", "key": "ca.crt"}}))
            .expect("prometheus"),
        );
        assert_eq!(check_spec(&spec, &policy).expect_err("prometheus over http").refusal(), Some("InsecureEndpoint"));
        spec.prometheus.as_mut().expect("set").insecure_http = true;
        assert_eq!(check_spec(&spec, &policy).expect("allowed"), ["Prometheus URL http://prom:9090"]);
        spec.prometheus.as_mut().expect("set").ca_secret_ref.as_mut().expect("set").namespace = "x".into();
        assert_eq!(check_spec(&spec, &policy).expect_err("CA elsewhere").refusal(), Some("SecretNotAllowed"));
    }

    fn kubeconfig(user: &str, cluster: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: c\ncontexts:\n- name: c\n  context: {{cluster: k, user: u}}\n\
             clusters:\n- name: k\n  cluster:\n    server: https://127.0.0.1:6443\n{cluster}users:\n- name: u\n  user:\n{user}"
        )
    }

    #[test]
    fn kubeconfigs_that_run_commands_or_read_files_are_refused_by_field() {
        let r = key("computenet-system");
        let good = kubeconfig(&format!("    token: {MARKER}\n"), "");
        assert!(parse_kubeconfig(&r, good.as_bytes()).is_ok());
        let cases = [
            (
                format!("    exec: {{apiVersion: client.authentication.k8s.io/v1, command: {MARKER}}}\n"),
                "",
                "users[0].user.exec",
            ),
            (format!("    tokenFile: /var/run/secrets/{MARKER}\n"), "", "users[0].user.tokenFile"),
            (format!("    auth-provider: {{name: {MARKER}}}\n"), "", "users[0].user.auth-provider"),
            (format!("    client-certificate: /{MARKER}.crt\n"), "", "users[0].user.client-certificate"),
            (format!("    client-key: /{MARKER}.key\n"), "", "users[0].user.client-key"),
            (
                "    token: t\n".to_string(),
                "    certificate-authority: /etc/PLANTED-MARKER-3f9c.crt\n",
                "clusters[0].cluster.certificate-authority",
            ),
        ];
        for (user, cluster, field) in cases {
            let text = kubeconfig(&user, cluster);
            let e = parse_kubeconfig(&r, text.as_bytes()).expect_err(field);
            let message = e.to_string();
            assert_eq!(e.refusal(), Some("KubeconfigNotAllowed"), "{field}");
            assert!(message.contains(field), "{message}");
            assert!(message.contains("computenet-system/ai-1-kubeconfig"), "{message}");
            assert!(!message.contains(MARKER), "{message}");
        }
        let plain = kubeconfig("    token: t\n", "").replace("https://", "http://");
        let e = parse_kubeconfig(&r, plain.as_bytes()).expect_err("plain http server");
        assert!(e.to_string().contains("clusters[0].cluster.server"), "{e}");
    }

    #[test]
    fn a_broken_kubeconfig_is_named_without_its_text() {
        let r = key("computenet-system");
        let broken = [
            format!("apiVersion: v1\nclusters: [{MARKER}\n"),
            format!("apiVersion: v1\nusers:\n- name: u\n  user: {{token: [{MARKER}]}}\n"),
            format!("{MARKER}: {{\n"),
            format!("clusters: {MARKER}\n"),
            format!("\"{MARKER}\n"),
        ];
        for text in broken {
            let e = parse_kubeconfig(&r, text.as_bytes()).expect_err("broken");
            let message = e.to_string();
            assert!(!message.contains(MARKER), "{message}");
            assert!(message.contains("Secret computenet-system/ai-1-kubeconfig (key \"kubeconfig\")"), "{message}");
        }
        let e = parse_kubeconfig(&r, &[0xff, 0xfe, b'x']).expect_err("binary");
        assert!(e.to_string().contains("not UTF-8"), "{e}");
    }

    #[tokio::test]
    async fn a_kubeconfig_kube_cannot_use_is_named_without_its_text() {
        let r = key("computenet-system");
        let text = kubeconfig("    token: t\n", &format!("    certificate-authority-data: {MARKER}\n"));
        let parsed = parse_kubeconfig(&r, text.as_bytes()).expect("parses");
        let e = kube_config(&r, parsed).await.expect_err("bad CA data");
        assert!(!e.to_string().contains(MARKER), "{e}");
        assert!(e.to_string().contains("certificate-authority-data"), "{e}");
        let no_context =
            kubeconfig("    token: t\n", "").replace("current-context: c", &format!("current-context: {MARKER}"));
        let parsed = parse_kubeconfig(&r, no_context.as_bytes()).expect("parses");
        let e = kube_config(&r, parsed).await.expect_err("unknown context");
        assert!(!e.to_string().contains(MARKER), "{e}");
    }

    #[test]
    fn a_ca_bundle_is_read_or_named_without_its_text() {
        let r = SecretKeyRef { name: "slurm-ca".into(), namespace: "computenet-system".into(), key: "ca.crt".into() };
        let e = ca_certificates(&r, format!("not a certificate {MARKER}").as_bytes()).expect_err("not PEM");
        assert!(!e.to_string().contains(MARKER) && e.to_string().contains("computenet-system/slurm-ca"), "{e}");
        let bad_body = format!("-----BEGIN CERTIFICATE-----\n{MARKER}!!\n-----END CERTIFICATE-----\n");
        let e = ca_certificates(&r, bad_body.as_bytes()).expect_err("bad base64");
        assert!(!e.to_string().contains(MARKER), "{e}");
        assert!(http_client(Transport::Tls, None, Duration::from_secs(1), Duration::from_secs(1)).is_ok());
    }
}

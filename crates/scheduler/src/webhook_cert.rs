//! The admission webhook's certificate when none is mounted (`--webhook-cert-dir`): a CA
//! and a serving certificate for the webhook's host names, made by the service and kept in
//! a Secret that every replica shares; the CA goes into the MutatingWebhookConfiguration's
//! `caBundle`, so the apiserver trusts the webhook without cert-manager or a chart hook.
//!
//! The certificates are ECDSA P-256 and do not expire in practice (rcgen's default end,
//! the year 4096): rotate them by deleting the Secret and restarting the service.

use crate::error::{Error, Result};
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use kube::api::PostParams;
use kube::{Api, Client};
use std::collections::BTreeMap;

/// The Secret's annotation listing the host names the certificate was made for: another
/// list makes a new certificate.
pub const HOSTS_ANNOTATION: &str = "computenet.io/webhook-hosts";

/// A serving certificate, its key and the CA that signed it, PEM.
#[derive(Clone)]
pub struct WebhookTls {
    pub cert_pem: String,
    pub key_pem: String,
    pub ca_pem: String,
}

impl std::fmt::Debug for WebhookTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookTls(..)") // never the key
    }
}

/// A new CA and a certificate for `hosts` (DNS names or IP addresses) signed by it.
pub fn generate(hosts: &[String]) -> Result<WebhookTls> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose};
    let fail = |e: rcgen::Error| Error::Webhook(format!("making its certificate: {e}"));
    let ca_key = KeyPair::generate().map_err(fail)?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(fail)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "computenet webhook CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let ca_cert = ca.self_signed(&ca_key).map_err(fail)?;
    let key = KeyPair::generate().map_err(fail)?;
    let mut server = CertificateParams::new(hosts.to_vec()).map_err(fail)?;
    server.distinguished_name.push(DnType::CommonName, hosts.first().cloned().unwrap_or_default());
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = server.signed_by(&key, &ca_cert, &ca_key).map_err(fail)?;
    Ok(WebhookTls { cert_pem: cert.pem(), key_pem: key.serialize_pem(), ca_pem: ca_cert.pem() })
}

/// What a Secret holds, when it was made for exactly `hosts`.
pub fn from_secret(secret: &Secret, hosts: &[String]) -> Option<WebhookTls> {
    let made_for = secret.metadata.annotations.as_ref()?.get(HOSTS_ANNOTATION)?;
    if *made_for != hosts.join(",") {
        return None;
    }
    let data = secret.data.as_ref()?;
    let text = |k: &str| data.get(k).and_then(|b| String::from_utf8(b.0.clone()).ok()).filter(|t| !t.is_empty());
    Some(WebhookTls { cert_pem: text("tls.crt")?, key_pem: text("tls.key")?, ca_pem: text("ca.crt")? })
}

fn secret(namespace: &str, name: &str, hosts: &[String], tls: &WebhookTls) -> Secret {
    let bytes = |t: &str| ByteString(t.as_bytes().to_vec());
    Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(namespace.to_string()),
            labels: Some(BTreeMap::from([("app.kubernetes.io/managed-by".to_string(), "computenet".to_string())])),
            annotations: Some(BTreeMap::from([(HOSTS_ANNOTATION.to_string(), hosts.join(","))])),
            ..Default::default()
        },
        data: Some(BTreeMap::from([
            ("tls.crt".to_string(), bytes(&tls.cert_pem)),
            ("tls.key".to_string(), bytes(&tls.key_pem)),
            ("ca.crt".to_string(), bytes(&tls.ca_pem)),
        ])),
        type_: Some("kubernetes.io/tls".into()),
        ..Default::default()
    }
}

/// The certificate in Secret `namespace/name`, made when absent. Replicas starting together
/// race to create it: the loser reads the winner's. A Secret made for other hosts is an
/// error (the service may only read it, not replace it).
pub async fn load_or_create(client: &Client, namespace: &str, name: &str, hosts: &[String]) -> Result<WebhookTls> {
    let api = Api::<Secret>::namespaced(client.clone(), namespace);
    let existing = api.get_opt(name).await?;
    if let Some(tls) = existing.as_ref().and_then(|s| from_secret(s, hosts)) {
        return Ok(tls);
    }
    if existing.is_some() {
        return Err(Error::Webhook(format!(
            "Secret {namespace}/{name} holds no webhook certificate for {} (annotation {HOSTS_ANNOTATION}); \
             delete it to have a new one made",
            hosts.join(",")
        )));
    }
    let tls = generate(hosts)?;
    match api.create(&PostParams::default(), &secret(namespace, name, hosts, &tls)).await {
        Ok(_) => {
            tracing::info!(secret = %format!("{namespace}/{name}"), hosts = %hosts.join(","), "made the webhook certificate");
            Ok(tls)
        }
        Err(kube::Error::Api(e)) if e.code == 409 => from_secret(&api.get(name).await?, hosts).ok_or_else(|| {
            Error::Webhook(format!("Secret {namespace}/{name} changed under us and is not for {}", hosts.join(",")))
        }),
        Err(e) => Err(e.into()),
    }
}

/// Sets every webhook's `clientConfig.caBundle` to `ca`; whether anything changed.
pub fn with_ca_bundle(configuration: &mut MutatingWebhookConfiguration, ca: &[u8]) -> bool {
    let mut changed = false;
    for hook in configuration.webhooks.iter_mut().flatten() {
        if hook.client_config.ca_bundle.as_ref().map(|b| b.0.as_slice()) != Some(ca) {
            hook.client_config.ca_bundle = Some(ByteString(ca.to_vec()));
            changed = true;
        }
    }
    changed
}

/// Writes the CA into the MutatingWebhookConfiguration `name`. Absent, it is left to
/// whoever installs it (with a warning): objects then get past the webhook, and the
/// scheduler suspends them on its next pass.
pub async fn trust(client: &Client, name: &str, ca_pem: &str) -> Result<()> {
    let api = Api::<MutatingWebhookConfiguration>::all(client.clone());
    for _ in 0..3 {
        let Some(mut configuration) = api.get_opt(name).await? else {
            tracing::warn!(
                configuration = name,
                "no MutatingWebhookConfiguration of that name: its caBundle is not set"
            );
            return Ok(());
        };
        if !with_ca_bundle(&mut configuration, ca_pem.as_bytes()) {
            return Ok(());
        }
        // A merge patch replaces the list whole; the resourceVersion makes it conditional.
        let patch = serde_json::json!({
            "metadata": {"resourceVersion": configuration.metadata.resource_version},
            "webhooks": configuration.webhooks,
        });
        match api.patch(name, &kube::api::PatchParams::default(), &kube::api::Patch::Merge(patch)).await {
            Ok(_) => {
                tracing::info!(configuration = name, "webhook caBundle set");
                return Ok(());
            }
            // Another replica wrote it meanwhile: read it again.
            Err(kube::Error::Api(e)) if e.code == 409 => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::Webhook(format!("MutatingWebhookConfiguration {name} kept changing while its caBundle was set")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts() -> Vec<String> {
        vec!["computenet.computenet-system.svc".to_string(), "127.0.0.1".to_string()]
    }

    #[test]
    fn a_made_certificate_serves_tls_and_round_trips_through_its_secret() {
        let tls = generate(&hosts()).expect("generates");
        assert!(tls.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(tls.key_pem.contains("PRIVATE KEY"));
        assert_ne!(tls.cert_pem, tls.ca_pem);
        crate::admission::tls_config_from_pem(&tls.cert_pem, &tls.key_pem).expect("rustls takes it");
        let stored = secret("ns", "s", &hosts(), &tls);
        let back = from_secret(&stored, &hosts()).expect("read back");
        assert_eq!((back.cert_pem, back.key_pem, back.ca_pem), (tls.cert_pem, tls.key_pem, tls.ca_pem));
        // Made for other hosts: not reused.
        assert!(from_secret(&stored, &["other.svc".to_string()]).is_none());
        assert!(!format!("{back_debug:?}", back_debug = generate(&hosts()).unwrap()).contains("PRIVATE"));
    }

    #[test]
    fn the_ca_bundle_is_set_on_every_webhook_once() {
        let mut mwc: MutatingWebhookConfiguration = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "computenet"},
            "webhooks": [
                {"name": "a.computenet.io", "admissionReviewVersions": ["v1"], "sideEffects": "None",
                 "clientConfig": {"url": "https://127.0.0.1:9443/mutate"}},
                {"name": "b.computenet.io", "admissionReviewVersions": ["v1"], "sideEffects": "None",
                 "clientConfig": {"service": {"name": "s", "namespace": "n"}, "caBundle": "b2xk"}}
            ]
        }))
        .unwrap();
        assert!(with_ca_bundle(&mut mwc, b"CA"));
        assert!(mwc.webhooks.as_ref().unwrap().iter().all(|w| w.client_config.ca_bundle.as_ref().unwrap().0 == b"CA"));
        assert!(!with_ca_bundle(&mut mwc, b"CA"), "nothing to change the second time");
    }
}

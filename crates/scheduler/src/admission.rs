//! The mutating admission webhook that holds researchers' own job objects: a JobSet,
//! TrainJob or PyTorchJob created (or updated) with the label `computenet.io/queue-name`
//! is stored suspended, so that nothing in the hub runs it; computenet then queues it and runs a
//! copy on the member it picks ([`crate::sources`]). Objects without the label, and other
//! kinds, are let through unchanged. An object that gets past the webhook (it is down, or
//! not installed) is suspended by the service on its next pass.
//!
//! It also gives every TrainingJob created the service's finalizer, so that the service
//! need not write the job once more to add it before dispatching (one hub write fewer per
//! job). That part is best effort (registered with `failurePolicy: Ignore`): a job created
//! without it gets the finalizer from the service before anything is dispatched.
//!
//! [`review`] decides (pure); [`serve`] answers the apiserver over HTTPS (`POST /mutate`).

use crate::error::{Error, Result};
use axum::routing::post;
use axum::{Json, Router};
use computenet_api::{kinds, TrainingJob};
use computenet_members::labels::FINALIZER;
use kube::Resource;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

/// The AdmissionReview (admission.k8s.io/v1) answering `request`: allowed, with a JSON
/// patch that sets the kind's suspend field when the object is queued by label and not
/// suspended already. Never denies: a malformed review is allowed unchanged (the CRD
/// schema and the service judge the object).
pub fn review(request: &Value) -> Value {
    let uid = request.pointer("/request/uid").cloned().unwrap_or(Value::String(String::new()));
    let mut response = json!({"uid": uid, "allowed": true});
    if let Some(patch) = suspend_patch(request).or_else(|| finalizer_patch(request)) {
        use base64::Engine;
        let encoded = base64::engine::general_purpose::STANDARD.encode(patch.to_string());
        response["patchType"] = json!("JSONPatch");
        response["patch"] = json!(encoded);
    }
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response})
}

/// The JSON patch that suspends the reviewed object, if it is to be held.
fn suspend_patch(request: &Value) -> Option<Value> {
    let r = request.get("request")?;
    // On create, and on every update too: a labelled object never leaves suspension in the
    // hub (only its copy on a member runs).
    if !matches!(r.get("operation").and_then(Value::as_str), Some("CREATE" | "UPDATE")) {
        return None;
    }
    let group = r.pointer("/kind/group").and_then(Value::as_str)?;
    let kind = kinds::by_group_kind(group, r.pointer("/kind/kind").and_then(Value::as_str)?)?;
    let object = r.get("object")?;
    object.pointer("/metadata/labels").and_then(|l| l.get(kinds::QUEUE_LABEL))?;
    if kind.suspended(object) {
        return None;
    }
    // Add each missing parent of the field ("/spec/runPolicy" may be absent), then the field.
    let pointer = kind.suspend_pointer();
    let mut ops = Vec::new();
    let mut path = String::new();
    let parts: Vec<&str> = pointer.trim_start_matches('/').split('/').collect();
    for (i, part) in parts.iter().enumerate() {
        path.push('/');
        path.push_str(part);
        let last = i + 1 == parts.len();
        if last {
            ops.push(json!({"op": "add", "path": path, "value": true}));
        } else if object.pointer(&path).is_none_or(|v| !v.is_object()) {
            ops.push(json!({"op": "add", "path": path, "value": {}}));
        }
    }
    Some(Value::Array(ops))
}

/// The JSON patch that gives a TrainingJob being created the service's finalizer, if it
/// lacks it. Only on create: a finalizer removed later is the service's to put back (a
/// deleted job loses it on purpose).
fn finalizer_patch(request: &Value) -> Option<Value> {
    let r = request.get("request")?;
    let is_training_job = r.pointer("/kind/group").and_then(Value::as_str) == Some(TrainingJob::group(&()).as_ref())
        && r.pointer("/kind/kind").and_then(Value::as_str) == Some(TrainingJob::kind(&()).as_ref());
    if r.get("operation").and_then(Value::as_str) != Some("CREATE") || !is_training_job {
        return None;
    }
    let finalizers = r.pointer("/object/metadata")?.get("finalizers");
    match finalizers {
        None | Some(Value::Null) => Some(json!([{"op": "add", "path": "/metadata/finalizers", "value": [FINALIZER]}])),
        Some(Value::Array(list)) if list.iter().any(|f| f.as_str() == Some(FINALIZER)) => None,
        Some(Value::Array(_)) => Some(json!([{"op": "add", "path": "/metadata/finalizers/-", "value": FINALIZER}])),
        // Not a list: the apiserver rejects the object anyway.
        Some(_) => None,
    }
}

/// Where the webhook's serving certificate comes from.
#[derive(Debug, Clone)]
pub enum Certificate {
    /// `tls.crt` and `tls.key` (PEM) in a folder, as a kubernetes.io/tls Secret mounts them
    /// (your own, or cert-manager's).
    Files(std::path::PathBuf),
    /// Made by the service ([`crate::webhook_cert`]) for `hosts`, kept in the Secret
    /// `namespace/secret`; its CA is written into the MutatingWebhookConfiguration
    /// `configuration`.
    Managed { namespace: String, secret: String, hosts: Vec<String>, configuration: String },
}

/// Starts serving the webhook on `addr` in the background until the process ends. Every
/// replica serves it, the leader or not.
pub async fn start(
    client: &kube::Client,
    addr: SocketAddr,
    certificate: &Certificate,
) -> Result<tokio::task::JoinHandle<()>> {
    let tls = match certificate {
        Certificate::Files(dir) => tls_config(dir)?,
        Certificate::Managed { namespace, secret, hosts, configuration } => {
            let made = crate::webhook_cert::load_or_create(client, namespace, secret, hosts).await?;
            crate::webhook_cert::trust(client, configuration, &made.ca_pem).await?;
            tls_config_from_pem(&made.cert_pem, &made.key_pem)?
        }
    };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Error::Webhook(format!("cannot listen on {addr}: {e}")))?;
    tracing::info!(%addr, "admission webhook listening (POST /mutate)");
    let app = Router::new().route("/mutate", post(|Json(body): Json<Value>| async move { Json(review(&body)) }));
    let listener = TlsListener { tcp: listener, tls: tokio_rustls::TlsAcceptor::from(Arc::new(tls)) };
    Ok(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "admission webhook stopped");
        }
    }))
}

fn tls_config(cert_dir: &Path) -> Result<rustls::ServerConfig> {
    let read = |name: &str| {
        let path = cert_dir.join(name);
        std::fs::read_to_string(&path).map_err(|e| Error::Webhook(format!("{}: {e}", path.display())))
    };
    tls_config_from_pem(&read("tls.crt")?, &read("tls.key")?)
}

/// A TLS server configuration from a certificate chain and its key, PEM.
pub fn tls_config_from_pem(cert_pem: &str, key_pem: &str) -> Result<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::Webhook(format!("certificate: {e}")))?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| Error::Webhook(format!("key: {e}")))?;
    rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key))
        .map_err(|e| Error::Webhook(format!("TLS: {e}")))
}

/// TCP connections that completed a TLS handshake; a failed handshake is logged and skipped.
struct TlsListener {
    tcp: tokio::net::TcpListener,
    tls: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (stream, peer) = match self.tcp.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::debug!(error = %e, "webhook accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            // A slow or silent client must not hold the accept loop.
            match tokio::time::timeout(std::time::Duration::from_secs(5), self.tls.accept(stream)).await {
                Ok(Ok(tls)) => return (tls, peer),
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "webhook TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "webhook TLS handshake timed out"),
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn request(kind: (&str, &str), op: &str, object: Value) -> Value {
        json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
               "request": {"uid": "r-1", "operation": op, "kind": {"group": kind.0, "version": "v1", "kind": kind.1},
                           "object": object}})
    }

    fn patch_of(answer: &Value) -> Option<Value> {
        let encoded = answer.pointer("/response/patch")?.as_str()?;
        serde_json::from_slice(&base64::engine::general_purpose::STANDARD.decode(encoded).ok()?).ok()
    }

    #[test]
    fn a_labelled_jobset_is_suspended_and_others_pass_unchanged() {
        let labelled = json!({"metadata": {"labels": {"computenet.io/queue-name": "research"}}, "spec": {}});
        let answer = review(&request(("jobset.x-k8s.io", "JobSet"), "CREATE", labelled.clone()));
        assert_eq!(answer["response"]["uid"], "r-1");
        assert_eq!(answer["response"]["allowed"], true);
        assert_eq!(patch_of(&answer), Some(json!([{"op": "add", "path": "/spec/suspend", "value": true}])));
        // No label, an update, or another kind: allowed, no patch.
        let plain = json!({"metadata": {"labels": {"app": "x"}}, "spec": {}});
        assert_eq!(patch_of(&review(&request(("jobset.x-k8s.io", "JobSet"), "CREATE", plain))), None);
        assert_eq!(
            patch_of(&review(&request(("jobset.x-k8s.io", "JobSet"), "UPDATE", labelled.clone()))),
            Some(json!([{"op": "add", "path": "/spec/suspend", "value": true}])),
            "an update cannot unsuspend it either"
        );
        assert_eq!(patch_of(&review(&request(("jobset.x-k8s.io", "JobSet"), "DELETE", labelled.clone()))), None);
        assert_eq!(patch_of(&review(&request(("batch", "Job"), "CREATE", labelled))), None);
    }

    #[test]
    fn a_pytorchjob_without_run_policy_gets_one() {
        let object = json!({"metadata": {"labels": {"computenet.io/queue-name": "q"}}, "spec": {}});
        let answer = review(&request(("kubeflow.org", "PyTorchJob"), "CREATE", object));
        assert_eq!(
            patch_of(&answer),
            Some(json!([{"op": "add", "path": "/spec/runPolicy", "value": {}},
                        {"op": "add", "path": "/spec/runPolicy/suspend", "value": true}]))
        );
        let suspended = json!({"metadata": {"labels": {"computenet.io/queue-name": "q"}}, "spec": {"runPolicy": {"suspend": true}}});
        assert_eq!(patch_of(&review(&request(("kubeflow.org", "PyTorchJob"), "CREATE", suspended))), None);
    }

    #[test]
    fn a_training_job_is_created_with_the_finalizer() {
        let tj = ("computenet.io", "TrainingJob");
        let bare = json!({"metadata": {"name": "a"}, "spec": {}});
        assert_eq!(
            patch_of(&review(&request(tj, "CREATE", bare.clone()))),
            Some(json!([{"op": "add", "path": "/metadata/finalizers", "value": [FINALIZER]}]))
        );
        let others = json!({"metadata": {"name": "a", "finalizers": ["example.com/keep"]}});
        assert_eq!(
            patch_of(&review(&request(tj, "CREATE", others))),
            Some(json!([{"op": "add", "path": "/metadata/finalizers/-", "value": FINALIZER}]))
        );
        // Already there, an update, another group's TrainingJob, or a malformed list: unchanged.
        let has = json!({"metadata": {"name": "a", "finalizers": [FINALIZER]}});
        assert_eq!(patch_of(&review(&request(tj, "CREATE", has))), None);
        assert_eq!(patch_of(&review(&request(tj, "UPDATE", bare.clone()))), None);
        assert_eq!(patch_of(&review(&request(("example.com", "TrainingJob"), "CREATE", bare))), None);
        let odd = json!({"metadata": {"name": "a", "finalizers": "x"}});
        assert_eq!(patch_of(&review(&request(tj, "CREATE", odd))), None);
    }

    #[test]
    fn garbage_is_allowed_unchanged() {
        for body in [json!(null), json!({"request": 5}), json!({"request": {"operation": "CREATE"}})] {
            let answer = review(&body);
            assert_eq!(answer["response"]["allowed"], true);
            assert!(answer["response"].get("patch").is_none());
        }
    }
}

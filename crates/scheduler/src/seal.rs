//! The service's seal on its admissions: status is writable by anyone whose role covers
//! `trainingjobs/status`, so an admission counts only when it carries an HMAC-SHA256, made
//! with a key only the service holds, over what was decided (job UID, attempt, queue,
//! placement, and the decided spec). A job whose admission is not sealed by this key was
//! not admitted by this service and is never dispatched: it is reset and decided anew.
//!
//! The key lives in a Secret in the service's own namespace, created by the first replica
//! with 32 random bytes ([`load_or_create`]). Admissions written before seals existed
//! carry none and are re-decided once after an upgrade.

use crate::error::{Error, Result};
use crate::lease;
use computenet_api::training_job::{MemberLossPolicy, PlacementStatus, TrainingJobStatus};
use computenet_api::view;
use computenet_api::{convert, ComputeQueue, TrainingJob};
use foldhash::{HashMap, HashSet};
use hmac::{Hmac, Mac};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use kube::api::PostParams;
use kube::{Api, Client};
use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Key bytes; a shorter key in the Secret is refused.
pub const KEY_BYTES: usize = 32;

/// The Secret's key holding the bytes.
pub const SECRET_KEY: &str = "key";

/// The seal key. Its bytes are never printed (Debug shows nothing of them).
#[derive(Clone)]
pub struct AdmissionKey(Vec<u8>);

impl std::fmt::Debug for AdmissionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdmissionKey(..)")
    }
}

impl AdmissionKey {
    /// A key from its bytes; `None` when shorter than [`KEY_BYTES`].
    pub fn new(bytes: Vec<u8>) -> Option<Self> {
        (bytes.len() >= KEY_BYTES).then_some(AdmissionKey(bytes))
    }

    /// A fresh random key from the operating system's generator.
    pub fn random() -> Self {
        let mut bytes = vec![0u8; KEY_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        AdmissionKey(bytes)
    }

    fn mac(&self, record: &[u8]) -> Hmac<Sha256> {
        // HMAC takes keys of any length: this cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).unwrap_or_else(|_| unreachable!());
        mac.update(record);
        mac
    }
}

/// What a seal covers, in a fixed field order (serialised as JSON: the canonical record).
/// Not the nodes: a Slurm member picks its own and the mirror records them in the
/// placement, so they change after admission.
#[derive(Serialize)]
struct Record<'a> {
    version: u8,
    uid: &'a str,
    attempt: i32,
    queue: &'a str,
    cluster: &'a str,
    accelerator: Option<&'a str>,
    gpus: i64,
    /// The gang's size as placed (an elastic job's may differ from the spec's). Left out
    /// when absent, so seals made before it existed still hold.
    #[serde(skip_serializing_if = "Option::is_none")]
    replicas: Option<i32>,
    /// SHA-256 of the decided spec (hex).
    spec: String,
}

/// SHA-256 (hex) of the spec as decided: `suspend` and `onMemberLoss`, the two fields that
/// may change after admission, are left out.
fn spec_digest(tj: &TrainingJob) -> String {
    let mut spec = tj.spec.clone();
    spec.suspend = false;
    spec.on_member_loss = MemberLossPolicy::default();
    let bytes = serde_json::to_vec(&spec).unwrap_or_default();
    hex(&Sha256::digest(&bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn record(tj: &TrainingJob, attempt: i32, placement: &PlacementStatus) -> Vec<u8> {
    let record = Record {
        version: 1,
        uid: view::uid(tj),
        attempt,
        queue: &tj.spec.queue_name,
        cluster: &placement.cluster,
        accelerator: placement.accelerator.as_deref(),
        gpus: placement.gpus,
        replicas: placement.replicas,
        spec: spec_digest(tj),
    };
    serde_json::to_vec(&record).unwrap_or_default()
}

/// The seal of an admission of `tj` to `status` (its attempt and placement); `None` when
/// the status has no placement (nothing to seal).
pub fn seal(key: &AdmissionKey, tj: &TrainingJob, status: &TrainingJobStatus) -> Option<String> {
    let placement = status.placement.as_ref()?;
    let tag = key.mac(&record(tj, status.attempt.unwrap_or(0), placement)).finalize().into_bytes();
    Some(hex(&tag))
}

/// Whether the job's admission carries this key's seal over its UID, attempt, queue,
/// placement and spec (compared in constant time).
pub fn verify(key: &AdmissionKey, tj: &TrainingJob) -> bool {
    let Some(status) = tj.status.as_ref() else { return false };
    let (Some(placement), Some(seal)) = (status.placement.as_ref(), status.admission_seal.as_deref()) else {
        return false;
    };
    let Some(tag) = unhex(seal) else { return false };
    key.mac(&record(tj, status.attempt.unwrap_or(0), placement)).verify_slice(&tag).is_ok()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 || !text.is_ascii() {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok()).collect()
}

/// Seals found valid, by UID and the resourceVersion they were checked at. An object
/// with the same resourceVersion is the same object, so every pass need not hash each
/// admitted job's spec and MAC it again (it was a twentieth of the service's CPU in a
/// 2,000-job burst); any write to the job, a tenant's too, makes it checked afresh.
#[derive(Debug, Default)]
pub struct Verified(HashMap<String, String>);

impl Verified {
    /// [`verify`], remembered for the job's resourceVersion when the seal is valid.
    pub fn verify(&mut self, key: &AdmissionKey, tj: &TrainingJob) -> bool {
        let uid = view::uid(tj);
        let Some(version) = tj.metadata.resource_version.as_deref() else {
            return verify(key, tj);
        };
        if self.0.get(uid).is_some_and(|v| v == version) {
            return true;
        }
        let valid = verify(key, tj);
        if valid {
            self.0.insert(uid.to_string(), version.to_string());
        } else {
            self.0.remove(uid);
        }
        valid
    }

    /// Forgets jobs not among `jobs` (the hub's jobs), once it holds more entries than
    /// there are jobs: an entry of a deleted job is never used again (UIDs are not reused),
    /// so it only costs memory, and indexing every job each pass would cost more.
    pub fn retain(&mut self, jobs: &[Arc<TrainingJob>]) {
        if self.0.len() <= jobs.len() {
            return;
        }
        let present: HashSet<&str> = jobs.iter().map(|j| view::uid(j)).collect();
        self.0.retain(|uid, _| present.contains(uid.as_str()));
    }
}

/// Why an admitted job may not be dispatched as it stands, or `Ok` when it may: the
/// service's seal, and (before it is dispatched) its queue must still exist and select
/// its namespace.
pub fn check(
    key: &AdmissionKey,
    verified: &mut Verified,
    tj: &TrainingJob,
    queues: &BTreeMap<String, &ComputeQueue>,
    namespace_labels: &BTreeMap<String, String>,
) -> std::result::Result<(), String> {
    if !verified.verify(key, tj) {
        return Err("its admission was not issued by computenet (the status carries no valid seal of this service); it is decided again".into());
    }
    let dispatched = tj.status.as_ref().is_some_and(|s| s.remote.is_some());
    if dispatched {
        return Ok(());
    }
    let queue = &tj.spec.queue_name;
    match queues.get(queue) {
        None => Err(format!("its ComputeQueue {queue:?} no longer exists; it is decided again")),
        Some(q) if !convert::selector_matches(q.spec.namespace_selector.as_ref(), namespace_labels) => {
            Err(format!("its ComputeQueue {queue:?} no longer admits jobs from its namespace; it is decided again"))
        }
        Some(_) => Ok(()),
    }
}

/// Whether an admitted job is to be checked now: admitted with or without a placement,
/// not finished, not being deleted (its cleanup only removes).
pub fn applies(tj: &TrainingJob) -> bool {
    view::is_admitted(tj) && !view::is_finished(tj) && tj.metadata.deletion_timestamp.is_none()
}

/// The seal key from Secret `namespace/name`, created with [`KEY_BYTES`] random bytes when
/// absent. Two replicas may create it at once: the loser of the race reads the winner's.
/// The creation is a write of the leader and checks its fence.
pub async fn load_or_create(client: &Client, namespace: &str, name: &str) -> Result<AdmissionKey> {
    let api = Api::<Secret>::namespaced(client.clone(), namespace);
    let invalid = || {
        Error::AdmissionKey(format!(
            "Secret {namespace}/{name} holds no admission key of at least {KEY_BYTES} bytes under {SECRET_KEY:?}; delete it to have a new one made"
        ))
    };
    let read = |secret: Secret| {
        secret.data.and_then(|mut d| d.remove(SECRET_KEY)).and_then(|b| AdmissionKey::new(b.0)).ok_or_else(invalid)
    };
    if let Some(secret) = api.get_opt(name).await? {
        return read(secret);
    }
    lease::check_write()?;
    let key = AdmissionKey::random();
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(namespace.to_string()),
            labels: Some(BTreeMap::from([("app.kubernetes.io/managed-by".to_string(), "computenet".to_string())])),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(SECRET_KEY.to_string(), ByteString(key.0.clone()))])),
        type_: Some("Opaque".into()),
        ..Default::default()
    };
    match api.create(&PostParams::default(), &secret).await {
        Ok(_) => {
            tracing::info!(secret = %format!("{namespace}/{name}"), "created the admission seal key");
            Ok(key)
        }
        Err(kube::Error::Api(e)) if e.code == 409 => read(api.get(name).await?),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use computenet_api::training_job::{NodeReplicas, TrainingJobSpec};

    fn key(b: u8) -> AdmissionKey {
        AdmissionKey::new(vec![b; KEY_BYTES]).unwrap()
    }

    fn job() -> TrainingJob {
        let spec: TrainingJobSpec = serde_json::from_value(serde_json::json!({
            "queueName": "q", "replicas": 2,
            "resources": {"cpu": "4", "memory": "16Gi", "accelerators": {"count": 4}},
            "workload": {"image": "x", "command": ["true"]}
        }))
        .unwrap();
        let mut tj = TrainingJob::new("j", spec);
        tj.metadata.uid = Some("uid-1".into());
        tj.metadata.namespace = Some("team-a".into());
        tj
    }

    fn sealed(key: &AdmissionKey) -> TrainingJob {
        let mut tj = job();
        let mut status = TrainingJobStatus {
            admitted: Some(true),
            attempt: Some(1),
            placement: Some(PlacementStatus {
                cluster: "ai-1".into(),
                accelerator: Some("A100-80G".into()),
                gpus: 8,
                nodes: vec![NodeReplicas { node: "n1".into(), replicas: 2 }],
                estimated_runtime_seconds: 3600.0,
                ..Default::default()
            }),
            ..Default::default()
        };
        status.admission_seal = seal(key, &tj, &status);
        tj.status = Some(status);
        tj
    }

    #[test]
    fn a_seal_verifies_with_its_key_only() {
        let tj = sealed(&key(1));
        assert!(verify(&key(1), &tj));
        assert!(!verify(&key(2), &tj));
        assert_eq!(tj.status.as_ref().unwrap().admission_seal.as_ref().unwrap().len(), 64);
    }

    #[test]
    fn any_change_to_what_was_decided_breaks_the_seal() {
        let k = key(7);
        type Change = Box<dyn Fn(&mut TrainingJob)>;
        let changes: Vec<Change> = vec![
            Box::new(|j| j.metadata.uid = Some("uid-2".into())),
            Box::new(|j| j.spec.queue_name = "other".into()),
            Box::new(|j| j.spec.replicas = 3),
            Box::new(|j| j.spec.priority = 5),
            Box::new(|j| j.spec.workload.as_mut().unwrap().image = "evil".into()),
            Box::new(|j| j.status.as_mut().unwrap().attempt = Some(2)),
            Box::new(|j| j.status.as_mut().unwrap().placement.as_mut().unwrap().cluster = "ai-3".into()),
            Box::new(|j| j.status.as_mut().unwrap().placement.as_mut().unwrap().accelerator = Some("H800".into())),
            Box::new(|j| j.status.as_mut().unwrap().placement.as_mut().unwrap().gpus = 16),
            Box::new(|j| j.status.as_mut().unwrap().placement.as_mut().unwrap().replicas = Some(4)),
            Box::new(|j| j.status.as_mut().unwrap().admission_seal = Some("00".repeat(32))),
            Box::new(|j| j.status.as_mut().unwrap().admission_seal = Some("zz".into())),
            Box::new(|j| j.status.as_mut().unwrap().admission_seal = None),
        ];
        for (i, change) in changes.iter().enumerate() {
            let mut tj = sealed(&k);
            change(&mut tj);
            assert!(!verify(&k, &tj), "change {i} kept the seal valid");
        }
    }

    #[test]
    fn what_may_change_after_admission_keeps_the_seal() {
        let k = key(3);
        let mut tj = sealed(&k);
        tj.spec.suspend = true;
        tj.spec.on_member_loss = MemberLossPolicy::Wait;
        // The nodes Slurm chose, recorded by the mirror.
        tj.status.as_mut().unwrap().placement.as_mut().unwrap().nodes = vec![
            NodeReplicas { node: "node1".into(), replicas: 1 },
            NodeReplicas { node: "node2".into(), replicas: 1 },
        ];
        let s = tj.status.as_mut().unwrap();
        s.placement.as_mut().unwrap().estimated_runtime_seconds = 1.0;
        s.remote = Some(Default::default());
        assert!(verify(&k, &tj));
    }

    #[test]
    fn an_unsealed_admission_or_a_vanished_queue_is_refused() {
        let k = key(9);
        let cq: ComputeQueue = serde_json::from_value(serde_json::json!({
            "apiVersion": "computenet.io/v1alpha1", "kind": "ComputeQueue", "metadata": {"name": "q"},
            "spec": {"namespaceSelector": {"matchLabels": {"tenant": "a"}}}
        }))
        .unwrap();
        let queues = BTreeMap::from([("q".to_string(), &cq)]);
        let tenant_a = BTreeMap::from([("tenant".to_string(), "a".to_string())]);
        assert_eq!(check(&k, &mut Verified::default(), &sealed(&k), &queues, &tenant_a), Ok(()));
        assert!(check(&key(8), &mut Verified::default(), &sealed(&k), &queues, &tenant_a)
            .unwrap_err()
            .contains("not issued by computenet"));
        assert!(check(&k, &mut Verified::default(), &sealed(&k), &BTreeMap::new(), &tenant_a)
            .unwrap_err()
            .contains("no longer exists"));
        assert!(check(&k, &mut Verified::default(), &sealed(&k), &queues, &BTreeMap::new())
            .unwrap_err()
            .contains("no longer admits"));
        // Once dispatched only the seal is checked: its workload runs and is not moved.
        let mut running = sealed(&k);
        running.status.as_mut().unwrap().remote = Some(Default::default());
        assert_eq!(check(&k, &mut Verified::default(), &running, &BTreeMap::new(), &tenant_a), Ok(()));
    }

    #[test]
    fn a_valid_seal_is_remembered_for_its_resource_version_only() {
        let k = key(4);
        let mut verified = Verified::default();
        let mut tj = sealed(&k);
        tj.metadata.resource_version = Some("10".into());
        assert!(verified.verify(&k, &tj));
        assert_eq!(verified.0.get("uid-1").map(String::as_str), Some("10"));
        // Changed without a new resourceVersion cannot happen in a hub; remembered it is.
        // Changed with one (any write): checked afresh, and the forged spec is refused.
        tj.spec.replicas = 3;
        tj.metadata.resource_version = Some("11".into());
        assert!(!verified.verify(&k, &tj));
        assert!(verified.0.is_empty(), "an invalid seal is not remembered");
        // A wrong key never verifies, remembered or not.
        let fresh = {
            let mut t = sealed(&k);
            t.metadata.resource_version = Some("12".into());
            t
        };
        assert!(!verified.verify(&key(5), &fresh));
        assert!(verified.verify(&k, &fresh));
        // Forgotten once it holds more entries than the hub has jobs: a deleted job's
        // entry lingers at most that long, so memory stays bounded by the jobs.
        let other = Arc::new(TrainingJob {
            metadata: kube::api::ObjectMeta { uid: Some("uid-2".into()), ..Default::default() },
            ..job()
        });
        verified.retain(std::slice::from_ref(&other));
        assert_eq!(verified.0.len(), 1, "not more entries than jobs: left alone");
        verified.0.insert("uid-3".into(), "1".into());
        verified.retain(&[other]);
        assert!(verified.0.is_empty(), "more entries than jobs: the absent ones forgotten");
        verified.retain(&[]);
        assert!(verified.0.is_empty());
    }

    #[test]
    fn keys_are_long_enough_and_never_shown() {
        assert!(AdmissionKey::new(vec![1; KEY_BYTES - 1]).is_none());
        let k = AdmissionKey::random();
        assert_ne!(k.0, AdmissionKey::random().0);
        assert_eq!(format!("{k:?}"), "AdmissionKey(..)");
    }
}

//! Researchers' own job objects in the hub: JobSets, TrainJobs and PyTorchJobs labelled
//! with `computenet.io/queue-name` ([`kinds::QUEUE_LABEL`]). This module owns them and the
//! TrainingJobs computenet makes to queue them ("source" TrainingJobs, `spec.source`):
//!
//! - every labelled object is kept suspended in the hub (the admission webhook suspends it
//!   on create and update; an object that got past it is suspended here): only its copy on
//!   the chosen member runs;
//! - its TrainingJob is created (named [`kinds::shadow_name`], owned by the object, so the
//!   hub's garbage collector deletes it with the object), and kept equal to what the
//!   object says until it is admitted; from then on the spec is frozen, and a dispatch
//!   whose object no longer matches it is refused ([`Sources::target_source`]);
//! - the copy's status on the member is mirrored to the hub object's status, and once the
//!   job is over and mirrored, the copy is deleted from the member;
//! - deleting the object deletes its TrainingJob (the garbage collector, by the owner
//!   reference), whose cleanup deletes the copy. Deleting only the TrainingJob cancels the
//!   job for good: the object is marked [`QUEUED_AS`] once its TrainingJob exists, and a
//!   marked object without one is not queued again. The service never deletes or replaces
//!   a TrainingJob (its role does not allow it). Removing the label later changes nothing.
//!
//! Everything else (quotas, fairness, placement, explanations, dispatch with backoff,
//! member loss, restarts) is the TrainingJob's, unchanged.

use crate::events::EventSink;
use crate::lease;
use computenet_api::conditions::EventReason;
use computenet_api::kinds::{self, JobKind};
use computenet_api::training_job::TrainingJobSpec;
use computenet_api::{view, TrainingJob};
use computenet_core::accelerator::Catalogue;
use computenet_members::kubernetes::copies;
use computenet_members::Members;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{DynamicObject, Patch, PatchParams, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// The runtimes a TrainJob's gang may be read from.
const RUNTIME_KINDS: [(&str, &str); 2] =
    [(kinds::CLUSTER_TRAINING_RUNTIME, "clustertrainingruntimes"), (kinds::TRAINING_RUNTIME, "trainingruntimes")];

/// The objects of the kinds the hub serves (all of them: a TrainingJob's object is found
/// whatever its labels), and the TrainJob runtimes.
#[allow(missing_debug_implementations)] // Client has no Debug.
#[derive(Clone)]
pub struct Sources {
    client: Client,
    objects: Vec<(&'static dyn JobKind, Store<DynamicObject>)>,
    runtimes: Vec<(&'static str, Store<DynamicObject>)>,
    /// Writes under way, by object UID and what: one at a time each.
    in_flight: Arc<Mutex<HashSet<String>>>,
    /// Objects already told that they cannot be queued: the resourceVersion told, by UID.
    reported: Arc<Mutex<HashMap<String, String>>>,
    /// The status last mirrored to each object (a hash), by UID.
    mirrored: Arc<Mutex<HashMap<String, u64>>>,
}

impl Sources {
    /// Finds which kinds the hub serves and watches their objects (and, with TrainJobs, the
    /// runtimes). A kind whose CRD is installed later is seen after a restart.
    pub async fn start(client: Client, changed: Arc<Notify>) -> Self {
        let served = copies::served_kinds(&client, "hub").await;
        let objects: Vec<_> = served
            .iter()
            .map(|kind| {
                let resource = copies::api_resource(*kind);
                let store = computenet_members::kubernetes::cache_dynamic(
                    client.clone(),
                    &resource,
                    watcher::Config::default(),
                    changed.clone(),
                    None,
                    None,
                );
                (*kind, store)
            })
            .collect();
        let mut runtimes = Vec::new();
        if served.iter().any(|k| k.resource().kind == "TrainJob") {
            for (kind, plural) in RUNTIME_KINDS {
                let resource = kube::api::ApiResource {
                    group: kinds::TRAINER_GROUP.into(),
                    version: "v1alpha1".into(),
                    api_version: format!("{}/v1alpha1", kinds::TRAINER_GROUP),
                    kind: kind.into(),
                    plural: plural.into(),
                };
                let store = computenet_members::kubernetes::cache_dynamic(
                    client.clone(),
                    &resource,
                    watcher::Config::default(),
                    changed.clone(),
                    None,
                    None,
                );
                runtimes.push((kind, store));
            }
        }
        let names: Vec<&str> = served.iter().map(|k| k.resource().kind).collect();
        tracing::info!(kinds = ?names, "job kinds queued by the label {}", kinds::QUEUE_LABEL);
        Sources {
            client,
            objects,
            runtimes,
            in_flight: Arc::default(),
            reported: Arc::default(),
            mirrored: Arc::default(),
        }
    }

    /// Waits until every watch has listed once.
    pub async fn listed(&self) {
        let stores = self.objects.iter().map(|(_, s)| s).chain(self.runtimes.iter().map(|(_, s)| s));
        for store in stores {
            let _ = store.wait_until_ready().await;
        }
    }

    /// Whether every watch has listed once (before that, a missing object means nothing).
    fn ready(&self) -> bool {
        use futures::FutureExt;
        let listed = |s: &Store<DynamicObject>| s.wait_until_ready().now_or_never().is_some_and(|r| r.is_ok());
        self.objects.iter().all(|(_, s)| listed(s)) && self.runtimes.iter().all(|(_, s)| listed(s))
    }

    /// The hub object a source TrainingJob queues, as last read (the same UID only).
    pub fn object(&self, tj: &TrainingJob) -> Option<Arc<DynamicObject>> {
        let src = tj.spec.source.as_ref()?;
        let (kind, store) = self.objects.iter().find(|(k, _)| k.resource().kind == src.kind)?;
        let key = ObjectRef::new_with(&src.name, copies::api_resource(*kind)).within(tj.namespace().as_deref()?);
        store.get(&key).filter(|o| o.metadata.uid.as_deref() == Some(src.uid.as_str()))
    }

    /// What the TrainingJob of object `object` of kind `kind` must say.
    pub fn derive(&self, kind: &dyn JobKind, object: &Value, catalogue: &Catalogue) -> Result<TrainingJobSpec, String> {
        let runtime = |k: &str, namespace: Option<&str>, name: &str| -> Option<Value> {
            let (_, store) = self.runtimes.iter().find(|(r, _)| *r == k)?;
            let found = store
                .state()
                .into_iter()
                .find(|r| r.metadata.name.as_deref() == Some(name) && r.metadata.namespace.as_deref() == namespace)?;
            serde_json::to_value(found.as_ref()).ok()
        };
        let groups = kind.gang(object, &runtime).map_err(|e| e.to_string())?;
        let canonical = |raw: &str| catalogue.canonical_name(raw).unwrap_or_else(|| raw.to_string());
        kinds::shadow_spec(kind, object, &groups, &canonical).map_err(|e| e.to_string())
    }

    /// For the dispatch of a source TrainingJob (`None` for others): its hub object, once
    /// it is checked to be the one the TrainingJob was admitted for and to still say what
    /// the TrainingJob says.
    pub fn target_source(&self, tj: &TrainingJob, catalogue: &Catalogue) -> Option<SourceCheck> {
        let src = tj.spec.source.as_ref()?;
        let object = self.object(tj).and_then(|o| serde_json::to_value(o.as_ref()).ok());
        let derive = |value: &Value| match kinds::by_kind(&src.kind) {
            Some(kind) => self.derive(kind, value, catalogue),
            None => Err(format!("{} is not a job kind computenet runs", src.kind)),
        };
        Some(source_check(&tj.spec, self.ready(), object, derive))
    }

    /// One pass: the steps in the module documentation, as background writes.
    pub fn pass(&self, jobs: &[Arc<TrainingJob>], members: &Members, catalogue: &Catalogue, events: &EventSink) {
        if lease::check_write().is_err() || !self.ready() {
            return;
        }
        let by_name: BTreeMap<(&str, &str), &Arc<TrainingJob>> = jobs
            .iter()
            .filter(|j| j.spec.source.is_some())
            .map(|j| {
                (
                    (
                        j.metadata.namespace.as_deref().unwrap_or_default(),
                        j.metadata.name.as_deref().unwrap_or_default(),
                    ),
                    j,
                )
            })
            .collect();
        let mut seen: HashSet<String> = HashSet::new();
        for (kind, store) in &self.objects {
            for object in store.state() {
                let Some(uid) = object.metadata.uid.clone() else { continue };
                seen.insert(uid.clone());
                let namespace = object.namespace().unwrap_or_default();
                let name = kinds::shadow_name(kind.resource().kind, &object.name_any());
                let queued_by = by_name.get(&(namespace.as_str(), name.as_str()));
                let labelled = object.labels().contains_key(kinds::QUEUE_LABEL);
                let ours = queued_by.is_some_and(|tj| tj.spec.source.as_ref().is_some_and(|s| s.uid == uid));
                if !labelled && !ours {
                    continue; // not computenet's
                }
                let Ok(value) = serde_json::to_value(object.as_ref()) else { continue };
                self.keep_suspended(*kind, &object, &value, &uid);
                let queued_before = object.annotations().contains_key(QUEUED_AS);
                match queued_by {
                    // Its TrainingJob was deleted (to cancel the job): not queued again.
                    None if queued_before => self.report(&object, *kind, DELETED, events),
                    None => match self.derive(*kind, &value, catalogue) {
                        Ok(spec) => self.create(&object, *kind, name, spec, &uid),
                        Err(why) => self.report(&object, *kind, &why, events),
                    },
                    Some(tj) => {
                        if !queued_before && ours {
                            self.mark_queued(*kind, &object, &name, &uid);
                        }
                        self.follow(*kind, &object, &value, tj, members, catalogue, events)
                    }
                }
            }
        }
        // What is kept per object goes with it.
        self.reported.lock().unwrap_or_else(|p| p.into_inner()).retain(|uid, _| seen.contains(uid));
        self.mirrored.lock().unwrap_or_else(|p| p.into_inner()).retain(|uid, _| seen.contains(uid));
    }

    /// An object that got past the webhook is suspended.
    fn keep_suspended(&self, kind: &dyn JobKind, object: &DynamicObject, value: &Value, uid: &str) {
        if kind.suspended(value) {
            return;
        }
        let api = self.api(kind, object);
        let name = object.name_any();
        let mut patch = kind.suspend_patch(true);
        // The UID makes the patch fail on a new object of the same name.
        patch["metadata"] = json!({"uid": uid});
        self.spawn(format!("{uid}/suspend"), async move {
            api.patch(&name, &PatchParams::default(), &Patch::Merge(patch)).await.map(|_| ())
        });
    }

    /// Marks the object as queued by its TrainingJob `name` ([`QUEUED_AS`]).
    fn mark_queued(&self, kind: &dyn JobKind, object: &DynamicObject, name: &str, uid: &str) {
        let api = self.api(kind, object);
        let object_name = object.name_any();
        let patch = json!({"metadata": {"uid": uid, "annotations": {QUEUED_AS: name}}});
        self.spawn(format!("{uid}/mark"), async move {
            api.patch(&object_name, &PatchParams::default(), &Patch::Merge(patch)).await.map(|_| ())
        });
    }

    /// Creates the object's TrainingJob.
    fn create(&self, object: &DynamicObject, kind: &dyn JobKind, name: String, spec: TrainingJobSpec, uid: &str) {
        let namespace = object.namespace().unwrap_or_default();
        let r = kind.resource();
        let tj = json!({
            "apiVersion": "computenet.io/v1alpha1",
            "kind": "TrainingJob",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": {SOURCE_KIND: r.kind},
                "ownerReferences": [{"apiVersion": r.api_version(), "kind": r.kind, "name": object.name_any(),
                                     "uid": uid, "controller": true}]
            },
            "spec": spec,
        });
        let api: Api<TrainingJob> = Api::namespaced(self.client.clone(), &namespace);
        self.spawn(format!("{uid}/create"), async move {
            let tj: TrainingJob = serde_json::from_value(tj).map_err(kube::Error::SerdeError)?;
            match api.create(&PostParams::default(), &tj).await {
                // Made by an earlier pass whose answer was lost: the cache shows it soon.
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
                other => other.map(|_| ()),
            }
        });
    }

    /// Keeps the TrainingJob equal to its object until admission; mirrors the copy's
    /// status to the object; removes the copy once the job is over and mirrored.
    #[allow(clippy::too_many_arguments)]
    fn follow(
        &self,
        kind: &dyn JobKind,
        object: &DynamicObject,
        value: &Value,
        tj: &Arc<TrainingJob>,
        members: &Members,
        catalogue: &Catalogue,
        events: &EventSink,
    ) {
        let uid = object.metadata.uid.clone().unwrap_or_default();
        if tj.spec.source.as_ref().is_some_and(|s| s.uid != uid) {
            // The TrainingJob of an earlier object of this name: the garbage collector
            // removes it; the new object's is made after.
            return;
        }
        if !view::is_admitted(tj) && tj.metadata.deletion_timestamp.is_none() {
            match self.derive(kind, value, catalogue) {
                Ok(spec) if !same_job(&spec, &tj.spec) => {
                    let wanted =
                        TrainingJobSpec { suspend: tj.spec.suspend, on_member_loss: tj.spec.on_member_loss, ..spec };
                    let Some(patch) = spec_patch(tj, &wanted) else { return };
                    let api: Api<TrainingJob> =
                        Api::namespaced(self.client.clone(), &tj.namespace().unwrap_or_default());
                    let name = tj.name_any();
                    self.spawn(format!("{uid}/update"), async move {
                        api.patch(&name, &PatchParams::default(), &Patch::Merge(patch)).await.map(|_| ())
                    });
                }
                Ok(_) => {}
                Err(why) => self.report(object, kind, &why, events),
            }
            return;
        }
        let status = view::status(tj);
        let Some(placement) = status.placement.as_ref() else { return };
        let Some(computenet_members::Member::Kubernetes(member)) = members.get(&placement.cluster) else { return };
        // Only source TrainingJobs are followed (`pass` picks them).
        let Some(src) = tj.spec.source.as_ref() else { return };
        let Some(copy) = member.copy(&tj.namespace().unwrap_or_default(), view::uid(tj), &src.kind, &src.name) else {
            return;
        };
        let copied = copy.data.get("status").cloned().unwrap_or(Value::Null);
        let hub_status = value.get("status").cloned().unwrap_or(Value::Null);
        let last = self.mirrored.lock().unwrap_or_else(|p| p.into_inner()).get(&uid).copied();
        let finished_for_s = view::is_finished(tj).then(|| {
            let at = status.completion_time.as_ref().map_or(0, |t| t.0.as_second());
            k8s_openapi::jiff::Timestamp::now().as_second() - at
        });
        match mirror_step(&copied, &hub_status, last, finished_for_s) {
            MirrorStep::Wait => {}
            MirrorStep::Write { status, hash } => {
                let api = self.api(kind, object);
                let name = object.name_any();
                let mirrored = self.mirrored.clone();
                let key = uid.clone();
                self.spawn(format!("{uid}/status"), async move {
                    // The UID makes the patch fail on a new object of the same name.
                    let patch = Patch::Merge(json!({"metadata": {"uid": key}, "status": status}));
                    api.patch_status(&name, &PatchParams::default(), &patch).await?;
                    mirrored.lock().unwrap_or_else(|p| p.into_inner()).insert(key, hash);
                    Ok(())
                });
            }
            MirrorStep::Clean if copy.metadata.deletion_timestamp.is_none() => {
                let member = member.clone();
                let (tenant, job_uid) = (tj.namespace().unwrap_or_default(), view::uid(tj).to_string());
                let (kind, name, copy_uid) = (src.kind.clone(), src.name.clone(), copy.metadata.uid.clone());
                self.spawn(format!("{uid}/clean"), async move {
                    member
                        .delete_copy(&tenant, &job_uid, &kind, &name, copy_uid.as_deref(), None)
                        .await
                        .map_err(|e| kube::Error::Service(e.to_string().into()))
                });
            }
            MirrorStep::Clean => {}
        }
    }

    /// A Warning Event on an object that cannot be queued, once per resourceVersion.
    fn report(&self, object: &DynamicObject, kind: &dyn JobKind, why: &str, events: &EventSink) {
        let uid = object.metadata.uid.clone().unwrap_or_default();
        let version = object.resource_version().unwrap_or_default();
        if self.reported.lock().unwrap_or_else(|p| p.into_inner()).insert(uid, version.clone()).as_ref()
            == Some(&version)
        {
            return;
        }
        tracing::warn!(kind = kind.resource().kind, object = %object.name_any(), %why, "cannot queue");
        let about = ObjectReference {
            api_version: Some(kind.resource().api_version()),
            kind: Some(kind.resource().kind.to_string()),
            name: object.metadata.name.clone(),
            namespace: object.metadata.namespace.clone(),
            uid: object.metadata.uid.clone(),
            ..ObjectReference::default()
        };
        events.publish_about(about, EventReason::InvalidObject, format!("computenet cannot queue this object: {why}"));
    }

    fn api(&self, kind: &dyn JobKind, object: &DynamicObject) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), &object.namespace().unwrap_or_default(), &copies::api_resource(kind))
    }

    /// Runs `write` in the background unless a write under `key` is under way.
    fn spawn(&self, key: String, write: impl std::future::Future<Output = Result<(), kube::Error>> + Send + 'static) {
        if !self.in_flight.lock().unwrap_or_else(|p| p.into_inner()).insert(key.clone()) {
            return;
        }
        let in_flight = self.in_flight.clone();
        tokio::spawn(async move {
            if let Err(e) = write.await {
                tracing::warn!(%key, error = %e, "write for a queued job object failed; retried next pass");
            }
            in_flight.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
        });
    }
}

/// Largest status mirrored from a member as it is; a larger one is mirrored as its
/// conditions only (a hostile member cannot fill the hub).
pub const MAX_MIRRORED_STATUS_BYTES: usize = 64 * 1024;

/// A finished job's copy is deleted this long after the job ended even when its status
/// could not be mirrored.
pub const CLEAN_UNMIRRORED_AFTER_S: i64 = 600;

/// What to do about a copy's status.
#[derive(Debug, Clone, PartialEq)]
pub enum MirrorStep {
    /// Nothing now.
    Wait,
    /// Write `status` into the hub object's (a merge patch: keys it lacks are null);
    /// `hash` identifies what was written.
    Write { status: Value, hash: u64 },
    /// The job is over and its status mirrored: delete the copy.
    Clean,
}

/// Decides the mirror of a copy's status `copied` to the hub object, whose status is
/// `hub`; `last` is the hash of the last status this process wrote for it (a hub that
/// prunes fields the member sets never shows it equal), `finished_for_s` how long ago the
/// job ended. Bounded: see [`MAX_MIRRORED_STATUS_BYTES`].
pub fn mirror_step(copied: &Value, hub: &Value, last: Option<u64>, finished_for_s: Option<i64>) -> MirrorStep {
    let bounded = bounded_status(copied);
    let hash = {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        bounded.to_string().hash(&mut h);
        h.finish()
    };
    let in_sync = bounded.is_null() || bounded == *hub || last == Some(hash);
    if !in_sync {
        if finished_for_s.is_some_and(|s| s > CLEAN_UNMIRRORED_AFTER_S) {
            return MirrorStep::Clean;
        }
        let mut status = bounded;
        null_missing(hub, &mut status);
        return MirrorStep::Write { status, hash };
    }
    match finished_for_s {
        Some(_) => MirrorStep::Clean,
        None => MirrorStep::Wait,
    }
}

/// The status as mirrored: whole, or its conditions only when too large, or nothing.
fn bounded_status(copied: &Value) -> Value {
    let size = |v: &Value| serde_json::to_vec(v).map_or(usize::MAX, |b| b.len());
    if copied.is_null() || size(copied) <= MAX_MIRRORED_STATUS_BYTES {
        return copied.clone();
    }
    let conditions = json!({"conditions": copied.get("conditions").cloned().unwrap_or(Value::Null)});
    if size(&conditions) <= MAX_MIRRORED_STATUS_BYTES {
        conditions
    } else {
        Value::Null
    }
}

/// Whether a source TrainingJob's object may be copied to its member now.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceCheck {
    /// Yes: this is the object to copy.
    Ready(Value),
    /// Never: why (the dispatch is refused and the job fails).
    Refused(String),
    /// Not yet: the hub's caches have not listed (the dispatch waits for a later pass).
    NotYet,
}

/// Whether the object a source TrainingJob with spec `spec` queues may be copied now:
/// `listed` whether the hub's caches have listed (before that a missing object means
/// nothing), `object` the object as read, `derive` what a TrainingJob of it must say.
pub fn source_check(
    spec: &TrainingJobSpec,
    listed: bool,
    object: Option<Value>,
    derive: impl FnOnce(&Value) -> Result<TrainingJobSpec, String>,
) -> SourceCheck {
    let Some(src) = spec.source.as_ref() else {
        return SourceCheck::Refused("the TrainingJob names no source object".into());
    };
    if !listed {
        return SourceCheck::NotYet;
    }
    let Some(value) = object else {
        return SourceCheck::Refused(format!("{} {} is no longer in the hub", src.kind, src.name));
    };
    match derive(&value) {
        Ok(derived) if same_job(&derived, spec) => SourceCheck::Ready(value),
        Ok(_) => SourceCheck::Refused(format!(
            "{} {} changed after it was admitted (or its TrainingJob was written by someone else): \
             create it anew to queue the new version",
            src.kind, src.name
        )),
        Err(e) => SourceCheck::Refused(format!("{} {}: {e}", src.kind, src.name)),
    }
}

/// A JSON merge patch that makes `tj`'s spec `wanted`, guarded by `tj`'s resourceVersion
/// (a TrainingJob admitted meanwhile is left alone: the patch fails with a conflict).
/// Fields `wanted` lacks are removed (null).
pub fn spec_patch(tj: &TrainingJob, wanted: &TrainingJobSpec) -> Option<Value> {
    let mut new = serde_json::to_value(wanted).ok()?;
    let old = serde_json::to_value(&tj.spec).ok()?;
    null_missing(&old, &mut new);
    Some(json!({"metadata": {"resourceVersion": tj.metadata.resource_version}, "spec": new}))
}

/// Sets to null every key of `old` that `new` lacks, recursively through objects.
fn null_missing(old: &Value, new: &mut Value) {
    let (Some(old), Some(new)) = (old.as_object(), new.as_object_mut()) else { return };
    for (key, value) in old {
        match new.get_mut(key) {
            None => {
                new.insert(key.clone(), Value::Null);
            }
            Some(n) => null_missing(value, n),
        }
    }
}

/// The annotation on an object whose TrainingJob computenet made (its name): when that
/// TrainingJob is deleted, the object is not queued again.
pub const QUEUED_AS: &str = "computenet.io/queued-as";

/// Why an object with [`QUEUED_AS`] and no TrainingJob is not queued.
const DELETED: &str = "its TrainingJob was deleted, so it is not queued again: delete the object, or remove \
                       its annotation computenet.io/queued-as to queue it anew";

/// The label on a source TrainingJob naming its object's kind.
pub const SOURCE_KIND: &str = "computenet.io/source-kind";

/// Whether two specs describe the same job: all but what a user may change on the
/// TrainingJob itself (`suspend`, `onMemberLoss`).
pub fn same_job(derived: &TrainingJobSpec, actual: &TrainingJobSpec) -> bool {
    let mut a = actual.clone();
    a.suspend = derived.suspend;
    a.on_member_loss = derived.on_member_loss;
    *derived == a
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A source TrainingJob's spec: 4 x 8 GPUs queuing JobSet js (UID u1).
    fn source_spec() -> TrainingJobSpec {
        serde_json::from_value(json!({
            "queueName": "q", "replicas": 4, "resources": {"cpu": "8", "memory": "64Gi", "accelerators": {"count": 8}},
            "source": {"apiVersion": "jobset.x-k8s.io/v1alpha2", "kind": "JobSet", "name": "js", "uid": "u1"}
        }))
        .expect("a valid spec")
    }

    #[test]
    fn suspend_and_member_loss_may_differ_nothing_else() {
        let spec = source_spec();
        let mut user = spec.clone();
        user.suspend = true;
        user.on_member_loss = computenet_api::training_job::MemberLossPolicy::Wait;
        assert!(same_job(&spec, &user));
        // The patch that makes a TrainingJob say what its object says drops what it should not have.
        let mut tj = TrainingJob::new("jobset-js", forged_spec(&spec));
        tj.metadata.resource_version = Some("7".into());
        let patch = spec_patch(&tj, &spec).unwrap();
        assert_eq!(patch["metadata"]["resourceVersion"], "7");
        assert_eq!(patch["spec"]["replicas"], 4);
        assert_eq!(patch["spec"]["maxRunSeconds"], Value::Null);
        let mut forged = spec.clone();
        forged.replicas = 1;
        assert!(!same_job(&spec, &forged));
        let mut other = spec.clone();
        other.source.as_mut().unwrap().uid = "u2".into();
        assert!(!same_job(&spec, &other));
    }

    #[test]
    fn a_source_is_copied_only_when_listed_present_and_described_exactly() {
        let spec = source_spec();
        let object = json!({"metadata": {"name": "js", "uid": "u1"}});
        let same = |_: &Value| Ok(spec.clone());
        // Before the caches list (a restart, a new leader): wait, even with no object seen.
        assert_eq!(source_check(&spec, false, None, same), SourceCheck::NotYet);
        assert_eq!(source_check(&spec, true, Some(object.clone()), same), SourceCheck::Ready(object.clone()));
        let gone = source_check(&spec, true, None, same);
        assert!(matches!(&gone, SourceCheck::Refused(why) if why.contains("no longer in the hub")), "{gone:?}");
        let bigger = |_: &Value| Ok(TrainingJobSpec { replicas: 8, ..spec.clone() });
        let changed = source_check(&spec, true, Some(object.clone()), bigger);
        assert!(
            matches!(&changed, SourceCheck::Refused(why) if why.contains("written by someone else")),
            "{changed:?}"
        );
        let broken = source_check(&spec, true, Some(object), |_: &Value| Err("spec.replicatedJobs: missing".into()));
        assert!(
            matches!(&broken, SourceCheck::Refused(why) if why.ends_with("spec.replicatedJobs: missing")),
            "{broken:?}"
        );
    }

    #[test]
    fn the_mirror_writes_what_differs_then_cleans_up_once_in_sync() {
        let hub = json!({"conditions": [{"type": "Running"}], "replicaStatuses": {"Worker": {"active": 3}}});
        let done = json!({"conditions": [{"type": "Succeeded"}], "replicaStatuses": {"Worker": {}}});
        let MirrorStep::Write { status, hash } = mirror_step(&done, &hub, None, None) else { panic!("a write") };
        // Keys the member's controller dropped go from the hub too.
        assert_eq!(status["replicaStatuses"]["Worker"]["active"], Value::Null);
        assert_eq!(status["conditions"], done["conditions"]);
        // Written once (a hub that prunes fields never shows it equal): not again; and once
        // the job is over, the copy goes.
        assert_eq!(mirror_step(&done, &hub, Some(hash), None), MirrorStep::Wait);
        assert_eq!(mirror_step(&done, &hub, Some(hash), Some(1)), MirrorStep::Clean);
        assert_eq!(mirror_step(&done, &done, None, Some(1)), MirrorStep::Clean);
        // Never mirrored (the hub refuses it): cleaned up after a while anyway.
        assert!(matches!(mirror_step(&done, &hub, None, Some(60)), MirrorStep::Write { .. }));
        assert_eq!(mirror_step(&done, &hub, None, Some(CLEAN_UNMIRRORED_AFTER_S + 1)), MirrorStep::Clean);
        // No status on the copy yet: nothing to write.
        assert_eq!(mirror_step(&Value::Null, &hub, None, None), MirrorStep::Wait);
    }

    #[test]
    fn a_huge_status_is_mirrored_as_its_conditions_only() {
        let junk = "x".repeat(MAX_MIRRORED_STATUS_BYTES);
        let copied = json!({"conditions": [{"type": "Completed", "status": "True"}], "junk": junk});
        let MirrorStep::Write { status, .. } = mirror_step(&copied, &Value::Null, None, None) else { panic!() };
        assert_eq!(status, json!({"conditions": [{"type": "Completed", "status": "True"}]}));
        let all_junk = json!({"conditions": [{"message": junk}]});
        assert_eq!(mirror_step(&all_junk, &Value::Null, None, Some(1)), MirrorStep::Clean, "nothing mirrorable");
    }

    fn forged_spec(spec: &TrainingJobSpec) -> TrainingJobSpec {
        TrainingJobSpec { replicas: 1, max_run_seconds: Some(60), ..spec.clone() }
    }
}

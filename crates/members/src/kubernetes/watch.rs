//! Watches into typed caches that survive objects they cannot decode.
//!
//! kube's typed watcher decodes a LIST page as a whole: one stored object that does not
//! fit the Rust type (written under an older, looser schema, or by hand) fails every
//! list, and the cache never fills. So the watch decodes each object on its own, from its
//! own text ([`Lenient`]), and feeds only the decoded ones into an ordinary kube
//! [`Store`]: the rest of the service reads typed objects as before. An object that does
//! not decode is left out and recorded in [`Undecodables`] (logged once per
//! resourceVersion; the owner of the registry may also report it, e.g. as an Event); when
//! it is fixed or deleted it leaves the registry.

use futures::StreamExt;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{ApiResource, DynamicObject};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

use super::touched::Touched;

/// An object a watch could not decode, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Undecodable {
    /// Kind, apiVersion, namespace, name, uid and resourceVersion, as far as readable.
    pub object: ObjectReference,
    /// The decode error, naming the field (`spec.replicas: invalid type: ...`).
    pub error: String,
}

/// (kind, namespace, name): one object.
type Key = (String, String, String);

fn key(kind: &str, namespace: Option<&str>, name: Option<&str>) -> Key {
    (kind.to_string(), namespace.unwrap_or_default().to_string(), name.unwrap_or_default().to_string())
}

type Report = Arc<dyn Fn(&Undecodable) + Send + Sync>;

/// The objects the watches sharing this registry left out, by kind.
#[derive(Clone, Default)]
pub struct Undecodables {
    objects: Arc<Mutex<BTreeMap<Key, Undecodable>>>,
    report: Option<Report>,
}

impl Debug for Undecodables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Undecodables").field("counts", &self.counts()).finish_non_exhaustive()
    }
}

impl Undecodables {
    /// A registry that calls `report` once for each new undecodable object version.
    pub fn reporting(report: impl Fn(&Undecodable) + Send + Sync + 'static) -> Self {
        Self { objects: Arc::default(), report: Some(Arc::new(report)) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<Key, Undecodable>> {
        self.objects.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records an undecodable object; logs and reports it unless this version was
    /// recorded already (every relist sees it again).
    pub fn record(&self, u: Undecodable) {
        let o = &u.object;
        let k = key(o.kind.as_deref().unwrap_or_default(), o.namespace.as_deref(), o.name.as_deref());
        let new = {
            let mut objects = self.lock();
            let seen = objects.get(&k).is_some_and(|old| old.object.resource_version == o.resource_version);
            objects.insert(k, u.clone());
            !seen
        };
        if new {
            tracing::warn!(
                kind = ?u.object.kind, namespace = ?u.object.namespace, name = ?u.object.name,
                resource_version = ?u.object.resource_version, error = %u.error,
                "object left out of the cache: it does not decode"
            );
            if let Some(report) = &self.report {
                report(&u);
            }
        }
    }

    /// The object decodes again, or is gone.
    pub fn forget(&self, kind: &str, namespace: Option<&str>, name: Option<&str>) {
        self.lock().remove(&key(kind, namespace, name));
    }

    /// After a full list: objects of `kind` that were not in it are gone.
    fn keep_only(&self, kind: &str, listed: &BTreeSet<Key>) {
        self.lock().retain(|k, _| k.0 != kind || listed.contains(k));
    }

    /// Undecodable objects by kind.
    pub fn counts(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for (kind, _, _) in self.lock().keys() {
            *counts.entry(kind.clone()).or_default() += 1;
        }
        counts
    }

    /// Every undecodable object, in (kind, namespace, name) order.
    pub fn objects(&self) -> Vec<Undecodable> {
        self.lock().values().cloned().collect()
    }
}

/// What is readable of an object that did not decode.
fn reference(metadata: &ObjectMeta, kind: &str, api_version: &str) -> ObjectReference {
    ObjectReference {
        api_version: Some(api_version.to_string()),
        kind: Some(kind.to_string()),
        namespace: metadata.namespace.clone(),
        name: metadata.name.clone(),
        uid: metadata.uid.clone(),
        resource_version: metadata.resource_version.clone(),
        field_path: None,
    }
}

/// One object as a watch received it: decoded as `K` straight from its JSON, or, when it
/// does not fit `K`, what is readable of its metadata and why. The watch reads objects
/// of this type, so that one object that does not decode cannot fail a whole LIST page.
#[derive(Clone, Debug)]
pub enum Lenient<K> {
    Decoded(K),
    /// The readable metadata, and the decode error naming the field.
    Undecodable(Box<(ObjectMeta, String)>),
}

impl<K: DeserializeOwned + Resource> Lenient<K> {
    /// Decodes one object's JSON, leaving its managedFields out: nothing reads them, and on
    /// an object written by several managers they are most of its size (decoding them was
    /// a tenth of the service's CPU in a burst). `json` is one JSON value, as the watch
    /// hands it over (serde_json has read it as a `RawValue`, so it is valid JSON); text
    /// that is not JSON only decodes if what is wrong with it is in its managedFields,
    /// which are cut out unread. An object without a name does not decode: kube's store
    /// keys objects by name and would stop the watch on one (no API server sends it).
    pub fn from_json(json: &str) -> Self {
        let stripped = without_managed_fields(json);
        let json = stripped.as_deref().unwrap_or(json);
        match serde_json::from_str::<K>(json) {
            Ok(mut k) => {
                // Text whose outline does not read (duplicate keys) is decoded as it is:
                // its managedFields are dropped here, so no decoded object carries them.
                k.meta_mut().managed_fields = None;
                if k.meta().name.is_none() {
                    return Self::Undecodable(Box::new((k.meta().clone(), "metadata.name: missing".into())));
                }
                Self::Decoded(k)
            }
            // Decoded again to name the field: only for objects that do not fit.
            Err(_) => {
                let error =
                    match serde_path_to_error::deserialize::<_, K>(&mut serde_json::Deserializer::from_str(json)) {
                        Ok(_) => "does not decode".to_string(),
                        Err(e) => {
                            let path = e.path().to_string();
                            if path == "." {
                                e.inner().to_string()
                            } else {
                                format!("{path}: {}", e.inner())
                            }
                        }
                    };
                Self::Undecodable(Box::new((readable_metadata(json), error)))
            }
        }
    }
}

impl<'de, K: DeserializeOwned + Resource> serde::Deserialize<'de> for Lenient<K> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // The object's own text, copied out of the event or list: kube reads both with
        // serde_json, which hands it over as it is.
        let raw = Box::<serde_json::value::RawValue>::deserialize(deserializer)?;
        Ok(Self::from_json(raw.get()))
    }
}

impl<K: Resource<DynamicType = ()>> Resource for Lenient<K> {
    type DynamicType = ();
    // As for DynamicObject: the watch builds its Api with `namespaced_with` / `all_with`.
    type Scope = kube::core::DynamicResourceScope;

    fn kind(dt: &()) -> std::borrow::Cow<'_, str> {
        K::kind(dt)
    }
    fn group(dt: &()) -> std::borrow::Cow<'_, str> {
        K::group(dt)
    }
    fn version(dt: &()) -> std::borrow::Cow<'_, str> {
        K::version(dt)
    }
    fn plural(dt: &()) -> std::borrow::Cow<'_, str> {
        K::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        match self {
            Self::Decoded(k) => k.meta(),
            Self::Undecodable(bad) => &bad.0,
        }
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        match self {
            Self::Decoded(k) => k.meta_mut(),
            Self::Undecodable(bad) => &mut bad.0,
        }
    }
}

/// `json` with the value of its `metadata.managedFields` replaced by `null`; None when it
/// has none, or when its outline does not read (then it is decoded as it is).
fn without_managed_fields(json: &str) -> Option<String> {
    let (start, end) = match scan::managed_fields(json.as_bytes()) {
        scan::Found::At(start, end) => (start, end),
        scan::Found::Nothing => return None,
        scan::Found::Unsure => outline_managed_fields(json)?,
    };
    let mut out = String::with_capacity(json.len() - (end - start) + 4);
    out.push_str(json.get(..start)?);
    out.push_str("null");
    out.push_str(json.get(end..)?);
    Some(out)
}

/// Where `metadata.managedFields`' value is in `json`, by serde (keys spelt with escapes,
/// text that is not JSON): None when there is none, or the outline does not read.
fn outline_managed_fields(json: &str) -> Option<(usize, usize)> {
    #[derive(serde::Deserialize)]
    struct Outline<'a> {
        #[serde(borrow)]
        metadata: Option<MetadataOutline<'a>>,
    }
    #[derive(serde::Deserialize)]
    struct MetadataOutline<'a> {
        #[serde(borrow, rename = "managedFields")]
        managed_fields: Option<&'a serde_json::value::RawValue>,
    }
    let outline: Outline<'_> = serde_json::from_str(json).ok()?;
    let fields = outline.metadata?.managed_fields?.get();
    // The value is a slice of `json` (borrowed, not copied): where it starts is where
    // its pointer is. Checked, so that nothing but that slice is ever cut out.
    let start = (fields.as_ptr() as usize).checked_sub(json.as_ptr() as usize)?;
    let end = start.checked_add(fields.len())?;
    if json.get(start..end)? != fields {
        return None;
    }
    Some((start, end))
}

/// Finding `metadata.managedFields` by reading the text byte by byte instead of with serde:
/// the outline (serde skipping everything else) was about a thirtieth of the service's CPU
/// in a burst, a quarter of all the decoding. It answers for JSON whose keys are written
/// without escapes (as API servers write them) and leaves the rest to serde: any key with
/// a backslash, a key written twice where it matters, or text it cannot follow is
/// [`Found::Unsure`]. It checks the structure (strings, brackets, separators), not every
/// value: the object's decoder reads the text afterwards, all but the value cut out.
mod scan {
    #[derive(Debug, PartialEq)]
    pub enum Found {
        /// The value's byte range (not `null`).
        At(usize, usize),
        /// None (or `null`), or `metadata` is not an object.
        Nothing,
        /// Left to serde.
        Unsure,
    }

    struct Reader<'a> {
        text: &'a [u8],
        at: usize,
    }

    impl Reader<'_> {
        fn spaces(&mut self) {
            while matches!(self.text.get(self.at), Some(b' ' | b'\t' | b'\n' | b'\r')) {
                self.at += 1;
            }
        }

        fn byte(&mut self) -> Option<u8> {
            self.spaces();
            self.text.get(self.at).copied()
        }

        /// A string at the cursor, its contents' range; whether it holds an escape.
        fn string(&mut self) -> Option<(usize, usize, bool)> {
            if self.byte()? != b'"' {
                return None;
            }
            let start = self.at + 1;
            let mut i = start;
            let mut escaped = false;
            loop {
                match *self.text.get(i)? {
                    b'"' => break,
                    b'\\' => {
                        escaped = true;
                        i += 2;
                    }
                    _ => i += 1,
                }
            }
            self.at = i + 1;
            Some((start, i, escaped))
        }

        /// Past one value; its range.
        fn value(&mut self) -> Option<(usize, usize)> {
            let start = match self.byte()? {
                b'"' => return self.string().map(|(s, e, _)| (s - 1, e + 1)),
                b'{' | b'[' => self.at,
                _ => {
                    let start = self.at;
                    while !matches!(
                        self.text.get(self.at),
                        None | Some(b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')
                    ) {
                        self.at += 1;
                    }
                    return (self.at > start).then_some((start, self.at));
                }
            };
            let mut depth = 0usize;
            loop {
                match *self.text.get(self.at)? {
                    b'"' => {
                        self.string()?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            self.at += 1;
                            return Some((start, self.at));
                        }
                    }
                    _ => {}
                }
                self.at += 1;
            }
        }

        /// The entries of the object at the cursor: `on_entry(key, value_range)` for each,
        /// the reader then past the value. None when the text does not follow, or a key
        /// holds an escape.
        fn object(&mut self, mut on_entry: impl FnMut(&[u8], &mut Self) -> Option<()>) -> Option<()> {
            if self.byte()? != b'{' {
                return None;
            }
            self.at += 1;
            if self.byte()? == b'}' {
                self.at += 1;
                return Some(());
            }
            loop {
                let (start, end, escaped) = self.string()?;
                if escaped || self.byte()? != b':' {
                    return None;
                }
                self.at += 1;
                let text = self.text;
                on_entry(&text[start..end], self)?;
                match self.byte()? {
                    b',' => self.at += 1,
                    b'}' => {
                        self.at += 1;
                        return Some(());
                    }
                    _ => return None,
                }
            }
        }
    }

    /// Where the top-level object's `metadata.managedFields` value is.
    pub fn managed_fields(text: &[u8]) -> Found {
        let mut reader = Reader { text, at: 0 };
        let mut metadata_seen = false;
        let mut found = Found::Nothing;
        let read = reader.object(|key, r| {
            if key != b"metadata" {
                return r.value().map(|_| ());
            }
            if std::mem::replace(&mut metadata_seen, true) {
                return None; // twice: serde's to judge
            }
            match r.byte()? {
                b'{' => {}
                // serde reads a struct from a list too: its to judge.
                b'[' => return None,
                _ => return r.value().map(|_| ()),
            }
            let mut fields_seen = false;
            r.object(|key, r| {
                let (start, end) = r.value()?;
                if key == b"managedFields" {
                    if std::mem::replace(&mut fields_seen, true) {
                        return None;
                    }
                    if &r.text[start..end] != b"null" {
                        found = Found::At(start, end);
                    }
                }
                Some(())
            })
        });
        reader.spaces();
        match read {
            Some(()) if reader.at == text.len() => found,
            _ => Found::Unsure,
        }
    }
}

/// The name, namespace, uid and resourceVersion of an object that did not decode, each as
/// far as it reads on its own: one field of the wrong type does not hide the others (the
/// watch needs the resourceVersion to go on without listing again). Only for objects that
/// do not decode, so read as a JSON tree.
fn readable_metadata(json: &str) -> ObjectMeta {
    let object = serde_json::from_str::<serde_json::Value>(json).unwrap_or_default();
    let field =
        |name: &str| object.get("metadata").and_then(|m| m.get(name)).and_then(|v| v.as_str()).map(String::from);
    ObjectMeta {
        name: field("name"),
        namespace: field("namespace"),
        uid: field("uid"),
        resource_version: field("resourceVersion"),
        ..ObjectMeta::default()
    }
}

/// Turns watch events of [`Lenient`] objects into events of `K` for a store, leaving out
/// (and recording) objects that do not decode. Pure but for the registry.
#[derive(Debug)]
pub struct Decoder {
    kind: String,
    api_version: String,
    undecodables: Undecodables,
    /// Objects of the list in progress, decodable or not.
    listed: BTreeSet<Key>,
}

impl Decoder {
    /// A decoder for objects of `resource`, recording into `undecodables`.
    pub fn new(resource: &ApiResource, undecodables: Undecodables) -> Self {
        Self {
            kind: resource.kind.clone(),
            api_version: resource.api_version.clone(),
            undecodables,
            listed: BTreeSet::new(),
        }
    }

    /// The object as `K`, or (recorded as undecodable) its metadata.
    fn typed<K: Resource>(&self, obj: Lenient<K>) -> Result<K, Box<ObjectMeta>> {
        match obj {
            Lenient::Decoded(k) => {
                let m = k.meta();
                self.undecodables.forget(&self.kind, m.namespace.as_deref(), m.name.as_deref());
                Ok(k)
            }
            Lenient::Undecodable(bad) => {
                let (metadata, error) = *bad;
                let object = reference(&metadata, &self.kind, &self.api_version);
                self.undecodables.record(Undecodable { object, error });
                Err(Box::new(metadata))
            }
        }
    }

    /// The store's event for one watch event; `cached` looks up the store's current
    /// object, so that an object that stops decoding (or is deleted while undecodable)
    /// leaves the store instead of staying at its last good version.
    pub fn event<K>(
        &mut self,
        event: watcher::Event<Lenient<K>>,
        cached: impl Fn(&ObjectRef<K>) -> Option<Arc<K>>,
    ) -> Option<watcher::Event<K>>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned,
    {
        let object_ref = |m: &ObjectMeta| {
            let r = ObjectRef::<K>::new(m.name.as_deref().unwrap_or_default());
            match m.namespace.as_deref() {
                Some(ns) => r.within(ns),
                None => r,
            }
        };
        match event {
            watcher::Event::Init => {
                self.listed.clear();
                Some(watcher::Event::Init)
            }
            watcher::Event::InitApply(obj) => {
                let m = obj.meta();
                self.listed.insert(key(&self.kind, m.namespace.as_deref(), m.name.as_deref()));
                self.typed(obj).ok().map(watcher::Event::InitApply)
            }
            watcher::Event::InitDone => {
                self.undecodables.keep_only(&self.kind, &self.listed);
                self.listed.clear();
                Some(watcher::Event::InitDone)
            }
            watcher::Event::Apply(obj) => match self.typed(obj) {
                Ok(k) => Some(watcher::Event::Apply(k)),
                Err(m) => cached(&object_ref(&m)).map(|old| watcher::Event::Delete(K::clone(&old))),
            },
            watcher::Event::Delete(obj) => {
                let m = obj.meta();
                self.undecodables.forget(&self.kind, m.namespace.as_deref(), m.name.as_deref());
                match obj {
                    Lenient::Decoded(k) => Some(watcher::Event::Delete(k)),
                    Lenient::Undecodable(bad) => {
                        cached(&object_ref(&bad.0)).map(|old| watcher::Event::Delete(K::clone(&old)))
                    }
                }
            }
        }
    }
}

/// How a watch touches jobs ([`Touched`]): the set, and the hub UID of the job an object
/// belongs to.
#[allow(missing_debug_implementations)]
pub struct Touching<K> {
    pub touched: Touched,
    pub key: fn(&K) -> Option<&str>,
}

impl<K> Touching<K> {
    /// Touches what the store's event changes: the object's job, or (a list ended)
    /// everything.
    fn record(&self, event: &watcher::Event<K>) {
        match event {
            watcher::Event::Apply(k) | watcher::Event::Delete(k) => {
                if let Some(key) = (self.key)(k) {
                    self.touched.touch(key);
                }
            }
            watcher::Event::InitDone => self.touched.touch_all(),
            watcher::Event::Init | watcher::Event::InitApply(_) => {}
        }
    }
}

/// Starts a watch of `api` into a cache; every change wakes `changed`. It runs as long as
/// the process. Objects that do not decode are left out (see the module docs).
pub fn cache<K>(api: Api<K>, config: watcher::Config, changed: Arc<Notify>) -> Store<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    cache_reporting(api, config, changed, None, Undecodables::default(), None)
}

/// Like [`cache`], but the watch ends once every sender of `alive` is dropped (a member
/// that was removed or reconnected).
pub fn cache_while<K>(
    api: Api<K>,
    config: watcher::Config,
    changed: Arc<Notify>,
    alive: Option<tokio::sync::watch::Receiver<()>>,
) -> Store<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    cache_reporting(api, config, changed, alive, Undecodables::default(), None)
}

/// Like [`cache_while`], recording the objects left out in `undecodables`, and touching
/// the jobs of the objects that change in `touching`.
pub fn cache_reporting<K>(
    api: Api<K>,
    config: watcher::Config,
    changed: Arc<Notify>,
    alive: Option<tokio::sync::watch::Receiver<()>>,
    undecodables: Undecodables,
    touching: Option<Touching<K>>,
) -> Store<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let resource = ApiResource::erase::<K>(&());
    let namespace = api.namespace().map(str::to_string);
    let client = api.into_client();
    let lenient: Api<Lenient<K>> = match &namespace {
        Some(ns) => Api::namespaced_with(client, ns, &()),
        None => Api::all_with(client, &()),
    };
    let mut decoder = Decoder::new(&resource, undecodables);
    let (reader, mut writer) = reflector::store::<K>();
    let stream = watcher(lenient, config).default_backoff();
    let cached = reader.clone();
    drive(stream, alive, changed, move |event| match event {
        Ok(event) => {
            if let Some(typed) = decoder.event(event, |r| cached.get(r)) {
                writer.apply_watcher_event(&typed);
                touching.iter().for_each(|t| t.record(&typed));
            }
        }
        // The watcher retries with backoff; one bad event does not stop it.
        Err(e) => tracing::warn!(error = %e, "watch error"),
    });
    reader
}

/// A cache of untyped objects (another job kind's) of `resource`, kept while a sender of
/// `alive` exists; every change wakes `changed`. Such objects are read field by field by
/// their kind, so there is nothing to decode here.
pub fn cache_dynamic(
    client: kube::Client,
    resource: &ApiResource,
    config: watcher::Config,
    changed: Arc<Notify>,
    alive: Option<tokio::sync::watch::Receiver<()>>,
    touching: Option<Touching<DynamicObject>>,
) -> Store<DynamicObject> {
    let api: Api<DynamicObject> = Api::all_with(client, resource);
    let kind = resource.kind.clone();
    let writer = reflector::store::Writer::<DynamicObject>::new(resource.clone());
    let reader = writer.as_reader();
    let stream = reflector::reflector(writer, watcher(api, config).default_backoff());
    drive(stream, alive, changed, move |event| match event {
        Ok(event) => touching.iter().for_each(|t| t.record(&event)),
        Err(e) => tracing::warn!(error = %e, %kind, "watch error"),
    });
    reader
}

/// Runs a watch stream in the background, handing each event to `on_event` and waking
/// `changed`, until the stream ends or every sender of `alive` is dropped.
fn drive<S, T>(
    stream: S,
    alive: Option<tokio::sync::watch::Receiver<()>>,
    changed: Arc<Notify>,
    mut on_event: impl FnMut(T) + Send + 'static,
) where
    S: futures::Stream<Item = T> + Send + 'static,
{
    tokio::spawn(async move {
        futures::pin_mut!(stream);
        let mut alive = alive;
        loop {
            let ended = async {
                match alive.as_mut() {
                    // Err: every sender is gone.
                    Some(rx) => while rx.changed().await.is_ok() {},
                    None => futures::future::pending::<()>().await,
                }
            };
            let event = tokio::select! {
                event = stream.next() => event,
                () = ended => break,
            };
            let Some(event) = event else { break };
            on_event(event);
            changed.notify_one();
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use computenet_api::TrainingJob;
    use proptest::prelude::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn json(name: &str, rv: &str, spec: serde_json::Value) -> serde_json::Value {
        serde_json::json!({
            "apiVersion": "computenet.io/v1alpha1", "kind": "TrainingJob",
            "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}"), "resourceVersion": rv},
            "spec": spec,
        })
    }

    fn object(name: &str, rv: &str, spec: serde_json::Value) -> Lenient<TrainingJob> {
        Lenient::from_json(&json(name, rv, spec).to_string())
    }

    fn decoded(obj: Lenient<TrainingJob>) -> TrainingJob {
        match obj {
            Lenient::Decoded(tj) => tj,
            Lenient::Undecodable(bad) => panic!("does not decode: {}", bad.1),
        }
    }

    fn good() -> serde_json::Value {
        serde_json::json!({
            "queueName": "q", "replicas": 1, "resources": {"cpu": 1, "memory": 68719476736_u64},
            "workload": {"image": "i", "command": ["c"]},
        })
    }

    fn bad() -> serde_json::Value {
        let mut spec = good();
        spec["replicas"] = "four".into();
        spec
    }

    fn decoder(reports: &Arc<AtomicUsize>) -> (Decoder, Undecodables) {
        let seen = reports.clone();
        let undecodables = Undecodables::reporting(move |_| {
            seen.fetch_add(1, Ordering::Relaxed);
        });
        (Decoder::new(&ApiResource::erase::<TrainingJob>(&()), undecodables.clone()), undecodables)
    }

    #[test]
    fn store_events_touch_their_job_and_a_finished_list_touches_everything() {
        let touching = Touching { touched: Touched::default(), key: |tj: &TrainingJob| tj.metadata.uid.as_deref() };
        let tj = |name: &str| decoded(object(name, "1", good()));
        touching.record(&watcher::Event::Apply(tj("a")));
        touching.record(&watcher::Event::Delete(tj("b")));
        touching.record(&watcher::Event::Init);
        touching.record(&watcher::Event::InitApply(tj("c")));
        let taken = touching.touched.take();
        assert!(!taken.all);
        assert!(taken.contains("uid-a") && taken.contains("uid-b"), "changed and deleted");
        assert!(!taken.contains("uid-c"), "an object listed again counts when the list ends");
        touching.record(&watcher::Event::InitDone);
        assert!(touching.touched.take().all, "a list may hide any change: everything");
    }

    #[test]
    fn decoding_keeps_everything_but_the_managed_fields() {
        let mut obj = json("a", "7", good());
        obj["status"] = serde_json::json!({"phase": "Running", "admitted": true});
        obj["metadata"]["labels"] = serde_json::json!({"team": "x"});
        // Text that looks like the key elsewhere is left alone.
        obj["metadata"]["annotations"] = serde_json::json!({"managedFields": "[\"}"});
        obj["metadata"]["managedFields"] =
            serde_json::json!([{"manager": "m", "operation": "Apply", "fieldsV1": {"f:spec": {"x]": {}}}}]);
        let text = serde_json::to_string_pretty(&obj).unwrap();
        let tj = decoded(Lenient::from_json(&text));
        assert_eq!(tj.metadata.managed_fields, None);
        let mut expected: TrainingJob = serde_json::from_value(obj).unwrap();
        assert!(expected.metadata.managed_fields.is_some(), "the test object has them");
        expected.metadata.managed_fields = None;
        assert_eq!(tj, expected, "the same object as decoding it whole");
        assert_eq!(tj.status.and_then(|s| s.admitted), Some(true));
        // Through the watch's own path: an event line, as kube reads it.
        let line = format!(r#"{{"type":"MODIFIED","object":{text}}}"#);
        let event: kube::core::WatchEvent<Lenient<TrainingJob>> = serde_json::from_str(&line).unwrap();
        assert!(matches!(event, kube::core::WatchEvent::Modified(Lenient::Decoded(ref t)) if *t == expected));
        // Not an object at all, or metadata that does not read: an error, not a panic.
        for odd in ["[1]", "7", r#"{"metadata": 3}"#, r#"{"metadata": {"managedFields": 3}}"#] {
            match Lenient::<TrainingJob>::from_json(odd) {
                Lenient::Undecodable(bad) => assert_eq!(bad.0, ObjectMeta::default(), "{odd}"),
                Lenient::Decoded(_) => panic!("{odd} decoded"),
            }
        }
        // A field of the wrong type hides only itself: the resourceVersion still reads.
        let odd = r#"{"metadata": {"name": "a", "uid": 7, "resourceVersion": "9"}, "spec": 1}"#;
        let Lenient::Undecodable(bad) = Lenient::<TrainingJob>::from_json(odd) else { panic!("decoded") };
        assert_eq!(
            (bad.0.name.as_deref(), bad.0.uid.as_deref(), bad.0.resource_version.as_deref()),
            (Some("a"), None, Some("9"))
        );
    }

    #[test]
    fn an_event_decodes_when_its_type_comes_first_as_the_api_server_writes_it() {
        let object = json("a", "1", good()).to_string();
        let first = format!(r#"{{"type":"ADDED","object":{object}}}"#);
        let event: kube::core::WatchEvent<Lenient<TrainingJob>> = serde_json::from_str(&first).unwrap();
        assert!(matches!(event, kube::core::WatchEvent::Added(Lenient::Decoded(_))));
        // The object before its type (never written so by the API server, which writes
        // the struct's fields in order): the object's text is no longer at hand, and
        // the event is an error, which the watch logs and goes on from.
        let last = format!(r#"{{"object":{object},"type":"ADDED"}}"#);
        assert!(serde_json::from_str::<kube::core::WatchEvent<Lenient<TrainingJob>>>(&last).is_err());
    }

    #[test]
    fn managed_fields_are_cut_out_exactly() {
        let cut = |s: &str| without_managed_fields(s);
        assert_eq!(
            cut(r#"{"metadata":{"name":"a","managedFields":[{"x":"]}"}],"uid":"u"},"spec":{}}"#).as_deref(),
            Some(r#"{"metadata":{"name":"a","managedFields":null,"uid":"u"},"spec":{}}"#)
        );
        assert_eq!(cut(r#"{"metadata":{"name":"a"}}"#), None, "none to cut");
        assert_eq!(cut(r#"{"metadata":{"managedFields":null}}"#), None);
        assert_eq!(cut(r#"{"spec":{"metadata":{"managedFields":[1]}}}"#), None, "only the object's own");
        assert_eq!(cut(r#"{"metadata":{"managedFields":[1],"managedFields":[2]}}"#), None, "duplicate: as it is");
        assert_eq!(cut("not json"), None);
    }

    fn any_json() -> impl Strategy<Value = serde_json::Value> {
        use serde_json::Value;
        // Strings with what a byte reader could trip on: quotes, backslashes, brackets.
        let text = || proptest::string::string_regex(r#"[a-z"\\{}\[\]:, \n\u{e9}]{0,8}"#).unwrap();
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            (-1e6f64..1e6).prop_map(Value::from),
            text().prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, move |inner| {
            let key = prop_oneof![Just("managedFields".to_string()), Just("metadata".to_string()), text()];
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::vec((key, inner), 0..4)
                    .prop_map(|entries| Value::Object(entries.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// Wherever the byte reader answers, it answers as serde's outline does.
        #[test]
        fn the_byte_reader_finds_the_managed_fields_where_serde_does(
            metadata in proptest::option::of((proptest::option::of(any_json()), any_json())),
            rest in any_json(),
            pretty in any::<bool>(),
        ) {
            let mut object = match rest {
                serde_json::Value::Object(map) => map,
                other => [("spec".to_string(), other)].into_iter().collect(),
            };
            if let Some((fields, mut meta)) = metadata {
                if let (Some(fields), Some(map)) = (fields, meta.as_object_mut()) {
                    map.insert("managedFields".into(), fields);
                }
                object.insert("metadata".into(), meta);
            }
            let object = serde_json::Value::Object(object);
            let text = if pretty { serde_json::to_string_pretty(&object) } else { serde_json::to_string(&object) }.unwrap();
            let by_serde = outline_managed_fields(&text);
            match scan::managed_fields(text.as_bytes()) {
                scan::Found::At(start, end) => prop_assert_eq!(Some((start, end)), by_serde, "{}", text),
                scan::Found::Nothing => prop_assert_eq!(None, by_serde, "{}", text),
                scan::Found::Unsure => prop_assert!(
                    text.contains('\\') || object.get("metadata").is_some_and(serde_json::Value::is_array),
                    "only escaped keys and a list for metadata are left to serde: {}",
                    text
                ),
            }
        }
    }

    #[test]
    fn malformed_text_never_reaches_the_reader_and_a_nameless_object_does_not_decode() {
        // The watch reads each object as a RawValue first: text that is not JSON is an error
        // there, even where only its managedFields are malformed (which the reader would cut).
        let event = r#"{"type":"ADDED","object":{"metadata":{"name":"a","managedFields":garbage}}}"#;
        assert!(serde_json::from_str::<kube::core::WatchEvent<Lenient<TrainingJob>>>(event).is_err());
        // kube's store panics on an object without a name: such an object is left out.
        let nameless = json("a", "1", good()).to_string().replace(r#""name":"a","#, "");
        match Lenient::<TrainingJob>::from_json(&nameless) {
            Lenient::Undecodable(bad) => {
                assert_eq!(bad.1, "metadata.name: missing");
                assert_eq!(bad.0.resource_version.as_deref(), Some("1"), "the rest is readable");
            }
            Lenient::Decoded(_) => panic!("a nameless object decoded"),
        }
    }

    #[test]
    fn the_byte_reader_leaves_what_it_cannot_follow_to_serde() {
        use scan::{managed_fields, Found};
        let at = |text: &str| managed_fields(text.as_bytes());
        assert_eq!(at(r#"{"metadata":{"managedFields":[1]}}"#), Found::At(29, 32));
        assert_eq!(at(r#" { "metadata" : { "managedFields" : null } } "#), Found::Nothing);
        assert_eq!(at(r#"{"metadata":"x"}"#), Found::Nothing, "serde reads no outline there either");
        for unsure in [
            r#"{"metad\u0061ta":{"managedFields":[1]}}"#,          // an escaped key
            r#"{"metadata":{},"metadata":{"managedFields":[1]}}"#, // a key twice
            r#"{"metadata":{"managedFields":[1]}} x"#,             // text after the object
            r#"{"metadata":[[1]]}"#,                               // serde reads a struct from a list
            r#"{"metadata":{"managedFields":[1]"#,                 // cut short
            r#"{"metadata":{"managedFields":"\"}}"#,               // a string that never ends
            "",
            "[1]",
        ] {
            assert_eq!(at(unsure), Found::Unsure, "{unsure}");
        }
    }

    #[test]
    fn an_object_whose_outline_does_not_read_still_loses_its_managed_fields() {
        // Duplicate keys stop the outline (so nothing is cut) but not the object's own
        // decoder, which keeps the last: the managedFields go all the same.
        let mut obj = json("a", "7", good());
        obj["metadata"]["managedFields"] = serde_json::json!([{"manager": "m"}]);
        let text = obj.to_string().replacen(r#""metadata":{"#, r#""metadata":{"managedFields":[],"#, 1);
        assert_eq!(without_managed_fields(&text), None, "the outline does not read");
        let tj = decoded(Lenient::from_json(&text));
        assert_eq!(tj.metadata.managed_fields, None);
        assert_eq!(tj.metadata.resource_version.as_deref(), Some("7"));
    }

    #[test]
    fn a_list_with_an_undecodable_object_keeps_the_others() {
        let reports = Arc::new(AtomicUsize::new(0));
        let (mut d, undecodables) = decoder(&reports);
        let none = |_: &ObjectRef<TrainingJob>| None;
        assert!(matches!(d.event(watcher::Event::Init, none), Some(watcher::Event::Init)));
        let ok = d.event(watcher::Event::InitApply(object("a", "1", good())), none);
        assert!(matches!(ok, Some(watcher::Event::InitApply(_))));
        assert!(d.event(watcher::Event::InitApply(object("b", "2", bad())), none).is_none());
        assert!(matches!(d.event(watcher::Event::InitDone, none), Some(watcher::Event::InitDone)));
        assert_eq!(undecodables.counts().get("TrainingJob"), Some(&1));
        let u = &undecodables.objects()[0];
        assert_eq!((u.object.name.as_deref(), u.object.uid.as_deref()), (Some("b"), Some("uid-b")));
        assert!(u.error.starts_with("spec.replicas: invalid type: string \"four\""), "{}", u.error);
        // A relist sees it again: reported once per resourceVersion, not per list.
        d.event(watcher::Event::Init, none);
        d.event(watcher::Event::InitApply(object("b", "2", bad())), none);
        d.event(watcher::Event::InitDone, none);
        assert_eq!(reports.load(Ordering::Relaxed), 1);
        d.event(watcher::Event::Apply(object("b", "3", bad())), none);
        assert_eq!(reports.load(Ordering::Relaxed), 2, "a new version is reported again");
    }

    #[test]
    fn fixed_or_deleted_objects_leave_the_registry_and_broken_ones_the_store() {
        let reports = Arc::new(AtomicUsize::new(0));
        let (mut d, undecodables) = decoder(&reports);
        let cached_a =
            |r: &ObjectRef<TrainingJob>| (r.name == "a").then(|| Arc::new(decoded(object("a", "1", good()))));
        // A cached object that stops decoding leaves the store.
        let gone = d.event(watcher::Event::Apply(object("a", "2", bad())), cached_a);
        assert!(matches!(gone, Some(watcher::Event::Delete(k)) if k.metadata.name.as_deref() == Some("a")));
        assert_eq!(undecodables.counts().len(), 1);
        // Fixed: back in the store, out of the registry.
        assert!(matches!(
            d.event(watcher::Event::Apply(object("a", "3", good())), cached_a),
            Some(watcher::Event::Apply(_))
        ));
        assert!(undecodables.counts().is_empty());
        // Deleted while undecodable: out of the registry.
        d.event(watcher::Event::Apply(object("c", "4", bad())), cached_a);
        assert!(d.event(watcher::Event::Delete(object("c", "5", bad())), cached_a).is_none());
        assert!(undecodables.counts().is_empty());
        // Gone while the watch was down: a relist without it drops it.
        d.event(watcher::Event::Apply(object("d", "6", bad())), cached_a);
        d.event(watcher::Event::Init, cached_a);
        d.event(watcher::Event::InitDone, cached_a);
        assert!(undecodables.counts().is_empty());
    }
}

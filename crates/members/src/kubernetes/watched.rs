//! A member's Jobs and Pods as its watches decode them: only the fields computenet reads.
//!
//! A Job's pod template and a Pod's spec and status are most of their text, and computenet
//! reads a few fields of them (a Job's status; a Pod's node, requests and phase). Decoded
//! whole into k8s-openapi's types, every string and map of the rest was allocated and
//! dropped again for each of the several events a job's Job and pods make. serde leaves
//! the rest of the text unread. The API paths are the full types' ([`kube::Resource`] is
//! delegated to them), so the watches ask for the same objects.
//!
//! What the full type reads, these read alike (a property test checks it on generated
//! objects). They read more: a field they leave unread may be malformed. One difference
//! is kept: text with a key twice in one object does not decode here (the full types take
//! the last), so such an object is reported as undecodable, which no API server sends.

use k8s_openapi::api::batch::v1::{Job, JobStatus};
use k8s_openapi::api::core::v1::{Pod, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::NamespaceResourceScope;
use serde::Deserialize;
use std::borrow::Cow;

/// Missing or `null` metadata as empty metadata, as the full types read it.
fn metadata<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<ObjectMeta, D::Error> {
    Ok(Option::<ObjectMeta>::deserialize(deserializer)?.unwrap_or_default())
}

/// A member's Job: its metadata and status.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct WatchedJob {
    #[serde(default, deserialize_with = "metadata")]
    pub metadata: ObjectMeta,
    pub status: Option<JobStatus>,
}

/// A member's Pod: its metadata, the node it is bound to, what it requests, its phase.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct WatchedPod {
    #[serde(default, deserialize_with = "metadata")]
    pub metadata: ObjectMeta,
    pub spec: Option<WatchedPodSpec>,
    pub status: Option<WatchedPodStatus>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WatchedPodSpec {
    pub node_name: Option<String>,
    pub containers: Option<Vec<WatchedContainer>>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct WatchedContainer {
    pub resources: Option<ResourceRequirements>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct WatchedPodStatus {
    pub phase: Option<String>,
}

/// `kube::Resource` for a watched type, as for the full type `$full`.
macro_rules! resource_as {
    ($watched:ty, $full:ty) => {
        impl kube::Resource for $watched {
            type DynamicType = ();
            type Scope = NamespaceResourceScope;

            fn kind(dt: &()) -> Cow<'_, str> {
                <$full as kube::Resource>::kind(dt)
            }
            fn group(dt: &()) -> Cow<'_, str> {
                <$full as kube::Resource>::group(dt)
            }
            fn version(dt: &()) -> Cow<'_, str> {
                <$full as kube::Resource>::version(dt)
            }
            fn plural(dt: &()) -> Cow<'_, str> {
                <$full as kube::Resource>::plural(dt)
            }
            fn meta(&self) -> &ObjectMeta {
                &self.metadata
            }
            fn meta_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }
        }
    };
}
resource_as!(WatchedJob, Job);
resource_as!(WatchedPod, Pod);

#[cfg(test)]
mod tests {
    use super::*;
    use kube::Resource;
    use proptest::prelude::*;
    use serde_json::{json, Value};

    #[test]
    fn the_watched_types_read_what_the_full_types_read_of_the_same_text() {
        let pod = serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "ns", "labels": {"computenet.io/job-uid": "u"}},
            "spec": {"nodeName": "n1", "containers": [
                {"name": "c", "image": "i", "env": [{"name": "A", "value": "1"}],
                 "resources": {"requests": {"cpu": "500m", "nvidia.com/gpu": "1"}, "limits": {"memory": "1Gi"}}}]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
        });
        let full: Pod = serde_json::from_value(pod.clone()).unwrap();
        let watched: WatchedPod = serde_json::from_value(pod).unwrap();
        assert_eq!(watched.metadata, full.metadata);
        let spec = full.spec.unwrap();
        let watched_spec = watched.spec.unwrap();
        assert_eq!(watched_spec.node_name, spec.node_name);
        assert_eq!(watched_spec.containers.unwrap()[0].resources, spec.containers[0].resources);
        assert_eq!(watched.status.unwrap().phase, full.status.unwrap().phase);

        let job = serde_json::json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "j", "namespace": "ns", "uid": "x"},
            "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}},
            "status": {"active": 1, "conditions": [{"type": "Complete", "status": "True"}]}
        });
        let full: Job = serde_json::from_value(job.clone()).unwrap();
        let watched: WatchedJob = serde_json::from_value(job).unwrap();
        assert_eq!((watched.metadata, watched.status), (full.metadata, full.status));
        // The same API paths as the full types.
        assert_eq!(WatchedJob::url_path(&(), Some("ns")), Job::url_path(&(), Some("ns")));
        assert_eq!(WatchedPod::url_path(&(), None), Pod::url_path(&(), None));
    }

    #[test]
    fn null_metadata_reads_as_empty_as_the_full_types_read_it() {
        let text = r#"{"metadata":null,"spec":{"nodeName":"n"},"status":{"phase":"Running"}}"#;
        assert_eq!(serde_json::from_str::<Pod>(text).unwrap().metadata, ObjectMeta::default());
        assert_eq!(serde_json::from_str::<WatchedPod>(text).unwrap().metadata, ObjectMeta::default());
        let text = r#"{"metadata":null,"status":{"active":1}}"#;
        assert_eq!(serde_json::from_str::<Job>(text).unwrap().metadata, ObjectMeta::default());
        assert_eq!(serde_json::from_str::<WatchedJob>(text).unwrap().status.and_then(|s| s.active), Some(1));
    }

    #[test]
    fn a_key_twice_is_refused_here_and_reported_by_the_watch() {
        let text = r#"{"metadata":{"name":"a","uid":"u"},"metadata":{"name":"b","uid":"u"}}"#;
        assert_eq!(serde_json::from_str::<Pod>(text).unwrap().metadata.name.as_deref(), Some("b"));
        assert!(serde_json::from_str::<WatchedPod>(text).is_err());
        match super::super::watch::Lenient::<WatchedPod>::from_json(text) {
            super::super::watch::Lenient::Undecodable(bad) => assert!(bad.1.contains("duplicate field"), "{}", bad.1),
            other => panic!("decoded: {other:?}"),
        }
    }

    /// JSON for a value of some other type than the one a field holds.
    fn wrong() -> impl Strategy<Value = Value> {
        prop_oneof![Just(json!(7)), Just(json!(true)), Just(json!([1])), Just(json!({"x": 1})), Just(json!("s"))]
    }

    /// A field's value: absent (None), null, of its type, or of another.
    fn field(good: impl Strategy<Value = Value> + 'static) -> impl Strategy<Value = Option<Value>> {
        prop_oneof![
            2 => Just(None),
            1 => Just(Some(Value::Null)),
            6 => good.prop_map(Some),
            1 => wrong().prop_map(Some),
        ]
    }

    fn object(fields: Vec<(&'static str, Option<Value>)>) -> Value {
        Value::Object(fields.into_iter().filter_map(|(k, v)| Some((k.to_string(), v?))).collect())
    }

    fn quantities() -> impl Strategy<Value = Value> {
        proptest::collection::btree_map(
            prop_oneof![Just("cpu"), Just("memory"), Just("nvidia.com/gpu")],
            prop_oneof![Just(json!("500m")), Just(json!("1Gi")), Just(json!("2")), Just(json!(3)), Just(json!(null))],
            0..3,
        )
        .prop_map(|m| json!(m))
    }

    fn metadata_json() -> impl Strategy<Value = Value> {
        (
            field(prop_oneof![Just(json!("p")), Just(json!("q"))]),
            field(Just(json!("ns"))),
            field(Just(json!("uid-1"))),
            field(Just(json!({"computenet.io/managed": "true", "a": "b"}))),
            field(Just(json!([{"manager": "m", "operation": "Update"}]))),
        )
            .prop_map(|(name, namespace, uid, labels, managed)| {
                object(vec![
                    ("name", name),
                    ("namespace", namespace),
                    ("uid", uid),
                    ("labels", labels),
                    ("managedFields", managed),
                ])
            })
    }

    fn container() -> impl Strategy<Value = Value> {
        (
            field(Just(json!("c"))),
            field(Just(json!("image"))),
            field(
                (field(quantities()), field(quantities()))
                    .prop_map(|(r, l)| object(vec![("requests", r), ("limits", l)])),
            ),
        )
            .prop_map(|(name, image, resources)| {
                object(vec![("name", name), ("image", image), ("resources", resources)])
            })
    }

    fn pod_json() -> impl Strategy<Value = Value> {
        let spec = (
            field(prop_oneof![Just(json!("n1")), Just(json!(""))]),
            field(proptest::collection::vec(container(), 0..3).prop_map(Value::Array)),
            field(Just(json!({"app": "x"}))),
        )
            .prop_map(|(node, containers, selector)| {
                object(vec![("nodeName", node), ("containers", containers), ("nodeSelector", selector)])
            });
        let status = (
            field(prop_oneof![Just(json!("Running")), Just(json!("Succeeded"))]),
            field(Just(json!([{"type": "Ready", "status": "True"}]))),
        )
            .prop_map(|(phase, conditions)| object(vec![("phase", phase), ("conditions", conditions)]));
        (
            field(prop_oneof![Just(json!("v1")), Just(json!("v2"))]),
            field(Just(json!("Pod"))),
            field(metadata_json()),
            field(spec),
            field(status),
        )
            .prop_map(|(api_version, kind, metadata, spec, status)| {
                object(vec![
                    ("apiVersion", api_version),
                    ("kind", kind),
                    ("metadata", metadata),
                    ("spec", spec),
                    ("status", status),
                ])
            })
    }

    fn job_json() -> impl Strategy<Value = Value> {
        let status = (
            field(prop_oneof![Just(json!(1)), Just(json!(0))]),
            field(Just(json!([{"type": "Complete", "status": "True"}]))),
        )
            .prop_map(|(active, conditions)| object(vec![("active", active), ("conditions", conditions)]));
        (
            field(prop_oneof![Just(json!("batch/v1")), Just(json!("v1"))]),
            field(metadata_json()),
            field(Just(json!({"template": {"spec": {"containers": [{"name": "c"}]}}}))),
            field(status),
        )
            .prop_map(|(api_version, metadata, spec, status)| {
                object(vec![("apiVersion", api_version), ("metadata", metadata), ("spec", spec), ("status", status)])
            })
    }

    /// The object a watch keeps: decoded leniently, managedFields left out.
    fn watched<K: serde::de::DeserializeOwned + kube::Resource>(text: &str) -> Option<K> {
        match super::super::watch::Lenient::<K>::from_json(text) {
            super::super::watch::Lenient::Decoded(k) => Some(k),
            super::super::watch::Lenient::Undecodable(_) => None,
        }
    }

    proptest! {
        #[test]
        fn what_the_full_pod_reads_the_watched_pod_reads_alike(value in pod_json()) {
            let text = value.to_string();
            if let Ok(mut full) = serde_json::from_str::<Pod>(&text) {
                let pod: Option<WatchedPod> = watched(&text);
                if full.metadata.name.is_none() {
                    prop_assert!(pod.is_none(), "a nameless object is left out: {text}");
                    return Ok(());
                }
                prop_assert!(pod.is_some(), "{text}");
                let pod = pod.unwrap();
                full.metadata.managed_fields = None;
                prop_assert_eq!(&pod.metadata, &full.metadata);
                let spec = full.spec.unwrap_or_default();
                let watched_spec = pod.spec.unwrap_or_default();
                prop_assert_eq!(&watched_spec.node_name, &spec.node_name);
                let requests: Vec<_> = spec.containers.iter().map(|c| c.resources.clone()).collect();
                let watched_requests: Vec<_> =
                    watched_spec.containers.unwrap_or_default().into_iter().map(|c| c.resources).collect();
                prop_assert_eq!(watched_requests, requests);
                prop_assert_eq!(pod.status.and_then(|s| s.phase), full.status.and_then(|s| s.phase));
            }
        }

        #[test]
        fn what_the_full_job_reads_the_watched_job_reads_alike(value in job_json()) {
            let text = value.to_string();
            if let Ok(mut full) = serde_json::from_str::<Job>(&text) {
                let job: Option<WatchedJob> = watched(&text);
                if full.metadata.name.is_none() {
                    prop_assert!(job.is_none(), "a nameless object is left out: {text}");
                    return Ok(());
                }
                prop_assert!(job.is_some(), "{text}");
                let job = job.unwrap();
                full.metadata.managed_fields = None;
                prop_assert_eq!((job.metadata, job.status), (full.metadata, full.status));
            }
        }
    }

    #[test]
    fn fields_not_read_do_not_stop_an_object_from_decoding() {
        // A spec that the full type refuses (a container without its required name) is
        // not read here: the fields that are still decode.
        let text = r#"{"metadata":{"name":"p"},"spec":{"nodeName":"n","containers":[{"image":7}]},"status":null}"#;
        assert!(serde_json::from_str::<Pod>(text).is_err());
        let pod: WatchedPod = serde_json::from_str(text).unwrap();
        assert_eq!(pod.spec.unwrap().node_name.as_deref(), Some("n"));
    }
}

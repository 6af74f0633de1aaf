//! A member's Jobs and Pods as its watches decode them: only the fields computenet reads.
//!
//! A Job's pod template and a Pod's spec and status are most of their text, and computenet
//! reads a few fields of them (a Job's status; a Pod's node, requests and phase). Decoded
//! whole into k8s-openapi's types, every string and map of the rest was allocated and
//! dropped again for each of the several events a job's Job and pods make. serde leaves
//! the rest of the text unread. The API paths are the full types' ([`kube::Resource`] is
//! delegated to them), so the watches ask for the same objects.

use k8s_openapi::api::batch::v1::{Job, JobStatus};
use k8s_openapi::api::core::v1::{Pod, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::NamespaceResourceScope;
use serde::Deserialize;
use std::borrow::Cow;

/// A member's Job: its metadata and status.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct WatchedJob {
    #[serde(default)]
    pub metadata: ObjectMeta,
    pub status: Option<JobStatus>,
}

/// A member's Pod: its metadata, the node it is bound to, what it requests, its phase.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct WatchedPod {
    #[serde(default)]
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
    fn fields_not_read_do_not_stop_an_object_from_decoding() {
        // A spec that the full type refuses (a container without its required name) is
        // not read here: the fields that are still decode.
        let text = r#"{"metadata":{"name":"p"},"spec":{"nodeName":"n","containers":[{"image":7}]},"status":null}"#;
        assert!(serde_json::from_str::<Pod>(text).is_err());
        let pod: WatchedPod = serde_json::from_str(text).unwrap();
        assert_eq!(pod.spec.unwrap().node_name.as_deref(), Some("n"));
    }
}

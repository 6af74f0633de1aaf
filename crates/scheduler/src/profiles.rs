//! Where the service's throughput profiles come from: files given at start, and a
//! ConfigMap in the service's namespace that admins can change while it runs (each key a
//! document, see [`computenet_api::profiles`]). Why a ConfigMap: admins already manage
//! them with `kubectl create configmap --from-file`, RBAC keeps tenants out of the
//! service's namespace, and a profile is configuration of the service, not a resource of
//! the pool (a cluster-scoped kind would add an API to version for little gain).

use computenet_core::profiles::ProfileSet;
use computenet_core::{CycleConfig, Scheduler, ThroughputModel};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use kube::{Api, Client};
use std::sync::Arc;
use tokio::sync::Notify;

/// Profiles and cycle settings, as configured.
#[derive(Debug, Clone, Default)]
pub struct ProfileSource {
    /// Profiles from files, parsed at start.
    pub files: ProfileSet,
    /// The ConfigMap (namespace, name) to watch, if any.
    pub config_map: Option<(String, String)>,
    pub cycle: CycleConfig,
}

/// The profiles in force: the files' and the ConfigMap's current ones.
#[allow(missing_debug_implementations)] // Store has no Debug implementation.
pub struct Profiles {
    source: ProfileSource,
    config_map: Option<Store<ConfigMap>>,
    /// The resourceVersion of the ConfigMap last applied ("" for none).
    applied: Option<String>,
}

impl ProfileSource {
    /// Starts watching the ConfigMap (when one is named).
    pub fn start(&self, client: Client, changed: Arc<Notify>) -> Profiles {
        let config_map = self.config_map.as_ref().map(|(namespace, name)| {
            let api = Api::<ConfigMap>::namespaced(client, namespace);
            let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
            computenet_members::kubernetes::cache(api, config, changed)
        });
        Profiles { source: self.clone(), config_map, applied: None }
    }
}

/// The profiles of a ConfigMap's data; `Err` names the key that was refused.
pub fn from_config_map(cm: &ConfigMap) -> Result<ProfileSet, computenet_api::profiles::ProfileError> {
    let data = cm.data.iter().flatten().map(|(k, v)| (k.as_str(), v.as_str()));
    computenet_api::profiles::parse_all(data)
}

impl Profiles {
    fn build(&self, extra: Option<ProfileSet>) -> Scheduler {
        let mut profiles = self.source.files.clone();
        profiles.extend(extra.unwrap_or_default());
        Scheduler { model: ThroughputModel::with_profiles(profiles), config: self.source.cycle.clone() }
    }

    /// The scheduler with the current profiles.
    pub fn scheduler(&mut self) -> Scheduler {
        self.updated().unwrap_or_else(|| self.build(None))
    }

    /// A new scheduler when the ConfigMap changed since the last call. A ConfigMap that
    /// does not parse is reported and the profiles in force stay.
    pub fn updated(&mut self) -> Option<Scheduler> {
        let store = self.config_map.as_ref()?;
        let cm = store.state().into_iter().next();
        let version = cm.as_ref().and_then(|c| c.metadata.resource_version.clone()).unwrap_or_default();
        if self.applied.as_deref() == Some(version.as_str()) {
            return None;
        }
        self.applied = Some(version);
        let Some(cm) = cm else {
            tracing::info!("no profiles ConfigMap (yet): using the profile files only");
            return Some(self.build(None));
        };
        match from_config_map(&cm) {
            Ok(set) => {
                tracing::info!(models = set.models().count(), "throughput profiles loaded from the ConfigMap");
                Some(self.build(Some(set)))
            }
            Err(e) => {
                tracing::warn!(error = %e, "profiles ConfigMap refused; the profiles in force stay");
                None
            }
        }
    }
}

//! Reading the hub: the only IO of the plugin. Read-only; one request per object kind.

use crate::args::Global;
use anyhow::Context;
use computenet_api::usage::ComputeUsage;
use computenet_api::{ComputeCohort, ComputeQueue, MemberCluster, TrainingJob};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::ListParams;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::time::Duration;

/// A connection to the hub.
// kube::Client has no Debug implementation.
#[allow(missing_debug_implementations)]
pub struct Hub {
    client: Client,
    /// The hub's URL, for messages.
    url: String,
    /// The namespace of jobs: -n, else the context's, else "default".
    pub namespace: String,
}

/// Why the hub refused to list ComputeUsages, for the errors particular to them: the
/// CRD is missing (`code` 404), or the user lacks the role that grants reading usage (401,
/// 403). `None` for other errors.
pub fn usage_refusal(code: u16, message: &str, url: &str) -> Option<String> {
    match code {
        404 => Some(format!(
            "the ComputeUsage CRD (computeusages.computenet.io) is not installed on the hub at {url}: \
             apply deploy/crds/ of a computenet release with metering"
        )),
        401 | 403 => Some(format!(
            "not allowed: {message}: reading usage needs list on computeusages.computenet.io, which the \
             ClusterRole computenet-usage-reader grants (ask an admin to bind it to you)"
        )),
        _ => None,
    }
}

/// The error's causes in one line.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

impl Hub {
    /// Connects with the kubeconfig (--kubeconfig, else $KUBECONFIG or ~/.kube/config) and context.
    pub async fn connect(global: &Global) -> anyhow::Result<Hub> {
        let options = KubeConfigOptions { context: global.context.clone(), ..KubeConfigOptions::default() };
        let mut config = match &global.kubeconfig {
            Some(path) => {
                let kubeconfig = Kubeconfig::read_from(path)
                    .map_err(|e| anyhow::anyhow!("reading kubeconfig {}: {}", path.display(), chain(&e)))?;
                kube::Config::from_custom_kubeconfig(kubeconfig, &options)
                    .await
                    .map_err(|e| anyhow::anyhow!("kubeconfig {}: {}", path.display(), chain(&e)))?
            }
            None => kube::Config::from_kubeconfig(&options).await.map_err(|e| {
                anyhow::anyhow!("no usable kubeconfig ($KUBECONFIG, ~/.kube/config or --kubeconfig): {}", chain(&e))
            })?,
        };
        config.connect_timeout = Some(Duration::from_secs(5));
        config.read_timeout = Some(Duration::from_secs(30));
        let namespace = global.namespace.clone().unwrap_or_else(|| config.default_namespace.clone());
        let url = config.cluster_url.to_string();
        let client = Client::try_from(config).context("setting up the client")?;
        Ok(Hub { client, url: url.trim_end_matches('/').to_string(), namespace })
    }

    fn error(&self, e: kube::Error, what: &str) -> anyhow::Error {
        match e {
            kube::Error::Api(status) if status.code == 404 => anyhow::anyhow!(
                "{what}: not found on the hub at {}: are the computenet CRDs installed (kubectl apply -f deploy/crds/)?",
                self.url
            ),
            kube::Error::Api(status) if status.code == 401 || status.code == 403 => {
                anyhow::anyhow!("{what}: not allowed: {}", status.message)
            }
            kube::Error::Api(status) => anyhow::anyhow!("{what}: {}", status.message),
            kube::Error::HyperError(_) | kube::Error::Service(_) => {
                anyhow::anyhow!("cannot reach the hub at {}: {}", self.url, chain(&e))
            }
            other => anyhow::anyhow!("{what}: {}", chain(&other)),
        }
    }

    async fn list<K>(&self, what: &str) -> anyhow::Result<Vec<K>>
    where
        K: kube::Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
    {
        let api: Api<K> = Api::all(self.client.clone());
        api.list(&ListParams::default()).await.map(|l| l.items).map_err(|e| self.error(e, what))
    }

    pub async fn members(&self) -> anyhow::Result<Vec<MemberCluster>> {
        self.list("listing MemberClusters").await
    }

    pub async fn queues(&self) -> anyhow::Result<Vec<ComputeQueue>> {
        self.list("listing ComputeQueues").await
    }

    pub async fn cohorts(&self) -> anyhow::Result<Vec<ComputeCohort>> {
        self.list("listing ComputeCohorts").await
    }

    /// TrainingJobs of all namespaces.
    pub async fn jobs(&self) -> anyhow::Result<Vec<TrainingJob>> {
        self.list("listing TrainingJobs").await
    }

    /// Every ComputeUsage, a page at a time (the objects can be large). Reading them is
    /// granted apart from the other CRDs, by the ClusterRole computenet-usage-reader.
    pub async fn usages(&self) -> anyhow::Result<Vec<ComputeUsage>> {
        const PAGE: u32 = 100;
        let what = "listing ComputeUsages";
        let api: Api<ComputeUsage> = Api::all(self.client.clone());
        let mut items = Vec::new();
        let mut params = ListParams::default().limit(PAGE);
        loop {
            let page = api.list(&params).await.map_err(|e| {
                let refusal = match &e {
                    kube::Error::Api(status) => usage_refusal(status.code, &status.message, &self.url),
                    _ => None,
                };
                refusal.map_or_else(|| self.error(e, what), |text| anyhow::anyhow!("{what}: {text}"))
            })?;
            items.extend(page.items);
            match page.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(token) => params = params.continue_token(&token),
                None => return Ok(items),
            }
        }
    }

    /// One TrainingJob, `None` when it does not exist.
    pub async fn job(&self, namespace: &str, name: &str) -> anyhow::Result<Option<TrainingJob>> {
        let api: Api<TrainingJob> = Api::namespaced(self.client.clone(), namespace);
        match api.get_opt(name).await {
            Ok(job) => Ok(job),
            Err(e) => Err(self.error(e, &format!("reading trainingjob {name:?} in namespace {namespace:?}"))),
        }
    }

    /// A ConfigMap: `Ok(None)` when it does not exist, `Err` with why it cannot be read.
    pub async fn config_map(&self, namespace: &str, name: &str) -> Result<Option<ConfigMap>, String> {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), namespace);
        api.get_opt(name).await.map_err(|e| match e {
            kube::Error::Api(status) if status.code == 401 || status.code == 403 => {
                format!("not allowed: {}", status.message)
            }
            other => chain(&other),
        })
    }

    /// A namespace's labels: `None` when it does not exist, `Some(None)` when it cannot be read.
    pub async fn namespace_labels(&self, name: &str) -> Option<Option<BTreeMap<String, String>>> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        match api.get_opt(name).await {
            Ok(Some(ns)) => Some(Some(ns.metadata.labels.unwrap_or_default())),
            Ok(None) => None,
            Err(_) => Some(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_refusals_name_the_crd_or_the_role() {
        let missing = usage_refusal(404, "the server could not find the requested resource", "https://hub:6443")
            .expect("a missing CRD");
        assert!(missing.contains("computeusages.computenet.io") && missing.contains("https://hub:6443"), "{missing}");
        let forbidden = usage_refusal(
            403,
            "computeusages.computenet.io is forbidden: User \"alice\" cannot list resource \"computeusages\"",
            "https://hub:6443",
        )
        .expect("forbidden");
        assert!(forbidden.starts_with("not allowed: computeusages.computenet.io is forbidden: User \"alice\""));
        assert!(forbidden.contains("ClusterRole computenet-usage-reader grants"), "{forbidden}");
        assert!(usage_refusal(401, "Unauthorized", "u").expect("unauthorized").contains("computenet-usage-reader"));
        assert_eq!(usage_refusal(500, "etcd is down", "u"), None);
    }
}

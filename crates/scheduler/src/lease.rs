//! Leader election with a coordination.k8s.io Lease: only the holder schedules, so two
//! replicas can run safely. The holder renews every third of the lease duration; a
//! candidate takes the lease only once it has expired.

use crate::error::{Error, Result};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::PostParams;
use kube::{Api, Client};
use serde_json::json;
use std::time::Duration;

/// The lease this process holds or wants.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    pub identity: String,
    pub duration: Duration,
}

fn lease_object(
    config: &LeaseConfig,
    resource_version: Option<String>,
    transitions: i32,
    acquire_time: Timestamp,
) -> Result<Lease> {
    let now = Timestamp::now();
    Ok(serde_json::from_value(json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": config.name, "namespace": config.namespace, "resourceVersion": resource_version},
        "spec": {
            "holderIdentity": config.identity,
            "leaseDurationSeconds": config.duration.as_secs(),
            "acquireTime": MicroTime(acquire_time),
            "renewTime": MicroTime(now),
            "leaseTransitions": transitions
        }
    }))
    .map_err(kube::Error::SerdeError)?)
}

/// Tries once to take or renew the lease. Returns whether this process holds it now.
pub async fn try_acquire(client: &Client, config: &LeaseConfig) -> Result<bool> {
    let api = Api::<Lease>::namespaced(client.clone(), &config.namespace);
    let Some(current) = api.get_opt(&config.name).await? else {
        let lease = lease_object(config, None, 0, Timestamp::now())?;
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e.into()),
        };
    };
    let spec = current.spec.clone().unwrap_or_default();
    let holder = spec.holder_identity.clone().unwrap_or_default();
    let duration = SignedDuration::from_secs(i64::from(spec.lease_duration_seconds.unwrap_or(15)));
    let expired = spec.renew_time.as_ref().is_none_or(|t| t.0 + duration < Timestamp::now());
    if holder != config.identity && !expired {
        return Ok(false);
    }
    let transitions = spec.lease_transitions.unwrap_or(0) + i32::from(holder != config.identity);
    let acquired = if holder == config.identity {
        spec.acquire_time.map_or_else(Timestamp::now, |t| t.0)
    } else {
        Timestamp::now()
    };
    let lease = lease_object(config, current.metadata.resource_version.clone(), transitions, acquired)?;
    match api.replace(&config.name, &PostParams::default(), &lease).await {
        Ok(_) => Ok(true),
        // Someone else renewed or took it between our read and write.
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Waits until this process holds the lease.
pub async fn acquire(client: &Client, config: &LeaseConfig) -> Result<()> {
    loop {
        match try_acquire(client, config).await {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "leader election"),
        }
        tokio::time::sleep(config.duration / 3).await;
    }
}

/// Keeps renewing; returns an error when the lease is lost (the caller must stop scheduling).
pub async fn keep(client: Client, config: LeaseConfig) -> Result<()> {
    let mut last_ok = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(config.duration / 3).await;
        match try_acquire(&client, &config).await {
            Ok(true) => last_ok = tokio::time::Instant::now(),
            Ok(false) => return Err(Error::LostLease(config.name.clone())),
            Err(e) => {
                tracing::warn!(error = %e, "renewing the lease");
                if last_ok.elapsed() >= config.duration {
                    return Err(Error::LostLease(config.name.clone()));
                }
            }
        }
    }
}

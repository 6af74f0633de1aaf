//! Efficiency data in: instant PromQL queries over HTTP, read on a timer per member.

use crate::credentials::{self, SecretPolicy};
use crate::error::{Error, Result};
use crate::slurm::api::errors_of;
use computenet_api::member_cluster::SecretKeyRef;
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// Longest a query may take.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(5);

/// Highest PUE taken as measured (real facilities are below 3).
pub const MAX_PUE: f64 = 10.0;

/// Largest answer read; an instant query for one number is a few hundred bytes.
pub const MAX_BODY_BYTES: usize = crate::slurm::convert::MAX_BODY_BYTES;

/// The queries of one member, with `$cluster` and `$site` already replaced.
#[derive(Debug, Clone, PartialEq)]
pub struct EfficiencyQueries {
    pub url: String,
    /// A plain http:// URL is allowed.
    pub insecure_http: bool,
    /// PEM certificates to trust for the URL.
    pub ca_secret_ref: Option<SecretKeyRef>,
    pub gpu_power: String,
    pub gpu_utilization: String,
    pub pue: String,
    pub interval: Duration,
}

/// Replaces `$cluster` and `$site` in a query.
pub fn expand(query: &str, cluster: &str, site: &str) -> String {
    query.replace("$cluster", cluster).replace("$site", site)
}

/// What identifies a running job in a progress query's placeholders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobPlaceholders<'a> {
    /// `$uid`: the TrainingJob's UID (the value of the label `computenet.io/job-uid` on
    /// its pods and Job).
    pub uid: &'a str,
    /// `$namespace` and `$name`: the TrainingJob's (`COMPUTENET_JOB` in its environment).
    pub namespace: &'a str,
    pub name: &'a str,
    /// `$remote`: its name on the member (the Job, or the Slurm batch job: `cn-...`).
    pub remote: &'a str,
    /// `$cluster` and `$site`: the member it runs on.
    pub cluster: &'a str,
    pub site: &'a str,
}

/// `text` escaped for a PromQL string literal, so a value can never end the string it
/// is put in (hub names are DNS names, but the query should not rely on it).
pub fn escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// Replaces a progress query's placeholders (`$namespace` before `$name`, so neither eats
/// the other; values escaped for string literals).
pub fn expand_job(query: &str, job: &JobPlaceholders<'_>) -> String {
    query
        .replace("$uid", &escape(job.uid))
        .replace("$namespace", &escape(job.namespace))
        .replace("$name", &escape(job.name))
        .replace("$remote", &escape(job.remote))
        .replace("$cluster", &escape(job.cluster))
        .replace("$site", &escape(job.site))
}

/// Every sample of an instant query's `vector` answer, as the value of its `label` (series
/// without it are left out) and the value; NaN and infinite values are left out. At most
/// `max` samples are read.
pub fn samples_by_label(body: &Value, label: &str, max: usize) -> Result<Vec<(String, f64)>> {
    let what = "PromQL query";
    if body.get("status").and_then(Value::as_str) != Some("success") {
        // The error wording is first_sample's.
        return first_sample(body).map(|_| Vec::new());
    }
    let data = body.get("data").ok_or_else(|| Error::Decode { what: what.into(), why: "no data".into() })?;
    if data.get("resultType").and_then(Value::as_str) != Some("vector") {
        return Err(Error::Decode { what: what.into(), why: "the progress query must answer a vector".into() });
    }
    let series = data.get("result").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    Ok(series
        .iter()
        .filter_map(|s| {
            let key = s.get("metric")?.get(label)?.as_str()?;
            let v: f64 = s.get("value")?.get(1)?.as_str()?.parse().ok()?;
            v.is_finite().then(|| (key.to_string(), v))
        })
        .take(max)
        .collect())
}

/// Runs one instant query and gives its answer as JSON.
async fn query_body(http: &reqwest::Client, url: &str, promql: &str) -> Result<(u16, Value)> {
    let endpoint = format!("{}/api/v1/query", url.trim_end_matches('/'));
    let what = format!("querying {endpoint}");
    let response = http.get(&endpoint).query(&[("query", promql)]).send().await.map_err(|e| Error::Transport {
        what: what.clone(),
        why: if e.is_timeout() { format!("no answer within {} s", QUERY_TIMEOUT.as_secs()) } else { e.to_string() },
    })?;
    let status = response.status().as_u16();
    if response.status().is_redirection() {
        return Err(credentials::redirect_refused(&what, status));
    }
    let bytes = crate::body::read_capped(response, MAX_BODY_BYTES, &what, QUERY_TIMEOUT.as_secs()).await?;
    let body: Value = serde_json::from_slice(&bytes).map_err(|e| Error::Decode { what, why: e.to_string() })?;
    Ok((status, body))
}

/// Runs one instant query answering a vector labelled by `label` (see [`samples_by_label`]).
pub async fn query_by_label(
    http: &reqwest::Client,
    url: &str,
    promql: &str,
    label: &str,
    max: usize,
) -> Result<Vec<(String, f64)>> {
    let (status, body) = query_body(http, url, promql).await?;
    match samples_by_label(&body, label, max) {
        Err(e) if status >= 400 => {
            Err(Error::Server { what: format!("querying {url}"), status, errors: vec![e.to_string()] })
        }
        other => other,
    }
}

/// The HTTP client queries run with.
pub type HttpClient = reqwest::Client;

/// Where a Prometheus is and how to reach it: a member's `spec.prometheus` connection.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    pub url: String,
    /// A plain http:// URL is allowed.
    pub insecure_http: bool,
    /// PEM certificates to trust for the URL.
    pub ca_secret_ref: Option<SecretKeyRef>,
}

/// The HTTP client for a Prometheus endpoint, checked like the efficiency readers' (https
/// unless allowed, no redirects, the CA Secret read as `policy` allows).
pub async fn endpoint_client(
    endpoint: &Endpoint,
    hub: &kube::Client,
    policy: &SecretPolicy,
) -> Result<reqwest::Client> {
    let transport =
        credentials::check_endpoint("the Prometheus URL", "spec.prometheus", &endpoint.url, endpoint.insecure_http)?;
    let ca = match &endpoint.ca_secret_ref {
        Some(r) => Some((r, policy.secret_value(hub, r).await?)),
        None => None,
    };
    let ca = ca.as_ref().map(|(r, pem)| (*r, pem.as_slice()));
    credentials::http_client(transport, ca, Duration::from_secs(3), QUERY_TIMEOUT)
}

/// The last reading of a member's efficiency series.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reading {
    pub gpu_power_w: Option<f64>,
    pub gpu_utilization: Option<f64>,
    pub pue: Option<f64>,
    pub at: Option<SystemTime>,
    /// Why the last read failed (each failed query, in one line).
    pub error: Option<String>,
}

/// The first sample of an instant query's answer (`vector` or `scalar`); `None` for an
/// empty result. Errors name Prometheus' `error` field.
pub fn first_sample(body: &Value) -> Result<Option<f64>> {
    let what = "PromQL query";
    if body.get("status").and_then(Value::as_str) != Some("success") {
        let why = body
            .get("error")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| errors_of(body).into_iter().next())
            .unwrap_or_else(|| "no status in the answer".into());
        return Err(Error::Server { what: what.into(), status: 200, errors: vec![why] });
    }
    let data = body.get("data").ok_or_else(|| Error::Decode { what: what.into(), why: "no data".into() })?;
    let value = match data.get("resultType").and_then(Value::as_str) {
        Some("vector") => {
            data.get("result").and_then(Value::as_array).and_then(|r| r.first()).and_then(|s| s.get("value"))
        }
        Some("scalar") => data.get("result"),
        other => {
            return Err(Error::Decode {
                what: what.into(),
                why: format!("result type {other:?} is not a vector or scalar"),
            })
        }
    };
    let Some(pair) = value else { return Ok(None) };
    let text = pair
        .get(1)
        .and_then(Value::as_str)
        .ok_or_else(|| Error::Decode { what: what.into(), why: format!("sample {pair} is not [time, \"value\"]") })?;
    let v: f64 = text.parse().map_err(|_| Error::Decode { what: what.into(), why: format!("value {text:?}") })?;
    Ok(v.is_finite().then_some(v))
}

/// Runs one instant query.
pub async fn query(http: &reqwest::Client, url: &str, promql: &str) -> Result<Option<f64>> {
    let (status, body) = query_body(http, url, promql).await?;
    match first_sample(&body) {
        Err(e) if status >= 400 => Err(Error::Server {
            what: format!("querying {}/api/v1/query", url.trim_end_matches('/')),
            status,
            errors: vec![e.to_string()],
        }),
        other => other,
    }
}

/// The HTTP client for a Prometheus: no redirects, the connection's CA.
async fn client(
    queries: &EfficiencyQueries,
    transport: credentials::Transport,
    hub: &kube::Client,
    policy: &SecretPolicy,
) -> Result<reqwest::Client> {
    let ca = match &queries.ca_secret_ref {
        Some(r) => Some((r, policy.secret_value(hub, r).await?)),
        None => None,
    };
    let ca = ca.as_ref().map(|(r, pem)| (*r, pem.as_slice()));
    credentials::http_client(transport, ca, Duration::from_secs(3), QUERY_TIMEOUT)
}

/// Reads a member's efficiency series on a timer; the latest reading is shared.
#[derive(Debug, Clone)]
pub struct EfficiencyPoller {
    pub queries: EfficiencyQueries,
    reading: Arc<Mutex<Reading>>,
}

impl EfficiencyPoller {
    /// Starts reading; the task ends when the poller is dropped. The CA Secret, if any, is
    /// read from `hub` as `policy` allows before the first query (and again after a failure).
    pub fn start(
        queries: EfficiencyQueries,
        hub: kube::Client,
        policy: SecretPolicy,
        changed: Arc<tokio::sync::Notify>,
    ) -> Result<Self> {
        let transport =
            credentials::check_endpoint("the Prometheus URL", "spec.prometheus", &queries.url, queries.insecure_http)?;
        let poller = Self { queries: queries.clone(), reading: Arc::new(Mutex::new(Reading::default())) };
        let weak = Arc::downgrade(&poller.reading);
        tokio::spawn(async move {
            let mut http: Option<reqwest::Client> = None;
            loop {
                if http.is_none() {
                    match client(&queries, transport, &hub, &policy).await {
                        Ok(c) => http = Some(c),
                        Err(e) => {
                            let Some(shared) = weak.upgrade() else { break };
                            let failed = Reading { error: Some(e.to_string()), ..Reading::default() };
                            *shared.lock().unwrap_or_else(|p| p.into_inner()) = failed;
                            drop(shared);
                            tokio::time::sleep(queries.interval).await;
                            continue;
                        }
                    }
                }
                let Some(http) = http.as_ref() else { continue };
                let (power, util, pue) = tokio::join!(
                    query(http, &queries.url, &queries.gpu_power),
                    query(http, &queries.url, &queries.gpu_utilization),
                    query(http, &queries.url, &queries.pue),
                );
                let Some(shared) = weak.upgrade() else { break };
                let mut errors = Vec::new();
                let mut keep = |name: &str, r: Result<Option<f64>>| match r {
                    Ok(v) => v,
                    Err(e) => {
                        errors.push(format!("{name}: {e}"));
                        None
                    }
                };
                let next = Reading {
                    gpu_power_w: keep("gpu power", power),
                    gpu_utilization: keep("gpu utilisation", util).map(|u| u.clamp(0.0, 1.0)),
                    // A PUE below 1 or above any real facility's is a broken series.
                    pue: keep("pue", pue).filter(|p| (1.0..=MAX_PUE).contains(p)),
                    at: Some(SystemTime::now()),
                    error: (!errors.is_empty()).then(|| errors.join("; ")),
                };
                {
                    let mut r = shared.lock().unwrap_or_else(|p| p.into_inner());
                    if *r != (Reading { at: r.at, ..next.clone() }) {
                        changed.notify_one();
                    }
                    *r = next;
                }
                drop(shared);
                tokio::time::sleep(queries.interval).await;
            }
        });
        Ok(poller)
    }

    /// The latest reading.
    pub fn reading(&self) -> Reading {
        self.reading.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn instant_query_answers_read() {
        let vector = json!({"status": "success", "data": {"resultType": "vector",
            "result": [{"metric": {}, "value": [1700000000.1, "2560.5"]}]}});
        assert_eq!(first_sample(&vector).expect("reads"), Some(2560.5));
        let scalar = json!({"status": "success", "data": {"resultType": "scalar", "result": [1.0, "1.25"]}});
        assert_eq!(first_sample(&scalar).expect("reads"), Some(1.25));
        let empty = json!({"status": "success", "data": {"resultType": "vector", "result": []}});
        assert_eq!(first_sample(&empty).expect("reads"), None);
        let nan = json!({"status": "success", "data": {"resultType": "vector", "result": [{"value": [1, "NaN"]}]}});
        assert_eq!(first_sample(&nan).expect("reads"), None);
        let bad = json!({"status": "error", "errorType": "bad_data", "error": "parse error at char 5"});
        assert!(first_sample(&bad).expect_err("refused").to_string().contains("parse error at char 5"));
        let matrix = json!({"status": "success", "data": {"resultType": "matrix", "result": []}});
        assert!(first_sample(&matrix).is_err());
        let odd = json!({"status": "success", "data": {"resultType": "vector", "result": [{"value": [1, 2]}]}});
        assert!(first_sample(&odd).is_err());
    }

    #[test]
    fn job_placeholders_expand_escaped() {
        let job = JobPlaceholders {
            uid: "0a1b",
            namespace: "team-a",
            name: "bert",
            remote: "cn-0a1b",
            cluster: "ai-1",
            site: "west",
        };
        assert_eq!(
            expand_job(
                r#"rate(steps{uid="$uid",ns="$namespace",job="$name",pod=~"$remote-.*",c="$cluster"}[2m])"#,
                &job
            ),
            r#"rate(steps{uid="0a1b",ns="team-a",job="bert",pod=~"cn-0a1b-.*",c="ai-1"}[2m])"#
        );
        let hostile = JobPlaceholders { name: "x\"} or vector(1e9) #\\", ..job };
        assert_eq!(expand_job(r#"s{job="$name"}"#, &hostile), r#"s{job="x\"} or vector(1e9) #\\"}"#);
    }

    #[test]
    fn vectors_read_by_label() {
        let body = json!({"status": "success", "data": {"resultType": "vector", "result": [
            {"metric": {"job_uid": "a"}, "value": [1, "2.5"]},
            {"metric": {"other": "b"}, "value": [1, "1"]},
            {"metric": {"job_uid": "c"}, "value": [1, "NaN"]},
            {"metric": {"job_uid": "d"}, "value": [1, "-3"]},
            {"metric": {"job_uid": "e"}, "value": [1, "4"]}]}});
        let all = samples_by_label(&body, "job_uid", 10).expect("reads");
        assert_eq!(all, vec![("a".to_string(), 2.5), ("d".to_string(), -3.0), ("e".to_string(), 4.0)]);
        assert_eq!(samples_by_label(&body, "job_uid", 1).expect("reads").len(), 1, "capped");
        let scalar = json!({"status": "success", "data": {"resultType": "scalar", "result": [1.0, "1.25"]}});
        assert!(samples_by_label(&scalar, "job_uid", 10).is_err());
        let bad = json!({"status": "error", "error": "parse error"});
        assert!(samples_by_label(&bad, "job_uid", 10).expect_err("refused").to_string().contains("parse error"));
    }

    #[test]
    fn placeholders_expand() {
        assert_eq!(
            expand(r#"sum(x{cluster="$cluster",site="$site"})"#, "ai-1", "west"),
            r#"sum(x{cluster="ai-1",site="west"})"#
        );
    }
}

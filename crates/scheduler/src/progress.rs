//! Running jobs' progress, read from Prometheus, and what is learned from it
//! (`--progress-query`): each running job's remaining time at its measured rate, and
//! learned rates per placement that later estimates prefer (see
//! [`computenet_core::learn`]).
//!
//! The query runs against the Prometheus its member names (`spec.prometheus`: URL, CA,
//! `insecureHTTP`, checked like the efficiency readers'), in one of two forms:
//! - per job, when it names the job (`$uid`, `$namespace`, `$name` or `$remote`): one
//!   query per running job, answering its steps per second;
//! - per member otherwise: one query per member answering a vector with a series per job,
//!   told apart by the label `--progress-uid-label` (the job's UID), which scales to many
//!   jobs with one query.
//!
//! Queries run in the background every `--progress-interval-s`; a pass takes in what was
//! read since the last one, so a slow Prometheus never holds up a pass.

use crate::snapshot::Built;
use computenet_api::training_job::TrainingJobPhase;
use computenet_api::view;
use computenet_api::{MemberCluster, TrainingJob};
use computenet_core::accelerator::CPU_ONLY;
use computenet_core::learn::{LearnConfig, LearnedProfiles, Learner, Observation, PlacementKey};
use computenet_members::credentials::{self, SecretPolicy};
use computenet_members::labels;
use computenet_members::prometheus::{self, Endpoint, JobPlaceholders};
use futures::StreamExt;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// Per-job queries one round runs at most (the rest wait for a later round, oldest read
/// first); the per-member form has no such limit.
pub const MAX_JOB_QUERIES_PER_ROUND: usize = 2000;
/// Queries in flight at once.
const QUERY_CONCURRENCY: usize = 8;
/// Series read from one per-member answer at most.
const MAX_SERIES_PER_ANSWER: usize = 100_000;
/// Readings kept between two passes at most (older ones make room).
const MAX_PENDING_READINGS: usize = 200_000;

/// How progress is read (`--progress-*` flags).
#[derive(Debug, Clone, PartialEq)]
pub struct ProgressConfig {
    /// PromQL answering steps per second; see the module documentation for the forms.
    pub query: String,
    /// In the per-member form: the label carrying the job's UID.
    pub uid_label: String,
    pub interval: Duration,
    pub learn: LearnConfig,
}

impl ProgressConfig {
    /// Whether the query names the job (one query per job).
    pub fn per_job(&self) -> bool {
        ["$uid", "$namespace", "$name", "$remote"].iter().any(|p| self.query.contains(p))
    }
}

/// A running job whose progress is read.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub uid: String,
    pub member: String,
    pub endpoint: Endpoint,
    /// The query with every placeholder replaced.
    pub promql: String,
    pub started_at: u64,
    pub steps: u64,
    pub key: PlacementKey,
}

/// The running jobs to read (pure): Running, with `work.model` and `work.steps`, on a
/// member naming a Prometheus that its connection checks allow (`endpoints`, by member).
pub fn targets(
    config: &ProgressConfig,
    jobs: &[Arc<TrainingJob>],
    members: &[Arc<MemberCluster>],
    endpoints: &BTreeMap<String, Endpoint>,
) -> Vec<Target> {
    let sites: HashMap<&str, &str> =
        members.iter().filter_map(|m| Some((m.metadata.name.as_deref()?, m.spec.site.as_str()))).collect();
    let mut out = Vec::new();
    for tj in jobs {
        if view::phase(tj) != Some(TrainingJobPhase::Running) {
            continue;
        }
        let (Some(status), Some(model), Some(steps)) = (tj.status.as_ref(), &tj.spec.work.model, tj.spec.work.steps)
        else {
            continue;
        };
        let (Some(placement), Ok(steps)) = (status.placement.as_ref(), u64::try_from(steps)) else { continue };
        let Some(endpoint) = endpoints.get(&placement.cluster) else { continue };
        let uid = view::uid(tj);
        let remote = labels::remote_name(uid);
        let job = JobPlaceholders {
            uid,
            namespace: tj.metadata.namespace.as_deref().unwrap_or_default(),
            name: tj.metadata.name.as_deref().unwrap_or_default(),
            remote: &remote,
            cluster: &placement.cluster,
            site: sites.get(placement.cluster.as_str()).copied().unwrap_or_default(),
        };
        // The attempt started when it was created on the member (admission before that).
        let started = status.dispatch_time.as_ref().or(status.start_time.as_ref());
        out.push(Target {
            uid: uid.to_string(),
            member: placement.cluster.clone(),
            endpoint: endpoint.clone(),
            promql: prometheus::expand_job(&config.query, &job),
            started_at: started.map_or(0, |t| view::unix(t.0)),
            steps,
            key: PlacementKey {
                tenant: tj.metadata.namespace.clone().unwrap_or_default(),
                model: model.clone(),
                accelerator: placement.accelerator.clone().unwrap_or_else(|| CPU_ONLY.to_string()),
                gpus: u32::try_from(placement.gpus.max(1)).unwrap_or(u32::MAX),
                nodes: u32::try_from(placement.nodes.len().max(1)).unwrap_or(u32::MAX),
                batch_size: tj.spec.work.batch_size.and_then(|b| u32::try_from(b).ok()),
            },
        });
    }
    out
}

/// Each running job's end at its measured rate (pure): `now` plus the remaining steps'
/// time, for jobs with enough readings; others keep the estimate made at admission.
pub fn apply(learner: &Learner, built: &mut Built, now: u64) {
    for r in &mut built.running {
        if let Some(remaining) = learner.remaining_s(&r.id) {
            r.estimated_end = now.saturating_add(view::estimated_seconds(remaining));
        }
    }
}

/// One reading: the job's UID, steps per second, when (unix seconds), the member that answered.
type Reading = (String, f64, u64, String);

/// What the background reader and the passes share.
#[derive(Debug, Default)]
struct Shared {
    targets: Vec<Target>,
    readings: Vec<Reading>,
    /// The last round's failures, one line per member.
    errors: BTreeMap<String, String>,
}

/// The progress reader and what it learned.
#[derive(Debug)]
pub struct Progress {
    config: ProgressConfig,
    policy: SecretPolicy,
    learner: Learner,
    shared: Arc<Mutex<Shared>>,
    /// Failures already logged (each logged when it first appears).
    logged: BTreeMap<String, String>,
}

impl Progress {
    /// Starts reading in the background; the task ends when this is dropped.
    pub fn start(config: ProgressConfig, hub: kube::Client, policy: SecretPolicy) -> Self {
        let shared = Arc::new(Mutex::new(Shared::default()));
        tokio::spawn(read_loop(Arc::downgrade(&shared), config.clone(), hub, policy.clone()));
        Progress { learner: Learner::new(config.learn), config, policy, shared, logged: BTreeMap::new() }
    }

    /// One pass: takes in the readings since the last one, hands the reader this pass's
    /// running jobs, and sets the running jobs' ends in `built` from their progress.
    pub fn pass(&mut self, jobs: &[Arc<TrainingJob>], members: &[Arc<MemberCluster>], built: &mut Built, now: u64) {
        let endpoints: BTreeMap<String, Endpoint> = members
            .iter()
            .filter(|m| credentials::check_spec(&m.spec, &self.policy).is_ok())
            .filter_map(|m| {
                let p = m.spec.prometheus.as_ref()?;
                let endpoint = Endpoint {
                    url: p.url.clone(),
                    insecure_http: p.insecure_http,
                    ca_secret_ref: p.ca_secret_ref.clone(),
                };
                Some((m.metadata.name.clone()?, endpoint))
            })
            .collect();
        let targets = targets(&self.config, jobs, members, &endpoints);
        let (readings, errors) = {
            let mut shared = self.shared.lock().unwrap_or_else(|p| p.into_inner());
            shared.targets = targets.clone();
            (std::mem::take(&mut shared.readings), shared.errors.clone())
        };
        for (member, error) in &errors {
            if self.logged.get(member) != Some(error) {
                tracing::warn!(%member, %error, "reading job progress");
            }
        }
        self.logged = errors;
        let by_uid: HashMap<&str, &Target> = targets.iter().map(|t| (t.uid.as_str(), t)).collect();
        for (uid, steps_per_s, at, member) in readings {
            // A member's answer counts only for jobs that run on it: no member (nor a
            // tenant labelling its own series) speaks for a job elsewhere.
            let Some(t) = by_uid.get(uid.as_str()).filter(|t| t.member == member) else { continue };
            self.learner.observe(&Observation {
                job: uid,
                started_at: t.started_at,
                steps: t.steps,
                key: t.key.clone(),
                steps_per_s,
                at,
            });
        }
        self.learner.retain(|id| by_uid.contains_key(id));
        apply(&self.learner, built, now);
    }

    /// The learned rates by placement.
    pub fn learned(&self) -> &LearnedProfiles {
        &self.learner.profiles
    }

    /// Each tracked job's progress (steps done, its own rate), for whoever needs its
    /// remaining work.
    pub fn learner(&self) -> &Learner {
        &self.learner
    }
}

/// Reads every target each interval until `shared` is dropped.
async fn read_loop(
    shared: std::sync::Weak<Mutex<Shared>>,
    config: ProgressConfig,
    hub: kube::Client,
    policy: SecretPolicy,
) {
    let per_job = config.per_job();
    let mut clients: HashMap<String, (Endpoint, prometheus::HttpClient)> = HashMap::new();
    // Per job: where the next round starts, so that more jobs than a round reads all get read.
    let mut offset = 0usize;
    loop {
        tokio::time::sleep(config.interval).await;
        let Some(targets) = shared.upgrade().map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).targets.clone())
        else {
            break;
        };
        let mut errors = BTreeMap::new();
        // Clients per member, made again when its endpoint changed or it failed.
        let mut members: BTreeMap<&str, &Endpoint> = BTreeMap::new();
        for t in &targets {
            members.entry(t.member.as_str()).or_insert(&t.endpoint);
        }
        clients.retain(|m, (e, _)| members.get(m.as_str()) == Some(&&*e));
        for (member, endpoint) in &members {
            if clients.contains_key(*member) {
                continue;
            }
            match prometheus::endpoint_client(endpoint, &hub, &policy).await {
                Ok(c) => {
                    clients.insert(member.to_string(), ((*endpoint).clone(), c));
                }
                Err(e) => {
                    errors.insert(member.to_string(), e.to_string());
                }
            }
        }
        let now = || SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let mut readings: Vec<Reading> = Vec::new();
        if per_job {
            let n = targets.len();
            offset = if n == 0 { 0 } else { offset % n };
            let round: Vec<&Target> =
                targets.iter().cycle().skip(offset).take(n.min(MAX_JOB_QUERIES_PER_ROUND)).collect();
            offset += round.len();
            let mut queries = Vec::with_capacity(round.len());
            for t in round {
                let Some((_, http)) = clients.get(&t.member) else { continue };
                queries.push(async move { (t, prometheus::query(http, &t.endpoint.url, &t.promql).await) });
            }
            let answers = futures::stream::iter(queries).buffer_unordered(QUERY_CONCURRENCY).collect::<Vec<_>>().await;
            for (t, answer) in answers {
                match answer {
                    Ok(Some(v)) => readings.push((t.uid.clone(), v, now(), t.member.clone())),
                    Ok(None) => {}
                    Err(e) => {
                        errors.entry(t.member.clone()).or_insert_with(|| e.to_string());
                    }
                }
            }
        } else {
            // One query per member; every target there has the same (member-level) query.
            let mut firsts: BTreeMap<&str, &Target> = BTreeMap::new();
            for t in &targets {
                firsts.entry(t.member.as_str()).or_insert(t);
            }
            let label = config.uid_label.as_str();
            let mut queries = Vec::with_capacity(firsts.len());
            for t in firsts.into_values() {
                let Some((_, http)) = clients.get(&t.member) else { continue };
                queries.push(async move {
                    let a = prometheus::query_by_label(http, &t.endpoint.url, &t.promql, label, MAX_SERIES_PER_ANSWER);
                    (t, a.await)
                });
            }
            let answers = futures::stream::iter(queries).buffer_unordered(QUERY_CONCURRENCY).collect::<Vec<_>>().await;
            for (t, answer) in answers {
                match answer {
                    Ok(series) => {
                        let at = now();
                        readings.extend(series.into_iter().map(|(uid, v)| (uid, v, at, t.member.clone())));
                    }
                    Err(e) => {
                        errors.insert(t.member.clone(), e.to_string());
                    }
                }
            }
        }
        let Some(shared) = shared.upgrade() else { break };
        let mut s = shared.lock().unwrap_or_else(|p| p.into_inner());
        s.readings.extend(readings);
        let excess = s.readings.len().saturating_sub(MAX_PENDING_READINGS);
        s.readings.drain(..excess);
        s.errors = errors;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use computenet_api::training_job::{NodeReplicas, PlacementStatus, TrainingJobSpec, TrainingJobStatus};
    use computenet_core::RunningJob;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::Timestamp;

    fn config(query: &str) -> ProgressConfig {
        ProgressConfig {
            query: query.into(),
            uid_label: "job_uid".into(),
            interval: Duration::from_secs(30),
            learn: LearnConfig { min_samples: 2, ..LearnConfig::default() },
        }
    }

    fn job(uid: &str, phase: TrainingJobPhase, work: serde_json::Value) -> Arc<TrainingJob> {
        let spec: TrainingJobSpec = serde_json::from_value(serde_json::json!({
            "queueName": "q",
            "replicas": 2,
            "resources": {"cpu": "1", "memory": "1Gi", "accelerators": {"count": 4}},
            "workload": {"image": "busybox", "command": ["true"]},
            "work": work,
        }))
        .expect("spec");
        let mut tj = TrainingJob::new(&format!("job-{uid}"), spec);
        tj.metadata.namespace = Some("team-a".into());
        tj.metadata.uid = Some(uid.into());
        tj.status = Some(TrainingJobStatus {
            phase: Some(phase),
            placement: Some(PlacementStatus {
                cluster: "ai-1".into(),
                accelerator: Some("A100-80G".into()),
                gpus: 8,
                nodes: vec![
                    NodeReplicas { node: "n1".into(), replicas: 1 },
                    NodeReplicas { node: "n2".into(), replicas: 1 },
                ],
                ..PlacementStatus::default()
            }),
            start_time: Some(Time(Timestamp::from_second(900).unwrap())),
            dispatch_time: Some(Time(Timestamp::from_second(1_000).unwrap())),
            ..TrainingJobStatus::default()
        });
        Arc::new(tj)
    }

    fn member(name: &str) -> Arc<MemberCluster> {
        let spec = serde_json::from_value(serde_json::json!({
            "kind": "AI", "site": "west",
            "kubernetes": {"kubeconfigSecretRef": {"name": "k", "namespace": "ns", "key": "k"}},
        }))
        .expect("member spec");
        let mut m = MemberCluster::new(name, spec);
        m.metadata.name = Some(name.into());
        Arc::new(m)
    }

    fn endpoints() -> BTreeMap<String, Endpoint> {
        let e = Endpoint { url: "https://prom:9090".into(), insecure_http: false, ca_secret_ref: None };
        BTreeMap::from([("ai-1".to_string(), e)])
    }

    #[test]
    fn running_jobs_with_steps_are_read_with_their_placement() {
        let jobs = vec![
            job("u1", TrainingJobPhase::Running, serde_json::json!({"model": "bert", "steps": 1000, "batchSize": 256})),
            job("u2", TrainingJobPhase::Dispatched, serde_json::json!({"model": "bert", "steps": 1000})),
            job("u3", TrainingJobPhase::Running, serde_json::json!({"gpuHours": 8})),
        ];
        let c = config(r#"rate(training_steps_total{job_uid="$uid",namespace="$namespace",pod=~"$remote-.*"}[2m])"#);
        assert!(c.per_job());
        let t = targets(&c, &jobs, &[member("ai-1")], &endpoints());
        assert_eq!(t.len(), 1, "only the running job with a model and steps");
        let t = &t[0];
        assert_eq!(t.promql, r#"rate(training_steps_total{job_uid="u1",namespace="team-a",pod=~"cn-u1-.*"}[2m])"#);
        assert_eq!((t.started_at, t.steps), (1_000, 1000), "started when dispatched");
        assert_eq!(
            t.key,
            PlacementKey {
                tenant: "team-a".into(),
                model: "bert".into(),
                accelerator: "A100-80G".into(),
                gpus: 8,
                nodes: 2,
                batch_size: Some(256)
            }
        );
        assert!(targets(&c, &jobs, &[member("ai-1")], &BTreeMap::new()).is_empty(), "no Prometheus, no reading");
        let per_member =
            config(r#"sum by (job_uid) (rate(training_steps_total{cluster="$cluster",site="$site"}[2m]))"#);
        assert!(!per_member.per_job());
        let t = targets(&per_member, &jobs, &[member("ai-1")], &endpoints());
        assert_eq!(t[0].promql, r#"sum by (job_uid) (rate(training_steps_total{cluster="ai-1",site="west"}[2m]))"#);
    }

    #[test]
    fn the_summary_says_an_estimate_was_learned() {
        use computenet_core::throughput::EstimateSource;
        let words = crate::transitions::estimate_words;
        assert_eq!(words(EstimateSource::Learned { jobs: 1 }), "runtime learned from 1 running job");
        assert_eq!(words(EstimateSource::Learned { jobs: 3 }), "runtime learned from 3 running jobs");
        assert_eq!(words(EstimateSource::Measured), "runtime from a measured profile");
        assert_eq!(computenet_api::convert::estimate_source(EstimateSource::Learned { jobs: 3 }), "Learned");
    }

    #[test]
    fn measured_progress_sets_the_end_of_running_jobs() {
        let mut learner = Learner::new(LearnConfig { min_samples: 2, ..LearnConfig::default() });
        let key = PlacementKey {
            tenant: "t".into(),
            model: "bert".into(),
            accelerator: "A100-80G".into(),
            gpus: 8,
            nodes: 2,
            batch_size: None,
        };
        let o = |at| Observation {
            job: "u1".into(),
            started_at: 1_000,
            steps: 1000,
            key: key.clone(),
            steps_per_s: 2.0,
            at,
        };
        let running = |id: &str| RunningJob {
            id: id.into(),
            queue: "q".into(),
            priority: 0,
            cluster: 0,
            accelerator: None,
            slots: Vec::new(),
            per_replica: Default::default(),
            started_at: 1_000,
            estimated_end: 99_999,
            restart_cost_s: None,
        };
        let mut built = Built {
            pool: computenet_core::Pool {
                clusters: Vec::new(),
                catalogue: computenet_core::Catalogue::built_in(),
                data_sets: BTreeMap::new(),
                wan_gbps: view::WAN_GBPS,
            },
            queues: Vec::new(),
            cohorts: Vec::new(),
            pending: Vec::new(),
            running: vec![running("u1"), running("u2")],
            problems: Vec::new(),
            measured: Vec::new(),
        };
        learner.observe(&o(1_100));
        apply(&learner, &mut built, 1_100);
        assert_eq!(built.running[0].estimated_end, 99_999, "one reading: the admission's estimate stays");
        learner.observe(&o(1_150));
        apply(&learner, &mut built, 1_150);
        // 300 steps done at 2/s by 1150: 700 left, 350 s.
        assert_eq!((built.running[0].estimated_end, built.running[1].estimated_end), (1_500, 99_999));
    }
}

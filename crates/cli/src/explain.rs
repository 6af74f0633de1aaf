//! `kubectl computenet explain JOB`: why a job is where it is, or why it waits.

use crate::queue::wait_reason;
use crate::table::{self, number, or_dash, Table};
use computenet_api::training_job::{
    AttemptStatus, CandidateStatus, PlacementStatus, ProgressSource, RejectedStatus, RemoteReference, RetryStatus,
};
use computenet_api::{view, TrainingJob, TrainingJobSpec};
use computenet_core::quantity::format_bytes;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde::Serialize;

/// The explain report.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExplainReport {
    pub namespace: String,
    pub name: String,
    pub queue: String,
    pub priority: i32,
    /// "4 x (8 cpu, 16Gi, 8 GPUs of H800|A100-80G)".
    pub gang: String,
    /// Replicas the spec asks for (an elastic gang may run at another size: see placement).
    pub replicas: i32,
    pub objective: String,
    pub phase: Option<String>,
    pub queue_position: Option<i32>,
    pub admitted: bool,
    pub suspended: bool,
    /// The scheduler's explanation in one line, or why there is none.
    pub summary: String,
    pub placement: Option<PlacementStatus>,
    pub remote: Option<RemoteReference>,
    /// Times, RFC 3339.
    pub created: Option<Time>,
    pub start_time: Option<Time>,
    pub dispatch_time: Option<Time>,
    pub completion_time: Option<Time>,
    pub requeues: Option<i32>,
    /// Dispatch failures in a row and when the next attempt is due.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryStatus>,
    /// "elastic 2..8 replicas, restartable (...)", when the job is either.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adaptive: Option<String>,
    /// The share of the work done now, while it runs or once some is recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<ProgressReport>,
    /// Earlier attempts, oldest first (the last 20).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<AttemptStatus>,
    /// The best candidates with their score breakdown; lower is better.
    pub candidates: Vec<CandidateStatus>,
    /// Every other member and why it was not a candidate.
    pub rejected: Vec<RejectedStatus>,
    pub conditions: Vec<ConditionRow>,
}

/// How far the job is.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProgressReport {
    /// Share of the work done now, 0 to 1 ([`view::progress`]).
    pub completed: f64,
    /// `Measured` (reported), or `Estimated` (from elapsed time against the estimate).
    pub source: String,
    /// The share recorded in the status (when the current attempt started, if estimated).
    pub recorded: Option<f64>,
}

/// One condition of the job.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConditionRow {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    pub reason: String,
    pub message: String,
    pub age_seconds: i64,
}

/// A gang in one line: "4 x (8 cpu, 64Gi, 8 GPUs of A100-80G|H800)".
pub fn gang(spec: &TrainingJobSpec) -> String {
    let r = &spec.resources;
    let memory = convert_memory(&computenet_api::convert::quantity_text(&r.memory));
    let mut parts = vec![format!("{} cpu", computenet_api::convert::quantity_text(&r.cpu)), memory];
    if let Some(a) = &r.accelerators {
        let mut devices = format!("{} GPU{}", a.count, if a.count == 1 { "" } else { "s" });
        if !a.types.is_empty() {
            devices.push_str(&format!(" of {}", a.types.join("|")));
        }
        if let Some(min) = a.min_memory_gi_b {
            devices.push_str(&format!(" with >= {min} GiB"));
        }
        parts.push(devices);
    }
    format!("{} x ({})", spec.replicas, parts.join(", "))
}

fn convert_memory(text: &str) -> String {
    computenet_core::quantity::parse_bytes(text).map_or_else(|_| text.to_string(), format_bytes)
}

/// The elastic range and checkpointing in one line, or `None` for a rigid job.
pub fn adaptive(spec: &TrainingJobSpec) -> Option<String> {
    let mut parts = Vec::new();
    if let Some(e) = &spec.elastic {
        parts.push(format!("elastic {}..{} replicas", e.min_replicas, e.max_replicas));
    }
    if let Some(c) = spec.checkpoint.filter(|c| c.restartable) {
        parts.push(format!(
            "restartable (grace period {}, restart cost {})",
            table::age(c.grace_period_seconds),
            table::age(c.restart_cost_seconds)
        ));
    }
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// The job's progress now, while it runs or once some is recorded.
fn progress(job: &TrainingJob, now: i64) -> Option<ProgressReport> {
    let recorded = job.status.as_ref().and_then(|s| s.progress.as_ref());
    if recorded.is_none() && !view::is_running(job) {
        return None;
    }
    let measured = recorded.is_some_and(|p| p.source == ProgressSource::Measured);
    Some(ProgressReport {
        completed: view::progress(job, u64::try_from(now).unwrap_or(0)),
        source: if measured { "Measured" } else { "Estimated" }.to_string(),
        recorded: recorded.map(|p| p.completed),
    })
}

/// The report for `job`; `now` is seconds since the epoch, for condition ages.
pub fn build(job: &TrainingJob, now: i64) -> ExplainReport {
    let status = job.status.clone().unwrap_or_default();
    let summary = match (&job.status, status.explanation.as_ref()) {
        (None, _) => {
            "no decision yet: the scheduler has not looked at this job (is `computenet serve` running?)".to_string()
        }
        (Some(_), Some(e)) if !e.summary.is_empty() => e.summary.clone(),
        (Some(_), _) => wait_reason(job),
    };
    let explanation = status.explanation.clone().unwrap_or_default();
    ExplainReport {
        namespace: job.metadata.namespace.clone().unwrap_or_default(),
        name: job.metadata.name.clone().unwrap_or_default(),
        queue: job.spec.queue_name.clone(),
        priority: job.spec.priority,
        gang: gang(&job.spec),
        replicas: job.spec.replicas,
        objective: format!("{:?}", job.spec.placement.objective),
        phase: status.phase.map(|p| format!("{p:?}")),
        queue_position: status.queue_position,
        admitted: status.admitted.unwrap_or(false),
        suspended: job.spec.suspend,
        summary,
        placement: status.placement.clone(),
        remote: status.remote.clone(),
        created: job.metadata.creation_timestamp.clone(),
        start_time: status.start_time.clone(),
        dispatch_time: status.dispatch_time.clone(),
        completion_time: status.completion_time.clone(),
        requeues: status.requeues,
        retry: status.retry.clone(),
        adaptive: adaptive(&job.spec),
        progress: progress(job, now),
        attempts: status.attempts.clone(),
        candidates: explanation.candidates,
        rejected: explanation.rejected,
        conditions: status
            .conditions
            .iter()
            .map(|c| ConditionRow {
                type_: c.type_.clone(),
                status: c.status.clone(),
                reason: c.reason.clone(),
                message: c.message.clone(),
                age_seconds: table::seconds_since(&c.last_transition_time, now),
            })
            .collect(),
    }
}

/// The candidates as a table (shared with `dry-run`).
pub fn candidates_table(candidates: &[CandidateStatus]) -> String {
    let mut t = Table::new(&[
        "RANK",
        "CLUSTER",
        "ACCELERATOR",
        "SCORE",
        "TIME",
        "ENERGY",
        "COST",
        "CARBON",
        "RUNTIME",
        "ESTIMATE FROM",
        "ENERGY KWH",
    ]);
    for (i, c) in candidates.iter().enumerate() {
        t.row(vec![
            (i + 1).to_string(),
            c.cluster.clone(),
            or_dash(c.accelerator.as_deref()),
            number(c.score, 3),
            number(c.time_score, 3),
            number(c.energy_score, 3),
            number(c.cost_score, 3),
            number(c.carbon_score, 3),
            table::duration(c.runtime_seconds),
            or_dash(c.estimate_source.as_deref()),
            number(c.energy_k_wh, 2),
        ]);
    }
    t.render()
}

/// A share as a percentage ("62%").
fn percent(share: f64) -> String {
    format!("{}%", number(100.0 * share, 0))
}

/// The ended attempts as a table, oldest first.
pub fn attempts_table(attempts: &[AttemptStatus]) -> String {
    let mut t =
        Table::new(&["ATTEMPT", "CLUSTER", "ACCELERATOR", "REPLICAS", "START", "END", "REASON", "PROGRESS", "MESSAGE"]);
    for a in attempts {
        t.row(vec![
            a.attempt.to_string(),
            a.cluster.clone(),
            or_dash(a.accelerator.as_deref()),
            a.replicas.to_string(),
            or_dash(a.start_time.as_ref().map(table::time)),
            or_dash(a.end_time.as_ref().map(table::time)),
            a.reason.clone(),
            or_dash(a.completed.map(percent)),
            a.message.clone().unwrap_or_default(),
        ]);
    }
    t.render()
}

/// The rejected members as a table (shared with `dry-run`).
pub fn rejected_table(rejected: &[RejectedStatus]) -> String {
    let mut t = Table::new(&["CLUSTER", "WHY NOT"]);
    for r in rejected {
        t.row(vec![r.cluster.clone(), r.reason.clone()]);
    }
    t.render()
}

fn field(out: &mut String, name: &str, value: impl AsRef<str>) {
    out.push_str(&format!("{:<12}{}\n", format!("{name}:"), value.as_ref()));
}

fn with_age(time: &Option<Time>, now: i64) -> Option<String> {
    time.as_ref().map(|t| format!("{} ({} ago)", table::time(t), table::age(table::seconds_since(t, now))))
}

/// The report as text and tables.
pub fn table(report: &ExplainReport, now: i64) -> String {
    let mut out = String::new();
    field(&mut out, "Job", format!("{}/{}", report.namespace, report.name));
    field(&mut out, "Queue", format!("{} (priority {})", report.queue, report.priority));
    field(&mut out, "Gang", &report.gang);
    if let Some(a) = &report.adaptive {
        field(&mut out, "Adaptive", a);
    }
    field(&mut out, "Objective", &report.objective);
    let mut phase = report.phase.clone().unwrap_or_else(|| "-".to_string());
    if let Some(p) = report.queue_position {
        phase.push_str(&format!(", position {p} in {}", report.queue));
    }
    if report.suspended {
        phase.push_str(" (suspended)");
    }
    field(&mut out, "Phase", phase);
    field(&mut out, "Why", &report.summary);
    if let Some(p) = &report.placement {
        let nodes = p.nodes.len();
        field(
            &mut out,
            "Placement",
            format!(
                "{}, {}, {} GPUs on {} node{}{}",
                p.cluster,
                p.accelerator.as_deref().unwrap_or("CPU"),
                p.gpus,
                nodes,
                if nodes == 1 { "" } else { "s" },
                if p.backfilled { ", backfilled" } else { "" }
            ),
        );
        if let Some(r) = p.replicas.filter(|r| *r != report.replicas) {
            field(&mut out, "Size", format!("{r} replicas now ({} asked)", report.replicas));
        }
        if !p.nodes.is_empty() {
            let list: Vec<String> = p.nodes.iter().map(|n| format!("{} ({})", n.node, n.replicas)).collect();
            field(&mut out, "Nodes", list.join(", "));
        }
        field(
            &mut out,
            "Estimate",
            format!(
                "runtime {}, energy {} kWh, cost {}",
                table::duration(p.estimated_runtime_seconds),
                number(p.estimated_energy_k_wh, 2),
                number(p.estimated_cost, 2)
            ),
        );
    }
    if let Some(r) = &report.remote {
        field(&mut out, "Remote", format!("{} {} on {}", r.kind, r.name, r.cluster));
    }
    if let Some(p) = &report.progress {
        let how = match (p.source.as_str(), p.recorded) {
            ("Measured", _) => "measured".to_string(),
            (_, Some(r)) if r > 0.0 => format!("estimated from elapsed time, {} before this attempt", percent(r)),
            _ => "estimated from elapsed time".to_string(),
        };
        field(&mut out, "Progress", format!("{} ({how})", percent(p.completed)));
    }
    for (name, time) in [
        ("Created", &report.created),
        ("Admitted", &report.start_time),
        ("Dispatched", &report.dispatch_time),
        ("Finished", &report.completion_time),
    ] {
        if let Some(t) = with_age(time, now) {
            field(&mut out, name, t);
        }
    }
    if let Some(n) = report.requeues.filter(|n| *n > 0) {
        field(&mut out, "Requeues", n.to_string());
    }
    if let Some(r) = &report.retry {
        let wait = -table::seconds_since(&r.next_attempt_time, now);
        let when = if wait > 0 { format!("in {}", table::age(wait)) } else { "due".to_string() };
        field(
            &mut out,
            "Retry",
            format!(
                "dispatch failed {} time(s) in a row; next attempt {} ({when})",
                r.attempts,
                table::time(&r.next_attempt_time)
            ),
        );
    }
    if !report.attempts.is_empty() {
        out.push_str("\nEarlier attempts:\n");
        out.push_str(&attempts_table(&report.attempts));
    }
    if !report.candidates.is_empty() {
        out.push_str("\nCandidates (scores: lower is better):\n");
        out.push_str(&candidates_table(&report.candidates));
    }
    if !report.rejected.is_empty() {
        out.push_str("\nRejected members:\n");
        out.push_str(&rejected_table(&report.rejected));
    }
    if !report.conditions.is_empty() {
        let mut t = Table::new(&["TYPE", "STATUS", "REASON", "AGE", "MESSAGE"]);
        for c in &report.conditions {
            t.row(vec![
                c.type_.clone(),
                c.status.clone(),
                c.reason.clone(),
                table::age(c.age_seconds),
                c.message.clone(),
            ]);
        }
        out.push_str("\nConditions:\n");
        out.push_str(&t.render());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{self, NOW};

    #[test]
    fn an_admitted_job_shows_its_placement_and_candidates() {
        let mut job = fixtures::running(
            fixtures::job("team-a", "bert", "research", 2, 8, NOW - 900),
            "ai-west",
            "H800",
            &[("gpu-h800-1", 1), ("gpu-h800-2", 1)],
            NOW - 600,
        );
        let status = job.status.as_mut().expect("status");
        let explanation = status.explanation.as_mut().expect("explanation");
        explanation.candidates = vec![
            CandidateStatus {
                cluster: "ai-west".into(),
                accelerator: Some("H800".into()),
                score: 0.2,
                runtime_seconds: 3600.0,
                energy_k_wh: 10.0,
                estimate_source: Some("Profile".into()),
                ..Default::default()
            },
            CandidateStatus {
                cluster: "ai-east".into(),
                accelerator: Some("A100-80G".into()),
                score: 0.7,
                runtime_seconds: 11_400.0,
                ..Default::default()
            },
        ];
        explanation.rejected =
            vec![RejectedStatus { cluster: "general".into(), reason: "no allowed accelerator type".into() }];
        let report = build(&job, NOW);
        assert_eq!(report.gang, "2 x (4 cpu, 16Gi, 8 GPUs)");
        assert_eq!(report.phase.as_deref(), Some("Running"));
        assert!(report.admitted);
        let text = table(&report, NOW);
        assert!(text.contains("Placement:  ai-west, H800, 16 GPUs on 2 nodes"), "{text}");
        assert!(text.contains("Nodes:      gpu-h800-1 (1), gpu-h800-2 (1)"), "{text}");
        assert!(text.contains("Why:        admitted to ai-west (H800)"), "{text}");
        assert!(text.contains("Admitted:   "), "{text}");
        let first = text.lines().find(|l| l.starts_with("1 ")).expect("candidate row");
        assert!(first.contains("ai-west") && first.contains("0.2") && first.contains("1h"), "{first}");
        assert!(first.contains("Profile"), "the estimate's source: {first}");
        let second = text.lines().find(|l| l.starts_with("2 ")).expect("candidate row");
        assert!(second.contains("ai-east") && second.contains(" - "), "no source recorded: {second}");
        let admitted = format!("Admitted:   {} (10m ago)", fixtures::rfc3339(NOW - 600));
        assert!(text.contains(&admitted), "{text}");
        let json = serde_json::to_value(&report).expect("serialises");
        assert_eq!(json["startTime"], fixtures::rfc3339(NOW - 600).as_str());
        assert_eq!(json["created"], fixtures::rfc3339(NOW - 900).as_str());
        assert!(text.lines().any(|l| l.starts_with("general ") && l.contains("no allowed accelerator type")), "{text}");
    }

    #[test]
    fn an_adaptive_job_shows_its_size_progress_and_earlier_attempts() {
        use computenet_api::training_job::{CheckpointSpec, ElasticSpec, ProgressStatus};
        let mut job = fixtures::job("team-a", "llm", "research", 2, 8, NOW - 7200);
        job.spec.elastic = Some(ElasticSpec { min_replicas: 1, max_replicas: 4 });
        job.spec.checkpoint =
            Some(CheckpointSpec { restartable: true, grace_period_seconds: 30, restart_cost_seconds: 120 });
        let mut job = fixtures::running(job, "ai-east", "A100-80G", &[("gpu-a100-1", 4)], NOW - 1800);
        let status = job.status.as_mut().expect("status");
        status.dispatch_time = Some(fixtures::time(NOW - 1800));
        status.attempt = Some(2);
        status.progress = Some(ProgressStatus { completed: 0.5, ..Default::default() });
        let placement = status.placement.as_mut().expect("placement");
        placement.replicas = Some(4);
        status.attempts = vec![AttemptStatus {
            attempt: 1,
            cluster: "ai-west".into(),
            accelerator: Some("H800".into()),
            replicas: 2,
            start_time: Some(fixtures::time(NOW - 5400)),
            end_time: Some(fixtures::time(NOW - 1900)),
            reason: "Resized".into(),
            message: Some("grows to 4 replicas: 3h faster".into()),
            completed: Some(0.5),
            ..AttemptStatus::default()
        }];
        let report = build(&job, NOW);
        let progress = report.progress.as_ref().expect("progress");
        assert_eq!((progress.completed, progress.source.as_str(), progress.recorded), (0.75, "Estimated", Some(0.5)));
        let text = table(&report, NOW);
        assert!(
            text.contains("Adaptive:   elastic 1..4 replicas, restartable (grace period 30s, restart cost 2m)"),
            "{text}"
        );
        assert!(text.contains("Size:       4 replicas now (2 asked)"), "{text}");
        assert!(text.contains("Progress:   75% (estimated from elapsed time, 50% before this attempt)"), "{text}");
        assert!(text.contains("\nEarlier attempts:\nATTEMPT "), "{text}");
        let row = text.lines().find(|l| l.starts_with("1 ") && l.contains("Resized")).expect("attempt row");
        for cell in
            ["ai-west", "H800", &fixtures::rfc3339(NOW - 5400), &fixtures::rfc3339(NOW - 1900), "50%", "3h faster"]
        {
            assert!(row.contains(cell), "{cell} in {row}");
        }
        let json = serde_json::to_value(&report).expect("serialises");
        assert_eq!(json["attempts"][0]["reason"], "Resized");
        assert_eq!(json["progress"]["completed"], 0.75);

        let mut measured = job.clone();
        measured.status.as_mut().unwrap().progress.as_mut().unwrap().source = ProgressSource::Measured;
        assert!(table(&build(&measured, NOW), NOW).contains("Progress:   50% (measured)"));
    }

    #[test]
    fn a_rigid_job_shows_no_adaptive_line_and_a_waiting_one_no_progress() {
        let running = fixtures::running(
            fixtures::job("team-a", "bert", "research", 1, 8, NOW - 900),
            "ai-west",
            "H800",
            &[("gpu-h800-1", 1)],
            NOW - 900,
        );
        let text = table(&build(&running, NOW), NOW);
        assert!(!text.contains("Adaptive:") && !text.contains("Size:") && !text.contains("Earlier attempts"), "{text}");
        assert!(text.contains("Progress:   25% (estimated from elapsed time)"), "{text}");
        let waiting = fixtures::queued(fixtures::job("team-a", "wait", "research", 4, 8, NOW - 60), 2, "waiting");
        let report = build(&waiting, NOW);
        assert!(report.progress.is_none() && report.adaptive.is_none());
        let json = serde_json::to_value(&report).expect("serialises");
        assert!(json.get("attempts").is_none() && json.get("progress").is_none(), "{json}");
    }

    #[test]
    fn a_queued_job_shows_its_position_and_reason() {
        let job =
            fixtures::queued(fixtures::job("team-a", "wait", "research", 4, 8, NOW - 60), 2, "waiting for capacity");
        let report = build(&job, NOW);
        assert_eq!((report.queue_position, report.summary.as_str()), (Some(2), "waiting for capacity"));
        let text = table(&report, NOW);
        assert!(text.contains("Phase:      Queued, position 2 in research"), "{text}");
        assert!(text.contains("only 1 replicas fit now"), "{text}");
        assert!(text.lines().any(|l| l.starts_with("Admitted ") && l.contains("InsufficientCapacity")), "{text}");
    }

    #[test]
    fn a_dispatch_being_retried_shows_when() {
        let mut job = fixtures::running(
            fixtures::job("team-a", "bert", "research", 1, 8, NOW - 900),
            "ai-west",
            "H800",
            &[("gpu-h800-1", 1)],
            NOW - 600,
        );
        let status = job.status.as_mut().expect("status");
        status.phase = Some(computenet_api::TrainingJobPhase::Admitted);
        status.retry = Some(RetryStatus { attempts: 3, next_attempt_time: fixtures::time(NOW + 8) });
        let text = table(&build(&job, NOW), NOW);
        let expected = format!(
            "Retry:      dispatch failed 3 time(s) in a row; next attempt {} (in 8s)",
            fixtures::rfc3339(NOW + 8)
        );
        assert!(text.contains(&expected), "{text}");
    }

    #[test]
    fn a_job_not_seen_yet_says_so() {
        let job = fixtures::job("team-a", "new", "research", 1, 0, NOW);
        let report = build(&job, NOW);
        assert!(report.summary.starts_with("no decision yet"), "{}", report.summary);
        assert_eq!(report.gang, "1 x (4 cpu, 16Gi)");
        assert!(table(&report, NOW).contains("Phase:      -\n"));
    }
}

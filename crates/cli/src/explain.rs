//! `kubectl computenet explain JOB`: why a job is where it is, or why it waits.

use crate::queue::wait_reason;
use crate::table::{self, number, or_dash, Table};
use computenet_api::training_job::{
    AttemptStatus, CandidateStatus, PlacementStatus, ProgressStatus, RejectedStatus, RemoteReference, RetryStatus,
};
use computenet_api::{TrainingJob, TrainingJobSpec};
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
    /// The best candidates with their score breakdown; lower is better.
    pub candidates: Vec<CandidateStatus>,
    /// Every other member and why it was not a candidate.
    pub rejected: Vec<RejectedStatus>,
    pub conditions: Vec<ConditionRow>,
    /// The current attempt's number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt: Option<i32>,
    /// The share of the work done, carried across attempts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<ProgressStatus>,
    /// Earlier attempts, oldest first: where each ran and why it ended (moved, resized,
    /// preempted...).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<AttemptStatus>,
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
        attempt: status.attempt,
        progress: status.progress.clone(),
        attempts: status.attempts.clone(),
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
    if let Some(a) = report.attempt.filter(|a| *a > 1 || !report.attempts.is_empty()) {
        field(&mut out, "Attempt", a.to_string());
    }
    if let Some(p) = &report.progress {
        field(&mut out, "Progress", format!("{:.1} % done ({:?})", p.completed * 100.0, p.source));
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
    if !report.candidates.is_empty() {
        out.push_str("\nCandidates (scores: lower is better):\n");
        out.push_str(&candidates_table(&report.candidates));
    }
    if !report.rejected.is_empty() {
        out.push_str("\nRejected members:\n");
        out.push_str(&rejected_table(&report.rejected));
    }
    if !report.attempts.is_empty() {
        let mut t =
            Table::new(&["ATTEMPT", "CLUSTER", "ACCELERATOR", "REPLICAS", "ENDED", "REASON", "DONE", "MESSAGE"]);
        for a in &report.attempts {
            t.row(vec![
                a.attempt.to_string(),
                a.cluster.clone(),
                or_dash(a.accelerator.as_deref()),
                a.replicas.to_string(),
                a.end_time
                    .as_ref()
                    .map_or_else(|| "-".to_string(), |e| format!("{} ago", table::age(table::seconds_since(e, now)))),
                a.reason.clone(),
                a.completed.map_or_else(|| "-".to_string(), |c| format!("{:.1} %", c * 100.0)),
                a.message.clone().unwrap_or_default(),
            ]);
        }
        out.push_str("\nHistory (earlier attempts):\n");
        out.push_str(&t.render());
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
    fn a_moved_job_shows_its_attempt_progress_and_history() {
        let mut job = fixtures::running(
            fixtures::job("team-a", "bert", "research", 1, 8, NOW - 900),
            "ai-east",
            "H800",
            &[("gpu-h800-1", 1)],
            NOW - 60,
        );
        let status = job.status.as_mut().expect("status");
        status.attempt = Some(2);
        status.progress = Some(ProgressStatus { completed: 0.4, ..Default::default() });
        status.attempts = vec![AttemptStatus {
            attempt: 1,
            cluster: "ai-west".into(),
            accelerator: Some("A100-80G".into()),
            replicas: 1,
            end_time: Some(fixtures::time(NOW - 60)),
            reason: "Moved".into(),
            message: Some("moves from ai-west to ai-east".into()),
            completed: Some(0.4),
            ..Default::default()
        }];
        let report = build(&job, NOW);
        assert_eq!((report.attempt, report.attempts.len()), (Some(2), 1));
        let text = table(&report, NOW);
        assert!(text.contains("Attempt:    2"), "{text}");
        assert!(text.contains("Progress:   40.0 % done"), "{text}");
        assert!(text.contains("History (earlier attempts):"), "{text}");
        let row = text.lines().find(|l| l.contains("ai-west")).expect("a history row");
        assert!(row.contains("A100-80G") && row.contains("Moved") && row.contains("40.0 %"), "{row}");
    }

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

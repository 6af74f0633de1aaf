//! Condition types, condition reasons and Event reasons: the one list of the words
//! computenet writes into status and Events. Code decides on these typed values, never on
//! free strings read back from an object.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

/// Condition types.
pub mod types {
    /// TrainingJob: could it enter its queue (false with the reason while it cannot).
    pub const QUEUED: &str = "Queued";
    /// TrainingJob: holds a placement.
    pub const ADMITTED: &str = "Admitted";
    /// TrainingJob: its objects exist on its member (false while dispatch fails).
    pub const DISPATCHED: &str = "Dispatched";
    /// TrainingJob: all replicas started.
    pub const RUNNING: &str = "Running";
    /// TrainingJob: ended (true: succeeded, false: failed, with the reason).
    pub const FINISHED: &str = "Finished";
    /// MemberCluster: reachable and schedulable.
    pub const READY: &str = "Ready";
    /// MemberCluster: whether every endpoint it names is reached over TLS (false, as a
    /// warning, while `insecureHTTP` allows a plain http:// one).
    pub const TRANSPORT_SECURE: &str = "TransportSecure";
    /// ComputeCohort: whether the tree uses its parent (false when the parent chain loops
    /// or is deeper than 16 levels: the cohort then counts as a root).
    pub const PARENT_ACCEPTED: &str = "ParentAccepted";
}

/// Condition reasons, by the condition they go with.
pub mod reasons {
    // Queued=False
    pub const QUEUE_NOT_FOUND: &str = "QueueNotFound";
    pub const NAMESPACE_NOT_ALLOWED: &str = "NamespaceNotAllowed";
    pub const INVALID_SPEC: &str = "InvalidSpec";
    // Admitted=False: its priority is outside its queue's range (not admitted as it is)
    pub const PRIORITY_NOT_ALLOWED: &str = "PriorityNotAllowed";
    // Admitted=False: an admission the service did not seal (written by someone else) was reset
    pub const ADMISSION_NOT_ISSUED: &str = "AdmissionNotIssued";
    // Admitted=True
    pub const ADMITTED: &str = "Admitted";
    // Admitted=False: waiting, with what it waits for
    pub const RESERVED: &str = "Reserved";
    pub const PREEMPTING: &str = "Preempting";
    pub const INSUFFICIENT_CAPACITY: &str = "InsufficientCapacity";
    pub const QUOTA_EXCEEDED: &str = "QuotaExceeded";
    pub const UNSCHEDULABLE: &str = "Unschedulable";
    pub const BLOCKED_BY_QUEUE_HEAD: &str = "BlockedByQueueHead";
    pub const WAITING_FOR_PREEMPTION: &str = "WaitingForPreemption";
    pub const BUDGET_EXHAUSTED: &str = "BudgetExhausted";
    // Admitted=False: taken back
    pub const PREEMPTED: &str = "Preempted";
    pub const MEMBER_LOST: &str = "MemberLost";
    pub const SUSPENDED: &str = "Suspended";
    // Dispatched=False
    pub const DISPATCH_FAILED: &str = "DispatchFailed";
    // Dispatched=False and Finished=False: the member refused the job for good.
    pub const DISPATCH_REJECTED: &str = "DispatchRejected";
    // Running=True
    pub const PODS_RUNNING: &str = "PodsRunning";
    pub const BATCH_JOB_RUNNING: &str = "BatchJobRunning";
    // Finished
    pub const SUCCEEDED: &str = "Succeeded";
    pub const FAILED: &str = "Failed";
    pub const REMOTE_JOB_LOST: &str = "RemoteJobLost";
    // Ready (MemberCluster)
    pub const REACHABLE: &str = "Reachable";
    pub const NOT_CONNECTED: &str = "NotConnected";
    pub const UNREACHABLE: &str = "Unreachable";
    pub const TIMEOUT: &str = "Timeout";
    pub const AUTHENTICATION_FAILED: &str = "AuthenticationFailed";
    pub const SERVER_ERROR: &str = "ServerError";
    pub const UNEXPECTED_ANSWER: &str = "UnexpectedAnswer";
    pub const INVALID_CONFIG: &str = "InvalidConfig";
    // Ready=False: the service refuses to use the connection as written.
    /// A Secret reference outside the service's namespace, or a Secret without the
    /// `computenet.io/credentials: "true"` label.
    pub const SECRET_NOT_ALLOWED: &str = "SecretNotAllowed";
    /// A plain http:// endpoint without `insecureHTTP: true`.
    pub const INSECURE_ENDPOINT: &str = "InsecureEndpoint";
    /// A kubeconfig that runs commands or reads files (exec, auth-provider, tokenFile,
    /// file paths) or talks plain http.
    pub const KUBECONFIG_NOT_ALLOWED: &str = "KubeconfigNotAllowed";
    // TransportSecure
    pub const TLS: &str = "TLS";
    pub const INSECURE_HTTP: &str = "InsecureHTTP";
    // ParentAccepted (ComputeCohort)
    pub const IN_TREE: &str = "InTree";
    pub const PARENT_LOOP: &str = "ParentLoop";
    pub const TREE_TOO_DEEP: &str = "TreeTooDeep";
    // Why an attempt ended (status.attempts[].reason), besides Preempted, MemberLost,
    // Suspended, Failed and Succeeded above.
    /// Stopped to start again at a better placement, same size.
    pub const MOVED: &str = "Moved";
    /// Stopped to start again with more or fewer replicas (elastic).
    pub const RESIZED: &str = "Resized";
}

/// Why an Event is recorded about a TrainingJob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventReason {
    Admitted,
    Dispatched,
    DispatchFailed,
    DispatchRejected,
    Succeeded,
    Failed,
    Preempted,
    MemberLost,
    Suspended,
    /// The object does not decode into the type the scheduler reads; it is ignored.
    InvalidObject,
    /// Its status claimed an admission the service did not issue: reset and decided anew.
    AdmissionNotIssued,
    /// Moved or resized by the re-optimisation round: stopped, and admitted anew.
    Adjusted,
}

impl EventReason {
    /// The Event's reason field.
    pub fn as_str(self) -> &'static str {
        match self {
            EventReason::Admitted => "Admitted",
            EventReason::Dispatched => "Dispatched",
            EventReason::DispatchFailed => "DispatchFailed",
            EventReason::DispatchRejected => "DispatchRejected",
            EventReason::Succeeded => "Succeeded",
            EventReason::Failed => "Failed",
            EventReason::Preempted => "Preempted",
            EventReason::MemberLost => "MemberLost",
            EventReason::Suspended => "Suspended",
            EventReason::InvalidObject => "InvalidObject",
            EventReason::AdmissionNotIssued => "AdmissionNotIssued",
            EventReason::Adjusted => "Adjusted",
        }
    }

    /// Warnings are what a user should look at.
    pub fn is_warning(self) -> bool {
        matches!(
            self,
            EventReason::DispatchFailed
                | EventReason::DispatchRejected
                | EventReason::Failed
                | EventReason::Preempted
                | EventReason::MemberLost
                | EventReason::InvalidObject
                | EventReason::AdmissionNotIssued
        )
    }
}

impl std::fmt::Display for EventReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Longest condition message computenet writes, in bytes: a member's error can be far
/// longer (a whole webhook answer), and the apiserver caps messages at 32 KiB.
pub const MAX_MESSAGE_BYTES: usize = 1024;

/// `text` cut to at most `max` bytes on a character boundary, marked with `…` when cut.
pub fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// Longest condition reason computenet writes (the apiserver allows 1024).
pub const MAX_REASON_CHARS: usize = 128;

/// `reason` as a valid condition reason (a word: `^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$`,
/// at most [`MAX_REASON_CHARS`]): reasons can come from members, which may send anything,
/// and one the apiserver refuses would make every status write of the object fail.
pub fn reason_word(reason: &str) -> String {
    let word: String = reason
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | ',' | ':'))
        .skip_while(|c| !c.is_ascii_alphabetic())
        .take(MAX_REASON_CHARS)
        .collect();
    let word = word.trim_end_matches([',', ':']);
    if word.is_empty() {
        "Unknown".to_string()
    } else {
        word.to_string()
    }
}

/// A condition, keeping the transition time of `previous` when its status did not change.
/// The reason is made a valid word and the message cut to [`MAX_MESSAGE_BYTES`].
pub fn condition(
    previous: &[Condition],
    type_: &str,
    status: bool,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: Timestamp,
) -> Condition {
    let status = if status { "True" } else { "False" }.to_string();
    let last_transition_time = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map_or(Time(now), |c| c.last_transition_time.clone());
    Condition {
        type_: type_.to_string(),
        status,
        reason: reason_word(reason),
        message: cut(message, MAX_MESSAGE_BYTES),
        last_transition_time,
        observed_generation: generation,
    }
}

/// Whether two condition lists say the same (ignoring transition times).
pub fn same(a: &[Condition], b: &[Condition]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.type_ == y.type_
                && x.status == y.status
                && x.reason == y.reason
                && x.message == y.message
                && x.observed_generation == y.observed_generation
        })
}

/// The conditions with `new` in place of any of its type, sorted by type.
pub fn upsert(conditions: &[Condition], new: Condition) -> Vec<Condition> {
    let mut out: Vec<_> = conditions.iter().filter(|c| c.type_ != new.type_).cloned().collect();
    out.push(new);
    out.sort_by(|a, b| a.type_.cmp(&b.type_));
    out
}

/// Whether the condition of this type is True.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    conditions.iter().any(|c| c.type_ == type_ && c.status == "True")
}

/// The condition of this type, if any.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_time_is_kept_while_the_status_holds() {
        let t0 = Timestamp::from_second(1_000).unwrap();
        let t1 = Timestamp::from_second(2_000).unwrap();
        let first = condition(&[], types::ADMITTED, false, reasons::QUOTA_EXCEEDED, "a", Some(1), t0);
        let same_status =
            condition(std::slice::from_ref(&first), types::ADMITTED, false, reasons::RESERVED, "b", Some(1), t1);
        assert_eq!(same_status.last_transition_time, Time(t0));
        let flipped = condition(&[first], types::ADMITTED, true, reasons::ADMITTED, "c", Some(1), t1);
        assert_eq!(flipped.last_transition_time, Time(t1));
    }

    #[test]
    fn upsert_replaces_by_type_and_sorts() {
        let t = Timestamp::from_second(0).unwrap();
        let a = condition(&[], types::RUNNING, true, reasons::PODS_RUNNING, "", None, t);
        let b = condition(&[], types::ADMITTED, true, reasons::ADMITTED, "", None, t);
        let list = upsert(&upsert(&[], a), b.clone());
        assert_eq!(list.iter().map(|c| c.type_.as_str()).collect::<Vec<_>>(), ["Admitted", "Running"]);
        let b2 = condition(&list, types::ADMITTED, false, reasons::PREEMPTED, "", None, t);
        let list = upsert(&list, b2);
        assert_eq!(list.len(), 2);
        assert!(!is_true(&list, types::ADMITTED) && is_true(&list, types::RUNNING));
    }

    #[test]
    fn long_messages_are_cut_on_a_character_boundary() {
        assert_eq!(cut("short", 10), "short");
        let long =
            condition(&[], "Finished", false, "Out Of-Memory!", &"x".repeat(1 << 20), None, Timestamp::UNIX_EPOCH);
        assert_eq!(long.reason, "OutOfMemory");
        assert_eq!(long.message.len(), MAX_MESSAGE_BYTES);
        assert_eq!(reason_word("  :9 "), "Unknown");
        assert_eq!(reason_word("Evicted:"), "Evicted");
        assert_eq!(reason_word(&"A".repeat(5000)).len(), MAX_REASON_CHARS);
        let c = cut(&"é".repeat(600), MAX_MESSAGE_BYTES);
        assert!(c.len() <= MAX_MESSAGE_BYTES && c.ends_with('…'), "{}", c.len());
        assert_eq!(cut(&"x".repeat(MAX_MESSAGE_BYTES), MAX_MESSAGE_BYTES).len(), MAX_MESSAGE_BYTES);
        assert_eq!(cut("abcdef", 4), "a…");
    }

    #[test]
    fn same_ignores_times_but_not_generation() {
        let t0 = Timestamp::from_second(0).unwrap();
        let t1 = Timestamp::from_second(9).unwrap();
        let a = condition(&[], types::READY, true, reasons::REACHABLE, "m", Some(1), t0);
        let b = condition(&[], types::READY, true, reasons::REACHABLE, "m", Some(1), t1);
        let c = condition(&[], types::READY, true, reasons::REACHABLE, "m", Some(2), t1);
        assert!(same(std::slice::from_ref(&a), &[b]));
        assert!(!same(&[a], &[c]));
    }
}

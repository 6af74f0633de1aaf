//! Events, recorded off the scheduling loop's path: the loop queues them and goes on; a
//! background task records them, several at a time. Events are best effort: when the
//! queue is full (the hub is far behind), new ones are dropped with a debug log rather
//! than slowing scheduling down.
//!
//! As client-go's recorder does, each object gets a budget of Events ([`EventBudget`]: a
//! burst of 25, then one per 5 minutes), so a job that flaps cannot flood the hub; and the
//! recorder folds a repeated Event (same object and reason, within minutes) into a series, one
//! PATCH instead of a new Event.

use computenet_api::conditions::EventReason;
use computenet_api::TrainingJob;
use futures::StreamExt;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Client, Resource};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Events waiting to be recorded, at most.
pub const QUEUE_CAPACITY: usize = 10_000;

/// Longest Event note the apiserver accepts, in bytes.
pub const MAX_NOTE_BYTES: usize = 1024;

/// The note cut to what the apiserver accepts (a member's error can be longer), on a
/// character boundary, marked as cut.
fn bounded(note: String) -> String {
    if note.len() <= MAX_NOTE_BYTES {
        return note;
    }
    computenet_api::conditions::cut(&note, MAX_NOTE_BYTES)
}

/// Queues Events for the background recorder.
#[derive(Debug, Clone)]
pub struct EventSink {
    tx: mpsc::Sender<(ObjectReference, Event)>,
}

impl EventSink {
    /// Starts the recorder (`concurrency` Events in flight); it ends when every sink is dropped.
    pub fn start(client: Client, concurrency: usize) -> Self {
        let (tx, rx) = mpsc::channel::<(ObjectReference, Event)>(QUEUE_CAPACITY);
        let recorder = Recorder::new(client, Reporter { controller: "computenet-scheduler".into(), instance: None });
        let budget = EventBudget::default();
        let events = futures::stream::unfold((rx, budget), |(mut rx, mut budget)| async move {
            loop {
                let (reference, event) = rx.recv().await?;
                if budget.allow(&object_key(&reference), Instant::now()) {
                    return Some(((reference, event), (rx, budget)));
                }
                tracing::debug!(object = ?reference.name, reason = event.reason, "the object's Event budget is spent; event dropped");
            }
        });
        tokio::spawn(events.for_each_concurrent(concurrency.max(1), move |(reference, event)| {
            let recorder = recorder.clone();
            async move {
                if let Err(e) = recorder.publish(&event, &reference).await {
                    tracing::debug!(error = %e, "event not recorded");
                }
            }
        }));
        Self { tx }
    }

    /// Queues an Event about a TrainingJob.
    pub fn publish(&self, tj: &TrainingJob, reason: EventReason, note: String) {
        self.publish_about(tj.object_ref(&()), reason, note);
    }

    /// Queues an Event about any object.
    pub fn publish_about(&self, object: ObjectReference, reason: EventReason, note: String) {
        let note = bounded(note);
        let type_ = if reason.is_warning() { EventType::Warning } else { EventType::Normal };
        let reason = reason.as_str();
        let event = Event { type_, reason: reason.into(), note: Some(note), action: reason.into(), secondary: None };
        let name = object.name.clone();
        if self.tx.try_send((object, event)).is_err() {
            tracing::debug!(object = ?name, reason, "event queue full or closed; event dropped");
        }
    }
}

/// The object an Event is about, as the budget counts it.
fn object_key(object: &ObjectReference) -> String {
    let part = |s: &Option<String>| s.clone().unwrap_or_default();
    format!("{}/{}/{}/{}", part(&object.kind), part(&object.namespace), part(&object.name), part(&object.uid))
}

/// Events per object, as client-go's spam filter allows them: a token bucket per object
/// (a burst of [`EventBudget::BURST`], refilled one per [`EventBudget::REFILL`]), over at
/// most [`EventBudget::OBJECTS`] objects. An object whose bucket is full again is
/// forgotten (it is as good as new), so the map holds only recently noisy objects.
#[derive(Debug, Default)]
pub struct EventBudget {
    /// Tokens left and when they were counted, per object.
    buckets: HashMap<String, (f64, Instant)>,
}

impl EventBudget {
    pub const BURST: f64 = 25.0;
    pub const REFILL: Duration = Duration::from_secs(300);
    pub const OBJECTS: usize = 4096;

    /// Whether an Event about `object` may be recorded at `now`; spends a token if so.
    pub fn allow(&mut self, object: &str, now: Instant) -> bool {
        if self.buckets.len() >= Self::OBJECTS && !self.buckets.contains_key(object) {
            self.forget_refilled(now);
            if self.buckets.len() >= Self::OBJECTS {
                // Forget the quietest object (most tokens left; of those, the one counted
                // longest ago), so the noisy ones stay held back.
                let quietest = self
                    .buckets
                    .iter()
                    .max_by(|(_, (a, a_at)), (_, (b, b_at))| a.total_cmp(b).then(b_at.cmp(a_at)))
                    .map(|(k, _)| k.clone());
                if let Some(quietest) = quietest {
                    self.buckets.remove(&quietest);
                }
            }
        }
        let (tokens, at) = self.buckets.entry(object.to_string()).or_insert((Self::BURST, now));
        let refilled = now.saturating_duration_since(*at).as_secs_f64() / Self::REFILL.as_secs_f64();
        *tokens = (*tokens + refilled).min(Self::BURST);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }

    fn forget_refilled(&mut self, now: Instant) {
        self.buckets.retain(|_, (tokens, at)| {
            *tokens + now.saturating_duration_since(*at).as_secs_f64() / Self::REFILL.as_secs_f64() < Self::BURST
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_object_gets_a_burst_then_one_event_per_refill() {
        let mut budget = EventBudget::default();
        let t0 = Instant::now();
        assert!((0..25).all(|_| budget.allow("a", t0)), "a burst of 25");
        assert!(!budget.allow("a", t0), "then none");
        assert!(budget.allow("b", t0), "other objects have their own budget");
        assert!(!budget.allow("a", t0 + EventBudget::REFILL / 2));
        assert!(budget.allow("a", t0 + EventBudget::REFILL), "one more after the refill time");
        assert!(!budget.allow("a", t0 + EventBudget::REFILL));
        // Refilled in full after 25 refill times, no more.
        let later = t0 + EventBudget::REFILL * 100;
        assert_eq!((0..30).filter(|_| budget.allow("a", later)).count(), 25);
    }

    #[test]
    fn the_budget_tracks_a_bounded_number_of_objects() {
        let mut budget = EventBudget::default();
        let t0 = Instant::now();
        for i in 0..EventBudget::OBJECTS * 3 {
            assert!(budget.allow(&format!("job-{i}"), t0), "a new object always has its burst");
            assert!(budget.buckets.len() <= EventBudget::OBJECTS);
        }
        // A noisy object is still held back while quiet ones come and go.
        let noisy = "noisy";
        (0..25).for_each(|_| assert!(budget.allow(noisy, t0)));
        for i in 0..EventBudget::OBJECTS / 2 {
            budget.allow(&format!("later-{i}"), t0 + Duration::from_secs(1));
        }
        assert!(!budget.allow(noisy, t0 + Duration::from_secs(2)));
    }

    #[test]
    fn long_notes_are_cut_to_what_the_apiserver_takes() {
        assert_eq!(bounded("short".into()), "short");
        let long = "é".repeat(2000);
        let cut = bounded(long);
        assert!(cut.len() <= MAX_NOTE_BYTES && cut.ends_with('…'), "{}", cut.len());
        assert!(bounded("x".repeat(MAX_NOTE_BYTES)).len() == MAX_NOTE_BYTES);
    }
}

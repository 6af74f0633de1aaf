//! Events, recorded off the scheduling loop's path: the loop queues them and goes on; a
//! background task records them, several at a time. Events are best effort: when the
//! queue is full (the hub is far behind), new ones are dropped with a debug log rather
//! than slowing scheduling down.

use computenet_api::conditions::EventReason;
use computenet_api::TrainingJob;
use futures::StreamExt;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Client, Resource};
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
        let events = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|e| (e, rx)) });
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_notes_are_cut_to_what_the_apiserver_takes() {
        assert_eq!(bounded("short".into()), "short");
        let long = "é".repeat(2000);
        let cut = bounded(long);
        assert!(cut.len() <= MAX_NOTE_BYTES && cut.ends_with('…'), "{}", cut.len());
        assert!(bounded("x".repeat(MAX_NOTE_BYTES)).len() == MAX_NOTE_BYTES);
    }
}

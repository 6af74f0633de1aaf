//! One pass of the service, in order, over the pieces that own its state:
//!
//! 1. take in landed work ([`Overlay`], [`Reconciler`], Events, metrics);
//! 2. members: connect new or changed ones in the background ([`Connections`]); then
//!    admissions without the service's seal are reset ([`crate::seal`]);
//!    2c. other job kinds queued by label ([`crate::sources`]);
//! 3. per-job reconcile: cleanup, suspension, dispatch with backoff (a new attempt after
//!    the earlier one is stopped and gone), mirror ([`Reconciler`]); of the jobs a watch
//!    event or landed work touched, and every job every few seconds;
//! 4. scheduling: snapshot (with past shares and budgets from the usage store), cycle,
//!    admissions, preemptions, positions ([`Scheduling`]);
//!    4b. every `--adapt-interval-s`, the re-optimisation round on a snapshot taken after
//!    the admissions: moves and resizes of running restartable jobs;
//! 5. the mirror writes of step 3 (after admissions: work starts first come first served);
//! 6. metering: ended attempts recorded in the usage store ([`crate::metering`]); reporters:
//!    member and queue status (share, past share, budget), the observation ([`Reporters`]);
//! 7. orphan cleanup on members.

use crate::connections::Connections;
use crate::events::EventSink;
use crate::hub::Hub;
use crate::jobs::Reconciler;
use crate::overlay::Overlay;
use crate::progress::Progress;
use crate::reporters::Reporters;
use crate::schedule::{self, Scheduling};
use crate::seal::{self, AdmissionKey};
use crate::snapshot;
use crate::transitions;
use crate::web::WebState;
use crate::work;
use computenet_api::conditions::EventReason;
use computenet_api::view;
use computenet_core::Scheduler;
use computenet_members::error::Retry;
use k8s_openapi::jiff::Timestamp;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// The service's state between passes, by owner.
#[allow(missing_debug_implementations)] // Hub and Connections hold clients without Debug.
pub struct Service {
    pub hub: Hub,
    pub member_timeout: Duration,
    pub connections: Connections,
    pub overlay: Overlay,
    pub reconciler: Reconciler,
    pub scheduling: Scheduling,
    pub reporters: Reporters,
    pub events: EventSink,
    pub web: Option<WebState>,
    /// The key the service seals its admissions with.
    pub key: Arc<AdmissionKey>,
    /// Seals already found valid, by resourceVersion.
    pub verified: seal::Verified,
    /// Running jobs' progress and the throughput learned from it (`--progress-query`).
    pub progress: Option<Progress>,
    /// The usage store's writer; past shares and budgets.
    pub metering: crate::metering::Metering,
    /// Running jobs' spec figures, kept between passes.
    pub running_specs: snapshot::RunningSpecs,
    /// How long each step of the last pass took (the debug log's `steps`).
    pub steps: StepTimes,
}

/// How long each step of a pass took, in order: which step grows with the jobs.
#[derive(Debug, Default, Clone)]
pub struct StepTimes {
    laps: Vec<(&'static str, Duration)>,
    last: Option<std::time::Instant>,
}

impl StepTimes {
    fn start(&mut self) {
        self.laps.clear();
        self.last = Some(std::time::Instant::now());
    }

    /// Ends step `name` (begun where the last one ended).
    fn lap(&mut self, name: &'static str) {
        let now = std::time::Instant::now();
        if let Some(last) = self.last.replace(now) {
            self.laps.push((name, now - last));
        }
    }
}

impl std::fmt::Display for StepTimes {
    /// `absorb=0.12ms views=3.40ms ...`
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (name, took)) in self.laps.iter().enumerate() {
            let sep = if i == 0 { "" } else { " " };
            write!(f, "{sep}{name}={:.2}ms", took.as_secs_f64() * 1000.0)?;
        }
        Ok(())
    }
}

impl Service {
    /// Replaces the throughput profiles and cycle settings the scheduling pass uses.
    pub fn set_scheduler(&mut self, scheduler: Scheduler) {
        self.scheduling.set_scheduler(scheduler);
    }

    /// Step 1: what background work did.
    fn absorb(&mut self) {
        for landed in self.overlay.landed() {
            self.reconciler.absorb(&landed);
            let about = landed.stored.clone().unwrap_or_else(|| landed.job.clone());
            let metrics = self.web.as_ref().map(|w| w.metrics());
            for (reason, note) in &landed.events {
                // Events come back only from writes that were stored: a preemption whose
                // stop failed (and is retried) is counted once, when it lands.
                if *reason == EventReason::Preempted {
                    metrics.iter().for_each(|m| m.preempted(&about.spec.queue_name));
                }
                self.events.publish(&about, *reason, note.clone());
            }
            if let Some(f) = landed.dispatch_failed.as_ref().filter(|f| f.retry == Retry::WithNewCredentials) {
                self.connections.recheck_credentials(&f.cluster);
            }
            if let Some(m) = metrics {
                if let Some((queue, cluster)) = &landed.admitted {
                    m.admitted(queue, cluster);
                }
                if let Some(f) = &landed.dispatch_failed {
                    m.dispatch_error(&f.cluster, f.retry.class());
                }
                if landed.admission_conflict {
                    m.admission_conflict(&landed.job.spec.queue_name);
                }
            }
        }
    }

    /// One pass. Returns the time spent computing (the steps that read every job), not
    /// waiting on writes: what the next pass is spaced by.
    pub async fn pass(&mut self) -> Duration {
        let started = std::time::Instant::now();
        self.steps.start();
        // 1
        self.absorb();
        self.steps.lap("absorb");
        // 2
        let specs = self.hub.members.state();
        self.connections.sync(&specs);
        let jobs = self.overlay.jobs(&self.hub.jobs);
        self.reconciler.prune(&jobs);
        self.steps.lap("jobs");
        let views = self.connections.views(&specs, &jobs, self.member_timeout);
        self.steps.lap("views");
        let raw = snapshot::raw_accelerators(&views);
        let now = Timestamp::now();
        let namespaces: BTreeMap<String, BTreeMap<String, String>> = self
            .hub
            .namespaces
            .state()
            .iter()
            .map(|n| (n.metadata.name.clone().unwrap_or_default(), n.metadata.labels.clone().unwrap_or_default()))
            .collect();
        let queues = self.hub.queues.state();
        let cohorts = self.hub.cohorts.state();
        // 2b: admissions this service did not seal are reset before anything acts on them.
        self.reset_unissued(&jobs, &queues, &namespaces, now);
        self.steps.lap("seals");
        // Taken before the jobs are read: a change after this is seen by the next pass.
        let touched = self.hub.touched_jobs.take();
        let jobs = self.overlay.jobs(&self.hub.jobs);
        // 2c: JobSets, TrainJobs and PyTorchJobs queued by label: their TrainingJobs, held
        // objects, mirrored status, copies removed once mirrored.
        let catalogue = view::catalogue(specs.iter().map(AsRef::as_ref));
        self.hub.sources.pass(&jobs, self.connections.members(), &catalogue, &self.events);
        self.reconciler.set_sources(Some((self.hub.sources.clone(), catalogue)));
        self.steps.lap("sources");
        // 3
        let known: std::collections::BTreeSet<String> = specs.iter().filter_map(|m| m.metadata.name.clone()).collect();
        let members = self.connections.members();
        let mirrors = self.reconciler.reconcile(&mut self.overlay, &jobs, touched, members, &known, &raw, now);
        self.steps.lap("reconcile");
        // 4: on the jobs as step 3 left them.
        let jobs = self.overlay.jobs(&self.hub.jobs);
        let mut built =
            snapshot::build(view::unix(now), &views, &queues, &cohorts, &jobs, &namespaces, &mut self.running_specs);
        if let Some(progress) = &mut self.progress {
            progress.pass(&jobs, &specs, &mut built, view::unix(now));
            self.scheduling.set_learned(progress.learned());
            if let Some(web) = &self.web {
                web.metrics().learned(progress.learned(), progress.learner().jobs());
            }
        }
        // Fair share with memory and budgets, from the usage store.
        let store = self.hub.usage.state();
        self.metering.standings(
            &mut built,
            &jobs,
            &queues,
            &store,
            &self.scheduling.scheduler().model,
            view::unix(now),
        );
        self.steps.lap("snapshot");
        let members = self.connections.members();
        let target = |tj: &computenet_api::TrainingJob| self.reconciler.target(tj, members, &raw);
        self.scheduling.pass(&mut self.overlay, target, members, &jobs, &built, now);
        self.steps.lap("cycle");
        // 4b: the re-optimisation round, on the jobs as this pass's admissions leave them.
        if self.scheduling.adapt_due() {
            let jobs = self.overlay.jobs(&self.hub.jobs);
            let mut built = snapshot::build(
                view::unix(now),
                &views,
                &queues,
                &cohorts,
                &jobs,
                &namespaces,
                &mut self.running_specs,
            );
            crate::metering::apply(&mut built.queues, self.metering.standings_now());
            self.scheduling.adapt(&mut self.overlay, &jobs, &built, now);
            self.steps.lap("adapt");
        }
        // 5
        for (tj, transition) in mirrors {
            schedule::start_write(&mut self.overlay, &self.hub.client, tj, transition);
        }
        let mut computing = started.elapsed();
        self.steps.lap("mirrors");
        // 6
        self.reporters.members(&built, &views, &self.connections).await;
        self.steps.lap("member-status");
        let resumed = std::time::Instant::now();
        let jobs = self.overlay.jobs(&self.hub.jobs);
        let undecodable: std::collections::BTreeSet<String> =
            self.hub.undecodables.objects().into_iter().filter_map(|u| u.object.uid).collect();
        self.metering.pass(&jobs, &undecodable, &store, &built, &self.scheduling.scheduler().model, now);
        computing += resumed.elapsed();
        self.steps.lap("metering");
        self.reporters.queues(&queues, &jobs, &built, &self.metering).await;
        self.reporters.cohorts(&cohorts, &built, &self.metering).await;
        if let Some(web) = &self.web {
            self.reporters.observation(web, &built, &views, &queues, &jobs, now);
            let totals = self.metering.counters(&store).clone();
            web.metrics().usage(&totals, &self.metering);
            self.reporters.usage(web, &store, &queues, now);
        }
        self.steps.lap("reporters");
        // 7
        self.reconciler.clean_orphans(&jobs, self.connections.members(), now).await;
        self.steps.lap("orphans");
        computing
    }

    /// Step 2b: every admitted job must carry this service's seal, and before dispatch its
    /// queue must still exist and take its namespace; others are reset (no placement, a
    /// Warning Event AdmissionNotIssued) and then decided like any waiting job.
    fn reset_unissued(
        &mut self,
        jobs: &[Arc<computenet_api::TrainingJob>],
        queues: &[Arc<computenet_api::ComputeQueue>],
        namespaces: &BTreeMap<String, BTreeMap<String, String>>,
        now: Timestamp,
    ) {
        let by_name = view::queues(queues.iter().map(AsRef::as_ref)).by_name;
        let no_labels = BTreeMap::new();
        self.verified.retain(jobs);
        for tj in jobs.iter().filter(|j| seal::applies(j)) {
            if self.overlay.busy(view::uid(tj)) {
                continue;
            }
            let labels = namespaces.get(tj.metadata.namespace.as_deref().unwrap_or_default()).unwrap_or(&no_labels);
            let Err(why) = seal::check(&self.key, &mut self.verified, tj, &by_name, labels) else { continue };
            tracing::warn!(job = %view::job_name(tj), %why, "resetting an admission");
            let t = transitions::admission_not_issued(tj, &view::status(tj), &why, now);
            let expected = work::with_status(tj, &t.status);
            self.overlay.start(expected, work::reset_admission(self.hub.client.clone(), tj.clone(), t));
        }
    }

    /// Jobs with work in flight.
    pub fn in_flight(&self) -> usize {
        self.overlay.in_flight()
    }
}

#[cfg(test)]
mod tests {
    use super::StepTimes;

    #[test]
    fn step_times_list_each_step_once_in_order_and_start_afresh() {
        let mut steps = StepTimes::default();
        steps.lap("before-start");
        assert_eq!(steps.to_string(), "", "a lap before the start is not a step");
        steps.start();
        steps.lap("absorb");
        std::thread::sleep(std::time::Duration::from_millis(2));
        steps.lap("views");
        let shown = steps.to_string();
        let names: Vec<&str> = shown.split(' ').map(|s| s.split('=').next().unwrap_or_default()).collect();
        assert_eq!(names, ["absorb", "views"]);
        let views_ms: f64 = shown.split("views=").nth(1).and_then(|s| s.strip_suffix("ms")).unwrap().parse().unwrap();
        assert!(views_ms >= 2.0, "{shown}");
        steps.start();
        assert_eq!(steps.to_string(), "");
    }
}

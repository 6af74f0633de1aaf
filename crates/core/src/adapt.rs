//! The re-optimisation round: moves and resizes of running restartable jobs.
//!
//! The cycle decides once per pending job. Running restartable jobs (checkpointing, so a
//! stop loses only their restart cost) can do better later: a faster type may free up,
//! an elastic gang may grow into idle devices, or give back what it borrowed when a
//! pending job needs the room. [`Scheduler::adapt`] looks at a snapshot taken after the
//! cycle's admissions and proposes [`Adjustment`]s; the caller stops the job gracefully
//! and starts it again at the new placement and size.
//!
//! Rules that keep it stable:
//! - a move or a growth must save more than `gain_factor` x its restart cost, and at least
//!   `min_relative_gain` of the job's remaining time; a job moves at most
//!   `max_moves_per_hour` times an hour;
//! - growth beyond the size the job asked for (`Job::replicas` when it was submitted) is
//!   borrowed: a pending job that then does not fit takes it back ([`AdjustmentKind::Shrink`]);
//! - deterministic: the same snapshot gives the same adjustments, and after they are
//!   carried out the same round proposes nothing more (each move is to the best place
//!   there is, and staying costs nothing).

use crate::explain::Placement;
use crate::index::{apply_to, find_slots_in, ClusterIndex};
use crate::job::{Job, RunningJob};
use crate::pool::NodeSlot;
use crate::queue::{gang_usage, QuotaLedger};
use crate::throughput::Estimate;
use crate::{Objective, Scheduler, Snapshot, Work};
use serde::{Deserialize, Serialize};
use std::cell::OnceCell;

/// Knobs of the re-optimisation round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdaptConfig {
    /// A move must save more than this many times its restart cost.
    pub gain_factor: f64,
    /// ... and at least this share of the job's remaining time (no churn for crumbs).
    pub min_relative_gain: f64,
    /// Moves and resizes per job in any hour.
    pub max_moves_per_hour: u32,
    /// Adjustments one round proposes at most (the rest wait for the next round).
    pub max_adjustments: usize,
}

impl Default for AdaptConfig {
    fn default() -> Self {
        Self { gain_factor: 2.0, min_relative_gain: 0.1, max_moves_per_hour: 2, max_adjustments: 256 }
    }
}

/// A running restartable job the round may move or resize.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Adaptable {
    /// Its index in `Snapshot::running`.
    pub running: usize,
    /// The job as it would start again: its remaining work, its elastic range and
    /// restart cost, and `replicas` the size it asked for (growth beyond is borrowed).
    pub job: Job,
    /// Moves and resizes it had in the last hour.
    pub recent_moves: u32,
}

/// What an adjustment does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AdjustmentKind {
    /// To a faster (or, for Cheapest/Greenest jobs, more efficient) place, same size.
    Migrate,
    /// More replicas (elastic).
    Grow,
    /// Fewer replicas (elastic), giving back borrowed devices to a pending job.
    Shrink,
}

impl std::fmt::Display for AdjustmentKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

/// Stop a running job and start it again here, at this size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Adjustment {
    pub job: String,
    pub kind: AdjustmentKind,
    /// The new replica count.
    pub replicas: u32,
    /// The new placement; its estimate is for the remaining work at the new size.
    pub placement: Placement,
    /// Expected seconds to finish if left alone.
    pub remaining_s: f64,
    /// Expected seconds to finish after the adjustment, its restart cost included.
    pub adjusted_s: f64,
    /// Why, in one sentence (for the job's history and explanation).
    pub reason: String,
}

/// The share of a job's work still to do, as work: `fraction` of it (0..=1).
pub fn remaining_work(work: &Work, fraction: f64) -> Work {
    let f = if fraction.is_finite() { fraction.clamp(0.0, 1.0) } else { 1.0 };
    match work {
        Work::ModelSteps { model, steps, batch_size } => Work::ModelSteps {
            model: model.clone(),
            steps: ((*steps as f64) * f).ceil().max(1.0) as u64,
            batch_size: *batch_size,
        },
        Work::DeviceHours { hours, reference } => Work::DeviceHours { hours: hours * f, reference: reference.clone() },
        Work::Unknown => Work::Unknown,
    }
}

/// One place a job could run at next: cluster, type, size, node slots and estimate.
struct Place {
    cluster: usize,
    accelerator: Option<String>,
    replicas: u32,
    slots: Vec<NodeSlot>,
    estimate: Estimate,
}

impl Scheduler {
    /// One re-optimisation round over `snapshot` (taken after the cycle's admissions:
    /// `pending` holds the jobs still waiting, the pool's free capacity is what is left).
    /// Deterministic, no IO.
    pub fn adapt(&self, snapshot: &Snapshot<'_>, adaptable: &[Adaptable], config: &AdaptConfig) -> Vec<Adjustment> {
        let pool = snapshot.pool;
        let mut indexes: Vec<ClusterIndex> = pool.clusters.iter().map(ClusterIndex::new).collect();
        let mut out = Vec::new();
        let mut adjusted = vec![false; adaptable.len()];
        // Quotas hold for the new sizes and types as they hold for admissions.
        let mut ledger = QuotaLedger::new(snapshot.queues, snapshot.cohorts);
        for r in snapshot.running {
            if let Some(q) = ledger.queue_index(&r.queue) {
                ledger.admit(q, &usage_of(r), r.accelerator.as_deref());
            }
        }

        // 1. Give borrowed devices back: a pending job that does not fit now takes back
        //    what elastic gangs grew into beyond their asked size (same or lower priority).
        self.shrink_for_pending(snapshot, adaptable, &mut indexes, &mut ledger, &mut adjusted, &mut out, config);

        // 2. Moves and growths, best gain first, into what is free. Growth beyond the
        //    asked size only into devices no waiting job could start on now.
        let waiting = waiting_in_order(snapshot.pending, WAITING_CHECKED);
        let group_nodes: Vec<Vec<Vec<u32>>> = indexes
            .iter()
            .map(|ix| {
                let mut lists = vec![Vec::new(); ix.groups().len()];
                for n in 0..ix.free().len() as u32 {
                    if let Some(g) = ix.group_of(n) {
                        lists[g].push(n);
                    }
                }
                lists
            })
            .collect();
        let group_free: Vec<Vec<u64>> = indexes
            .iter()
            .zip(&group_nodes)
            .map(|(ix, groups)| {
                groups
                    .iter()
                    .map(|nodes| nodes.iter().map(|&n| u64::from(ix.free()[n as usize].accelerators)).sum())
                    .collect()
            })
            .collect();
        let group_types: Vec<Vec<Option<String>>> =
            indexes.iter().map(|ix| ix.groups().iter().map(|g| g.accelerator.clone()).collect()).collect();
        let context = Context { waiting: &waiting, group_free: &group_free, group_types: &group_types };
        let mut proposals: Vec<(f64, usize, Place, f64, f64)> = Vec::new();
        for (k, a) in adaptable.iter().enumerate() {
            if adjusted[k] || !self.may_move(snapshot, a, config) {
                continue;
            }
            if let Some((option, now_s, after_s)) =
                self.best_option(snapshot, a, &context, &mut indexes, &mut ledger, config)
            {
                proposals.push((now_s - after_s, k, option, now_s, after_s));
            }
        }
        proposals.sort_by(|x, y| y.0.total_cmp(&x.0).then(adaptable[x.1].job.id.cmp(&adaptable[y.1].job.id)));
        for (_, k, option, now_s, after_s) in proposals {
            if out.len() >= config.max_adjustments {
                break;
            }
            let a = &adaptable[k];
            let r = &snapshot.running[a.running];
            // Earlier proposals took capacity: check the slots are still free.
            let same = option.cluster == r.cluster;
            if same {
                indexes[r.cluster].apply(&r.slots, &r.per_replica, false);
            }
            let fits = option.slots.iter().all(|s| {
                indexes[option.cluster].free()[s.node as usize].replicas_fitting(&a.job.per_replica) >= s.replicas
            });
            let q = ledger.queue_index(&r.queue);
            if let Some(q) = q {
                ledger.release(q, &usage_of(r), r.accelerator.as_deref());
            }
            let new_usage = gang_usage(&a.job.per_replica, option.replicas, option.accelerator.as_deref());
            let within_quota = q.is_none_or(|q| ledger.check(q, &new_usage, option.accelerator.as_deref()).is_ok());
            if !fits || !within_quota {
                if same {
                    indexes[r.cluster].apply(&r.slots, &r.per_replica, true);
                }
                if let Some(q) = q {
                    ledger.admit(q, &usage_of(r), r.accelerator.as_deref());
                }
                continue;
            }
            if let Some(q) = q {
                ledger.admit(q, &new_usage, option.accelerator.as_deref());
            }
            if !same {
                indexes[r.cluster].apply(&r.slots, &r.per_replica, false);
            }
            indexes[option.cluster].apply(&option.slots, &a.job.per_replica, true);
            let current = r.replicas();
            let kind = if option.replicas > current {
                AdjustmentKind::Grow
            } else if option.replicas < current {
                AdjustmentKind::Shrink
            } else {
                AdjustmentKind::Migrate
            };
            let reason = describe(kind, r, &option, pool, now_s, after_s);
            out.push(self.adjustment(snapshot, a, kind, option, now_s, after_s, reason));
        }
        out
    }

    /// Restartable, not moved too often, and not ending anyway within its restart cost.
    fn may_move(&self, snapshot: &Snapshot<'_>, a: &Adaptable, config: &AdaptConfig) -> bool {
        let Some(restart) = a.job.restart else {
            return false;
        };
        let Some(r) = snapshot.running.get(a.running) else {
            return false;
        };
        a.recent_moves < config.max_moves_per_hour
            && r.estimated_end > snapshot.now.saturating_add(restart.restart_cost_s)
    }

    /// The job's remaining seconds where it runs now, and its best alternative with the
    /// seconds it would take there (restart cost included), if that gains enough.
    fn best_option(
        &self,
        snapshot: &Snapshot<'_>,
        a: &Adaptable,
        context: &Context<'_>,
        indexes: &mut [ClusterIndex],
        ledger: &mut QuotaLedger,
        config: &AdaptConfig,
    ) -> Option<(Place, f64, f64)> {
        let r = &snapshot.running[a.running];
        let restart = a.job.restart?;
        // Its own usage is given back while alternatives are weighed.
        let q = ledger.queue_index(&r.queue);
        if let Some(q) = q {
            ledger.release(q, &usage_of(r), r.accelerator.as_deref());
        }
        let best = self.best_place(snapshot, a, context, restart, indexes, ledger, q, config);
        if let Some(q) = q {
            ledger.admit(q, &usage_of(r), r.accelerator.as_deref());
        }
        best
    }

    #[allow(clippy::too_many_arguments)]
    fn best_place(
        &self,
        snapshot: &Snapshot<'_>,
        a: &Adaptable,
        context: &Context<'_>,
        restart: crate::Restart,
        indexes: &mut [ClusterIndex],
        ledger: &QuotaLedger,
        q: Option<usize>,
        config: &AdaptConfig,
    ) -> Option<(Place, f64, f64)> {
        let r = &snapshot.running[a.running];
        let pool = snapshot.pool;
        let current = r.replicas();
        let now_s = self.remaining_at(&a.job, pool, r.cluster, r.accelerator.as_deref(), current, r.slots.len());
        // Sizes it may take: never below its current size here (shrinking is for pending
        // jobs' sake, step 1), up to its elastic maximum.
        let (lowest, highest) = match a.job.elastic {
            Some(e) => (e.min_replicas.max(current), e.max_replicas.max(current)),
            None => (current, current),
        };
        let mut best: Option<(f64, Place)> = None;
        // Runtime by (type, size) on one node: a lower bound of any placement of that size
        // (more nodes only slow it down), the same on every cluster.
        let mut best_runtime: Vec<(Option<&str>, u32, f64)> = Vec::new();
        for (c, cluster) in pool.clusters.iter().enumerate() {
            if !cluster.takes(&a.job) {
                continue;
            }
            let own = c == r.cluster;
            for (g, accelerator) in context.group_types[c].iter().enumerate() {
                let accelerator = accelerator.as_deref();
                if !self.type_allowed(&a.job, accelerator, pool) {
                    continue;
                }
                // Free devices of the group: most candidates fail here, cheaply.
                let per = u64::from(a.job.per_replica.accelerators);
                let own_group = own && accelerator == r.accelerator.as_deref();
                let own_devices = if own_group { u64::from(current) * per } else { 0 };
                let free_devices = context.group_free[c][g] + own_devices;
                let needed_elsewhere = OnceCell::new();
                // The largest sizes the group's free devices allow, a few at most (a
                // fragmented group may not take the largest), then the current size.
                let largest = free_devices
                    .checked_div(per)
                    .map_or(highest, |n| u32::try_from(n).unwrap_or(u32::MAX).min(highest));
                let mut sizes: Vec<u32> = (lowest..=largest).rev().take(SIZES_TRIED).collect();
                if !sizes.contains(&current) {
                    sizes.push(current);
                }
                for size in sizes {
                    if own_group && size == current {
                        continue; // staying put is the baseline
                    }
                    if per > 0 && free_devices < u64::from(size) * per {
                        continue;
                    }
                    // The best it could do there (on the fewest nodes): most places are
                    // no gain at all, and this needs no slot search.
                    let lower_bound = match best_runtime.iter().find(|e| e.0 == accelerator && e.1 == size) {
                        Some(e) => e.2,
                        None => {
                            let mut job = a.job.clone();
                            job.replicas = size;
                            let (t, _) = self.model.runtime_s(&job, &pool.catalogue, accelerator, 1);
                            best_runtime.push((accelerator, size, t));
                            t
                        }
                    };
                    let best_after = lower_bound + restart.restart_cost_s as f64;
                    if !gains_enough(now_s, best_after, restart.restart_cost_s, config)
                        || best.as_ref().is_some_and(|(b, _)| best_after >= *b)
                    {
                        continue;
                    }
                    if size > a.job.replicas.max(current)
                        && *needed_elsewhere.get_or_init(|| {
                            context.waiting.iter().any(|w| {
                                w.priority >= a.job.priority
                                    && cluster.admits(&w.tenant)
                                    && cluster.runs(w.workload_kind.as_deref())
                                    && self.type_allowed(w, accelerator, pool)
                                    && indexes[c].find_slots(g, &w.per_replica, w.replicas, None).is_ok()
                            })
                        })
                    {
                        continue; // growth would take devices a waiting job can use now
                    }
                    let usage = gang_usage(&a.job.per_replica, size, accelerator);
                    if q.is_some_and(|q| ledger.check(q, &usage, accelerator).is_err()) {
                        continue;
                    }
                    // Its own devices count as free where it runs.
                    if own {
                        indexes[c].apply(&r.slots, &r.per_replica, false);
                    }
                    let found = indexes[c].find_slots(g, &a.job.per_replica, size, None);
                    if own {
                        indexes[c].apply(&r.slots, &r.per_replica, true);
                    }
                    let Ok(slots) = found else {
                        continue;
                    };
                    let mut sized = a.job.clone();
                    sized.replicas = size;
                    let estimate = self.model.estimate(&sized, pool, cluster, accelerator, slots.len() as u32);
                    let after_s = estimate.runtime_s + estimate.transfer_s + restart.restart_cost_s as f64;
                    let better = match a.job.objective {
                        // Energy-minded jobs move only where they also spend less.
                        Objective::Cheapest | Objective::Greenest => {
                            let here = self.remaining_energy(&a.job, pool, r, current);
                            estimate.energy_kwh < here
                        }
                        Objective::Fastest | Objective::Balanced => true,
                    };
                    if better
                        && gains_enough(now_s, after_s, restart.restart_cost_s, config)
                        && best.as_ref().is_none_or(|(b, _)| after_s < *b)
                    {
                        best = Some((
                            after_s,
                            Place {
                                cluster: c,
                                accelerator: accelerator.map(str::to_string),
                                replicas: size,
                                slots,
                                estimate,
                            },
                        ));
                    }
                    // The largest size that fits is tried first; smaller ones of the
                    // same group only help when scaling is poor, so keep trying.
                }
            }
        }
        best.map(|(after_s, option)| (option, now_s, after_s))
    }

    fn type_allowed(&self, job: &Job, accelerator: Option<&str>, pool: &crate::Pool) -> bool {
        let wants_devices = job.per_replica.accelerators > 0;
        let Some(name) = accelerator else {
            return !wants_devices;
        };
        if !wants_devices {
            return false;
        }
        let catalogue = &pool.catalogue;
        let type_ok = job.accelerator.types.is_empty()
            || job.accelerator.types.iter().any(|t| catalogue.canonical_name(t).as_deref().unwrap_or(t) == name);
        let memory_ok = job
            .accelerator
            .min_memory_gib
            .is_none_or(|m| catalogue.get(name).is_some_and(|s| s.memory_gib >= f64::from(m)));
        type_ok && memory_ok
    }

    /// Seconds the remaining work takes at a placement.
    fn remaining_at(
        &self,
        job: &Job,
        pool: &crate::Pool,
        cluster: usize,
        accelerator: Option<&str>,
        replicas: u32,
        nodes: usize,
    ) -> f64 {
        let mut job = job.clone();
        job.replicas = replicas;
        let e = self.model.estimate(&job, pool, &pool.clusters[cluster], accelerator, nodes as u32);
        e.runtime_s
    }

    fn remaining_energy(&self, job: &Job, pool: &crate::Pool, r: &RunningJob, replicas: u32) -> f64 {
        let mut job = job.clone();
        job.replicas = replicas;
        let e =
            self.model.estimate(&job, pool, &pool.clusters[r.cluster], r.accelerator.as_deref(), r.slots.len() as u32);
        e.energy_kwh
    }

    /// Pending jobs in queue order (priority, submission) that do not fit now take back
    /// devices that elastic gangs of no higher priority borrowed beyond their asked size.
    #[allow(clippy::too_many_arguments)]
    fn shrink_for_pending(
        &self,
        snapshot: &Snapshot<'_>,
        adaptable: &[Adaptable],
        indexes: &mut [ClusterIndex],
        ledger: &mut QuotaLedger,
        adjusted: &mut [bool],
        out: &mut Vec<Adjustment>,
        config: &AdaptConfig,
    ) {
        let borrowers: Vec<usize> = (0..adaptable.len())
            .filter(|&k| {
                let a = &adaptable[k];
                a.job.elastic.is_some()
                    && a.job.restart.is_some()
                    && a.recent_moves < config.max_moves_per_hour
                    && snapshot.running.get(a.running).is_some_and(|r| r.replicas() > a.job.replicas)
            })
            .collect();
        if borrowers.is_empty() {
            return;
        }
        let pool = snapshot.pool;
        'jobs: for job in waiting_in_order(snapshot.pending, WAITING_CHECKED) {
            if out.len() >= config.max_adjustments {
                return;
            }
            // A job its quota holds back would not start on the devices given back.
            let Some(q) = ledger.queue_index(&job.queue) else {
                continue;
            };
            for (c, cluster) in pool.clusters.iter().enumerate() {
                if !cluster.takes(job) {
                    continue;
                }
                // Borrowers on this cluster of no higher priority, most borrowed first.
                let mut here: Vec<usize> = borrowers
                    .iter()
                    .copied()
                    .filter(|&k| {
                        !adjusted[k]
                            && snapshot.running[adaptable[k].running].cluster == c
                            && adaptable[k].job.priority <= job.priority
                    })
                    .collect();
                if here.is_empty() {
                    continue;
                }
                here.sort_by_key(|&k| {
                    let r = &snapshot.running[adaptable[k].running];
                    (std::cmp::Reverse(r.replicas() - adaptable[k].job.replicas), adaptable[k].job.id.clone())
                });
                for (g, group) in indexes[c].groups().iter().enumerate() {
                    if !self.type_allowed(job, group.accelerator.as_deref(), pool)
                        || ledger
                            .check(
                                q,
                                &gang_usage(&job.per_replica, job.replicas, group.accelerator.as_deref()),
                                group.accelerator.as_deref(),
                            )
                            .is_err()
                    {
                        continue;
                    }
                    if indexes[c].find_slots(g, &job.per_replica, job.replicas, None).is_ok() {
                        continue 'jobs; // it fits already: the next cycle admits it
                    }
                    let nodes: Vec<u32> =
                        (0..indexes[c].free().len() as u32).filter(|n| indexes[c].group_of(*n) == Some(g)).collect();
                    let mut free = indexes[c].free().to_vec();
                    // Shrink borrowers one by one (to their asked size, on their own
                    // devices) until the pending gang fits.
                    let mut shrunk: Vec<(usize, Vec<NodeSlot>)> = Vec::new();
                    for &k in &here {
                        let a = &adaptable[k];
                        let r = &snapshot.running[a.running];
                        if r.accelerator != group.accelerator {
                            continue;
                        }
                        apply_to(&mut free, &r.slots, &r.per_replica, false);
                        let own: Vec<u32> = r.slots.iter().map(|s| s.node).collect();
                        let Some(slots) = find_slots_in(&free, own.into_iter(), &a.job.per_replica, a.job.replicas)
                        else {
                            apply_to(&mut free, &r.slots, &r.per_replica, true);
                            continue;
                        };
                        apply_to(&mut free, &slots, &a.job.per_replica, true);
                        shrunk.push((k, slots));
                        if find_slots_in(&free, nodes.iter().copied(), &job.per_replica, job.replicas).is_some() {
                            break;
                        }
                    }
                    if shrunk.is_empty()
                        || find_slots_in(&free, nodes.iter().copied(), &job.per_replica, job.replicas).is_none()
                    {
                        continue;
                    }
                    for (k, slots) in shrunk {
                        let a = &adaptable[k];
                        let r = &snapshot.running[a.running];
                        indexes[c].apply(&r.slots, &r.per_replica, false);
                        indexes[c].apply(&slots, &a.job.per_replica, true);
                        if let Some(q) = ledger.queue_index(&r.queue) {
                            ledger.release(q, &usage_of(r), r.accelerator.as_deref());
                            let smaller = gang_usage(&a.job.per_replica, a.job.replicas, r.accelerator.as_deref());
                            ledger.admit(q, &smaller, r.accelerator.as_deref());
                        }
                        adjusted[k] = true;
                        let now_s =
                            self.remaining_at(&a.job, pool, c, r.accelerator.as_deref(), r.replicas(), r.slots.len());
                        let mut sized = a.job.clone();
                        sized.replicas = a.job.replicas;
                        let estimate =
                            self.model.estimate(&sized, pool, cluster, r.accelerator.as_deref(), slots.len() as u32);
                        let restart_s = a.job.restart.map_or(0, |x| x.restart_cost_s) as f64;
                        let after_s = estimate.runtime_s + restart_s;
                        let reason = format!(
                            "gives back {} borrowed replicas so that {} can start",
                            r.replicas() - a.job.replicas,
                            job.id
                        );
                        let option = Place {
                            cluster: c,
                            accelerator: r.accelerator.clone(),
                            replicas: a.job.replicas,
                            slots,
                            estimate,
                        };
                        out.push(self.adjustment(snapshot, a, AdjustmentKind::Shrink, option, now_s, after_s, reason));
                    }
                    continue 'jobs; // room made for it once is enough
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn adjustment(
        &self,
        snapshot: &Snapshot<'_>,
        a: &Adaptable,
        kind: AdjustmentKind,
        option: Place,
        remaining_s: f64,
        adjusted_s: f64,
        reason: String,
    ) -> Adjustment {
        let cluster = &snapshot.pool.clusters[option.cluster];
        Adjustment {
            job: a.job.id.clone(),
            kind,
            replicas: option.replicas,
            placement: Placement {
                cluster_index: option.cluster,
                cluster: cluster.name.clone(),
                accelerator: option.accelerator,
                slots: option.slots,
                estimate: option.estimate,
                backfilled: false,
            },
            remaining_s,
            adjusted_s,
            reason,
        }
    }
}

/// Sizes of an elastic gang tried per type group (the largest that the free devices allow
/// first): bounds the work for a gang whose range is wide.
const SIZES_TRIED: usize = 4;

/// Waiting jobs a round looks at (the first ones in queue order): enough for the next
/// cycle, bounded so that a long queue does not make the round slow.
const WAITING_CHECKED: usize = 64;

/// What the round computes once and every candidate search reads.
struct Context<'c> {
    /// The first waiting jobs in queue order.
    waiting: &'c [&'c Job],
    /// Free devices of each type group of each cluster.
    group_free: &'c [Vec<u64>],
    /// The accelerator type of each type group of each cluster.
    group_types: &'c [Vec<Option<String>>],
}

/// The first `limit` pending jobs in queue order: priority, then submission.
fn waiting_in_order(pending: &[Job], limit: usize) -> Vec<&Job> {
    let mut waiting: Vec<&Job> = pending.iter().collect();
    waiting.sort_by(|a, b| b.priority.cmp(&a.priority).then(a.submitted_at.cmp(&b.submitted_at)).then(a.id.cmp(&b.id)));
    waiting.truncate(limit);
    waiting
}

/// Whether finishing in `after_s` instead of `now_s` is worth a restart of `restart_s`.
fn gains_enough(now_s: f64, after_s: f64, restart_s: u64, config: &AdaptConfig) -> bool {
    let gain = now_s - after_s;
    gain > config.gain_factor * restart_s as f64 && gain >= config.min_relative_gain * now_s
}

/// What a running gang counts against its queue's quota.
fn usage_of(r: &RunningJob) -> Vec<(crate::queue::ResourceName, u64)> {
    gang_usage(&r.per_replica, r.replicas(), r.accelerator.as_deref())
}

fn describe(
    kind: AdjustmentKind,
    r: &RunningJob,
    option: &Place,
    pool: &crate::Pool,
    now_s: f64,
    after_s: f64,
) -> String {
    let to = &pool.clusters[option.cluster].name;
    let from = &pool.clusters.get(r.cluster).map_or("?", |c| c.name.as_str());
    let hours = |s: f64| s / 3600.0;
    match kind {
        AdjustmentKind::Migrate => format!(
            "moves from {from} to {to}: {:.2} h left instead of {:.2} h, restart included",
            hours(after_s),
            hours(now_s)
        ),
        AdjustmentKind::Grow | AdjustmentKind::Shrink => format!(
            "resizes from {} to {} replicas on {to}: {:.2} h left instead of {:.2} h, restart included",
            r.replicas(),
            option.replicas,
            hours(after_s),
            hours(now_s)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::explain::Action;
    use crate::synth::{cluster, job, pool};
    use crate::{ClusterKind, ElasticRange, Pool, Queue, Restart};

    /// Runs one cycle at 0 over `jobs` and returns the pool with them placed and running.
    fn placed(mut p: Pool, jobs: &[Job]) -> (Pool, Vec<RunningJob>) {
        let queues = vec![Queue::unlimited("q")];
        let out = Scheduler::default().cycle(&Snapshot {
            now: 0,
            pool: &p,
            queues: &queues,
            cohorts: &[],
            pending: jobs,
            running: &[],
        });
        let mut running = Vec::new();
        for d in out.decisions {
            let Action::Admit(pl) = d.action else { continue };
            let j = jobs.iter().find(|j| j.id == d.job).expect("pending");
            p.allocate(pl.cluster_index, &pl.slots, &j.per_replica).expect("fits");
            running.push(RunningJob::started(j, &pl, 0, pl.estimate.runtime_s as u64));
        }
        (p, running)
    }

    fn restartable(mut j: Job, cost: u64) -> Job {
        j.restart = Some(Restart { grace_period_s: 30, restart_cost_s: cost });
        j
    }

    fn round(p: &Pool, running: &[RunningJob], jobs: &[Job], pending: &[Job]) -> Vec<Adjustment> {
        let queues = vec![Queue::unlimited("q")];
        let adaptable: Vec<Adaptable> = running
            .iter()
            .enumerate()
            .filter_map(|(k, r)| {
                let j = jobs.iter().find(|j| j.id == r.id)?;
                Some(Adaptable { running: k, job: j.clone(), recent_moves: 0 })
            })
            .collect();
        let snap = Snapshot { now: 60, pool: p, queues: &queues, cohorts: &[], pending, running };
        Scheduler::default().adapt(&snap, &adaptable, &AdaptConfig::default())
    }

    /// 64 V100-hours on 8 T4s take 64 x 125/65 / 8 = 15.4 h; on a free A100 node
    /// 64 x 125/312 / 8 = 3.2 h. The A100 node is busy for 20 h (too long to wait for);
    /// once it frees up early, the job moves there.
    #[test]
    fn a_restartable_job_moves_to_the_faster_type_when_it_frees_up() {
        let slow = restartable(job("slow", "q", 1, 8, 64.0), 120);
        let blocker = job("blocker", "q", 1, 8, 400.0);
        let p = pool(vec![
            cluster("a100", ClusterKind::AI, "x", 1, Some("A100-80G"), 8),
            cluster("t4", ClusterKind::AI, "x", 1, Some("T4"), 8),
        ]);
        let jobs = vec![blocker.clone(), slow.clone()];
        let (mut p, mut running) = placed(p, &jobs);
        assert_eq!(running.iter().find(|r| r.id == "slow").map(|r| r.cluster), Some(1), "starts on the T4s");
        assert!(round(&p, &running, &jobs, &[]).is_empty(), "nowhere better while the A100s are busy");
        // The blocker ends.
        let b = running.remove(0);
        p.release(b.cluster, &b.slots, &b.per_replica);
        let adj = round(&p, &running, &jobs, &[]);
        assert_eq!(adj.len(), 1);
        assert_eq!(
            (adj[0].kind, adj[0].placement.cluster.as_str(), adj[0].replicas),
            (AdjustmentKind::Migrate, "a100", 1)
        );
        assert!(adj[0].adjusted_s < adj[0].remaining_s / 3.0, "{} vs {}", adj[0].adjusted_s, adj[0].remaining_s);
        assert!(adj[0].reason.contains("moves from t4 to a100"), "{}", adj[0].reason);
        // A rigid job in the same place stays.
        let mut rigid = slow;
        rigid.restart = None;
        assert!(round(&p, &running, &[rigid], &[]).is_empty());
    }

    /// A gain below the margin is no reason to move: with a restart cost of 10 h the
    /// 12 h saved are less than twice the cost.
    #[test]
    fn no_move_when_the_restart_costs_more_than_the_margin_allows() {
        let slow = restartable(job("slow", "q", 1, 8, 64.0), 36_000);
        let p = pool(vec![cluster("t4", ClusterKind::AI, "x", 1, Some("T4"), 8)]);
        let (mut p, running) = placed(p, std::slice::from_ref(&slow));
        p.clusters.push(cluster("a100", ClusterKind::AI, "x", 1, Some("A100-80G"), 8));
        assert!(round(&p, &running, &[slow], &[]).is_empty());
    }

    /// An elastic gang (1..=4 replicas, asked 2) grows into free devices, and gives back
    /// what it borrowed when a pending job does not fit otherwise.
    #[test]
    fn an_elastic_job_grows_and_gives_back() {
        let mut elastic = restartable(job("e", "q", 2, 4, 64.0), 60);
        elastic.elastic = Some(ElasticRange { min_replicas: 1, max_replicas: 4 });
        let p = pool(vec![cluster("ai", ClusterKind::AI, "x", 4, Some("A100-80G"), 4)]);
        let jobs = vec![elastic.clone()];
        let (mut p, mut running) = placed(p, &jobs);
        let adj = round(&p, &running, &jobs, &[]);
        assert_eq!(adj.len(), 1);
        assert_eq!((adj[0].kind, adj[0].replicas), (AdjustmentKind::Grow, 4));
        // Carry it out.
        let r = &mut running[0];
        p.release(r.cluster, &r.slots, &r.per_replica);
        p.allocate(0, &adj[0].placement.slots, &r.per_replica).expect("fits");
        r.slots = adj[0].placement.slots.clone();
        // A pending gang of 2 x 4 finds no room; the grown job shrinks back to 2.
        let pending = vec![job("p", "q", 2, 4, 1.0)];
        let adj = round(&p, &running, &jobs, &pending);
        assert_eq!(adj.len(), 1);
        assert_eq!((adj[0].kind, adj[0].replicas), (AdjustmentKind::Shrink, 2));
        assert!(adj[0].reason.contains("so that p can start"), "{}", adj[0].reason);
        // A pending job that may not run there (another site) takes nothing back, nor
        // does one of a queue the round does not know.
        let mut elsewhere = pending[0].clone();
        elsewhere.sites = vec!["elsewhere".into()];
        assert!(round(&p, &running, &jobs, &[elsewhere]).is_empty());
        let mut unknown = pending[0].clone();
        unknown.queue = "nope".into();
        assert!(round(&p, &running, &jobs, &[unknown]).is_empty());
    }

    #[test]
    fn remaining_work_scales_steps_and_hours() {
        let steps = Work::ModelSteps { model: "m".into(), steps: 1000, batch_size: None };
        assert_eq!(remaining_work(&steps, 0.25), Work::ModelSteps { model: "m".into(), steps: 250, batch_size: None });
        assert_eq!(remaining_work(&steps, 0.0), Work::ModelSteps { model: "m".into(), steps: 1, batch_size: None });
        assert_eq!(remaining_work(&steps, f64::NAN), steps);
        let hours = Work::DeviceHours { hours: 8.0, reference: "V100".into() };
        assert_eq!(remaining_work(&hours, 2.0), hours, "clamped to all of it");
    }
}

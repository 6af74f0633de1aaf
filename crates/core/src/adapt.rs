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
use crate::throughput::Estimate;
use crate::{Objective, Scheduler, Snapshot, Work};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

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

/// One candidate place for a job.
struct Option_ {
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

        // 1. Give borrowed devices back: a pending job that does not fit now takes back
        //    what elastic gangs grew into beyond their asked size (same or lower priority).
        self.shrink_for_pending(snapshot, adaptable, &mut indexes, &mut adjusted, &mut out, config);

        // 2. Moves and growths, best gain first, into what is free.
        let mut proposals: Vec<(f64, usize, Option_, f64, f64)> = Vec::new();
        for (k, a) in adaptable.iter().enumerate() {
            if adjusted[k] || !self.may_move(snapshot, a, config) {
                continue;
            }
            if let Some((option, now_s, after_s)) = self.best_option(snapshot, a, &mut indexes, config) {
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
            if !fits {
                if same {
                    indexes[r.cluster].apply(&r.slots, &r.per_replica, true);
                }
                continue;
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
        indexes: &mut [ClusterIndex],
        config: &AdaptConfig,
    ) -> Option<(Option_, f64, f64)> {
        let r = &snapshot.running[a.running];
        let restart = a.job.restart?;
        let pool = snapshot.pool;
        let current = r.replicas();
        let now_s = self.remaining_at(&a.job, pool, r.cluster, r.accelerator.as_deref(), current, r.slots.len());
        let sizes: Vec<u32> = match a.job.elastic {
            Some(e) => (e.min_replicas.max(current)..=e.max_replicas).collect(),
            None => vec![current],
        };
        let mut best: Option<(f64, Option_)> = None;
        let mut runtime_cache: HashMap<(Option<String>, u32, u32), Estimate> = HashMap::new();
        for c in 0..pool.clusters.len() {
            let cluster = &pool.clusters[c];
            if !cluster.schedulable()
                || !cluster.admits(&a.job.tenant)
                || (!a.job.cluster_kinds.is_empty() && !a.job.cluster_kinds.contains(&cluster.kind))
                || (!a.job.sites.is_empty() && !a.job.sites.contains(&cluster.site))
            {
                continue;
            }
            // Its own devices count as free where it runs.
            let own = c == r.cluster;
            let mut free = indexes[c].free().to_vec();
            if own {
                apply_to(&mut free, &r.slots, &r.per_replica, false);
            }
            for (g, group) in indexes[c].groups().iter().enumerate() {
                if !self.type_allowed(&a.job, group.accelerator.as_deref(), pool) {
                    continue;
                }
                let nodes: Vec<u32> = (0..free.len() as u32).filter(|n| indexes[c].group_of(*n) == Some(g)).collect();
                for &size in sizes.iter().rev() {
                    if own && size == current && group.accelerator == r.accelerator {
                        continue; // staying put is the baseline
                    }
                    let Some(slots) = find_slots_in(&free, nodes.iter().copied(), &a.job.per_replica, size) else {
                        continue;
                    };
                    let key = (group.accelerator.clone(), size, slots.len() as u32);
                    let estimate = *runtime_cache.entry(key).or_insert_with(|| {
                        let mut job = a.job.clone();
                        job.replicas = size;
                        self.model.estimate(&job, pool, cluster, group.accelerator.as_deref(), slots.len() as u32)
                    });
                    let after_s = estimate.runtime_s + estimate.transfer_s + restart.restart_cost_s as f64;
                    let better = match a.job.objective {
                        // Energy-minded jobs move only where they also spend less.
                        Objective::Cheapest | Objective::Greenest => {
                            let here = self.remaining_energy(&a.job, pool, r, current);
                            estimate.energy_kwh < here
                        }
                        Objective::Fastest | Objective::Balanced => true,
                    };
                    let gain = now_s - after_s;
                    if better
                        && gain > config.gain_factor * restart.restart_cost_s as f64
                        && gain >= config.min_relative_gain * now_s
                        && best.as_ref().is_none_or(|(b, _)| after_s < *b)
                    {
                        best = Some((
                            after_s,
                            Option_ {
                                cluster: c,
                                accelerator: group.accelerator.clone(),
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
    fn shrink_for_pending(
        &self,
        snapshot: &Snapshot<'_>,
        adaptable: &[Adaptable],
        indexes: &mut [ClusterIndex],
        adjusted: &mut [bool],
        out: &mut Vec<Adjustment>,
        config: &AdaptConfig,
    ) {
        let borrowers: Vec<usize> = (0..adaptable.len())
            .filter(|&k| {
                let a = &adaptable[k];
                a.job.elastic.is_some()
                    && a.job.restart.is_some()
                    && snapshot.running.get(a.running).is_some_and(|r| r.replicas() > a.job.replicas)
            })
            .collect();
        if borrowers.is_empty() {
            return;
        }
        let mut pending: Vec<&Job> = snapshot.pending.iter().collect();
        pending.sort_by(|a, b| {
            b.priority.cmp(&a.priority).then(a.submitted_at.cmp(&b.submitted_at)).then(a.id.cmp(&b.id))
        });
        let pool = snapshot.pool;
        for job in pending {
            if out.len() >= config.max_adjustments {
                return;
            }
            for c in 0..pool.clusters.len() {
                let cluster = &pool.clusters[c];
                if !cluster.schedulable() || !cluster.admits(&job.tenant) {
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
                    if !self.type_allowed(job, group.accelerator.as_deref(), pool) {
                        continue;
                    }
                    let nodes: Vec<u32> =
                        (0..indexes[c].free().len() as u32).filter(|n| indexes[c].group_of(*n) == Some(g)).collect();
                    let mut free = indexes[c].free().to_vec();
                    if find_slots_in(&free, nodes.iter().copied(), &job.per_replica, job.replicas).is_some() {
                        break; // it fits already: the next cycle admits it
                    }
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
                        let option = Option_ {
                            cluster: c,
                            accelerator: r.accelerator.clone(),
                            replicas: a.job.replicas,
                            slots,
                            estimate,
                        };
                        out.push(self.adjustment(snapshot, a, AdjustmentKind::Shrink, option, now_s, after_s, reason));
                    }
                    break;
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
        option: Option_,
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

fn describe(
    kind: AdjustmentKind,
    r: &RunningJob,
    option: &Option_,
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

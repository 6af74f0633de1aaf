//! One test per scheduling rule, on small hand-made pools.

use computenet_core::explain::Placement;
use computenet_core::pool::NodeSlot;
use computenet_core::queue::{
    Cohort, PreemptionPolicy, PreemptionScope, PriorityRange, QueueingStrategy, Quota, ResourceName,
};
use computenet_core::synth::{cluster, job, pool};
use computenet_core::{
    Action, ClusterKind, CycleOutcome, Job, Objective, Pool, Queue, QueuedReason, RejectReason, RunningJob, Scheduler,
    Snapshot,
};

fn run(pool: &Pool, queues: &[Queue], pending: &[Job], running: &[RunningJob]) -> CycleOutcome {
    Scheduler::default().cycle(&Snapshot { now: 0, pool, queues, cohorts: &[], pending, running })
}

fn action<'o>(out: &'o CycleOutcome, id: &str) -> &'o Action {
    &out.decisions.iter().find(|d| d.job == id).unwrap_or_else(|| panic!("no decision for {id}")).action
}

fn placement<'o>(out: &'o CycleOutcome, id: &str) -> &'o Placement {
    match action(out, id) {
        Action::Admit(p) => p,
        other => panic!("{id} not admitted: {other:?}"),
    }
}

fn running(id: &str, queue: &str, cluster: usize, nodes: &[u32], gpus: u32, end: u64) -> RunningJob {
    let j = job(id, queue, nodes.len() as u32, gpus, 1.0);
    RunningJob {
        id: id.into(),
        queue: queue.into(),
        priority: 0,
        cluster,
        accelerator: Some("A100-80G".into()),
        slots: nodes.iter().map(|&n| NodeSlot { node: n, replicas: 1 }).collect(),
        per_replica: j.per_replica,
        started_at: 0,
        estimated_end: end,
        restart_cost_s: None,
    }
}

/// Marks the running jobs' usage in the pool, as the caller of a cycle must.
fn occupy(pool: &mut Pool, jobs: &[RunningJob]) {
    for r in jobs {
        pool.allocate(r.cluster, &r.slots, &r.per_replica).expect("fits");
    }
}

#[test]
fn gang_lands_only_where_all_replicas_fit_at_once() {
    // "small" has 32 free GPUs but on 8 nodes of 4; "big" has 4 nodes of 8.
    let p = pool(vec![
        cluster("small", ClusterKind::AI, "a", 8, Some("A100-80G"), 4),
        cluster("big", ClusterKind::AI, "b", 4, Some("A100-80G"), 8),
    ]);
    let out = run(&p, &[Queue::unlimited("q")], &[job("gang", "q", 4, 8, 10.0)], &[]);
    let pl = placement(&out, "gang");
    assert_eq!(pl.cluster, "big");
    assert_eq!(pl.slots.len(), 4);
    assert!(pl.slots.iter().all(|s| s.replicas == 1));
    let small = out.decisions[0].explanation.rejected.iter().find(|r| &*r.cluster == "small").expect("small rejected");
    assert_eq!(small.reason, RejectReason::InsufficientCapacity { fits: 0 });
}

#[test]
fn replicas_share_a_node_when_they_fit_together() {
    let p = pool(vec![cluster("ai", ClusterKind::AI, "a", 1, Some("H800"), 8)]);
    let out = run(&p, &[Queue::unlimited("q")], &[job("j", "q", 2, 4, 1.0)], &[]);
    assert_eq!(placement(&out, "j").slots, vec![NodeSlot { node: 0, replicas: 2 }]);
}

#[test]
fn higher_priority_goes_first() {
    let p = pool(vec![cluster("ai", ClusterKind::AI, "a", 1, Some("H800"), 8)]);
    let mut low = job("low", "q", 1, 8, 1.0);
    low.submitted_at = 0;
    let mut high = job("high", "q", 1, 8, 1.0);
    high.submitted_at = 10;
    high.priority = 100;
    let out = run(&p, &[Queue::unlimited("q")], &[low, high], &[]);
    assert!(matches!(action(&out, "high"), Action::Admit(_)));
    assert!(!matches!(action(&out, "low"), Action::Admit(_)));
    assert_eq!(out.positions["low"].position, 1);
}

#[test]
fn fair_share_alternates_between_queues() {
    let p = pool(vec![cluster("ai", ClusterKind::AI, "a", 2, Some("H800"), 8)]);
    let quota = |name: &str| Queue {
        quotas: vec![Quota {
            resource: ResourceName::Accelerators,
            accelerator: None,
            nominal: 16,
            borrowing_limit: None,
            lending_limit: None,
        }],
        ..Queue::unlimited(name)
    };
    // Queue a submitted everything first; b must still get one of the two slots.
    let mut jobs = Vec::new();
    for i in 0..3 {
        let mut j = job(&format!("a{i}"), "a", 1, 8, 1.0);
        j.submitted_at = i;
        jobs.push(j);
    }
    let mut b = job("b0", "b", 1, 8, 1.0);
    b.submitted_at = 100;
    jobs.push(b);
    let out = run(&p, &[quota("a"), quota("b")], &jobs, &[]);
    let admitted: Vec<&str> = out.admissions().map(|(id, _)| id).collect();
    assert_eq!(admitted, vec!["a0", "b0"]);
}

#[test]
fn quota_limits_and_cohort_borrowing() {
    let p = pool(vec![cluster("ai", ClusterKind::AI, "a", 4, Some("H800"), 8)]);
    let gpu = |nominal, borrowing| Quota {
        resource: ResourceName::Accelerators,
        accelerator: None,
        nominal,
        borrowing_limit: borrowing,
        lending_limit: None,
    };
    let alone = Queue { quotas: vec![gpu(8, Some(8))], ..Queue::unlimited("alone") };
    let out = run(&p, &[alone], &[job("j", "alone", 2, 8, 1.0)], &[]);
    assert_eq!(action(&out, "j"), &Action::Queued(QueuedReason::QuotaExceeded), "no cohort: no borrowing");

    let a = Queue { cohort: Some("c".into()), quotas: vec![gpu(8, Some(8))], ..Queue::unlimited("a") };
    let b = Queue { cohort: Some("c".into()), quotas: vec![gpu(8, None)], ..Queue::unlimited("b") };
    let out = run(&p, &[a.clone(), b.clone()], &[job("j", "a", 2, 8, 1.0)], &[]);
    assert!(matches!(action(&out, "j"), Action::Admit(_)), "borrows 8 from b");
    let out = run(&p, &[a, b], &[job("j", "a", 3, 8, 1.0)], &[]);
    assert_eq!(action(&out, "j"), &Action::Queued(QueuedReason::QuotaExceeded), "borrowing limit is 8");
}

#[test]
fn first_blocked_gang_is_reserved_and_backfill_never_delays_it() {
    // 4 nodes x 8; two nodes busy until t=1000, so a 4-node gang must wait until then.
    let mut p = pool(vec![cluster("ai", ClusterKind::AI, "a", 4, Some("V100"), 8)]);
    let busy = vec![running("r0", "q", 0, &[0], 8, 1000), running("r1", "q", 0, &[1], 8, 1000)];
    occupy(&mut p, &busy);
    let mut head = job("head", "q", 4, 8, 1.0);
    head.submitted_at = 0;
    // 8 V100-hours on 8 V100s = 3600 s: ends after t=1000 -> would delay the head.
    let mut long = job("long", "q", 1, 8, 8.0);
    long.submitted_at = 1;
    // 0.8 V100-hours on 8 V100s = 360 s: done before t=1000.
    let mut short = job("short", "q", 1, 8, 0.8);
    short.submitted_at = 2;
    let out = run(&p, &[Queue::unlimited("q")], &[head, long, short], &busy);
    assert_eq!(
        action(&out, "head"),
        &Action::Reserve { cluster: "ai".into(), accelerator: Some("V100".into()), start_at: 1000 }
    );
    let rejected = &out.decisions.iter().find(|d| d.job == "long").expect("long decided").explanation.rejected;
    assert_eq!(rejected[0].reason, RejectReason::HeldForReservation);
    let short = placement(&out, "short");
    assert!(short.backfilled);
    assert!(short.estimate.runtime_s <= 1000.0);
}

#[test]
fn backfill_off_is_plain_fifo() {
    let mut p = pool(vec![cluster("ai", ClusterKind::AI, "a", 2, Some("V100"), 8)]);
    let busy = vec![running("r0", "q", 0, &[0], 8, 1000)];
    occupy(&mut p, &busy);
    let mut s = Scheduler::default();
    s.config.backfill = false;
    let jobs = [job("head", "q", 2, 8, 1.0), job("tiny", "q", 1, 1, 0.01)];
    let out = s.cycle(&Snapshot {
        now: 0,
        pool: &p,
        queues: &[Queue::unlimited("q")],
        cohorts: &[],
        pending: &jobs,
        running: &busy,
    });
    assert!(matches!(action(&out, "head"), Action::Reserve { .. }));
    assert_eq!(action(&out, "tiny"), &Action::Queued(QueuedReason::InsufficientCapacity));
}

#[test]
fn lower_priority_jobs_are_preempted_by_policy() {
    let mut p = pool(vec![cluster("ai", ClusterKind::AI, "a", 2, Some("A100-80G"), 8)]);
    let mut victims = vec![running("old-low", "q", 0, &[0], 8, 9000), running("old-high", "q", 0, &[1], 8, 9000)];
    victims[1].priority = 50;
    occupy(&mut p, &victims);
    let mut urgent = job("urgent", "q", 1, 8, 1.0);
    urgent.priority = 10;
    let never = Queue::unlimited("q");
    let out = run(&p, &[never], &[urgent.clone()], &victims);
    assert!(matches!(action(&out, "urgent"), Action::Reserve { .. }), "policy Never: waits");
    let preempting = Queue {
        preemption: PreemptionPolicy {
            within_queue: PreemptionScope::LowerPriority,
            reclaim_within_cohort: PreemptionScope::Never,
        },
        ..Queue::unlimited("q")
    };
    let out = run(&p, &[preempting], &[urgent], &victims);
    assert_eq!(action(&out, "urgent"), &Action::Preempt { cluster: "ai".into(), victims: vec!["old-low".into()] });
}

/// Among victims of equal priority, the one whose stop loses least goes: a restartable
/// job loses its restart cost (here 300 s), a rigid one everything it ran (here 5,000 s,
/// started at 0 and the cycle runs at 5,000), even though the rigid one started later.
#[test]
fn restartable_victims_are_preferred_and_charged_their_restart_cost() {
    let mut p = pool(vec![cluster("ai", ClusterKind::AI, "a", 2, Some("A100-80G"), 8)]);
    let mut victims = vec![running("rigid", "q", 0, &[0], 8, 90_000), running("restartable", "q", 0, &[1], 8, 90_000)];
    victims[0].started_at = 1_000;
    victims[1].restart_cost_s = Some(300);
    occupy(&mut p, &victims);
    let mut urgent = job("urgent", "q", 1, 8, 1.0);
    urgent.priority = 10;
    let preempting = Queue {
        preemption: PreemptionPolicy {
            within_queue: PreemptionScope::LowerPriority,
            reclaim_within_cohort: PreemptionScope::Never,
        },
        ..Queue::unlimited("q")
    };
    let queues = [preempting];
    let snap = Snapshot {
        now: 5_000,
        pool: &p,
        queues: &queues,
        cohorts: &[],
        pending: std::slice::from_ref(&urgent),
        running: &victims,
    };
    let out = Scheduler::default().cycle(&snap);
    assert_eq!(action(&out, "urgent"), &Action::Preempt { cluster: "ai".into(), victims: vec!["restartable".into()] });
    // With a restart cost above what the rigid job has run (4,000 s), the rigid one goes.
    victims[1].restart_cost_s = Some(4_500);
    let snap = Snapshot {
        now: 5_000,
        pool: &p,
        queues: &queues,
        cohorts: &[],
        pending: std::slice::from_ref(&urgent),
        running: &victims,
    };
    let out = Scheduler::default().cycle(&snap);
    assert_eq!(action(&out, "urgent"), &Action::Preempt { cluster: "ai".into(), victims: vec!["rigid".into()] });
}

#[test]
fn strict_fifo_blocks_behind_its_head_best_effort_does_not() {
    let p = pool(vec![cluster("ai", ClusterKind::AI, "a", 1, Some("H800"), 8)]);
    let mut big = job("big", "q", 2, 8, 1.0);
    big.submitted_at = 0;
    let mut small = job("small", "q", 1, 1, 1.0);
    small.submitted_at = 1;
    let strict = Queue { strategy: QueueingStrategy::StrictFifo, ..Queue::unlimited("q") };
    let out = run(&p, &[strict], &[big.clone(), small.clone()], &[]);
    assert_eq!(action(&out, "big"), &Action::Queued(QueuedReason::Unschedulable), "2 x 8 never fits one node");
    assert_eq!(action(&out, "small"), &Action::Queued(QueuedReason::BlockedByQueueHead { head: "big".into() }));
    let out = run(&p, &[Queue::unlimited("q")], &[big, small], &[]);
    assert!(matches!(action(&out, "small"), Action::Admit(_)));
}

#[test]
fn objective_decides_between_fast_and_cheap() {
    let mut fast = cluster("fast", ClusterKind::AI, "a", 1, Some("H800"), 8);
    fast.efficiency.energy_price_per_kwh = 2.0;
    let mut cheap = cluster("cheap", ClusterKind::AI, "b", 1, Some("T4"), 8);
    cheap.efficiency.energy_price_per_kwh = 0.1;
    let p = pool(vec![fast, cheap]);
    let mut j = job("j", "q", 1, 8, 64.0);
    j.objective = Objective::Fastest;
    let out = run(&p, &[Queue::unlimited("q")], &[j.clone()], &[]);
    let chosen = placement(&out, "j");
    assert_eq!((chosen.cluster.as_str(), chosen.accelerator.as_deref()), ("fast", Some("H800")));
    let expl = &out.decisions[0].explanation;
    assert_eq!(expl.candidates.len(), 2, "both candidates explained");
    assert!(expl.candidates[0].score.total <= expl.candidates[1].score.total);
    j.objective = Objective::Cheapest;
    let out = run(&p, &[Queue::unlimited("q")], &[j], &[]);
    assert_eq!(placement(&out, "j").cluster, "cheap");
}

#[test]
fn constraints_are_explained_per_cluster() {
    let mut down = cluster("down", ClusterKind::AI, "a", 1, Some("H800"), 8);
    down.ready = false;
    let mut cordoned = cluster("cordoned", ClusterKind::AI, "a", 1, Some("H800"), 8);
    cordoned.cordoned = true;
    let p = pool(vec![
        down,
        cordoned,
        cluster("cpu", ClusterKind::General, "a", 1, None, 0),
        cluster("t4", ClusterKind::AI, "a", 1, Some("T4"), 8),
        cluster("far", ClusterKind::AI, "z", 1, Some("H800"), 8),
        cluster("hpc", ClusterKind::HPC, "a", 1, Some("H800"), 8),
    ]);
    let mut j = job("j", "q", 1, 8, 1.0);
    j.cluster_kinds = vec![ClusterKind::AI, ClusterKind::General];
    j.sites = vec!["a".into()];
    j.accelerator.types = vec!["h800".into()];
    let out = run(&p, &[Queue::unlimited("q")], &[j], &[]);
    assert_eq!(action(&out, "j"), &Action::Queued(QueuedReason::Unschedulable));
    let reasons: Vec<(String, RejectReason)> =
        out.decisions[0].explanation.rejected.iter().map(|r| (r.cluster.to_string(), r.reason.clone())).collect();
    assert_eq!(
        reasons,
        vec![
            ("down".into(), RejectReason::NotReady),
            ("cordoned".into(), RejectReason::Cordoned),
            ("cpu".into(), RejectReason::NoAllowedAccelerator),
            ("t4".into(), RejectReason::NoAllowedAccelerator),
            ("far".into(), RejectReason::SiteNotAllowed),
            ("hpc".into(), RejectReason::KindNotAllowed),
        ]
    );
}

#[test]
fn members_that_map_tenants_take_only_their_jobs() {
    let mut hpc = cluster("hpc", ClusterKind::HPC, "a", 2, Some("H800"), 8);
    hpc.tenants = Some(vec!["team-a".into()]);
    let p = pool(vec![hpc]);
    let mut a = job("a", "q", 1, 8, 1.0);
    a.tenant = "team-a".into();
    let mut b = job("b", "q", 1, 8, 1.0);
    b.tenant = "team-b".into();
    (b.submitted_at, a.submitted_at) = (0, 1);
    let out = run(&p, &[Queue::unlimited("q")], &[b, a], &[]);
    assert_eq!(placement(&out, "a").cluster, "hpc");
    let d = out.decisions.iter().find(|d| d.job == "b").expect("decided");
    assert_eq!(d.action, Action::Queued(QueuedReason::Unschedulable));
    assert_eq!(d.explanation.rejected[0].reason, RejectReason::TenantNotMapped);
    assert!(d.explanation.rejected[0].reason.to_string().contains("namespace"));
    let mut open = cluster("open", ClusterKind::HPC, "a", 1, Some("H800"), 8);
    open.tenants = None;
    assert!(open.admits("anyone") && !p.clusters[0].admits("team-b") && p.clusters[0].admits("team-a"));
}

#[test]
fn cpu_jobs_use_cpu_nodes_only() {
    let p = pool(vec![
        cluster("ai", ClusterKind::AI, "a", 4, Some("H800"), 8),
        cluster("cpu", ClusterKind::General, "a", 1, None, 0),
    ]);
    let out = run(&p, &[Queue::unlimited("q")], &[job("etl", "q", 2, 0, 1.0)], &[]);
    assert_eq!(placement(&out, "etl").cluster, "cpu");
}

#[test]
fn bad_input_is_reported_not_fatal() {
    let p = pool(vec![cluster("ai", ClusterKind::AI, "a", 1, Some("H800"), 8)]);
    let zero = job("zero", "q", 0, 8, 1.0);
    let lost = job("lost", "nope", 1, 1, 1.0);
    let out = run(&p, &[Queue::unlimited("q")], &[zero, lost], &[]);
    assert!(matches!(action(&out, "zero"), Action::Queued(QueuedReason::Invalid { .. })));
    assert_eq!(action(&out, "lost"), &Action::Queued(QueuedReason::UnknownQueue { queue: "nope".into() }));
}

#[test]
fn data_locality_counts_in_the_estimate() {
    let mut near = cluster("near", ClusterKind::AI, "west", 1, Some("H800"), 8);
    near.data_sets = vec!["corpus".into()];
    let far = cluster("far", ClusterKind::AI, "east", 1, Some("H800"), 8);
    let mut p = pool(vec![far, near]);
    p.data_sets.insert("corpus".into(), computenet_core::pool::DataSet { size_gb: 4500.0, sites: vec![] });
    let mut j = job("j", "q", 1, 8, 8.0);
    j.data_set = Some("corpus".into());
    j.objective = Objective::Fastest;
    let out = run(&p, &[Queue::unlimited("q")], &[j], &[]);
    let pl = placement(&out, "j");
    assert_eq!(pl.cluster, "near");
    let far = out.decisions[0].explanation.candidates.iter().find(|c| &*c.cluster == "far").expect("far scored");
    assert!((far.estimate.transfer_s - 3600.0).abs() < 1e-6, "4,500 GB at 10 Gbit/s");
}

#[test]
fn waits_briefly_for_a_much_faster_type_but_not_long() {
    // "fast": one A100 node, busy until t=600 (8 GPUs); "slow": one free T4 node.
    // 8 V100-hours on 8 devices: 3600 s x 125/312 = 1442 s on A100, 3600 x 125/65 = 6923 s on T4.
    let fast = cluster("fast", ClusterKind::AI, "a", 1, Some("A100-80G"), 8);
    let slow = cluster("slow", ClusterKind::AI, "a", 1, Some("T4"), 8);
    let mut p = pool(vec![fast, slow]);
    let mut busy = running("busy", "q", 0, &[0], 8, 600);
    occupy(&mut p, std::slice::from_ref(&busy));
    let mut j = job("j", "q", 1, 8, 8.0);
    j.objective = Objective::Fastest;
    let out = run(&p, &[Queue::unlimited("q")], std::slice::from_ref(&j), std::slice::from_ref(&busy));
    assert_eq!(
        action(&out, "j"),
        &Action::Reserve { cluster: "fast".into(), accelerator: Some("A100-80G".into()), start_at: 600 },
        "600 s wait + 1442 s beats 6923 s now"
    );
    // A wait longer than the slow run: start now on the slow type.
    p.release(0, &busy.slots, &busy.per_replica);
    busy.estimated_end = 8000;
    occupy(&mut p, std::slice::from_ref(&busy));
    let out = run(&p, &[Queue::unlimited("q")], std::slice::from_ref(&j), std::slice::from_ref(&busy));
    assert_eq!(placement(&out, "j").cluster, "slow");
    // Turned off: starts now.
    busy.estimated_end = 600;
    let scheduler = Scheduler {
        config: computenet_core::CycleConfig { wait_speedup: 1.0, ..Default::default() },
        ..Scheduler::default()
    };
    let queues = [Queue::unlimited("q")];
    let out = scheduler.cycle(&Snapshot {
        now: 0,
        pool: &p,
        queues: &queues,
        cohorts: &[],
        pending: std::slice::from_ref(&j),
        running: std::slice::from_ref(&busy),
    });
    assert_eq!(placement(&out, "j").cluster, "slow");
}

#[test]
fn a_job_over_quota_waits_for_quota_not_for_capacity() {
    // The only node is busy and the queue's quota is used up: the job waits for quota, it is
    // not "unschedulable" and takes no reservation.
    let mut p = pool(vec![cluster("ai", ClusterKind::AI, "a", 1, Some("H800"), 8)]);
    let busy = vec![running("r0", "q", 0, &[0], 8, 1000)];
    occupy(&mut p, &busy);
    let q = Queue {
        quotas: vec![Quota {
            resource: ResourceName::Accelerators,
            accelerator: None,
            nominal: 8,
            borrowing_limit: None,
            lending_limit: None,
        }],
        ..Queue::unlimited("q")
    };
    let out = run(&p, &[q], &[job("j", "q", 1, 8, 1.0)], &busy);
    assert_eq!(action(&out, "j"), &Action::Queued(QueuedReason::QuotaExceeded));
}

#[test]
fn priorities_count_only_within_their_queues_range() {
    // Across queues: a huge raw priority in a queue allowing at most 1 does not jump ahead
    // of a priority-5 job of a queue allowing up to 10.
    let p = pool(vec![cluster("ai", ClusterKind::AI, "a", 1, Some("H800"), 8)]);
    let capped = Queue { priority_range: PriorityRange { min: 0, max: 1 }, ..Queue::unlimited("capped") };
    let wide = Queue { priority_range: PriorityRange { min: 0, max: 10 }, ..Queue::unlimited("wide") };
    let mut greedy = job("greedy", "capped", 1, 8, 1.0);
    greedy.priority = i32::MAX;
    greedy.submitted_at = 0;
    let mut allowed = job("allowed", "wide", 1, 8, 1.0);
    allowed.priority = 5;
    allowed.submitted_at = 10;
    let out = run(&p, &[capped.clone(), wide.clone()], &[greedy.clone(), allowed.clone()], &[]);
    assert!(matches!(action(&out, "allowed"), Action::Admit(_)));
    assert!(!matches!(action(&out, "greedy"), Action::Admit(_)));
    // With the ranges unbounded the raw numbers decide again.
    let out = run(&p, &[Queue::unlimited("capped"), Queue::unlimited("wide")], &[greedy, allowed], &[]);
    assert!(matches!(action(&out, "greedy"), Action::Admit(_)));
}

#[test]
fn lower_priority_preemption_compares_priorities_as_queues_allow_them() {
    let mut p = pool(vec![cluster("ai", ClusterKind::AI, "a", 1, Some("A100-80G"), 8)]);
    let mut victim = running("victim", "q", 0, &[0], 8, 9000);
    victim.priority = 3;
    let victims = vec![victim];
    occupy(&mut p, &victims);
    let mut urgent = job("urgent", "q", 1, 8, 1.0);
    urgent.priority = 1_000_000;
    let policy = PreemptionPolicy {
        within_queue: PreemptionScope::LowerPriority,
        reclaim_within_cohort: PreemptionScope::Never,
    };
    // Range 0..=3: both count as 3, so neither is lower and nothing is preempted.
    let q = Queue { preemption: policy, priority_range: PriorityRange { min: 0, max: 3 }, ..Queue::unlimited("q") };
    let out = run(&p, &[q], std::slice::from_ref(&urgent), &victims);
    assert!(!matches!(action(&out, "urgent"), Action::Preempt { .. }), "{:?}", action(&out, "urgent"));
    let q = Queue { preemption: policy, priority_range: PriorityRange { min: 0, max: 4 }, ..Queue::unlimited("q") };
    let out = run(&p, &[q], &[urgent], &victims);
    assert_eq!(action(&out, "urgent"), &Action::Preempt { cluster: "ai".into(), victims: vec!["victim".into()] });
}

#[test]
fn another_queues_job_is_preempted_only_by_cohort_reclaim() {
    // Queue a runs a job; queue b (no cohort in common) asks LowerPriority within its own
    // queue only: a's job is never its victim, whatever the priorities.
    let mut p = pool(vec![cluster("ai", ClusterKind::AI, "a", 1, Some("A100-80G"), 8)]);
    let victims = vec![running("a-job", "a", 0, &[0], 8, 9000)];
    occupy(&mut p, &victims);
    let mut urgent = job("b-job", "b", 1, 8, 1.0);
    urgent.priority = 100;
    let b = Queue {
        preemption: PreemptionPolicy {
            within_queue: PreemptionScope::Any,
            reclaim_within_cohort: PreemptionScope::Any,
        },
        ..Queue::unlimited("b")
    };
    let out = run(&p, &[Queue::unlimited("a"), b], &[urgent], &victims);
    assert!(!matches!(action(&out, "b-job"), Action::Preempt { .. }), "{:?}", action(&out, "b-job"));
}

#[test]
fn reclaim_reaches_across_departments_under_one_root() {
    // borrower (dept-b, no quota of its own) runs on the 8 GPUs lender (dept-a) lends;
    // lender wants them back.
    let mut p = pool(vec![cluster("ai", ClusterKind::AI, "a", 1, Some("A100-80G"), 8)]);
    let victims = vec![running("borrowed", "borrower", 0, &[0], 8, 9000)];
    occupy(&mut p, &victims);
    let gpus = |nominal| Quota {
        resource: ResourceName::Accelerators,
        accelerator: None,
        nominal,
        borrowing_limit: None,
        lending_limit: None,
    };
    let lender = Queue {
        cohort: Some("dept-a".into()),
        quotas: vec![gpus(8)],
        preemption: PreemptionPolicy {
            within_queue: PreemptionScope::Never,
            reclaim_within_cohort: PreemptionScope::Any,
        },
        ..Queue::unlimited("lender")
    };
    let borrower = Queue { cohort: Some("dept-b".into()), quotas: vec![gpus(0)], ..Queue::unlimited("borrower") };
    let queues = [lender, borrower];
    let wanted = job("wanted", "lender", 1, 8, 1.0);
    let department =
        |name: &str| Cohort { name: name.into(), parent: Some("org".into()), quotas: Vec::new(), budget: None };
    let cohorts = [department("dept-a"), department("dept-b")];
    let snapshot = Snapshot {
        now: 0,
        pool: &p,
        queues: &queues,
        cohorts: &cohorts,
        pending: std::slice::from_ref(&wanted),
        running: &victims,
    };
    let out = Scheduler::default().cycle(&snapshot);
    assert_eq!(action(&out, "wanted"), &Action::Preempt { cluster: "ai".into(), victims: vec!["borrowed".into()] });
    // Without the tree the departments are two roots: nothing to reclaim from the other.
    let out = Scheduler::default().cycle(&Snapshot { cohorts: &[], ..snapshot });
    assert!(!matches!(action(&out, "wanted"), Action::Preempt { .. }), "{:?}", action(&out, "wanted"));
}

#[test]
fn effective_priority_is_clamped_into_the_range() {
    let r = PriorityRange { min: -5, max: 10 };
    assert_eq!((r.effective(i32::MIN), r.effective(3), r.effective(i32::MAX)), (-5, 3, 10));
    assert_eq!(PriorityRange::default().effective(i32::MAX), i32::MAX);
}

/// An elastic gang that does not fit whole starts at the largest size that fits, never
/// below its minimum; a rigid one waits.
#[test]
fn an_elastic_gang_starts_smaller_when_whole_it_does_not_fit() {
    let p = pool(vec![cluster("ai", ClusterKind::AI, "a", 3, Some("A100-80G"), 8)]);
    let mut elastic = job("e", "q", 6, 8, 10.0);
    elastic.elastic = Some(computenet_core::ElasticRange { min_replicas: 2, max_replicas: 6 });
    let out = run(&p, &[Queue::unlimited("q")], std::slice::from_ref(&elastic), &[]);
    let size: u32 = placement(&out, "e").slots.iter().map(|s| s.replicas).sum();
    assert_eq!(size, 3, "the three nodes there are");
    elastic.elastic = Some(computenet_core::ElasticRange { min_replicas: 4, max_replicas: 6 });
    let out = run(&p, &[Queue::unlimited("q")], std::slice::from_ref(&elastic), &[]);
    assert!(!matches!(action(&out, "e"), Action::Admit(_)), "below its minimum it waits");
    elastic.elastic = None;
    let out = run(&p, &[Queue::unlimited("q")], &[elastic], &[]);
    assert!(!matches!(action(&out, "e"), Action::Admit(_)), "rigid: waits");
}

#[test]
fn each_job_is_explained_with_its_own_kind_and_quota_shortfall() {
    // Jobs rejected alike share one list of rejections; jobs whose reasons carry
    // different payloads (the kind not run, the quota shortfall) must not.
    let decision = |out: &CycleOutcome, id: &str| out.decisions.iter().find(|d| d.job == id).cloned().expect(id);
    let p = pool(vec![
        cluster("a", ClusterKind::AI, "x", 4, Some("H800"), 8),
        cluster("b", ClusterKind::AI, "y", 4, Some("H800"), 8),
    ]);
    let mut jobs = Vec::new();
    for (i, kind) in ["JobSet", "JobSet", "PyTorchJob"].into_iter().enumerate() {
        let mut j = job(&format!("k{i}"), "q", 1, 8, 1.0);
        j.workload_kind = Some(kind.into());
        j.submitted_at = i as u64;
        jobs.push(j);
    }
    let out = run(&p, &[Queue::unlimited("q")], &jobs, &[]);
    for (id, kind) in [("k0", "JobSet"), ("k1", "JobSet"), ("k2", "PyTorchJob")] {
        let d = decision(&out, id);
        assert_eq!(d.explanation.rejected.len(), 2, "{id}");
        for r in d.explanation.rejected.iter() {
            assert_eq!(r.reason, RejectReason::KindNotRun { kind: kind.into() }, "{id} on {}", r.cluster);
        }
    }
    let (k0, k1) = (decision(&out, "k0"), decision(&out, "k1"));
    assert!(std::sync::Arc::ptr_eq(&k0.explanation.rejected, &k1.explanation.rejected), "equal lists are shared");

    let small = Queue {
        quotas: vec![Quota {
            resource: ResourceName::Accelerators,
            accelerator: None,
            nominal: 4,
            borrowing_limit: None,
            lending_limit: None,
        }],
        ..Queue::unlimited("small")
    };
    let mut jobs = vec![job("q8", "small", 1, 8, 1.0), job("q16", "small", 2, 8, 1.0), job("q16b", "small", 2, 8, 1.0)];
    for (i, j) in jobs.iter_mut().enumerate() {
        j.submitted_at = i as u64;
    }
    let out = run(&p, &[small], &jobs, &[]);
    for (id, would_use) in [("q8", 8), ("q16", 16), ("q16b", 16)] {
        let d = decision(&out, id);
        assert_eq!(d.action, Action::Queued(QueuedReason::QuotaExceeded), "{id}");
        assert_eq!(d.explanation.rejected.len(), 2, "{id}");
        for r in d.explanation.rejected.iter() {
            match &r.reason {
                RejectReason::QuotaExceeded { shortfall } => {
                    assert_eq!((shortfall.would_use, shortfall.limit), (would_use, 4), "{id} on {}", r.cluster)
                }
                other => panic!("{id} on {}: {other:?}", r.cluster),
            }
        }
    }
}

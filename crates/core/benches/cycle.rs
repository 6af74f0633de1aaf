//! One full scheduling cycle at three sizes (S, M, L; see `synth::ProblemSize`), on a
//! seeded synthetic pool. `plentiful` gives the pool twice the devices the jobs ask for,
//! so nearly every job is admitted (admissions per second = jobs / time).

use computenet_core::synth::{problem, ProblemSize};
use computenet_core::{Scheduler, Snapshot};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::time::Duration;

fn bench_cycle(c: &mut Criterion) {
    let mut group = c.benchmark_group("cycle");
    group.sample_size(10).measurement_time(Duration::from_secs(20)).warm_up_time(Duration::from_secs(1));
    for (name, size) in [("S", ProblemSize::S), ("M", ProblemSize::M), ("L", ProblemSize::L)] {
        let (pool, queues, jobs) = problem(size, 7);
        let scheduler = Scheduler::default();
        group.throughput(Throughput::Elements(jobs.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                scheduler.cycle(&Snapshot {
                    now: 0,
                    pool: &pool,
                    queues: &queues,
                    cohorts: &[],
                    pending: &jobs,
                    running: &[],
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_cycle);
criterion_main!(benches);

//! Fair share with memory in simulated time: every queue's decayed past usage, kept
//! incrementally so that a cycle costs O(queues x resources), not O(segments).
//!
//! Usage at a constant rate r over [a, b] weighs `r H/ln2 (2^-(t-b)/H - 2^-(t-a)/H)` at
//! time t (half life H). Per queue and quota key the memory keeps:
//! - `finished`: the decayed weight of ended segments, as of `at`;
//! - `rate`: the summed rate of running segments, and `started`: the sum of their rates
//!   decayed from their start to `at`; together the running segments weigh
//!   `H/ln2 (rate - started)`.
//!
//! Moving `at` forward multiplies `finished` and `started` by the decay of the step.

use computenet_core::queue::{Queue, ResourceName};
use computenet_core::usage::{decay, past_share, DecayedUsage};
use std::collections::HashMap;

/// What a quota counts usage by: the resource and the accelerator type it was on.
type Key = (ResourceName, Option<String>);

#[derive(Debug, Clone, Default)]
struct Accumulator {
    finished: f64,
    rate: f64,
    started: f64,
}

/// One running segment: its queue, when it started, and its rates per key index.
#[derive(Debug, Clone)]
struct Running {
    queue: usize,
    start: u64,
    rates: Vec<(usize, f64)>,
}

/// Decayed past usage of every queue, advanced with simulated time.
#[derive(Debug, Clone)]
pub struct FairShareMemory {
    half_life_s: f64,
    at: u64,
    keys: Vec<Key>,
    /// Per queue, per key index.
    queues: Vec<Vec<Accumulator>>,
    /// Running segments by job index.
    running: HashMap<usize, Running>,
}

impl FairShareMemory {
    /// An empty memory for `queues` queues; `half_life_s` must be positive.
    pub fn new(queues: usize, half_life_s: f64) -> Self {
        FairShareMemory {
            half_life_s,
            at: 0,
            keys: Vec::new(),
            queues: vec![Vec::new(); queues],
            running: HashMap::new(),
        }
    }

    fn horizon(&self) -> f64 {
        self.half_life_s / std::f64::consts::LN_2
    }

    fn key_index(&mut self, key: Key) -> usize {
        match self.keys.iter().position(|k| *k == key) {
            Some(k) => k,
            None => {
                self.keys.push(key);
                self.keys.len() - 1
            }
        }
    }

    fn slot(&mut self, queue: usize, key: usize) -> Option<&mut Accumulator> {
        let accumulators = self.queues.get_mut(queue)?;
        if accumulators.len() <= key {
            accumulators.resize(key + 1, Accumulator::default());
        }
        accumulators.get_mut(key)
    }

    /// Decays everything to `now` (earlier times are ignored: simulated time only grows).
    pub fn advance(&mut self, now: u64) {
        if now <= self.at {
            return;
        }
        let d = decay((now - self.at) as f64, self.half_life_s);
        for acc in self.queues.iter_mut().flatten() {
            acc.finished *= d;
            acc.started *= d;
        }
        self.at = now;
    }

    /// Job `job` of queue `queue` starts a segment at `now`, using `rates` per second
    /// (quota units: devices, millicores) of each resource on `accelerator`.
    pub fn begin(
        &mut self,
        job: usize,
        queue: usize,
        accelerator: Option<&str>,
        rates: &[(ResourceName, f64)],
        now: u64,
    ) {
        self.advance(now);
        if queue >= self.queues.len() {
            return;
        }
        let mut indexed = Vec::new();
        for (resource, rate) in rates {
            if *rate <= 0.0 || !rate.is_finite() {
                continue;
            }
            let k = self.key_index((resource.clone(), accelerator.map(str::to_string)));
            if let Some(acc) = self.slot(queue, k) {
                acc.rate += rate;
                acc.started += rate;
            }
            indexed.push((k, *rate));
        }
        self.running.insert(job, Running { queue, start: now, rates: indexed });
    }

    /// Job `job`'s running segment ends at `now`: its weight moves to the finished part.
    pub fn end(&mut self, job: usize, now: u64) {
        self.advance(now);
        let Some(r) = self.running.remove(&job) else {
            return;
        };
        let horizon = self.horizon();
        let since_start = decay(now.saturating_sub(r.start) as f64, self.half_life_s);
        for (k, rate) in r.rates {
            if let Some(acc) = self.slot(r.queue, k) {
                acc.finished += rate * horizon * (1.0 - since_start);
                acc.rate = (acc.rate - rate).max(0.0);
                acc.started = (acc.started - rate * since_start).max(0.0);
            }
        }
    }

    /// Queue `queue`'s decayed past usage as of the last [`FairShareMemory::advance`].
    pub fn decayed(&self, queue: usize) -> Vec<DecayedUsage> {
        let horizon = self.horizon();
        let Some(accumulators) = self.queues.get(queue) else {
            return Vec::new();
        };
        accumulators
            .iter()
            .zip(&self.keys)
            .map(|(acc, (resource, accelerator))| DecayedUsage {
                resource: resource.clone(),
                accelerator: accelerator.clone(),
                amount: acc.finished + horizon * (acc.rate - acc.started).max(0.0),
            })
            .collect()
    }

    /// Sets every queue's `past_share` as of `now` (`queues` in the memory's order).
    pub fn set_past_shares(&mut self, queues: &mut [Queue], now: u64) {
        self.advance(now);
        for (q, queue) in queues.iter_mut().enumerate() {
            queue.past_share = past_share(&queue.quotas, &self.decayed(q), self.half_life_s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use computenet_core::synth::SplitMix;

    /// Brute force: every second of every segment before `t` (midpoint), decayed to `t`.
    fn brute_force(segments: &[(u64, Option<u64>, f64)], t: u64, h: f64) -> f64 {
        segments
            .iter()
            .map(|&(a, b, rate)| {
                let until = b.unwrap_or(t).min(t);
                (a..until).map(|s| rate * decay(t as f64 - (s as f64 + 0.5), h)).sum::<f64>()
            })
            .sum()
    }

    #[test]
    fn incremental_weight_equals_the_brute_force_sum() {
        let h = 1_800.0;
        let mut rng = SplitMix::new(3);
        let mut memory = FairShareMemory::new(1, h);
        // (start, end, rate); some still run at the end.
        let mut segments: Vec<(u64, Option<u64>, f64)> = Vec::new();
        let mut events: Vec<(u64, bool, usize)> = Vec::new();
        for job in 0..40 {
            let start = rng.below(20_000);
            let length = 1 + rng.below(5_000);
            let rate = (1 + rng.below(8)) as f64;
            let end = (job % 5 != 0).then_some(start + length);
            segments.push((start, end, rate));
            events.push((start, true, job));
            if let Some(e) = end {
                events.push((e, false, job));
            }
        }
        // Ends before starts at the same second, as the engine handles them.
        events.sort_by_key(|&(t, begins, job)| (t, begins, job));
        let checks = [5_000u64, 12_345, 20_000, 30_000];
        let mut next = 0;
        for (t, begins, job) in events {
            while next < checks.len() && checks[next] < t {
                memory.advance(checks[next]);
                let got = memory.decayed(0)[0].amount;
                let want = brute_force(&segments, checks[next], h);
                assert!((got - want).abs() <= 1e-6 * want.max(1.0), "at {}: {got} vs {want}", checks[next]);
                next += 1;
            }
            let rate = segments[job].2;
            if begins {
                memory.begin(job, 0, Some("V100"), &[(ResourceName::Accelerators, rate)], t);
            } else {
                memory.end(job, t);
            }
        }
        for &t in &checks[next..] {
            memory.advance(t);
            let got = memory.decayed(0)[0].amount;
            let want = brute_force(&segments, t, h);
            assert!((got - want).abs() <= 1e-6 * want.max(1.0), "at {t}: {got} vs {want}");
        }
    }

    #[test]
    fn full_nominal_for_many_half_lives_is_share_one() {
        use computenet_core::queue::Quota;
        let h = 3_600.0;
        let mut memory = FairShareMemory::new(2, h);
        memory.begin(7, 0, Some("A100"), &[(ResourceName::Accelerators, 8.0)], 0);
        let quota = Quota {
            resource: ResourceName::Accelerators,
            accelerator: None,
            nominal: 8,
            borrowing_limit: None,
            lending_limit: None,
        };
        let mut queues = vec![
            Queue { quotas: vec![quota.clone()], ..Queue::unlimited("busy") },
            Queue { quotas: vec![quota], ..Queue::unlimited("idle") },
        ];
        memory.set_past_shares(&mut queues, 40 * 3_600);
        assert!((queues[0].past_share - 1.0).abs() < 1e-9, "{}", queues[0].past_share);
        assert_eq!(queues[1].past_share, 0.0);
        // Ended 1 half life ago: half of it.
        memory.end(7, 40 * 3_600);
        memory.set_past_shares(&mut queues, 41 * 3_600);
        assert!((queues[0].past_share - 0.5).abs() < 1e-9, "{}", queues[0].past_share);
    }
}

//! Per-job exponential backoff for work that failed (pure: the clock is passed in).
//!
//! A job whose dispatch keeps failing is retried after 1 s, 2 s, 4 s, ... up to a cap,
//! not on every cycle; progress (a dispatch that lands) resets it. The attempt count and
//! the next attempt time are also written to the job's status (`status.retry`), so users
//! see them and a restarted service goes on from there instead of from zero.

use k8s_openapi::jiff::Timestamp;
use std::time::Duration;

/// Milliseconds since the epoch (0 before it).
pub fn epoch_ms(t: Timestamp) -> u64 {
    u64::try_from(t.as_millisecond()).unwrap_or(0)
}

/// How delays grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffPolicy {
    /// Delay after the first failure.
    pub base: Duration,
    /// Longest delay.
    pub cap: Duration,
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        Self { base: Duration::from_secs(1), cap: Duration::from_secs(300) }
    }
}

impl BackoffPolicy {
    /// The delay after `failures` consecutive failures (the first failure waits `base`).
    pub fn delay(&self, failures: u32) -> Duration {
        if failures == 0 {
            return Duration::ZERO;
        }
        let doublings = (failures - 1).min(30);
        self.base.saturating_mul(1u32 << doublings).min(self.cap)
    }
}

/// A job's failures in a row and when it may be tried again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backoff {
    pub failures: u32,
    /// Not before this time (milliseconds since the epoch).
    pub next_attempt_ms: u64,
}

impl Backoff {
    /// Whether an attempt may be made at `now_ms`.
    pub fn due(&self, now_ms: u64) -> bool {
        now_ms >= self.next_attempt_ms
    }

    /// When the next attempt is due.
    pub fn next_attempt(&self) -> Timestamp {
        Timestamp::from_millisecond(i64::try_from(self.next_attempt_ms).unwrap_or(i64::MAX)).unwrap_or(Timestamp::MAX)
    }

    /// After one more failure at `now_ms`.
    pub fn failed(self, policy: &BackoffPolicy, now_ms: u64) -> Backoff {
        let failures = self.failures.saturating_add(1);
        let delay_ms = u64::try_from(policy.delay(failures).as_millis()).unwrap_or(u64::MAX);
        Backoff { failures, next_attempt_ms: now_ms.saturating_add(delay_ms) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_from_the_base_up_to_the_cap() {
        let p = BackoffPolicy { base: Duration::from_secs(1), cap: Duration::from_secs(60) };
        let delays: Vec<u64> = (0..10).map(|n| p.delay(n).as_secs()).collect();
        assert_eq!(delays, [0, 1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(p.delay(u32::MAX), Duration::from_secs(60), "no overflow");
    }

    #[test]
    fn failures_push_the_next_attempt_out_and_attempts_wait_for_it() {
        let p = BackoffPolicy::default();
        let b = Backoff::default();
        assert!(b.due(0));
        let b = b.failed(&p, 10_000);
        assert_eq!((b.failures, b.next_attempt_ms), (1, 11_000));
        assert!(!b.due(10_999) && b.due(11_000));
        let b = b.failed(&p, 11_000);
        assert_eq!((b.failures, b.next_attempt_ms), (2, 13_000));
    }

    #[test]
    fn attempts_over_an_hour_grow_logarithmically_until_the_cap() {
        // A member that rejects every dispatch: how many attempts in an hour?
        let p = BackoffPolicy::default();
        let (mut b, mut now, mut attempts) = (Backoff::default(), 0u64, 0);
        while now < 3_600_000 {
            if b.due(now) {
                attempts += 1;
                b = b.failed(&p, now);
            }
            now += 200; // a cycle every 200 ms
        }
        // 1+2+4+...+256 s = 511 s for 10 attempts, then one every 300 s: 10 + 11 = 21.
        assert!((20..=22).contains(&attempts), "{attempts} attempts; every cycle would be 18000");
    }
}

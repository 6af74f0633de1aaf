//! Reachability of a member, shared by every backend: when it last answered, and why the
//! last call failed.

use std::time::{Duration, Instant};

/// When a member last answered and what went wrong since.
#[derive(Debug, Clone)]
pub struct Health {
    last_ok: Option<Instant>,
    last_error: Option<String>,
    last_reason: Option<&'static str>,
    since: Instant,
}

impl Default for Health {
    fn default() -> Self {
        Self { last_ok: None, last_error: None, last_reason: None, since: Instant::now() }
    }
}

impl Health {
    /// A successful call.
    pub fn ok(&mut self) {
        self.last_ok = Some(Instant::now());
        self.last_error = None;
        self.last_reason = None;
    }

    /// A failed call.
    pub fn failed(&mut self, why: impl Into<String>) {
        self.last_error = Some(why.into());
        self.last_reason = None;
    }

    /// A failed call, with a CamelCase reason for the member's Ready condition.
    pub fn failed_because(&mut self, reason: &'static str, why: impl Into<String>) {
        self.last_error = Some(why.into());
        self.last_reason = Some(reason);
    }

    /// The reason given with the last failure, if any.
    pub fn last_reason(&self) -> Option<&'static str> {
        self.last_reason
    }

    /// Whether the member answered within `timeout` (a member never reached counts from
    /// when the connection was made), and the last error.
    pub fn reachable(&self, timeout: Duration) -> (bool, Option<String>) {
        let last = self.last_ok.unwrap_or(self.since);
        (last.elapsed() <= timeout, self.last_error.clone())
    }

    /// Whether the member answered at least once.
    pub fn ever_reached(&self) -> bool {
        self.last_ok.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_is_reachable_until_the_timeout_passes_without_an_answer() {
        let mut h = Health::default();
        assert!(h.reachable(Duration::from_secs(60)).0, "grace period from the connection");
        assert!(!h.reachable(Duration::ZERO).0 || !h.ever_reached());
        h.failed("refused");
        assert_eq!(h.reachable(Duration::from_secs(60)).1.as_deref(), Some("refused"));
        h.failed_because("AuthenticationFailed", "HTTP 401");
        assert_eq!(h.last_reason(), Some("AuthenticationFailed"));
        h.ok();
        assert_eq!(h.last_reason(), None);
        assert!(h.ever_reached());
        assert_eq!(h.reachable(Duration::from_secs(60)), (true, None));
    }
}

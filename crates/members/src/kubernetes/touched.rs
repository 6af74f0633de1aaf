//! Which jobs a watch saw change since the service last looked: what a pass must decide
//! again. A watch touches a job by its hub UID on every event of an object of it (a hub
//! TrainingJob, a member's Job or copy), and everything when it lists again (after a
//! restart or a lost watch, any object may have changed unseen).
//!
//! The set is bounded: past [`MAX_KEYS`] keys it turns into "everything", so a member
//! that floods its watch with objects costs one full pass, not memory.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

/// Keys kept before a set turns into "everything".
pub const MAX_KEYS: usize = 100_000;

/// What changed since the last [`Touched::take`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Touches {
    /// Anything may have changed: every job is to be looked at.
    pub all: bool,
    /// The hub UIDs of the jobs touched.
    pub keys: HashSet<String>,
}

impl Touches {
    /// Everything.
    pub fn all() -> Self {
        Self { all: true, keys: HashSet::new() }
    }

    /// Whether the job with this hub UID was touched.
    pub fn contains(&self, key: &str) -> bool {
        self.all || self.keys.contains(key)
    }

    /// Adds one key.
    pub fn touch(&mut self, key: &str) {
        if self.all {
            return;
        }
        if self.keys.len() >= MAX_KEYS {
            *self = Self::all();
            return;
        }
        if !self.keys.contains(key) {
            self.keys.insert(key.to_string());
        }
    }

    /// Adds what `other` touched.
    pub fn merge(&mut self, other: Self) {
        if self.all {
            return;
        }
        if other.all {
            *self = Self::all();
            return;
        }
        if self.keys.is_empty() {
            self.keys = other.keys;
            return;
        }
        other.keys.iter().for_each(|k| self.touch(k));
    }
}

/// A set of touches a watch adds to and a pass takes; clones share it.
#[derive(Debug, Default, Clone)]
pub struct Touched(Arc<Mutex<Touches>>);

impl Touched {
    fn lock(&self) -> std::sync::MutexGuard<'_, Touches> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The job with this hub UID changed.
    pub fn touch(&self, key: &str) {
        self.lock().touch(key);
    }

    /// Anything may have changed.
    pub fn touch_all(&self) {
        *self.lock() = Touches::all();
    }

    /// What was touched since the last take; the set starts empty again.
    pub fn take(&self) -> Touches {
        std::mem::take(&mut *self.lock())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_take_returns_the_touches_once() {
        let t = Touched::default();
        t.touch("a");
        t.clone().touch("b");
        t.touch("a");
        let taken = t.take();
        assert!(!taken.all);
        assert_eq!(taken.keys, HashSet::from(["a".to_string(), "b".to_string()]));
        assert!(taken.contains("a") && !taken.contains("c"));
        assert_eq!(t.take(), Touches::default(), "taken: empty again");
        t.touch_all();
        t.touch("z");
        assert!(t.take().contains("anything"), "a relist touches everything");
    }

    #[test]
    fn a_flood_of_keys_turns_into_everything() {
        let mut touches = Touches::default();
        for i in 0..=MAX_KEYS {
            touches.touch(&i.to_string());
        }
        assert!(touches.all, "bounded: past MAX_KEYS every job is looked at");
        assert!(touches.keys.is_empty(), "and the keys are let go");
    }

    fn b_again() -> Touches {
        let mut b = Touches::default();
        b.touch("b");
        b
    }

    #[test]
    fn merging_keeps_both_and_everything_wins() {
        let mut a = Touches::default();
        a.touch("a");
        a.merge(b_again());
        assert!(a.contains("a") && a.contains("b") && !a.contains("c"));
        a.merge(Touches::all());
        assert!(a.contains("c"));
        a.merge(b_again());
        assert!(a.all && a.keys.is_empty(), "everything stays everything");
        let mut empty = Touches::default();
        empty.merge(a.clone());
        assert!(empty.all);
    }
}

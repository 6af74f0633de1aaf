//! Which jobs a reconcile looks at ([`Looks`]): the jobs a watch event or landed work
//! touched since the last one, and every job when the members changed or
//! [`FULL_RECONCILE_EVERY`] has passed. Owned by the reconciler ([`crate::jobs`]); pure
//! but for the members it reads in [`MemberLook::of`].

use computenet_members::kubernetes::Touches;
use computenet_members::Member;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// Every job is looked at this often even when nothing touched it: the safety net under
/// the touches (and what a step that only time changes waits for at most).
pub const FULL_RECONCILE_EVERY: Duration = Duration::from_secs(2);

/// Which jobs a reconcile looks at: those a watch event or landed work touched since the
/// last one; every job when the members changed or [`FULL_RECONCILE_EVERY`] has passed.
#[derive(Debug, Default)]
pub struct Looks {
    /// When every job was last looked at.
    looked_at_all: Option<Instant>,
    /// The members (connected, and named by a MemberCluster) as the last reconcile saw them.
    members_seen: (Vec<MemberLook>, BTreeSet<String>),
    /// Jobs whose work landed since the last reconcile.
    landed: Touches,
}

impl Looks {
    /// Work on this job landed.
    pub fn landed(&mut self, uid: &str) {
        self.landed.touch(uid);
    }

    /// The jobs to look at now, given what the watches touched and the members as they are.
    pub fn next(
        &mut self,
        mut touched: Touches,
        members: (Vec<MemberLook>, BTreeSet<String>),
        now: Instant,
    ) -> Touches {
        touched.merge(std::mem::take(&mut self.landed));
        let members_changed = members != self.members_seen;
        self.members_seen = members;
        let due = self.looked_at_all.is_none_or(|at| now.saturating_duration_since(at) >= FULL_RECONCILE_EVERY);
        if members_changed || due {
            touched = Touches::all();
        }
        if touched.all {
            self.looked_at_all = Some(now);
        }
        touched
    }
}

/// What of a member decides its jobs' steps besides their own objects there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberLook {
    name: String,
    reachable: bool,
    ever_reached: bool,
    caches_ready: bool,
    credentials_rejected: bool,
}

impl MemberLook {
    pub fn of(name: &str, m: &Member, timeout: Duration) -> Self {
        MemberLook {
            name: name.to_string(),
            reachable: m.reachable(timeout).0,
            ever_reached: m.ever_reached(),
            caches_ready: m.caches_ready(),
            credentials_rejected: m.credentials_rejected(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn look(name: &str, reachable: bool) -> MemberLook {
        MemberLook { name: name.into(), reachable, ever_reached: true, caches_ready: true, credentials_rejected: false }
    }

    #[test]
    fn a_reconcile_looks_at_what_was_touched_and_at_everything_every_few_seconds() {
        let mut looks = Looks::default();
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let none = || (Vec::new(), BTreeSet::new());
        let touching = |keys: &[&str]| {
            let mut t = Touches::default();
            keys.iter().for_each(|k| t.touch(k));
            t
        };
        assert!(looks.next(Touches::default(), none(), at(0)).all, "the first reconcile looks at every job");
        let next = looks.next(touching(&["a"]), none(), at(100));
        assert!(!next.all && next.contains("a") && !next.contains("b"), "then only the touched ones");
        looks.landed("b");
        let next = looks.next(Touches::default(), none(), at(200));
        assert!(next.contains("b") && !next.contains("a"), "landed work is looked at");
        assert!(!looks.next(Touches::default(), none(), at(300)).contains("b"), "once");
        let full = u64::try_from(FULL_RECONCILE_EVERY.as_millis()).unwrap();
        assert!(looks.next(Touches::default(), none(), at(full)).all, "the safety net: every job again");
        assert!(looks.next(Touches::all(), none(), at(full + 1)).all, "a watch listed again: every job");
        assert!(!looks.next(Touches::default(), none(), at(full + 2)).all, "the clock restarts with any full look");

        let named = BTreeSet::from(["m".to_string()]);
        assert!(looks.next(Touches::default(), (vec![], named.clone()), at(full + 3)).all, "a member named");
        assert!(looks.next(Touches::default(), (vec![look("m", true)], named.clone()), at(full + 4)).all, "connected");
        assert!(!looks.next(Touches::default(), (vec![look("m", true)], named.clone()), at(full + 5)).all);
        assert!(looks.next(Touches::default(), (vec![look("m", false)], named.clone()), at(full + 6)).all, "lost");
        let rejected = MemberLook { credentials_rejected: true, ..look("m", false) };
        assert!(looks.next(Touches::default(), (vec![rejected], named), at(full + 7)).all, "refusing us");
    }
}

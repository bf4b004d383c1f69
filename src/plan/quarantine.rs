//! Backends the SLB keeps refusing, held out of the plan so the rest of their group
//! proceeds.
//!
//! One backend the SLB refuses for reasons of its own (an ECS instance released while
//! its Node object lingers, an ENI gone with its pod) would otherwise fail every write
//! call it is batched into, and with it every other change of the pass: additions,
//! drains of leaving nodes, removals. The executor isolates such a backend, and the
//! planner then leaves it out of every step until its hold expires; the next pass after
//! that tries it again, and a second refusal doubles the hold.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use jiff::Timestamp;

use super::step::StepAction;
use crate::model::BackendKey;

/// How long a refused backend is held out before it is tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HoldPolicy {
    /// The first hold.
    pub first: Duration,
    /// The longest hold; each further refusal doubles the previous one up to this.
    pub max: Duration,
}

impl Default for HoldPolicy {
    fn default() -> Self {
        HoldPolicy {
            first: Duration::from_secs(30),
            max: Duration::from_secs(600),
        }
    }
}

impl HoldPolicy {
    /// The hold after the `strikes`-th refusal in a row (1-based).
    pub fn hold_for(&self, strikes: u32) -> Duration {
        let doublings = strikes.saturating_sub(1).min(16);
        self.first.saturating_mul(1 << doublings).min(self.max)
    }
}

/// What the SLB said when it refused a backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The write the SLB refused.
    pub action: StepAction,
    /// The API's error Code and message.
    pub code: String,
    pub message: String,
}

/// Why and until when one backend is held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub refusal: Refusal,
    /// Refusals in a row; the hold doubles with each.
    pub strikes: u32,
    /// How long this hold lasts.
    pub hold: Duration,
    /// The backend is left out of plans made before this time.
    pub until: Timestamp,
}

/// Held backends per vServer group id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Quarantine {
    groups: BTreeMap<String, BTreeMap<BackendKey, Held>>,
}

impl Quarantine {
    pub fn new() -> Self {
        Self::default()
    }

    /// The keys of `group_id` that plans made at `now` must leave out.
    pub fn held(&self, group_id: &str, now: Timestamp) -> BTreeSet<BackendKey> {
        self.groups
            .get(group_id)
            .into_iter()
            .flatten()
            .filter(|(_, held)| now < held.until)
            .map(|(key, _)| key.clone())
            .collect()
    }

    /// Holds `key` after a refusal at `now`; a backend refused again after its hold
    /// expired is held twice as long. Returns the new entry.
    pub fn hold(
        &mut self,
        group_id: &str,
        key: BackendKey,
        refusal: Refusal,
        now: Timestamp,
        policy: HoldPolicy,
    ) -> &Held {
        let entries = self.groups.entry(group_id.to_owned()).or_default();
        let strikes = entries.get(&key).map_or(0, |h| h.strikes).saturating_add(1);
        let hold = policy.hold_for(strikes);
        let until = now.checked_add(hold).unwrap_or(Timestamp::MAX);
        let held = Held {
            refusal,
            strikes,
            hold,
            until,
        };
        match entries.entry(key) {
            std::collections::btree_map::Entry::Occupied(mut e) => {
                e.insert(held);
                e.into_mut()
            }
            std::collections::btree_map::Entry::Vacant(e) => e.insert(held),
        }
    }

    /// Forgets `key`: a write of it succeeded.
    pub fn release(&mut self, group_id: &str, key: &BackendKey) -> bool {
        let Some(entries) = self.groups.get_mut(group_id) else {
            return false;
        };
        let released = entries.remove(key).is_some();
        if entries.is_empty() {
            self.groups.remove(group_id);
        }
        released
    }

    /// Keeps only the entries of `group_id` that `keep` accepts (the backends still
    /// desired or present: a held backend that nobody wants any more is forgotten).
    pub fn retain(&mut self, group_id: &str, mut keep: impl FnMut(&BackendKey) -> bool) {
        if let Some(entries) = self.groups.get_mut(group_id) {
            entries.retain(|key, _| keep(key));
            if entries.is_empty() {
                self.groups.remove(group_id);
            }
        }
    }

    /// The earliest end of a hold of `group_id` after `now`: when the group must be
    /// planned again to try its held backends.
    pub fn next_recheck(&self, group_id: &str, now: Timestamp) -> Option<Timestamp> {
        self.groups
            .get(group_id)?
            .values()
            .map(|held| held.until)
            .filter(|until| *until > now)
            .min()
    }

    /// The entry of one backend, if held (expired holds included: their strikes count).
    pub fn get(&self, group_id: &str, key: &BackendKey) -> Option<&Held> {
        self.groups.get(group_id)?.get(key)
    }

    /// Backends with an entry, over all groups.
    pub fn len(&self) -> usize {
        self.groups.values().map(BTreeMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str) -> BackendKey {
        BackendKey::Ecs {
            server_id: id.into(),
            port: 30080,
        }
    }

    fn refused() -> Refusal {
        Refusal {
            action: StepAction::Add,
            code: "InvalidServerId.NotExist".into(),
            message: "gone".into(),
        }
    }

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    #[test]
    fn a_hold_ends_at_its_deadline_and_doubles_on_the_next_refusal() {
        let policy = HoldPolicy::default();
        let mut q = Quarantine::new();
        let until = q.hold("rsp-1", key("i-bad"), refused(), t(0), policy).until;
        assert_eq!(until, t(30));
        assert!(q.held("rsp-1", t(29)).contains(&key("i-bad")));
        assert!(
            q.held("rsp-1", t(30)).is_empty(),
            "tried again at the deadline"
        );
        assert!(
            q.held("rsp-2", t(0)).is_empty(),
            "other groups are not held"
        );
        assert_eq!(q.next_recheck("rsp-1", t(0)), Some(t(30)));
        assert_eq!(q.next_recheck("rsp-1", t(30)), None);
        let again = q.hold("rsp-1", key("i-bad"), refused(), t(30), policy);
        assert_eq!((again.strikes, again.until), (2, t(90)));
    }

    #[test]
    fn holds_never_exceed_the_maximum() {
        let policy = HoldPolicy::default();
        assert_eq!(policy.hold_for(1), Duration::from_secs(30));
        assert_eq!(policy.hold_for(5), Duration::from_secs(480));
        assert_eq!(policy.hold_for(6), Duration::from_secs(600));
        assert_eq!(policy.hold_for(u32::MAX), Duration::from_secs(600));
    }

    #[test]
    fn release_and_retain_forget_entries() {
        let policy = HoldPolicy::default();
        let mut q = Quarantine::new();
        q.hold("rsp-1", key("a"), refused(), t(0), policy);
        q.hold("rsp-1", key("b"), refused(), t(0), policy);
        assert_eq!(q.len(), 2);
        assert!(q.release("rsp-1", &key("a")));
        assert!(!q.release("rsp-1", &key("a")));
        q.retain("rsp-1", |k| *k != key("b"));
        assert!(q.is_empty());
    }
}

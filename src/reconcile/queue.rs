//! The scheduler's queue of groups waiting for a pass: one queue per [`Lane`], most
//! urgent lane first, and within a lane round-robin across Services, so that one
//! Service with many groups (or a burst of changes) cannot hold the others back.
//!
//! Pure data: the scheduler decides when to pop; the queue only decides what.

use std::collections::{HashMap, VecDeque};

use tokio::time::Instant;

use crate::model::{GroupRef, ServiceRef};
use crate::slb::budget::Lane;

/// Groups waiting for a pass, each once, in the lane of its most urgent trigger.
#[derive(Debug, Default)]
pub(crate) struct LaneQueue {
    lanes: [Fair; Lane::COUNT],
    /// Where each queued group waits, and since when.
    queued: HashMap<GroupRef, (Lane, Instant)>,
}

/// One lane: Services in turn, each with its groups in arrival order.
#[derive(Debug, Default)]
struct Fair {
    turns: VecDeque<ServiceRef>,
    groups: HashMap<ServiceRef, VecDeque<GroupRef>>,
}

impl Fair {
    fn push(&mut self, group: GroupRef) {
        let service = group.service.clone();
        let groups = self.groups.entry(service.clone()).or_default();
        if groups.is_empty() {
            self.turns.push_back(service);
        }
        groups.push_back(group);
    }

    /// The first group of the first Service in turn that `allowed` admits; Services
    /// passed over keep their place.
    fn pop(&mut self, allowed: impl Fn(&ServiceRef) -> bool) -> Option<GroupRef> {
        let at = self.turns.iter().position(allowed)?;
        let service = self.turns.remove(at)?;
        let groups = self.groups.get_mut(&service)?;
        let group = groups.pop_front();
        if groups.is_empty() {
            self.groups.remove(&service);
        } else {
            self.turns.push_back(service);
        }
        group
    }

    fn remove(&mut self, group: &GroupRef) {
        let Some(groups) = self.groups.get_mut(&group.service) else {
            return;
        };
        groups.retain(|g| g != group);
        if groups.is_empty() {
            self.groups.remove(&group.service);
            self.turns.retain(|s| *s != group.service);
        }
    }

    fn len(&self) -> usize {
        self.groups.values().map(VecDeque::len).sum()
    }
}

impl LaneQueue {
    /// Queues `group` in `lane`; a group already queued in a less urgent lane moves up
    /// (to the back of the more urgent one). False when it was queued already, as
    /// urgently or more.
    pub(crate) fn push(&mut self, group: GroupRef, lane: Lane) -> bool {
        let since = match self.queued.get(&group) {
            Some((queued, _)) if *queued <= lane => return false,
            Some((queued, since)) => {
                let (queued, since) = (*queued, *since);
                self.lanes[queued.index()].remove(&group);
                since
            }
            None => Instant::now(),
        };
        self.queued.insert(group.clone(), (lane, since));
        self.lanes[lane.index()].push(group);
        true
    }

    /// The next group of the most urgent lane that `allowed` admits for its Service,
    /// with its lane and when it was first queued.
    pub(crate) fn pop(
        &mut self,
        allowed: impl Fn(Lane, &ServiceRef) -> bool,
    ) -> Option<(GroupRef, Lane, Instant)> {
        for lane in Lane::ALL {
            if let Some(group) = self.lanes[lane.index()].pop(|service| allowed(lane, service)) {
                let (_, since) = self.queued.remove(&group)?;
                return Some((group, lane, since));
            }
        }
        None
    }

    #[cfg(test)]
    pub(crate) fn contains(&self, group: &GroupRef) -> bool {
        self.queued.contains_key(group)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.queued.is_empty()
    }

    /// Groups waiting in `lane`.
    pub(crate) fn len(&self, lane: Lane) -> usize {
        self.lanes[lane.index()].len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(service: &str, port: u16) -> GroupRef {
        GroupRef::new(ServiceRef::parse(service).unwrap(), port)
    }

    fn drain(q: &mut LaneQueue) -> Vec<(String, u16, Lane)> {
        std::iter::from_fn(|| q.pop(|_, _| true))
            .map(|(g, lane, _)| (g.service.to_string(), g.service_port, lane))
            .collect()
    }

    #[test]
    fn urgent_lanes_go_first_and_services_take_turns_within_a_lane() {
        let mut q = LaneQueue::default();
        for port in 1..=3 {
            q.push(g("ns/busy", port), Lane::Bulk);
        }
        q.push(g("ns/quiet", 1), Lane::Bulk);
        q.push(g("ns/web", 80), Lane::Pod);
        q.push(g("ns/db", 5432), Lane::Change);
        let order = drain(&mut q);
        assert_eq!(
            order,
            [
                ("ns/web".into(), 80, Lane::Pod),
                ("ns/db".into(), 5432, Lane::Change),
                ("ns/busy".into(), 1, Lane::Bulk),
                ("ns/quiet".into(), 1, Lane::Bulk),
                ("ns/busy".into(), 2, Lane::Bulk),
                ("ns/busy".into(), 3, Lane::Bulk),
            ]
        );
        assert!(q.is_empty());
    }

    #[test]
    fn a_group_is_queued_once_and_moves_up_to_its_most_urgent_trigger() {
        let mut q = LaneQueue::default();
        assert!(q.push(g("ns/a", 1), Lane::Bulk));
        assert!(q.push(g("ns/b", 1), Lane::Change));
        assert!(!q.push(g("ns/a", 1), Lane::Bulk), "coalesced");
        assert!(q.push(g("ns/a", 1), Lane::Pod), "promoted");
        assert!(!q.push(g("ns/a", 1), Lane::Change), "not demoted");
        assert_eq!((q.len(Lane::Pod), q.len(Lane::Bulk)), (1, 0));
        let order = drain(&mut q);
        assert_eq!(
            order,
            [
                ("ns/a".into(), 1, Lane::Pod),
                ("ns/b".into(), 1, Lane::Change)
            ]
        );
    }

    #[test]
    fn a_lane_that_may_not_start_is_skipped() {
        let mut q = LaneQueue::default();
        q.push(g("ns/a", 1), Lane::Bulk);
        q.push(g("ns/b", 1), Lane::Change);
        let (first, lane, _) = q.pop(|l, _| l != Lane::Change).unwrap();
        assert_eq!(
            (first.service.to_string(), lane),
            ("ns/a".into(), Lane::Bulk)
        );
        assert!(q.contains(&g("ns/b", 1)));
    }

    #[test]
    fn a_service_that_may_not_start_keeps_its_turn() {
        let mut q = LaneQueue::default();
        q.push(g("ns/a", 1), Lane::Pod);
        q.push(g("ns/a", 2), Lane::Pod);
        q.push(g("ns/b", 1), Lane::Pod);
        let (first, _, _) = q.pop(|_, s| s.to_string() != "ns/a").unwrap();
        assert_eq!(first.service.to_string(), "ns/b");
        let order = drain(&mut q);
        assert_eq!(
            order,
            [("ns/a".into(), 1, Lane::Pod), ("ns/a".into(), 2, Lane::Pod)]
        );
    }
}

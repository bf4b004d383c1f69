//! Which pods wait on the health of which load balancer, and what the SLB last said.
//!
//! The pod side looks here ([`HealthBoard::look`]) each time it decides a gate; a look
//! that has to wait files the pod as a waiter of the load balancer, and the poller reads
//! health only for load balancers with waiters. A waiter that stops looking (its gate
//! opened, it was deleted, it no longer declares the gate) is dropped after one poll, so
//! no reading outlives the pods that need it.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use tokio::sync::Notify;

use super::verdict::{verdict, Verdict};
use crate::agent::pods::decide::PodPlace;
use crate::model::{BackendKey, GroupHealth, Listener, Mode};
use crate::reconcile::GroupHealthSource;
use crate::slb::BackendHealth;

/// A pod, `(namespace, name)`.
pub type PodKey = (String, String);

/// Who waits on a load balancer's health: a pod's gate in one group, or a group's drain.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum WaitKey {
    Pod(PodKey, String),
    Group(String),
}

/// A reading older than this (or than two polls) says too little of a group for a drain
/// to go by it.
const GROUP_READING_MAX_AGE: Duration = Duration::from_secs(30);
/// A drain that has waited this long without any reading (health reads failing: an
/// outage, throttling, a missing permission) goes by weights alone, with a warning.
const UNREAD_LIMIT: SignedDuration = SignedDuration::from_secs(60);

/// Listener settings (health check on/off, interval) are read again after this long.
const LISTENERS_MAX_AGE: SignedDuration = SignedDuration::from_secs(600);
/// Poll period while the listeners are not known yet, and the shortest one.
const FIRST_POLL: Duration = Duration::from_secs(2);
const MIN_POLL: Duration = Duration::from_secs(1);

/// Shared between the pod side (looks) and the poller (readings). Cheap to share in an
/// `Arc`.
#[derive(Default)]
pub struct HealthBoard {
    inner: Mutex<Inner>,
    /// Wakes the poller when a load balancer gets its first waiter.
    pub(super) wake: Notify,
}

#[derive(Default)]
struct Inner {
    lbs: HashMap<String, LbHealth>,
}

#[derive(Default)]
struct LbHealth {
    listeners: Option<(Timestamp, Arc<[Listener]>)>,
    reading: Option<(Timestamp, Arc<[BackendHealth]>)>,
    waiters: HashMap<WaitKey, Waiter>,
    polled_at: Option<Timestamp>,
}

#[derive(Debug, Clone, Copy)]
struct Waiter {
    /// Readings older than this say nothing of the pod's backend as it is now.
    since: Timestamp,
    looked_at: Timestamp,
}

impl LbHealth {
    /// Poll period: the shortest check interval of its checked listeners.
    fn period(&self) -> Duration {
        let Some((_, listeners)) = &self.listeners else {
            return FIRST_POLL;
        };
        listeners
            .iter()
            .filter_map(|l| l.health_check)
            .map(|c| Duration::from_secs(u64::from(c.interval_secs)))
            .min()
            .unwrap_or(FIRST_POLL)
            .max(MIN_POLL)
    }

    /// Since when `key` waits here (`now` if it does not yet).
    fn waiting_since(&self, key: &WaitKey, now: Timestamp) -> Timestamp {
        self.waiters.get(key).map_or(now, |w| w.since)
    }

    /// Files `key` as a waiter that looked at `now`; true when it is the first one here
    /// (the poller may be asleep).
    fn file(&mut self, key: WaitKey, since: Timestamp, now: Timestamp) -> bool {
        let first = self.waiters.is_empty();
        self.waiters.insert(
            key,
            Waiter {
                since,
                looked_at: now,
            },
        );
        first
    }

    fn due_at(&self) -> Option<Timestamp> {
        if self.waiters.is_empty() {
            return None;
        }
        Some(match self.polled_at {
            None => Timestamp::MIN,
            Some(at) => at
                .checked_add(SignedDuration::try_from(self.period()).unwrap_or_default())
                .unwrap_or(Timestamp::MAX),
        })
    }
}

impl HealthBoard {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The health of `pod`'s backend (at `place`) in group `group_id` of load balancer
    /// `lb`, from what the board holds, and since when the pod waits there. A verdict
    /// that waits files the pod as a waiter of `lb` (the poller reads it then); one that
    /// does not ends its wait there.
    pub fn look(
        &self,
        lb: &str,
        group_id: &str,
        mode: Mode,
        place: &PodPlace,
        pod: &PodKey,
        now: Timestamp,
    ) -> (Verdict, Timestamp) {
        let mut inner = self.lock();
        let entry = inner.lbs.entry(lb.to_owned()).or_default();
        let key = WaitKey::Pod(pod.clone(), group_id.to_owned());
        let since = entry.waiting_since(&key, now);
        let v = match &entry.listeners {
            None => Verdict::Unknown,
            Some((_, listeners)) => {
                let reading = entry
                    .reading
                    .as_ref()
                    .filter(|(at, _)| *at > since)
                    .map(|(_, r)| &r[..]);
                verdict(mode, place, group_id, listeners, reading)
            }
        };
        if !v.waits() {
            entry.waiters.remove(&key);
        } else if entry.file(key, since, now) {
            self.wake.notify_one();
        }
        (v, since)
    }

    /// `pod` waits on no health any more (deleted).
    pub fn forget(&self, pod: &PodKey) {
        for lb in self.lock().lbs.values_mut() {
            lb.waiters
                .retain(|k, _| !matches!(k, WaitKey::Pod(p, _) if p == pod));
        }
    }

    /// What the last reading of `lb` (at most 30 s old) says of group `group_id`, for a
    /// drain. Asking files the group as a waiter of `lb` where its health is checked or
    /// not known, so the poller reads it (and keeps reading while drains keep asking).
    pub fn group_health(&self, lb: &str, group_id: &str, now: Timestamp) -> GroupHealth {
        let mut inner = self.lock();
        let entry = inner.lbs.entry(lb.to_owned()).or_default();
        let health = match &entry.listeners {
            // Not known yet: drain as without checks, and have them read.
            None => None,
            Some((_, listeners)) => {
                let checked: Vec<u16> = listeners
                    .iter()
                    .filter(|l| l.v_server_group_id.as_deref() == Some(group_id))
                    .filter(|l| l.health_check.is_some())
                    .map(|l| l.port)
                    .collect();
                if checked.is_empty() {
                    return GroupHealth::Unchecked;
                }
                let max_age =
                    SignedDuration::try_from(GROUP_READING_MAX_AGE.max(2 * entry.period()))
                        .unwrap_or(SignedDuration::MAX);
                let fresh = entry
                    .reading
                    .as_ref()
                    .filter(|(at, _)| now.duration_since(*at) <= max_age);
                Some(match fresh {
                    None => GroupHealth::Unread,
                    Some((_, reading)) => GroupHealth::Normal(normal_on_all(reading, &checked)),
                })
            }
        };
        let key = WaitKey::Group(group_id.to_owned());
        let since = entry.waiting_since(&key, now);
        let health = match health {
            Some(GroupHealth::Unread) if now.duration_since(since) >= UNREAD_LIMIT => {
                tracing::warn!(load_balancer_id = %lb, %group_id,
                    "no health reading for a minute: the drain goes by weights alone");
                None
            }
            other => other,
        };
        if entry.file(key, since, now) {
            self.wake.notify_one();
        }
        health.unwrap_or(GroupHealth::Unchecked)
    }

    /// Load balancers whose poll is due at `now`, and when the next one is due after
    /// them (`None`: nobody waits).
    pub(super) fn due(&self, now: Timestamp) -> (Vec<String>, Option<Timestamp>) {
        let inner = self.lock();
        let mut due = Vec::new();
        let mut next: Option<Timestamp> = None;
        for (id, lb) in &inner.lbs {
            match lb.due_at() {
                Some(at) if at <= now => due.push(id.clone()),
                Some(at) => next = Some(next.map_or(at, |n| n.min(at))),
                None => {}
            }
        }
        due.sort();
        (due, next)
    }

    /// True when `lb`'s listener settings are to be read (never read, or old).
    pub(super) fn listeners_stale(&self, lb: &str, now: Timestamp) -> bool {
        self.lock()
            .lbs
            .get(lb)
            .and_then(|l| l.listeners.as_ref())
            .is_none_or(|(at, _)| now.duration_since(*at) >= LISTENERS_MAX_AGE)
    }

    /// True unless `lb`'s listeners are known and none checks health.
    pub(super) fn checks_health(&self, lb: &str) -> bool {
        self.lock()
            .lbs
            .get(lb)
            .and_then(|l| l.listeners.as_ref())
            .is_none_or(|(_, ls)| ls.iter().any(|l| l.health_check.is_some()))
    }

    pub(super) fn set_listeners(&self, lb: &str, listeners: Vec<Listener>, at: Timestamp) {
        self.lock().lbs.entry(lb.to_owned()).or_default().listeners = Some((at, listeners.into()));
    }

    pub(super) fn set_reading(&self, lb: &str, reading: Vec<BackendHealth>, at: Timestamp) {
        self.lock().lbs.entry(lb.to_owned()).or_default().reading = Some((at, reading.into()));
    }

    /// Ends a poll of `lb` at `now`: drops the waiters that did not look since the poll
    /// before (they wait no more) and returns the others, to be looked at again.
    pub(super) fn polled(&self, lb: &str, now: Timestamp) -> Vec<PodKey> {
        let mut inner = self.lock();
        let Some(entry) = inner.lbs.get_mut(lb) else {
            return Vec::new();
        };
        if let Some(before) = entry.polled_at {
            entry.waiters.retain(|_, w| w.looked_at >= before);
        }
        entry.polled_at = Some(now);
        let keys: BTreeSet<PodKey> = entry
            .waiters
            .keys()
            .filter_map(|k| match k {
                WaitKey::Pod(pod, _) => Some(pod.clone()),
                WaitKey::Group(_) => None,
            })
            .collect();
        keys.into_iter().collect()
    }

    /// True while a drain of one of `lb`'s groups waits on its health: its poll is then
    /// drain-lane work.
    pub(super) fn drain_waits(&self, lb: &str) -> bool {
        self.lock()
            .lbs
            .get(lb)
            .is_some_and(|l| l.waiters.keys().any(|k| matches!(k, WaitKey::Group(_))))
    }

    /// Pods waiting on health now, over every load balancer (for the metric).
    pub fn waiting(&self) -> usize {
        self.lock()
            .lbs
            .values()
            .flat_map(|l| l.waiters.keys())
            .filter_map(|k| match k {
                WaitKey::Pod(pod, _) => Some(pod),
                WaitKey::Group(_) => None,
            })
            .collect::<BTreeSet<_>>()
            .len()
    }
}

impl GroupHealthSource for HealthBoard {
    fn group_health(&self, load_balancer_id: &str, group_id: &str, now: Timestamp) -> GroupHealth {
        HealthBoard::group_health(self, load_balancer_id, group_id, now)
    }

    fn reading_asked_at(&self, load_balancer_id: &str) -> Option<Timestamp> {
        self.lock()
            .lbs
            .get(load_balancer_id)
            .and_then(|l| l.reading.as_ref().map(|(at, _)| *at))
    }

    fn knows_listeners(&self, load_balancer_id: &str) -> bool {
        self.lock()
            .lbs
            .get(load_balancer_id)
            .is_some_and(|l| l.listeners.is_some())
    }

    fn learn_listeners(&self, load_balancer_id: &str, listeners: Vec<Listener>, at: Timestamp) {
        self.set_listeners(load_balancer_id, listeners, at);
    }
}

/// The backends reported `normal` on every one of the `checked` listener ports, by the
/// keys a group's members have (an entry names its server id and IP; the group's member
/// is one of the two).
fn normal_on_all(reading: &[BackendHealth], checked: &[u16]) -> BTreeSet<BackendKey> {
    let keys = |h: &BackendHealth| {
        let ecs = BackendKey::Ecs {
            server_id: h.server_id.clone(),
            port: h.port,
        };
        let eni = h.server_ip.map(|server_ip| BackendKey::Eni {
            server_ip,
            port: h.port,
        });
        [Some(ecs), eni].into_iter().flatten()
    };
    let on = |port: u16| -> BTreeSet<BackendKey> {
        reading
            .iter()
            .filter(|h| h.listener_port == port && h.status == "normal")
            .flat_map(keys)
            .collect()
    };
    let mut ports = checked.iter();
    let Some(first) = ports.next() else {
        return BTreeSet::new();
    };
    ports.fold(on(*first), |acc, port| {
        acc.intersection(&on(*port)).cloned().collect()
    })
}

#[cfg(test)]
#[path = "board_tests.rs"]
mod tests;

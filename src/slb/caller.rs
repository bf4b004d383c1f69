//! Who makes an SLB call: the pass it belongs to, that pass's lane and its Service.
//!
//! The budget ([`super::budget`]) orders waiting calls by lane and, within a lane, by the
//! pass they belong to: a pass keeps the place in its lane's fair queue that its first
//! call was given, so a pass under way finishes before passes queued behind it take the
//! budget. Without that, twenty groups passing at once take turns call by call and every
//! pass lasts as long as all twenty together: a drain that needs a read and one write
//! waits for forty calls instead of two.
//!
//! A pass's lane can rise while it runs: a pod that starts terminating while a gate pass
//! over its group waits for the budget makes the rest of that pass drain-lane work (the
//! pass plans from what is wanted once its read returns, so it carries the drain). And it
//! can drop back: a drain pass whose weight-0 and removal steps are done leaves its adds
//! to the pod lane, behind other groups' drains.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use super::budget::Lane;

/// The calls of one pass: its lane (which may rise) and its place in that lane's queue.
#[derive(Debug)]
struct Pass {
    lane: AtomicU8,
    /// The lane and fair-queuing tag the pass's calls were given in it.
    place: Mutex<Option<(Lane, u64)>>,
}

/// Who makes the calls of a task: its pass and the Service it is for.
#[derive(Debug, Clone)]
pub struct Caller {
    pass: Arc<Pass>,
    /// `<namespace>/<name>`.
    pub service: Arc<str>,
}

impl Caller {
    /// A new pass for `service` in `lane`.
    pub fn new(lane: Lane, service: Arc<str>) -> Self {
        Caller {
            pass: Arc::new(Pass {
                lane: AtomicU8::new(lane as u8),
                place: Mutex::new(None),
            }),
            service,
        }
    }

    /// The pass's lane now.
    pub fn lane(&self) -> Lane {
        Lane::ALL[usize::from(self.pass.lane.load(Ordering::Relaxed))]
    }

    /// Moves the pass to `lane` if that is more urgent; its next calls wait there.
    pub fn raise(&self, lane: Lane) {
        self.pass.lane.fetch_min(lane as u8, Ordering::Relaxed);
    }

    /// Moves the pass to `lane` if that is less urgent: the rest of a drain pass, once
    /// its drain is on the SLB, is work no pod's drain waits for.
    pub fn lower_to(&self, lane: Lane) {
        self.pass.lane.fetch_max(lane as u8, Ordering::Relaxed);
    }

    /// The place the pass holds in `lane`, if its calls were given one there.
    pub(super) fn place_in(&self, lane: Lane) -> Option<u64> {
        match *self.pass.place.lock().unwrap_or_else(|e| e.into_inner()) {
            Some((l, tag)) if l == lane => Some(tag),
            _ => None,
        }
    }

    /// Keeps the place the pass was given in `lane`.
    pub(super) fn hold_place(&self, lane: Lane, tag: u64) {
        *self.pass.place.lock().unwrap_or_else(|e| e.into_inner()) = Some((lane, tag));
    }
}

tokio::task_local! {
    /// The pass running on this task; its API calls wait in its lane, in its place.
    pub static CALLER: Caller;
}

/// The lane of the current task's pass, [`Lane::Change`] outside one.
pub fn current_lane() -> Lane {
    CALLER.try_with(Caller::lane).unwrap_or(Lane::Change)
}

/// The current task's caller, if it runs a pass.
pub fn current_caller() -> Option<Caller> {
    CALLER.try_with(Clone::clone).ok()
}

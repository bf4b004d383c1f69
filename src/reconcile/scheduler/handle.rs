//! What callers of the scheduler hold: the handle that sends it triggers, and its
//! counters.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::model::GroupRef;
use crate::slb::budget::Lane;

/// Counters of the scheduler, for tests and metrics.
#[derive(Debug, Default)]
pub struct SchedulerStats {
    pub(super) triggers: AtomicU64,
    pub(super) coalesced: AtomicU64,
    pub(super) passes: AtomicU64,
    pub(super) failures: AtomicU64,
    /// Groups queued per lane, as the driver last saw them.
    pub(super) queued: [AtomicU64; Lane::COUNT],
    /// Passes started per lane.
    pub(super) started: [AtomicU64; Lane::COUNT],
}

impl SchedulerStats {
    /// Triggers received.
    pub fn triggers(&self) -> u64 {
        self.triggers.load(Ordering::Relaxed)
    }
    /// Triggers that cost no pass of their own (folded into a queued or pending pass).
    pub fn coalesced(&self) -> u64 {
        self.coalesced.load(Ordering::Relaxed)
    }
    /// Passes run (triggered, requeued at a deadline, or retried after failure).
    pub fn passes(&self) -> u64 {
        self.passes.load(Ordering::Relaxed)
    }
    /// Passes that ended in an error.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }
    /// Groups waiting in `lane`.
    pub fn queued(&self, lane: Lane) -> u64 {
        self.queued[lane.index()].load(Ordering::Relaxed)
    }
    /// Passes started in `lane`.
    pub fn started(&self, lane: Lane) -> u64 {
        self.started[lane.index()].load(Ordering::Relaxed)
    }
}

/// What a handle tells the driver.
#[derive(Debug)]
pub(super) enum Msg {
    Trigger(GroupRef, Lane),
    /// Bulk passes start at most this often (a resync spread over its interval).
    BulkSpacing(Duration),
}

/// Sends triggers to a running scheduler. Dropping every handle stops the scheduler once
/// its running passes finish.
#[derive(Debug, Clone)]
pub struct SchedulerHandle {
    tx: mpsc::UnboundedSender<Msg>,
    stats: Arc<SchedulerStats>,
}

impl SchedulerHandle {
    pub(super) fn new(tx: mpsc::UnboundedSender<Msg>, stats: Arc<SchedulerStats>) -> Self {
        SchedulerHandle { tx, stats }
    }

    /// Asks for a pass over `group` in the change lane. Cheap: many triggers before the
    /// pass starts, or while one runs, cost one pass.
    pub fn trigger(&self, group: GroupRef) {
        self.trigger_in(group, Lane::Change);
    }

    /// Asks for a pass over `group` in `lane`; a group already queued in a less urgent
    /// lane moves up.
    pub fn trigger_in(&self, group: GroupRef, lane: Lane) {
        self.stats.triggers.fetch_add(1, Ordering::Relaxed);
        // A closed channel means the scheduler stopped: nothing is left to do.
        let _ = self.tx.send(Msg::Trigger(group, lane));
    }

    /// Spreads bulk passes: at most one starts per `spacing` (zero: no spacing).
    pub fn space_bulk(&self, spacing: Duration) {
        let _ = self.tx.send(Msg::BulkSpacing(spacing));
    }

    pub fn stats(&self) -> &SchedulerStats {
        &self.stats
    }
}

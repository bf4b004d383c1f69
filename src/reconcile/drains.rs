//! The executor's drain ledger bookkeeping: a drain starts when the SLB confirmed
//! weight 0, ends with the removal or a restored weight, and every start and end is told
//! to the drain journal (which persists ENI drain starts on pods).

use std::time::Duration;

use jiff::Timestamp;

use super::executor::{lock, Executor};
use crate::model::{BackendKey, SlbBackend};
use crate::plan::{DrainLedger, GroupPlan, StepAction};
use crate::slb::SlbApi;

/// How long the time of an add is kept for [`Executor::health_since_joins`]: longer than
/// any health reading a drain still goes by (at most two polls, a poll at most a few
/// minutes apart).
const JOIN_MEMORY: Duration = Duration::from_secs(15 * 60);

impl<A: SlbApi + ?Sized> Executor<A> {
    /// Ledger changes that no step stands for: drains of backends found at weight 0
    /// (their window starts at the plan's `now`) and entries of backends gone or restored
    /// without a write.
    pub(super) fn apply_ledger_without_steps(&self, group_id: &str, plan: &GroupPlan) {
        let written = |key: &crate::model::BackendKey| {
            plan.steps
                .iter()
                .flat_map(|s| &s.backends)
                .any(|b| b.key().as_ref() == Some(key))
        };
        let mut ledger = lock(&self.ledger);
        for key in &plan.ledger.ended {
            if !written(key) {
                self.end_drain(&mut ledger, group_id, key);
            }
        }
        for start in plan.ledger.started.iter().filter(|s| s.already_at_zero) {
            self.start_drain(&mut ledger, group_id, &start.key, start.started_at);
        }
    }

    pub(super) fn start_drain(
        &self,
        ledger: &mut DrainLedger,
        group_id: &str,
        key: &BackendKey,
        at: Timestamp,
    ) {
        ledger.start(group_id, key.clone(), at);
        if let Some(journal) = &self.journal {
            journal.drain_started(group_id, key, at);
        }
    }

    pub(super) fn end_drain(
        &self,
        ledger: &mut DrainLedger,
        group_id: &str,
        key: &BackendKey,
    ) -> Option<Timestamp> {
        let started = ledger.end(group_id, key);
        if let (Some(journal), Some(_)) = (&self.journal, started) {
            journal.drain_ended(group_id, key);
        }
        started
    }

    /// The earliest drain deadline of the group's ledger entries. A deadline that had
    /// passed when the pass planned (`now`) and still has an entry was held back (the
    /// replacement not yet healthy, the removal refused): it is looked at again a second
    /// from `now`, so it cannot spin the scheduler. One that came after `now` (while the
    /// pass waited for the budget or ran its calls) is due at its own time: the pass did
    /// not see it, and a removal a pod waits for is not put off by a second.
    pub(super) fn next_deadline(
        &self,
        group_id: &str,
        window: Duration,
        now: Timestamp,
    ) -> Option<Timestamp> {
        let floor = now
            .checked_add(Duration::from_secs(1))
            .unwrap_or(Timestamp::MAX);
        lock(&self.ledger)
            .group(group_id)
            .map(|(_, start)| start.checked_add(window).unwrap_or(Timestamp::MAX))
            .min()
            .map(|deadline| if deadline > now { deadline } else { floor })
    }

    /// Ledger changes of a step that succeeded: a drain starts when the SLB confirmed
    /// weight 0 (not when it was planned), and ends with removal or a restored weight.
    pub(super) fn record_step(&self, group_id: &str, action: StepAction, backends: &[SlbBackend]) {
        let now = self.clock.now();
        let mut ledger = lock(&self.ledger);
        let mut quarantine = lock(&self.quarantine);
        for backend in backends {
            let Some(key) = backend.key() else { continue };
            quarantine.release(group_id, &key);
            match action {
                StepAction::SetWeight if backend.weight.get() == 0 => {
                    self.start_drain(&mut ledger, group_id, &key, now)
                }
                StepAction::SetWeight => {
                    self.end_drain(&mut ledger, group_id, &key);
                }
                StepAction::Remove => {
                    lock(&self.joined).remove(&(group_id.to_owned(), key.clone()));
                    let started = self.end_drain(&mut ledger, group_id, &key);
                    if let (Some(metrics), Some(started)) = (&self.metrics, started) {
                        let drained = now.duration_since(started).as_secs_f64().max(0.0);
                        metrics.drain_duration.observe(drained);
                    }
                }
                StepAction::Add => {
                    let mut joined = lock(&self.joined);
                    joined.insert((group_id.to_owned(), key), now);
                    // Members never removed would stay forever; an add older than any
                    // reading a drain still goes by cannot matter. Pruned at every
                    // 1024th entry, so the cost stays linear in the adds.
                    if joined.len().is_multiple_of(1024) {
                        let keep = self.config.slb_propagation + JOIN_MEMORY;
                        joined.retain(|_, at| now.duration_since(*at).unsigned_abs() < keep);
                    }
                }
            }
        }
    }
}

//! Which queued pass starts next: lanes in order of urgency, Services taking turns within
//! a lane (`LaneQueue`), slots per lane and per Service, bulk spacing, and holding back
//! while calls already wait for the API budget.

use std::sync::atomic::Ordering;

use tokio::task::JoinSet;
use tokio::time::Instant;

use super::driver::{Driver, PassResult, Running};
use crate::model::ServiceRef;
use crate::reconcile::executor::PassOutcome;
use crate::reconcile::metrics::CHANGE_SEEN;
use crate::slb::budget::{Caller, Lane, CALLER};
use crate::slb::SlbApi;

/// Calls that may wait for the budget in a lane and the lanes before it before no more
/// change or bulk passes start: they would only line up behind them.
pub(super) const MAX_WAITING_CALLS: usize = 2;

impl<A: SlbApi + ?Sized + 'static> Driver<A> {
    /// Whether a pass of `lane` for `service` may start with what runs now.
    ///
    /// Pod-lane passes may use twice the slots, and a Service with nothing running may
    /// start one beyond that: urgent work always finds a slot, and one Service's burst
    /// cannot hold all of them. Drain passes have slots of their own. Change and bulk
    /// passes do not start while calls already wait for the budget (they would only line
    /// up), and bulk passes take at most half the slots, at their spacing.
    fn may_start(&self, lane: Lane, service: &ServiceRef, waiting: &[usize; Lane::COUNT]) -> bool {
        let max = self.config.max_concurrent.max(1);
        let running = self.running.len();
        let mine = self
            .running
            .values()
            .filter(|p| &p.group.service == service)
            .count();
        let queued_calls: usize = waiting[..=lane.index()].iter().sum();
        let running_in = |lane: Lane| self.running.values().filter(|p| p.lane() == lane).count();
        match lane {
            // Drains count only each other: passes of the other lanes, however many,
            // never keep a drain from starting.
            Lane::Drain => mine < max && running_in(Lane::Drain) < 4 * max,
            Lane::Pod => (running < 2 * max && mine < max) || (mine == 0 && running < 4 * max),
            Lane::Change => {
                running < max && mine < (max / 2).max(1) && queued_calls < MAX_WAITING_CALLS
            }
            Lane::Bulk => {
                running < max
                    && running_in(Lane::Bulk) < (max / 2).max(1)
                    && queued_calls < MAX_WAITING_CALLS
                    && Instant::now() >= self.next_bulk
            }
        }
    }

    pub(super) fn start_passes(&mut self, workers: &mut JoinSet<PassResult>) {
        self.held_for_budget = false;
        loop {
            let waiting = self.executor.budget().waiting();
            let mut queue = std::mem::take(&mut self.queue);
            let popped = queue.pop(|lane, service| self.may_start(lane, service, &waiting));
            self.queue = queue;
            let Some((group, lane, queued_at)) = popped else {
                self.held_for_budget =
                    !self.queue.is_empty() && waiting.iter().sum::<usize>() >= MAX_WAITING_CALLS;
                return;
            };
            if lane == Lane::Bulk {
                self.next_bulk = Instant::now() + self.bulk_spacing;
            }
            // A pass now supersedes a pending wake-up; it sets its own.
            if let Some((at, _)) = self.due.remove(&group) {
                self.timers.remove(&(at, group.clone()));
            }
            self.stats.passes.fetch_add(1, Ordering::Relaxed);
            self.stats.started[lane.index()].fetch_add(1, Ordering::Relaxed);
            if let Some(metrics) = self.executor.metrics() {
                metrics
                    .queue_wait
                    .with_label_values(&[lane.as_str()])
                    .observe(queued_at.elapsed().as_secs_f64());
            }
            let executor = self.executor.clone();
            let source = self.source.clone();
            let observer = self.observer.clone();
            let key = group.clone();
            let seen = std::cell::Cell::new(self.seen.remove(&group));
            let pass = CHANGE_SEEN.scope(seen, async move {
                let result = match source.target(&key) {
                    Some(target) => {
                        let latest = || source.target(&key);
                        let (result, target) = executor.reconcile_latest(target, &latest).await;
                        if let Some(observer) = &observer {
                            observer.pass_finished(&key, &target, &result);
                        }
                        result
                    }
                    None => Ok(PassOutcome::default()),
                };
                (key, result)
            });
            let caller = Caller::new(lane, group.service.to_string().into());
            let handle = workers.spawn(CALLER.scope(caller.clone(), pass));
            self.running.insert(
                handle.id(),
                Running {
                    group,
                    caller,
                    queued_at,
                    abort: handle,
                },
            );
        }
    }

    pub(super) fn publish_depths(&self) {
        for lane in Lane::ALL {
            let depth = self.queue.len(lane);
            self.stats.queued[lane.index()].store(depth as u64, Ordering::Relaxed);
            if let Some(metrics) = self.executor.metrics() {
                metrics
                    .queue_depth
                    .with_label_values(&[lane.as_str()])
                    .set(depth as i64);
            }
        }
    }
}

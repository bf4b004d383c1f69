//! The periodic resync within the API budget: every group is read again once per
//! `--resync-seconds`, in the bulk lane, spread evenly over the interval rather than
//! queued at once, skipping groups a change passed over recently; a cycle that the
//! budget cannot finish within the interval stretches (the next waits for it) and says
//! so, instead of piling up. The first cycle after gaining the lease is the cold start:
//! its progress is a metric.

use std::time::Duration;

use super::control::Control;
use crate::reconcile::{GroupRef, Lane};

impl Control {
    /// True (and said once, with the metric) while the previous cycle still has groups
    /// queued: the next cycle waits rather than queueing every group again.
    pub(super) fn resync_behind(&mut self) -> bool {
        let queued = self
            .state
            .scheduler
            .as_ref()
            .map_or(0, |(handle, _)| handle.stats().queued(Lane::Bulk));
        let behind = queued > 0;
        if behind && self.metrics.resync_behind.get() == 0 {
            tracing::warn!(
                queued,
                interval_secs = self.resync_interval.as_secs(),
                "the resync cannot read every group within its interval on the API budget; \
                 the cycle is stretched (raise --qps if the account's quota allows, or \
                 --resync-seconds)"
            );
        }
        self.metrics.resync_behind.set(i64::from(behind));
        behind
    }

    /// Hands the collected resync triggers to the scheduler, one bulk pass started per
    /// `interval / groups`.
    pub(super) fn spread_resync(&mut self) {
        let groups = std::mem::take(&mut self.state.bulk);
        let Some((handle, _)) = &self.state.scheduler else {
            return;
        };
        let count = u32::try_from(groups.len().max(1)).unwrap_or(u32::MAX);
        // Leave a tenth of the interval so the cycle ends before the next tick.
        let spacing = self.resync_interval.mul_f64(0.9) / count;
        handle.space_bulk(spacing.min(Duration::from_secs(5)));
        if self.state.cold_start {
            self.state.cycle = groups.iter().cloned().collect();
            self.metrics
                .cold_start_groups
                .set(self.state.cycle.len() as i64);
        }
        for group in groups {
            handle.trigger_in(group, Lane::Bulk);
        }
    }

    /// Notes that `group` was read, for the cold start's progress.
    pub(super) fn cycle_passed(&mut self, group: &GroupRef) {
        if !self.state.cold_start {
            return;
        }
        self.state.cycle.remove(group);
        self.metrics
            .cold_start_groups
            .set(self.state.cycle.len() as i64);
        if self.state.cycle.is_empty() {
            self.state.cold_start = false;
            tracing::info!("cold start done: every group read since gaining the lease");
        }
    }
}

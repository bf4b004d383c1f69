//! The work queue in front of the executor: coalesces triggers, runs one pass per group
//! at a time, and wakes groups again at their drain deadlines or after failures.
//!
//! Passes wait in lanes ([`Lane`](crate::slb::budget::Lane)): work a pod waits on goes before desired-state
//! changes, which go before resync; within a lane Services take turns. The lane of a pass
//! is also the lane its API calls wait in for the budget ([`super::Budget`]), so a pass
//! that started cannot push a more urgent one's calls back either.
//!
//! `handle.rs` is what callers hold (the handle and the counters), `driver.rs` the task's
//! loop (triggers, coalescing, pass results, timers), `lanes.rs` which pass starts next
//! (lanes, fairness between Services, the budget).

mod driver;
mod handle;
mod lanes;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::executor::{Executor, PassOutcome, ReconcileError};
use crate::model::{GroupRef, GroupTarget};
use crate::slb::SlbApi;
use driver::Driver;
pub use handle::{SchedulerHandle, SchedulerStats};

/// Where a pass reads the desired state of a group *when it starts* and again once its
/// read of the group returns, so that all changes seen until then are in one plan
/// (level-triggered: triggers carry no state).
pub trait TargetSource: Send + Sync {
    /// `None` when the group is no longer desired; the pass then does nothing.
    fn target(&self, group: &GroupRef) -> Option<GroupTarget>;
}

/// Hears the end of every pass, with the target it ran for, so the Kubernetes side can
/// open readiness gates and confirm drains from what the SLB now holds. Called on the
/// pass's worker task: implementations must not block (queue the API writes).
pub trait PassObserver: Send + Sync {
    fn pass_finished(
        &self,
        group: &GroupRef,
        target: &GroupTarget,
        result: &Result<PassOutcome, ReconcileError>,
    );

    /// A pass of the pod lane ended `waited` after the group was queued, longer than
    /// [`POD_WORK_DELAY`]: pod-facing work does not fit the API budget, and pods may be
    /// released before their drain is confirmed.
    fn pass_delayed(&self, _group: &GroupRef, _waited: Duration) {}
}

/// How long pod-facing work may take from queue to done before it is said to be late: a
/// pod's drain must fit its grace period (30 s by default) with room to spare.
pub const POD_WORK_DELAY: Duration = Duration::from_secs(10);

/// Scheduler settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchedulerConfig {
    /// Groups reconciled at once in the change and bulk lanes (mutations are still one
    /// per SLB instance); bulk passes take at most half of them, and pod-lane passes may
    /// run this many more, so urgent work always finds a slot.
    pub max_concurrent: usize,
    /// Wait before a failed group is tried again; doubles per consecutive failure.
    pub error_delay: Duration,
    /// Longest wait before a failed group is tried again.
    pub max_error_delay: Duration,
    /// A bulk trigger of a group that passed this recently is dropped (a resync need not
    /// read again what a change just read). Zero keeps every bulk trigger.
    pub bulk_fresh: Duration,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            max_concurrent: 8,
            error_delay: Duration::from_secs(5),
            max_error_delay: Duration::from_secs(300),
            bulk_fresh: Duration::ZERO,
        }
    }
}

/// Starts the scheduler task.
pub fn spawn<A>(
    executor: Arc<Executor<A>>,
    source: Arc<dyn TargetSource>,
    config: SchedulerConfig,
) -> (SchedulerHandle, JoinHandle<()>)
where
    A: SlbApi + ?Sized + 'static,
{
    spawn_observed(executor, source, None, config)
}

/// Starts the scheduler task, telling `observer` the outcome of every pass.
pub fn spawn_observed<A>(
    executor: Arc<Executor<A>>,
    source: Arc<dyn TargetSource>,
    observer: Option<Arc<dyn PassObserver>>,
    config: SchedulerConfig,
) -> (SchedulerHandle, JoinHandle<()>)
where
    A: SlbApi + ?Sized + 'static,
{
    let (tx, rx) = mpsc::unbounded_channel();
    let stats = Arc::new(SchedulerStats::default());
    let driver = Driver::new(executor, source, observer, config, stats.clone());
    let task = tokio::spawn(driver.run(rx));
    (SchedulerHandle::new(tx, stats), task)
}

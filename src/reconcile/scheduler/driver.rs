//! The scheduler's task: takes triggers and coalesces them, hands passes to workers
//! (which pass starts next is `lanes.rs`), and wakes groups again at their deadlines or
//! after failures.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::handle::{Msg, SchedulerStats};
use super::{PassObserver, SchedulerConfig, TargetSource, POD_WORK_DELAY};
use crate::model::GroupRef;
use crate::reconcile::executor::{Executor, PassOutcome, ReconcileError};
use crate::reconcile::queue::LaneQueue;
use crate::slb::budget::{Caller, Lane};
use crate::slb::SlbApi;

/// A pass under way.
pub(super) struct Running {
    pub(super) group: GroupRef,
    /// The pass's lane (raised when more urgent work for its group arrives while it
    /// runs) and place in the budget's queue.
    pub(super) caller: Caller,
    pub(super) queued_at: Instant,
    pub(super) abort: tokio::task::AbortHandle,
}

impl Running {
    pub(super) fn lane(&self) -> Lane {
        self.caller.lane()
    }
}

pub(super) type PassResult = (GroupRef, Result<PassOutcome, ReconcileError>);

pub(super) struct Driver<A: ?Sized> {
    pub(super) executor: Arc<Executor<A>>,
    pub(super) source: Arc<dyn TargetSource>,
    pub(super) observer: Option<Arc<dyn PassObserver>>,
    pub(super) config: SchedulerConfig,
    pub(super) stats: Arc<SchedulerStats>,
    pub(super) queue: LaneQueue,
    pub(super) running: HashMap<tokio::task::Id, Running>,
    /// Groups triggered while their pass runs: they run once more afterwards, in the
    /// most urgent lane asked for.
    pub(super) dirty: HashMap<GroupRef, Lane>,
    pub(super) timers: BTreeSet<(Instant, GroupRef)>,
    pub(super) due: HashMap<GroupRef, (Instant, Lane)>,
    pub(super) failures: HashMap<GroupRef, u32>,
    /// When the oldest change not yet handled by a pass was triggered, per group.
    pub(super) seen: HashMap<GroupRef, Instant>,
    /// The warnings of each group's last pass, logged when they change.
    pub(super) warned: HashMap<GroupRef, Vec<String>>,
    /// When each group's last successful pass ended.
    pub(super) passed: HashMap<GroupRef, Instant>,
    pub(super) bulk_spacing: Duration,
    /// The earliest start of the next bulk pass.
    pub(super) next_bulk: Instant,
    /// Passes were held back because calls already wait for the budget: look again when
    /// the next token is due.
    pub(super) held_for_budget: bool,
    /// Every handle is gone: finish what runs, start nothing.
    pub(super) closed: bool,
}

impl<A: SlbApi + ?Sized + 'static> Driver<A> {
    pub(super) fn new(
        executor: Arc<Executor<A>>,
        source: Arc<dyn TargetSource>,
        observer: Option<Arc<dyn PassObserver>>,
        config: SchedulerConfig,
        stats: Arc<SchedulerStats>,
    ) -> Self {
        Driver {
            executor,
            source,
            observer,
            config,
            stats,
            queue: LaneQueue::default(),
            running: HashMap::new(),
            dirty: HashMap::new(),
            timers: BTreeSet::new(),
            due: HashMap::new(),
            failures: HashMap::new(),
            seen: HashMap::new(),
            warned: HashMap::new(),
            passed: HashMap::new(),
            bulk_spacing: Duration::ZERO,
            next_bulk: Instant::now(),
            held_for_budget: false,
            closed: false,
        }
    }

    pub(super) async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Msg>) {
        let mut workers: JoinSet<PassResult> = JoinSet::new();
        let mut open = true;
        loop {
            self.start_passes(&mut workers);
            self.publish_depths();
            if !open && workers.is_empty() && self.queue.is_empty() {
                return;
            }
            let next_timer = self.next_wake();
            tokio::select! {
                msg = rx.recv(), if open => match msg {
                    Some(msg) => {
                        self.on_msg(msg);
                        // Take the whole burst before starting anything.
                        while let Ok(msg) = rx.try_recv() {
                            self.on_msg(msg);
                        }
                    }
                    None => {
                        open = false;
                        self.closed = true;
                        // Shutting down: nothing queued starts, and resync reads are
                        // dropped at once (passes are level-triggered: the next leader
                        // reads again); running urgent passes get the grace to finish.
                        self.queue = LaneQueue::default();
                        self.timers.clear();
                        self.due.clear();
                        self.dirty.clear();
                        for pass in self.running.values().filter(|p| p.lane() == Lane::Bulk) {
                            pass.abort.abort();
                        }
                    }
                },
                Some(done) = workers.join_next_with_id(), if !workers.is_empty() => {
                    self.finished(done);
                }
                () = sleep_until_opt(next_timer), if next_timer.is_some() => {
                    self.fire_timers();
                }
            }
        }
    }

    fn on_msg(&mut self, msg: Msg) {
        match msg {
            Msg::Trigger(group, lane) => self.triggered(group, lane),
            Msg::BulkSpacing(spacing) => {
                self.bulk_spacing = spacing;
                self.next_bulk = self.next_bulk.min(Instant::now() + spacing);
            }
        }
    }

    /// The next timer, the next bulk start when bulk passes wait for their spacing, or
    /// the next token when passes wait for the budget.
    fn next_wake(&self) -> Option<Instant> {
        let timer = self.timers.first().map(|(at, _)| *at);
        let bulk = (self.queue.len(Lane::Bulk) > 0 && self.next_bulk > Instant::now())
            .then_some(self.next_bulk);
        let budget = self
            .held_for_budget
            .then(|| Instant::now() + self.executor.budget().period());
        [timer, bulk, budget].into_iter().flatten().min()
    }

    fn triggered(&mut self, group: GroupRef, lane: Lane) {
        if lane == Lane::Bulk && self.fresh(&group) {
            self.coalesced();
            return;
        }
        self.seen.entry(group.clone()).or_insert_with(Instant::now);
        if !self.ask(group, lane) {
            self.coalesced();
        }
    }

    /// The group passed within `bulk_fresh`: a resync has nothing to add.
    fn fresh(&self, group: &GroupRef) -> bool {
        !self.config.bulk_fresh.is_zero()
            && self
                .passed
                .get(group)
                .is_some_and(|at| at.elapsed() < self.config.bulk_fresh)
    }

    fn coalesced(&self) {
        self.stats.coalesced.fetch_add(1, Ordering::Relaxed);
        if let Some(metrics) = self.executor.metrics() {
            metrics.coalesced.inc();
        }
    }

    fn finished(&mut self, done: Result<(tokio::task::Id, PassResult), tokio::task::JoinError>) {
        let (group, lane, result) = match done {
            Ok((id, (group, result))) => {
                let lane = self.running.remove(&id).map_or(Lane::Change, |p| {
                    self.note_delay(&p);
                    p.lane()
                });
                (group, lane, Some(result))
            }
            Err(join_error) => {
                let Some(pass) = self.running.remove(&join_error.id()) else {
                    return;
                };
                if !join_error.is_cancelled() {
                    tracing::error!(service = %pass.group.service, port = pass.group.service_port,
                        error = %join_error, "reconcile pass panicked; retrying later");
                }
                {
                    let lane = pass.lane();
                    (pass.group, lane, None)
                }
            }
        };
        let wake = match result {
            Some(Ok(outcome)) => {
                self.failures.remove(&group);
                self.passed.insert(group.clone(), Instant::now());
                // Said once per change: a group whose ENI ids stay unknown (or whose
                // backend stays held) passes again and again with the same warnings.
                if self.warned.get(&group) != Some(&outcome.warnings) {
                    for warning in &outcome.warnings {
                        tracing::warn!(service = %group.service, port = group.service_port, %warning);
                    }
                    if outcome.warnings.is_empty() {
                        self.warned.remove(&group);
                    } else {
                        self.warned.insert(group.clone(), outcome.warnings.clone());
                    }
                }
                // A deadline is a drain window ending (a pod waits for the removal), a
                // held backend's retry or an ENI id to look up for a waiting pod.
                let lane = if outcome.requeue_for_drain {
                    Lane::Drain
                } else {
                    Lane::Pod
                };
                outcome
                    .requeue_at
                    .map(|at| (self.executor.clock().instant_at(at), lane))
            }
            Some(Err(error)) => {
                tracing::warn!(service = %group.service, port = group.service_port,
                    error = %error, "reconcile pass failed; retrying later");
                Some((Instant::now() + self.failure_delay(&group), lane))
            }
            None => Some((Instant::now() + self.failure_delay(&group), lane)),
        };
        if let (Some((at, lane)), false) = (wake, self.closed) {
            self.set_timer(group.clone(), at, lane);
        }
        if let Some(lane) = self.dirty.remove(&group) {
            self.queue.push(group, lane);
        }
    }

    /// Says when a pod-lane pass took longer than [`POD_WORK_DELAY`] from queue to done.
    fn note_delay(&self, pass: &Running) {
        let waited = pass.queued_at.elapsed();
        if !pass.lane().pod_facing() || waited <= POD_WORK_DELAY {
            return;
        }
        if let Some(metrics) = self.executor.metrics() {
            metrics.pod_work_delayed.inc();
        }
        tracing::warn!(service = %pass.group.service, port = pass.group.service_port,
            waited_secs = waited.as_secs(),
            "pod-facing work waited longer than it should for the API budget; pods may be \
             released before their drain is confirmed (raise --qps if the account's quota \
             allows)");
        if let Some(observer) = &self.observer {
            observer.pass_delayed(&pass.group, waited);
        }
    }

    fn failure_delay(&mut self, group: &GroupRef) -> Duration {
        self.stats.failures.fetch_add(1, Ordering::Relaxed);
        let n = self.failures.entry(group.clone()).or_default();
        let delay = self
            .config
            .error_delay
            .saturating_mul(1u32 << (*n).min(16))
            .min(self.config.max_error_delay);
        *n = n.saturating_add(1);
        delay
    }

    fn set_timer(&mut self, group: GroupRef, at: Instant, lane: Lane) {
        if let Some((old, _)) = self.due.insert(group.clone(), (at, lane)) {
            self.timers.remove(&(old, group.clone()));
        }
        self.timers.insert((at, group));
    }

    fn fire_timers(&mut self) {
        let now = Instant::now();
        while let Some((at, group)) = self.timers.first().cloned() {
            if at > now {
                break;
            }
            self.timers.remove(&(at, group.clone()));
            let lane = self.due.remove(&group).map_or(Lane::Change, |(_, l)| l);
            self.ask(group, lane);
        }
    }

    /// Asks for a pass over `group` in `lane`: queued, or once more after the pass under
    /// way. Returns whether that is a pass of its own (not folded into one already
    /// queued or pending).
    fn ask(&mut self, group: GroupRef, lane: Lane) -> bool {
        let Some(pass) = self.running.values().find(|p| p.group == group) else {
            return self.queue.push(group, lane);
        };
        // The pass under way plans from what is wanted once its read returns: what made
        // this urgent is likely in it, so its calls wait in this lane.
        if lane < pass.caller.lane() {
            pass.caller.raise(lane);
            self.executor.budget().nudge();
        }
        let entry = self.dirty.entry(group).or_insert(lane);
        *entry = (*entry).min(lane);
        false
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

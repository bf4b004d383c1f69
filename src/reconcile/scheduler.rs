//! The work queue in front of the executor: coalesces triggers, runs one pass per group
//! at a time, and wakes groups again at their drain deadlines or after failures.
//!
//! Passes wait in lanes ([`Lane`]): work a pod waits on goes before desired-state
//! changes, which go before resync; within a lane Services take turns. The lane of a pass
//! is also the lane its API calls wait in for the budget ([`super::Budget`]), so a pass
//! that started cannot push a more urgent one's calls back either.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use super::executor::{Executor, PassOutcome, ReconcileError};
use super::metrics::CHANGE_SEEN;
use super::queue::LaneQueue;
use crate::model::{GroupRef, GroupTarget, ServiceRef};
use crate::slb::budget::{Caller, Lane, CALLER};
use crate::slb::SlbApi;

/// Where a pass reads the desired state of a group *when it starts*, so that all changes
/// seen until then are in one plan (level-triggered: triggers carry no state).
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

/// A pass under way.
struct Running {
    group: GroupRef,
    lane: Lane,
    queued_at: Instant,
    abort: tokio::task::AbortHandle,
}

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

/// Counters of the scheduler, for tests and metrics.
#[derive(Debug, Default)]
pub struct SchedulerStats {
    triggers: AtomicU64,
    coalesced: AtomicU64,
    passes: AtomicU64,
    failures: AtomicU64,
    /// Groups queued per lane, as the driver last saw them.
    queued: [AtomicU64; 3],
    /// Passes started per lane.
    started: [AtomicU64; 3],
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
enum Msg {
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
    let driver = Driver {
        executor,
        source,
        observer,
        config,
        stats: stats.clone(),
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
    };
    let task = tokio::spawn(driver.run(rx));
    (SchedulerHandle { tx, stats }, task)
}

type PassResult = (GroupRef, Result<PassOutcome, ReconcileError>);

struct Driver<A: ?Sized> {
    executor: Arc<Executor<A>>,
    source: Arc<dyn TargetSource>,
    observer: Option<Arc<dyn PassObserver>>,
    config: SchedulerConfig,
    stats: Arc<SchedulerStats>,
    queue: LaneQueue,
    running: HashMap<tokio::task::Id, Running>,
    /// Groups triggered while their pass runs: they run once more afterwards, in the
    /// most urgent lane asked for.
    dirty: HashMap<GroupRef, Lane>,
    timers: BTreeSet<(Instant, GroupRef)>,
    due: HashMap<GroupRef, (Instant, Lane)>,
    failures: HashMap<GroupRef, u32>,
    /// When the oldest change not yet handled by a pass was triggered, per group.
    seen: HashMap<GroupRef, Instant>,
    /// The warnings of each group's last pass, logged when they change.
    warned: HashMap<GroupRef, Vec<String>>,
    /// When each group's last successful pass ended.
    passed: HashMap<GroupRef, Instant>,
    bulk_spacing: Duration,
    /// The earliest start of the next bulk pass.
    next_bulk: Instant,
    /// Passes were held back because calls already wait for the budget: look again when
    /// the next token is due.
    held_for_budget: bool,
    /// Every handle is gone: finish what runs, start nothing.
    closed: bool,
}

/// Calls that may wait for the budget in a lane and the lanes before it before no more
/// change or bulk passes start: they would only line up behind them.
const MAX_WAITING_CALLS: usize = 2;

impl<A: SlbApi + ?Sized + 'static> Driver<A> {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Msg>) {
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
                        for pass in self.running.values().filter(|p| p.lane == Lane::Bulk) {
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
        let pending = if self.running.values().any(|p| p.group == group) {
            let entry = self.dirty.entry(group).or_insert(lane);
            let was = *entry;
            *entry = was.min(lane);
            true
        } else {
            !self.queue.push(group, lane)
        };
        if pending {
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

    /// Whether a pass of `lane` for `service` may start with what runs now.
    ///
    /// Pod-lane passes may use twice the slots, and a Service with nothing running may
    /// start one beyond that: urgent work always finds a slot, and one Service's burst
    /// cannot hold all of them. Change and bulk passes do not start while calls already
    /// wait for the budget (they would only line up), and bulk passes take at most half
    /// the slots, at their spacing.
    fn may_start(&self, lane: Lane, service: &ServiceRef, waiting: &[usize; 3]) -> bool {
        let max = self.config.max_concurrent.max(1);
        let running = self.running.len();
        let mine = self
            .running
            .values()
            .filter(|p| &p.group.service == service)
            .count();
        let queued_calls: usize = waiting[..=lane.index()].iter().sum();
        match lane {
            Lane::Pod => (running < 2 * max && mine < max) || (mine == 0 && running < 4 * max),
            Lane::Change => {
                running < max && mine < (max / 2).max(1) && queued_calls < MAX_WAITING_CALLS
            }
            Lane::Bulk => {
                let bulk = self
                    .running
                    .values()
                    .filter(|p| p.lane == Lane::Bulk)
                    .count();
                running < max
                    && bulk < (max / 2).max(1)
                    && queued_calls < MAX_WAITING_CALLS
                    && Instant::now() >= self.next_bulk
            }
        }
    }

    fn start_passes(&mut self, workers: &mut JoinSet<PassResult>) {
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
                        let result = executor.reconcile(&target).await;
                        if let Some(observer) = &observer {
                            observer.pass_finished(&key, &target, &result);
                        }
                        result
                    }
                    None => Ok(PassOutcome::default()),
                };
                (key, result)
            });
            let caller = Caller {
                lane,
                service: group.service.to_string().into(),
            };
            let handle = workers.spawn(CALLER.scope(caller, pass));
            self.running.insert(
                handle.id(),
                Running {
                    group,
                    lane,
                    queued_at,
                    abort: handle,
                },
            );
        }
    }

    fn publish_depths(&self) {
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

    fn finished(&mut self, done: Result<(tokio::task::Id, PassResult), tokio::task::JoinError>) {
        let (group, lane, result) = match done {
            Ok((id, (group, result))) => {
                let lane = self.running.remove(&id).map_or(Lane::Change, |p| {
                    self.note_delay(&p);
                    p.lane
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
                (pass.group, pass.lane, None)
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
                outcome
                    .requeue_at
                    .map(|at| (self.executor.clock().instant_at(at), Lane::Pod))
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
        if pass.lane != Lane::Pod || waited <= POD_WORK_DELAY {
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
            if self.running.values().any(|p| p.group == group) {
                let entry = self.dirty.entry(group).or_insert(lane);
                *entry = (*entry).min(lane);
            } else {
                self.queue.push(group, lane);
            }
        }
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

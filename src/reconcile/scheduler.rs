//! The work queue in front of the executor: coalesces triggers, runs one pass per group
//! at a time, and wakes groups again at their drain deadlines or after failures.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use super::executor::{Executor, GroupTarget, PassOutcome, ReconcileError};
use super::metrics::CHANGE_SEEN;
use crate::slb::SlbApi;

/// One vServer group of one Service: what triggers name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupRef {
    /// `<namespace>/<name>`.
    pub service: String,
    pub service_port: u16,
    /// `Some("<lb-id>/<group id or name>")` for a group the Service's port no longer
    /// points at (its `id` or `vgroup-port` annotation changed): passes over it drain and
    /// empty the agent's backends there, so the move leaks nothing.
    pub retired: Option<String>,
}

impl GroupRef {
    /// The group a Service's port points at now.
    pub fn new(service: impl Into<String>, service_port: u16) -> Self {
        Self {
            service: service.into(),
            service_port,
            retired: None,
        }
    }
}

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
}

/// Scheduler settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchedulerConfig {
    /// Groups reconciled at once (mutations are still one per SLB instance).
    pub max_concurrent: usize,
    /// Wait before a failed group is tried again; doubles per consecutive failure.
    pub error_delay: Duration,
    /// Longest wait before a failed group is tried again.
    pub max_error_delay: Duration,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            max_concurrent: 8,
            error_delay: Duration::from_secs(5),
            max_error_delay: Duration::from_secs(300),
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
}

/// Sends triggers to a running scheduler. Dropping every handle stops the scheduler once
/// its running passes finish.
#[derive(Debug, Clone)]
pub struct SchedulerHandle {
    tx: mpsc::UnboundedSender<GroupRef>,
    stats: Arc<SchedulerStats>,
}

impl SchedulerHandle {
    /// Asks for a pass over `group`. Cheap: many triggers before the pass starts, or
    /// while one runs, cost one pass.
    pub fn trigger(&self, group: GroupRef) {
        self.stats.triggers.fetch_add(1, Ordering::Relaxed);
        // A closed channel means the scheduler stopped: nothing is left to do.
        let _ = self.tx.send(group);
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
        queue: VecDeque::new(),
        queued: HashSet::new(),
        running: HashMap::new(),
        dirty: HashSet::new(),
        timers: BTreeSet::new(),
        due: HashMap::new(),
        failures: HashMap::new(),
        seen: HashMap::new(),
        warned: HashMap::new(),
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
    queue: VecDeque<GroupRef>,
    queued: HashSet<GroupRef>,
    running: HashMap<tokio::task::Id, GroupRef>,
    /// Groups triggered while their pass runs: they run once more afterwards.
    dirty: HashSet<GroupRef>,
    timers: BTreeSet<(Instant, GroupRef)>,
    due: HashMap<GroupRef, Instant>,
    failures: HashMap<GroupRef, u32>,
    /// When the oldest change not yet handled by a pass was triggered, per group.
    seen: HashMap<GroupRef, Instant>,
    /// The warnings of each group's last pass, logged when they change.
    warned: HashMap<GroupRef, Vec<String>>,
}

impl<A: SlbApi + ?Sized + 'static> Driver<A> {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<GroupRef>) {
        let mut workers: JoinSet<PassResult> = JoinSet::new();
        let mut open = true;
        loop {
            self.start_passes(&mut workers);
            if !open && workers.is_empty() && self.queue.is_empty() {
                return;
            }
            let next_timer = self.timers.first().map(|(at, _)| *at);
            tokio::select! {
                msg = rx.recv(), if open => match msg {
                    Some(group) => {
                        self.triggered(group);
                        // Take the whole burst before starting anything.
                        while let Ok(group) = rx.try_recv() {
                            self.triggered(group);
                        }
                    }
                    None => open = false,
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

    fn triggered(&mut self, group: GroupRef) {
        self.seen.entry(group.clone()).or_insert_with(Instant::now);
        let pending = if self.running.values().any(|g| *g == group) {
            !self.dirty.insert(group)
        } else {
            !self.enqueue(group)
        };
        if pending {
            self.stats.coalesced.fetch_add(1, Ordering::Relaxed);
            if let Some(metrics) = self.executor.metrics() {
                metrics.coalesced.inc();
            }
        }
    }

    /// Queues `group` unless it is queued already; true when it was added.
    fn enqueue(&mut self, group: GroupRef) -> bool {
        if self.queued.insert(group.clone()) {
            self.queue.push_back(group);
            true
        } else {
            false
        }
    }

    fn start_passes(&mut self, workers: &mut JoinSet<PassResult>) {
        while self.running.len() < self.config.max_concurrent.max(1) {
            let Some(group) = self.queue.pop_front() else {
                return;
            };
            self.queued.remove(&group);
            // A pass now supersedes a pending wake-up; it sets its own.
            if let Some(at) = self.due.remove(&group) {
                self.timers.remove(&(at, group.clone()));
            }
            self.stats.passes.fetch_add(1, Ordering::Relaxed);
            let executor = self.executor.clone();
            let source = self.source.clone();
            let observer = self.observer.clone();
            let key = group.clone();
            let seen = std::cell::Cell::new(self.seen.remove(&group));
            let handle = workers.spawn(CHANGE_SEEN.scope(seen, async move {
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
            }));
            self.running.insert(handle.id(), group);
        }
    }

    fn finished(&mut self, done: Result<(tokio::task::Id, PassResult), tokio::task::JoinError>) {
        let (group, result) = match done {
            Ok((id, (group, result))) => {
                self.running.remove(&id);
                (group, Some(result))
            }
            Err(join_error) => {
                let Some(group) = self.running.remove(&join_error.id()) else {
                    return;
                };
                tracing::error!(service = %group.service, port = group.service_port,
                    error = %join_error, "reconcile pass panicked; retrying later");
                (group, None)
            }
        };
        let wake = match result {
            Some(Ok(outcome)) => {
                self.failures.remove(&group);
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
                outcome
                    .requeue_at
                    .map(|at| self.executor.clock().instant_at(at))
            }
            Some(Err(error)) => {
                tracing::warn!(service = %group.service, port = group.service_port,
                    error = %error, "reconcile pass failed; retrying later");
                Some(Instant::now() + self.failure_delay(&group))
            }
            None => Some(Instant::now() + self.failure_delay(&group)),
        };
        if let Some(at) = wake {
            self.set_timer(group.clone(), at);
        }
        if self.dirty.remove(&group) {
            self.enqueue(group);
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

    fn set_timer(&mut self, group: GroupRef, at: Instant) {
        if let Some(old) = self.due.insert(group.clone(), at) {
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
            self.due.remove(&group);
            if self.running.values().any(|g| *g == group) {
                self.dirty.insert(group);
            } else {
                self.enqueue(group);
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

//! Runs step plans against the SLB, level-triggered: every pass reads the group, plans
//! from what it read, and after any failure reads and plans again.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use jiff::Timestamp;

use super::clock::Clock;
use super::journal::DrainJournal;
use super::limits::{ApiLimits, Gate};
use super::metrics::ReconcileMetrics;
use crate::model::{BackendKey, DesiredGroup, ObservedGroup, SlbBackend};
use crate::plan::{
    members_after, plan_group, DrainLedger, GroupPlan, PlanConfig, Step, StepAction, MAX_BATCH,
};
use crate::slb::{ErrorClass, SlbApi, SlbError};

/// One vServer group as the executor should make it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupTarget {
    pub load_balancer_id: String,
    pub desired: DesiredGroup,
    /// See [`crate::model::LbSpec::drain_window_secs`].
    pub drain_window: Duration,
}

/// Executor settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutorConfig {
    pub limits: ApiLimits,
    /// Backends per write call (the SLB allows 20).
    pub max_batch: usize,
    /// Re-reads and re-plans after failures within one pass before giving up (the
    /// scheduler tries again later).
    pub max_replans: usize,
    /// When desired ENI backends could not be added for want of an ENI id, look again
    /// after this long (the ENI usually appears within seconds of the pod IP).
    pub unresolved_eni_retry: Duration,
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        ExecutorConfig {
            limits: ApiLimits::default(),
            max_batch: MAX_BATCH,
            max_replans: 3,
            unresolved_eni_retry: Duration::from_secs(10),
        }
    }
}

/// What one successful pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassOutcome {
    /// The group reconciled; `None` when there was no group and nothing to add.
    pub v_server_group_id: Option<String>,
    /// SLB write calls that succeeded.
    pub steps_applied: usize,
    /// Re-reads after failures before the pass converged.
    pub replans: usize,
    /// When the group must be looked at again: the earliest pending drain deadline, or
    /// sooner when ENI ids were missing.
    pub requeue_at: Option<Timestamp>,
    pub warnings: Vec<String>,
    pub unresolved_eni_ips: Vec<IpAddr>,
    /// The group's members (owned and foreign) as they stand after this pass's steps:
    /// what readiness gates and drain confirmations are decided from.
    pub backends: Vec<SlbBackend>,
}

/// A pass that did not converge; the scheduler retries the group later.
#[derive(Debug, thiserror::Error)]
#[error(
    "reconciling vServer group {group} of SLB {load_balancer_id} failed after {replans} \
     re-plan(s): {source}"
)]
pub struct ReconcileError {
    /// The group's owner Description.
    pub group: String,
    pub load_balancer_id: String,
    pub replans: usize,
    #[source]
    pub source: SlbError,
}

impl ReconcileError {
    pub fn class(&self) -> ErrorClass {
        self.source.class
    }
}

/// Runs plans through an [`SlbApi`] with the hygiene of DESIGN.md §2: token bucket, call
/// timeouts, one mutation in flight per SLB instance, retries of idempotent calls.
///
/// `AddVServerGroupBackendServers` is not idempotent (adding a member twice is an error),
/// so a failed add is never retried as is: the group is read again and planned again,
/// which also covers an add that was applied although its answer was lost.
pub struct Executor<A: ?Sized> {
    pub(super) api: Arc<A>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) config: ExecutorConfig,
    pub(super) gate: Gate,
    pub(super) ledger: Mutex<DrainLedger>,
    pub(super) eni_ids: Mutex<HashMap<IpAddr, String>>,
    pub(super) group_ids: Mutex<HashMap<(String, String), String>>,
    metrics: Option<ReconcileMetrics>,
    journal: Option<Arc<dyn DrainJournal>>,
    /// Owned (active, draining) backends per group id, for the `slb_sync_backends` gauge.
    backend_counts: Mutex<HashMap<String, (i64, i64)>>,
}

/// Seeds an executor's drain ledger; object-safe so the pod side can restore drain start
/// times persisted on pods without knowing the executor's SLB client type.
pub trait LedgerRestore {
    fn restore_ledger(&self, ledger: DrainLedger);
}

impl<A: SlbApi + ?Sized> LedgerRestore for Executor<A> {
    fn restore_ledger(&self, ledger: DrainLedger) {
        Executor::restore_ledger(self, ledger);
    }
}

pub(super) struct Failure {
    pub(super) error: SlbError,
    /// A read failed permanently: planning again cannot help.
    pub(super) fatal: bool,
}

impl<A: SlbApi + ?Sized> Executor<A> {
    pub fn new(api: Arc<A>, clock: Arc<dyn Clock>, config: ExecutorConfig) -> Self {
        Executor {
            api,
            clock,
            gate: Gate::new(config.limits.clone()),
            config,
            ledger: Mutex::new(DrainLedger::new()),
            eni_ids: Mutex::new(HashMap::new()),
            group_ids: Mutex::new(HashMap::new()),
            metrics: None,
            journal: None,
            backend_counts: Mutex::new(HashMap::new()),
        }
    }

    /// Records steps, passes, drains and latencies in `metrics`.
    pub fn with_metrics(mut self, metrics: ReconcileMetrics) -> Self {
        self.gate.metrics = Some(metrics.clone());
        self.metrics = Some(metrics);
        self
    }

    /// Reports every drain start and end to `journal` (see [`DrainJournal`]).
    pub fn with_journal(mut self, journal: Arc<dyn DrainJournal>) -> Self {
        self.journal = Some(journal);
        self
    }

    pub fn metrics(&self) -> Option<&ReconcileMetrics> {
        self.metrics.as_ref()
    }

    /// The drains this executor knows of (what a restart would lose unless persisted).
    pub fn ledger(&self) -> DrainLedger {
        lock(&self.ledger).clone()
    }

    /// Seeds the ledger, e.g. from drain start times persisted on pods.
    pub fn restore_ledger(&self, ledger: DrainLedger) {
        *lock(&self.ledger) = ledger;
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Reads the group, plans and runs the steps in order; after a failure reads and
    /// plans again (up to `max_replans` times, waiting with backoff in between).
    ///
    /// Passes over the same group must not overlap (the scheduler runs one at a time per
    /// group); passes over different groups may, and share the instance locks.
    pub async fn reconcile(&self, target: &GroupTarget) -> Result<PassOutcome, ReconcileError> {
        let mut delays = self.gate.replan_delays();
        let mut replans = 0;
        loop {
            match self.pass(target).await {
                Ok(mut outcome) => {
                    outcome.replans = replans;
                    self.count_pass("ok");
                    return Ok(outcome);
                }
                Err(failure) => {
                    tracing::warn!(
                        group = %target.desired.name,
                        load_balancer_id = %target.load_balancer_id,
                        error = %failure.error,
                        replans,
                        "SLB step failed; reading the group again"
                    );
                    if failure.fatal || replans >= self.config.max_replans {
                        self.count_pass("error");
                        return Err(ReconcileError {
                            group: target.desired.name.to_string(),
                            load_balancer_id: target.load_balancer_id.clone(),
                            replans,
                            source: failure.error,
                        });
                    }
                    replans += 1;
                    let mut delay = delays.next().unwrap_or(self.gate.limits().retry_max_delay);
                    if failure.error.class == ErrorClass::Throttling {
                        delay = delay.saturating_mul(self.gate.limits().throttle_factor.max(1));
                    }
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    async fn pass(&self, target: &GroupTarget) -> Result<PassOutcome, Failure> {
        let Some(group_id) = self.resolve_group(target).await? else {
            return Ok(PassOutcome::default());
        };
        let observed = self
            .gate
            .retried("DescribeVServerGroupAttribute", || {
                self.api.describe_vserver_group(&group_id)
            })
            .await
            .map_err(|error| {
                if target.desired.v_server_group_id.is_none() {
                    // A cached id of a group deleted behind our back: find it again next time.
                    self.forget_group(target);
                }
                read_failure(error)
            })?;
        self.resolve_eni_ids(&target.desired, &observed.backends)
            .await?;

        let now = self.clock.now();
        let plan = {
            let ledger = lock(&self.ledger);
            let eni_ids = lock(&self.eni_ids);
            let config = PlanConfig {
                drain_window: target.drain_window,
                max_batch: self.config.max_batch,
            };
            plan_group(
                &target.desired,
                Some(&observed),
                &ledger,
                &eni_ids,
                config,
                now,
            )
        };
        self.apply_ledger_without_steps(&group_id, &plan);

        let mut applied = 0;
        for step in &plan.steps {
            let lock = self.gate.instance_lock(&target.load_balancer_id);
            let guard = lock.lock().await;
            let result = match step.action {
                StepAction::Add => {
                    self.gate
                        .once(
                            "AddVServerGroupBackendServers",
                            self.api.add_backends(&group_id, &step.backends),
                        )
                        .await
                }
                StepAction::SetWeight => {
                    self.gate
                        .retried("SetVServerGroupAttribute", || {
                            self.api.set_backends(&group_id, &step.backends)
                        })
                        .await
                }
                StepAction::Remove => {
                    self.gate
                        .retried("RemoveVServerGroupBackendServers", || {
                            self.api.remove_backends(&group_id, &step.backends)
                        })
                        .await
                }
            };
            drop(guard);
            if let Some(metrics) = &self.metrics {
                let result = if result.is_ok() { "ok" } else { "error" };
                metrics
                    .steps
                    .with_label_values(&[step.action.as_str(), result])
                    .inc();
            }
            if let Err(error) = result {
                // What ran is on the SLB; the gauge catches up with the next read.
                return Err(Failure {
                    error,
                    fatal: false,
                });
            }
            applied += 1;
            self.record_step(&group_id, step.action, &step.backends);
        }
        self.count_backends(&group_id, &observed, &target.desired, &plan.steps);

        // Drains started by this pass count from when the SLB confirmed weight 0, a little
        // after the plan's `now`: take the deadlines from the ledger, not the plan.
        let mut requeue_at = self.next_deadline(&group_id, target.drain_window, now);
        if !plan.unresolved_eni_ips.is_empty() {
            let retry = now
                .checked_add(self.config.unresolved_eni_retry)
                .unwrap_or(Timestamp::MAX);
            requeue_at = Some(requeue_at.map_or(retry, |at| at.min(retry)));
        }
        Ok(PassOutcome {
            v_server_group_id: Some(group_id),
            steps_applied: applied,
            replans: 0,
            requeue_at,
            warnings: plan.warnings,
            unresolved_eni_ips: plan.unresolved_eni_ips,
            backends: members_after(observed.backends, &plan.steps),
        })
    }

    /// Ledger changes that no step stands for: drains of backends found at weight 0
    /// (their window starts at the plan's `now`) and entries of backends gone or restored
    /// without a write.
    fn apply_ledger_without_steps(&self, group_id: &str, plan: &GroupPlan) {
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

    fn start_drain(
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

    fn end_drain(
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

    /// The earliest drain deadline of the group's ledger entries (never before a second
    /// from `now`, so a deadline that passed cannot spin the scheduler).
    fn next_deadline(&self, group_id: &str, window: Duration, now: Timestamp) -> Option<Timestamp> {
        let floor = now
            .checked_add(Duration::from_secs(1))
            .unwrap_or(Timestamp::MAX);
        lock(&self.ledger)
            .group(group_id)
            .map(|(_, start)| start.checked_add(window).unwrap_or(Timestamp::MAX))
            .min()
            .map(|deadline| deadline.max(floor))
    }

    fn count_pass(&self, result: &str) {
        if let Some(metrics) = &self.metrics {
            metrics.passes.with_label_values(&[result]).inc();
        }
    }

    /// Updates `slb_sync_backends` with the group as it is after a successful pass.
    fn count_backends(
        &self,
        group_id: &str,
        observed: &ObservedGroup,
        desired: &DesiredGroup,
        steps: &[Step],
    ) {
        let Some(metrics) = &self.metrics else { return };
        let mut weights: HashMap<BackendKey, u8> = observed
            .backends
            .iter()
            .filter(|b| desired.name.owns(&b.description))
            .filter_map(|b| Some((b.key()?, b.weight.get())))
            .collect();
        for step in steps {
            for b in &step.backends {
                let Some(key) = b.key() else { continue };
                match step.action {
                    StepAction::Add | StepAction::SetWeight => {
                        weights.insert(key, b.weight.get());
                    }
                    StepAction::Remove => {
                        weights.remove(&key);
                    }
                }
            }
        }
        let active = weights.values().filter(|w| **w > 0).count() as i64;
        let draining = weights.len() as i64 - active;
        let mut counts = lock(&self.backend_counts);
        counts.insert(group_id.to_owned(), (active, draining));
        let (all_active, all_draining) = counts
            .values()
            .fold((0, 0), |(a, d), (x, y)| (a + x, d + y));
        metrics
            .backends
            .with_label_values(&["active"])
            .set(all_active);
        metrics
            .backends
            .with_label_values(&["draining"])
            .set(all_draining);
    }

    /// Ledger changes of a step that succeeded: a drain starts when the SLB confirmed
    /// weight 0 (not when it was planned), and ends with removal or a restored weight.
    fn record_step(&self, group_id: &str, action: StepAction, backends: &[SlbBackend]) {
        let now = self.clock.now();
        let mut ledger = lock(&self.ledger);
        for backend in backends {
            let Some(key) = backend.key() else { continue };
            match action {
                StepAction::SetWeight if backend.weight.get() == 0 => {
                    self.start_drain(&mut ledger, group_id, &key, now)
                }
                StepAction::SetWeight => {
                    self.end_drain(&mut ledger, group_id, &key);
                }
                StepAction::Remove => {
                    let started = self.end_drain(&mut ledger, group_id, &key);
                    if let (Some(metrics), Some(started)) = (&self.metrics, started) {
                        let drained = now.duration_since(started).as_secs_f64().max(0.0);
                        metrics.drain_duration.observe(drained);
                    }
                }
                StepAction::Add => {}
            }
        }
    }
}

pub(super) fn read_failure(error: SlbError) -> Failure {
    Failure {
        fatal: error.class == ErrorClass::Permanent,
        error,
    }
}

/// A poisoned lock only means another task panicked mid-update of plain data; the data
/// is still the best we have.
pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

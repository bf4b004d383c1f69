//! Runs step plans against the SLB, level-triggered: every pass reads the group, plans
//! from what it read, and after any failure reads and plans again.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use jiff::Timestamp;

use super::clock::Clock;
use super::health::{GroupHealthSource, HEALTH_RECHECK};
use super::journal::DrainJournal;
use super::last_read::LastReads;
use super::limits::{ApiLimits, Gate};
use super::listener_reads::ListenerReads;
use super::metrics::ReconcileMetrics;
pub use super::outcome::{PassOutcome, QuarantinedBackend, ReconcileError};
use crate::model::{BackendKey, DesiredGroup, GroupTarget, ObservedGroup, SlbBackend};
use crate::plan::{
    members_after, DrainLedger, GroupPlan, HoldPolicy, Quarantine, Step, StepAction, WarmUp,
    MAX_BATCH,
};
use crate::slb::budget::{current_caller, current_lane, Lane};
use crate::slb::{ErrorClass, SlbApi, SlbError};

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
    /// after this long (the ENI usually appears within seconds of the pod IP); each
    /// further miss of the same IP doubles the wait, up to 5 minutes.
    pub unresolved_eni_retry: Duration,
    /// How long a backend the SLB refuses is held out of plans before it is tried again
    /// (see [`crate::plan::Quarantine`]).
    pub hold: HoldPolicy,
    /// A pass of the drain or pod lane plans from the group as the previous such pass
    /// left it when that pass's read is younger than this (see `last_read.rs`); zero
    /// reads on every pass.
    pub reuse_read: Duration,
    /// How long the SLB may take to carry a write to its forwarders (see
    /// [`PlanConfig::propagation`]).
    pub slb_propagation: Duration,
    /// A node backend rises above weight 0 only this long after the agent first wanted
    /// it to: kube-proxy's time to program the node (see [`WarmUp`]).
    pub kube_proxy_allowance: Duration,
}

/// Plans per pass: the first, and one more after each step whose refused backends were
/// held out (each round holds at least one more backend, so this only bounds a pathology).
const MAX_ROUNDS: usize = 8;

impl Default for ExecutorConfig {
    fn default() -> Self {
        ExecutorConfig {
            limits: ApiLimits::default(),
            max_batch: MAX_BATCH,
            max_replans: 3,
            unresolved_eni_retry: Duration::from_secs(10),
            hold: HoldPolicy::default(),
            reuse_read: Duration::ZERO,
            slb_propagation: Duration::ZERO,
            kube_proxy_allowance: Duration::ZERO,
        }
    }
}

/// Runs plans through an [`SlbApi`] (docs/architecture.md, "API hygiene"): token bucket, call
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
    pub(super) quarantine: Mutex<Quarantine>,
    /// Node backends waiting out the kube-proxy allowance before taking traffic.
    pub(super) warm_up: Mutex<WarmUp>,
    /// When this agent last added each member, per group (see
    /// [`Self::health_since_joins`]).
    pub(super) joined: Mutex<HashMap<(String, BackendKey), Timestamp>>,
    /// Pod IPs the ENI lookup did not find, with when to look again.
    pub(super) eni_misses: Mutex<HashMap<IpAddr, super::resolve::EniMiss>>,
    pub(super) metrics: Option<ReconcileMetrics>,
    pub(super) journal: Option<Arc<dyn DrainJournal>>,
    /// Owned (active, draining) backends per group id, for the `slb_sync_backends` gauge.
    backend_counts: Mutex<HashMap<String, (i64, i64)>>,
    last_reads: LastReads,
    pub(super) listener_reads: ListenerReads,
    /// The listeners' health checks, when the agent reads them (`--gate-on healthy`).
    pub(super) health: Option<Arc<dyn GroupHealthSource>>,
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
        let api_budget = api.budget();
        Executor {
            api,
            clock,
            gate: Gate::new(config.limits.clone(), api_budget),
            config,
            ledger: Mutex::new(DrainLedger::new()),
            eni_ids: Mutex::new(HashMap::new()),
            group_ids: Mutex::new(HashMap::new()),
            quarantine: Mutex::new(Quarantine::new()),
            warm_up: Mutex::new(WarmUp::default()),
            joined: Mutex::new(HashMap::new()),
            eni_misses: Mutex::new(HashMap::new()),
            metrics: None,
            journal: None,
            backend_counts: Mutex::new(HashMap::new()),
            last_reads: LastReads::default(),
            listener_reads: ListenerReads::default(),
            health: None,
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

    /// The API budget every call of this executor waits for.
    pub fn budget(&self) -> &Arc<super::Budget> {
        &self.gate.budget
    }

    /// Reads the group, plans and runs the steps in order; after a failure reads and
    /// plans again (up to `max_replans` times, waiting with backoff in between).
    ///
    /// Passes over the same group must not overlap (the scheduler runs one at a time per
    /// group); passes over different groups may, and share the instance locks.
    pub async fn reconcile(&self, target: &GroupTarget) -> Result<PassOutcome, ReconcileError> {
        self.reconcile_latest(target.clone(), &|| None).await.0
    }

    /// [`Self::reconcile`], planning from `latest()` once the group has been read: the
    /// changes seen while the pass waited for the API budget (the rest of a burst of pod
    /// events) join this pass instead of costing one more. Returns the target the pass
    /// planned for last.
    pub async fn reconcile_latest(
        &self,
        mut target: GroupTarget,
        latest: &(dyn Fn() -> Option<GroupTarget> + Send + Sync),
    ) -> (Result<PassOutcome, ReconcileError>, GroupTarget) {
        let result = self.converge(&mut target, latest).await;
        (result, target)
    }

    async fn converge(
        &self,
        target: &mut GroupTarget,
        latest: &(dyn Fn() -> Option<GroupTarget> + Send + Sync),
    ) -> Result<PassOutcome, ReconcileError> {
        let mut delays = self.gate.replan_delays();
        let mut replans = 0;
        loop {
            match self.pass(target, latest).await {
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

    async fn pass(
        &self,
        target: &mut GroupTarget,
        latest: &(dyn Fn() -> Option<GroupTarget> + Send + Sync),
    ) -> Result<PassOutcome, Failure> {
        let _wanted = self.want_listeners(&target.load_balancer_id);
        let Some((group_id, listened)) = self.resolve_group(target).await? else {
            return Ok(PassOutcome::default());
        };
        let result = self
            .pass_over(target, latest, group_id.clone(), listened)
            .await;
        if result.is_err() {
            // What the group holds is no longer known: the next pass reads it.
            self.last_reads.forget(&group_id);
        }
        result
    }

    async fn pass_over(
        &self,
        target: &mut GroupTarget,
        latest: &(dyn Fn() -> Option<GroupTarget> + Send + Sync),
        group_id: String,
        listened: Option<bool>,
    ) -> Result<PassOutcome, Failure> {
        let reuse = if current_lane().pod_facing() {
            self.config.reuse_read
        } else {
            Duration::ZERO
        };
        let (observed, read_at) = match self.last_reads.fresh(&group_id, reuse) {
            Some(last) => last,
            None => {
                let observed = self
                    .gate
                    .retried("DescribeVServerGroupAttribute", || {
                        self.api.describe_vserver_group(&group_id)
                    })
                    .await
                    .map_err(|error| {
                        if target.desired.v_server_group_id.is_none() {
                            // A cached id of a group deleted behind our back: find it
                            // again next time.
                            self.forget_group(target);
                        }
                        read_failure(error)
                    })?;
                self.notice_drift(&group_id, &target.desired, &observed);
                (observed, tokio::time::Instant::now())
            }
        };
        // Whether the listeners check health decides whether a drain waits for a
        // replacement's health (read once per instance, on the first drain).
        self.learn_listeners_for_drain(&target.load_balancer_id)
            .await;
        // The reads may have waited seconds for the budget: plan for what is wanted now,
        // as long as it is still this group (in a burst, the endpoints of the Service's
        // other terminating pods arrive while the first one's pass waits).
        if let Some(newer) = latest().filter(|t| {
            t.load_balancer_id == target.load_balancer_id && t.desired.name == target.desired.name
        }) {
            *target = newer;
        }
        let target = &*target;
        // A drain pass lowers weights before it looks up the ENI ids of pods to add: the
        // lookup is for the adds, which wait behind other groups' drains anyway (a plan
        // without the ids keeps the leaving backends serving when they are all the group
        // has, and the round after the lookup adds first as usual).
        let mut lookup_pending = current_lane() == Lane::Drain;
        if !lookup_pending {
            self.resolve_eni_ids(&target.desired, &observed.backends)
                .await?;
        }
        let now = self.clock.now();
        let mut members = observed.backends.clone();
        let mut applied = 0;
        let mut quarantined = Vec::new();
        let mut plan = GroupPlan::default();
        let mut warm_until = None;
        // Each round after the first follows a step whose refused backends were held
        // out, or a drain pass's ENI lookup: the rest of the group is planned again from
        // what is now known to be on the SLB (no re-read), so make before break is judged
        // without the refused backends and with the looked-up ones.
        for _round in 0..MAX_ROUNDS {
            (plan, warm_until) = self.plan(target, &group_id, &observed, &members, now);
            self.apply_ledger_without_steps(&group_id, &plan);
            let mut refused_any = false;
            for step in &plan.steps {
                if plan.drains_first && step.action == StepAction::Add {
                    // The drain is on the SLB; the adds wait their turn behind other
                    // groups' drains.
                    if let Some(caller) = current_caller() {
                        caller.lower_to(Lane::Pod);
                    }
                }
                let run = self
                    .run_step(
                        &target.load_balancer_id,
                        &group_id,
                        step.action,
                        &step.backends,
                    )
                    .await;
                for batch in &run.applied {
                    self.record_step(&group_id, step.action, batch);
                    members = members_after(
                        members,
                        std::slice::from_ref(&Step {
                            action: step.action,
                            backends: batch.clone(),
                        }),
                    );
                }
                applied += run.applied.len();
                if let Some(error) = run.failed {
                    // What ran is on the SLB; the gauge catches up with the next read.
                    return Err(Failure {
                        error,
                        fatal: false,
                    });
                }
                for (backend, error) in run.refused {
                    quarantined.push(self.hold(&group_id, backend, step.action, &error));
                    refused_any = true;
                }
                if refused_any {
                    break;
                }
            }
            if lookup_pending && !refused_any {
                lookup_pending = false;
                if applied > 0 {
                    // The drain is on the SLB; the lookup and the adds take their turn.
                    if let Some(caller) = current_caller() {
                        caller.lower_to(Lane::Pod);
                    }
                }
                self.resolve_eni_ids(&target.desired, &members).await?;
                continue;
            }
            if !refused_any {
                break;
            }
        }
        self.forget_unwanted_holds(&group_id, &target.desired, &members);
        self.count_backends(&group_id, &target.desired, &members);
        let left = ObservedGroup {
            backends: members.clone(),
            ..observed
        };
        if reuse.is_zero() {
            self.last_reads.refresh(left, read_at);
        } else {
            self.last_reads.keep(left, read_at, reuse);
        }

        // Drains started by this pass count from when the SLB confirmed weight 0, a little
        // after the plan's `now`: take the deadlines from the ledger, not the plan.
        let drain_deadline = self.next_deadline(
            &group_id,
            self.config.slb_propagation + target.drain_window,
            now,
        );
        let mut requeue_at = drain_deadline;
        // A node held at weight 0 rises once kube-proxy had its allowance.
        if let Some(warm) = warm_until {
            requeue_at = Some(requeue_at.map_or(warm, |at| at.min(warm)));
        }
        if !plan.unresolved_eni_ips.is_empty() {
            let floor = now
                .checked_add(Duration::from_secs(1))
                .unwrap_or(Timestamp::MAX);
            let retry = self
                .eni_retry_at(&plan.unresolved_eni_ips)
                .unwrap_or_else(|| {
                    now.checked_add(self.config.unresolved_eni_retry)
                        .unwrap_or(Timestamp::MAX)
                })
                .max(floor);
            requeue_at = Some(requeue_at.map_or(retry, |at| at.min(retry)));
        }
        if let Some(recheck) = lock(&self.quarantine).next_recheck(&group_id, now) {
            requeue_at = Some(requeue_at.map_or(recheck, |at| at.min(recheck)));
        }
        // Drains that wait for the group's health are drain-lane work: a pod waits.
        let health_recheck = plan
            .held_for_health
            .then(|| now.checked_add(HEALTH_RECHECK).unwrap_or(Timestamp::MAX));
        if let Some(recheck) = health_recheck {
            requeue_at = Some(requeue_at.map_or(recheck, |at| at.min(recheck)));
        }
        Ok(PassOutcome {
            v_server_group_id: Some(group_id),
            steps_applied: applied,
            replans: 0,
            requeue_at,
            // A drain held for health is drain work whichever wake comes first.
            requeue_for_drain: (drain_deadline.is_some() && requeue_at == drain_deadline)
                || health_recheck.is_some(),
            warnings: plan.warnings,
            unresolved_eni_ips: plan.unresolved_eni_ips,
            backends: members,
            quarantined,
            listened,
        })
    }

    fn count_pass(&self, result: &str) {
        if let Some(metrics) = &self.metrics {
            metrics.passes.with_label_values(&[result]).inc();
        }
    }

    /// Owned backends gone from the group since the last pass without a removal of ours
    /// (a console edit, state lost on the SLB side): said, and counted; the pass itself
    /// puts back what is still desired.
    fn notice_drift(&self, group_id: &str, desired: &DesiredGroup, observed: &ObservedGroup) {
        let Some((active, draining)) = lock(&self.backend_counts).get(group_id).copied() else {
            return;
        };
        let owned = observed
            .backends
            .iter()
            .filter(|b| desired.name.owns(&b.description))
            .count() as i64;
        let missing = active + draining - owned;
        if missing > 0 {
            tracing::warn!(
                %group_id,
                missing,
                "owned backends vanished from the group since the last pass (changed outside \
                 the agent); putting back what is still desired"
            );
            if let Some(metrics) = &self.metrics {
                metrics.drift.inc_by(missing as u64);
            }
        }
    }

    /// Updates `slb_sync_backends` with the group as it is after a successful pass.
    fn count_backends(&self, group_id: &str, desired: &DesiredGroup, members: &[SlbBackend]) {
        let Some(metrics) = &self.metrics else { return };
        let owned: Vec<&SlbBackend> = members
            .iter()
            .filter(|b| desired.name.owns(&b.description))
            .collect();
        let active = owned.iter().filter(|b| b.weight.get() > 0).count() as i64;
        let draining = owned.len() as i64 - active;
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

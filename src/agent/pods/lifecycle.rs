//! [`PodLifecycle`]: the pod side of the agent, fed by pod watch events and reconcile
//! passes, deciding with [`super::decide`] and writing through [`super::writer`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::Client;
use tokio::sync::watch;

use super::allowance::{self, Verdict};
use super::decide::{self, BackedService, PodPlace};
use super::journal::ledger_from_pods;
use super::timers::{Armed, PodTimers};
use super::writer::{self, PodKey, Write, WriteQueue, Writer};
use super::PodSide;
use crate::agent::metrics::AgentMetrics;
use crate::desired::PlannerConfig;
use crate::k8s::events::Events;
use crate::model::{GroupObservation, ServiceRef};
use crate::reconcile::{
    Clock, GroupRef, GroupTarget, LedgerRestore, PassObserver, PassOutcome, ReconcileError,
    TokioClock,
};

/// The reflector stores the control loop owns and shares with the pod side.
///
/// If the pod watcher trims pods (`WatchStreamExt::modify`), it must keep what the pod
/// side reads: `metadata.{name,namespace,uid,labels,annotations,finalizers,
/// deletionTimestamp}`, `spec.{nodeName,readinessGates,terminationGracePeriodSeconds}`
/// and `status.{podIP,podIPs,phase,conditions}`.
#[derive(Clone)]
pub struct PodStores {
    pub pods: Store<Pod>,
    pub services: Store<Service>,
    pub nodes: Store<Node>,
    pub slices: Store<EndpointSlice>,
}

/// Settings of the pod side.
#[derive(Clone)]
pub struct PodLifecycleConfig {
    /// Which Services are managed (the same rules the planner uses).
    pub planner: PlannerConfig,
    /// How long after a pod's `deletionTimestamp` (its kill time) its finalizer is
    /// released without a confirmed drain (`--finalizer-grace-margin-seconds`).
    pub fail_open_margin: Duration,
    /// How long a deleted pod of a Cluster or Local Service must have been terminating
    /// before it is reported drained (`--kube-proxy-allowance-seconds`): kube-proxy on
    /// every node forwards to it until its next iptables/IPVS sync (see
    /// [`super::allowance`]).
    pub kube_proxy_allowance: Duration,
    /// Wall time for the fail-open deadlines; tokio-driven so tests can pause it.
    pub clock: Arc<dyn Clock>,
}

impl PodLifecycleConfig {
    pub fn new(planner: PlannerConfig, fail_open_margin: Duration) -> Self {
        PodLifecycleConfig {
            planner,
            fail_open_margin,
            kube_proxy_allowance: super::allowance::DEFAULT_KUBE_PROXY_ALLOWANCE,
            clock: Arc::new(TokioClock::new()),
        }
    }
}

/// The pod finalizer, readiness gates, drained condition and drain journal.
///
/// Cheap to clone (shared state). Must be created inside a tokio runtime: it starts its
/// writer task and a task that re-derives every pod when this replica becomes leader.
#[derive(Clone)]
pub struct PodLifecycle {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    pub(super) stores: PodStores,
    pub(super) config: PodLifecycleConfig,
    pub(super) queue: WriteQueue,
    pub(super) state: Mutex<State>,
}

#[derive(Default)]
pub(super) struct State {
    /// The last members seen per group (failed passes keep the previous reading).
    pub(super) observed: HashMap<GroupRef, GroupObservation>,
    /// Fail-open releases of deleted pods still held.
    fail_open: PodTimers,
    /// Re-evaluations of deleted pods whose SLB side is confirmed, at the end of their
    /// kube-proxy allowance.
    rechecks: PodTimers,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let mut state = lock(&self.state);
        state.fail_open.abort_all();
        state.rechecks.abort_all();
    }
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub(super) fn pod_key(pod: &Pod) -> Option<PodKey> {
    Some((
        pod.metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into()),
        pod.metadata.name.clone()?,
    ))
}

impl PodLifecycle {
    pub fn new(
        client: Client,
        events: Events,
        metrics: AgentMetrics,
        stores: PodStores,
        config: PodLifecycleConfig,
        leader: watch::Receiver<bool>,
    ) -> Self {
        let queue = writer::spawn(Writer {
            client,
            events,
            metrics,
            leader: leader.clone(),
        });
        let inner = Arc::new(Inner {
            stores,
            config,
            queue,
            state: Mutex::new(State::default()),
        });
        let weak = Arc::downgrade(&inner);
        tokio::spawn(resync_on_leadership(weak, leader));
        PodLifecycle { inner }
    }

    /// Re-derives every pod in the store (after the initial list or gaining the lease).
    pub fn resync(&self) {
        self.inner.resync();
    }
}

async fn resync_on_leadership(inner: Weak<Inner>, mut leader: watch::Receiver<bool>) {
    while leader.changed().await.is_ok() {
        let leading = *leader.borrow_and_update();
        let Some(inner) = inner.upgrade() else { return };
        if leading {
            // Writes dropped while following (and timers that fired then) are re-derived.
            let mut state = lock(&inner.state);
            state.fail_open.forget_finished();
            state.rechecks.forget_finished();
            drop(state);
            inner.resync();
        }
    }
}

impl Inner {
    fn resync(self: &Arc<Self>) {
        for pod in self.stores.pods.state() {
            self.evaluate(&pod);
        }
    }

    fn services(&self) -> Vec<Arc<Service>> {
        self.stores.services.state()
    }

    pub(super) fn place(&self, pod: &Pod) -> PodPlace {
        let node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .and_then(|n| self.stores.nodes.get(&ObjectRef::new(n)));
        decide::pod_place(pod, node.as_deref())
    }

    /// The observed groups of `namespace/service`, for the ports it has now (a port
    /// removed from the Service leaves an observation no pass updates any more).
    fn observations<'a>(
        &self,
        state: &'a State,
        namespace: &str,
        service: &str,
    ) -> Vec<&'a GroupObservation> {
        let ports: Vec<u16> = self
            .stores
            .services
            .get(&ObjectRef::new(service).within(namespace))
            .and_then(|svc| {
                let ports = svc.spec.as_ref()?.ports.as_ref()?;
                Some(
                    ports
                        .iter()
                        .filter_map(|p| u16::try_from(p.port).ok())
                        .collect(),
                )
            })
            .unwrap_or_default();
        let name = ServiceRef::new(namespace, service);
        let mut groups: Vec<(&GroupRef, &GroupObservation)> = state
            .observed
            .iter()
            .filter(|(g, _)| g.service == name && ports.contains(&g.service_port))
            .collect();
        groups.sort_by_key(|(g, _)| g.service_port);
        groups.into_iter().map(|(_, o)| o).collect()
    }

    /// Everything the pod side wants for one pod, queued.
    fn evaluate(self: &Arc<Self>, pod: &Pod) {
        let Some(key) = pod_key(pod) else { return };
        let services = self.services();
        let backed =
            decide::backed_services(pod, services.iter().map(|s| &**s), &self.config.planner);
        if decide::is_deleting(pod) {
            self.evaluate_deleting(pod, key, &backed);
            return;
        }
        if decide::needs_finalizer(pod, &backed) {
            self.queue.send(Write::AddFinalizer(key.clone()));
        }
        self.evaluate_gates(pod, key, &services);
    }

    fn evaluate_gates(&self, pod: &Pod, key: PodKey, services: &[Arc<Service>]) {
        let gates = decide::declared_gates(pod);
        if gates.is_empty() {
            return;
        }
        let place = self.place(pod);
        let state = lock(&self.state);
        for (condition_type, service) in gates {
            // A Service we do not manage is not ours to gate (ACK's controller may be).
            let Some(mode) = decide::managed_service(
                &key.0,
                &service,
                services.iter().map(|s| &**s),
                &self.config.planner,
            ) else {
                continue;
            };
            let observations = self.observations(&state, &key.0, &service);
            let want = decide::gate_condition(&condition_type, mode, &place, &observations);
            if !decide::gate_settled(pod, &want) {
                self.queue.send(Write::Gate(key.clone(), want));
            }
        }
    }

    fn evaluate_deleting(self: &Arc<Self>, pod: &Pod, key: PodKey, backed: &[BackedService]) {
        if !decide::has_finalizer(pod) {
            self.cancel_timer(&key);
            return;
        }
        if decide::is_drained(pod) {
            self.queue.send(Write::Complete(key));
            return;
        }
        let allowance = allowance::allowance_for(backed, self.config.kube_proxy_allowance);
        self.arm_fail_open(pod, &key, allowance);
        let settled_at = (!allowance.is_zero())
            .then(|| allowance::kube_proxy_settled_at(pod, allowance))
            .flatten();
        let confirmed = self.drain_confirmed(pod, &key, backed);
        match allowance::verdict(confirmed, settled_at, self.config.clock.now()) {
            Verdict::Drained => self.queue.send(Write::Complete(key)),
            Verdict::Settling(at) => self.arm_recheck(pod, key, at),
            Verdict::Waiting => {}
        }
    }

    /// Every group of every Service the pod backs no longer sends it traffic, as last
    /// observed (Cluster mode: a pass has run, its nodes stay). A Service without any
    /// observed group is not confirmed (no pass has run for it yet); a pod backing none is
    /// confirmed at once (nothing to drain).
    fn drain_confirmed(&self, pod: &Pod, key: &PodKey, backed: &[BackedService]) -> bool {
        let place = self.place(pod);
        let node = pod.spec.as_ref().and_then(|s| s.node_name.as_deref());
        let slices = self.stores.slices.state();
        let state = lock(&self.state);
        backed.iter().all(|service| {
            let observations = self.observations(&state, &key.0, &service.name);
            let others = node.is_some_and(|node| {
                decide::other_serving_endpoint(
                    &key.0,
                    &service.name,
                    node,
                    &key.1,
                    slices.iter().map(|s| &**s),
                )
            });
            !observations.is_empty()
                && observations
                    .iter()
                    .all(|o| decide::group_drained(service.mode, &place, others, o))
        })
    }

    fn arm_fail_open(self: &Arc<Self>, pod: &Pod, key: &PodKey, allowance: Duration) {
        let Some(deadline) =
            decide::fail_open_deadline(pod, self.config.fail_open_margin, allowance)
        else {
            return;
        };
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let mut state = lock(&self.state);
        // A second delete with a shorter grace period moves `deletionTimestamp` earlier:
        // the timer is replaced, not kept at the first, later deadline.
        if state
            .fail_open
            .get(key)
            .is_some_and(|armed| armed.uid == uid && armed.at == deadline)
        {
            return;
        }
        // The hold the Event reports counts from the deletion (the `deletionTimestamp` is
        // the kill time, a grace period later).
        let deleted = allowance::terminating_since(pod)
            .and_then(|t| t.checked_sub(jiff::SignedDuration::from_secs(1)).ok())
            .unwrap_or(deadline);
        let at = self.config.clock.instant_at(deadline);
        let clock = self.config.clock.clone();
        let weak = Arc::downgrade(self);
        let pod_key = key.clone();
        let timer = tokio::spawn(async move {
            tokio::time::sleep_until(at).await;
            let Some(inner) = weak.upgrade() else { return };
            let held = clock.now().duration_since(deleted).as_secs().max(0) as u64;
            inner.queue.send(Write::FailOpen {
                pod: pod_key,
                held_secs: held,
            });
        });
        state.fail_open.set(
            key.clone(),
            Armed {
                uid,
                at: deadline,
                task: timer,
            },
        );
    }

    /// Evaluates the pod again at `at`, the end of its kube-proxy allowance, so the drain
    /// API's long-polls hear `drained` then rather than at the next unrelated event. One
    /// timer per pod and uid; a later `at` replaces it (it never fires early).
    fn arm_recheck(self: &Arc<Self>, pod: &Pod, key: PodKey, at: Timestamp) {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let mut state = lock(&self.state);
        if state
            .rechecks
            .get(&key)
            .is_some_and(|armed| armed.uid == uid && armed.at == at && !armed.task.is_finished())
        {
            return;
        }
        let when = self.config.clock.instant_at(at);
        let weak = Arc::downgrade(self);
        let (namespace, name) = key.clone();
        let timer = tokio::spawn(async move {
            tokio::time::sleep_until(when).await;
            let Some(inner) = weak.upgrade() else { return };
            let pod = inner
                .stores
                .pods
                .get(&ObjectRef::new(&name).within(&namespace));
            if let Some(pod) = pod {
                inner.evaluate(&pod);
            }
        });
        state.rechecks.set(
            key,
            Armed {
                uid,
                at,
                task: timer,
            },
        );
    }

    fn cancel_timer(&self, key: &PodKey) {
        let mut state = lock(&self.state);
        state.fail_open.cancel(key);
        state.rechecks.cancel(key);
    }

    /// The pods a pass over one Service may concern: those it selects, and every deleted
    /// pod of its namespace still held (the Service may be gone or select it no more).
    fn after_pass(self: &Arc<Self>, group: &GroupRef) {
        let (namespace, name) = (
            group.service.namespace.as_str(),
            group.service.name.as_str(),
        );
        let service = self
            .stores
            .services
            .get(&ObjectRef::new(name).within(namespace));
        if service.is_none() {
            // Its observations would only ever hold a later drain back.
            lock(&self.state)
                .observed
                .retain(|g, _| g.service != group.service);
        }
        let selector = service
            .as_ref()
            .and_then(|s| s.spec.as_ref()?.selector.clone())
            .filter(|s| !s.is_empty());
        for pod in self.stores.pods.state() {
            if pod.metadata.namespace.as_deref().unwrap_or("default") != namespace {
                continue;
            }
            let selected = selector.as_ref().is_some_and(|sel| {
                let labels = pod.metadata.labels.as_ref();
                sel.iter()
                    .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
            });
            if selected || (decide::is_deleting(&pod) && decide::has_finalizer(&pod)) {
                self.evaluate(&pod);
            }
        }
    }
}

impl PassObserver for PodLifecycle {
    fn pass_finished(
        &self,
        group: &GroupRef,
        target: &GroupTarget,
        result: &Result<PassOutcome, ReconcileError>,
    ) {
        let inner = &self.inner;
        {
            let mut state = lock(&inner.state);
            // What the SLB holds is unknown after a failed pass: keep the last reading.
            if let Ok(outcome) = result {
                let mut target = target.clone();
                // Remember the group id the pass resolved, for the journal's windows.
                if target.desired.v_server_group_id.is_none() {
                    target.desired.v_server_group_id = outcome.v_server_group_id.clone();
                }
                state.observed.insert(
                    group.clone(),
                    GroupObservation {
                        target,
                        backends: outcome.backends.clone(),
                    },
                );
            }
        }
        inner.after_pass(group);
    }
}

impl PodSide for PodLifecycle {
    fn pod_event(&self, event: &watcher::Event<Pod>) {
        let inner = &self.inner;
        match event {
            watcher::Event::Apply(pod) => inner.evaluate(pod),
            watcher::Event::Delete(pod) => {
                if let Some(key) = pod_key(pod) {
                    inner.cancel_timer(&key);
                }
            }
            // A (re)list lands in the store at InitDone.
            watcher::Event::InitDone => inner.resync(),
            watcher::Event::Init | watcher::Event::InitApply(_) => {}
        }
    }

    fn restore(&self, executor: &dyn LedgerRestore) {
        let ledger = ledger_from_pods(self.inner.stores.pods.state().iter().map(|p| &**p));
        tracing::info!(
            drains = ledger.len(),
            "drain start times restored from pods"
        );
        executor.restore_ledger(ledger);
    }

    fn journal(&self) -> Option<Arc<dyn crate::reconcile::DrainJournal>> {
        Some(Arc::new(self.clone()))
    }

    fn waiting_services(&self) -> std::collections::BTreeSet<crate::index::ServiceRef> {
        super::waiting::in_stores(&self.inner.stores, &self.inner.config.planner)
    }
}

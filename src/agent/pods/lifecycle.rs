//! [`PodLifecycle`]: the pod side of the agent. Pod watch events, reconcile passes and
//! the drain journal name the pods to look at; the reconciler ([`super::reconciler`])
//! looks at each with [`PodContext::facts`] and [`super::step::pod_step`] and writes
//! through [`super::writer`].

use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use jiff::Timestamp;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Service};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::Client;
use tokio::sync::{mpsc, watch};

use super::book::{pod_key, PodBook, PodKey};
use super::decide::{self, GateCondition, PodPlace};
use super::drain_annotation::ledger_from_pods;
use super::health_gate;
use super::step::{HoldRules, PodFacts};
use super::writer::Writer;
use super::PodSide;
use crate::agent::health::{self, GateOn, HealthBoard, HealthGateConfig, Verdict};
use crate::agent::metrics::AgentMetrics;
use crate::desired::PlannerConfig;
use crate::index::{ClusterIndex, ServiceRef};
use crate::k8s::events::Events;
use crate::model::Mode;
use crate::model::{GroupObservation, StoredPod};
use crate::reconcile::{
    Clock, GroupRef, GroupTarget, LedgerRestore, PassObserver, PassOutcome, ReconcileError,
    TokioClock,
};
use crate::slb::SlbApi;

/// What the pod side reads: the reflector stores the control loop owns and the cluster
/// index it keeps (which Services are managed, in which mode, what they select, their
/// endpoints).
///
/// The pod watcher trims stored pods to what the agent reads of them
/// ([`crate::model::StoredPod`]): `metadata.{name,namespace,labels,finalizers,
/// deletionTimestamp,deletionGracePeriodSeconds}` and the agent's own annotations,
/// `spec.{nodeName,terminationGracePeriodSeconds}` and the gates of ours or ACK's,
/// `status.{phase,podIPs,podIP}` and the conditions `ContainersReady`, drained and the
/// gates (type, status, reason). Reading anything else from the store needs it kept
/// there; writes read the pod from the API server.
#[derive(Clone)]
pub struct PodStores {
    pub pods: Store<StoredPod>,
    pub services: Store<Service>,
    pub nodes: Store<Node>,
    pub index: Arc<RwLock<ClusterIndex>>,
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
    /// Wall time for the deadlines; tokio-driven so tests can pause it.
    pub clock: Arc<dyn Clock>,
    /// What a readiness gate waits for (`--gate-on`, `--health-gate-timeout-seconds`).
    pub health_gate: HealthGateConfig,
}

impl PodLifecycleConfig {
    pub fn new(planner: PlannerConfig, fail_open_margin: Duration) -> Self {
        PodLifecycleConfig {
            planner,
            fail_open_margin,
            kube_proxy_allowance: super::allowance::DEFAULT_KUBE_PROXY_ALLOWANCE,
            clock: Arc::new(TokioClock::new()),
            health_gate: HealthGateConfig::default(),
        }
    }

    pub(super) fn hold_rules(&self) -> HoldRules {
        HoldRules {
            fail_open_margin: self.fail_open_margin,
            kube_proxy_allowance: self.kube_proxy_allowance,
        }
    }
}

/// The pod finalizer, readiness gates, drained condition and drain journal.
///
/// Cheap to clone (shared state). Must be created inside a tokio runtime: it starts the
/// reconciler and a task that looks at every pod again when this replica becomes leader.
#[derive(Clone)]
pub struct PodLifecycle {
    pub(super) context: Arc<PodContext>,
    /// Pods to reconcile now; the reconciler ends when every sender is gone.
    pub(super) trigger: mpsc::UnboundedSender<ObjectRef<StoredPod>>,
}

/// Everything a reconcile of a pod reads and writes through.
pub(super) struct PodContext {
    pub(super) stores: PodStores,
    pub(super) config: PodLifecycleConfig,
    pub(super) writer: Writer,
    pub(super) leader: watch::Receiver<bool>,
    pub(super) book: Mutex<PodBook>,
    /// Which pods wait on the health of which load balancer, and the last readings.
    pub(super) health: Arc<HealthBoard>,
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl PodLifecycle {
    /// With `health`, gates wait on health as `config.health_gate` says (a poller reads
    /// it into the board while some gate or held drain waits); without, they wait on
    /// registration only.
    pub fn new(
        client: Client,
        events: Events,
        metrics: AgentMetrics,
        stores: PodStores,
        mut config: PodLifecycleConfig,
        leader: watch::Receiver<bool>,
        health: Option<(Arc<dyn SlbApi>, Arc<HealthBoard>)>,
    ) -> Self {
        let (slb, health) = match health {
            Some((slb, board)) => (Some(slb), board),
            None => {
                config.health_gate.gate_on = GateOn::Registered;
                (None, Arc::new(HealthBoard::new()))
            }
        };
        let context = Arc::new(PodContext {
            stores,
            config,
            writer: Writer {
                client,
                events,
                metrics,
            },
            leader: leader.clone(),
            book: Mutex::new(PodBook::default()),
            health: health.clone(),
        });
        let trigger = super::reconciler::spawn(context.clone());
        if let (Some(slb), GateOn::Healthy) = (slb, context.config.health_gate.gate_on) {
            let weak = trigger.downgrade();
            let metrics = context.writer.metrics.clone();
            // Weak: the poller ends once the pod side is gone.
            let board = Arc::downgrade(&health);
            tokio::spawn(health::poller::run(
                health,
                slb,
                context.config.clock.clone(),
                move |keys| {
                    if let Some(board) = board.upgrade() {
                        metrics.gates_waiting_on_health.set(board.waiting() as i64);
                    }
                    if let Some(trigger) = weak.upgrade() {
                        for key in keys {
                            let _ = trigger.send(ObjectRef::new(&key.1).within(&key.0));
                        }
                    }
                },
            ));
        }
        let side = PodLifecycle { context, trigger };
        tokio::spawn(resync_on_leadership(
            side.trigger.downgrade(),
            side.context.stores.pods.clone(),
            leader,
        ));
        side
    }

    /// Looks at every pod in the store again (after the initial list or gaining the lease).
    pub fn resync(&self) {
        request_all(&self.trigger, &self.context.stores.pods);
    }

    pub(super) fn request(&self, key: &PodKey) {
        // A closed channel means the reconciler stopped with the agent: nothing to do.
        let _ = self.trigger.send(ObjectRef::new(&key.1).within(&key.0));
    }
}

fn request_all(trigger: &mpsc::UnboundedSender<ObjectRef<StoredPod>>, pods: &Store<StoredPod>) {
    for pod in pods.state() {
        let _ = trigger.send(ObjectRef::from_obj(&*pod));
    }
}

async fn resync_on_leadership(
    trigger: mpsc::WeakUnboundedSender<ObjectRef<StoredPod>>,
    pods: Store<StoredPod>,
    mut leader: watch::Receiver<bool>,
) {
    while leader.changed().await.is_ok() {
        let leading = *leader.borrow_and_update();
        let Some(trigger) = trigger.upgrade() else {
            return;
        };
        if leading {
            // Reconciles skipped while following are made now.
            request_all(&trigger, &pods);
        }
    }
}

impl PodContext {
    pub(super) fn place(&self, pod: &StoredPod) -> PodPlace {
        let node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .and_then(|n| self.stores.nodes.get(&ObjectRef::new(n)));
        decide::pod_place(pod, node.as_deref())
    }

    pub(super) fn index(&self) -> std::sync::RwLockReadGuard<'_, ClusterIndex> {
        self.stores.index.read().unwrap_or_else(|e| e.into_inner())
    }

    /// What a reconcile of `pod` decides from: the managed Services that select it, the
    /// gate conditions it should show and whether its drain is confirmed, as last
    /// observed. Reads the index and the pod side's own book; no API call.
    pub(super) fn facts(&self, pod: &StoredPod, key: &PodKey) -> PodFacts {
        let place = self.place(pod);
        let empty = Default::default();
        let labels = pod.metadata.labels.as_ref().unwrap_or(&empty);
        let index = self.index();
        let backed = index.services_selecting(&key.0, labels);
        let book = lock(&self.book);
        let observations = |name: &str| {
            let service = ServiceRef::new(&key.0, name);
            let ports = index.service_ports(&service);
            book.observations(&service, &ports)
        };
        if decide::is_deleting(pod) {
            let node = pod.spec.as_ref().and_then(|s| s.node_name.as_deref());
            // A Service without any observed group is not confirmed (no pass has run
            // for it yet); a pod backing none is confirmed at once (nothing to drain).
            let drain_confirmed = backed.iter().all(|service| {
                let observations = observations(&service.name);
                let others = node.is_some_and(|node| {
                    index.other_serving_endpoint(
                        &ServiceRef::new(&key.0, &service.name),
                        node,
                        &place.ips,
                    )
                });
                !observations.is_empty()
                    && observations
                        .iter()
                        .all(|o| decide::group_drained(service.mode, &place, others, o))
            });
            return PodFacts {
                backed,
                gates: Vec::new(),
                drain_confirmed,
            };
        }
        let gates = decide::declared_gates(pod)
            .into_iter()
            .filter_map(|(condition_type, service)| {
                // An open gate stays open (see `decide::gate_settled`), with the reason it
                // opened for: nothing to decide, and no health to read for it.
                if decide::condition_status(pod, &condition_type)
                    .is_some_and(|(status, _)| status == "True")
                {
                    return None;
                }
                // A Service we do not manage is not ours to gate (ACK's controller may be).
                // A pod on a virtual node is an ENI backend of its own in every mode.
                let mode =
                    place.backend_mode(index.managed_mode(&ServiceRef::new(&key.0, &service))?);
                let observations = observations(&service);
                let registered =
                    decide::gate_condition(&condition_type, mode, &place, &observations);
                // Cluster mode: a node passes the check only while kube-proxy has a ready
                // endpoint of the Service somewhere, which the first pod (or a scale from
                // zero) is not yet: its gate keeps the registration rule then.
                let checkable = match mode {
                    Mode::Local => false,
                    Mode::Cluster => {
                        index.other_ready_endpoint(&ServiceRef::new(&key.0, &service), &place.ips)
                    }
                    Mode::Eni => true,
                };
                if !checkable {
                    return Some(registered);
                }
                Some(self.health_gate(registered, mode, &place, &observations, pod, key))
            })
            .collect();
        PodFacts {
            backed,
            gates,
            drain_confirmed: false,
        }
    }
}

impl PodContext {
    /// The gate `registered` under `--gate-on healthy`: once registered, the health of the
    /// pod's backend in each group, as the board holds it (see [`crate::agent::health`]).
    /// The caller keeps the registration rule where the backend cannot pass a check before
    /// the pod is Ready (Local mode; Cluster mode without another ready endpoint).
    fn health_gate(
        &self,
        registered: GateCondition,
        mode: Mode,
        place: &PodPlace,
        observations: &[&GroupObservation],
        pod: &StoredPod,
        key: &PodKey,
    ) -> GateCondition {
        let settings = self.config.health_gate;
        if settings.gate_on == GateOn::Registered || mode == Mode::Local || !registered.status {
            return registered;
        }
        let now = self.config.clock.now();
        let mut waiting_since: Option<Timestamp> = None;
        let verdicts: Vec<(u16, Verdict)> = observations
            .iter()
            .map(|o| {
                let desired = &o.target.desired;
                let verdict = match &desired.v_server_group_id {
                    Some(group) => {
                        let (verdict, since) = self.health.look(
                            &o.target.load_balancer_id,
                            group,
                            mode,
                            place,
                            key,
                            now,
                        );
                        if verdict.waits() {
                            waiting_since = Some(waiting_since.map_or(since, |w| w.min(since)));
                        }
                        verdict
                    }
                    None => Verdict::Unknown,
                };
                (desired.service_port, verdict)
            })
            .collect();
        health_gate::health_gate(
            registered,
            &verdicts,
            health_gate::Since {
                containers_ready: decide::containers_ready_since(pod),
                waiting: waiting_since,
            },
            settings.timeout,
            now,
        )
    }
}

impl PodLifecycle {
    /// The pods a pass over one Service may concern: those it selects, and every deleted
    /// pod of its namespace still held (the Service may be gone or select it no more).
    fn after_pass(&self, group: &GroupRef) {
        let service = &group.service;
        let ctx = &self.context;
        let gone = ctx
            .stores
            .services
            .get(&ObjectRef::new(&service.name).within(&service.namespace))
            .is_none();
        let selector = ctx.index().pod_selector(service);
        let pods = {
            let mut book = lock(&ctx.book);
            if gone {
                book.forget_service(service);
            }
            let mut pods = book.held_in(&service.namespace);
            if !selector.is_empty() {
                pods.extend(book.selected(&service.namespace, &selector));
            }
            pods
        };
        for key in &pods {
            self.request(key);
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
        // What the SLB holds is unknown after a failed pass: keep the last reading.
        if let Ok(outcome) = result {
            let mut target = target.clone();
            // Remember the group id the pass resolved, for the journal's windows.
            if target.desired.v_server_group_id.is_none() {
                target.desired.v_server_group_id = outcome.v_server_group_id.clone();
            }
            lock(&self.context.book).observe(
                group,
                GroupObservation {
                    target,
                    backends: outcome.backends.clone(),
                },
            );
        }
        self.after_pass(group);
    }
}

impl PodSide for PodLifecycle {
    fn pod_event(&self, event: &watcher::Event<StoredPod>) {
        match event {
            watcher::Event::Apply(pod) => {
                lock(&self.context.book).file(pod);
                if let Some(key) = pod_key(pod) {
                    self.request(&key);
                }
            }
            watcher::Event::Delete(pod) => {
                if let Some(key) = pod_key(pod) {
                    self.context.health.forget(&key);
                    let mut book = lock(&self.context.book);
                    book.unfile(&key);
                    book.forget_writes(&key);
                }
            }
            // A (re)list lands in the store at InitDone.
            watcher::Event::InitDone => {
                let pods = self.context.stores.pods.state();
                lock(&self.context.book).refile(pods.iter().map(|p| &**p));
                self.resync();
            }
            watcher::Event::Init | watcher::Event::InitApply(_) => {}
        }
    }

    fn restore(&self, executor: &dyn LedgerRestore) {
        let ledger = ledger_from_pods(self.context.stores.pods.state().iter().map(|p| &**p));
        tracing::info!(
            drains = ledger.len(),
            "drain start times restored from pods"
        );
        executor.restore_ledger(ledger);
    }

    fn journal(&self) -> Option<Arc<dyn crate::reconcile::DrainJournal>> {
        Some(Arc::new(self.clone()))
    }

    fn waiting_services(&self) -> std::collections::BTreeMap<ServiceRef, crate::slb::budget::Lane> {
        let keys: Vec<PodKey> = lock(&self.context.book).waiting().cloned().collect();
        let pods: Vec<Arc<StoredPod>> = keys
            .iter()
            .filter_map(|(ns, name)| {
                self.context
                    .stores
                    .pods
                    .get(&ObjectRef::new(name).within(ns))
            })
            .collect();
        let index = self.context.index();
        super::waiting::waiting_services(pods.iter().map(|p| &**p), &index)
    }
}

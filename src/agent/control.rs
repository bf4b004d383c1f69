//! The control loop: turns index changes into scheduler triggers, owns leadership (only
//! the leader runs the scheduler and writes), the Service finalizer, Events, listener
//! drain settings and the periodic resync.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::Resource;
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};

use super::cleanup::Cleaning;
use super::finalizer::{
    add_finalizer, finalizer_step, has_finalizer, release_finalizer, FinalizerStep,
};
use super::groups::GroupBook;
use super::messages::{Kind, Msg, PassReport};
use super::metrics::AgentMetrics;
use super::pods::SharedPodSide;
use super::target::live_targets;
use crate::desired::{plan_service, PlannerConfig};
use crate::http::ReadyFlag;
use crate::index::{ClusterIndex, ServiceRef};
use crate::k8s::events::{AgentEvent, Events};
use crate::model::DesiredService;
use crate::reconcile::{
    spawn_observed, Executor, GroupRef, Lane, ListenerTarget, PassObserver, SchedulerConfig,
    SchedulerHandle, TargetSource,
};
use crate::slb::SlbApi;

const ALL_KINDS: usize = 4;

/// Everything the loop needs; built by [`super::run`].
pub struct Control {
    pub planner: PlannerConfig,
    pub default_drain_secs: u32,
    pub client: kube::Client,
    pub events: Events,
    pub index: Arc<RwLock<ClusterIndex>>,
    pub services: Store<Service>,
    pub executor: Arc<Executor<dyn SlbApi>>,
    pub source: Arc<dyn TargetSource>,
    pub observer: Arc<dyn PassObserver>,
    pub pods: SharedPodSide,
    pub metrics: AgentMetrics,
    pub reconciling: Arc<watch::Sender<bool>>,
    pub ready: ReadyFlag,
    pub scheduler_config: SchedulerConfig,
    /// Groups that pods wait on are read again this often (`--drift-check-seconds`).
    pub drift_check: Duration,
    /// Every group is read again this often (`--resync-seconds`).
    pub resync_interval: Duration,
    pub tx: mpsc::UnboundedSender<Msg>,
    pub state: LoopState,
}

/// The loop's own bookkeeping.
#[derive(Default)]
pub struct LoopState {
    pub(super) synced: HashSet<Kind>,
    pub(super) leader: bool,
    pub(super) scheduler: Option<(SchedulerHandle, JoinHandle<()>)>,
    /// Services being cleaned up.
    pub(super) cleaning: HashMap<ServiceRef, Cleaning>,
    /// Where every port is planned, what is being emptied, moves and group ids.
    pub(super) groups: GroupBook,
    /// Annotation errors already reported per Service.
    pub(super) bad_annotations: HashMap<ServiceRef, Vec<String>>,
    /// Unsupported ACK annotations already reported per Service.
    pub(super) unsupported_annotations: HashMap<ServiceRef, Vec<String>>,
    /// Resync triggers collected for spreading (see [`Control::spread_resync`]).
    pub(super) bulk: Vec<GroupRef>,
    /// The first cycle after gaining the lease is under way.
    pub(super) cold_start: bool,
    /// Groups of the cold start not yet read (see [`Control::begin_cold_start`]);
    /// ordered, so a Service's groups are found together.
    pub(super) cycle: BTreeSet<GroupRef>,
    /// When each Service's last `ApiBudgetExceeded` Event went out.
    pub(super) delayed: HashMap<ServiceRef, tokio::time::Instant>,
    /// Groups without a listener already reported: (Service, group id).
    pub(super) unbound: HashSet<(ServiceRef, String)>,
    /// Listener drain settings last applied (or being applied) per Service.
    pub(super) listeners: HashMap<ServiceRef, ListenerTarget>,
    /// Kubernetes and listener writes in flight; aborted when leadership is lost.
    pub(super) writes: JoinSet<()>,
}

impl Control {
    /// Runs until `shutdown` resolves, then stops the scheduler within `grace`.
    pub async fn run(
        mut self,
        mut rx: mpsc::UnboundedReceiver<Msg>,
        mut leader: watch::Receiver<bool>,
        resync: Duration,
        shutdown: impl std::future::Future<Output = ()>,
        grace: Duration,
    ) {
        let mut resync = tokio::time::interval_at(tokio::time::Instant::now() + resync, resync);
        resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut drift = tokio::time::interval_at(
            tokio::time::Instant::now() + self.drift_check,
            self.drift_check,
        );
        drift.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        let mut leader_open = true;
        loop {
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                changed = leader.changed(), if leader_open => {
                    if changed.is_err() {
                        leader_open = false;
                        self.set_leader(false);
                    } else {
                        let is_leader = *leader.borrow_and_update();
                        self.set_leader(is_leader);
                    }
                }
                Some(msg) = rx.recv() => self.on_msg(msg),
                _ = resync.tick() => self.resync(),
                _ = drift.tick() => self.check_waited_on(),
                Some(_) = self.state.writes.join_next(), if !self.state.writes.is_empty() => {}
            }
        }
        self.stop(grace).await;
    }

    pub(super) fn active(&self) -> bool {
        self.state.scheduler.is_some()
    }

    fn on_msg(&mut self, msg: Msg) {
        match msg {
            Msg::Synced(kind) => {
                self.state.synced.insert(kind);
                if self.state.synced.len() == ALL_KINDS && !self.ready.is_set() {
                    tracing::info!("caches synced");
                    self.ready.set(true);
                    self.maybe_start();
                }
            }
            Msg::Affected(affected, lane) => {
                if self.active() {
                    for service in &affected.services {
                        // A backend to take down goes first, even found by a relist.
                        let lane = if affected.draining.contains(service) {
                            Lane::Drain
                        } else {
                            lane
                        };
                        self.sync_service(service, lane);
                    }
                }
            }
            Msg::Pass(report) => self.on_pass(report),
            Msg::ListenersFailed(service) => {
                self.state.listeners.remove(&service);
            }
            Msg::Found(found) => self.on_found(found),
            Msg::Delayed { service, waited } => self.report_delay(&service, waited),
            Msg::Listeners {
                service,
                load_balancer_id,
                group,
                bound,
            } => self.note_listeners(&service, &load_balancer_id, &group, bound),
            Msg::Recheck(service) => {
                if self.active() {
                    self.sync_service(&service, Lane::Pod);
                }
            }
        }
    }

    fn set_leader(&mut self, leader: bool) {
        self.state.leader = leader;
        self.metrics.leader.set(i64::from(leader));
        if leader {
            self.maybe_start();
        } else if let Some((_, task)) = self.state.scheduler.take() {
            // Lost the lease: no further SLB or Kubernetes write from this replica.
            task.abort();
            self.reconciling.send_replace(false);
            self.state.writes.abort_all();
            self.state.listeners.clear();
            // A cold start under way ends with the term; the next one starts afresh.
            self.state.cold_start = false;
            self.state.cycle.clear();
            tracing::warn!("lost leadership; stopped reconciling");
        }
    }

    /// Starts the scheduler once this replica leads and its caches are synced.
    fn maybe_start(&mut self) {
        if !self.state.leader || !self.ready.is_set() || self.active() {
            return;
        }
        self.pods.restore(&*self.executor);
        let (handle, task) = spawn_observed(
            self.executor.clone(),
            self.source.clone(),
            Some(self.observer.clone()),
            self.scheduler_config.clone(),
        );
        self.state.scheduler = Some((handle, task));
        self.reconciling.send_replace(true);
        tracing::info!("leading; reconciling every managed Service");
        // Cold start: what pods wait on (drains and journaled drain starts, then gates)
        // first, then every group in the resync lane; those groups are the cold start's.
        for (r, lane) in self.pods.waiting_services() {
            self.sync_service(&r, lane);
        }
        self.collect_resync();
        self.begin_cold_start();
        self.spread_resync();
    }

    pub(super) fn trigger(&mut self, service: &ServiceRef, port: u16, lane: Lane) {
        self.trigger_group(GroupRef::new(service.clone(), port), lane);
    }

    pub(super) fn trigger_group(&mut self, group: GroupRef, lane: Lane) {
        if lane == Lane::Bulk {
            // Resync triggers are collected and spread over the interval by `resync`.
            self.state.bulk.push(group);
            return;
        }
        if let Some((handle, _)) = &self.state.scheduler {
            handle.trigger_in(group, lane);
        }
    }

    /// Passes over the groups of every Service a pod waits on (a gate not yet open, a
    /// drain not yet confirmed), so a group changed behind the agent's back is repaired
    /// while the rollout depends on it rather than at the next resync.
    fn check_waited_on(&mut self) {
        if !self.active() {
            return;
        }
        for r in self.pods.waiting_services().into_keys() {
            self.sync_service(&r, Lane::Change);
        }
    }

    /// Decides what a Service needs: passes (in `lane`), the finalizer added, a cleanup
    /// (pod lane: its finalizer holds the deletion), or nothing.
    pub(super) fn sync_service(&mut self, r: &ServiceRef, lane: Lane) {
        self.decide(r, lane);
        self.cycle_pruned(r);
    }

    fn decide(&mut self, r: &ServiceRef, lane: Lane) {
        let Some(svc) = self
            .services
            .get(&ObjectRef::new(&r.name).within(&r.namespace))
        else {
            self.forget(r);
            return;
        };
        let desired = plan_service(&self.index.read().unwrap_or_else(|e| e.into_inner()), r);
        let deleting = svc.metadata.deletion_timestamp.is_some();
        match (
            finalizer_step(desired.is_some(), deleting, has_finalizer(&svc)),
            desired,
        ) {
            (FinalizerStep::Add, _) => {
                self.managed(r, &svc);
                // No backend is written before the finalizer is on: a Service deleted
                // in between would otherwise leave them behind. The finalizer's own
                // update event brings the Service back here.
                let client = self.client.clone();
                let svc = svc.clone();
                self.state
                    .writes
                    .spawn(async move { add_finalizer(client, &svc).await });
            }
            (FinalizerStep::Apply, Some(desired)) => {
                self.managed(r, &svc);
                self.apply(r, desired, lane);
            }
            (FinalizerStep::Cleanup, _) => self.clean_up(r, &svc),
            (FinalizerStep::Forget | FinalizerStep::Apply, _) => self.forget(r),
        }
    }

    /// A managed Service: a cleanup under way is cancelled, bad annotations reported.
    fn managed(&mut self, r: &ServiceRef, svc: &Service) {
        if self.state.cleaning.contains_key(r) {
            tracing::info!(service = %r, "managed again; cleanup cancelled");
            self.forget(r);
        }
        self.report_bad_annotations(r, svc);
        self.report_unsupported_annotations(r, svc);
    }

    /// Plans and triggers the ports of a managed Service; ports it no longer has are
    /// emptied.
    fn apply(&mut self, r: &ServiceRef, desired: DesiredService, lane: Lane) {
        let ports: HashSet<u16> = desired.groups.iter().map(|g| g.service_port).collect();
        self.plan_ports(r, desired);
        for port in &ports {
            self.trigger(r, *port, lane);
        }
        self.retire_ports(r, &ports);
    }

    /// Records where each port of a live Service is planned before its passes run; a
    /// port whose group changed has its old group emptied (see [`super::moves`]).
    pub(super) fn plan_ports(&mut self, r: &ServiceRef, desired: DesiredService) {
        let targets = live_targets(
            &self.index.read().unwrap_or_else(|e| e.into_inner()),
            desired,
            self.default_drain_secs,
        );
        for target in targets {
            let port = GroupRef::new(r.clone(), target.desired.service_port);
            if let Some(moved) = self.state.groups.plan(&port, &target) {
                let old = self.state.groups.ids.get(&port).cloned();
                self.judge_move(moved, old.as_deref(), None);
            }
        }
    }

    pub(super) fn release(&mut self, r: &ServiceRef) {
        let client = self.client.clone();
        let r = r.clone();
        self.state
            .writes
            .spawn(async move { release_finalizer(client, &r).await });
    }

    /// Drops what the loop kept about a Service that is gone or no longer ours.
    pub(super) fn forget(&mut self, r: &ServiceRef) {
        self.state.cleaning.remove(r);
        self.state.groups.forget(r);
        self.state.bad_annotations.remove(r);
        self.state.unsupported_annotations.remove(r);
        self.state.unbound.retain(|(s, _)| s != r);
        self.state.delayed.remove(r);
        self.state.listeners.remove(r);
    }

    fn on_pass(&mut self, report: PassReport) {
        self.cycle_passed(&report.group);
        let r = report.group.service.clone();
        for event in &report.events {
            self.emit(&r, event.clone());
        }
        let lb = &report.target.load_balancer_id;
        // A live pass that started before the loop saw its port move (or before it saw
        // the move's change at all) ran for another group than the port's planned one:
        // it says nothing about the planned group.
        let as_planned = report.group.retired.is_some()
            || report.target.emptying
            || self.state.groups.is_current(&report.group, &report.target);
        match report.result {
            Ok((group_id, owned_left)) => {
                if as_planned {
                    if let Some(moved) = self.state.groups.moves.remove(&report.group) {
                        self.judge_move(moved, None, group_id.as_deref());
                    }
                    if let Some(id) = &group_id {
                        self.state
                            .groups
                            .ids
                            .insert(report.group.clone(), id.clone());
                    }
                }
                if self.state.groups.retired.contains(&report.group) {
                    if !owned_left {
                        tracing::info!(service = %r, port = report.group.service_port, "removed port's group emptied");
                        if let Some(id) = &group_id {
                            self.delete_retired(&r, lb, id);
                        }
                        self.state.groups.retired_emptied(&report.group);
                        self.maybe_release(&r);
                    }
                } else if self.cleanup_pass(&r, &report.group, group_id.as_deref(), owned_left) {
                    // A group of a Service being cleaned up.
                } else if self.state.cleaning.contains_key(&r) || !as_planned {
                    // A pass of the live Service that ran before its cleanup began, or
                    // for a group the port has left.
                } else {
                    if let (Some(bound), Some(id)) = (report.listened, &group_id) {
                        self.note_listeners(&r, lb, id, bound);
                    }
                    self.sync_listeners(&r, lb);
                }
            }
            Err(failure) => {
                if failure.load_balancer_gone
                    && (self.state.groups.retired.contains(&report.group)
                        || self.cleanup_pass(&r, &report.group, None, false))
                {
                    // Nothing of ours can be left on an instance that does not exist.
                    tracing::info!(service = %r, port = report.group.service_port,
                        load_balancer_id = %lb,
                        "the SLB instance of a group being emptied is gone; nothing left there");
                    if self.state.groups.retired.contains(&report.group) {
                        self.state.groups.retired_emptied(&report.group);
                        self.maybe_release(&r);
                    }
                    return;
                }
                if let Some(event) = failure.event {
                    self.emit(&r, event);
                }
            }
        }
    }

    /// Reports `event` on the Service, if it still exists.
    pub(super) fn emit(&mut self, r: &ServiceRef, event: AgentEvent) {
        let Some(svc) = self
            .services
            .get(&ObjectRef::new(&r.name).within(&r.namespace))
        else {
            return;
        };
        let reference = svc.object_ref(&());
        let events = self.events.clone();
        self.state
            .writes
            .spawn(async move { events.emit(&event, &reference).await });
    }

    /// Stops taking work and lets running passes and writes finish within `grace` (one
    /// deadline for both: a saturated agent still exits promptly).
    async fn stop(mut self, grace: Duration) {
        let deadline = tokio::time::Instant::now() + grace;
        self.ready.set(false);
        self.reconciling.send_replace(false);
        if let Some((handle, mut task)) = self.state.scheduler.take() {
            // Dropping the last handle closes the queue: the scheduler drops resync
            // passes and ends after the others.
            drop(handle);
            if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
                tracing::warn!(
                    grace_secs = grace.as_secs(),
                    "passes still running at shutdown; abandoned"
                );
                task.abort();
            }
        }
        let writes = std::mem::take(&mut self.state.writes);
        let drain = async move {
            let mut writes = writes;
            while writes.join_next().await.is_some() {}
        };
        let _ = tokio::time::timeout_at(deadline, drain).await;
        self.metrics.leader.set(0);
    }
}

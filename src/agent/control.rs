//! The control loop: turns index changes into scheduler triggers, owns leadership (only
//! the leader runs the scheduler and writes), the Service finalizer, Events, listener
//! drain settings and the periodic resync.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::Resource;
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};

use super::cleanup::{Cleaning, Found};
use super::finalizer::{add_finalizer, has_finalizer, release_finalizer};
use super::metrics::AgentMetrics;
use super::moves::Move;
use super::pods::SharedPodSide;
use super::target::{service_ref, PassReport};
use super::watch::Kind;
use crate::desired::{plan_all, plan_service, PlannerConfig};
use crate::http::ReadyFlag;
use crate::index::{Affected, ClusterIndex, ServiceRef};
use crate::k8s::events::{AgentEvent, Events};
use crate::reconcile::{
    spawn_observed, Executor, GroupRef, GroupTarget, Lane, ListenerTarget, PassObserver,
    SchedulerConfig, SchedulerHandle, TargetSource,
};
use crate::slb::SlbApi;

/// What the watchers and the pass observer tell the control loop.
#[derive(Debug)]
pub enum Msg {
    /// Services an object change affected, with the lane their passes go in.
    Affected(Affected, Lane),
    Synced(Kind),
    Pass(PassReport),
    /// Writing a Service's listener drain settings failed: try again after the next pass.
    ListenersFailed(String),
    /// A Service's port points at another SLB instance or vServer group than before.
    Moved(Move),
    /// A search of the SLB for a deleted Service's backends ended.
    Found(Found),
    /// Look at this Service again (a failed search is retried).
    Recheck(ServiceRef),
    /// Pod-facing work of a Service took this long: more than the API budget allows.
    Delayed {
        service: String,
        waited: Duration,
    },
    /// Whether a listener forwards to a group of a Service, as a read found.
    Listeners {
        service: String,
        load_balancer_id: String,
        group: String,
        bound: bool,
    },
}

const ALL_KINDS: usize = 4;

/// Everything the loop needs; built by [`super::run`].
pub struct Control {
    pub planner: PlannerConfig,
    pub default_drain_secs: u32,
    pub client: kube::Client,
    pub events: Events,
    pub index: Arc<RwLock<ClusterIndex>>,
    pub cleanups: Arc<Mutex<HashMap<GroupRef, GroupTarget>>>,
    pub planned: Arc<Mutex<HashMap<GroupRef, GroupTarget>>>,
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
    /// Groups of ports that left their (still managed) Service, being emptied.
    pub(super) retired: HashSet<GroupRef>,
    /// Annotation errors already reported per Service.
    pub(super) bad_annotations: HashMap<ServiceRef, Vec<String>>,
    /// Resync triggers collected for spreading (see [`Control::spread_resync`]).
    pub(super) bulk: Vec<GroupRef>,
    /// The first cycle after gaining the lease is under way.
    pub(super) cold_start: bool,
    /// Groups of the current resync cycle not yet passed over.
    pub(super) cycle: HashSet<GroupRef>,
    /// Moved ports waiting for their current group's id (see [`Verdict::Wait`]).
    pub(super) moves: HashMap<GroupRef, Move>,
    /// vServer group ids the passes reported.
    pub(super) group_ids: HashMap<GroupRef, String>,
    /// When each Service's last `ApiBudgetExceeded` Event went out.
    pub(super) delayed: HashMap<ServiceRef, tokio::time::Instant>,
    /// Groups without a listener already reported: (Service, group id).
    pub(super) unbound: HashSet<(ServiceRef, String)>,
    /// Listener drain settings last applied (or being applied) per Service.
    pub(super) listeners: HashMap<String, ListenerTarget>,
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
                        self.sync_service(service, lane);
                    }
                }
            }
            Msg::Pass(report) => self.on_pass(report),
            Msg::ListenersFailed(service) => {
                self.state.listeners.remove(&service);
            }
            Msg::Moved(moved) => {
                let old = self.state.group_ids.get(&moved.port).cloned();
                self.judge_move(moved, old.as_deref(), None);
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
        // Cold start: what pods wait on (gates, drains, journaled drain starts) first,
        // then every group in the resync lane.
        self.state.cold_start = true;
        for r in self.pods.waiting_services() {
            self.sync_service(&r, Lane::Pod);
        }
        self.resync();
    }

    pub(super) fn trigger(&mut self, service: &ServiceRef, port: u16, lane: Lane) {
        self.trigger_group(GroupRef::new(service.to_string(), port), lane);
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

    /// Every Service is looked at again and every group passed over, so drift made
    /// outside the agent is repaired and missed events are made up for.
    fn resync(&mut self) {
        if !self.active() {
            return;
        }
        if self.resync_behind() {
            return;
        }
        self.state.listeners.clear();
        self.state.bulk.clear();
        let mut seen: HashSet<ServiceRef> = HashSet::new();
        for svc in self.services.state() {
            let Some(name) = svc.metadata.name.clone() else {
                continue;
            };
            let r = ServiceRef::new(svc.metadata.namespace.as_deref().unwrap_or("default"), name);
            self.sync_service(&r, Lane::Bulk);
            seen.insert(r);
        }
        // Managed Services the store has not (yet) got still get their passes.
        let desired = plan_all(&self.index.read().unwrap_or_else(|e| e.into_inner()));
        for ds in desired {
            if let Some(r) = service_ref(&ds.service) {
                if !seen.contains(&r) {
                    for g in &ds.groups {
                        self.trigger(&r, g.service_port, Lane::Bulk);
                    }
                }
            }
        }
        self.spread_resync();
        let gone: Vec<ServiceRef> = self
            .state
            .cleaning
            .keys()
            .filter(|r| !seen.contains(r))
            .cloned()
            .collect();
        for r in gone {
            self.forget(&r);
        }
    }

    /// Passes over the groups of every Service a pod waits on (a gate not yet open, a
    /// drain not yet confirmed), so a group changed behind the agent's back is repaired
    /// while the rollout depends on it rather than at the next resync.
    fn check_waited_on(&mut self) {
        if !self.active() {
            return;
        }
        for r in self.pods.waiting_services() {
            self.sync_service(&r, Lane::Change);
        }
    }

    /// Decides what a Service needs: passes (in `lane`), the finalizer added, a cleanup
    /// (pod lane: its finalizer holds the deletion), or nothing.
    pub(super) fn sync_service(&mut self, r: &ServiceRef, lane: Lane) {
        let Some(svc) = self
            .services
            .get(&ObjectRef::new(&r.name).within(&r.namespace))
        else {
            self.forget(r);
            return;
        };
        let desired = plan_service(&self.index.read().unwrap_or_else(|e| e.into_inner()), r);
        let deleting = svc.metadata.deletion_timestamp.is_some();
        let finalized = has_finalizer(&svc);
        if let (Some(desired), false) = (&desired, deleting) {
            if self.state.cleaning.contains_key(r) {
                tracing::info!(service = %r, "managed again; cleanup cancelled");
                self.forget(r);
            }
            self.report_bad_annotations(r, &svc);
            if !finalized {
                // No backend is written before the finalizer is on: a Service deleted
                // in between would otherwise leave them behind. The finalizer's own
                // update event brings the Service back here.
                let client = self.client.clone();
                let svc = svc.clone();
                self.state
                    .writes
                    .spawn(async move { add_finalizer(client, &svc).await });
                return;
            }
            for g in &desired.groups {
                self.trigger(r, g.service_port, lane);
            }
            let ports: HashSet<u16> = desired.groups.iter().map(|g| g.service_port).collect();
            self.retire_ports(r, &ports);
            return;
        }
        if !finalized {
            self.forget(r);
            return;
        }
        self.clean_up(r, &svc);
    }

    pub(super) fn release(&mut self, r: &ServiceRef) {
        let client = self.client.clone();
        let r = r.clone();
        self.state
            .writes
            .spawn(async move { release_finalizer(client, &r).await });
    }

    /// Drops what the loop kept about a Service that is gone or no longer ours.
    fn forget(&mut self, r: &ServiceRef) {
        let key = r.to_string();
        self.state.cleaning.remove(r);
        self.cleanups
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|g, _| g.service != key);
        self.state.retired.retain(|g| g.service != key);
        self.planned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|g, _| g.service != key);
        self.state.bad_annotations.remove(r);
        self.state.unbound.retain(|(s, _)| s != r);
        self.state.delayed.remove(r);
        self.state.listeners.remove(&key);
        self.state.group_ids.retain(|g, _| g.service != key);
        self.state.moves.retain(|g, _| g.service != key);
    }

    fn on_pass(&mut self, report: PassReport) {
        self.cycle_passed(&report.group);
        let Some(r) = service_ref(&report.group.service) else {
            return;
        };
        for event in &report.events {
            self.emit(&r, event.clone());
        }
        match report.result {
            Ok((group_id, owned_left)) => {
                if let Some(moved) = self.state.moves.remove(&report.group) {
                    self.judge_move(moved, None, group_id.as_deref());
                }
                if let Some(id) = &group_id {
                    self.state
                        .group_ids
                        .insert(report.group.clone(), id.clone());
                }
                if self.state.retired.contains(&report.group) {
                    if !owned_left {
                        tracing::info!(service = %r, port = report.group.service_port, "removed port's group emptied");
                        if let Some(id) = &group_id {
                            self.delete_retired(&r, &report.load_balancer_id, id);
                        }
                        self.state.retired.remove(&report.group);
                        self.state.group_ids.remove(&report.group);
                        self.cleanups
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .remove(&report.group);
                        self.planned
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .remove(&report.group);
                        self.maybe_release(&r);
                    }
                } else if self.cleanup_pass(&r, &report.group, group_id.as_deref(), owned_left) {
                    // A group of a Service being cleaned up.
                } else if self.state.cleaning.contains_key(&r) {
                    // A pass of the live Service that ran before its cleanup began.
                } else {
                    if let (Some(bound), Some(id)) = (report.listened, &group_id) {
                        let service = report.group.service.clone();
                        self.note_listeners(&service, &report.load_balancer_id, id, bound);
                    }
                    self.sync_listeners(&r, &report.load_balancer_id);
                }
            }
            Err(failure) => {
                if failure.load_balancer_gone
                    && (self.state.retired.contains(&report.group)
                        || self.cleanup_pass(&r, &report.group, None, false))
                {
                    // Nothing of ours can be left on an instance that does not exist.
                    tracing::info!(service = %r, port = report.group.service_port,
                        load_balancer_id = %report.load_balancer_id,
                        "the SLB instance of a group being emptied is gone; nothing left there");
                    if self.state.retired.remove(&report.group) {
                        self.cleanups
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .remove(&report.group);
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

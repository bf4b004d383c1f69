//! The scheduler's [`TargetSource`] over the cluster index, and the [`PassObserver`] that
//! hands pass outcomes to the pod side, the metrics and the control loop.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::mpsc;

use super::control::Msg;
use super::journal::DrainTimer;
use super::metrics::AgentMetrics;
use super::moves::Move;
use super::pods::SharedPodSide;
use crate::desired::plan_service;
use crate::index::{ClusterIndex, ServiceRef};
use crate::k8s::events::AgentEvent;
use crate::reconcile::{
    GroupRef, GroupTarget, PassObserver, PassOutcome, QuarantinedBackend, ReconcileError,
    TargetSource,
};
use crate::slb::ErrorClass;

/// `<namespace>/<name>` back into a [`ServiceRef`].
pub fn service_ref(service: &str) -> Option<ServiceRef> {
    let (ns, name) = service.split_once('/')?;
    Some(ServiceRef::new(ns, name))
}

/// Group targets from the index; groups of Services being cleaned up get the empty
/// targets the control loop put in `cleanups` instead.
pub struct IndexTargets {
    pub index: Arc<RwLock<ClusterIndex>>,
    pub cleanups: Arc<Mutex<HashMap<GroupRef, GroupTarget>>>,
    /// Every group last planned, without its backends: what a port that disappears from
    /// its Service needs to be drained and emptied.
    pub planned: Arc<Mutex<HashMap<GroupRef, GroupTarget>>>,
    pub default_drain_secs: u32,
    /// Tells the control loop about ports that moved to another group.
    pub tx: mpsc::UnboundedSender<Msg>,
}

impl TargetSource for IndexTargets {
    fn target(&self, group: &GroupRef) -> Option<GroupTarget> {
        if let Some(target) = self
            .cleanups
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(group)
        {
            return Some(target.clone());
        }
        if group.retired.is_some() {
            // A group a port left, emptied (or given back) since: a late wake-up, such as
            // its drain deadline, has nothing to do. It is never the live group.
            return None;
        }
        let service = service_ref(&group.service)?;
        let index = self.index.read().unwrap_or_else(|e| e.into_inner());
        let desired = plan_service(&index, &service)?;
        let spec = index.lb_spec(&service)?;
        let load_balancer_id = desired.load_balancer_id?;
        let desired = desired
            .groups
            .into_iter()
            .find(|g| g.service_port == group.service_port)?;
        let target = GroupTarget {
            load_balancer_id,
            desired,
            drain_window: Duration::from_secs(u64::from(
                spec.drain_window_secs(self.default_drain_secs),
            )),
            emptying: false,
        };
        let mut planned = self.planned.lock().unwrap_or_else(|e| e.into_inner());
        let shell = planned
            .entry(group.clone())
            .or_insert_with(|| empty(&target));
        if !same_group(shell, &target) {
            // Noticed here, where the old group is replaced, so that no pass can plan the
            // new group before the old one is handed over for emptying.
            if shell.load_balancer_id != target.load_balancer_id
                || shell.desired.v_server_group_id != target.desired.v_server_group_id
            {
                let _ = self.tx.send(Msg::Moved(Move {
                    port: group.clone(),
                    old: shell.clone(),
                    current_lb: target.load_balancer_id.clone(),
                    current_id: target.desired.v_server_group_id.clone(),
                }));
            }
            *shell = empty(&target);
        }
        Some(target)
    }
}

/// What the control loop learns from a pass.
#[derive(Debug)]
pub struct PassReport {
    pub group: GroupRef,
    pub load_balancer_id: String,
    /// `Ok((group id, owned members left))`, or how the pass failed.
    pub result: Result<(Option<String>, bool), PassFailure>,
    /// Events about single backends of the group (refused and held out), for the Service.
    pub events: Vec<AgentEvent>,
    /// Whether a listener forwards to the group, when the pass looked it up by name.
    pub listened: Option<bool>,
}

/// A pass that failed, as the control loop needs it.
#[derive(Debug)]
pub struct PassFailure {
    /// The Event to report when the error is permanent.
    pub event: Option<AgentEvent>,
    /// The SLB instance does not exist (any more): a group being emptied there has
    /// nothing of ours left.
    pub load_balancer_gone: bool,
}

/// Tells the pod side first (readiness gates and drain confirmations wait on it), then
/// counts errors and queues the rest for the control loop. Never blocks.
pub struct AgentObserver {
    pub pods: SharedPodSide,
    pub metrics: AgentMetrics,
    pub timer: Arc<DrainTimer>,
    pub tx: mpsc::UnboundedSender<Msg>,
}

impl PassObserver for AgentObserver {
    fn pass_delayed(&self, group: &GroupRef, waited: Duration) {
        let _ = self.tx.send(Msg::Delayed {
            service: group.service.clone(),
            waited,
        });
    }

    fn pass_finished(
        &self,
        group: &GroupRef,
        target: &GroupTarget,
        result: &Result<PassOutcome, ReconcileError>,
    ) {
        // A moved port's old group is no gate's or drain's business: the pod side reads
        // the groups the Service points at now.
        if group.retired.is_none() {
            self.pods.pass_finished(group, target, result);
        }
        let result_listened = result.as_ref().ok().and_then(|o| o.listened);
        let events = match result {
            Ok(outcome) => outcome
                .quarantined
                .iter()
                .map(|q| quarantine_event(q, outcome.v_server_group_id.as_deref()))
                .collect(),
            Err(_) => Vec::new(),
        };
        let result = match result {
            Ok(outcome) => Ok((
                outcome.v_server_group_id.clone().inspect(|id| {
                    self.timer.set_window(id, target.drain_window);
                }),
                outcome
                    .backends
                    .iter()
                    .any(|b| target.desired.name.owns(&b.description)),
            )),
            Err(err) => {
                self.metrics.reconcile_errors_total.inc();
                tracing::warn!(service = %group.service, port = group.service_port, error = %err, "reconcile pass failed");
                Err(PassFailure {
                    event: (err.class() == ErrorClass::Permanent)
                        .then(|| AgentEvent::slb_error(&err.source)),
                    load_balancer_gone: err.load_balancer_gone(),
                })
            }
        };
        let _ = self.tx.send(Msg::Pass(PassReport {
            group: group.clone(),
            load_balancer_id: target.load_balancer_id.clone(),
            result,
            events,
            listened: result_listened,
        }));
    }
}

fn quarantine_event(q: &QuarantinedBackend, group_id: Option<&str>) -> AgentEvent {
    let b = &q.backend;
    let backend = match b.server_ip {
        Some(ip) => format!("{} ({ip}) port {}", b.server_id, b.port),
        None => format!("{} port {}", b.server_id, b.port),
    };
    AgentEvent::BackendQuarantined {
        backend,
        group: group_id.unwrap_or("?").to_owned(),
        action: q.held.refusal.action.as_str().to_owned(),
        code: q.held.refusal.code.clone(),
        message: q.held.refusal.message.clone(),
        retry_secs: q.held.hold.as_secs(),
    }
}

/// `target` with no desired backend: drains and removes every owned one.
pub fn empty(target: &GroupTarget) -> GroupTarget {
    let mut desired = target.desired.clone();
    desired.backends = Vec::new();
    GroupTarget {
        load_balancer_id: target.load_balancer_id.clone(),
        desired,
        drain_window: target.drain_window,
        emptying: true,
    }
}

fn same_group(shell: &GroupTarget, target: &GroupTarget) -> bool {
    shell.load_balancer_id == target.load_balancer_id
        && shell.drain_window == target.drain_window
        && shell.desired.v_server_group_id == target.desired.v_server_group_id
        && shell.desired.name == target.desired.name
        && shell.desired.protocol == target.desired.protocol
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::PlannerConfig;
    use crate::index::fixtures::{mk_node, mk_service};

    fn targets() -> (IndexTargets, mpsc::UnboundedReceiver<Msg>) {
        let mut index = ClusterIndex::new(PlannerConfig::default());
        index.apply_service(&mk_service("web"));
        index.apply_node(&mk_node("node-1", "i-1"));
        let (tx, rx) = mpsc::unbounded_channel();
        let targets = IndexTargets {
            index: Arc::new(RwLock::new(index)),
            cleanups: Arc::default(),
            planned: Arc::default(),
            default_drain_secs: 30,
            tx,
        };
        (targets, rx)
    }

    #[test]
    fn a_retired_group_without_its_cleanup_entry_is_not_planned_as_the_live_one() {
        let (targets, _rx) = targets();
        let live = GroupRef::new("default/web", 80);
        assert!(targets.target(&live).is_some());
        let retired = GroupRef {
            retired: Some("lb-0/rsp-old".into()),
            ..live.clone()
        };
        // Its cleanup entry went when it was emptied; a drain deadline still wakes it.
        assert_eq!(targets.target(&retired), None);
        let planned = targets.planned.lock().unwrap();
        assert_eq!(
            planned.keys().collect::<Vec<_>>(),
            [&live],
            "no stray entry"
        );
    }

    #[test]
    fn a_retired_group_being_emptied_gets_its_empty_target() {
        let (targets, _rx) = targets();
        let live = GroupRef::new("default/web", 80);
        let shell = empty(&targets.target(&live).unwrap());
        let retired = GroupRef {
            retired: Some("lb-0/rsp-old".into()),
            ..live
        };
        targets
            .cleanups
            .lock()
            .unwrap()
            .insert(retired.clone(), shell.clone());
        assert_eq!(targets.target(&retired), Some(shell));
    }
}

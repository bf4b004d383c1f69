//! The scheduler's [`TargetSource`] over the cluster index, and the [`PassObserver`] that
//! hands pass outcomes to the pod side, the metrics and the control loop.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::mpsc;

use super::drain_timer::DrainTimer;
use super::groups::{empty, Emptying};
use super::messages::{Msg, PassFailure, PassReport};
use super::metrics::AgentMetrics;
use super::pods::SharedPodSide;
use crate::desired::plan_service;
use crate::index::ClusterIndex;
use crate::k8s::events::AgentEvent;
use crate::model::{DesiredService, ServiceRef};
use crate::reconcile::{
    GroupRef, GroupTarget, PassObserver, PassOutcome, QuarantinedBackend, ReconcileError,
    TargetSource,
};
use crate::slb::ErrorClass;

/// Group targets from the index; groups being emptied get the empty targets the control
/// loop put in [`GroupBook::emptying`](super::groups::GroupBook) instead. A pure read.
pub struct IndexTargets {
    pub index: Arc<RwLock<ClusterIndex>>,
    pub emptying: Emptying,
    pub default_drain_secs: u32,
}

impl TargetSource for IndexTargets {
    fn target(&self, group: &GroupRef) -> Option<GroupTarget> {
        if let Some(target) = self
            .emptying
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
        let index = self.index.read().unwrap_or_else(|e| e.into_inner());
        let desired = plan_service(&index, &group.service)?;
        live_targets(&index, desired, self.default_drain_secs)
            .into_iter()
            .find(|t| t.desired.service_port == group.service_port)
    }
}

/// The targets of a Service's live ports, from its desired state (empty when it has no
/// load balancer or no valid annotations).
pub fn live_targets(
    index: &ClusterIndex,
    desired: DesiredService,
    default_drain_secs: u32,
) -> Vec<GroupTarget> {
    let Some(r) = ServiceRef::parse(&desired.service) else {
        return Vec::new();
    };
    let (Some(spec), Some(load_balancer_id)) = (index.lb_spec(&r), desired.load_balancer_id) else {
        return Vec::new();
    };
    let drain_window = Duration::from_secs(u64::from(spec.drain_window_secs(default_drain_secs)));
    desired
        .groups
        .into_iter()
        .map(|desired| GroupTarget {
            load_balancer_id: load_balancer_id.clone(),
            desired,
            drain_window,
            emptying: false,
        })
        .collect()
}

/// Tells the pod side first (readiness gates and drain confirmations wait on it), then
/// counts errors and queues the rest for the control loop. Never blocks.
pub struct AgentObserver {
    pub pods: SharedPodSide,
    pub metrics: AgentMetrics,
    pub timer: Arc<DrainTimer>,
    pub tx: mpsc::UnboundedSender<Msg>,
    /// `--slb-propagation-seconds`: a drain lasts its window plus this.
    pub slb_propagation: Duration,
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
                    self.timer
                        .set_window(id, self.slb_propagation + target.drain_window);
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
            target: empty(target),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::PlannerConfig;
    use crate::index::fixtures::{mk_node, mk_service};
    use crate::model::RetiredGroup;

    fn targets() -> IndexTargets {
        let mut index = ClusterIndex::new(PlannerConfig::default());
        index.apply_service(&mk_service("web"));
        index.apply_node(&mk_node("node-1", "i-1"));
        IndexTargets {
            index: Arc::new(RwLock::new(index)),
            emptying: Arc::default(),
            default_drain_secs: 30,
        }
    }

    #[test]
    fn a_retired_group_without_its_cleanup_entry_is_not_planned_as_the_live_one() {
        let targets = targets();
        let live = GroupRef::new(ServiceRef::new("default", "web"), 80);
        assert!(targets.target(&live).is_some());
        let retired = GroupRef {
            retired: Some(RetiredGroup::new("lb-0", "rsp-old")),
            ..live.clone()
        };
        // Its cleanup entry went when it was emptied; a drain deadline still wakes it.
        assert_eq!(targets.target(&retired), None);
    }

    #[test]
    fn a_retired_group_being_emptied_gets_its_empty_target() {
        let targets = targets();
        let live = GroupRef::new(ServiceRef::new("default", "web"), 80);
        let shell = empty(&targets.target(&live).unwrap());
        let retired = GroupRef {
            retired: Some(RetiredGroup::new("lb-0", "rsp-old")),
            ..live
        };
        targets
            .emptying
            .lock()
            .unwrap()
            .insert(retired.clone(), shell.clone());
        assert_eq!(targets.target(&retired), Some(shell));
    }
}

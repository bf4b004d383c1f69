//! The listeners of a Service's load balancer: connection-drain settings applied from its
//! annotations (read first, written only when they differ), and a `GroupWithoutListener`
//! Event for a group no listener forwards to.

use super::control::Control;
use super::messages::Msg;
use crate::index::ServiceRef;
use crate::k8s::events::AgentEvent;
use crate::reconcile::ListenerTarget;

impl Control {
    /// One `GroupWithoutListener` Event when a group of the Service is found with no
    /// listener forwarding to it (it gets no traffic), again only after it was bound.
    pub(super) fn note_listeners(
        &mut self,
        r: &ServiceRef,
        load_balancer_id: &str,
        group: &str,
        bound: bool,
    ) {
        let key = (r.clone(), group.to_owned());
        if bound {
            self.state.unbound.remove(&key);
            return;
        }
        if !self.state.unbound.insert(key) {
            return;
        }
        let port = self
            .state
            .groups
            .ids
            .iter()
            .find(|(g, id)| &g.service == r && g.retired.is_none() && *id == group)
            .map(|(g, _)| g.service_port);
        tracing::warn!(service = %r, %load_balancer_id, %group, ?port,
            "no listener forwards to the Service's vServer group: it gets no traffic");
        self.emit(
            r,
            AgentEvent::GroupWithoutListener {
                load_balancer_id: load_balancer_id.to_owned(),
                group: group.to_owned(),
                port,
            },
        );
    }

    /// Applies the Service's connection-drain annotations to its listeners when they
    /// differ from what was last applied (the executor reads before it writes).
    pub(super) fn sync_listeners(&mut self, r: &ServiceRef, load_balancer_id: &str) {
        if !self.active() {
            return;
        }
        let key = r.clone();
        let target = {
            let index = self.index.read().unwrap_or_else(|e| e.into_inner());
            let Some(spec) = index.lb_spec(r) else {
                return;
            };
            // Nothing to apply: listeners are not read at all (a group without one is
            // noticed when the group is looked up by name).
            if spec.connection_drain.is_none() {
                return;
            }
            let mut ids: Vec<String> = self
                .state
                .groups
                .ids
                .iter()
                .filter(|(g, _)| &g.service == r && g.retired.is_none())
                .map(|(_, id)| id.clone())
                .collect();
            ids.sort();
            ListenerTarget {
                load_balancer_id: load_balancer_id.to_owned(),
                v_server_group_ids: ids,
                connection_drain: spec.connection_drain,
                connection_drain_timeout: spec.connection_drain_timeout,
                drain_window_secs: spec.drain_window_secs(self.default_drain_secs),
            }
        };
        if self.state.listeners.get(&key) == Some(&target) {
            return;
        }
        self.state.listeners.insert(key.clone(), target.clone());
        let executor = self.executor.clone();
        let tx = self.tx.clone();
        self.state.writes.spawn(async move {
            match executor.reconcile_listeners(&target).await {
                Ok(outcome) => {
                    for group in &target.v_server_group_ids {
                        let _ = tx.send(Msg::Listeners {
                            service: key.clone(),
                            load_balancer_id: target.load_balancer_id.clone(),
                            group: group.clone(),
                            bound: !outcome.unbound.contains(group),
                        });
                    }
                    for warning in &outcome.warnings {
                        tracing::warn!(service = %key, "{warning}");
                    }
                    if !outcome.changed.is_empty() {
                        tracing::info!(service = %key, ports = ?outcome.changed, "listener drain settings written");
                    }
                }
                Err(err) => {
                    tracing::warn!(service = %key, error = %err, "cannot apply listener drain settings");
                    let _ = tx.send(Msg::ListenersFailed(key));
                }
            }
        });
    }
}

//! What the control loop reports besides passes: `BadAnnotation` Events and the
//! listeners' connection-drain settings.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Service;
use kube::Resource;

use super::control::{Control, Msg};
use crate::annotations::{self, AnnotationError};
use crate::index::ServiceRef;
use crate::k8s::events::AgentEvent;
use crate::reconcile::ListenerTarget;

impl Control {
    /// One `BadAnnotation` Event per problem, once per distinct set of problems.
    pub(super) fn report_bad_annotations(&mut self, r: &ServiceRef, svc: &Service) {
        let empty = BTreeMap::new();
        let errors = match annotations::parse(svc.metadata.annotations.as_ref().unwrap_or(&empty)) {
            Ok(_) => {
                self.state.bad_annotations.remove(r);
                return;
            }
            Err(errors) => errors,
        };
        let texts: Vec<String> = errors.iter().map(ToString::to_string).collect();
        if self.state.bad_annotations.get(r) == Some(&texts) {
            return;
        }
        tracing::warn!(service = %r, errors = ?texts, "Service skipped: bad annotations");
        self.state.bad_annotations.insert(r.clone(), texts);
        let reference = svc.object_ref(&());
        let events = self.events.clone();
        self.state.writes.spawn(async move {
            for error in errors {
                let event = match error {
                    AnnotationError::Missing { key, fix } => AgentEvent::BadAnnotation {
                        key: key.to_owned(),
                        value: String::new(),
                        problem: format!("missing: {fix}"),
                    },
                    AnnotationError::Invalid {
                        key,
                        value,
                        expected,
                    } => AgentEvent::BadAnnotation {
                        key: key.to_owned(),
                        value,
                        problem: format!("expected {expected}"),
                    },
                };
                events.emit(&event, &reference).await;
            }
        });
    }

    /// An `ApiBudgetExceeded` Event when pod-facing work of a Service took longer than
    /// the API budget should allow, at most once per Service every five minutes.
    pub(super) fn report_delay(&mut self, service: &str, waited: std::time::Duration) {
        let Some(r) = super::target::service_ref(service) else {
            return;
        };
        let now = tokio::time::Instant::now();
        if self
            .state
            .delayed
            .get(&r)
            .is_some_and(|at| now.duration_since(*at) < std::time::Duration::from_secs(300))
        {
            return;
        }
        self.state.delayed.insert(r.clone(), now);
        let qps = self.executor.budget().period();
        self.emit(
            &r,
            AgentEvent::ApiBudgetExceeded {
                waited_secs: waited.as_secs(),
                qps: format!("{:.1}", 1.0 / qps.as_secs_f64()),
            },
        );
    }

    /// One `GroupWithoutListener` Event when a group of the Service is found with no
    /// listener forwarding to it (it gets no traffic), again only after it was bound.
    pub(super) fn note_listeners(
        &mut self,
        service: &str,
        load_balancer_id: &str,
        group: &str,
        bound: bool,
    ) {
        let Some(r) = super::target::service_ref(service) else {
            return;
        };
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
            .group_ids
            .iter()
            .find(|(g, id)| g.service == service && g.retired.is_none() && *id == group)
            .map(|(g, _)| g.service_port);
        tracing::warn!(%service, %load_balancer_id, %group, ?port,
            "no listener forwards to the Service's vServer group: it gets no traffic");
        self.emit(
            &r,
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
        let key = r.to_string();
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
                .group_ids
                .iter()
                .filter(|(g, _)| g.service == key && g.retired.is_none())
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

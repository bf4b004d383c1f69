//! What the control loop reports besides passes: `BadAnnotation` and
//! `UnsupportedAnnotation` Events and pod-facing work the API budget does not fit
//! (`ApiBudgetExceeded`).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Service;
use kube::Resource;

use super::control::Control;
use crate::annotations::{self, AnnotationError};
use crate::index::ServiceRef;
use crate::k8s::events::AgentEvent;

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

    /// One `UnsupportedAnnotation` Event naming the ACK annotations the Service sets
    /// that slb-sync does not read, once per distinct set.
    pub(super) fn report_unsupported_annotations(&mut self, r: &ServiceRef, svc: &Service) {
        let empty = BTreeMap::new();
        let keys = annotations::unsupported(svc.metadata.annotations.as_ref().unwrap_or(&empty));
        if keys.is_empty() {
            self.state.unsupported_annotations.remove(r);
            return;
        }
        if self.state.unsupported_annotations.get(r) == Some(&keys) {
            return;
        }
        tracing::warn!(service = %r, annotations = ?keys,
            "ACK annotations slb-sync does not read are set; they change nothing");
        self.state
            .unsupported_annotations
            .insert(r.clone(), keys.clone());
        self.emit(r, AgentEvent::UnsupportedAnnotation { keys });
    }

    /// An `ApiBudgetExceeded` Event when pod-facing work of a Service took longer than
    /// the API budget should allow, at most once per Service every five minutes.
    pub(super) fn report_delay(&mut self, r: &ServiceRef, waited: std::time::Duration) {
        let now = tokio::time::Instant::now();
        if self
            .state
            .delayed
            .get(r)
            .is_some_and(|at| now.duration_since(*at) < std::time::Duration::from_secs(300))
        {
            return;
        }
        self.state.delayed.insert(r.clone(), now);
        let qps = self.executor.budget().period();
        self.emit(
            r,
            AgentEvent::ApiBudgetExceeded {
                waited_secs: waited.as_secs(),
                qps: format!("{:.1}", 1.0 / qps.as_secs_f64()),
            },
        );
    }
}

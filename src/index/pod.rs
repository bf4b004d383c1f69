//! Pods matter to the planner only through the readiness-gate bootstrap: a not-yet-ready
//! endpoint counts when its pod waits on our gate for that Service and its containers are
//! ready (otherwise the gate could never open). Pods without such a gate are not stored.

use std::sync::Arc;

use super::intern::Interner;
use crate::model::StoredPod;

/// The agent's own readiness-gate condition type prefix (`<prefix><service-name>`).
pub const GATE_PREFIX: &str = "registered.slb-sync.io/";
/// ACK's readiness-gate condition type prefix, honoured the same way.
pub const ACK_GATE_PREFIX: &str = "service.readiness.alibabacloud.com/";

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PodGates {
    /// Names of the Services (in the pod's namespace) the pod has a gate for, sorted.
    pub(crate) services: Box<[Arc<str>]>,
    /// Condition `ContainersReady` is `True`.
    pub(crate) containers_ready: bool,
}

impl PodGates {
    /// `None` when the pod has no gate of ours or ACK's.
    pub(crate) fn from_pod(pod: &StoredPod, interner: &mut Interner) -> Option<Self> {
        let mut services: Vec<Arc<str>> = pod
            .spec
            .as_ref()?
            .readiness_gates
            .iter()
            .flatten()
            .filter_map(|g| {
                let t = g.condition_type.as_str();
                t.strip_prefix(GATE_PREFIX)
                    .or_else(|| t.strip_prefix(ACK_GATE_PREFIX))
            })
            .filter(|s| !s.is_empty())
            .map(|s| interner.get(s))
            .collect();
        if services.is_empty() {
            return None;
        }
        services.sort();
        services.dedup();
        let containers_ready = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| c.type_ == "ContainersReady" && c.status == "True")
            });
        Some(PodGates {
            services: services.into_boxed_slice(),
            containers_ready,
        })
    }

    /// The pod declares a gate for `service`.
    pub(crate) fn gated_by(&self, service: &str) -> bool {
        self.services.iter().any(|s| &**s == service)
    }

    /// The bootstrap admits this pod's not-ready endpoint for `service` as a backend that
    /// takes traffic at once (ENI): its gate is for `service` and its containers are ready.
    pub(crate) fn admits(&self, service: &str) -> bool {
        self.containers_ready && self.gated_by(service)
    }
}

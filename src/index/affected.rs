//! What the index tells its caller after each change: which Services to re-plan.

use std::collections::BTreeSet;

use crate::model::ServiceRef;

/// Which Services an object change affects.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Affected {
    /// Every affected Service (managed ones; a Service that stops being managed is
    /// listed once so its backends can be drained).
    pub services: BTreeSet<ServiceRef>,
    /// Shared Cluster-mode node sets a node change altered. Their Services are also in
    /// `services`; this names the change once, so thousands of Services sharing one set
    /// can be handled as one node entering, leaving or changing state.
    pub node_sets: Vec<NodeSetChange>,
    /// Those of `services` that lost a ready endpoint (a pod terminating or failing its
    /// readiness): a backend must be taken down, and a terminating pod waits for it
    /// within its grace period, so their passes go first.
    pub draining: BTreeSet<ServiceRef>,
}

/// One node's change in the eligible-node set shared by `services` Cluster-mode Services.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSetChange {
    pub node: String,
    /// The set's `backend-label` selector, sorted.
    pub backend_labels: Vec<(String, String)>,
    pub remove_unscheduled_backend: bool,
    /// How many Services share the set.
    pub services: usize,
}

impl Affected {
    pub fn is_empty(&self) -> bool {
        self.services.is_empty() && self.node_sets.is_empty()
    }

    /// Adds another change's Services (and node-set changes) to this one.
    pub fn extend(&mut self, other: Affected) {
        self.services.extend(other.services);
        self.node_sets.extend(other.node_sets);
        self.draining.extend(other.draining);
    }

    pub(super) fn insert(&mut self, ns: &str, name: &str) {
        self.services.insert(ServiceRef::new(ns, name));
    }
}

/// Counts of what the index holds, for logs and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IndexStats {
    pub managed_services: usize,
    pub endpoint_slices: usize,
    pub nodes: usize,
    pub gated_pods: usize,
    pub cached_node_sets: usize,
}

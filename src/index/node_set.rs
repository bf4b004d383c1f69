//! The eligible-node set shared by every Cluster-mode Service with the same
//! [`NodeSelector`]: computed once, cached, and dropped when a node change alters it.

use std::collections::HashMap;
use std::sync::Arc;

use super::node::{NodeInfo, NodeSelector, NodeStatus};
use crate::model::BackendState;

/// The nodes one selector picks, ready to become ECS backends.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct NodeSet {
    /// ECS instance ids with their state, sorted by id, one entry per id.
    pub(crate) backends: Box<[(Arc<str>, BackendState)]>,
    /// One error per node that would be a backend but has no usable providerID,
    /// sorted by node name.
    pub(crate) errors: Box<[String]>,
}

impl NodeSet {
    /// `nodes` must come ordered by instance id, as [`super::node_store::NodeStore::ordered`]
    /// yields them, so the set is built in backend order without sorting.
    pub(crate) fn compute<'a>(
        nodes: impl Iterator<Item = &'a NodeInfo>,
        selector: &NodeSelector,
    ) -> Self {
        let mut backends: Vec<(Arc<str>, BackendState)> = Vec::new();
        let mut errors = Vec::new();
        for node in nodes {
            let (id, state) = match node.status(selector) {
                NodeStatus::Excluded => continue,
                NodeStatus::NoInstance => {
                    errors.push(node.instance_error());
                    continue;
                }
                NodeStatus::Active(id) => (id, BackendState::Active),
                NodeStatus::Draining(id) => (id, BackendState::Draining),
            };
            match backends.last_mut() {
                // Two nodes claiming one instance: one entry, active if either is.
                Some(last) if last.0 == id => last.1 = last.1.min(state),
                _ => backends.push((id, state)),
            }
        }
        NodeSet {
            backends: backends.into_boxed_slice(),
            errors: errors.into_boxed_slice(),
        }
    }
}

/// Computed node sets by selector; lives behind a mutex in the index so that planning
/// can fill it through `&ClusterIndex`.
pub(crate) type NodeSetCache = HashMap<NodeSelector, Arc<NodeSet>>;

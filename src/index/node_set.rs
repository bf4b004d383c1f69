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
    pub(crate) fn compute<'a>(
        nodes: impl Iterator<Item = &'a NodeInfo>,
        selector: &NodeSelector,
    ) -> Self {
        let mut backends = Vec::new();
        let mut bad = Vec::new();
        for node in nodes {
            match node.status(selector) {
                NodeStatus::Excluded => {}
                NodeStatus::NoInstance => bad.push(node),
                NodeStatus::Active(id) => backends.push((id, BackendState::Active)),
                NodeStatus::Draining(id) => backends.push((id, BackendState::Draining)),
            }
        }
        // Two nodes claiming one instance: keep one entry, active before draining.
        backends.sort();
        backends.dedup_by(|later, earlier| later.0 == earlier.0);
        bad.sort_by(|a, b| a.name.cmp(&b.name));
        NodeSet {
            backends: backends.into_boxed_slice(),
            errors: bad.iter().map(|n| n.instance_error()).collect(),
        }
    }
}

/// Computed node sets by selector; lives behind a mutex in the index so that planning
/// can fill it through `&ClusterIndex`.
pub(crate) type NodeSetCache = HashMap<NodeSelector, Arc<NodeSet>>;

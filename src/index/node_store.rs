//! Nodes by name, and also ordered by ECS instance id so that every eligible-node set
//! comes out in backend order without sorting 5,000 ids per set.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::node::NodeInfo;

/// (instance id, node name); nodes without a usable instance id sort first, by name.
type OrderKey = (Option<Arc<str>>, Arc<str>);

fn order_key(info: &NodeInfo) -> OrderKey {
    (info.instance.as_ref().ok().cloned(), info.name.clone())
}

#[derive(Debug, Default)]
pub(crate) struct NodeStore {
    by_name: HashMap<Arc<str>, Arc<NodeInfo>>,
    ordered: BTreeMap<OrderKey, Arc<NodeInfo>>,
    /// How many are virtual nodes.
    virtual_nodes: usize,
}

impl NodeStore {
    /// Stores `info`, returning the node it replaces.
    pub(crate) fn insert(&mut self, info: NodeInfo) -> Option<Arc<NodeInfo>> {
        let info = Arc::new(info);
        self.virtual_nodes += usize::from(info.virtual_node);
        let old = self.by_name.insert(info.name.clone(), Arc::clone(&info));
        if let Some(old) = &old {
            self.ordered.remove(&order_key(old));
            self.virtual_nodes -= usize::from(old.virtual_node);
        }
        self.ordered.insert(order_key(&info), info);
        old
    }

    pub(crate) fn remove(&mut self, name: &str) -> Option<Arc<NodeInfo>> {
        let old = self.by_name.remove(name)?;
        self.ordered.remove(&order_key(&old));
        self.virtual_nodes -= usize::from(old.virtual_node);
        Some(old)
    }

    /// Whether any node is virtual: Cluster-mode groups then hold pods too.
    pub(crate) fn has_virtual(&self) -> bool {
        self.virtual_nodes > 0
    }

    pub(crate) fn get(&self, name: &str) -> Option<&NodeInfo> {
        self.by_name.get(name).map(|n| &**n)
    }

    pub(crate) fn len(&self) -> usize {
        self.by_name.len()
    }

    pub(crate) fn names(&self) -> impl Iterator<Item = &Arc<str>> {
        self.by_name.keys()
    }

    /// Every node, ordered by instance id (those without one first, by name).
    pub(crate) fn ordered(&self) -> impl Iterator<Item = &NodeInfo> {
        self.ordered.values().map(|n| &**n)
    }
}

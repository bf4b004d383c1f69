//! Node and Pod events. Node changes reach Services through the shared node sets and
//! the Local-mode Services with endpoints on the node; Pod changes through their gates.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Node;

use super::node::{NodeInfo, NodeSelector, NodeStatus};
use super::pod::PodGates;
use super::{meta_key, remove_nested, Affected, ClusterIndex, Listed, NodeSetChange, ServiceRef};
use crate::model::StoredPod;

/// A node's standing that matters to output: excluded nodes are as good as absent.
fn visible(node: Option<&NodeInfo>, selector: &NodeSelector) -> Option<NodeStatus> {
    node.map(|n| n.status(selector))
        .filter(|s| *s != NodeStatus::Excluded)
}

impl ClusterIndex {
    // ---- Nodes ----

    /// A Node was added or changed. Changes that alter no Service's view of the node
    /// (status heartbeats, labels no selector reads) affect nothing.
    pub fn apply_node(&mut self, obj: &Node) -> Affected {
        let Some(info) = NodeInfo::from_node(obj, &mut self.interner) else {
            return Affected::default();
        };
        let name = info.name.clone();
        let old = self.nodes.insert(info);
        self.node_changed(&name, old.as_deref(), self.nodes.get(&name))
    }

    /// A Node was deleted: it leaves every node set (the step planner drains what it owned).
    pub fn delete_node(&mut self, obj: &Node) -> Affected {
        let Some(name) = obj.metadata.name.as_deref() else {
            return Affected::default();
        };
        self.note_delete();
        let old = self.nodes.remove(name);
        self.node_changed(name, old.as_deref(), None)
    }

    /// Replaces every Node (after a re-list).
    pub fn reset_nodes(&mut self, all: &[Node]) -> Affected {
        let mut listed = Listed::default();
        let mut affected = Affected::default();
        for n in all {
            listed.note_node(&n.metadata);
            affected.extend(self.apply_node(n));
        }
        affected.extend(self.retain_nodes(&listed));
        affected
    }

    /// Drops the Nodes a relist did not return.
    pub fn retain_nodes(&mut self, listed: &Listed) -> Affected {
        let gone: Vec<Arc<str>> = self
            .nodes
            .names()
            .filter(|n| !listed.has("", n))
            .cloned()
            .collect();
        let mut affected = Affected::default();
        for name in gone {
            let old = self.nodes.remove(&name);
            affected.extend(self.node_changed(&name, old.as_deref(), None));
        }
        self.interner.collect_garbage();
        affected
    }

    /// Which Services see `name` change from `old` to `new`: the users of every shared
    /// node set whose view of the node changed (that cached set is dropped), and the
    /// Local-mode Services with endpoints on the node.
    fn node_changed(&self, name: &str, old: Option<&NodeInfo>, new: Option<&NodeInfo>) -> Affected {
        let mut affected = Affected::default();
        if old == new {
            return affected;
        }
        self.cache()
            .retain(|sel, _| visible(old, sel) == visible(new, sel));
        // Collected first and turned into the set in one sorted bulk build: thousands of
        // Services can share a node set, and inserting them one by one dominated.
        let mut services = Vec::new();
        for (sel, users) in &self.node_set_users {
            if visible(old, sel) == visible(new, sel) {
                continue;
            }
            affected.node_sets.push(NodeSetChange {
                node: name.to_owned(),
                backend_labels: sel
                    .labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                remove_unscheduled_backend: sel.remove_unscheduled,
                services: users.len(),
            });
            services.extend(users.iter().map(|(ns, svc)| ServiceRef::new(&**ns, &**svc)));
        }
        for (ns, svc) in self
            .node_users
            .get(name)
            .into_iter()
            .flat_map(HashMap::keys)
        {
            let Some(info) = self.service_info(ns, svc) else {
                continue;
            };
            if info.mode == crate::model::Mode::Local
                && info.spec.is_ok()
                && visible(old, &info.selector) != visible(new, &info.selector)
            {
                services.push(ServiceRef::new(&**ns, &**svc));
            }
        }
        services.sort_unstable();
        affected.services = services.into_iter().collect();
        affected
    }

    // ---- Pods ----

    /// A Pod was added or changed; only its readiness gates and ContainersReady matter.
    pub fn apply_pod(&mut self, obj: &StoredPod) -> Affected {
        let Some((ns, name)) = meta_key(&obj.metadata) else {
            return Affected::default();
        };
        let gates = PodGates::from_pod(obj, &mut self.interner);
        self.set_pod(ns, name, gates)
    }

    /// A Pod was deleted.
    pub fn delete_pod(&mut self, obj: &StoredPod) -> Affected {
        let Some((ns, name)) = meta_key(&obj.metadata) else {
            return Affected::default();
        };
        self.note_delete();
        self.set_pod(ns, name, None)
    }

    /// Replaces every Pod (after a re-list).
    pub fn reset_pods(&mut self, all: &[StoredPod]) -> Affected {
        let mut affected = Affected::default();
        for p in all {
            affected.extend(self.apply_pod(p));
        }
        affected.extend(self.retain_pods(&Listed::of(all)));
        affected
    }

    /// Drops the Pods a relist did not return.
    pub fn retain_pods(&mut self, listed: &Listed) -> Affected {
        let gone: Vec<(Arc<str>, Box<str>)> = self
            .pods
            .iter()
            .flat_map(|(ns, m)| m.keys().map(move |n| (ns.clone(), n.clone())))
            .filter(|(ns, n)| !listed.has(ns, n))
            .collect();
        let mut affected = Affected::default();
        for (ns, pod) in gone {
            affected.extend(self.set_pod(&ns, &pod, None));
        }
        self.interner.collect_garbage();
        affected
    }

    fn set_pod(&mut self, ns: &str, name: &str, gates: Option<PodGates>) -> Affected {
        let old = self.pod_gates(ns, name);
        if old == gates.as_ref() {
            return Affected::default();
        }
        let mut affected = Affected::default();
        for svc in old
            .into_iter()
            .chain(gates.as_ref())
            .flat_map(|g| g.services.iter())
        {
            self.note_endpoint_change(&mut affected, ns, svc);
        }
        match gates {
            Some(g) => {
                let ns = self.interner.get(ns);
                self.pods.entry(ns).or_default().insert(name.into(), g);
            }
            None => remove_nested(&mut self.pods, ns, name),
        }
        affected
    }
}

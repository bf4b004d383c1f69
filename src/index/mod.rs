//! Incremental cluster index fed by watch events (apply/delete/reset per kind).
//!
//! It keeps only what the planner reads (no managedFields, no full specs), interns the
//! strings that repeat across objects, and answers for every change which Services it
//! affects, so the agent re-plans only those. Cluster-mode Services with the same node
//! selector share one cached eligible-node set, dropped only when a node change alters it.

mod affected;
#[cfg(test)]
pub(crate) mod fixtures;
mod intern;
mod listed;
mod node;
mod node_set;
mod node_store;
mod nodes_pods;
mod pod;
mod selectors;
mod service;
mod slice;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::model::LbSpec;
use crate::model::PlannerConfig;
pub use crate::model::ServiceRef;
pub use affected::{Affected, IndexStats, NodeSetChange};
pub(crate) use intern::Interner;
pub use listed::Listed;
pub use node::parse_provider_id;
pub use node::{is_virtual_node, DRAIN_TAINTS, EXCLUDE_LABELS, VIRTUAL_NODE_LABEL};
pub(crate) use node::{NodeInfo, NodeSelector, NodeStatus};
pub(crate) use node_set::NodeSet;
use node_set::NodeSetCache;
use node_store::NodeStore;
use pod::PodGates;
pub use pod::{ACK_GATE_PREFIX, GATE_PREFIX};
pub use selectors::BackedService;
pub(crate) use service::{is_managed, PortInfo, ServiceInfo, TargetPort};
pub use slice::SERVICE_NAME_LABEL;
pub(crate) use slice::{EndpointInfo, EndpointState, SliceInfo};

type SvcKey = (Arc<str>, Arc<str>);
type SlicesByName = BTreeMap<Box<str>, SliceInfo>;

/// The planner's view of the cluster.
#[derive(Debug)]
pub struct ClusterIndex {
    config: PlannerConfig,
    interner: Interner,
    /// Managed Services only: namespace → name → info.
    services: HashMap<Arc<str>, HashMap<Arc<str>, ServiceInfo>>,
    /// Managed Services filed by their pod selector, for the pod side.
    pod_selectors: selectors::PodSelectors,
    /// Cluster-mode Services (with valid annotations) by the node set they share.
    node_set_users: HashMap<NodeSelector, BTreeSet<SvcKey>>,
    /// namespace → Service name → slice name → slice.
    slices: HashMap<Arc<str>, HashMap<Arc<str>, SlicesByName>>,
    /// namespace → slice name → the Service it belongs to.
    slice_owner: HashMap<Arc<str>, HashMap<Box<str>, Arc<str>>>,
    nodes: NodeStore,
    /// node → Services with endpoints on it → how many.
    node_users: HashMap<Arc<str>, HashMap<SvcKey, u32>>,
    /// Pods with a readiness gate of ours or ACK's: namespace → pod name → gates.
    pods: HashMap<Arc<str>, HashMap<Box<str>, PodGates>>,
    node_sets: Mutex<NodeSetCache>,
    deletes_since_gc: u32,
}

/// Objects without a namespace are read as `default`, as kubectl does for manifests.
fn meta_key(meta: &ObjectMeta) -> Option<(&str, &str)> {
    Some((
        meta.namespace.as_deref().unwrap_or("default"),
        meta.name.as_deref()?,
    ))
}

impl ClusterIndex {
    /// An empty index; `config` decides which Services are managed and is fixed for its life.
    pub fn new(config: PlannerConfig) -> Self {
        ClusterIndex {
            config,
            interner: Interner::default(),
            services: HashMap::new(),
            pod_selectors: selectors::PodSelectors::default(),
            node_set_users: HashMap::new(),
            slices: HashMap::new(),
            slice_owner: HashMap::new(),
            nodes: NodeStore::default(),
            node_users: HashMap::new(),
            pods: HashMap::new(),
            node_sets: Mutex::new(NodeSetCache::new()),
            deletes_since_gc: 0,
        }
    }

    /// The configuration the index was built with (the planner reads `cluster_id`).
    pub fn config(&self) -> &PlannerConfig {
        &self.config
    }

    /// The parsed annotations of a managed Service (`None` when unmanaged, absent or
    /// its annotations are invalid); the agent reads the drain window from it.
    pub fn lb_spec(&self, service: &ServiceRef) -> Option<&LbSpec> {
        self.service_info(&service.namespace, &service.name)?
            .spec
            .as_ref()
            .ok()
    }

    /// How much the index holds.
    pub fn stats(&self) -> IndexStats {
        IndexStats {
            managed_services: self.services.values().map(HashMap::len).sum(),
            endpoint_slices: self.slice_owner.values().map(HashMap::len).sum(),
            nodes: self.nodes.len(),
            gated_pods: self.pods.values().map(HashMap::len).sum(),
            cached_node_sets: self.cache().len(),
        }
    }

    // ---- Services ----

    /// A Service was added or changed. Unmanaged Services are not stored; one that stops
    /// being managed is removed and reported, so its backends can be drained.
    pub fn apply_service(&mut self, obj: &Service) -> Affected {
        let Some((ns, name)) = meta_key(&obj.metadata) else {
            return Affected::default();
        };
        let info = ServiceInfo::from_service(obj, &self.config, &mut self.interner);
        self.set_service(ns, name, info)
    }

    /// A Service was deleted.
    pub fn delete_service(&mut self, obj: &Service) -> Affected {
        let Some((ns, name)) = meta_key(&obj.metadata) else {
            return Affected::default();
        };
        self.note_delete();
        self.set_service(ns, name, None)
    }

    /// Replaces every Service (after a re-list); reports those that changed or went away.
    pub fn reset_services(&mut self, all: &[Service]) -> Affected {
        let mut affected = Affected::default();
        for svc in all {
            affected.extend(self.apply_service(svc));
        }
        affected.extend(self.retain_services(&Listed::of(all)));
        affected
    }

    /// Drops the Services a relist did not return (the rest were applied as they came).
    pub fn retain_services(&mut self, listed: &Listed) -> Affected {
        let gone: Vec<SvcKey> = self
            .services
            .iter()
            .flat_map(|(ns, m)| m.keys().map(move |n| (ns.clone(), n.clone())))
            .filter(|(ns, n)| !listed.has(ns, n))
            .collect();
        let mut affected = Affected::default();
        for (ns, name) in gone {
            affected.extend(self.set_service(&ns, &name, None));
        }
        self.interner.collect_garbage();
        affected
    }

    fn set_service(&mut self, ns: &str, name: &str, info: Option<ServiceInfo>) -> Affected {
        if self.service_info(ns, name) == info.as_ref() {
            return Affected::default();
        }
        let key: SvcKey = (self.interner.get(ns), self.interner.get(name));
        let old = self.services.get_mut(ns).and_then(|m| m.remove(name));
        if self.services.get(ns).is_some_and(HashMap::is_empty) {
            self.services.remove(ns);
        }
        if let Some(old) = &old {
            self.pod_selectors.remove(ns, name, old);
        }
        if let Some(old) = old.filter(ServiceInfo::uses_node_set) {
            if let Some(users) = self.node_set_users.get_mut(&old.selector) {
                users.remove(&key);
                if users.is_empty() {
                    self.node_set_users.remove(&old.selector);
                    self.cache().remove(&old.selector);
                }
            }
        }
        if let Some(info) = info {
            if info.uses_node_set() {
                self.node_set_users
                    .entry(info.selector.clone())
                    .or_default()
                    .insert(key.clone());
            }
            self.pod_selectors.insert(&key.0, &key.1, &info);
            self.services
                .entry(key.0.clone())
                .or_default()
                .insert(key.1.clone(), info);
        }
        let mut affected = Affected::default();
        affected.insert(ns, name);
        affected
    }

    // ---- EndpointSlices ----

    /// An EndpointSlice was added or changed. Slices are matched to Services by the
    /// `kubernetes.io/service-name` label and namespace; FQDN slices are ignored.
    pub fn apply_endpoint_slice(&mut self, obj: &EndpointSlice) -> Affected {
        let Some((ns, slice)) = meta_key(&obj.metadata) else {
            return Affected::default();
        };
        let owner = obj
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(SERVICE_NAME_LABEL))
            .filter(|s| !s.is_empty());
        let new =
            owner.and_then(|o| Some((o.as_str(), SliceInfo::from_slice(obj, &mut self.interner)?)));
        self.set_slice(ns, slice, new)
    }

    /// An EndpointSlice was deleted.
    pub fn delete_endpoint_slice(&mut self, obj: &EndpointSlice) -> Affected {
        let Some((ns, slice)) = meta_key(&obj.metadata) else {
            return Affected::default();
        };
        self.note_delete();
        self.set_slice(ns, slice, None)
    }

    /// Replaces every EndpointSlice (after a re-list).
    pub fn reset_endpoint_slices(&mut self, all: &[EndpointSlice]) -> Affected {
        let mut affected = Affected::default();
        for s in all {
            affected.extend(self.apply_endpoint_slice(s));
        }
        affected.extend(self.retain_endpoint_slices(&Listed::of(all)));
        affected
    }

    /// Drops the EndpointSlices a relist did not return.
    pub fn retain_endpoint_slices(&mut self, listed: &Listed) -> Affected {
        let gone: Vec<(Arc<str>, Box<str>)> = self
            .slice_owner
            .iter()
            .flat_map(|(ns, m)| m.keys().map(move |n| (ns.clone(), n.clone())))
            .filter(|(ns, n)| !listed.has(ns, n))
            .collect();
        let mut affected = Affected::default();
        for (ns, slice) in gone {
            affected.extend(self.set_slice(&ns, &slice, None));
        }
        self.interner.collect_garbage();
        affected
    }

    fn set_slice(&mut self, ns: &str, slice: &str, new: Option<(&str, SliceInfo)>) -> Affected {
        let old_owner = self.slice_owner.get(ns).and_then(|m| m.get(slice)).cloned();
        let lost_ready = old_owner.as_ref().is_some_and(|old| {
            let before = self
                .slices
                .get(ns)
                .and_then(|m| m.get(&**old))
                .and_then(|m| m.get(slice));
            let after = new.as_ref().filter(|(o, _)| *o == &**old).map(|(_, i)| i);
            before.is_some_and(|b| b.loses_ready(after))
        });
        let mut affected = self.set_slice_info(ns, slice, old_owner.clone(), new);
        if let Some(old) = old_owner.filter(|_| lost_ready) {
            let r = ServiceRef::new(ns, &*old);
            if affected.services.contains(&r) {
                affected.draining.insert(r);
            }
        }
        affected
    }

    fn set_slice_info(
        &mut self,
        ns: &str,
        slice: &str,
        old_owner: Option<Arc<str>>,
        new: Option<(&str, SliceInfo)>,
    ) -> Affected {
        let new = match (&old_owner, new) {
            // Same Service: the common case (an endpoint's condition changed). Replace in
            // place, and leave the node → Service counts alone when the nodes are the same.
            (Some(old), Some((owner, info))) if **old == *owner => {
                let existing = self
                    .slices
                    .get_mut(ns)
                    .and_then(|m| m.get_mut(&**old))
                    .and_then(|m| m.get_mut(slice));
                match existing {
                    Some(existing) if *existing == info => return Affected::default(),
                    Some(existing) if same_nodes(existing, &info) => {
                        *existing = info;
                        let mut affected = Affected::default();
                        self.note_endpoint_change(&mut affected, ns, owner);
                        return affected;
                    }
                    _ => Some((owner, info)),
                }
            }
            (_, new) => new,
        };
        let mut affected = Affected::default();
        if let Some(old) = old_owner {
            remove_nested(&mut self.slice_owner, ns, slice);
            let info = self.slices.get_mut(ns).and_then(|m| {
                let by_slice = m.get_mut(&*old)?;
                let info = by_slice.remove(slice);
                if by_slice.is_empty() {
                    m.remove(&*old);
                }
                info
            });
            if self.slices.get(ns).is_some_and(HashMap::is_empty) {
                self.slices.remove(ns);
            }
            if let Some(info) = info {
                self.count_node_users(ns, &old, &info, false);
            }
            self.note_endpoint_change(&mut affected, ns, &old);
        }
        if let Some((owner, info)) = new {
            let ns_a = self.interner.get(ns);
            let owner_a = self.interner.get(owner);
            self.count_node_users(ns, owner, &info, true);
            self.slices
                .entry(ns_a.clone())
                .or_default()
                .entry(owner_a.clone())
                .or_default()
                .insert(slice.into(), info);
            self.slice_owner
                .entry(ns_a)
                .or_default()
                .insert(slice.into(), owner_a);
            self.note_endpoint_change(&mut affected, ns, owner);
        }
        affected
    }

    /// Keeps `node_users` (node → Services with endpoints there) in step with a slice
    /// being added (`add`) or removed.
    fn count_node_users(&mut self, ns: &str, service: &str, info: &SliceInfo, add: bool) {
        let key: SvcKey = (self.interner.get(ns), self.interner.get(service));
        for node in info.endpoints.iter().filter_map(|e| e.node.as_ref()) {
            if add {
                *self
                    .node_users
                    .entry(node.clone())
                    .or_default()
                    .entry(key.clone())
                    .or_default() += 1;
            } else if let Some(users) = self.node_users.get_mut(node) {
                if let Some(n) = users.get_mut(&key) {
                    *n -= 1;
                    if *n == 0 {
                        users.remove(&key);
                    }
                }
                if users.is_empty() {
                    self.node_users.remove(node);
                }
            }
        }
    }

    fn note_endpoint_change(&self, affected: &mut Affected, ns: &str, service: &str) {
        // Cluster-mode groups hold the pods of virtual nodes: with any in the cluster,
        // their endpoints matter to every Cluster-mode Service too.
        if self.service_info(ns, service).is_some_and(|info| {
            info.uses_endpoints() || (info.uses_node_set() && self.nodes.has_virtual())
        }) {
            affected.insert(ns, service);
        }
    }

    // ---- Read access for the planner ----

    pub(crate) fn service_info(&self, ns: &str, name: &str) -> Option<&ServiceInfo> {
        self.services.get(ns)?.get(name)
    }

    /// Every managed Service, in no particular order.
    pub(crate) fn all_services(&self) -> impl Iterator<Item = (&str, &str, &ServiceInfo)> {
        self.services
            .iter()
            .flat_map(|(ns, m)| m.iter().map(move |(n, i)| (&**ns, &**n, i)))
    }

    /// The Service's slices by slice name.
    pub(crate) fn slices_of(
        &self,
        ns: &str,
        name: &str,
    ) -> impl Iterator<Item = (&str, &SliceInfo)> {
        self.slices
            .get(ns)
            .and_then(|m| m.get(name))
            .into_iter()
            .flat_map(|m| m.iter().map(|(k, v)| (&**k, v)))
    }

    pub(crate) fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.nodes.get(name)
    }

    pub(crate) fn pod_gates(&self, ns: &str, pod: &str) -> Option<&PodGates> {
        self.pods.get(ns)?.get(pod)
    }

    /// The shared eligible-node set for `selector`, computed on first use after a
    /// change that could alter it.
    pub(crate) fn node_set(&self, selector: &NodeSelector) -> Arc<NodeSet> {
        let mut cache = self.cache();
        if let Some(set) = cache.get(selector) {
            return Arc::clone(set);
        }
        let set = Arc::new(NodeSet::compute(self.nodes.ordered(), selector));
        cache.insert(selector.clone(), Arc::clone(&set));
        set
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, NodeSetCache> {
        // The cache holds only derived data, so a panic elsewhere cannot leave it wrong.
        self.node_sets.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Deletions leave interned names nobody uses; sweep them now and then.
    fn note_delete(&mut self) {
        self.deletes_since_gc += 1;
        if self.deletes_since_gc >= 4096 {
            self.deletes_since_gc = 0;
            self.interner.collect_garbage();
        }
    }
}

/// Both slices list endpoints on the same nodes, in the same order.
fn same_nodes(a: &SliceInfo, b: &SliceInfo) -> bool {
    a.endpoints
        .iter()
        .map(|e| &e.node)
        .eq(b.endpoints.iter().map(|e| &e.node))
}

fn remove_nested<V>(map: &mut HashMap<Arc<str>, HashMap<Box<str>, V>>, outer: &str, inner: &str) {
    if let Some(m) = map.get_mut(outer) {
        m.remove(inner);
        if m.is_empty() {
            map.remove(outer);
        }
    }
}

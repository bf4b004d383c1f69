//! Which managed Services select a pod, answered without scanning every Service: each
//! Service with a pod selector is filed under the first (namespace, key, value) pair of
//! its selector, so a pod's candidates are the Services filed under one of its labels.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use super::{ClusterIndex, EndpointState, ServiceInfo, ServiceRef};
use crate::model::Mode;

/// namespace → label key → label value → Services filed there.
type Filed = HashMap<Arc<str>, HashMap<Arc<str>, HashMap<Arc<str>, BTreeSet<Arc<str>>>>>;

#[derive(Debug, Default)]
pub(super) struct PodSelectors(Filed);

impl PodSelectors {
    pub(super) fn insert(&mut self, ns: &Arc<str>, name: &Arc<str>, info: &ServiceInfo) {
        if let Some((k, v)) = info.pod_selector.first() {
            self.0
                .entry(ns.clone())
                .or_default()
                .entry(k.clone())
                .or_default()
                .entry(v.clone())
                .or_default()
                .insert(name.clone());
        }
    }

    pub(super) fn remove(&mut self, ns: &str, name: &str, info: &ServiceInfo) {
        let Some((k, v)) = info.pod_selector.first() else {
            return;
        };
        let Some(keys) = self.0.get_mut(ns) else {
            return;
        };
        if let Some(values) = keys.get_mut(&**k) {
            if let Some(names) = values.get_mut(&**v) {
                names.remove(name);
                if names.is_empty() {
                    values.remove(&**v);
                }
            }
            if values.is_empty() {
                keys.remove(&**k);
            }
        }
        if keys.is_empty() {
            self.0.remove(ns);
        }
    }

    /// Names of the Services filed under one of `labels` in `ns` (candidates only: the
    /// caller checks the whole selector).
    pub(super) fn candidates<'a>(
        &'a self,
        ns: &str,
        labels: &'a BTreeMap<String, String>,
    ) -> impl Iterator<Item = &'a Arc<str>> + 'a {
        let keys = self.0.get(ns);
        labels.iter().flat_map(move |(k, v)| {
            keys.and_then(|keys| keys.get(k.as_str())?.get(v.as_str()))
                .into_iter()
                .flatten()
        })
    }
}

/// True when `selector` (non-empty) is satisfied by `labels`.
pub(super) fn selects(
    selector: &[(Arc<str>, Arc<str>)],
    labels: &BTreeMap<String, String>,
) -> bool {
    !selector.is_empty()
        && selector
            .iter()
            .all(|(k, v)| labels.get(&**k).is_some_and(|l| l.as_str() == &**v))
}

/// A managed Service with valid annotations that selects a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackedService {
    /// The Service's name (the pod's namespace is the Service's).
    pub name: String,
    pub mode: Mode,
}

/// What the pod side asks the index: all answered from the Service's own entries, never by
/// scanning every Service or every slice.
impl ClusterIndex {
    /// The mode of a managed Service with valid annotations (`None`: not ours to act on).
    pub fn managed_mode(&self, service: &ServiceRef) -> Option<Mode> {
        let info = self.service_info(&service.namespace, &service.name)?;
        info.spec.is_ok().then_some(info.mode)
    }

    /// The managed Services with valid annotations in `namespace` whose selector matches
    /// `labels`, sorted by name. A Service without a selector selects no pod; one with bad
    /// annotations is skipped by the planner, so it holds nobody either.
    pub fn services_selecting(
        &self,
        namespace: &str,
        labels: &BTreeMap<String, String>,
    ) -> Vec<BackedService> {
        let mut out: Vec<BackedService> = self
            .pod_selectors
            .candidates(namespace, labels)
            .filter_map(|name| {
                let info = self.service_info(namespace, name)?;
                (info.spec.is_ok() && selects(&info.pod_selector, labels)).then(|| BackedService {
                    name: name.to_string(),
                    mode: info.mode,
                })
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out.dedup();
        out
    }

    /// The pod selector of a managed Service (empty when it selects no pod or is unknown).
    pub fn pod_selector(&self, service: &ServiceRef) -> Vec<(String, String)> {
        self.service_info(&service.namespace, &service.name)
            .map(|info| {
                info.pod_selector
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Another endpoint of `service` on `node` that is ready and not terminating (an
    /// address not among `pod_ips`, the deleted pod's own), so kube-proxy sends the node's
    /// SLB traffic there rather than to the deleted pod.
    pub fn other_serving_endpoint(
        &self,
        service: &ServiceRef,
        node: &str,
        pod_ips: &[IpAddr],
    ) -> bool {
        self.slices_of(&service.namespace, &service.name)
            .any(|(_, slice)| {
                slice.endpoints.iter().any(|ep| {
                    ep.state == EndpointState::Ready
                        && ep.node.as_deref() == Some(node)
                        && !slice.addresses(ep).iter().any(|a| pod_ips.contains(a))
                })
            })
    }
}

impl ClusterIndex {
    /// Whether `service` has a ready endpoint other than `pod_ips` anywhere: in Cluster
    /// mode kube-proxy answers the SLB's health check on a node only then.
    pub fn other_ready_endpoint(&self, service: &ServiceRef, pod_ips: &[IpAddr]) -> bool {
        self.slices_of(&service.namespace, &service.name)
            .any(|(_, slice)| {
                slice.endpoints.iter().any(|ep| {
                    ep.state == EndpointState::Ready
                        && !slice.addresses(ep).iter().any(|a| pod_ips.contains(a))
                })
            })
    }

    /// The ports of a managed Service (empty when unmanaged or unknown).
    pub fn service_ports(&self, service: &ServiceRef) -> Vec<u16> {
        self.service_info(&service.namespace, &service.name)
            .map(|info| info.ports.iter().map(|p| p.port).collect())
            .unwrap_or_default()
    }
}

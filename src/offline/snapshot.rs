//! The objects read from files, deduplicated by identity.

use std::collections::HashMap;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::Metadata;

use super::error::{LoadError, Origin};
use crate::model::StoredPod;

/// The cluster state the planner needs, as read from manifest or snapshot files, in the
/// order the files and documents were read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClusterSnapshot {
    pub services: Vec<Service>,
    pub endpoint_slices: Vec<EndpointSlice>,
    pub nodes: Vec<Node>,
    /// Reduced to what the agent's pod store keeps, so a plan sees what the agent would.
    pub pods: Vec<StoredPod>,
    /// `apps/v1` Deployments, read only when the loader keeps workloads (`doctor`);
    /// otherwise they are counted in `ignored`.
    pub deployments: Vec<Deployment>,
    /// `apps/v1` StatefulSets, as `deployments`.
    pub stateful_sets: Vec<StatefulSet>,
    /// Objects of other kinds (Deployments, Namespaces, …) that were skipped.
    pub ignored: usize,
}

/// Objects of one kind with the place each came from, keyed by `<namespace>/<name>`.
#[derive(Debug)]
struct Seen<K> {
    objects: Vec<K>,
    by_name: HashMap<String, (usize, Origin)>,
}

impl<K> Default for Seen<K> {
    fn default() -> Self {
        Seen {
            objects: Vec::new(),
            by_name: HashMap::new(),
        }
    }
}

impl<K: Metadata<Ty = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta> + PartialEq>
    Seen<K>
{
    /// Keeps the first of identical duplicates (the same object in two example
    /// directories); two different objects with one name are ambiguous and rejected.
    fn add(
        &mut self,
        kind: &'static str,
        mut obj: K,
        origin: Origin,
        namespaced: bool,
    ) -> Result<(), LoadError> {
        let meta = obj.metadata_mut();
        let Some(name) = meta.name.clone().filter(|n| !n.is_empty()) else {
            return Err(LoadError::Unnamed {
                origin: Box::new(origin),
                kind: kind.to_owned(),
            });
        };
        let key = if namespaced {
            // Manifests often leave the namespace to `kubectl -n`; offline, that is `default`.
            let namespace = meta
                .namespace
                .get_or_insert_with(|| "default".to_owned())
                .clone();
            format!("{namespace}/{name}")
        } else {
            name
        };
        if let Some((index, first)) = self.by_name.get(&key) {
            if self.objects[*index] == obj {
                tracing::debug!(%kind, name = %key, %origin, first = %first, "skipping identical duplicate");
                return Ok(());
            }
            return Err(LoadError::Conflict {
                kind,
                name: key,
                first: Box::new(first.clone()),
                second: Box::new(origin),
            });
        }
        self.by_name.insert(key, (self.objects.len(), origin));
        self.objects.push(obj);
        Ok(())
    }
}

/// Accumulates objects across files while checking identities.
#[derive(Debug, Default)]
pub(super) struct Collector {
    services: Seen<Service>,
    endpoint_slices: Seen<EndpointSlice>,
    nodes: Seen<Node>,
    pods: Seen<StoredPod>,
    deployments: Seen<Deployment>,
    stateful_sets: Seen<StatefulSet>,
    /// Whether Deployments and StatefulSets are kept rather than ignored.
    pub(super) keep_workloads: bool,
    ignored: usize,
}

impl Collector {
    pub(super) fn add_service(&mut self, obj: Service, origin: Origin) -> Result<(), LoadError> {
        self.services.add("Service", obj, origin, true)
    }

    pub(super) fn add_endpoint_slice(
        &mut self,
        obj: EndpointSlice,
        origin: Origin,
    ) -> Result<(), LoadError> {
        self.endpoint_slices.add("EndpointSlice", obj, origin, true)
    }

    pub(super) fn add_node(&mut self, obj: Node, origin: Origin) -> Result<(), LoadError> {
        self.nodes.add("Node", obj, origin, false)
    }

    pub(super) fn add_pod(&mut self, obj: Pod, origin: Origin) -> Result<(), LoadError> {
        self.pods.add("Pod", StoredPod::from(obj), origin, true)
    }

    pub(super) fn add_deployment(
        &mut self,
        obj: Deployment,
        origin: Origin,
    ) -> Result<(), LoadError> {
        self.deployments.add("Deployment", obj, origin, true)
    }

    pub(super) fn add_stateful_set(
        &mut self,
        obj: StatefulSet,
        origin: Origin,
    ) -> Result<(), LoadError> {
        self.stateful_sets.add("StatefulSet", obj, origin, true)
    }

    pub(super) fn ignore(&mut self) {
        self.ignored += 1;
    }

    pub(super) fn finish(self) -> ClusterSnapshot {
        ClusterSnapshot {
            services: self.services.objects,
            endpoint_slices: self.endpoint_slices.objects,
            nodes: self.nodes.objects,
            pods: self.pods.objects,
            deployments: self.deployments.objects,
            stateful_sets: self.stateful_sets.objects,
            ignored: self.ignored,
        }
    }
}

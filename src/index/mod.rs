//! Incremental cluster index fed by watch events (apply/delete/reset per kind).
//!
//! The public surface below is the contract the CLI and the agent code against.

use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::desired::PlannerConfig;

/// A Service's `<namespace>/<name>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceRef {
    pub namespace: String,
    pub name: String,
}

/// Which Services an object change affects.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Affected {
    pub services: std::collections::BTreeSet<ServiceRef>,
}

/// The planner's view of the cluster.
#[derive(Debug)]
pub struct ClusterIndex {
    config: PlannerConfig,
}

#[allow(unused_variables)]
impl ClusterIndex {
    pub fn new(config: PlannerConfig) -> Self {
        ClusterIndex { config }
    }
    pub fn config(&self) -> &PlannerConfig {
        &self.config
    }
    pub fn apply_service(&mut self, obj: &Service) -> Affected {
        todo!()
    }
    pub fn delete_service(&mut self, obj: &Service) -> Affected {
        todo!()
    }
    pub fn reset_services(&mut self, all: &[Service]) -> Affected {
        todo!()
    }
    pub fn apply_endpoint_slice(&mut self, obj: &EndpointSlice) -> Affected {
        todo!()
    }
    pub fn delete_endpoint_slice(&mut self, obj: &EndpointSlice) -> Affected {
        todo!()
    }
    pub fn reset_endpoint_slices(&mut self, all: &[EndpointSlice]) -> Affected {
        todo!()
    }
    pub fn apply_node(&mut self, obj: &Node) -> Affected {
        todo!()
    }
    pub fn delete_node(&mut self, obj: &Node) -> Affected {
        todo!()
    }
    pub fn reset_nodes(&mut self, all: &[Node]) -> Affected {
        todo!()
    }
    pub fn apply_pod(&mut self, obj: &Pod) -> Affected {
        todo!()
    }
    pub fn delete_pod(&mut self, obj: &Pod) -> Affected {
        todo!()
    }
    pub fn reset_pods(&mut self, all: &[Pod]) -> Affected {
        todo!()
    }
}

//! Backends and groups as the SLB API represents them (read and written alike).

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::{BackendKey, BackendType, Weight};

/// One `BackendServers[]` entry as `DescribeVServerGroupAttribute` reports it and as the
/// write calls send it (the weight is ignored on removal).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlbBackend {
    pub server_id: String,
    #[serde(default)]
    pub server_ip: Option<IpAddr>,
    pub port: u16,
    pub weight: Weight,
    #[serde(rename = "type")]
    pub backend_type: BackendType,
    #[serde(default)]
    pub description: String,
}

impl SlbBackend {
    /// The identity matching [`crate::model::Backend::key`]. An ENI backend the SLB reports
    /// without an IP cannot be matched to a pod and yields `None` (it is left alone).
    pub fn key(&self) -> Option<BackendKey> {
        match self.backend_type {
            BackendType::Ecs => Some(BackendKey::Ecs {
                server_id: self.server_id.clone(),
                port: self.port,
            }),
            BackendType::Eni => self.server_ip.map(|server_ip| BackendKey::Eni {
                server_ip,
                port: self.port,
            }),
        }
    }
}

/// One vServer group of an SLB instance with its backends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObservedGroup {
    pub v_server_group_id: String,
    #[serde(default)]
    pub v_server_group_name: String,
    pub load_balancer_id: String,
    #[serde(default)]
    pub backends: Vec<SlbBackend>,
}

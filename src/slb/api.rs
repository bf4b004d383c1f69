//! The operations the agent needs from the SLB (API version 2014-05-15) and ECS.

use std::collections::HashMap;
use std::net::IpAddr;

use async_trait::async_trait;

use super::SlbError;
use crate::model::{Listener, ObservedGroup, SlbBackend};

/// The tag the agent puts on every vServer group it creates, valued with the group's
/// name (its owner Description): the proof that a group is the agent's to delete once
/// empty. Groups without it (made by a user, found by name) are never deleted.
pub const CREATED_FOR_TAG: &str = "slb-sync.io/created-for";

/// A vServer group as `DescribeVServerGroups` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VServerGroupSummary {
    pub v_server_group_id: String,
    pub v_server_group_name: String,
    /// Its resource tags.
    pub tags: std::collections::BTreeMap<String, String>,
    /// Ports of the listeners that forward to it (`AssociatedObjects`).
    pub listener_ports: Vec<u16>,
}

impl VServerGroupSummary {
    /// True when the agent created this group (it carries [`CREATED_FOR_TAG`] with the
    /// group's own name).
    pub fn created_by_agent(&self) -> bool {
        self.tags.get(CREATED_FOR_TAG) == Some(&self.v_server_group_name)
    }
}

/// The most instances one `DescribeLoadBalancerListeners` call may name
/// (`LoadBalancerId.N`).
pub const LISTENER_READ_BATCH: usize = 10;

/// Health of one backend behind one listener (`DescribeHealthStatus`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendHealth {
    pub server_id: String,
    pub server_ip: Option<IpAddr>,
    pub port: u16,
    pub listener_port: u16,
    /// `normal`, `abnormal` or `unavailable`, as the SLB reports it.
    pub status: String,
}

/// Everything the agent asks of the SLB (and of ECS for ENI ids).
///
/// Write methods take any number of backends; implementations split them into calls of
/// at most the configured batch size (the SLB accepts 20), in the order given. A failure
/// part-way leaves earlier batches applied: callers re-read the group and re-plan.
#[async_trait]
pub trait SlbApi: Send + Sync {
    /// `DescribeVServerGroups`.
    async fn list_vserver_groups(
        &self,
        load_balancer_id: &str,
    ) -> Result<Vec<VServerGroupSummary>, SlbError>;
    /// `DescribeVServerGroupAttribute`.
    async fn describe_vserver_group(
        &self,
        v_server_group_id: &str,
    ) -> Result<ObservedGroup, SlbError>;
    /// `CreateVServerGroup` (empty), tagged [`CREATED_FOR_TAG`] = `name`; returns the new
    /// group id.
    async fn create_vserver_group(
        &self,
        load_balancer_id: &str,
        name: &str,
    ) -> Result<String, SlbError>;
    /// `DeleteVServerGroup`.
    async fn delete_vserver_group(&self, v_server_group_id: &str) -> Result<(), SlbError>;
    /// `AddVServerGroupBackendServers`. Adding a member that exists is an error at the SLB.
    async fn add_backends(
        &self,
        v_server_group_id: &str,
        backends: &[SlbBackend],
    ) -> Result<(), SlbError>;
    /// `RemoveVServerGroupBackendServers`. Absent members are ignored by the SLB.
    async fn remove_backends(
        &self,
        v_server_group_id: &str,
        backends: &[SlbBackend],
    ) -> Result<(), SlbError>;
    /// `SetVServerGroupAttribute`: sets weight and description of existing members.
    async fn set_backends(
        &self,
        v_server_group_id: &str,
        backends: &[SlbBackend],
    ) -> Result<(), SlbError>;
    /// `DescribeHealthStatus` for one listener port, or for every listener of the
    /// instance in one call (`None`).
    async fn describe_health(
        &self,
        load_balancer_id: &str,
        listener_port: Option<u16>,
    ) -> Result<Vec<BackendHealth>, SlbError>;
    /// Listeners of the instance with their bound group and drain settings.
    async fn describe_listeners(&self, load_balancer_id: &str) -> Result<Vec<Listener>, SlbError>;
    /// [`Self::describe_listeners`] of several instances (at most
    /// [`LISTENER_READ_BATCH`]), in as few calls as the API allows: an entry per
    /// instance (empty when it has no listener), but an instance whose own read failed
    /// may be missing when others were read. One call per instance unless the client
    /// can ask for several at once.
    async fn describe_listeners_of(
        &self,
        load_balancer_ids: &[String],
    ) -> Result<HashMap<String, Vec<Listener>>, SlbError> {
        let mut found = HashMap::with_capacity(load_balancer_ids.len());
        for id in load_balancer_ids {
            found.insert(id.clone(), self.describe_listeners(id).await?);
        }
        Ok(found)
    }
    /// `SetLoadBalancer{TCP,UDP}ListenerAttribute` with `ConnectionDrain`/`ConnectionDrainTimeout`.
    async fn set_listener_drain(
        &self,
        load_balancer_id: &str,
        listener: &Listener,
        drain: bool,
        timeout_secs: Option<u32>,
    ) -> Result<(), SlbError>;
    /// ECS `DescribeNetworkInterfaces` (2014-05-26) by private IP, at most 100 IPs a call;
    /// IPs without an ENI are absent from the answer.
    async fn resolve_eni_ids(&self, ips: &[IpAddr]) -> Result<HashMap<IpAddr, String>, SlbError>;

    /// The budget the client takes a token of for every HTTP request it sends, with its
    /// own per-request timeout; `None` when callers must pace (and time out) its calls.
    fn budget(&self) -> Option<std::sync::Arc<super::budget::Budget>> {
        None
    }
}

//! The [`SlbApi`] operations as RPC actions: parameters out, tolerant decoding in.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

use async_trait::async_trait;
use serde_json::Value;

use super::backends::{self, Skip, WriteKind};
use super::decode;
use super::sign::Method;
use super::{RpcSlbClient, ENI_IPS_PER_CALL};
use crate::model::{ObservedGroup, SlbBackend};
use crate::slb::batch::batches;
use crate::slb::{
    BackendHealth, ErrorClass, Listener, ListenerProtocol, SlbApi, SlbError, VServerGroupSummary,
    CREATED_FOR_TAG,
};

pub(super) fn p(key: &str, value: impl ToString) -> (String, String) {
    (key.to_string(), value.to_string())
}

fn invalid(action: &'static str, what: impl Into<String>) -> SlbError {
    SlbError::local(action, ErrorClass::Unavailable, "InvalidResponse", what)
}

impl RpcSlbClient {
    pub(super) async fn slb(
        &self,
        action: &'static str,
        params: Vec<(String, String)>,
    ) -> Result<Value, SlbError> {
        self.transport
            .call(&self.slb, action, Method::Get, params)
            .await
    }

    /// Every write of backends goes through here: batches of `batch_size`, in order,
    /// stopping at the first failure (earlier batches stay applied). Sent as POST forms:
    /// 20 backends of JSON, encoded, can outgrow the URL length gateways accept.
    async fn write_backends(
        &self,
        action: &'static str,
        kind: WriteKind,
        v_server_group_id: &str,
        backends: &[SlbBackend],
    ) -> Result<(), SlbError> {
        for batch in batches(backends, self.batch_size) {
            let params = vec![
                p("VServerGroupId", v_server_group_id),
                p("BackendServers", backends::encode(batch, kind)),
            ];
            self.transport
                .call(&self.slb, action, Method::Post, params)
                .await?;
        }
        Ok(())
    }
}

#[async_trait]
impl SlbApi for RpcSlbClient {
    fn budget(&self) -> Option<std::sync::Arc<crate::slb::budget::Budget>> {
        self.transport.budget.clone()
    }

    async fn list_vserver_groups(
        &self,
        load_balancer_id: &str,
    ) -> Result<Vec<VServerGroupSummary>, SlbError> {
        let answer = self
            .slb(
                "DescribeVServerGroups",
                vec![p("LoadBalancerId", load_balancer_id)],
            )
            .await?;
        Ok(decode::list(&answer, "VServerGroups", "VServerGroup")
            .into_iter()
            .filter_map(|g| {
                let tags = decode::list(g, "Tags", "Tag")
                    .into_iter()
                    .filter_map(|t| {
                        Some((
                            decode::string(t, "TagKey")?,
                            decode::string(t, "TagValue").unwrap_or_default(),
                        ))
                    })
                    .collect();
                let listener_ports = decode::field(g, "AssociatedObjects")
                    .map(|a| decode::list(a, "Listeners", "Listener"))
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|l| decode::port(l, "Port"))
                    .collect();
                Some(VServerGroupSummary {
                    v_server_group_id: decode::string(g, "VServerGroupId")?,
                    v_server_group_name: decode::string(g, "VServerGroupName").unwrap_or_default(),
                    tags,
                    listener_ports,
                })
            })
            .collect())
    }

    async fn describe_vserver_group(
        &self,
        v_server_group_id: &str,
    ) -> Result<ObservedGroup, SlbError> {
        const ACTION: &str = "DescribeVServerGroupAttribute";
        let answer = self
            .slb(ACTION, vec![p("VServerGroupId", v_server_group_id)])
            .await?;
        let mut backends = Vec::new();
        for item in decode::list(&answer, "BackendServers", "BackendServer") {
            match backends::decode_one(item) {
                Ok(b) => backends.push(b),
                Err(Skip::ForeignType(t)) => {
                    tracing::debug!(vserver_group = v_server_group_id, backend_type = %t,
                        "skipping a backend of a type the agent does not manage");
                }
                Err(Skip::Invalid(what)) => {
                    return Err(invalid(
                        ACTION,
                        format!("a BackendServer entry has no valid {what}"),
                    ))
                }
            }
        }
        Ok(ObservedGroup {
            v_server_group_id: decode::string(&answer, "VServerGroupId")
                .unwrap_or_else(|| v_server_group_id.to_string()),
            v_server_group_name: decode::string(&answer, "VServerGroupName").unwrap_or_default(),
            load_balancer_id: decode::string(&answer, "LoadBalancerId").unwrap_or_default(),
            backends,
        })
    }

    async fn create_vserver_group(
        &self,
        load_balancer_id: &str,
        name: &str,
    ) -> Result<String, SlbError> {
        const ACTION: &str = "CreateVServerGroup";
        let answer = self
            .slb(
                ACTION,
                vec![
                    p("LoadBalancerId", load_balancer_id),
                    p("VServerGroupName", name),
                    p("Tag.1.Key", CREATED_FOR_TAG),
                    p("Tag.1.Value", name),
                ],
            )
            .await?;
        decode::string(&answer, "VServerGroupId")
            .ok_or_else(|| invalid(ACTION, "the answer has no VServerGroupId"))
    }

    async fn delete_vserver_group(&self, v_server_group_id: &str) -> Result<(), SlbError> {
        self.slb(
            "DeleteVServerGroup",
            vec![p("VServerGroupId", v_server_group_id)],
        )
        .await
        .map(drop)
    }

    async fn add_backends(
        &self,
        v_server_group_id: &str,
        backends: &[SlbBackend],
    ) -> Result<(), SlbError> {
        self.write_backends(
            "AddVServerGroupBackendServers",
            WriteKind::Add,
            v_server_group_id,
            backends,
        )
        .await
    }

    async fn remove_backends(
        &self,
        v_server_group_id: &str,
        backends: &[SlbBackend],
    ) -> Result<(), SlbError> {
        self.write_backends(
            "RemoveVServerGroupBackendServers",
            WriteKind::Remove,
            v_server_group_id,
            backends,
        )
        .await
    }

    async fn set_backends(
        &self,
        v_server_group_id: &str,
        backends: &[SlbBackend],
    ) -> Result<(), SlbError> {
        self.write_backends(
            "SetVServerGroupAttribute",
            WriteKind::Set,
            v_server_group_id,
            backends,
        )
        .await
    }

    async fn describe_health(
        &self,
        load_balancer_id: &str,
        listener_port: Option<u16>,
    ) -> Result<Vec<BackendHealth>, SlbError> {
        let mut params = vec![p("LoadBalancerId", load_balancer_id)];
        params.extend(listener_port.map(|port| p("ListenerPort", port)));
        let answer = self.slb("DescribeHealthStatus", params).await?;
        Ok(decode::list(&answer, "BackendServers", "BackendServer")
            .into_iter()
            .filter_map(|b| {
                Some(BackendHealth {
                    server_id: decode::string(b, "ServerId")?,
                    server_ip: decode::ip(b, "ServerIp").or_else(|| decode::ip(b, "EniHost")),
                    port: decode::port(b, "Port")?,
                    listener_port: decode::port(b, "ListenerPort").or(listener_port)?,
                    status: decode::string(b, "ServerHealthStatus")?,
                })
            })
            .collect())
    }

    async fn describe_listeners(&self, load_balancer_id: &str) -> Result<Vec<Listener>, SlbError> {
        self.listeners_of(load_balancer_id).await
    }

    async fn describe_listeners_of(
        &self,
        load_balancer_ids: &[String],
    ) -> Result<HashMap<String, Vec<Listener>>, SlbError> {
        self.listeners_of_many(load_balancer_ids).await
    }

    async fn set_listener_drain(
        &self,
        load_balancer_id: &str,
        listener: &Listener,
        drain: bool,
        timeout_secs: Option<u32>,
    ) -> Result<(), SlbError> {
        let action = match listener.protocol {
            ListenerProtocol::Tcp => "SetLoadBalancerTCPListenerAttribute",
            ListenerProtocol::Udp => "SetLoadBalancerUDPListenerAttribute",
            ListenerProtocol::Http | ListenerProtocol::Https => {
                return Err(SlbError::local(
                    "SetLoadBalancerTCPListenerAttribute",
                    ErrorClass::Permanent,
                    "UnsupportedListenerProtocol",
                    format!(
                    "listener {} is {:?}; connection drain exists on TCP and UDP listeners only",
                    listener.port, listener.protocol
                ),
                ))
            }
        };
        let mut params = vec![
            p("LoadBalancerId", load_balancer_id),
            p("ListenerPort", listener.port),
            p("ConnectionDrain", if drain { "on" } else { "off" }),
        ];
        if drain {
            if let Some(timeout) = timeout_secs {
                params.push(p("ConnectionDrainTimeout", timeout));
            }
        }
        self.slb(action, params).await.map(drop)
    }

    async fn resolve_eni_ids(&self, ips: &[IpAddr]) -> Result<HashMap<IpAddr, String>, SlbError> {
        const ACTION: &str = "DescribeNetworkInterfaces";
        // Deduplicated and sorted: the same pods give the same calls.
        let wanted: Vec<IpAddr> = ips
            .iter()
            .copied()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut found = HashMap::new();
        for chunk in wanted.chunks(ENI_IPS_PER_CALL) {
            let mut params: Vec<(String, String)> = chunk
                .iter()
                .enumerate()
                .map(|(i, ip)| p(&format!("PrivateIpAddress.{}", i + 1), ip))
                .collect();
            // The default page holds 10; one page of 100 covers 100 IPs.
            params.push(p("PageSize", ENI_IPS_PER_CALL));
            params.push(p("PageNumber", 1));
            let answer = self
                .transport
                .call(&self.ecs, ACTION, Method::Get, params)
                .await?;
            for eni in decode::list(&answer, "NetworkInterfaceSets", "NetworkInterfaceSet") {
                let Some(id) = decode::string(eni, "NetworkInterfaceId") else {
                    continue;
                };
                let secondary = decode::list(eni, "PrivateIpSets", "PrivateIpSet")
                    .into_iter()
                    .filter_map(|s| decode::ip(s, "PrivateIpAddress"));
                for ip in decode::ip(eni, "PrivateIpAddress")
                    .into_iter()
                    .chain(secondary)
                {
                    if chunk.contains(&ip) {
                        found.insert(ip, id.clone());
                    }
                }
            }
        }
        Ok(found)
    }
}

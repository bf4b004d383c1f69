//! The `SlbApi` of the in-memory SLB.

use std::collections::HashMap;
use std::net::IpAddr;

use async_trait::async_trait;

use super::state::err;
use super::{Fault, MemorySlb};
use crate::model::{ObservedGroup, SlbBackend};
use crate::slb::{BackendHealth, ErrorClass, Listener, SlbApi, SlbError, VServerGroupSummary};

fn same(a: &SlbBackend, b: &SlbBackend) -> bool {
    a.key() == b.key()
}

#[async_trait]
impl SlbApi for MemorySlb {
    async fn list_vserver_groups(&self, lb: &str) -> Result<Vec<VServerGroupSummary>, SlbError> {
        self.read("DescribeVServerGroups", lb, |s| {
            Ok(s.groups
                .values()
                .filter(|g| g.load_balancer_id == lb)
                .map(|g| VServerGroupSummary {
                    v_server_group_id: g.v_server_group_id.clone(),
                    v_server_group_name: g.v_server_group_name.clone(),
                    tags: s
                        .created
                        .contains(&g.v_server_group_id)
                        .then(|| {
                            (
                                crate::slb::CREATED_FOR_TAG.to_owned(),
                                g.v_server_group_name.clone(),
                            )
                        })
                        .into_iter()
                        .collect(),
                    listener_ports: s
                        .listeners
                        .get(lb)
                        .into_iter()
                        .flatten()
                        .filter(|l| l.v_server_group_id.as_ref() == Some(&g.v_server_group_id))
                        .map(|l| l.port)
                        .collect(),
                })
                .collect())
        })
        .await
    }

    async fn describe_vserver_group(&self, id: &str) -> Result<ObservedGroup, SlbError> {
        self.read("DescribeVServerGroupAttribute", id, |s| {
            s.groups.get(id).cloned().ok_or_else(|| {
                err(
                    "DescribeVServerGroupAttribute",
                    ErrorClass::Permanent,
                    "NotFound",
                )
            })
        })
        .await
    }

    async fn create_vserver_group(&self, lb: &str, name: &str) -> Result<String, SlbError> {
        let fault = self.begin("CreateVServerGroup", lb, 0);
        if let Some(Fault::Fail(class)) = fault {
            return Err(err("CreateVServerGroup", class, "Injected"));
        }
        let mut state = self.state();
        state.next_group += 1;
        let id = format!("rsp-new-{}", state.next_group);
        state.created.insert(id.clone());
        state.groups.insert(
            id.clone(),
            ObservedGroup {
                v_server_group_id: id.clone(),
                v_server_group_name: name.to_owned(),
                load_balancer_id: lb.to_owned(),
                backends: vec![],
            },
        );
        Ok(id)
    }

    async fn delete_vserver_group(&self, id: &str) -> Result<(), SlbError> {
        self.state().groups.remove(id);
        Ok(())
    }

    async fn add_backends(&self, id: &str, backends: &[SlbBackend]) -> Result<(), SlbError> {
        self.mutate("AddVServerGroupBackendServers", id, backends, |g| {
            if backends
                .iter()
                .any(|b| g.backends.iter().any(|h| same(h, b)))
            {
                return Err(err(
                    "AddVServerGroupBackendServers",
                    ErrorClass::Permanent,
                    "BackendServer.AlreadyExist",
                ));
            }
            g.backends.extend(backends.iter().cloned());
            Ok(())
        })
        .await
    }

    async fn remove_backends(&self, id: &str, backends: &[SlbBackend]) -> Result<(), SlbError> {
        self.mutate("RemoveVServerGroupBackendServers", id, backends, |g| {
            g.backends.retain(|h| !backends.iter().any(|b| same(h, b)));
            Ok(())
        })
        .await
    }

    async fn set_backends(&self, id: &str, backends: &[SlbBackend]) -> Result<(), SlbError> {
        self.mutate("SetVServerGroupAttribute", id, backends, |g| {
            for b in backends {
                let Some(h) = g.backends.iter_mut().find(|h| same(h, b)) else {
                    return Err(err(
                        "SetVServerGroupAttribute",
                        ErrorClass::Permanent,
                        "BackendServer.NotExist",
                    ));
                };
                h.weight = b.weight;
                h.description = b.description.clone();
            }
            Ok(())
        })
        .await
    }

    async fn describe_health(
        &self,
        _: &str,
        _: Option<u16>,
    ) -> Result<Vec<BackendHealth>, SlbError> {
        Ok(vec![])
    }

    async fn describe_listeners(&self, lb: &str) -> Result<Vec<Listener>, SlbError> {
        self.read("DescribeLoadBalancerListeners", lb, |s| {
            Ok(s.listeners.get(lb).cloned().unwrap_or_default())
        })
        .await
    }

    async fn describe_listeners_of(
        &self,
        lbs: &[String],
    ) -> Result<HashMap<String, Vec<Listener>>, SlbError> {
        self.read("DescribeLoadBalancerListeners", &lbs.join(","), |s| {
            Ok(lbs
                .iter()
                .map(|lb| (lb.clone(), s.listeners.get(lb).cloned().unwrap_or_default()))
                .collect())
        })
        .await
    }

    async fn set_listener_drain(
        &self,
        lb: &str,
        listener: &Listener,
        drain: bool,
        timeout: Option<u32>,
    ) -> Result<(), SlbError> {
        if let Some(Fault::Fail(class)) = self.begin("SetListenerDrain", lb, 0) {
            return Err(err("SetListenerDrain", class, "Injected"));
        }
        let mut state = self.state();
        let found = state
            .listeners
            .get_mut(lb)
            .and_then(|ls| ls.iter_mut().find(|l| l.port == listener.port));
        let Some(found) = found else {
            return Err(err(
                "SetListenerDrain",
                ErrorClass::Permanent,
                "ListenerNotFound",
            ));
        };
        found.connection_drain = Some(drain);
        found.connection_drain_timeout = timeout;
        Ok(())
    }

    async fn resolve_eni_ids(&self, ips: &[IpAddr]) -> Result<HashMap<IpAddr, String>, SlbError> {
        let n = ips.len();
        self.read("DescribeNetworkInterfaces", "", |s| {
            assert!(
                n <= 100,
                "DescribeNetworkInterfaces takes at most 100 IPs, got {n}"
            );
            Ok(ips
                .iter()
                .filter_map(|ip| s.enis.get(ip).map(|id| (*ip, id.clone())))
                .collect())
        })
        .await
    }
}

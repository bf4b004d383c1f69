//! State changes behind the SLB write actions, with the real service's rules: membership
//! errors, per-instance quota, unknown servers, groups in use, listener drain limits.

use std::net::IpAddr;

use super::backends::BackendInput;
use super::model::{Backend, BackendKey, BackendType, Listener, Protocol, State, VServerGroup};
use crate::api::error::ApiError;

/// `ConnectionDrainTimeout` bounds (seconds).
pub const DRAIN_TIMEOUT_RANGE: std::ops::RangeInclusive<u32> = 10..=900;

impl State {
    pub fn lb(&self, id: &str) -> Result<&super::model::LoadBalancer, ApiError> {
        self.load_balancers
            .get(id)
            .ok_or_else(ApiError::lb_not_found)
    }

    pub fn group(&self, id: &str) -> Result<&VServerGroup, ApiError> {
        self.v_server_groups
            .get(id)
            .ok_or_else(ApiError::group_not_found)
    }

    pub fn listener(&self, lb_id: &str, port: u16) -> Result<&Listener, ApiError> {
        self.lb(lb_id)?
            .listeners
            .get(&port)
            .ok_or_else(ApiError::listener_not_found)
    }

    /// Resolves an input to the stored backend identity and checks that the server exists.
    fn resolve(&self, input: &BackendInput) -> Result<(BackendKey, Option<IpAddr>), ApiError> {
        match input.kind {
            BackendType::Ecs => {
                if !self.ecs_instances.contains_key(&input.server_id) {
                    return Err(ApiError::server_not_found(&input.server_id));
                }
                let key = BackendKey {
                    server_id: input.server_id.clone(),
                    server_ip: None,
                    port: input.port,
                };
                Ok((key, input.server_ip))
            }
            BackendType::Eni => {
                let eni = self
                    .enis
                    .get(&input.server_id)
                    .ok_or_else(|| ApiError::server_not_found(&input.server_id))?;
                let ip = match input.server_ip {
                    Some(ip) if eni.ips.contains(&ip) => ip,
                    Some(ip) => {
                        return Err(ApiError::new(
                            400,
                            "InvalidParameter",
                            format!("The ServerIp {ip} does not belong to {}.", eni.id),
                        ))
                    }
                    None => *eni
                        .ips
                        .first()
                        .ok_or_else(|| ApiError::server_not_found(&input.server_id))?,
                };
                let key = BackendKey {
                    server_id: input.server_id.clone(),
                    server_ip: Some(ip),
                    port: input.port,
                };
                Ok((key, Some(ip)))
            }
        }
    }

    fn check_quota(&self, lb_id: &str, adding: usize) -> Result<(), ApiError> {
        let quota = self.lb(lb_id)?.backend_quota;
        let now = self.backend_count(lb_id);
        if now + adding > quota {
            return Err(ApiError::new(
                400,
                "InstanceBackendServerNumberOverLimit",
                format!(
                    "The number of backend servers of the load balancer exceeds the limit: {now} + {adding} > {quota}."
                ),
            ));
        }
        Ok(())
    }

    fn to_backends(&self, inputs: &[BackendInput]) -> Result<Vec<Backend>, ApiError> {
        inputs
            .iter()
            .map(|i| {
                let (_, ip) = self.resolve(i)?;
                Ok(Backend {
                    server_id: i.server_id.clone(),
                    port: i.port,
                    weight: i.weight.unwrap_or(100),
                    kind: i.kind,
                    description: i.description.clone().unwrap_or_default(),
                    server_ip: ip,
                })
            })
            .collect()
    }

    /// `CreateVServerGroup`.
    pub fn create_group(
        &mut self,
        lb_id: &str,
        name: &str,
        tags: std::collections::BTreeMap<String, String>,
        inputs: &[BackendInput],
    ) -> Result<VServerGroup, ApiError> {
        self.lb(lb_id)?;
        if !name.is_empty() && !super::backends::valid_description(name) {
            return Err(ApiError::invalid("VServerGroupName", name));
        }
        let backends = self.to_backends(inputs)?;
        self.check_quota(lb_id, backends.len())?;
        let group = VServerGroup {
            id: self.new_id("rsp"),
            name: name.to_string(),
            load_balancer_id: lb_id.to_string(),
            backends,
            tags,
        };
        self.v_server_groups.insert(group.id.clone(), group.clone());
        Ok(group)
    }

    /// `DeleteVServerGroup`: refused while a listener uses the group.
    pub fn delete_group(&mut self, id: &str) -> Result<(), ApiError> {
        let g = self.group(id)?;
        let lb = self.lb(&g.load_balancer_id)?;
        if lb
            .listeners
            .values()
            .any(|l| l.v_server_group_id.as_deref() == Some(id))
        {
            return Err(ApiError::new(
                400,
                "RspoolVipExist",
                "there are vips associating with this vServer group.",
            ));
        }
        self.v_server_groups.remove(id);
        Ok(())
    }

    /// `AddVServerGroupBackendServers`: adding an existing member is an error.
    pub fn add_backends(
        &mut self,
        id: &str,
        inputs: &[BackendInput],
    ) -> Result<Vec<Backend>, ApiError> {
        let group = self.group(id)?;
        let new = self.to_backends(inputs)?;
        for b in &new {
            if group.backends.iter().any(|e| e.key() == b.key()) {
                // The SLB's generic answer for an existing resource.
                return Err(ApiError::new(
                    400,
                    "InvalidParameter",
                    format!(
                        "The resource already exists: backend server {} port {} in vServer group {id}.",
                        b.server_id, b.port
                    ),
                ));
            }
        }
        let lb_id = group.load_balancer_id.clone();
        self.check_quota(&lb_id, new.len())?;
        if let Some(g) = self.v_server_groups.get_mut(id) {
            g.backends.extend(new.iter().cloned());
        }
        Ok(new)
    }

    /// `RemoveVServerGroupBackendServers`: absent members are ignored.
    pub fn remove_backends(
        &mut self,
        id: &str,
        inputs: &[BackendInput],
    ) -> Result<Vec<Backend>, ApiError> {
        self.group(id)?;
        let mut keys = Vec::new();
        for i in inputs {
            keys.push(self.resolve(i)?.0);
        }
        let mut removed = Vec::new();
        if let Some(g) = self.v_server_groups.get_mut(id) {
            g.backends.retain(|b| {
                let gone = keys.contains(&b.key());
                if gone {
                    removed.push(b.clone());
                }
                !gone
            });
        }
        Ok(removed)
    }

    /// `SetVServerGroupAttribute`: new name and/or weight and description of members.
    pub fn set_backends(
        &mut self,
        id: &str,
        name: Option<&str>,
        inputs: &[BackendInput],
    ) -> Result<Vec<Backend>, ApiError> {
        let group = self.group(id)?;
        if let Some(n) = name {
            if !super::backends::valid_description(n) {
                return Err(ApiError::invalid("VServerGroupName", n));
            }
        }
        let mut keys = Vec::new();
        for i in inputs {
            let (key, _) = self.resolve(i)?;
            if !group.backends.iter().any(|b| b.key() == key) {
                return Err(ApiError::new(
                    400,
                    "InvalidParameter",
                    format!(
                        "The backend server {} port {} is not in vServer group {id}.",
                        i.server_id, i.port
                    ),
                ));
            }
            keys.push(key);
        }
        let Some(g) = self.v_server_groups.get_mut(id) else {
            return Err(ApiError::group_not_found());
        };
        if let Some(n) = name {
            g.name = n.to_string();
        }
        let mut changed = Vec::new();
        for (i, key) in inputs.iter().zip(keys) {
            if let Some(b) = g.backends.iter_mut().find(|b| b.key() == key) {
                if let Some(w) = i.weight {
                    b.weight = w;
                }
                if let Some(d) = &i.description {
                    b.description = d.clone();
                }
                changed.push(b.clone());
            }
        }
        Ok(changed)
    }

    /// `SetLoadBalancer{TCP,UDP}ListenerAttribute` (the parts the mock models).
    pub fn set_listener(
        &mut self,
        lb_id: &str,
        port: u16,
        protocol: Protocol,
        change: ListenerChange,
    ) -> Result<(), ApiError> {
        let listener = self.listener(lb_id, port)?;
        if listener.protocol != protocol {
            return Err(ApiError::listener_not_found());
        }
        if let Some(t) = change.drain_timeout {
            if !DRAIN_TIMEOUT_RANGE.contains(&t) {
                return Err(ApiError::invalid("ConnectionDrainTimeout", &t.to_string()));
            }
        }
        if let Some(Some(g)) = &change.v_server_group_id {
            let group = self.group(g)?;
            if group.load_balancer_id != lb_id {
                return Err(ApiError::group_not_found());
            }
        }
        let Some(l) = self
            .load_balancers
            .get_mut(lb_id)
            .and_then(|lb| lb.listeners.get_mut(&port))
        else {
            return Err(ApiError::listener_not_found());
        };
        if let Some(d) = change.drain {
            l.connection_drain = d;
        }
        if let Some(t) = change.drain_timeout {
            l.connection_drain_timeout = t;
        }
        if let Some(g) = change.v_server_group_id {
            l.v_server_group_id = g;
        }
        Ok(())
    }
}

/// What a listener write changes; `None` leaves a field as it is.
#[derive(Debug, Default, Clone)]
pub struct ListenerChange {
    pub drain: Option<bool>,
    pub drain_timeout: Option<u32>,
    /// `Some(None)` unbinds the group (`VServerGroup=off`).
    pub v_server_group_id: Option<Option<String>>,
}

//! SLB 2014-05-15 actions: request parameters in, JSON bodies out, shaped like the real
//! service (lists wrapped as `{"BackendServers":{"BackendServer":[…]}}`).

use serde_json::{json, Map, Value};

use super::error::ApiError;
use super::params::Params;
use crate::dataplane::{DataPlane, Health};
use crate::state::backends::{self, BackendInput};
use crate::state::{Backend, ListenerChange, Protocol, State};

/// SLB actions the mock serves.
pub const ACTIONS: &[&str] = &[
    "DescribeVServerGroups",
    "DescribeVServerGroupAttribute",
    "CreateVServerGroup",
    "DeleteVServerGroup",
    "AddVServerGroupBackendServers",
    "RemoveVServerGroupBackendServers",
    "SetVServerGroupAttribute",
    "DescribeHealthStatus",
    "DescribeLoadBalancerListeners",
    "DescribeLoadBalancerAttribute",
    "DescribeLoadBalancerTCPListenerAttribute",
    "DescribeLoadBalancerUDPListenerAttribute",
    "DescribeLoadBalancerHTTPListenerAttribute",
    "DescribeLoadBalancerHTTPSListenerAttribute",
    "SetLoadBalancerTCPListenerAttribute",
    "SetLoadBalancerUDPListenerAttribute",
];

/// What an action did besides its answer.
#[derive(Debug, Default)]
pub struct Outcome {
    pub body: Map<String, Value>,
    /// The state changed (the data plane must be told).
    pub mutated: bool,
}

/// The group a write action targets, for the `VServerGroupProcessing` gap.
pub fn written_group<'a>(action: &str, p: &'a Params) -> Option<&'a str> {
    match action {
        "DeleteVServerGroup"
        | "AddVServerGroupBackendServers"
        | "RemoveVServerGroupBackendServers"
        | "SetVServerGroupAttribute" => p.get("VServerGroupId"),
        _ => None,
    }
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// A member as the SLB lists it; `ServerIp` is the recorded IP, or the ECS instance's.
fn backend_json(state: &State, b: &Backend) -> Value {
    let mut v = json!({
        "ServerId": b.server_id,
        "Port": b.port,
        "Weight": b.weight,
        "Type": b.kind.as_str(),
        "Description": b.description,
    });
    if let Some(ip) = b.server_ip.or_else(|| state.backend_ip(b)) {
        v["ServerIp"] = json!(ip.to_string());
    }
    v
}

fn backends_json(state: &State, bs: &[Backend]) -> Value {
    json!({ "BackendServer": bs.iter().map(|b| backend_json(state, b)).collect::<Vec<_>>() })
}

fn inputs(p: &Params, required: bool) -> Result<Vec<BackendInput>, ApiError> {
    match p.get("BackendServers") {
        Some(raw) => backends::parse(raw),
        None if required => Err(ApiError::missing("BackendServers")),
        None => Ok(Vec::new()),
    }
}

/// Runs one SLB action.
pub fn handle(
    state: &mut State,
    dp: &DataPlane,
    action: &str,
    p: &Params,
) -> Result<Outcome, ApiError> {
    let read = |body: Value| {
        Ok(Outcome {
            body: obj(body),
            mutated: false,
        })
    };
    let wrote = |body: Value| {
        Ok(Outcome {
            body: obj(body),
            mutated: true,
        })
    };
    match action {
        "DescribeVServerGroups" => {
            let lb_id = p.required("LoadBalancerId")?;
            let lb = state.lb(lb_id)?;
            let wanted = p.tags()?;
            let groups: Vec<Value> = state
                .v_server_groups
                .values()
                .filter(|g| g.load_balancer_id == lb_id)
                .filter(|g| wanted.iter().all(|(k, v)| g.tags.get(k) == Some(v)))
                .map(|g| {
                    let listeners: Vec<Value> = lb
                        .listeners
                        .values()
                        .filter(|l| l.v_server_group_id.as_deref() == Some(g.id.as_str()))
                        .map(|l| json!({"Port": l.port, "Protocol": l.protocol.as_str()}))
                        .collect();
                    let tags: Vec<Value> = g
                        .tags
                        .iter()
                        .map(|(k, v)| json!({"TagKey": k, "TagValue": v}))
                        .collect();
                    json!({
                        "VServerGroupId": g.id,
                        "VServerGroupName": g.name,
                        "Tags": {"Tag": tags},
                        "AssociatedObjects": {
                            "Listeners": {"Listener": listeners},
                            "Rules": {"Rule": []},
                        },
                    })
                })
                .collect();
            read(json!({"VServerGroups": {"VServerGroup": groups}}))
        }
        "DescribeVServerGroupAttribute" => {
            let g = state.group(p.required("VServerGroupId")?)?;
            read(json!({
                "VServerGroupId": g.id,
                "VServerGroupName": g.name,
                "LoadBalancerId": g.load_balancer_id,
                "BackendServers": backends_json(state, &g.backends),
            }))
        }
        "CreateVServerGroup" => {
            let lb_id = p.required("LoadBalancerId")?;
            let ins = inputs(p, false)?;
            let name = p.get("VServerGroupName").unwrap_or("");
            let g = state.create_group(lb_id, name, p.tags()?, &ins)?;
            wrote(
                json!({"VServerGroupId": g.id, "BackendServers": backends_json(state, &g.backends)}),
            )
        }
        "DeleteVServerGroup" => {
            state.delete_group(p.required("VServerGroupId")?)?;
            wrote(json!({}))
        }
        "AddVServerGroupBackendServers" => {
            let id = p.required("VServerGroupId")?;
            let ins = inputs(p, true)?;
            let added = state.add_backends(id, &ins)?;
            wrote(json!({"VServerGroupId": id, "BackendServers": backends_json(state, &added)}))
        }
        "RemoveVServerGroupBackendServers" => {
            let id = p.required("VServerGroupId")?;
            let ins = inputs(p, true)?;
            let removed = state.remove_backends(id, &ins)?;
            wrote(json!({"VServerGroupId": id, "BackendServers": backends_json(state, &removed)}))
        }
        "SetVServerGroupAttribute" => {
            let id = p.required("VServerGroupId")?;
            let ins = inputs(p, false)?;
            let changed = state.set_backends(id, p.get("VServerGroupName"), &ins)?;
            let name = state.group(id)?.name.clone();
            wrote(json!({
                "VServerGroupId": id,
                "VServerGroupName": name,
                "BackendServers": backends_json(state, &changed),
            }))
        }
        "DescribeHealthStatus" => describe_health(state, dp, p).and_then(read),
        "DescribeLoadBalancerAttribute" => {
            let lb = state.lb(p.required("LoadBalancerId")?)?;
            let ports: Vec<u16> = lb.listeners.keys().copied().collect();
            let pp: Vec<Value> = lb
                .listeners
                .values()
                .map(|l| json!({"ListenerPort": l.port, "ListenerProtocol": l.protocol.as_str()}))
                .collect();
            // The real answer also carries the historical misspelling "Protocal".
            let pp_typo: Vec<Value> = lb
                .listeners
                .values()
                .map(|l| json!({"ListenerPort": l.port, "ListenerProtocal": l.protocol.as_str()}))
                .collect();
            read(json!({
                "LoadBalancerId": lb.id,
                "LoadBalancerName": lb.name,
                "LoadBalancerStatus": "active",
                "Address": lb.address,
                "AddressType": "intranet",
                "ListenerPorts": {"ListenerPort": ports},
                "ListenerPortsAndProtocol": {"ListenerPortAndProtocol": pp},
                "ListenerPortsAndProtocal": {"ListenerPortAndProtocal": pp_typo},
                "BackendServers": {"BackendServer": []},
            }))
        }
        "DescribeLoadBalancerListeners" => list_listeners(state, p).and_then(read),
        "DescribeLoadBalancerTCPListenerAttribute" => {
            describe_listener(state, p, Protocol::Tcp).and_then(read)
        }
        "DescribeLoadBalancerUDPListenerAttribute" => {
            describe_listener(state, p, Protocol::Udp).and_then(read)
        }
        "DescribeLoadBalancerHTTPListenerAttribute" => {
            describe_listener(state, p, Protocol::Http).and_then(read)
        }
        // Listed by DescribeLoadBalancerAttribute like any other listener, so a client
        // that describes every listener calls it.
        "DescribeLoadBalancerHTTPSListenerAttribute" => {
            describe_listener(state, p, Protocol::Https).and_then(read)
        }
        "SetLoadBalancerTCPListenerAttribute" => {
            set_listener(state, p, Protocol::Tcp).and_then(wrote)
        }
        "SetLoadBalancerUDPListenerAttribute" => {
            set_listener(state, p, Protocol::Udp).and_then(wrote)
        }
        other => Err(ApiError::invalid_action(other)),
    }
}

fn describe_health(state: &State, dp: &DataPlane, p: &Params) -> Result<Value, ApiError> {
    let lb = state.lb(p.required("LoadBalancerId")?)?;
    let only = match p.get("ListenerPort") {
        Some(_) => Some(p.port("ListenerPort")?),
        None => None,
    };
    let mut out = Vec::new();
    for l in lb
        .listeners
        .values()
        .filter(|l| only.is_none_or(|o| o == l.port))
    {
        let Some(g) = l
            .v_server_group_id
            .as_deref()
            .and_then(|g| state.v_server_groups.get(g))
        else {
            continue;
        };
        let health = dp.health(&lb.id, l.port);
        for b in &g.backends {
            let status = health
                .iter()
                .find(|(k, _)| *k == b.key())
                .map(|(_, h)| *h)
                // UDP listeners have no data plane here: checked ones report normal.
                .unwrap_or(if l.protocol == Protocol::Udp && l.health_check.is_some() {
                    Health::Normal
                } else {
                    Health::Unavailable
                });
            out.push(json!({
                "ServerId": b.server_id,
                "ServerIp": state.backend_ip(b).map(|ip| ip.to_string()).unwrap_or_default(),
                "Port": b.port,
                "ListenerPort": l.port,
                "Protocol": l.protocol.as_str(),
                "Type": b.kind.as_str(),
                "ServerHealthStatus": status.as_str(),
            }));
        }
    }
    Ok(json!({"BackendServers": {"BackendServer": out}}))
}

/// `DescribeLoadBalancerListeners`: the listeners of up to 10 instances
/// (`LoadBalancerId.N`), each with its group and a `<PROTOCOL>ListenerConfig` of its
/// settings, `MaxResults` (1–100, default 20) per page and an opaque `NextToken`.
fn list_listeners(state: &State, p: &Params) -> Result<Value, ApiError> {
    let ids = p.indexed("LoadBalancerId")?;
    if ids.len() > 10 {
        return Err(ApiError::invalid(
            "LoadBalancerId.N",
            "at most 10 instances",
        ));
    }
    let page = match p.opt_u32("MaxResults")? {
        None => 20,
        Some(n @ 1..=100) => n as usize,
        Some(_) => return Err(ApiError::invalid("MaxResults", "1 to 100")),
    };
    let start = match p.get("NextToken") {
        None | Some("") => 0,
        Some(t) => t
            .parse::<usize>()
            .map_err(|_| ApiError::invalid("NextToken", "not a token of this API"))?,
    };
    let protocol = p.get("ListenerProtocol").map(str::to_ascii_lowercase);
    let mut all = Vec::new();
    for (_, id) in &ids {
        let lb = state.lb(id)?;
        for l in lb.listeners.values() {
            if protocol
                .as_deref()
                .is_some_and(|want| want != l.protocol.as_str())
            {
                continue;
            }
            let mut v = json!({
                "LoadBalancerId": lb.id,
                "ListenerPort": l.port,
                "ListenerProtocol": l.protocol.as_str(),
                "Status": l.status,
            });
            if let Some(g) = &l.v_server_group_id {
                v["VServerGroupId"] = json!(g);
            }
            let config = match l.protocol {
                Protocol::Tcp => "TCPListenerConfig",
                Protocol::Udp => "UDPListenerConfig",
                Protocol::Http => "HTTPListenerConfig",
                Protocol::Https => "HTTPSListenerConfig",
            };
            v[config] = listener_settings(l);
            all.push(v);
        }
    }
    let end = (start + page).min(all.len());
    let next = if end < all.len() {
        end.to_string()
    } else {
        String::new()
    };
    Ok(json!({
        "Listeners": all.get(start..end).unwrap_or_default(),
        "TotalCount": all.len(),
        "MaxResults": page,
        "NextToken": next,
    }))
}

fn describe_listener(state: &State, p: &Params, protocol: Protocol) -> Result<Value, ApiError> {
    let lb_id = p.required("LoadBalancerId")?;
    let l = state.listener(lb_id, p.port("ListenerPort")?)?;
    if l.protocol != protocol {
        return Err(ApiError::listener_not_found());
    }
    let mut v = json!({
        "LoadBalancerId": lb_id,
        "ListenerPort": l.port,
        "Status": l.status,
        "Bandwidth": -1,
        "Scheduler": "wrr",
    });
    if let Some(g) = &l.v_server_group_id {
        v["VServerGroupId"] = json!(g);
    }
    if let (Value::Object(v), Value::Object(settings)) = (&mut v, listener_settings(l)) {
        v.extend(settings);
    }
    Ok(v)
}

/// A listener's health check and connection drain, as both read actions report them.
fn listener_settings(l: &crate::state::Listener) -> Value {
    let mut v = json!({
        "HealthCheck": if l.health_check.is_some() { "on" } else { "off" },
    });
    if let Some(hc) = &l.health_check {
        // The API speaks whole seconds (1–50); the mock may check faster.
        v["HealthCheckInterval"] = json!(hc.interval_ms.div_ceil(1000).max(1));
        v["HealthCheckConnectTimeout"] = json!(hc.timeout_ms.div_ceil(1000).max(1));
        v["HealthyThreshold"] = json!(hc.healthy_threshold);
        v["UnhealthyThreshold"] = json!(hc.unhealthy_threshold);
    }
    if matches!(l.protocol, Protocol::Tcp | Protocol::Udp) {
        v["ConnectionDrain"] = json!(if l.connection_drain { "on" } else { "off" });
        v["ConnectionDrainTimeout"] = json!(l.connection_drain_timeout);
    }
    v
}

fn set_listener(state: &mut State, p: &Params, protocol: Protocol) -> Result<Value, ApiError> {
    let lb_id = p.required("LoadBalancerId")?;
    let port = p.port("ListenerPort")?;
    let drain = p.opt_on_off("ConnectionDrain")?;
    let drain_timeout = p.opt_u32("ConnectionDrainTimeout")?;
    if drain == Some(true) && drain_timeout.is_none() {
        return Err(ApiError::missing("ConnectionDrainTimeout"));
    }
    let v_server_group_id = match (p.opt_on_off("VServerGroup")?, p.get("VServerGroupId")) {
        (Some(false), _) => Some(None),
        (Some(true), None) => return Err(ApiError::missing("VServerGroupId")),
        (_, Some(g)) => Some(Some(g.to_string())),
        (None, None) => None,
    };
    state.set_listener(
        lb_id,
        port,
        protocol,
        ListenerChange {
            drain,
            drain_timeout,
            v_server_group_id,
        },
    )?;
    Ok(json!({}))
}

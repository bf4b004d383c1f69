//! `mk_*` fixtures for the index and planner tests: small Kubernetes objects with only
//! the fields the rules read, plus helpers that change one thing at a time.

use k8s_openapi::api::core::v1::{Node, Service, Taint};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointSlice};
use serde_json::json;

use crate::annotations::LB_ID;
use crate::model::StoredPod;

fn from_json<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> T {
    serde_json::from_value(value).expect("fixture is a valid object")
}

/// A managed Cluster-mode Service `default/<name>` on SLB `lb-1` with port 80 → node
/// port 30080, targetPort 8080.
pub(crate) fn mk_service(name: &str) -> Service {
    mk_service_in("default", name)
}

pub(crate) fn mk_service_in(ns: &str, name: &str) -> Service {
    from_json(json!({
        "metadata": {"name": name, "namespace": ns, "annotations": {LB_ID: "lb-1"}},
        "spec": {
            "type": "LoadBalancer",
            "loadBalancerClass": "slb-sync.io/slb",
            "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080, "targetPort": 8080}],
        },
    }))
}

pub(crate) fn annotate(mut svc: Service, key: &str, value: &str) -> Service {
    svc.metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(key.to_owned(), value.to_owned());
    svc
}

pub(crate) fn local(mut svc: Service) -> Service {
    svc.spec.as_mut().unwrap().external_traffic_policy = Some("Local".into());
    svc
}

pub(crate) fn eni(svc: Service) -> Service {
    annotate(svc, crate::annotations::BACKEND_TYPE, "eni")
}

/// Replaces the ports: `(name, port, nodePort, targetPort)`; a numeric-looking target is
/// an int, anything else a name.
pub(crate) fn with_ports(mut svc: Service, ports: &[(&str, i32, Option<i32>, &str)]) -> Service {
    let ports = ports
        .iter()
        .map(|(name, port, node_port, target)| {
            let target = match target.parse::<i32>() {
                Ok(n) => json!(n),
                Err(_) => json!(target),
            };
            let mut p = json!({"port": port, "protocol": "TCP", "targetPort": target});
            if !name.is_empty() {
                p["name"] = json!(name);
            }
            if let Some(np) = node_port {
                p["nodePort"] = json!(np);
            }
            from_json(p)
        })
        .collect();
    svc.spec.as_mut().unwrap().ports = Some(ports);
    svc
}

/// A Ready node with providerID `cn-hangzhou.<instance>`.
pub(crate) fn mk_node(name: &str, instance: &str) -> Node {
    from_json(json!({
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "spec": {"providerID": format!("cn-hangzhou.{instance}")},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
    }))
}

pub(crate) fn label(mut node: Node, key: &str, value: &str) -> Node {
    node.metadata
        .labels
        .get_or_insert_with(Default::default)
        .insert(key.to_owned(), value.to_owned());
    node
}

pub(crate) fn taint(mut node: Node, key: &str) -> Node {
    node.spec
        .get_or_insert_with(Default::default)
        .taints
        .get_or_insert_with(Vec::new)
        .push(Taint {
            key: key.to_owned(),
            effect: "NoSchedule".to_owned(),
            ..Default::default()
        });
    node
}

pub(crate) fn unschedulable(mut node: Node) -> Node {
    node.spec.get_or_insert_with(Default::default).unschedulable = Some(true);
    node
}

pub(crate) fn provider_id(mut node: Node, value: Option<&str>) -> Node {
    node.spec.get_or_insert_with(Default::default).provider_id = value.map(str::to_owned);
    node
}

/// An endpoint at `address` on `node` with the given conditions.
pub(crate) fn mk_ep(address: &str, node: Option<&str>, ready: bool, terminating: bool) -> Endpoint {
    from_json(json!({
        "addresses": [address],
        "nodeName": node,
        "conditions": {"ready": ready, "serving": ready || terminating, "terminating": terminating},
    }))
}

pub(crate) fn ready(address: &str, node: &str) -> Endpoint {
    mk_ep(address, Some(node), true, false)
}

/// Terminating but still serving: never counts.
pub(crate) fn terminating(address: &str, node: &str) -> Endpoint {
    mk_ep(address, Some(node), false, true)
}

pub(crate) fn not_ready(address: &str, node: &str) -> Endpoint {
    mk_ep(address, Some(node), false, false)
}

pub(crate) fn of_pod(mut ep: Endpoint, pod: &str) -> Endpoint {
    ep.target_ref = Some(from_json(
        json!({"kind": "Pod", "name": pod, "namespace": "default"}),
    ));
    ep
}

/// An IPv4 slice `<service>-<suffix>` of `default/<service>` with one unnamed port 8080.
pub(crate) fn mk_slice(service: &str, suffix: &str, endpoints: Vec<Endpoint>) -> EndpointSlice {
    mk_slice_full("default", service, suffix, "IPv4", &[("", 8080)], endpoints)
}

pub(crate) fn mk_slice_full(
    ns: &str,
    service: &str,
    suffix: &str,
    address_type: &str,
    ports: &[(&str, i32)],
    endpoints: Vec<Endpoint>,
) -> EndpointSlice {
    let ports: Vec<_> = ports
        .iter()
        .map(|(name, port)| json!({"name": name, "port": port, "protocol": "TCP"}))
        .collect();
    let mut slice: EndpointSlice = from_json(json!({
        "metadata": {
            "name": format!("{service}-{suffix}"),
            "namespace": ns,
            "labels": {crate::index::SERVICE_NAME_LABEL: service},
        },
        "addressType": address_type,
        "ports": ports,
    }));
    slice.endpoints = Some(endpoints);
    slice
}

/// A pod `default/<name>` with readiness gates of the given condition types.
pub(crate) fn mk_pod(name: &str, gates: &[&str], containers_ready: bool) -> StoredPod {
    let gates: Vec<_> = gates.iter().map(|g| json!({"conditionType": g})).collect();
    from_json(json!({
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"containers": [{"name": "app"}], "readinessGates": gates},
        "status": {"conditions": [
            {"type": "ContainersReady", "status": if containers_ready { "True" } else { "False" }},
        ]},
    }))
}

//! The synthetic cluster of the planner benchmark, generated in code and deterministic:
//! 5,000 nodes in 50 labelled pools, 10,000 Services in 100 namespaces (50% Cluster with
//! a pool `backend-label`, 30% Local, 20% ENI, a quarter with a second port, 1% of ENI
//! dual-stack), 15 pods each (one terminating, one waiting on its readiness gate).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Container, Node, NodeSpec, ObjectReference, Pod, PodCondition, PodReadinessGate, PodSpec,
    PodStatus, Service, ServicePort, ServiceSpec, Taint,
};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

pub(crate) const NODES: usize = 5_000;
pub(crate) const SERVICES: usize = 10_000;
pub(crate) const PODS_PER_SERVICE: usize = 15; // 150,000 pods
pub(crate) const POOLS: usize = 50; // 100 nodes per pool
pub(crate) const NAMESPACES: usize = 100;

pub(crate) const LB_ID: &str = "service.beta.kubernetes.io/alibaba-cloud-loadbalancer-id";
pub(crate) const BACKEND_LABEL: &str =
    "service.beta.kubernetes.io/alibaba-cloud-loadbalancer-backend-label";
pub(crate) const BACKEND_TYPE: &str = "service.beta.kubernetes.io/backend-type";
pub(crate) const VGROUP_PORT: &str =
    "service.beta.kubernetes.io/alibaba-cloud-loadbalancer-vgroup-port";
pub(crate) const REMOVE_UNSCHEDULED: &str =
    "service.beta.kubernetes.io/alibaba-cloud-loadbalancer-remove-unscheduled-backend";

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Cluster,
    Local,
    Eni,
}

/// 50% Cluster, 30% Local, 20% ENI.
pub(crate) fn kind(s: usize) -> Kind {
    match s % 10 {
        0..=4 => Kind::Cluster,
        5..=7 => Kind::Local,
        _ => Kind::Eni,
    }
}

/// Small deterministic PRNG (splitmix64) so every run builds the same cluster.
pub(crate) fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

pub(crate) fn meta(ns: Option<&str>, name: &str, labels: &[(&str, String)]) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: ns.map(str::to_owned),
        labels: (!labels.is_empty()).then(|| {
            labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect()
        }),
        resource_version: Some("123456789".into()),
        uid: Some(format!("0000-{name}")),
        ..Default::default()
    }
}

pub(crate) fn node_name(n: usize) -> String {
    format!(
        "cn-hangzhou.10.{}.{}.{}",
        n / 65536,
        (n / 256) % 256,
        n % 256
    )
}

pub(crate) fn mk_node(n: usize, tainted: bool) -> Node {
    let name = node_name(n);
    let mut labels = vec![
        ("kubernetes.io/hostname", name.clone()),
        ("kubernetes.io/os", "linux".into()),
        ("kubernetes.io/arch", "amd64".into()),
        ("node.kubernetes.io/instance-type", "ecs.g7.2xlarge".into()),
        ("topology.kubernetes.io/region", "cn-hangzhou".into()),
        (
            "topology.kubernetes.io/zone",
            format!("cn-hangzhou-{}", n % 3),
        ),
        ("pool", format!("pool-{}", n % POOLS)),
    ];
    if n < 3 {
        labels.push(("node-role.kubernetes.io/control-plane", String::new()));
    }
    let mut taints = Vec::new();
    if tainted || n % 997 == 5 {
        taints.push(Taint {
            key: "ToBeDeletedByClusterAutoscaler".into(),
            effect: "NoSchedule".into(),
            ..Default::default()
        });
    }
    Node {
        metadata: meta(None, &name, &labels),
        spec: Some(NodeSpec {
            provider_id: Some(format!("cn-hangzhou.i-{:016x}", mix(n as u64))),
            unschedulable: Some(n % 499 == 7),
            taints: Some(taints),
            ..Default::default()
        }),
        status: None,
    }
}

pub(crate) fn ns_of(s: usize) -> String {
    format!("team-{}", s % NAMESPACES)
}

pub(crate) fn svc_name(s: usize) -> String {
    format!("svc-{s:05}")
}

pub(crate) fn two_ports(s: usize) -> bool {
    s.is_multiple_of(4)
}

pub(crate) fn mk_service(s: usize, shared_pool: bool) -> Service {
    let mut annotations = BTreeMap::from([(LB_ID.to_owned(), format!("lb-{:012x}", s))]);
    let kind = kind(s);
    if kind == Kind::Eni {
        annotations.insert(BACKEND_TYPE.into(), "eni".into());
    }
    if kind == Kind::Cluster && !shared_pool {
        annotations.insert(
            BACKEND_LABEL.into(),
            format!("pool=pool-{}", (s / 10) % POOLS),
        );
    }
    if s.is_multiple_of(7) {
        annotations.insert(REMOVE_UNSCHEDULED.into(), "on".into());
    }
    if s.is_multiple_of(3) {
        annotations.insert(VGROUP_PORT.into(), format!("rsp-{s:08x}:80"));
    }
    let port = |name: &str, port: i32, target: IntOrString, node_port: i32| ServicePort {
        name: Some(name.into()),
        port,
        protocol: Some("TCP".into()),
        target_port: Some(target),
        node_port: Some(node_port),
        ..Default::default()
    };
    let mut ports = vec![port(
        "http",
        80,
        IntOrString::String("web".into()),
        30000 + (s % 2000) as i32,
    )];
    if two_ports(s) {
        ports.push(port(
            "metrics",
            9100,
            IntOrString::Int(9100),
            32000 + (s % 700) as i32,
        ));
    }
    let mut metadata = meta(Some(&ns_of(s)), &svc_name(s), &[("app", svc_name(s))]);
    metadata.annotations = Some(annotations);
    Service {
        metadata,
        spec: Some(ServiceSpec {
            type_: Some("LoadBalancer".into()),
            load_balancer_class: Some("slb-sync.io/slb".into()),
            external_traffic_policy: Some(
                if kind == Kind::Local {
                    "Local"
                } else {
                    "Cluster"
                }
                .into(),
            ),
            selector: Some(BTreeMap::from([("app".to_owned(), svc_name(s))])),
            ports: Some(ports),
            ..Default::default()
        }),
        status: None,
    }
}

pub(crate) fn pod_name(s: usize, p: usize) -> String {
    format!("{}-7d9f8b6c5-{p:05}", svc_name(s))
}

pub(crate) fn pod_ip(s: usize, p: usize) -> String {
    let n = s * PODS_PER_SERVICE + p;
    format!("10.{}.{}.{}", 64 + n / 65536, (n / 256) % 256, n % 256)
}

pub(crate) fn pod_node(s: usize, p: usize) -> usize {
    (mix((s * PODS_PER_SERVICE + p) as u64) % NODES as u64) as usize
}

/// Pod `p` of Service `s`: mostly ready, one terminating, one waiting on its gate.
pub(crate) fn ep_state(p: usize) -> (bool, bool) {
    match p {
        0 => (false, true),  // terminating
        1 => (false, false), // not ready yet (gate bootstrap decides)
        _ => (true, false),
    }
}

pub(crate) fn mk_pod(s: usize, p: usize) -> Pod {
    let gated = kind(s) != Kind::Cluster;
    Pod {
        metadata: meta(Some(&ns_of(s)), &pod_name(s, p), &[("app", svc_name(s))]),
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "app".into(),
                image: Some("registry.example.com/app:1.2.3".into()),
                ..Default::default()
            }],
            node_name: Some(node_name(pod_node(s, p))),
            readiness_gates: gated.then(|| {
                vec![PodReadinessGate {
                    condition_type: format!("registered.slb-sync.io/{}", svc_name(s)),
                }]
            }),
            ..Default::default()
        }),
        status: Some(PodStatus {
            pod_ip: Some(pod_ip(s, p)),
            conditions: Some(vec![PodCondition {
                type_: "ContainersReady".into(),
                status: if p % 2 == 1 { "True" } else { "False" }.into(),
                ..Default::default()
            }]),
            ..Default::default()
        }),
    }
}

/// The Service's IPv4 slice; `flip` toggles the readiness of endpoint 2.
pub(crate) fn mk_slice(s: usize, flip: bool) -> EndpointSlice {
    let endpoints = (0..PODS_PER_SERVICE)
        .map(|p| {
            let (mut ready, terminating) = ep_state(p);
            if p == 2 && flip {
                ready = !ready;
            }
            Endpoint {
                addresses: vec![pod_ip(s, p)],
                conditions: Some(EndpointConditions {
                    ready: Some(ready),
                    serving: Some(ready || terminating),
                    terminating: Some(terminating),
                }),
                node_name: Some(node_name(pod_node(s, p))),
                target_ref: Some(ObjectReference {
                    kind: Some("Pod".into()),
                    name: Some(pod_name(s, p)),
                    namespace: Some(ns_of(s)),
                    uid: Some(format!("uid-{}", pod_name(s, p))),
                    ..Default::default()
                }),
                zone: Some(format!("cn-hangzhou-{}", pod_node(s, p) % 3)),
                ..Default::default()
            }
        })
        .collect();
    let mut ports = vec![EndpointPort {
        name: Some("http".into()),
        port: Some(8080),
        protocol: Some("TCP".into()),
        ..Default::default()
    }];
    if two_ports(s) {
        ports.push(EndpointPort {
            name: Some("metrics".into()),
            port: Some(9100),
            protocol: Some("TCP".into()),
            ..Default::default()
        });
    }
    EndpointSlice {
        metadata: meta(
            Some(&ns_of(s)),
            &format!("{}-abcde", svc_name(s)),
            &[
                ("kubernetes.io/service-name", svc_name(s)),
                (
                    "endpointslice.kubernetes.io/managed-by",
                    "endpointslice-controller.k8s.io".into(),
                ),
            ],
        ),
        address_type: "IPv4".into(),
        endpoints: Some(endpoints),
        ports: Some(ports),
    }
}

/// Every tenth ENI Service is dual-stack: a second slice with IPv6 addresses.
pub(crate) fn mk_slice_v6(s: usize) -> Option<EndpointSlice> {
    if kind(s) != Kind::Eni || s % 10 != 8 || !(s / 10).is_multiple_of(10) {
        return None;
    }
    let mut slice = mk_slice(s, false);
    slice.metadata.name = Some(format!("{}-v6xyz", svc_name(s)));
    slice.address_type = "IPv6".into();
    for (p, ep) in slice.endpoints.iter_mut().flatten().enumerate() {
        ep.addresses = vec![format!("fd00::{:x}", s * PODS_PER_SERVICE + p)];
    }
    Some(slice)
}

/// Nodes whose removal taint is the only thing that changes them (not control-plane,
/// not already tainted or unschedulable), so toggling it always changes the plan.
pub(crate) fn plain_nodes() -> Vec<usize> {
    (3..NODES)
        .filter(|n| n % 997 != 5 && n % 499 != 7)
        .collect()
}

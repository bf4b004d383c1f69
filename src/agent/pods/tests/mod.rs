//! The pure decisions of the pod side, on hand-built pods, Services and SLB members.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::core::v1::{
    Node, NodeSpec, PodIP, PodReadinessGate, Service, ServicePort, ServiceSpec,
};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

use super::decide::*;
use super::ledger_from_pods;
use crate::desired::PlannerConfig;
use crate::index::{ClusterIndex, ServiceRef};
use crate::k8s::names::{DRAINED_CONDITION, DRAIN_STARTED_AT_ANNOTATION, POD_FINALIZER};
use crate::model::{
    Backend, BackendKey, BackendState, BackendType, DesiredGroup, Mode, OwnerDescription, Protocol,
    SlbBackend, StoredPod, StoredPodCondition, StoredPodSpec, StoredPodStatus, Weight,
};
use crate::model::{GroupObservation, GroupTarget};

/// The managed Services among `services` that select `pod`, as the index answers.
fn backed_services(
    pod: &StoredPod,
    services: &[Service],
    config: &PlannerConfig,
) -> Vec<BackedService> {
    let mut index = ClusterIndex::new(config.clone());
    for service in services {
        index.apply_service(service);
    }
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    index.services_selecting(namespace, &labels)
}

const LB_ID: &str = "service.beta.kubernetes.io/alibaba-cloud-loadbalancer-id";

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn mk_service(name: &str, mode: Mode, selector: &[(&str, &str)]) -> Service {
    let mut annotations = labels(&[(LB_ID, "lb-1")]);
    if mode == Mode::Eni {
        annotations.insert(
            "service.beta.kubernetes.io/backend-type".into(),
            "eni".into(),
        );
    }
    Service {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("shop".into()),
            annotations: Some(annotations),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("LoadBalancer".into()),
            load_balancer_class: Some("slb-sync.io/slb".into()),
            external_traffic_policy: (mode == Mode::Local).then(|| "Local".into()),
            selector: Some(labels(selector)),
            ports: Some(vec![ServicePort {
                port: 80,
                node_port: Some(30080),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

fn mk_pod(name: &str, pod_labels: &[(&str, &str)]) -> StoredPod {
    StoredPod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("shop".into()),
            labels: Some(labels(pod_labels)),
            ..ObjectMeta::default()
        },
        spec: Some(StoredPodSpec {
            node_name: Some("node-a".into()),
            ..StoredPodSpec::default()
        }),
        status: Some(StoredPodStatus {
            pod_ip: Some("10.0.0.7".into()),
            pod_ips: Some(vec![PodIP {
                ip: "10.0.0.7".into(),
            }]),
            phase: Some("Running".into()),
            ..StoredPodStatus::default()
        }),
    }
}

fn mk_deleting(mut pod: StoredPod, at: &str) -> StoredPod {
    pod.metadata.deletion_timestamp = Some(Time(at.parse().unwrap()));
    pod.metadata.finalizers = Some(vec![POD_FINALIZER.into()]);
    pod
}

fn mk_node(provider_id: Option<&str>) -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some("node-a".into()),
            ..ObjectMeta::default()
        },
        spec: Some(NodeSpec {
            provider_id: provider_id.map(Into::into),
            ..NodeSpec::default()
        }),
        ..Node::default()
    }
}

fn owner() -> OwnerDescription {
    OwnerDescription::new(80, "web", "shop", "kubernetes")
}

fn mk_eni_member(ip: &str, weight: u32) -> SlbBackend {
    SlbBackend {
        server_id: "eni-1".into(),
        server_ip: Some(ip.parse().unwrap()),
        port: 8080,
        weight: Weight::new(weight).unwrap(),
        backend_type: BackendType::Eni,
        description: owner().to_string(),
    }
}

fn mk_ecs_member(id: &str, weight: u32) -> SlbBackend {
    SlbBackend {
        server_id: id.into(),
        server_ip: None,
        port: 30080,
        weight: Weight::new(weight).unwrap(),
        backend_type: BackendType::Ecs,
        description: owner().to_string(),
    }
}

fn mk_observation(desired: Vec<Backend>, backends: Vec<SlbBackend>) -> GroupObservation {
    GroupObservation {
        target: GroupTarget {
            load_balancer_id: "lb-1".into(),
            desired: DesiredGroup {
                service_port: 80,
                protocol: Protocol::Tcp,
                v_server_group_id: Some("rsp-1".into()),
                name: owner(),
                backends: desired,
                keep_weights: false,
            },
            drain_window: Duration::from_secs(30),
            emptying: false,
        },
        backends,
    }
}

fn eni_place() -> PodPlace {
    pod_place(
        &mk_pod("web-0", &[]),
        Some(&mk_node(Some("cn-hangzhou.i-a"))),
    )
}

mod drain;
mod gates;
mod lifecycle;

//! What the planner needs from a managed Service: mode, parsed annotations and ports.
//! Services that are not managed are not stored at all.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::intern::Interner;
use super::node::NodeSelector;
use crate::annotations;
use crate::model::PlannerConfig;
use crate::model::{LbSpec, Mode, Protocol};

/// Where a Service port sends traffic inside the pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TargetPort {
    Number(u16),
    /// A container port name; resolved through the EndpointSlice ports.
    Name(Arc<str>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PortInfo {
    pub(crate) port: u16,
    /// `None` for an unnamed port.
    pub(crate) name: Option<Arc<str>>,
    /// The raw value when it is not TCP, UDP or SCTP.
    pub(crate) protocol: Result<Protocol, Box<str>>,
    pub(crate) node_port: Option<u16>,
    pub(crate) target: TargetPort,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServiceInfo {
    pub(crate) mode: Mode,
    /// The parsed annotations, or every annotation error as text.
    pub(crate) spec: Result<LbSpec, Box<[String]>>,
    /// The SLB id when its own annotation is valid, even if another one is not.
    pub(crate) load_balancer_id: Option<Box<str>>,
    /// Sorted by port.
    pub(crate) ports: Box<[PortInfo]>,
    /// Ports that could not be read at all (out of range).
    pub(crate) port_errors: Box<[String]>,
    /// Nodes this Service may use (meaningful when `spec` is `Ok`).
    pub(crate) selector: NodeSelector,
    /// `spec.selector`, sorted by key; empty when the Service selects no pod (hand-made
    /// endpoints). The pod side reads it to find the Services a pod backs.
    pub(crate) pod_selector: Box<[(Arc<str>, Arc<str>)]>,
    /// ACK annotations it sets that slb-sync does not read (see
    /// [`annotations::unsupported`]).
    pub(crate) unsupported: Box<[String]>,
}

/// docs/architecture.md, "Managed": our class, or no class + id annotation + `--manage-unclassed`.
pub(crate) fn is_managed(svc: &Service, config: &PlannerConfig) -> bool {
    let Some(spec) = svc.spec.as_ref() else {
        return false;
    };
    if spec.type_.as_deref() != Some("LoadBalancer") {
        return false;
    }
    match spec.load_balancer_class.as_deref() {
        Some(class) => class == config.lb_class,
        None => {
            config.manage_unclassed
                && svc
                    .metadata
                    .annotations
                    .as_ref()
                    .is_some_and(annotations::has_lb_id)
        }
    }
}

impl ServiceInfo {
    /// `None` when the Service is not managed under `config`.
    pub(crate) fn from_service(
        svc: &Service,
        config: &PlannerConfig,
        interner: &mut Interner,
    ) -> Option<Self> {
        if !is_managed(svc, config) {
            return None;
        }
        let empty = Default::default();
        let annotations = svc.metadata.annotations.as_ref().unwrap_or(&empty);
        let spec = annotations::parse(annotations)
            .map_err(|errs| errs.iter().map(ToString::to_string).collect());
        let load_balancer_id = match &spec {
            Ok(s) => Some(s.load_balancer_id.as_str().into()),
            Err(_) => annotations::value(annotations, annotations::LB_ID).and_then(|id| {
                let only_id = [(annotations::LB_ID.to_owned(), id.to_owned())].into();
                annotations::parse(&only_id)
                    .ok()
                    .map(|s| s.load_balancer_id.into_boxed_str())
            }),
        };
        let k8s_spec = svc.spec.as_ref()?;
        let eni = annotations
            .get(annotations::BACKEND_TYPE)
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("eni"));
        let mode = if eni {
            Mode::Eni
        } else if k8s_spec.external_traffic_policy.as_deref() == Some("Local") {
            Mode::Local
        } else {
            Mode::Cluster
        };
        let mut ports = Vec::new();
        let mut port_errors = Vec::new();
        for p in k8s_spec.ports.iter().flatten() {
            let Some(port) = u16::try_from(p.port).ok().filter(|p| *p > 0) else {
                port_errors.push(format!("service port {} is not 1-65535", p.port));
                continue;
            };
            let target = match &p.target_port {
                None => TargetPort::Number(port),
                Some(IntOrString::Int(n)) => match u16::try_from(*n).ok().filter(|n| *n > 0) {
                    Some(n) => TargetPort::Number(n),
                    None => {
                        port_errors.push(format!(
                            "service port {port} has targetPort {n}, which is not 1-65535"
                        ));
                        continue;
                    }
                },
                Some(IntOrString::String(name)) => match name.parse::<u16>() {
                    Ok(n) if n > 0 => TargetPort::Number(n),
                    _ => TargetPort::Name(interner.get(name)),
                },
            };
            let protocol = p.protocol.as_deref();
            ports.push(PortInfo {
                port,
                name: p
                    .name
                    .as_deref()
                    .filter(|n| !n.is_empty())
                    .map(|n| interner.get(n)),
                protocol: Protocol::from_k8s(protocol).ok_or_else(|| protocol.unwrap_or("").into()),
                node_port: p
                    .node_port
                    .and_then(|n| u16::try_from(n).ok())
                    .filter(|n| *n > 0),
                target,
            });
        }
        ports.sort_by_key(|p| p.port);
        let selector = match &spec {
            Ok(s) => NodeSelector::new(&s.backend_labels, s.remove_unscheduled_backend, interner),
            Err(_) => NodeSelector::default(),
        };
        let pod_selector = k8s_spec
            .selector
            .iter()
            .flatten()
            .map(|(k, v)| (interner.get(k), interner.get(v)))
            .collect();
        Some(ServiceInfo {
            pod_selector,
            mode,
            spec,
            load_balancer_id,
            ports: ports.into_boxed_slice(),
            port_errors: port_errors.into_boxed_slice(),
            selector,
            unsupported: annotations::unsupported(annotations).into_boxed_slice(),
        })
    }

    /// Uses the shared Cluster-mode eligible-node set.
    pub(crate) fn uses_node_set(&self) -> bool {
        self.mode == Mode::Cluster && self.spec.is_ok()
    }

    /// Its backends depend on endpoints (and pods, through the gate bootstrap).
    pub(crate) fn uses_endpoints(&self) -> bool {
        self.mode != Mode::Cluster && self.spec.is_ok()
    }
}

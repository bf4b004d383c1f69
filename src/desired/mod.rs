//! Pure desired-state planner: cluster index → desired backends of every vServer group.
//!
//! The rules: docs/architecture.md, "Planner rules". Every problem is reported in the Service's own
//! `errors`; nothing one Service does stops another from being planned.

pub mod args;
mod eni;
mod nodes;
#[cfg(test)]
mod tests;
mod weights;

use crate::index::PortInfo;
use crate::index::{ClusterIndex, ServiceInfo, ServiceRef};
pub use crate::model::PlannerConfig;
use crate::model::{Backend, BackendState, DesiredGroup, DesiredService, Mode, OwnerDescription};
use eni::Pods;
use weights::WeightRule;

/// Desired state of every managed Service, sorted by `<namespace>/<name>`.
pub fn plan_all(index: &ClusterIndex) -> Vec<DesiredService> {
    let mut out: Vec<DesiredService> = index
        .all_services()
        .map(|(ns, name, info)| plan_one(index, ns, name, info))
        .collect();
    out.sort_unstable_by(|a, b| a.service.cmp(&b.service));
    out
}

/// Desired state of one Service; `None` when it is not (or no longer) managed.
pub fn plan_service(index: &ClusterIndex, service: &ServiceRef) -> Option<DesiredService> {
    let info = index.service_info(&service.namespace, &service.name)?;
    Some(plan_one(index, &service.namespace, &service.name, info))
}

fn plan_one(index: &ClusterIndex, ns: &str, name: &str, info: &ServiceInfo) -> DesiredService {
    let mut out = DesiredService {
        service: format!("{ns}/{name}"),
        load_balancer_id: info.load_balancer_id.as_deref().map(str::to_owned),
        mode: info.mode,
        groups: Vec::new(),
        errors: Vec::new(),
        unsupported_annotations: info.unsupported.to_vec(),
    };
    let spec = match &info.spec {
        Ok(spec) => spec,
        Err(errors) => {
            out.errors = errors.to_vec();
            return out;
        }
    };
    out.errors.extend(info.port_errors.iter().cloned());
    let errors = &mut out.errors;
    let ports: Vec<&PortInfo> = info
        .ports
        .iter()
        .filter(|p| port_usable(p, info.mode, errors))
        .collect();
    let rule = WeightRule::of(spec);
    // Pods on virtual nodes join node-mode groups as ENI backends (`eni.rs`).
    let on_virtual = Pods::OnVirtualNodes(&info.selector);
    let mut groups: Vec<(&PortInfo, Vec<Backend>)> = match info.mode {
        Mode::Cluster => {
            let set = index.node_set(&info.selector);
            errors.extend(set.errors.iter().cloned());
            let mut out = Vec::with_capacity(ports.len());
            for p in ports {
                let mut backends = nodes::cluster_backends(&set, node_port(p));
                backends.extend(eni::eni_backends(index, ns, name, p, on_virtual, errors));
                out.push((p, backends));
            }
            out
        }
        Mode::Local => {
            let weights = nodes::local_weights(index, ns, name, info, rule, errors);
            let mut out = Vec::with_capacity(ports.len());
            for p in ports {
                let mut backends = nodes::local_backends(&weights.nodes, node_port(p));
                let mut pods = eni::eni_backends(index, ns, name, p, on_virtual, errors);
                for pod in pods.iter_mut().filter(|b| b.state == BackendState::Active) {
                    pod.weight = weights.virtual_pod;
                }
                backends.append(&mut pods);
                out.push((p, backends));
            }
            out
        }
        Mode::Eni => {
            eni::report_bad_addresses(index, ns, name, errors);
            ports
                .into_iter()
                .map(|p| (p, eni::eni_backends(index, ns, name, p, Pods::All, errors)))
                .collect()
        }
    };
    if info.mode != Mode::Local {
        for (_, backends) in &mut groups {
            rule.apply_each(backends);
        }
    }
    let cluster_id = &index.config().cluster_id;
    for (p, backends) in groups {
        let Ok(protocol) = p.protocol.as_ref() else {
            continue;
        };
        let owner = OwnerDescription::new(p.port, name, ns, cluster_id);
        // The SLB refuses such a Description on every write: say so once here rather
        // than retry a write that cannot succeed.
        if let Some(problem) = owner.slb_problem() {
            out.errors.push(format!(
                "service port {}: the owner Description {owner} cannot be written to the \
                 SLB ({problem}); use a shorter Service, namespace or --cluster-id. The port \
                 is skipped",
                p.port
            ));
            continue;
        }
        out.groups.push(DesiredGroup {
            service_port: p.port,
            protocol: *protocol,
            v_server_group_id: spec.vgroup_ports.get(&p.port).cloned(),
            name: owner,
            backends,
            keep_weights: spec.ignore_weight_update,
        });
    }
    out
}

fn node_port(p: &PortInfo) -> u16 {
    p.node_port.unwrap_or_default()
}

/// A port gets a group only when its protocol is one a listener carries and, for the
/// node modes, it has a nodePort; otherwise the Service says why.
fn port_usable(p: &PortInfo, mode: Mode, errors: &mut Vec<String>) -> bool {
    if let Err(raw) = &p.protocol {
        errors.push(format!(
            "service port {} has protocol {raw:?}; use TCP, UDP or SCTP. The port is skipped",
            p.port
        ));
        return false;
    }
    if mode != Mode::Eni && p.node_port.is_none() {
        errors.push(format!(
            "service port {} has no nodePort, which {mode} mode sends traffic to; \
             allow node ports (allocateLoadBalancerNodePorts) or use backend-type eni. \
             The port is skipped",
            p.port
        ));
        return false;
    }
    true
}

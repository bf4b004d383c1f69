//! ENI backends: each endpoint address of the Service at its target port.

use crate::index::{ClusterIndex, EndpointState, PortInfo, SliceInfo, TargetPort};
use crate::model::{Backend, BackendState, Weight};

use super::nodes::counts;

/// The pod port behind service port `port` in `slice` (DESIGN.md §3.1 "Ports"): the slice
/// port with the Service port's name, else a numeric targetPort as is.
fn target_port(slice_name: &str, slice: &SliceInfo, port: &PortInfo) -> Result<u16, String> {
    let named = slice
        .ports
        .iter()
        .find(|sp| sp.name == port.name)
        .and_then(|sp| sp.port);
    match (named, &port.target) {
        (Some(p), _) => Ok(p),
        (None, TargetPort::Number(n)) => Ok(*n),
        (None, TargetPort::Name(target)) => Err(format!(
            "EndpointSlice {slice_name} has no port named {:?} for service port {} \
             (targetPort {target:?}), so its endpoints are left out of that port",
            port.name.as_deref().unwrap_or(""),
            port.port,
        )),
    }
}

/// One backend per endpoint address: counted → active at 100, terminating → draining
/// at 0, others absent. Sorted by backend key, one entry per key (active wins).
pub(super) fn eni_backends(
    index: &ClusterIndex,
    ns: &str,
    service: &str,
    port: &PortInfo,
    errors: &mut Vec<String>,
) -> Vec<Backend> {
    let mut out = Vec::new();
    for (slice_name, slice) in index.slices_of(ns, service) {
        if slice.endpoints.is_empty() {
            continue;
        }
        let target = match target_port(slice_name, slice, port) {
            Ok(p) => p,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        for ep in slice.endpoints.iter() {
            let (weight, state) = if counts(index, ns, service, ep) {
                (Weight::MAX, BackendState::Active)
            } else if ep.state == EndpointState::Terminating {
                (Weight::ZERO, BackendState::Draining)
            } else {
                continue;
            };
            for ip in ep.addresses.iter() {
                out.push(Backend::eni(*ip, target, weight, state));
            }
        }
    }
    // The documented order compares IPs as text (model::BackendKey's Ord); compute each
    // text once rather than per comparison.
    out.sort_by_cached_key(|b| (b.server_ip.map(|ip| ip.to_string()), b.port, b.state));
    out.dedup_by(|later, earlier| {
        later.server_ip == earlier.server_ip && later.port == earlier.port
    });
    out
}

/// Addresses that did not parse are named once per Service, not once per port.
pub(super) fn report_bad_addresses(
    index: &ClusterIndex,
    ns: &str,
    service: &str,
    errors: &mut Vec<String>,
) {
    for (slice_name, slice) in index.slices_of(ns, service) {
        if slice.bad_addresses > 0 {
            errors.push(format!(
                "EndpointSlice {slice_name} has {} addresses that are not valid for its \
                 address type; they are left out",
                slice.bad_addresses
            ));
        }
    }
}

//! ENI backends: each endpoint address of the Service at its target port.

use std::net::IpAddr;

use crate::index::{
    ClusterIndex, EndpointInfo, EndpointState, NodeSelector, PortInfo, SliceInfo, TargetPort,
};
use crate::model::{Backend, BackendState, Weight};

use super::nodes::{counts, Bootstrap};

/// The pod port behind service port `port` in `slice` (docs/architecture.md, "Ports"): the slice
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

/// Which endpoints become ENI backends.
#[derive(Debug, Clone, Copy)]
pub(super) enum Pods<'a> {
    /// Every one (ENI mode).
    All,
    /// Those on virtual nodes the selector admits (Cluster and Local mode: ECI pods have
    /// no node backend to go through).
    OnVirtualNodes(&'a NodeSelector),
}

/// One backend per endpoint address of `pods`: counted → active at 100, terminating →
/// draining at 0, others absent. Sorted by backend key, one entry per key (active wins).
pub(super) fn eni_backends(
    index: &ClusterIndex,
    ns: &str,
    service: &str,
    port: &PortInfo,
    pods: Pods<'_>,
    errors: &mut Vec<String>,
) -> Vec<Backend> {
    let wanted = |ep: &EndpointInfo| match pods {
        Pods::All => true,
        Pods::OnVirtualNodes(selector) => ep
            .node
            .as_deref()
            .and_then(|name| index.node(name))
            .is_some_and(|node| node.virtual_for(selector)),
    };
    let mut out = Vec::new();
    for (slice_name, slice) in index.slices_of(ns, service) {
        if !slice.endpoints.iter().any(wanted) {
            continue;
        }
        let target = match target_port(slice_name, slice, port) {
            Ok(p) => p,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        for ep in slice.endpoints.iter().filter(|ep| wanted(ep)) {
            let (weight, state) = if counts(index, ns, service, ep, Bootstrap::ContainersReady) {
                (Weight::MAX, BackendState::Active)
            } else if ep.state == EndpointState::Terminating {
                (Weight::ZERO, BackendState::Draining)
            } else {
                continue;
            };
            for ip in slice.addresses(ep) {
                out.push(Backend::eni(*ip, target, weight, state));
            }
        }
    }
    // The documented order compares IPs as text (model::BackendKey's Ord).
    out.sort_by_cached_key(|b| (b.server_ip.map(IpText::new), b.port, b.state));
    out.dedup_by(|later, earlier| {
        later.server_ip == earlier.server_ip && later.port == earlier.port
    });
    out
}

/// An IP address as the text the JSON shows, on the stack: sorting by it matches
/// `BackendKey`'s order without an allocation per backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct IpText {
    /// Text bytes, zero-padded; no address text contains a zero byte, so the padding
    /// sorts a prefix first exactly as string comparison does.
    bytes: [u8; 40],
}

impl IpText {
    fn new(ip: IpAddr) -> Self {
        let mut bytes = [0u8; 40];
        match ip {
            IpAddr::V4(v4) => {
                let mut at = 0;
                for (i, octet) in v4.octets().into_iter().enumerate() {
                    if i > 0 {
                        bytes[at] = b'.';
                        at += 1;
                    }
                    if octet >= 100 {
                        bytes[at] = b'0' + octet / 100;
                        at += 1;
                    }
                    if octet >= 10 {
                        bytes[at] = b'0' + (octet / 10) % 10;
                        at += 1;
                    }
                    bytes[at] = b'0' + octet % 10;
                    at += 1;
                }
            }
            IpAddr::V6(_) => {
                use std::io::Write;
                // At most 39 characters, so this cannot run out of room.
                let _ = write!(&mut bytes[..], "{ip}");
            }
        }
        IpText { bytes }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_text_orders_like_the_text_the_json_shows() {
        let ips = [
            "10.0.0.10",
            "10.0.0.2",
            "10.0.0.1",
            "9.255.255.255",
            "100.1.2.3",
            "fd00::1",
            "fd00::10",
            "::1",
            "10.0.0.100",
            "1.2.3.4",
            "2001:db8::ffff:1",
        ];
        let mut by_key: Vec<IpAddr> = ips.iter().map(|s| s.parse().unwrap()).collect();
        let mut by_text = by_key.clone();
        by_key.sort_by_key(|ip| IpText::new(*ip));
        by_text.sort_by_key(|ip| ip.to_string());
        assert_eq!(by_key, by_text);
        for ip in &by_key {
            let text = ip.to_string();
            assert_eq!(&IpText::new(*ip).bytes[..text.len()], text.as_bytes());
        }
    }
}

//! What the planner needs from an EndpointSlice: per endpoint its addresses, node and
//! condition, and the slice's named ports.

use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::discovery::v1::EndpointSlice;

use super::intern::Interner;

/// Label linking a slice to its Service (set by the EndpointSlice controller).
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// An endpoint's condition as the planner reads it (docs/architecture.md, "Which endpoints count").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EndpointState {
    /// Ready and not terminating.
    Ready,
    /// Terminating (serving or not): never counts, drains.
    Terminating,
    /// Neither: counts only through the readiness-gate bootstrap.
    NotReady,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EndpointInfo {
    /// Range in [`SliceInfo::addresses`]: one allocation per slice, not per endpoint.
    addresses: std::ops::Range<u32>,
    pub(crate) node: Option<Arc<str>>,
    pub(crate) state: EndpointState,
    /// The backing pod's name, kept only for `NotReady` endpoints: the gate bootstrap
    /// needs it, and a state change always comes with a new slice.
    pub(crate) pod: Option<Box<str>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SlicePort {
    /// `None` for the unnamed port (the API's empty name).
    pub(crate) name: Option<Arc<str>>,
    pub(crate) port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SliceInfo {
    pub(crate) ports: Box<[SlicePort]>,
    pub(crate) endpoints: Box<[EndpointInfo]>,
    /// The addresses of all endpoints, in endpoint order.
    addresses: Box<[IpAddr]>,
    /// Addresses that did not parse as the slice's address type.
    pub(crate) bad_addresses: u32,
}

impl SliceInfo {
    pub(crate) fn addresses(&self, ep: &EndpointInfo) -> &[IpAddr] {
        self.addresses
            .get(ep.addresses.start as usize..ep.addresses.end as usize)
            .unwrap_or_default()
    }

    /// Whether an address ready here is not ready in `new` (or `new` is gone).
    pub(crate) fn loses_ready(&self, new: Option<&SliceInfo>) -> bool {
        let ready = |info: &'_ SliceInfo| -> Vec<IpAddr> {
            info.endpoints
                .iter()
                .filter(|e| e.state == EndpointState::Ready)
                .flat_map(|e| info.addresses(e).iter().copied())
                .collect()
        };
        let before = ready(self);
        if before.is_empty() {
            return false;
        }
        let after = new.map(ready).unwrap_or_default();
        before.iter().any(|ip| !after.contains(ip))
    }

    /// `None` for slices of FQDN type, which no backend mode can use.
    pub(crate) fn from_slice(slice: &EndpointSlice, interner: &mut Interner) -> Option<Self> {
        let want_v6 = match slice.address_type.as_str() {
            "IPv4" => false,
            "IPv6" => true,
            _ => return None,
        };
        let ports = slice
            .ports
            .iter()
            .flatten()
            .map(|p| SlicePort {
                name: p
                    .name
                    .as_deref()
                    .filter(|n| !n.is_empty())
                    .map(|n| interner.get(n)),
                port: p
                    .port
                    .and_then(|p| u16::try_from(p).ok())
                    .filter(|p| *p > 0),
            })
            .collect();
        let mut bad_addresses = 0;
        let endpoint_count = slice.endpoints.as_ref().map_or(0, Vec::len);
        let mut all_addresses = Vec::with_capacity(endpoint_count);
        let endpoints = slice
            .endpoints
            .iter()
            .flatten()
            .map(|ep| {
                let start = all_addresses.len() as u32;
                for a in &ep.addresses {
                    match a.parse::<IpAddr>() {
                        Ok(ip) if ip.is_ipv6() == want_v6 => all_addresses.push(ip),
                        _ => bad_addresses += 1,
                    }
                }
                let addresses = start..all_addresses.len() as u32;
                let cond = ep.conditions.as_ref();
                // A nil `ready` means unknown, which consumers read as ready (API docs).
                let ready = cond.and_then(|c| c.ready).unwrap_or(true);
                let terminating = cond.and_then(|c| c.terminating).unwrap_or(false);
                let state = if terminating {
                    EndpointState::Terminating
                } else if ready {
                    EndpointState::Ready
                } else {
                    EndpointState::NotReady
                };
                // Pods backing a slice live in its namespace.
                let pod = match (&ep.target_ref, state) {
                    (Some(r), EndpointState::NotReady) if r.kind.as_deref() == Some("Pod") => {
                        r.name.as_deref().map(Box::from)
                    }
                    _ => None,
                };
                EndpointInfo {
                    addresses,
                    node: ep.node_name.as_deref().map(|n| interner.get(n)),
                    state,
                    pod,
                }
            })
            .collect();
        Some(SliceInfo {
            ports,
            endpoints,
            addresses: all_addresses.into_boxed_slice(),
            bad_addresses,
        })
    }
}

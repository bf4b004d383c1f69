//! Pure decisions of the pod side: which pods need the finalizer, whether a deleted pod's
//! backend is confirmed gone, what a readiness gate should say, when the finalizer is
//! released without confirmation, and how the drain journal annotation changes.
//!
//! No I/O and no clock here: the caller hands in pods, what the index says of their
//! Services, the last observed SLB members of each group and `now`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Node;

use crate::index::{is_virtual_node, parse_provider_id};
use crate::k8s::names::{gated_service, DRAINED_CONDITION, POD_FINALIZER};
use crate::model::{BackendState, BackendType, GroupObservation, Mode, SlbBackend, StoredPod};

/// Reason of a readiness gate condition whose backend carries traffic.
pub const REASON_REGISTERED: &str = "BackendRegistered";
/// Reason of a readiness gate condition whose backend is not (yet) in every group.
pub const REASON_NOT_REGISTERED: &str = "BackendNotRegistered";

pub use crate::index::BackedService;

/// Where a pod's traffic enters from the SLB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodPlace {
    pub ips: Vec<IpAddr>,
    /// The pod's node: `None` when unscheduled; `Some(None)` when the node is known but
    /// has no usable providerID (it is never an SLB backend); `Some(Some(id))` its ECS id.
    pub instance: Option<Option<String>>,
    /// The node is named by the pod but not (or no longer) in the node cache.
    pub node_unknown: bool,
    /// The pod runs on a virtual node: in every mode its backend is its own IP (an ENI
    /// backend), as in ENI mode.
    pub virtual_node: bool,
}

impl PodPlace {
    /// How the pod's backend is found in a group of a Service in `mode`: by its IP on a
    /// virtual node whatever the mode.
    pub fn backend_mode(&self, mode: Mode) -> Mode {
        if self.virtual_node {
            Mode::Eni
        } else {
            mode
        }
    }
}

pub fn has_finalizer(pod: &StoredPod) -> bool {
    pod.metadata
        .finalizers
        .as_ref()
        .is_some_and(|f| f.iter().any(|f| f == POD_FINALIZER))
}

pub fn is_deleting(pod: &StoredPod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

/// Pods that finished (`Succeeded`/`Failed`) are no endpoints any more.
pub fn is_terminal(pod: &StoredPod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

pub fn condition_status<'a>(
    pod: &'a StoredPod,
    condition_type: &str,
) -> Option<(&'a str, &'a str)> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == condition_type)
        .map(|c| (c.status.as_str(), c.reason.as_deref().unwrap_or("")))
}

/// When the pod's containers became ready (`ContainersReady` True), if they are.
pub fn containers_ready_since(pod: &StoredPod) -> Option<Timestamp> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "ContainersReady" && c.status == "True")?
        .last_transition_time
        .as_ref()
        .map(|t| t.0)
}

pub fn is_drained(pod: &StoredPod) -> bool {
    condition_status(pod, DRAINED_CONDITION).is_some_and(|(s, _)| s == "True")
}

/// The pod gets the finalizer when it backs a managed Service of any mode, is not being
/// deleted (a finalizer cannot be added then), has not finished, and lacks it.
///
/// Cluster mode holds pods too although its nodes stay in the SLB whatever the pods do:
/// kube-proxy on every node keeps forwarding to a terminating pod until its next sync, so
/// the pod must keep serving for the kube-proxy allowance (see [`super::allowance`]).
pub fn needs_finalizer(pod: &StoredPod, backed: &[BackedService]) -> bool {
    !is_deleting(pod) && !is_terminal(pod) && !has_finalizer(pod) && !backed.is_empty()
}

/// The pod's IPs and node instance, read from the pod and the node cache.
pub fn pod_place(pod: &StoredPod, node: Option<&Node>) -> PodPlace {
    let status = pod.status.as_ref();
    let mut ips: Vec<IpAddr> = status
        .and_then(|s| s.pod_ips.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|ip| ip.ip.parse().ok())
        .collect();
    if let Some(ip) = status
        .and_then(|s| s.pod_ip.as_deref())
        .and_then(|ip| ip.parse().ok())
    {
        if !ips.contains(&ip) {
            ips.push(ip);
        }
    }
    let node_name = pod.spec.as_ref().and_then(|s| s.node_name.as_deref());
    let instance = node_name.map(|_| {
        node.and_then(|n| n.spec.as_ref()?.provider_id.as_deref())
            .and_then(parse_provider_id)
            .map(str::to_owned)
    });
    PodPlace {
        ips,
        instance,
        node_unknown: node_name.is_some() && node.is_none(),
        virtual_node: node.is_some_and(is_virtual_node),
    }
}

/// Whether one group no longer sends the deleted pod traffic.
///
/// ENI: no owned member carries the pod's IP, and the target the pass ran for no longer
/// wants it active (so a pass planned before the deletion cannot confirm it).
/// Local: the node's owned member is gone; or, when another endpoint on the node keeps
/// serving (`others_on_node`), its weight is the desired one, which then excludes the pod.
pub fn group_drained(
    mode: Mode,
    place: &PodPlace,
    others_on_node: bool,
    observation: &GroupObservation,
) -> bool {
    match place.backend_mode(mode) {
        Mode::Eni => {
            let present = observation
                .owned()
                .any(|b| b.server_ip.is_some_and(|ip| place.ips.contains(&ip)));
            let wanted = observation.target.desired.backends.iter().any(|b| {
                b.state == BackendState::Active
                    && b.server_ip.is_some_and(|ip| place.ips.contains(&ip))
            });
            !present && !wanted
        }
        Mode::Local => {
            let instance = match &place.instance {
                // Never scheduled, or on a node the SLB cannot hold: no SLB traffic.
                None | Some(None) => return !place.node_unknown,
                Some(Some(id)) => id,
            };
            let member = observation
                .owned()
                .find(|b| b.backend_type == BackendType::Ecs && &b.server_id == instance);
            let Some(member) = member else { return true };
            let desired = observation.target.desired.backends.iter().find(|b| {
                b.backend_type == BackendType::Ecs && b.server_id.as_ref() == Some(instance)
            });
            // The desired weight excludes the pod; under `ignore-weight-update` the node
            // keeps the weight it has, and kube-proxy on it sends the pod nothing.
            let keep = observation.target.desired.keep_weights && member.weight.get() > 0;
            others_on_node
                && desired.is_some_and(|d| {
                    d.state == BackendState::Active && (d.weight == member.weight || keep)
                })
        }
        Mode::Cluster => true,
    }
}

/// Whether the pod's backend is registered in one group.
///
/// ENI and Cluster: its backend (the pod's IP; its node) is a member with weight > 0, or
/// at 0 when that is the weight the Service's weight annotations give it.
/// Local: its node is a member at any weight, and the target the pass ran for wants the
/// node active (so a pass planned while the node was draining cannot open the gate).
/// Local deliberately does not wait for weight > 0: the planner holds a node whose only
/// endpoints are not Ready yet at weight 0, because the node's kube-proxy has no rule for
/// the Service before a local endpoint is Ready; the weight rises once the endpoint is
/// ready, which needs the pod Ready, which needs this gate. Waiting for weight > 0 here
/// would deadlock, and raising the weight before Ready is race 3 on the way in.
pub fn group_registered(mode: Mode, place: &PodPlace, observation: &GroupObservation) -> bool {
    let on_node = |server_id: &str| matches!(&place.instance, Some(Some(id)) if id == server_id);
    // At weight 0 only when the Service's weights put it there (`…-weight: "0"`, a
    // `…-default-weight` of 0): the user took the group out of traffic on purpose.
    let weighed = |b: &SlbBackend| {
        b.weight.get() > 0
            || observation.target.desired.backends.iter().any(|d| {
                d.state == BackendState::Active && d.weight.get() == 0 && Some(d.key()) == b.key()
            })
    };
    match place.backend_mode(mode) {
        Mode::Eni => observation
            .owned()
            .any(|b| weighed(b) && b.server_ip.is_some_and(|ip| place.ips.contains(&ip))),
        Mode::Cluster => observation
            .owned()
            .any(|b| weighed(b) && b.backend_type == BackendType::Ecs && on_node(&b.server_id)),
        Mode::Local => {
            let present = observation
                .owned()
                .any(|b| b.backend_type == BackendType::Ecs && on_node(&b.server_id));
            let wanted = observation.target.desired.backends.iter().any(|b| {
                b.backend_type == BackendType::Ecs
                    && b.state == BackendState::Active
                    && b.server_id.as_deref().is_some_and(on_node)
            });
            present && wanted
        }
    }
}

/// A readiness gate condition as the agent wants it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateCondition {
    pub condition_type: String,
    pub status: bool,
    pub reason: &'static str,
    pub message: String,
}

/// The gate of `condition_type` for a Service of `mode` whose groups were last seen as
/// `observations` (empty: no pass yet).
pub fn gate_condition(
    condition_type: &str,
    mode: Mode,
    place: &PodPlace,
    observations: &[&GroupObservation],
) -> GateCondition {
    let missing: Vec<u16> = observations
        .iter()
        .filter(|o| !group_registered(mode, place, o))
        .map(|o| o.target.desired.service_port)
        .collect();
    let (status, reason, message) = if observations.is_empty() {
        (
            false,
            REASON_NOT_REGISTERED,
            "no vServer group of the Service has been reconciled yet".to_owned(),
        )
    } else if missing.is_empty() {
        (
            true,
            REASON_REGISTERED,
            format!(
                "the pod's backend is in every vServer group of the Service {}",
                weight_rule(mode)
            ),
        )
    } else {
        (
            false,
            REASON_NOT_REGISTERED,
            format!(
                "the pod's backend is not in the SLB {} for service port(s) {missing:?}",
                weight_rule(mode)
            ),
        )
    };
    GateCondition {
        condition_type: condition_type.to_owned(),
        status,
        reason,
        message,
    }
}

/// How a registered backend is weighted, for gate messages.
fn weight_rule(mode: Mode) -> &'static str {
    match mode {
        Mode::Local => "(its node, at weight 0 until an endpoint there is ready)",
        Mode::Cluster | Mode::Eni => "with weight > 0",
    }
}

/// The readiness gates of ours or ACK's the pod declares: (condition type, Service name).
pub fn declared_gates(pod: &StoredPod) -> Vec<(String, String)> {
    pod.spec
        .as_ref()
        .and_then(|s| s.readiness_gates.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|g| {
            let service = gated_service(&g.condition_type)?;
            Some((g.condition_type.clone(), service.to_owned()))
        })
        .collect()
}

/// True when the pod's condition already says what `want` says (status and reason).
pub fn gate_unchanged(pod: &StoredPod, want: &GateCondition) -> bool {
    let status = if want.status { "True" } else { "False" };
    condition_status(pod, &want.condition_type) == Some((status, want.reason))
}

/// True when nothing is to be written for `want`: the pod already says it, or its gate is
/// open and `want` would close it. An open gate stays open: closing it makes a serving pod
/// NotReady, and Kubernetes then drops it from the endpoints of every Service — to report
/// something about one SLB group. A fresh agent (a restart, a new leader) that has not
/// read a group yet would otherwise close every gate in the cluster at once.
pub fn gate_settled(pod: &StoredPod, want: &GateCondition) -> bool {
    gate_unchanged(pod, want)
        || (!want.status
            && condition_status(pod, &want.condition_type).is_some_and(|(s, _)| s == "True"))
}

/// When a held finalizer is released without confirmation: `margin` after the later of
/// the pod's `deletionTimestamp` and the end of its kube-proxy `allowance`
/// ([`super::allowance::kube_proxy_settled_at`]), so a fail-open never comes before the
/// handshake could have completed. The API server sets a pod's `deletionTimestamp` to the
/// deletion time plus its effective grace period, the moment the kubelet kills the
/// containers, so the grace period is already in it. `None` when not being deleted.
pub fn fail_open_deadline(
    pod: &StoredPod,
    margin: Duration,
    allowance: Duration,
) -> Option<Timestamp> {
    let kill_at = pod.metadata.deletion_timestamp.as_ref()?.0;
    let settled = super::allowance::kube_proxy_settled_at(pod, allowance).unwrap_or(kill_at);
    Some(
        kill_at
            .max(settled)
            .checked_add(margin)
            .unwrap_or(Timestamp::MAX),
    )
}

/// The journal annotation's entries: `"<vServerGroupId>:<port>"` → drain start. The port
/// is part of the key because the drain ledger needs the full ENI backend identity
/// (IP, port) when it is restored. Unreadable text or entries are ignored.
pub fn parse_journal(value: Option<&str>) -> BTreeMap<String, Timestamp> {
    let Some(value) = value else {
        return BTreeMap::new();
    };
    let raw: BTreeMap<String, String> = serde_json::from_str(value).unwrap_or_default();
    raw.into_iter()
        .filter_map(|(k, v)| Some((k, v.parse().ok()?)))
        .collect()
}

/// The journal key of an ENI backend in a group.
pub fn journal_key(v_server_group_id: &str, port: u16) -> String {
    format!("{v_server_group_id}:{port}")
}

/// Splits a journal key into (group id, port).
pub fn split_journal_key(key: &str) -> Option<(&str, u16)> {
    let (group, port) = key.rsplit_once(':')?;
    let port = port.parse().ok()?;
    (!group.is_empty()).then_some((group, port))
}

/// The annotation value after setting (`Some`) or removing (`None`) one entry: `None`
/// when nothing changes, `Some(None)` when the annotation should go, `Some(Some(json))`.
pub fn merge_journal(
    current: Option<&str>,
    key: &str,
    at: Option<Timestamp>,
) -> Option<Option<String>> {
    let mut entries = parse_journal(current);
    let changed = match at {
        Some(at) => entries.insert(key.to_owned(), at) != Some(at),
        None => entries.remove(key).is_some(),
    };
    if !changed {
        return None;
    }
    if entries.is_empty() {
        return Some(None);
    }
    let text: BTreeMap<&String, String> = entries.iter().map(|(k, v)| (k, v.to_string())).collect();
    Some(serde_json::to_string(&text).ok())
}

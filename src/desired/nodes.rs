//! ECS (node) backends: Cluster mode from the shared eligible-node set, Local mode from
//! the nodes hosting the Service's endpoints, weighted by how many count there.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::weights::WeightRule;
use crate::index::{ClusterIndex, EndpointInfo, EndpointState, NodeSet, NodeStatus, ServiceInfo};
use crate::model::{Backend, BackendState, Weight};

/// Cluster mode: every node of the set at `node_port`, weight 100 (0 when draining).
pub(super) fn cluster_backends(set: &NodeSet, node_port: u16) -> Vec<Backend> {
    set.backends
        .iter()
        .map(|(id, state)| {
            let weight = match state {
                BackendState::Active => Weight::MAX,
                BackendState::Draining => Weight::ZERO,
            };
            Backend::ecs(&**id, node_port, weight, *state)
        })
        .collect()
}

/// How early the readiness-gate bootstrap admits a not-ready endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Bootstrap {
    /// Once the pod's containers are ready: the backend takes traffic at once (ENI).
    ContainersReady,
    /// As soon as the endpoint is listed: the backend joins at weight 0 and takes no
    /// traffic until an endpoint is ready (a Local node), so the SLB write is done while
    /// the application starts, and the gate opens when the containers are ready rather
    /// than a write and its propagation later.
    Listed,
}

/// Whether an endpoint counts for `service` (docs/architecture.md, "Which endpoints count"):
/// ready and not terminating, or admitted by the readiness-gate bootstrap.
pub(super) fn counts(
    index: &ClusterIndex,
    ns: &str,
    service: &str,
    ep: &EndpointInfo,
    bootstrap: Bootstrap,
) -> bool {
    match ep.state {
        EndpointState::Ready => true,
        EndpointState::Terminating => false,
        EndpointState::NotReady => ep
            .pod
            .as_deref()
            .and_then(|pod| index.pod_gates(ns, pod))
            .is_some_and(|g| match bootstrap {
                Bootstrap::ContainersReady => g.admits(service),
                Bootstrap::Listed => g.gated_by(service),
            }),
    }
}

/// One Local-mode node backend before the port is known.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct NodeWeight {
    instance: Arc<str>,
    state: BackendState,
    weight: Weight,
}

#[derive(Default)]
struct Tally {
    counted: u32,
    /// Of `counted`, the endpoints that are ready (not just admitted by the bootstrap).
    ready: u32,
    terminating: u32,
}

/// Local mode: per eligible node hosting endpoints, the weight it should get, sorted by
/// instance id. Endpoints without a node and nodes without an instance id go to `errors`.
///
/// A node whose counted endpoints are all admitted by the readiness-gate bootstrap (none
/// ready yet) is `active` at weight 0: present in the group, so the pods' gates can open,
/// but sent no new connection. Its kube-proxy forwards only to ready local endpoints and
/// has no rule for the Service until the pod is Ready, so a weight > 0 before then would
/// send SLB traffic to a node that refuses it (race 3, inbound: docs/architecture.md, "The four races").
/// The weight goes to its normal value once an endpoint on the node is ready.
pub(super) fn local_weights(
    index: &ClusterIndex,
    ns: &str,
    service: &str,
    info: &ServiceInfo,
    rule: WeightRule,
    errors: &mut Vec<String>,
) -> LocalWeights {
    let mut tally: BTreeMap<&str, Tally> = BTreeMap::new();
    let mut virtual_pods = 0u32;
    for (slice_name, slice) in index.slices_of(ns, service) {
        for ep in slice.endpoints.iter() {
            let on_virtual = ep
                .node
                .as_deref()
                .and_then(|name| index.node(name))
                .is_some_and(|node| node.virtual_for(&info.selector));
            if on_virtual {
                // An ENI backend of its own (see `eni.rs`), weighed below.
                virtual_pods +=
                    u32::from(counts(index, ns, service, ep, Bootstrap::ContainersReady));
                continue;
            }
            let counted = counts(index, ns, service, ep, Bootstrap::Listed);
            if !counted && ep.state != EndpointState::Terminating {
                continue;
            }
            let Some(node) = ep.node.as_deref() else {
                let address = slice.addresses(ep).first().map(ToString::to_string);
                errors.push(format!(
                    "endpoint {} in EndpointSlice {slice_name} has no nodeName, which Local \
                     mode needs to pick its node; it is left out",
                    address.as_deref().unwrap_or("without address"),
                ));
                continue;
            };
            let t = tally.entry(node).or_default();
            if counted {
                t.counted += 1;
                t.ready += u32::from(ep.state == EndpointState::Ready);
            } else {
                t.terminating += 1;
            }
        }
    }
    let mut out = Vec::with_capacity(tally.len());
    for (name, t) in tally {
        // A node missing from the index was deleted; the step planner drains what it owned.
        let Some(node) = index.node(name) else {
            continue;
        };
        let (instance, state) = match node.status(&info.selector) {
            NodeStatus::Excluded => continue,
            NodeStatus::NoInstance => {
                errors.push(node.instance_error());
                continue;
            }
            NodeStatus::Active(id) if t.counted > 0 => (id, BackendState::Active),
            NodeStatus::Active(id) | NodeStatus::Draining(id) => (id, BackendState::Draining),
        };
        // Weight 0 while only bootstrap-admitted endpoints count (see above).
        let count = if state == BackendState::Active && t.ready > 0 {
            t.counted
        } else {
            0
        };
        out.push((instance, state, count));
    }
    let largest = out.iter().map(|(_, _, c)| *c).max().unwrap_or(0);
    let total = out.iter().map(|(_, _, c)| *c).sum::<u32>() + virtual_pods;
    let mut weights: Vec<NodeWeight> = out
        .into_iter()
        .map(|(instance, state, count)| NodeWeight {
            instance,
            state,
            weight: rule
                .node_share(count, total)
                .unwrap_or_else(|| local_weight(count, largest)),
        })
        .collect();
    // Of two nodes claiming one instance, an active one wins, then the larger weight.
    weights.sort_by(|a, b| (&a.instance, a.state, b.weight).cmp(&(&b.instance, b.state, a.weight)));
    weights.dedup_by(|later, earlier| later.instance == earlier.instance);
    LocalWeights {
        nodes: weights,
        virtual_pod: rule.pod_share(total),
    }
}

/// A Local-mode Service's node weights, and what each of its pods on a virtual node
/// weighs (an ENI backend of its own).
pub(super) struct LocalWeights {
    pub(super) nodes: Vec<NodeWeight>,
    pub(super) virtual_pod: Weight,
}

/// Node weight = counted endpoints, scaled when the largest exceeds 100:
/// `max(1, round(count × 100 / largest))`, rounding half away from zero.
pub(super) fn local_weight(count: u32, largest: u32) -> Weight {
    let value = if count == 0 {
        0
    } else if largest <= 100 {
        count
    } else {
        let (count, largest) = (u64::from(count), u64::from(largest));
        ((count * 200 + largest) / (2 * largest)).max(1) as u32
    };
    Weight::new(value.min(100)).unwrap_or(Weight::MAX)
}

/// Local mode backends for one port.
pub(super) fn local_backends(weights: &[NodeWeight], node_port: u16) -> Vec<Backend> {
    weights
        .iter()
        .map(|w| Backend::ecs(&*w.instance, node_port, w.weight, w.state))
        .collect()
}

//! What the agent keeps of a pod in its reflector store: the conversion from the API
//! server's pod to [`StoredPod`].
//!
//! At 150,000 pods every byte of a stored pod counts 150,000 times, so the pod watcher
//! keeps only what is read from the store: by the cluster index (`index/pod.rs`: readiness
//! gates, `ContainersReady`), the pod side (`pods/`: keys, labels for the Services that
//! select a pod, finalizer, deletion time and grace, IPs, node, phase, its own conditions
//! and drain journal annotation) and the drain API (`k8s/drain_state.rs`: finalizer,
//! deletion, the drained condition and its reason).
//!
//! What is dropped and why nothing misses it:
//! - `uid`: every pod write reads the pod again from the API server first
//!   (`pods/writer.rs`) and makes its optimistic-concurrency test and its Event reference
//!   from that copy; reflector keys compare name and namespace only. (`resourceVersion`
//!   stays: the watcher resumes from the last object's, and answers an object without one
//!   with an error and a relist of every pod.)
//! - `generateName`, `creationTimestamp`, `ownerReferences`, `generation`, `selfLink`,
//!   `managedFields`: read by nothing.
//! - Annotations outside `slb-sync.io`: only the drain journal
//!   ([`DRAIN_STARTED_AT_ANNOTATION`](crate::k8s::names::DRAIN_STARTED_AT_ANNOTATION)) is read from stored pods; other tools' annotations
//!   can be large (last-applied configurations, monitoring settings).
//! - The spec but `nodeName`, `terminationGracePeriodSeconds` and the readiness gates of
//!   ours or ACK's ([`gated_service`]); both readers of gates skip every other type.
//! - The status but `phase`, `podIPs`, `podIP` (only when `podIPs` lacks it: the pod's
//!   addresses are the union) and the conditions read: `ContainersReady`, the drained
//!   condition and the gate conditions, each with its type, status and (ours) reason,
//!   which the gate and drain checks compare. Messages and times are not read from the
//!   store: a gate write takes the `lastTransitionTime` to keep from the copy it reads
//!   from the API server.
//!
//! Labels stay whole: any label may be in a Service's selector.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Pod, PodCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::k8s::names::{gated_service, DRAINED_CONDITION};
use crate::model::{StoredPod, StoredPodCondition, StoredPodSpec, StoredPodStatus};

/// The kubelet's condition the index reads (a gated pod's endpoint counts before it is
/// ready only when its containers are).
const CONTAINERS_READY: &str = "ContainersReady";

/// Annotation domain of the agent's own annotations.
const OUR_DOMAIN: &str = "slb-sync.io";

impl From<Pod> for StoredPod {
    /// Keeps of `pod` what the agent reads from its pod store (see the module docs).
    fn from(pod: Pod) -> Self {
        let meta = pod.metadata;
        let metadata = ObjectMeta {
            name: meta.name,
            namespace: meta.namespace,
            resource_version: meta.resource_version,
            labels: meta.labels,
            annotations: meta.annotations.map(ours).filter(|a| !a.is_empty()),
            finalizers: meta.finalizers,
            deletion_timestamp: meta.deletion_timestamp,
            deletion_grace_period_seconds: meta.deletion_grace_period_seconds,
            ..ObjectMeta::default()
        };
        let spec = pod.spec.map(|spec| {
            let gates: Vec<_> = spec
                .readiness_gates
                .into_iter()
                .flatten()
                .filter(|g| gated_service(&g.condition_type).is_some())
                .collect();
            StoredPodSpec {
                node_name: spec.node_name,
                readiness_gates: (!gates.is_empty()).then_some(gates),
                termination_grace_period_seconds: spec.termination_grace_period_seconds,
            }
        });
        let status = pod.status.map(|status| {
            let conditions: Vec<_> = status
                .conditions
                .into_iter()
                .flatten()
                .filter_map(read_condition)
                .collect();
            let pod_ip = status
                .pod_ip
                .filter(|ip| !status.pod_ips.iter().flatten().any(|p| &p.ip == ip));
            StoredPodStatus {
                conditions: (!conditions.is_empty()).then_some(conditions),
                pod_ip,
                pod_ips: status.pod_ips,
                phase: status.phase,
            }
        });
        StoredPod {
            metadata,
            spec,
            status,
        }
    }
}

/// The agent's own annotations (`slb-sync.io/…` and its subdomains).
fn ours(annotations: BTreeMap<String, String>) -> BTreeMap<String, String> {
    annotations
        .into_iter()
        .filter(|(k, _)| {
            k.split_once('/')
                .and_then(|(domain, _)| domain.strip_suffix(OUR_DOMAIN))
                .is_some_and(|sub| sub.is_empty() || sub.ends_with('.'))
        })
        .collect()
}

/// A condition the agent reads, with only its read fields; `None` for the others.
fn read_condition(c: PodCondition) -> Option<StoredPodCondition> {
    let ours = c.type_ == DRAINED_CONDITION || gated_service(&c.type_).is_some();
    if !ours && c.type_ != CONTAINERS_READY {
        return None;
    }
    Some(StoredPodCondition {
        // The gate and drain checks compare our conditions' reason; nothing reads the
        // kubelet's.
        reason: if ours { c.reason } else { None },
        // When the containers became ready starts the health gate's timeout.
        last_transition_time: if ours { None } else { c.last_transition_time },
        status: c.status,
        type_: c.type_,
    })
}

#[cfg(test)]
#[path = "strip_tests.rs"]
mod tests;

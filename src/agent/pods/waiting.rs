//! The Services some pod is waiting on right now: a new pod whose readiness gate is not
//! yet True, a deleted pod whose drain is not yet confirmed. Their groups are read again
//! often (`--drift-check-seconds`), so a group changed behind the agent's back (emptied
//! from the console, state lost on the SLB side) is repaired within seconds while a
//! rollout depends on it, not at the next resync.

use std::collections::BTreeMap;

use super::decide;
use crate::index::{ClusterIndex, ServiceRef};
use crate::model::StoredPod;
use crate::slb::budget::Lane;

/// The pod waits on the agent: deleted and held with its drain not yet confirmed, or
/// not deleted with one of its gates of ours not yet True. From the pod alone, so the pod
/// book can keep the waiting pods as their events come ([`super::book::PodBook::waiting`]).
pub fn waits(pod: &StoredPod) -> bool {
    if decide::is_deleting(pod) {
        return decide::has_finalizer(pod) && !decide::is_drained(pod);
    }
    decide::declared_gates(pod)
        .iter()
        .any(|(condition_type, _)| !gate_open(pod, condition_type))
}

fn gate_open(pod: &StoredPod, condition_type: &str) -> bool {
    decide::condition_status(pod, condition_type).is_some_and(|(status, _)| status == "True")
}

/// The Services `pods` wait on, each with the lane its passes belong in: the drain lane
/// when a deleted pod waits for its drain there, the pod lane for gates. A deleted pod
/// still held is matched against the Services the index files under its labels.
pub fn waiting_services<'a>(
    pods: impl IntoIterator<Item = &'a StoredPod>,
    index: &ClusterIndex,
) -> BTreeMap<ServiceRef, Lane> {
    let mut out = BTreeMap::new();
    for pod in pods.into_iter().filter(|pod| waits(pod)) {
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        if decide::is_deleting(pod) {
            let empty = Default::default();
            let labels = pod.metadata.labels.as_ref().unwrap_or(&empty);
            for backed in index.services_selecting(namespace, labels) {
                out.insert(ServiceRef::new(namespace, backed.name), Lane::Drain);
            }
            continue;
        }
        for (condition_type, service) in decide::declared_gates(pod) {
            if !gate_open(pod, &condition_type) {
                out.entry(ServiceRef::new(namespace, service))
                    .or_insert(Lane::Pod);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::desired::PlannerConfig;
    use k8s_openapi::api::core::v1::Service;

    fn service(name: &str) -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "shop", "annotations": {
                "service.beta.kubernetes.io/alibaba-cloud-loadbalancer-id": "lb-1"}},
            "spec": {"type": "LoadBalancer", "loadBalancerClass": "slb-sync.io/slb",
                     "selector": {"app": name},
                     "ports": [{"port": 80, "nodePort": 30080}]},
        }))
        .unwrap()
    }

    fn pod(name: &str, app: &str, gate_open: Option<bool>, deleting: bool) -> StoredPod {
        let gate = format!("registered.slb-sync.io/{app}");
        let mut p = json!({
            "metadata": {"name": name, "namespace": "shop", "labels": {"app": app},
                         "finalizers": ["slb-sync.io/drain"]},
            "spec": {"containers": [], "readinessGates": [{"conditionType": gate}]},
            "status": {"conditions": []},
        });
        if let Some(open) = gate_open {
            p["status"]["conditions"] = json!([{"type": gate, "status":
                if open { "True" } else { "False" }}]);
        }
        if deleting {
            p["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        }
        serde_json::from_value(p).unwrap()
    }

    #[test]
    fn pods_waiting_on_a_gate_or_a_drain_name_their_services() {
        let mut index = ClusterIndex::new(PlannerConfig::default());
        for name in ["web", "api", "db"] {
            index.apply_service(&service(name));
        }
        let pods = [
            pod("web-new", "web", None, false),
            pod("api-ready", "api", Some(true), false),
            pod("db-old", "db", Some(true), true),
            pod("api-new", "api", Some(false), false),
        ];
        let waiting = waiting_services(pods.iter(), &index);
        let names: Vec<(&str, Lane)> = waiting
            .iter()
            .map(|(r, lane)| (r.name.as_str(), *lane))
            .collect();
        assert_eq!(
            names,
            [("api", Lane::Pod), ("db", Lane::Drain), ("web", Lane::Pod)]
        );
        let idle = waiting_services(pods[1..2].iter(), &index);
        assert!(idle.is_empty());
    }
}

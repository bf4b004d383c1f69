//! The Services some pod is waiting on right now: a new pod whose readiness gate is not
//! yet True, a deleted pod whose drain is not yet confirmed. Their groups are read again
//! often (`--drift-check-seconds`), so a group changed behind the agent's back (emptied
//! from the console, state lost on the SLB side) is repaired within seconds while a
//! rollout depends on it, not at the next resync.

use std::collections::BTreeMap;

use kube::runtime::reflector::Store;

use super::decide;
use crate::index::{ClusterIndex, ServiceRef};
use crate::model::StoredPod;
use crate::slb::budget::Lane;

/// The Services `pods` wait on, each with the lane its passes belong in: the drain lane
/// when a deleted pod waits for its drain there, the pod lane for gates. Cheap for pods
/// that wait on nothing (a look at their gates and deletion); a deleted pod still held is
/// matched against the Services the index files under its labels.
pub fn waiting_services<'a>(
    pods: impl IntoIterator<Item = &'a StoredPod>,
    index: &ClusterIndex,
) -> BTreeMap<ServiceRef, Lane> {
    let mut out = BTreeMap::new();
    for pod in pods {
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        if decide::is_deleting(pod) {
            if decide::has_finalizer(pod) && !decide::is_drained(pod) {
                let empty = Default::default();
                let labels = pod.metadata.labels.as_ref().unwrap_or(&empty);
                for backed in index.services_selecting(namespace, labels) {
                    out.insert(ServiceRef::new(namespace, backed.name), Lane::Drain);
                }
            }
            continue;
        }
        for (condition_type, service) in decide::declared_gates(pod) {
            let open = decide::condition_status(pod, &condition_type)
                .is_some_and(|(status, _)| status == "True");
            if !open {
                out.entry(ServiceRef::new(namespace, service))
                    .or_insert(Lane::Pod);
            }
        }
    }
    out
}

/// [`waiting_services`] over the agent's pod store.
pub fn in_stores(pods: &Store<StoredPod>, index: &ClusterIndex) -> BTreeMap<ServiceRef, Lane> {
    let pods = pods.state();
    waiting_services(pods.iter().map(|p| &**p), index)
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

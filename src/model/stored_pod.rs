//! The agent's own pod type: what its pod store keeps of a pod.
//!
//! `k8s_openapi`'s `Pod` is 2.4 KiB of struct before any content (the spec alone is
//! 1.5 KiB of options the agent never reads), and the store holds one per pod: 350 MiB at
//! 150,000 pods. This type keeps the fields the agent reads, under the same names and in
//! the same shape (`pod.spec.as_ref()?.node_name`, `status.conditions`), and is decoded
//! from the API server's JSON through the full type, which the conversion in
//! `agent/strip.rs` reduces (what is dropped and why nothing misses it is written there).

use k8s_openapi::api::core::v1::{Pod, PodIP, PodReadinessGate};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use serde::Deserialize;

/// A pod as the agent's store keeps it; see the module docs.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(from = "Pod")]
pub struct StoredPod {
    pub metadata: ObjectMeta,
    pub spec: Option<StoredPodSpec>,
    pub status: Option<StoredPodStatus>,
}

/// The spec fields read from the store.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StoredPodSpec {
    pub node_name: Option<String>,
    pub readiness_gates: Option<Vec<PodReadinessGate>>,
    pub termination_grace_period_seconds: Option<i64>,
}

/// The status fields read from the store.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StoredPodStatus {
    pub conditions: Option<Vec<StoredPodCondition>>,
    pub phase: Option<String>,
    pub pod_ip: Option<String>,
    pub pod_ips: Option<Vec<PodIP>>,
}

/// A pod condition's fields read from the store (no message, no probe time).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StoredPodCondition {
    pub type_: String,
    pub status: String,
    pub reason: Option<String>,
    pub last_transition_time: Option<Time>,
}

impl k8s_openapi::Resource for StoredPod {
    const API_VERSION: &'static str = <Pod as k8s_openapi::Resource>::API_VERSION;
    const GROUP: &'static str = <Pod as k8s_openapi::Resource>::GROUP;
    const KIND: &'static str = <Pod as k8s_openapi::Resource>::KIND;
    const VERSION: &'static str = <Pod as k8s_openapi::Resource>::VERSION;
    const URL_PATH_SEGMENT: &'static str = <Pod as k8s_openapi::Resource>::URL_PATH_SEGMENT;
    type Scope = <Pod as k8s_openapi::Resource>::Scope;
}

impl k8s_openapi::ListableResource for StoredPod {
    const LIST_KIND: &'static str = <Pod as k8s_openapi::ListableResource>::LIST_KIND;
}

impl k8s_openapi::Metadata for StoredPod {
    type Ty = ObjectMeta;

    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The store's saving is the point of this type; a field added carelessly (a whole
    /// `PodSpec`, say) shows up here.
    #[test]
    fn a_stored_pod_is_a_fraction_of_the_full_type() {
        let stored = std::mem::size_of::<StoredPod>();
        let full = std::mem::size_of::<Pod>();
        eprintln!("StoredPod {stored} B, Pod {full} B");
        assert!(stored * 4 <= full, "StoredPod {stored} B, Pod {full} B");
    }

    #[test]
    fn it_is_decoded_as_the_api_server_sends_a_pod() {
        let pod: StoredPod = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "web-1", "namespace": "shop", "labels": {"app": "web"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "app", "image": "x"}]},
            "status": {"phase": "Running", "podIPs": [{"ip": "10.0.0.7"}]}
        }))
        .unwrap();
        assert_eq!(pod.metadata.name.as_deref(), Some("web-1"));
        assert_eq!(pod.spec.unwrap().node_name.as_deref(), Some("n1"));
        let status = pod.status.unwrap();
        assert_eq!(status.phase.as_deref(), Some("Running"));
        assert_eq!(status.pod_ips.unwrap()[0].ip, "10.0.0.7");
    }
}

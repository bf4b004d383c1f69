//! Fixtures for end-to-end tests of the pod side inside the whole agent: an ENI Service
//! whose pod carries our readiness gate, its EndpointSlice as the EndpointSlice
//! controller would write it, and a recorder of every version of a pod.

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, WatchEvent, WatchParams};
use mock_kube::MockKubeHandle;
use serde_json::{json, Value};
use slb_sync::agent::PodSideChoice;
use tokio::task::JoinHandle;

use crate::agent::{self, Agent};
use crate::slb_mock;

pub const NS: &str = "default";
pub const GATE: &str = "registered.slb-sync.io/web";
pub const DRAINED: &str = "slb-sync.io/drained";
pub const FINALIZER: &str = "slb-sync.io/drain";
pub const JOURNAL: &str = "slb-sync.io/drain-started-at";

/// The real pod side, with a fail-open margin far beyond any test.
pub fn lifecycle() -> PodSideChoice {
    PodSideChoice::Lifecycle {
        fail_open_margin: Duration::from_secs(300),
    }
}

/// Starts the agent with the real pod side and a drain window of `window_secs`.
pub async fn start(
    kube: &MockKubeHandle,
    slb: &mock_slb::MockSlbHandle,
    identity: &str,
    window_secs: u32,
) -> Agent {
    agent::start_agent_full(kube, slb, identity, lifecycle(), |c| {
        c.default_drain_secs = window_secs;
    })
    .await
}

/// Node 1 and the ENI Service `web` (port 80 → 8080, group `rsp-int`).
pub fn put_eni_service(kube: &MockKubeHandle) {
    kube.put(&agent::node(1)).unwrap();
    let annotations = [
        ("vgroup-port", "rsp-int:80"),
        ("service.beta.kubernetes.io/backend-type", "eni"),
    ];
    kube.put(&agent::service("web", &annotations, false))
        .unwrap();
}

/// Pod `name` of `web` on node-1 with IP `ip`, our readiness gate, containers ready and
/// (the gate still unmet) not Ready.
pub fn pod(name: &str, ip: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "uid": format!("uid-{name}"),
                     "labels": {"app": "web"}},
        "spec": {"nodeName": "node-1", "terminationGracePeriodSeconds": 120,
                 "readinessGates": [{"conditionType": GATE}],
                 "containers": [{"name": "app", "image": "nginx"}]},
        "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                   "conditions": [{"type": "ContainersReady", "status": "True"},
                                  {"type": "Ready", "status": "False"}]},
    })
}

/// How the EndpointSlice controller shows a pod's endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ep {
    /// The readiness gate is not met yet.
    NotReady,
    Ready,
    /// The pod was deleted (still serving while it drains).
    Terminating,
}

/// The EndpointSlice of `web` with the endpoint of pod `name` at `ip`.
pub fn slice(name: &str, ip: &str, ep: Ep) -> Value {
    let (ready, serving, terminating) = match ep {
        Ep::NotReady => (false, false, false),
        Ep::Ready => (true, true, false),
        Ep::Terminating => (false, true, true),
    };
    json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "web-abc", "namespace": NS,
                     "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "endpoints": [{
            "addresses": [ip], "nodeName": "node-1",
            "targetRef": {"kind": "Pod", "name": name, "namespace": NS},
            "conditions": {"ready": ready, "serving": serving, "terminating": terminating},
        }],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
    })
}

/// Status and reason of condition `condition_type` of `pod`.
pub fn condition(pod: &Value, condition_type: &str) -> Option<(String, String)> {
    pod["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == condition_type)
        .map(|c| {
            (
                c["status"].as_str().unwrap_or("").to_owned(),
                c["reason"].as_str().unwrap_or("").to_owned(),
            )
        })
}

pub fn is_true(pod: &Value, condition_type: &str) -> bool {
    condition(pod, condition_type).is_some_and(|(s, _)| s == "True")
}

pub fn finalizers(pod: &Value) -> Vec<String> {
    pod["metadata"]["finalizers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f.as_str().map(str::to_owned))
        .collect()
}

/// Weights of the ENI backends at `ip` in the SLB group.
pub fn weights_at(slb: &mock_slb::MockSlbHandle, ip: &str) -> Vec<u8> {
    slb_mock::members(slb, slb_mock::GROUP)
        .into_iter()
        .filter(|(_, addr, _, _)| addr.map(|a| a.to_string()).as_deref() == Some(ip))
        .map(|(_, _, _, w)| w)
        .collect()
}

/// Every version of pod `name` from now until it is deleted (the last one).
pub async fn record_pod(kube: &MockKubeHandle, name: &str) -> JoinHandle<Vec<Pod>> {
    let api: Api<Pod> = Api::namespaced(kube.client().unwrap(), NS);
    let rv = kube.resource_version().to_string();
    let params = WatchParams::default().fields(&format!("metadata.name={name}"));
    let mut stream = api.watch(&params, &rv).await.expect("watch starts").boxed();
    tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Some(Ok(event)) = stream.next().await {
            match event {
                WatchEvent::Added(p) | WatchEvent::Modified(p) => seen.push(p),
                WatchEvent::Deleted(p) => {
                    seen.push(p);
                    break;
                }
                _ => {}
            }
        }
        seen
    })
}

/// The built binary (`env!("CARGO_BIN_EXE_slb-sync")` of the calling test crate), with
/// the environment it would otherwise read cleared.
pub fn slb_sync_command(bin: &str) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(bin);
    for var in [
        "POD_NAMESPACE",
        "POD_NAME",
        "SLB_SYNC_AGENT",
        "SLB_SYNC_WAIT_TIMEOUT",
        "SLB_SYNC_DRY_RUN",
        "KUBECONFIG",
    ] {
        cmd.env_remove(var);
    }
    cmd.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    cmd
}

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

use super::*;
use crate::apps::tests::eventually;
use crate::delay::rng_for;
use crate::endpoints::pod_ready;
use crate::http::get_once;

const T: Duration = Duration::from_secs(5);

fn condition(pod: &Pod, ty: &str) -> Option<String> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == ty)
        .map(|c| c.status.clone())
}

#[tokio::test]
async fn pod_lifecycle_gate_prestop_sigterm_and_finalizer_hold() {
    let kube = mock_kube::MockKube::builder()
        .graceful_pod_deletion(true)
        .serve()
        .await
        .unwrap();
    let client = kube.client().unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let _kubelet = Kubelet::start(
        client.clone(),
        KubeletConfig {
            node: "n1".into(),
            subnet: 21,
            node_index: 1,
            namespace: "default".into(),
            container_port: 8080,
            startup: Delay::fixed(Duration::from_millis(200)),
            response: Delay::fixed(Duration::ZERO),
            idle_close: Duration::from_secs(1),
            probe_period: Duration::from_millis(100),
            times: Default::default(),
        },
        rng_for(5, "kubelet"),
    );
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web-1", "namespace": "default", "finalizers": ["test/hold"]},
        "spec": {"nodeName": "n1", "terminationGracePeriodSeconds": 10,
                 "readinessGates": [{"conditionType": "registered.slb-sync.io/web"}],
                 "containers": [{"name": "app", "image": "lab", "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}},
                    "lifecycle": {"preStop": {"sleep": {"seconds": 1}}}}]}
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();

    let p = pods.clone();
    eventually("probe passes", || {
        let p = p.clone();
        async move {
            p.get("web-1")
                .await
                .is_ok_and(|pod| condition(&pod, "ContainersReady").as_deref() == Some("True"))
        }
    })
    .await;
    let got = pods.get("web-1").await.unwrap();
    assert!(!pod_ready(&got), "Ready waits for the readiness gate");
    let ip = got.status.as_ref().unwrap().pod_ip.clone().unwrap();
    assert_eq!(ip, pod_ip(21, 1, 2).to_string());
    let addr: SocketAddr = format!("{ip}:8080").parse().unwrap();
    assert_eq!(get_once(addr, "/", T).await.unwrap().body, "web-1");

    let gate = json!({"status": {"conditions": [{"type": "registered.slb-sync.io/web", "status": "True"}]}});
    pods.patch_status("web-1", &PatchParams::default(), &Patch::Strategic(&gate))
        .await
        .unwrap();
    let p = pods.clone();
    eventually("Ready with the gate", || {
        let p = p.clone();
        async move { p.get("web-1").await.is_ok_and(|pod| pod_ready(&pod)) }
    })
    .await;

    pods.delete("web-1", &DeleteParams::default())
        .await
        .unwrap();
    // preStop keeps the app serving; then SIGTERM turns the address into `stopped`.
    eventually("stopped after preStop", || async move {
        get_once(addr, "/", T)
            .await
            .is_ok_and(|r| r.cause.as_deref() == Some("stopped"))
    })
    .await;
    let p = pods.clone();
    eventually("not Ready while terminating", || {
        let p = p.clone();
        async move { p.get("web-1").await.is_ok_and(|pod| !pod_ready(&pod)) }
    })
    .await;
    assert!(
        pods.get("web-1").await.is_ok(),
        "finalizer holds the object"
    );

    let release = json!({"metadata": {"finalizers": null}});
    pods.patch("web-1", &PatchParams::default(), &Patch::Merge(&release))
        .await
        .unwrap();
    let p = pods.clone();
    eventually("object removed", || {
        let p = p.clone();
        async move { p.get_opt("web-1").await.is_ok_and(|o| o.is_none()) }
    })
    .await;
    let r = get_once(addr, "/", T).await.unwrap();
    assert_eq!(
        r.cause.as_deref(),
        Some("stopped"),
        "a dead pod's IP keeps refusing"
    );
}

#[test]
fn prestop_and_gates_are_read_from_the_spec() {
    let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "x"}, "spec": {"containers": [{"name": "a",
        "lifecycle": {"preStop": {"exec": {"command": ["slb-sync", "wait-drained"]}}}}],
        "readinessGates": [{"conditionType": "g"}]}, "status": {"conditions": [{"type": "g", "status": "False"}]}})).unwrap();
    assert_eq!(
        pre_stop(&pod),
        PreStop::Exec(vec!["slb-sync".into(), "wait-drained".into()])
    );
    assert!(!gates_pass(&pod));
    let none: Pod = serde_json::from_value(
        json!({"metadata": {"name": "y"}, "spec": {"containers": [{"name": "a"}]}}),
    )
    .unwrap();
    assert_eq!(pre_stop(&none), PreStop::None);
    assert!(gates_pass(&none));
}

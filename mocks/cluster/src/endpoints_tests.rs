use std::time::Duration;

use serde_json::json;

use super::*;
use crate::apps::tests::eventually;
use crate::delay::rng_for;

fn pod(name: &str, ip: &str, node: &str, ready: bool, deleting: bool) -> serde_json::Value {
    let mut meta = json!({"name": name, "namespace": "default", "uid": format!("uid-{name}"), "labels": {"app": "web"}});
    if deleting {
        meta["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        meta["finalizers"] = json!(["test/hold"]);
    }
    json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": meta,
        "spec": {"nodeName": node, "containers": [{"name": "app", "image": "lab"}]},
        "status": {"podIP": ip, "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}
    })
}

#[tokio::test]
async fn slices_follow_pod_readiness_and_termination() {
    let kube = mock_kube::MockKube::start().await.unwrap();
    let client = kube.client().unwrap();
    kube.put(&pod("web-a", "127.0.1.2", "n1", true, false))
        .unwrap();
    kube.put(&pod("web-b", "127.0.2.2", "n2", false, false))
        .unwrap();
    kube.put(&json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "other", "namespace": "default", "labels": {"app": "db"}},
        "spec": {"nodeName": "n1"}, "status": {"podIP": "127.0.1.9"}})).unwrap();
    let svc = ServiceEndpoints {
        namespace: "default".into(),
        service: "web".into(),
        selector: "app=web".into(),
        port_name: "http".into(),
        target_port: 8080,
        lag: Delay::fixed(Duration::from_millis(50)),
    };
    let _ctl = crate::AbortOnDrop(spawn_controller(client.clone(), svc, rng_for(3, "eps")));
    let (feed, task) = endpoint_feed(client.clone(), "default", "web");
    let _feed_task = crate::AbortOnDrop(task);

    let f = feed.clone();
    eventually("both pods in the slice", || {
        let f = f.clone();
        async move { f.borrow().len() == 2 }
    })
    .await;
    let eps = feed.borrow().clone();
    assert_eq!(eps[0].addr, "127.0.1.2:8080".parse().unwrap());
    assert_eq!(
        (
            eps[0].node.as_str(),
            eps[0].ready,
            eps[0].serving,
            eps[0].terminating
        ),
        ("n1", true, true, false)
    );
    assert_eq!(
        (eps[1].ready, eps[1].serving),
        (false, false),
        "not-ready pod is listed, not ready"
    );

    kube.put(&pod("web-a", "127.0.1.2", "n1", true, true))
        .unwrap();
    let f = feed.clone();
    eventually("web-a terminating", || {
        let f = f.clone();
        async move { f.borrow().first().is_some_and(|e| e.terminating) }
    })
    .await;
    let a = feed.borrow()[0].clone();
    assert_eq!(
        (a.ready, a.serving, a.terminating),
        (false, true, true),
        "terminating pods stay serving"
    );

    let slice: EndpointSlice = Api::namespaced(client, "default")
        .get("web-lab")
        .await
        .unwrap();
    assert_eq!(slice.metadata.labels.unwrap()[SERVICE_NAME_LABEL], "web");
    assert_eq!(slice.ports.unwrap()[0].name.as_deref(), Some("http"));
}

//! Service changes that must leak no backend. A Service whose `id` or `vgroup-port`
//! annotation changes points its port at another SLB group: the agent fills the new group
//! and drains and empties the old one — and leaves the old group alone when it is the same
//! group seen another way. And no backend is written before the Service carries the
//! cleanup finalizer. The whole agent in-process against mock-kube and mock-slb.

use support::agent;
use support::slb_mock;

use std::time::Duration;

use agent::*;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{json, Value};
use slb_mock::{GROUP, LB, OWNER};

const WAIT: Duration = Duration::from_secs(20);
const ANN: &str = "service.beta.kubernetes.io/alibaba-cloud-loadbalancer-";

/// `lb-int` with `rsp-int` (named as the agent names its groups) and `rsp-alt`, and a
/// second instance `lb-two` with `rsp-two`.
fn seed() -> mock_slb::Seed {
    slb_mock::seed(
        43,
        false,
        json!({"load_balancers": [
            {"id": LB, "name": "integration",
             "listeners": [{"port": 80, "protocol": "tcp", "vserver_group_id": GROUP}],
             "vserver_groups": [{"id": GROUP, "name": OWNER, "backends": []},
                                {"id": "rsp-alt", "name": "alt", "backends": []}]},
            {"id": "lb-two", "name": "second",
             "listeners": [{"port": 80, "protocol": "tcp", "vserver_group_id": "rsp-two"}],
             "vserver_groups": [{"id": "rsp-two", "name": "two", "backends": []}]},
        ]}),
    )
}

/// mock-kube with node 1 and the managed Service `web` (these annotations), and the
/// seeded mock SLB.
async fn cluster_with_web(
    annotations: &[(&str, &str)],
) -> (mock_kube::MockKubeHandle, mock_slb::MockSlbHandle) {
    let kube = start_kube().await;
    let slb = slb_mock::start_mock(seed()).await;
    kube.put(&node(1)).unwrap();
    kube.put(&service("web", annotations, false)).unwrap();
    (kube, slb)
}

async fn annotate(kube: &mock_kube::MockKubeHandle, annotations: Value) {
    let services: Api<Service> = Api::namespaced(kube.client().unwrap(), "default");
    services
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"annotations": annotations}})),
        )
        .await
        .unwrap();
}

async fn has_one_node(slb: &mock_slb::MockSlbHandle, group: &str) {
    eventually(&format!("{group} carries node 1"), WAIT, || {
        (members(slb, group).len() == 1).then_some(())
    })
    .await;
}

async fn emptied(slb: &mock_slb::MockSlbHandle, group: &str) {
    eventually(&format!("{group} emptied"), WAIT, || {
        members(slb, group).is_empty().then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moving_a_service_to_another_instance_empties_the_old_group() {
    let (kube, slb) = cluster_with_web(&[("vgroup-port", "rsp-int:80")]).await;
    let agent = start_agent(&kube, &slb, "agent-a").await;
    has_one_node(&slb, GROUP).await;

    annotate(
        &kube,
        json!({format!("{ANN}id"): "lb-two", format!("{ANN}vgroup-port"): "rsp-two:80"}),
    )
    .await;
    has_one_node(&slb, "rsp-two").await;
    emptied(&slb, GROUP).await;
    // Make before break: the old group was emptied only after the new one was filled.
    let calls = slb.call_log();
    let added = calls
        .iter()
        .position(|c| c.params.get("VServerGroupId").map(String::as_str) == Some("rsp-two"))
        .expect("rsp-two written");
    let removed = calls
        .iter()
        .position(|c| {
            c.action == "RemoveVServerGroupBackendServers"
                && c.params.get("VServerGroupId").map(String::as_str) == Some(GROUP)
        })
        .expect("rsp-int emptied by a removal");
    assert!(added < removed, "{calls:#?}");
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn naming_another_group_on_the_same_instance_empties_the_old_one() {
    let (kube, slb) = cluster_with_web(&[("vgroup-port", "rsp-int:80")]).await;
    let agent = start_agent(&kube, &slb, "agent-a").await;
    has_one_node(&slb, GROUP).await;

    annotate(&kube, json!({format!("{ANN}vgroup-port"): "rsp-alt:80"})).await;
    has_one_node(&slb, "rsp-alt").await;
    emptied(&slb, GROUP).await;

    // And back: the group being emptied is the port's again and is filled, the other
    // one emptied.
    annotate(&kube, json!({format!("{ANN}vgroup-port"): "rsp-int:80"})).await;
    has_one_node(&slb, GROUP).await;
    emptied(&slb, "rsp-alt").await;
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn naming_by_id_the_group_found_by_name_removes_nothing() {
    let (kube, slb) = cluster_with_web(&[]).await;
    let agent = start_agent(&kube, &slb, "agent-a").await;
    // Without vgroup-port the port's group is the one named by the owner Description.
    has_one_node(&slb, GROUP).await;

    annotate(&kube, json!({format!("{ANN}vgroup-port"): "rsp-int:80"})).await;
    kube.put(&node(2)).unwrap();
    eventually("node 2 added to the same group", WAIT, || {
        (members(&slb, GROUP).len() == 2).then_some(())
    })
    .await;
    // Longer than the drain window (1 s) plus a pass: an emptying would have begun.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(members(&slb, GROUP).len(), 2);
    let touched_down = slb.call_log().into_iter().any(|c| {
        c.action == "RemoveVServerGroupBackendServers"
            || (c.action == "SetVServerGroupAttribute"
                && c.params
                    .get("BackendServers")
                    .is_some_and(|b| b.contains("\"Weight\":0")))
    });
    assert!(!touched_down, "{:#?}", slb.call_log());
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_backend_is_written_before_the_cleanup_finalizer_is_on() {
    let (kube, slb) = cluster_with_web(&[("vgroup-port", "rsp-int:80")]).await;
    let refuse = kube.inject_fault(mock_kube::Fault {
        method: Some("PATCH".into()),
        ..mock_kube::Fault::fail("/api/v1/namespaces/default/services/web", 403, "Forbidden")
    });
    let agent = start_agent(&kube, &slb, "agent-a").await;
    eventually("the agent tried to add its finalizer", WAIT, || {
        (kube.request_count("patch", "services") >= 1).then_some(())
    })
    .await;
    // A pass started with the finalizer request would have written by now.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let writes: Vec<_> = slb
        .call_log()
        .into_iter()
        .filter(|c| c.action.starts_with("Add") || c.action.starts_with("Set"))
        .collect();
    assert!(writes.is_empty(), "{writes:#?}");

    // Once the finalizer can be added, the Service is synced.
    kube.remove_fault(refuse);
    annotate(&kube, json!({"touched": "yes"})).await;
    has_one_node(&slb, GROUP).await;
    let svc = kube.get("v1", "Service", "default", "web").unwrap();
    assert!(svc["metadata"]["finalizers"]
        .as_array()
        .is_some_and(|f| f.iter().any(|v| v == "slb-sync.io/cleanup")));
    agent.stop().await;
}

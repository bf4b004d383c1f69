//! Failure isolation, end to end (agent + mock-kube + mock-slb over loopback): a backend
//! the SLB refuses does not hold up the rest of its group, a Service deleted with broken
//! annotations leaves nothing behind, and a group emptied behind the agent's back is
//! repaired while pods wait on it.

use support::agent;
use support::pod_e2e;
use support::slb_mock;

use std::time::Duration;

use agent::*;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde_json::{json, Value};
use slb_mock::{GROUP, LB, OWNER};
use slb_sync::plan::HoldPolicy;
use slb_sync::slb::SlbApi;

const WAIT: Duration = Duration::from_secs(20);

fn seed() -> mock_slb::Seed {
    slb_mock::seed(43, false, json!({}))
}

fn web_annotations() -> Vec<(&'static str, &'static str)> {
    vec![("vgroup-port", "rsp-int:80")]
}

fn taint_for_scale_down(mut node: Value) -> Value {
    node["spec"]["taints"] = json!([{"key": "ToBeDeletedByClusterAutoscaler",
                                     "value": "1700000000", "effect": "NoSchedule"}]);
    node
}

fn weights(slb: &mock_slb::MockSlbHandle) -> Vec<(String, u8)> {
    members(slb, GROUP)
        .into_iter()
        .map(|(id, _, w, _)| (id, w))
        .collect()
}

fn owned(list: &[(&str, u8)]) -> Vec<(String, u8)> {
    list.iter().map(|(id, w)| ((*id).to_owned(), *w)).collect()
}

fn events(kube: &mock_kube::MockKubeHandle, reason: &str, name: &str) -> Vec<Value> {
    kube.list("events.k8s.io/v1", "Event", Some("default"))
        .into_iter()
        .filter(|e| e["reason"] == reason && e["regarding"]["name"] == name)
        .collect()
}

/// Node 60 names ECS instance `i-60`, which the SLB does not know (released while its
/// Node object lingers). Node 2 is tainted for scale-down and node 3 joins at the same
/// time: both changes go through, and `i-60` is tried again on its own schedule and
/// added once the SLB knows it, with no change in the cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_instance_does_not_hold_up_a_drain_or_an_addition() {
    let kube = start_kube().await;
    let slb = slb_mock::start_mock(seed()).await;
    for i in [1, 2, 60] {
        kube.put(&node(i)).unwrap();
    }
    kube.put(&service("web", &web_annotations(), false))
        .unwrap();
    let agent = start_agent_with(&kube, &slb, "agent-a", |c| {
        c.default_drain_secs = 1;
        c.hold = HoldPolicy {
            first: Duration::from_secs(2),
            max: Duration::from_secs(4),
        };
    })
    .await;
    eventually("nodes 1 and 2 in the group, i-60 held out", WAIT, || {
        (weights(&slb) == owned(&[("i-1", 100), ("i-2", 100)])).then_some(())
    })
    .await;
    let event = eventually("a BackendQuarantined event", WAIT, || {
        events(&kube, "BackendQuarantined", "web")
            .into_iter()
            .next()
    })
    .await;
    let note = event["note"].as_str().unwrap();
    assert!(
        note.contains("i-60") && note.contains("InvalidServerId.NotExist"),
        "{note}"
    );
    assert_eq!(event["type"], "Warning");
    assert!(agent.metric("slb_sync_backend_quarantines_total", &[]) >= 1.0);

    // Node 2 leaves, node 3 joins.
    kube.put(&taint_for_scale_down(node(2))).unwrap();
    kube.put(&node(3)).unwrap();
    eventually("node 3 added and node 2 drained and removed", WAIT, || {
        (weights(&slb) == owned(&[("i-1", 100), ("i-3", 100)])).then_some(())
    })
    .await;
    let log = slb.call_log();
    let lowered = log.iter().any(|c| {
        c.action == "SetVServerGroupAttribute"
            && c.status == 200
            && c.params
                .values()
                .any(|v| v.contains("i-2") && v.contains("\"Weight\":0"))
    });
    assert!(lowered, "node 2 went to weight 0 before its removal");

    // The instance comes back (or the Node was wrong and is fixed on the SLB side): the
    // next retry adds it with nothing changing in the cluster.
    slb.apply_seed(
        &serde_json::from_value(json!({"ecs_instances": [{"id": "i-60", "ip": "127.0.43.60"}]}))
            .unwrap(),
    )
    .unwrap();
    eventually("i-60 added on its retry", WAIT, || {
        (weights(&slb) == owned(&[("i-1", 100), ("i-3", 100), ("i-60", 100)])).then_some(())
    })
    .await;
    // The gauge is set when the pass ends, a moment after the SLB shows its writes.
    eventually("no backend quarantined any more", WAIT, || {
        (agent.metric("slb_sync_quarantined_backends", &[]) == 0.0).then_some(())
    })
    .await;
    agent.stop().await;
}

async fn synced_then_deleted_with(annotation: (&str, &str), restart: bool) {
    let kube = start_kube().await;
    let slb = slb_mock::start_mock(seed()).await;
    for i in 1..=2 {
        kube.put(&node(i)).unwrap();
    }
    kube.put(&service("web", &web_annotations(), false))
        .unwrap();
    let first = start_agent(&kube, &slb, "agent-a").await;
    eventually("both nodes in the group and serving", WAIT, || {
        let m = members(&slb, GROUP);
        (m.len() == 2 && m.iter().all(|b| b.2 > 0)).then_some(())
    })
    .await;
    eventually("the cleanup finalizer", WAIT, || {
        kube.get("v1", "Service", "default", "web")
            .filter(|s| s["metadata"]["finalizers"] == json!(["slb-sync.io/cleanup"]))
    })
    .await;
    let running = if restart {
        first.stop().await;
        None
    } else {
        Some(first)
    };
    let services: Api<Service> = Api::namespaced(kube.client().unwrap(), "default");
    let key = format!("{ANN}{}", annotation.0);
    let patch = json!({"metadata": {"annotations": {key: annotation.1}}});
    services
        .patch("web", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    services
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    let agent = match running {
        Some(agent) => agent,
        None => start_agent(&kube, &slb, "agent-b").await,
    };
    eventually("the Service gone", WAIT, || {
        kube.get("v1", "Service", "default", "web")
            .is_none()
            .then_some(())
    })
    .await;
    assert_eq!(
        members(&slb, GROUP),
        [],
        "{annotation:?}, restart: {restart}"
    );
    let lowered = slb.call_log().iter().any(|c| {
        c.action == "SetVServerGroupAttribute"
            && c.params.values().any(|v| v.contains("\"Weight\":0"))
    });
    assert!(lowered, "drained before removal");
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_deleted_with_a_broken_vgroup_port_leaves_nothing_behind() {
    synced_then_deleted_with(("vgroup-port", "garbage"), false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_deleted_with_an_invalid_drain_timeout_leaves_nothing_behind() {
    synced_then_deleted_with(("connection-drain-timeout", "5"), false).await;
}

/// After a restart the agent has no plan of the Service: it finds its backends on the
/// SLB by their owner Description.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_a_broken_service_is_cleaned_up_from_what_the_slb_holds() {
    synced_then_deleted_with(("vgroup-port", "garbage"), true).await;
}

/// The `id` annotation moved to another instance just before the deletion: the backends
/// on the instance the agent wrote them to are removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_deleted_right_after_its_id_changed_empties_the_old_instance() {
    synced_then_deleted_with(("id", "lb-other"), false).await;
}

/// ENI pod `web-0` is registered; pod `web-1` waits on its gate (its IP has no ENI yet).
/// Someone empties the group from the console: the agent puts `web-0` back within its
/// drift check, long before a resync.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_emptied_behind_the_agents_back_is_repaired_while_a_pod_waits() {
    let kube = start_kube().await;
    let slb = slb_mock::start_mock(seed()).await;
    pod_e2e::put_eni_service(&kube);
    let agent = start_agent_full(&kube, &slb, "agent-a", pod_e2e::lifecycle(), |c| {
        c.drift_check = Duration::from_secs(1);
    })
    .await;
    let ready = "127.0.43.101";
    kube.put(&pod_e2e::pod("web-0", ready)).unwrap();
    kube.put(&pod_e2e::slice("web-0", ready, pod_e2e::Ep::Ready))
        .unwrap();
    eventually("web-0 registered", WAIT, || {
        (pod_e2e::weights_at(&slb, ready) == [100]).then_some(())
    })
    .await;
    // web-1's IP has no ENI: its gate stays closed, so the Service is waited on.
    let waiting = "127.0.43.199";
    kube.put(&pod_e2e::pod("web-1", waiting)).unwrap();
    let mut slice = pod_e2e::slice("web-0", ready, pod_e2e::Ep::Ready);
    let extra = pod_e2e::slice("web-1", waiting, pod_e2e::Ep::Ready);
    if let (Some(eps), Some(more)) = (
        slice["endpoints"].as_array_mut(),
        extra["endpoints"].as_array(),
    ) {
        eps.extend(more.iter().cloned());
    }
    kube.put(&slice).unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;

    let client = slb_mock::client(&slb);
    let group = client.describe_vserver_group(GROUP).await.unwrap();
    client
        .remove_backends(GROUP, &group.backends)
        .await
        .unwrap();
    assert!(members(&slb, GROUP).is_empty());
    let emptied = std::time::Instant::now();
    eventually("web-0 put back", WAIT, || {
        (pod_e2e::weights_at(&slb, ready) == [100]).then_some(())
    })
    .await;
    let took = emptied.elapsed();
    eprintln!("group repaired {took:?} after it was emptied");
    // The 1 s drift check of a waited-on Service (~0.5 s here); without it the group
    // waits for the next pass of another kind (~9.5 s).
    assert!(took < Duration::from_secs(4), "{took:?}");
    assert!(agent.metric("slb_sync_drift_backends_total", &[]) >= 1.0);
    let _ = (LB, OWNER);
    agent.stop().await;
}

/// A group the agent created by name (no `vgroup-port`) is reported as getting no
/// traffic while no listener uses it, and deleted once its Service is gone; a group a
/// user made (found by name, no creation tag) is emptied but kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_the_agent_created_are_deleted_with_their_service_and_only_those() {
    let kube = start_kube().await;
    let user_group = "rsp-user";
    let slb = slb_mock::start_mock(slb_mock::seed(
        44,
        false,
        json!({"load_balancers": [{
            "id": LB, "name": "integration",
            "listeners": [{"port": 80, "protocol": "tcp", "vserver_group_id": GROUP}],
            "vserver_groups": [
                {"id": GROUP, "name": OWNER, "backends": []},
                {"id": user_group, "name": "k8s/80/other/default/c1", "backends": []},
            ],
        }]}),
    ))
    .await;
    kube.put(&node(1)).unwrap();
    let mut api = service("api", &[], false);
    api["spec"]["selector"] = json!({"app": "api"});
    kube.put(&api).unwrap();
    kube.put(&service("other", &[], false)).unwrap();
    let agent = start_agent(&kube, &slb, "agent-a").await;
    let created = eventually("a group created for `api`", WAIT, || {
        slb.state()
            .v_server_groups
            .values()
            .find(|g| g.name == "k8s/80/api/default/c1" && !g.backends.is_empty())
            .map(|g| g.id.clone())
    })
    .await;
    eventually("`other` synced into the user's group", WAIT, || {
        (members(&slb, user_group).len() == 1).then_some(())
    })
    .await;
    let event = eventually("a GroupWithoutListener event on `api`", WAIT, || {
        events(&kube, "GroupWithoutListener", "api")
            .into_iter()
            .next()
    })
    .await;
    let note = event["note"].as_str().unwrap();
    assert!(
        note.contains(&created) && note.contains("port 80"),
        "{note}"
    );

    let services: Api<Service> = Api::namespaced(kube.client().unwrap(), "default");
    for name in ["api", "other"] {
        services
            .delete(name, &DeleteParams::default())
            .await
            .unwrap();
    }
    eventually("both Services gone", WAIT, || {
        let gone = |n| kube.get("v1", "Service", "default", n).is_none();
        (gone("api") && gone("other")).then_some(())
    })
    .await;
    let groups = slb.state().v_server_groups;
    assert!(!groups.contains_key(&created), "the agent's group deleted");
    assert!(groups.contains_key(user_group), "the user's group kept");
    assert!(groups[user_group].backends.is_empty());
    assert!(groups.contains_key(GROUP), "the listener's group kept");
    agent.stop().await;
}

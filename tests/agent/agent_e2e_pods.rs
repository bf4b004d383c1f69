//! The whole agent with its real pod side (`PodSideChoice::Lifecycle`) in-process against
//! mock-kube and mock-slb over loopback: the readiness gate opens only after the backend
//! is in the SLB, a deleted pod is drained, removed, marked drained and released in that
//! order (and `slb-sync wait-drained` returns exactly then), a restart mid-drain keeps the
//! first drain start, `slb-sync release-finalizers` frees a stuck pod, and in Local mode
//! a new pod's node joins at weight 0 until its endpoint is ready.

use support::agent;
use support::pod_e2e;
use support::slb_mock;

use std::time::{Duration, Instant};

use agent::eventually;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams};
use pod_e2e::*;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(20);
const IP: &str = "127.0.44.101";

fn seed() -> mock_slb::Seed {
    slb_mock::seed(44, false, json!({}))
}

/// `(at_ms of the first weight-0 call, at_ms of the last successful removal)` in the
/// mock's call log.
fn drain_calls(slb: &mock_slb::MockSlbHandle) -> (Option<u64>, Option<u64>) {
    let log = slb.call_log();
    let zero = log
        .iter()
        .filter(|c| {
            c.action == "SetVServerGroupAttribute"
                && c.status == 200
                && c.params.values().any(|v| v.contains("\"Weight\":0"))
        })
        .map(|c| c.at_ms)
        .min();
    let removed = log
        .iter()
        .filter(|c| c.action == "RemoveVServerGroupBackendServers" && c.status == 200)
        .map(|c| c.at_ms)
        .max();
    (zero, removed)
}

/// Service, node, gated pod `web-0` and its not-ready endpoint; waits until the agent
/// registered the backend, opened the gate and holds the pod with its finalizer.
async fn registered_pod(kube: &mock_kube::MockKubeHandle, slb: &mock_slb::MockSlbHandle) {
    put_eni_service(kube);
    kube.put(&pod("web-0", IP)).unwrap();
    kube.put(&slice("web-0", IP, Ep::NotReady)).unwrap();
    eventually("gate True and finalizer on", WAIT, || {
        let p = kube.get("v1", "Pod", NS, "web-0")?;
        (is_true(&p, GATE) && finalizers(&p).contains(&FINALIZER.to_owned())).then_some(())
    })
    .await;
    assert!(weights_at(slb, IP).iter().all(|w| *w > 0));
    // The kubelet now reports the pod Ready; the endpoint follows.
    kube.put(&slice("web-0", IP, Ep::Ready)).unwrap();
}

/// Deletes `web-0` as kubectl would and turns its endpoint terminating as the
/// EndpointSlice controller would once the deletionTimestamp is set.
async fn delete_pod(kube: &mock_kube::MockKubeHandle) {
    let pods: Api<Pod> = Api::namespaced(kube.client().unwrap(), NS);
    pods.delete("web-0", &DeleteParams::default())
        .await
        .expect("delete accepted");
    let p = kube
        .get("v1", "Pod", NS, "web-0")
        .expect("held by the finalizer");
    assert!(p["metadata"]["deletionTimestamp"].is_string());
    kube.put(&slice("web-0", IP, Ep::Terminating)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readiness_gate_opens_only_after_the_backend_is_in_the_slb() {
    let kube = agent::start_kube().await;
    let slb = slb_mock::start_mock(seed()).await;
    put_eni_service(&kube);
    let agent = start(&kube, &slb, "agent-a", 2).await;
    kube.put(&pod("web-0", IP)).unwrap();
    kube.put(&slice("web-0", IP, Ep::NotReady)).unwrap();

    // Read the gate first, then the SLB: a gate seen True with no live backend read
    // afterwards proves the gate opened early (the SLB only gains the backend here).
    let deadline = Instant::now() + WAIT;
    loop {
        let gate = kube
            .get("v1", "Pod", NS, "web-0")
            .and_then(|p| condition(&p, GATE));
        let weights = weights_at(&slb, IP);
        if let Some((status, reason)) = &gate {
            if status == "True" {
                assert_eq!(reason, "BackendRegistered");
                assert!(
                    !weights.is_empty() && weights.iter().all(|w| *w > 0),
                    "gate True while the SLB holds {weights:?}"
                );
                break;
            }
        }
        assert!(Instant::now() < deadline, "gate never opened: {gate:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let p = kube.get("v1", "Pod", NS, "web-0").unwrap();
    assert_eq!(finalizers(&p), [FINALIZER]);
    // The pod's events (created, finalizer added, gate written) arrived on the watch: an
    // event the watcher cannot resume from ends in a relist of every pod.
    assert_eq!(kube.request_count("list", "pods"), 1);
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_pod_drains_then_is_removed_then_drained_then_released() {
    const WINDOW: u64 = 3;
    let kube = agent::start_kube().await;
    let slb = slb_mock::start_mock(seed()).await;
    let agent = start(&kube, &slb, "agent-a", WINDOW as u32).await;
    registered_pod(&kube, &slb).await;
    let versions = record_pod(&kube, "web-0").await;

    // The preStop hook: it blocks while the pod is merely active.
    let mut wait = slb_sync_command(env!("CARGO_BIN_EXE_slb-sync"))
        .arg("wait-drained")
        .args(["--agent", &format!("http://{}", agent.addr)])
        .args(["--namespace", NS, "--pod", "web-0", "--timeout", "60"])
        .spawn()
        .expect("wait-drained starts");
    delete_pod(&kube).await;

    eventually("weight 0", WAIT, || {
        (weights_at(&slb, IP) == [0]).then_some(())
    })
    .await;
    // Until the backend is gone, wait-drained must not return. Child first, then the SLB:
    // an exited child followed by a backend still present proves an early return.
    let deadline = Instant::now() + WAIT;
    let status = loop {
        let exited = wait.try_wait().expect("wait-drained status");
        let present = !weights_at(&slb, IP).is_empty();
        if let Some(status) = exited {
            assert!(
                !present,
                "wait-drained returned {status} before the removal"
            );
            break status;
        }
        assert!(Instant::now() < deadline, "wait-drained never returned");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let out = wait.wait_with_output().await.unwrap();
    assert!(
        status.success(),
        "wait-drained failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let (zero, removed) = drain_calls(&slb);
    let (zero, removed) = (zero.expect("weight 0 set"), removed.expect("removed"));
    eprintln!("weight 0 at {zero} ms, removed at {removed} ms (window {WINDOW} s)");
    assert!(
        removed >= zero + WINDOW * 1000,
        "removed at {removed} ms, weight 0 at {zero} ms"
    );

    // The pod goes once released: drained condition first, then the finalizer off.
    let versions = tokio::time::timeout(WAIT, versions)
        .await
        .expect("the pod is deleted")
        .unwrap();
    let as_json = |p: &Pod| serde_json::to_value(p).unwrap();
    let drained_at = versions
        .iter()
        .position(|p| is_true(&as_json(p), DRAINED))
        .expect("a version with the drained condition");
    assert!(
        finalizers(&as_json(&versions[drained_at])).contains(&FINALIZER.to_owned()),
        "drained only while still held"
    );
    let last = as_json(versions.last().unwrap());
    assert!(finalizers(&last).is_empty());
    assert!(kube.get("v1", "Pod", NS, "web-0").is_none());
    assert!(weights_at(&slb, IP).is_empty());
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_mid_drain_keeps_the_first_drain_start_and_completes() {
    const WINDOW: u64 = 6;
    let base = Instant::now();
    let kube = agent::start_kube().await;
    let slb = slb_mock::start_mock(seed()).await;
    let agent = start(&kube, &slb, "agent-a", WINDOW as u32).await;
    registered_pod(&kube, &slb).await;
    delete_pod(&kube).await;

    eventually("weight 0", WAIT, || {
        (weights_at(&slb, IP) == [0]).then_some(())
    })
    .await;
    // The drain start is persisted on the pod before this replica goes.
    eventually("the drain journal on the pod", WAIT, || {
        let p = kube.get("v1", "Pod", NS, "web-0")?;
        p["metadata"]["annotations"][JOURNAL].as_str().map(|_| ())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    agent.stop().await;
    assert_eq!(
        weights_at(&slb, IP),
        [0],
        "nothing removed before the restart"
    );

    let restarted_ms = base.elapsed().as_millis() as u64;
    let agent = start(&kube, &slb, "agent-b", WINDOW as u32).await;
    eventually("the pod drained and gone", WAIT, || {
        kube.get("v1", "Pod", NS, "web-0").is_none().then_some(())
    })
    .await;
    let (zero, removed) = drain_calls(&slb);
    let (zero, removed) = (zero.expect("weight 0 set"), removed.expect("removed"));
    eprintln!(
        "weight 0 at {zero} ms, restart at {restarted_ms} ms, removed at {removed} ms \
         (window {WINDOW} s)"
    );
    assert!(
        removed >= zero + WINDOW * 1000,
        "removed at {removed} ms, first weight 0 at {zero} ms"
    );
    // The restored start counts: the new replica did not drain a whole window again.
    assert!(
        removed < restarted_ms + WINDOW * 1000,
        "removed at {removed} ms, restarted at {restarted_ms} ms"
    );
    assert!(weights_at(&slb, IP).is_empty());
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_finalizers_frees_a_pod_stuck_terminating() {
    let kube = agent::start_kube().await;
    let mut stuck = pod("web-0", IP);
    stuck["metadata"]["finalizers"] = json!([FINALIZER]);
    kube.put(&stuck).unwrap();
    let pods: Api<Pod> = Api::namespaced(kube.client().unwrap(), NS);
    pods.delete("web-0", &DeleteParams::default())
        .await
        .unwrap();
    assert!(kube.get("v1", "Pod", NS, "web-0").is_some(), "held");

    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    kube.write_kubeconfig(&kubeconfig).unwrap();
    let out = slb_sync_command(env!("CARGO_BIN_EXE_slb-sync"))
        .arg("release-finalizers")
        .env("KUBECONFIG", &kubeconfig)
        .output()
        .await
        .expect("release-finalizers runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "release-finalizers failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("web-0"), "printed: {stdout}");
    eventually("the pod gone", WAIT, || {
        kube.get("v1", "Pod", NS, "web-0").is_none().then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_mode_a_deleted_last_pod_drains_its_node_then_is_released() {
    const WINDOW: u64 = 2;
    const POD_IP: &str = "10.0.1.5";
    let kube = agent::start_kube().await;
    let slb = slb_mock::start_mock(seed()).await;
    kube.put(&agent::node(1)).unwrap();
    kube.put(&agent::service(
        "web",
        &[("vgroup-port", "rsp-int:80")],
        true,
    ))
    .unwrap();
    let mut p = pod("web-0", POD_IP);
    p["spec"]["readinessGates"] = json!([]);
    p["status"]["conditions"] = json!([{"type": "ContainersReady", "status": "True"},
                                       {"type": "Ready", "status": "True"}]);
    kube.put(&p).unwrap();
    kube.put(&slice("web-0", POD_IP, Ep::Ready)).unwrap();
    let agent = start(&kube, &slb, "agent-a", WINDOW as u32).await;

    eventually("node-1 in the group and the pod held", WAIT, || {
        let m = agent::members(&slb, slb_mock::GROUP);
        let held = kube
            .get("v1", "Pod", NS, "web-0")
            .is_some_and(|p| finalizers(&p).contains(&FINALIZER.to_owned()));
        (held && m.len() == 1 && m[0].0 == "i-1" && m[0].1 == 30080 && m[0].2 > 0).then_some(())
    })
    .await;
    let versions = record_pod(&kube, "web-0").await;
    let pods: Api<Pod> = Api::namespaced(kube.client().unwrap(), NS);
    pods.delete("web-0", &DeleteParams::default())
        .await
        .unwrap();
    kube.put(&slice("web-0", POD_IP, Ep::Terminating)).unwrap();

    // The node had only this endpoint: it goes to weight 0, then out after the window.
    eventually("node-1 at weight 0", WAIT, || {
        let m = agent::members(&slb, slb_mock::GROUP);
        (m.len() == 1 && m[0].2 == 0).then_some(())
    })
    .await;
    let versions = tokio::time::timeout(WAIT, versions)
        .await
        .expect("the pod is deleted")
        .unwrap();
    assert!(agent::members(&slb, slb_mock::GROUP).is_empty());
    let (zero, removed) = drain_calls(&slb);
    let (zero, removed) = (zero.expect("weight 0 set"), removed.expect("removed"));
    eprintln!("node weight 0 at {zero} ms, removed at {removed} ms (window {WINDOW} s)");
    assert!(removed >= zero + WINDOW * 1000);
    let as_json = |p: &Pod| serde_json::to_value(p).unwrap();
    let drained_at = versions
        .iter()
        .position(|p| is_true(&as_json(p), DRAINED))
        .expect("a version with the drained condition");
    assert!(finalizers(&as_json(&versions[drained_at])).contains(&FINALIZER.to_owned()));
    agent.stop().await;
}

/// Local mode, a gated pod on a node with no other pod of the Service: the node joins the
/// group at weight 0 (its kube-proxy has no rule before the pod is Ready), the gate opens
/// on that, and the weight rises only once the endpoint is ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_mode_a_new_pods_node_joins_at_weight_zero_until_its_endpoint_is_ready() {
    const POD_IP: &str = "10.0.1.6";
    let kube = agent::start_kube().await;
    let slb = slb_mock::start_mock(seed()).await;
    kube.put(&agent::node(1)).unwrap();
    kube.put(&agent::service(
        "web",
        &[("vgroup-port", "rsp-int:80")],
        true,
    ))
    .unwrap();
    kube.put(&pod("web-0", POD_IP)).unwrap();
    kube.put(&slice("web-0", POD_IP, Ep::NotReady)).unwrap();
    let agent = start(&kube, &slb, "agent-a", 2).await;

    eventually("the gate opens", WAIT, || {
        let p = kube.get("v1", "Pod", NS, "web-0")?;
        is_true(&p, GATE).then_some(())
    })
    .await;
    let members = agent::members(&slb, slb_mock::GROUP);
    assert_eq!(members.len(), 1, "{members:?}");
    assert_eq!(
        (members[0].0.as_str(), members[0].1, members[0].2),
        ("i-1", 30080, 0),
        "the node must take no connection before the pod is Ready"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(agent::members(&slb, slb_mock::GROUP)[0].2, 0);

    // The kubelet reports the pod Ready; the endpoint follows, and so does the weight.
    kube.put(&slice("web-0", POD_IP, Ep::Ready)).unwrap();
    eventually("node-1 at weight 1", WAIT, || {
        let m = agent::members(&slb, slb_mock::GROUP);
        (m.len() == 1 && m[0].2 == 1).then_some(())
    })
    .await;
    agent.stop().await;
}
